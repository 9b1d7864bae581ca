"""The method registry and its options, the one identity judgement, and typed failures (no shared data needed)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

import condanon
from condanon import cli
from condanon.errors import ConfigError
from condanon.evaluation import MethodSpec
from condanon.failures import FAILURE_KINDS, Failure
from condanon.identity import judge, safe_side, unjudged
from condanon.methods import FALLBACKS, METHOD_OPTIONS, METHODS, BlurOptions, SyntheticOptions, cli_options, method_names, method_options
from condanon.synthesis.backend import Check
from condanon.synthesis.synthesizer import Steering
from condanon.types import Attributes

COSINE = SimpleNamespace(name="cos", metric="cosine", threshold=0.36)
L2 = SimpleNamespace(name="l2", metric="l2", threshold=0.6)


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)], np.float32)


def test_judge_knows_which_way_each_metric_runs_and_where_the_margin_goes():
    same, other = _unit(0.0), _unit(1.5)  # cosine 1.0 / 0.07; distance 0 / 1.36
    assert judge(COSINE, same, same).matched and not judge(COSINE, same, other).matched
    assert judge(L2, same, same).matched and not judge(L2, same, other).matched
    # a margin asks for room on the safe side: a face just past the bar is still the person
    near = _unit(1.15)  # cosine 0.408, over the 0.36 bar
    assert judge(COSINE, same, near).matched
    assert judge(COSINE, same, _unit(1.25), margin=0.0).matched is False
    assert judge(COSINE, same, _unit(1.25), margin=0.05).matched is True  # 0.315 is not 0.05 under 0.36
    assert judge(L2, same, _unit(0.65), bar=0.6).matched is False  # distance 0.64: another person at the bar...
    assert judge(L2, same, _unit(0.65), bar=0.6, margin=0.1).matched is True  # ...but not 0.1 beyond it
    assert safe_side("cosine", 0.3, 0.1) == pytest.approx(0.2) and safe_side("l2", 0.3, 0.1) == pytest.approx(0.4)
    check = judge(COSINE, same, other, bar=0.25, margin=0.02)
    assert (check.threshold, check.margin) == (0.25, 0.02) and check.to_dict()["margin"] == 0.02
    assert "margin" not in judge(COSINE, same, other).to_dict()  # the bar itself: reports as before
    assert unjudged(L2).matched is None and unjudged(L2).value is None


def test_the_synthetic_method_refuses_an_in_loop_embedder_it_cannot_rank_with():
    with pytest.raises(ConfigError, match="distance"):
        condanon.Anonymizer("synthetic", checks=condanon.Checks(embedder="dlib", attacker=None))
    # conventional methods judge with any recogniser: the direction is the judge's
    assert condanon.Anonymizer("blur", checks=condanon.Checks(embedder="dlib", attacker=None)).embedder.metric == "l2"


def test_failures_are_records_the_loop_branches_on():
    unsure = Failure("sex", "sex female -> male (unsure before)", {"unsure": True})
    assert str(unsure) == unsure.detail and not unsure.blocks_keeping
    assert Failure("sex", "sex female -> male").blocks_keeping and Failure("age", "age 30 -> 50").blocks_keeping
    assert Failure("fold", "warp folds the face over").blocks_keeping and not Failure("emotion", "x").blocks_keeping
    safe = dict(similarity=0.1, attributes=None, identity_ok=True)
    assert Check(failures=[Failure("emotion", "emotion happy -> sad")], **safe).keepable
    assert not Check(failures=[Failure("age", "age 30 -> 50")], **safe).keepable
    assert not Check(failures=[Failure("emotion", "e")], similarity=0.5, attributes=None, identity_ok=False).keepable
    steer = Steering(Attributes(age=30.0, sex="female", emotion="happy"))
    before = dataclasses.replace(steer.weights)
    steer.update(Check(failures=[Failure("sex", "s"), Failure("undetected", "no face detected")], **safe), 30.0)
    assert steer.weights.sex == 2 * before.sex and steer.weights.identity == before.identity
    assert {"identity", "age", "sex", "emotion", "fold", "uncertain", "small"} <= set(FAILURE_KINDS)


def test_methods_come_from_one_registry_that_the_cli_and_evaluation_derive_from():
    assert set(METHODS) == {"synthetic", "dp2", "pixelate", "blur", "mask", "auto"}
    assert set(FALLBACKS) == {"pixelate", "blur", "mask"}
    parser = cli.build_parser()
    anonymize = next(a for a in parser._subparsers._group_actions[0].choices["anonymize"]._actions if a.dest == "method")
    assert tuple(anonymize.choices) == method_names() and set(METHODS) <= set(method_names())  # registered ones too
    flags = {flag for flag, _ in cli_options().values()}
    assert {"--strength", "--blocks", "--shape", "--mask-scale", "--candidates", "--dp2-weights", "--dp2-steps"} <= flags
    args = parser.parse_args(["anonymize", "x.jpg", "-o", "out", "--method", "blur", "--strength", "0.3", "--shape", "box"])
    options = cli._options(args)
    assert options["method"] == BlurOptions(strength=0.3, shape="box")
    assert options["fallback"].shape == "box"  # the region flags reach the fallback too
    synthetic = cli._options(parser.parse_args(["anonymize", "x.jpg", "-o", "out", "--candidates", "9"]))["method"]
    assert synthetic == SyntheticOptions(candidates=9)
    assert MethodSpec.parse("blur:strength=0.25").method_options() == BlurOptions(strength=0.25)
    with pytest.raises(ConfigError, match="blur has no option 'margin'"):
        MethodSpec.parse("blur:margin=0.1")
    with pytest.raises(ConfigError, match="unknown method"):
        method_options("vanish")
    for name, options in METHOD_OPTIONS.items():
        assert options.name == name and options().to_dict()["method"] == name


def test_a_jobs_digest_follows_the_options_that_shape_its_outputs():
    parser = cli.build_parser()

    def digest(*extra: str) -> str:
        return cli._settings_digest(parser.parse_args(["anonymize", "x.jpg", "-o", "out", *extra]))

    base = digest()
    assert digest("--candidates", "6") == base  # the default, said out loud
    assert digest("--strength", "0.9") == base  # no blur anywhere in a synthetic run with a mask fallback
    assert digest("--candidates", "7") != base
    assert digest("--fallback", "blur", "--strength", "0.9") != digest("--fallback", "blur")
    assert digest("--seed", "1") != base and digest("--no-verify") != base

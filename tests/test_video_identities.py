"""A track whose first identity a recogniser still matches draws another one before any frame is written."""

from __future__ import annotations

import pytest

import condanon
from condanon.video import VideoAnonymizer
from condanon.video import anonymizer as video_anonymizer

pytestmark = [pytest.mark.video, pytest.mark.slow]
REAL_JUDGE = video_anonymizer.judge


def _run(data, monkeypatch, identities: int, refused: int):
    """Run single_face.mp4 where the in-loop check calls the first ``refused`` identities the person."""
    real = REAL_JUDGE
    calls = {"n": 0}

    def judge(embedder, before, after, bar=None, margin=0.0):
        check = real(embedder, before, after, bar, margin)
        if embedder.name == "sface":
            calls["n"] += 1
            if calls["n"] <= refused:  # as if the recogniser still knew the face
                check.matched = True
        return check

    monkeypatch.setattr(video_anonymizer, "judge", judge)
    frames = []
    runner = VideoAnonymizer(condanon.Anonymizer(seed=0), identities=identities)
    report = runner.run(data / "video" / "single_face.mp4", None, frames=frames.append)
    (track,) = [t for t in report.to_dict()["tracks"] if not t["uncertain"]]
    return track, frames


def test_a_refused_first_identity_is_replaced_on_the_same_keyframe(data, monkeypatch):
    track, frames = _run(data, monkeypatch, identities=3, refused=1)
    assert track["verdict"] == "anonymized" and track["failure"] is None
    assert track["synthesis"]["identities_tried"] == 2
    assert track["fallback_frames"] == 0  # no frame showed the mask: the first check comes before any is written
    assert frames


def test_a_track_falls_back_when_every_identity_is_refused(data, monkeypatch):
    track, _ = _run(data, monkeypatch, identities=2, refused=10**6)
    assert track["verdict"] == "fallback" and track["failure"]["kind"] == "identity"
    assert track["synthesis"]["identities_tried"] == 2
    track_one, _ = _run(data, monkeypatch, identities=1, refused=1)
    assert track_one["verdict"] == "fallback" and track_one["synthesis"]["identities_tried"] == 1


def test_a_keyframe_that_finds_no_identity_is_not_the_last_word(data, monkeypatch):
    """The loop finds no candidate on the first keyframe: the mask covers the face until a later keyframe's draw."""
    runner = VideoAnonymizer(condanon.Anonymizer(seed=0), identities=3, recheck_every=10)
    synthesizer = runner.anonymizer.synthesizer
    real = synthesizer.synthesize
    calls = []

    def first_fails(original, output, face, rng):
        outcome = real(original, output, face, rng)
        calls.append(len(calls))
        if len(calls) == 1:  # as if no candidate had passed on this view of the face
            from condanon.failures import Failure

            outcome.passed = False
            outcome.failures = [Failure("identity", "sface similarity 0.4 >= 0.2", {})]
            outcome.reason = "no candidate passed; closest: sface similarity 0.4 >= 0.2"
        return outcome

    monkeypatch.setattr(synthesizer, "synthesize", first_fails)
    report = runner.run(data / "video" / "single_face.mp4", None)
    (track,) = report.to_dict()["tracks"]
    assert track["verdict"] == "anonymized" and track["failure"] is None and track["method"] == "synthetic"
    assert track["synthesis"]["identities_tried"] >= 2 and track["synthesis"]["chosen_on_frame"] >= 10
    assert 5 <= track["fallback_frames"] <= 20  # the mask until the next draw, then the synthetic face

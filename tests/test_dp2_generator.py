"""The DeepPrivacy2 generator against the reference's golden outputs (shared/dp2/VERIFY.md).

``tiny256.pt`` and ``tiny128.pt`` hold small random-weight generators of the official architecture with
inputs and the reference's outputs for every code path. Tolerances are VERIFY.md's: w 1e-5, images
1e-4 (max abs), gradients 1e-3 relative to the largest reference value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import import_torch

torch = import_torch()

from condanon.dp2.checkpoint import layout_errors, load_generator, load_strict  # noqa: E402
from condanon.dp2.generator import CONFIGS, FaceGenerator, GeneratorConfig, state_dict_layout  # noqa: E402
from condanon.errors import ModelError  # noqa: E402

pytestmark = pytest.mark.dp2

W_TOL, IMAGE_TOL, GRAD_TOL = 1e-5, 1e-4, 1e-3


def _golden(dp2_dir: Path, name: str) -> tuple[FaceGenerator, dict[str, Any], dict[str, Any]]:
    data = torch.load(dp2_dir / f"{name}.pt", weights_only=True)
    generator = FaceGenerator(GeneratorConfig.from_reference(data["config"])).eval()
    load_strict(generator, data["state_dict"], name)
    return generator, {case["name"]: case for case in data["cases"]}, data


@pytest.fixture(scope="module", params=[pytest.param("tiny256", marks=pytest.mark.slow), "tiny128"])  # tiny128 quick
def golden(request: pytest.FixtureRequest, dp2_dir: Path) -> tuple[FaceGenerator, dict[str, Any], dict[str, Any]]:
    return _golden(dp2_dir, request.param)


def _max_abs(a: Any, b: Any) -> float:
    return float((a - b).abs().max())


def test_state_dict_loads_strictly_in_the_reference_order(golden):
    generator, _, data = golden
    assert list(generator.state_dict()) == list(data["state_dict"])
    assert state_dict_layout(generator) == [(k, list(v.shape)) for k, v in data["state_dict"].items()]


def test_forward_with_z(golden):
    generator, cases, _ = golden
    case = cases["a_forward_z"]
    inputs = case["inputs"]
    with torch.no_grad():
        image = generator(inputs["condition"], inputs["mask"], z=inputs["z"])
    assert _max_abs(image, case["outputs"]["img"]) <= IMAGE_TOL
    # the known region is a bit-exact copy of the condition
    assert torch.equal(image * inputs["mask"], inputs["condition"] * inputs["mask"])


def test_mapping(golden):
    generator, cases, _ = golden
    case = cases["b_mapping"]
    with torch.no_grad():
        assert _max_abs(generator.style_net(case["inputs"]["z"]), case["outputs"]["w"]) <= W_TOL


@pytest.mark.parametrize("t", [0.5, 0.0, 1.0, 1.7, -0.3])
def test_truncation_clamps_t(golden, t):
    generator, cases, _ = golden
    case = cases["c_truncation"]
    assert torch.equal(generator.style_net.w_avg, case["inputs"]["w_avg"])
    with torch.no_grad():
        w = generator.truncated(case["inputs"]["z"], t)
    assert _max_abs(w, case["outputs"][f"w_trunc[{t}]"]) <= W_TOL
    if t <= 0:
        assert torch.equal(w, generator.style_net.w_avg.expand_as(w))


@pytest.mark.slow  # ~1.5-6 s; test_forward_with_z[tiny128] stays quick
def test_forward_with_explicit_w(golden):
    generator, cases, _ = golden
    case = cases["d_forward_w"]
    inputs = case["inputs"]
    with torch.no_grad():
        image = generator(inputs["condition"], inputs["mask"], w=inputs["w"])
        ignored = generator(inputs["condition"], inputs["mask"], z=torch.randn(2, generator.config.z_channels), w=inputs["w"])
    assert _max_abs(image, case["outputs"]["img"]) <= IMAGE_TOL
    assert torch.equal(image, ignored)  # w given: z is ignored
    assert torch.equal(image * inputs["mask"], inputs["condition"] * inputs["mask"])


@pytest.mark.slow  # 1.5-4 s on tiny128 alone
def test_multi_modal_truncation(golden):
    generator, cases, _ = golden
    case = cases["e_multimodal_truncation"]
    inputs = case["inputs"]
    generator.style_net.set_centers(inputs["w_centers"])
    try:
        with torch.no_grad():
            w = generator.style_net.multi_modal(inputs["z"], inputs["truncation_value"], inputs["w_indices"])
            image = generator(inputs["condition"], inputs["mask"], w=w)
            sampled = generator.sample(inputs["condition"], inputs["mask"], inputs["z"], inputs["truncation_value"], inputs["w_indices"])
    finally:
        generator.style_net.set_centers(None)
    assert _max_abs(w, case["outputs"]["w"]) <= W_TOL
    assert _max_abs(image, case["outputs"]["img"]) <= IMAGE_TOL
    assert torch.equal(sampled, image)
    assert torch.equal(image * inputs["mask"], inputs["condition"] * inputs["mask"])


def test_gradient_through_the_masked_output(golden):
    generator, cases, _ = golden
    case = cases["f_grad_z"]
    inputs = case["inputs"]
    z = inputs["z"].clone().requires_grad_(True)
    generator(inputs["condition"], inputs["mask"], z=z).sum().backward()
    reference = case["outputs"]["z_grad"]
    assert _max_abs(z.grad, reference) <= GRAD_TOL * float(reference.abs().max())


def test_clamps_engage_under_stress(golden):
    generator, cases, _ = golden
    case = cases["g_clamp_stress"]
    inputs = case["inputs"]
    with torch.no_grad():
        image = generator(inputs["condition"], inputs["mask"], z=inputs["z"])
    assert _max_abs(image, case["outputs"]["img"]) <= IMAGE_TOL
    assert torch.equal(image * inputs["mask"], inputs["condition"] * inputs["mask"])


@pytest.mark.parametrize("name", ["fdf256", "fdf128"])
def test_official_configuration_matches_the_reference_key_list(dp2_dir, name):
    reference = json.loads((dp2_dir / f"keys_{name}.json").read_text())
    config = GeneratorConfig.from_reference(reference["constructor_kwargs"])
    assert config == CONFIGS[name]
    generator = FaceGenerator(config)
    assert state_dict_layout(generator) == [(row[0], row[1]) for row in reference["state_dict"]]
    assert all(str(value.dtype) == f"torch.{row[2]}" for value, row in zip(generator.state_dict().values(), reference["state_dict"]))
    assert generator.num_parameters() == reference["num_parameters"]
    assert [key for key, _ in generator.named_buffers()] == [row[0] for row in reference["buffers"]]


def test_strict_loading_names_what_does_not_fit(dp2_dir, tmp_path):
    data = torch.load(dp2_dir / "tiny128.pt", weights_only=True)
    generator = FaceGenerator(GeneratorConfig.from_reference(data["config"]))
    state = dict(data["state_dict"])
    del state["to_rgb.bias"]
    state["decoder.0.conv0.weight"] = state["decoder.0.conv0.weight"][:, :-1]
    state["extra.weight"] = torch.zeros(1)
    errors = layout_errors(generator, state)
    assert errors == ["missing to_rgb.bias", "unexpected extra.weight", f"decoder.0.conv0.weight is {list(state['decoder.0.conv0.weight'].shape)}, expected [64, 64, 3, 3]"]
    with pytest.raises(ModelError, match="missing to_rgb.bias"):
        load_strict(generator, state, "tiny128")
    bad_filter = dict(data["state_dict"])
    bad_filter["encoder.1.conv0.resample_filter"] = torch.full((4, 4), 1 / 16)
    assert layout_errors(generator, bad_filter) == ["encoder.1.conv0.resample_filter is not the fixed FIR filter"]


@pytest.mark.slow  # ~4 s
def test_load_generator_reads_a_checkpoint_file_in_every_layout(dp2_dir, tmp_path):
    data = torch.load(dp2_dir / "tiny256.pt", weights_only=True)
    config = GeneratorConfig.from_reference(data["config"])
    case = next(c for c in data["cases"] if c["name"] == "d_forward_w")["inputs"]
    layouts = {
        "ema.pt": {"EMA_generator": data["state_dict"], "w_centers": data["w_centers"]},
        "running.pt": {"running_average_generator": data["state_dict"] | {"style_net.w_centers": data["w_centers"]}},
        "bare.pt": data["state_dict"],
    }
    outputs = []
    for filename, payload in layouts.items():
        torch.save(payload, tmp_path / filename)
        generator = load_generator(tmp_path / filename, config=config)
        assert not any(p.requires_grad for p in generator.parameters())
        assert torch.equal(generator.style_net.centers(), data["w_centers"]) if filename != "bare.pt" else generator.style_net.centers() is None
        with torch.no_grad():
            outputs.append(generator(case["condition"], case["mask"], w=case["w"]))
    assert all(torch.equal(outputs[0], other) for other in outputs[1:])
    assert load_generator(tmp_path / "ema.pt", config=config) is load_generator(tmp_path / "ema.pt", config=config)  # once per process


def test_official_weights_missing_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from condanon import weights

    monkeypatch.setattr(weights, "_verified", {})
    with pytest.raises(ModelError) as error:
        load_generator("fdf256")
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "89660f04-5c11-4dbf-adac-cbe2f11b0aeea25cbf78-7558-475a-b3c7-03f5c10b7934646b0720-ca0a-4d53-aded-daddbfa45c9e") in message
    assert "huggingface.co/spaces/haakohu/deep_privacy2_face" in message and "docs/dp2.md" in message


def test_official_weights_with_the_wrong_md5_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from condanon import weights

    monkeypatch.setattr(weights, "_verified", {})
    target = weights.MODELS["dp2-fdf128"].locate()
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the checkpoint")
    with pytest.raises(ModelError, match="md5"):
        load_generator("fdf128")


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_generator(tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelError, match="cannot read"):
        load_generator(tmp_path / "junk.pt")


def test_training_objects_load_only_from_a_verified_official_file(dp2_dir, tmp_path, monkeypatch):
    import dataclasses
    import hashlib
    import sys

    from condanon import weights

    (tmp_path / "trainer_state.py").write_text("class EasyDict(dict):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import trainer_state

    data = torch.load(dp2_dir / "tiny128.pt", weights_only=True)
    path = tmp_path / "66d803c0-official-name"
    torch.save({"EMA_generator": data["state_dict"], "train_state": trainer_state.EasyDict(step=7)}, path)
    monkeypatch.delitem(sys.modules, "trainer_state")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    config = GeneratorConfig.from_reference(data["config"])
    with pytest.raises(ModelError, match="not a verified official checkpoint"):
        load_generator(path, config=config)
    official = dataclasses.replace(weights.MODELS["dp2-fdf128"], filename=path.name, md5=hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setitem(weights.MODELS, "dp2-fdf128", official)
    generator = load_generator(path, config=config)  # the trainer's object is replaced by an inert stand-in
    assert torch.equal(generator.style_net.w_avg, data["state_dict"]["style_net.w_avg"])

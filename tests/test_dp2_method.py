"""The ``dp2`` method end to end on real photos, with the golden tiny generators plugged in.

The tiny generators have random weights, so their faces are coloured noise: these tests check the
plumbing (crop, generate, feathered paste, the checks, the fallback, the reports, the CLI), not the
quality, which needs the official checkpoint (docs/dp2.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import import_torch

import condanon

torch = import_torch()

from condanon.cli import main  # noqa: E402
from condanon.dp2.synthesizer import DP2Synthesizer, FaceRegion  # noqa: E402
from condanon.errors import ModelError  # noqa: E402
from condanon.types import Box  # noqa: E402

pytestmark = pytest.mark.dp2


@pytest.fixture(scope="session")
def tiny(dp2_dir: Path) -> dict[str, Path]:
    return {name: dp2_dir / f"{name}.pt" for name in ("tiny256", "tiny128")}


@pytest.fixture(scope="module")
def dp2_result(tiny, scenes, load):
    # noise faces read no age or sex of the original, and those are never kept as drift: preserving only
    # the emotion (whose drift may be kept) lets the plumbing be tested on a kept generated face
    anonymizer = condanon.Anonymizer(
        method=condanon.DP2Options(weights=str(tiny["tiny256"])),
        seed=3,
        preserve=("emotion",),
        checks=condanon.Checks(attacker="dlib"),
    )
    image = load(scenes / "two_people.jpg")
    return anonymizer, image, anonymizer.anonymize(image)


@pytest.mark.slow  # ~10 s with the dp2_result fixture it shares
def test_dp2_crops_generates_pastes_verifies_and_reports(dp2_result):
    anonymizer, image, result = dp2_result
    assert len(result.faces) == 2
    generated = 0
    for report in result.reports:
        assert report.method in ("dp2", "mask")
        synthesis = report.synthesis
        assert synthesis is not None and 1 <= synthesis["attempts"] <= 4 == report.attempts
        assert synthesis["latent"]["generator"] == "tiny256.pt" and "z_idx" in synthesis["latent"]
        assert "prototypes" not in synthesis
        in_loop, attacker = report.identity
        assert in_loop.embedder == "sface" and attacker.embedder == "dlib"
        assert in_loop.matched is False  # every face, generated or masked, is no longer recognised
        assert report.attributes_before is not None and report.attributes_after is not None
        if report.method == "dp2":
            generated += 1
            assert report.verdict == "anonymized" and synthesis["passed"]
            assert in_loop.value < in_loop.threshold - anonymizer.synthesizer.margin
        else:
            assert report.verdict == "fallback" and report.reason.startswith("no candidate passed in 4")
    assert generated >= 1
    json.dumps(result.to_dict())  # the report is JSON-ready


@pytest.mark.slow  # shares dp2_result (~10 s)
def test_dp2_changes_the_faces_and_nothing_outside_their_regions(dp2_result):
    anonymizer, image, result = dp2_result
    changed = np.any(result.image != image, axis=2)
    allowed = np.zeros(changed.shape, bool)
    for report in result.reports:
        box = report.face.box
        x1, y1, x2, y2 = box.to_int()
        assert changed[y1:y2, x1:x2].mean() > 0.5, "the face was left as it was"
        if report.method == "dp2":
            bx1, by1, bx2, by2 = FaceRegion.around(box, image.shape[:2], 256, anonymizer.synthesizer.feather).bounds
        else:  # the fallback's ellipse at 1.3x the box
            bx1, by1, bx2, by2 = box.scaled(1.3).to_int()
        allowed[max(by1, 0) : by2, max(bx1, 0) : bx2] = True
    assert not changed[~allowed].any()


@pytest.mark.slow  # ~12 s
def test_dp2_is_reproducible_with_its_seed(dp2_result, tiny):
    _, image, result = dp2_result
    again = condanon.Anonymizer(method=condanon.DP2Options(weights=str(tiny["tiny256"])), seed=3, preserve=("emotion",)).anonymize(image)
    assert np.array_equal(again.image, result.image)
    assert [r.synthesis["latent"] for r in again.reports] == [r.synthesis["latent"] for r in result.reports]


def test_feathered_paste_is_the_generator_on_the_box_and_fades_across_the_band():
    image = np.full((200, 300, 3), 50, np.uint8)
    region = FaceRegion.around(Box(100, 50, 180, 150), image.shape[:2], 256, feather=0.1)
    band = 10  # 0.1 of the box's longer side (100 px)
    assert region.grown == (90, 40, 190, 160) and region.bounds == (90, 40, 190, 160)
    height, width = region.expanded_hw
    generated = np.full((height, width, 3), 250.0, np.float32)
    patch = region.blend(image, generated)
    ex, ey = 100 - 90, 50 - 40
    assert (patch[ey : ey + 100, ex : ex + 80] == 250).all()  # the detection box: generator only
    alpha = region.alpha[..., 0]
    assert alpha[0, 0] == 0 and alpha[ey, 0] == 0 and alpha[ey + 50, ex - band // 2] == pytest.approx(0.5, abs=0.1)
    row = patch[ey + 50, : ex + 1, 0].astype(int)
    assert (np.diff(row) >= 0).all() and row[0] < 60 and row[-1] == 250  # a smooth ramp, no seam
    hard = FaceRegion.around(Box(100, 50, 180, 150), image.shape[:2], 256, feather=0.0)
    assert hard.bounds == (100, 50, 180, 150) and (hard.alpha == 1).all()


@pytest.mark.slow  # ~6 s
def test_dp2_with_fdf128_conventions_runs(tiny, scenes, load):
    anonymizer = condanon.Anonymizer(method=condanon.DP2Options(weights=str(tiny["tiny128"]), candidates=2), seed=1)
    assert isinstance(anonymizer.synthesizer, DP2Synthesizer)
    assert anonymizer.synthesizer.generator.config.resolution == 128
    image = load(scenes / "astronaut.jpg")
    result = anonymizer.anonymize(image)
    assert len(result.reports) == 1
    report = result.reports[0]
    assert report.attempts == (report.synthesis["attempts"]) and report.identity[0].matched is False
    x1, y1, x2, y2 = report.face.box.to_int()
    assert np.any(result.image[y1:y2, x1:x2] != image[y1:y2, x1:x2], axis=2).mean() > 0.5


def test_dp2_without_the_checkpoint_is_one_clear_error(tmp_path, monkeypatch, scenes):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from condanon import weights

    monkeypatch.setattr(weights, "_verified", {})
    with pytest.raises(ModelError, match="dp2-fdf256.*missing at .*hub/checkpoints/89660f04"):
        condanon.Anonymizer(method="dp2")
    with pytest.raises(ModelError, match="does not exist"):
        condanon.Anonymizer(method=condanon.DP2Options(weights=str(tmp_path / "nothing.pt")))


def test_cli_dp2_without_the_checkpoint_says_where_to_get_it(tmp_path, monkeypatch, capsys, scenes):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from condanon import weights

    monkeypatch.setattr(weights, "_verified", {})
    out = tmp_path / "out"
    assert main(["anonymize", str(scenes / "astronaut.jpg"), "-o", str(out / "a.jpg"), "--method", "dp2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "huggingface.co/spaces/haakohu/deep_privacy2_face" in err and "docs/dp2.md" in err
    assert not (out / "a.jpg").exists()


@pytest.mark.slow  # ~3 s
def test_cli_dp2_with_a_checkpoint_file(tmp_path, tiny, scenes):
    out = tmp_path / "a.png"
    report = tmp_path / "report.json"
    assert main(["anonymize", str(scenes / "astronaut.jpg"), "-o", str(out), "--method", "dp2",
                 "--dp2-weights", str(tiny["tiny256"]), "--candidates", "2", "--report", str(report)]) == 0
    assert cv2.imread(str(out)) is not None
    written = json.loads(report.read_text())
    assert written["method"] == "dp2"
    faces = written["results"][0]["faces"]
    assert len(faces) == 1 and faces[0]["method"] in ("dp2", "mask") and faces[0]["synthesis"]["attempts"] <= 2


@pytest.mark.slow  # ~20 s
@pytest.mark.video
def test_dp2_on_video_renders_one_latent_per_track_on_every_frame(tiny, data, monkeypatch):
    from condanon.dp2.synthesizer import DP2Identity, Latent
    from condanon.synthesis.backend import Synthesis
    from condanon.video import VideoAnonymizer
    from condanon.video.io import VideoReader

    clip = data / "video" / "single_face.mp4"
    with VideoReader(clip) as reader:
        originals = [frame.image for frame in reader]

    def run(force: bool) -> tuple[list[np.ndarray], Any]:
        options = condanon.DP2Options(weights=str(tiny["tiny256"]), candidates=2)
        checks = condanon.Checks(verify=not force)
        anonymizer = condanon.Anonymizer(method=options, seed=5, preserve=("emotion",), checks=checks)
        synthesizer = anonymizer.synthesizer
        if force:  # a noise face fails the still-a-face check: keep latent 7 as if it had passed, to see it drawn
            w = synthesizer.latent_w(synthesizer.generator, [Latent(7, 0.5)])
            kept = Synthesis(passed=True, attempts=1, latent={"z_idx": 7}, identity=DP2Identity(synthesizer, w))
            monkeypatch.setattr(synthesizer, "synthesize", lambda *args: kept)
        frames: list[np.ndarray] = []
        report = VideoAnonymizer(anonymizer, attacker_checks=False).run(clip, None, frames=frames.append)
        return frames, report

    frames, report = run(force=False)  # the real loop: the noise face is refused, and the fallback covers it
    (track,) = report.to_dict()["tracks"]
    assert track["synthesis"]["latent"]["generator"] == "tiny256.pt"
    assert track["verdict"] == "fallback" and track["failure"]["kind"] == "undetected"
    frames, report = run(force=True)
    (track,) = report.to_dict()["tracks"]
    assert track["method"] == "dp2" and track["frames"] - track["fallback_frames"] >= 60  # drawn frame after frame
    drawn = 0
    for frame, _, _, x1, y1, x2, y2, _, method, _ in report.boxes:
        changed = np.any(frames[frame] != originals[frame], axis=2)
        w, h = x2 - x1, y2 - y1
        region = np.zeros_like(changed)
        region[max(0, int(y1 - 0.2 * h)) : int(y2 + 0.2 * h), max(0, int(x1 - 0.2 * w)) : int(x2 + 0.2 * w)] = True
        assert not changed[~region].any()  # nothing changes away from the face
        if method == "dp2":
            drawn += 1
            assert changed[int(y1) : int(y2), int(x1) : int(x2)].mean() > 0.5  # the generator's face, this frame's box
    assert drawn >= 60
    again, _ = run(force=True)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))  # one latent: the same faces again


def test_the_default_install_needs_no_torch_and_dp2_says_how_to_get_it():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import condanon\n"
        "condanon.Anonymizer(method='blur')\n"
        "assert 'torch' not in sys.modules, 'a default Anonymizer imported torch'\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "try:\n"
        "    condanon.Anonymizer(method='dp2')\n"
        "except condanon.errors.ModelError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "the dp2 method needs PyTorch: pip install 'condanon[dp2]' (torch==2.13.0 takes the CPU build)"


@pytest.mark.slow  # ~4 s
def test_dp2_handles_a_face_cut_by_the_image_border(tiny, scenes, load):
    image = load(scenes / "astronaut.jpg")
    anonymizer = condanon.Anonymizer(method=condanon.DP2Options(weights=str(tiny["tiny256"]), candidates=2))
    box = anonymizer.find_faces(image)[0].box
    cut = np.ascontiguousarray(image[int(box.y1) + 15 :, int(box.x1) + 10 :])  # the face runs off the top-left corner
    result = anonymizer.anonymize(cut)
    assert len(result.reports) == 1
    report = result.reports[0]
    assert not (report.reason or "").startswith("dp2 failed"), report.reason  # the crop padded black, no error
    assert 1 <= report.synthesis["attempts"] <= 2 and report.identity[0].matched is False
    x1, y1, x2, y2 = report.face.box.to_int()
    assert np.any(result.image[max(y1, 0) : y2, max(x1, 0) : x2] != cut[max(y1, 0) : y2, max(x1, 0) : x2], axis=2).mean() > 0.5


def test_method_auto_picks_dp2_only_where_torch_and_its_checkpoint_are(tiny, tmp_path, monkeypatch, scenes, capsys):
    from condanon.pipeline import auto, resolve_method

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no official checkpoint there
    assert resolve_method("auto", "fdf256") == "synthetic"
    assert resolve_method("auto", str(tmp_path / "missing.pt")) == "synthetic"
    assert resolve_method("auto", str(tiny["tiny256"])) == "dp2"
    assert resolve_method("blur", str(tiny["tiny256"])) == "blur"
    assert condanon.Anonymizer(auto(condanon.DP2Options(weights=str(tiny["tiny256"])))).method == "dp2"
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert resolve_method("auto", str(tiny["tiny256"])) == "synthetic"
    monkeypatch.setattr(importlib.util, "find_spec", real)
    report = tmp_path / "report.json"
    out = tmp_path / "out.jpg"
    assert main(["anonymize", str(scenes / "astronaut.jpg"), "-o", str(out), "--method", "auto", "--report", str(report), "-q"]) == 0
    summary = json.loads(report.read_text())
    assert summary["method"] == "synthetic"  # what auto chose: no official checkpoint in TORCH_HOME
    faces = summary["results"][0]["faces"]
    assert faces and {f["method"] for f in faces} <= {"synthetic", "mask"}

"""BlazeFace full-range (the second detector) and the ``yunet+blazeface`` ensemble, on real shared photos."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from condanon import weights
from condanon.detection import DETECTORS
from condanon.detection.blazeface import (
    BlazeFaceDetector,
    landmarks5,
    to_yunet,
    weighted_nms,
)
from condanon.detection.ensemble import (
    BLAZEFACE_TRUST,
    BLAZEFACE_UNCERTAIN,
    EnsembleDetector,
)
from condanon.errors import ModelError
from condanon.types import Box, Face

REPO = Path(__file__).resolve().parents[1]
PROFILES = ("mux_Jayamadhuri_11.jpg", "mux_Dwarakish_36.jpg")  # YuNet finds no face on either


@pytest.fixture(scope="module")
def blazeface():
    return DETECTORS.create("blazeface")


@pytest.fixture(scope="module")
def ensemble():
    return DETECTORS.create("yunet+blazeface")


def test_finds_the_face_where_yunet_does(blazeface, scenes, load):
    image = load(scenes / "astronaut.jpg")
    (reference,) = DETECTORS.create("yunet").detect(image)
    faces = blazeface.detect(image)
    assert len(faces) == 1
    assert faces[0].box.iou(reference.box) > 0.75, (faces[0].box, reference.box)
    assert faces[0].score > 0.9 and faces[0].detector == "blazeface"
    # eyes and nose within a few pixels of YuNet's (the face is ~90 px wide); mouth corners approximate
    error = np.linalg.norm(faces[0].landmarks5 - reference.landmarks5, axis=1)
    assert error[:3].max() < 8 and error[3:].max() < 15, error


def test_box_map_and_mouth_corners():
    box = to_yunet(Box(0, 0, 100, 100))
    assert 80 < box.width < 95 and 95 < box.height < 110
    points = landmarks5(np.asarray([[30, 40], [70, 40], [50, 60], [50, 80], [10, 50], [90, 50]], np.float32))
    assert points.shape == (5, 2)
    assert points[3, 0] < 50 < points[4, 0] and points[3, 1] == points[4, 1] == 80


def test_weighted_nms_blends_overlapping_boxes():
    boxes = np.asarray([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.asarray([0.9, 0.6, 0.7], np.float32)
    merged = weighted_nms(boxes, scores, np.zeros((3, 6, 2), np.float32), 0.3)
    assert [round(score, 2) for _, score, _ in merged] == [0.9, 0.7]
    assert merged[0][0][0] == pytest.approx(0.6 / 1.5)  # score-weighted mean of x1 = 0 and 1


@pytest.mark.parametrize("name", PROFILES)
def test_profile_faces_yunet_misses_are_found_by_the_ensemble(ensemble, data, load, name):
    image = load(data / "attributes/emotion" / name)
    assert DETECTORS.create("yunet").detect(image) == []
    faces = ensemble.detect(image)
    assert len(faces) == 1, [f.box.to_list() for f in faces]
    height, width = image.shape[:2]
    cx, cy = faces[0].box.center
    assert 0.2 * width < cx < 0.8 * width and 0.2 * height < cy < 0.8 * height
    # found by the net alone and not confirmed: obscured, but uncertain (never synthesised or counted)
    assert faces[0].uncertain and faces[0].detector == "blazeface"


def test_face_cut_by_the_border_is_found(ensemble, scenes, load):
    """The woman at the lower left of selfie-many-people.jpg: half her face is outside the photo."""
    image = load(scenes / "selfie-many-people.jpg")
    faces = ensemble.detect(image)
    corner = [f for f in faces if f.box.x1 < 5 and f.box.center[1] > 420]
    assert len(corner) == 1, [f.box.to_list() for f in faces]
    assert len(faces) == 7


class _Stub:
    """A second detector that reports one face at a fixed place and score."""

    name = "stub"

    def __init__(self, score: float) -> None:
        self.score = score

    def detect(self, image: np.ndarray) -> list[Face]:
        return [Face(box=Box(40, 40, 120, 120), score=self.score, detector=self.name)]


@pytest.mark.parametrize(
    ("score", "kept", "uncertain"),
    [(BLAZEFACE_UNCERTAIN - 0.05, False, None), (BLAZEFACE_UNCERTAIN + 0.05, True, True), (BLAZEFACE_TRUST + 0.05, True, False)],
)
def test_unconfirmed_faces_are_dropped_uncertain_or_trusted_by_score(score, kept, uncertain):
    image = np.full((240, 320, 3), 128, np.uint8)  # no face for YuNet to confirm
    detector = EnsembleDetector(
        DETECTORS.create("yunet"), _Stub(score), confirm_threshold=0.6,  # type: ignore[arg-type]
        trust_score=BLAZEFACE_TRUST, uncertain_score=BLAZEFACE_UNCERTAIN,
    )
    faces = detector.detect(image)
    assert len(faces) == int(kept)
    if kept:
        assert faces[0].uncertain is uncertain


@pytest.mark.parametrize("name, stem", [("blazeface", "blazeface-full-range-v1"), ("face-landmark", "face-landmark-v1")])
def test_model_file_checksum_and_card_agree(name, stem):
    """Both MediaPipe nets converted by tools/convert_mediapipe.py: installed copy, committed file and card agree."""
    entry = weights.MODELS[name]
    path = weights.model_path(name)
    committed = REPO / "models" / f"{stem}.onnx"  # installed as condanon.bundled_models (a copy, or the file itself when editable)
    assert path.name == committed.name
    assert weights.digest_of(path) == weights.digest_of(committed) == entry.sha256
    card = (REPO / "models" / f"{stem}.md").read_text()
    assert entry.sha256 in card and "Apache-2.0" in card and entry.license.startswith("Apache-2.0")
    assert {row["name"]: row["status"] for row in weights.check_models()}[name] == "ok"


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_model_gives_a_one_line_error(tmp_path, monkeypatch, damage):
    entry = weights.MODELS["blazeface"]
    monkeypatch.setenv("CONDANON_HOME", str(tmp_path))
    moved = dataclasses.replace(entry, package=None, relpath=None, filename="blazeface-full-range-v1.onnx")
    monkeypatch.setitem(weights.MODELS, "blazeface", moved)
    monkeypatch.delitem(weights._verified, "blazeface", raising=False)
    monkeypatch.delitem(weights._loaded, "blazeface", raising=False)
    target = tmp_path / "models" / "blazeface-full-range-v1.onnx"
    if damage == "corrupt":
        target.parent.mkdir(parents=True)
        target.write_bytes((REPO / "models" / "blazeface-full-range-v1.onnx").read_bytes()[:50_000])
    with pytest.raises(ModelError) as caught:
        BlazeFaceDetector().detect(np.zeros((64, 64, 3), np.uint8))
    message = str(caught.value)
    assert "\n" not in message and damage in message and "blazeface" in message
    assert re.search(re.escape(str(target)), message)
    monkeypatch.delitem(weights._loaded, "blazeface", raising=False)  # never keep a session from the fake file

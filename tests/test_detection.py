"""Face detection on real scenes: hand-counted faces, tight crops, large images, empty images."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

import condanon
from condanon.detection import DETECTORS

# Counted by hand.
COUNTS = {
    "astronaut.jpg": 1,
    "two_people.jpg": 2,
    "couple.jpg": 2,
    "t1.jpg": 6,
    "multiface.jpg": 6,
    "multi_face.jpg": 5,
    "bbt1.jpg": 4,
}


@pytest.fixture(scope="module")
def detectors():
    return {name: DETECTORS.create(name) for name in ("yunet+hog", "yunet")}


def assert_inside(faces, image, calibrated=True):
    height, width = image.shape[:2]
    for face in faces:
        box = face.box
        assert 0 <= box.x1 < box.x2 <= width and 0 <= box.y1 < box.y2 <= height, box
        assert box.width >= 8 and box.height >= 8
        assert face.score > 0.0
        if calibrated:  # YuNet's scores are probabilities; HOG's and Haar's are not
            assert face.score <= 1.0 + 1e-6
        if face.landmarks5 is not None:
            assert face.landmarks5.shape == (5, 2)


@pytest.mark.parametrize("detector", ["yunet+hog", "yunet"])
@pytest.mark.parametrize("scene", sorted(COUNTS))
def test_hand_counted_faces(detectors, scenes, load, detector, scene):
    image = load(scenes / scene)
    faces = detectors[detector].detect(image)
    assert len(faces) == COUNTS[scene], [f.box.to_list() for f in faces]
    assert_inside(faces, image)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    # no two boxes cover the same face
    for i, a in enumerate(faces):
        for b in faces[i + 1 :]:
            assert a.box.iou(b.box) < 0.3


def test_default_detector_is_yunet_plus_blazeface(anonymizer):
    assert anonymizer.detector.name == "yunet+blazeface"


def _utk_adults(data, count):
    with open(data / "attributes/utkface/index.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if 18 <= int(row["age"]) <= 70]
    return [data / "attributes/utkface" / row["path"] for row in rows[:count]]


@pytest.mark.parametrize("margin", [0, 50])
def test_tight_face_crop_is_found(detectors, data, load, margin):
    """UTKFace images are 200 px crops with the face filling them (and 100 px when cut further):
    the small-image path pads and upscales, and must map the box back into the crop."""
    for path in _utk_adults(data, 8):
        image = load(path)
        image = np.ascontiguousarray(image[margin : image.shape[0] - margin, margin : image.shape[1] - margin])
        height, width = image.shape[:2]
        for name in ("yunet+hog", "yunet"):
            faces = detectors[name].detect(image)
            assert len(faces) == 1, (path.name, name, margin, [f.box.to_list() for f in faces])
            assert_inside(faces, image)
            # the face is centred in these crops: a wrong padding offset would move the box off-centre
            cx, cy = faces[0].box.center
            assert abs(cx - width / 2) < 0.15 * width and abs(cy - height / 2) < 0.2 * height, (path.name, cx, cy)
            assert faces[0].box.width > 0.4 * width


@pytest.mark.slow  # ~2.5 s
def test_large_upscaled_image_still_finds_both_faces(detectors, scenes, load):
    image = load(scenes / "two_people.jpg")
    small = detectors["yunet"].detect(image)
    big = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    assert max(big.shape[:2]) > 1280  # the downscale + tiles path
    for name in ("yunet+hog", "yunet"):
        faces = detectors[name].detect(big)
        assert len(faces) == 2, [f.box.to_list() for f in faces]
        assert_inside(faces, big)
        # the same faces, at three times the coordinates
        for face in faces:
            best = max(small, key=lambda s: s.box.scaled(1).iou(_div(face.box, 3)))
            assert _div(face.box, 3).iou(best.box) > 0.6


def _div(box, factor):
    from condanon.types import Box

    return Box(box.x1 / factor, box.y1 / factor, box.x2 / factor, box.y2 / factor)


@pytest.mark.parametrize("name", ["yunet+hog", "yunet", "hog", "haar", "yunet+haar"])
def test_blank_image_has_no_face(name):
    detector = DETECTORS.create(name)
    for shape in ((480, 640, 3), (2000, 3000, 3), (100, 100, 3)):
        assert detector.detect(np.full(shape, 128, np.uint8)) == []


def test_faceless_part_of_a_real_photo_has_no_face(detectors, scenes, load):
    image = load(scenes / "astronaut.jpg")
    faces = detectors["yunet+hog"].detect(image)
    bottom = int(faces[0].box.y2 * 1.25)  # well below the chin
    crop = np.ascontiguousarray(image[bottom:])
    assert crop.shape[0] > 100
    assert detectors["yunet+hog"].detect(crop) == []


@pytest.mark.parametrize("name", ["hog", "haar"])
def test_second_opinion_detectors_agree_with_yunet(detectors, scenes, load, name):
    """The safety-net detectors' boxes are in YuNet's convention, so they overlap YuNet's boxes."""
    image = load(scenes / "two_people.jpg")
    reference = detectors["yunet"].detect(image)
    faces = DETECTORS.create(name).detect(image)
    assert len(faces) >= 2
    assert_inside(faces, image, calibrated=False)
    for ref in reference:
        assert max(f.box.iou(ref.box) for f in faces) > 0.5


@pytest.mark.parametrize("name", ["yunet", "yunet+hog"])
def test_score_threshold_reaches_yunet(scenes, load, name):
    """A lower YuNet threshold finds more (here: false) faces, through the ensemble too."""

    image = load(scenes / "two_people.jpg")
    default = condanon.Anonymizer(detection=condanon.Detection(detector=name)).detector.detect(image)
    low = condanon.Anonymizer(detection=condanon.Detection(detector=name, score_threshold=0.3)).detector.detect(image)
    assert len(default) == 2
    assert len(low) > len(default)
    assert min(f.score for f in low if f.detector == "yunet") < 0.6


def test_score_threshold_is_validated():

    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(condanon.ConfigError, match="between 0 and 1"):
            condanon.Anonymizer(detection=condanon.Detection(score_threshold=bad))
    with pytest.raises(condanon.ConfigError, match="'haar' takes no score_threshold"):
        condanon.Anonymizer(detection=condanon.Detection(detector="haar", score_threshold=0.5))
    # a detector with a threshold of its own gets it (the orientation search's YuNet too)
    anonymizer = condanon.Anonymizer("mask", detection=condanon.Detection(detector="hog", score_threshold=0.5))
    assert anonymizer.detector.score_threshold == 0.5


def test_tiles_in_turns_cover_every_tile_over_the_turns(scenes, load):
    """YuNet with ``tile_turns=2`` searches half of a large image's tiles per call: two calls together find the
    small faces one call with every tile finds (the video layer's keyframes share the tiles this way)."""
    from condanon.detection.base import overlap

    image = load(scenes / "g7_leaders.jpg")  # 2771 px wide: tiles, 30 small faces
    every = DETECTORS.create("yunet").detect(image)
    turns = DETECTORS.create("yunet", tile_turns=2)
    first, second = turns.detect(image), turns.detect(image)
    assert len(every) >= 25
    union = first + [f for f in second if not any(overlap(f, g) >= 0.5 for g in first)]
    missed = [f for f in every if not any(overlap(f, g) >= 0.5 for g in union)]
    assert not missed, [f.box.to_list() for f in missed]
    with pytest.raises(ValueError, match="tile_turns"):
        DETECTORS.create("yunet", tile_turns=0)


def test_a_single_pass_probe_costs_one_yunet_run(scenes, load, monkeypatch):
    """``pyramid=False`` runs YuNet once at the image's own size (the orientation search's probes)."""
    from condanon.detection.yunet import YuNetDetector

    calls = []
    detector = DETECTORS.create("yunet", pyramid=False, tiles=False)
    run = YuNetDetector._run
    monkeypatch.setattr(YuNetDetector, "_run", lambda self, *a: calls.append(a[0].shape) or run(self, *a))
    image = load(scenes / "regjeringen.jpg")
    faces = detector.detect(image)
    assert calls == [image.shape] and len(faces) >= 10

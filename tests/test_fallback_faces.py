"""Faces that get the fallback instead of a synthetic face: too small to check, or doubtful as faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import imread

import condanon
from condanon.pipeline import MIN_SYNTHETIC_HEIGHT


@pytest.fixture(scope="module")
def synthetic() -> condanon.Anonymizer:
    return condanon.Anonymizer(seed=0, checks=condanon.Checks(attacker=None))


def test_tiny_faces_get_the_fallback_not_a_synthetic_face(synthetic, data) -> None:
    photo = imread(data / "scenes" / "two_people.jpg")  # faces ~200 px high
    small = cv2.resize(photo, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)  # faces ~24 px high
    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[200 : 200 + small.shape[0], 240 : 240 + small.shape[1]] = small
    result = synthetic.anonymize(canvas)
    assert len(result.reports) == 2
    for report in result.reports:
        assert report.face.box.height < MIN_SYNTHETIC_HEIGHT
        assert report.verdict == "fallback" and report.method == "mask"
        assert "too small" in report.reason
        x1, y1, x2, y2 = report.face.box.to_int()
        assert np.any(result.image[y1:y2, x1:x2] != canvas[y1:y2, x1:x2])  # the face is covered
    assert not np.any(result.image[:150] != canvas[:150])  # nothing else moved


@pytest.mark.slow  # ~1.5-3 s; the tiny-face test stays quick
def test_uncertain_faces_are_obscured_but_never_synthesised(synthetic, data) -> None:
    photo = imread(data / "scenes" / "two_people.jpg")
    faces = synthetic.find_faces(photo)
    assert len(faces) == 2
    faces[1].uncertain = True
    output, reports = synthetic.anonymize_faces(photo, faces)
    assert reports[0].method == "synthetic" and reports[0].verdict == "anonymized"
    assert reports[1].method == "mask" and reports[1].verdict == "fallback"
    assert "uncertain" in reports[1].reason
    assert reports[1].to_dict()["uncertain"] is True
    x1, y1, x2, y2 = faces[1].box.to_int()
    assert np.any(output[y1:y2, x1:x2] != photo[y1:y2, x1:x2])
    assert reports[1].identity[0].matched is False

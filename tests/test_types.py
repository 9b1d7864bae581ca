"""The records: Box geometry, Attributes.merged, and JSON output made of plain types only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from condanon.types import EMOTIONS, Attributes, Box, Face, FaceReport, IdentityCheck, Result

PLAIN = (dict, list, str, int, float, bool, type(None))


def assert_plain(value: object, where: str = "$") -> None:
    """Fail if ``value`` holds anything but JSON's own Python types (numpy scalars included)."""
    assert type(value) in PLAIN, f"{where} is {type(value).__module__}.{type(value).__name__}"
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, f"{where} has a key of type {type(key).__name__}"
            assert_plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain(item, f"{where}[{index}]")


# -- Box ------------------------------------------------------------------------------------------


def test_box_size_and_centre():
    box = Box.from_xywh(10, 20, 30, 40)
    assert (box.x1, box.y1, box.x2, box.y2) == (10, 20, 40, 60)
    assert (box.width, box.height, box.area) == (30, 40, 1200)
    assert box.center == (25, 40)
    assert Box(5, 5, 2, 9).area == 0  # degenerate box


def test_box_iou():
    a = Box(0, 0, 10, 10)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(Box(10, 0, 20, 10)) == 0.0  # touching, not overlapping
    assert a.iou(Box(100, 100, 110, 110)) == 0.0
    # half overlap: intersection 50, union 150
    assert a.iou(Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert Box(5, 0, 15, 10).iou(a) == pytest.approx(a.iou(Box(5, 0, 15, 10)))
    # a box inside another: intersection = inner area
    assert a.iou(Box(0, 0, 5, 5)) == pytest.approx(25 / 100)
    assert Box(0, 0, 0, 0).iou(Box(0, 0, 0, 0)) == 0.0  # no division by zero


def test_box_scaled_about_centre():
    box = Box(10, 20, 30, 60)
    grown = box.scaled(1.5)
    assert grown.center == pytest.approx(box.center)
    assert (grown.width, grown.height) == pytest.approx((30, 60))
    assert (grown.x1, grown.y1, grown.x2, grown.y2) == pytest.approx((5, 10, 35, 70))
    shrunk = box.scaled(0.5)
    assert (shrunk.x1, shrunk.y1, shrunk.x2, shrunk.y2) == pytest.approx((15, 30, 25, 50))
    assert box.scaled(1.0) == box


def test_box_clipped_and_to_int():
    box = Box(-5.5, -2, 105, 49.2)
    clipped = box.clipped(100, 40)
    assert (clipped.x1, clipped.y1, clipped.x2, clipped.y2) == (0, 0, 100, 40)
    assert Box(10, 10, 20, 20).clipped(100, 100) == Box(10, 10, 20, 20)
    outside = Box(200, 200, 300, 300).clipped(100, 100)
    assert outside.area == 0
    assert Box(1.2, 2.7, 3.1, 4.0).to_int() == (1, 2, 4, 4)  # smallest integer box containing it
    assert Box(1.26, 2, 3, 4).to_list() == [1.3, 2.0, 3.0, 4.0]
    assert Box(1, 2, 3, 4).shifted(10, -2) == Box(11, 0, 13, 2)


# -- Attributes -----------------------------------------------------------------------------------


def test_attributes_merged_takes_only_estimated_fields():
    age_sex = Attributes(age=31.0, age_std=4.0, sex="female", sex_confidence=0.9)
    emotion = Attributes(emotion="happy", emotion_probabilities={"happy": 0.8, "sad": 0.2})
    merged = age_sex.merged(emotion)
    assert (merged.age, merged.age_std, merged.sex, merged.sex_confidence) == (31.0, 4.0, "female", 0.9)
    assert merged.emotion == "happy"
    assert merged.emotion_confidence == pytest.approx(0.8)
    assert merged.emotion_probabilities == {"happy": 0.8, "sad": 0.2}
    # the other way round gives the same union
    assert emotion.merged(age_sex) == merged
    # a field both estimate: the other's value wins
    newer = merged.merged(Attributes(age=40.0, age_std=2.0))
    assert (newer.age, newer.age_std, newer.sex, newer.emotion) == (40.0, 2.0, "female", "happy")
    # merging copies the probabilities (no shared dict)
    merged.emotion_probabilities["happy"] = 0.0
    assert emotion.emotion_probabilities["happy"] == 0.8
    assert Attributes().emotion_confidence is None


# -- JSON -----------------------------------------------------------------------------------------


def _numpy_report() -> Result:
    """A result built from numpy scalars and arrays, the way the stages produce them."""
    attributes = Attributes(
        age=np.float32(33.37),
        age_std=np.float64(5.0),
        sex="female",
        sex_confidence=np.float32(0.93),
        emotion="happy",
        emotion_probabilities={name: np.float32(1 / len(EMOTIONS)) for name in EMOTIONS},
    )
    face = Face(
        box=Box(np.float32(1.5), np.float32(2.5), np.float32(40.0), np.float32(50.0)),
        score=np.float32(0.98),
        landmarks5=np.ones((5, 2), np.float32),
        landmarks68=np.ones((68, 2), np.float32),
        detector="yunet",
        attributes=attributes,
    )
    check = IdentityCheck("sface", "cosine", np.float32(0.12), 0.363, bool(np.float32(0.12) >= 0.363))
    report = FaceReport(
        index=0,
        face=face,
        method="pixelate",
        verdict="anonymized",
        attributes_before=attributes,
        attributes_after=attributes,
        identity=[check],
        timings_ms={"anonymize": 1.234},
    )
    return Result(image=np.zeros((60, 80, 3), np.uint8), faces=[face], reports=[report], timings_ms={"total": 9.87})


def test_result_to_json_has_plain_types_only_with_numpy_inputs():
    result = _numpy_report()
    loaded = json.loads(result.to_json())
    assert_plain(loaded)
    assert_plain(result.to_dict())
    assert (loaded["width"], loaded["height"]) == (80, 60)
    face = loaded["faces"][0]
    assert face["box"] == [1.5, 2.5, 40.0, 50.0]
    assert face["attributes_before"]["age"] == pytest.approx(33.4)
    assert face["identity"][0] == {"embedder": "sface", "metric": "cosine", "value": pytest.approx(0.12),
                                   "threshold": 0.363, "matched": False}
    assert_plain(result.faces[0].to_dict(landmarks=True))
    assert len(result.faces[0].to_dict(landmarks=True)["landmarks68"]) == 68


def test_real_result_to_json_round_trip(anonymizer, scenes):
    result = anonymizer.anonymize(scenes / "astronaut.jpg")
    text = result.to_json()
    loaded = json.loads(text)
    assert_plain(loaded)
    assert loaded == json.loads(json.dumps(result.to_dict()))
    assert loaded["source"] == str(scenes / "astronaut.jpg")
    assert (loaded["height"], loaded["width"]) == result.image.shape[:2]
    assert len(loaded["faces"]) == 1
    assert loaded["faces"][0]["attributes_before"]["sex"] in ("female", "male")
    assert "total" in loaded["timings_ms"]


def test_face_report_to_dict_keys(anonymizer, scenes):
    result = anonymizer.anonymize(scenes / "astronaut.jpg")
    report = result.reports[0].to_dict()
    assert set(report) == {
        "index", "box", "score", "detector", "track_id", "angle", "uncertain", "doubt", "faceness", "method", "verdict", "reason",
        "failure", "attributes_before", "attributes_after", "identity", "attempts", "synthesis", "timings_ms",
    }
    assert set(report["attributes_before"]) == {
        "age", "age_std", "sex", "sex_confidence", "emotion", "emotion_confidence", "emotion_probabilities",
    }
    assert set(report["attributes_before"]["emotion_probabilities"]) == set(EMOTIONS)
    assert [c["embedder"] for c in report["identity"]] == ["sface", "dlib"]
    assert all(set(c) == {"embedder", "metric", "value", "threshold", "matched"} for c in report["identity"])
    assert report["box"] == result.reports[0].face.box.to_list()

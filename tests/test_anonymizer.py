"""The SDK entry point on real scenes: reports, untouched input, exact regions, channels, fail-closed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import condanon
from condanon.types import EMOTIONS

MASK_SCALE = 1.3  # the Anonymizer's default region: ellipse inscribed in the face box scaled by 1.3


def allowed_region(result: condanon.Result, scale: float = MASK_SCALE, pad: float = 1.0) -> np.ndarray:
    """The union of every face's box scaled by ``scale``, grown by ``pad`` px: the only pixels that may change."""
    height, width = result.image.shape[:2]
    allowed = np.zeros((height, width), bool)
    for face in result.faces:
        grown = face.box.scaled(scale)
        x1, y1 = max(0, int(np.floor(grown.x1 - pad))), max(0, int(np.floor(grown.y1 - pad)))
        x2, y2 = min(width, int(np.ceil(grown.x2 + pad))), min(height, int(np.ceil(grown.y2 + pad)))
        allowed[y1:y2, x1:x2] = True
    return allowed


@pytest.fixture(scope="module")
def t1(scenes, load):
    return load(scenes / "t1.jpg")


@pytest.fixture(scope="module")
def t1_result(anonymizer, t1):
    """The anonymised t1.jpg, and a copy of the input taken before the call."""
    before = t1.copy()
    result = anonymizer.anonymize(t1)
    return result, before


def test_every_face_gets_a_full_report(t1_result):
    result, _ = t1_result
    assert len(result.faces) == 6 and len(result.reports) == 6
    assert result.channels == "bgr"
    assert [r.index for r in result.reports] == list(range(6))
    for report in result.reports:
        assert report.face is result.faces[report.index]
        assert report.verdict in ("anonymized", "fallback")
        assert report.method == ("pixelate" if report.verdict == "anonymized" else "mask")
        assert (report.reason is None) == (report.verdict == "anonymized")
        before = report.attributes_before
        assert before is not None
        assert before.age is not None and 0 < before.age < 100
        assert before.sex in ("female", "male")
        assert before.emotion in EMOTIONS
        assert report.attributes_after is not None and report.attributes_after.age is not None
        assert [c.embedder for c in report.identity] == ["sface", "dlib"]
        for check in report.identity:
            assert check.value is not None and check.matched is not None
        assert report.timings_ms["anonymize"] > 0
    for stage in ("detect", "landmarks", "attributes", "verify", "total"):
        assert result.timings_ms[stage] > 0, stage
    # the stages and each face's anonymisation are disjoint intervals inside the total
    parts = sum(ms for stage, ms in result.timings_ms.items() if stage != "total")
    parts += sum(report.timings_ms["anonymize"] for report in result.reports)
    assert result.timings_ms["total"] >= parts - 1e-6, result.timings_ms


@pytest.fixture(scope="module")
def plain(shared):
    """Pixelate as a user gets it: nothing asked beyond the method."""
    return condanon.Anonymizer("pixelate")


def test_an_obscuring_method_pays_only_for_what_is_asked(plain, t1, t1_result):
    """Pixelate with its defaults reads no attribute, runs no held-out attacker and fits no 68 landmarks; its
    faces and pixels are those of the anonymizer that reads everything (attributes change nothing drawn)."""
    full, _ = t1_result
    result = plain.anonymize(t1)
    assert not plain.reads_attributes and plain.attacker is None
    assert [f.box.to_list() for f in result.faces] == [f.box.to_list() for f in full.faces]
    assert np.array_equal(result.image, full.image)
    for report in result.reports:
        assert report.attributes_before is None and report.attributes_after is None
        assert [c.embedder for c in report.identity] == ["sface"] and report.identity[0].matched is False
        assert report.face.landmarks68 is None and report.face.landmarks5 is not None
    assert "attributes" not in result.timings_ms and result.timings_ms["verify"] > 0
    # asked for the faces alone, it gives every landmark
    assert all(face.landmarks68 is not None for face in plain.find_faces(t1))


def test_a_synthesis_method_reads_attributes_without_being_asked(shared):
    assert condanon.Anonymizer("synthetic").reads_attributes
    assert not condanon.Anonymizer("synthetic", checks=condanon.Checks(attributes=())).reads_attributes


def test_input_array_is_not_modified(t1_result, t1):
    result, before = t1_result
    assert np.array_equal(t1, before)
    assert result.image is not t1 and not np.shares_memory(result.image, t1)


def test_output_changes_every_face_and_nothing_else(t1_result):
    result, before = t1_result
    out = result.image
    assert out.shape == before.shape and out.dtype == np.uint8
    for face in result.faces:
        x1, y1, x2, y2 = face.box.scaled(0.6).to_int()  # the middle of the face
        diff = np.abs(out[y1:y2, x1:x2].astype(np.int16) - before[y1:y2, x1:x2]).mean()
        assert diff > 10, (face.box.to_list(), diff)
    outside = ~allowed_region(result)
    assert outside.mean() > 0.5
    assert np.array_equal(out[outside], before[outside])


def test_anonymized_faces_are_not_recognised_by_sface(t1_result):
    result, _ = t1_result
    anonymized = [r for r in result.reports if r.verdict == "anonymized"]
    assert anonymized, "no face was anonymised by the method itself"
    for report in anonymized:
        check = report.identity[0]
        assert check.embedder == "sface" and check.metric == "cosine" and check.threshold == 0.363
        assert check.value < 0.363 and check.matched is False


def test_seed_reproducibility(t1_result, t1):
    result, _ = t1_result
    again = condanon.Anonymizer(method="pixelate", seed=0).anonymize(t1)
    assert np.array_equal(again.image, result.image)
    assert [r.to_dict()["box"] for r in again.reports] == [r.to_dict()["box"] for r in result.reports]
    assert [r.verdict for r in again.reports] == [r.verdict for r in result.reports]


def test_image_without_a_face(anonymizer, scenes, load):
    image = load(scenes / "astronaut.jpg")
    faces = anonymizer.detector.detect(image)
    crop = np.ascontiguousarray(image[int(faces[0].box.y2 * 1.25) :])  # below her chin: suit and flag only
    before = crop.copy()
    result = anonymizer.anonymize(crop)
    assert result.reports == [] and result.faces == []
    assert np.array_equal(result.image, before) and np.array_equal(crop, before)
    assert "verify" not in result.timings_ms
    grey = np.full((300, 400, 3), 127, np.uint8)
    assert np.array_equal(anonymizer.anonymize(grey).image, grey)


@pytest.fixture(scope="module")
def two_people(scenes, load):
    return load(scenes / "two_people.jpg")


@pytest.fixture(scope="module")
def two_people_result(anonymizer, two_people):
    return anonymizer.anonymize(two_people)


def test_rgb_input_gives_rgb_output(anonymizer, two_people, two_people_result):
    rgb = np.ascontiguousarray(two_people[:, :, ::-1])
    rgb_before = rgb.copy()
    result = anonymizer.anonymize(rgb, channels="rgb")
    assert result.channels == "rgb"
    assert np.array_equal(rgb, rgb_before)
    assert [f.box.to_list() for f in result.faces] == [f.box.to_list() for f in two_people_result.faces]
    assert np.array_equal(result.image, two_people_result.image[:, :, ::-1])
    assert np.array_equal(result.bgr, two_people_result.image)
    assert np.array_equal(result.rgb, result.image)


@pytest.mark.slow  # ~1-2 s; test_rgb_input_gives_rgb_output stays quick
def test_rgb_array_read_as_bgr_differs(anonymizer, two_people, two_people_result):
    """The channels argument matters: the same array read as BGR is a different (blue-faced) image."""
    rgb = np.ascontiguousarray(two_people[:, :, ::-1])
    wrong = anonymizer.analyze(rgb)  # channels="bgr" by default
    right = anonymizer.analyze(rgb, channels="rgb")
    assert [f.box.to_list() for f in right] == [f.box.to_list() for f in two_people_result.faces]
    assert [f.attributes.emotion_probabilities for f in wrong] != [f.attributes.emotion_probabilities for f in right]


def test_pil_input(anonymizer, scenes, two_people_result):
    with Image.open(scenes / "two_people.jpg") as image:
        image.load()
        result = anonymizer.anonymize(image)
    assert result.channels == "rgb"
    assert len(result.reports) == 2
    assert np.array_equal(result.image, two_people_result.image[:, :, ::-1])
    assert isinstance(result.to_pil(), Image.Image)
    assert np.array_equal(np.asarray(result.to_pil()), result.image)


def test_path_input(anonymizer, scenes, two_people_result):
    result = anonymizer.anonymize(scenes / "two_people.jpg")
    assert result.channels == "bgr" and result.source == str(scenes / "two_people.jpg")
    assert np.array_equal(result.image, two_people_result.image)


def test_fail_closed_when_the_method_breaks(anonymizer, two_people, monkeypatch):
    def broken(image, box):
        raise RuntimeError("mosaic exploded")

    monkeypatch.setattr(anonymizer.obscurer, "apply", broken)
    result = anonymizer.anonymize(two_people)
    assert len(result.reports) == 2
    for report in result.reports:
        assert report.verdict == "fallback"
        assert report.method == "mask"
        assert "mosaic exploded" in report.reason and "pixelate" in report.reason
        x1, y1, x2, y2 = report.face.box.scaled(0.8).to_int()
        assert np.all(result.image[y1:y2, x1:x2] == 0), "the face is not masked black"
    outside = ~allowed_region(result)
    assert np.array_equal(result.image[outside], two_people[outside])


def test_face_still_recognised_falls_back(two_people):
    """A blur far too weak to hide anyone: sface still knows the faces, so they fall back to the mask,
    and the reports then describe the final (masked) pixels."""
    weak = condanon.Anonymizer(method=condanon.BlurOptions(strength=0.05))
    result = weak.anonymize(two_people)
    assert len(result.reports) == 2
    recognised = [r for r in result.reports if r.reason and "still recognised" in r.reason]
    assert recognised, "sface recognised nobody after a 5 % blur: the test proves nothing"
    for report in recognised:
        assert report.verdict == "fallback" and report.method == "mask"
        assert "sface" in report.reason
        x1, y1, x2, y2 = report.face.box.scaled(0.8).to_int()
        assert np.all(result.image[y1:y2, x1:x2] == 0)
        final = report.identity[0]
        assert final.embedder == "sface" and final.matched is False, "the report must describe the masked face"
    for report in result.reports:
        if report not in recognised:
            assert report.verdict == "anonymized" and report.identity[0].matched is False


def test_module_analyze(scenes, load):
    image = load(scenes / "two_people.jpg")
    before = image.copy()
    faces = condanon.analyze(image)
    assert np.array_equal(image, before)
    assert len(faces) == 2
    for face in faces:
        assert face.attributes.sex in ("female", "male")
        assert face.attributes.age is not None
        assert face.attributes.emotion in EMOTIONS
        assert face.landmarks68 is not None and face.landmarks68.shape == (68, 2)


def test_module_anonymize_shares_one_anonymizer(scenes):
    first = condanon.anonymize(scenes / "astronaut.jpg", method="mask")
    assert [r.method for r in first.reports] == ["mask"]
    from condanon import pipeline

    count = len(pipeline._default)
    condanon.anonymize(scenes / "astronaut.jpg", method="mask")
    assert len(pipeline._default) == count


def test_batch_keeps_going_past_a_bad_input(anonymizer, scenes, load, tmp_path):
    missing = tmp_path / "missing.jpg"
    items = list(anonymizer.anonymize_batch([scenes / "astronaut.jpg", missing, load(scenes / "two_people.jpg")]))
    assert [item.index for item in items] == [0, 1, 2]
    assert items[0].error is None and len(items[0].result.reports) == 1
    assert items[0].source == str(scenes / "astronaut.jpg")
    assert items[1].result is None and "no such file" in items[1].error and str(missing) in items[1].error
    assert items[2].error is None and len(items[2].result.reports) == 2 and items[2].source is None


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 3), np.uint8), np.zeros((10, 10, 5), np.uint8), "not-a-file.jpg", 42],
    ids=["tiny", "five-channels", "missing", "int"],
)
def test_bad_inputs_raise_image_error(anonymizer, bad):
    with pytest.raises(condanon.ImageError):
        anonymizer.anonymize(bad)

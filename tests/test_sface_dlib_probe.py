"""The sface-dlib-probe and age-sex-stacked backends: stored arithmetic, vector caching, anonymised pixels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import condanon
from condanon.attributes import ATTRIBUTE_ESTIMATORS
from condanon.attributes.base import male_probability
from condanon.detection import DETECTORS
from condanon.identity import EMBEDDERS
from condanon.weights import model_path


@pytest.fixture(scope="module")
def two_faces(scenes, load):
    image = load(scenes / "two_people.jpg")
    faces = DETECTORS.create("yunet").detect(image)
    assert len(faces) == 2
    return image, faces


def test_weights_are_plain_arrays():
    with np.load(model_path("sface-dlib-probe-v1"), allow_pickle=False) as data:
        assert data["mean"].shape == (256,)
        assert data["sex_w1"].shape == (256, 128)
        assert data["age_coef"].shape == (11, 256)
        assert data["stack_sex_coef"].shape == (2,) and data["stack_age_coef"].shape == (2,)


def test_probe_caches_both_vectors_on_the_face(two_faces):
    image, faces = two_faces
    fresh = [replace(f, embeddings={}) for f in faces]
    ATTRIBUTE_ESTIMATORS.create("sface-dlib-probe").estimate(image, fresh)
    for name in ("sface", "dlib"):
        expected = EMBEDDERS.create(name).embed(image, faces)
        for face, vector in zip(fresh, expected):
            np.testing.assert_allclose(face.embeddings[name], vector, atol=1e-6)


def test_stacked_is_the_stored_stack_of_its_members(two_faces):
    image, faces = two_faces
    with np.load(model_path("sface-dlib-probe-v1"), allow_pickle=False) as data:
        sex_w, sex_b = data["stack_sex_coef"].astype(float), float(data["stack_sex_intercept"])
        age_w, age_b = data["stack_age_coef"].astype(float), float(data["stack_age_intercept"])
    stacked = ATTRIBUTE_ESTIMATORS.create("age-sex-stacked").estimate(image, [replace(f, embeddings={}) for f in faces])
    first = ATTRIBUTE_ESTIMATORS.create("age-gender").estimate(image, faces)
    second = ATTRIBUTE_ESTIMATORS.create("sface-dlib-probe").estimate(image, [replace(f, embeddings={}) for f in faces])
    for s, a, b in zip(stacked, first, second):
        p = np.clip([male_probability(a), male_probability(b)], 1e-4, 1 - 1e-4)
        expected = 1 / (1 + np.exp(-(np.log(p / (1 - p)) @ sex_w + sex_b)))
        assert male_probability(s) == pytest.approx(expected, abs=1e-6)
        assert s.age == pytest.approx(max(0.0, age_w @ [a.age, b.age] + age_b), abs=1e-6)
        assert s.age_std > 0


def test_estimates_after_anonymising_read_the_output(scenes, load):
    """Before: vectors of the original (cached, shared with the identity check); after: of the output."""

    result = condanon.Anonymizer(method="mask", checks=condanon.Checks(attributes=("age-sex-stacked",))).anonymize(
        load(scenes / "two_people.jpg")
    )
    assert len(result.reports) == 2
    for report in result.reports:
        assert {"sface", "dlib"} <= set(report.face.embeddings)
        before, after = report.attributes_before, report.attributes_after
        assert before is not None and after is not None
        assert abs(before.age - after.age) > 0.5 or before.sex_confidence != pytest.approx(after.sex_confidence)

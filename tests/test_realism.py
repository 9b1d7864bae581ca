"""Realism and held-out reader measures (`condanon.evaluation.realism`) on real shared photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import condanon
from condanon import Anonymizer
from condanon.evaluation.realism import (
    DARK_SKIN_L,
    HeldOutReaders,
    grey_crop,
    measure,
    mirrored_in_place,
    skin_mask,
    two_sample_accuracy,
    yaw_of,
)


@pytest.fixture(scope="module")
def faces(scenes, load):
    """The astronaut photo and its one face, with 68 landmarks."""
    image = load(scenes / "astronaut.jpg")
    (face,) = Anonymizer(method="mask", checks=condanon.Checks(attacker=None, verify=False)).find_faces(image)
    return image, face


def test_unchanged_face_measures_as_itself(faces):
    image, face = faces
    figures = measure(image, image.copy(), face)
    assert figures["texture_ratio"] == pytest.approx(1.0) and figures["skin_de"] == 0.0 and figures["skin_dl"] == 0.0
    assert figures["face_px"] == pytest.approx(face.box.height) and abs(figures["yaw"]) < 0.2


def test_blur_loses_texture_and_a_mask_loses_the_skin(faces):
    image, face = faces
    blurred = image.copy()
    Anonymizer(method="blur", checks=condanon.Checks(attacker=None)).obscurer.apply(blurred, face.box)
    masked = image.copy()
    Anonymizer(method="mask", checks=condanon.Checks(attacker=None)).obscurer.apply(masked, face.box)
    blur, mask = measure(image, blurred, face), measure(image, masked, face)
    assert blur["texture_ratio"] < 0.2 and blur["skin_de"] < 20  # hair and background smear into the skin a little
    assert mask["texture_ratio"] < 0.01 and mask["skin_de"] > 40 and mask["skin_dl"] < -40  # black: far darker


def test_lightening_the_skin_shows_as_a_positive_l_shift(faces):
    image, face = faces
    lighter = image.copy()
    region = skin_mask(image.shape, face.landmarks68) > 0
    lab = cv2.cvtColor(lighter, cv2.COLOR_BGR2LAB)
    lab[..., 0][region] = np.clip(lab[..., 0][region].astype(int) + 20, 0, 255).astype(np.uint8)  # +20/255*100 L*
    lighter = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    figures = measure(image, lighter, face)
    assert 5 < figures["skin_dl"] < 10 and figures["skin_de"] >= figures["skin_dl"]
    assert measure(image, image, face)["skin_l_before"] > DARK_SKIN_L  # the astronaut's skin is light


def test_skin_mask_leaves_out_eyes_and_mouth(faces):
    image, face = faces
    mask = skin_mask(image.shape, face.landmarks68)
    for index in (37, 44, 62):  # an upper eyelid of each eye, the inner lip
        x, y = np.round(face.landmarks68[index]).astype(int)
        assert mask[y, x] == 0
    x, y = np.round((face.landmarks68[3] + face.landmarks68[31]) / 2).astype(int)  # a cheek
    assert mask[y, x] == 1


def test_mirrored_in_place_flips_only_the_face_and_keeps_landmark_order(faces):
    image, face = faces
    mirrored, flipped = mirrored_in_place(image, face)
    changed = np.argwhere(np.any(mirrored != image, axis=2))
    box = face.box.scaled(1.4)
    assert changed[:, 1].min() >= box.x1 - 1 and changed[:, 1].max() <= box.x2 + 1
    assert flipped.landmarks5[0, 0] < flipped.landmarks5[1, 0]  # the subject's right eye still first (image left)
    assert abs(yaw_of(flipped) + yaw_of(face)) < 0.05


def test_held_out_readers_read_the_original_and_its_mirror_alike(faces):
    image, face = faces
    readers = HeldOutReaders()
    before, mirror = readers.read(image, face), readers.read(*mirrored_in_place(image, face))
    assert before.sex == mirror.sex == "female" and abs(before.age - mirror.age) < 10
    assert before.emotion is not None and mirror.emotion is not None


@pytest.mark.slow  # ~9 s: fits the two-sample classifier
@pytest.mark.training
def test_two_sample_test_tells_apart_blur_not_copies(data, load):
    anonymizer = Anonymizer(method="blur", checks=condanon.Checks(attacker=None, verify=False))
    before, after_copy, after_blur, groups = [], [], [], []
    for index, path in enumerate(sorted((data / "attributes" / "utkface").glob("*.jpg"))[:60:2]):
        image = load(path)
        found = anonymizer.find_faces(image)
        if not found:
            continue
        blurred = image.copy()
        anonymizer.obscurer.apply(blurred, found[0].box)
        before.append(grey_crop(image, found[0]))
        after_copy.append(grey_crop(image, found[0]))
        after_blur.append(grey_crop(blurred, found[0]))
        groups.append(index)
    assert len(before) >= 24
    assert two_sample_accuracy(before, after_blur, groups) > 0.9
    assert two_sample_accuracy(before, after_copy, groups) <= 0.6
    assert two_sample_accuracy(before[:8], after_blur[:8], groups[:8]) is None  # too few to split

"""Blur, pixelate and mask: they change the face region, and not one pixel outside it."""

from __future__ import annotations

import numpy as np
import pytest

import condanon
from condanon.conventional import OBSCURERS, Blur, Pixelate, SolidMask
from condanon.types import Box

METHODS = ["blur", "pixelate", "mask"]
SHAPES = ["box", "ellipse"]
SCALE = 1.3


@pytest.fixture(scope="module")
def photo(anonymizer, scenes, load):
    """The astronaut photo and her face box."""
    image = load(scenes / "astronaut.jpg")
    faces = anonymizer.detector.detect(image)
    assert len(faces) == 1
    return image, faces[0].box


def allowed_area(box: Box, shape: str, scale: float, image_shape, tolerance: float = 1.0) -> np.ndarray:
    """Pixels the method may change: the scaled box (or its inscribed ellipse), plus ``tolerance`` px."""
    height, width = image_shape[:2]
    grown = box.scaled(scale)
    ys, xs = np.mgrid[0:height, 0:width]
    px, py = xs + 0.5, ys + 0.5  # pixel centres
    if shape == "box":
        return (
            (px >= grown.x1 - tolerance) & (px <= grown.x2 + tolerance)
            & (py >= grown.y1 - tolerance) & (py <= grown.y2 + tolerance)
        )
    cx, cy = grown.center
    # OpenCV rounds the ellipse's centre and axes to whole pixels and draws a polygon: 1 px more slack
    slack = tolerance + 1.0 if tolerance > 0 else tolerance
    a, b = grown.width / 2 + slack, grown.height / 2 + slack
    return ((px - cx) / a) ** 2 + ((py - cy) / b) ** 2 <= 1.0


def core_area(box: Box, shape: str, scale: float, image_shape) -> np.ndarray:
    """Pixels the method must cover: the region shrunk by 2 px."""
    grown = box.scaled(scale)
    shrink = Box(grown.x1 + 2, grown.y1 + 2, grown.x2 - 2, grown.y2 - 2)
    return allowed_area(shrink, shape, 1.0, image_shape, tolerance=-0.5)


def changed_pixels(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.any(before != after, axis=2)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", METHODS)
def test_changes_only_inside_the_region(photo, method, shape):
    image, box = photo
    out = image.copy()
    obscurer = OBSCURERS.create(method, shape=shape, scale=SCALE)
    assert obscurer.name == method
    obscurer.apply(out, box)
    changed = changed_pixels(image, out)
    allowed = allowed_area(box, shape, SCALE, image.shape)
    assert not np.any(changed & ~allowed), f"{np.count_nonzero(changed & ~allowed)} pixels changed outside"
    # outside the region, the bytes are exactly the input's
    assert np.array_equal(out[~allowed], image[~allowed])
    core = core_area(box, shape, SCALE, image.shape)
    diff = np.abs(out.astype(np.int16) - image.astype(np.int16))
    assert diff[core].mean() > 10, diff[core].mean()
    # the face itself (the unscaled box centre) is hidden
    x1, y1, x2, y2 = box.scaled(0.6).to_int()
    assert diff[y1:y2, x1:x2].mean() > 10


@pytest.mark.parametrize("method", METHODS)
def test_ellipse_changes_fewer_pixels_than_box(photo, method):
    image, box = photo
    counts = {}
    for shape in SHAPES:
        out = image.copy()
        OBSCURERS.create(method, shape=shape, scale=SCALE).apply(out, box)
        counts[shape] = int(np.count_nonzero(changed_pixels(image, out)))
    assert 0 < counts["ellipse"] < counts["box"]
    # an ellipse inscribed in the box covers about pi/4 of it
    assert counts["ellipse"] < 0.9 * counts["box"]


def test_mask_is_solid_colour(photo):
    image, box = photo
    out = image.copy()
    SolidMask(color=(10, 200, 30), shape="box", scale=1.0).apply(out, box)
    x1, y1, x2, y2 = box.to_int()
    assert np.all(out[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] == (10, 200, 30))


def test_pixelate_makes_blocks(photo):
    image, box = photo
    out = image.copy()
    Pixelate(blocks=8, shape="box", scale=1.0).apply(out, box)
    x1, y1, x2, y2 = box.to_int()
    patch = out[y1:y2, x1:x2].reshape(-1, 3)
    colours = np.unique(patch, axis=0)
    assert 16 <= len(colours) <= 8 * 8 * 2  # about one colour per cell, not the photo's thousands
    assert len(np.unique(image[y1:y2, x1:x2].reshape(-1, 3), axis=0)) > 1000


def test_stronger_blur_hides_more(photo):
    image, box = photo
    diffs = []
    for strength in (0.05, 0.5):
        out = image.copy()
        Blur(strength=strength, shape="box").apply(out, box)
        x1, y1, x2, y2 = box.to_int()
        diffs.append(np.abs(out[y1:y2, x1:x2].astype(int) - image[y1:y2, x1:x2]).mean())
    assert diffs[0] < diffs[1]


@pytest.mark.parametrize("method", METHODS)
def test_box_crossing_the_border_is_clipped(photo, method):
    image, _ = photo
    height, width = image.shape[:2]
    box = Box(width - 60, -40, width + 80, 90)
    out = image.copy()
    OBSCURERS.create(method, shape="box", scale=1.0).apply(out, box)
    changed = changed_pixels(image, out)
    assert changed.any()
    assert not changed[:, : width - 61].any() and not changed[91:].any()
    # a box wholly outside the image changes nothing
    out = image.copy()
    OBSCURERS.create(method).apply(out, Box(width + 10, height + 10, width + 50, height + 50))
    assert np.array_equal(out, image)


@pytest.mark.parametrize(
    ("factory", "options", "match"),
    [
        (Blur, {"strength": 0}, "strength"),
        (Blur, {"strength": 2.5}, "strength"),
        (Pixelate, {"blocks": 1}, "blocks"),
        (Pixelate, {"blocks": 65}, "blocks"),
        (SolidMask, {"shape": "star"}, "shape"),
        (Blur, {"shape": "star"}, "shape"),
        (Pixelate, {"scale": 0.1}, "scale"),
    ],
)
def test_invalid_options(factory, options, match):
    with pytest.raises(ValueError, match=match):
        factory(**options)


def test_invalid_options_through_the_registry_and_the_anonymizer():

    with pytest.raises(ValueError, match="strength"):
        OBSCURERS.create("blur", strength=0)
    with pytest.raises(condanon.ConfigError, match="shape"):
        condanon.Anonymizer(method=condanon.MaskOptions(shape="star"))
    with pytest.raises(condanon.ConfigError, match="blocks"):
        condanon.Anonymizer(method=condanon.PixelateOptions(blocks=1))

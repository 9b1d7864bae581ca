"""DeepPrivacy2's face crop conventions (docs/dp2.md), from any detector's boxes.

A detection box is expanded to a square crop around the face (the "simple" rule for FDF256, the FDF
dataset rule for FDF128), cut out with black where it leaves the image, resized to the generator's
size, and masked: the generator fills the box, the rest of the crop is its known context. DP2 works
on RGB; these functions do not swap channels. tests/test_dp2_crops.py checks them against the reference
implementation's own crops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

BoxXYXY = tuple[int, int, int, int]

SIMPLE_FACTOR = 1.4
"""FDF256: the crop's side is this times the box's longer side."""
FDF_GROW = 0.35
"""FDF128: the square box grows by this fraction of its side on every side."""
FALLBACK_FACTOR = 1.7
"""FDF128: the simple rule's factor when the FDF rule fails its consistency checks."""


def expand_box(box: Sequence[float], image_hw: tuple[int, int], fdf128_expand: bool) -> BoxXYXY:
    """Return DP2's expanded crop box ``(x0, y0, x1, y1)`` for a detection box (it may leave the image).

    The reference's boxes are integers (DSFD's, rounded); float boxes are accepted as they are.
    """
    if not fdf128_expand:
        return _simple(box, SIMPLE_FACTOR)
    expanded = _fdf_rule([int(v) for v in box], image_hw)
    return expanded if expanded is not None else _simple(box, FALLBACK_FACTOR)


def _simple(box: Sequence[float], factor: float) -> BoxXYXY:
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = x1 - x0, y1 - y0
    cx = int(x0) + math.floor(width / 2)
    cy = int(y0) + math.floor(height / 2)
    half = math.floor(max(width, height) * factor / 2)
    return int(cx - half), int(cy - half), int(cx + half), int(cy + half)


def _fdf_rule(box: list[int], image_hw: tuple[int, int]) -> BoxXYXY | None:
    """The FDF dataset's square expansion; ``None`` when its consistency checks fail."""
    height, width = image_hw
    x0, y0, x1, y1 = box
    if max(x1 - x0, y1 - y0) > min(height, width):
        return None
    start = [x0, y0]
    side = [x1 - x0, y1 - y0]
    extent = [width, height]
    short, long = (0, 1) if side[0] < side[1] else (1, 0)
    difference = side[long] - side[short]
    if side[long] <= extent[short]:  # grow the shorter side to the longer one
        start[short] = max(0, start[short] - difference // 2)
        side[short] = side[long]
    else:  # it cannot: take that axis whole and shrink the other instead
        start[short], side[short] = 0, extent[short]
        cut = side[long] - side[short]
        start[long] += cut // 2
        side[long] = side[short]
    for axis in (0, 1):
        start[axis] = min(start[axis], extent[axis] - side[axis])
    grow = min(int(side[0] * FDF_GROW), (height - side[0]) // 2, (width - side[0]) // 2)
    if grow > 0:
        for axis in (0, 1):
            start[axis] = max(0, start[axis] - grow)
            side[axis] += 2 * grow
            start[axis] = min(start[axis], extent[axis] - side[axis])
    result = (start[0], start[1], start[0] + side[0], start[1] + side[1])
    square = side[0] == side[1]
    inside = result[0] >= 0 and result[1] >= 0 and result[2] <= width and result[3] <= height
    contains = result[0] <= x0 and result[1] <= y0 and result[2] >= x1 and result[3] >= y1
    return result if square and inside and contains else None


def crop(image: np.ndarray, expanded: BoxXYXY, size: int) -> np.ndarray:
    """Return the ``size`` x ``size`` uint8 crop of ``image`` (H x W x 3) at ``expanded``, black outside the image.

    As the reference: a crop whose in-image part has fewer pixels than ``size``² is enlarged with
    antialiased bicubic (PyTorch), a larger one shrunk with OpenCV's area filter.
    """
    x0, y0, x1, y1 = expanded
    height, width = image.shape[:2]
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop box {expanded}")
    out = np.zeros((y1 - y0, x1 - x0, image.shape[2]), np.uint8)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = image[iy0:iy1, ix0:ix1]
    inner = (max(iy1 - iy0, 0), max(ix1 - ix0, 0))  # the reference decides on the in-image part's size
    if out.shape[:2] == (size, size):
        return out
    if inner[0] * inner[1] < size * size:
        return _bicubic(out, size)
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)


def _bicubic(image: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    resized = F.interpolate(tensor, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def generation_mask(box: Sequence[float], expanded: BoxXYXY, size: int) -> np.ndarray:
    """Return the ``size`` x ``size`` float32 mask: 1 where the pixel is known, 0 on the box to generate."""
    x0, y0 = expanded[0], expanded[1]
    scale = size / (expanded[2] - expanded[0])
    bx0, by0, bx1, by1 = (int((float(v) - o) * scale) for v, o in zip(box, (x0, y0, x0, y0)))
    mask = np.ones((size, size), np.float32)
    mask[max(by0, 0) : max(by1, 0), max(bx0, 0) : max(bx1, 0)] = 0.0
    return mask


def latent_from_seed(z_idx: int, z_channels: int = 512) -> np.ndarray:
    """Return DP2's latent for a face's seed: ``RandomState(z_idx).normal(size=(1, z_channels))`` as float32."""
    return np.random.RandomState(z_idx).normal(size=(1, z_channels)).astype(np.float32)


def to_generator_input(pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``condition`` ``[1, 3, S, S]`` (the crop in [-1, 1] times the mask) and ``mask`` ``[1, 1, S, S]``."""
    image = (np.transpose(pixels, (2, 0, 1)).astype(np.float32) - 127.5) / 127.5
    known = mask.astype(np.float32)[None]
    return (image * known)[None], known[None]

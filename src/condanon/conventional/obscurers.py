"""Conventional anonymisation (blur, pixelate, solid mask) over a box or ellipse region.

These are methods in their own right and the fail-closed fallbacks of the synthetic method. Each
`Obscurer` changes pixels only inside `region_mask`, so everything outside the face region stays
exactly as it was. A box partly outside the image is drawn where it is inside (an ellipse keeps the
shape of the whole box, cut at the edge); one wholly outside changes nothing.
"""

from __future__ import annotations

from typing import Literal, Protocol

import cv2
import numpy as np

from ..registry import Registry
from ..types import Box

Shape = Literal["box", "ellipse"]


class Obscurer(Protocol):
    """Replaces a face region of an image with something that hides it."""

    name: str

    def apply(self, image: np.ndarray, box: Box) -> None:
        """Obscure the region of ``box`` in ``image`` (BGR, modified in place)."""
        ...


OBSCURERS: Registry[Obscurer] = Registry("conventional method")


def region(box: Box, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Return the integer ``(x1, y1, x2, y2)`` of ``box`` grown by ``scale`` and clipped to the image."""
    x1, y1, x2, y2 = box.scaled(scale).clipped(width, height).to_int()
    return x1, y1, max(x1, x2), max(y1, y2)


def region_mask(
    box: Box, scale: float, shape: Shape, width: int, height: int
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Return the clipped region and a boolean mask of the pixels to change inside it (empty when the region is outside
    the image).
    """
    x1, y1, x2, y2 = region(box, scale, width, height)
    mask = np.zeros((y2 - y1, x2 - x1), dtype=np.uint8)
    if mask.size == 0:  # nothing of the region is in the image (cv2.ellipse refuses an empty canvas)
        return (x1, y1, x2, y2), mask.astype(bool)
    if shape == "box":
        mask[:] = 1
    else:
        grown = box.scaled(scale)
        cx, cy = grown.center
        axes = (max(1, round(grown.width / 2)), max(1, round(grown.height / 2)))
        cv2.ellipse(mask, (round(cx - x1), round(cy - y1)), axes, 0, 0, 360, 1, -1)
    return (x1, y1, x2, y2), mask.astype(bool)


class _Obscurer:
    """Shared region handling: subclasses say how to turn the region's pixels into hidden ones."""

    name = ""

    def __init__(self, shape: Shape = "ellipse", scale: float = 1.3) -> None:
        if shape not in ("box", "ellipse"):
            raise ValueError(f"shape must be 'box' or 'ellipse', not {shape!r}")
        if not 0.5 <= scale <= 4.0:
            raise ValueError(f"mask scale must be between 0.5 and 4, not {scale}")
        self.shape: Shape = shape
        self.scale = scale

    def hidden(self, patch: np.ndarray, box: Box) -> np.ndarray:
        """Return the obscured version of ``patch`` (the region's pixels)."""
        raise NotImplementedError

    def apply(self, image: np.ndarray, box: Box) -> None:
        """Obscure the (scaled, shaped) region of ``box`` in ``image`` in place."""
        height, width = image.shape[:2]
        (x1, y1, x2, y2), mask = region_mask(box, self.scale, self.shape, width, height)
        if mask.size == 0 or not mask.any():
            return
        patch = image[y1:y2, x1:x2]
        patch[mask] = self.hidden(patch.copy(), box)[mask]


BLUR_KERNEL = 15
"""Largest Gaussian kernel run at full size; larger blurs run on a copy shrunk to this kernel."""


class Blur(_Obscurer):
    """Gaussian blur whose kernel is ``strength`` times the face size (0.5 = very strong)."""

    name = "blur"

    def __init__(self, strength: float = 0.5, shape: Shape = "ellipse", scale: float = 1.3) -> None:
        super().__init__(shape, scale)
        if not 0.0 < strength <= 2.0:
            raise ValueError(f"blur strength must be in (0, 2], not {strength}")
        self.strength = strength

    def hidden(self, patch: np.ndarray, box: Box) -> np.ndarray:
        """Return the patch blurred with a kernel proportional to the face size (blurred twice)."""
        kernel = max(3, int(max(box.width, box.height) * self.strength) | 1)
        height, width = patch.shape[:2]
        # a big kernel is the same blur on a smaller copy (8x fewer pixels per halving of the size): much faster
        shrink = min(1.0, BLUR_KERNEL / kernel)
        small = (
            patch
            if shrink == 1.0
            else cv2.resize(
                patch, (max(1, round(width * shrink)), max(1, round(height * shrink))), interpolation=cv2.INTER_AREA
            )
        )
        size = kernel if shrink == 1.0 else BLUR_KERNEL
        sigma = size / 3.0
        once = cv2.GaussianBlur(small, (size, size), sigma, borderType=cv2.BORDER_REFLECT)
        twice = cv2.GaussianBlur(once, (size, size), sigma, borderType=cv2.BORDER_REFLECT)
        return twice if shrink == 1.0 else cv2.resize(twice, (width, height), interpolation=cv2.INTER_LINEAR)


class Pixelate(_Obscurer):
    """Mosaic with ``blocks`` cells across the face box (fewer = coarser)."""

    name = "pixelate"

    def __init__(self, blocks: int = 8, shape: Shape = "ellipse", scale: float = 1.3) -> None:
        super().__init__(shape, scale)
        if not 2 <= blocks <= 64:
            raise ValueError(f"mosaic blocks must be between 2 and 64, not {blocks}")
        self.blocks = blocks

    def hidden(self, patch: np.ndarray, box: Box) -> np.ndarray:
        """Return the patch as a mosaic whose cells are ``box size / blocks`` pixels wide."""
        height, width = patch.shape[:2]
        cell = max(2.0, max(box.width, box.height) / self.blocks)
        small = cv2.resize(
            patch, (max(1, round(width / cell)), max(1, round(height / cell))), interpolation=cv2.INTER_AREA
        )
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


class SolidMask(_Obscurer):
    """A solid colour over the face region (the strongest and the default fallback)."""

    name = "mask"

    def __init__(self, color: tuple[int, int, int] = (0, 0, 0), shape: Shape = "ellipse", scale: float = 1.3) -> None:
        super().__init__(shape, scale)
        self.color = tuple(int(c) for c in color)

    def hidden(self, patch: np.ndarray, box: Box) -> np.ndarray:
        """Return a patch filled with the mask colour."""
        return np.full_like(patch, self.color)


@OBSCURERS.register("blur")
def _blur(**options: object) -> Blur:
    """Gaussian blur; ``strength`` = kernel / face size (default 0.5), box or ellipse."""
    return Blur(**options)  # type: ignore[arg-type]


@OBSCURERS.register("pixelate")
def _pixelate(**options: object) -> Pixelate:
    """Mosaic; ``blocks`` cells across the face (default 8), box or ellipse."""
    return Pixelate(**options)  # type: ignore[arg-type]


@OBSCURERS.register("mask")
def _mask(**options: object) -> SolidMask:
    """Solid colour (default black), box or ellipse; the default fail-closed fallback."""
    return SolidMask(**options)  # type: ignore[arg-type]

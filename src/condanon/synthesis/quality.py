"""Measures of a composed face: landmark agreement, seam strength at the outline, colour shift.

Used by ``benchmarks/blend.py`` and the tests that check 30 px and 400 px faces. Each takes the
original image, the output and the face (with its 68 and 5 landmarks as found on the original).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..landmarks import five_from_68
from ..types import Face
from . import geometry
from .compose import skin_polygon


def landmark_error(face: Face) -> float:
    """Return the largest distance between the 68-point model's 5 points and the detector's, in eye distances."""
    if face.landmarks68 is None or face.landmarks5 is None:
        raise ValueError("needs both landmark sets")
    five = np.asarray(face.landmarks5, dtype=np.float64)
    eyes = float(np.hypot(*(five[0] - five[1]))) or 1.0
    return float(np.hypot(*(five_from_68(face.landmarks68) - five).T).max() / eyes)


def _band(points: np.ndarray, shape: tuple[int, ...], width: int) -> np.ndarray:
    """Return a mask of the pixels within ``width`` of the closed polygon ``points``."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.polylines(mask, [np.round(points).astype(np.int32)], True, 1, max(1, 2 * width + 1))
    return mask > 0


def seam_ratio(original: np.ndarray, output: np.ndarray, face: Face) -> float:
    """Return how much stronger edges are along the blend boundary than in the original at the same place.

    Mean gradient magnitude in a thin band around the lower face outline (jaw, where the synthetic
    face meets the neck and background) of the output over the same in the original: about 1 when
    the outline is as sharp as the original's own, well above 1 for a visible seam or halo.
    """
    if face.landmarks68 is None:
        raise ValueError("needs 68 landmarks")
    jaw = np.asarray(face.landmarks68, dtype=np.float64)[geometry.JAW]
    size = float(np.ptp(jaw[:, 0])) or 1.0
    band = _band(jaw, original.shape, max(1, int(0.04 * size)))

    def strength(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
        return float(np.hypot(gx, gy)[band].mean())

    return strength(output) / max(strength(original), 1e-3)


def colour_shift(original: np.ndarray, output: np.ndarray, face: Face) -> float:
    """Return the distance (Lab units, ~Delta E 76) between the mean skin colour before and after.

    Skin: inside the jaw line, below the brows, over the face's cheeks, nose and mouth.
    """
    if face.landmarks68 is None:
        raise ValueError("needs 68 landmarks")
    points = np.asarray(face.landmarks68, dtype=np.float64)
    polygon = skin_polygon(points)
    mask = np.zeros(original.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    region = mask > 0
    if region.sum() < 4:
        raise ValueError("face too small to measure its colour")
    before = cv2.cvtColor(original, cv2.COLOR_BGR2LAB).astype(np.float32)[region].mean(axis=0)
    after = cv2.cvtColor(output, cv2.COLOR_BGR2LAB).astype(np.float32)[region].mean(axis=0)
    return float(np.linalg.norm(before - after))

"""dlib's 68-point shape predictor (iBUG-300W order), run on the face box in dlib's own convention, then refined.

The predictor's cascade starts from its mean shape placed in the box, so a box that is off (a YuNet box
converted by the average map, a turned or very large face) leaves the jaw line where the mean shape put
it. Refinement re-runs the predictor on the box dlib's own detector would have drawn around the points
just found (the box in which the predictor's mean shape best fits them); two rounds. Where the result
still disagrees with the detector's 5 landmarks by more than `SNAP` eye distances, the shape is moved
onto them by a similarity transform (`snapped`). On couple.jpg the
worst of the 5 points moved from 12 % to 9 % of the eye distance away from YuNet's, and the jaw line
came onto the face (docs/synthesis.md).
"""

from __future__ import annotations

import dlib
import numpy as np

from ..detection.conventions import to_dlib
from ..transforms import apply_transform, similarity_transform
from ..types import Face
from ..weights import load_once, model_path
from .base import LANDMARKERS, five_from_68


def shape_predictor(name: str = "dlib-68") -> dlib.shape_predictor:
    """Return the process-wide dlib shape predictor ``name`` (loaded once)."""
    return load_once(name, lambda: dlib.shape_predictor(str(model_path(name))))


def mean_shape(predictor: dlib.shape_predictor) -> np.ndarray:
    """Return the predictor's mean shape in box units (its output on a featureless 1000 px box, / 1000)."""
    blank = np.full((1000, 1000, 3), 128, np.uint8)
    return _points(predictor(blank, dlib.rectangle(0, 0, 999, 999))) / 1000.0


def _points(shape: dlib.full_object_detection) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def refined_rect(points: np.ndarray, mean: np.ndarray) -> dlib.rectangle:
    """Return the square box in which ``mean`` (box units) best fits ``points`` (least-squares similarity)."""
    matrix = similarity_transform(mean, points)
    side = float(np.hypot(*matrix[:, 0]))
    x, y = matrix[:, 2]
    return dlib.rectangle(round(x), round(y), round(x + side) - 1, round(y + side) - 1)


SNAP = 0.35
"""Disagreement (largest 5-point distance in eye distances) above which the 68 points are snapped."""


def snapped(points: np.ndarray, five: np.ndarray) -> np.ndarray:
    """Return ``points`` moved onto the detector's 5 landmarks when they disagree by more than `SNAP`.

    The predictor's shape is kept; a least-squares similarity transform of its 5-point summary onto
    the detector's places, turns and sizes it (small and blurred faces, where the cascade drifts).
    """
    eyes = float(np.hypot(*(five[0] - five[1]))) or 1.0
    own = five_from_68(points).astype(np.float64)
    if np.hypot(*(own - five).T).max() / eyes <= SNAP:
        return points
    try:
        matrix = similarity_transform(own, five)
    except ValueError:
        return points
    return apply_transform(matrix, points)


def dlib_rect(face: Face) -> dlib.rectangle:
    """Return the dlib rectangle its predictors expect for ``face`` (YuNet box converted to dlib's convention)."""
    x1, y1, x2, y2 = to_dlib(face.box).to_int()
    return dlib.rectangle(x1, y1, x2 - 1, y2 - 1)


class Dlib68Landmarker:
    """68 landmarks from dlib's ensemble-of-regression-trees predictor."""

    name = "dlib68"

    def __init__(self, refine: int = 2) -> None:
        self.refine = refine

    def landmarks(self, image: np.ndarray, faces: list[Face]) -> None:
        """Fill ``landmarks68`` of each face, and ``landmarks5`` where the detector gave none."""
        if not faces:
            return
        predictor = shape_predictor()
        mean = load_once("dlib-68-mean", lambda: mean_shape(predictor))
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        for face in faces:
            points = _points(predictor(rgb, dlib_rect(face)))
            for _ in range(self.refine):
                points = _points(predictor(rgb, refined_rect(points, mean)))
            if face.landmarks5 is not None:
                points = snapped(points, np.asarray(face.landmarks5, dtype=np.float64))
            face.landmarks68 = points.astype(np.float32)
            if face.landmarks5 is None:
                face.landmarks5 = five_from_68(points)


@LANDMARKERS.register("dlib68")
def _dlib68(refine: int = 2) -> Dlib68Landmarker:
    """dlib 68-point predictor (face_recognition_models), refined twice; iBUG-300W data: non-commercial."""
    return Dlib68Landmarker(refine)

"""dlib's 68-point shape predictor (iBUG-300W order), run on the face box in dlib's own convention."""

from __future__ import annotations

import dlib
import numpy as np

from ..detection.conventions import to_dlib
from ..types import Face
from ..weights import load_once, model_path
from .base import LANDMARKERS, five_from_68


def shape_predictor(name: str = "dlib-68") -> dlib.shape_predictor:
    """Return the process-wide dlib shape predictor ``name`` (loaded once)."""
    return load_once(name, lambda: dlib.shape_predictor(str(model_path(name))))


def dlib_rect(face: Face) -> dlib.rectangle:
    """Return the dlib rectangle its predictors expect for ``face`` (YuNet box converted to dlib's convention)."""
    x1, y1, x2, y2 = to_dlib(face.box).to_int()
    return dlib.rectangle(x1, y1, x2 - 1, y2 - 1)


class Dlib68Landmarker:
    """68 landmarks from dlib's ensemble-of-regression-trees predictor."""

    name = "dlib68"

    def landmarks(self, image: np.ndarray, faces: list[Face]) -> None:
        """Fill ``landmarks68`` of each face, and ``landmarks5`` where the detector gave none."""
        if not faces:
            return
        predictor = shape_predictor()
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        for face in faces:
            shape = predictor(rgb, dlib_rect(face))
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            face.landmarks68 = points
            if face.landmarks5 is None:
                face.landmarks5 = five_from_68(points)


@LANDMARKERS.register("dlib68")
def _dlib68() -> Dlib68Landmarker:
    """dlib 68-point predictor (face_recognition_models); iBUG-300W data: non-commercial."""
    return Dlib68Landmarker()

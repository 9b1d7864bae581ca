"""dlib's HOG frontal-face detector, used as a second opinion beside YuNet."""

from __future__ import annotations

import threading

import cv2
import dlib
import numpy as np

from ..types import Box, Face
from ..weights import load_once
from .base import DETECTORS
from .conventions import from_dlib


class HogDetector:
    """Frontal faces from dlib's HOG + linear SVM detector (boxes in YuNet's convention, no landmarks)."""

    name = "hog"

    def __init__(self, upsample: int = 1, max_side: int = 1024, score_threshold: float = 0.0) -> None:
        self.upsample = upsample
        self.max_side = max_side
        self.score_threshold = score_threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return the faces HOG finds in ``image`` (BGR), best score first."""
        detector, lock = load_once("dlib-hog", lambda: (dlib.get_frontal_face_detector(), threading.Lock()))
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if min(height, width) * scale < 8:  # a sliver (a panorama scaled down) holds no face HOG could find
            return []
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(small[:, :, ::-1])
        with lock:
            rects, scores, _ = detector.run(rgb, self.upsample, self.score_threshold)
        faces = []
        for rect, score in zip(rects, scores):
            box = Box(rect.left() / scale, rect.top() / scale, (rect.right() + 1) / scale, (rect.bottom() + 1) / scale)
            faces.append(Face(box=from_dlib(box).clipped(width, height), score=float(score), detector=self.name))
        return sorted(faces, key=lambda f: f.score, reverse=True)


@DETECTORS.register("hog")
def _hog(**options: float) -> HogDetector:
    """dlib HOG frontal detector (no landmarks); a recall second opinion."""
    return HogDetector(**options)  # type: ignore[arg-type]

"""OpenCV's Haar cascade frontal-face detector, a fast and crude second opinion."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..types import Box, Face
from ..weights import load_once, model_path
from .base import DETECTORS


class HaarDetector:
    """Frontal faces from the Viola-Jones cascade shipped with OpenCV 4 (no landmarks)."""

    name = "haar"

    def __init__(self, min_neighbors: int = 6, max_side: int = 1024, min_size: int = 24) -> None:
        self.min_neighbors = min_neighbors
        self.max_side = max_side
        self.min_size = min_size

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return the faces the cascade finds in ``image`` (BGR); score is the cascade's level weight."""
        cascade, lock = load_once(
            "haar-frontal", lambda: (cv2.CascadeClassifier(str(model_path("haar-frontal"))), threading.Lock())
        )
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        with lock:
            rects, _, weights = cascade.detectMultiScale3(
                gray, 1.1, self.min_neighbors, minSize=(self.min_size, self.min_size), outputRejectLevels=True
            )
        faces = []
        for (x, y, w, h), weight in zip(rects, np.ravel(weights) if len(rects) else []):
            box = Box.from_xywh(x / scale, y / scale, w / scale, h / scale).clipped(width, height)
            faces.append(Face(box=box, score=float(weight), detector=self.name))
        return sorted(faces, key=lambda f: f.score, reverse=True)


@DETECTORS.register("haar")
def _haar(**options: float) -> HaarDetector:
    """OpenCV Haar cascade (frontal, default); a fast recall second opinion."""
    return HaarDetector(**options)  # type: ignore[arg-type]

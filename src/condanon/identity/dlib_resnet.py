"""dlib's ResNet face recognition model: 128-D vectors; L2 distance, published threshold 0.6."""

from __future__ import annotations

import dlib
import numpy as np

from ..landmarks.dlib68 import dlib_rect, shape_predictor
from ..types import Face
from ..weights import load_once, model_path
from .base import EMBEDDERS, normalise


class DlibResNetEmbedder:
    """Identity vectors from dlib's ResNet-34-like model on a chip aligned by dlib's 5-point predictor."""

    name = "dlib"
    metric = "l2"
    threshold = 0.6

    def __init__(self, jitter: int = 0) -> None:
        self.jitter = jitter

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return ``(N, 128)`` unit vectors, one per face.

        dlib's own descriptors have norms close to 1 (0.9-1.1); they are normalised here so every
        embedder returns unit vectors, which moves distances by a few hundredths at most.
        """
        if not faces:
            return np.zeros((0, 128), np.float32)
        model = load_once("dlib-resnet", lambda: dlib.face_recognition_model_v1(str(model_path("dlib-resnet"))))
        predictor = shape_predictor("dlib-5")
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        rows = []
        for face in faces:
            shape = predictor(rgb, dlib_rect(face))
            rows.append(np.asarray(model.compute_face_descriptor(rgb, shape, self.jitter)))
        return normalise(np.stack(rows))


@EMBEDDERS.register("dlib")
def _dlib(**options: int) -> DlibResNetEmbedder:
    """dlib ResNet 128-D (face_recognition_models); L2 distance, match at < 0.6. The held-out attacker."""
    return DlibResNetEmbedder(**options)

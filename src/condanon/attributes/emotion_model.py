"""The project's own emotion model (``emotion``): a small CNN distilled from fer and trained on our crops.

Seven classes in the order of `condanon.types.EMOTIONS`. Input: the face aligned by its 5 YuNet
landmarks (similarity transform onto a fixed template, see `aligned_face`), 64x64 grey, scaled to
[-1, 1]. Trained by ``tools/train_emotion.py`` on exactly this crop; card: ``models/emotion-v1.md``.
A face without landmarks (another detector) falls back to its box, grown to about the same framing.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..transforms import similarity_transform
from ..types import EMOTIONS, Attributes, Face
from ..weights import load_once, model_path
from .base import ATTRIBUTE_ESTIMATORS, emotion_attributes, onnx_session
from .fer_emotion import face_crop

MODEL_NAME = "emotion-v1"
INPUT_SIZE = 64
CROP_SCALE = 0.9
"""The face fills this share of the template's framing: < 1 zooms out (0.9 keeps brows and chin)."""
BOX_MARGIN = 0.1
"""Growth of the detector box when a face has no landmarks (roughly the aligned crop's framing)."""

# 5-point template (right eye, left eye, nose tip, right and left mouth corner: YuNet's order, the
# person's right eye on the image's left) in units of the crop side: the ArcFace 112 px template.
TEMPLATE = (
    np.array(
        [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
        dtype=np.float32,
    )
    / 112.0
)


def alignment_matrix(landmarks5: np.ndarray, size: int = INPUT_SIZE, scale: float = CROP_SCALE) -> np.ndarray | None:
    """Return the 2x3 least-squares similarity transform of the 5 landmarks onto the template in a ``size`` crop.

    Umeyama's closed form on all five points (no random sampling: the same face always gives the same
    crop). ``None`` when the points are degenerate.
    """
    source = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    target = ((TEMPLATE.astype(np.float64) - 0.5) / scale + 0.5) * size
    if not np.all(np.isfinite(source)):
        return None
    try:
        return similarity_transform(source, target)
    except ValueError:
        return None


def aligned_face(image: np.ndarray, face: Face, size: int = INPUT_SIZE, scale: float = CROP_SCALE) -> np.ndarray:
    """Return the ``size`` x ``size`` grey uint8 crop the model reads for ``face`` in the BGR ``image``.

    With 5 landmarks: the similarity-aligned crop (borders replicated). Without: the box grown by
    `BOX_MARGIN`, squared about its centre, resized.
    """
    grey = image if image.ndim == 2 else None
    if face.landmarks5 is not None:
        matrix = alignment_matrix(face.landmarks5, size, scale)
        if matrix is not None:
            warped = cv2.warpAffine(
                image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            return warped if grey is not None else cv2.cvtColor(warped, cv2.COLOR_BGR2GRAY)
    box = face.box
    side = max(box.width, box.height)
    cx, cy = box.center
    square = type(box)(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    crop = face_crop(image, Face(box=square, score=face.score), BOX_MARGIN)
    if grey is None:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def to_input(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Return the model input ``N x 1 x 64 x 64`` float32 in [-1, 1] from grey uint8 crops."""
    batch = np.asarray(crops, dtype=np.float32).reshape(-1, 1, INPUT_SIZE, INPUT_SIZE)
    return (batch / 255.0 - 0.5) * 2.0


class EmotionModel:
    """Dominant emotion and the 7 class probabilities from the project's own model (emotion-v1)."""

    name = "emotion"
    provides: tuple[str, ...] = ("emotion",)

    def __init__(self, flip: bool = False) -> None:
        self.flip = flip
        """Also average with the mirrored crop: twice the time for no measured gain (model card), so off."""

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """Return ``N x 7`` probabilities (order `EMOTIONS`) for grey uint8 crops of shape ``N x 64 x 64``."""
        session = load_once(MODEL_NAME, lambda: onnx_session(str(model_path(MODEL_NAME))))
        batch = to_input(crops)
        if self.flip:
            batch = np.concatenate([batch, batch[..., ::-1]])
        probs = session.run(None, {"input": np.ascontiguousarray(batch)})[0]  # type: ignore[attr-defined]
        if self.flip:
            probs = (probs[: len(probs) // 2] + probs[len(probs) // 2 :]) / 2.0
        return np.asarray(probs, dtype=np.float64)

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return emotion-only attributes for each face."""
        if not faces:
            return []
        probs = self.probabilities(np.stack([aligned_face(image, face) for face in faces]))
        return emotion_attributes(EMOTIONS, probs)


@ATTRIBUTE_ESTIMATORS.register("emotion")
def _emotion(flip: bool = False) -> EmotionModel:
    """Emotion, 7 classes: the project's own model (emotion-v1, distilled from fer; models/emotion-v1.md)."""
    return EmotionModel(flip=flip)

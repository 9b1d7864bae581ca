"""The ``face-mesh`` faceness check: the face-presence output of MediaPipe's face landmark net.

MediaPipe tracks a face by running its 468-point face mesh on a square crop around the face (the
detection's box, 1.5 times its longer side, turned so that the eyes are level); besides the points, the
net outputs one logit saying whether the crop holds a face at all, and MediaPipe drops the face when its
sigmoid falls under 0.5. condanon uses only that output (models/face-landmark-v1.md).

Two changes to MediaPipe's crop, measured on the shared scenes and crowd.mp4 (docs/detection.md): the
part of the crop outside the image repeats the border pixels instead of black (a close-up cut by the
photo's edge scored 0.00 on black, 0.96 replicated), and each crop is also scored mirrored, keeping the
higher score (three-quarter faces looking one way score higher than the same faces mirrored; no
non-face rose above 0.31).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..runtime import onnx_model
from ..types import Face
from .base import FACENESS

INPUT = 192
SCALE = 1.5
"""The crop's side over the box's longer side (MediaPipe's ROI scale for the face mesh)."""
MIRROR_BELOW = 0.9
"""A crop scoring under this is scored mirrored too (the higher score counts)."""


def crop(image: np.ndarray, face: Face, size: int = INPUT, scale: float = SCALE) -> np.ndarray:
    """Return the ``size`` px square around ``face`` the mesh expects: eyes level, border pixels repeated."""
    box = face.box
    cx, cy = box.center
    side = max(box.width, box.height, 1.0) * scale
    degrees = 0.0
    if face.landmarks5 is not None and np.all(np.isfinite(face.landmarks5[:2])):
        (rx, ry), (lx, ly) = face.landmarks5[0], face.landmarks5[1]
        degrees = math.degrees(math.atan2(ly - ry, lx - rx))
    matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), degrees, size / side)
    matrix[0, 2] += size / 2 - cx
    matrix[1, 2] += size / 2 - cy
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class FaceMeshFaceness:
    """Face presence from MediaPipe's face landmark net, on each face's crop and its mirror image."""

    name = "face-mesh"

    def scores(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return the face-presence probability of each face (the higher of the crop and its mirror)."""
        if not faces:
            return np.zeros(0, np.float32)
        crops = np.stack([crop(image, face) for face in faces])[..., ::-1]  # BGR -> RGB
        scores = _presence(crops)
        low = np.flatnonzero(scores < MIRROR_BELOW)  # most faces read ~1.0 at once: only the others are mirrored
        if low.size:
            scores[low] = np.maximum(scores[low], _presence(crops[low, :, ::-1]))
        return scores


def _presence(crops: np.ndarray) -> np.ndarray:
    """Return the face-presence probability of each RGB uint8 crop (N x 192 x 192 x 3)."""
    session, lock = onnx_model("face-landmark")
    with lock:
        _, logits = session.run(None, {"input_1": crops.astype(np.float32) / 255.0})
    logits = np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)
    presence: np.ndarray = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return presence


@FACENESS.register("face-mesh")
def _face_mesh() -> FaceMeshFaceness:
    """MediaPipe face mesh's face-presence score (Apache-2.0, converted to ONNX; models/face-landmark-v1.md)."""
    return FaceMeshFaceness()

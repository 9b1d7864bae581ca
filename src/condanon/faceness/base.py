"""The faceness stage: `FacenessCheck` protocol, its registry, and how a low score marks a face.

Detectors fire on things that look like faces: a crest's carved or printed heads, a hand, a glass, a
mannequin, a patterned shirt. Such a detection is still obscured (privacy first: a detector that fires
on it may be right), but it must not get a synthetic face and must not be counted as a person. A
faceness check scores each detection; one under `FACENESS_THRESHOLD` is marked ``uncertain``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..registry import Registry
from ..types import Face

FACENESS_THRESHOLD = 0.5
"""MediaPipe's own operating point for its face-presence score (the face mesh drops a face below it)."""


class FacenessCheck(Protocol):
    """Scores how likely each detection is a real human face."""

    name: str

    def scores(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return one probability in [0, 1] per face (``image`` BGR uint8, faces in its coordinates)."""
        ...


FACENESS: Registry[FacenessCheck] = Registry("faceness check")


def mark_doubtful(
    check: FacenessCheck, image: np.ndarray, faces: list[Face], threshold: float = FACENESS_THRESHOLD
) -> None:
    """Set each face's ``faceness``; mark the faces under ``threshold`` uncertain, with the reason."""
    if not faces:
        return
    for face, score in zip(faces, check.scores(image, faces)):
        face.faceness = float(score)
        if score < threshold:
            face.mark_uncertain(f"faceness {score:.2f} under {threshold:.2f} ({check.name}): may not be a real face")

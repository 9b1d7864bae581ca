"""The landmark stage: `Landmarker` protocol and its registry."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..registry import Registry
from ..types import Face


class Landmarker(Protocol):
    """Adds landmarks to faces."""

    name: str

    def landmarks(self, image: np.ndarray, faces: list[Face]) -> None:
        """Fill ``landmarks68`` (and ``landmarks5`` where missing) of each face in place."""
        ...


LANDMARKERS: Registry[Landmarker] = Registry("landmarker")


def five_from_68(points: np.ndarray) -> np.ndarray:
    """Return YuNet-order 5 points (right eye, left eye, nose tip, right and left mouth corner) from 68 points."""
    return np.stack(
        [
            points[36:42].mean(axis=0),  # subject's right eye (image left)
            points[42:48].mean(axis=0),
            points[30],
            points[48],
            points[54],
        ]
    ).astype(np.float32)

"""The detection stage: `Detector` protocol, its registry, and box merging shared by the backends."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..registry import Registry
from ..types import Face


@runtime_checkable
class Detector(Protocol):
    """Finds faces in a BGR image."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return every face found in ``image`` (BGR uint8), best score first."""
        ...


DETECTORS: Registry[Detector] = Registry("detector")


def pad_with_mean(image: np.ndarray, fraction: float = 0.25) -> tuple[np.ndarray, int]:
    """Return ``image`` padded on every side by ``fraction`` of its longer side with its mean colour, and the pad.

    Tight face crops have no context around the face, and detectors miss faces that touch the border.
    """
    pad = int(fraction * max(image.shape[:2]))
    fill = [int(v) for v in image.reshape(-1, 3).mean(axis=0)]
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill), pad


class PaddedDetector:
    """Runs another detector on small images padded by `pad_with_mean` (large images go through as they are)."""

    def __init__(self, inner: Detector, small: int = 480) -> None:
        self.inner = inner
        self.small = small
        self.name = inner.name

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return the inner detector's faces, in the coordinates of ``image``."""
        if max(image.shape[:2]) > self.small:
            return self.inner.detect(image)
        padded, pad = pad_with_mean(image)
        faces = self.inner.detect(padded)
        height, width = image.shape[:2]
        for face in faces:
            face.box = face.box.shifted(-pad, -pad).clipped(width, height)
            if face.landmarks5 is not None:
                face.landmarks5 = face.landmarks5 - pad
        return faces


def overlap(a: Face, b: Face) -> float:
    """Return the larger of IoU and intersection-over-smaller-box of two faces' boxes."""
    ix = max(0.0, min(a.box.x2, b.box.x2) - max(a.box.x1, b.box.x1))
    iy = max(0.0, min(a.box.y2, b.box.y2) - max(a.box.y1, b.box.y1))
    inter = ix * iy
    smaller = min(a.box.area, b.box.area)
    return max(a.box.iou(b.box), inter / smaller if smaller > 0 else 0.0)


def suppress(faces: list[Face], threshold: float = 0.5) -> list[Face]:
    """Return ``faces`` without duplicates: greedy by score, dropping any face that overlaps a kept one.

    A face more than twice the area of the kept face it overlaps replaces it: the kept one is then a
    part of a face (a mouth found as a face in a tile), and the larger region is the safer one to hide.
    """
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        clashes = [i for i, other in enumerate(kept) if overlap(face, other) >= threshold]
        if not clashes:
            kept.append(face)
        elif all(face.box.area > 2 * kept[i].box.area for i in clashes):
            kept = [k for i, k in enumerate(kept) if i not in clashes] + [face]
    return sorted(kept, key=lambda f: f.score, reverse=True)

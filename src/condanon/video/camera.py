"""How far the camera moved: the background's shift between keyframes, accumulated over a run.

A face on a poster, a carved crest or a mannequin does not move against its background; a handheld
or swaying camera moves both. Corners of the previous keyframe away from every detected face and the
body under it are followed into the next keyframe (pyramidal Lucas-Kanade on a small grey copy); their
median shift is the camera's, summed into its offset. A track's own motion is its box's movement minus
that offset (`condanon.analytics.people`). Where too few background corners are found (a plain wall),
the camera is taken to be still.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..types import Box

WIDTH = 320
"""Frames are shrunk to this width for the estimate (a few milliseconds a keyframe)."""
MIN_POINTS = 12
"""Fewer background corners than this followed from one keyframe to the next: no camera motion is read."""


class CameraMotion:
    """Sums the background shift between successive keyframes into the camera's offset in pixels."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None
        self._last_boxes: list[Box] = []
        self.offset = (0.0, 0.0)
        """The background's accumulated shift since the first keyframe (x, y, in full-frame pixels)."""

    def update(self, image: np.ndarray, faces: Sequence[Box] = ()) -> tuple[float, float]:
        """Take the next keyframe and the boxes of the faces on it; return the offset accumulated up to it."""
        scale = WIDTH / image.shape[1]
        small = cv2.resize(image, (WIDTH, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        if self._last is not None and self._last.shape == grey.shape:
            shift = self._shift(self._last, grey, [*self._last_boxes, *faces], scale)
            self.offset = (self.offset[0] + shift[0] / scale, self.offset[1] + shift[1] / scale)
        self._last, self._last_boxes = grey, list(faces)
        return self.offset

    @staticmethod
    def _shift(last: np.ndarray, grey: np.ndarray, boxes: list[Box], scale: float) -> tuple[float, float]:
        mask = np.full(last.shape, 255, np.uint8)
        for box in boxes:  # the face, and the body below it, are not background
            w, h = box.width * scale, box.height * scale
            x1, x2 = int(box.x1 * scale - w), int(box.x2 * scale + w)
            y1, y2 = int(box.y1 * scale - 0.5 * h), int(box.y2 * scale + 3.0 * h)
            mask[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = 0
        corners = cv2.goodFeaturesToTrack(last, maxCorners=150, qualityLevel=0.02, minDistance=6, mask=mask)
        if corners is None or len(corners) < MIN_POINTS:
            return 0.0, 0.0
        moved, status, _ = cv2.calcOpticalFlowPyrLK(last, grey, corners, corners.copy(), winSize=(15, 15), maxLevel=2)
        good = status.ravel() == 1
        if good.sum() < MIN_POINTS:
            return 0.0, 0.0
        shift = np.median((moved - corners).reshape(-1, 2)[good], axis=0)
        return float(shift[0]), float(shift[1])

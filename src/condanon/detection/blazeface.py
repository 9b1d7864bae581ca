"""BlazeFace full-range (MediaPipe, converted to ONNX: models/blazeface-full-range-v1.md) on the whole image and on
tiles.

The model sees a 192 px square: one 48x48 grid of anchors (stride 4, one fixed-size anchor per cell);
per anchor it regresses a box (centre offset, width, height in input pixels) and 6 keypoints (eyes,
nose tip, mouth centre, ears), and one score logit (sigmoid). Detections of one pass are merged by
MediaPipe's weighted non-maximum suppression (overlapping boxes averaged, weighted by score).

Full range was trained on faces from near to a few metres; it is strong where YuNet is weak: profile
and three-quarter faces, and faces cut by the image border. An image is seen whole (letterboxed, aspect
kept) at three paddings (full range misses faces that fill its square: a face crop must fill at most
about a third of it); tiny crops are first upscaled to ``min_side`` px. Larger images are then searched
in a pyramid of overlapping square tiles, from half the image down to ``tile`` px (at most ``levels``
sizes), each scaled to 192 px; the outer tiles reach a quarter tile past the border, so that a face
cut by the border is not also cut by the tile's edge. Tile detections cut by an inner tile edge are
dropped (a neighbouring tile or the whole-image pass sees those faces whole), and tiles have their own
``tile_threshold`` (they zoom into blurred backgrounds and hands). The passes are merged by `_merge`.

Tiling, measured (benchmarks/detection_recall.py, shared scenes and crowd.mp4): the first level finds
the border-cut faces; finer levels reach 10-25 px faces but, on our data, found none that YuNet's own
tiles miss, at 2.3x the time and with more false positives; ``yunet+blazeface`` uses one level.

Boxes are mapped to YuNet's convention (`to_yunet`); the 5 landmarks are BlazeFace's eyes and nose
tip, and mouth corners placed on either side of its mouth centre (`landmarks5`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..runtime import onnx_model
from ..types import Box, Face
from .base import DETECTORS, overlap

INPUT = 192
GRID = 48

# YuNet box = BlazeFace box shifted by (DX * w, DY * h) and scaled by (SX, SY) about its centre: medians
# over 1,586 matched YuNet/BlazeFace detections of the same faces (IoU > 0.4), from every second
# UTKFace-style and identity test photo at full and half size. Spread (std): DX 0.04, DY 0.03, SX 0.07, SY 0.06.
# BlazeFace's box is square and wider than YuNet's (ears in); YuNet's is taller than wide.
DX, DY, SX, SY = 0.0, -0.003, 0.875, 1.018
# Mouth corners = mouth centre -/+ MOUTH * (left eye - right eye) (see `landmarks5`): the median of YuNet's
# mouth half-width over its eye distance on the same pairs (0.416, std 0.026).
MOUTH = 0.42


def _anchors() -> np.ndarray:
    ys, xs = np.mgrid[0:GRID, 0:GRID]
    return np.stack([(xs + 0.5) / GRID, (ys + 0.5) / GRID], axis=-1).reshape(-1, 2).astype(np.float32)


def to_yunet(box: Box) -> Box:
    """Return the YuNet-convention box for a BlazeFace-convention ``box``."""
    cx, cy = box.center
    cx, cy = cx + DX * box.width, cy + DY * box.height
    hw, hh = box.width * SX / 2, box.height * SY / 2
    return Box(cx - hw, cy - hh, cx + hw, cy + hh)


def landmarks5(keypoints: np.ndarray) -> np.ndarray:
    """Return our 5 landmarks (eyes, nose tip, mouth corners) from BlazeFace's 6 keypoints.

    BlazeFace has no mouth corners: they are put on either side of its mouth centre, along the line
    between the eyes, ``MOUTH`` eye distances apart from the centre (approximate; fitted on YuNet's).
    """
    right_eye, left_eye, nose, mouth = keypoints[0], keypoints[1], keypoints[2], keypoints[3]
    half = MOUTH * (left_eye - right_eye)
    return np.stack([right_eye, left_eye, nose, mouth - half, mouth + half]).astype(np.float32)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, threshold: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Return MediaPipe's weighted NMS of ``boxes`` (N x 4, x1 y1 x2 y2): each cluster's score-weighted mean.

    Clusters are formed greedily by score: every remaining box whose IoU with the best one exceeds
    ``threshold`` joins it; the cluster keeps the best score.
    """
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    remaining = np.arange(len(scores))
    out = []
    while remaining.size:
        top = remaining[0]
        ix = np.clip(
            np.minimum(boxes[remaining, 2], boxes[top, 2]) - np.maximum(boxes[remaining, 0], boxes[top, 0]), 0, None
        )
        iy = np.clip(
            np.minimum(boxes[remaining, 3], boxes[top, 3]) - np.maximum(boxes[remaining, 1], boxes[top, 1]), 0, None
        )
        inter = ix * iy
        iou = inter / np.maximum(areas[remaining] + areas[top] - inter, 1e-9)
        members = remaining[iou > threshold]
        if members.size == 0:
            members = remaining[:1]
        weights = scores[members][:, None]
        box = (boxes[members] * weights).sum(0) / weights.sum()
        points = (keypoints[members] * weights[:, :, None]).sum(0) / weights.sum()
        out.append((box, float(scores[top]), points))
        remaining = remaining[iou <= threshold] if members.size else remaining[1:]
        remaining = remaining[remaining != top]
    return out


class BlazeFaceDetector:
    """Boxes, scores and 5 landmarks (mouth corners approximate) from BlazeFace full-range."""

    name = "blazeface"

    def __init__(
        self,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        tile: int = 256,
        overlap: float = 0.25,
        margin: float = 0.25,
        tiles: bool = True,
        pads: tuple[float, ...] = (0.0, 0.5, 0.75),
        batch: int = 16,
        min_side: int = 192,
        tile_threshold: float | None = None,
        levels: int = 8,
    ) -> None:
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.tile = tile
        self.overlap = overlap
        self.margin = margin
        self.tiles = tiles
        self.pads = tuple(pads)
        self.batch = batch
        self.min_side = min_side
        self.tile_threshold = score_threshold if tile_threshold is None else tile_threshold
        self.levels = int(levels)
        self._anchors = _anchors()

    # -- one batch of squares -------------------------------------------------------------------------

    def _infer(self, squares: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Return raw regressors (N x 2304 x 16) and scores (N x 2304) for 192 px BGR squares."""
        session, lock = onnx_model("blazeface")
        regs, scores = [], []
        for start in range(0, len(squares), self.batch):
            chunk = np.stack(squares[start : start + self.batch])[..., ::-1].astype(np.float32) / 127.5 - 1.0
            with lock:
                reg, logit = session.run(None, {"input": np.ascontiguousarray(chunk)})
            regs.append(reg)
            scores.append(1.0 / (1.0 + np.exp(-np.clip(logit[..., 0], -100.0, 100.0))))
        return np.concatenate(regs), np.concatenate(scores)

    def _decode(
        self, reg: np.ndarray, score: np.ndarray, threshold: float
    ) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """Return weighted-NMS detections of one square as (box x1y1x2y2, score, 6x2 keypoints) in [0, 1]."""
        keep = score >= threshold
        if not keep.any():
            return []
        reg, score, anchors = reg[keep] / INPUT, score[keep], self._anchors[keep]
        centre = anchors + reg[:, :2]
        half = reg[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        keypoints = anchors[:, None, :] + reg[:, 4:16].reshape(-1, 6, 2)
        return weighted_nms(boxes, score, keypoints, self.nms_threshold)

    # -- the passes ------------------------------------------------------------------------------------

    @staticmethod
    def _square(image: np.ndarray, x: int, y: int, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the ``side`` px square at ``(x, y)`` of ``image`` scaled to 192 px (black outside the image).

        Also returns the map back to image pixels, ``(gain_x, offset_x, gain_y, offset_y)``: a point ``p``
        in [0, 1] of the square is at ``gain * p + offset`` in the image.
        """
        height, width = image.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
        crop = image[y0:y1, x0:x1]
        scale = INPUT / side
        w, h = max(1, min(INPUT, round(crop.shape[1] * scale))), max(1, min(INPUT, round(crop.shape[0] * scale)))
        ox, oy = min(INPUT - w, round((x0 - x) * scale)), min(INPUT - h, round((y0 - y) * scale))
        interpolation = cv2.INTER_AREA if w < crop.shape[1] else cv2.INTER_LINEAR
        square = np.zeros((INPUT, INPUT, 3), np.uint8)
        square[oy : oy + h, ox : ox + w] = cv2.resize(crop, (w, h), interpolation=interpolation)
        gain_x, gain_y = crop.shape[1] / w, crop.shape[0] / h  # image px per square px, each axis exact
        back = np.asarray([INPUT * gain_x, x0 - ox * gain_x, INPUT * gain_y, y0 - oy * gain_y], np.float32)
        return square, back

    def _windows(self, width: int, height: int) -> list[tuple[int, int, int, bool]]:
        """Return the squares to search: ``(x, y, side, whole)``; the whole image (once per pad), then the tiles.

        Full range finds faces that fill less than about half of its square: the whole image is seen
        letterboxed as it is and padded with black by ``pad`` of its longer side on each side (a face
        crop then fills a third of the square).
        """
        longest = max(width, height)
        windows = []
        for pad in self.pads:
            side = longest + 2 * int(pad * longest)
            windows.append(((width - side) // 2, (height - side) // 2, side, True))
        if not self.tiles:
            return windows
        # A pyramid of overlapping tiles, halving from half the image down to ``tile`` px (at most
        # ``levels`` sizes); the outer
        # tiles reach ``margin`` of a tile past the border, so that a face cut by the border is not
        # also cut by the tile's edge.
        tile = longest // 2
        for _ in range(self.levels):
            if tile < self.tile:
                break
            step = tile * (1.0 - self.overlap)
            reach = int(self.margin * tile)

            def starts(length: int, tile: int = tile, step: float = step, reach: int = reach) -> list[int]:
                span = length + 2 * reach - tile
                if span <= 0:
                    return [(length - tile) // 2]
                count = math.ceil(span / step) + 1
                return [round(i * span / (count - 1)) - reach for i in range(count)]

            windows += [(x, y, tile, False) for y in starts(height) for x in starts(width)]
            tile //= 2
        return windows

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return every face BlazeFace finds in ``image`` (BGR), best score first, in image coordinates."""
        height, width = image.shape[:2]
        zoom = self.min_side / max(height, width)
        if zoom > 1.0:  # tiny crops: scores are steadier on a cubic upscale than on the raw pixels
            faces = self.detect(cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC))
            for face in faces:
                b = face.box
                face.box = Box(b.x1 / zoom, b.y1 / zoom, b.x2 / zoom, b.y2 / zoom).clipped(width, height)
                face.landmarks5 = None if face.landmarks5 is None else face.landmarks5 / zoom
            return faces
        windows = self._windows(width, height)
        squares = [self._square(image, x, y, side) for x, y, side, _ in windows]
        regs, scores = self._infer([square for square, _ in squares])
        faces = []
        for (x, y, side, whole), (_, back), reg, score in zip(windows, squares, regs, scores):
            for box, value, keypoints in self._decode(
                reg, score, self.score_threshold if whole else self.tile_threshold
            ):
                if not whole and _cut_by_inner_edge(box, x, y, side, width, height):
                    continue
                box = box * back[[0, 2, 0, 2]] + back[[1, 3, 1, 3]]
                keypoints = keypoints * back[[0, 2]] + back[[1, 3]]
                face_box = to_yunet(Box(*(float(v) for v in box))).clipped(width, height)
                if face_box.width < 2 or face_box.height < 2:
                    continue
                faces.append(Face(box=face_box, score=value, landmarks5=landmarks5(keypoints), detector=self.name))
        return _merge(faces)


def _merge(faces: list[Face], threshold: float = 0.5) -> list[Face]:
    """Return ``faces`` from all passes without duplicates: greedy by score (`overlap` >= ``threshold`` clashes).

    As in `suppress`, a face more than twice the area of the kept faces it clashes with replaces them (the
    kept one is then part of a face, found in a tile), but only when its score is at least half theirs:
    a faint large box must not replace a clear face.
    """
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        clashes = [i for i, other in enumerate(kept) if overlap(face, other) >= threshold]
        if not clashes:
            kept.append(face)
        elif all(face.box.area > 2 * kept[i].box.area and face.score >= 0.5 * kept[i].score for i in clashes):
            kept = [k for i, k in enumerate(kept) if i not in clashes] + [face]
    return sorted(kept, key=lambda f: f.score, reverse=True)


def _cut_by_inner_edge(box: np.ndarray, x: int, y: int, side: int, width: int, height: int) -> bool:
    """Return whether a tile's box (in [0, 1] of the tile) crosses a tile edge that is not the image border."""
    margin = 0.01
    return bool(
        (box[0] < margin and x > 0)
        or (box[1] < margin and y > 0)
        or (box[2] > 1 - margin and x + side < width)
        or (box[3] > 1 - margin and y + side < height)
    )


@DETECTORS.register("blazeface")
def _blazeface(**options: float) -> BlazeFaceDetector:
    """BlazeFace full-range (MediaPipe): profile, border-cut and (tiled) small faces; 5 landmarks, mouth approximate."""
    return BlazeFaceDetector(**options)  # type: ignore[arg-type]

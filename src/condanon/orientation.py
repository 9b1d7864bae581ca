"""Turned views of an image: faces that lie sideways, upside down or tilted are found and processed upright.

A `View` turns the whole image by an angle (counter-clockwise, in degrees) onto a canvas large enough to
hold all of it, maps points both ways, and pastes the pixels a method changed in the view back into the
image. Quarter turns use `cv2.rotate` (exact, no resampling); other angles resample bilinearly, and only
the pixels that the method changed go back, so the rest of the image stays byte for byte as it was.

`OrientationSearch` decides which views to look in, and keeps the faces found there that the upright
pass did not find.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .detection.base import Detector, overlap
from .types import Box, Face

log = logging.getLogger(__name__)

QUARTER_TURNS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


@dataclass(frozen=True)
class View:
    """The image turned by ``angle`` degrees counter-clockwise, on a canvas that holds all of it."""

    angle: float
    width: int
    height: int
    """Size of the source image."""
    matrix: np.ndarray
    """2x3 affine map of continuous image coordinates (pixel edges) to view coordinates."""
    size: tuple[int, int]
    """(width, height) of the view."""

    @classmethod
    def of(cls, width: int, height: int, angle: float) -> View:
        """Return the view of a ``width`` x ``height`` image turned by ``angle`` degrees counter-clockwise."""
        angle = float(angle) % 360.0
        radians = math.radians(angle)
        cos, sin = math.cos(radians), math.sin(radians)
        if int(angle) in QUARTER_TURNS and angle == int(angle):
            cos, sin = round(cos), round(sin)
        view_w = math.ceil(abs(width * cos) + abs(height * sin) - 1e-6)
        view_h = math.ceil(abs(width * sin) + abs(height * cos) - 1e-6)
        # x' = cos*x + sin*y + tx, y' = -sin*x + cos*y + ty (counter-clockwise on screen, y pointing down),
        # with the image centre landing on the view's centre.
        cx, cy = width / 2.0, height / 2.0
        tx = view_w / 2.0 - (cos * cx + sin * cy)
        ty = view_h / 2.0 - (-sin * cx + cos * cy)
        matrix = np.array([[cos, sin, tx], [-sin, cos, ty]], dtype=np.float64)
        return cls(angle, width, height, matrix, (view_w, view_h))

    @property
    def exact(self) -> bool:
        """Return whether the view is a quarter turn (pixels moved without resampling)."""
        return self.angle in QUARTER_TURNS

    @property
    def inverse(self) -> np.ndarray:
        """Return the 2x3 map of view coordinates back to image coordinates."""
        return cv2.invertAffineTransform(self.matrix)

    def to_view(self, points: np.ndarray) -> np.ndarray:
        """Return image points ``(N, 2)`` in view coordinates."""
        return _apply(self.matrix, points)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Return view points ``(N, 2)`` in image coordinates."""
        return _apply(self.inverse, points)

    def box_to_image(self, box: Box) -> Box:
        """Return the axis-aligned image box that holds the view ``box`` (its four corners mapped back)."""
        corners = np.array([[box.x1, box.y1], [box.x2, box.y1], [box.x2, box.y2], [box.x1, box.y2]])
        mapped = self.to_image(corners)
        x1, y1 = mapped.min(axis=0)
        x2, y2 = mapped.max(axis=0)
        return Box(float(x1), float(y1), float(x2), float(y2)).clipped(self.width, self.height)

    def face_to_image(self, face: Face) -> Face:
        """Return a copy of a view ``face`` in image coordinates (box holding the turned box, points mapped)."""
        return dataclasses.replace(
            face,
            box=self.box_to_image(face.box),
            landmarks5=None if face.landmarks5 is None else self.to_image(face.landmarks5).astype(np.float32),
            landmarks68=None if face.landmarks68 is None else self.to_image(face.landmarks68).astype(np.float32),
            angle=self.angle,
        )

    def image(self, bgr: np.ndarray) -> np.ndarray:
        """Return ``bgr`` turned into this view (the corners outside the image are black)."""
        if self.exact:
            return cv2.rotate(bgr, QUARTER_TURNS[int(self.angle)])
        return cv2.warpAffine(
            bgr, _pixel_centres(self.matrix), self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )

    def paste_back(self, target: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Copy into ``target`` (in place) the pixels that differ between the views ``before`` and ``after``.

        Returns the boolean image-sized mask of the pixels written.
        """
        changed = np.any(before != after, axis=2)
        if not changed.any():
            return np.zeros(target.shape[:2], bool)
        if self.exact:
            undo = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}[
                int(self.angle)
            ]
            back = cv2.rotate(after, undo)
            mask: np.ndarray = cv2.rotate(changed.astype(np.uint8), undo).astype(bool)
        else:
            # Grow the changed region by a few pixels: bilinear resampling spreads each pixel over its neighbours.
            grown = cv2.dilate(changed.astype(np.uint8), np.ones((5, 5), np.uint8))
            inverse = _pixel_centres(self.inverse)
            size = (self.width, self.height)
            back = cv2.warpAffine(after, inverse, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            mask = cv2.warpAffine(grown, inverse, size, flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
        target[mask] = back[mask]
        return mask


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    moved: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return moved


def _pixel_centres(matrix: np.ndarray) -> np.ndarray:
    """Return the map of pixel-centre coordinates (OpenCV's) equivalent to ``matrix`` on pixel edges."""
    linear = matrix[:, :2]
    shift = matrix[:, 2] + linear @ np.array([0.5, 0.5]) - 0.5
    return np.hstack([linear, shift[:, None]])


DEFAULT_ANGLES: tuple[float, ...] = (90.0, 180.0, 270.0, 45.0, -45.0)
"""Views searched besides the upright one: the quarter turns, and tilts either way. YuNet finds faces tilted
by up to about 35-40 degrees in the upright view (measured on the shared scenes, docs/detection.md), so a view
turned by 45 covers tilts from about 10 to 80 degrees."""

VIEW_SCORE = 0.75
"""YuNet score a face found in a turned view needs. Faces in a turned view are upright there and score like
upright faces (0.9 and more on the shared scenes); turned hands, arms and objects reach 0.6-0.73 there, and a
turned image offers five views' worth of chances for such false faces (docs/detection.md)."""

MAX_VIEW_GROWTH = 4.0
"""A tilted view is skipped when its canvas would hold more than this many times the image's pixels (a panorama
tilted by 45 degrees would need a canvas of many gigabytes; a 16:9 photo's grows 2.2 times)."""

PROBE_FACE = 24.0
"""Height (px) the upright faces' median height is given in the probe: YuNet finds faces from about 20 px."""

ROLLED = 25.0
"""A face whose eye line is turned by more than this many degrees counts as rolled: its photo is searched fully."""


def roll_of(face: Face) -> float | None:
    """Return the in-plane turn of ``face`` in degrees (counter-clockwise positive) from its eyes, if known."""
    if face.landmarks5 is None:
        return None
    right_eye, left_eye = face.landmarks5[0], face.landmarks5[1]  # the person's right eye is on the image's left
    dx, dy = float(left_eye[0] - right_eye[0]), float(left_eye[1] - right_eye[1])
    return math.degrees(math.atan2(-dy, dx))


class OrientationSearch:
    """Looks for faces in turned views of an image and keeps those the upright pass did not find.

    Policy (``mode="auto"``): every view is probed once at a low resolution (``probe_side``, or more where the
    upright faces are small: `PROBE_FACE`); a view is
    searched at full resolution (``max_side``) when the upright pass found no face, when a face it found is
    rolled by more than `ROLLED` degrees, or when the probe found a new face in that view. ``mode="full"``
    searches every view at full resolution; ``mode="off"`` searches none.

    Args:
        detector: finds faces in each view.
        angles: views to search, in degrees counter-clockwise (quarter turns and tilts).
        max_side: longer side of a view in a full search (larger views are scaled down; ``None``: as it is, so
            the detector's own pyramid and tiles see the view as they see the upright image).
        probe_side: longer side of a view in the probe.
        new_face_overlap: a face found in a view is new when it overlaps no face already found by less than this.
        view_score: the detection score a face found only in a turned view needs (see `VIEW_SCORE`).
        replace_margin: how much better a turned view's face must score to replace an upright face it overlaps.
        probe: finds faces in the probes (default: ``detector``); one pass at the probe's size is enough there.
    """

    def __init__(
        self,
        detector: Detector,
        angles: Sequence[float] = DEFAULT_ANGLES,
        mode: str = "auto",
        max_side: int | None = None,
        probe_side: int = 640,
        new_face_overlap: float = 0.3,
        view_score: float = VIEW_SCORE,
        replace_margin: float = 0.05,
        probe: Detector | None = None,
    ) -> None:
        if mode not in ("auto", "full", "off"):
            raise ValueError(f"orientation mode must be auto, full or off, not {mode!r}")
        self.detector = detector
        self.probe = probe or detector
        self.angles = tuple(float(a) % 360.0 for a in angles)
        self.mode = mode
        self.max_side = max_side
        self.probe_side = probe_side
        self.new_face_overlap = new_face_overlap
        self.view_score = view_score
        self.replace_margin = replace_margin

    def search(
        self, bgr: np.ndarray, upright: list[Face]
    ) -> tuple[list[Face], list[tuple[View, np.ndarray, list[Face]]]]:
        """Return the upright faces to keep, and each view that holds faces: ``(view, its pixels, its faces)``, the
        faces in the view's coordinates.

        Faces of all views, the upright one included, are merged greedily by score in the image's coordinates:
        a face overlapping a better one is dropped. A face found in a turned view needs ``view_score``; it
        replaces an upright face it overlaps only with a score higher by ``replace_margin`` (an upside-down
        face that YuNet also finds upright, weakly, is then processed the right way up).
        """
        if self.mode == "off" or not self.angles:
            return upright, []
        height, width = bgr.shape[:2]
        rolled = any(abs(r) > ROLLED for r in (roll_of(f) for f in upright) if r is not None)
        full_everywhere = self.mode == "full" or not upright or rolled
        found: list[tuple[float, Face, Face]] = []  # (angle, face in view coords, face in image coords)
        turned: dict[float, tuple[View, np.ndarray]] = {}  # the views that found faces, with their pixels
        for angle in self.angles:
            view = View.of(width, height, angle)
            if view.size[0] * view.size[1] > MAX_VIEW_GROWTH * width * height:
                log.info(
                    "no search at %.0f degrees: the view of a %dx%d image would be too large", angle, width, height
                )
                continue
            pixels = view.image(bgr)
            new = (
                []
                if full_everywhere
                else self._new_faces(view, self._detect(pixels, self._probe_side(view, upright), self.probe), upright)
            )
            if full_everywhere or new:
                new = self._new_faces(view, self._detect(pixels, self.max_side), upright) or new
            if new:
                turned[view.angle] = (view, pixels)
            found += [(view.angle, face, mapped) for face, mapped in new]
        if not found:
            return upright, []
        candidates = [(0.0, face, face, face.score + self.replace_margin) for face in upright]
        candidates += [(angle, face, mapped, face.score) for angle, face, mapped in found]
        kept: list[tuple[float, Face, Face, float]] = []
        for candidate in sorted(candidates, key=lambda item: item[3], reverse=True):
            if not any(overlap(candidate[2], other[2]) >= self.new_face_overlap for other in kept):
                kept.append(candidate)
        views = []
        for angle, (view, pixels) in turned.items():
            faces = [face for a, face, _, _ in kept if a == angle]
            if faces:
                views.append((view, pixels, faces))
        upright = [face for face in upright if any(face is k[1] for k in kept)]
        if views:  # the image holds turned faces: weak upright hits there are often turned hands and objects
            for face in upright:
                if face.score < self.view_score:
                    face.mark_uncertain(
                        f"weak upright hit (score {face.score:.2f}, under {self.view_score:.2f}) "
                        "in a photo of turned faces"
                    )
        return upright, views

    def _probe_side(self, view: View, upright: list[Face]) -> int:
        """Return the longer side the probe searches ``view`` at: ``probe_side``, or more where the upright faces
        are small, so that a face of their median height still spans `PROBE_FACE` pixels in the probe (a tilted
        crowd photo's faces would otherwise vanish in a 640 px probe while YuNet finds some of them tilted)."""
        longest = max(view.size)
        if not upright:
            return self.probe_side
        median = float(np.median([face.box.height for face in upright]))
        return int(min(longest, max(self.probe_side, longest * PROBE_FACE / max(median, 1.0))))

    def _new_faces(self, view: View, faces: list[Face], upright: list[Face]) -> list[tuple[Face, Face]]:
        """Return ``(face in view, face in image)`` for the view's faces that may be new: score high enough, and
        no upright face overlapping it with a score within ``replace_margin`` of its own."""
        new = []
        for face in faces:
            if face.score < self.view_score:
                continue
            face.angle = view.angle
            mapped = view.face_to_image(face)
            clash = any(
                overlap(mapped, u) >= self.new_face_overlap and u.score + self.replace_margin >= face.score
                for u in upright
            )
            if mapped.box.area > 0 and not clash:
                new.append((face, mapped))
        return new

    def _detect(self, view: np.ndarray, side: int | None, detector: Detector | None = None) -> list[Face]:
        """Return the faces in ``view`` searched with its longer side at most ``side``, in view coordinates (by
        ``detector``, default the search's own)."""
        detector = detector or self.detector
        try:
            scale = 1.0 if side is None else min(1.0, side / max(view.shape[:2]))
            if scale == 1.0:
                return detector.detect(view)
            small = cv2.resize(view, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            faces = detector.detect(small)
        except Exception as error:  # a failed view must not lose the upright faces
            log.warning("orientation search failed on a view: %s", error)
            return []
        for face in faces:
            b = face.box
            face.box = Box(b.x1 / scale, b.y1 / scale, b.x2 / scale, b.y2 / scale)
            if face.landmarks5 is not None:
                face.landmarks5 = face.landmarks5 / scale
        return faces

"""Where people are counted: an optional region of interest and a counting line with a direction.

Both take points in pixels of the upright frame, or as fractions of its width and height when every
value lies in [0, 1] (``"0.5,0,0.5,1"`` is a vertical line through the middle of any frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

Point = tuple[float, float]


def parse_points(text: str, what: str, count: int | None = None) -> list[Point]:
    """Return the points of ``"x1,y1,x2,y2,..."``; ``count`` points exactly when given, else at least three."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what}: expected numbers separated by commas, got {text!r}") from None
    if len(values) % 2 or (count is not None and len(values) != 2 * count) or (count is None and len(values) < 6):
        need = f"{count} points ({2 * count} numbers)" if count else "at least 3 points (6 numbers)"
        raise ConfigError(f"{what}: expected {need} as x,y pairs, got {len(values)} numbers")
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _in_pixels(points: Sequence[Point], width: int, height: int) -> np.ndarray:
    array = np.asarray(points, np.float64)
    if np.all((array >= 0.0) & (array <= 1.0)):
        array = array * (width, height)
    return array


@dataclass(frozen=True)
class Region:
    """A polygon of the frame: only people whose face is seen inside it are counted."""

    points: tuple[Point, ...]

    @classmethod
    def parse(cls, text: str) -> Region:
        """Return the region of ``"x1,y1,x2,y2,x3,y3,..."`` (pixels, or fractions of the frame)."""
        return cls(tuple(parse_points(text, "--roi")))

    def contains(self, point: Point, width: int, height: int) -> bool:
        """Return whether ``point`` (pixels) lies inside the region, or on its edge, in a frame of that size."""
        import cv2

        polygon = _in_pixels(self.points, width, height).astype(np.float32)
        return bool(cv2.pointPolygonTest(polygon, (float(point[0]), float(point[1])), False) >= 0)


@dataclass(frozen=True)
class CountingLine:
    """A line segment people cross, with a name for each direction.

    ``names[0]`` ("in" by default) is a crossing along the line's normal ``(y2 - y1, -(x2 - x1))``:
    for a line drawn from top to bottom that is from left to right on the screen; for one drawn from
    left to right, from bottom to top. ``names[1]`` is the other way.
    """

    start: Point
    end: Point
    names: tuple[str, str] = ("in", "out")

    BAND = 0.25
    """A face must be this many of its heights clear of the line on each side for a crossing to count (its
    box jitters about the line without crossing it)."""

    @classmethod
    def parse(cls, text: str, names: str | None = None) -> CountingLine:
        """Return the line of ``"x1,y1,x2,y2"`` with direction names ``"in,out"`` (e.g. ``"boarding,deboarding"``)."""
        start, end = parse_points(text, "--line", 2)
        if start == end:
            raise ConfigError("--line: its two points are the same")
        pair = ("in", "out")
        if names:
            parts = [n.strip() for n in names.split(",")]
            if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
                raise ConfigError(f"--line-names: expected two different names separated by a comma, got {names!r}")
            pair = (parts[0], parts[1])
        return cls(start, end, pair)

    def crossings(self, path: Sequence[tuple[Point, float]], width: int, height: int) -> list[tuple[int, str]]:
        """Return ``(index in path, direction name)`` for each time a face's path crosses the line.

        ``path``: the face's centre and height on successive sightings. A crossing counts when the face
        goes from one side to the other, each side reached by `BAND` face heights, and passes the line
        between the segment's ends (give or take the band).
        """
        start, end = _in_pixels([self.start, self.end], width, height)
        length = float(np.hypot(*(end - start)))
        along_unit = (end - start) / length
        normal = np.array([along_unit[1], -along_unit[0]])
        out: list[tuple[int, str]] = []
        side, last = 0, (0.0, 0.0)
        for i, (centre, face_height) in enumerate(path):
            offset = np.asarray(centre, np.float64) - start
            distance, along = float(offset @ normal), float(offset @ along_unit)
            band = self.BAND * max(face_height, 1.0)
            now = 1 if distance > band else (-1 if distance < -band else 0)
            if now == 0:
                continue
            if side not in (0, now):
                d0, a0 = last
                passed = a0 + (along - a0) * d0 / (d0 - distance)  # where the move met the line
                if -band <= passed <= length + band:
                    out.append((i, self.names[0] if now > 0 else self.names[1]))
            side, last = now, (distance, along)
        return out

"""Video evaluation's inputs: the frames of a video, read in lockstep with its anonymised copy, and the boxes CSV."""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..types import Box

Schedule = dict[int, list[tuple[int, Box]]]
"""Boxes by frame: ``{frame: [(track, box), ...]}``."""
FramePair = tuple[int, np.ndarray | None, np.ndarray | None]
"""``(index, original frame, output frame)``; a frame is ``None`` once its video has ended."""


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Return an iterator over the BGR uint8 frames of the video at ``path`` (PyAV), upright as the file plays.

    A file with a display rotation (a phone's portrait clip) is turned as its player would turn it, as the
    anonymiser does, so an input and its upright output are compared frame for frame.
    """
    import av

    from ..video.io import display_rotation, upright

    rotation = display_rotation(str(path))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield upright(frame.to_ndarray(format="bgr24"), rotation)


def lockstep(original: str | Path, anonymised: str | Path) -> Iterator[FramePair]:
    """Return an iterator of ``(index, original frame, output frame)``; a side is ``None`` once its video ended."""
    pairs = itertools.zip_longest(read_frames(original), read_frames(anonymised))
    for index, (before, after) in enumerate(pairs):
        yield index, before, after


def read_boxes(path: str | Path) -> Schedule:
    """Return the anonymiser's per-frame boxes CSV as ``{frame: [(track, box), ...]}``.

    Columns used: ``frame`` (0-based), ``track`` and ``x1, y1, x2, y2``; the others (``time``,
    ``source``, ``method``, ``verdict``) are ignored.
    """
    boxes: Schedule = defaultdict(list)
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            box = Box(float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"]))
            boxes[int(row["frame"])].append((int(row["track"]), box))
    return dict(boxes)


def track_schedule(boxes: Schedule, every: int) -> Schedule:
    """Return the boxes to sample, ``{frame: [(track, box)]}``: each track's every ``every``-th frame from its first."""
    seen: dict[int, int] = defaultdict(int)
    schedule: Schedule = defaultdict(list)
    for frame in sorted(boxes):
        for track, box in boxes[frame]:
            if seen[track] % every == 0:
                schedule[frame].append((track, box))
            seen[track] += 1
    return dict(schedule)

"""Labelled door-camera clips for testing the counts: known people walk through a door, with known attributes.

`make_door_clip` paints a plain corridor (no real scene), puts a vertical door line in the middle, and
lets each given face photo walk across the frame, left to right or right to left, on a lane of its
own, at its own speed and size, with a little bob. A poster on the wall (a face photo that never
moves) is the face that must be obscured but not counted. The ground truth (`DoorClip`) says who
walked, which way, when, and their labelled age and sex; `score_counts` compares an analysis with it.

The face photos are the caller's (tests and benchmarks use labelled photos they are given, never
committed); nothing here ships a face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .geometry import CountingLine

LINE = "0.5,0,0.5,1"
"""The door: a vertical line through the middle; ``in`` is walking left to right (`CountingLine`)."""


@dataclass(frozen=True)
class Walker:
    """One labelled person of a door clip and their walk."""

    age: float
    sex: str
    direction: str
    """``in`` (left to right) or ``out``."""
    first_frame: int
    last_frame: int
    height: int
    """Face height in pixels."""


@dataclass
class DoorClip:
    """A generated clip and what is in it."""

    path: Path
    fps: int
    frames: int
    width: int
    height: int
    walkers: list[Walker] = field(default_factory=list)
    poster: bool = False

    @property
    def line(self) -> CountingLine:
        """Return the door line (``in``: left to right)."""
        return CountingLine.parse(LINE)


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Return a plain corridor: a shaded wall, a floor, a door frame and fine noise."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    wall = np.array(rng.uniform(120, 200, 3), np.float32)
    floor = np.array(rng.uniform(60, 110, 3), np.float32)
    image = np.where(y < 0.78, wall * (0.85 + 0.15 * y), floor * (1.1 - 0.3 * y)) * np.ones((1, width, 1), np.float32)
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    x = width // 2
    cv2.rectangle(image, (x - width // 10, height // 12), (x + width // 10, int(height * 0.78)), (70, 70, 80), 6)
    return np.asarray(image, np.uint8)


def _sprite(face: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the face photo scaled to ``size`` px high and a soft oval mask (the photo's corners fade out)."""
    scale = size / face.shape[0]
    image = cv2.resize(face, (max(1, round(face.shape[1] * scale)), size), interpolation=cv2.INTER_AREA)
    mask = np.zeros(image.shape[:2], np.float32)
    h, w = mask.shape
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.46), int(h * 0.49)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, size / 30))
    return image, mask[:, :, None]


def _paste(
    frame: np.ndarray, sprite: tuple[np.ndarray, np.ndarray], cx: float, cy: float, body: tuple[int, ...]
) -> None:
    image, mask = sprite
    h, w = mask.shape[:2]
    x0, y0 = round(cx - w / 2), round(cy - h / 2)
    # a body under the head, so the walker is a figure and not a floating face
    cv2.rectangle(frame, (x0 - w // 5, y0 + int(h * 0.9)), (x0 + w + w // 5, y0 + 3 * h), body, -1)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    part = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    blended = region * (1.0 - mask[part]) + image[part].astype(np.float32) * mask[part]
    frame[fy0:fy1, fx0:fx1] = blended.astype(np.uint8)


def still_of(face: np.ndarray, height: int, seed: int = 0, width: int = 1280, frame_height: int = 720) -> np.ndarray:
    """Return one still frame with ``face`` standing in the corridor as a walker of that face height would.

    The same background, oval and body as in a clip, without motion or encoding: what the readers make of
    a walker's face when nothing of the video gets in the way (the still-photo level of a clip).
    """
    rng = np.random.default_rng(seed)
    frame = _background(width, frame_height, rng)
    _paste(frame, _sprite(face, height), width / 2, frame_height * 0.4, (90, 90, 90))
    return frame


def make_door_clip(
    faces: Sequence[tuple[np.ndarray, float, str]],
    path: str | Path,
    poster: np.ndarray | None = None,
    seed: int = 0,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    spacing: float = 1.6,
) -> DoorClip:
    """Write a door clip of ``faces`` (BGR photo, age, sex) walking through, one after another; return its truth.

    People enter ``spacing`` seconds apart on alternating lanes (two depths), each walking all the way
    across in 1.4-1.9 times ``spacing``: people on different lanes pass each other, and one lane's people
    never overlap (faces painted at one depth would hide each other wholly). ``poster``: a face photo hung
    on the wall for the whole clip (must not be counted).
    """
    from ..video.io import EncodeOptions, VideoInfo, VideoWriter

    rng = np.random.default_rng(seed)
    background = _background(width, height, rng)
    plans: list[dict[str, Any]] = []
    for i, (face, age, sex) in enumerate(faces):
        size = int(rng.integers(90, 150))
        seconds = float(rng.uniform(0.7, 0.95) * 2 * spacing)  # gone before the next one on its lane comes in
        first = round(i * spacing * fps) + 5
        last = first + round(seconds * fps)
        direction = "in" if rng.random() < 0.5 else "out"
        lane = height * (0.3 if i % 2 == 0 else 0.5) + float(rng.uniform(-20, 20))
        colour = tuple(int(v) for v in rng.integers(30, 220, 3))
        plans.append(
            {
                "sprite": _sprite(face, size),
                "walker": Walker(float(age), sex, direction, first, last, size),
                "lane": lane,
                "colour": colour,
                "phase": float(rng.uniform(0, 2 * np.pi)),
            }
        )
    total = max((p["walker"].last_frame for p in plans), default=0) + 10
    poster_sprite = _sprite(poster, 120) if poster is not None else None
    info = VideoInfo(str(path), width, height, Fraction(fps), total, "libx264", False, False, Fraction(1, fps))
    writer = VideoWriter(path, info, EncodeOptions(crf=16, preset="veryfast", audio=False))
    complete = False
    try:
        for index in range(total):
            frame = background.copy()
            if poster_sprite is not None:
                x0, y0 = int(width * 0.12), int(height * 0.12)
                cv2.rectangle(
                    frame, (x0 - 10, y0 - 10), (x0 + poster_sprite[0].shape[1] + 10, y0 + 130), (240, 240, 240), -1
                )
                _paste(frame, poster_sprite, x0 + poster_sprite[0].shape[1] / 2, y0 + 60, (240, 240, 240))
            for plan in plans:
                walker: Walker = plan["walker"]
                if not walker.first_frame <= index <= walker.last_frame:
                    continue
                t = (index - walker.first_frame) / max(walker.last_frame - walker.first_frame, 1)
                margin = walker.height
                x = -margin + t * (width + 2 * margin)
                if walker.direction == "out":
                    x = width - x
                y = plan["lane"] + 4.0 * np.sin(plan["phase"] + index * 0.5)
                _paste(frame, plan["sprite"], x, y, plan["colour"])
            writer.write(frame, index)
        complete = True
    finally:
        writer.close(complete=complete)
    return DoorClip(Path(path), fps, total, width, height, [p["walker"] for p in plans], poster is not None)


def score_counts(clip: DoorClip, people: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare an analysis's people rows (`PassengerAnalytics.people`) with the clip's walkers.

    Each walker is matched to the person whose crossing and first sighting fit it best (same direction,
    nearest in time). Returns the counts, the crossings by direction, and per matched walker whether the
    sex is right and the age within 10 years.
    """
    expected = {d: sum(1 for w in clip.walkers if w.direction == d) for d in ("in", "out")}
    found = {d: sum(int(p.get(f"crossed_{d}", 0)) for p in people) for d in ("in", "out")}
    free = list(people)
    matched = []
    for walker in sorted(clip.walkers, key=lambda w: w.first_frame):
        start = walker.first_frame / clip.fps
        candidates = [p for p in free if p["crossings"].split()[:1] == [walker.direction]] or free
        if not candidates:
            break
        best = min(candidates, key=lambda p: abs(p["first_seen_s"] - start))
        free.remove(best)
        age = best.get("age")
        matched.append(
            {
                "age": walker.age,
                "sex": walker.sex,
                "read_age": age,
                "read_sex": best.get("sex"),
                "sex_right": best.get("sex") == walker.sex,
                "age_within_10": age is not None and abs(float(age) - walker.age) <= 10.0,
            }
        )
    return {
        "walkers": len(clip.walkers),
        "people": len(people),
        "crossings_expected": expected,
        "crossings_found": found,
        "sex_right": sum(m["sex_right"] for m in matched),
        "age_within_10": sum(m["age_within_10"] for m in matched),
        "matched": matched,
    }

"""What a video job reports: one entry per track (frames, attributes, verdict) and per-frame boxes in a CSV."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..failures import Failure
from ..imageio import write_atomic
from ..types import EMOTIONS, Attributes, IdentityCheck

BOX_COLUMNS = ("frame", "time", "track", "x1", "y1", "x2", "y2", "source", "method", "verdict")


def aggregate(readings: list[Attributes]) -> Attributes | None:
    """Return one robust reading of a track: median age, sex by mean probability, emotion by mean probabilities."""
    readings = [r for r in readings if r is not None]
    if not readings:
        return None
    ages = [r.age for r in readings if r.age is not None]
    males = [
        (r.sex_confidence or 0.5) if r.sex == "male" else 1.0 - (r.sex_confidence or 0.5)
        for r in readings
        if r.sex is not None
    ]
    totals: defaultdict[str, float] = defaultdict(float)
    for r in readings:
        for name, p in r.emotion_probabilities.items():
            totals[name] += p / len(readings)
    male = float(np.mean(males)) if males else None
    emotion = max(totals, key=lambda name: totals[name]) if totals else None
    if emotion is None:
        emotion = (
            Counter(r.emotion for r in readings if r.emotion).most_common(1)[0][0]
            if any(r.emotion for r in readings)
            else None
        )
    return Attributes(
        age=float(np.median(ages)) if ages else None,
        age_std=float(np.std(ages)) if len(ages) > 1 else (readings[0].age_std if ages else None),
        sex=None if male is None else ("male" if male >= 0.5 else "female"),
        sex_confidence=None if male is None else max(male, 1.0 - male),
        emotion=emotion,
        emotion_probabilities={name: float(totals[name]) for name in EMOTIONS if name in totals},
    )


@dataclass(frozen=True)
class Sighting:
    """One keyframe detection of a track: where, when and how strongly it was found."""

    frame: int
    time: float
    """Seconds from the start of the input (its presentation time)."""
    wall: float | None
    """Wall-clock time (Unix seconds) the frame was read, for live sources; ``None`` for files."""
    box: tuple[float, float, float, float]
    """x1, y1, x2, y2 in pixels of the upright frame."""
    score: float
    camera: tuple[float, float] = (0.0, 0.0)
    """The camera's offset on this frame (`condanon.video.camera.CameraMotion`): the background's shift since the
    first keyframe, in pixels."""

    @property
    def centre(self) -> tuple[float, float]:
        """Return the box centre."""
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0

    @property
    def height(self) -> float:
        """Return the box height."""
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class Reading:
    """One attribute reading of a track on a keyframe."""

    frame: int
    time: float
    wall: float | None
    score: float
    """The detection score of the face read."""
    attributes: Attributes
    whole: bool = True
    """Whether the face lay wholly inside the frame (one cut by its edge reads 10-25 years off)."""


def whole_first(readings: list[Reading]) -> list[Reading]:
    """Return the readings of the whole face (not cut by the frame's edge) when there are any, else all."""
    return [r for r in readings if r.whole] or list(readings)


@dataclass
class TrackReport:
    """What happened to one tracked person over the video."""

    track: int
    method: str
    verdict: str = "anonymized"
    reason: str | None = None
    failure: Failure | None = None
    """Why the track fell back, as a record (``reason`` is its ``detail``)."""
    first_frame: int | None = None
    last_frame: int | None = None
    frames: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    fallback_frames: int = 0
    """Frames where this track was covered by the fallback (bridged frames of the synthetic method, failures)."""
    timeline: list[Reading] = field(default_factory=list, repr=False)
    """The attribute readings of the original face, in frame order."""
    sightings: list[Sighting] = field(default_factory=list, repr=False)
    """The keyframe detections of the track, in frame order."""
    readings_after: list[Attributes] = field(default_factory=list, repr=False)
    checks: list[list[IdentityCheck]] = field(default_factory=list, repr=False)
    synthesis: dict[str, Any] | None = None
    faceness: float | None = None
    """The best faceness any keyframe read for this track (`condanon.faceness`); ``None`` when not checked."""
    doubt: str | None = None
    """Why the track is ``uncertain``: no keyframe read it as a real face (``None`` once one did)."""

    @property
    def readings(self) -> list[Attributes]:
        """Return the attributes of the original face read on keyframes, in frame order: those of the whole face when
        there are any (`Reading.whole`), else all.
        """
        return [reading.attributes for reading in whole_first(self.timeline)]

    @property
    def score(self) -> float | None:
        """Return the best detection score of the track (``None`` when it was never detected)."""
        return max((s.score for s in self.sightings), default=None)

    @property
    def height(self) -> float | None:
        """Return the median height of the track's detected face box in pixels."""
        return float(np.median([s.height for s in self.sightings])) if self.sightings else None

    @property
    def uncertain(self) -> bool:
        """Whether no keyframe read the track as a real face: obscured, never synthesised, not a person to count."""
        return self.doubt is not None

    def read_faceness(self, value: float, doubt: str | None) -> None:
        """Record one keyframe's faceness; one reading as a face (``doubt`` None) clears the doubt for good."""
        if self.faceness is None:
            self.doubt = doubt
        elif doubt is None:
            self.doubt = None
        self.faceness = value if self.faceness is None else max(self.faceness, value)

    def seen(self, frame: int, source: str) -> None:
        """Count one frame on which the track was anonymised."""
        self.first_frame = frame if self.first_frame is None else min(self.first_frame, frame)
        self.last_frame = frame if self.last_frame is None else max(self.last_frame, frame)
        self.frames += 1
        self.sources[source] += 1

    def identity(self) -> list[dict[str, Any]]:
        """Return, per embedder, the worst (most similar) of the periodic re-checks and how many ran."""
        out = []
        by_name: dict[str, list[IdentityCheck]] = {}
        for round_ in self.checks:
            for check in round_:
                by_name.setdefault(check.embedder, []).append(check)
        for name, checks in by_name.items():
            values = [c.value for c in checks if c.value is not None]
            metric = checks[0].metric
            worst = (max(values) if metric == "cosine" else min(values)) if values else None
            out.append(
                {
                    "embedder": name,
                    "metric": metric,
                    "threshold": checks[0].threshold,
                    "checks": len(checks),
                    "worst": None if worst is None else round(float(worst), 4),
                    "matched": sum(1 for c in checks if c.matched),
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        before, after = aggregate(self.readings), aggregate(self.readings_after)
        return {
            "track": self.track,
            "method": self.method,
            "verdict": self.verdict,
            "reason": self.reason,
            "failure": None if self.failure is None else self.failure.to_dict(),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "frames": self.frames,
            "sources": dict(self.sources),
            "fallback_frames": self.fallback_frames,
            "uncertain": self.uncertain,
            "doubt": self.doubt,
            "faceness": None if self.faceness is None else round(self.faceness, 4),
            "attributes_before": before.to_dict() if before else None,
            "attributes_after": after.to_dict() if after else None,
            "readings": len(self.timeline),
            "detections": len(self.sightings),
            "score": None if self.score is None else round(self.score, 4),
            "height": None if self.height is None else round(self.height, 1),
            "identity": self.identity(),
            "synthesis": self.synthesis,
        }


@dataclass
class VideoReport:
    """The outcome of one video: input and output facts, speed, and one entry per track."""

    source: str
    output: str | None
    input: dict[str, Any]
    method: str
    frames_read: int = 0
    frames_written: int = 0
    frames_skipped: int = 0
    seconds: float = 0.0
    audio: str = "none"
    interrupted: bool = False
    tracks: dict[int, TrackReport] = field(default_factory=dict)
    boxes: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Return frames processed per second of wall time."""
        return self.frames_read / self.seconds if self.seconds > 0 else 0.0

    def track(self, track: int, method: str) -> TrackReport:
        """Return the report of ``track`` (created on first use)."""
        if track not in self.tracks:
            self.tracks[track] = TrackReport(track, method)
        return self.tracks[track]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "source": self.source,
            "output": self.output,
            "input": self.input,
            "method": self.method,
            "frames_read": self.frames_read,
            "frames_written": self.frames_written,
            "frames_skipped": self.frames_skipped,
            "seconds": round(self.seconds, 2),
            "fps": round(self.fps, 2),
            "audio": self.audio,
            "interrupted": self.interrupted,
            "settings": self.settings,
            "tracks": [t.to_dict() for t in sorted(self.tracks.values(), key=lambda t: (t.first_frame or 0, t.track))],
        }

    def write_beside(self, video: str | Path) -> Path:
        """Write ``<stem>.tracks.json`` (this report) and ``<stem>.boxes.csv`` beside ``video``, atomically; return the
        CSV's path.
        """
        video = Path(video)
        write_atomic(video.with_name(video.stem + ".tracks.json"), json.dumps(self.to_dict(), indent=2).encode())
        boxes = video.with_name(video.stem + ".boxes.csv")
        write_atomic(boxes, self.boxes_csv().encode())
        return boxes

    def boxes_csv(self) -> str:
        """Return the per-frame boxes as CSV text (columns `BOX_COLUMNS`)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(BOX_COLUMNS)
        writer.writerows(self.boxes)
        return buffer.getvalue()

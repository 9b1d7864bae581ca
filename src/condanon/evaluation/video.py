"""Video metrics for ``condanon evaluate``: leaked frames, identity consistency and attribute jitter of tracks.

Definitions (docs/evaluation.md): a frame leaks when a face that the pipeline knows about, or that
a peer detector finds, is left un-anonymised; identity consistency is the similarity of consecutive
anonymised crops of one track; attribute jitter is how much age, sex and emotion move within a track.

    from condanon.evaluation.video import evaluate_video
    metrics = evaluate_video("in.mp4", "out.mp4", "out.boxes.csv")
    metrics.leaked_frames, metrics.consistency["sface"], metrics.jitter["sex_flip_rate"]

Frame ``i`` of the output is compared with frame ``i`` of the input, so the output must keep the
input's frame count: input frames past the end of the output count as missing, and as leaked.

The leak test detects faces on the ORIGINAL frame with every detector, adds faces the detectors find
on the OUTPUT frame where no original face is (read in the original at the same box), merges them by
IoU, and embeds the original and the output at the same place and alignment: a face leaks when an
embedder still calls the two the same person. An embedder that also calls the original the same person
as a blank (the output with the face painted out in its mean colour) cannot judge that face and is not
asked: dlib does so for about a third of the small faces of crowd.mp4, which would make a blacked-out
video leak.
A face without 5 landmarks (Haar's) gets them from YuNet (score 0.3 and up) run on a crop around its
box; where YuNet finds no face there it is counted as unconfirmed and not judged (Haar fires on
jackets and jeans, whose unchanged pixels dlib then "recognises"). A face that no embedder can judge
is counted as unchecked, not as leaked.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, VideoError
from .video_frames import (
    Schedule,
    lockstep,
    read_boxes,
    track_schedule,
)
from .video_leaks import FrameCheck, Models, check_frame
from .video_tracks import Reading, consistency, jitter, sample_track

log = logging.getLogger(__name__)

PROGRESS_EVERY = 50
"""Log progress every this many frames."""


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _rounded(table: dict[str, float | None] | None) -> dict[str, float | None] | None:
    return None if table is None else {key: _round(value) for key, value in table.items()}


@dataclass
class VideoMetrics:
    """What `evaluate_video` measured on one original / anonymised pair of videos."""

    frames: int
    """Frames compared (present in both videos and sampled by ``every``)."""
    faces: int
    """Faces checked: original faces (all detectors, merged by IoU >= 0.5) plus faces found only on the output."""
    leaked_faces: int
    """Faces whose output still matches the original under any embedder."""
    leaked_frames: int
    """Frames with at least one leaked face, plus every input frame missing from the output."""
    leaked_frame_indices: list[int]
    by_detector: dict[str, int]
    """Original faces found per detector name (before merging)."""
    missing_output_frames: int
    """Input frames past the end of the output (the frame count must match: each is also a leaked frame)."""
    consistency: dict[str, float | None] | None = None
    """Per embedder: mean similarity of consecutive anonymised crops within a track (``None`` without tracks).

    In the embedder's own metric: cosine for sface (higher = more consistent), L2 distance of unit
    vectors for dlib (lower = more consistent); see ``metrics`` in `to_dict`.
    """
    consistency_original: dict[str, float | None] | None = None
    """The same on the original frames, for reference."""
    jitter: dict[str, float | None] | None = None
    """Within-track attributes on the output: ``age_std`` (years, mean over tracks), ``sex_flip_rate`` and
    ``emotion_change_rate`` (share of consecutive samples of a track whose dominant value changes)."""
    jitter_original: dict[str, float | None] | None = None
    output_only_faces: int = 0
    """Faces found only on the output frame (included in ``faces``)."""
    unchecked_faces: int = 0
    """Faces no embedder could judge: none could read them (no landmarks where one needs them), or each one
    that matched the output with the original also matched the original with a blank. Not counted as leaked."""
    unconfirmed_faces: int = 0
    """Boxes (Haar's) where YuNet, even at a 0.3 score, finds no face on a crop around them: not judged
    (Haar fires on jackets and jeans, which dlib then "recognises" in the unchanged pixels)."""
    input_frames: int = 0
    output_frames: int = 0
    track_samples: int = 0
    """Track crops sampled for consistency and jitter."""
    metrics: dict[str, str] = field(default_factory=dict)
    """Each embedder's metric (``cosine`` or ``l2``)."""
    seconds: float = 0.0
    leaks: list[dict[str, Any]] = field(default_factory=list)
    """Each leaked face: frame, box, height, the embedder that matched, the detector that found it."""

    @property
    def passed(self) -> bool:
        """Return whether nothing leaked and the output has every input frame."""
        return self.leaked_faces == 0 and self.missing_output_frames == 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "frames": self.frames,
            "input_frames": self.input_frames,
            "output_frames": self.output_frames,
            "missing_output_frames": self.missing_output_frames,
            "faces": self.faces,
            "output_only_faces": self.output_only_faces,
            "unchecked_faces": self.unchecked_faces,
            "unconfirmed_faces": self.unconfirmed_faces,
            "leaked_faces": self.leaked_faces,
            "leaked_frames": self.leaked_frames,
            "leaked_frame_indices": list(self.leaked_frame_indices),
            "by_detector": dict(self.by_detector),
            "passed": self.passed,
            "metrics": dict(self.metrics),
            "track_samples": self.track_samples,
            "consistency": _rounded(self.consistency),
            "consistency_original": _rounded(self.consistency_original),
            "jitter": _rounded(self.jitter),
            "jitter_original": _rounded(self.jitter_original),
            "seconds": round(self.seconds, 2),
            "leaks": list(self.leaks),
        }


# ---------------------------------------------------------------------------------------------------
# The evaluation


@dataclass
class Tally:
    """Running totals of the frame loop."""

    frames: int = 0
    input_frames: int = 0
    output_frames: int = 0
    faces: int = 0
    leaked_faces: int = 0
    unchecked_faces: int = 0
    unconfirmed_faces: int = 0
    output_only_faces: int = 0
    missing: int = 0
    leaked_frames: list[int] = field(default_factory=list)
    leaks: list[dict[str, Any]] = field(default_factory=list)
    by_detector: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: dict[int, list[tuple[Reading, Reading]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, index: int, check: FrameCheck) -> None:
        """Count one frame's leak test; returns None."""
        self.frames += 1
        self.faces += check.faces
        self.leaked_faces += check.leaked
        self.unchecked_faces += check.unchecked
        self.unconfirmed_faces += check.unconfirmed
        self.output_only_faces += check.output_only
        for name, count in check.by_detector.items():
            self.by_detector[name] += count
        if check.leaked:
            self.leaked_frames.append(index)
            self.leaks += [{"frame": index} | leak for leak in check.leaks]


@dataclass
class FrameLoop:
    """What to do with each frame pair: the leak test every ``every`` frames, and the scheduled track samples."""

    models: Models
    every: int
    schedule: Schedule
    tally: Tally = field(default_factory=Tally)

    def compare(self, index: int, original: np.ndarray, output: np.ndarray) -> None:
        """Test frame ``index`` for leaks if it is sampled, and read its scheduled track boxes; returns None."""
        if original.shape != output.shape:
            raise VideoError(f"frame {index}: the output is {output.shape[:2]}, the input {original.shape[:2]}")
        if index % self.every == 0:
            self.tally.add(index, check_frame(self.models, original, output))
        for track, box in self.schedule.get(index, []):
            self.tally.samples[track].append(sample_track(self.models, original, output, box))

    def run(self, original: Path, anonymised: Path) -> Tally:
        """Return the totals over every frame of the two videos, read in lock-step."""
        tally, started = self.tally, time.perf_counter()
        for index, before, after in lockstep(original, anonymised):
            tally.input_frames += before is not None
            tally.output_frames += after is not None
            if before is not None and after is None:  # the output ended early: a missing frame leaks
                tally.missing += 1
                tally.leaked_frames.append(index)
            elif before is not None and after is not None:
                self.compare(index, before, after)
            if (index + 1) % PROGRESS_EVERY == 0:
                rate = (index + 1) / max(time.perf_counter() - started, 1e-9)
                log.info(
                    "%s: frame %d, %d faces, %d leaked (%.1f frames/s)",
                    original.name, index + 1, tally.faces, tally.leaked_faces, rate,
                )  # fmt: skip
        return tally


def evaluate_video(
    original: str | Path,
    anonymised: str | Path,
    boxes_csv: str | Path | None = None,
    *,
    detectors: Sequence[str] = ("yunet", "haar"),
    embedders: Sequence[str] = ("sface", "dlib"),
    attributes: str | None = "age-sex-mean,emotion",
    every: int = 1,
    track_every: int = 5,
) -> VideoMetrics:
    """Return the leak, consistency and jitter metrics of ``anonymised`` against ``original``.

    ``every`` samples the frames of the leak test (1: every frame, the real metric); ``boxes_csv`` is
    the anonymiser's per-frame boxes, whose tracks are sampled every ``track_every`` frames for
    consistency and jitter (those fields are ``None`` without it, jitter also when ``attributes`` is).
    """
    if every < 1 or track_every < 1:
        raise ConfigError(f"every and track_every must be >= 1 (got {every} and {track_every})")
    started = time.perf_counter()
    original, anonymised = Path(original), Path(anonymised)
    models = Models.create(detectors, embedders, attributes if boxes_csv is not None else None)
    schedule = track_schedule(read_boxes(boxes_csv), track_every) if boxes_csv is not None else {}
    samples = sum(map(len, schedule.values()))
    log.info("evaluating %s against %s (every %d, %d track samples)", anonymised, original, every, samples)
    tally = FrameLoop(models, every, schedule).run(original, anonymised)
    if tally.output_frames > tally.input_frames:
        log.warning("%s has %d frames more than %s", anonymised, tally.output_frames - tally.input_frames, original)
    metrics = summarise(models, tally, tracked=boxes_csv is not None)
    metrics.seconds = time.perf_counter() - started
    log.info(
        "%s: %d of %d frames leak, %d missing (%.1f s)",
        anonymised.name, metrics.leaked_frames, metrics.frames, metrics.missing_output_frames, metrics.seconds,
    )  # fmt: skip
    return metrics


def summarise(models: Models, tally: Tally, tracked: bool) -> VideoMetrics:
    """Return the metrics of a finished frame loop (track metrics only when ``tracked``)."""
    metrics = VideoMetrics(
        frames=tally.frames,
        faces=tally.faces,
        leaked_faces=tally.leaked_faces,
        leaked_frames=len(tally.leaked_frames),
        leaked_frame_indices=sorted(tally.leaked_frames),
        by_detector=dict(tally.by_detector),
        missing_output_frames=tally.missing,
        output_only_faces=tally.output_only_faces,
        unchecked_faces=tally.unchecked_faces,
        unconfirmed_faces=tally.unconfirmed_faces,
        input_frames=tally.input_frames,
        output_frames=tally.output_frames,
        track_samples=sum(map(len, tally.samples.values())),
        metrics={e.name: e.metric for e in models.embedders},
        leaks=list(tally.leaks),
    )
    if tracked:
        before = [[pair[0] for pair in track] for track in tally.samples.values()]
        after = [[pair[1] for pair in track] for track in tally.samples.values()]
        metrics.consistency = consistency(after, models.embedders)
        metrics.consistency_original = consistency(before, models.embedders)
        if models.estimator is not None:
            metrics.jitter, metrics.jitter_original = jitter(after), jitter(before)
    return metrics

"""Video metrics for ``condanon evaluate``: leaked frames, identity consistency and attribute jitter of tracks.

Definitions (``shared/docs/field.md``, item 4): a frame leaks when a face that the pipeline knows about, or that
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

import csv
import dataclasses
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..attributes import ATTRIBUTE_ESTIMATORS, AttributeEstimator, CombinedEstimator
from ..detection import DETECTORS, Detector
from ..errors import ConfigError, VideoError
from ..identity import EMBEDDERS, Embedder, is_match, similarity
from ..types import Attributes, Box, Face

log = logging.getLogger(__name__)

MERGE_IOU = 0.5
"""Two detections with at least this IoU are the same face (across detectors, and original vs output)."""
LANDMARK_CROP = 2.0
"""YuNet looks for a box's landmarks in the box grown by this factor about its centre."""
LANDMARK_MIN_IOU = 0.3
"""The YuNet face found in that crop must overlap the box by at least this IoU."""
PROGRESS_EVERY = 50
"""Log progress every this many frames."""
CONFIRM_SCORE = 0.3
"""A face without landmarks (Haar's) counts only where YuNet, this permissive, finds a face on a crop around it."""
BLANK_SCALE = 2.0
"""The blank control paints out the face box grown by this factor (the embedders' chips reach past the box)."""
Schedule = dict[int, list[tuple[int, Box]]]
"""Boxes by frame: ``{frame: [(track, box), ...]}``."""
FramePair = tuple[int, np.ndarray | None, np.ndarray | None]
"""``(index, original frame, output frame)``; a frame is ``None`` once its video has ended."""


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
# Inputs: frames and the boxes CSV


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


# ---------------------------------------------------------------------------------------------------
# Models, created once per call


@dataclass
class Models:
    """The detectors, embedders and attribute estimator one evaluation uses."""

    detectors: list[Detector]
    embedders: list[Embedder]
    landmarker: Detector
    """YuNet, for the landmarks of boxes that have none."""
    estimator: AttributeEstimator | None = None

    @classmethod
    def create(cls, detectors: Sequence[str], embedders: Sequence[str], attributes: str | None) -> Models:
        """Return the models named (unknown names raise `ConfigError`)."""
        found = [DETECTORS.create(name) for name in detectors]
        yunet = DETECTORS.create("yunet", score_threshold=CONFIRM_SCORE)
        names = [name.strip() for name in (attributes or "").split(",") if name.strip()]
        estimator = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create(n) for n in names]) if names else None
        return cls(found, [EMBEDDERS.create(name) for name in embedders], yunet, estimator)


# ---------------------------------------------------------------------------------------------------
# Faces: merging, landmarks, embedding


def merge_faces(faces: list[Face], threshold: float = MERGE_IOU) -> list[Face]:
    """Return ``faces`` with those overlapping by IoU >= ``threshold`` merged (one with landmarks preferred)."""
    kept: list[Face] = []
    for face in faces:
        index = next((i for i, k in enumerate(kept) if k.box.iou(face.box) >= threshold), None)
        if index is None:
            kept.append(face)
        elif kept[index].landmarks5 is None and face.landmarks5 is not None:
            kept[index] = face
    return kept


def find_landmarks(yunet: Detector, image: np.ndarray, box: Box) -> Face | None:
    """Return the YuNet face (box and 5 landmarks) that best overlaps ``box`` in a crop around it, or ``None``."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box.scaled(LANDMARK_CROP).clipped(width, height).to_int()
    if min(x2 - x1, y2 - y1) < 8:
        return None
    found = yunet.detect(np.ascontiguousarray(image[y1:y2, x1:x2]))
    for face in found:
        face.box = face.box.shifted(x1, y1)
        face.landmarks5 = face.landmarks5 + np.array([x1, y1], np.float32) if face.landmarks5 is not None else None
    best = max(found, key=lambda f: f.box.iou(box), default=None)
    if best is None or best.landmarks5 is None or best.box.iou(box) < LANDMARK_MIN_IOU:
        return None
    return best


def with_landmarks(yunet: Detector, face: Face, images: Sequence[np.ndarray]) -> Face:
    """Return ``face``, or YuNet's face at its place in the first of ``images`` where one is found."""
    if face.landmarks5 is not None:
        return face
    for image in images:
        found = find_landmarks(yunet, image, face.box)
        if found is not None:
            return dataclasses.replace(found, detector=face.detector, embeddings={})
    return face


def embed_one(embedder: Embedder, image: np.ndarray, face: Face) -> np.ndarray | None:
    """Return ``embedder``'s vector of ``face`` in ``image``, or ``None`` when it cannot read the face."""
    try:
        return embedder.embed(image, [dataclasses.replace(face, embeddings={})])[0]
    except ValueError as error:  # SFace without landmarks
        log.debug("%s cannot read the face at %s: %s", embedder.name, face.box.to_list(), error)
        return None


def embed(embedders: Sequence[Embedder], image: np.ndarray, face: Face) -> dict[str, np.ndarray]:
    """Return ``{embedder: vector}`` of ``face`` in ``image`` for each embedder that can read it."""
    vectors = {e.name: embed_one(e, image, face) for e in embedders}
    return {name: vector for name, vector in vectors.items() if vector is not None}


# ---------------------------------------------------------------------------------------------------
# The leak test of one frame


@dataclass
class FrameCheck:
    """The leak test of one frame."""

    faces: int = 0
    leaked: int = 0
    unchecked: int = 0
    output_only: int = 0
    by_detector: dict[str, int] = field(default_factory=dict)
    leaks: list[dict[str, Any]] = field(default_factory=list)
    """Each leaked face: box, height, the embedder that matched, the detector that found it."""
    unconfirmed: int = 0


def detect_all(detectors: Sequence[Detector], image: np.ndarray) -> dict[str, list[Face]]:
    """Return each detector's faces in ``image``, by detector name."""
    return {detector.name: detector.detect(image) for detector in detectors}


def faces_to_check(models: Models, original: np.ndarray, output: np.ndarray) -> tuple[list[Face], dict[str, int], int]:
    """Return the merged faces to check, the original faces per detector, and how many were found only on the output."""
    before = detect_all(models.detectors, original)
    merged = merge_faces([face for faces in before.values() for face in faces])
    merged = [with_landmarks(models.landmarker, face, [original, output]) for face in merged]
    after = merge_faces([face for faces in detect_all(models.detectors, output).values() for face in faces])
    extra = [face for face in after if all(face.box.iou(known.box) < MERGE_IOU for known in merged)]
    extra = [with_landmarks(models.landmarker, face, [output, original]) for face in extra]
    return merged + extra, {name: len(faces) for name, faces in before.items()}, len(extra)


def painted_out(image: np.ndarray, box: Box, scale: float = BLANK_SCALE) -> np.ndarray:
    """Return a copy of ``image`` with ``box`` grown by ``scale`` filled with the mean colour inside ``box``."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box.clipped(width, height).to_int()
    colour = image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)].reshape(-1, 3).mean(axis=0)
    out = image.copy()
    x1, y1, x2, y2 = box.scaled(scale).clipped(width, height).to_int()
    out[y1:y2, x1:x2] = colour.astype(np.uint8)
    return out


def matches(embedder: Embedder, a: np.ndarray, b: np.ndarray) -> bool:
    """Return whether ``embedder`` calls the vectors ``a`` and ``b`` the same person."""
    return is_match(embedder.metric, similarity(embedder.metric, a, b), embedder.threshold)


def face_leaks(embedders: Sequence[Embedder], original: np.ndarray, output: np.ndarray, face: Face) -> str | bool | None:
    """Return the name of an embedder that can judge ``face`` and matches its output with its original;
    ``False`` when none matches, ``None`` when none can judge it.

    An embedder cannot judge a face whose original it also matches with the output with the face painted
    out (`painted_out`): dlib calls about a third of the small faces of crowd.mp4 the same person as a
    blank, so a blacked-out output would "leak" them. The blank is only made when the output matches.
    Embedders run in order and stop at the first leak.
    """
    judged, blank = False, None
    for embedder in embedders:
        before = embed_one(embedder, original, face)
        after = embed_one(embedder, output, face) if before is not None else None
        if before is None or after is None:
            continue
        if not matches(embedder, before, after):
            judged = True
            continue
        blank = painted_out(output, face.box) if blank is None else blank
        control = embed_one(embedder, blank, face)
        if control is not None and matches(embedder, before, control):
            log.debug("%s cannot tell the face at %s from a blank", embedder.name, face.box.to_list())
            continue
        return embedder.name
    return False if judged else None


def check_frame(models: Models, original: np.ndarray, output: np.ndarray) -> FrameCheck:
    """Return the leak test of one frame pair."""
    faces, by_detector, output_only = faces_to_check(models, original, output)
    check = FrameCheck(faces=len(faces), output_only=output_only, by_detector=by_detector)
    for face in faces:
        if face.landmarks5 is None:  # no face model finds a face there (Haar fires on jackets and jeans)
            check.unconfirmed += 1
            continue
        leaked = face_leaks(models.embedders, original, output, face)
        if isinstance(leaked, str):
            check.leaked += 1
            check.leaks.append({"box": [round(v) for v in face.box.to_list()], "height": round(face.box.height), "embedder": leaked,
                                "detector": face.detector})
        check.unchecked += leaked is None
    return check


# ---------------------------------------------------------------------------------------------------
# Track samples: identity consistency and attribute jitter


@dataclass
class Reading:
    """One track sample in one video: identity vectors and attributes (``None`` where they could not be read)."""

    vectors: dict[str, np.ndarray]
    attributes: Attributes | None


def read_face(models: Models, image: np.ndarray, face: Face) -> Reading:
    """Return the vectors and attributes of ``face`` in ``image``."""
    vectors = embed(models.embedders, image, face)
    attributes = None
    if models.estimator is not None:
        try:  # the estimators read the vectors already computed on this image from face.embeddings
            attributes = models.estimator.estimate(image, [dataclasses.replace(face, embeddings=dict(vectors))])[0]
        except ValueError as error:  # age and sex need landmarks
            log.debug("no attributes at %s: %s", face.box.to_list(), error)
    return Reading(vectors, attributes)


def sample_track(models: Models, original: np.ndarray, output: np.ndarray, box: Box) -> tuple[Reading, Reading]:
    """Return the ``(original, output)`` readings at a track's ``box`` (landmarks from YuNet on each frame)."""
    plain = Face(box=box, score=1.0, detector="track")
    before = find_landmarks(models.landmarker, original, box) or plain
    after = find_landmarks(models.landmarker, output, box) or before
    return read_face(models, original, before), read_face(models, output, after)


def consistency(tracks: Sequence[Sequence[Reading]], embedders: Sequence[Embedder]) -> dict[str, float | None]:
    """Return per embedder the mean similarity of consecutive readings of the same track (``None``: no pair)."""
    out: dict[str, float | None] = {}
    for embedder in embedders:
        values = [
            similarity(embedder.metric, a, b)
            for track in tracks
            for a, b in itertools.pairwise([r.vectors[embedder.name] for r in track if embedder.name in r.vectors])
        ]
        out[embedder.name] = float(np.mean(values)) if values else None
    return out


def change_rate(tracks: Sequence[Sequence[Any]]) -> float | None:
    """Return the share of consecutive values within each sequence that differ (``None``: no pair)."""
    pairs = [a != b for values in tracks for a, b in itertools.pairwise(values)]
    return float(np.mean(pairs)) if pairs else None


def jitter(tracks: Sequence[Sequence[Reading]]) -> dict[str, float | None]:
    """Return the within-track age spread (years, mean over tracks) and the sex and emotion change rates."""
    read = [[r.attributes for r in track if r.attributes is not None] for track in tracks]
    ages = [[a.age for a in track if a.age is not None] for track in read]
    spreads = [float(np.std(values)) for values in ages if len(values) >= 2]
    return {
        "age_std": float(np.mean(spreads)) if spreads else None,
        "sex_flip_rate": change_rate([[a.sex for a in track if a.sex is not None] for track in read]),
        "emotion_change_rate": change_rate([[a.emotion for a in track if a.emotion is not None] for track in read]),
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

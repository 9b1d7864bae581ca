"""Run every method on every labelled photo and measure it (definitions: docs/evaluation.md).

Each photo's faces are found once; each method anonymises all of them and is measured on the main
(largest) face. The attacker aligns at the original face's place with the original landmarks, so a
face that is no longer detected is still measured: undetectable is not unidentifiable.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

import cv2
import numpy as np

from ..detection import DETECTORS, PaddedDetector
from ..errors import CondanonError, ConfigError
from ..identity import EMBEDDERS, embed_original, judge
from ..imageio import read_image
from ..methods import AUTO, MethodOptions, method_names, method_options
from ..options import ATTRIBUTE_READERS, Checks
from ..pipeline import Anonymizer, auto
from .dataset import Dataset, Sample, load_dataset, subset
from .realism import HeldOutReaders, Reading, grey_crop, measure, mirrored_in_place
from .records import FaceRecord

log = logging.getLogger(__name__)

IN_LOOP = "sface"
HELD_OUT = "dlib"
SECOND_DETECTOR = "haar"
PADDING_NOTE = (
    "Images whose longer side is at most 480 px (the tight crops) are padded by a quarter of that side "
    "with their mean colour before YuNet runs, and upscaled so the longer side is at least 160 px; the "
    "anonymised image keeps the input's size; the second detector (Haar) gets the same padding. The main "
    "face is the largest one found."
)


@dataclass(frozen=True)
class MethodSpec:
    """A method and its options, parsed from ``name[:key=value[:key=value]]`` (e.g. ``blur:strength=0.25``)."""

    label: str
    method: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str) -> MethodSpec:
        """Return the spec written as ``name[:key=value...]``; raise `ConfigError` for unknown names."""
        name, *pairs = text.strip().split(":")
        if name != "original" and name not in method_names():
            raise ConfigError(f"unknown method {name!r} (known: original, {', '.join(method_names())})")
        options = []
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"method option {pair!r} is not key=value")
            options.append((key.replace("-", "_"), _number(value)))
        spec = cls(text.strip(), name, tuple(options))
        if name != "original":
            spec.method_options()  # an option the method does not have is refused here, before any work
        return spec

    def method_options(self) -> MethodOptions:
        """Return the method's options (`condanon.methods`; ``auto`` resolved as the SDK resolves it)."""
        if self.method == AUTO:
            if self.options:
                raise ConfigError("auto takes no options: name the method (synthetic:... or dp2:...)")
            return auto()
        return method_options(self.method, dict(self.options))


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


@dataclass
class SampleOutcome:
    """What the evaluation of one photo produced: a record per method and, for the contact sheet, crops."""

    records: list[FaceRecord]
    vectors_before: dict[str, np.ndarray]
    thumbnails: dict[str, np.ndarray] | None = None
    error: str | None = None


class _SampleFields(TypedDict):
    """The `FaceRecord` fields that every record of one sample shares (its labels among them)."""

    dataset: str
    sample: int
    path: str
    identity: str | None
    label_age: float | None
    label_sex: str | None
    label_emotion: str | None


class _Worker:
    """Holds one `Anonymizer` per method and the detectors; evaluates one sample at a time."""

    def __init__(self, specs: list[MethodSpec], seed: int) -> None:
        self.specs = specs
        # every method reads the attributes here (blur, pixelate and mask only do when asked): their retention is
        # what the evaluation measures; the held-out attacker is the evaluation's own
        self.base = Anonymizer("mask", seed=seed, checks=Checks(ATTRIBUTE_READERS, verify=False))
        self.anonymizers = {
            s.label: Anonymizer(s.method_options(), seed=seed, checks=Checks(ATTRIBUTE_READERS))
            for s in specs
            if s.method != "original"
        }
        self.embedders = {name: EMBEDDERS.create(name) for name in (IN_LOOP, HELD_OUT)}
        self.second = PaddedDetector(DETECTORS.create(SECOND_DETECTOR))  # same padding as YuNet gets
        self.readers = HeldOutReaders()

    def run(self, sample: Sample, thumbnail: bool) -> SampleOutcome:
        """Return the records of every method on ``sample``'s main face."""
        base = _SampleFields(
            dataset=sample.dataset,
            sample=sample.index,
            path=str(sample.path),
            identity=sample.identity,
            label_age=sample.age,
            label_sex=sample.sex,
            label_emotion=sample.emotion,
        )
        try:
            image = read_image(sample.path)
        except CondanonError as error:
            return SampleOutcome([], {}, error=str(error))
        faces = self.base.find_faces(image)
        if not faces:
            return SampleOutcome([FaceRecord(method=s.label, detected=False, **base) for s in self.specs], {})
        main = max(range(len(faces)), key=lambda i: faces[i].box.area)
        vectors = {name: embed_original(e, image, faces) for name, e in self.embedders.items()}
        target = faces[main]
        read_before = self.readers.read(image, target)
        read_mirror = self.readers.read(*mirrored_in_place(image, target))
        crop_before = grey_crop(image, target)
        records, crops = [], {}
        if thumbnail:
            crops["original"] = _crop(image, target.box)
        for spec in self.specs:
            start = time.perf_counter()
            if spec.method == "original":
                output, report = image, None
            else:
                copies = [replace(face) for face in faces]  # shares the originals' cached vectors
                output, reports = self.anonymizers[spec.label].anonymize_faces(image, copies)
                report = reports[main]
            elapsed = (time.perf_counter() - start) * 1000 / len(faces)
            record = FaceRecord(
                method=spec.label,
                detected=True,
                faces_in_image=len(faces),
                box=target.box.to_list(),
                ms=elapsed,
                **base,
            )
            self._identity(record, report, vectors, main, output, target)
            self._attributes(record, target, report)
            self._detectability(record, output, target)
            self._realism(record, image, output, target, read_before, read_mirror)
            record.crops = {"before": crop_before, "after": grey_crop(output, target)}
            records.append(record)
            if thumbnail:
                crops[spec.label] = _crop(output, target.box)
        return SampleOutcome(records, {k: v[main] for k, v in vectors.items()}, crops or None)

    def _identity(
        self,
        record: FaceRecord,
        report: Any,
        vectors: dict[str, np.ndarray],
        main: int,
        output: np.ndarray,
        target: Any,
    ) -> None:
        for name, embedder in self.embedders.items():
            before = vectors[name][main]
            after = before if report is None else report.embeddings_after.get(name)
            if after is None:  # the method did not check itself with this embedder: measure here
                after = embedder.embed(output, [replace(target, embeddings={})])[0]
            check = judge(embedder, before, after)
            value, matched = check.value, check.matched
            record.vectors_after[name] = after
            if name == IN_LOOP:
                record.sface_similarity, record.sface_matched = value, matched
            else:
                record.dlib_distance, record.dlib_matched = value, matched
        if report is not None:
            record.verdict, record.reason = report.verdict, report.reason
            record.failure_kind = None if report.failure is None else report.failure.kind
            record.attempts = report.attempts
            synthesis = report.synthesis or {}
            record.drift = "; ".join(synthesis.get("drift", [])) if synthesis else None
            record.stretch = synthesis.get("stretch") if report.verdict != "fallback" else None
        else:
            record.verdict = "original"

    @staticmethod
    def _attributes(record: FaceRecord, target: Any, report: Any) -> None:
        before = target.attributes
        after = before if report is None else report.attributes_after
        if before is not None:
            record.age_before, record.sex_before, record.emotion_before = before.age, before.sex, before.emotion
        if after is not None:
            record.age_after, record.sex_after, record.emotion_after = after.age, after.sex, after.emotion

    def _realism(
        self, record: FaceRecord, image: np.ndarray, output: np.ndarray, target: Any, before: Reading, mirror: Reading
    ) -> None:
        for name, value in measure(image, output, target).items():
            setattr(record, name, value)
        after = before if output is image else self.readers.read(output, target)
        for kind, reading in (("before", before), ("after", after), ("mirror", mirror)):
            for attribute in ("age", "sex", "emotion"):
                setattr(record, f"ho_{attribute}_{kind}", getattr(reading, attribute))

    def _detectability(self, record: FaceRecord, output: np.ndarray, target: Any) -> None:
        record.detected_after_primary = any(f.box.iou(target.box) >= 0.5 for f in self.base.detector.detect(output))
        record.detected_after_second = any(f.box.iou(target.box) >= 0.5 for f in self.second.detect(output))


def _crop(image: np.ndarray, box: Any, size: int = 112) -> np.ndarray:
    """Return a ``size`` px square crop around ``box`` (grown 1.6x), padded black at the image border."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box.scaled(1.6).to_int()
    side = max(x2 - x1, y2 - y1, 1)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    x1, y1 = cx - side // 2, cy - side // 2
    pad = max(0, -x1, -y1, x1 + side - width, y1 + side - height)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)) if pad else image
    crop = padded[y1 + pad : y1 + pad + side, x1 + pad : x1 + pad + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


_worker: _Worker | None = None


def _init_worker(specs: list[MethodSpec], seed: int) -> None:
    global _worker
    cv2.setNumThreads(1)
    _worker = _Worker(specs, seed)


def _run_one(job: tuple[Sample, bool]) -> SampleOutcome:
    assert _worker is not None
    sample, _ = job
    try:
        return _worker.run(*job)
    except Exception as error:  # one broken photo must not end a long evaluation
        log.warning("evaluation of %s failed: %s", sample.path, error)
        return SampleOutcome([], {}, error=f"{sample.path}: {type(error).__name__}: {error}")


def run_samples(
    datasets: list[Dataset],
    specs: list[MethodSpec],
    seed: int,
    workers: int,
    thumbnails_per_dataset: int,
    progress: Callable[[int], None] | None,
) -> list[tuple[Sample, SampleOutcome]]:
    """Return ``(sample, outcome)`` for every sample, in dataset order, computed by ``workers`` processes."""
    jobs: list[tuple[Sample, bool]] = []
    for dataset in datasets:
        for i, sample in enumerate(dataset.samples):
            jobs.append((sample, i < thumbnails_per_dataset))
    results: list[SampleOutcome] = []
    if workers <= 1:
        _init_worker(specs, seed)
        for job in jobs:
            results.append(_run_one(job))
            if progress:
                progress(1)
    else:
        # "spawn", not fork: a forked child of a process that already runs model threads (onnxruntime,
        # OpenCV) can inherit a held lock and hang for ever.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(specs, seed)) as pool:
            for outcome in pool.map(_run_one, jobs, chunksize=4):
                results.append(outcome)
                if progress:
                    progress(1)
    return [(job[0], outcome) for job, outcome in zip(jobs, results)]


def reidentify(outcomes: list[tuple[Sample, SampleOutcome]]) -> None:
    """Fill ``reid_*_hit``: is the anonymised face's nearest neighbour among the OTHER originals of its set its own
    identity?
    """
    by_dataset: dict[str, list[tuple[Sample, SampleOutcome]]] = {}
    for sample, outcome in outcomes:
        if sample.identity and outcome.vectors_before:
            by_dataset.setdefault(sample.dataset, []).append((sample, outcome))
    embedders = {name: EMBEDDERS.create(name) for name in (IN_LOOP, HELD_OUT)}
    for members in by_dataset.values():
        identities = np.array([s.identity for s, _ in members])
        indices = np.array([s.index for s, _ in members])
        counts = {i: int((identities == i).sum()) for i in set(identities)}
        for name, embedder in embedders.items():
            gallery = np.stack([o.vectors_before[name] for _, o in members])
            for sample, outcome in members:
                if counts[sample.identity] < 2:
                    continue  # no other photo of this person: closed-set re-identification is undefined
                for record in outcome.records:
                    probe = record.vectors_after.get(name)
                    if probe is None:
                        continue
                    if embedder.metric == "cosine":
                        scores = gallery @ probe
                        scores[indices == sample.index] = -np.inf
                        best = int(np.argmax(scores))
                    else:
                        scores = np.linalg.norm(gallery - probe, axis=1)
                        scores[indices == sample.index] = np.inf
                        best = int(np.argmin(scores))
                    setattr(record, f"reid_{name}_hit", bool(identities[best] == sample.identity))


def default_workers() -> int:
    """Return the worker processes to use: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def load_all(folders: Iterable[str | Path], limit: int | None, seed: int) -> list[Dataset]:
    """Return the datasets in ``folders``, each cut to ``limit`` samples."""
    return [subset(load_dataset(folder), limit, seed) for folder in folders]

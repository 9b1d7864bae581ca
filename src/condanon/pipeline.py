"""`Anonymizer`, the SDK entry point: detect, landmark, estimate, anonymise, verify, report.

The caller's image is never modified. Every face gets a `FaceReport`. Failing closed: if anything
goes wrong for one face, or the in-loop embedder still recognises the person after anonymisation,
that face gets the fallback (a solid mask by default) and its report says why. An image with no
face is a normal result with no reports.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .attributes import ATTRIBUTE_ESTIMATORS, CombinedEstimator, estimate_each
from .conventional import OBSCURERS, Obscurer
from .detection import DETECTORS, Detector
from .errors import CondanonError, ConfigError, ModelError
from .faceness import FACENESS, FacenessCheck, mark_doubtful
from .failures import Failure, small_failure, uncertain_failure
from .identity import EMBEDDERS, Embedder, embed_original, judge, unjudged
from .identity.strangers import identity_bar
from .imageio import as_bgr
from .landmarks import LANDMARKERS
from .methods import (
    AUTO,
    FALLBACKS,
    DP2Options,
    MethodOptions,
    ObscureOptions,
    SynthesisOptions,
    SyntheticOptions,
    method_options,
)
from .options import ATTRIBUTE_READERS, Checks, Detection
from .orientation import OrientationSearch, View
from .runtime import preload_onnxruntime
from .synthesis.backend import CheckedSynthesizer, LoopChecks, Seen
from .types import Attributes, Channels, Face, FaceReport, Result

log = logging.getLogger(__name__)

ATTRIBUTE_NAMES = ("age", "sex", "emotion")
MIN_SYNTHETIC_HEIGHT = 32.0
"""Faces less high than this (px) get the fallback instead of a synthetic face, in photos and videos alike: too
few pixels to carry one (SFace still matched 22-29 px synthetic faces on crowd.mp4 where the loop read them
as safe), and their attributes are unreadable."""


def resolve_method(method: str, dp2_weights: str = "fdf256") -> str:
    """Return the method to run for ``method``: ``"auto"`` becomes ``"dp2"`` where PyTorch is installed and the
    checkpoint ``dp2_weights`` is on disk (nothing is downloaded, its checksum is checked when it loads), and
    ``"synthetic"`` elsewhere; any other name is itself."""
    if method != "auto":
        return method
    import importlib.util

    from .weights import MODELS

    if importlib.util.find_spec("torch") is None:
        chosen, why = "synthetic", "PyTorch is not installed"
    else:
        entry = MODELS.get(f"dp2-{dp2_weights}")
        present = entry.locate().is_file() if entry is not None else Path(dp2_weights).expanduser().is_file()
        chosen, why = (
            ("dp2", f"checkpoint {dp2_weights} found") if present else ("synthetic", f"no dp2 checkpoint {dp2_weights}")
        )
    log.info("method auto: %s (%s)", chosen, why)
    return chosen


def auto(dp2: DP2Options | None = None, synthetic: SyntheticOptions | None = None) -> MethodOptions:
    """Return what ``"auto"`` stands for here: ``dp2`` (these options) where PyTorch and its checkpoint are
    installed, else ``synthetic`` (these options); see `resolve_method`."""
    dp2 = dp2 or DP2Options()
    return dp2 if resolve_method("auto", dp2.weights) == "dp2" else (synthetic or SyntheticOptions())


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _add(timings: dict[str, float], name: str, start: float) -> None:
    """Add the milliseconds since ``start`` to ``timings[name]`` (stages run once per view)."""
    timings[name] = timings.get(name, 0.0) + _ms(start)


def _method(method: str | MethodOptions) -> MethodOptions:
    """Return the options of ``method`` (a name, ``"auto"`` resolved, or options already)."""
    if isinstance(method, MethodOptions):
        return method
    if method == AUTO:
        return auto()
    return method_options(method)


def _fallback(fallback: str | ObscureOptions) -> ObscureOptions:
    """Return the fallback's options; a synthetic method cannot be one (it may itself fail)."""
    options = fallback if isinstance(fallback, MethodOptions) else method_options(fallback)
    if not isinstance(options, ObscureOptions):
        raise ConfigError(f"the fallback must be a conventional method ({', '.join(FALLBACKS)}), not {options.name!r}")
    return options


def _detector(name: str, score_threshold: float | None, **options: Any) -> Detector:
    """Return detector ``name`` with ``options``, and ``score_threshold`` where given (a detector without one
    refuses it)."""
    if score_threshold is None:
        return DETECTORS.create(name, **options)
    try:
        return DETECTORS.create(name, score_threshold=score_threshold, **options)
    except TypeError:
        raise ConfigError(f"detector {name!r} takes no score_threshold") from None


def _obscurer(options: MethodOptions) -> Obscurer:
    """Return the conventional method of ``options``."""
    values = dataclasses.asdict(options)
    return OBSCURERS.create(options.name, **values)


def _synthesizer(
    options: SynthesisOptions, embedder: Embedder, preserve: tuple[str, ...], estimator: Any
) -> CheckedSynthesizer:
    """Return the synthesis backend of ``options``, with the checks every backend shares."""
    checks = LoopChecks(preserve=preserve, candidates=options.candidates, margin=options.margin, strict=options.strict)
    # yunet: the still-a-face check
    synthesizer: CheckedSynthesizer = options.backend(embedder, checks, DETECTORS.create("yunet"), estimator)
    return synthesizer


def settings_of(
    method: MethodOptions,
    preserve: Iterable[str],
    seed: int,
    detection: Detection,
    checks: Checks,
    fallback: MethodOptions,
) -> dict[str, Any]:
    """Return the settings an `Anonymizer` built from these options runs with (`Anonymizer.settings`), without building
    it.
    """
    return {
        "method": method.to_dict(),
        "preserve": list(preserve),
        "seed": seed,
        "detection": detection.to_dict(),
        "checks": checks.to_dict(),
        "fallback": fallback.to_dict(),
    }


@dataclass
class BatchItem:
    """One input of a batch: its result, or the one-line error that stopped it."""

    index: int
    source: str | None
    result: Result | None = None
    error: str | None = None


class Anonymizer:
    """Finds every face, estimates its attributes, anonymises it, checks the output, reports.

    Args:
        method: a method's name (``"synthetic"``, ``"dp2"``, ``"pixelate"``, ``"blur"``, ``"mask"``) or its
            options (`condanon.methods`: ``SyntheticOptions(candidates=8)``, ``BlurOptions(strength=0.3)``).
            ``"synthetic"`` draws a new face that keeps age, sex, expression and pose; ``"dp2"`` has
            DeepPrivacy2's generator inpaint it (``condanon[dp2]`` and a checkpoint, docs/dp2.md); ``"auto"``
            is ``dp2`` where PyTorch and the checkpoint are installed, else ``synthetic`` (``self.method``
            says which).
        preserve: attributes the method should keep. The synthetic methods check them on every candidate
            and fall back when none keeps them; their reports give them before and after. Blur, pixelate and
            mask read no attributes unless ``checks`` asks (`Checks.attributes`).
        seed: makes every random choice reproducible (the same image and seed give the same output).
        detection: how faces are found (`condanon.options.Detection`: detector, score threshold,
            orientation search, faceness check).
        checks: what reads and checks the faces (`condanon.options.Checks`: attribute backends, the
            in-loop embedder, the held-out attacker, whether the output is verified).
        fallback: the conventional method (a name or its options) that covers a face that fails.
    """

    def __init__(
        self,
        method: str | MethodOptions = "synthetic",
        preserve: Iterable[str] = ATTRIBUTE_NAMES,
        seed: int = 0,
        detection: Detection | None = None,
        checks: Checks | None = None,
        fallback: str | ObscureOptions = "mask",
    ) -> None:
        preload_onnxruntime()  # before any model package imports it (a long command line crashes its import)
        options = _method(method)
        self.preserve = tuple(preserve)
        unknown = set(self.preserve) - set(ATTRIBUTE_NAMES)
        if unknown:
            raise ConfigError(f"cannot preserve {sorted(unknown)} (known: {', '.join(ATTRIBUTE_NAMES)})")
        self.options = options
        self.method = options.name
        self.seed = seed
        self.detection = detection = detection or Detection()
        self.checks = checks = checks or Checks()
        self.verify = checks.verify
        self.fallback_options = fallback_options = _fallback(fallback)
        self.detector: Detector = _detector(detection.detector, detection.score_threshold)
        # Turned views are searched by YuNet alone: the recall nets of the ensembles are upright-only and slow.
        # Its probes are one YuNet pass at the probe's size: the pyramid and tiles cost up to five times as much there.
        probe = _detector("yunet", detection.score_threshold, pyramid=False, tiles=False)
        self.orientation = OrientationSearch(
            _detector("yunet", detection.score_threshold), mode=detection.orientation, probe=probe
        )
        self.faceness: FacenessCheck | None = FACENESS.create(detection.faceness) if detection.faceness else None
        self.landmarker = LANDMARKERS.create("dlib68")
        readers = checks.readers(isinstance(options, SynthesisOptions))
        self.reads_attributes = bool(readers)
        """Whether faces get attributes: synthesis methods always, blur, pixelate and mask only when asked."""
        # the synthesis backends read their candidates with it, so it is never empty
        self.estimator = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create(name) for name in readers or ATTRIBUTE_READERS])
        self.embedder: Embedder = EMBEDDERS.create(checks.embedder)
        self.attacker: Embedder | None = EMBEDDERS.create(checks.attacker) if checks.attacker else None
        self.obscurer: Obscurer | None = None
        self.synthesizer: CheckedSynthesizer | None = None
        try:
            if isinstance(options, SynthesisOptions):
                self.synthesizer = _synthesizer(options, self.embedder, self.preserve, self.estimator)
            else:
                self.obscurer = _obscurer(options)
            self.fallback: Obscurer = _obscurer(fallback_options)
        except ValueError as error:
            raise ConfigError(str(error)) from None

    def settings(self) -> dict[str, Any]:
        """Return every option that shapes the output, as plain JSON types (for reports and resumable jobs)."""
        return settings_of(self.options, self.preserve, self.seed, self.detection, self.checks, self.fallback_options)

    # -- analysis -------------------------------------------------------------------------------

    def find_faces(self, bgr: np.ndarray, timings: dict[str, float] | None = None) -> list[Face]:
        """Return the faces of a BGR image with landmarks and attributes, in its coordinates (it is not changed).

        A face found in a turned view (``face.angle != 0``) has the box that holds its turned box, and its
        landmarks mapped back to the image.
        """
        return [
            face if view is None else view.face_to_image(face)
            for view, _, faces in self._find(bgr, timings, every_landmark=True)
            for face in faces
        ]

    def _find(
        self, bgr: np.ndarray, timings: dict[str, float] | None = None, every_landmark: bool = False
    ) -> list[tuple[View | None, np.ndarray, list[Face]]]:
        """Return ``(view, view pixels, faces in view coordinates)``: the upright image first, then turned views.

        The 68 landmarks are fitted to every face with ``every_landmark``, else only where the method needs them
        (`_need_landmarks`).
        """
        timings = {} if timings is None else timings
        start = time.perf_counter()
        upright = self.detector.detect(bgr)
        timings["detect"] = _ms(start)
        start = time.perf_counter()
        upright, views = self.orientation.search(bgr, upright)
        groups: list[tuple[View | None, np.ndarray, list[Face]]] = [(None, bgr, upright)]
        groups += views
        timings["orientation"] = _ms(start)
        for _, pixels, faces in groups:
            if not faces:
                continue
            if self.faceness is not None:
                start = time.perf_counter()
                mark_doubtful(self.faceness, pixels, faces)
                _add(timings, "faceness", start)
            start = time.perf_counter()
            try:
                self.landmarker.landmarks(pixels, faces if every_landmark else self._need_landmarks(faces))
            except Exception as error:  # landmarks are helpful, not essential: carry on without them
                log.warning("landmarks failed: %s", error)
            _add(timings, "landmarks", start)
            if self.reads_attributes:
                start = time.perf_counter()
                for face, attributes in zip(faces, self._attributes(pixels, faces)):
                    face.attributes = attributes
                _add(timings, "attributes", start)
        return groups

    def _need_landmarks(self, faces: list[Face]) -> list[Face]:
        """Return the faces that need the 68 landmarks: every face for a synthesis method (the new face is fitted to
        them), else only those the detector gave no 5 landmarks, which the identity check and the attribute readers
        align by."""
        if self.synthesizer is not None:
            return faces
        return [face for face in faces if face.landmarks5 is None]

    def analyze(self, image: Any, channels: Channels = "bgr") -> list[Face]:
        """Return the faces found in ``image`` with landmarks and attributes (where this anonymizer reads them:
        `reads_attributes`), without anonymising anything."""
        bgr, _, _ = as_bgr(image, channels)
        return self.find_faces(bgr)

    def _attributes(self, bgr: np.ndarray, faces: list[Face]) -> list[Attributes | None]:
        """Return attributes per face; a face whose estimate fails gets ``None`` (and a log line)."""
        return estimate_each(self.estimator, bgr, faces)

    # -- anonymisation --------------------------------------------------------------------------

    def anonymize(self, image: Any, channels: Channels = "bgr") -> Result:
        """Return a `Result` with every face anonymised and one report per face.

        ``image`` is a path, a PIL image, or a numpy array in the order named by ``channels``
        (OpenCV's BGR by default). The result's image comes back in the caller's order (RGB for PIL).
        """
        total = time.perf_counter()
        bgr, order, source = as_bgr(image, channels)
        timings: dict[str, float] = {}
        output = bgr
        reports: list[FaceReport] = []
        for view, pixels, faces in self._find(bgr, timings):
            if view is None:
                output, found = self.anonymize_faces(bgr, faces, timings)
            else:  # a turned view: anonymised upright, and only the changed pixels go back
                base = view.image(output)
                turned, found = self.anonymize_faces(pixels, faces, timings, base=base)
                view.paste_back(output, base, turned)
                for report in found:
                    report.face = view.face_to_image(report.face)
            reports += found
        for index, report in enumerate(reports):
            report.index = index
        faces = [report.face for report in reports]
        timings["total"] = _ms(total)
        image_out = output if order == "bgr" else np.ascontiguousarray(output[:, :, ::-1])
        return Result(image=image_out, faces=faces, reports=reports, channels=order, source=source, timings_ms=timings)

    def anonymize_faces(
        self,
        bgr: np.ndarray,
        faces: list[Face],
        timings: dict[str, float] | None = None,
        base: np.ndarray | None = None,
    ) -> tuple[np.ndarray, list[FaceReport]]:
        """Return an anonymised copy of ``bgr`` (or of ``base``) and one report per face, for upright faces found in it.

        ``bgr`` is the original the checks compare with; ``base``, when given, is the image the faces are
        drawn into (the same view with other faces already anonymised). With ``verify``, each report's
        identity checks and attributes describe the final output, after any fallback.
        """
        timings = {} if timings is None else timings
        output = (bgr if base is None else base).copy()
        reports = [FaceReport(index=i, face=f, method=self.method, verdict="anonymized") for i, f in enumerate(faces)]
        digest = zlib.crc32(np.ascontiguousarray(bgr[::16, ::16]).tobytes())
        seen: dict[int, Seen] = {}
        for report in reports:
            report.attributes_before = report.face.attributes
            read = self._apply(bgr, output, report, np.random.default_rng([self.seed, digest, report.index]))
            if read is not None:
                seen[report.index] = read
        if self.verify and faces:
            start = time.perf_counter()
            self._verify(bgr, output, reports, seen)
            _add(timings, "verify", start)
        return output, reports

    def _apply(
        self, original: np.ndarray, output: np.ndarray, report: FaceReport, rng: np.random.Generator
    ) -> Seen | None:
        """Anonymise one face in ``output``; on any error, or no synthetic candidate passing, fall back and say why.

        Return what the kept synthetic candidate's check read (its pixels and vector), for the verification.
        """
        start = time.perf_counter()
        face = report.face
        seen = None
        try:
            if self.synthesizer is not None and face.uncertain:
                self._fall_back(output, report, uncertain_failure(face.doubt))
            elif self.synthesizer is not None and face.box.height < MIN_SYNTHETIC_HEIGHT:
                self._fall_back(
                    output, report, small_failure(face.box.height, MIN_SYNTHETIC_HEIGHT, "to check a synthetic face")
                )
            elif self.synthesizer is not None:
                outcome = self.synthesizer.synthesize(original, output, report.face, rng)
                report.attempts = outcome.attempts
                report.synthesis = outcome.to_dict()
                if not outcome.passed:
                    self._fall_back(output, report, outcome.failure())
                elif outcome.check is not None:
                    seen = outcome.check.seen
            else:
                assert self.obscurer is not None
                self.obscurer.apply(output, report.face.box)
        except ModelError:
            raise  # a broken model file is a configuration failure for the whole run, not one face's
        except Exception as error:
            log.debug("%s failed for face %d", self.method, report.index, exc_info=True)
            self._fall_back(
                output, report, Failure("error", f"{self.method} failed: {error}", {"error": type(error).__name__})
            )
        report.timings_ms["anonymize"] = _ms(start)
        return seen

    def _fall_back(self, output: np.ndarray, report: FaceReport, failure: Failure) -> None:
        """Cover the face with the fallback method and record why."""
        log.info("face %d falls back to %s: %s", report.index, self.fallback.name, failure)
        self.fallback.apply(output, report.face.box)
        report.method = self.fallback.name
        report.verdict = "fallback"
        report.reason = failure.detail
        report.failure = failure

    def _check_identity(
        self, original: np.ndarray, output: np.ndarray, reports: list[FaceReport], seen: dict[int, Seen] | None = None
    ) -> np.ndarray | None:
        """Set each report's identity checks from ``output``; return the in-loop vectors of the output faces.

        A face in ``seen`` whose pixels the output still holds gets the in-loop vector its check read there.
        """
        faces = [r.face for r in reports]
        for report in reports:
            report.identity = []
        in_loop_after = None
        for embedder in [self.embedder] + ([self.attacker] if self.attacker else []):
            try:
                before = embed_original(embedder, original, faces)
                # aligned at the original's place, as an attacker would
                after = self._embed_output(embedder, output, reports, seen if embedder is self.embedder else None)
            except Exception as error:
                log.warning("identity check with %s failed: %s", embedder.name, error)
                for report in reports:
                    report.identity.append(unjudged(embedder))
                continue
            if embedder is self.embedder:
                in_loop_after = after
            for report, a, b in zip(reports, before, after):
                report.embeddings_after[embedder.name] = b
                bar = self.identity_bar(embedder, report.face, synthesized=report.verdict != "fallback")
                report.identity.append(judge(embedder, a, b, bar))
        return in_loop_after

    def _embed_output(
        self, embedder: Embedder, output: np.ndarray, reports: list[FaceReport], seen: dict[int, Seen] | None
    ) -> np.ndarray:
        """Return ``embedder``'s vectors of the output at each report's face: read once for all faces, except those
        whose check already read exactly the pixels the output holds there."""
        if not reports:
            return embedder.embed(output, [])
        vectors: dict[int, np.ndarray] = {}
        for position, report in enumerate(reports):
            read = (seen or {}).get(report.index)
            if read is not None and read.holds(output):
                vectors[position] = read.vector
        rest = [position for position in range(len(reports)) if position not in vectors]
        for position, vector in zip(rest, embedder.embed(output, [reports[p].face for p in rest])):
            vectors[position] = vector
        return np.stack([vectors[p] for p in range(len(reports))])

    def identity_bar(self, embedder: Embedder, face: Face, synthesized: bool = True) -> float:
        """Return the similarity (or distance) from which ``embedder`` still calls ``face`` the person.

        A synthetic face (``synthesized`` by this anonymiser's synthesis backend) is judged by the in-loop
        embedder against strangers of the original's age (`condanon.identity.strangers.identity_bar`); an
        obscured face, and the held-out attacker, by the recogniser's own threshold. Images and videos
        both ask here.
        """
        if embedder is not self.embedder or self.synthesizer is None or not synthesized:
            return embedder.threshold
        return identity_bar(embedder, None if face.attributes is None else face.attributes.age)

    def _verify(
        self, original: np.ndarray, output: np.ndarray, reports: list[FaceReport], seen: dict[int, Seen] | None = None
    ) -> None:
        """Check each output face against its original; a face the in-loop embedder still knows falls back.

        ``seen``: what the kept candidates' checks read, by report index; where the output still holds those
        pixels, their vector and final attribute reading are reused instead of read again.
        """
        seen = seen or {}
        in_loop_after = self._check_identity(original, output, reports, seen)
        failed = []
        for report in reports:
            check = report.identity[0]
            if report.verdict == "fallback":
                continue
            if check.matched is None:
                self._fall_back(
                    output, report, Failure("unchecked", f"identity check with {self.embedder.name} could not run")
                )
                failed.append(report)
            elif check.matched:
                detail = (
                    f"{self.embedder.name} still recognised the person after {self.method} "
                    f"({check.metric} {check.value:.3f} vs bar {check.threshold:.3f})"
                )
                self._fall_back(
                    output, report, Failure("identity", detail, {"value": check.value, "bar": check.threshold})
                )
                failed.append(report)
        if failed:  # the reports describe the final pixels: check the fallbacks again
            refreshed = self._check_identity(original, output, failed)
            if in_loop_after is not None and refreshed is not None:
                for report, vector in zip(failed, refreshed):
                    in_loop_after[report.index] = vector
            else:
                in_loop_after = None
        if not self.reads_attributes:
            return
        # Copies of the faces that carry the OUTPUT's vectors (in-loop and attacker, as measured on the
        # final pixels): estimates after anonymisation must never read the original's.
        name = self.embedder.name
        attacker = self.attacker.name if self.attacker else None
        after_faces = [
            dataclasses.replace(
                r.face,
                embeddings=({} if in_loop_after is None else {name: in_loop_after[i]})
                | ({attacker: r.embeddings_after[attacker]} if attacker in r.embeddings_after else {}),
            )
            for i, r in enumerate(reports)
        ]
        unread = []
        for report, face in zip(reports, after_faces):
            read = seen.get(report.index) if report.verdict != "fallback" else None
            if read is not None and read.final is not None and read.holds(output):
                report.attributes_after = read.final
            else:
                unread.append((report, face))
        for (report, _), attributes in zip(unread, self._attributes(output, [face for _, face in unread])):
            report.attributes_after = attributes

    def anonymize_batch(self, images: Iterable[Any], channels: Channels = "bgr") -> Iterator[BatchItem]:
        """Yield a `BatchItem` per input; an input that cannot be read or processed carries its error."""
        for index, image in enumerate(images):
            source = str(image) if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__") else None
            try:
                yield BatchItem(index, source, result=self.anonymize(image, channels))
            except CondanonError as error:
                yield BatchItem(index, source, error=str(error))
            except Exception as error:  # keep the batch going; say what broke
                log.exception("input %s failed", source or index)
                yield BatchItem(index, source, error=f"{source or f'input {index}'}: {type(error).__name__}: {error}")


_default: dict[str, Anonymizer] = {}


def _shared(**options: Any) -> Anonymizer:
    key = repr(sorted(options.items()))
    if key not in _default:
        _default[key] = Anonymizer(**options)
    return _default[key]


def analyze(image: Any, channels: Channels = "bgr", **options: Any) -> list[Face]:
    """Return the faces in ``image`` with their attributes, leaving the image untouched (for counting)."""
    return _shared(**options).analyze(image, channels)


def anonymize(image: Any, channels: Channels = "bgr", **options: Any) -> Result:
    """Return the anonymised ``image`` and its per-face reports, using a shared `Anonymizer` per options."""
    return _shared(**options).anonymize(image, channels)

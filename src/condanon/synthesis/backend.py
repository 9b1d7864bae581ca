"""What every synthesis backend shares: the checks a candidate passes on the final pixels, and the outcome.

A backend (the prototype `Synthesizer`, DeepPrivacy2's generator) proposes candidates; `CheckedSynthesizer`
checks each one composed into a local crop of the output: in-loop identity similarity to the original
below the threshold minus a margin, sex, age and dominant emotion read the same (by the same in-loop
estimators on both sides), still detected as a face, and then the pipeline's own estimator as a final gate.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from ..attributes import ATTRIBUTE_ESTIMATORS, CombinedEstimator
from ..detection.base import overlap
from ..failures import KEPT_KINDS, Failure
from ..identity import Embedder, embed_original, judge, safe_side
from ..identity.base import Metric
from ..identity.judge import ranks_by_similarity
from ..identity.strangers import identity_bar
from ..types import Attributes, Box, Face
from .bank import IN_LOOP_ESTIMATORS

log = logging.getLogger(__name__)

DETECT_FACE_SIZE = 120.0
"""Face height (px) the still-a-face check runs at: big faces are scaled down (YuNet's pyramid is not needed)."""
CLEAR_AGE = 5.0
CLEAR_SEX = 0.75
"""How close two readings must be for the fast estimators to be trusted without the final gate."""
CONTEXT = 2.2
"""Side of the local crop the checks run on, in face-box sizes (the embedder and estimators see context)."""
CHILD_AGE = 13.0
ADULT_AGE = 18.0
"""A face read under `CHILD_AGE` on one side and at `ADULT_AGE` or over on the other is a child/adult swap."""
KEPT_ATTRIBUTES = KEPT_KINDS
"""Attributes a kept synthetic face must read the same on (never reported as drift): dashboards count
by them. Emotion drift is reported instead, since the emotion reader disagrees with itself on the
mirrored face a quarter of the time; so is a sex change of a face whose sex was read unsure (under
`CLEAR_SEX`: infants, mostly)."""
UNSURE = " (unsure before)"


@dataclass(frozen=True)
class Seen:
    """What a check read: the composed crop (at ``crop_box`` of the output) and its in-loop vector there.

    The final verification reuses the vector, and the final estimator's reading, for a face whose crop of the
    output still holds exactly these pixels (no later face was drawn over it).
    """

    crop_box: tuple[int, int, int, int]
    pixels: np.ndarray = field(repr=False)
    vector: np.ndarray = field(repr=False)
    final: Attributes | None = None

    def holds(self, output: np.ndarray) -> bool:
        """Return whether ``output`` still holds exactly the pixels this check read."""
        x1, y1, x2, y2 = self.crop_box
        return bool(np.array_equal(output[y1:y2, x1:x2], self.pixels))


@dataclass
class Check:
    """How one candidate fared: identity similarity and attribute readings on the composed pixels."""

    similarity: float
    attributes: Attributes | None
    """The in-loop (fast) estimators' reading."""
    failures: list[Failure] = field(default_factory=list)
    final: Attributes | None = None
    """The pipeline's own estimator's reading (only for candidates that passed the fast checks)."""
    detected: bool | None = None
    identity_ok: bool = False
    seen: Seen | None = field(default=None, repr=False)
    """The pixels and in-loop vector this check read (for the final verification to reuse)."""

    @property
    def passed(self) -> bool:
        """Return whether the candidate passed every check."""
        return not self.failures

    @property
    def safe(self) -> bool:
        """Return whether the candidate passed the privacy checks (identity, and detection when asked)."""
        return self.identity_ok and self.detected is not False

    @property
    def keepable(self) -> bool:
        """Return whether the candidate may be kept with drift: safe, and age and sex read the same."""
        return self.safe and not any(failure.blocks_keeping for failure in self.failures)

    @property
    def score(self) -> tuple[int, int, int, float]:
        """Return the candidate's rank (lower is better): safe, then keepable, then fewer failed checks, then less
        similar.
        """
        return (int(not self.safe), int(not self.keepable), len(self.failures), self.similarity)


class SynthesisIdentity(Protocol):
    """A synthetic identity chosen for one face, that renders itself onto that person's face in any frame.

    Video gives each track one identity, chosen and checked on a keyframe, and renders it on every
    frame at that frame's landmarks: the video layer draws through this alone. Each synthesis
    backend returns one in `Synthesis.identity` (``None``: the backend cannot re-render, photos only).
    """

    def render(self, output: np.ndarray, face: Face, rng: np.random.Generator) -> None:
        """Draw the identity into ``output`` (BGR, in place) on ``face``: its box and 68 landmarks on this frame."""
        ...


@dataclass
class Synthesis:
    """The outcome for one face: whether a candidate passed, which, and what the checks said."""

    passed: bool
    attempts: int
    prototypes: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()
    k: tuple[int, ...] = ()
    check: Check | None = None
    reason: str | None = None
    drift: list[Failure] = field(default_factory=list)
    """Attribute checks the kept candidate failed (only when ``strict`` is off)."""
    failures: list[Failure] = field(default_factory=list)
    """When no candidate was kept: the checks the closest one failed (``reason`` says them in a line)."""
    identity: SynthesisIdentity | None = field(default=None, repr=False)
    """The identity that was kept, to render again on other frames (video); not in the report."""
    latent: dict[str, Any] = field(default_factory=dict)
    """For generator backends: how the kept candidate's latent was drawn (seed, truncation, centre)."""
    stretch: float | None = None
    """The kept candidate's largest warp stretch (prototype backend: `synthesis.warp.distortion`)."""

    def failure(self) -> Failure:
        """Return why no candidate was kept, as one record: the closest candidate's leading kind, the reason's line."""
        kind = self.failures[0].kind if self.failures else "error"
        values = {"attempts": self.attempts, "closest": [f.to_dict() for f in self.failures]}
        return Failure(kind, self.reason or "no candidate passed", values)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary for the face's report (the prototypes, or the generator's latent)."""
        source: dict[str, Any] = (
            {"latent": dict(self.latent)}
            if self.latent
            else {
                "prototypes": list(self.prototypes),
                "weights": [round(w, 3) for w in self.weights],
                "k": list(self.k),
            }
        )
        return (
            {"passed": self.passed, "attempts": self.attempts}
            | source
            | {
                "in_loop_similarity": None if self.check is None else round(self.check.similarity, 4),
                "drift": [str(failure) for failure in self.drift],
            }
            | ({} if self.stretch is None else {"stretch": round(self.stretch, 2)})
        )


@dataclass
class Goal:
    """What a face's candidates are checked against, computed once per face."""

    crop_box: tuple[int, int, int, int]
    """The local crop (frame coordinates) candidates are composed into and checked on."""
    face: Face
    """The face in the crop's coordinates."""
    reference: np.ndarray
    """The in-loop embedder's vector of the original face."""
    target: Attributes | None
    """The in-loop estimators' reading of the original (what candidates must keep)."""
    trust_fast: bool
    """The fast estimators agree with the pipeline's own on the original: a clear fast reading needs no final gate."""
    bar: float
    """The in-loop recogniser's bar for this face: strangers of the original's age (`condanon.identity.strangers`)."""
    margin: float = 0.0
    """Room a candidate must leave on the safe side of ``bar`` (`condanon.identity.judge`)."""
    age: float | None = None
    """The original's age the bar was looked up at (the pipeline's reading, else the in-loop one)."""
    metric: Metric = "cosine"
    """The in-loop recogniser's metric."""

    @property
    def limit(self) -> float:
        """Return the bar moved by the margin to the safe side: a candidate passes identity beyond it."""
        return safe_side(self.metric, self.bar, self.margin)


@dataclass(frozen=True)
class LoopChecks:
    """What every synthesis backend checks its candidates for, and how many it may try.

    Args:
        preserve: which attributes must read the same after (``age``, ``sex``, ``emotion``).
        candidates: budget of candidates per face.
        margin: a candidate passes identity when its similarity to the original is below the identity
            bar for the original's age (`condanon.identity.strangers.identity_bar`) less this margin
            (room for the paste, measured under 0.02: the pipeline checks the final image against the bar itself).
        age_tolerance: years the in-loop age estimate may move.
        estimators: the in-loop attribute backends (fast ones: they run on every candidate).
        strict: a face whose candidates all drift on some attribute falls back (the design's literal
            rule). Off (default), the candidate that passed identity and detection, kept age and sex
            (`KEPT_ATTRIBUTES`: an age change beyond ``age_tolerance`` or a child/adult swap is never
            kept) and missed the fewest other checks is kept, and its report lists the drift.
    """

    preserve: tuple[str, ...] = ("age", "sex", "emotion")
    candidates: int = 6
    margin: float = 0.02
    age_tolerance: float = 10.0
    estimators: tuple[str, ...] = IN_LOOP_ESTIMATORS
    strict: bool = False


class CheckedSynthesizer:
    """Base of the synthesis backends: the checks of a candidate, on a local crop of the final pixels.

    Args:
        embedder: the in-loop identity checker (SFace in the default pipeline).
        checks: what candidates are checked for, and how many are tried (`LoopChecks`).
        detect: also require that a face detector still finds a face there (``None``: skip).
        final: the pipeline's own attribute estimator; a candidate that passes every fast check must
            also read the same under it (against its reading of the original), so the reported
            attributes after anonymisation agree with the ones before (``None``: skip this gate).
    """

    def __init__(
        self, embedder: Embedder, checks: LoopChecks | None = None, detect: Any | None = None, final: Any | None = None
    ) -> None:
        checks = checks or LoopChecks()
        if checks.candidates < 1:
            raise ValueError("candidates must be at least 1")
        if not ranks_by_similarity(embedder):  # candidates are ranked by how little they resemble the original
            raise ValueError(
                f"the in-loop embedder {embedder.name!r} measures a distance ({embedder.metric}); the synthesis loop "
                "ranks candidates by a similarity: use a cosine recogniser such as sface "
                "(dlib stays the held-out attacker)"
            )
        self.embedder = embedder
        self.preserve = checks.preserve
        self.candidates = checks.candidates
        self.margin = checks.margin
        self.age_tolerance = checks.age_tolerance
        self.detector = detect
        self._estimator_names = checks.estimators
        self._estimator: CombinedEstimator | None = None
        self.final = final
        self.strict = checks.strict

    def synthesize(self, original: np.ndarray, output: np.ndarray, face: Face, rng: np.random.Generator) -> Synthesis:
        """Replace ``face`` in ``output`` (in place) by a candidate that passes; say what happened.

        ``original`` is the untouched image the face was found in. On failure ``output`` is unchanged
        and the returned `Synthesis` carries the reason (the caller falls back).
        """
        raise NotImplementedError

    def settle(
        self,
        output: np.ndarray,
        outcome: Synthesis,
        patch: np.ndarray,
        bounds: tuple[int, int, int, int],
        attempts: int | None = None,
    ) -> Synthesis:
        """Conclude a face none of whose candidates passed every check, given the best-ranked one.

        Without ``strict``, a candidate that passed the privacy checks and kept age and sex is kept
        (pasted into ``output``) with its emotion drift reported; otherwise the face is left to the
        caller's fallback.
        """
        outcome.attempts = self.candidates if attempts is None else attempts
        assert outcome.check is not None
        if not self.strict and outcome.check.keepable:  # privacy, age and sex hold; emotion drifted: keep the closest
            outcome.passed = True
            outcome.drift = list(outcome.check.failures)
            paste(output, patch, bounds, (0, 0))
            return outcome
        outcome.passed = False
        outcome.failures = list(outcome.check.failures)
        outcome.reason = f"no candidate passed in {outcome.attempts}; closest: " + "; ".join(
            map(str, outcome.check.failures)
        )
        return outcome

    @property
    def estimator(self) -> CombinedEstimator:
        """Return the in-loop attribute estimator (created on first use)."""
        if self._estimator is None:
            self._estimator = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create(n) for n in self._estimator_names])
        return self._estimator

    def goal(self, original: np.ndarray, face: Face) -> Goal:
        """Return what ``face``'s candidates are checked against: its crop, vector and attribute reading."""
        crop_box = crop_around(face.box, original.shape)
        local_face = shifted(face, -crop_box[0], -crop_box[1])
        reference = embed_original(self.embedder, original, [face])[0]
        x1, y1, x2, y2 = crop_box
        target = self._read(original[y1:y2, x1:x2], local_face, reference) if self._reads_attributes else None
        if target is None:
            target = face.attributes
        # where the fast estimators read the original as the pipeline's own estimator does, a candidate
        # they read clearly the same needs no final gate (it costs a dlib embedding, ~60 ms)
        trust_fast = (
            target is not None and face.attributes is not None and _close(target, face.attributes, self.preserve)
        )
        age = next((a.age for a in (face.attributes, target) if a is not None and a.age is not None), None)
        return Goal(
            crop_box,
            local_face,
            reference,
            target,
            trust_fast,
            identity_bar(self.embedder, age),
            self.margin,
            age,
            self.embedder.metric,
        )

    def check_patch(
        self,
        output: np.ndarray,
        patch: np.ndarray,
        bounds: tuple[int, int, int, int],
        goal: Goal,
        before: Attributes | None,
    ) -> Check:
        """Return the checks of ``patch`` (frame coordinates ``bounds``) composed into a copy of ``goal``'s crop of
        ``output``.
        """
        x1, y1, x2, y2 = goal.crop_box
        local = output[y1:y2, x1:x2].copy()
        paste(local, patch, bounds, (x1, y1))
        return self._check(local, goal, before)

    @property
    def _reads_attributes(self) -> bool:
        return bool(set(self.preserve) & {"age", "sex", "emotion"})

    def _read(self, image: np.ndarray, face: Face, vector: np.ndarray) -> Attributes | None:
        """Return the in-loop estimators' reading of a face whose in-loop vector is ``vector``
        (``None`` if they fail).
        """
        try:
            return self.estimator.estimate(image, [dataclasses.replace(face, embeddings={self.embedder.name: vector})])[
                0
            ]
        except Exception as error:
            log.warning("in-loop attribute estimate failed: %s", error)
            return None

    def _check(self, local: np.ndarray, goal: Goal, before: Attributes | None) -> Check:
        """Return the checks of one composed candidate (``local`` is the crop the face sits in).

        Cheap checks first (identity, in-loop attributes, detection); the final estimator (``before`` is
        its reading of the original) only for a candidate that passed them, and not when the goal trusts
        the fast estimators (they agree with it on the original) and the fast reading is clearly the same.
        With a final estimator the age is its call: a fast reading more than ``age_tolerance`` off does
        not refuse the candidate by itself (the two readers differ by more than that on a tenth of the
        synthetic faces, and the age that is reported, and must be kept, is the final one's).
        """
        face, target, trust_fast = goal.face, goal.target, goal.trust_fast
        vector = self.embedder.embed(local, [dataclasses.replace(face, embeddings={})])[0]
        identity = judge(self.embedder, goal.reference, vector, goal.bar, goal.margin)
        value = float(identity.value)  # type: ignore[arg-type]  # it ran: never None
        check = Check(similarity=value, attributes=None, identity_ok=not identity.matched)
        if not check.identity_ok:
            check.failures.append(
                Failure(
                    "identity",
                    f"{self.embedder.name} similarity {value:.3f} >= {goal.limit:.3f}",
                    {"value": value, "limit": goal.limit},
                )
            )
        gated = self.final is not None and before is not None
        fast_age: list[Failure] = []
        if target is not None:
            after = self._read(local, face, vector)
            check.attributes = after
            for failure in attribute_failures(target, after, self.preserve, self.age_tolerance):
                (fast_age if gated and failure.kind == "age" else check.failures).append(failure)
        if check.identity_ok and self.detector is not None and (not check.failures or not self.strict):
            check.detected = self._detected(local, face)
            if not check.detected:
                check.failures.append(Failure("undetected", "no face detected"))
        clear = (
            not fast_age
            and trust_fast
            and target is not None
            and check.attributes is not None
            and _close(target, check.attributes, self.preserve)
        )
        if not check.failures and gated and not clear:
            assert self.final is not None and before is not None  # what gated says
            try:
                after = self.final.estimate(
                    local, [dataclasses.replace(face, embeddings={self.embedder.name: vector})]
                )[0]
            except Exception as error:
                log.warning("final attribute estimate failed: %s", error)
                after = None
            check.final = after
            check.failures += attribute_failures(before, after, self.preserve, self.age_tolerance)
        elif fast_age and check.failures:  # refused on other grounds: the fast age miss is said too
            check.failures += fast_age
        check.seen = Seen(goal.crop_box, local, vector, check.final)
        return check

    def _detected(self, local: np.ndarray, face: Face) -> bool:
        """Return whether the detector finds a face at ``face``'s place in ``local`` (run at about 120 px a face)."""
        assert self.detector is not None
        scale = min(1.0, DETECT_FACE_SIZE / max(face.box.height, 1.0))
        if scale < 1.0:
            local = cv2.resize(local, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        box = face.box
        place = dataclasses.replace(face, box=Box(box.x1 * scale, box.y1 * scale, box.x2 * scale, box.y2 * scale))
        return any(overlap(found, place) >= 0.3 for found in self.detector.detect(local))


def _close(a: Attributes, b: Attributes, preserve: tuple[str, ...]) -> bool:
    """Return whether two readings agree well inside the tolerances (sex sure and equal, age within 5
    y, same emotion).
    """
    if "sex" in preserve and (a.sex != b.sex or min(a.sex_confidence or 0.0, b.sex_confidence or 0.0) < CLEAR_SEX):
        return False
    if "age" in preserve and (a.age is None or b.age is None or abs(a.age - b.age) > CLEAR_AGE):
        return False
    return "emotion" not in preserve or a.emotion == b.emotion


def attribute_failures(
    before: Attributes, after: Attributes | None, preserve: tuple[str, ...], age_tolerance: float
) -> list[Failure]:
    """Return what changed beyond tolerance between two readings of the same face (empty: kept)."""
    if after is None:
        return [Failure("unreadable", "attributes unreadable")]
    failures = []
    if "sex" in preserve and before.sex and after.sex != before.sex:
        unsure = (before.sex_confidence or 0.0) < CLEAR_SEX
        detail = f"sex {before.sex} -> {after.sex}" + (UNSURE if unsure else "")
        failures.append(Failure("sex", detail, {"before": before.sex, "after": after.sex, "unsure": unsure}))
    if "age" in preserve and before.age is not None:
        values = {"before": before.age, "after": after.age}
        if after.age is None or abs(after.age - before.age) > age_tolerance:
            failures.append(
                Failure(
                    "age", f"age {before.age:.0f} -> {after.age if after.age is None else round(after.age)}", values
                )
            )
        elif swapped(before.age, after.age):
            failures.append(
                Failure(
                    "age", f"age {before.age:.0f} -> {round(after.age)} (child/adult swap)", values | {"swap": True}
                )
            )
    if "emotion" in preserve and before.emotion and after.emotion != before.emotion:
        failures.append(
            Failure(
                "emotion",
                f"emotion {before.emotion} -> {after.emotion}",
                {"before": before.emotion, "after": after.emotion},
            )
        )
    return failures


def swapped(before: float, after: float) -> bool:
    """Return whether two age readings put the face on different sides of childhood (under 13 vs 18 or over)."""
    return (before < CHILD_AGE and after >= ADULT_AGE) or (after < CHILD_AGE and before >= ADULT_AGE)


def crop_around(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box.scaled(CONTEXT).to_int()
    height, width = shape[:2]
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


def shifted(face: Face, dx: float, dy: float) -> Face:
    """Return a copy of ``face`` moved by (dx, dy), without cached vectors."""
    move = np.array([dx, dy], dtype=np.float32)
    return dataclasses.replace(
        face,
        box=face.box.shifted(dx, dy),
        landmarks5=None if face.landmarks5 is None else face.landmarks5 + move,
        landmarks68=None if face.landmarks68 is None else face.landmarks68 + move,
        embeddings={},
    )


def paste(target: np.ndarray, patch: np.ndarray, bounds: tuple[int, int, int, int], origin: tuple[int, int]) -> None:
    """Paste ``patch`` (frame coordinates ``bounds``) into ``target`` whose top-left is ``origin`` in the frame."""
    x1, y1, x2, y2 = bounds
    ox, oy = origin
    tx1, ty1 = max(x1 - ox, 0), max(y1 - oy, 0)
    tx2, ty2 = min(x2 - ox, target.shape[1]), min(y2 - oy, target.shape[0])
    if tx2 <= tx1 or ty2 <= ty1:
        return
    target[ty1:ty2, tx1:tx2] = patch[ty1 + oy - y1 : ty2 + oy - y1, tx1 + ox - x1 : tx2 + ox - x1]

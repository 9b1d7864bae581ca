"""The `synthetic` method: prototype candidates composed into the frame and checked on the final pixels.

For each face (shared/docs/design.md, "Conditioning and verification"):
1. the bank ranks its prototypes by how the estimators read them against the face's attributes;
2. candidates are mixes of two of the best-ranked prototypes (seeded weights): new people who are none
   of the prototypes and, through them, none of the k >= 5 people behind each;
3. each candidate is composed into a local copy of the output and checked there: in-loop identity
   similarity to the original below the threshold minus a margin, sex equal, age within tolerance,
   dominant emotion equal (each as read by the same in-loop estimators on both sides), still detected;
4. the first candidate that passes every check wins. If none does within the budget, the candidate
   that passed identity and detection with the fewest attribute misses is kept (its drift reported),
   or, with ``strict`` or when no candidate passed identity, the face is left to the caller's
   fallback with the reason of the candidate that came closest. Failed checks steer the next ranking.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..attributes import ATTRIBUTE_ESTIMATORS, CombinedEstimator
from ..detection.base import overlap
from ..identity import Embedder, embed_original, similarity
from ..types import Attributes, Box, Face
from .bank import IN_LOOP_ESTIMATORS, PrototypeBank, RankWeights, default_bank, mouth_open
from .compose import Candidate, compose, mix, prepare, triangles_for

log = logging.getLogger(__name__)

DETECT_FACE_SIZE = 120.0
"""Face height (px) the still-a-face check runs at: big faces are scaled down (YuNet's pyramid is not needed)."""
CLEAR_AGE = 5.0
CLEAR_SEX = 0.75
"""How close two readings must be for the fast estimators to be trusted without the final gate."""
CONTEXT = 2.2
"""Side of the local crop the checks run on, in face-box sizes (the embedder and estimators see context)."""


@dataclass
class Check:
    """How one candidate fared: identity similarity and attribute readings on the composed pixels."""

    similarity: float
    attributes: Attributes | None
    """The in-loop (fast) estimators' reading."""
    failures: list[str] = field(default_factory=list)
    final: Attributes | None = None
    """The pipeline's own estimator's reading (only for candidates that passed the fast checks)."""
    detected: bool | None = None
    identity_ok: bool = False

    @property
    def passed(self) -> bool:
        """Return whether the candidate passed every check."""
        return not self.failures

    @property
    def safe(self) -> bool:
        """Return whether the candidate passed the privacy checks (identity, and detection when asked)."""
        return self.identity_ok and self.detected is not False


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
    drift: list[str] = field(default_factory=list)
    """Attribute checks the kept candidate failed (only when ``strict`` is off)."""
    candidate: Candidate | None = field(default=None, repr=False)
    """The identity that was kept (video re-renders it on every frame of the track); not in the report."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary for the face's report."""
        return {
            "passed": self.passed,
            "attempts": self.attempts,
            "prototypes": list(self.prototypes),
            "weights": [round(w, 3) for w in self.weights],
            "k": list(self.k),
            "in_loop_similarity": None if self.check is None else round(self.check.similarity, 4),
            "drift": list(self.drift),
        }


class Synthesizer:
    """Replaces faces with attribute-matched prototype mixes, verified on the final pixels.

    Args:
        embedder: the in-loop identity checker (SFace in the default pipeline).
        preserve: which attributes must read the same after (``age``, ``sex``, ``emotion``).
        candidates: budget of candidates per face.
        pool: how many of the best-ranked prototypes candidates are drawn from.
        margin: a candidate passes identity when similarity < threshold - margin (cosine).
        age_tolerance: years the in-loop age estimate may move.
        shape_mix: how far outline and nose move to the prototype's (0 keeps the original's geometry).
        feature_mix: how far eyes, brows and mouth move, whole, to the prototype's places (their
            shapes, the expression, stay the original's).
        detect: also require that a face detector still finds a face there (``None``: skip).
        bank: the prototype bank (default: the bundled one).
        estimators: the in-loop attribute backends (fast ones: they run on every candidate).
        final: the pipeline's own attribute estimator; a candidate that passes every fast check must
            also read the same under it (against its reading of the original), so the reported
            attributes after anonymisation agree with the ones before (``None``: skip this gate).
        strict: a face whose candidates all drift on some attribute falls back (the design's literal
            rule). Off (default), the candidate that passed identity and detection with the fewest attribute misses is
            kept and its report lists the drift: privacy is never relaxed, only utility.
    """

    def __init__(
        self,
        embedder: Embedder,
        preserve: tuple[str, ...] = ("age", "sex", "emotion"),
        candidates: int = 6,
        pool: int = 12,
        margin: float = 0.05,
        age_tolerance: float = 10.0,
        shape_mix: float = 1.0,
        feature_mix: float = 1.0,
        detect: Any | None = None,
        bank: PrototypeBank | None = None,
        estimators: tuple[str, ...] = IN_LOOP_ESTIMATORS,
        final: Any | None = None,
        strict: bool = False,
    ) -> None:
        if candidates < 1:
            raise ValueError("candidates must be at least 1")
        self.embedder = embedder
        self.preserve = preserve
        self.candidates = candidates
        self.pool = pool
        self.margin = margin
        self.age_tolerance = age_tolerance
        self.shape_mix = shape_mix
        self.feature_mix = feature_mix
        self.detector = detect
        self._bank = bank
        self._estimator_names = estimators
        self._estimator: CombinedEstimator | None = None
        self.final = final
        self.strict = strict

    @property
    def bank(self) -> PrototypeBank:
        """Return the prototype bank (loaded on first use)."""
        if self._bank is None:
            self._bank = default_bank()
        return self._bank

    @property
    def estimator(self) -> CombinedEstimator:
        """Return the in-loop attribute estimator (created on first use)."""
        if self._estimator is None:
            self._estimator = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create(n) for n in self._estimator_names])
        return self._estimator

    def synthesize(self, original: np.ndarray, output: np.ndarray, face: Face, rng: np.random.Generator) -> Synthesis:
        """Replace ``face`` in ``output`` (in place) by the first candidate that passes; say what happened.

        ``original`` is the untouched image the face was found in. On failure ``output`` is unchanged
        and the returned `Synthesis` carries the reason (the caller falls back).
        """
        if face.landmarks68 is None or face.landmarks5 is None:
            raise ValueError("the synthetic method needs the face's 68 and 5 landmarks")
        bank = self.bank
        triangles = triangles_for(bank.reference)
        crop_box = _crop_box(face.box, output.shape)
        local_face = _shifted(face, -crop_box[0], -crop_box[1])
        reference_vector = embed_original(self.embedder, original, [face])[0]
        x1, y1, x2, y2 = crop_box
        target = self._read(original[y1:y2, x1:x2], local_face, reference_vector) if self._reads_attributes else None
        if target is None:
            target = face.attributes
        steer = Steering(target, face.attributes if self.final is not None else None)
        # where the fast estimators read the original as the pipeline's own estimator does, a candidate
        # they read clearly the same needs no final gate (it costs a dlib embedding, ~60 ms)
        trust_fast = target is not None and face.attributes is not None and _close(target, face.attributes, self.preserve)
        is_open = mouth_open(face.landmarks68)
        region = prepare(output, face.landmarks68)  # the original's layout and skin statistics, once per face
        best: tuple[tuple[int, int, float], Synthesis, np.ndarray, tuple[int, int, int, int]] | None = None
        used: set[int] = set()
        for attempt in range(1, self.candidates + 1):
            ranked = bank.rank(steer.goal(), is_open, rng, reference_vector, steer.weights)
            ranked = [int(i) for i in ranked if int(i) not in used][: self.pool]
            first = ranked[0]
            second = ranked[1 + int(rng.integers(len(ranked) - 1))] if len(ranked) > 1 else first
            used.add(first)
            weight = float(rng.uniform(0.5, 0.8))
            pair = [first, second]
            image, shape = mix([bank.images[i] for i in pair], [bank.shapes[i] for i in pair], [weight, 1 - weight], triangles)
            candidate = Candidate(image, shape, (first, second), (weight, 1 - weight))
            patch, bounds = compose(
                output, face.landmarks68, candidate, triangles, self.shape_mix, rng, self.feature_mix, region
            )
            local = output[y1:y2, x1:x2].copy()
            _paste(local, patch, bounds, (x1, y1))
            check = self._check(local, local_face, reference_vector, target, face.attributes, trust_fast)
            outcome = Synthesis(
                passed=check.passed,
                attempts=attempt,
                prototypes=candidate.sources,
                weights=candidate.weights,
                k=tuple(int(bank.k[i]) for i in candidate.sources),
                check=check,
                candidate=candidate,
            )
            score = (int(not check.safe), len(check.failures), check.similarity)
            if best is None or score < best[0]:
                best = (score, outcome, patch, bounds)
            if check.passed:
                _paste(output, patch, bounds, (0, 0))
                return outcome
            steer.update(check, float(np.mean([bank.apparent_age[i] for i in pair])))
        assert best is not None
        _, outcome, patch, bounds = best
        outcome.attempts = self.candidates
        assert outcome.check is not None
        if not self.strict and outcome.check.safe:  # privacy holds; the attributes drifted: keep the closest
            outcome.passed = True
            outcome.drift = list(outcome.check.failures)
            _paste(output, patch, bounds, (0, 0))
            return outcome
        outcome.passed = False
        outcome.reason = f"no candidate passed in {self.candidates}; closest: " + "; ".join(outcome.check.failures)
        return outcome

    @property
    def _reads_attributes(self) -> bool:
        return bool(set(self.preserve) & {"age", "sex", "emotion"})

    def _read(self, image: np.ndarray, face: Face, vector: np.ndarray) -> Attributes | None:
        """Return the in-loop estimators' reading of a face whose in-loop vector is ``vector`` (``None`` if they fail)."""
        try:
            return self.estimator.estimate(image, [dataclasses.replace(face, embeddings={self.embedder.name: vector})])[0]
        except Exception as error:
            log.warning("in-loop attribute estimate failed: %s", error)
            return None

    def _check(
        self,
        local: np.ndarray,
        face: Face,
        reference: np.ndarray,
        target: Attributes | None,
        before: Attributes | None,
        trust_fast: bool = False,
    ) -> Check:
        """Return the checks of one composed candidate (``local`` is the crop the face sits in).

        Cheap checks first (identity, in-loop attributes, detection); the final estimator (``before`` is
        its reading of the original) only for a candidate that passed them, and not when ``trust_fast``
        (the fast estimators agree with it on the original) and the fast reading is clearly the same.
        """
        vector = self.embedder.embed(local, [dataclasses.replace(face, embeddings={})])[0]
        value = similarity(self.embedder.metric, reference, vector)
        limit = self.embedder.threshold - self.margin
        check = Check(similarity=value, attributes=None, identity_ok=value < limit)
        if not check.identity_ok:
            check.failures.append(f"{self.embedder.name} similarity {value:.3f} >= {limit:.3f}")
        if target is not None:
            after = self._read(local, face, vector)
            check.attributes = after
            check.failures += attribute_failures(target, after, self.preserve, self.age_tolerance)
        if check.identity_ok and self.detector is not None and (not check.failures or not self.strict):
            check.detected = self._detected(local, face)
            if not check.detected:
                check.failures.append("no face detected")
        clear = trust_fast and target is not None and check.attributes is not None and _close(target, check.attributes, self.preserve)
        if not check.failures and self.final is not None and before is not None and not clear:
            try:
                after = self.final.estimate(local, [dataclasses.replace(face, embeddings={self.embedder.name: vector})])[0]
            except Exception as error:
                log.warning("final attribute estimate failed: %s", error)
                after = None
            check.final = after
            check.failures += attribute_failures(before, after, self.preserve, self.age_tolerance)
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


class Steering:
    """What the loop learns from a failed candidate, for ranking the next one.

    The bank is asked for the attributes the deciding estimator read on the original (the pipeline's
    own estimator when the final gate is on, else the in-loop one: ranking by the fast reading was
    measured worse, 74 % vs 84 % age within 10 y). An age read off by d years moves
    the age asked of the bank by d (the frame shifts how a prototype reads: smooth averages read
    younger on an old face); a failed sex, emotion or identity check doubles that term's weight.
    """

    MAX_SHIFT = 30.0

    def __init__(self, fast: Attributes | None, final: Attributes | None = None) -> None:
        self.fast = fast
        self.final = final
        self.age_shift = 0.0
        self.weights = RankWeights()

    def goal(self) -> Attributes | None:
        """Return the attributes to rank by: the deciding reading of the original, age shifted by what was learnt."""
        target = self.final or self.fast
        if target is None or target.age is None or not self.age_shift:
            return target
        return dataclasses.replace(target, age=max(0.0, target.age + self.age_shift))

    def update(self, check: Check, prototype_age: float) -> None:
        """Adjust the ranking after a failed ``check`` of a candidate whose prototypes read ``prototype_age``."""
        pairs = ((self.final, check.final), (self.fast, check.attributes))
        target, after = next(((t, a) for t, a in pairs if t is not None and a is not None), (None, None))
        if target is not None and after is not None and target.age is not None and after.age is not None:
            if abs(after.age - target.age) > 5.0:
                # prototypes reading p bare read after.age here; to read target.age, ask for ones reading
                # p - after.age + target.age, i.e. shift the goal by that minus the goal's own age
                goal = (self.final or self.fast).age  # type: ignore[union-attr]
                shift = prototype_age - after.age + target.age - goal
                self.age_shift = float(np.clip(shift, -self.MAX_SHIFT, self.MAX_SHIFT))
        for failure in check.failures:
            if failure.startswith("sex "):
                self.weights.sex *= 2.0
            elif failure.startswith("emotion "):
                self.weights.emotion *= 2.0
            elif " similarity " in failure:
                self.weights.identity *= 2.0


def _close(a: Attributes, b: Attributes, preserve: tuple[str, ...]) -> bool:
    """Return whether two readings agree well inside the tolerances (sex sure and equal, age within 5 y, same emotion)."""
    if "sex" in preserve and (a.sex != b.sex or min(a.sex_confidence or 0.0, b.sex_confidence or 0.0) < CLEAR_SEX):
        return False
    if "age" in preserve and (a.age is None or b.age is None or abs(a.age - b.age) > CLEAR_AGE):
        return False
    return "emotion" not in preserve or a.emotion == b.emotion


def attribute_failures(before: Attributes, after: Attributes | None, preserve: tuple[str, ...], age_tolerance: float) -> list[str]:
    """Return what changed beyond tolerance between two readings of the same face (empty: kept)."""
    if after is None:
        return ["attributes unreadable"]
    failures = []
    if "sex" in preserve and before.sex and after.sex != before.sex:
        failures.append(f"sex {before.sex} -> {after.sex}")
    if "age" in preserve and before.age is not None and (after.age is None or abs(after.age - before.age) > age_tolerance):
        failures.append(f"age {before.age:.0f} -> {after.age if after.age is None else round(after.age)}")
    if "emotion" in preserve and before.emotion and after.emotion != before.emotion:
        failures.append(f"emotion {before.emotion} -> {after.emotion}")
    return failures


def _crop_box(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box.scaled(CONTEXT).to_int()
    height, width = shape[:2]
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


def _shifted(face: Face, dx: float, dy: float) -> Face:
    """Return a copy of ``face`` moved by (dx, dy), without cached vectors."""
    move = np.array([dx, dy], dtype=np.float32)
    return dataclasses.replace(
        face,
        box=face.box.shifted(dx, dy),
        landmarks5=None if face.landmarks5 is None else face.landmarks5 + move,
        landmarks68=None if face.landmarks68 is None else face.landmarks68 + move,
        embeddings={},
    )


def _paste(target: np.ndarray, patch: np.ndarray, bounds: tuple[int, int, int, int], origin: tuple[int, int]) -> None:
    """Paste ``patch`` (frame coordinates ``bounds``) into ``target`` whose top-left is ``origin`` in the frame."""
    x1, y1, x2, y2 = bounds
    ox, oy = origin
    tx1, ty1 = max(x1 - ox, 0), max(y1 - oy, 0)
    tx2, ty2 = min(x2 - ox, target.shape[1]), min(y2 - oy, target.shape[0])
    if tx2 <= tx1 or ty2 <= ty1:
        return
    target[ty1:ty2, tx1:tx2] = patch[ty1 + oy - y1 : ty2 + oy - y1, tx1 + ox - x1 : tx2 + ox - x1]

"""The `synthetic` method: prototype candidates composed into the frame and checked on the final pixels.

For each face (docs/synthesis.md):
1. the bank ranks its prototypes by how the estimators read them against the face's attributes;
2. candidates are mixes of two of the best-ranked prototypes (seeded weights): new people who are none
   of the prototypes and, through them, none of the k >= 5 people behind each;
3. each candidate is composed into a local copy of the output and checked there: in-loop identity
   similarity to the original below the threshold minus a margin, sex equal, age within tolerance,
   dominant emotion equal (each as read by the same in-loop estimators on both sides), still detected;
4. the first candidate that passes every check wins (for a child, whose identity bar is loose, the
   least similar of those passing among the first ``candidates``). A face none of whose first
   ``candidates`` may be kept gets ``more``, reshaped (`Candidate.reshape`: the prototype's own feature
   shapes, more of the forehead synthetic). If none passes within the budget, the candidate
   that passed identity and detection with the fewest attribute misses is kept (its drift reported),
   or, with ``strict`` or when no candidate passed identity, the face is left to the caller's
   fallback with the reason of the candidate that came closest. Failed checks steer the next ranking.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..failures import Failure
from ..identity import Embedder
from ..identity.strangers import typical_stranger
from ..types import Attributes, Face
from .backend import CHILD_AGE, Check, CheckedSynthesizer, LoopChecks, Synthesis, paste
from .bank import (
    RANKED_BY,
    PrototypeBank,
    RankWeights,
    default_bank,
    mouth_open,
)
from .compose import Candidate, compose, mix, prepare, triangles_for, warp_distortion

log = logging.getLogger(__name__)

__all__ = ["Check", "PrototypeIdentity", "Steering", "Synthesis", "Synthesizer"]


class Synthesizer(CheckedSynthesizer):
    """Replaces faces with attribute-matched prototype mixes, verified on the final pixels.

    Args (besides `CheckedSynthesizer`'s: the embedder, `LoopChecks`, the still-a-face detector and the final gate):
        pool: how many of the best-ranked prototypes candidates are drawn from.
        shape_mix: how far outline and nose move to the prototype's (0 keeps the original's geometry).
        feature_mix: how far eyes, brows and mouth move, whole, to the prototype's places (their
            shapes, the expression, stay the original's).
        bank: the prototype bank (default: the bundled one).
        more: further candidates tried when none of the first ``candidates`` may be kept (identity,
            detection, age or sex failed): hard faces get a larger budget, easy ones stay fast
            (``None``: twice ``candidates``).
        reshape: how much of the original's feature shapes and upper forehead the first ``candidates`` give
            up (`Candidate.reshape`: 0 keeps the expression exactly).
        more_reshape: the same for the ``more`` candidates of a face none of whose first ones may be kept.
    """

    def __init__(
        self,
        embedder: Embedder,
        checks: LoopChecks | None = None,
        detect: Any | None = None,
        final: Any | None = None,
        *,
        pool: int = 12,
        shape_mix: float = 1.0,
        feature_mix: float = 1.0,
        bank: PrototypeBank | None = None,
        more: int | None = None,
        reshape: float = 0.0,
        more_reshape: float = 1.0,
    ) -> None:
        super().__init__(embedder, checks, detect, final)
        candidates = self.candidates
        if embedder.name != RANKED_BY:
            raise ValueError(
                f"the synthetic method's in-loop embedder must be {RANKED_BY!r}: "
                f"its prototype bank ranks by {RANKED_BY} "
                f"vectors, which cannot be compared with {embedder.name!r} ones"
            )
        self.more = 2 * candidates if more is None else max(0, more)
        self.reshape = reshape
        self.more_reshape = more_reshape
        self.pool = pool
        self.shape_mix = shape_mix
        self.feature_mix = feature_mix
        self._bank = bank

    @property
    def bank(self) -> PrototypeBank:
        """Return the prototype bank (loaded on first use)."""
        if self._bank is None:
            self._bank = default_bank()
        return self._bank

    def synthesize(self, original: np.ndarray, output: np.ndarray, face: Face, rng: np.random.Generator) -> Synthesis:
        """Replace ``face`` in ``output`` (in place) by the first candidate that passes; say what happened.

        ``original`` is the untouched image the face was found in. On failure ``output`` is unchanged
        and the returned `Synthesis` carries the reason (the caller falls back).
        """
        if face.landmarks68 is None or face.landmarks5 is None:
            raise ValueError("the synthetic method needs the face's 68 and 5 landmarks")
        bank = self.bank
        triangles = triangles_for(bank.reference)
        goal = self.goal(original, face)
        target, reference_vector = goal.target, goal.reference
        steer = Steering(target, face.attributes if self.final is not None else None)
        is_open = mouth_open(face.landmarks68)
        strangers = typical_stranger(self.embedder, goal.age)
        region = prepare(output, face.landmarks68)  # the original's layout and skin statistics, once per face
        best: tuple[tuple[int, int, int, float], Synthesis, np.ndarray, tuple[int, int, int, int]] | None = None
        # a child's bar is loose (recognisers find children alike): of its first candidates, the one least
        # like the original is kept, not the first that passes
        choosy = goal.age is not None and goal.age < CHILD_AGE
        passing: tuple[Synthesis, np.ndarray, tuple[int, int, int, int]] | None = None
        used: set[int] = set()
        tried = 0
        for attempt in range(1, self.candidates + self.more + 1):
            if attempt > self.candidates and best is not None and best[1].check is not None and best[1].check.keepable:
                break
            tried = attempt
            order = bank.rank(steer.goal(), is_open, rng, reference_vector, steer.weights, strangers)
            ranked = [int(i) for i in order if int(i) not in used][: self.pool]
            first = ranked[0]
            second = ranked[1 + int(rng.integers(len(ranked) - 1))] if len(ranked) > 1 else first
            used.add(first)
            weight = float(rng.uniform(0.5, 0.8))
            pair = [first, second]
            image, shape = mix(
                [bank.images[i] for i in pair], [bank.shapes[i] for i in pair], [weight, 1 - weight], triangles
            )
            reshape = self.reshape if attempt <= self.candidates else self.more_reshape
            candidate = Candidate(image, shape, (first, second), (weight, 1 - weight), reshape)
            stretch, folded = warp_distortion(
                face.landmarks68, candidate, triangles, self.shape_mix, self.feature_mix, region
            )
            patch, bounds = compose(
                output, face.landmarks68, candidate, triangles, self.shape_mix, rng, self.feature_mix, region
            )
            if folded:  # refused before it is checked: the warp mirrors part of the texture
                check = Check(
                    similarity=1.0,
                    attributes=None,
                    failures=[Failure("fold", "warp folds the face over", {"stretch": stretch})],
                )
            else:
                check = self.check_patch(output, patch, bounds, goal, face.attributes)
            outcome = Synthesis(
                passed=check.passed,
                attempts=attempt,
                prototypes=candidate.sources,
                weights=candidate.weights,
                k=tuple(int(bank.k[i]) for i in candidate.sources),
                check=check,
                identity=PrototypeIdentity(candidate, triangles, self.shape_mix, self.feature_mix),
                stretch=stretch,
            )
            score = check.score
            if best is None or score < best[0]:
                best = (score, outcome, patch, bounds)
            if check.passed:
                if passing is None or check.similarity < passing[0].check.similarity:  # type: ignore[union-attr]
                    passing = (outcome, patch, bounds)
                if not choosy or attempt >= self.candidates:
                    break
                continue
            steer.update(check, float(np.mean([bank.apparent_age[i] for i in pair])))
        if passing is not None:
            chosen, patch, bounds = passing
            paste(output, patch, bounds, (0, 0))
            chosen.attempts = tried
            return chosen
        assert best is not None
        return self.settle(output, best[1], best[2], best[3], attempts=tried)


@dataclass(frozen=True)
class PrototypeIdentity:
    """A kept prototype candidate that renders itself onto a face (`SynthesisIdentity`): video draws it
    on every frame.
    """

    candidate: Candidate
    triangles: np.ndarray
    shape_mix: float
    feature_mix: float

    def render(self, output: np.ndarray, face: Face, rng: np.random.Generator) -> None:
        """Compose the candidate at the face's 68 landmarks and paste it into ``output``."""
        if face.landmarks68 is None:
            raise ValueError("the prototype identity renders at 68 landmarks; the face has none")
        patch, bounds = compose(
            output, face.landmarks68, self.candidate, self.triangles, self.shape_mix, rng, self.feature_mix
        )
        paste(output, patch, bounds, (0, 0))


class Steering:
    """What the loop learns from a failed candidate, for ranking the next one.

    The bank is asked for the attributes the deciding estimator read on the original (the pipeline's
    own estimator when the final gate is on, else the in-loop one: ranking by the fast reading was
    measured worse, 74 % vs 84 % age within 10 y). An age read off by d years moves
    the age asked of the bank by d (the frame shifts how a prototype reads: smooth averages read
    younger on an old face); a failed sex, emotion or identity check doubles that term's weight.
    """

    MAX_SHIFT = 30.0
    STEERED = ("sex", "emotion", "identity")
    """Failure kinds whose `RankWeights` term (of the same name) doubles after a failed check."""

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
        if (
            target is not None
            and after is not None
            and target.age is not None
            and after.age is not None
            and abs(after.age - target.age) > 5.0
        ):
            # prototypes reading p bare read after.age here; to read target.age, ask for ones reading
            # p - after.age + target.age, i.e. shift the goal by that minus the goal's own age
            deciding = self.final or self.fast  # the reading goal() shifts (not None: target is one of them)
            goal = deciding.age if deciding is not None else None
            if goal is not None:  # without an age, goal() leaves the age alone: no shift to learn
                shift = prototype_age - after.age + target.age - goal
                self.age_shift = float(np.clip(shift, -self.MAX_SHIFT, self.MAX_SHIFT))
        for failure in check.failures:
            if failure.kind in self.STEERED:  # the rank term of the same name
                setattr(self.weights, failure.kind, 2.0 * getattr(self.weights, failure.kind))

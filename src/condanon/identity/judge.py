"""The one identity judgement: does a recogniser still take an anonymised face for the person?

Every place that compares an anonymised face with its original (the synthesis loop, the final check of
an image, the per-track checks of a video, the evaluation and the leak test) asks `judge`, so the
direction of each metric (a cosine similarity falls, an L2 distance rises, as faces differ) and the
side a margin moves the bar to are decided here and nowhere else.
"""

from __future__ import annotations

import numpy as np

from ..types import IdentityCheck
from .base import Embedder, Metric, is_match, similarity


def safe_side(metric: Metric, bar: float, margin: float) -> float:
    """Return ``bar`` moved ``margin`` toward "another person": lower for a similarity, higher for a distance."""
    return bar - margin if metric == "cosine" else bar + margin


def judge(
    embedder: Embedder, original: np.ndarray, anonymised: np.ndarray, bar: float | None = None, margin: float = 0.0
) -> IdentityCheck:
    """Return ``embedder``'s verdict on two vectors of one face: the original and its anonymised version.

    ``bar`` is the value from which the recogniser calls the two the same person (default: its own
    published threshold); ``margin`` asks for that much room on the safe side of it. The check's
    ``matched`` is true when the face is still the person within that margin.
    """
    bar = embedder.threshold if bar is None else float(bar)
    value = similarity(embedder.metric, original, anonymised)
    matched = is_match(embedder.metric, value, safe_side(embedder.metric, bar, margin))
    return IdentityCheck(embedder.name, embedder.metric, value, bar, matched, margin)


def unjudged(embedder: Embedder, bar: float | None = None) -> IdentityCheck:
    """Return the check of a comparison that could not run (``matched`` is ``None``: callers fail closed)."""
    return IdentityCheck(embedder.name, embedder.metric, None, embedder.threshold if bar is None else float(bar), None)


def ranks_by_similarity(embedder: Embedder) -> bool:
    """Return whether a higher value of ``embedder`` means more alike (a cosine similarity, not a distance)."""
    return embedder.metric == "cosine"

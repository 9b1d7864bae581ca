"""The identity bar: how alike a recogniser finds strangers of a given age, so a synthetic face is judged by it.

A fixed match threshold is the wrong bar for a synthetic face in both directions. SFace reads any two
infants as alike (the median similarity between strangers under 4 is above its match threshold), so a
fixed bar pushes infants to adult faces; for adults it lets through candidates that another recogniser
still matches (strangers rarely reach it). The bar here is relative: a synthetic face passes when it is
less like the original than `STRANGER_QUANTILE` of strangers of the original's age are like each other,
under the same recogniser. The table is measured by tools/measure_stranger_similarity.py
(models/stranger-similarity-v1.md); recognisers without one keep their own threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, one_line, show_path
from ..weights import load_once, model_path
from .base import Embedder
from .judge import safe_side

STRANGER_QUANTILE = 0.95
"""A synthetic face must be less like the original than this share of strangers of its age are alike."""

TABLES = {"sface": "stranger-similarity-v1"}
"""The measured stranger table of each recogniser that has one (registered model names)."""


@dataclass(frozen=True)
class StrangerTable:
    """Quantiles of the similarity between strangers, by age band (one recogniser)."""

    embedder: str
    ages: np.ndarray
    """Centre of each age band (years), ascending."""
    quantiles: dict[float, np.ndarray]
    """Quantile -> its similarity in each band."""

    @classmethod
    def load(cls, path: str | Path) -> StrangerTable:
        """Return the table stored at ``path`` (written by tools/measure_stranger_similarity.py)."""
        try:
            payload = json.loads(Path(path).read_text())
            bands = payload["bands"]
            ages = np.array([(b["ages"][0] + min(b["ages"][1], 80)) / 2 for b in bands], dtype=np.float64)
            levels = {float(q) for b in bands for q in b["quantiles"]}
            quantiles = {q: np.array([b["quantiles"][str(q)] for b in bands], dtype=np.float64) for q in levels}
            if not len(ages) or np.any(np.diff(ages) <= 0):
                raise ValueError("its age bands are empty or out of order")
            return cls(str(payload["embedder"]), ages, quantiles)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelError(f"stranger table {show_path(path)} cannot be read: {one_line(error)}") from None

    def similarity(self, age: float | None, quantile: float = STRANGER_QUANTILE) -> float:
        """Return the similarity ``quantile`` of strangers are below at ``age`` (interpolated between bands).

        Unknown age: the strictest band's value.
        """
        if quantile not in self.quantiles:
            raise ValueError(
                f"the {self.embedder} stranger table has no {quantile} quantile (it has {sorted(self.quantiles)})"
            )
        values = self.quantiles[quantile]
        if age is None or not np.isfinite(age):
            return float(values.min())
        return float(np.interp(age, self.ages, values))


def stranger_table(embedder: str) -> StrangerTable | None:
    """Return the bundled stranger table of recogniser ``embedder`` (``None``: it has none), loaded once."""
    name = TABLES.get(embedder)
    if name is None:
        return None
    return load_once(name, lambda: StrangerTable.load(model_path(name)))


def _table_for(embedder: Embedder) -> StrangerTable | None:
    """Return the stranger table of ``embedder`` (cosine recognisers only; ``None``: it has none)."""
    return stranger_table(embedder.name) if embedder.metric == "cosine" else None


def identity_bar(embedder: Embedder, age: float | None) -> float:
    """Return the similarity (cosine) or distance (L2) from which ``embedder`` still calls a face of ``age`` the person.

    With a stranger table: its `STRANGER_QUANTILE` at that age; without: the recogniser's own threshold.
    """
    table = _table_for(embedder)
    return embedder.threshold if table is None else table.similarity(age)


def typical_stranger(embedder: Embedder, age: float | None) -> float:
    """Return the median similarity of two strangers of ``age`` under ``embedder`` (0 without a table)."""
    table = _table_for(embedder)
    return 0.0 if table is None else table.similarity(age if age is not None else float(table.ages[-2]), 0.5)


def identity_limit(embedder: Embedder, age: float | None, margin: float) -> float:
    """Return `identity_bar` moved ``margin`` to the safe side (lower similarity, or larger distance)."""
    return safe_side(embedder.metric, identity_bar(embedder, age), margin)

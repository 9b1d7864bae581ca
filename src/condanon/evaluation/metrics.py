"""Aggregate `FaceRecord`s into one `MethodSummary` per dataset and method.

Rates are fractions in [0, 1]; a figure is ``None`` when no face had what it needs (no label, no
gallery). Only faces whose original was detected count; the summary says how many were not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..synthesis.backend import (
    CHILD_AGE,  # the synthetic loop's line between child and adult
)
from .realism import (
    DARK_SKIN_L,
    FRONTAL_YAW,
    SIZE_BUCKETS,
    TEXTURE_MIN_HEIGHT,
    two_sample_accuracy,
)
from .records import FaceRecord


@dataclass
class MethodSummary:
    """Every figure of one method on one dataset (or on all of them: ``dataset == "all"``)."""

    dataset: str
    method: str
    samples: int
    faces: int
    """Samples whose original face was detected; the figures below are over these."""
    sface_removed: float | None = None
    dlib_removed: float | None = None
    sface_similarity: float | None = None
    dlib_distance: float | None = None
    reid_faces: int = 0
    reid_sface: float | None = None
    reid_dlib: float | None = None
    sex_agreement: float | None = None
    age_difference: float | None = None
    age_within_5: float | None = None
    age_within_10: float | None = None
    emotion_agreement: float | None = None
    sex_accuracy_before: float | None = None
    sex_accuracy_after: float | None = None
    age_mae_before: float | None = None
    age_mae_after: float | None = None
    emotion_accuracy_before: float | None = None
    emotion_accuracy_after: float | None = None
    detected_primary: float | None = None
    detected_second: float | None = None
    ms_per_face: float | None = None
    """Median time of the method per face (anonymisation with its own checks)."""
    fallbacks: int = 0
    fallback_reasons: dict[str, int] = field(default_factory=dict)
    # Realism and fidelity (`condanon.evaluation.realism`; definitions in docs/realism.md).
    texture_ratio: float | None = None
    """Median texture ratio (after / before) over faces at least `TEXTURE_MIN_HEIGHT` high."""
    texture_faces: int = 0
    skin_de: float | None = None
    """Median Delta E of the skin's median L*a*b*."""
    dark_skin_dl: float | None = None
    """Median L* shift of dark skin (L* before under `DARK_SKIN_L`); positive: lighter."""
    dark_faces: int = 0
    ho_sex_agreement: float | None = None
    """Held-out readers: agreement between original and output; ``*_ceiling``: original and its mirror image."""
    ho_sex_ceiling: float | None = None
    ho_age_within_10: float | None = None
    ho_age_ceiling: float | None = None
    ho_emotion_agreement: float | None = None
    ho_emotion_ceiling: float | None = None
    two_sample: float | None = None
    """Accuracy of a classifier telling original crops from anonymised ones (0.5: indistinguishable)."""
    stretch_median: float | None = None
    """Median and largest warp stretch of the kept synthetic faces (`synthesis.warp.distortion`)."""
    stretch_max: float | None = None

    @property
    def attribute_retention(self) -> float | None:
        """Return the mean of sex agreement, age within 10 years and emotion agreement (those measured)."""
        parts = [v for v in (self.sex_agreement, self.age_within_10, self.emotion_agreement) if v is not None]
        return float(np.mean(parts)) if parts else None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (floats rounded to 4 places)."""
        out = asdict(self)
        out["attribute_retention"] = self.attribute_retention
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _rate(values: Iterable[bool | None]) -> float | None:
    kept = [bool(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _pairs(records: list[FaceRecord], a: str, b: str) -> list[tuple[Any, Any]]:
    return [(getattr(r, a), getattr(r, b)) for r in records if getattr(r, a) is not None and getattr(r, b) is not None]


def summarise(records: list[FaceRecord], dataset: str, method: str) -> MethodSummary:
    """Return the summary of ``records`` (all of one method)."""
    found = [r for r in records if r.detected]
    summary = MethodSummary(dataset=dataset, method=method, samples=len(records), faces=len(found))
    if not found:
        return summary
    summary.sface_removed = _rate(None if r.sface_matched is None else not r.sface_matched for r in found)
    summary.dlib_removed = _rate(None if r.dlib_matched is None else not r.dlib_matched for r in found)
    summary.sface_similarity = _mean(r.sface_similarity for r in found)
    summary.dlib_distance = _mean(r.dlib_distance for r in found)
    reid = [r for r in found if r.reid_sface_hit is not None or r.reid_dlib_hit is not None]
    summary.reid_faces = len(reid)
    summary.reid_sface = _rate(r.reid_sface_hit for r in reid)
    summary.reid_dlib = _rate(r.reid_dlib_hit for r in reid)
    summary.sex_agreement = _rate(a == b for a, b in _pairs(found, "sex_before", "sex_after"))
    ages = np.array([abs(a - b) for a, b in _pairs(found, "age_before", "age_after")])
    if ages.size:
        summary.age_difference = float(ages.mean())
        summary.age_within_5 = float(np.mean(ages <= 5))
        summary.age_within_10 = float(np.mean(ages <= 10))
    summary.emotion_agreement = _rate(a == b for a, b in _pairs(found, "emotion_before", "emotion_after"))
    summary.sex_accuracy_before = _rate(a == b for a, b in _pairs(found, "sex_before", "label_sex"))
    summary.sex_accuracy_after = _rate(a == b for a, b in _pairs(found, "sex_after", "label_sex"))
    summary.age_mae_before = _mean(abs(a - b) for a, b in _pairs(found, "age_before", "label_age"))
    summary.age_mae_after = _mean(abs(a - b) for a, b in _pairs(found, "age_after", "label_age"))
    summary.emotion_accuracy_before = _rate(a == b for a, b in _pairs(found, "emotion_before", "label_emotion"))
    summary.emotion_accuracy_after = _rate(a == b for a, b in _pairs(found, "emotion_after", "label_emotion"))
    summary.detected_primary = _rate(r.detected_after_primary for r in found)
    summary.detected_second = _rate(r.detected_after_second for r in found)
    times = [r.ms for r in found if r.ms is not None]
    summary.ms_per_face = float(np.median(times)) if times else None
    fell = [r for r in found if r.verdict == "fallback"]
    summary.fallbacks = len(fell)
    summary.fallback_reasons = dict(Counter(r.failure_kind or "unknown" for r in fell).most_common())
    _realism(summary, found)
    return summary


def _median(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.median(kept)) if kept else None


def _realism(summary: MethodSummary, found: list[FaceRecord]) -> None:
    """Fill the realism and held-out reader figures of ``summary`` from ``found``."""
    large = [r for r in found if (r.face_px or 0.0) >= TEXTURE_MIN_HEIGHT and r.texture_ratio is not None]
    summary.texture_ratio, summary.texture_faces = _median(r.texture_ratio for r in large), len(large)
    summary.skin_de = _median(r.skin_de for r in found)
    dark = [r for r in found if r.skin_l_before is not None and r.skin_l_before < DARK_SKIN_L]
    summary.dark_skin_dl, summary.dark_faces = _median(r.skin_dl for r in dark), len(dark)
    for attribute in ("sex", "emotion"):
        before = f"ho_{attribute}_before"
        setattr(
            summary,
            f"ho_{attribute}_agreement",
            _rate(a == b for a, b in _pairs(found, before, f"ho_{attribute}_after")),
        )
        setattr(
            summary,
            f"ho_{attribute}_ceiling",
            _rate(a == b for a, b in _pairs(found, before, f"ho_{attribute}_mirror")),
        )
    summary.ho_age_within_10 = _rate(abs(a - b) <= 10 for a, b in _pairs(found, "ho_age_before", "ho_age_after"))
    summary.ho_age_ceiling = _rate(abs(a - b) <= 10 for a, b in _pairs(found, "ho_age_before", "ho_age_mirror"))
    stretches = [r.stretch for r in found if r.stretch is not None]
    summary.stretch_median = _median(stretches)
    summary.stretch_max = max(stretches) if stretches else None
    paired = [r for r in found if "before" in r.crops and "after" in r.crops]
    if paired:
        summary.two_sample = two_sample_accuracy(
            [r.crops["before"] for r in paired], [r.crops["after"] for r in paired], [r.sample for r in paired]
        )


def face_groups(record: FaceRecord) -> list[str]:
    """Return the groups a face counts in for the breakdown: its size, pose, skin tone and age (child or adult)."""
    groups = []
    if record.face_px is not None:
        groups += [name for low, high, name in SIZE_BUCKETS if low <= record.face_px < high]
    if record.yaw is not None:
        groups.append("frontal" if abs(record.yaw) < FRONTAL_YAW else "turned")
    if record.skin_l_before is not None:
        groups.append("dark skin" if record.skin_l_before < DARK_SKIN_L else "lighter skin")
    if record.age_before is not None:
        groups.append("child (< 13 y)" if record.age_before < CHILD_AGE else "13 y and over")
    return groups


def realism_breakdown(records: list[FaceRecord], methods: list[str]) -> dict[str, dict[str, MethodSummary]]:
    """Return ``{group: {method: summary}}`` over every dataset, for the groups of `face_groups`."""
    found = [r for r in records if r.detected]
    names = [name for _, _, name in SIZE_BUCKETS] + [
        "frontal",
        "turned",
        "dark skin",
        "lighter skin",
        "child (< 13 y)",
        "13 y and over",
    ]
    out: dict[str, dict[str, MethodSummary]] = {}
    for name in names:
        members = [r for r in found if name in face_groups(r)]
        if members:
            out[name] = {m: summarise([r for r in members if r.method == m], name, m) for m in methods}
    return out


def summarise_all(records: list[FaceRecord], methods: list[str]) -> dict[str, dict[str, MethodSummary]]:
    """Return ``{dataset or "all": {method: summary}}`` for every dataset present, plus ``"all"``."""
    datasets = list(dict.fromkeys(r.dataset for r in records))
    out: dict[str, dict[str, MethodSummary]] = {}
    for name in datasets + (["all"] if len(datasets) > 1 else []):
        chosen = records if name == "all" else [r for r in records if r.dataset == name]
        out[name] = {m: summarise([r for r in chosen if r.method == m], name, m) for m in methods}
    return out

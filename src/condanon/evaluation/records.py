"""`FaceRecord`: what one method did to one labelled face, as measured (one CSV row)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


@dataclass
class FaceRecord:
    """The measurements of one method on the main (largest) face of one sample."""

    dataset: str
    sample: int
    path: str
    method: str
    detected: bool
    """Whether the original face was found at all (if not, nothing else is measured)."""
    identity: str | None = None
    label_age: float | None = None
    label_sex: str | None = None
    label_emotion: str | None = None
    faces_in_image: int = 0
    box: list[float] | None = None
    verdict: str | None = None
    reason: str | None = None
    failure_kind: str | None = None
    """The kind of the failure that made the face fall back (`condanon.failures.FailureKind`)."""
    attempts: int | None = None
    """Candidates the synthetic method tried for this face."""
    drift: str | None = None
    """Attribute checks the kept synthetic face failed in the loop (``;``-joined; empty: none)."""
    sface_similarity: float | None = None
    sface_matched: bool | None = None
    dlib_distance: float | None = None
    dlib_matched: bool | None = None
    reid_sface_hit: bool | None = None
    """Rank-1 re-identification against the other photos of the set (None: no gallery for this identity)."""
    reid_dlib_hit: bool | None = None
    age_before: float | None = None
    age_after: float | None = None
    sex_before: str | None = None
    sex_after: str | None = None
    emotion_before: str | None = None
    emotion_after: str | None = None
    detected_after_primary: bool | None = None
    detected_after_second: bool | None = None
    ms: float | None = None
    face_px: float | None = None
    """The original face's box height."""
    yaw: float | None = None
    """The nose's offset from the eyes' midpoint over the eye distance (0: frontal; `realism.yaw_of`)."""
    stretch: float | None = None
    """The kept synthetic face's largest warp stretch (`synthesis.warp.distortion`; None: not synthesised)."""
    texture_ratio: float | None = None
    """Laplacian variance of the inner face, after / before (`condanon.evaluation.realism`)."""
    skin_l_before: float | None = None
    skin_de: float | None = None
    """Delta E (CIE76) between the median L*a*b* of the skin before and after."""
    skin_dl: float | None = None
    """L* after minus L* before (positive: lighter)."""
    ho_age_before: float | None = None
    """Held-out readers (`realism.HELD_OUT_READERS`) on the original, the output and the original mirrored in place."""
    ho_age_after: float | None = None
    ho_age_mirror: float | None = None
    ho_sex_before: str | None = None
    ho_sex_after: str | None = None
    ho_sex_mirror: str | None = None
    ho_emotion_before: str | None = None
    ho_emotion_after: str | None = None
    ho_emotion_mirror: str | None = None
    vectors_after: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """The anonymised face's identity vectors (for re-identification; not written out)."""
    crops: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Grey feature crops ``before`` and ``after`` (for the two-sample test; not written out)."""

    def row(self) -> dict[str, Any]:
        """Return the CSV row: every field but the vectors, ``box`` as text."""
        out = {name: getattr(self, name) for name in CSV_COLUMNS}
        out["box"] = " ".join(f"{v:.1f}" for v in self.box) if self.box else ""
        return out


CSV_COLUMNS = [f.name for f in fields(FaceRecord) if f.name not in ("vectors_after", "crops")]

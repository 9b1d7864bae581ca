"""Why a check failed, as a record: a kind to count and steer by, the sentence a person reads, the figures.

Failures used to be sentences that later code parsed back (``failure.startswith("sex ")``, a regex that
stripped figures to count reasons). A `Failure` keeps the three apart: ``kind`` is what code branches on
and what reports count by, ``detail`` is the one line a report shows (``str(failure)``), ``values`` the
figures behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FailureKind = Literal[
    "identity",  # a recogniser still takes the face for the person
    "age",  # the age read differently beyond tolerance, or a child/adult swap
    "sex",
    "emotion",
    "unreadable",  # the attributes could not be read on the candidate
    "undetected",  # the candidate is no longer detected as a face
    "fold",  # the warp folds the face over
    "uncertain",  # the detection may not be a face: obscured, never synthesised
    "small",  # too few pixels for a synthetic face
    "unchecked",  # a check that had to run could not
    "error",  # the method raised
]
FAILURE_KINDS: tuple[str, ...] = FailureKind.__args__  # type: ignore[attr-defined]

KEPT_KINDS = ("age", "sex")
"""Attribute failures a kept synthetic face may never have (an unsure sex excepted): dashboards count by them."""


@dataclass(frozen=True)
class Failure:
    """One failed check: its ``kind``, the ``detail`` a person reads, and the figures in ``values``."""

    kind: FailureKind
    detail: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail

    @property
    def unsure(self) -> bool:
        """Return whether the reading before was unsure (a sex read under the clear confidence):
        reported, not refused.
        """
        return bool(self.values.get("unsure"))

    @property
    def blocks_keeping(self) -> bool:
        """Return whether a candidate with this failure may never be kept (age, a sure sex change, a fold)."""
        return (self.kind in KEPT_KINDS and not self.unsure) or self.kind == "fold"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (figures rounded to 4 digits)."""
        return {"kind": self.kind, "detail": self.detail, "values": _plain(dict(self.values))}


def _plain(value: Any) -> Any:
    """Return ``value`` with plain JSON types: floats (numpy's too) rounded, containers walked."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    try:
        return round(float(value), 4)
    except (TypeError, ValueError):
        return str(value)


def uncertain_failure(doubt: str | None) -> Failure:
    """Return why a doubtful detection is obscured rather than synthesised (photos and videos alike)."""
    return Failure(
        "uncertain", f"uncertain face, obscured, not synthesised: {doubt or 'doubtful detection'}", {"doubt": doubt}
    )


def small_failure(height: float, least: float, purpose: str) -> Failure:
    """Return why a face ``height`` px high, under ``least``, gets no synthetic face (``purpose``: what it is too small
    for).
    """
    return Failure("small", f"face {height:.0f} px high, under {least:.0f} px: too small {purpose}", {"height": height})

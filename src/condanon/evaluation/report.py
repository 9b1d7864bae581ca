"""Writing an evaluation out: Markdown table, JSON with every number, CSV with one row per face."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..imageio import write_atomic
from .metrics import MethodSummary
from .records import CSV_COLUMNS, FaceRecord


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


Cell = Callable[[str, MethodSummary], str]
"""One column's cell of a method's row: ``cell(method, summary)``."""


def _pair(value: str, aside: str) -> str:
    return f"{value} ({aside})"


MAIN_COLUMNS: list[tuple[str, Cell]] = [
    ("method", lambda m, s: m),
    ("faces", lambda m, s: f"{s.faces}/{s.samples}"),
    ("SFace removed (in-loop)", lambda m, s: _pct(s.sface_removed) + ("" if m == "original" else " *")),
    ("dlib removed (held-out)", lambda m, s: _pct(s.dlib_removed)),
    ("re-ID R1 SFace", lambda m, s: _pct(s.reid_sface)),
    ("re-ID R1 dlib", lambda m, s: _pct(s.reid_dlib)),
    ("sex agree", lambda m, s: _pct(s.sex_agreement)),
    ("age diff (y)", lambda m, s: _num(s.age_difference)),
    ("age within 10 y", lambda m, s: _pct(s.age_within_10)),
    ("emotion agree", lambda m, s: _pct(s.emotion_agreement)),
    ("detected YuNet", lambda m, s: _pct(s.detected_primary)),
    ("detected Haar", lambda m, s: _pct(s.detected_second)),
    ("ms/face", lambda m, s: _num(s.ms_per_face, 0)),
    ("fallbacks", lambda m, s: str(s.fallbacks)),
]
LABEL_COLUMNS: list[tuple[str, Cell]] = [
    ("method", lambda m, s: m),
    ("sex acc before", lambda m, s: _pct(s.sex_accuracy_before)),
    ("sex acc after", lambda m, s: _pct(s.sex_accuracy_after)),
    ("age MAE before", lambda m, s: _num(s.age_mae_before)),
    ("age MAE after", lambda m, s: _num(s.age_mae_after)),
    ("emotion acc before", lambda m, s: _pct(s.emotion_accuracy_before)),
    ("emotion acc after", lambda m, s: _pct(s.emotion_accuracy_after)),
]
REALISM_COLUMNS: list[tuple[str, Cell]] = [
    ("method", lambda m, s: m),
    ("texture after/before (faces >= 64 px)", lambda m, s: _pair(_num(s.texture_ratio, 2), f"n={s.texture_faces}")),
    ("skin dE", lambda m, s: _num(s.skin_de)),
    ("dark skin dL*", lambda m, s: _pair(_num(s.dark_skin_dl), f"n={s.dark_faces}")),
    ("held-out sex agree (mirror)", lambda m, s: _pair(_pct(s.ho_sex_agreement), _pct(s.ho_sex_ceiling))),
    ("held-out age within 10 y (mirror)", lambda m, s: _pair(_pct(s.ho_age_within_10), _pct(s.ho_age_ceiling))),
    ("held-out emotion agree (mirror)", lambda m, s: _pair(_pct(s.ho_emotion_agreement), _pct(s.ho_emotion_ceiling))),
    ("two-sample accuracy", lambda m, s: _pct(s.two_sample)),
    ("warp stretch (max)", lambda m, s: _pair(_num(s.stretch_median), _num(s.stretch_max))),
]


def _table(columns: list[tuple[str, Cell]], summaries: dict[str, MethodSummary]) -> str:
    """Return a Markdown table with one row per method: the header, its separator line, then the rows."""
    lines = ["| " + " | ".join(name for name, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(m, s) for _, cell in columns) + " |" for m, s in summaries.items()]
    return "\n".join(lines)


def markdown_table(summaries: dict[str, MethodSummary]) -> str:
    """Return the Markdown table of one dataset: one row per method."""
    return _table(MAIN_COLUMNS, summaries)


def label_table(summaries: dict[str, MethodSummary]) -> str:
    """Return the Markdown table of accuracy against the labels, before and after each method."""
    return _table(LABEL_COLUMNS, summaries)


def realism_table(summaries: dict[str, MethodSummary]) -> str:
    """Return the Markdown table of realism and held-out readers: one row per method."""
    return _table(REALISM_COLUMNS, summaries)


def markdown(result: Any) -> str:
    """Return the whole Markdown report of an `Evaluation`."""
    parts = [
        "# condanon evaluation",
        "",
        f"Methods: {', '.join(result.methods)}. Seed {result.seed}. "
        f"In-loop embedder: SFace (cosine, match at >= 0.363; the methods check their own output with it, "
        f"marked *). Held-out attacker: dlib ResNet (L2 on unit vectors, match below 0.4). Re-ID: rank-1 "
        f"against the other photos of every identity in the set. Detected: found again at IoU >= 0.5.",
        "",
        f"Padding: {result.padding}",
        "",
    ]
    for name, summaries in result.summaries.items():
        first = next(iter(summaries.values()))
        parts += [f"## {name} ({first.samples} photos)", "", markdown_table(summaries), ""]
        if any(s.sex_accuracy_before is not None or s.emotion_accuracy_before is not None for s in summaries.values()):
            parts += ["Against the labels:", "", label_table(summaries), ""]
        parts += ["Realism and held-out readers:", "", realism_table(summaries), ""]
        reasons = {m: s.fallback_reasons for m, s in summaries.items() if s.fallback_reasons}
        for method, table in reasons.items():
            parts.append(f"- {method} fallbacks: " + "; ".join(f"{k}: {v}" for k, v in table.items()))
        if reasons:
            parts.append("")
    if getattr(result, "breakdown", None):
        parts += [
            "## By face size, pose, skin tone and age (all sets)",
            "",
            (
                "Held-out readers: age and sex by age-gender alone, emotion by the fer teacher (the loop steers by "
                "neither); in brackets the same reader between the original and the original mirrored in place (its "
                "ceiling). Texture: Laplacian variance of the inner face, after/before. Two-sample: a logistic "
                "regression telling original from anonymised crops, trained on half the photos (50 %: cannot tell)."
            ),
            "",
        ]
        for group, summaries in result.breakdown.items():
            first = next(iter(summaries.values()))
            parts += [
                f"### {group} ({first.faces} faces)",
                "",
                markdown_table(summaries),
                "",
                realism_table(summaries),
                "",
            ]
    if result.errors:
        parts += ["## Inputs that failed", ""] + [f"- {e}" for e in result.errors] + [""]
    return "\n".join(parts)


def records_csv(records: list[FaceRecord]) -> str:
    """Return the per-face CSV text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in record.row().items()})
    return buffer.getvalue()


def write_reports(result: Any, folder: Path) -> dict[str, Path]:
    """Write ``evaluation.md``, ``evaluation.json`` and ``faces.csv`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": folder / "evaluation.md", "json": folder / "evaluation.json", "csv": folder / "faces.csv"}
    write_atomic(paths["markdown"], markdown(result).encode())
    write_atomic(paths["json"], json.dumps(result.to_dict(), indent=2).encode())
    write_atomic(paths["csv"], records_csv(result.records).encode())
    return paths

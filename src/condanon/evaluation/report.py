"""Writing an evaluation out: Markdown table, JSON with every number, CSV with one row per face."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..imageio import write_atomic
from .metrics import MethodSummary
from .records import CSV_COLUMNS, FaceRecord


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


HEADER = (
    "| method | faces | SFace removed (in-loop) | dlib removed (held-out) | re-ID R1 SFace | re-ID R1 dlib "
    "| sex agree | age diff (y) | age within 10 y | emotion agree "
    "| detected YuNet | detected Haar | ms/face | fallbacks |"
)


def _table(header: str, rows: list[str]) -> str:
    """Return a Markdown table: ``header``, its separator line, then ``rows``."""
    return "\n".join([header, "|" + "---|" * (header.count("|") - 1), *rows])


def markdown_table(summaries: dict[str, MethodSummary]) -> str:
    """Return the Markdown table of one dataset: one row per method."""
    return _table(
        HEADER,
        [
            f"| {method} | {s.faces}/{s.samples} | {_pct(s.sface_removed)}{'' if method == 'original' else ' *'} "
            f"| {_pct(s.dlib_removed)} | {_pct(s.reid_sface)} | {_pct(s.reid_dlib)} | {_pct(s.sex_agreement)} "
            f"| {_num(s.age_difference)} | {_pct(s.age_within_10)} | {_pct(s.emotion_agreement)} "
            f"| {_pct(s.detected_primary)} "
            f"| {_pct(s.detected_second)} | {_num(s.ms_per_face, 0)} | {s.fallbacks} |"
            for method, s in summaries.items()
        ],
    )


def label_table(summaries: dict[str, MethodSummary]) -> str:
    """Return the Markdown table of accuracy against the labels, before and after each method."""
    header = (
        "| method | sex acc before | sex acc after | age MAE before | age MAE after "
        "| emotion acc before | emotion acc after |"
    )
    return _table(
        header,
        [
            f"| {method} | {_pct(s.sex_accuracy_before)} | {_pct(s.sex_accuracy_after)} | {_num(s.age_mae_before)} "
            f"| {_num(s.age_mae_after)} | {_pct(s.emotion_accuracy_before)} | {_pct(s.emotion_accuracy_after)} |"
            for method, s in summaries.items()
        ],
    )


REALISM_HEADER = (
    "| method | texture after/before (faces >= 64 px) | skin dE | dark skin dL* | held-out sex agree (mirror) "
    "| held-out age within 10 y (mirror) | held-out emotion agree (mirror) | two-sample accuracy | warp stretch (max) |"
)


def realism_table(summaries: dict[str, MethodSummary]) -> str:
    """Return the Markdown table of realism and held-out readers: one row per method."""
    return _table(
        REALISM_HEADER,
        [
            f"| {method} | {_num(s.texture_ratio, 2)} (n={s.texture_faces}) | {_num(s.skin_de)} "
            f"| {_num(s.dark_skin_dl)} (n={s.dark_faces}) | {_pct(s.ho_sex_agreement)} ({_pct(s.ho_sex_ceiling)}) "
            f"| {_pct(s.ho_age_within_10)} ({_pct(s.ho_age_ceiling)}) "
            f"| {_pct(s.ho_emotion_agreement)} ({_pct(s.ho_emotion_ceiling)}) | {_pct(s.two_sample)} "
            f"| {_num(s.stretch_median)} ({_num(s.stretch_max)}) |"
            for method, s in summaries.items()
        ],
    )


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

"""Pictures of an evaluation: privacy-utility scatter, per-attribute bars, and a contact sheet.

matplotlib is optional (``pip install "condanon[eval]"``); without it the plots are skipped with a
log line, and the tables are still written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from ..imageio import write_image
from .metrics import MethodSummary

log = logging.getLogger(__name__)


def _pyplot() -> ModuleType | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        log.warning("matplotlib is not installed: plots skipped (pip install 'condanon[eval]')")
        return None


def privacy_utility(summaries: dict[str, MethodSummary], path: Path) -> Path | None:
    """Plot identity removal (held-out dlib and in-loop SFace) against attribute retention, one point per method."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    for method, s in summaries.items():
        if s.dlib_removed is None or s.attribute_retention is None:
            continue
        x, y = 100 * s.dlib_removed, 100 * s.attribute_retention
        ax.scatter([x], [y], s=70)
        ax.annotate(method, (x, y), textcoords="offset points", xytext=(6, 6))
        if s.sface_removed is not None:
            ax.scatter([100 * s.sface_removed], [y], s=30, marker="x", color="grey")
    ax.set_xlabel("identity removed, % (dot: held-out dlib; x: in-loop SFace)")
    ax.set_ylabel("attributes kept, % (mean of sex, age within 10 y, emotion)")
    ax.set_xlim(-5, 105)
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    ax.set_title("privacy against utility (top right is best)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def attribute_bars(summaries: dict[str, MethodSummary], path: Path) -> Path | None:
    """Plot, per method, sex agreement, age within 5 and 10 years, emotion agreement and detectability."""
    plt = _pyplot()
    if plt is None:
        return None
    metrics = [
        ("sex agree", "sex_agreement"),
        ("age within 5 y", "age_within_5"),
        ("age within 10 y", "age_within_10"),
        ("emotion agree", "emotion_agreement"),
        ("detected (YuNet)", "detected_primary"),
    ]
    methods = list(summaries)
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for i, method in enumerate(methods):
        values = [100 * (getattr(summaries[method], attr) or 0.0) for _, attr in metrics]
        ax.bar(np.arange(len(metrics)) + i * width, values, width, label=method)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(methods) - 1) / 2)
    ax.set_xticklabels([name for name, _ in metrics])
    ax.set_ylabel("% of faces")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("what each method keeps (original vs anonymised, same estimator)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def contact_sheet(rows: list[dict[str, np.ndarray]], methods: list[str], path: Path) -> Path | None:
    """Write a grid: one row per photo, one column per method (the original first); BGR crops of equal size."""
    rows = [r for r in rows if r]
    if not rows:
        return None
    columns = ["original"] + [m for m in methods if m != "original"]
    size = next(iter(rows[0].values())).shape[0]
    label_height = 18
    sheet = np.full((label_height + len(rows) * size, len(columns) * size, 3), 255, np.uint8)
    for c, name in enumerate(columns):
        cv2.putText(sheet, name[:16], (c * size + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for r, crops in enumerate(rows):
            if name in crops:
                y = label_height + r * size
                sheet[y : y + size, c * size : (c + 1) * size] = crops[name]
    write_image(path, sheet)
    return path

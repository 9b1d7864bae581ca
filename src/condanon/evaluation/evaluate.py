"""`evaluate`: the SDK call behind ``condanon evaluate``, and its typed result `Evaluation`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from .dataset import Dataset
from .metrics import MethodSummary, realism_breakdown, summarise_all
from .plots import attribute_bars, contact_sheet, privacy_utility
from .records import FaceRecord
from .report import write_reports
from .runner import (
    HELD_OUT,
    IN_LOOP,
    PADDING_NOTE,
    SECOND_DETECTOR,
    MethodSpec,
    default_workers,
    load_all,
    reidentify,
    run_samples,
)

DEFAULT_METHODS = ("original", "blur", "pixelate", "mask")


@dataclass
class Evaluation:
    """Everything one evaluation measured."""

    methods: list[str]
    seed: int
    datasets: list[Dataset]
    records: list[FaceRecord]
    summaries: dict[str, dict[str, MethodSummary]]
    """``{dataset name or "all": {method: summary}}``."""
    errors: list[str] = field(default_factory=list)
    breakdown: dict[str, dict[str, MethodSummary]] = field(default_factory=dict)
    """Realism and held-out readers by face size, pose and skin tone: ``{group: {method: summary}}``."""
    padding: str = PADDING_NOTE
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return every number as a JSON-ready dict."""
        return {
            "condanon": __version__,
            "seed": self.seed,
            "methods": self.methods,
            "in_loop_embedder": IN_LOOP,
            "held_out_embedder": HELD_OUT,
            "second_detector": SECOND_DETECTOR,
            "padding": self.padding,
            "seconds": round(self.seconds, 1),
            "datasets": [
                {"name": d.name, "path": str(d.root), "samples": len(d.samples), "columns": list(d.columns)}
                for d in self.datasets
            ],
            "summaries": {name: {m: s.to_dict() for m, s in table.items()} for name, table in self.summaries.items()},
            "breakdown": {name: {m: s.to_dict() for m, s in table.items()} for name, table in self.breakdown.items()},
            "errors": self.errors,
            "files": self.files,
        }


def evaluate(
    data: Iterable[str | Path],
    methods: Sequence[str] = DEFAULT_METHODS,
    limit: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int | None = None,
    contact_rows: int = 4,
    progress: bool = False,
) -> Evaluation:
    """Return the evaluation of ``methods`` on the datasets in ``data``; write the report folder if ``out``.

    ``methods`` are names or ``name:key=value`` specs (``blur:strength=0.25``); ``original`` (nothing
    changed) is the reference row and is added first if missing. ``limit`` draws that many photos per
    dataset with ``seed``. ``workers`` processes share the work (default: one per core, at most 4).
    """
    start = time.perf_counter()
    specs = [MethodSpec.parse(m) for m in methods]
    if not any(s.method == "original" for s in specs):
        specs.insert(0, MethodSpec.parse("original"))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"a method is listed twice: {labels}")
    datasets = load_all(data, limit, seed)
    if not datasets:
        raise ConfigError("no dataset given")
    total = sum(len(d.samples) for d in datasets)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="evaluating", unit="photo")
    try:
        outcomes = run_samples(
            datasets, specs, seed, workers or default_workers(), contact_rows if out else 0, bar.update if bar else None
        )
    finally:
        if bar:
            bar.close()
    reidentify(outcomes)
    records = [r for _, o in outcomes for r in o.records]
    errors = [o.error for _, o in outcomes if o.error]
    result = Evaluation(
        methods=labels,
        seed=seed,
        datasets=datasets,
        records=records,
        summaries=summarise_all(records, labels),
        errors=errors,
        breakdown=realism_breakdown(records, labels),
    )
    result.seconds = time.perf_counter() - start
    if out is not None:
        folder = Path(out)
        files = write_reports(result, folder)
        overall = result.summaries.get("all") or next(iter(result.summaries.values()))
        for name, path in (
            ("privacy_utility", privacy_utility(overall, folder / "privacy_utility.png")),
            ("attributes", attribute_bars(overall, folder / "attributes.png")),
            (
                "contact_sheet",
                contact_sheet([o.thumbnails or {} for _, o in outcomes], labels, folder / "contact_sheet.png"),
            ),
        ):
            if path is not None:
                files[name] = path
        result.files = {k: str(v) for k, v in files.items()}
        write_reports(result, folder)  # again, so the JSON lists the pictures too
    return result

"""Writing the analytics outputs: people.csv, timeline.csv, counts.json, the plots and the HTML report.

Every file is written atomically (a temporary file, then a rename), so a reader never sees half of one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..imageio import write_atomic
from .schema import PEOPLE_COLUMNS, TIMELINE_COLUMNS
from .summary import PassengerAnalytics

log = logging.getLogger(__name__)


def _columns(rows: list[dict[str, Any]], base: tuple[str, ...]) -> list[str]:
    extra = [key for row in rows[:1] for key in row if key not in base]
    return [*base, *extra]


def table_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Return ``rows`` as CSV text with a header of ``columns`` (``None`` as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def write_analytics(
    analytics: PassengerAnalytics, out: str | Path, plots: bool = True, parquet: bool = False
) -> list[Path]:
    """Write ``analytics`` into the folder ``out`` (created); return the files written.

    ``plots``: also the PNG plots and ``report.html`` (needs matplotlib; without it they are left out
    with a warning). ``parquet``: also ``people.parquet`` and ``timeline.parquet`` (needs pyarrow).
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    people_columns = _columns(analytics.people, PEOPLE_COLUMNS)
    tables = {"people": (analytics.people, people_columns), "timeline": (analytics.timeline, list(TIMELINE_COLUMNS))}
    written = []
    for name, (rows, columns) in tables.items():
        path = folder / f"{name}.csv"
        write_atomic(path, table_csv(rows, columns).encode())
        written.append(path)
    counts = folder / "counts.json"
    write_atomic(counts, json.dumps(analytics.counts, indent=2).encode())
    written.append(counts)
    if parquet:
        written += _parquet(folder, tables)
    if plots:
        from .plots import draw_plots

        images = draw_plots(analytics)
        for name, png in images.items():
            path = folder / f"{name}.png"
            write_atomic(path, png)
            written.append(path)
        from .html import report_html

        page = folder / "report.html"
        write_atomic(page, report_html(analytics, images).encode())
        written.append(page)
    return written


def _parquet(folder: Path, tables: dict[str, tuple[list[dict[str, Any]], list[str]]]) -> list[Path]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("--parquet needs pyarrow: pip install 'condanon[parquet]'") from None
    written = []
    for name, (rows, columns) in tables.items():
        table = (
            pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
            if rows
            else pa.table({c: pa.array([], pa.string()) for c in columns})
        )
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        path = folder / f"{name}.parquet"
        write_atomic(path, buffer.getvalue().to_pybytes())
        written.append(path)
    return written

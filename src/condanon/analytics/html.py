"""One self-contained HTML page of the analytics: the counts, the plots (inline PNG) and the people table."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from .schema import PEOPLE_COLUMNS
from .summary import PassengerAnalytics

MAX_ROWS = 500
"""People shown in the page's table (people.csv has them all)."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; }
td.text { text-align: left; }
img { max-width: 100%; margin: 0.5em 1em 0.5em 0; }
.small { color: #666; font-size: 0.85em; }
"""


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    kind = "" if isinstance(value, (int, float)) else ' class="text"'
    return f"<td{kind}>{html.escape(text)}</td>"


def _dict_table(title: str, values: dict[str, Any]) -> str:
    rows = "".join(f'<tr><td class="text">{html.escape(str(k))}</td>{_cell(v)}</tr>' for k, v in values.items())
    return f"<h3>{html.escape(title)}</h3><table>{rows or '<tr><td>none</td></tr>'}</table>"


def report_html(analytics: PassengerAnalytics, images: dict[str, bytes]) -> str:
    """Return the page: summary figures, plots, the counts by group and the people table."""
    counts = analytics.counts
    columns = [c for c in PEOPLE_COLUMNS if c != "tracks"] + [
        k for k in (analytics.people[:1] or [{}])[0] if k.startswith("crossed_")
    ]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in analytics.people[:MAX_ROWS]
    )
    more = (
        f'<p class="small">{len(analytics.people) - MAX_ROWS} more people in people.csv</p>'
        if len(analytics.people) > MAX_ROWS
        else ""
    )
    pictures = "".join(
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for name, png in images.items()
    )
    crossings = _dict_table("Line crossings", counts["crossings"]) if "crossings" in counts else ""
    summary = (
        f"<p><b>{counts['people']}</b> people counted in {counts['duration_s']} s "
        f"({counts['frames']} frames, {counts['tracks']} face tracks; "
        f"not counted: {html.escape(json.dumps(counts['not_counted'])) or 'none'}).</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>condanon analytics: {html.escape(analytics.source)}</title>
<style>{STYLE}</style></head>
<body>
<h1>Passenger analytics</h1>
<p class="small">{html.escape(analytics.source)} &middot; schema {html.escape(counts["schema"])}</p>
{summary}
{pictures}
<div style="display:flex; gap:2em; flex-wrap:wrap">
{_dict_table("By sex", counts["by_sex"])}
{_dict_table("By age band", counts["by_age_band"])}
{_dict_table("Dominant emotion (share of people)", counts["dominant_emotion_shares"])}
{crossings}
</div>
<h2>People</h2>
<table><tr>{head}</tr>{body}</table>
{more}
</body></html>
"""

"""The analytics plots as PNG bytes: people over time, the age/sex pyramid, emotion over time.

Drawn with matplotlib's object API (no pyplot state, so threads may draw at once). matplotlib is
optional (``pip install "condanon[analytics]"``): without it no plot is drawn and a warning says so.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from ..types import EMOTIONS
from .schema import AGE_BANDS
from .summary import PassengerAnalytics

log = logging.getLogger(__name__)

EMOTION_COLOURS = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#f2c12e",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#7f7f7f",
}


def _figure(width: float = 6.4, height: float = 3.6) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def draw_plots(analytics: PassengerAnalytics) -> dict[str, bytes]:
    """Return ``{name: PNG bytes}`` for ``people_over_time``, ``age_sex_pyramid`` and ``emotion_over_time``."""
    if _figure() is None:
        log.warning("matplotlib is not installed: analytics plots skipped (pip install 'condanon[analytics]')")
        return {}
    return {
        "people_over_time": _people_over_time(analytics),
        "age_sex_pyramid": _pyramid(analytics),
        "emotion_over_time": _emotion_over_time(analytics),
    }


def _window_middles(analytics: PassengerAnalytics) -> list[float]:
    return [(w["start_s"] + w["end_s"]) / 2 for w in analytics.counts["windows"]]


def _people_over_time(analytics: PassengerAnalytics) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    windows = analytics.counts["windows"]
    x = _window_middles(analytics)
    width = analytics.counts["window_s"] * 0.8
    ax.bar(x, [w["present"]["people"] for w in windows], width=width, color="#9ecae1", label="present")
    ax.plot(x, [w["new_people"] for w in windows], "o-", color="#08519c", label="new")
    for name, style in zip(analytics.counts.get("crossings", {}), ("s--", "^--")):
        ax.plot(x, [w["crossings"][name] for w in windows], style, label=f"crossed: {name}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("people")
    ax.set_title(f"People over time ({analytics.counts['people']} counted)")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper right", fontsize=8)
    return _png(figure)


def _pyramid(analytics: PassengerAnalytics) -> bytes:
    figure = _figure(6.4, 4.0)
    ax = figure.add_subplot()
    table = analytics.counts["by_age_band_and_sex"]
    bands = [b for b in [*AGE_BANDS, "unknown"] if b in table] or list(AGE_BANDS)
    female = [table.get(b, {}).get("female", 0) for b in bands]
    male = [table.get(b, {}).get("male", 0) for b in bands]
    ax.barh(bands, [-v for v in female], color="#e377c2", label="female")
    ax.barh(bands, male, color="#1f77b4", label="male")
    top = max([1, *female, *male])
    ax.set_xlim(-top - 0.5, top + 0.5)
    ax.xaxis.set_major_formatter(lambda v, _: f"{abs(int(v))}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("people")
    ax.set_title("Age and sex of the people counted")
    ax.legend(loc="lower right", fontsize=8)
    return _png(figure)


def _emotion_over_time(analytics: PassengerAnalytics) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    windows = analytics.counts["windows"]
    x = _window_middles(analytics)
    layers = [[w["emotion_mean_probabilities"].get(name, 0.0) for w in windows] for name in EMOTIONS]
    ax.stackplot(x, layers, labels=list(EMOTIONS), colors=[EMOTION_COLOURS[n] for n in EMOTIONS], alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean probability")
    ax.set_title("Emotion over time (all readings of the people counted)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _png(figure)

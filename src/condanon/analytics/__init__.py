"""Passenger analytics from video: people counted once, their age, sex and emotion over time, counts per window.

    from condanon.analytics import CountingLine, analyze_video
    analytics = analyze_video("door.mp4", "out/", line=CountingLine.parse("0.5,0,0.5,1", "boarding,deboarding"))
    analytics.people     # one row per counted person (people.csv)
    analytics.timeline   # one row per person per reading (timeline.csv)
    analytics.counts     # people by sex and age band, emotion shares, per time window (counts.json)

The same from a run that also anonymises: `PassengerAnalytics.from_report` on the report of
`condanon.video.VideoAnonymizer.run`. The outputs' columns and keys: `condanon.analytics.schema`
and docs/analytics.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .geometry import CountingLine, Region
from .people import PeopleRules, Person, motion
from .schema import AGE_BANDS, PEOPLE_COLUMNS, SCHEMA, TIMELINE_COLUMNS, age_band
from .summary import PassengerAnalytics
from .write import write_analytics

if TYPE_CHECKING:
    from ..video import VideoAnonymizer

ATTRIBUTE_EVERY = 12
"""Frames between two attribute readings of one face when analysing (about twice a second at 25 fps)."""

__all__ = [
    "AGE_BANDS",
    "ATTRIBUTE_EVERY",
    "PEOPLE_COLUMNS",
    "SCHEMA",
    "TIMELINE_COLUMNS",
    "CountingLine",
    "PassengerAnalytics",
    "PeopleRules",
    "Person",
    "Region",
    "age_band",
    "analysis_video_anonymizer",
    "analyze_video",
    "motion",
    "write_analytics",
]


def analysis_video_anonymizer(seed: int = 0, attribute_every: int = ATTRIBUTE_EVERY) -> VideoAnonymizer:
    """Return the `VideoAnonymizer` an analysis-only run uses: blur (no output is kept), no identity checks."""
    from ..methods import BlurOptions
    from ..options import ATTRIBUTE_READERS, Checks
    from ..pipeline import Anonymizer
    from ..video import VideoAnonymizer

    anonymizer = Anonymizer(BlurOptions(), seed=seed, checks=Checks(ATTRIBUTE_READERS, verify=False))
    return VideoAnonymizer(anonymizer, attribute_every=attribute_every, attacker_checks=False)


def analyze_video(
    source: str | Path,
    out: str | Path | None = None,
    *,
    line: CountingLine | None = None,
    region: Region | None = None,
    rules: PeopleRules = PeopleRules(),
    window: float = 10.0,
    seed: int = 0,
    attribute_every: int = ATTRIBUTE_EVERY,
    plots: bool = True,
    parquet: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> PassengerAnalytics:
    """Count and read the people of a video file or stream; write the outputs into ``out`` when given.

    No anonymised video is written (``condanon anonymize --analytics DIR`` does both in one pass).
    """
    runner = analysis_video_anonymizer(seed, attribute_every)
    report = runner.run(source, None, progress=progress)
    analytics = PassengerAnalytics.from_report(report, rules, line, region, window)
    if out is not None:
        write_analytics(analytics, out, plots=plots, parquet=parquet)
    return analytics

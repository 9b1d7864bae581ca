"""`PassengerAnalytics`: people, their attributes over time and the counts, from a video run's report.

The tables and the counts are plain Python (rows of dicts, one JSON-ready dict) so a dashboard can
take them from the SDK as they are; `condanon.analytics.write` puts them on disk under the schema of
`condanon.analytics.schema`.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..types import EMOTIONS, Attributes
from ..video.report import VideoReport, aggregate, whole_first
from .geometry import CountingLine, Region
from .people import PeopleRules, Person, people_of
from .schema import AGE_BANDS, SCHEMA, age_band


def wall_time(seconds: float | None) -> str:
    """Return Unix seconds as an ISO 8601 UTC time with milliseconds ("" for ``None``)."""
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _probabilities(attributes: Attributes | None) -> dict[str, float | None]:
    probabilities = attributes.emotion_probabilities if attributes is not None else {}
    return {f"p_{name}": _round(probabilities.get(name), 4) for name in EMOTIONS}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass
class PassengerAnalytics:
    """Counted people, one row each (`people`), their readings over time (`timeline`) and the counts (`counts`).

    Build it with `from_report` from a video run's report (`condanon.video.VideoAnonymizer.run`).
    """

    source: str
    fps: float
    duration_s: float
    people: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    counts: dict[str, Any]
    excluded: dict[int, str] = field(default_factory=dict)
    """Track id -> why it is not counted (`condanon.analytics.people.PeopleRules.exclusion`)."""
    persons: list[Person] = field(default_factory=list, repr=False)

    @classmethod
    def from_report(
        cls,
        report: VideoReport,
        rules: PeopleRules = PeopleRules(),
        line: CountingLine | None = None,
        region: Region | None = None,
        window: float = 10.0,
    ) -> PassengerAnalytics:
        """Count the people of ``report`` and tabulate them.

        ``line``: crossings of this line are counted per person and per direction; ``region``: only people
        whose face is seen inside it are counted; ``window``: seconds per row of the counts over time.
        """
        width, height = int(report.input.get("width") or 0), int(report.input.get("height") or 0)
        fps = float(report.input.get("fps") or 25.0)
        tracks = [t for t in report.tracks.values() if t.sightings]
        persons, excluded = people_of(tracks, rules, (width, height) if width and height else None)
        if region is not None:
            inside = []
            for person in persons:
                if any(region.contains(s.centre, width, height) for s in person.sightings):
                    inside.append(person)
                else:
                    excluded.update({t.track: "outside the region" for t in person.tracks})
            persons = [Person(i + 1, p.tracks) for i, p in enumerate(inside)]
        last_time = max((s.time for t in tracks for s in t.sightings), default=0.0)
        duration = max(last_time + 1.0 / fps, report.frames_read / fps if fps else 0.0)
        crossings = {p.id: _crossings(p, line, width, height) for p in persons}
        people = [_person_row(p, crossings[p.id], line) for p in persons]
        timeline = [
            {
                "person": p.id,
                "track": r_track,
                "frame": r.frame,
                "time_s": round(r.time, 3),
                "wall_time": wall_time(r.wall),
                "age": _round(r.attributes.age),
                "sex": r.attributes.sex or "",
                "sex_confidence": _round(r.attributes.sex_confidence, 4),
                "emotion": r.attributes.emotion or "",
                **_probabilities(r.attributes),
                "score": round(r.score, 4),
                "at_edge": int(not r.whole),
            }
            for p in persons
            for r_track, r in sorted(((t.track, r) for t in p.tracks for r in t.timeline), key=lambda x: x[1].frame)
        ]
        counts = _counts(report, persons, people, timeline, crossings, line, region, window, duration, excluded, rules)
        return cls(str(report.source), fps, round(duration, 3), people, timeline, counts, excluded, persons)


def _crossings(person: Person, line: CountingLine | None, width: int, height: int) -> list[tuple[float, str]]:
    """Return (time, direction) of each crossing of ``line`` by ``person``."""
    if line is None:
        return []
    seen = person.sightings
    path = [(s.centre, s.height) for s in seen]
    return [(seen[i].time, name) for i, name in line.crossings(path, width, height)]


def _person_row(person: Person, crossings: list[tuple[float, str]], line: CountingLine | None) -> dict[str, Any]:
    seen = person.sightings
    readings = person.timeline
    summary = aggregate([r.attributes for r in whole_first(readings)])
    row: dict[str, Any] = {
        "person": person.id,
        "tracks": " ".join(str(t.track) for t in person.tracks),
        "first_seen_s": round(seen[0].time, 3),
        "last_seen_s": round(seen[-1].time, 3),
        "first_seen_wall": wall_time(seen[0].wall),
        "last_seen_wall": wall_time(seen[-1].wall),
        "frames": person.frames,
        "detections": len(seen),
        "readings": len(readings),
        "score": round(max(s.score for s in seen), 4),
        "height_px": round(float(np.median([s.height for s in seen])), 1),
        "age": _round(summary.age) if summary else None,
        "age_band": age_band(summary.age) if summary and summary.age is not None else "",
        "sex": (summary.sex or "") if summary else "",
        "sex_confidence": _round(summary.sex_confidence, 4) if summary else None,
        "emotion": (summary.emotion or "") if summary else "",
        **_probabilities(summary),
    }
    names = line.names if line is not None else ("in", "out")
    row["crossings"] = " ".join(name for _, name in crossings)
    row[f"crossed_{names[0]}"] = sum(1 for _, name in crossings if name == names[0])
    row[f"crossed_{names[1]}"] = sum(1 for _, name in crossings if name == names[1])
    return row


def _shares(labels: list[str]) -> dict[str, float]:
    counted = Counter(label for label in labels if label)
    total = sum(counted.values())
    return {name: round(counted[name] / total, 4) for name in EMOTIONS if counted[name]} if total else {}


def _mean_probabilities(rows: list[dict[str, Any]]) -> dict[str, float]:
    values = {name: [r[f"p_{name}"] for r in rows if r.get(f"p_{name}") is not None] for name in EMOTIONS}
    return {name: round(float(np.mean(v)), 4) for name, v in values.items() if v}


def _groups(people: list[dict[str, Any]]) -> dict[str, Any]:
    sexes = Counter(p["sex"] or "unknown" for p in people)
    bands = Counter(p["age_band"] or "unknown" for p in people)
    pyramid: dict[str, dict[str, int]] = {}
    for band in [*AGE_BANDS, "unknown"]:
        row = {
            sex: sum(1 for p in people if (p["age_band"] or "unknown") == band and (p["sex"] or "unknown") == sex)
            for sex in ("female", "male", "unknown")
        }
        if any(row.values()):
            pyramid[band] = row
    return {
        "people": len(people),
        "by_sex": {sex: sexes[sex] for sex in ("female", "male", "unknown") if sexes[sex]},
        "by_age_band": {band: bands[band] for band in [*AGE_BANDS, "unknown"] if bands[band]},
        "by_age_band_and_sex": pyramid,
        "dominant_emotion_shares": _shares([p["emotion"] for p in people]),
    }


def _counts(
    report: VideoReport,
    persons: list[Person],
    people: list[dict[str, Any]],
    timeline: list[dict[str, Any]],
    crossings: dict[int, list[tuple[float, str]]],
    line: CountingLine | None,
    region: Region | None,
    window: float,
    duration: float,
    excluded: dict[int, str],
    rules: PeopleRules,
) -> dict[str, Any]:
    names = line.names if line is not None else None
    steps = max(1, int(np.ceil(duration / window)))
    starts = [k * window for k in range(steps)]
    ends = [min((k + 1) * window, duration) for k in range(steps)]

    def slot(time: float) -> int | None:
        """Return the window holding ``time`` (``start <= time < end``), once for each item, not once per window."""
        k = bisect.bisect_right(starts, time) - 1
        return k if k >= 0 and time < ends[k] else None

    present: list[set[int]] = [set() for _ in range(steps)]
    for i, person in enumerate(persons):
        for sighting in person.sightings:
            k = slot(sighting.time)
            if k is not None:
                present[k].add(i)
    new: Counter[int | None] = Counter(slot(row["first_seen_s"]) for row in people)
    readings: list[list[dict[str, Any]]] = [[] for _ in range(steps)]
    for reading in timeline:
        k = slot(reading["time_s"])
        if k is not None:
            readings[k].append(reading)
    crossed: Counter[tuple[int | None, str]] = Counter((slot(t), n) for c in crossings.values() for t, n in c)
    windows = []
    for k in range(steps):
        entry: dict[str, Any] = {
            "start_s": round(starts[k], 3),
            "end_s": round(ends[k], 3),
            "present": _groups([people[i] for i in sorted(present[k])]),
            "new_people": new[k],
            "emotion_mean_probabilities": _mean_probabilities(readings[k]),
            "readings": len(readings[k]),
        }
        if names is not None:
            entry["crossings"] = {name: crossed[(k, name)] for name in names}
        windows.append(entry)
    walls = [r["wall_time"] for r in timeline if r["wall_time"]]
    counts: dict[str, Any] = {
        "schema": SCHEMA,
        "source": str(report.source),
        "duration_s": round(duration, 3),
        "frames": report.frames_read,
        "started_wall": walls[0] if walls else None,
        **_groups(people),
        "emotion_mean_probabilities": _mean_probabilities(timeline),
        "tracks": len(report.tracks),
        "not_counted": dict(sorted(Counter(excluded.values()).items())),
        "window_s": window,
        "windows": windows,
        "rules": {k: (None if v == float("inf") else v) for k, v in dataclasses.asdict(rules).items()},
        "line": None if line is None else {"start": line.start, "end": line.end, "names": list(line.names)},
        "region": None if region is None else [list(p) for p in region.points],
    }
    if names is not None:
        counts["crossings"] = {name: sum(1 for c in crossings.values() for _, n in c if n == name) for name in names}
    return counts

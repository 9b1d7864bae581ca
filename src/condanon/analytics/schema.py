"""The analytics outputs' schema: its version, the columns of each table and the age bands.

A reader checks ``counts.json``'s ``schema`` before it reads the rest. The version's major number
changes when a column or key is removed or changes meaning; the minor when one is added.
"""

from __future__ import annotations

from ..types import EMOTIONS

SCHEMA = "condanon.analytics/1.0"

AGE_BANDS: tuple[str, ...] = ("0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_BAND_STARTS = (0, 13, 18, 25, 35, 45, 55, 65)

EMOTION_COLUMNS: tuple[str, ...] = tuple(f"p_{name}" for name in EMOTIONS)

PEOPLE_COLUMNS: tuple[str, ...] = (
    "person",  # 1, 2, ... in order of appearance
    "tracks",  # the video report's track ids joined into this person, space-separated
    "first_seen_s",  # seconds from the start of the input, first and last detection
    "last_seen_s",
    "first_seen_wall",  # ISO 8601 UTC for live sources, empty for files
    "last_seen_wall",
    "frames",  # frames on which the face was anonymised (bridged frames included)
    "detections",  # keyframes that detected the face
    "readings",  # attribute readings (rows in timeline.csv)
    "score",  # best detection score
    "height_px",  # median face box height
    "age",  # median of the readings (of the whole face, when it was ever read whole)
    "age_band",
    "sex",  # female / male, by the mean probability of the readings
    "sex_confidence",
    "emotion",  # dominant: the largest mean probability
    *EMOTION_COLUMNS,  # mean emotion probabilities over the readings
    "crossings",  # the direction names of the line crossings, in order, space-separated
)
"""The columns of people.csv, then ``crossed_<name>`` for each direction of the counting line."""

TIMELINE_COLUMNS: tuple[str, ...] = (
    "person",
    "track",
    "frame",  # 0-based frame index as processed
    "time_s",
    "wall_time",
    "age",
    "sex",
    "sex_confidence",
    "emotion",
    *EMOTION_COLUMNS,
    "score",  # detection score of the face read
    "at_edge",  # 1: the face was cut by the frame's edge (people.csv leaves such readings out when others exist)
)


def age_band(age: float) -> str:
    """Return the `AGE_BANDS` entry that holds ``age``."""
    band = AGE_BANDS[0]
    for start, name in zip(_BAND_STARTS, AGE_BANDS):
        if age >= start:
            band = name
    return band

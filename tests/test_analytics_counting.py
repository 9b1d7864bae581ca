"""Counting rules on hand-made tracks: which tracks are people, joined across occlusions, line crossings, region."""

from __future__ import annotations

import json

import pytest

from condanon.analytics import CountingLine, PassengerAnalytics, PeopleRules, Region, motion
from condanon.analytics.people import people_of
from condanon.errors import ConfigError
from condanon.types import Attributes
from condanon.video.report import Reading, Sighting, TrackReport, VideoReport

FPS = 25.0


def _track(track: int, path: list[tuple[int, float, float]], size: float = 100.0, score: float = 0.9) -> TrackReport:
    """A track detected on the frames of ``path`` at the centres given, with one reading per detection."""
    report = TrackReport(track, "blur")
    for frame, x, y in path:
        box = (x - size / 2, y - size / 2, x + size / 2, y + size / 2)
        report.sightings.append(Sighting(frame, frame / FPS, None, box, score))
        attributes = Attributes(age=30.0, sex="female", sex_confidence=0.9, emotion="happy",
                                emotion_probabilities={"happy": 0.8, "neutral": 0.2})
        report.timeline.append(Reading(frame, frame / FPS, None, score, attributes))
        report.seen(frame, "detected")
    report.read_faceness(1.0, None)
    return report


def _walk(track: int, first: int, last: int, x0: float, x1: float, y: float = 300.0) -> TrackReport:
    frames = list(range(first, last + 1, 2))
    return _track(track, [(f, x0 + (x1 - x0) * (f - first) / max(last - first, 1), y) for f in frames])


def test_line_crossings_have_a_direction_and_ignore_jitter_and_the_far_side() -> None:
    line = CountingLine.parse("0.5,0,0.5,0.5", "boarding,deboarding")
    right = [((x, 200.0), 100.0) for x in range(100, 1300, 50)]
    assert line.crossings(right, 1280, 720) == [(12, "boarding")]  # x 700: clear of the band on the far side
    assert [name for _, name in line.crossings(right[::-1], 1280, 720)] == ["deboarding"]
    jitter = [((640.0 + (10 if i % 2 else -10), 200.0), 100.0) for i in range(20)]
    assert line.crossings(jitter, 1280, 720) == []  # within the band: never a crossing
    below = [((x, 600.0), 100.0) for x in range(100, 1300, 50)]
    assert line.crossings(below, 1280, 720) == []  # passes below the segment's end
    there_and_back = right + right[::-1]
    assert [name for _, name in line.crossings(there_and_back, 1280, 720)] == ["boarding", "deboarding"]


def test_region_in_fractions_or_pixels() -> None:
    half = Region.parse("0,0,0.5,0,0.5,1,0,1")
    assert half.contains((100, 100), 1280, 720) and not half.contains((1000, 100), 1280, 720)
    pixels = Region.parse("0,0,200,0,200,200,0,200")
    assert pixels.contains((100, 100), 1280, 720) and not pixels.contains((300, 100), 1280, 720)


@pytest.mark.parametrize(
    ("text", "names", "message"),
    [("1,2,3", None, "4 numbers"), ("a,b,c,d", None, "numbers"), ("1,1,1,1", None, "same"), ("0,0,1,1", "in", "two")],
)
def test_bad_lines_are_one_line_errors(text: str, names: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        CountingLine.parse(text, names)
    assert "\n" not in str(error.value)


def test_people_are_tracks_that_are_faces_long_enough_and_moving() -> None:
    walker = _walk(1, 0, 60, 100, 1100)
    blip = _track(2, [(10, 500, 300)])
    brief = _walk(3, 0, 4, 100, 150)
    small = _track(4, [(f, 300 + f, 300) for f in range(0, 60, 2)], size=16)
    weak = _track(5, [(f, 300 + f, 300) for f in range(0, 60, 2)], score=0.5)
    poster = _track(6, [(f, 200.0 + (0.3 if f % 4 else 0.0), 150.0) for f in range(0, 200, 2)])
    crest = _walk(7, 0, 60, 100, 1100)
    crest.read_faceness(0.02, "no face mesh")
    crest.doubt = "no face mesh"
    people, excluded = people_of([walker, blip, brief, small, weak, poster, crest], PeopleRules())
    assert [p.tracks[0].track for p in people] == [1]
    assert excluded == {
        2: "too few detections",
        3: "too brief",
        4: "too small",
        5: "weak detections",
        6: "static",
        7: "not a face",
    }
    assert motion(poster.sightings) < PeopleRules().min_motion < motion(walker.sightings)
    # a person who keeps still for less than static_seconds still counts
    still = _track(8, [(f, 400.0, 300.0) for f in range(0, 50, 2)])
    assert people_of([still], PeopleRules())[1] == {}


def test_a_person_split_by_an_occlusion_is_counted_once() -> None:
    before = _walk(1, 0, 40, 100, 500)  # 10 px a frame to the right
    after = _walk(2, 60, 100, 700, 1100)  # picks up where it was heading, 0.8 s later
    elsewhere = _walk(3, 60, 100, 100, 300, y=650)  # someone else, far away
    people, _ = people_of([before, after, elsewhere], PeopleRules())
    assert [[t.track for t in p.tracks] for p in people] == [[1, 2], [3]]
    too_late = _walk(4, 200, 240, 700, 1100)
    assert len(people_of([before, too_late], PeopleRules())[0]) == 2


def test_tables_and_counts_from_a_report() -> None:
    report = VideoReport("door.mp4", None, {"width": 1280, "height": 720, "fps": 25.0}, "blur", frames_read=250)
    for track in (_walk(1, 0, 60, 100, 1100), _walk(2, 100, 160, 1100, 100), _track(3, [(5, 500, 300)])):
        report.tracks[track.track] = track
    line = CountingLine.parse("0.5,0,0.5,1", "boarding,deboarding")
    analytics = PassengerAnalytics.from_report(report, line=line, window=5.0)
    assert [row["person"] for row in analytics.people] == [1, 2]
    assert [(r["crossed_boarding"], r["crossed_deboarding"]) for r in analytics.people] == [(1, 0), (0, 1)]
    assert analytics.people[0]["sex"] == "female" and analytics.people[0]["age_band"] == "25-34"
    assert analytics.people[0]["emotion"] == "happy" and analytics.people[0]["p_happy"] == 0.8
    assert len(analytics.timeline) == 31 + 31 and analytics.timeline[0]["time_s"] == 0.0
    counts = analytics.counts
    assert counts["schema"].startswith("condanon.analytics/1.")
    assert counts["people"] == 2 and counts["by_sex"] == {"female": 2} and counts["crossings"] == {"boarding": 1, "deboarding": 1}
    assert counts["not_counted"] == {"too few detections": 1}
    assert [w["new_people"] for w in counts["windows"]] == [2, 0]  # both start in the first 5 s
    assert [w["crossings"] for w in counts["windows"]] == [{"boarding": 1, "deboarding": 0}, {"boarding": 0, "deboarding": 1}]
    json.dumps(counts, allow_nan=False)  # plain JSON, no NaN or Infinity
    inside = PassengerAnalytics.from_report(report, region=Region.parse("0,0,640,0,640,720,0,720"))
    assert len(inside.people) == 2  # both walk through the left half
    nowhere = PassengerAnalytics.from_report(report, region=Region.parse("0,0,10,0,10,10"))
    assert nowhere.people == [] and nowhere.counts["not_counted"]["outside the region"] == 2


def test_someone_coming_in_where_another_left_is_someone_else() -> None:
    left_right = _walk(1, 0, 40, 600, 1260)  # walks out at the right edge
    comes_back_in = _walk(2, 50, 90, 1260, 600)  # another one walks in there 0.4 s later, going left
    people, _ = people_of([left_right, comes_back_in], PeopleRules(), frame=(1280, 720))
    assert len(people) == 2
    # mid-frame, turning round at once is not one person either
    there = _walk(3, 0, 40, 200, 600)
    back = _walk(4, 50, 90, 650, 250)
    assert len(people_of([there, back], PeopleRules(), frame=(1280, 720))[0]) == 2
    onward = _walk(5, 50, 90, 700, 1000)
    assert len(people_of([there, onward], PeopleRules(), frame=(1280, 720))[0]) == 1

"""Which tracks are people to count, and which tracks are one person seen twice.

A track is counted as a person when a keyframe read it as a real face (`condanon.faceness`), it was
detected on enough keyframes over long enough, its face was big and sure enough, and it moved against
the background (a poster, a crest or a mannequin does not; `condanon.video.camera`). Every track is
obscured whatever this decides: counting only chooses what the statistics hold. Tracks of one person
split by an occlusion longer than the tracker bridges are joined again when the second starts near
where the first was heading, at a similar size, soon after it ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..types import Box
from ..video.report import Reading, Sighting, TrackReport
from ..video.tracking import EDGE

MOTION_QUANTILE = 0.5
"""`motion` reads this quantile of a track's displacements: a poster that people walk in front of is disturbed on
many sightings, but not on most."""


@dataclass(frozen=True)
class PeopleRules:
    """When a track counts as a person, and when two tracks are one person."""

    min_detections: int = 2
    """Keyframes that detected the face (one detection is too often a false one)."""
    min_seconds: float = 0.25
    """From the first to the last detection."""
    min_height: float = 24.0
    """Median face box height in pixels."""
    min_score: float = 0.6
    """The best detection score of the track (the image threshold)."""
    faceness: bool = True
    """Only tracks a keyframe read as a real face (not ``uncertain``) are counted."""
    static_seconds: float = 3.0
    """A track seen at least this long is judged for motion (a shorter one counts whatever it did)."""
    min_motion: float = 0.005
    """Such a track must move this many of its face heights against the background at least once (face and
    camera motion apart): less is a face on a poster, a crest or a mannequin."""
    rejoin_seconds: float = 1.5
    """Two tracks are one person when the second starts at most this long after the first ended, ..."""
    rejoin_distance: float = 1.5
    """... within this many face heights of where the first was heading, ..."""
    rejoin_scale: float = 1.5
    """... at a face height within this factor of the first's."""

    def exclusion(self, track: TrackReport) -> str | None:
        """Return why ``track`` is not counted as a person (``None``: it is)."""
        sightings = track.sightings
        if self.faceness and track.uncertain:
            return "not a face"
        if len(sightings) < self.min_detections:
            return "too few detections"
        seconds = sightings[-1].time - sightings[0].time
        if seconds < self.min_seconds:
            return "too brief"
        if (track.height or 0.0) < self.min_height:
            return "too small"
        if (track.score or 0.0) < self.min_score:
            return "weak detections"
        if seconds >= self.static_seconds and motion(sightings) < self.min_motion:
            return "static"
        return None


def motion(sightings: list[Sighting]) -> float:
    """Return how far the face strays from where it mostly is, against the background (face heights).

    The `MOTION_QUANTILE` of the distances from the track's median place (camera motion taken out), and of
    its size changes from the median size (a face walking towards the camera grows without moving its
    centre), whichever is larger: a face that stays put except when something passes in front of it
    reads as still.
    """
    heights = np.array([s.height for s in sightings], np.float64)
    scale = max(float(np.median(heights)), 1.0)
    centres = np.array([s.centre for s in sightings], np.float64) - np.array([s.camera for s in sightings])
    moved = np.hypot(*(centres - np.median(centres, axis=0)).T) / scale
    grown = np.abs(np.log(np.maximum(heights, 1.0) / scale))
    return float(max(np.quantile(moved, MOTION_QUANTILE), np.quantile(grown, MOTION_QUANTILE)))


@dataclass
class Person:
    """One counted person: one track, or several joined across occlusions."""

    id: int
    tracks: list[TrackReport] = field(default_factory=list)

    @property
    def sightings(self) -> list[Sighting]:
        """Return every detection of the person, in frame order."""
        return sorted((s for t in self.tracks for s in t.sightings), key=lambda s: s.frame)

    @property
    def timeline(self) -> list[Reading]:
        """Return every attribute reading of the person, in frame order."""
        return sorted((r for t in self.tracks for r in t.timeline), key=lambda r: r.frame)

    @property
    def frames(self) -> int:
        """Return the frames on which the person's face was anonymised."""
        return sum(t.frames for t in self.tracks)


def people_of(
    tracks: list[TrackReport], rules: PeopleRules, frame: tuple[int, int] | None = None
) -> tuple[list[Person], dict[int, str]]:
    """Return the people among ``tracks`` (numbered from 1 in order of appearance) and why each other track is not
    one (track id -> reason).

    ``frame``: the frame's width and height; a track that ended at its edge left the view, and the next one
    to come in there is someone else (no frame: every end is taken for an occlusion).
    """
    excluded: dict[int, str] = {}
    kept = []
    for track in sorted(tracks, key=lambda t: (t.sightings[0].frame if t.sightings else 0, t.track)):
        reason = rules.exclusion(track)
        if reason is None:
            kept.append(track)
        else:
            excluded[track.track] = reason
    people: list[Person] = []
    for track in kept:
        earlier = _continued(people, track, rules, frame)
        if earlier is not None:
            earlier.tracks.append(track)
        else:
            people.append(Person(len(people) + 1, [track]))
    return people, excluded


def _left_the_view(sighting: Sighting, frame: tuple[int, int] | None) -> bool:
    """Return whether a face's box lies within `EDGE` of its heights of the frame's edge (it was leaving): the
    tracker's own measure of the edge (`condanon.video.tracking.EDGE`), a track that ended there is not rejoined.
    """
    return frame is not None and not Box(*sighting.box).within(frame[0], frame[1], EDGE * sighting.height)


def _velocity(seen: list[Sighting]) -> np.ndarray:
    """Return a track's last velocity in pixels per second against the background (zero with one sighting)."""
    if len(seen) < 2 or seen[-1].time <= seen[-2].time:
        return np.zeros(2)
    a, b = seen[-2], seen[-1]
    moved = np.subtract(b.centre, a.centre) - np.subtract(b.camera, a.camera)
    return np.asarray(moved / (b.time - a.time), np.float64)


def _continued(
    people: list[Person], track: TrackReport, rules: PeopleRules, frame: tuple[int, int] | None
) -> Person | None:
    """Return the person ``track`` continues after an occlusion, if any (the nearest in time and place).

    Not one whose track ended at the frame's edge (it left), nor one walking the other way.
    """
    first = track.sightings[0]
    onward = _velocity(track.sightings[:2])
    best, best_cost = None, float("inf")
    for person in people:
        last = person.tracks[-1].sightings[-1]  # a person's tracks join in time order: the last one ends it
        gap = first.time - last.time
        if not 0.0 < gap <= rules.rejoin_seconds or _left_the_view(last, frame):
            continue
        seen = person.sightings
        if not 1.0 / rules.rejoin_scale <= first.height / max(last.height, 1.0) <= rules.rejoin_scale:
            continue
        velocity = _velocity(seen)
        walking = min(np.hypot(*velocity), np.hypot(*onward)) > 0.5 * last.height  # both over half a face a second
        if walking and float(velocity @ onward) < 0:
            continue
        heading = np.array(last.centre) + velocity * gap + np.subtract(first.camera, last.camera)
        distance = float(np.hypot(*(np.array(first.centre) - heading))) / max(last.height, 1.0)
        if distance <= rules.rejoin_distance and gap + distance < best_cost:
            best, best_cost = person, gap + distance
    return best

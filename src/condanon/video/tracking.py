"""Face tracks across frames: ByteTrack ids on keyframes, and where each track is on every frame between.

Faces are detected on keyframes only (every ``detect_every`` frames). ByteTrack (our own
`condanon.video.bytetrack`, which gives the same tracks as supervision's 0.30) links the
detections into tracks by box overlap. A face ByteTrack starts anew (a face that moved
too far for an overlap, one it lost, or one not yet confirmed) is stitched onto the nearest recent
track it can have come from (`FaceTracks._stitch`), else it starts a track of ours. Every
detection above the image threshold is kept, tracked or not; weaker ones only when ByteTrack
continues a track with them.

Where a track is on frame t (`FaceTracks.at`), given keyframes up to t + lookahead:
- ``detected``: t is a keyframe that found it;
- ``interpolated``: between two observations at most ``max_gap`` frames apart (box and landmarks
  linear in time, the box grown by ``grow``): between keyframes and across detector misses;
- ``backfilled``: before the track's first detection, up to ``backfill`` frames (the face was there
  but not yet detected, or the track not yet confirmed): the first box, grown by ``bridge_grow``;
- ``predicted``: after the last observation, up to ``max_gap`` frames: moved on at the last velocity,
  grown by ``bridge_grow``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..types import Box, Face
from .bytetrack import ByteTracker

STITCH_SPEED = 0.4
"""How far (face heights per frame) a face may move between keyframes and still continue its track."""
STITCH_MAX = 3.0
EDGE = 0.3
"""A face box within this many of its heights of the frame's edge is at the edge (`FaceTracks._walked_out`)."""

Source = Literal["detected", "interpolated", "backfilled", "predicted"]


@dataclass
class Track:
    """One person's face over time: its observations on keyframes, by frame index."""

    id: int
    observations: dict[int, Face] = field(default_factory=dict)

    @property
    def last(self) -> int:
        """Return the frame of the last observation."""
        return max(self.observations)


@dataclass
class Placement:
    """Where a track's face is on one frame, and how that was found."""

    track: int
    face: Face
    source: Source
    grow: float = 0.0
    """How much ``face.box`` was grown (by ``1 + grow``) beyond the face itself, for the uncertainty of a bridge."""

    @property
    def core(self) -> Box:
        """Return the face's own box (before the growth)."""
        return self.face.box.scaled(1.0 / (1.0 + self.grow))


def _lerp(a: np.ndarray | None, b: np.ndarray | None, w: float) -> np.ndarray | None:
    if a is None or b is None:
        return None
    return (a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w).astype(np.float32)


def _moved(face: Face, box: Box, grow: float) -> Face:
    """Return ``face`` moved (and scaled) onto ``box``, landmarks along with it, then the box grown by ``1 + grow``."""
    old = face.box
    sx, sy = box.width / max(old.width, 1e-6), box.height / max(old.height, 1e-6)

    def move(points: np.ndarray | None) -> np.ndarray | None:
        if points is None:
            return None
        out = points.astype(np.float32).copy()
        out[:, 0] = (out[:, 0] - old.x1) * sx + box.x1
        out[:, 1] = (out[:, 1] - old.y1) * sy + box.y1
        return out

    return dataclasses.replace(
        face,
        box=box.scaled(1.0 + grow),
        landmarks5=move(face.landmarks5),
        landmarks68=move(face.landmarks68),
        embeddings={},
    )


def interpolate(a: Face, b: Face, w: float, grow: float) -> Face:
    """Return the face a share ``w`` of the way from ``a`` to ``b`` (boxes and landmarks linear), box grown by ``1 +
    grow``.
    """
    box = Box(*(np.array(a.box.to_list()) * (1 - w) + np.array(b.box.to_list()) * w))
    return dataclasses.replace(
        a,
        box=box.scaled(1.0 + grow),
        score=min(a.score, b.score),
        landmarks5=_lerp(a.landmarks5, b.landmarks5, w),
        landmarks68=_lerp(a.landmarks68, b.landmarks68, w),
        embeddings={},
    )


class FaceTracks:
    """Links keyframe detections into tracks (ByteTrack) and places every track on any frame.

    Args:
        fps: frames per second of the video.
        detect_every: frames between keyframes.
        max_gap: frames a track may go unseen and still be bridged (interpolated or predicted).
        backfill: frames before a track's first detection that are covered too.
        grow, bridge_grow: how much boxes are grown between observations / when bridged on one side.
        min_score: a detection below it is kept only when ByteTrack matches it to a track.
    """

    def __init__(
        self,
        fps: float,
        detect_every: int = 1,
        max_gap: int | None = None,
        backfill: int | None = None,
        grow: float = 0.1,
        bridge_grow: float = 0.3,
        min_score: float = 0.6,
        frame: tuple[int, int] | None = None,
    ) -> None:
        self.frame = frame
        """The frame's width and height: a track that walked out over its edge is not continued by a newcomer there."""
        self._tracker = ByteTracker(
            activation_threshold=min_score - 0.1,
            lost_buffer=30,  # one second, whatever the keyframe rate
            match_threshold=0.8,
            frame_rate=max(1.0, fps / detect_every),
        )
        self.detect_every = detect_every
        self.max_gap = max_gap if max_gap is not None else max(2 * detect_every, round(fps / 2))
        self.backfill = backfill if backfill is not None else 2 * detect_every
        self.grow = grow
        self.bridge_grow = bridge_grow
        self.min_score = min_score
        self.tracks: dict[int, Track] = {}
        self._alias: dict[int, int] = {}
        """ByteTrack's ids to ours (a person ByteTrack lost and found again keeps our id)."""
        self._next_id = 1
        self._last_keyframe: int | None = None

    @property
    def lookahead(self) -> int:
        """Return how many frames past t must have been seen (as keyframes) before frame t can be placed."""
        return max(self.backfill, self.detect_every)

    def update(self, frame: int, faces: list[Face]) -> list[Face]:
        """Record a keyframe's detections; return the faces kept, each with its ``track_id`` set."""
        ids = self._tracker.update(
            np.array([f.box.to_list() for f in faces], dtype=np.float32).reshape(-1, 4),
            np.array([f.score for f in faces], dtype=np.float32),
        )
        external = {i: int(t) for i, t in enumerate(ids) if t >= 0}
        kept: dict[int, int] = {}
        fresh = []
        for index, face in enumerate(faces):
            known = self._alias.get(external.get(index, 0))
            if known is not None and known not in kept.values():
                kept[index] = known
            elif index in external or face.score >= self.min_score:
                fresh.append(index)  # a track ByteTrack has just started (or not yet confirmed), or a strong detection
        for index, track_id in self._stitch(frame, [faces[i] for i in fresh], set(kept.values())).items():
            kept[fresh[index]] = track_id
        for index, track_id in kept.items():
            if index in external:
                self._alias[external[index]] = track_id
            faces[index].track_id = track_id
            self.tracks.setdefault(track_id, Track(track_id)).observations[frame] = faces[index]
        self._last_keyframe = frame
        return [faces[i] for i in sorted(kept)]

    def _stitch(self, frame: int, faces: list[Face], taken: set[int]) -> dict[int, int]:
        """Return track ids for faces ByteTrack did not link: the nearest recent track they can have moved from, or a
        new one.

        A face that moved more than a box overlap allows between keyframes (fast, near the camera)
        starts a new ByteTrack track; it continues ours when a track last seen within ``max_gap``
        frames is close enough (centre distance at most ``STITCH_SPEED`` face heights per frame
        elapsed, at most ``STITCH_MAX``) and of a similar size.
        """
        pairs = []
        for i, face in enumerate(faces):
            (cx, cy), size = face.box.center, max(face.box.height, 1.0)
            for track in self.tracks.values():
                if track.id in taken or not 0 < frame - track.last <= self.max_gap:
                    continue
                last = track.observations[track.last]
                ratio = size / max(last.box.height, 1.0)
                if not 0.6 <= ratio <= 1.6 or self._walked_out(track):
                    continue
                lx, ly = last.box.center
                distance = float(np.hypot(cx - lx, cy - ly)) / max(size, last.box.height)
                if distance <= min(STITCH_SPEED * (frame - track.last), STITCH_MAX):
                    pairs.append((distance, i, track.id))
        out: dict[int, int] = {}
        for _, i, track_id in sorted(pairs):
            if i not in out and track_id not in taken:
                out[i] = track_id
                taken.add(track_id)
        for i in range(len(faces)):
            if i not in out:
                out[i] = self._next_id
                self._next_id += 1
        return out

    def _walked_out(self, track: Track) -> bool:
        """Return whether ``track`` was last seen at the frame's edge moving towards it (it left the view).

        A face that comes in at that edge moments later is someone else (at a door, people go out and
        come in at the same place), not this track found again.
        """
        if self.frame is None or len(track.observations) < 2:
            return False
        frames = sorted(track.observations)
        a, b = track.observations[frames[-2]].box, track.observations[frames[-1]].box
        (ax, ay), (bx, by) = a.center, b.center
        margin = EDGE * b.height
        width, height = self.frame
        return (
            (b.x1 < margin and bx < ax)
            or (b.x2 > width - margin and bx > ax)
            or (b.y1 < margin and by < ay)
            or (b.y2 > height - margin and by > ay)
        )

    def at(self, frame: int) -> list[Placement]:
        """Return where every track is on ``frame`` (needs keyframes up to ``frame + lookahead``, or the end)."""
        out = []
        for track in self.tracks.values():
            frames = sorted(track.observations)
            if frame in track.observations:
                out.append(Placement(track.id, track.observations[frame], "detected"))
                continue
            before = [f for f in frames if f < frame]
            after = [f for f in frames if f > frame]
            if before and after and after[0] - before[-1] <= self.max_gap:
                a, b = track.observations[before[-1]], track.observations[after[0]]
                w = (frame - before[-1]) / (after[0] - before[-1])
                gap_grow = self.grow if after[0] - before[-1] <= self.detect_every else self.bridge_grow
                out.append(Placement(track.id, interpolate(a, b, w, gap_grow), "interpolated", gap_grow))
            elif after and not before and after[0] - frame <= self.backfill:
                first = track.observations[after[0]]
                out.append(
                    Placement(track.id, _moved(first, first.box, self.bridge_grow), "backfilled", self.bridge_grow)
                )
            elif (
                before and frame - before[-1] <= self.max_gap and not (after and after[0] - before[-1] <= self.max_gap)
            ):
                out.append(Placement(track.id, self._predict(track, before, frame), "predicted", self.bridge_grow))
        return out

    def _predict(self, track: Track, before: list[int], frame: int) -> Face:
        """Return the track's face moved on from its last observation at its last velocity."""
        last = track.observations[before[-1]]
        box = last.box
        if len(before) > 1:
            prev = track.observations[before[-2]]
            steps = (frame - before[-1]) / (before[-1] - before[-2])
            (cx, cy), (px, py) = last.box.center, prev.box.center
            box = box.shifted((cx - px) * steps, (cy - py) * steps)
        return _moved(last, box, self.bridge_grow)

    def forget(self, before: int) -> None:
        """Drop observations older than what bridging can still need (frames before ``before - max_gap``)."""
        limit = before - self.max_gap - self.detect_every
        for track in list(self.tracks.values()):
            old = [f for f in track.observations if f < limit]
            for f in old[:-2]:  # keep the last two for the velocity
                del track.observations[f]

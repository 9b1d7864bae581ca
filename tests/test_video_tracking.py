"""Tracks from keyframe detections: ids, stitching of fast faces, and placement on every frame between."""

from __future__ import annotations

import numpy as np

from condanon.types import Box, Face
from condanon.video.tracking import FaceTracks


def face(x: float, y: float, size: float = 60.0, score: float = 0.9) -> Face:
    points = np.array([[x + 0.3 * size, y + 0.4 * size], [x + 0.7 * size, y + 0.4 * size]], np.float32)
    return Face(box=Box(x, y, x + size, y + size), score=score, landmarks5=points)


def test_a_walking_face_keeps_one_track_and_is_interpolated_between_keyframes() -> None:
    tracks = FaceTracks(fps=25, detect_every=5)
    for frame in range(0, 30, 5):
        kept = tracks.update(frame, [face(100 + 4 * frame, 200)])
        assert kept[0].track_id == 1
    placed = tracks.at(12)
    assert [p.source for p in placed] == ["interpolated"]
    # 12 is 2/5 of the way from 10 to 15: x = 100 + 4 * 12, box grown by 10 % about its centre
    box = placed[0].face.box
    assert abs(box.center[0] - (100 + 48 + 30)) < 1e-3
    assert abs(box.width - 66.0) < 1e-3
    assert np.allclose(placed[0].face.landmarks5[0], [100 + 48 + 18, 224])


def test_a_fast_face_that_no_longer_overlaps_is_stitched_onto_its_track() -> None:
    tracks = FaceTracks(fps=25, detect_every=5)
    fast, slow = face(100, 500, 90), face(900, 500, 60)
    tracks.update(0, [fast, slow])
    moved, still = face(270, 505, 95), face(905, 500, 60)  # 170 px in 5 frames: no box overlap
    tracks.update(5, [moved, still])
    assert moved.track_id == fast.track_id and still.track_id == slow.track_id
    assert len(tracks.tracks) == 2
    assert [p.source for p in tracks.at(3) if p.track == fast.track_id] == ["interpolated"]


def test_a_far_jump_starts_a_new_track() -> None:
    tracks = FaceTracks(fps=25, detect_every=5)
    tracks.update(0, [face(100, 100)])
    kept = tracks.update(5, [face(1500, 900)])
    assert kept[0].track_id == 2


def test_frames_before_the_first_and_after_the_last_detection_are_bridged() -> None:
    tracks = FaceTracks(fps=25, detect_every=5, backfill=10, max_gap=12)
    for frame in (20, 25, 30):
        tracks.update(frame, [face(100 + 2 * frame, 100)])
    sources = {frame: [p.source for p in tracks.at(frame)] for frame in range(0, 50)}
    assert sources[9] == [] and sources[10] == ["backfilled"] and sources[19] == ["backfilled"]
    assert sources[20] == ["detected"] and sources[27] == ["interpolated"]
    assert sources[42] == ["predicted"] and sources[43] == []
    # predicted at the last velocity (2 px a frame) and grown: the face keeps being covered as it moves on
    moved = tracks.at(40)[0].face.box
    assert abs(moved.center[0] - (100 + 2 * 40 + 30)) < 1e-3 and moved.width > 60


def test_a_missed_keyframe_is_bridged_by_interpolation_not_dropped() -> None:
    tracks = FaceTracks(fps=25, detect_every=5)
    tracks.update(0, [face(100, 100)])
    tracks.update(5, [])  # the detector missed the face here
    tracks.update(10, [face(120, 100)])
    assert [p.source for p in tracks.at(5)] == ["interpolated"]
    assert tracks.at(5)[0].face.box.width > 60 * 1.2  # bridged across a miss: grown more


def test_weak_detections_only_continue_tracks() -> None:
    tracks = FaceTracks(fps=25, detect_every=1, min_score=0.6)
    assert tracks.update(0, [face(100, 100, score=0.4)]) == []
    tracks.update(1, [face(300, 100, score=0.9)])
    tracks.update(2, [face(301, 100, score=0.9)])
    kept = tracks.update(3, [face(302, 100, score=0.4)])  # ByteTrack's second pass keeps a weak match
    assert [f.track_id for f in kept] == [1]


def test_someone_coming_in_where_a_face_walked_out_gets_a_track_of_their_own() -> None:
    def walk(tracks: FaceTracks) -> tuple[Face, Face]:
        leaving = None
        for frame in range(0, 12, 2):  # walks right, 20 px a frame, out over the right edge of a 1280 px frame
            leaving = face(1100 + 20 * frame, 300, 100)
            tracks.update(frame, [leaving])
        coming = face(1190, 310, 100)  # 6 frames later, someone comes in right there
        tracks.update(18, [coming])
        assert leaving is not None
        return leaving, coming

    leaving, coming = walk(FaceTracks(fps=25, detect_every=2, frame=(1280, 720)))
    assert coming.track_id != leaving.track_id
    leaving, coming = walk(FaceTracks(fps=25, detect_every=2))  # without the frame's size: taken for the same face
    assert coming.track_id == leaving.track_id

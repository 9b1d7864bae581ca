"""Our ByteTrack: ids through motion, crossings and gaps, weak detections, the assignment, and supervision's ids."""

from __future__ import annotations

import importlib.util
import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest

from condanon.video.bytetrack import ByteTracker, KalmanBoxFilter, linear_assignment


def box(x: float, y: float, size: float = 60.0) -> list[float]:
    return [x, y, x + size, y + 1.2 * size]


def run(tracker: ByteTracker, frames: list[list[tuple[list[float], float]]]) -> list[list[int]]:
    """Feed frames of (box, score) detections; return each frame's ids, in the detections' order."""
    out = []
    for detections in frames:
        boxes = np.array([b for b, _ in detections], np.float32).reshape(-1, 4)
        scores = np.array([s for _, s in detections], np.float32)
        out.append(tracker.update(boxes, scores).tolist())
    return out


def test_ids_persist_through_a_straight_motion() -> None:
    # faster and faster, up to 45 px a frame for a 60 px face: the boxes of consecutive frames then
    # overlap too little to match (IoU 0.14), the Kalman filter's predicted ones enough
    x = 100 + np.cumsum(np.linspace(2, 45, 40))
    ids = run(ByteTracker(), [[(box(float(x[t]), 200 + 2 * t), 0.9)] for t in range(40)])
    assert ids == [[1]] * 40


def test_two_crossing_faces_keep_their_ids() -> None:
    # One walks right, one left, 8 px a frame, 12 px apart in height: they overlap for ~15 frames.
    # Every other frame lists them the other way round.
    frames = [[(box(100 + 8 * t, 200), 0.9), (box(340 - 8 * t, 212), 0.8)][:: -1 if t % 2 else 1] for t in range(60)]
    ids = [pair[:: -1 if t % 2 else 1] for t, pair in enumerate(run(ByteTracker(), frames))]
    assert ids[0] == [1, 2]
    assert all(pair == [1, 2] for pair in ids), [t for t, pair in enumerate(ids) if pair != [1, 2]]


def test_a_face_missing_for_a_while_comes_back_with_its_id_within_the_buffer_and_a_new_one_after() -> None:
    tracker = ByteTracker(lost_buffer=10, frame_rate=30)  # lost tracks are kept 10 frames
    seen = [[(box(100 + 2 * t, 100), 0.9)] for t in range(10)]
    gap: list[list[tuple[list[float], float]]] = [[] for _ in range(6)]
    back = [[(box(100 + 2 * t, 100), 0.9)] for t in range(16, 20)]
    assert run(tracker, seen + gap + back)[-4:] == [[1]] * 4

    tracker = ByteTracker(lost_buffer=10, frame_rate=30)
    gap = [[] for _ in range(14)]
    back = [[(box(100 + 2 * t, 100), 0.9)] for t in range(24, 28)]
    ids = run(tracker, seen + gap + back)
    # forgotten: a new track, which gets its id when it is seen a second time
    assert ids[-4:] == [[-1], [2], [2], [2]]


def test_the_lost_buffer_scales_with_the_frame_rate() -> None:
    frames = [[(box(100, 100), 0.9)]] * 5 + [[]] * 12 + [[(box(100, 100), 0.9)]] * 2
    assert run(ByteTracker(lost_buffer=30, frame_rate=30), frames)[-1] == [1]  # 30 frames kept
    assert run(ByteTracker(lost_buffer=30, frame_rate=10), frames)[-1] == [2]  # 10 frames kept


def test_weak_detections_only_continue_tracks_and_never_start_one() -> None:
    tracker = ByteTracker(activation_threshold=0.5)  # tracks start from 0.6, weak ones are (0.1, 0.5)
    alone = [[(box(500, 500), 0.4)]] * 5 + [[(box(500, 500), 0.55)]] * 5  # weak, then between 0.5 and 0.6
    assert run(tracker, alone) == [[-1]] * 10
    ids = run(tracker, [[(box(100 + 3 * t, 100), 0.9)] for t in range(3)] + [[(box(109 + 3 * t, 100), 0.3)] for t in range(5)])
    assert ids == [[-1], [1], [1]] + [[1]] * 5  # the weak ones continue track 1
    assert run(tracker, [[(box(900, 900), 0.05)], [(box(900, 900), 0.9)]]) == [[-1], [-1]]  # 0.05: ignored


def test_a_weak_detection_does_not_find_a_lost_track_again() -> None:
    tracker = ByteTracker(activation_threshold=0.5)
    run(tracker, [[(box(100, 100), 0.9)]] * 3 + [[]] * 2)
    assert run(tracker, [[(box(100, 100), 0.3)]]) == [[-1]]  # the second pass is for tracks of the last frame only
    assert run(tracker, [[(box(100, 100), 0.9)]]) == [[1]]


def test_no_id_is_reused() -> None:
    """Faces come and go on 20 spots in turn; a spot comes back long after its last track was forgotten."""
    tracker = ByteTracker(lost_buffer=5, frame_rate=30)
    spots = [box(150 * (k % 5), 150 * (k // 5)) for k in range(20)]
    ids_of_face: dict[int, set[int]] = {}
    for t in range(300):
        faces = [f for f in range(t // 2 - 3, t // 2 + 1) if f >= 0]  # each face is there for 8 frames
        ids = tracker.update(np.array([spots[f % 20] for f in faces], np.float32), np.full(len(faces), 0.9, np.float32))
        for f, i in zip(faces, ids):
            if i >= 0:
                ids_of_face.setdefault(f, set()).add(int(i))
    assert len(ids_of_face) > 140 and all(len(ids) == 1 for ids in ids_of_face.values())
    order = [next(iter(ids_of_face[f])) for f in sorted(ids_of_face)]
    assert order == sorted(order) and len(set(order)) == len(order)  # a new id for every face, in order, never one twice


def test_the_kalman_filter_learns_a_constant_velocity() -> None:
    kalman = KalmanBoxFilter()
    mean, covariance = kalman.initiate(np.array([100, 100, 0.8, 60], np.float32))
    for t in range(1, 30):
        (mean,), (covariance,) = kalman.predict(mean[None], covariance[None])
        mean, covariance = kalman.update(mean, covariance, np.array([100 + 5 * t, 100 - 2 * t, 0.8, 60], np.float32))
    assert np.allclose(mean[4:], [5, -2, 0, 0], atol=0.2)
    assert np.allclose(mean[:4], [245, 42, 0.8, 60], atol=1.0)
    assert np.allclose(covariance, covariance.T)


def test_linear_assignment_is_optimal() -> None:
    rng = np.random.default_rng(1)
    for n, m in itertools.product(range(1, 6), repeat=2):
        for cost in (rng.random((n, m)), rng.integers(0, 3, (n, m)).astype(float)):
            pairs = linear_assignment(cost)
            assert len(pairs) == min(n, m) and len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
            rows, cols = (range(n), range(m))
            best = min(
                sum(cost[i, j] for i, j in zip(rows, p)) if n <= m else sum(cost[i, j] for i, j in zip(p, cols))
                for p in itertools.permutations(cols if n <= m else rows, min(n, m))
            )
            assert sum(cost[i, j] for i, j in pairs) == pytest.approx(best)
    assert linear_assignment(np.ones((3, 4))) == [(0, 0), (1, 1), (2, 2)]
    assert linear_assignment(np.ones((4, 3))) == [(0, 0), (1, 1), (2, 2)]
    assert linear_assignment(np.empty((0, 3))) == []


def test_linear_assignment_breaks_ties_like_scipy() -> None:
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(2)
    for _ in range(300):
        cost = rng.integers(0, 4, tuple(rng.integers(1, 9, 2))).astype(float)  # many ties
        rows, cols = optimize.linear_sum_assignment(cost)
        assert linear_assignment(cost) == list(zip(rows.tolist(), cols.tolist()))


def _walk(rng: np.random.Generator, frames: int = 80, objects: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random faces that move, cross, vanish, come back, with weak, spurious and degenerate boxes."""
    pos, size = rng.uniform(0, 800, (objects, 2)), rng.uniform(20, 150, objects)
    vel = rng.normal(0, 1, (objects, 2)) * rng.choice([2, 8, 25], (objects, 1))
    born = rng.integers(0, frames // 2, objects)
    dies = born + rng.integers(5, frames, objects)
    out = []
    for t in range(frames):
        boxes, scores = [], []
        for o in range(objects):
            pos[o] += vel[o] + rng.normal(0, 1, 2)
            if born[o] <= t < dies[o] and rng.random() > 0.15:
                j = rng.normal(0, 0.03 * size[o], 4)
                boxes.append([pos[o, 0] + j[0], pos[o, 1] + j[1], pos[o, 0] + size[o] + j[2], pos[o, 1] + 1.1 * size[o] + j[3]])
                scores.append(rng.choice([rng.uniform(0.05, 0.45), rng.uniform(0.3, 1.0), rng.uniform(0.55, 1.0)]))
        if rng.random() < 0.1:
            x, y = rng.uniform(0, 800, 2)
            boxes.append([x, y, x + rng.choice([0.0, 30.0]), y + 30])
            scores.append(rng.uniform(0, 1))
        out.append((np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32)))
    return out


def _supervision_ids(sequence: list[tuple[np.ndarray, np.ndarray]], threshold: float, frame_rate: float) -> list[list[int]]:
    supervision = pytest.importorskip("supervision")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker = supervision.ByteTrack(
            track_activation_threshold=threshold, lost_track_buffer=30, minimum_matching_threshold=0.8, frame_rate=frame_rate
        )
        out = []
        for boxes, scores in sequence:
            detections = supervision.Detections(
                xyxy=boxes, confidence=scores, class_id=np.zeros(len(boxes), int), data={"index": np.arange(len(boxes))}
            )
            tracked = tracker.update_with_detections(detections)
            ids = np.full(len(boxes), -1)
            if len(tracked):
                ids[tracked.data["index"]] = tracked.tracker_id
            out.append(ids.tolist())
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_ids_are_supervisions(seed: int) -> None:
    """Where supervision (0.30, whose ByteTrack this replaces) is installed: the same ids, detection for detection."""
    rng = np.random.default_rng(seed)
    threshold, frame_rate = [(0.35, 12.5), (0.5, 25.0), (0.25, 30.0)][seed % 3]
    sequence = _walk(rng, objects=int(rng.integers(2, 14)))
    expected = _supervision_ids(sequence, threshold, frame_rate)
    tracker = ByteTracker(threshold, 30, 0.8, frame_rate)
    assert [tracker.update(b, s).tolist() for b, s in sequence] == expected


def test_one_face_of_a_real_clip_keeps_one_id(data: Path) -> None:
    """YuNet's keyframe detections of the shared clip with one face: one track from start to end (and supervision's ids)."""
    from condanon.detection import DETECTORS
    from condanon.video.io import VideoReader

    detector = DETECTORS.create("yunet", tiles=True, score_threshold=0.3)
    tracker = ByteTracker(0.35, 30, 0.8, 15.0)
    sequence = []
    with VideoReader(data / "video" / "single_face.mp4", audio=False) as video:
        for frame in video:
            if frame.index % 2 == 0:
                faces = detector.detect(frame.image)
                boxes = np.array([f.box.to_list() for f in faces], np.float32).reshape(-1, 4)
                sequence.append((boxes, np.array([f.score for f in faces], np.float32)))
    ids = [tracker.update(boxes, scores).tolist() for boxes, scores in sequence]
    assert len(ids) > 30 and sum(i == [1] for i in ids) >= 0.9 * len(ids)
    assert {i for frame in ids for i in frame} <= {1, -1}
    if importlib.util.find_spec("supervision") is not None:
        assert ids == _supervision_ids(sequence, 0.35, 15.0)

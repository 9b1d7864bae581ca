"""A small ByteTrack-style tracker of boxes: ids that follow objects from frame to frame.

ByteTrack (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box",
ECCV 2022) links boxes by overlap alone, keeping the weak detections that other trackers drop:

1. every track (tracked, and lost within the buffer) is moved on by its Kalman filter;
2. the strong detections (score at least ``activation_threshold``) are matched to them, at the
   cost ``1 - IoU * score``, and a match is kept when that cost is at most ``match_threshold``;
3. the weak detections (score above 0.1) are matched to the tracks still unmatched that were
   tracked on the last frame (not the lost ones), at the cost ``1 - IoU``, kept at IoU >= 0.5;
   tracked ones still unmatched become lost;
4. a track started on the last frame and not yet confirmed is matched to the strong detections
   left (``1 - IoU * score`` at most 0.7) and confirmed, or dropped;
5. a strong detection still left starts a track when its score is at least
   ``activation_threshold + 0.1``; it gets an id only when it is matched again on the next frame
   (on the very first frame at once); a lost track is forgotten once unseen for more than
   ``lost_buffer`` frames at 30 fps (scaled by ``frame_rate``; it can still be found on the frame
   after, as in the reference); of a tracked and a lost track on the same spot (IoU > 0.95) the
   one followed for fewer frames is dropped.

Ids are handed back to the detections by overlap with the tracks' filtered boxes (IoU >= 0.5, one
to one). Matching is a minimum-cost assignment (`linear_assignment`, shortest augmenting paths, in
plain Python: the matrices are a few faces wide). The filter works on (centre x, centre y, aspect
w/h, height) and their velocities, with noise in proportion to the height.

This follows the behaviour of supervision's ``ByteTrack`` 0.30 (ids, matches, and the order ties
are broken in) so that tracks found with either are the same; it needs numpy only.
"""

from __future__ import annotations

import math

import numpy as np

TRACKED, LOST, REMOVED = "tracked", "lost", "removed"
WEAK_FLOOR = 0.1
"""Detections at or below this score are ignored."""
WEAK_MATCH = 0.5
"""The largest cost (1 - IoU) of a match of a weak detection, and of an id handed back to a detection."""
UNCONFIRMED_MATCH = 0.7
"""The largest cost (1 - IoU * score) of the match that confirms a new track."""
DUPLICATE = 0.05
"""A tracked and a lost track whose boxes are closer than this (1 - IoU) are one: the one followed for fewer frames
goes.
"""


class KalmanBoxFilter:
    """Constant velocity Kalman filter on (cx, cy, aspect, height), its noise in proportion to the height."""

    POSITION = 1.0 / 20
    VELOCITY = 1.0 / 160

    def __init__(self) -> None:
        self.motion = np.eye(8)
        self.motion[np.arange(4), np.arange(4) + 4] = 1.0  # one frame
        self.observe = np.eye(4, 8)

    def initiate(self, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the state of a new track at ``xyah`` (still, uncertain in proportion to its height)."""
        h = xyah[3]
        spread = [
            2 * self.POSITION * h,
            2 * self.POSITION * h,
            1e-2,
            2 * self.POSITION * h,
            10 * self.VELOCITY * h,
            10 * self.VELOCITY * h,
            1e-5,
            10 * self.VELOCITY * h,
        ]
        return np.r_[xyah, np.zeros_like(xyah)], np.diag(np.square(spread))

    def predict(self, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the states of several tracks (``means`` n x 8, ``covariances`` n x 8 x 8) one frame on."""
        h = means[:, 3]
        spread = np.r_[
            [self.POSITION * h, self.POSITION * h, 1e-2 * np.ones_like(h), self.POSITION * h],
            [self.VELOCITY * h, self.VELOCITY * h, 1e-5 * np.ones_like(h), self.VELOCITY * h],
        ]
        noise = np.asarray([np.diag(row) for row in np.square(spread).T])
        moved = np.dot(self.motion, covariances).transpose((1, 0, 2))
        return np.dot(means, self.motion.T), np.dot(moved, self.motion.T) + noise

    def update(self, mean: np.ndarray, covariance: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the state corrected by the measurement ``xyah``."""
        h = mean[3]
        noise = np.diag(np.square([self.POSITION * h, self.POSITION * h, 1e-1, self.POSITION * h]))
        expected = np.dot(self.observe, mean)
        spread = np.linalg.multi_dot((self.observe, covariance, self.observe.T)) + noise
        # The four coordinates never mix, so ``spread`` is diagonal and its Cholesky factor is the
        # square root of that diagonal: the gain is the cross covariance divided by it twice.
        inverse = 1 / np.sqrt(np.diag(spread))[:, None]
        gain = (np.dot(covariance, self.observe.T).T * inverse * inverse).T
        mean = mean + np.dot(xyah - expected, gain.T)
        return mean, covariance - np.linalg.multi_dot((gain, spread, gain.T))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU (float32) of every box of ``a`` (n x 4, x1 y1 x2 y2) with every box of ``b``."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    out = np.zeros((len(a), len(b)), dtype=np.float32)
    if not len(a) or not len(b):
        return out
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0.0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    np.divide(inter, union, out=out, where=union > 0)
    return out


def linear_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Return a minimum-cost assignment of the rows to the columns of ``cost`` (or of the columns, if fewer), by row.

    Shortest augmenting paths (Jonker-Volgenant, as Crouse, 2016, describes it for rectangular
    matrices): one row at a time, a Dijkstra search over the reduced costs finds the cheapest way
    to give it a column, possibly moving rows already assigned, and the dual prices are updated.
    Of equally cheap columns the search takes a free one, else the last one scanned; it scans them
    from the last, so a cost matrix of equal entries gives the identity (SciPy's tie breaking).
    """
    cost = np.asarray(cost, dtype=np.float64)
    transposed = cost.shape[1] < cost.shape[0]
    rows = (cost.T if transposed else cost).tolist()
    if not rows or not rows[0]:
        return []
    n, m = len(rows), len(rows[0])
    u, v = [0.0] * n, [0.0] * m
    row_of, col_of = [-1] * m, [-1] * n
    for start in range(n):
        distance, previous = [math.inf] * m, [-1] * m
        left = list(range(m - 1, -1, -1))
        rows_seen, cols_seen = [start], []
        i, reach = start, 0.0
        while True:
            lowest, at = math.inf, -1
            for k, j in enumerate(left):
                r = reach + rows[i][j] - u[i] - v[j]
                if r < distance[j]:
                    distance[j], previous[j] = r, i
                if distance[j] < lowest or (distance[j] == lowest and row_of[j] == -1):
                    lowest, at = distance[j], k
            if at < 0 or lowest == math.inf:
                raise ValueError("the cost matrix has no finite assignment")
            reach, j = lowest, left[at]
            cols_seen.append(j)
            left[at] = left[-1]
            left.pop()
            if row_of[j] == -1:
                break
            i = row_of[j]
            rows_seen.append(i)
        u[start] += reach
        for i in rows_seen[1:]:
            u[i] += reach - distance[col_of[i]]
        for c in cols_seen:
            v[c] -= reach - distance[c]
        while True:  # augment along the path back to ``start``
            i = previous[j]
            row_of[j] = i
            col_of[i], j = j, col_of[i]
            if i == start:
                break
    if transposed:
        return sorted((r, c) for c, r in enumerate(col_of))
    return list(enumerate(col_of))


def _match(cost: np.ndarray, threshold: float) -> tuple[list[tuple[int, int]], tuple[int, ...], tuple[int, ...]]:
    """Return the assignment's pairs of cost at most ``threshold``, and the rows and columns left.

    Costs above the threshold are all made equal first (just above it), so that no assignment
    trades a good match for two bad ones. The leftovers come in the order of a set difference, as
    in the reference (it only decides ties).
    """
    if cost.size == 0:
        return [], tuple(range(cost.shape[0])), tuple(range(cost.shape[1]))
    capped = cost.copy()
    capped[capped > threshold] = threshold + 1e-4
    pairs = [(i, j) for i, j in linear_assignment(capped) if cost[i, j] <= threshold]
    rows = tuple(set(range(cost.shape[0])) - {i for i, _ in pairs})
    cols = tuple(set(range(cost.shape[1])) - {j for _, j in pairs})
    return pairs, rows, cols


class _Track:
    """A detection, and once started a track: its filtered state, life and ids."""

    def __init__(self, box: np.ndarray, score: np.float32) -> None:
        self.tlwh = box.copy()
        self.tlwh[2:] -= self.tlwh[:2]
        self.score = score
        self.mean: np.ndarray | None = None
        self.covariance: np.ndarray | None = None
        self.state = "new"
        self.confirmed = False
        self.key = -1
        """Internal id, from the start (tracks never confirmed have one too)."""
        self.id = -1
        """The id handed out, from confirmation."""
        self.frame = self.start = self.length = 0

    @property
    def xyah(self) -> np.ndarray:
        out = self.tlwh.copy()
        out[:2] += out[2:] / 2
        out[2] /= out[3]
        return out

    @property
    def xyxy(self) -> np.ndarray:
        if self.mean is None:
            out = self.tlwh.copy()
        else:
            out = self.mean[:4].copy()
            out[2] *= out[3]
            out[:2] -= out[2:] / 2
        out[2:] += out[:2]
        return out


def _costs(tracks: list[_Track], detections: list[_Track], scored: bool) -> np.ndarray:
    if not tracks or not detections:
        return np.empty((len(tracks), len(detections)), dtype=np.float32)
    iou = iou_matrix(
        np.asarray([t.xyxy for t in tracks], dtype=np.float32),
        np.asarray([d.xyxy for d in detections], dtype=np.float32),
    )
    cost = np.asarray(1 - iou, dtype=np.float32)
    if scored:  # through the cost and back, as the reference does (float32 rounding)
        cost = np.asarray(
            1 - (1 - cost) * np.array([d.score for d in detections], dtype=np.float32)[None, :], dtype=np.float32
        )
    return cost


def _union(a: list[_Track], b: list[_Track]) -> list[_Track]:
    """Return the tracks of ``a`` then those of ``b``, each once (by internal id)."""
    out: dict[int, _Track] = {}
    for t in a + b:
        out.setdefault(t.key, t)
    return list(out.values())


class ByteTracker:
    """Links boxes across frames into tracks with ids (ByteTrack); one `update` a frame.

    Args:
        activation_threshold: detections at least this strong are matched first; new tracks start
            from those at least 0.1 stronger (weaker ones, above 0.1, only continue tracks).
        lost_buffer: frames (at 30 fps) a lost track is kept to be found again.
        match_threshold: the largest cost ``1 - IoU * score`` of a strong detection's match.
        frame_rate: frames per second of the updates (scales ``lost_buffer``).
    """

    def __init__(
        self,
        activation_threshold: float = 0.25,
        lost_buffer: int = 30,
        match_threshold: float = 0.8,
        frame_rate: float = 30.0,
    ) -> None:
        self.activation_threshold = activation_threshold
        self.start_threshold = activation_threshold + 0.1 if activation_threshold + 0.1 <= 1.0 else activation_threshold
        self.match_threshold = match_threshold
        self.max_lost = int(frame_rate / 30.0 * lost_buffer)
        self.kalman = KalmanBoxFilter()
        self.frame = 0
        self.tracked: list[_Track] = []
        self.lost: list[_Track] = []
        self._removed: set[int] = set()
        self._keys = 0
        self._ids = 1

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Take one frame's detections (``boxes`` n x 4, x1 y1 x2 y2; ``scores`` n); return each one's
        track id, or -1.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        tracks = self._step(boxes, scores)
        ids = np.full(len(boxes), -1, dtype=int)
        if tracks:
            cost = np.asarray(1 - iou_matrix(boxes, np.asarray([t.xyxy for t in tracks])), dtype=np.float32)
            for i, k in _match(cost, WEAK_MATCH)[0]:
                ids[i] = tracks[k].id
        return ids

    def _new_key(self) -> int:
        self._keys += 1
        return self._keys - 1

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids - 1

    def _start(self, track: _Track) -> None:
        track.key = self._new_key()
        track.mean, track.covariance = self.kalman.initiate(track.xyah)
        track.length, track.state = 1, TRACKED
        if self.frame == 1:
            track.confirmed, track.id = True, self._new_id()
        track.frame = track.start = self.frame

    def _continue(self, track: _Track, detection: _Track) -> None:
        """Update a track with its match; a lost one is found again (its length restarts), a new one confirmed."""
        assert track.mean is not None and track.covariance is not None
        track.mean, track.covariance = self.kalman.update(track.mean, track.covariance, detection.xyah)
        track.frame, track.score = self.frame, detection.score
        if track.state == TRACKED:
            track.length += 1
            track.confirmed = True
            if track.id < 0:
                track.id = self._new_id()
        else:
            track.length, track.state = 0, TRACKED

    def _step(self, boxes: np.ndarray, scores: np.ndarray) -> list[_Track]:
        self.frame += 1
        valid = (
            np.isfinite(np.c_[boxes, scores]).all(axis=1)
            & (boxes[:, 2] - boxes[:, 0] > 0)
            & (boxes[:, 3] - boxes[:, 1] > 0)
        )
        boxes, scores = boxes[valid], scores[valid]
        strong_mask = scores >= self.activation_threshold
        weak_mask = (scores > WEAK_FLOOR) & (scores < self.activation_threshold)
        strong = [_Track(b, s) for b, s in zip(boxes[strong_mask], scores[strong_mask])]
        weak = [_Track(b, s) for b, s in zip(boxes[weak_mask], scores[weak_mask])]

        unconfirmed = [t for t in self.tracked if not t.confirmed]
        pool = _union([t for t in self.tracked if t.confirmed], self.lost)
        if pool:
            means = [np.array(t.mean, copy=True) for t in pool]
            for t, mean in zip(pool, means):
                if t.state != TRACKED:
                    mean[7] = 0  # a lost track does not keep growing or shrinking
            predicted = self.kalman.predict(np.asarray(means), np.asarray([t.covariance for t in pool]))
            for t, mean, covariance in zip(pool, *predicted):
                t.mean, t.covariance = mean, covariance

        continued: list[_Track] = []
        found: list[_Track] = []
        lost: list[_Track] = []
        removed: list[_Track] = []
        # 1. strong detections against every track, tracked or lost
        pairs, pool_left, strong_left = _match(_costs(pool, strong, scored=True), self.match_threshold)
        for k, d in pairs:
            (continued if pool[k].state == TRACKED else found).append(pool[k])
            self._continue(pool[k], strong[d])
        # 2. weak detections against the tracks of the last frame still unmatched
        recent = [pool[k] for k in pool_left if pool[k].state == TRACKED]
        pairs, recent_left, _ = _match(_costs(recent, weak, scored=False), WEAK_MATCH)
        for k, d in pairs:
            continued.append(recent[k])
            self._continue(recent[k], weak[d])
        for k in recent_left:
            recent[k].state = LOST
            lost.append(recent[k])
        # 3. tracks started on the last frame against the strong detections left: confirmed or dropped
        strong = [strong[d] for d in strong_left]
        pairs, unconfirmed_left, strong_left = _match(_costs(unconfirmed, strong, scored=True), UNCONFIRMED_MATCH)
        for k, d in pairs:
            self._continue(unconfirmed[k], strong[d])
            continued.append(unconfirmed[k])
        for k in unconfirmed_left:
            unconfirmed[k].state = REMOVED
            removed.append(unconfirmed[k])
        # 4. new tracks from the strong detections left
        for d in strong_left:
            if strong[d].score >= self.start_threshold:
                self._start(strong[d])
                continued.append(strong[d])
        for t in self.lost:
            if self.frame - t.frame > self.max_lost:
                t.state = REMOVED
                removed.append(t)

        tracked = _union(_union([t for t in self.tracked if t.state == TRACKED], continued), found)
        keys = {t.key for t in tracked}
        still_lost = [t for t in self.lost if t.key not in keys] + lost
        # Tracks removed on the last frame leave the lost ones now: one removed here stays a frame
        # longer, and can still be found again on the next (as in the reference).
        still_lost = [t for t in _union(still_lost, []) if t.key not in self._removed]
        self._removed = {t.key for t in removed}
        self.tracked, self.lost = self._drop_duplicates(tracked, still_lost)
        return [t for t in self.tracked if t.confirmed]

    def _drop_duplicates(self, tracked: list[_Track], lost: list[_Track]) -> tuple[list[_Track], list[_Track]]:
        """Of a tracked and a lost track on the same spot, drop the one followed for fewer frames (the tracked one on a
        tie).
        """
        cost = _costs(tracked, lost, scored=False)
        drop_tracked, drop_lost = set(), set()
        for a, b in zip(*np.where(cost < DUPLICATE)):
            if tracked[a].frame - tracked[a].start > lost[b].frame - lost[b].start:
                drop_lost.add(b)
            else:
                drop_tracked.add(a)
        return (
            [t for i, t in enumerate(tracked) if i not in drop_tracked],
            [t for i, t in enumerate(lost) if i not in drop_lost],
        )

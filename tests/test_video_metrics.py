"""Video metrics on single_face.mp4: a re-encoded copy leaks, a blacked-out copy does not, short outputs count.

Every output is written with PyAV (libx264) under ``tmp_path``; the shared video is only read. The leak
test samples frames (``every`` > 1) to keep the module under a minute; ``every=1`` is the real metric.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import av
import numpy as np
import pytest

from condanon.detection import DETECTORS
from condanon.evaluation.video import VideoMetrics, evaluate_video
from condanon.evaluation.video_frames import read_boxes, read_frames, track_schedule

pytestmark = pytest.mark.video  # every test decodes or encodes clips

FRAMES = 72  # single_face.mp4
EVERY = 6


def write_video(path: Path, frames: Iterable[np.ndarray], rate: int = 30) -> Path:
    """Write BGR ``frames`` to ``path`` with libx264 and return ``path``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        for index, image in enumerate(frames):
            if index == 0:
                stream.height, stream.width = image.shape[:2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def video(data: Path) -> Path:
    """The shared one-face clip (640x360, 72 frames)."""
    return data / "video" / "single_face.mp4"


@pytest.fixture(scope="module")
def frames(video: Path) -> list[np.ndarray]:
    """Every frame of the clip, BGR."""
    out = list(read_frames(video))
    assert len(out) == FRAMES
    return out


@pytest.fixture(scope="module")
def copy(frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clip re-encoded unchanged (not bit-identical: the embedders must still see the same person)."""
    return write_video(tmp_path_factory.mktemp("video") / "copy.mp4", frames)


@pytest.fixture(scope="module")
def timed() -> Callable[..., VideoMetrics]:
    """`evaluate_video` that logs its wall time in the test output."""

    def run(*args: object, **kwargs: object) -> VideoMetrics:
        started = time.perf_counter()
        metrics = evaluate_video(*args, **kwargs)  # type: ignore[arg-type]
        print(f"evaluate_video: {time.perf_counter() - started:.1f} s, {metrics.frames} frames")
        return metrics

    return run


@pytest.mark.slow  # ~4 s: leak detection on every frame
def test_unchanged_copy_leaks_on_every_frame_with_a_face(
    video: Path, copy: Path, timed: Callable[..., VideoMetrics]
) -> None:
    metrics = timed(video, copy, every=EVERY, attributes=None)
    assert metrics.frames == FRAMES // EVERY
    assert metrics.output_frames == metrics.input_frames == FRAMES
    assert metrics.by_detector["yunet"] >= metrics.frames - 1  # the face is in (almost) every frame
    assert metrics.faces >= metrics.frames - 1
    assert metrics.leaked_frames >= metrics.frames - 1
    assert metrics.leaked_faces == metrics.faces - metrics.unchecked_faces - metrics.unconfirmed_faces
    assert metrics.missing_output_frames == 0
    assert not metrics.passed


@pytest.mark.slow  # ~4 s
def test_blacked_out_output_leaks_nothing(
    frames: list[np.ndarray], video: Path, tmp_path: Path, timed: Callable[..., VideoMetrics]
) -> None:
    black = write_video(tmp_path / "black.mp4", (np.zeros_like(f) for f in frames))
    metrics = timed(video, black, every=EVERY, attributes=None)
    assert metrics.frames == FRAMES // EVERY
    assert metrics.faces >= metrics.frames - 1
    assert metrics.output_only_faces == 0
    assert metrics.unchecked_faces == 0
    assert (metrics.leaked_faces, metrics.leaked_frames, metrics.missing_output_frames) == (0, 0, 0)
    assert metrics.passed
    assert json.loads(json.dumps(metrics.to_dict()))["passed"] is True


@pytest.mark.slow  # ~4 s
def test_leaks_are_found_per_frame_and_missing_frames_count(
    frames: list[np.ndarray], video: Path, tmp_path: Path, timed: Callable[..., VideoMetrics]
) -> None:
    kept, length = {12, 36}, 60  # two frames left as they were; the last 12 frames dropped
    out = [f if i in kept else np.zeros_like(f) for i, f in enumerate(frames[:length])]
    metrics = timed(video, write_video(tmp_path / "short.mp4", out), every=EVERY, attributes=None)
    assert (metrics.input_frames, metrics.output_frames) == (FRAMES, length)
    assert metrics.missing_output_frames == FRAMES - length
    assert metrics.frames == length // EVERY
    assert metrics.leaked_faces == len(kept)
    assert metrics.leaked_frame_indices == sorted(kept) + list(range(length, FRAMES))
    assert metrics.leaked_frames == len(kept) + FRAMES - length
    assert not metrics.passed


@pytest.fixture(scope="module")
def boxes_csv(frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A boxes CSV in the anonymiser's format: one track, YuNet's largest face on each frame."""
    detector = DETECTORS.create("yunet")
    path = tmp_path_factory.mktemp("boxes") / "boxes.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "time", "track", "x1", "y1", "x2", "y2", "source", "method", "verdict"])
        for index, image in enumerate(frames):
            faces = detector.detect(image)
            if faces:
                box = max(faces, key=lambda f: f.box.area).box
                writer.writerow([index, round(index / 30, 3), 1, *box.to_list(), "detected", "pixelate", "anonymized"])
    return path


@pytest.mark.slow  # ~1.5-3 s: runs the anonymiser on the clip
def test_boxes_csv_is_sampled_per_track(boxes_csv: Path) -> None:
    boxes = read_boxes(boxes_csv)
    assert len(boxes) >= FRAMES - 2 and all(len(row) == 1 for row in boxes.values())
    schedule = track_schedule(boxes, 5)
    assert len(schedule) == -(-len(boxes) // 5)


@pytest.mark.slow  # ~3.5 s
def test_consistency_of_an_unchanged_copy_is_near_the_original(
    video: Path, copy: Path, boxes_csv: Path, timed: Callable[..., VideoMetrics]
) -> None:
    metrics = timed(video, copy, boxes_csv, every=FRAMES, track_every=8)
    assert metrics.frames == 1 and metrics.track_samples >= 8
    assert metrics.consistency is not None and metrics.consistency_original is not None
    assert metrics.consistency_original["sface"] > 0.6  # one person, frame to frame
    assert metrics.consistency_original["dlib"] < 0.4
    assert metrics.consistency["sface"] == pytest.approx(metrics.consistency_original["sface"], abs=0.05)
    assert metrics.consistency["dlib"] == pytest.approx(metrics.consistency_original["dlib"], abs=0.05)
    assert metrics.jitter is not None and metrics.jitter_original is not None
    assert set(metrics.jitter) == {"age_std", "sex_flip_rate", "emotion_change_rate"}
    for key in ("sex_flip_rate", "emotion_change_rate"):
        assert 0.0 <= metrics.jitter[key] <= 1.0
    assert metrics.jitter["age_std"] == pytest.approx(metrics.jitter_original["age_std"], abs=2.0)
    assert metrics.to_dict()["metrics"] == {"sface": "cosine", "dlib": "l2"}


def test_without_boxes_there_are_no_track_metrics(video: Path, copy: Path) -> None:
    metrics = evaluate_video(video, copy, every=FRAMES, attributes=None, detectors=("yunet",), embedders=("sface",))
    assert metrics.consistency is None and metrics.jitter is None
    assert metrics.by_detector == {"yunet": 1} and metrics.leaked_faces == 1


@pytest.fixture(scope="module")
def crowd(data: Path) -> Path:
    """The shared 1080p crowd clip (105 frames, many small faces)."""
    return data / "video" / "crowd.mp4"


@pytest.mark.slow  # ~17 s: the crowd clip
def test_small_faces_do_not_leak_into_a_blacked_out_crowd(
    crowd: Path, tmp_path: Path, timed: Callable[..., VideoMetrics]
) -> None:
    # dlib calls a third of these faces the same person as a black frame: the blank control must drop it there.
    black = write_video(tmp_path / "black.mp4", (np.zeros_like(f) for f in read_frames(crowd)), rate=25)
    metrics = timed(crowd, black, every=50, attributes=None)
    assert metrics.frames == 3 and metrics.faces >= 20
    assert metrics.leaked_faces == 0 and metrics.passed
    assert metrics.unchecked_faces <= metrics.faces // 5


@pytest.mark.slow  # ~12 s: the crowd clip
def test_every_face_of_an_unchanged_crowd_leaks(crowd: Path, timed: Callable[..., VideoMetrics]) -> None:
    metrics = timed(crowd, crowd, every=50, attributes=None)
    assert metrics.frames == 3 and metrics.faces >= 20
    assert metrics.leaked_frames == 3
    assert metrics.leaked_faces == metrics.faces - metrics.unchecked_faces - metrics.unconfirmed_faces
    assert metrics.unchecked_faces <= metrics.faces // 5

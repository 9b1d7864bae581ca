"""Clips with a display rotation (phones record portrait clips this way) come out upright, whole and without leaks.

The test clips are made here from ../shared/data/video/single_face.mp4: its 72 upright frames are
stored turned against a display rotation (PyAV's ``set_display_rotation``, FFmpeg's sign: degrees
counter-clockwise), so a player that applies the rotation shows the original clip. The output must
play the same way with no rotation to apply: upright pixels, the original's size and frame count,
the face covered on every frame where YuNet finds it on the original, and no frame leaking under
the evaluation's leak test (YuNet and Haar, SFace and dlib) against the upright original.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from condanon.detection import DETECTORS
from condanon.evaluation.video import evaluate_video
from condanon.pipeline import Anonymizer
from condanon.types import Box
from condanon.video import VideoAnonymizer
from condanon.video.io import VideoReader
from conftest import write_clip

pytestmark = pytest.mark.video  # every test decodes or encodes clips

ROTATIONS = [-90, 90, 180]
"""Display rotations (counter-clockwise, as FFmpeg reads them): -90 is a phone held upright ("rotate=90"); 90 and 180 the others."""


def read(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """Return the frames of ``path`` as stored (no rotation applied) and each frame's display rotation."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.to_ndarray(format="bgr24") for f in frames], [int(f.rotation or 0) for f in frames]


def displayed(path: Path) -> list[np.ndarray]:
    """Return the frames of ``path`` as a player shows them: the display rotation applied (independently of condanon)."""
    frames, rotations = read(path)
    return [np.rot90(f, r // 90 % 4) for f, r in zip(frames, rotations)]


def rotated_clip(source: Path, target: Path, rotation: int) -> Path:
    """Write ``source``'s frames into ``target`` stored turned by ``-rotation`` with a display rotation of ``rotation``."""
    upright, _ = read(source)
    stored = [np.rot90(f, -rotation // 90 % 4) for f in upright]
    return write_clip(target, stored, crf=12, rotation=rotation)


@pytest.fixture(scope="module")
def original(data: Path) -> Path:
    return data / "video" / "single_face.mp4"


@pytest.fixture(scope="module")
def upright_frames(original: Path) -> list[np.ndarray]:
    return read(original)[0]


@pytest.mark.parametrize("rotation", ROTATIONS)
@pytest.mark.slow  # ~2.5 s a rotation; the reader test below keeps 90 quick
def test_test_clip_is_stored_turned_and_plays_upright(original: Path, upright_frames: list[np.ndarray], tmp_path: Path, rotation: int) -> None:
    clip = rotated_clip(original, tmp_path / "clip.mp4", rotation)
    stored, rotations = read(clip)
    assert set(rotations) == {rotation if rotation != 180 else -180}
    if rotation != 180:
        assert stored[0].shape[:2] == upright_frames[0].shape[1::-1], "the pixels are not stored turned"
    assert np.abs(displayed(clip)[0].astype(int) - upright_frames[0]).mean() < 4
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return  # the sign convention was checked against FFmpeg's own autorotate when these tests were written
    png = tmp_path / "first.png"  # FFmpeg's player-side rotation (autorotate) shows the clip upright too
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(clip), "-frames:v", "1", str(png)], check=True)
    shown = cv2.imread(str(png))
    assert shown.shape == upright_frames[0].shape and np.abs(shown.astype(int) - upright_frames[0]).mean() < 4


@pytest.mark.parametrize("rotation", [r if r == 90 else pytest.param(r, marks=pytest.mark.slow) for r in ROTATIONS])
def test_reader_turns_frames_upright(original: Path, upright_frames: list[np.ndarray], tmp_path: Path, rotation: int) -> None:
    clip = rotated_clip(original, tmp_path / "clip.mp4", rotation)
    with VideoReader(clip, threaded=False) as reader:
        assert reader.info.rotation == rotation % 360
        assert (reader.info.width, reader.info.height) == (upright_frames[0].shape[1], upright_frames[0].shape[0])
        frames = [f.image for f in reader]
        assert reader.errors == []
    assert len(frames) == len(upright_frames) == 72
    assert all(np.abs(a.astype(int) - b).mean() < 4 for a, b in zip(frames, upright_frames))


def boxes_by_frame(csv_path: Path) -> dict[int, list[Box]]:
    out: dict[int, list[Box]] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            out.setdefault(int(row["frame"]), []).append(Box(*(float(row[k]) for k in ("x1", "y1", "x2", "y2"))))
    return out


def iou(a: Box, b: Box) -> float:
    inter = Box(max(a.x1, b.x1), max(a.y1, b.y1), min(a.x2, b.x2), min(a.y2, b.y2)).area
    return inter / (a.area + b.area - inter)


@pytest.mark.slow
@pytest.mark.parametrize("rotation", ROTATIONS)
def test_rotated_clip_comes_out_upright_whole_and_without_leaks(
    original: Path, upright_frames: list[np.ndarray], tmp_path: Path, rotation: int
) -> None:
    clip = rotated_clip(original, tmp_path / "clip.mp4", rotation)
    out = tmp_path / "out.mp4"
    report = VideoAnonymizer(Anonymizer(method="blur")).run(clip, out)
    report.write_beside(out)
    assert report.errors == [] and report.input["rotation"] == rotation % 360

    # it plays upright: nothing to rotate, the original's size and frame count, the pixels of the upright original
    frames, rotations = read(out)
    assert set(rotations) == {0}, "the output carries a display rotation: upright pixels must play as they are"
    assert len(frames) == report.frames_written == len(upright_frames) == 72
    assert frames[0].shape == upright_frames[0].shape
    boxes = boxes_by_frame(out.with_name("out.boxes.csv"))
    yunet = DETECTORS.create("yunet")
    found = 0
    for index, (before, after) in enumerate(zip(upright_frames, frames)):
        background = np.ones(before.shape[:2], bool)
        for box in boxes.get(index, []):
            x1, y1, x2, y2 = box.scaled(1.5).clipped(before.shape[1], before.shape[0]).to_int()
            background[y1:y2, x1:x2] = False
        assert np.abs(after.astype(int) - before)[background].mean() < 8, f"frame {index} is not the upright original around the face"
        if index == 0:  # the check tells orientations apart: the output turned half a turn is far from the original
            assert np.abs(np.rot90(after, 2).astype(int) - before)[background].mean() > 20
        # the face YuNet finds on the upright original is where the output's face is drawn
        for face in yunet.detect(before):
            found += 1
            assert any(iou(face.box, box) > 0.4 for box in boxes.get(index, [])), f"frame {index}: the face at {face.box} is not covered"
    assert found >= 70, "YuNet found too few faces on the original: the check tested nothing"

    metrics = evaluate_video(original, out, attributes=None)  # the upright original against the output
    assert metrics.missing_output_frames == 0 and metrics.frames == 72
    assert metrics.faces >= 72, "the leak test found fewer faces than the clip has: it tested nothing"
    assert metrics.leaked_frames == 0, f"leaked on frames {metrics.leaked_frame_indices}"

"""Videos that used to break a run: a face leaving the frame fast, a truncated file, a full disk.

- A tracked face predicted past the edge of the frame (it moves on at its last velocity after the
  detector lost it) gave an empty region, cv2.ellipse raised, and the whole video failed with
  every method. The clip here is made in the test: a real face (cropped from the first frame of
  ../shared/data/video/single_face.mp4) pasted on a plain background, still, then moving out fast.
- A truncated clip (bytes cut off a fast-start copy of single_face.mp4) is written as far as it
  decodes, every frame anonymised, and the report's ``errors`` says so in one line.
- A write failure (a full disk) removes the temporary output and raises one `VideoError` line.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from condanon.conventional.obscurers import OBSCURERS
from condanon.detection import DETECTORS
from condanon.errors import CondanonError, VideoError
from condanon.pipeline import Anonymizer
from condanon.types import Box
from condanon.video import VideoAnonymizer
from condanon.video import anonymizer as video_anonymizer
from condanon.video.io import VideoReader, VideoWriter
from conftest import write_clip

METHODS = ["blur", "mask", "pixelate", "synthetic"]
SIZE = (240, 320)  # height, width


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def source(data: Path) -> Path:
    return data / "video" / "single_face.mp4"


@pytest.fixture(scope="module")
def face_crop(source: Path) -> np.ndarray:
    """A real face with some margin, about 100 px high, from the first frame of single_face.mp4."""
    import cv2

    first = frames_of(source)[0]
    faces = DETECTORS.create("yunet").detect(first)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box.scaled(1.4).clipped(first.shape[1], first.shape[0]).to_int()
    crop = first[y1:y2, x1:x2]
    return cv2.resize(crop, (round(crop.shape[1] * 100 / crop.shape[0]), 100), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def leaving_clip(face_crop: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A clip whose face sits still for 12 frames, then drops out of the bottom edge at 30 px a frame; and its top per frame.

    Out of the bottom: a box predicted below the frame gave a region of no rows, which cv2.ellipse refused.
    """
    height, width = SIZE
    rng = np.random.default_rng(0)
    background = np.clip(rng.normal(128, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    h, w = face_crop.shape[:2]
    x = (width - w) // 2
    frames, ys = [], []
    for index in range(40):
        y = 40 + max(0, index - 12) * 30
        image = background.copy()
        visible = max(0, min(h, height - y))
        image[y : y + visible, x : x + w] = face_crop[:visible]
        frames.append(image)
        ys.append(y)
    return write_clip(tmp_path_factory.mktemp("leaving") / "leaving.mp4", frames), ys


# -- a face leaving the frame ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["blur", "mask", "pixelate"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_obscurers_draw_the_part_of_a_box_inside_the_image_and_ignore_one_outside(name: str, shape: str) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    obscurer = OBSCURERS.create(name, shape=shape)
    for box in (Box(170, 20, 230, 90), Box(-120, -130, -50, -45), Box(20, 130, 60, 190), Box(0, 0, 0, 0)):  # wholly outside, grown too
        out = image.copy()
        obscurer.apply(out, box)
        assert np.array_equal(out, image), f"{box} is outside the image but pixels changed"
    for box in (Box(130, 30, 200, 100), Box(-40, -30, 30, 50), Box(60, 100, 110, 170)):  # partly outside
        out = image.copy()
        obscurer.apply(out, box)
        inside = box.clipped(160, 120).to_int()
        changed = np.any(out != image, axis=2)
        x1, y1, x2, y2 = inside
        assert changed[y1:y2, x1:x2].mean() > 0.5, f"{box}: the part inside the image is not covered"
        grown = box.scaled(obscurer.scale).clipped(160, 120).to_int()
        changed[grown[1] : grown[3], grown[0] : grown[2]] = False
        assert not changed.any(), f"{box}: pixels outside its region changed"


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.video
def test_a_face_leaving_the_frame_fast_does_not_fail_the_video(leaving_clip: tuple[Path, list[int]], tmp_path: Path, method: str) -> None:
    clip, ys = leaving_clip
    out = tmp_path / "out.mp4"
    report = VideoAnonymizer(Anonymizer(method=method)).run(clip, out)
    assert report.to_dict()["errors"] == []
    frames = frames_of(out)
    assert len(frames) == report.frames_written == len(ys) == 40
    placed = [row for row in report.boxes]
    predicted = [row for row in placed if row[7] == "predicted"]
    assert predicted, "no box was predicted after the face left: the clip did not test the case"
    height, width = SIZE
    for row in placed:  # every box recorded lies in the frame, with an area
        x1, y1, x2, y2 = row[3:7]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, row
    frames_with_boxes = {row[0] for row in placed}
    for index, y in enumerate(ys):  # every frame that shows some of the face has a box
        if y < height - 10:
            assert index in frames_with_boxes, f"frame {index} shows the face from y={y} but has no box"


@pytest.mark.video
@pytest.mark.slow  # ~1-2 s
def test_boxes_predicted_off_the_frame_are_skipped_and_the_rest_drawn(monkeypatch: pytest.MonkeyPatch, leaving_clip: tuple[Path, list[int]], tmp_path: Path) -> None:
    """The tracker's placements driven off the frame (wholly and partly) on every frame: the video is written whole."""
    from condanon.video.tracking import FaceTracks

    width = SIZE[1]
    real_at = FaceTracks.at

    def at(self: FaceTracks, frame: int) -> list[Any]:
        out = []
        for placement in real_at(self, frame):
            box = placement.face.box
            if frame % 4 == 1:  # wholly outside: past the right edge
                moved = box.shifted(width + 50, 0)
            elif frame % 4 == 3:  # wholly outside: above the top (an empty region of no rows: cv2.ellipse raised)
                moved = box.shifted(0, -box.y2 - box.height)
            else:  # half outside the right edge
                moved = box.shifted(width - box.x1 - box.width / 2, 0)
            placement.face = dataclasses.replace(placement.face, box=moved)
            out.append(placement)
        return out

    monkeypatch.setattr(FaceTracks, "at", at)
    clip, ys = leaving_clip
    out = tmp_path / "out.mp4"
    report = VideoAnonymizer(Anonymizer(method="mask")).run(clip, out)
    assert len(frames_of(out)) == report.frames_written == len(ys)
    recorded = {row[0] for row in report.boxes}
    assert recorded and all(index % 2 == 0 for index in recorded), "a box wholly outside the frame was recorded"
    assert all(row[5] == width for row in report.boxes), "a half-outside box was not clipped to the frame"


# -- a truncated file ------------------------------------------------------------------------------


def faststart_copy(source: Path, target: Path) -> Path:
    """Remux ``source``'s video with the index first (as cameras and streaming tools write), so a cut file still opens."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


@pytest.mark.video
@pytest.mark.slow  # ~1.5-2 s
def test_a_truncated_clip_is_written_as_far_as_it_decodes_and_reported(source: Path, tmp_path: Path) -> None:
    whole = faststart_copy(source, tmp_path / "whole.mp4")
    cut = tmp_path / "clip.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    out = tmp_path / "out.mp4"
    report = VideoAnonymizer(Anonymizer(method="mask")).run(cut, out)
    data = report.to_dict()
    assert len(data["errors"]) == 1, data["errors"]
    message = data["errors"][0]
    written = frames_of(out)
    assert 10 < len(written) == report.frames_written == report.frames_read < 72
    assert "\n" not in message and message.startswith(f"{cut}: truncated: {len(written)} of 72 frames decoded"), message
    # every decoded frame was anonymised: the face is masked on each
    yunet = DETECTORS.create("yunet")
    assert sum(len(yunet.detect(frame)) for frame in written) == 0


@pytest.mark.video
def test_a_clip_that_ends_short_of_its_declared_frames_is_reported_truncated(source: Path, tmp_path: Path) -> None:
    with VideoReader(source, audio=False, threaded=False) as reader:
        object.__setattr__(reader.info, "frames", 90)  # the file declares more frames than it holds
        frames = sum(1 for _ in reader)
        assert frames == 72
        assert reader.errors == [f"{source}: truncated: 72 of 90 frames decoded"]


@pytest.mark.video
def test_a_whole_clip_reports_no_errors(source: Path, tmp_path: Path) -> None:
    with VideoReader(source, audio=False, threaded=False) as reader:
        assert sum(1 for _ in reader) == 72
        assert reader.errors == []


# -- a full disk -----------------------------------------------------------------------------------


class _FullDisk:
    """A container whose muxer fails with ENOSPC after ``after`` packets (as a full disk does), trailer included."""

    def __init__(self, container: Any, after: int) -> None:
        self._container, self._left = container, after

    def mux(self, packet: Any) -> None:
        if self._left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= 1
        self._container.mux(packet)

    def close(self) -> None:
        self._container.close()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.video
def test_a_write_failure_removes_the_partial_file_and_is_one_line(monkeypatch: pytest.MonkeyPatch, source: Path, tmp_path: Path) -> None:
    partials: list[Path] = []

    class FullDiskWriter(VideoWriter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.container = _FullDisk(self.container, after=10)
            partials.append(self.partial)

    monkeypatch.setattr(video_anonymizer, "VideoWriter", FullDiskWriter)
    out = tmp_path / "out.mp4"
    with pytest.raises(CondanonError) as caught:
        VideoAnonymizer(Anonymizer(method="mask")).run(source, out)
    assert isinstance(caught.value, VideoError)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{out}: cannot write:") and "No space left on device" in message
    assert partials and partials[0].parent == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the partial (or any) file was left behind"


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs RLIMIT_FSIZE")
@pytest.mark.video
def test_a_real_write_failure_from_ffmpeg_leaves_nothing(source: Path, tmp_path: Path) -> None:
    """A real write failure inside FFmpeg: the process may write files of at most 60 kB (EFBIG), the output needs more."""
    script = f"""
import resource, signal, sys
from condanon.errors import VideoError
from condanon.pipeline import Anonymizer
from condanon.video import VideoAnonymizer
runner = VideoAnonymizer(Anonymizer(method="mask"), attacker_checks=False)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    runner.run({str(source)!r}, {str(tmp_path / 'out.mp4')!r})
except VideoError as error:
    print("ERROR", error)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ERROR")]
    assert done.returncode == 3, done.stdout + done.stderr
    assert len(lines) == 1 and f"{tmp_path / 'out.mp4'}: cannot write:" in lines[0], done.stdout
    assert list(tmp_path.iterdir()) == [], "the partial file was left behind"


# -- tiny faces --------------------------------------------------------------------------------------


def test_a_synthetic_track_that_shrinks_under_the_minimum_gets_the_fallback_on_those_frames() -> None:
    """Faces under MIN_SYNTHETIC_HEIGHT are masked, also when the track's identity was chosen while it was bigger."""
    from condanon.types import Face
    from condanon.video.anonymizer import (
        MIN_SYNTHETIC_HEIGHT,
        VideoRunReport,
        _RunState,
    )
    from condanon.video.tracking import Placement

    runner = VideoAnonymizer(Anonymizer(method="synthetic"), detector=None)
    state = _RunState(runner, 25, VideoRunReport("clip.mp4", None, {}, "synthetic"))
    state.identities[1] = object()  # type: ignore[assignment]  # the track has its identity

    def placed(height: float) -> Placement:
        return Placement(1, Face(Box(10, 10, 10 + height, 10 + height), 0.9, landmarks68=np.zeros((68, 2), np.float32)), "detected")

    assert state._renders(placed(2 * MIN_SYNTHETIC_HEIGHT))
    assert not state._renders(placed(MIN_SYNTHETIC_HEIGHT - 4))

"""Videos end to end on the real clips in ../shared/data/video: frames, timing, audio, tracks, identities."""

from __future__ import annotations

import csv
import functools
import http.server
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from condanon.pipeline import Anonymizer
from condanon.video import VideoAnonymizer, VideoReport

pytestmark = pytest.mark.video  # every test decodes or encodes clips


def probe(path: Path) -> dict:
    """Return what a player sees in a video file: frames decoded, fps, size, audio streams."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "frames": frames,
            "fps": float(stream.average_rate or Fraction(0)),
            "size": (stream.codec_context.width, stream.codec_context.height),
            "audio": len(container.streams.audio),
        }


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.fixture(scope="session")
def videos(data: Path) -> Path:
    return data / "video"


@pytest.fixture(scope="session")
def masker() -> VideoAnonymizer:
    return VideoAnonymizer(Anonymizer(method="mask"))


@pytest.fixture(scope="session")
def synthetic_run(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VideoReport]:
    out = tmp_path_factory.mktemp("video") / "single_face.mp4"
    report = VideoAnonymizer(Anonymizer(method="synthetic")).run(videos / "single_face.mp4", out)
    return out, report


@pytest.mark.parametrize("name", ["single_face.mp4", "face_noface.mov", "crowd.mp4"])
@pytest.mark.slow  # 5-65 s a clip (the crowd the longest); test_no_audio_drops_the_track stays quick
def test_output_keeps_frame_count_fps_size_and_audio(masker: VideoAnonymizer, videos: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    report = masker.run(videos / name, out)
    before, after = probe(videos / name), probe(out)
    assert after["frames"] == before["frames"] == report.frames_written
    assert after["size"] == before["size"]
    assert after["audio"] == before["audio"] == 1 and report.audio == "copied"
    assert after["fps"] == pytest.approx(before["fps"], rel=0.01)
    assert report.tracks, "no face was tracked"
    assert not list(tmp_path.glob(".*partial*")), "the temporary file was left behind"


@pytest.mark.slow  # ~2 s; test_a_stopped_live_stream_leaves_a_playable_file stays quick
def test_no_audio_drops_the_track(masker: VideoAnonymizer, videos: Path, tmp_path: Path) -> None:
    from condanon.video import EncodeOptions

    out = tmp_path / "silent.mp4"
    masker.run(videos / "single_face.mp4", out, EncodeOptions(audio=False))
    assert probe(out)["audio"] == 0


@pytest.mark.slow  # ~6 s: the synthetic method on a whole clip
def test_synthetic_video_has_one_track_one_identity_and_changes_only_the_face(synthetic_run, videos: Path) -> None:
    out, report = synthetic_run
    assert len(report.tracks) == 1
    track = next(iter(report.tracks.values()))
    data = track.to_dict()
    # the face is covered on every frame, by the synthetic face itself (no bridged frame needs the mask)
    assert data["frames"] == 72 and data["first_frame"] == 0 and data["last_frame"] == 71
    assert data["fallback_frames"] == 0 and data["verdict"] == "anonymized"
    assert data["synthesis"]["passed"] and data["synthesis"]["chosen_on_frame"] == 0
    assert data["attributes_before"]["sex"] == "male" and data["readings"] >= 2
    assert data["identity"][0]["embedder"] == "sface" and data["identity"][0]["matched"] == 0
    # the same synthetic identity on every frame: one choice of prototypes, re-rendered
    rows = list(csv.DictReader(report.boxes_csv().splitlines()))
    assert len(rows) == 72 and {r["method"] for r in rows} == {"synthetic"}
    original, anonymised = frames_of(videos / "single_face.mp4"), frames_of(out)
    inside, outside = [], []
    for row, a, b in zip(rows, original, anonymised):
        x1, y1, x2, y2 = (int(float(row[k])) for k in ("x1", "y1", "x2", "y2"))
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
        cx, cy, w, h = (x1 + x2) // 2, (y1 + y2) // 2, x2 - x1, y2 - y1
        inside.append(diff[cy - h // 6 : cy + h // 6, cx - w // 6 : cx + w // 6].mean())
        keep = np.ones(diff.shape, bool)
        keep[max(0, y1 - h // 2) : y2 + h // 2, max(0, x1 - w // 2) : x2 + w // 2] = False
        outside.append(diff[keep].mean())
    assert min(inside) > 8, "the face centre was left as it was on some frame"
    assert max(outside) < 3, "pixels far from the face changed (more than the encoder's loss)"


@pytest.mark.slow  # ~9 s
def test_every_frame_with_a_face_is_covered_in_a_clip_where_the_face_leaves(masker: VideoAnonymizer, videos: Path, tmp_path: Path) -> None:
    report = masker.run(videos / "face_noface.mov", tmp_path / "out.mov")
    rows = list(csv.DictReader(report.boxes_csv().splitlines()))
    covered = sorted({int(r["frame"]) for r in rows})
    detected = sorted({int(r["frame"]) for r in rows if r["source"] == "detected"})
    # every frame from the first to the last detection is covered, and a few beyond (the face walking out)
    assert covered[0] == 0 and set(range(detected[0], detected[-1] + 1)) <= set(covered)
    assert covered[-1] > detected[-1]
    assert report.frames_written == 169


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def remux_to_ts(source: Path, target: Path) -> None:
    """Copy a clip's packets into MPEG-TS, a format a live HTTP stream can carry (no seeking needed)."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mpegts") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in (inp.streams.video[0], inp.streams.audio[0])}
        for packet in inp.demux(inp.streams.video[0], inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def test_a_stopped_live_stream_leaves_a_playable_file(videos: Path, tmp_path: Path) -> None:
    remux_to_ts(videos / "single_face.mp4", tmp_path / "live.ts")
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runner = VideoAnonymizer(Anonymizer(method="blur"))
        seen = []

        def sink(frame: np.ndarray) -> None:  # a viewer that stops the recording (as Ctrl-C does)
            seen.append(frame.shape)
            if len(seen) == 20:
                runner.stop.set()

        out = tmp_path / "live.mp4"
        report = runner.run(f"http://127.0.0.1:{server.server_address[1]}/live.ts", out, frames=sink)
    finally:
        server.shutdown()
    assert report.interrupted and report.input["live"]
    assert 20 <= probe(out)["frames"] == report.frames_written < 72
    assert probe(out)["audio"] == 1

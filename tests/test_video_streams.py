"""Live streams on loopback: a camera that drops is reconnected, its clock carried on, its output cut into segments.

The camera is an HTTP server on 127.0.0.1 serving a shared clip as MPEG-TS: twice, then 404 (it never
comes back), so a run reconnects once and then ends lost (exit 4).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from condanon.cli import main
from conftest import serve_flaky_camera

pytestmark = [pytest.mark.slow, pytest.mark.video]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def flaky_camera(data: Path, tmp_path: Path) -> Iterator[str]:
    """An HTTP camera on 127.0.0.1 that serves a clip twice, then answers 404 (it never comes back)."""
    with serve_flaky_camera(data / "video" / "single_face.mp4", tmp_path) as url:
        yield url


def test_a_dropped_stream_is_reconnected_then_reported_lost(
    flaky_camera: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "live"
    status = main(["analytics", flaky_camera, "--out", str(out), "--reconnect", "2", "--reconnect-wait", "0.05", "-q"])
    assert status == 4  # lost for good: the analytics of what was read are written
    assert "gave up after 3 attempts" in capsys.readouterr().err
    counts = json.loads((out / "counts.json").read_text())
    assert counts["frames"] == 144  # both connections' frames
    timeline = _rows(out / "timeline.csv")
    times = [float(r["time_s"]) for r in timeline]
    assert times == sorted(times) and times[-1] > 4.0  # the second connection continues the first's clock
    walls = [r["wall_time"] for r in timeline]
    assert all(w.endswith("Z") and w.startswith("20") for w in walls) and walls == sorted(walls)
    assert len(_rows(out / "people.csv")) == 1


def test_an_unreachable_stream_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "anonymize",
            "rtsp://127.0.0.1:9/none",
            "-o",
            str(tmp_path / "x.mp4"),
            "--reconnect",
            "1",
            "--reconnect-wait",
            "0.05",
            "-q",
        ]
    )
    assert status == 3
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and "gave up after 2 attempts" in lines[0]
    assert not (tmp_path / "x.mp4").exists()


def test_a_long_recording_is_cut_into_finished_segments(flaky_camera: str, tmp_path: Path) -> None:
    target = tmp_path / "live.mp4"
    status = main(
        [
            "anonymize",
            flaky_camera,
            "-o",
            str(target),
            "--method",
            "blur",
            "--segment",
            "2",
            "--reconnect",
            "2",
            "--reconnect-wait",
            "0.05",
            "--report",
            str(tmp_path / "r.json"),
            "-q",
        ]
    )
    assert status == 4
    segments = sorted(tmp_path.glob("live.*.mp4"))
    assert [p.name for p in segments] == ["live.0000.mp4", "live.0001.mp4", "live.0002.mp4"]
    frames = []
    for path in segments:
        with av.open(str(path)) as container:
            times = [float(f.time) for f in container.decode(video=0)]
        assert times[0] < 0.05 and times[-1] < 2.05  # each segment's clock starts at 0 and holds about 2 s
        frames.append(len(times))
    assert sum(frames) == 144 and frames[0] == 50
    assert json.loads((tmp_path / "r.json").read_text())["segments"] == [str(p) for p in segments]
    assert not list(tmp_path.glob(".*partial*"))  # nothing half-written is left
    assert main(["anonymize", flaky_camera, "-o", str(target), "--segment", "0"]) == 2

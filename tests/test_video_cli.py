"""`condanon anonymize` on folders of videos: bad files, and a killed job that resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from condanon.cli import main

pytestmark = pytest.mark.video  # every test decodes or encodes clips


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "condanon.cli", *args]


def test_a_broken_video_fails_alone_and_the_batch_goes_on(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 20)
    (folder / "good.mp4").symlink_to(data / "video" / "single_face.mp4")
    status = main(["anonymize", str(folder), "-o", str(tmp_path / "out"), "--method", "blur", "-q"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert status == 1
    assert len(errors) == 1 and "broken.mp4" in errors[0]
    assert frame_count(tmp_path / "out" / "good.mp4") == 72
    assert (tmp_path / "out" / "good.boxes.csv").read_text().startswith("frame,time,track,")
    assert not (tmp_path / "out" / "broken.mp4").exists()


@pytest.mark.slow  # ~60 s: several clips, a killed process and a rerun
def test_a_killed_folder_job_resumes_without_redoing_or_half_written_files(data: Path, tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "a.mp4").symlink_to(data / "video" / "single_face.mp4")
    (folder / "b.mp4").symlink_to(data / "video" / "crowd.mp4")
    def partial() -> Path:  # the job's own partial name: .b.condanon-<random>.partial.mp4
        return next(out.glob(".b.condanon-*.partial.mp4"), out / ".b.condanon-none.partial.mp4")

    job = subprocess.Popen(command("anonymize", str(folder), "-o", str(out), "--method", "blur", "-q"), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (partial().exists() and partial().stat().st_size > 100_000) and time.monotonic() < deadline:
            assert job.poll() is None, "the job ended before it could be killed"
            time.sleep(0.1)
        assert partial().exists(), "the second video never started"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert (out / "a.mp4").exists() and not (out / "b.mp4").exists()  # done, and not half-written
    finished_a = (out / "a.mp4").stat().st_mtime_ns

    again = subprocess.run(command("anonymize", str(folder), "-o", str(out), "--method", "blur"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "1 done before" in again.stderr
    assert (out / "a.mp4").stat().st_mtime_ns == finished_a  # not redone
    assert frame_count(out / "a.mp4") == 72 and frame_count(out / "b.mp4") == 105
    assert not list(out.glob(".*partial*"))

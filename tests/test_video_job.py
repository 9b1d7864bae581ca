"""Unit tests of the resumable job state (`condanon.jobs`): skip rules, crash recovery, partial files, lock."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from condanon.errors import CondanonError
from condanon.jobs import JOB_FILE, Job, clean_partials, finish, partial_path


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An input file, the output folder and the target an output for that input goes to."""
    source = tmp_path / "in" / "clip.mp4"
    source.parent.mkdir()
    source.write_bytes(b"input-video")
    out = tmp_path / "out"
    return source, out, out / "clip.mp4"


def run_to_done(job: Job, source: Path, target: Path) -> None:
    """Do what the batch loop does for one input: start, write the output, mark it done."""
    job.start(source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"output-video")
    job.done(source, target)


def test_new_file_is_needed_and_done_file_is_not(files: tuple[Path, Path, Path]) -> None:
    source, out, target = files
    with Job(out, "s1") as job:
        assert (out / JOB_FILE).is_file()
        assert job.needs(source, target)
        run_to_done(job, source, target)
        assert not job.needs(source, target)
    with Job(out, "s1") as job:  # the state survives a reopen
        assert not job.needs(source, target)
        [entry] = job.entries()
        assert entry.status == "done"
        assert entry.source == str(source.resolve()) and entry.target == str(target.resolve())
        assert entry.size == len(b"input-video") and entry.mtime_ns == source.stat().st_mtime_ns
        assert entry.settings == "s1" and entry.error is None
        assert entry.started is not None and entry.finished is not None and entry.finished >= entry.started


def test_deleted_target_is_redone(files: tuple[Path, Path, Path]) -> None:
    source, out, target = files
    with Job(out, "s1") as job:
        run_to_done(job, source, target)
        target.unlink()
        assert job.needs(source, target)


def test_touched_input_is_redone(files: tuple[Path, Path, Path]) -> None:
    source, out, target = files
    with Job(out, "s1") as job:
        run_to_done(job, source, target)
        st = source.stat()
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert job.needs(source, target)


def test_input_with_new_size_is_redone(files: tuple[Path, Path, Path]) -> None:
    source, out, target = files
    with Job(out, "s1") as job:
        run_to_done(job, source, target)
        st = source.stat()
        source.write_bytes(b"a longer input video")
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only the size tells
        assert job.needs(source, target)


def test_changed_settings_or_target_are_redone(files: tuple[Path, Path, Path]) -> None:
    source, out, target = files
    with Job(out, "s1") as job:
        run_to_done(job, source, target)
        other = out / "elsewhere.mp4"
        other.write_bytes(b"x")
        assert job.needs(source, other)
    with Job(out, "s2") as job:
        assert job.needs(source, target)
    with Job(out, "s1") as job:
        assert not job.needs(source, target)


def test_input_changed_while_running_is_redone(files: tuple[Path, Path, Path]) -> None:
    source, out, target = files
    with Job(out, "s1") as job:
        job.start(source, target)
        source.write_bytes(b"edited while we worked")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"output of the old input")
        job.done(source, target)
        assert job.needs(source, target)


def test_running_row_after_crash_is_redone(files: tuple[Path, Path, Path]) -> None:
    source, out, target = files
    job = Job(out, "s1")
    job.start(source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"whatever a dead process left")
    job.close()  # the process died before done()
    with Job(out, "s1") as job:
        assert [e.status for e in job.entries()] == ["running"]
        assert job.needs(source, target)


def test_summary_counts_each_status(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sources = []
    for i in range(4):
        src = tmp_path / f"v{i}.mp4"
        src.write_bytes(b"x" * (i + 1))
        sources.append(src)
    with Job(out, "s") as job:
        assert job.summary() == {"pending": 0, "running": 0, "done": 0, "failed": 0}
        run_to_done(job, sources[0], out / "v0.mp4")
        run_to_done(job, sources[1], out / "v1.mp4")
        job.start(sources[2], out / "v2.mp4")
        job.start(sources[3], out / "v3.mp4")
        job.failed(sources[3], out / "v3.mp4", "cannot decode")
        assert job.summary() == {"pending": 0, "running": 1, "done": 2, "failed": 1}
        failed = [e for e in job.entries() if e.status == "failed"]
        assert [(Path(e.source).name, e.error) for e in failed] == [("v3.mp4", "cannot decode")]
        assert job.needs(sources[3], out / "v3.mp4")


def test_partial_path_keeps_suffix_and_folder(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "clip.final.mkv"
    partial = partial_path(target)
    assert partial.parent == target.parent
    assert partial.suffix == ".mkv"
    assert partial.name.startswith(".") and partial != target
    assert partial_path(tmp_path / "noext") == tmp_path / ".noext.partial"


def test_clean_partials_removes_only_partials(tmp_path: Path) -> None:
    out = tmp_path / "out"
    keep = [out / "a.mp4", out / "sub" / "b.mov", out / ".hidden.mp4", out / "c.partial.mp4", out / ".x.partially.txt",
            partial_path(out / "x.mp4"), partial_path(out / "z")]  # partial-looking names the job did not record: a user's
    with Job(out, "s") as job:
        drop = [job.partial_for(out / "x.mp4"), job.partial_for(out / "sub" / "deep" / "y.mov"), job.partial_for(out / "z")]
    for path in keep + drop:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"data")
    with Job(out, "s"):
        removed = clean_partials(out)
        assert (out / JOB_FILE).is_file()
    assert sorted(removed) == sorted(drop)
    assert all(p.is_file() for p in keep)
    assert not any(p.exists() for p in drop)
    assert clean_partials(out) == []


def test_finish_moves_partial_onto_target(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old output")
    partial = partial_path(target)
    partial.write_bytes(b"new complete output")
    inode = partial.stat().st_ino
    finish(partial, target)
    assert target.read_bytes() == b"new complete output"
    assert target.stat().st_ino == inode  # renamed, not copied
    assert not partial.exists()


def test_second_job_on_same_folder_is_refused_until_close(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = Job(out, "s")
    with pytest.raises(CondanonError, match="another condanon job is running in"):
        Job(out, "s")
    first.close()
    first.close()  # harmless twice
    with Job(out, "s") as second:
        assert second.summary()["done"] == 0


def test_second_process_is_refused_while_job_open(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = (
        "import sys; from pathlib import Path; from condanon.errors import CondanonError; "
        "from condanon.jobs import Job\n"
        "try:\n    Job(Path(sys.argv[1]), 's').close()\nexcept CondanonError as e:\n    print(e); sys.exit(3)\n"
    )
    with Job(out, "s"):
        busy = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=60)
        assert busy.returncode == 3, busy.stderr
        assert "another condanon job is running in" in busy.stdout
    free = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=60)
    assert free.returncode == 0, free.stderr


def test_wal_mode_and_schema_version_check(tmp_path: Path) -> None:
    out = tmp_path / "out"
    Job(out, "s").close()
    with sqlite3.connect(out / JOB_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(CondanonError, match="delete it"):
        Job(out, "s")
    with pytest.raises(CondanonError, match="delete it"):  # not "another job is running": the lock was released
        Job(out, "s")


def test_unreadable_job_file_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / JOB_FILE).write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CondanonError, match="not a readable condanon job file"):
        Job(out, "s")

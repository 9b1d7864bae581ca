"""Jobs of the service: videos and folders of images, run one after another in the background.

The registry is a SQLite file in the state folder (``jobs.sqlite``): a job queued or running when the server stopped
is queued again when it starts, and runs on. Each job is a folder job of the command line (`condanon.cli.
cmd_anonymize`) into ``results/<id>/out``, so its files keep that job's own SQLite state: a job resumed after a
restart skips the files it had finished, and every output is written under a temporary name and renamed whole.
Uploaded inputs wait in the spool folder (in memory where the system has ``/dev/shm``) and are deleted when their
job ends. Results are deleted ``result_ttl`` seconds after their job ended; the job then answers 410.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import one_line
from ..jobs import open_database
from .config import ServeConfig

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id       TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'expired')),
    source   TEXT NOT NULL CHECK (source IN ('upload', 'path')),
    inputs   TEXT NOT NULL,
    options  TEXT NOT NULL,
    created  REAL NOT NULL,
    started  REAL,
    finished REAL,
    expires  REAL,
    done     INTEGER NOT NULL DEFAULT 0,
    total    INTEGER NOT NULL DEFAULT 0,
    frames   INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER,
    error    TEXT,
    summary  TEXT
)
"""
_COLUMNS = "id, owner, status, source, inputs, options, created, started, finished, expires, done, total, frames, "
_COLUMNS += "frames_total, error, summary"


@dataclass
class JobRecord:
    """One job as the registry holds it."""

    id: str
    owner: str
    status: str
    source: str
    inputs: list[str]
    options: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    expires: float | None
    done: int
    total: int
    frames: int
    frames_total: int | None
    error: str | None
    summary: dict[str, Any] | None

    def to_dict(self, root: Path | None = None) -> dict[str, Any]:
        """Return what a client sees of the job: uploads by their file names, paths relative to the ``root``."""
        progress = self.done / self.total if self.total else 0.0
        if self.total and self.frames_total and self.done < self.total:
            progress += self.frames / self.frames_total / self.total  # the video under way
        if self.status == "done":
            progress = 1.0
        return {
            "id": self.id,
            "status": self.status,
            "source": self.source,
            "inputs": [_shown(name, self.source, root) for name in self.inputs],
            "options": self.options,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "expires": self.expires,
            "progress": {
                "files_done": self.done,
                "files": self.total,
                "frames_done": self.frames,
                "frames": self.frames_total,
                "fraction": round(min(1.0, progress), 4),
            },
            "error": self.error,
            "summary": self.summary,
        }


def _shown(name: str, source: str, root: Path | None) -> str:
    path = Path(name)
    if source == "upload":
        return path.name
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix() or "."
    return path.name


class JobStore:
    """The registry of jobs, their spooled inputs and their results."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.state = Path(config.state).expanduser().resolve()
        self.spool = Path(config.spool).expanduser()
        for folder in (self.state, self.state / "results", self.spool):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = open_database(self.state / "jobs.sqlite", _SCHEMA, SCHEMA_VERSION)
        self.wake = threading.Event()

    # -- paths -----------------------------------------------------------------------------------

    def results(self, job_id: str) -> Path:
        return self.state / "results" / job_id

    def spooled(self, job_id: str) -> Path:
        return self.spool / job_id

    # -- records ---------------------------------------------------------------------------------

    def new_id(self) -> str:
        return secrets.token_hex(8)

    def create(self, job_id: str, owner: str, source: str, inputs: list[str], options: dict[str, Any]) -> JobRecord:
        """Queue a job (its uploaded inputs are already spooled); return its record."""
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, owner, status, source, inputs, options, created, total) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?, 0)",
                (job_id, owner, source, json.dumps(inputs), json.dumps(options), time.time()),
            )
        self.wake.set()
        record = self.get(job_id)
        assert record is not None
        return record

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    def all(self, owner: str | None = None) -> list[JobRecord]:
        """Return the jobs of ``owner`` (every job when None), newest first."""
        with self._lock:
            if owner is None:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY created DESC").fetchall()
            else:
                query = f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? ORDER BY created DESC"
                rows = self._db.execute(query, (owner,)).fetchall()
        return [_record(row) for row in rows]

    def active(self) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
            )

    def claim(self) -> JobRecord | None:
        """Mark the oldest queued job running and return it (None when none waits)."""
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET status = 'running', started = COALESCE(started, ?) WHERE id = ?", (time.time(), row[0])
            )
        return self.get(row[0])

    def progress(self, job_id: str, kind: str, done: int, total: int | None) -> None:
        with self._lock:
            if kind == "files":
                self._db.execute(
                    "UPDATE jobs SET done = ?, total = ?, frames = 0, frames_total = NULL WHERE id = ?",
                    (done, total or 0, job_id),
                )
            else:
                self._db.execute("UPDATE jobs SET frames = ?, frames_total = ? WHERE id = ?", (done, total, job_id))

    def end(self, job_id: str, status: str, error: str | None = None, summary: dict[str, Any] | None = None) -> None:
        """Record how a job ended; its results expire ``result_ttl`` seconds from now."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, error = ?, summary = ?, finished = ?, expires = ? "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (
                    status,
                    error,
                    None if summary is None else json.dumps(summary),
                    now,
                    now + self.config.result_ttl,
                    job_id,
                ),
            )
        self._drop_spool(job_id)

    def status(self, job_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else str(row[0])

    def delete(self, job_id: str) -> None:
        """Forget a job: its spooled inputs and results are deleted (`JobRunner.cancel` ends its process if it runs)."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        self._drop_spool(job_id, force=True)
        shutil.rmtree(self.results(job_id), ignore_errors=True)

    def recover(self) -> int:
        """Queue again the jobs a stopped server left running; return how many."""
        with self._lock:
            count = self._db.execute("UPDATE jobs SET status = 'queued' WHERE status = 'running'").rowcount
        if count:
            log.info("%d job(s) left running by a stopped server queued again", count)
            self.wake.set()
        return int(count)

    def expire(self, now: float | None = None) -> list[str]:
        """Delete the results of jobs past their lifetime; return their ids."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE status IN ('done', 'failed') AND expires < ?", (now,)
            ).fetchall()
            for (job_id,) in rows:
                self._db.execute("UPDATE jobs SET status = 'expired' WHERE id = ?", (job_id,))
        for (job_id,) in rows:
            shutil.rmtree(self.results(job_id), ignore_errors=True)
            self._drop_spool(job_id, force=True)
        return [job_id for (job_id,) in rows]

    def _drop_spool(self, job_id: str, force: bool = False) -> None:
        if force or not self.config.keep_originals:
            shutil.rmtree(self.spooled(job_id), ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: tuple[Any, ...]) -> JobRecord:
    values = list(row)
    values[4] = json.loads(values[4])
    values[5] = json.loads(values[5])
    values[15] = None if values[15] is None else json.loads(values[15])
    return JobRecord(*values)


class JobRunner:
    """A background thread that runs queued jobs one after another, each as a ``condanon anonymize`` process of its
    own (its models load there and go with it; a job deleted or a server stopped ends it at once), and deletes
    results past their lifetime."""

    def __init__(self, store: JobStore, poll: float = 1.0) -> None:
        self.store = store
        self.poll = poll
        root = store.config.root
        self.root = None if root is None else Path(root).resolve()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._current: tuple[str, subprocess.Popen[str]] | None = None
        self._thread = threading.Thread(target=self._loop, name="condanon-jobs", daemon=True)

    def start(self) -> None:
        self.store.recover()
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop now: the running job's process ends (the job stays running in the registry and resumes at the next
        start, skipping the files it finished)."""
        self._stop.set()
        self.store.wake.set()
        self._end_process()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def cancel(self, job_id: str) -> None:
        """End the process of ``job_id`` if it is the one running (its record is already deleted)."""
        self._end_process(job_id)

    def _end_process(self, job_id: str | None = None) -> None:
        with self._lock:
            current = self._current
        if current is not None and (job_id is None or current[0] == job_id) and current[1].poll() is None:
            current[1].terminate()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.expire()
                record = self.store.claim()
            except sqlite3.Error:
                log.exception("the job registry failed")
                record = None
            if record is None:
                self.store.wake.wait(self.poll)
                self.store.wake.clear()
                continue
            try:
                self.run(record)
            except Exception as error:  # a fault here must not end the runner: the job fails with one line
                log.exception("job %s failed", record.id)
                self.store.end(record.id, "failed", f"{type(error).__name__}: {one_line(error)}")

    def run(self, record: JobRecord) -> None:
        """Run one job through to its end (or until it is deleted or the server stops)."""
        store = self.store
        if record.source == "upload" and not all(Path(name).is_file() for name in record.inputs):
            store.end(
                record.id,
                "failed",
                "its uploaded files are gone (a spool in memory does not outlive the machine); upload them again",
            )
            return
        results = store.results(record.id)
        results.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = [sys.executable, "-m", "condanon", "anonymize", "-o", str(results / "out")]
        argv += ["--report", str(results / "report.json"), "--quiet", "--progress-lines", "--workers", "1"]
        argv += [*job_arguments(record.options, results), "--", *record.inputs]  # no input name is read as an option
        log.info("job %s: %d input(s) started", record.id, len(record.inputs))
        with open(results / ".job.log", "a") as errors:  # one-line errors of the job's inputs (names, no pixels)
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True)
            with self._lock:
                self._current = (record.id, process)
            try:
                assert process.stdout is not None
                for line in process.stdout:
                    _progress(store, record.id, line)
                status = process.wait()
            finally:
                with self._lock:
                    self._current = None
                if process.poll() is None:
                    process.kill()
                    process.wait()
        if store.status(record.id) is None:  # deleted while it ran: nothing of it stays
            shutil.rmtree(results, ignore_errors=True)
            return
        if self._stop.is_set():
            log.info("job %s: stopped with the server; it resumes at the next start", record.id)
            return
        if status not in (0, 1):  # 1: some inputs failed, which the report says; 2: a configuration fault
            last = _last_line(results / ".job.log")
            store.end(record.id, "failed", last or f"the job's process ended with status {status}")
            return
        _hide_server_paths(results, [store.spooled(record.id), results, *([self.root] if self.root else [])])
        summary = _summary(results / "report.json", status)
        store.end(record.id, "done", None, summary)
        log.info("job %s: done (%s)", record.id, summary)


def _progress(store: JobStore, job_id: str, line: str) -> None:
    try:
        update = json.loads(line)
        store.progress(job_id, str(update["kind"]), int(update["done"]), update.get("total"))
    except (ValueError, KeyError, TypeError):
        log.debug("job %s: not a progress line: %.200s", job_id, line)


def _last_line(path: Path) -> str | None:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1].removeprefix("condanon: error: ") if lines else None


def job_arguments(options: dict[str, Any], results: Path) -> list[str]:
    """Return the command line of a job's options (as the job's request gave them, checked)."""
    argv = ["--method", str(options["method"]), "--seed", str(options["seed"])]
    if options.get("attributes"):
        argv.append("--attributes")
    if options.get("analytics"):
        argv += ["--analytics", str(results / "analytics")]
        if options.get("line"):
            argv += ["--line", str(options["line"])]
            if options.get("line_names"):
                argv += ["--line-names", str(options["line_names"])]
    return argv


def _summary(report: Path, status: int) -> dict[str, Any]:
    """Return the job's counts from its report: inputs, failed, faces and tracks (and the per-file errors)."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return {"exit_status": status}
    errors = [r["error"] for r in data.get("results", []) if "error" in r]
    keys = ("method", "inputs", "skipped", "failed", "faces", "tracks")
    return {key: data.get(key) for key in keys} | {"errors": errors[:50], "exit_status": status}


def _hide_server_paths(results: Path, folders: list[Path]) -> None:
    """Rewrite the result's reports so that they name files relative to the job (``out/x.jpg``, ``x.jpg``), never
    by the server's own folders (the spool, the state, the root)."""
    from ..imageio import write_atomic

    for path in results.rglob("*"):
        if path.suffix not in (".json", ".csv", ".html") or not path.is_file() or path.name.startswith("."):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        changed = text
        for folder in folders:
            changed = changed.replace(str(folder) + os.sep, "")
        if changed != text:
            write_atomic(path, changed.encode("utf-8"))

"""The state of a resumable batch job, kept in a small SQLite file beside its outputs.

`condanon anonymize FOLDER -o OUT` records each input in ``OUT/.condanon-job.sqlite``: a rerun after a
crash or Ctrl-C skips the files already done (same input size, mtime and settings, output present)
and redoes the rest, including those that were running when the process died. Outputs are written
under a hidden partial name (`Job.partial_for`: ``.<stem>.condanon-<random>.partial<suffix>``, recorded in
the job file before it is written) and renamed into place by `finish` only when complete, so a target
that exists is a whole file; `clean_partials` removes what an interrupted run left, and only that: the
partial files the job recorded, never another file of the output folder, whatever its name.
One job per output folder at a time: a lock file next to the database refuses a second one.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import CondanonError, show_path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

JOB_FILE = ".condanon-job.sqlite"
LOCK_FILE = ".condanon-job.lock"
SCHEMA_VERSION = 1
STATUSES = ("pending", "running", "done", "failed")

_PARTIAL = re.compile(r"^\..*\.condanon-[0-9a-f]{8}\.partial(\.[^.]+)?$")
_PARTIALS = "CREATE TABLE IF NOT EXISTS partials (path TEXT PRIMARY KEY, target TEXT NOT NULL)"
_COLUMNS = "source, target, status, error, size, mtime_ns, settings, started, finished"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    source   TEXT PRIMARY KEY,
    target   TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error    TEXT,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    settings TEXT NOT NULL,
    started  REAL,
    finished REAL
)
"""


@dataclass(frozen=True)
class JobEntry:
    """One input of the job: where its output goes, how far it got, and what it was made from."""

    source: str
    target: str
    status: str
    error: str | None
    size: int
    mtime_ns: int
    settings: str
    started: float | None
    finished: float | None


class Job:
    """The job state of one output folder; use as a context manager, or call `close`."""

    def __init__(self, out_dir: Path, settings: str) -> None:
        self.out_dir = Path(out_dir).expanduser().resolve()
        self.settings = settings
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / JOB_FILE
        self._mutex = threading.Lock()
        self._lock_fd: int | None = _acquire(self.out_dir / LOCK_FILE, self.out_dir)
        try:
            self._db = self._open()
        except BaseException:
            self._release()
            raise

    def _open(self) -> sqlite3.Connection:
        # the partials table was added within format 1: older files get it here
        return open_database(self.path, _SCHEMA, SCHEMA_VERSION, _PARTIALS)

    def needs(self, source: Path, target: Path) -> bool:
        """Return True unless ``source`` was done with these settings into ``target`` and is unchanged since."""
        row = self._row(_key(source))
        if row is None or row.status != "done" or row.settings != self.settings or row.target != _key(target):
            return True
        try:
            size, mtime_ns = _stat(source)
        except OSError:
            return True
        return (row.size, row.mtime_ns) != (size, mtime_ns) or not Path(row.target).is_file()

    def start(self, source: Path, target: Path) -> None:
        """Record ``source`` as running into ``target`` (with its current size and mtime); returns None."""
        size, mtime_ns = _stat(source)
        self._upsert(_key(source), _key(target), "running", None, size, mtime_ns, time.time(), None)

    def done(self, source: Path, target: Path) -> None:
        """Record ``source`` as done; returns None.

        The input's size and mtime are those seen by `start`, so an input changed while it was being
        processed is redone by the next run; without a `start` they are read now.
        """
        row = self._row(_key(source))
        if row is not None and row.status == "running" and row.target == _key(target) and row.settings == self.settings:
            size, mtime_ns, started = row.size, row.mtime_ns, row.started
        else:
            (size, mtime_ns), started = _stat(source), None
        self._upsert(_key(source), _key(target), "done", None, size, mtime_ns, started, time.time())

    def failed(self, source: Path, target: Path, error: str) -> None:
        """Record ``source`` as failed with the one-line ``error``; returns None."""
        row = self._row(_key(source))
        try:
            size, mtime_ns = _stat(source)
        except OSError:
            size, mtime_ns = -1, -1
        started = row.started if row is not None and row.status == "running" else None
        self._upsert(_key(source), _key(target), "failed", error, size, mtime_ns, started, time.time())

    def partial_for(self, target: Path) -> Path:
        """Return a new hidden name to write ``target`` under until complete, recorded in the job file first.

        The name (``.<stem>.condanon-<random>.partial<suffix>``: same folder, same suffix) is this job's
        own, so `clean_partials` can remove it after a crash without touching any file of the user's.
        """
        target = Path(target)
        partial = target.parent / f".{target.stem}.condanon-{secrets.token_hex(4)}.partial{target.suffix}"
        with self._mutex:
            self._db.execute(
                "INSERT OR REPLACE INTO partials (path, target) VALUES (?, ?)", (_key(partial), _key(target))
            )
        return partial

    def clean_partials(self) -> list[Path]:
        """Return the partial files this job recorded and an interrupted run left, after deleting them."""
        with self._mutex:
            return _clean_recorded(self._db)

    def entries(self) -> list[JobEntry]:
        """Return every recorded input, sorted by source path."""
        with self._mutex:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY source").fetchall()
        return [JobEntry(*row) for row in rows]

    def summary(self) -> dict[str, int]:
        """Return the number of inputs per status (every status present, zero when none)."""
        counts = dict.fromkeys(STATUSES, 0)
        with self._mutex:
            for status, count in self._db.execute("SELECT status, COUNT(*) FROM entries GROUP BY status"):
                counts[status] = count
        return counts

    def close(self) -> None:
        """Close the database and release the folder's lock; returns None (closing twice is harmless)."""
        with self._mutex:
            if self._lock_fd is None:
                return
            try:
                self._db.close()
            finally:
                self._release()

    def __enter__(self) -> Job:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _row(self, source: str) -> JobEntry | None:
        with self._mutex:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE source = ?", (source,)).fetchone()
        return JobEntry(*row) if row is not None else None

    def _upsert(
        self,
        source: str,
        target: str,
        status: str,
        error: str | None,
        size: int,
        mtime_ns: int,
        started: float | None,
        finished: float | None,
    ) -> None:
        row = (source, target, status, error, size, mtime_ns, self.settings, started, finished)
        with self._mutex:
            self._db.execute(f"INSERT OR REPLACE INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        log.debug("job %s: %s -> %s", status, source, target)

    def _release(self) -> None:
        if self._lock_fd is not None:
            if fcntl is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


def open_database(path: Path, schema: str, version: int, *more: str) -> sqlite3.Connection:
    """Open (or create) a condanon state file: autocommit, write-ahead log, ``schema`` made at format ``version``
    and ``more`` statements run at every opening; usable from any thread (callers hold their own lock).

    Raises `CondanonError` naming the file when it is of another format or not a readable database.
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found == 0:
            db.execute(schema)
            db.execute(f"PRAGMA user_version={version}")
        elif found != version:
            raise CondanonError(
                f"{show_path(path)} has job format {found}, this condanon reads {version}; delete it to start over"
            )
        for statement in more:
            db.execute(statement)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise CondanonError(
            f"{show_path(path)} is not a readable condanon job file ({exc}); delete it to start over"
        ) from exc
    except BaseException:
        db.close()
        raise
    return db


def partial_path(target: Path) -> Path:
    """Return the hidden name a single output ``target`` is written under until complete (same folder, same suffix).

    Folder jobs use `Job.partial_for` instead: a name of their own, recorded, that cleaning can trust.
    """
    target = Path(target)
    return target.parent / f".{target.stem}.partial{target.suffix}"


def clean_partials(out_dir: Path) -> list[Path]:
    """Return the partial files that the job of ``out_dir`` recorded and an interrupted run left, after deleting them.

    Only files recorded by `Job.partial_for` (and still named as it names them) are removed: a user's
    file is never touched, whatever its name.
    """
    path = Path(out_dir) / JOB_FILE
    if not path.is_file():
        return []
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(_PARTIALS)
        return _clean_recorded(db)
    except sqlite3.DatabaseError as exc:
        log.warning("cannot read the partial files recorded in %s: %s", show_path(path), exc)
        return []
    finally:
        db.close()


def _clean_recorded(db: sqlite3.Connection) -> list[Path]:
    removed = []
    for (name,) in db.execute("SELECT path FROM partials ORDER BY path").fetchall():
        path = Path(name)
        try:
            if _PARTIAL.match(path.name) and stat.S_ISREG(path.lstat().st_mode):
                path.unlink()
                removed.append(path)
                log.info("removed partial output %s (left by an interrupted run)", show_path(path))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove partial output %s: %s", show_path(path), exc)
            continue
        db.execute("DELETE FROM partials WHERE path = ?", (name,))
    return removed


def finish(partial: Path, target: Path) -> None:
    """Move the complete ``partial`` to ``target`` atomically, flushed to disk first; returns None."""
    partial, target = Path(partial), Path(target)
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some platforms refuse fsync on a read-only descriptor
        pass
    finally:
        os.close(fd)
    os.replace(partial, target)
    try:  # make the rename itself durable; directories cannot be opened on Windows
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _key(path: Path) -> str:
    return str(Path(path).expanduser().resolve())


def _stat(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _acquire(lock_path: Path, out_dir: Path) -> int:
    """Return the descriptor holding the exclusive lock on ``lock_path``; raise if another job holds it."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        # mypy checks for this platform, where fcntl always imports; it is None on Windows only
        log.debug("no fcntl here: job folder %s is not locked", out_dir)  # type: ignore[unreachable]
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise CondanonError(f"another condanon job is running in {show_path(out_dir)}") from exc
    return fd

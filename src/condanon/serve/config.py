"""What an operator sets for ``condanon serve``: where state lives, who may call, and every limit."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, show_path

MiB = 2**20


def default_state() -> Path:
    """Return the default state folder: ``$XDG_STATE_HOME/condanon/serve`` (``~/.local/state/condanon/serve``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "condanon" / "serve"


def default_spool() -> Path:
    """Return where uploaded job inputs wait for their job: a folder in memory (``/dev/shm``) where the system has one,
    so that no original pixels reach a disk; else the system's temporary folder."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"condanon-spool-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


@dataclass(frozen=True)
class ServeConfig:
    """The service's settings; every limit has a default a small server can hold.

    Keys: a request needs ``Authorization: Bearer <key>`` with one of ``api_keys`` or ``reviewer_keys`` (a
    reviewer may also see every job and the originals of server-side path jobs). With no key at all the
    service refuses to start unless ``no_auth`` says so.
    """

    state: Path = field(default_factory=default_state)
    """Folder of the job registry (``jobs.sqlite``) and the job results."""
    spool: Path = field(default_factory=default_spool)
    """Folder where an uploaded job's inputs wait until their job is done (then they are deleted)."""
    root: Path | None = None
    """Server-side folder that path jobs may read from; ``None``: path jobs are refused."""
    api_keys: tuple[str, ...] = ()
    reviewer_keys: tuple[str, ...] = ()
    no_auth: bool = False
    method: str = "auto"
    """The method of a request that names none."""
    seed: int = 0
    workers: int = 1
    """Requests anonymised at once: one on a thread of the server, more each on a process of its own."""
    threads: bool = False
    """Run several workers as threads sharing one set of models (less memory, less speed) instead of processes."""
    queue: int = 8
    """Requests that may wait for a worker; beyond that the answer is 503 with Retry-After."""
    max_upload_bytes: int = 25 * MiB
    """Largest image request body."""
    max_job_upload_bytes: int = 1024 * MiB
    """Largest job upload (all its files)."""
    max_pixels: int = 40_000_000
    """Largest image (width x height, each frame)."""
    max_video_seconds: float = 600.0
    max_files: int = 1000
    """Most files in one job."""
    max_jobs: int = 16
    """Jobs that may wait or run at once; beyond that a new job gets 503."""
    request_timeout: float = 120.0
    """Seconds a request may take (upload and work); then 504 (408 while uploading)."""
    result_ttl: float = 24 * 3600.0
    """Seconds a finished job's results are kept; then they are deleted and the job answers 410."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call from a browser; none (CORS off) by default."""
    keep_originals: bool = False
    """Keep uploaded job inputs after their job (for audit); off: no original pixels stay on disk."""
    warm_up: bool = True
    """Load the models at start (``/readyz`` answers 200 once they are loaded)."""
    run_jobs: bool = True
    """Run queued jobs (off only in tests that look at the queue)."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.queue < 0:
            raise ConfigError("queue must be 0 or more")
        for name in ("max_upload_bytes", "max_job_upload_bytes", "max_pixels", "max_files", "max_jobs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.request_timeout <= 0 or self.result_ttl <= 0 or self.max_video_seconds <= 0:
            raise ConfigError("timeouts, the result lifetime and the video duration limit must be above 0")
        if not (self.api_keys or self.reviewer_keys or self.no_auth):
            raise ConfigError(
                "no API key: set CONDANON_API_KEYS (comma-separated) or --key-file FILE, or run with --no-auth "
                "on a trusted network"
            )
        from ..methods import AUTO, method_names

        if self.method not in (AUTO, *method_names()):
            raise ConfigError(f"method {self.method}: not one of {', '.join((AUTO, *method_names()))}")
        if self.root is not None and not Path(self.root).is_dir():
            raise ConfigError(f"--root {show_path(self.root)}: not a folder")


def read_key_file(path: str | os.PathLike[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (client keys, reviewer keys) from a key file: one key per line, ``KEY`` or ``KEY reviewer``; blank lines
    and ``#`` comments are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"key file {show_path(path)}: cannot be read ({error})") from None
    clients: list[str] = []
    reviewers: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1] not in ("client", "reviewer")):
            raise ConfigError(f"key file {show_path(path)}, line {number}: expected 'KEY' or 'KEY reviewer'")
        (reviewers if words[-1] == "reviewer" and len(words) == 2 else clients).append(words[0])
    for key in clients + reviewers:
        if len(key) < 16:
            raise ConfigError(f"key file {show_path(path)}: a key shorter than 16 characters is too easy to guess")
    return tuple(clients), tuple(reviewers)


def keys_from_env(name: str) -> tuple[str, ...]:
    """Return the comma-separated keys of the environment variable ``name``."""
    keys = tuple(key.strip() for key in os.environ.get(name, "").split(",") if key.strip())
    for key in keys:
        if len(key) < 16:
            raise ConfigError(f"{name}: a key shorter than 16 characters is too easy to guess")
    return keys

"""Folder jobs on several processes of one machine: each worker builds its own `Anonymizer` once and anonymises
whole image files.

The models load once per worker (lazily, at its first image) and stay loaded for the job. Outputs are the
same whatever the number of workers: every random choice is seeded by the seed and the image's own pixels,
never by the order or the process that drew it. Each worker runs its native libraries (OpenCV, onnxruntime)
on ``cores / workers`` threads, so that N workers do not fight over the cores. Workers are started with
``spawn`` (a fresh interpreter: no model, lock or thread of the parent is inherited half-way).

`anonymize_file` is the one-file job both the command line (one worker) and each pool worker run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CondanonError, ModelError, one_line, show_path
from .imageio import Frames, metadata_of, read_frames, write_frames

if TYPE_CHECKING:
    from collections.abc import Callable

    from .pipeline import Anonymizer

log = logging.getLogger(__name__)

MEMORY_PER_WORKER = 1.5 * 2**30
"""Resident memory allowed per worker when choosing how many to start: the synthetic method's worker peaked at 634 MiB
on the shared group photos (docs/speed.md), and large photos need more; the default number of workers is kept
within the machine's available memory."""


def default_workers() -> int:
    """Return the number of workers a folder job uses by default: one per core the process may use, at most as many
    as the available memory holds (`MEMORY_PER_WORKER` each), at least one."""
    count = cores()
    available = _available_memory()
    if available is None:
        return count
    return max(1, min(count, int(available // MEMORY_PER_WORKER)))


def cores() -> int:
    """Return the cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _available_memory() -> int | None:
    """Return the bytes of memory available to new processes (Linux's MemAvailable, which counts the page cache
    that can be dropped; else the free pages), or None where neither can be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def anonymize_frames(
    anonymizer: Anonymizer, frames: Frames, source: str | None = None
) -> tuple[Frames, dict[str, Any]]:
    """Return every frame (or page) of ``frames`` anonymised, and one report for them all (faces carry their ``frame``
    where there are several)."""
    results = []
    for image in frames.images:
        result = anonymizer.anonymize(image)
        result.source = source
        results.append(result)
    report = results[0].to_dict()
    if len(results) == 1:
        return Frames([results[0].bgr], frames.format, alpha=frames.alpha), report
    report["frames"] = len(results)
    report["faces"] = [face | {"frame": index} for index, r in enumerate(results) for face in r.to_dict()["faces"]]
    return Frames([r.bgr for r in results], frames.format, frames.durations, frames.loop), report


def anonymize_file(anonymizer: Anonymizer, path: Path, target: Path, keep_metadata: bool = False) -> dict[str, Any]:
    """Anonymise every frame (or page) of the image at ``path`` into ``target`` (written whole or not at all); return
    its report."""
    frames, report = anonymize_frames(anonymizer, read_frames(path), str(path))
    metadata = metadata_of(path) if keep_metadata else None
    write_frames(target, frames, metadata)
    log.info("%s -> %s (%d faces, %d frames)", path, target, len(report["faces"]), len(frames.images))
    return report


@dataclass(frozen=True)
class Outcome:
    """What one file's job came to, as the parent process reads it (exceptions do not cross processes whole)."""

    report: dict[str, Any] | None = None
    error: str | None = None
    """One line: the input failed, the others go on."""
    error_type: str | None = None
    """The class of the error (``StreamError``: a stream that could not be reached)."""
    fatal: str | None = None
    """One line: a broken model; the whole run stops (`ModelError`)."""


_worker: dict[str, Any] = {}


def worker_threads(workers: int) -> int:
    """Return the native threads each of ``workers`` worker processes gets: its share of the cores, at least one."""
    return max(1, cores() // workers)


def set_up_worker(threads: int, level: int) -> None:
    """Set up a spawned worker process: OpenCV's thread budget and the parent's logging level."""
    import cv2

    cv2.setNumThreads(threads)
    logging.basicConfig(level=level, format="condanon: %(levelname)s: %(message)s")


def _start(options: dict[str, Any], threads: int, level: int) -> None:
    """Set up one worker process: its thread budget, its logging, its `Anonymizer` (models load at the first image)."""
    from .pipeline import Anonymizer

    set_up_worker(threads, level)
    _worker["anonymizer"] = Anonymizer(**options)  # it imports onnxruntime safely first


def _run(path: Path, target: Path, keep_metadata: bool) -> Outcome:
    """Anonymise one file in a pool worker; say how it went in a form that crosses processes."""
    return run_file(_worker["anonymizer"], path, target, keep_metadata)


def run_file(anonymizer: Anonymizer, path: Path, target: Path, keep_metadata: bool = False) -> Outcome:
    """Anonymise the image at ``path`` into ``target`` (`anonymize_file`); say how it went as an `Outcome`."""
    return attempt(path, anonymize_file, anonymizer, path, target, keep_metadata)


def attempt(source: Path | str, work: Callable[..., dict[str, Any]], *args: Any) -> Outcome:
    """Return the `Outcome` of ``work(*args)`` on the input ``source``: its report, or its error in one line.

    A broken model (`ModelError`) is ``fatal``: the whole run stops. Any other error fails this input
    only, so that one broken input does not end the batch.
    """
    try:
        return Outcome(report=work(*args))
    except ModelError as error:
        return Outcome(fatal=one_line(error, whole=True))
    except CondanonError as error:
        return Outcome(error=str(error), error_type=type(error).__name__)
    except Exception as error:
        log.debug("%s failed", source, exc_info=True)
        return Outcome(
            error=f"{show_path(source)}: {type(error).__name__}: {one_line(error)}", error_type=type(error).__name__
        )


class WorkerPool:
    """``workers`` processes, each with its own `Anonymizer` built from ``options`` (its keyword arguments)."""

    def __init__(self, options: dict[str, Any], workers: int, keep_metadata: bool = False) -> None:
        if workers < 2:
            raise ValueError("a pool has two workers or more; run one in the process itself")
        threads = worker_threads(workers)
        self.keep_metadata = keep_metadata
        self.executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(options, threads, logging.getLogger().getEffectiveLevel()),
        )

    def submit(self, path: Path, target: Path) -> Future[Outcome]:
        """Start anonymising ``path`` into ``target`` on a free worker."""
        return self.executor.submit(_run, path, target, self.keep_metadata)

    def close(self, cancel: bool = False) -> None:
        """Wait for the files under way (and, unless ``cancel``, the queued ones), then end the workers."""
        self.executor.shutdown(wait=True, cancel_futures=cancel)

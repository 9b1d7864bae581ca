"""Videos and camera streams on Ray: one task per video file, one long-lived actor per stream.

A video is one Ray task (its tracks need the whole clip in order); a task whose worker dies is run again
from the start (at most `RETRIES` more times) into the same partial name, which is renamed to the output
only when complete. A stream is an actor that runs until the stream ends (or the job is stopped); Ray
restarts a killed one, and it connects again. Either way the work is done by a picklable ``run(item)``
that returns the input's report: `VideoJob` for the SDK, the command line's own for ``--engine ray``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..workers import Outcome, attempt, set_up_worker
from .cluster import Placement, import_ray, node_id
from .results import Done, lost

if TYPE_CHECKING:
    from ..video import EncodeOptions, VideoAnonymizer

log = logging.getLogger(__name__)

RETRIES = 3
"""Times a video is run again after its worker died; a stream actor is restarted as often."""


@dataclass(frozen=True)
class VideoItem:
    """One video or stream to run: where its output goes (``None``: no file), under which partial name until complete,
    and the folder of its passenger analytics (``None``: none)."""

    source: str
    target: Path | None
    partial: Path | None = None
    analytics: Path | None = None


VideoRun = Callable[[VideoItem], dict[str, Any]]
"""Anonymises one `VideoItem` on a worker and returns its report (picklable: it travels to the workers)."""

_videos: dict[str, VideoAnonymizer] = {}


def worker_videos(key: str, build: Callable[[], VideoAnonymizer]) -> VideoAnonymizer:
    """Return this worker process's `VideoAnonymizer` for the job settings ``key``, made by ``build`` the first time
    (models load once per worker, one job's at a time)."""
    if key not in _videos:
        _videos.clear()
        _videos[key] = build()
    return _videos[key]


def stop_videos() -> None:
    """Ask every run of this worker process to stop (a live stream ends and its file is finished); returns None."""
    for videos in _videos.values():
        videos.stop.set()


@dataclass(frozen=True)
class VideoJob:
    """The SDK's `VideoRun`: a `VideoAnonymizer` (built once per worker process from ``options``, the `Anonymizer`'s
    keyword arguments, and ``video``, the `VideoAnonymizer`'s) writes each video with ``encode``, and its track report
    and box CSV beside it."""

    options: dict[str, Any]
    video: dict[str, Any] = field(default_factory=dict)
    encode: EncodeOptions | None = None

    def __call__(self, item: VideoItem) -> dict[str, Any]:
        from ..pipeline import Anonymizer
        from ..video import EncodeOptions, VideoAnonymizer

        videos = worker_videos(repr(self), lambda: VideoAnonymizer(Anonymizer(**self.options), **self.video))
        report = videos.run(item.source, item.target, self.encode or EncodeOptions(), partial=item.partial)
        if item.target is not None:
            report.write_beside(item.target)
        return report.to_dict()


def _run_one(run: VideoRun, item: VideoItem, threads: int, level: int) -> tuple[Outcome, str]:
    """Run ``item`` on this worker; return its outcome and this node's id."""
    set_up_worker(threads, level)
    return attempt(item.source, run, item), node_id()


class StreamWorker:
    """One stream's actor: it runs its stream with ``run`` until the stream ends, or `stop` is called (the actor takes
    two calls at a time for that)."""

    def __init__(self, run: VideoRun, threads: int, level: int) -> None:
        self.run_item = run
        self.threads = threads
        self.level = level

    def run(self, item: VideoItem) -> tuple[Outcome, str]:
        """Run the stream ``item`` to its end; return its outcome and this node's id."""
        return _run_one(self.run_item, item, self.threads, self.level)

    def stop(self) -> None:
        """End the stream under way as Ctrl-C does locally: its file is finished and its report returned."""
        stop_videos()


def run_videos(
    items: Sequence[VideoItem], run: VideoRun, placement: Placement, streams: bool = False
) -> Iterator[Done]:
    """Yield a `Done` for each of ``items`` as it finishes (in any order): one task per video, or with ``streams`` one
    actor per stream, each of ``placement.cpus`` CPUs."""
    if not items:
        return
    ray = import_ray()
    level = logging.getLogger().getEffectiveLevel()
    items = [_absolute(item, stream=streams) for item in items]  # a worker's working folder is not the driver's
    refs: dict[Any, int] = {}
    actors = []
    if streams:
        actor = ray.remote(StreamWorker).options(
            num_cpus=placement.cpus, max_restarts=RETRIES, max_task_retries=RETRIES, max_concurrency=2
        )
        for index, item in enumerate(items):
            actors.append(actor.remote(run, placement.threads, level))
            refs[actors[-1].run.remote(item)] = index
    else:
        task = ray.remote(_run_one).options(num_cpus=placement.cpus, max_retries=RETRIES, retry_exceptions=False)
        for index, item in enumerate(items):
            refs[task.remote(run, item, placement.threads, level)] = index
    pending = list(refs)
    stopping = False
    while pending:
        try:
            ready, pending = ray.wait(pending, num_returns=1)
        except KeyboardInterrupt:  # Ctrl-C: streams end as they do locally, their files finished; videos stop
            if not actors or stopping:
                raise
            log.warning("stopping %d streams (Ctrl-C again to leave at once)", len(pending))
            for each in actors:
                each.stop.remote()
            stopping = True
            continue
        for ref in ready:
            index = refs[ref]
            try:
                outcome, node = ray.get(ref)
            except ray.exceptions.RayError as error:
                log.debug("%s: %s", items[index].source, error)
                yield Done(index, lost(items[index].source, RETRIES + 1))
                continue
            yield Done(index, outcome, node)
    del actors  # the stream actors end with their streams


def _absolute(item: VideoItem, stream: bool) -> VideoItem:
    """Return ``item`` with absolute file names (a stream's address stays as it is)."""

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else Path(os.path.abspath(path))

    source = item.source if stream else os.path.abspath(item.source)
    return VideoItem(source, absolute(item.target), absolute(item.partial), absolute(item.analytics))

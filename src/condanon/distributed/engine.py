"""`RayEngine`: a job's connection to a Ray cluster and the workers it runs there."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .cluster import Cluster, Placement
from .images import anonymize_images
from .results import Done
from .videos import VideoItem, VideoRun, run_videos


class RayEngine:
    """Runs condanon's work on a Ray cluster (a local one of this machine's cores when ``address`` is None).

    ``workers`` (default: one per CPU of the cluster) image actors, video tasks or stream actors run at a time,
    each on ``cpus`` CPUs (default: the cluster's CPUs shared among the workers). Use as a context manager, or call
    `close`; a local cluster the engine started ends with it.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, cpus: int | None = None) -> None:
        self.cluster = Cluster(address)
        try:
            self.placement: Placement = self.cluster.placement(workers, cpus)
        except BaseException:
            self.cluster.close()
            raise

    def images(
        self, items: Sequence[tuple[Path, Path]], options: dict[str, Any], keep_metadata: bool = False
    ) -> Iterator[Done]:
        """Yield a `Done` per ``(source, target)`` image file as it finishes; ``options`` are the `Anonymizer`'s
        keyword arguments (each actor builds one)."""
        return anonymize_images(items, options, self.placement, keep_metadata)

    def videos(self, items: Sequence[VideoItem], run: VideoRun) -> Iterator[Done]:
        """Yield a `Done` per video as it finishes, each run by ``run`` (a `VideoJob`) in a task of its own."""
        return run_videos(items, run, self.placement)

    def streams(self, items: Sequence[VideoItem], run: VideoRun) -> Iterator[Done]:
        """Yield a `Done` per stream as it ends, each run by ``run`` (a `VideoJob`) in a long-lived actor."""
        return run_videos(items, run, self.placement, streams=True)

    def close(self) -> None:
        """Leave the cluster (a local one started here ends); returns None."""
        self.cluster.close()

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

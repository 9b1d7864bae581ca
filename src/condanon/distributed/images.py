"""Images on Ray Data: a pool of actors, each holding one loaded `Anonymizer`, anonymises whole files.

Each input is one row (``index``, ``source``, ``target``) of a dataset read in blocks of one, so that a
worker lost mid-file costs that file only: Ray restarts the actor and runs the row again, and the output,
written through `write_atomic`, is either whole or absent. Ray Data retries without end; an `Attempts` actor
counts the tries of each file, so that a file whose worker dies on every try (a crashing decoder, too
little memory) comes back as an error for that file after `RETRIES` more tries, and the job goes on.

The worker reads ``source`` and writes ``target`` itself: on a cluster of several machines both must lie on
a filesystem every node mounts at the same path (docs/scale.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..workers import run_file, set_up_worker
from .cluster import Placement, import_ray, node_id
from .results import Done, decode, encode, lost

log = logging.getLogger(__name__)

RETRIES = 3
"""Times a file is tried again after its worker died (killed, out of memory, its node lost)."""


class Attempts:
    """An actor counting how often each file of a job was started (a restarted worker starts it again)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def start(self, index: int) -> int:
        """Record one more start of file ``index``; return how many there were, this one included."""
        self.counts[index] = self.counts.get(index, 0) + 1
        return self.counts[index]


class ImageWorker:
    """One actor of the pool: an `Anonymizer` built from ``options`` (loaded at its first image, kept for the job)."""

    def __init__(
        self, options: dict[str, Any], threads: int, level: int, keep_metadata: bool, attempts: Any = None
    ) -> None:
        from ..pipeline import Anonymizer

        set_up_worker(threads, level)
        self.anonymizer = Anonymizer(**options)
        self.keep_metadata = keep_metadata
        self.attempts = attempts
        self.node = node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        """Anonymise each row's ``source`` into its ``target``; return ``index``, ``outcome`` (JSON) and ``node``."""
        rows: dict[str, list[Any]] = {"index": [], "outcome": [], "node": []}
        for index, source, target in zip(batch["index"], batch["source"], batch["target"]):
            if self._tries(int(index)) > RETRIES + 1:
                outcome = lost(str(source), RETRIES + 1)
            else:
                outcome = run_file(self.anonymizer, Path(str(source)), Path(str(target)), self.keep_metadata)
            rows["index"].append(int(index))
            rows["outcome"].append(encode(outcome))
            rows["node"].append(self.node)
        return rows

    def _tries(self, index: int) -> int:
        """Return how often file ``index`` was started, this time included (1 when the counter cannot be asked)."""
        if self.attempts is None:
            return 1
        ray = import_ray()
        try:
            return int(ray.get(self.attempts.start.remote(index)))
        except ray.exceptions.RayError as error:  # the counter is gone with its node: the file is still done
            log.warning("cannot count the tries of file %d (%s); running it", index, error)
            return 1


def anonymize_images(
    items: Sequence[tuple[Path, Path]], options: dict[str, Any], placement: Placement, keep_metadata: bool = False
) -> Iterator[Done]:
    """Yield a `Done` for each ``(source, target)`` of ``items`` as it finishes (in any order), run by
    ``placement.workers`` actors with an `Anonymizer` built from ``options`` each."""
    if not items:
        return
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    attempts = ray.remote(Attempts).options(num_cpus=0, scheduling_strategy=here).remote()  # beside the driver
    # absolute names: a worker's working folder is not the driver's
    rows = [
        {"index": i, "source": os.path.abspath(source), "target": os.path.abspath(target)}
        for i, (source, target) in enumerate(items)
    ]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        ImageWorker,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(placement.workers, len(rows)), max_tasks_in_flight_per_actor=1),
        num_cpus=placement.cpus,
        fn_constructor_kwargs={
            "options": options,
            "threads": placement.threads,
            "level": logging.getLogger().getEffectiveLevel(),
            "keep_metadata": keep_metadata,
            "attempts": attempts,
        },
    )
    seen: set[int] = set()
    # whole blocks as they come, none held back: each file is reported as soon as it is done
    for batch in dataset.iter_batches(batch_size=None, prefetch_batches=0, batch_format="numpy"):
        for index, outcome, node in zip(batch["index"], batch["outcome"], batch["node"]):
            seen.add(int(index))
            yield Done(int(index), decode(str(outcome)), str(node))
    for index, (source, _) in enumerate(items):  # Ray Data answers every row; this is a guard
        if index not in seen:
            yield Done(index, lost(str(source), RETRIES + 1))
    ray.kill(attempts)

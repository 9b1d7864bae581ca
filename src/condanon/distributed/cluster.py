"""Connecting to Ray, and where condanon's workers go on the cluster.

A job joins the cluster at ``address`` (``auto``, ``ray://host:10001``, ``host:6379``), or starts a local one
of this machine's cores when none is given; a local cluster it started ends with the job. Each worker (an
image actor, a video task, a stream actor) asks for ``cpus`` of the cluster's CPUs, and runs its native
libraries (OpenCV, onnxruntime) on as many threads, so that workers do not fight over a node's cores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import CondanonError, ModelError, one_line
from ..workers import cores

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "condanon[ray]"'


def import_ray() -> ModuleType:
    """Return the ``ray`` module; raise `ModelError` naming the extra to install when Ray (with Ray Data) is absent."""
    try:
        import ray
        import ray.data  # the images need Ray Data, which ``ray`` alone lacks
    except ImportError as error:
        raise ModelError(f"--engine ray needs Ray with Ray Data ({INSTALL_HINT}): {error}") from None
    return ray


@dataclass(frozen=True)
class Placement:
    """How many workers a job runs on the cluster, and the CPUs (and native threads) each one takes."""

    workers: int
    cpus: int
    nodes: int

    @property
    def threads(self) -> int:
        """Native threads per worker: its CPUs."""
        return self.cpus


class Cluster:
    """A connection to a Ray cluster; use as a context manager, or call `close` (which ends a cluster it started)."""

    def __init__(self, address: str | None = None, cpus: int | None = None) -> None:
        ray = import_ray()
        self.started = False
        if ray.is_initialized():
            log.debug("Ray is already connected: using that cluster")
        else:
            quiet = log.getEffectiveLevel() > logging.INFO
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING if quiet else logging.INFO,
                "log_to_driver": not quiet,
                "configure_logging": True,
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = cpus or cores()
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise CondanonError(f"cannot connect to {where}: {one_line(error)}") from None
            self.started = True
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(max(logging.WARNING, log.getEffectiveLevel()))
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": by us
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False

    def placement(self, workers: int | None = None, cpus: int | None = None) -> Placement:
        """Return where ``workers`` workers of ``cpus`` CPUs each go (defaults: one worker per CPU of the cluster; else
        the cluster's CPUs shared among the workers, at most one node's worth each).

        Raises `CondanonError` for fewer than 1 worker or CPU, or a worker bigger than every node.
        """
        ray = import_ray()
        sizes = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node.get("Alive")]
        sizes = [size for size in sizes if size > 0] or [1]
        total, largest = sum(sizes), max(sizes)
        if workers is not None and workers < 1:
            raise CondanonError("--workers must be at least 1")
        if cpus is not None and cpus < 1:
            raise CondanonError("CPUs per worker must be at least 1")
        if cpus is None:
            cpus = 1 if workers is None else max(1, min(largest, total // workers))
        if cpus > largest:
            raise CondanonError(f"a worker of {cpus} CPUs fits on no node of this cluster (the largest has {largest})")
        if workers is None:
            workers = max(1, sum(size // cpus for size in sizes))
        return Placement(workers=workers, cpus=cpus, nodes=len(sizes))

    def close(self) -> None:
        """Leave the cluster; a local cluster this connection started ends here. Returns None."""
        if self.started:
            import_ray().shutdown()
            self.started = False

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def node_id() -> str:
    """Return the id of the Ray node this code runs on (inside a task or actor)."""
    ray = import_ray()
    return str(ray.get_runtime_context().get_node_id())

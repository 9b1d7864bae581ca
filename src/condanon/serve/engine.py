"""The service's workers: anonymisers built once per set of request options, and a bounded queue in front of them.

With one worker, requests run on a thread of the server's own process. With more, each worker is a process of its
own (``spawn``) that loads the models once and keeps them: on two cores two processes anonymised 1.6x as many
photos as one, two threads sharing the models 1.2x (the models guard their calls with locks, and Python code holds
the GIL). Either way every random choice is seeded by the image, so a request's answer does not depend on the
worker or on what else was running.

At most ``workers + queue`` requests are admitted at once, counted from before the upload is read (so uploads
held in memory are bounded too); the next one is answered 503 with a Retry-After estimated from the recent time per
request and the queue ahead. A request that takes longer than the timeout is answered 504; its work finishes in the
background and only then frees its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ApiError

if TYPE_CHECKING:
    from ..pipeline import Anonymizer

log = logging.getLogger(__name__)

T = TypeVar("T")
CACHED_ANONYMIZERS = 8
"""Anonymizers kept per process for distinct request options (the models under them are loaded once whatever the
number)."""


@dataclass(frozen=True)
class RequestOptions:
    """What a request may choose: the method, the seed, and whether blur, pixelate and mask read attributes too."""

    method: str
    seed: int = 0
    attributes: bool = False

    @classmethod
    def parse(cls, values: dict[str, str], default_method: str, default_seed: int) -> RequestOptions:
        """Return the options of a request's form fields or query (``method``, ``seed``, ``attributes``); 400 for a
        bad one."""
        from ..methods import AUTO, method_names

        method = (values.get("method") or default_method).strip().lower()
        if method not in (AUTO, *method_names()):
            raise ApiError(400, f"method {method!r} is not one of: {', '.join((AUTO, *method_names()))}")
        seed_text = values.get("seed", "").strip()
        try:
            seed = int(seed_text) if seed_text else default_seed
        except ValueError:
            raise ApiError(400, f"seed {seed_text[:20]!r} is not a whole number") from None
        if not 0 <= seed < 2**32:
            raise ApiError(400, "seed must be between 0 and 2**32 - 1")
        return cls(method, seed, flag(values.get("attributes"), "attributes"))


def flag(value: str | None, name: str) -> bool:
    """Return a yes/no field's value (``1/0``, ``true/false``, ``yes/no``; absent: no); 400 for anything else."""
    if value is None or value.strip() == "":
        return False
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ApiError(400, f"{name} must be true or false, not {value[:20]!r}")


# -- what each worker process (or the server's own, with one worker) keeps --------------------------------------

_anonymizers: OrderedDict[RequestOptions, Anonymizer] = OrderedDict()
_lock = threading.Lock()


def anonymizer_for(options: RequestOptions) -> Anonymizer:
    """Return this process's anonymizer of ``options``, built the first time (its models load once per process)."""
    with _lock:
        found = _anonymizers.get(options)
        if found is not None:
            _anonymizers.move_to_end(options)
            return found
    built = _build(options)
    with _lock:
        _anonymizers[options] = built
        while len(_anonymizers) > CACHED_ANONYMIZERS:
            _anonymizers.popitem(last=False)
    return built


def _build(options: RequestOptions) -> Anonymizer:
    from ..options import ATTRIBUTE_READERS, Checks
    from ..pipeline import Anonymizer

    method: Any = options.method
    if method == "auto":
        from ..pipeline import auto

        method = auto()
    checks = Checks(attributes=ATTRIBUTE_READERS if options.attributes else None)
    return Anonymizer(method=method, seed=options.seed, checks=checks)


def warm_up(options: RequestOptions) -> int:
    """Load every model ``options`` use, and the attribute readers, by anonymising and reading a prototype face (an
    average of eight or more people from the bundled bank; no one's photo); return this process's id."""
    import cv2
    import numpy as np

    from ..synthesis.bank import default_bank

    face = cv2.resize(default_bank().images[0], (192, 192))
    canvas = np.full((384, 384, 3), 128, np.uint8)
    canvas[96:288, 96:288] = face
    anonymizer_for(options).anonymize(canvas)
    anonymizer_for(RequestOptions("blur", options.seed, True)).analyze(canvas)
    return os.getpid()


def _start_worker(options: RequestOptions, threads: int, level: int) -> None:
    """Set up one worker process: its share of the cores, its logging, its models (the `Anonymizer` that `warm_up`
    builds imports onnxruntime safely first)."""
    from ..workers import set_up_worker

    set_up_worker(threads, level)
    warm_up(options)


def _pid() -> int:
    return os.getpid()


def _timed(work: Callable[..., T], *args: Any) -> tuple[T, float]:
    """Run ``work(*args)`` on the worker; return its result and the seconds it took there (not its wait in line)."""
    started = time.perf_counter()
    return work(*args), time.perf_counter() - started


# -- the queue -----------------------------------------------------------------------------------------------------


@dataclass
class Place:
    """One admitted request's place in the queue."""

    orphaned: bool = False
    """The request was answered (504) while its work runs on: the work gives the place back when it ends."""


class Engine:
    """``workers`` processes (or threads: one worker, or ``processes=False``), a bounded queue, and the models they
    keep."""

    def __init__(
        self,
        workers: int,
        queue: int,
        timeout: float,
        options: RequestOptions | None = None,
        processes: bool = True,
    ) -> None:
        self.workers = workers
        self.timeout = timeout
        self.options = options or RequestOptions("auto")
        self.processes = processes and workers > 1
        """Workers are processes (more than one worker, unless ``processes`` is false: threads sharing the models)."""
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._lock = threading.Lock()
        self._seconds = 1.0  # a running mean of the work time per request on its worker, for Retry-After
        self._admitted = 0
        self._executor: Executor = self._new_executor()
        self.ready = threading.Event()
        self.warm_error: str | None = None

    def _new_executor(self) -> Executor:
        if not self.processes:
            return ThreadPoolExecutor(self.workers, thread_name_prefix="condanon-serve")
        from ..workers import worker_threads

        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.options, worker_threads(self.workers), logging.getLogger().getEffectiveLevel()),
        )

    def retry_after(self) -> int:
        """Return the seconds a refused client should wait: about the time for the queue ahead of it to clear at the
        recent time per request, spread by up to half again so that refused clients do not all return at once."""
        with self._lock:
            ahead = max(1, self._admitted - self.workers + 1)
            base = self._seconds * ahead / self.workers
        return max(1, math.ceil(base * random.uniform(1.0, 1.5)))

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[Place]:
        """Hold a place in the queue for one request, from its upload to its answer (503 with Retry-After when none is
        free). Work that outlives its request (a 504) keeps the place until it ends."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(503, "the server is busy; try again later", {"Retry-After": str(self.retry_after())})
        place = Place()
        with self._lock:
            self._admitted += 1
        try:
            yield place
        finally:
            with self._lock:
                if not place.orphaned:
                    self._release()

    async def run(self, place: Place, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(*args)`` on a worker for the request holding ``place`` (``work`` is a module-level function: it
        may cross to a process); 504 past the timeout, 500 when a worker process died."""

        def ended(future: Future[tuple[T, float]]) -> None:
            with self._lock:
                if not future.cancelled() and future.exception() is None:
                    self._seconds = 0.8 * self._seconds + 0.2 * future.result()[1]
                if place.orphaned:
                    self._release()

        try:
            future: Future[tuple[T, float]] = self._executor.submit(_timed, work, *args)
            future.add_done_callback(ended)
            result, _ = await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
            return result
        except TimeoutError:
            with self._lock:
                place.orphaned = not future.done()
            raise ApiError(504, f"the request took longer than {self.timeout:g} s") from None
        except BrokenProcessPool:
            self._renew()
            raise ApiError(500, "a worker process died during the request; the workers were restarted") from None

    def _release(self) -> None:
        """Give back one place (the lock held)."""
        self._admitted -= 1
        self._slots.release()

    def _renew(self) -> None:
        """Replace a process pool one of whose workers died (killed, out of memory)."""
        with self._lock:
            broken, self._executor = self._executor, self._new_executor()
        log.error("a worker process died; the workers were restarted")
        broken.shutdown(wait=False, cancel_futures=True)

    def hold(self) -> Callable[[], None]:
        """Take every place in the queue (tests: a full server); return the function that gives them back."""
        taken = 0
        while self._slots.acquire(blocking=False):
            taken += 1

        def give_back() -> None:
            for _ in range(taken):
                self._slots.release()

        return give_back

    def warm_up(self) -> None:
        """Load the models of the default options in every worker; `ready` is set after, or `warm_error` says why
        not."""
        try:
            if self.processes:
                pids: set[int] = set()
                for _ in range(3):  # each process warms up as it starts, before its first task
                    pids |= {f.result() for f in [self._executor.submit(_pid) for _ in range(self.workers)]}
                    if len(pids) >= self.workers:
                        break
            else:
                warm_up(self.options)
        except Exception as error:
            log.exception("warm-up failed")
            self.warm_error = f"{type(error).__name__}: {error}"
        finally:
            self.ready.set()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

"""The Ray engine on this machine: throughput of 1 and 2 workers, and what the Ray path costs per image against the
local path, on the shared scenes.

    python benchmarks/ray_scaling.py [--shared ../shared] [--photos all|a.jpg,b.jpg] [--repeat 2] [--method M]
        [--seed 0] [--cpus N] [--out rows.json] [--quick]

Each run anonymises the same list of images: the shared scenes (``--photos``), each ``--repeat`` times under its
own name, written to a fresh folder; the default method is the command line's (``auto``, resolved here). One run
at a time, in this order:

- **local, 1 worker**: one ``Anonymizer`` in this process, ``workers.anonymize_file`` on each image in turn, as
  ``condanon anonymize`` does with ``--workers 1``. Its time includes loading the models at the first image.
- **local, 2 workers**: the local engine's process pool (``workers.WorkerPool``), as ``--workers 2`` does.
- **Ray, 1 worker** and **Ray, 2 workers**: ``condanon.distributed.RayEngine`` on a local cluster of ``--cpus``
  CPUs (default: this machine's cores), ``engine.images(...)``: Ray Data's actor pool, each actor loading its
  models at its first image, ``cpus / workers`` CPUs (and native threads) each, as the local pool gives its
  processes. The cluster's start (``ray.init``) is timed apart; the job's time includes the actors' start.

The table gives each run's seconds, images per second, seconds per image, and the ratios the targets name:
2 Ray workers against 1 (target >= 1.6x on 2 cores), and the Ray path's seconds per image at 1 worker against the
local path's (target: at most 10 % more). Every run's outputs are compared, byte for byte, with the local run's.
Nothing here asserts: the tables are to be read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from condanon.cli import _options, build_parser  # noqa: E402
from condanon.workers import WorkerPool, anonymize_file, cores  # noqa: E402


def _images(shared: Path, photos: str, repeat: int, folder: Path) -> list[Path]:
    scenes = shared / "data" / "scenes"
    names = sorted(p.name for p in scenes.glob("*.jpg")) if photos == "all" else photos.split(",")
    found = []
    for turn in range(repeat):
        for name in names:
            copy = folder / f"{Path(name).stem}.{turn}{Path(name).suffix}"
            shutil.copy(scenes / name, copy)
            found.append(copy)
    return found


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _local(images: list[Path], out: Path, options: dict[str, Any], workers: int) -> list[float]:
    """Return the seconds from the start at which each image was done (in the order they were done)."""
    start = time.perf_counter()
    times = []
    if workers == 1:
        from condanon.pipeline import Anonymizer

        anonymizer = Anonymizer(**options)
        for path in images:
            anonymize_file(anonymizer, path, out / path.name)
            times.append(time.perf_counter() - start)
    else:
        pool = WorkerPool(options, workers)
        futures = [pool.submit(path, out / path.name) for path in images]
        for future in as_completed(futures):
            outcome = future.result()
            assert outcome.error is None, outcome.error
            times.append(time.perf_counter() - start)
        pool.close()
    return times


def _ray(images: list[Path], out: Path, options: dict[str, Any], workers: int, cpus: int) -> tuple[float, list[float]]:
    """Return the seconds the local cluster took to start, and the seconds at which each image was done."""
    import ray

    from condanon.distributed import RayEngine

    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    started = time.perf_counter() - start
    times = []
    try:
        with RayEngine(workers=workers) as engine:
            start = time.perf_counter()
            for done in engine.images([(path, out / path.name) for path in images], options):
                assert done.outcome.error is None, done.outcome.error
                times.append(time.perf_counter() - start)
    finally:
        ray.shutdown()
    return started, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("CONDANON_SHARED", REPO.parent / "shared")))
    parser.add_argument("--photos", default="all")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--method", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=int, default=cores())
    parser.add_argument("--runs", default="local1,local2,ray1,ray2", help="which runs, in this order")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="smoke run: two photos once")
    args = parser.parse_args()
    if args.quick:
        args.photos, args.repeat = "astronaut.jpg,messi5.jpg", 1
    logging.basicConfig(level=logging.WARNING)
    options = _options(build_parser().parse_args(["anonymize", "x", "-o", "y", "--method", args.method,
                                                  "--seed", str(args.seed)]))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        images = _images(args.shared, args.photos, args.repeat, root / "in")
        machine = f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
        print(f"{len(images)} images ({args.photos} x {args.repeat}), method {options['method'].name}, "
              f"{args.cpus} CPUs, {machine}")  # fmt: skip
        rows = []
        reference: dict[str, str] | None = None
        for run in args.runs.split(","):
            engine, workers = run.rstrip("0123456789"), int(run[len(run.rstrip("0123456789")) :])
            out = root / f"{engine}{workers}"
            out.mkdir()
            started = 0.0
            if engine == "local":
                times = _local(images, out, options, workers)
            else:
                started, times = _ray(images, out, options, workers, args.cpus)
            took = times[-1]
            digest = _digest(out)
            reference = reference or digest
            steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            rows.append({"engine": engine, "workers": workers, "seconds": took, "cluster_start_s": started,
                         "first_image_s": times[0], "images_per_s": len(images) / took,
                         "steady_images_per_s": steady, "s_per_image": took / len(images),
                         "same_bytes_as_local": digest == reference})  # fmt: skip
            print(f"  {engine} x{workers}: {took:.1f} s", flush=True)
    by = {(r["engine"], r["workers"]): r for r in rows}
    if len(by) < 4:
        return
    print()
    print("| run | job s | first image s | images/s (job) | images/s (after the first) | s per image (job) "
          "| Ray cluster start, s | outputs same as local x1 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        start = f"{r['cluster_start_s']:.1f}" if r["engine"] == "ray" else "-"
        print(f"| {r['engine']}, {r['workers']} worker{'s' if r['workers'] > 1 else ''} | {r['seconds']:.1f} | "
              f"{r['first_image_s']:.1f} | {r['images_per_s']:.3f} | {r['steady_images_per_s']:.3f} | "
              f"{r['s_per_image']:.2f} | {start} | {r['same_bytes_as_local']} |")  # fmt: skip
    ratios = {}
    for key in ("images_per_s", "steady_images_per_s"):
        ratios[key] = {
            "ray_2_vs_1": by[("ray", 2)][key] / by[("ray", 1)][key],
            "local_2_vs_1": by[("local", 2)][key] / by[("local", 1)][key],
            "ray_overhead_1": by[("local", 1)][key] / by[("ray", 1)][key] - 1,
            "ray_overhead_2": by[("local", 2)][key] / by[("ray", 2)][key] - 1,
        }
    print()
    for key, label in (("images_per_s", "whole job"), ("steady_images_per_s", "after the first image")):
        r = ratios[key]
        print(f"{label}: Ray 2 workers against 1: {r['ray_2_vs_1']:.2f}x (target >= 1.6x), local pool "
              f"{r['local_2_vs_1']:.2f}x; Ray path per image against local: {r['ray_overhead_1']:+.1%} at 1 worker "
              f"(target <= +10 %), {r['ray_overhead_2']:+.1%} at 2")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()

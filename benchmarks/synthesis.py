"""Speed of the synthetic method per face on this machine, the loop apart from the rest of the pipeline.

    python benchmarks/synthesis.py [--shared PATH] [--limit N] [--candidates 6]

Runs the default `Anonymizer` (method ``synthetic``) on photos from shared/data (identity,
attributes/utkface, attributes/emotion, scenes: a seeded draw of --limit per folder) and prints, per
face-size band: faces, median and 90th-percentile milliseconds of the synthetic loop alone (prototype
mixes composed and checked until one passes: what issue #5's "<= 100 ms per face" measures), median
candidates tried, fallback share, and the whole pipeline per face (detection, landmarks, attributes,
loop, final verification with the held-out attacker, divided by the faces of the image). Single
process; onnxruntime and OpenCV use their default threads.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import cv2
import numpy as np
from shared_data import shared_root

import condanon

FOLDERS = ("identity", "attributes/utkface", "attributes/emotion", "scenes")
BANDS = ((0, 64, "< 64 px"), (64, 160, "64-160 px"), (160, 10_000, ">= 160 px"))


def photos(root: Path, limit: int, seed: int) -> list[Path]:
    """Return a seeded draw of ``limit`` photos from each folder of `FOLDERS`."""
    rng = np.random.default_rng(seed)
    chosen = []
    for folder in FOLDERS:
        with open(root / "data" / folder / "index.csv", newline="") as handle:
            paths = [root / "data" / folder / row["path"] for row in csv.DictReader(handle)]
        picks = rng.choice(len(paths), size=min(limit, len(paths)), replace=False)
        chosen += [paths[i] for i in sorted(picks)]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared")
    parser.add_argument("--limit", type=int, default=40, help="photos per folder")
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = shared_root(args.shared)
    anonymizer = condanon.Anonymizer(method=condanon.SyntheticOptions(candidates=args.candidates), seed=args.seed)
    anonymizer.anonymize(np.full((64, 64, 3), 128, np.uint8))  # load what loads lazily before timing
    warm = cv2.imread(str(root / "data" / "scenes" / "astronaut.jpg"))
    anonymizer.anonymize(warm)
    rows = []
    started = time.perf_counter()
    for path in photos(root, args.limit, args.seed):
        image = cv2.imread(str(path))
        if image is None:
            continue
        if max(image.shape[:2]) <= 480:  # tight crops: the evaluation's padding (see condanon.evaluation)
            pad = max(image.shape[:2]) // 4
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        result = anonymizer.anonymize(image)
        per_face = result.timings_ms["total"] / max(1, len(result.reports))
        for report in result.reports:
            rows.append((report.face.box.height, report.timings_ms["anonymize"], report.attempts, report.verdict, per_face))
    elapsed = time.perf_counter() - started
    print(f"synthetic method, {len(rows)} faces from {', '.join(FOLDERS)} ({args.limit} photos each), "
          f"budget {args.candidates} candidates, {elapsed:.0f} s\n")
    print("| face height | faces | loop median ms | loop p90 ms | candidates (median) | fallback | pipeline ms / face (median) |")
    print("|---|---|---|---|---|---|---|")
    for low, high, label in BANDS + ((0, 10_000, "all"),):
        band = [r for r in rows if low <= r[0] < high]
        if not band:
            continue
        loop = np.array([r[1] for r in band])
        print(
            f"| {label} | {len(band)} | {np.median(loop):.0f} | {np.percentile(loop, 90):.0f} | "
            f"{np.median([r[2] for r in band]):.0f} | {np.mean([r[3] == 'fallback' for r in band]):.1%} | "
            f"{np.median([r[4] for r in band]):.0f} |"
        )


if __name__ == "__main__":
    main()

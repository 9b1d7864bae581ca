"""Detector recall on the shared photos and video: faces found per set, per scene, per crowd frame, and ms per image.

    python benchmarks/detection_recall.py [--shared ../shared] [--detectors yunet,yunet+hog,...] [--every 1]

A detector may be given with options, as a variant: ``yunet+blazeface@uncertain_score=0.4``.

Tables printed:
1. single-face sets (``attributes/emotion``, ``attributes/utkface``, ``identity``): every photo holds one
   labelled face; ``found`` = share of photos with at least one face, ``>1`` = photos with more than one
   (on these tight crops, almost always a false positive), ``unc`` = photos whose only faces are uncertain.
2. scenes (``scenes/*.jpg``): faces found, as ``certain+uncertain``, beside the hand count where known.
3. frames sampled from ``video/crowd.mp4`` (1080p): mean faces per frame, and ms per frame.
4. ms per scene image (median over the scenes, and the largest).

``--scores FILE`` also writes, per detector, every face with its score, detector and whether it is
uncertain (for choosing thresholds); ``--dump-extras DIR`` writes crops of the faces a detector finds
that ``yunet`` does not, for looking at by eye (never commit them: they show real people).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_data import shared_root

from condanon.detection import DETECTORS
from condanon.detection.base import overlap

# Visible faces counted by hand (a face cut by the border counts when an eye or the mouth shows).
SCENE_COUNTS = {
    "astronaut.jpg": 1,
    "two_people.jpg": 2,
    "couple.jpg": 2,
    "t1.jpg": 6,
    "multiface.jpg": 6,
    "multi_face.jpg": 5,
    "bbt1.jpg": 4,
    "selfie-many-people.jpg": 7,
    "bbt2.jpg": 3,
}
SETS = ("attributes/emotion", "attributes/utkface", "identity")


def _rows(folder: Path) -> list[Path]:
    with open(folder / "index.csv", newline="") as handle:
        return [folder / row["path"] for row in csv.DictReader(handle)]


def _frames(path: Path, count: int) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in picks]


def _create(spec: str):  # type: ignore[no-untyped-def]
    """Return the detector for ``name`` or ``name@option=value@...`` (a variant with other options)."""
    name, *pairs = spec.split("@")
    options = {key: float(value) for key, value in (pair.split("=") for pair in pairs)}
    return DETECTORS.create(name, **options)


def _cell(faces: list) -> str:
    sure = sum(not f.uncertain for f in faces)
    unsure = len(faces) - sure
    return f"{sure}+{unsure}" if unsure else str(sure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared")
    parser.add_argument("--detectors", default="yunet,yunet+hog,blazeface,yunet+blazeface,yunet+blazeface+hog")
    parser.add_argument("--every", type=int, default=1, help="take every n-th photo of the single-face sets")
    parser.add_argument("--frames", type=int, default=6, help="frames sampled from crowd.mp4")
    parser.add_argument("--skip", default="", help="comma-separated tables to skip: sets,scenes,video")
    parser.add_argument("--scores", help="write every face's score per detector and image to this JSON file")
    parser.add_argument("--dump-extras", help="write crops of faces found beyond yunet's into this folder")
    args = parser.parse_args()
    data = shared_root(args.shared) / "data"
    names = args.detectors.split(",")
    detectors = {name: _create(name) for name in names}
    reference = DETECTORS.create("yunet")
    skip = set(args.skip.split(","))
    scores: dict[str, list] = {name: [] for name in names}
    dump = Path(args.dump_extras) if args.dump_extras else None
    if dump:
        dump.mkdir(parents=True, exist_ok=True)

    def run(name: str, image: np.ndarray, key: str) -> tuple[list, float]:
        start = time.perf_counter()
        faces = detectors[name].detect(image)
        ms = (time.perf_counter() - start) * 1000
        scores[name].append([key, [[round(f.score, 4), f.detector, f.uncertain, [round(v, 1) for v in f.box.to_list()]] for f in faces]])
        if dump and name != "yunet":
            base = reference.detect(image)
            for i, face in enumerate(faces):
                if all(overlap(face, other) < 0.3 for other in base):
                    x1, y1, x2, y2 = face.box.scaled(1.6).clipped(image.shape[1], image.shape[0]).to_int()
                    tag = "u" if face.uncertain else "c"
                    out = dump / f"{name}__{key.replace('/', '_')}__{i}_{tag}_{face.score:.2f}.jpg"
                    cv2.imwrite(str(out), image[y1:y2, x1:x2])
        return faces, ms

    width = max(len(n) for n in names) + 2
    if "sets" not in skip:
        print("\n1. single-face sets: share of photos with a face found (>1: photos with more than one; unc: only uncertain)")
        paths = {folder: _rows(data / folder)[:: args.every] for folder in SETS}
        print("detector".ljust(width) + "".join(f"{folder.split('/')[-1]:>38}" for folder in SETS))
        for name in names:
            cells = []
            for folder in SETS:
                found = multi = unsure = 0
                for path in paths[folder]:
                    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                    faces, _ = run(name, image, str(path.relative_to(data)))
                    found += bool(faces)
                    multi += len(faces) > 1
                    unsure += bool(faces) and all(f.uncertain for f in faces)
                n = len(paths[folder])
                cells.append(f"{100 * found / n:5.1f}% ({found}/{n}) >1:{multi} unc:{unsure}")
            print(name.ljust(width) + "".join(f"{c:>38}" for c in cells), flush=True)

    timings: dict[str, list[float]] = {name: [] for name in names}
    if "scenes" not in skip:
        print("\n2. scenes: faces found (certain+uncertain); hand count where known")
        scenes = sorted((data / "scenes").glob("*.jpg"))
        print("scene".ljust(24) + "hand".rjust(5) + "".join(f"{n:>{width}}" for n in names))
        for path in scenes:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            cells = []
            for name in names:
                faces, ms = run(name, image, f"scenes/{path.name}")
                timings[name].append(ms)
                cells.append(_cell(faces))
            hand = SCENE_COUNTS.get(path.name, "-")
            print(f"{path.name[:23]:<24}{hand!s:>5}" + "".join(f"{c:>{width}}" for c in cells), flush=True)

    if "video" not in skip:
        print(f"\n3. crowd.mp4: mean faces per frame over {args.frames} frames (certain+uncertain), ms per frame")
        frames = _frames(data / "video/crowd.mp4", args.frames)
        for name in names:
            counts, unsure, ms = [], [], []
            for i, frame in enumerate(frames):
                faces, took = run(name, frame, f"video/crowd.mp4#{i}")
                counts.append(sum(not f.uncertain for f in faces))
                unsure.append(sum(f.uncertain for f in faces))
                ms.append(took)
            print(f"{name:<{width}}{np.mean(counts):6.1f} + {np.mean(unsure):4.1f}   {np.median(ms):7.0f} ms", flush=True)

    if "scenes" not in skip:
        print("\n4. ms per scene image (median / largest scene)")
        for name in names:
            print(f"{name:<{width}}{statistics.median(timings[name]):7.0f} {max(timings[name]):7.0f}")

    if args.scores:
        Path(args.scores).write_text(json.dumps(scores))


if __name__ == "__main__":
    main()

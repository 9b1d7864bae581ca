"""How many detections the faceness check doubts, per kind of photo and clip (issue #13: false faces).

    python benchmarks/faceness.py [--shared ../shared] [--limit N] [--sheet doubtful.png] [--out rows.json]

Runs the product's detector (``condanon.pipeline.DEFAULT_DETECTOR``, upright; no orientation search) on:

- ``scenes``: the 13 shared group photos (their false faces: carved heads and a hand in g7_leaders, a
  glass in t1, clothing, a painted crest);
- ``crowd.mp4``, ``face_noface.mov``, ``single_face.mp4``: every 15th frame (crowd: passers-by walking
  across, many in profile or seen from behind, and a printed lion crest that moves through every frame);
- ``emotion`` (373 photos: film and LFW crops, many in profile), ``utkface`` (every second of 1,199
  aligned faces, all ages) and ``identity/glint`` (286 celebrity photos): every detection there is a
  real face, so every doubt is a false rejection.

For each detection it scores faceness two ways: MediaPipe's own crop (the box's longer side x 1.5,
eyes levelled, black outside the image, no mirror) and condanon's (`condanon.faceness.face_mesh`: border
pixels repeated, mirrored too where the first read is under 0.9). It prints, per set, the detections,
the doubted ones (score < 0.5) under each crop, and the milliseconds per face of condanon's check.
The shared data has no labels for false faces: ``--sheet`` draws every detection doubted (or scored
0.5-0.9) on a contact sheet, each crop with its set, score and size, for a person to label.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared_data import shared_root

from condanon.detection import DETECTORS
from condanon.faceness import FACENESS, FACENESS_THRESHOLD
from condanon.faceness.face_mesh import _presence, crop
from condanon.options import DEFAULT_DETECTOR
from condanon.types import Face

CLIP_STEP = 15


def mediapipe_crop(image: np.ndarray, face: Face) -> np.ndarray:
    """MediaPipe's crop: condanon's geometry, but black outside the image."""
    padded = cv2.copyMakeBorder(image, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    shifted = Face(face.box.shifted(1, 1), face.score, None if face.landmarks5 is None else face.landmarks5 + 1)
    out = crop(padded, shifted)
    return out  # the one-pixel black frame is what BORDER_REPLICATE repeats: black outside the image


def inputs(root: Path, limit: int | None) -> list[tuple[str, str, np.ndarray]]:
    """Return ``(set, name, BGR image)`` for every photo and sampled clip frame."""
    import av

    data = root / "data"
    sets: list[tuple[str, list[Path]]] = [
        ("scenes", sorted((data / "scenes").glob("*.jpg"))),
        ("emotion", sorted((data / "attributes" / "emotion").glob("*.jpg"))),
        ("utkface", sorted((data / "attributes" / "utkface").glob("*.jpg"))[::2]),
        ("identity/glint", sorted((data / "identity" / "glint").glob("*/*.jpg"))),
    ]
    out = []
    for name, paths in sets:
        if limit:
            paths = paths[:limit]
        out += [(name, p.name, cv2.imread(str(p))) for p in paths]
    for clip in ("crowd.mp4", "face_noface.mov", "single_face.mp4"):
        with av.open(str(data / "video" / clip)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index % CLIP_STEP == 0:
                    out.append((clip, f"{clip}#{index}", frame.to_ndarray(format="bgr24")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", help="the shared folder (default ../shared or $CONDANON_SHARED)")
    parser.add_argument("--limit", type=int, help="at most this many photos per photo set")
    parser.add_argument("--sheet", help="write a contact sheet of the doubted and borderline detections here (.png)")
    parser.add_argument("--out", help="write one row per detection as JSON")
    args = parser.parse_args()

    detector = DETECTORS.create(DEFAULT_DETECTOR)
    check = FACENESS.create("face-mesh")
    rows: list[dict[str, Any]] = []
    tiles: list[np.ndarray] = []
    seconds, scored = 0.0, 0
    for kind, name, image in inputs(shared_root(args.shared), args.limit):
        faces = detector.detect(image)
        if not faces:
            continue
        start = time.perf_counter()
        ours = check.scores(image, faces)
        seconds += time.perf_counter() - start
        scored += len(faces)
        theirs = _presence(np.stack([mediapipe_crop(image, f) for f in faces])[..., ::-1].copy())
        for face, score, plain in zip(faces, ours, theirs):
            rows.append({"set": kind, "name": name, "box": face.box.to_list(), "score": round(face.score, 3),
                         "height": round(face.box.height), "uncertain": face.uncertain,
                         "faceness": round(float(score), 4), "mediapipe_crop": round(float(plain), 4)})
            if args.sheet and score < 0.9:
                tile = cv2.resize(crop(image, face), (128, 128))
                cv2.putText(tile, f"{kind[:10]} {score:.2f}", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 255, 255), 1)
                cv2.putText(tile, f"{face.box.height:.0f}px det {face.score:.2f}", (2, 124), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 255, 0), 1)
                tiles.append(tile)

    print(f"detector {DEFAULT_DETECTOR}; doubted = faceness < {FACENESS_THRESHOLD}\n")
    print("| set | detections | doubted, MediaPipe's crop | doubted, condanon's crop |")
    print("|---|---:|---:|---:|")
    for kind in dict.fromkeys(r["set"] for r in rows):
        these = [r for r in rows if r["set"] == kind]
        plain = sum(r["mediapipe_crop"] < FACENESS_THRESHOLD for r in these)
        ours = sum(r["faceness"] < FACENESS_THRESHOLD for r in these)
        print(f"| {kind} | {len(these)} | {plain} ({plain / len(these):.1%}) | {ours} ({ours / len(these):.1%}) |")
    print(f"\ncondanon's check: {1000 * seconds / max(scored, 1):.1f} ms per face ({scored} faces, one thread)")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    if args.sheet and tiles:
        while len(tiles) % 10:
            tiles.append(np.zeros_like(tiles[0]))
        cv2.imwrite(args.sheet, np.vstack([np.hstack(tiles[i:i + 10]) for i in range(0, len(tiles), 10)]))
        print(f"contact sheet of {len(tiles)} doubted or borderline detections: {args.sheet}")


if __name__ == "__main__":
    main()

"""Build the prototype bank of the `synthetic` method from shared/data/train (reproducible, seeded).

    python tools/build_prototype_bank.py --shared ../shared --out models/prototype-bank-v1.npz

1. Every training face (train/utkface: age and sex labels; train/emotion: emotion labels) is found
   with the package's own detector, given 68 landmarks, and read by the package's estimators
   (emotion for all; age and sex for train/emotion, which has no such labels). Cached in --cache.
2. Each face is aligned by a similarity transform onto the canonical frame (the mean utkface shape,
   128 px) and sorted into a bucket: sex and expression (the emotion estimator's reading and whether
   the mouth is open).
3. Inside a bucket faces are sorted by age (seeded jitter) and cut into disjoint runs of k, so each
   group is an age band of its own (k-Same-M: no face is used twice, no prototype shows fewer than
   k people); each member is warped piecewise-affinely onto the group's mean shape and averaged.
4. Each prototype is read by the verification loop's estimators and by SFace, so the synthetic method
   can pick prototypes by how the estimators see them (averages look younger than their members) and
   start from ones far from the original's identity.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

import condanon
from condanon.synthesis.bank import SIZE, expression_key, mouth_open
from condanon.synthesis.geometry import layout, outline
from condanon.synthesis.warp import triangulate, warp
from condanon.transforms import apply_transform, similarity_transform
from condanon.types import EMOTIONS

log = logging.getLogger("build_prototype_bank")
OUTLINE_SHARE = 0.84
"""Height of the face outline (forehead line to chin) in the canonical frame, as a share of its side."""
SOURCES = {"utkface": "train/utkface", "emotion": "train/emotion"}


def _read_rows(shared: Path) -> list[dict]:
    rows = []
    for source, folder in SOURCES.items():
        with open(shared / "data" / folder / "index.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                row["source"] = source
                row["file"] = str(shared / "data" / folder / row["path"])
                rows.append(row)
    return rows


_anonymizer = None


def largest_face(anonymizer, path: str):
    """Return ``(image, face)``: a photo and its largest face as ``anonymizer`` finds it (None: unreadable or no face)."""
    image = cv2.imread(path)
    if image is None:
        return None
    faces = anonymizer.find_faces(image)
    if not faces:
        return None
    return image, max(faces, key=lambda f: f.box.width * f.box.height)


def _analyse(row: dict) -> dict | None:
    """Return landmarks and estimator readings of the main face of one training photo (None: no face)."""
    global _anonymizer
    from condanon import Anonymizer

    if _anonymizer is None:
        _anonymizer = Anonymizer(method="mask", detection=condanon.Detection(detector="yunet"))
    found = largest_face(_anonymizer, row["file"])
    if found is None:
        return None
    face = found[1]
    a = face.attributes
    if face.landmarks68 is None or a is None or a.emotion_probabilities is None:
        return None
    return {
        "landmarks68": face.landmarks68.tolist(),
        "emotion_p": [a.emotion_probabilities[e] for e in EMOTIONS],
        "est_age": a.age,
        "est_male": (a.sex_confidence if a.sex == "male" else 1 - a.sex_confidence) if a.sex else None,
    }


def analyse_all(rows: list[dict], workers: int) -> list[dict]:
    """Return the rows that have a face, with their landmarks and readings added."""
    out = []
    started = time.time()
    with ProcessPoolExecutor(workers) as pool:
        for i, (row, found) in enumerate(zip(rows, pool.map(_analyse, rows, chunksize=32))):
            if found:
                out.append(row | found)
            if i % 1000 == 0:
                log.info("analysed %d/%d (%.0f s)", i, len(rows), time.time() - started)
    return out


def _labels(row: dict) -> tuple[str, float]:
    """Return the (sex, age) a face is bucketed by: labels where the data has them, estimates otherwise."""
    if row["source"] == "utkface":
        return ("male" if row["sex"] == "M" else "female"), float(row["age"])
    return ("male" if row["est_male"] >= 0.5 else "female"), float(row["est_age"])


def canonical_reference(mean_shape: np.ndarray) -> np.ndarray:
    """Return the mean shape scaled and placed so the whole face outline (forehead line to chin) fits the frame.

    The outline spans `OUTLINE_SHARE` of the frame's height, centred, so the prototypes have real
    pixels everywhere the synthetic face takes them from (plus a margin for the feathered edge).
    """
    contour = outline(layout(mean_shape))
    low, high = contour.min(axis=0), contour.max(axis=0)
    scale = OUTLINE_SHARE * SIZE / (high[1] - low[1])
    centre = (low + high) / 2
    return (mean_shape - centre) * scale + SIZE / 2


def canonical(row: dict, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the face aligned onto the canonical frame, its validity mask and its 68 points there."""
    bgr = cv2.imread(row["file"])
    points = np.asarray(row["landmarks68"], dtype=np.float64)
    matrix = similarity_transform(points, reference)
    image = cv2.warpAffine(bgr, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpAffine(np.full(bgr.shape[:2], 255, np.uint8), matrix, (SIZE, SIZE), flags=cv2.INTER_NEAREST)
    return image, valid, apply_transform(matrix, points)


def average(members: list[dict], reference: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the prototype image of a group and its mean 68-point shape (members warped onto it)."""
    aligned = [canonical(m, reference) for m in members]
    mean_shape = np.mean([a[2] for a in aligned], axis=0)
    target = layout(mean_shape)
    total = np.zeros((SIZE, SIZE, 3))
    weight = np.zeros((SIZE, SIZE, 1))
    for image, valid, shape in aligned:
        warped, covered = warp(image, layout(shape), target, triangles, (SIZE, SIZE))
        valid_w, _ = warp(valid, layout(shape), target, triangles, (SIZE, SIZE), border=cv2.BORDER_CONSTANT)
        w = ((valid_w > 127) & covered).astype(np.float64)[:, :, None]
        total += warped * w
        weight += w
    fill = total.sum(axis=(0, 1)) / max(weight.sum(), 1)
    image = np.where(weight > 0, total / np.maximum(weight, 1e-9), fill)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), mean_shape


def age_groups(members: list[dict], k: int, rng: np.random.Generator) -> list[list[dict]]:
    """Return disjoint groups of k faces of similar age (ages jittered by the seed, then cut in runs of k).

    A bucket with fewer than k faces gives no group; the remainder joins the last group, so a group
    never has fewer than k members.
    """
    ages = np.array([_labels(m)[1] for m in members]) + rng.uniform(-2.0, 2.0, len(members))
    order = np.argsort(ages, kind="stable")
    groups = [[members[i] for i in order[j : j + k]] for j in range(0, len(order) - k + 1, k)]
    if groups:
        groups[-1].extend(members[i] for i in order[len(groups) * k :])
    return groups


def build(args: argparse.Namespace) -> None:
    rows = _read_rows(args.shared)
    if args.limit:
        rows = rows[: args.limit // 2] + [r for r in rows if r["source"] == "emotion"][: args.limit // 2]
    cache = Path(args.cache)
    if cache.exists():
        analysed = json.loads(cache.read_text())
        log.info("read %d analysed faces from %s", len(analysed), cache)
    else:
        analysed = analyse_all(rows, args.workers)
        cache.write_text(json.dumps(analysed))
    log.info("%d of %d photos have a face", len(analysed), len(rows))
    utk = np.array([r["landmarks68"] for r in analysed if r["source"] == "utkface"])
    reference = utk.mean(axis=0) if len(utk) else np.array(analysed[0]["landmarks68"])
    reference = canonical_reference(reference)
    triangles = triangulate(layout(reference))

    buckets: dict[tuple, list[dict]] = {}
    for row in analysed:
        sex, _ = _labels(row)
        emotion = EMOTIONS[int(np.argmax(row["emotion_p"]))]
        key = (sex, expression_key(emotion, mouth_open(np.asarray(row["landmarks68"]))))
        buckets.setdefault(key, []).append(row)
    rng = np.random.default_rng(args.seed)
    images, shapes, meta = [], [], []
    for key in sorted(buckets):
        groups = age_groups(buckets[key], args.k, rng)
        if len(groups) > args.max_per_bucket:  # keep groups spread evenly over the ages
            picks = np.unique(np.linspace(0, len(groups) - 1, args.max_per_bucket).round().astype(int))
            groups = [groups[i] for i in picks]
        for group in groups:
            image, shape = average(group, reference, triangles)
            images.append(image)
            shapes.append(shape)
            ages = [_labels(m)[1] for m in group]
            meta.append({"sex": key[0], "expression": key[1], "k": len(group), "age": float(np.mean(ages))})
        log.info("bucket %s: %d faces, %d prototypes", key, len(buckets[key]), len(groups))
    save(args.out, images, shapes, meta, reference, args)


def save(out: Path, images: list, shapes: list, meta: list, reference: np.ndarray, args: argparse.Namespace) -> None:
    """Write the bank: JPEG-coded images, shapes, bucket keys, k, and how the estimators read each prototype."""
    from condanon.synthesis.bank import read_prototypes

    blobs = [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes() for im in images]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    readings = read_prototypes(images, np.array(shapes))
    np.savez_compressed(
        out,
        jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets,
        shapes=np.array(shapes, dtype=np.float32),
        reference=reference.astype(np.float32),
        sex=np.array([m["sex"] for m in meta]),
        expression=np.array([m["expression"] for m in meta]),
        k=np.array([m["k"] for m in meta], dtype=np.int16),
        member_age=np.array([m["age"] for m in meta], dtype=np.float32),
        apparent_age=readings["age"].astype(np.float32),
        apparent_male=readings["male"].astype(np.float32),
        apparent_emotion=readings["emotion"].astype(np.float32),
        sface=readings["sface"].astype(np.float32),
        settings=np.array(json.dumps({"k": args.k, "seed": args.seed, "max_per_bucket": args.max_per_bucket})),
    )
    log.info("wrote %d prototypes (%d KB) to %s", len(images), out.stat().st_size // 1024, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("models/prototype-bank-v1.npz"))
    parser.add_argument("--cache", default="/tmp/prototype-bank-analysis.json", help="landmarks and readings")
    parser.add_argument("--k", type=int, default=8, help="faces per prototype (at least 5)")
    parser.add_argument("--max-per-bucket", type=int, default=32, help="prototypes per (sex, expression)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only this many photos (quick check)")
    args = parser.parse_args()
    if args.k < 5:
        parser.error("k must be at least 5: a prototype must not show any single person")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    build(args)


if __name__ == "__main__":
    main()

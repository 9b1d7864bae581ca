"""Attribute accuracy and speed on the shared labelled sets; prints markdown tables.

    python benchmarks/attributes.py [--limit N] [--shared PATH]

utkface (age, sex): sex accuracy, age MAE, share within 5 / 10 years, detection rate, ms per face,
for the estimator variants below. emotion: top-1 accuracy and per-class hits of the emotion backend.
Faces come from the default detector; an image where it finds none counts as a miss (and is left out
of the accuracy figures, which the table says).
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from condanon.attributes import ATTRIBUTE_ESTIMATORS
from condanon.detection import DETECTORS
from condanon.types import EMOTIONS
from shared_data import shared_root


def largest_face(detector, image):
    faces = detector.detect(image)
    return max(faces, key=lambda f: f.box.area) if faces else None


def utkface(root: Path, limit: int | None) -> None:
    folder = root / "data/attributes/utkface"
    rows = list(csv.DictReader(open(folder / "index.csv")))[:limit]
    detector = DETECTORS.create("yunet")
    images, faces, labels = [], [], []
    start = time.perf_counter()
    for row in rows:
        image = cv2.imread(str(folder / row["path"]))
        face = largest_face(detector, image)
        if face is not None:
            images.append(image)
            faces.append(face)
            labels.append((float(row["age"]), "male" if row["sex"] == "M" else "female"))
    detect_ms = (time.perf_counter() - start) * 1000 / len(rows)
    print(f"\n## utkface: {len(rows)} faces, detected {len(faces)} ({100 * len(faces) / len(rows):.1f} %), "
          f"detection {detect_ms:.1f} ms/image\n")
    print("| variant | sex acc % | age MAE | within 5 y % | within 10 y % | MAE age<18 | MAE 18-60 | MAE >60 | ms/face |")
    print("|---|---|---|---|---|---|---|---|---|")
    variants = {
        "age-sex: age-gender and sface-dlib-probe stacked (default)": ("age-sex", {}),
        "sface-dlib-probe: probes on the SFace + dlib vectors": ("sface-dlib-probe", {}),
        "age-sex-mean: mean of age-gender and sface-probe": ("age-sex-mean", {}),
        "age-gender: 5-landmark alignment, pad 0.2, mirror average": ("age-gender", {}),
        "age-gender without the mirror average": ("age-gender", {"flip": False}),
        "sface-probe: probes on the SFace vector": ("sface-probe", {}),
    }
    for name, (backend, options) in variants.items():
        estimator = ATTRIBUTE_ESTIMATORS.create(backend, **options)
        estimator.estimate(images[0], [faces[0]])  # load the models outside the timing
        start = time.perf_counter()
        # Fresh face copies: no variant may reuse an SFace vector another variant cached.
        predictions = [estimator.estimate(img, [replace(face, embeddings={})])[0] for img, face in zip(images, faces)]
        ms = (time.perf_counter() - start) * 1000 / len(faces)
        ages = np.array([a for a, _ in labels])
        errors = np.abs(np.array([p.age for p in predictions]) - ages)
        sex = np.mean([p.sex == s for p, (_, s) in zip(predictions, labels)])

        def band(lo: float, hi: float) -> str:
            chosen = (ages >= lo) & (ages < hi)
            return f"{errors[chosen].mean():.1f}" if chosen.any() else "-"

        print(f"| {name} | {100 * sex:.1f} | {errors.mean():.2f} | {100 * np.mean(errors <= 5):.1f} | "
              f"{100 * np.mean(errors <= 10):.1f} | {band(0, 18)} | {band(18, 60)} | {band(60, 200)} | {ms:.1f} |")


def emotion(root: Path, limit: int | None) -> None:
    folder = root / "data/attributes/emotion"
    rows = list(csv.DictReader(open(folder / "index.csv")))[:limit]
    detector = DETECTORS.create("yunet")
    found = []
    for row in rows:
        image = cv2.imread(str(folder / row["path"]))
        face = largest_face(detector, image)
        if face is not None:
            found.append((image, face, row["emotion"]))
    backends = {"emotion (ours, default)": "emotion", "fer (teacher)": "fer"}
    results = {}
    for name, backend in backends.items():
        estimator = ATTRIBUTE_ESTIMATORS.create(backend)
        estimator.estimate(found[0][0], [found[0][1]])  # load outside the timing
        start = time.perf_counter()
        predicted = [estimator.estimate(image, [face])[0].emotion for image, face, _ in found]
        results[name] = (predicted, (time.perf_counter() - start) * 1000 / len(found))
    truth = [label for _, _, label in found]
    classes = sorted(set(truth))
    print(f"\n## emotion: {len(rows)} faces, detected {len(found)}; the same faces for both models "
          f"(benchmarks/emotion.py has more)\n")
    print("| model | accuracy % | macro-F1 | " + " | ".join(f"{c} recall" for c in classes) + " | ms/face |")
    print("|---|---|---|" + "---|" * len(classes) + "---|")
    for name, (predicted, ms) in results.items():
        hits = np.array([p == t for p, t in zip(predicted, truth)])
        f1s = []
        for c in EMOTIONS:
            tp = sum(p == c and t == c for p, t in zip(predicted, truth))
            fp = sum(p == c and t != c for p, t in zip(predicted, truth))
            fn = sum(p != c and t == c for p, t in zip(predicted, truth))
            f1s.append(2 * tp / max(1, 2 * tp + fp + fn))
        recalls = [100 * np.mean([p == c for p, t in zip(predicted, truth) if t == c]) for c in classes]
        print(f"| {name} | {100 * hits.mean():.1f} | {np.mean(f1s):.3f} | "
              + " | ".join(f"{r:.0f}" for r in recalls) + f" | {ms:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", help="the shared folder (default ../shared or $CONDANON_SHARED)")
    parser.add_argument("--limit", type=int, help="use only the first N rows of each set")
    args = parser.parse_args()
    root = shared_root(args.shared)
    utkface(root, args.limit)
    emotion(root, args.limit)


if __name__ == "__main__":
    main()

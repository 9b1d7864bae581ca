"""Emotion backends side by side on shared/data/attributes/emotion, on the same YuNet-found faces.

    python benchmarks/emotion.py [--shared PATH] [--limit N] [--confusion]

For each variant: top-1 accuracy, macro-F1 over the 7 classes, recall per class, ms per face (one
``estimate`` call per face, crop included, onnxruntime on one thread). YuNet runs once and every
variant gets the same largest face of each image; an image where YuNet finds none is left out of the
figures (the header says how many). Labels outside the 7 classes (``contempt``, 2 faces) stay in the
accuracy denominator and count as wrong, as they would for any 7-class model.
"""

from __future__ import annotations

import argparse
import csv
import time

import cv2
import numpy as np

from condanon.attributes import ATTRIBUTE_ESTIMATORS
from condanon.detection import DETECTORS
from condanon.types import EMOTIONS
from shared_data import shared_root

VARIANTS = {
    "emotion (ours, emotion-v1, default)": ("emotion", {}),
    "emotion (ours) + mirror average": ("emotion", {"flip": True}),
    "fer (teacher: mini-Xception, box crop)": ("fer", {}),
}
SHORT = {
    "angry": "ang",
    "disgust": "dis",
    "fear": "fea",
    "happy": "hap",
    "sad": "sad",
    "surprise": "sur",
    "neutral": "neu",
}


def scores(predicted: list[str], truth: list[str]) -> tuple[float, float, dict[str, float]]:
    """Return accuracy, macro-F1 over `EMOTIONS` and the recall of each class."""
    p, t = np.array(predicted), np.array(truth)
    f1s, recall = [], {}
    for label in EMOTIONS:
        tp = int(((p == label) & (t == label)).sum())
        fp = int(((p == label) & (t != label)).sum())
        fn = int(((p != label) & (t == label)).sum())
        f1s.append(2 * tp / max(1, 2 * tp + fp + fn))
        recall[label] = tp / max(1, tp + fn)
    return float((p == t).mean()), float(np.mean(f1s)), recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", help="the shared folder (default ../shared or $CONDANON_SHARED)")
    parser.add_argument("--limit", type=int, help="use only the first N images")
    parser.add_argument("--confusion", action="store_true", help="also print each variant's confusion matrix")
    args = parser.parse_args()
    folder = shared_root(args.shared) / "data/attributes/emotion"
    rows = list(csv.DictReader(open(folder / "index.csv")))[: args.limit]
    detector = DETECTORS.create("yunet")
    images, faces, truth = [], [], []
    for row in rows:
        image = cv2.imread(str(folder / row["path"]))
        found = detector.detect(image)
        if found:
            images.append(image)
            faces.append(max(found, key=lambda f: f.box.area))
            truth.append(row["emotion"])
    counts = {label: truth.count(label) for label in sorted(set(truth))}
    print(f"\n## emotion: {len(rows)} images, YuNet found a face in {len(faces)}; labels {counts}\n")
    print("| variant | accuracy % | macro-F1 | " + " | ".join(f"{SHORT[e]} recall" for e in EMOTIONS) + " | ms/face |")
    print("|---|---|---|" + "---|" * len(EMOTIONS) + "---|")
    confusions = {}
    for name, (backend, options) in VARIANTS.items():
        estimator = ATTRIBUTE_ESTIMATORS.create(backend, **options)
        estimator.estimate(images[0], [faces[0]])  # load the model outside the timing
        start = time.perf_counter()
        predicted = [str(estimator.estimate(image, [face])[0].emotion) for image, face in zip(images, faces)]
        ms = (time.perf_counter() - start) * 1000 / len(faces)
        accuracy, macro_f1, recall = scores(predicted, truth)
        print(
            f"| {name} | {100 * accuracy:.1f} | {macro_f1:.3f} | "
            + " | ".join(f"{100 * recall[e]:.0f}" for e in EMOTIONS)
            + f" | {ms:.2f} |"
        )
        confusions[name] = predicted
    if args.confusion:
        labels = sorted(set(truth))
        for name, predicted in confusions.items():
            print(f"\n### {name}: rows true, columns predicted\n")
            print("| true \\ predicted | " + " | ".join(SHORT[e] for e in EMOTIONS) + " |")
            print("|---|" + "---|" * len(EMOTIONS))
            for label in labels:
                cells = [sum(1 for t, p in zip(truth, predicted) if t == label and p == e) for e in EMOTIONS]
                print(f"| {label} | " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()

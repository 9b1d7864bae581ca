"""Landmarks, seams and colour of synthetic faces at sizes from 24 px to 400 px.

    python benchmarks/blend.py [--shared PATH]

Scales shared/data/scenes photos (astronaut: one face; couple: two large faces; t1: six faces) so
each face is a given height, runs the default synthetic `Anonymizer`, and prints per face height:
faces found, landmark error (largest distance between the refined 68-point model's 5 points and
YuNet's, in eye distances), seam ratio (edge strength along the jaw line after / before: ~1 means no
seam or halo), colour shift (Delta E of the mean skin colour), verdicts.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from shared_data import shared_root

import condanon
from condanon.synthesis.quality import colour_shift, landmark_error, seam_ratio

PHOTOS = ("astronaut.jpg", "couple.jpg", "t1.jpg")
HEIGHTS = (24, 30, 48, 80, 140, 240, 400)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared")
    args = parser.parse_args()
    root = shared_root(args.shared)
    anonymizer = condanon.Anonymizer(seed=0, checks=condanon.Checks(attacker=None))
    print("| face height | faces | landmark error (eye distances, median / max) | seam ratio (median / max) | colour shift (median / max) | synthetic |")
    print("|---|---|---|---|---|---|")
    for height in HEIGHTS:
        errors, seams, shifts, verdicts = [], [], [], []
        for name in PHOTOS:
            image = cv2.imread(str(root / "data" / "scenes" / name))
            faces = anonymizer.find_faces(image)
            if not faces:
                continue
            scale = height / float(np.median([f.box.height for f in faces]))
            scaled = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            result = anonymizer.anonymize(scaled)
            for report in result.reports:
                if report.face.landmarks68 is None:
                    continue
                errors.append(landmark_error(report.face))
                verdicts.append(report.verdict == "anonymized")
                if report.verdict == "anonymized":
                    seams.append(seam_ratio(scaled, result.image, report.face))
                    shifts.append(colour_shift(scaled, result.image, report.face))

        def cell(values: list[float], digits: int) -> str:
            return f"{np.median(values):.{digits}f} / {np.max(values):.{digits}f}" if values else "-"

        print(
            f"| {height} px | {len(errors)} | {cell(errors, 2)} | {cell(seams, 2)} | {cell(shifts, 1)} | "
            f"{np.mean(verdicts):.0%} |" if verdicts else f"| {height} px | 0 | - | - | - | - |"
        )


if __name__ == "__main__":
    main()

"""Anonymise scikit-image's astronaut photo (public domain, NASA) and print one report per face.

    python examples/quickstart.py [OUTPUT_FOLDER]

Writes OUTPUT_FOLDER/astronaut_anonymized.png (default: out/) and OUTPUT_FOLDER/astronaut_report.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

from skimage import data

import condanon
from condanon.imageio import write_atomic, write_image


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
    photo = data.astronaut()  # RGB numpy array, shipped inside scikit-image
    result = condanon.Anonymizer(seed=0).anonymize(photo, channels="rgb")  # method "synthetic": a new face
    write_image(out / "astronaut_anonymized.png", result.bgr)
    write_atomic(out / "astronaut_report.json", result.to_json(indent=2).encode())
    for report in result.reports:
        before, after = report.attributes_before, report.attributes_after
        sface = report.identity[0] if report.identity else None
        print(
            f"face {report.index}: box {report.face.box.to_list()}, {report.verdict} by {report.method}; "
            f"age {before.age:.0f} -> {after.age:.0f}, {before.sex} -> {after.sex}, {before.emotion} -> {after.emotion}; "
            f"sface similarity to the original {sface.value:.3f} (still the person at >= {sface.threshold:.3f})"
        )
    print(f"wrote {out / 'astronaut_anonymized.png'} and {out / 'astronaut_report.json'}")


if __name__ == "__main__":
    main()

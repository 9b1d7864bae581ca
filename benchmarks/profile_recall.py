"""Share of the one-face photos in which a face is found (issue #13): profile and three-quarter faces.

    python benchmarks/profile_recall.py [--detector yunet+hog --detector yunet ...] [--no-product]
        [--product-attributes] [--method mask] [--limit N] [--sets emotion,utkface] [--out rows.json]

Every photo of ``data/attributes/emotion`` (373: film and LFW crops with crowd labels, many in profile or
three-quarter view, plus 14 posed photos) and ``data/attributes/utkface`` (1,199 aligned 200 px faces)
holds exactly one labelled face. For each detector named (``condanon.detection.DETECTORS.create(name)``,
default ``yunet+hog``) and for the product (``condanon.Anonymizer(method="mask").analyze``: its default
detector and whatever orientation search or second detector main holds when this runs; ``--orientation``
is a synonym of the default), a photo counts as:

- **found**: at least one face returned;
- **at centre**: a returned box contains the image centre (every labelled face is about centred in the
  crops; a box elsewhere is likely a false hit, so this is the stricter figure).

The product row is run with ``attributes=()`` (detection, orientation search and landmarks as in the
product; no age, sex or emotion estimate, which does not change what is found and would make the run
five times longer); ``--product-attributes`` keeps the product's attribute estimators.
Prints a Markdown table of the shares per set and row, with the seconds per photo, and the number
of misses; ``--out`` writes the missed file names too.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared_data import shared_root

import condanon
from condanon.detection import DETECTORS
from condanon.errors import ConfigError

SETS = ("emotion", "utkface")
PRODUCT = "product (Anonymizer.analyze)"


def subsets(name: str, path: str) -> list[str]:
    """Return the table rows a photo counts in: its set, and for emotion its kind (crowd-labelled crops or posed photos)."""
    if name != "emotion":
        return [name]
    return [name, "emotion: film/LFW crops" if path.startswith("mux") else "emotion: posed photos"]


def photos(root: Path, sets: list[str], limit: int | None) -> list[tuple[str, str, Path]]:
    """Return ``(set, relative path, path)`` of the photos, at most ``limit`` per set (evenly spread)."""
    out = []
    for name in sets:
        folder = root / "data" / "attributes" / name
        with open(folder / "index.csv", newline="") as handle:
            rows = [row["path"] for row in csv.DictReader(handle)]
        if limit and limit < len(rows):
            rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(int)]
        out += [(name, row, folder / row) for row in rows]
    return out


def at_centre(faces: list[Any], image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    cx, cy = width / 2, height / 2
    return any(f.box.x1 <= cx <= f.box.x2 and f.box.y1 <= cy <= f.box.y2 for f in faces)


def product(method: str, with_attributes: bool) -> Callable[[np.ndarray], list[Any]]:
    if with_attributes:
        return condanon.Anonymizer(method=method).analyze
    try:
        return condanon.Anonymizer(method=method, checks=condanon.Checks(attributes=())).analyze
    except (ConfigError, ValueError, TypeError):  # a product that needs an estimator: keep its defaults
        return condanon.Anonymizer(method=method).analyze


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", help="the shared folder holding data/ (default: $CONDANON_SHARED or ../shared)")
    parser.add_argument("--detector", action="append", help="a DETECTORS name (repeatable; default yunet+hog)")
    parser.add_argument("--no-product", action="store_true", help="leave out the product row")
    parser.add_argument("--orientation", action="store_true", help="the product row (on by default; kept for clarity)")
    parser.add_argument("--product-attributes", action="store_true", help="run the product row with its attribute estimators")
    parser.add_argument("--method", default="mask", help="the product row's Anonymizer method (analyze does not depend on it)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated sets (emotion, utkface)")
    parser.add_argument("--limit", type=int, help="at most N photos per set, spread evenly over its index")
    parser.add_argument("--out", type=Path, help="write the shares and the missed photos to this JSON file")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    root = shared_root(opts.shared)
    items = photos(root, [s.strip() for s in opts.sets.split(",") if s.strip()], opts.limit)
    runs: dict[str, Callable[[np.ndarray], list[Any]]] = {n: DETECTORS.create(n).detect for n in (opts.detector or ["yunet+hog"])}
    if not opts.no_product or opts.orientation:
        runs[PRODUCT] = product(opts.method, opts.product_attributes)
    images = {rel: cv2.imread(str(path)) for _, rel, path in items}

    groups = list(dict.fromkeys(g for name, rel, _ in items for g in subsets(name, rel)))
    table: dict[str, dict[str, Any]] = {}
    print(f"condanon {Path(condanon.__file__).parent}; photos: {len(items)}\n")
    for label, detect in runs.items():
        detect(images[items[0][1]])  # load the models before the clock starts
        found: dict[str, list[int]] = {g: [0, 0, 0] for g in groups}  # photos, found, at centre
        missed: list[str] = []
        errors = 0
        start = time.perf_counter()
        for name, rel, _ in items:
            image = images[rel]
            try:
                faces = detect(image)
            except Exception:  # noqa: BLE001  (a crash is counted as a miss and an error)
                faces, errors = [], errors + 1
            hit, centre = bool(faces), at_centre(faces, image)
            for group in subsets(name, rel):
                found[group][0] += 1
                found[group][1] += hit
                found[group][2] += centre
            if not hit:
                missed.append(f"{name}/{rel}")
        seconds = time.perf_counter() - start
        table[label] = {"found": found, "missed": missed, "errors": errors, "seconds_per_photo": seconds / max(len(items), 1)}
        print(f"  {label}: {len(missed)} missed, {seconds:.0f} s", file=sys.stderr, flush=True)

    head = "| detector | " + " | ".join(f"{g}: found | at centre" for g in groups) + " | missed | errors | s / photo |"
    print(head)
    print("|---|" + "---:|---:|" * len(groups) + "---:|---:|---:|")
    for label, row in table.items():
        cells = []
        for group in groups:
            n, hit, centre = row["found"][group]
            cells.append(f"{100 * hit / max(n, 1):.1f} % ({hit}/{n}) | {100 * centre / max(n, 1):.1f} %")
        print(f"| {label} | " + " | ".join(cells) + f" | {len(row['missed'])} | {row['errors']} | {row['seconds_per_photo']:.2f} |")
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()

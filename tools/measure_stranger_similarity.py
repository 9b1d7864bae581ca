"""Measure how alike SFace finds strangers of each age band, for the synthetic method's identity bar.

    python tools/measure_stranger_similarity.py --shared ../shared --out models/stranger-similarity-v1.json

Every face of shared/data/train/utkface (one photo per person, age labels) is found with the package's
own detector and embedded with SFace. For each age band, the cosine similarities between all pairs of
different faces in the band are the strangers' distribution; the file keeps its quantiles. A synthetic
face must be no more like the original than most strangers of the original's age are: SFace reads any
two infants as alike (their median stranger similarity is above SFace's own match threshold), so a fixed
bar pushes children to adult faces, while for adults a fixed bar at the match threshold lets through
candidates a different recogniser still matches.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from build_prototype_bank import (
    largest_face,  # tools/ is on the path when a tool runs as a script
)

import condanon

log = logging.getLogger("measure_stranger_similarity")

BANDS = (0, 4, 9, 14, 20, 30, 45, 60, 120)
"""Age band edges (years): infants, small children, children, teenagers, then adults by decades."""
QUANTILES = (0.5, 0.8, 0.9, 0.95, 0.99)

_anonymizer = None


def _embed(path: str) -> list[float] | None:
    """Return the SFace vector of the main face of one photo (None: no face found)."""
    global _anonymizer
    from condanon import Anonymizer
    from condanon.identity import embed_original

    if _anonymizer is None:
        _anonymizer = Anonymizer(method="mask", detection=condanon.Detection(detector="yunet", faceness=None))
    found = largest_face(_anonymizer, path)
    if found is None:
        return None
    image, face = found
    return [float(v) for v in embed_original(_anonymizer.embedder, image, [face])[0]]


def measure(ages: np.ndarray, vectors: np.ndarray) -> list[dict]:
    """Return, per age band, the quantiles of cosine similarity between different faces of that band."""
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out = []
    for i in range(len(BANDS) - 1):
        members = vectors[(ages >= BANDS[i]) & (ages < BANDS[i + 1])]
        sims = members @ members.T
        pairs = sims[np.triu_indices(len(members), k=1)]
        out.append({
            "ages": [BANDS[i], BANDS[i + 1]],
            "faces": len(members),
            "quantiles": {str(q): round(float(np.quantile(pairs, q)), 4) for q in QUANTILES},
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("models/stranger-similarity-v1.json"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (0: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = args.shared / "data" / "train" / "utkface"
    with open(folder / "index.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if args.limit:
        rows = rows[: args.limit]
    started = time.time()
    ages, vectors = [], []
    with ProcessPoolExecutor(args.workers) as pool:
        for i, (row, vector) in enumerate(zip(rows, pool.map(_embed, [str(folder / r["path"]) for r in rows], chunksize=32))):
            if vector is not None:
                ages.append(float(row["age"]))
                vectors.append(vector)
            if i % 1000 == 0:
                log.info("embedded %d/%d (%.0f s)", i, len(rows), time.time() - started)
    bands = measure(np.array(ages), np.array(vectors, dtype=np.float64))
    payload = {
        "embedder": "sface",
        "data": "shared/data/train/utkface (one photo per person, labelled age), all pairs within a band",
        "faces": len(ages),
        "bands": bands,
    }
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    for band in bands:
        log.info("%s: %d faces, %s", band["ages"], band["faces"], band["quantiles"])


if __name__ == "__main__":
    main()

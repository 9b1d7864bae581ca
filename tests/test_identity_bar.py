"""The identity bar of the synthetic methods: how alike SFace finds strangers of the original's age."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from condanon.errors import ModelError
from condanon.identity import EMBEDDERS, similarity
from condanon.identity.strangers import (
    STRANGER_QUANTILE,
    StrangerTable,
    identity_bar,
    identity_limit,
    stranger_table,
)


def test_the_bar_is_looser_than_sface_threshold_for_infants_and_stricter_for_adults():
    sface, dlib = EMBEDDERS.create("sface"), EMBEDDERS.create("dlib")
    infant, child, adult, old = (identity_bar(sface, age) for age in (1.0, 12.0, 30.0, 70.0))
    assert infant > sface.threshold > child > adult
    assert 0.15 < adult < 0.3 and 0.15 < old < 0.3
    assert identity_bar(sface, None) == pytest.approx(min(stranger_table("sface").quantiles[STRANGER_QUANTILE]))
    assert identity_limit(sface, 30.0, 0.05) == pytest.approx(adult - 0.05)
    assert identity_bar(dlib, 1.0) == dlib.threshold  # no table: the recogniser's own threshold
    assert identity_limit(dlib, 1.0, 0.05) == pytest.approx(dlib.threshold + 0.05)  # L2: the safe side is farther


def test_a_broken_table_is_a_one_line_model_error(tmp_path):
    path = tmp_path / "table.json"
    path.write_text('{"embedder": "sface", "bands": [{"ages": [0, 4]}]}')
    with pytest.raises(ModelError, match="stranger table .* cannot be read") as error:
        StrangerTable.load(path)
    assert "\n" not in str(error.value)


def _vectors(data, load, lo: float, hi: float, count: int) -> list[np.ndarray]:
    from condanon.detection import DETECTORS

    detector, sface = DETECTORS.create("yunet"), EMBEDDERS.create("sface")
    folder = data / "attributes" / "utkface"
    with open(folder / "index.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if lo <= float(r["age"]) < hi]
    out = []
    for row in rows:
        image = load(folder / row["path"])
        faces = detector.detect(image)
        if faces:
            out.append(sface.embed(image, [max(faces, key=lambda f: f.box.area)])[0])
        if len(out) == count:
            break
    assert len(out) == count, f"too few faces aged {lo}-{hi}"
    return out


@pytest.mark.slow  # ~3 s
def test_the_bar_holds_on_strangers_it_was_not_measured_on(data, load):
    """On held-out photos (attributes/utkface, not the train set the table comes from), strangers of the same
    age cross the bar about as often at every age, while SFace's fixed threshold is crossed by a large share
    of infant pairs and almost no adult pairs."""
    sface = EMBEDDERS.create("sface")
    crossed = {}
    for name, (lo, hi, age) in {"infants": (0, 3, 1.5), "adults": (25, 45, 35.0)}.items():
        vectors = _vectors(data, load, lo, hi, 30)
        values = np.array([similarity("cosine", a, b) for a, b in itertools.combinations(vectors, 2)])
        crossed[name] = (float(np.mean(values >= identity_bar(sface, age))), float(np.mean(values >= sface.threshold)))
    for name, (bar, fixed) in crossed.items():
        assert 0.005 <= bar <= 0.15, (name, crossed)
    assert crossed["infants"][1] > 0.25 and crossed["adults"][1] < 0.03, crossed

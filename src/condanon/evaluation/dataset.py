"""Labelled face datasets in the shared format: a folder with ``index.csv`` whose ``path`` is relative to it.

Optional columns: ``identity``, ``age``, ``sex`` (M/F or male/female), ``emotion``. Empty cells are
missing labels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError

LABEL_COLUMNS = ("identity", "age", "sex", "emotion")
_SEX = {"m": "male", "male": "male", "f": "female", "female": "female"}


@dataclass(frozen=True)
class Sample:
    """One labelled photo."""

    dataset: str
    index: int
    path: Path
    identity: str | None = None
    age: float | None = None
    sex: str | None = None
    emotion: str | None = None


@dataclass
class Dataset:
    """A named list of samples and the label columns it has."""

    name: str
    root: Path
    samples: list[Sample]
    columns: tuple[str, ...] = field(default_factory=tuple)


def load_dataset(folder: str | Path, name: str | None = None) -> Dataset:
    """Return the dataset in ``folder`` (its ``index.csv``); raise `ConfigError` if it is not one."""
    root = Path(folder)
    index = root / "index.csv"
    if not index.is_file():
        raise ConfigError(f"{root}: not a dataset folder (no index.csv)")
    with open(index, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ConfigError(f"{index}: no 'path' column")
        columns = tuple(c for c in LABEL_COLUMNS if c in reader.fieldnames)
        rows = list(reader)
    label = name or _name_of(root)
    samples = []
    for i, row in enumerate(rows):
        age = (row.get("age") or "").strip()
        sex = (row.get("sex") or "").strip().lower()
        samples.append(
            Sample(
                dataset=label,
                index=i,
                path=root / row["path"],
                identity=(row.get("identity") or "").strip() or None,
                age=float(age) if age else None,
                sex=_SEX.get(sex),
                emotion=(row.get("emotion") or "").strip().lower() or None,
            )
        )
    return Dataset(label, root, samples, columns)


def _name_of(root: Path) -> str:
    parts = root.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 and parts[-2] not in ("data", "") else parts[-1]


def subset(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    """Return ``dataset`` cut to ``limit`` samples, drawn with ``seed`` (whole dataset when ``limit`` is None)."""
    if limit is None or limit >= len(dataset.samples):
        return dataset
    order = np.random.default_rng(seed).permutation(len(dataset.samples))[:limit]
    chosen = [dataset.samples[i] for i in sorted(order)]
    return Dataset(dataset.name, dataset.root, chosen, dataset.columns)

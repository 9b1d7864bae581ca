"""Second-opinion age and sex: linear probes on the SFace identity vector (models/sface-probe-v1.md).

Sex is a logistic regression and age a ridge regression on ``log(1 + age)``, both over the
standardised 128-D SFace vector; trained by ``tools/train_attribute_probe.py`` on
shared/data/train/utkface. Cheap when the vector is already there (``face.embedding``): two dot
products. The weights are plain numpy arrays (no pickle) and derive from UTKFace, so they are for
non-commercial research use only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..types import Attributes, Face
from ..weights import load_once, model_path
from .base import ATTRIBUTE_ESTIMATORS

MAX_AGE = 116.0
_KEYS = ("mean", "scale", "sex_coef", "sex_intercept", "age_coef", "age_intercept", "metadata")


def _load() -> dict[str, Any]:
    with np.load(model_path("sface-probe-v1"), allow_pickle=False) as data:
        arrays = {key: np.asarray(data[key]) for key in _KEYS}
    probe = {key: arrays[key].astype(np.float64) for key in _KEYS if key != "metadata"}
    probe["metadata"] = json.loads(str(arrays["metadata"]))
    return probe


class SFaceProbe:
    """Age (with a spread) and sex (with its probability) read off each face's SFace vector."""

    name = "sface-probe"
    provides = ("age", "sex")

    def __init__(self) -> None:
        self._embedder: Any = None

    def vectors(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return ``(N, 128)`` SFace vectors: ``face.embedding`` where set (it must be SFace's), else computed."""
        missing = [i for i, face in enumerate(faces) if face.embedding is None]
        rows: list[np.ndarray | None] = [
            None if face.embedding is None else np.asarray(face.embedding, np.float64).reshape(-1) for face in faces
        ]
        if missing:
            if self._embedder is None:
                from ..identity import EMBEDDERS

                self._embedder = EMBEDDERS.create("sface")
            for i, vector in zip(missing, self._embedder.embed(image, [faces[i] for i in missing])):
                rows[i] = np.asarray(vector, np.float64)
        for row in rows:
            if row is None or row.shape != (128,):
                raise ValueError("sface-probe needs 128-D SFace vectors (face.embedding is something else)")
        return np.stack(rows)  # type: ignore[arg-type]

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return age and sex attributes for each face."""
        if not faces:
            return []
        probe = load_once("sface-probe-v1", _load)
        z = (self.vectors(image, faces) - probe["mean"]) / probe["scale"]
        male = 1.0 / (1.0 + np.exp(-(z @ probe["sex_coef"] + probe["sex_intercept"])))
        log_age = z @ probe["age_coef"] + probe["age_intercept"]
        ages = np.clip(np.expm1(log_age), 0.0, MAX_AGE)
        log_std = float(probe["metadata"]["age_log_std"])
        out = []
        for p, age in zip(male, ages):
            p = float(p)
            out.append(
                Attributes(
                    age=float(age),
                    age_std=float(age + 1.0) * log_std,  # the log-space residual spread, in years
                    sex="male" if p >= 0.5 else "female",
                    sex_confidence=max(p, 1.0 - p),
                )
            )
        return out


@ATTRIBUTE_ESTIMATORS.register("sface-probe")
def _sface_probe() -> SFaceProbe:
    """Age and sex from linear probes on the SFace vector (UTKFace-derived: non-commercial research only)."""
    return SFaceProbe()

"""Age and sex from probes on the SFace + dlib identity vectors, and their stack with age-gender.

``sface-dlib-probe``: the same kinds of heads as ``sface-probe`` (sex: one hidden layer of 128 ReLU
units; age: multinomial logistic regression over 11 age bands, its expectation and spread), on the
standardised concatenation of the 128-D SFace and 128-D dlib ResNet unit vectors.
``age-sex-stacked``: P(male) = sigmoid(a * logit(P_age-gender) + b * logit(P_probe) + c) and
age = d * age_age-gender + e * age_probe + f, fitted on the probe's out-of-fold predictions of the
train set (logistic regression; least-absolute-deviation regression). Trained by
``tools/train_attribute_probe_v2.py`` on UTKFace training photos (models/sface-dlib-probe-v1.md).

Both vectors go through `condanon.identity.embed_original`, so they are cached on the face and shared
with the identity checks (SFace: in-loop embedder; dlib: held-out attacker). On an anonymised image the
pipeline passes face copies whose ``embeddings`` hold only the output's in-loop vector: the dlib vector
is then missing and is computed afresh on the image given. The weights are plain numpy arrays (no
pickle) and derive from UTKFace, so they are for non-commercial research use only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..types import Attributes, Face
from ..weights import load_once, model_path
from .base import ATTRIBUTE_ESTIMATORS
from .sface_probe import probe_heads

MODEL = "sface-dlib-probe-v1"
_KEYS = (
    "mean", "scale", "sex_w1", "sex_b1", "sex_w2", "sex_b2", "age_coef", "age_intercept", "band_ages",
    "stack_sex_coef", "stack_sex_intercept", "stack_age_coef", "stack_age_intercept",
)  # fmt: skip
EMBEDDINGS = ("sface", "dlib")
"""Which embedders' vectors are concatenated, in order."""


def load_probe_model() -> dict[str, Any]:
    with np.load(model_path(MODEL), allow_pickle=False) as data:
        probe: dict[str, Any] = {key: np.asarray(data[key]).astype(np.float64) for key in _KEYS}
        probe["metadata"] = json.loads(str(data["metadata"]))
    return probe


def sex_fields(p: float) -> dict[str, Any]:
    return {"sex": "male" if p >= 0.5 else "female", "sex_confidence": max(p, 1.0 - p)}


class SFaceDlibProbe:
    """Age (band expectation, with its spread) and sex (with its probability) read off the SFace + dlib vectors."""

    name = "sface-dlib-probe"
    provides: tuple[str, ...] = ("age", "sex")

    def __init__(self) -> None:
        self._embedders: list[Any] = []

    def vectors(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return ``(N, 256)``: each face's SFace then dlib vector (both cached in ``face.embeddings``)."""
        from ..identity import EMBEDDERS, embed_original

        if not self._embedders:
            self._embedders = [EMBEDDERS.create(name) for name in EMBEDDINGS]
        return np.hstack([embed_original(e, image, faces).astype(np.float64) for e in self._embedders])

    def predict(self, image: np.ndarray, faces: list[Face]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return per face P(male), the expected age and its spread, as arrays."""
        male, ages, spreads = probe_heads(load_once(MODEL, load_probe_model), self.vectors(image, faces))
        return male, ages, spreads

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return age and sex attributes for each face."""
        if not faces:
            return []
        male, ages, spreads = self.predict(image, faces)
        return [
            Attributes(age=float(a), age_std=float(s), **sex_fields(float(p))) for p, a, s in zip(male, ages, spreads)
        ]


@ATTRIBUTE_ESTIMATORS.register("sface-dlib-probe")
def _sface_dlib_probe() -> SFaceDlibProbe:
    """Age and sex from small probes on the SFace + dlib vectors (UTKFace-derived: non-commercial research only)."""
    return SFaceDlibProbe()

"""Second-opinion age and sex: linear probes on the SFace identity vector (models/sface-probe-v1.md).

Sex comes from a one-hidden-layer network (128 ReLU units) and age from a multinomial logistic
regression over 11 age bands (its expectation and spread), both on the standardised 128-D SFace
vector; trained by ``tools/train_attribute_probe.py`` on
UTKFace training photos. The SFace vector is cached on the face, so the in-loop identity check reuses it. The weights
are plain numpy arrays (no pickle) and derive from UTKFace, so they are for
non-commercial research use only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..types import Attributes, Face
from ..weights import load_once, model_path
from .base import ATTRIBUTE_ESTIMATORS

_KEYS = ("mean", "scale", "sex_w1", "sex_b1", "sex_w2", "sex_b2", "age_coef", "age_intercept", "band_ages", "metadata")


def _load() -> dict[str, Any]:
    with np.load(model_path("sface-probe-v1"), allow_pickle=False) as data:
        arrays = {key: np.asarray(data[key]) for key in _KEYS}
    probe = {key: arrays[key].astype(np.float64) for key in _KEYS if key != "metadata"}
    probe["metadata"] = json.loads(str(arrays["metadata"]))
    return probe


def load_probe() -> dict[str, Any]:
    """Return the probe's arrays (float64) and metadata, loaded once per process."""
    return load_once("sface-probe-v1", _load)


def probe_heads(probe: dict[str, Any], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per row of ``vectors``: P(male) from the MLP head, and the expected age and its spread
    from the band head.
    """
    z = (vectors - probe["mean"]) / probe["scale"]
    hidden = np.maximum(z @ probe["sex_w1"] + probe["sex_b1"], 0.0)
    male = 1.0 / (1.0 + np.exp(-(hidden @ probe["sex_w2"] + probe["sex_b2"])))
    logits = z @ probe["age_coef"].T + probe["age_intercept"]
    bands = np.exp(logits - logits.max(axis=1, keepdims=True))
    bands /= bands.sum(axis=1, keepdims=True)
    centres = probe["band_ages"]
    ages = bands @ centres
    spreads = np.sqrt(np.maximum(0.0, np.einsum("ij,ij->i", bands, (centres[None, :] - ages[:, None]) ** 2)))
    return male, ages, spreads


class SFaceProbe:
    """Age (band expectation, with its spread) and sex (with its probability) read off each face's SFace vector."""

    name = "sface-probe"
    provides: tuple[str, ...] = ("age", "sex")

    def __init__(self) -> None:
        self._embedder: Any = None

    def vectors(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return ``(N, 128)`` SFace vectors of the faces (cached in ``face.embeddings`` for the identity check)."""
        from ..identity import EMBEDDERS, embed_original

        if self._embedder is None:
            self._embedder = EMBEDDERS.create("sface")
        return embed_original(self._embedder, image, faces).astype(np.float64)

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return age and sex attributes for each face."""
        if not faces:
            return []
        male, ages, spreads = probe_heads(load_probe(), self.vectors(image, faces))
        return [
            Attributes(
                age=float(a),
                age_std=float(d),
                sex="male" if p >= 0.5 else "female",
                sex_confidence=max(float(p), 1.0 - float(p)),
            )
            for p, a, d in zip(male, ages, spreads)
        ]


@ATTRIBUTE_ESTIMATORS.register("sface-probe")
def _sface_probe() -> SFaceProbe:
    """Age and sex from small probes on the SFace vector (UTKFace-derived: non-commercial research only)."""
    return SFaceProbe()

"""The identity stage: `Embedder` protocol, its registry, and how a similarity is judged."""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from ..registry import Registry
from ..types import Face

Metric = Literal["cosine", "l2"]


class Embedder(Protocol):
    """Turns faces into L2-normalised identity vectors."""

    name: str
    metric: Metric
    threshold: float
    """The model's published verification threshold (on `similarity`'s value)."""

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return an ``(N, D)`` float32 array of L2-normalised embeddings, one row per face."""
        ...


EMBEDDERS: Registry[Embedder] = Registry("embedder")


def similarity(metric: Metric, a: np.ndarray, b: np.ndarray) -> float:
    """Return cosine similarity (higher = same person) or L2 distance (lower = same person) of two vectors."""
    if metric == "cosine":
        return float(np.dot(a, b))
    return float(np.linalg.norm(a - b))


def is_match(metric: Metric, value: float, threshold: float) -> bool:
    """Return whether ``value`` means "same person" at ``threshold`` under ``metric``."""
    return value >= threshold if metric == "cosine" else value < threshold


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Return the rows of ``vectors`` scaled to unit L2 norm (as float32)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit


def embed_original(embedder: Embedder, image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Return ``embedder``'s vectors of ``faces`` in their ORIGINAL ``image``, cached in ``face.embeddings``.

    Only for the image the faces were found in: to read an anonymised image, pass copies of the faces
    with empty ``embeddings`` (``dataclasses.replace(face, embeddings={})``) or call ``embed`` directly.
    """
    missing = [face for face in faces if embedder.name not in face.embeddings]
    if missing:
        for face, vector in zip(missing, embedder.embed(image, missing)):
            face.embeddings[embedder.name] = vector
    return np.stack([face.embeddings[embedder.name] for face in faces]) if faces else np.zeros((0, 128), np.float32)

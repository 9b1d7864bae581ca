"""Track samples of a video evaluation: identity consistency of a track's anonymised crops and attribute jitter."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..identity import Embedder, similarity
from ..types import Attributes, Box, Face
from .video_leaks import Models, embed, find_landmarks

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------
# Track samples: identity consistency and attribute jitter


@dataclass
class Reading:
    """One track sample in one video: identity vectors and attributes (``None`` where they could not be read)."""

    vectors: dict[str, np.ndarray]
    attributes: Attributes | None


def read_face(models: Models, image: np.ndarray, face: Face) -> Reading:
    """Return the vectors and attributes of ``face`` in ``image``."""
    vectors = embed(models.embedders, image, face)
    attributes = None
    if models.estimator is not None:
        try:  # the estimators read the vectors already computed on this image from face.embeddings
            attributes = models.estimator.estimate(image, [dataclasses.replace(face, embeddings=dict(vectors))])[0]
        except ValueError as error:  # age and sex need landmarks
            log.debug("no attributes at %s: %s", face.box.to_list(), error)
    return Reading(vectors, attributes)


def sample_track(models: Models, original: np.ndarray, output: np.ndarray, box: Box) -> tuple[Reading, Reading]:
    """Return the ``(original, output)`` readings at a track's ``box`` (landmarks from YuNet on each frame)."""
    plain = Face(box=box, score=1.0, detector="track")
    before = find_landmarks(models.landmarker, original, box) or plain
    after = find_landmarks(models.landmarker, output, box) or before
    return read_face(models, original, before), read_face(models, output, after)


def consistency(tracks: Sequence[Sequence[Reading]], embedders: Sequence[Embedder]) -> dict[str, float | None]:
    """Return per embedder the mean similarity of consecutive readings of the same track (``None``: no pair)."""
    out: dict[str, float | None] = {}
    for embedder in embedders:
        values = [
            similarity(embedder.metric, a, b)
            for track in tracks
            for a, b in itertools.pairwise([r.vectors[embedder.name] for r in track if embedder.name in r.vectors])
        ]
        out[embedder.name] = float(np.mean(values)) if values else None
    return out


def change_rate(tracks: Sequence[Sequence[Any]]) -> float | None:
    """Return the share of consecutive values within each sequence that differ (``None``: no pair)."""
    pairs = [a != b for values in tracks for a, b in itertools.pairwise(values)]
    return float(np.mean(pairs)) if pairs else None


def jitter(tracks: Sequence[Sequence[Reading]]) -> dict[str, float | None]:
    """Return the within-track age spread (years, mean over tracks) and the sex and emotion change rates."""
    read = [[r.attributes for r in track if r.attributes is not None] for track in tracks]
    ages = [[a.age for a in track if a.age is not None] for track in read]
    spreads = [float(np.std(values)) for values in ages if len(values) >= 2]
    return {
        "age_std": float(np.mean(spreads)) if spreads else None,
        "sex_flip_rate": change_rate([[a.sex for a in track if a.sex is not None] for track in read]),
        "emotion_change_rate": change_rate([[a.emotion for a in track if a.emotion is not None] for track in read]),
    }

"""The attribute stage: `AttributeEstimator` protocol and its registry."""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from ..registry import Registry
from ..types import Attributes, Face

log = logging.getLogger(__name__)


class AttributeEstimator(Protocol):
    """Estimates some of age, sex and emotion; fields it does not estimate stay ``None``."""

    name: str
    provides: tuple[str, ...]
    """Which of ``"age"``, ``"sex"``, ``"emotion"`` it fills."""

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return one `Attributes` per face, in order."""
        ...


ATTRIBUTE_ESTIMATORS: Registry[AttributeEstimator] = Registry("attribute estimator")


def onnx_session(path: str) -> object:
    """Return a single-threaded CPU onnxruntime session (deterministic, no thread oversubscription)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class CombinedEstimator:
    """Runs several estimators and merges their answers (a later estimator wins on a field both fill)."""

    def __init__(self, estimators: list[AttributeEstimator]) -> None:
        self.estimators = estimators
        self.name = "+".join(e.name for e in estimators)
        self.provides = tuple(dict.fromkeys(p for e in estimators for p in e.provides))

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return the merged attributes of every estimator for each face."""
        merged = [Attributes() for _ in faces]
        for estimator in self.estimators:
            for index, attributes in enumerate(estimator.estimate(image, faces)):
                merged[index] = merged[index].merged(attributes)
        return merged


def estimate_each(estimator: AttributeEstimator, image: np.ndarray, faces: list[Face]) -> list[Attributes | None]:
    """Return ``estimator``'s attributes per face; a face whose estimate fails gets ``None`` (and a log line)."""
    try:
        return list(estimator.estimate(image, faces))
    except Exception:
        out: list[Attributes | None] = []
        for face in faces:
            try:
                out.append(estimator.estimate(image, [face])[0])
            except Exception as error:
                log.warning("attribute estimation failed for a face at %s: %s", face.box.to_list(), error)
                out.append(None)
        return out


def emotion_attributes(labels: tuple[str, ...], probabilities: np.ndarray) -> list[Attributes]:
    """Return one emotion-only `Attributes` per row of class ``probabilities`` (columns in ``labels`` order)."""
    out = []
    for row in probabilities:
        table = {label: float(p) for label, p in zip(labels, row)}
        out.append(Attributes(emotion=max(table, key=table.__getitem__), emotion_probabilities=table))
    return out


def male_probability(attributes: Attributes) -> float | None:
    """Return P(male) from an estimate's sex and its confidence."""
    if attributes.sex is None or attributes.sex_confidence is None:
        return None
    return attributes.sex_confidence if attributes.sex == "male" else 1.0 - attributes.sex_confidence

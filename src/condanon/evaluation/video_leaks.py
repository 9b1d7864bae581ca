"""The leak test of one video frame: every face of the original, found by every detector, judged at its place in the
output.

The test detects faces on the ORIGINAL frame with every detector, adds faces the detectors find on the
OUTPUT frame where no original face is (read in the original at the same box), merges them by IoU, and
embeds the original and the output at the same place and alignment: a face leaks when an embedder still
calls the two the same person. An embedder that also calls the original the same person as a blank (the
output with the face painted out in its mean colour) cannot judge that face and is not asked.
A face without 5 landmarks (Haar's) gets them from YuNet (score 0.3 and up) run on a crop around its box;
where YuNet finds no face there it is counted as unconfirmed and not judged. A face that no embedder can
judge is counted as unchecked, not as leaked.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..attributes import ATTRIBUTE_ESTIMATORS, AttributeEstimator, CombinedEstimator
from ..detection import DETECTORS, Detector
from ..identity import EMBEDDERS, Embedder, judge
from ..types import Box, Face

log = logging.getLogger(__name__)

MERGE_IOU = 0.5
"""Two detections with at least this IoU are the same face (across detectors, and original vs output)."""
LANDMARK_CROP = 2.0
"""YuNet looks for a box's landmarks in the box grown by this factor about its centre."""
LANDMARK_MIN_IOU = 0.3
"""The YuNet face found in that crop must overlap the box by at least this IoU."""
CONFIRM_SCORE = 0.3
"""A face without landmarks (Haar's) counts only where YuNet, this permissive, finds a face on a crop around it."""
BLANK_SCALE = 2.0
"""The blank control paints out the face box grown by this factor (the embedders' chips reach past the box)."""

# ---------------------------------------------------------------------------------------------------
# Models, created once per call


@dataclass
class Models:
    """The detectors, embedders and attribute estimator one evaluation uses."""

    detectors: list[Detector]
    embedders: list[Embedder]
    landmarker: Detector
    """YuNet, for the landmarks of boxes that have none."""
    estimator: AttributeEstimator | None = None

    @classmethod
    def create(cls, detectors: Sequence[str], embedders: Sequence[str], attributes: str | None) -> Models:
        """Return the models named (unknown names raise `ConfigError`)."""
        found = [DETECTORS.create(name) for name in detectors]
        yunet = DETECTORS.create("yunet", score_threshold=CONFIRM_SCORE)
        names = [name.strip() for name in (attributes or "").split(",") if name.strip()]
        estimator = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create(n) for n in names]) if names else None
        return cls(found, [EMBEDDERS.create(name) for name in embedders], yunet, estimator)


# ---------------------------------------------------------------------------------------------------
# Faces: merging, landmarks, embedding


def merge_faces(faces: list[Face], threshold: float = MERGE_IOU) -> list[Face]:
    """Return ``faces`` with those overlapping by IoU >= ``threshold`` merged (one with landmarks preferred)."""
    kept: list[Face] = []
    for face in faces:
        index = next((i for i, k in enumerate(kept) if k.box.iou(face.box) >= threshold), None)
        if index is None:
            kept.append(face)
        elif kept[index].landmarks5 is None and face.landmarks5 is not None:
            kept[index] = face
    return kept


def find_landmarks(yunet: Detector, image: np.ndarray, box: Box) -> Face | None:
    """Return the YuNet face (box and 5 landmarks) that best overlaps ``box`` in a crop around it, or ``None``."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box.scaled(LANDMARK_CROP).clipped(width, height).to_int()
    if min(x2 - x1, y2 - y1) < 8:
        return None
    found = yunet.detect(np.ascontiguousarray(image[y1:y2, x1:x2]))
    for face in found:
        face.box = face.box.shifted(x1, y1)
        face.landmarks5 = face.landmarks5 + np.array([x1, y1], np.float32) if face.landmarks5 is not None else None
    best = max(found, key=lambda f: f.box.iou(box), default=None)
    if best is None or best.landmarks5 is None or best.box.iou(box) < LANDMARK_MIN_IOU:
        return None
    return best


def with_landmarks(yunet: Detector, face: Face, images: Sequence[np.ndarray]) -> Face:
    """Return ``face``, or YuNet's face at its place in the first of ``images`` where one is found."""
    if face.landmarks5 is not None:
        return face
    for image in images:
        found = find_landmarks(yunet, image, face.box)
        if found is not None:
            return dataclasses.replace(found, detector=face.detector, embeddings={})
    return face


def embed_one(embedder: Embedder, image: np.ndarray, face: Face) -> np.ndarray | None:
    """Return ``embedder``'s vector of ``face`` in ``image``, or ``None`` when it cannot read the face."""
    try:
        vector: np.ndarray = embedder.embed(image, [dataclasses.replace(face, embeddings={})])[0]
        return vector
    except ValueError as error:  # SFace without landmarks
        log.debug("%s cannot read the face at %s: %s", embedder.name, face.box.to_list(), error)
        return None


def embed(embedders: Sequence[Embedder], image: np.ndarray, face: Face) -> dict[str, np.ndarray]:
    """Return ``{embedder: vector}`` of ``face`` in ``image`` for each embedder that can read it."""
    vectors = {e.name: embed_one(e, image, face) for e in embedders}
    return {name: vector for name, vector in vectors.items() if vector is not None}


# ---------------------------------------------------------------------------------------------------
# The leak test of one frame


@dataclass
class FrameCheck:
    """The leak test of one frame."""

    faces: int = 0
    leaked: int = 0
    unchecked: int = 0
    output_only: int = 0
    by_detector: dict[str, int] = field(default_factory=dict)
    leaks: list[dict[str, Any]] = field(default_factory=list)
    """Each leaked face: box, height, the embedder that matched, the detector that found it."""
    unconfirmed: int = 0


def detect_all(detectors: Sequence[Detector], image: np.ndarray) -> dict[str, list[Face]]:
    """Return each detector's faces in ``image``, by detector name."""
    return {detector.name: detector.detect(image) for detector in detectors}


def faces_to_check(models: Models, original: np.ndarray, output: np.ndarray) -> tuple[list[Face], dict[str, int], int]:
    """Return the merged faces to check, the original faces per detector, and how many were found only on the output."""
    before = detect_all(models.detectors, original)
    merged = merge_faces([face for faces in before.values() for face in faces])
    merged = [with_landmarks(models.landmarker, face, [original, output]) for face in merged]
    after = merge_faces([face for faces in detect_all(models.detectors, output).values() for face in faces])
    extra = [face for face in after if all(face.box.iou(known.box) < MERGE_IOU for known in merged)]
    extra = [with_landmarks(models.landmarker, face, [output, original]) for face in extra]
    return merged + extra, {name: len(faces) for name, faces in before.items()}, len(extra)


def painted_out(image: np.ndarray, box: Box, scale: float = BLANK_SCALE) -> np.ndarray:
    """Return a copy of ``image`` with ``box`` grown by ``scale`` filled with the mean colour inside ``box``."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box.clipped(width, height).to_int()
    colour = image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)].reshape(-1, 3).mean(axis=0)
    out = image.copy()
    x1, y1, x2, y2 = box.scaled(scale).clipped(width, height).to_int()
    out[y1:y2, x1:x2] = colour.astype(np.uint8)
    return out


def matches(embedder: Embedder, a: np.ndarray, b: np.ndarray) -> bool:
    """Return whether ``embedder`` calls the vectors ``a`` and ``b`` the same person."""
    return bool(judge(embedder, a, b).matched)


def face_leaks(
    embedders: Sequence[Embedder], original: np.ndarray, output: np.ndarray, face: Face
) -> str | bool | None:
    """Return the name of an embedder that can judge ``face`` and matches its output with its original;
    ``False`` when none matches, ``None`` when none can judge it.

    An embedder cannot judge a face whose original it also matches with the output with the face painted
    out (`painted_out`): dlib calls about a third of the small faces of crowd.mp4 the same person as a
    blank, so a blacked-out output would "leak" them. The blank is only made when the output matches.
    Embedders run in order and stop at the first leak.
    """
    judged, blank = False, None
    for embedder in embedders:
        before = embed_one(embedder, original, face)
        after = embed_one(embedder, output, face) if before is not None else None
        if before is None or after is None:
            continue
        if not matches(embedder, before, after):
            judged = True
            continue
        blank = painted_out(output, face.box) if blank is None else blank
        control = embed_one(embedder, blank, face)
        if control is not None and matches(embedder, before, control):
            log.debug("%s cannot tell the face at %s from a blank", embedder.name, face.box.to_list())
            continue
        return embedder.name
    return False if judged else None


def check_frame(models: Models, original: np.ndarray, output: np.ndarray) -> FrameCheck:
    """Return the leak test of one frame pair."""
    faces, by_detector, output_only = faces_to_check(models, original, output)
    check = FrameCheck(faces=len(faces), output_only=output_only, by_detector=by_detector)
    for face in faces:
        if face.landmarks5 is None:  # no face model finds a face there (Haar fires on jackets and jeans)
            check.unconfirmed += 1
            continue
        leaked = face_leaks(models.embedders, original, output, face)
        if isinstance(leaked, str):
            check.leaked += 1
            check.leaks.append(
                {
                    "box": [round(v) for v in face.box.to_list()],
                    "height": round(face.box.height),
                    "embedder": leaked,
                    "detector": face.detector,
                }
            )
        check.unchecked += leaked is None
    return check

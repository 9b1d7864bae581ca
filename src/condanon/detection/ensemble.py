"""A primary detector with a recall safety net: a second detector's extra faces, confirmed or trusted.

A face the second detector finds where the primary found none is kept when YuNet confirms it on a
zoomed crop at a lower threshold (its box and landmarks are then YuNet's), or when the second
detector's own score reaches ``trust_score`` (never, by default: Haar and HOG scores are not
calibrated enough to trust alone on the scenes we measured). Privacy first, an unconfirmed face whose
score reaches ``uncertain_score`` is kept too, marked ``uncertain`` (obscured, never synthesised, never
counted). Everything else is dropped as a likely false positive.

``yunet+blazeface`` uses BlazeFace full-range as the second detector: it finds the profile,
three-quarter, border-cut and small faces YuNet misses, and its scores are calibrated enough to keep
its unconfirmed faces as uncertain ones (thresholds measured by benchmarks/detection_recall.py; see
models/blazeface-full-range-v1.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..types import Box, Face
from .base import DETECTORS, Detector, overlap, suppress
from .yunet import YuNetDetector


class EnsembleDetector:
    """Primary faces plus the second detector's confirmed extras."""

    def __init__(
        self,
        primary: Detector,
        secondary: Detector,
        confirm_threshold: float = 0.35,
        trust_score: float = float("inf"),
        new_face_overlap: float = 0.3,
        uncertain_score: float = float("inf"),
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self.confirmer = YuNetDetector(score_threshold=confirm_threshold)
        self.trust_score = trust_score
        self.new_face_overlap = new_face_overlap
        self.uncertain_score = uncertain_score
        self.name = f"{primary.name}+{secondary.name}"

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return the primary's faces and the secondary's confirmed, trusted or uncertain extras, best score first."""
        faces = self.primary.detect(image)
        for extra in self.secondary.detect(image):
            if any(overlap(extra, face) >= self.new_face_overlap for face in faces):
                continue
            confirmed = self._confirm(image, extra)
            if confirmed is not None:
                faces.append(confirmed)
            elif extra.score >= self.trust_score:
                faces.append(extra)
            elif extra.score >= self.uncertain_score:
                extra.mark_uncertain(
                    f"found only by {extra.detector or 'the recall net'} "
                    f"(score {extra.score:.2f}, under {self.trust_score:.2f}), not confirmed"
                )
                faces.append(extra)
        return suppress(faces, 0.5)

    def _confirm(self, image: np.ndarray, candidate: Face) -> Face | None:
        """Return YuNet's face inside a zoomed crop around ``candidate``, or ``None`` if it finds none."""
        height, width = image.shape[:2]
        x1, y1, x2, y2 = candidate.box.scaled(2.0).clipped(width, height).to_int()
        crop = image[y1:y2, x1:x2]
        if min(crop.shape[:2]) < 8:
            return None
        scale = 240.0 / max(crop.shape[:2])
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        best = None
        for face in self.confirmer.detect(np.ascontiguousarray(crop)):
            mapped = _unzoom(face, scale, x1, y1)
            if mapped.box.iou(candidate.box) >= 0.3 and (best is None or mapped.score > best.score):
                best = mapped
        if best is not None:
            best.detector = f"{self.secondary.name}>{self.confirmer.name}"
        return best


def _unzoom(face: Face, scale: float, x0: float, y0: float) -> Face:
    """Return ``face`` found in a crop zoomed by ``scale`` at ``(x0, y0)``, in image coordinates."""
    b = face.box
    box = Box(b.x1 / scale + x0, b.y1 / scale + y0, b.x2 / scale + x0, b.y2 / scale + y0)
    points = None if face.landmarks5 is None else face.landmarks5 / scale + np.asarray([x0, y0], np.float32)
    return Face(box=box, score=face.score, landmarks5=points, detector=face.detector)


# BlazeFace's extras (measured with benchmarks/detection_recall.py; see models/blazeface-full-range-v1.md):
# candidates from BLAZEFACE_CANDIDATE up on the whole image, from BLAZEFACE_TILE up on its tiles (tiles zoom
# into blurred backgrounds, hands and lettering: every false positive seen from 0.50 to 0.52 came from a
# tile, none from the whole-image passes); confirmed when YuNet finds the face on a zoomed crop at its own
# default threshold (at 0.35, as for HOG, it confirmed hands); trusted alone from BLAZEFACE_TRUST (no false
# positive seen above 0.71); kept as uncertain from BLAZEFACE_UNCERTAIN (MediaPipe's own operating point).
BLAZEFACE_CANDIDATE = 0.4
BLAZEFACE_TILE = 0.55
# One level of tiles (half the image, reaching a quarter tile past the border) finds the border-cut faces;
# finer tiles found no face YuNet's own tiles miss, cost 2.3x the time and added false positives (measured).
BLAZEFACE_LEVELS = 1
BLAZEFACE_CONFIRM = 0.6
BLAZEFACE_TRUST = 0.8
BLAZEFACE_UNCERTAIN = 0.5


@DETECTORS.register("yunet+blazeface")
def _yunet_blazeface(
    score_threshold: float = 0.6,
    candidate: float = BLAZEFACE_CANDIDATE,
    confirm_threshold: float = BLAZEFACE_CONFIRM,
    trust_score: float = BLAZEFACE_TRUST,
    uncertain_score: float = BLAZEFACE_UNCERTAIN,
    tile_threshold: float = BLAZEFACE_TILE,
    tiles: float = 1.0,
    levels: float = BLAZEFACE_LEVELS,
    **options: float,
) -> EnsembleDetector:
    """YuNet, plus BlazeFace full-range faces YuNet confirms, trusts (high score) or keeps as uncertain."""
    primary = DETECTORS.create("yunet", score_threshold=score_threshold)
    secondary = DETECTORS.create(
        "blazeface", score_threshold=candidate, tile_threshold=tile_threshold, tiles=bool(tiles), levels=int(levels)
    )
    return EnsembleDetector(
        primary,
        secondary,
        confirm_threshold=confirm_threshold,
        trust_score=trust_score,
        uncertain_score=uncertain_score,
        **options,
    )


@DETECTORS.register("yunet+blazeface+hog")
def _yunet_blazeface_hog(**options: float) -> EnsembleDetector:
    """``yunet+blazeface``, plus HOG faces YuNet confirms on a zoomed crop."""
    return EnsembleDetector(_yunet_blazeface(**options), DETECTORS.create("hog"))


for _second in ("hog", "haar"):

    def _factory(_second: str = _second, score_threshold: float = 0.6, **options: float) -> EnsembleDetector:
        primary = DETECTORS.create("yunet", score_threshold=score_threshold)
        return EnsembleDetector(primary, DETECTORS.create(_second), **options)

    _factory.__doc__ = f"YuNet, plus {_second} faces that YuNet confirms on a zoomed crop (recall safety net)."
    DETECTORS.register(f"yunet+{_second}")(_factory)

"""Conversion between YuNet's box convention (forehead to chin, ears in) and dlib's (brows to chin, tighter).

dlib's HOG detector and its shape predictors were trained on dlib's own boxes, so a YuNet box must
be converted before the predictors run, and a HOG box converted back before it is merged with
YuNet's. The map is a centre shift and a scale, as fractions of the box size, fitted on matched
YuNet/HOG detections of the same faces: 4,147 pairs from 1,199 UTKFace-style test photos, each
at 7 scales (HOG boxes snap to a few sizes). Spread (std) of the fit: DX 0.06, DY 0.03, SX 0.10, SY 0.07.
"""

from __future__ import annotations

from ..types import Box

# dlib box = YuNet box shifted by (DX * w, DY * h) and scaled by (SX, SY) about its centre.
DX, DY, SX, SY = 0.014, 0.087, 1.047, 0.795


def to_dlib(box: Box) -> Box:
    """Return the dlib-convention box for a YuNet-convention ``box``."""
    cx, cy = box.center
    cx, cy = cx + DX * box.width, cy + DY * box.height
    hw, hh = box.width * SX / 2, box.height * SY / 2
    return Box(cx - hw, cy - hh, cx + hw, cy + hh)


def from_dlib(box: Box) -> Box:
    """Return the YuNet-convention box for a dlib-convention ``box`` (the inverse of `to_dlib`)."""
    width, height = box.width / SX, box.height / SY
    cx, cy = box.center
    cx, cy = cx - DX * width, cy - DY * height
    return Box(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)

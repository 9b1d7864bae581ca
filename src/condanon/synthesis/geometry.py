"""Face geometry for synthesis: the point layout a face is warped by, and transforms between layouts.

A *layout* is the 68 iBUG-300W landmarks followed by `FOREHEAD` points (the brows lifted towards the
hairline, so the replaced region carries forehead and temples) and `RING` points on an ellipse around
the face that stay where they are (the warp fades out to nothing there). Every layout has the same
points in the same order, so one triangulation serves them all.
"""

from __future__ import annotations

import numpy as np

from ..transforms import apply_transform, similarity_transform

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
EYES = np.arange(36, 48)
MOUTH = np.arange(48, 68)
IDENTITY_POINTS = np.concatenate([JAW, NOSE])
"""Points whose place says who someone is more than what they feel: face outline and nose."""
EXPRESSION_POINTS = np.concatenate([BROWS, EYES, MOUTH])
"""Points that move with expression: brows, eyelids, lips (kept from the original face)."""

FOREHEAD = 10
RING = 16
LIFT = np.array([0.26, 0.34, 0.40, 0.44, 0.46, 0.46, 0.44, 0.40, 0.34, 0.26])
"""How far each brow point is lifted, in units of the nose-bridge-to-chin length."""
RING_SCALE = 1.45
"""Size of the fixed outer ring relative to the face outline's extent around its centre."""


def up_vector(points68: np.ndarray) -> tuple[np.ndarray, float]:
    """Return the face's unit "up" direction (chin to nose bridge) and the bridge-to-chin length."""
    axis = points68[27] - points68[8]
    length = float(np.hypot(*axis))
    if length < 1e-6:
        raise ValueError("degenerate landmarks: nose bridge on the chin")
    return axis / length, length


def forehead_points(points68: np.ndarray) -> np.ndarray:
    """Return the `FOREHEAD` points: brows 17-26 lifted along the face's up direction."""
    up, length = up_vector(points68)
    lifted: np.ndarray = points68[BROWS] + LIFT[:, None] * length * up[None, :]
    return lifted


def outline(layout: np.ndarray) -> np.ndarray:
    """Return the closed face contour of a layout: jaw 0-16 then the forehead points right to left."""
    return np.concatenate([layout[JAW], layout[68 : 68 + FOREHEAD][::-1]])


def ring_points(points: np.ndarray, scale: float = RING_SCALE) -> np.ndarray:
    """Return `RING` points on the ellipse that holds the contour of ``points`` grown by ``scale``."""
    contour = outline(points) if len(points) >= 68 + FOREHEAD else points
    centre = contour.mean(axis=0)
    up, _ = up_vector(points)
    right = np.array([-up[1], up[0]])  # image-right when up points to the top of the image... sign irrelevant
    offsets = contour - centre
    a = np.abs(offsets @ right).max() * scale
    b = np.abs(offsets @ up).max() * scale
    angles = np.linspace(0, 2 * np.pi, RING, endpoint=False)
    ring: np.ndarray = centre + np.cos(angles)[:, None] * a * right + np.sin(angles)[:, None] * b * up
    return ring


def layout(points68: np.ndarray, ring: np.ndarray | None = None) -> np.ndarray:
    """Return the full layout (68 + forehead + ring) of a face; ``ring`` fixes the outer ring's place."""
    points68 = np.asarray(points68, dtype=np.float64)
    inner = np.concatenate([points68, forehead_points(points68)])
    return np.concatenate([inner, ring_points(inner) if ring is None else ring])


FEATURES = (np.arange(36, 42), np.arange(42, 48), np.arange(17, 22), np.arange(22, 27), MOUTH)
"""Right eye, left eye, right brow, left brow, mouth: moved whole (placement); reshaped only by `target_shape`'s
``reshape``.
"""


def target_shape(
    original68: np.ndarray, prototype68: np.ndarray, mix: float, features: float = 0.0, reshape: float = 0.0
) -> np.ndarray:
    """Return the 68 points of the synthetic face: the prototype's outline and nose, the original's expression.

    The identity change is worked out in the prototype's (frontal) frame: the original is brought
    there by a similarity transform, the differences of jaw and nose points to the prototype's are
    taken, the horizontal part of each difference is shrunk by how foreshortened that side of the
    original face is (a turned face's far side hardly moves), and the differences are mapped back and
    applied ``mix`` of the way. Brows, eyes and mouth keep the original's shapes (expression); with
    ``features`` > 0 each of them is also moved, whole, that share of the way to where the prototype
    has it (eye spacing, brow height, mouth height are identity); ``mix`` 0 keeps the original's
    geometry whole, features included. A mouth opened wider than the prototype's also lowers the chin
    by the difference. With ``reshape`` > 0 each feature also takes that share of the prototype's own
    shape (1: the prototype's eyes, brows and mouth, which fit its texture; the expression is then the
    prototype's, chosen for the same emotion and mouth state).
    """
    original68 = np.asarray(original68, dtype=np.float64)
    prototype68 = np.asarray(prototype68, dtype=np.float64)
    to_frontal = similarity_transform(original68, prototype68)
    frontal = apply_transform(to_frontal, original68)
    back = np.linalg.inv(np.vstack([to_frontal, [0, 0, 1]]))[:2]
    delta = np.zeros_like(frontal)
    delta[IDENTITY_POINTS] = prototype68[IDENTITY_POINTS] - frontal[IDENTITY_POINTS]
    # mouth opening beyond the prototype's lowers the chin (sin weights: the chin moves, the ears do not)
    opening = (frontal[57, 1] - frontal[51, 1]) - (prototype68[57, 1] - prototype68[51, 1])
    delta[JAW, 1] += max(opening, 0.0) * np.sin(np.linspace(0, np.pi, len(JAW)))
    # foreshortening per side: the original's half-width over the prototype's, measured at the jaw
    centre_o, centre_p = frontal[27:31, 0].mean(), prototype68[27:31, 0].mean()
    ratios = []
    for side, points in ((0, np.arange(0, 8)), (16, np.arange(9, 17))):
        ratios.append(
            float(np.clip(abs(frontal[side, 0] - centre_o) / max(abs(prototype68[side, 0] - centre_p), 1e-6), 0.0, 1.0))
        )
        delta[points, 0] *= ratios[-1]
    placement = np.zeros_like(frontal)  # eyes, brows, mouth: moved whole...
    shaping = np.zeros_like(
        frontal
    )  # ...and, with reshape, given the prototype's shape, foreshortened as the original's side is
    for group in FEATURES:
        placement[group] = prototype68[group].mean(axis=0) - frontal[group].mean(axis=0)
        shape = prototype68[group] - prototype68[group].mean(axis=0)
        shape[:, 0] *= np.where(frontal[group, 0] < centre_o, ratios[0], ratios[1])
        shaping[group] = shape - (frontal[group] - frontal[group].mean(axis=0))
    moved = frontal + mix * delta + ((features * placement + reshape * shaping) if mix > 0 else 0.0)
    return apply_transform(back, moved)

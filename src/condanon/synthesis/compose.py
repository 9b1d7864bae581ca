"""Compose a synthetic face into a frame: geometry, texture warp, colour transfer, feathered blend, grain.

What flows from the original face into the result (and nothing else, see docs/synthesis.md):
- its 68 landmarks: the shapes of brows, eyes and mouth (expression), pose, place and size, and the
  outline and nose as the starting point that ``shape_mix`` moves toward the prototype;
- the median and spread of its colour in Lab over the skin (below the brows, without eyes, brows and
  mouth: tone and lighting), and the median Lab of its lower forehead;
- the noise level of the frame there (grain), its sharpness (an out-of-focus face gets a synthetic face
  as soft), and the fine texture of its skin, cut in blocks and shuffled within zones
  (`condanon.synthesis.detail`: pores and stubble, not their places);
- the pixels outside the face outline (hair, ears, neck, background) and, faded in, the upper
  forehead (from halfway up, or three quarters for a reshaped `Candidate`), all moved by the outline's change.
The face region's pixels below the mid-forehead come from the prototypes alone, and above the lower
forehead they are plain skin of its colour (`FOREHEAD_PLAIN`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import detail, geometry
from .warp import distortion, triangulate, warp

FEATHER = 0.07
"""Width of the blend at the face outline, as a share of the face height."""
COLOUR_RATIO = (0.6, 1.6)
"""Limits of the per-channel Lab spread ratio of the colour transfer."""
FOREHEAD_FADE = (0.5, 0.75)
"""Share of the way from brows to forehead line where the synthetic face starts fading into the original's:
for a candidate that keeps the original's feature shapes, and for one reshaped whole (`Candidate.reshape`)."""
FOREHEAD_BAND = (0.1, 0.5)
"""Where the forehead's colour is read (share of the way from brows to forehead line): under the fade,
above the brows.
"""
FOREHEAD_PLAIN = (0.45, 0.65)
"""From the first to the second share of the way from brows to forehead line the synthetic forehead turns
into plain skin of its lower forehead's colour: a prototype's texture ends around there (the top of the
averaged crops: a dark or background-coloured edge showed as a stripe across the forehead)."""
FOREHEAD_SHIFT = np.array([40.0, 10.0, 10.0])
"""Largest Lab shift of the synthetic forehead towards the original's (a fringe of hair must not paint it)."""
EXPRESSIVE = np.concatenate([geometry.EYES, np.arange(60, 68)])
"""Eyelid and inner-lip points: their triangles change shape with the expression (left out of `warp_distortion`)."""
DEFOCUS = (0.5, 0.8, 1.2, 1.7, 2.4, 3.2)
"""Gaussian sigmas (working-scale px) tried, in turn, to bring a synthetic face down to the original's sharpness."""
WORKING_SIZE = 320
"""The synthetic face is made with its region at most this many pixels across, then scaled up."""
SHARPEN = (1.5, 1.5)
"""Unsharp mask (sigma in canonical pixels, amount) on a candidate's mixed texture: the prototypes are
averages of faces aligned at 68 points only, so lids, brows and lips come out soft; this restores
their contrast (on a 700 px face it reads as a face, not a smear; the finest band is the skin detail's)."""


@dataclass(frozen=True)
class Candidate:
    """A synthetic identity: a prototype image and its 68-point shape in the canonical frame."""

    image: np.ndarray
    shape: np.ndarray
    sources: tuple[int, ...]
    weights: tuple[float, ...]
    reshape: float = 0.0
    """How much of the original's own look the candidate gives up beyond its outline and feature places:
    0 keeps the shapes of its eyes, brows and mouth (the expression, frame by frame in video) and the upper
    half of its forehead; 1 takes the prototype's feature shapes and makes the forehead up to three
    quarters of the way to the forehead line (`FOREHEAD_FADE`; the expression is then the prototype's,
    chosen for the same emotion and mouth state). docs/synthesis.md, step 4, has what it buys."""


_triangles: dict[int, np.ndarray] = {}


def triangles_for(reference: np.ndarray) -> np.ndarray:
    """Return the triangulation of the layout of ``reference`` (computed once per reference shape)."""
    key = hash(np.asarray(reference, dtype=np.float32).tobytes())
    if key not in _triangles:
        _triangles[key] = triangulate(geometry.layout(reference))
    return _triangles[key]


def mix(
    images: list[np.ndarray], shapes: list[np.ndarray], weights: list[float], triangles: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the morph of several prototypes: shapes averaged by ``weights``, textures warped onto it and averaged."""
    weights_a = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    shape = np.tensordot(weights_a, np.asarray(shapes), axes=1)
    size = images[0].shape[1], images[0].shape[0]
    target = geometry.layout(shape)
    total = np.zeros(images[0].shape, dtype=np.float32)
    for image, own, weight in zip(images, shapes, weights_a):
        warped, _ = warp(image, geometry.layout(own), target, triangles, size)
        total += weight * warped.astype(np.float32)
    sigma, amount = SHARPEN
    total += amount * (total - cv2.GaussianBlur(total, (0, 0), sigma))
    return np.clip(total + 0.5, 0, 255).astype(np.uint8), shape


def _region_stats(lab: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-channel centre and spread of ``lab`` over ``mask``: median and scaled MAD.

    Robust, because the skin region of a face is never only skin: a white collar under a low jaw
    line, specular cheeks, glasses frames or a beard edge pull a mean and a standard deviation.
    """
    values = lab[mask]
    if len(values) < 8:
        raise ValueError("face region too small for colour statistics")
    centre = np.median(values, axis=0)
    return centre, 1.4826 * np.median(np.abs(values - centre), axis=0) + 1e-3


def _noise_level(grey: np.ndarray, mask: np.ndarray) -> float:
    """Return the standard deviation of the fine detail (image minus its 3x3 blur) inside ``mask``."""
    detail = grey - cv2.blur(grey, (3, 3))
    values = detail[::2, ::2][mask[::2, ::2]]
    return float(np.median(np.abs(values)) * 1.4826) if len(values) else 0.0


@dataclass(frozen=True)
class Region:
    """What composition needs of the original face, the same for every candidate (see `prepare`)."""

    source_layout: np.ndarray
    ring: np.ndarray
    bounds: tuple[int, int, int, int]
    scale: float
    small: tuple[int, int]
    mean: np.ndarray
    std: np.ndarray
    skin: np.ndarray
    noise: float
    detail: detail.SkinDetail | None = None
    forehead: np.ndarray | None = None
    """Median Lab of the original's lower forehead (`forehead_band`), at the working scale."""
    sharpness: float | None = None
    """The original's inner face `sharpness` at the working scale (an out-of-focus face reads low)."""

    @property
    def origin(self) -> np.ndarray:
        """Return the patch's top-left corner in frame coordinates."""
        return np.array(self.bounds[:2], dtype=np.float64)

    @property
    def size(self) -> tuple[int, int]:
        """Return the patch's (width, height)."""
        x1, y1, x2, y2 = self.bounds
        return x2 - x1, y2 - y1


def prepare(frame: np.ndarray, original68: np.ndarray) -> Region:
    """Return the original face's layout, patch bounds, working scale and skin statistics in ``frame``.

    Raises ``ValueError`` for landmarks that cannot carry a face (degenerate, or a region outside the frame).
    """
    height, width = frame.shape[:2]
    original68 = np.asarray(original68, dtype=np.float64)
    ring = geometry.ring_points(np.concatenate([original68, geometry.forehead_points(original68)]))
    source_layout = geometry.layout(original68, ring)
    x1, y1 = np.floor(np.maximum(ring.min(axis=0), 0)).astype(int)
    x2, y2 = np.ceil(np.minimum(ring.max(axis=0) + 1, [width, height])).astype(int)
    if x2 - x1 < 4 or y2 - y1 < 4:
        raise ValueError("face region outside the frame")
    size = (int(x2 - x1), int(y2 - y1))
    origin = np.array([x1, y1], dtype=np.float64)
    roi = frame[y1:y2, x1:x2]
    # the face itself is made at a working scale: the prototypes are 128 px, nothing is gained above
    scale = min(1.0, WORKING_SIZE / max(size))
    small = (max(4, round(size[0] * scale)), max(4, round(size[1] * scale)))
    roi_small = cv2.resize(roi, small, interpolation=cv2.INTER_AREA) if scale < 1 else roi
    layout_small = (source_layout - origin) * scale
    # colour: over the cheeks, nose and mouth (below the brows: no hair, no background)
    lab_small = cv2.cvtColor(roi_small, cv2.COLOR_BGR2LAB).astype(np.float32)
    mean, std = _region_stats(lab_small, skin_only(layout_small, small))
    band = forehead_band(layout_small, small)
    forehead = np.median(lab_small[band], axis=0) if band.sum() >= 16 else None
    inner = _polygon(geometry.outline(layout_small), small)
    crisp = sharpness(cv2.cvtColor(roi_small, cv2.COLOR_BGR2GRAY).astype(np.float32), inner)
    skin = _polygon(skin_polygon(source_layout) - origin, size)
    grey = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY).astype(np.float32)
    noise = _noise_level(grey, skin)
    texture = detail.sample(grey, skin_only(source_layout - origin, size), source_layout[:68] - origin)
    return Region(
        source_layout,
        ring,
        (int(x1), int(y1), int(x2), int(y2)),
        scale,
        small,
        mean,
        std,
        skin,
        noise,
        texture,
        forehead,
        crisp,
    )


def compose(
    frame: np.ndarray,
    original68: np.ndarray,
    candidate: Candidate,
    triangles: np.ndarray,
    shape_mix: float = 1.0,
    rng: np.random.Generator | None = None,
    feature_mix: float = 0.0,
    region: Region | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Return the synthetic face composed over ``frame`` as a patch, and the patch's ``(x1, y1, x2, y2)``.

    ``frame`` is not modified; the caller pastes the patch. ``region`` is `prepare`'s result for this
    frame and face (made here when not given; a loop over candidates passes it to avoid the repeat).
    Raises ``ValueError`` for landmarks that cannot carry a face.
    """
    if region is None:
        region = prepare(frame, original68)
    target68 = geometry.target_shape(original68, candidate.shape, shape_mix, feature_mix, candidate.reshape)
    target_layout = geometry.layout(target68, region.ring)
    origin, size, small = region.origin, region.size, region.small

    # 1. move the surroundings with the outline (full resolution): the original's outline lands on the new one
    context, _ = warp(frame, region.source_layout, target_layout, triangles, size, tuple(origin))  # identity outside

    # 2. the prototype's face, warped onto the new shape at the working scale
    target_small = (target_layout - origin) * region.scale
    face, _ = warp(candidate.image, geometry.layout(candidate.shape), target_small, triangles, small)
    inside = _polygon(geometry.outline(target_small), small)
    face_height = float(np.ptp(geometry.outline(target_small)[:, 1])) or 1.0
    level = _forehead_level(target_small, small)

    # 3. colour: the prototype's Lab statistics become the original's, both over the same skin
    # (`skin_only`: below the brows, without eyes, brows and mouth; over the whole outline the
    # prototype's brows and forehead weighed in, and the transfer lightened dark skin by ~4 L*),
    # then its lower forehead is matched to the original's
    face_lab = cv2.cvtColor(face, cv2.COLOR_BGR2LAB).astype(np.float32)
    mean_p, std_p = _region_stats(face_lab, skin_only(target_small, small))
    ratio = np.clip(region.std / std_p, *COLOUR_RATIO)
    face_lab = (face_lab - mean_p) * ratio + region.mean
    band = _in_band(level) & inside
    _match_forehead(face_lab, level, band, region.forehead)
    _plain_forehead(face_lab, level, band)
    face = cv2.cvtColor(np.clip(face_lab + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)
    face = _defocus(face, inside, region.sharpness)

    # 4. feathered blend at the new outline (alpha 1/2 on the outline itself)
    feather = max(1.0, FEATHER * face_height)
    binary = inside.astype(np.uint8)
    dist_in = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
    dist_out = cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3)
    alpha = np.clip(0.5 + (dist_in - dist_out) / feather, 0.0, 1.0).astype(np.float32)
    alpha = np.minimum(alpha, _forehead_fade(level, candidate.reshape))
    if region.scale < 1:
        face = cv2.resize(face, size, interpolation=cv2.INTER_LINEAR)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)

    # 5. grain: the frame's fine noise on the (smooth, often upscaled) prototype; 6. blend, inside the
    # bounding box of the face's alpha only (outside it the patch is the warped context)
    ys, xs = np.nonzero(alpha > 0)
    if len(xs) == 0:
        raise ValueError("empty face region")
    bx1, by1, bx2, by2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    face_f = face[by1:by2, bx1:bx2].astype(np.float32)
    if rng is not None and region.detail is not None:
        face_f += _skin_detail(face_f, region.detail, target_layout - origin - [bx1, by1], rng)[:, :, None]
    if rng is not None:
        own = _noise_level(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).astype(np.float32), region.skin)
        extra = float(np.sqrt(max(region.noise**2 - own**2, 0.0)))
        if extra > 0.5:
            face_f += extra * _grain(rng, face_f.shape[:2])[:, :, None]
    a = alpha[by1:by2, bx1:bx2, None]
    patch = context.copy()
    blended = context[by1:by2, bx1:bx2].astype(np.float32)
    blended += a * (face_f - blended)
    patch[by1:by2, bx1:bx2] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return patch, region.bounds


def warp_distortion(
    original68: np.ndarray,
    candidate: Candidate,
    triangles: np.ndarray,
    shape_mix: float,
    feature_mix: float,
    region: Region,
) -> tuple[float, bool]:
    """Return (largest stretch, any fold) of the warp that lays ``candidate``'s face onto its place (`warp.distortion`).

    Over the face's own triangles (landmarks and forehead points; the ring around it only moves the
    surroundings) that touch no eyelid or inner lip: those change shape with the expression, which is
    the original's by design (a closed eye squashes them). The same target shape `compose` makes,
    without composing anything.
    """
    target68 = geometry.target_shape(original68, candidate.shape, shape_mix, feature_mix, candidate.reshape)
    inner = triangles[(triangles < 68 + geometry.FOREHEAD).all(axis=1) & ~np.isin(triangles, EXPRESSIVE).any(axis=1)]
    return distortion(geometry.layout(candidate.shape), geometry.layout(target68, region.ring), inner)


def _skin_detail(
    face: np.ndarray, texture: detail.SkinDetail, points: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Return the residual to add to ``face`` (BGR float, its layout ``points``): shuffled skin detail on its skin.

    Scaled so the skin's fine energy becomes the original's (the prototype's own counts), and faded in
    at the skin's edge.
    """
    size = (face.shape[1], face.shape[0])
    skin = skin_only(points, size)
    if skin.sum() < 16:
        return np.zeros(face.shape[:2], np.float32)
    own = float(np.mean(detail.residual(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))[skin] ** 2))
    gain = float(np.sqrt(max(texture.energy - own, 0.0) / max(texture.energy, 1e-6)))
    if gain < 0.05:
        return np.zeros(face.shape[:2], np.float32)
    soft = cv2.GaussianBlur(skin.astype(np.float32), (0, 0), texture.side / 4)
    grain: np.ndarray = gain * soft * detail.lay(texture, points[:68], size, rng)
    return grain


def sharpness(grey: np.ndarray, mask: np.ndarray) -> float | None:
    """Return how sharp ``grey`` is over ``mask``: the variance of its Laplacian over its own variance there.

    Scale-free in contrast; a face out of focus, or shot at a low resolution and scaled up, reads low.
    ``None`` when the mask holds too little.
    """
    if mask.sum() < 64:
        return None
    values = grey[mask]
    spread = float(np.var(values))
    return float(np.var(cv2.Laplacian(grey, cv2.CV_32F)[mask])) / spread if spread > 1e-6 else None


def _defocus(face: np.ndarray, inside: np.ndarray, target: float | None) -> np.ndarray:
    """Return ``face`` blurred by the least of `DEFOCUS` that makes it no sharper than the original (``target``; the
    largest if none does).

    The prototypes are sharp; on a face out of focus, or a small one scaled up, they looked pasted on.
    """
    if target is None:
        return face
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).astype(np.float32)
    own = sharpness(grey, inside)
    if own is None or own <= target:
        return face
    for sigma in DEFOCUS:
        blurred = cv2.GaussianBlur(grey, (0, 0), sigma)
        value = sharpness(blurred, inside)
        if value is not None and value <= target:
            break
    return cv2.GaussianBlur(face, (0, 0), sigma)


def _grain(rng: np.random.Generator, shape: tuple[int, int], tile: int = 128) -> np.ndarray:
    """Return unit Gaussian noise of ``shape``: a seeded tile, randomly shifted and repeated (cheap at any size)."""
    base = rng.standard_normal((tile, tile)).astype(np.float32)
    reps = (shape[0] // tile + 2, shape[1] // tile + 2)
    dy, dx = rng.integers(0, tile, 2)
    return np.tile(base, reps)[dy : dy + shape[0], dx : dx + shape[1]]


def _forehead_level(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return each pixel's height above the brows along the face's up direction: 0 at the brows, 1 at
    the forehead line.
    """
    up, _ = geometry.up_vector(points[:68])
    brows = points[geometry.BROWS].mean(axis=0)
    top = points[68 : 68 + geometry.FOREHEAD].mean(axis=0)
    height = max(float((top - brows) @ up), 1e-3)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    level: np.ndarray = ((xs - brows[0]) * up[0] + (ys - brows[1]) * up[1]) / height
    return level


def _forehead_fade(level: np.ndarray, reshape: float = 0.0) -> np.ndarray:
    """Return an alpha cap (from `_forehead_level`) that is 1 up to `FOREHEAD_FADE` of the way from the brows to the
    forehead line and 0 at that line.

    The start of the fade goes from the first value of `FOREHEAD_FADE` to the second with ``reshape``.

    The prototypes' hairlines are averages (a soft, pale band); the original's own upper forehead,
    moved with the outline, meets the hair more naturally.
    """
    start = FOREHEAD_FADE[0] + float(np.clip(reshape, 0.0, 1.0)) * (FOREHEAD_FADE[1] - FOREHEAD_FADE[0])
    return np.clip((1.0 - level) / (1.0 - start), 0.0, 1.0).astype(np.float32)


def _in_band(level: np.ndarray) -> np.ndarray:
    """Return where a `_forehead_level` map is within `FOREHEAD_BAND` (the lower forehead, above the brows)."""
    low, high = FOREHEAD_BAND
    return (level >= low) & (level <= high)


def forehead_band(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return the mask of the lower forehead (`FOREHEAD_BAND` of the way from the brows up) inside the outline."""
    band: np.ndarray = _in_band(_forehead_level(points, size)) & _polygon(geometry.outline(points), size)
    return band


def _match_forehead(face_lab: np.ndarray, level: np.ndarray, band: np.ndarray, original: np.ndarray | None) -> None:
    """Shift the forehead of ``face_lab`` (in place) to the original's median Lab there, fading in from the brows.

    The colour transfer matches the skin below the brows; the prototypes' averaged foreheads are paler
    than their cheeks and showed as a pale band under the original's upper forehead. ``level`` is the
    face's `_forehead_level` map, ``band`` its lower forehead inside the outline.
    """
    if original is None or band.sum() < 16:
        return
    offset = np.clip(original - np.median(face_lab[band], axis=0), -FOREHEAD_SHIFT, FOREHEAD_SHIFT)
    weight = np.clip(level / (2 * FOREHEAD_BAND[0]), 0.0, 1.0)  # full from a fifth of the way up
    face_lab += weight[:, :, None] * offset.astype(np.float32)


def _plain_forehead(face_lab: np.ndarray, level: np.ndarray, band: np.ndarray) -> None:
    """Turn the upper forehead of ``face_lab`` (in place) into plain skin of the lower forehead's median colour
    (`FOREHEAD_PLAIN`).
    """
    if band.sum() < 16:
        return
    low, high = FOREHEAD_PLAIN
    weight = np.clip((level - low) / (high - low), 0.0, 1.0)[:, :, None]
    face_lab += weight * (np.median(face_lab[band], axis=0) - face_lab)


def skin_polygon(points: np.ndarray) -> np.ndarray:
    """Return the polygon (jaw 1-15, then the outer brow ends) whose pixels give the colour and noise statistics."""
    return np.concatenate([points[1:16], points[[26, 17]]])


def skin_only(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return the mask of `skin_polygon` without the eyes, brows and mouth (their hulls, grown a little)."""
    mask = _polygon(skin_polygon(points), size).astype(np.uint8)
    grow = max(3, int(0.12 * float(np.linalg.norm(points[45] - points[36]))))
    for part in geometry.FEATURES:
        hole = np.zeros_like(mask)
        cv2.fillConvexPoly(hole, cv2.convexHull(np.round(points[part]).astype(np.int32)), 1)
        mask[cv2.dilate(hole, np.ones((grow, grow), np.uint8)) > 0] = 0
    return mask > 0


def _polygon(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return the boolean mask of a filled polygon in an image of ``size`` = (width, height)."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, shift=4)
    return mask > 0

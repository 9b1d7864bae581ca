"""Skin detail for a synthetic face: the original's fine skin texture, cut in blocks and shuffled within zones.

The prototypes are averages of many faces at 128 px: smooth, and upscaled on a large face (wax). Real
skin has pores, stubble, fine lines and sensor grain at the frame's own resolution. Those are taken
from the original face's skin only (no eyes, brows, mouth), as its fine residual (the grey image minus
a small blur), cut into blocks, and laid down on the synthetic face's skin in a seeded random order,
each block drawn from the same zone of the face (forehead, cheeks, below the nose: stubble stays where
beards grow). No block keeps its place, so the residual's structure (the outline of a mole, a scar,
the edge of a feature) does not land where it was, and the shapes that identify a face are the
prototype's. Blocks overlap by half under a smooth window, so no seams show.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import geometry

BLUR_SIGMA = 1.2
"""The residual is the grey image minus its Gaussian blur of this sigma (px): the finest band."""
BLOCK_SHARE = 1 / 12
"""Side of a block as a share of the face height (forehead line to chin)."""
MIN_BLOCK, MAX_BLOCK = 6, 32
MIN_FACE = 64.0
"""Faces shorter than this (px) get no detail: their prototype is not upscaled, and there is little skin."""
CLIP = 2.5
"""The residual is clipped at this many robust standard deviations (scaled MAD over the skin): a pore
stays, the sharp edge of a glasses frame, a strand of hair or a mole would land elsewhere as a dark dot."""
EDGY = 4.0
"""Blocks whose energy is above this many times the median block's are left out (an edge ran through them)."""
ZONES = 3
"""Forehead (above the brows), middle (brows to nose tip), lower (below the nose tip: beard, chin)."""


@dataclass(frozen=True)
class SkinDetail:
    """The original face's skin residual, in blocks sorted by zone (see `sample`)."""

    blocks: tuple[np.ndarray, ...]
    """Per zone: (N, side, side) float32 residual blocks cut from the original's skin."""
    side: int
    energy: float
    """Mean square of the residual over the original's skin."""


def residual(grey: np.ndarray) -> np.ndarray:
    """Return the finest band of a grey float image (the image minus its small Gaussian blur)."""
    return grey - cv2.GaussianBlur(grey, (0, 0), BLUR_SIGMA)


def zones(points68: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return each pixel's zone (0 forehead, 1 middle, 2 lower) for a face with these 68 landmarks."""
    up, _ = geometry.up_vector(points68)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    level = xs * up[0] + ys * up[1]  # grows towards the top of the face
    brows = float(points68[geometry.BROWS].mean(axis=0) @ up)
    nose = float(points68[33] @ up)
    return np.where(level >= brows, 0, np.where(level >= nose, 1, 2)).astype(np.uint8)


def sample(grey: np.ndarray, skin: np.ndarray, points68: np.ndarray) -> SkinDetail | None:
    """Return the skin detail of a face: ``grey`` (float32) and ``skin`` (bool) cover the face's patch.

    ``points68`` are the landmarks in the patch's coordinates. ``None`` for a face too small or with
    too little clear skin to cut blocks from.
    """
    height = float(np.ptp(points68[:, 1])) * 1.25  # landmarks span brows to chin; the face reaches the hairline
    if height < MIN_FACE:
        return None
    side = int(np.clip(round(height * BLOCK_SHARE), MIN_BLOCK, MAX_BLOCK))
    detail = residual(grey)
    values = detail[skin]
    if len(values) < 16:
        return None
    spread = 1.4826 * float(np.median(np.abs(values - np.median(values)))) + 1e-3
    detail = np.clip(detail, -CLIP * spread, CLIP * spread)
    where = zones(points68, (grey.shape[1], grey.shape[0]))
    step = max(2, side // 2)
    found: list[list[np.ndarray]] = [[] for _ in range(ZONES)]
    for y in range(0, grey.shape[0] - side + 1, step):
        for x in range(0, grey.shape[1] - side + 1, step):
            if skin[y : y + side, x : x + side].all():
                found[int(where[y + side // 2, x + side // 2])].append(detail[y : y + side, x : x + side])
    every = [b for zone in found for b in zone]
    if len(every) < 4:
        return None
    energies = [[float(np.mean(b**2)) for b in zone] for zone in found]
    limit = EDGY * float(np.median([e for zone in energies for e in zone]))
    found = [[b for b, e in zip(zone, each) if e <= limit] for zone, each in zip(found, energies)]
    every = [b for zone in found for b in zone]
    blocks = tuple(np.stack(zone if len(zone) >= 3 else every).astype(np.float32) for zone in found)
    return SkinDetail(blocks, side, float(np.mean(detail[skin] ** 2)))


def lay(detail: SkinDetail, points68: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Return a (height, width) residual for a face with landmarks ``points68`` in a patch of ``size``.

    Blocks from ``detail`` of each pixel's zone are drawn at random and overlapped by half under a
    Hann window, so the texture is continuous; the sum is divided by the root of the summed squared
    weights, which keeps the energy of independent blocks (dividing by the summed weights would halve it).
    """
    side = detail.side
    step = side // 2
    window = np.outer(np.hanning(side + 2)[1:-1], np.hanning(side + 2)[1:-1]).astype(np.float32)
    width, height = size
    out = np.zeros((height + 2 * side, width + 2 * side), np.float32)
    weight = np.zeros_like(out)
    where = zones(points68, size)
    for y in range(-step, height, step):
        for x in range(-step, width, step):
            cy, cx = min(max(y + step, 0), height - 1), min(max(x + step, 0), width - 1)
            pool = detail.blocks[int(where[cy, cx])]
            block = pool[int(rng.integers(len(pool)))]
            if rng.random() < 0.5:
                block = block[:, ::-1]
            out[y + side : y + 2 * side, x + side : x + 2 * side] += window * block
            weight[y + side : y + 2 * side, x + side : x + 2 * side] += window**2
    out /= np.sqrt(np.maximum(weight, 1e-6))
    return out[side : side + height, side : side + width]

"""Piecewise-affine warping between two layouts of the same points (one affine map per triangle)."""

from __future__ import annotations

import cv2
import numpy as np


def triangulate(points: np.ndarray) -> np.ndarray:
    """Return ``(T, 3)`` point indices of the Delaunay triangles of ``points``."""
    points = np.asarray(points, dtype=np.float64)
    low = points.min(axis=0) - 10
    high = points.max(axis=0) + 10
    subdiv = cv2.Subdiv2D((int(low[0]), int(low[1]), int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1))
    for x, y in points:
        subdiv.insert((float(x), float(y)))
    lookup = {(round(float(x), 3), round(float(y), 3)): i for i, (x, y) in enumerate(points)}
    triangles = []
    for row in subdiv.getTriangleList():
        corners = [lookup.get((round(float(row[j]), 3), round(float(row[j + 1]), 3))) for j in (0, 2, 4)]
        if None not in corners:
            triangles.append(corners)
    return np.array(triangles, dtype=np.int32)


def _affines(target: np.ndarray, source: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Return ``(T, 2, 3)`` maps taking each target triangle onto its source triangle (NaN for a degenerate one)."""
    dst = target[triangles]  # (T, 3, 2)
    area = (dst[:, 1, 0] - dst[:, 0, 0]) * (dst[:, 2, 1] - dst[:, 0, 1]) - (dst[:, 2, 0] - dst[:, 0, 0]) * (
        dst[:, 1, 1] - dst[:, 0, 1]
    )
    ok = np.abs(area) >= 1e-9
    corners = np.concatenate([dst, np.ones((len(triangles), 3, 1))], axis=2)  # rows [x, y, 1]
    corners[~ok] = np.eye(3)
    maps = np.linalg.solve(corners, source[triangles]).transpose(0, 2, 1)  # [x, y, 1] @ maps.T = source
    maps[~ok] = np.nan
    return maps


def warp(
    image: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    triangles: np.ndarray,
    size: tuple[int, int],
    origin: tuple[float, float] = (0.0, 0.0),
    border: int = cv2.BORDER_REFLECT_101,
    grid: int = 192,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``image`` warped so ``source`` points land on ``target`` points, and the covered-pixel mask.

    The output is ``size`` = (width, height) pixels whose top-left pixel is ``origin`` in the target's
    coordinates. Pixels outside every triangle get mask 0 and the image's own pixel at that place (identity map). The
    map is
    piecewise linear, so for outputs larger than ``grid`` pixels it is computed on a coarser grid and
    interpolated (the image itself is still sampled at full resolution).
    """
    full_width, full_height = size
    step = max(1.0, max(size) / grid)
    width, height = max(1, int(np.ceil(full_width / step))), max(1, int(np.ceil(full_height / step)))
    ids = np.full((height, width), -1, dtype=np.int32)
    shifted = (np.asarray(target, dtype=np.float64) - np.asarray(origin, dtype=np.float64)) / step
    inverse = _affines(shifted * step, np.asarray(source, dtype=np.float64), triangles)
    corners = np.round(shifted[triangles] * 16).astype(np.int32)
    for index in np.flatnonzero(inverse[:, 0, 0] == inverse[:, 0, 0]):  # NaN marks a degenerate triangle
        cv2.fillConvexPoly(ids, corners[index], int(index), lineType=cv2.LINE_8, shift=4)
    covered = ids >= 0
    ys, xs = np.nonzero(covered)
    matrices = inverse[ids[covered]]
    # uncovered pixels map to where they are (plus origin): outside the triangles the warp is the identity
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32) * step
    map_x = grid_x + np.float32(origin[0])
    map_y = grid_y + np.float32(origin[1])
    px, py = xs * step, ys * step
    map_x[covered] = matrices[:, 0, 0] * px + matrices[:, 0, 1] * py + matrices[:, 0, 2]
    map_y[covered] = matrices[:, 1, 0] * px + matrices[:, 1, 1] * py + matrices[:, 1, 2]
    if step > 1.0:
        map_x = cv2.resize(map_x, (full_width, full_height), interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize(map_y, (full_width, full_height), interpolation=cv2.INTER_LINEAR)
        covered = cv2.resize(covered.astype(np.uint8), (full_width, full_height), interpolation=cv2.INTER_NEAREST) > 0
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=border)
    return out, covered


def distortion(
    source: np.ndarray, target: np.ndarray, triangles: np.ndarray, small: float = 0.05
) -> tuple[float, bool]:
    """Return how far the piecewise-affine map from ``source`` to ``target`` deforms its triangles.

    The first value is the largest stretch: over the triangles, the ratio of the larger to the smaller
    singular value of the triangle's linear map (1 for a similarity; a head turned 60 degrees shows about
    2 from foreshortening). The second says whether any triangle folds over (its orientation flips
    against the majority's, so the texture is mirrored there). Triangles smaller than ``small`` of the
    median area on either side are left out (the inner lips of a closed mouth collapse by design).
    """
    src = np.asarray(source, dtype=np.float64)[triangles]
    dst = np.asarray(target, dtype=np.float64)[triangles]
    s = np.stack([src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]], axis=2)  # (T, 2, 2): edge vectors as columns
    d = np.stack([dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]], axis=2)
    det_s, det_d = np.linalg.det(s), np.linalg.det(d)
    usable = (np.abs(det_s) > small * np.median(np.abs(det_s))) & (np.abs(det_d) > small * np.median(np.abs(det_d)))
    if not usable.any():
        return float("inf"), True
    signs = np.sign(det_d[usable] * det_s[usable])
    majority = 1.0 if (signs > 0).sum() >= (signs < 0).sum() else -1.0
    singular = np.linalg.svd(d[usable] @ np.linalg.inv(s[usable]), compute_uv=False)  # (T, 2), descending
    ratio = singular[:, 0] / np.maximum(singular[:, 1], 1e-9)
    return float(ratio.max()), bool(np.any(signs != majority))

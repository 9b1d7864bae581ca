"""2-D point transforms shared by alignment and synthesis: the least-squares similarity map and its use."""

from __future__ import annotations

import numpy as np


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Return the 2x3 least-squares similarity transform taking ``source`` points onto ``target``.

    Umeyama's closed form on all points (no sampling: the same points always give the same map).
    Raises ``ValueError`` when the source points are degenerate (all in one place).
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    variance = (s**2).sum() / len(s)
    if variance < 1e-6:
        raise ValueError("degenerate points: all in one place")
    u, sigma, vt = np.linalg.svd(t.T @ s / len(s))
    d = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ d @ vt
    factor = float(np.trace(np.diag(sigma) @ d)) / variance
    matrix = np.empty((2, 3))
    matrix[:, :2] = factor * rotation
    matrix[:, 2] = mu_t - factor * rotation @ mu_s
    return matrix


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Return ``points`` mapped by a 2x3 matrix."""
    points = np.asarray(points, dtype=np.float64)
    mapped: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return mapped

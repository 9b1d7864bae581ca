"""Faceness: is a detection a real human face? `FacenessCheck` protocol and the ``face-mesh`` backend."""

from . import face_mesh  # noqa: F401  (registers the backend)
from .base import FACENESS, FACENESS_THRESHOLD, FacenessCheck, mark_doubtful

__all__ = ["FACENESS", "FACENESS_THRESHOLD", "FacenessCheck", "mark_doubtful"]

"""Facial landmarks: `Landmarker` protocol and the ``dlib68`` backend."""

from . import dlib68  # noqa: F401  (registers the backend)
from .base import LANDMARKERS, Landmarker, five_from_68

__all__ = ["LANDMARKERS", "Landmarker", "five_from_68"]

"""Conventional anonymisation: ``blur``, ``pixelate`` and ``mask`` over a box or an ellipse."""

from .obscurers import OBSCURERS, Blur, Obscurer, Pixelate, SolidMask, region_mask

__all__ = ["OBSCURERS", "Blur", "Obscurer", "Pixelate", "SolidMask", "region_mask"]

"""DeepPrivacy2's face generator, re-implemented from its specification, as a synthesis backend.

Needs PyTorch (``pip install 'condanon[dp2]'``) and a checkpoint (docs/dp2.md). Importing this package
without PyTorch raises `condanon.errors.ModelError` saying so; the rest of condanon never imports it
unless the ``dp2`` method is asked for.
"""

from __future__ import annotations

from ..errors import ModelError

try:
    import torch as _torch  # only to fail early with an actionable message

    del _torch
except ImportError:  # pragma: no cover - depends on the install
    raise ModelError(
        "the dp2 method needs PyTorch: pip install 'condanon[dp2]' (torch==2.13.0 takes the CPU build)"
    ) from None

from .checkpoint import load_generator, load_strict
from .generator import CONFIGS, FDF128, FDF256, FaceGenerator, GeneratorConfig

__all__ = ["CONFIGS", "FDF128", "FDF256", "FaceGenerator", "GeneratorConfig", "load_generator", "load_strict"]

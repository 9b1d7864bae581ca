"""Face detection: `Detector` protocol and backends (``yunet``, ``hog``, ``haar``, ``blazeface``, and ensembles such as
``yunet+hog``, ``yunet+blazeface``).
"""

from . import blazeface, ensemble, haar, hog, yunet  # noqa: F401  (registers the backends)
from .base import DETECTORS, Detector, PaddedDetector, pad_with_mean, suppress

__all__ = ["DETECTORS", "Detector", "PaddedDetector", "pad_with_mean", "suppress"]

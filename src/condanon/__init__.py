"""condanon: conditional facial anonymisation that keeps age, sex and emotion, and checks its own output.

    import condanon
    result = condanon.Anonymizer(method="pixelate").anonymize("photo.jpg")
    result.image            # anonymised BGR array (the caller's channel order for arrays and PIL images)
    result.to_json()        # one report per face: box, attributes before/after, identity checks, verdict
    condanon.analyze("photo.jpg")   # faces with age, sex, emotion; the image is not changed

Nothing is printed: the library logs to the ``condanon`` logger.
"""

import logging

from .errors import CondanonError, ConfigError, ImageError, ModelError
from .pipeline import Anonymizer, BatchItem, analyze, anonymize
from .types import Attributes, Box, Face, FaceReport, IdentityCheck, Result

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Anonymizer",
    "Attributes",
    "BatchItem",
    "Box",
    "CondanonError",
    "ConfigError",
    "Face",
    "FaceReport",
    "IdentityCheck",
    "ImageError",
    "ModelError",
    "Result",
    "analyze",
    "anonymize",
]

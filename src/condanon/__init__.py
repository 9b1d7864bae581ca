"""condanon: conditional facial anonymisation that keeps age, sex and emotion, and checks its own output.

    import condanon
    result = condanon.Anonymizer("pixelate").anonymize("photo.jpg")
    condanon.Anonymizer(condanon.BlurOptions(strength=0.3), checks=condanon.Checks(attacker="dlib"))
    result.image            # anonymised BGR array (the caller's channel order for arrays and PIL images)
    result.to_json()        # one report per face: box, identity checks, verdict (and attributes before/after
                            # where read: synthetic and dp2 always, blur/pixelate/mask when Checks asks)
    condanon.analyze("photo.jpg")   # faces with age, sex, emotion; the image is not changed

Nothing is printed: the library logs to the ``condanon`` logger.
"""

import logging

from .errors import CondanonError, ConfigError, ImageError, ModelError
from .failures import Failure
from .methods import (
    BlurOptions,
    DP2Options,
    MaskOptions,
    MethodOptions,
    PixelateOptions,
    SynthesisOptions,
    SyntheticOptions,
    register_method,
)
from .options import Checks, Detection
from .pipeline import Anonymizer, BatchItem, analyze, anonymize
from .types import Attributes, Box, Face, FaceReport, IdentityCheck, Result

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Anonymizer",
    "Attributes",
    "BatchItem",
    "BlurOptions",
    "Box",
    "Checks",
    "CondanonError",
    "ConfigError",
    "DP2Options",
    "Detection",
    "Face",
    "FaceReport",
    "Failure",
    "IdentityCheck",
    "ImageError",
    "MaskOptions",
    "MethodOptions",
    "ModelError",
    "PixelateOptions",
    "Result",
    "SynthesisOptions",
    "SyntheticOptions",
    "analyze",
    "anonymize",
    "register_method",
]

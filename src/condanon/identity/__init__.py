"""Identity embeddings: `Embedder` protocol and the ``sface`` and ``dlib`` backends."""

from . import dlib_resnet, sface  # noqa: F401  (registers the backends)
from .base import EMBEDDERS, Embedder, embed_original, is_match, similarity
from .judge import judge, safe_side, unjudged

__all__ = ["EMBEDDERS", "Embedder", "embed_original", "is_match", "judge", "safe_side", "similarity", "unjudged"]

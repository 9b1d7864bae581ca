"""The exceptions condanon raises; each message is one line a user can act on."""

from __future__ import annotations


class CondanonError(Exception):
    """Base class of every error condanon raises on purpose."""


class ConfigError(CondanonError, ValueError):
    """An option or backend name is not valid."""


class ImageError(CondanonError, ValueError):
    """An input cannot be read as an image, or has dimensions we refuse to process."""


class ModelError(CondanonError, RuntimeError):
    """A model file is missing, corrupt, or its backend is not installed."""


class VideoError(CondanonError, ValueError):
    """A video or stream cannot be opened, decoded or written."""

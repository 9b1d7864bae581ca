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


def one_line(error: BaseException, whole: bool = False) -> str:
    """Return an exception's message as one line: its first line, or with ``whole`` every line joined.

    An empty message gives the exception's type name.
    """
    text = str(error).strip()
    line = " ".join(text.split()) if whole else (text.splitlines()[0] if text else "")
    return line or type(error).__name__


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def show_path(path: object) -> str:
    """Return ``path`` as text safe for one line of a terminal: control characters escaped as ``repr`` does.

    Newlines, carriage returns, ANSI escape sequences, bidirectional overrides and undecodable bytes
    (surrogates) become ``\\n``, ``\\x1b``, ``\\u202e``..., so a file name cannot forge or hide a line.
    Used for every path (and every message holding one) that reaches stderr.
    """
    text = str(path)
    return text if text.isprintable() else "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

"""Reading a request's upload within its limits, and telling what a file really is from its first bytes.

An image request's file is held in memory only; a job's files stream into the spool folder (`ServeConfig.spool`),
each created owner-only. The body is counted as it arrives, so a client that lies about its length (or sends it
chunked) is cut off at the limit (413), and one that sends too slowly at the request timeout (408).
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from .errors import ApiError

IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
IMAGE_TYPES |= {"TIFF": "image/tiff", "BMP": "image/bmp"}
SUFFIX_OF_TYPE = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/tiff": ".tif",
    "image/bmp": ".bmp",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "video/webm": ".webm",
    "video/x-msvideo": ".avi",
}
MAX_FIELD_BYTES = 64 * 1024
"""Largest form field that is not a file (the options)."""


def sniff(head: bytes) -> str | None:
    """Return the media type the first bytes of a file show (an image or video format condanon reads), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:2] == b"BM" and len(head) >= 26:
        return "image/bmp"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:10] == b"qt" else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    return None


def check_type(declared: str, head: bytes, what: str, kinds: tuple[str, ...] = ("image",)) -> str:
    """Return the sniffed media type of an uploaded file; raise 415 unless it is of ``kinds`` and its declared type
    does not say otherwise (``application/octet-stream`` or none is accepted: the bytes decide)."""
    declared = declared.split(";", 1)[0].strip().lower()
    if declared and declared != "application/octet-stream" and declared.split("/", 1)[0] not in kinds:
        raise ApiError(415, f"{what}: sent as {declared}, not {' or '.join(kinds)}")
    found = sniff(head)
    if found is None or found.split("/", 1)[0] not in kinds:
        names = "an image (JPEG, PNG, GIF, WebP, TIFF, BMP)"
        if "video" in kinds:
            names += " or a video (MP4, MOV, MKV, WebM, AVI)"
        raise ApiError(415, f"{what}: its content is not {names}")
    return found


@dataclass
class Part:
    """One field of a multipart form: a value, or a file held in memory or spooled to ``path``."""

    name: str
    filename: str | None = None
    content_type: str = ""
    data: bytearray = field(default_factory=bytearray)
    """The value, or the file's bytes when held in memory (its first bytes only, when spooled)."""
    path: Path | None = None
    size: int = 0
    handle: IO[bytes] | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class Form:
    """A multipart form read within limits; files go to memory, or to ``spool`` when one is given."""

    def __init__(self, content_type: str, limit: int, spool: Path | None = None, max_files: int = 1) -> None:
        kind, params = parse_options_header(content_type)
        if kind != b"multipart/form-data" or not params.get(b"boundary"):
            raise ApiError(415, "send the request as multipart/form-data (a 'file' field)")
        self.limit = limit
        self.spool = spool
        self.max_files = max_files
        self.parts: list[Part] = []
        self.size = 0
        self._header_field = b""
        self._headers: dict[bytes, bytes] = {}
        self._part: Part | None = None
        callbacks: Any = {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }
        self._parser = MultipartParser(params[b"boundary"], callbacks)

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body; raise 413 past the limit, 400 for a broken form."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise ApiError(413, f"the upload is over the {self.limit / 2**20:g} MiB limit")
        try:
            self._parser.write(chunk)
        except ApiError:
            raise
        except Exception as error:
            raise ApiError(400, f"a broken multipart form ({type(error).__name__})") from None

    def close(self) -> None:
        """Close any spooled file left open (a broken or cut-off upload)."""
        for part in self.parts:
            if part.handle is not None:
                part.handle.close()
                part.handle = None

    def files(self, name: str) -> list[Part]:
        return [part for part in self.parts if part.name == name and part.filename is not None]

    def values(self) -> dict[str, str]:
        """Return the fields that are not files, by name (the last one wins)."""
        return {part.name: part.text for part in self.parts if part.filename is None}

    def _free(self, name: str) -> Path:
        """Return a name in the spool that no earlier file of this upload took (``x.jpg``, ``x-2.jpg``, ...)."""
        assert self.spool is not None
        path, number = self.spool / name, 1
        while path.exists():
            number += 1
            path = self.spool / f"{Path(name).stem}-{number}{Path(name).suffix}"
        return path

    # -- the parser's callbacks -------------------------------------------------------------------

    def _begin(self) -> None:
        self._headers = {}
        self._header_field = b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        key = self._header_field.lower()
        self._headers[key] = self._headers.get(key, b"") + data[start:end]

    def _header_end(self) -> None:
        self._header_field = b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        part = Part(name, None if filename is None else filename.decode("utf-8", "replace"))
        part.content_type = self._headers.get(b"content-type", b"").decode("latin-1")
        if part.filename is not None:
            if sum(1 for other in self.parts if other.filename is not None) >= self.max_files:
                raise ApiError(413, f"more than {self.max_files} files in one request")
            if self.spool is not None:
                part.path = self._free(safe_name(part.filename))
                fd = os.open(part.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                part.handle = os.fdopen(fd, "wb")
        self.parts.append(part)
        self._part = part
        self._header_field = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert part is not None
        chunk = data[start:end]
        part.size += len(chunk)
        if part.handle is not None:
            if len(part.data) < 64:
                part.data += chunk[: 64 - len(part.data)]
            part.handle.write(chunk)
        else:
            if part.filename is None and part.size > MAX_FIELD_BYTES:
                raise ApiError(413, f"form field {part.name!r} is over {MAX_FIELD_BYTES // 1024} KiB")
            part.data += chunk

    def _end(self) -> None:
        part = self._part
        if part is not None and part.handle is not None:
            part.handle.close()
            part.handle = None
        self._part = None


def safe_name(filename: str) -> str:
    """Return a file name that is safe to create and to pass on: the last component only, tame characters, no leading
    dot or dash."""
    base = re.split(r"[\\/]", filename)[-1]
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .-") or "upload"
    return base[:120]


async def read_form(
    request: Request, limit: int, timeout: float, spool: Path | None = None, max_files: int = 1
) -> Form:
    """Return the request's multipart form, read within ``limit`` bytes and ``timeout`` seconds."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"the upload is over the {limit / 2**20:g} MiB limit")
    form = Form(request.headers.get("content-type", ""), limit, spool, max_files)
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                form.feed(chunk)
    except TimeoutError:
        raise ApiError(408, f"the upload took longer than {timeout:g} s") from None
    finally:
        form.close()
    return form

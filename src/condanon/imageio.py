"""Reading inputs into BGR arrays and writing outputs atomically, without metadata unless asked.

Every input passes the same checks: it decodes completely (a truncated file is an error, not a grey
half-image), it has 3 or fewer channels, and its size is between `MIN_SIDE` and `MAX_PIXELS`.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, one_line
from .types import Channels

MIN_SIDE = 8
MAX_PIXELS = 150_000_000
"""Larger inputs are refused (a 12k x 12k frame): they are decompression bombs or mistakes."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# PIL's own bomb guard would warn below MAX_PIXELS and raise above 2x; we check ourselves.
Image.MAX_IMAGE_PIXELS = None


def _check_shape(shape: tuple[int, ...], what: str) -> None:
    if len(shape) < 2:
        raise ImageError(f"{what}: not an image (array of shape {shape})")
    height, width = shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"{what}: image is {width}x{height} px, smaller than {MIN_SIDE} px on a side")
    if height * width > MAX_PIXELS:
        raise ImageError(
            f"{what}: image is {width}x{height} px ({height * width / 1e6:.0f} MP), over the "
            f"{MAX_PIXELS / 1e6:.0f} MP limit"
        )


def as_bgr(image: Any, channels: Channels = "bgr") -> tuple[np.ndarray, Channels, str | None]:
    """Return ``(bgr_copy, channels_of_caller, source)`` for a path, PIL image or numpy array.

    numpy arrays are taken in the order named by ``channels`` (OpenCV's ``"bgr"`` by default); PIL
    images are RGB by nature, so their results come back as ``"rgb"``. The caller's array is never
    modified: the returned array is always a new one.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image), "bgr", str(image)
    if isinstance(image, Image.Image):
        return pil_to_bgr(image, "PIL image"), "rgb", None
    if isinstance(image, np.ndarray):
        return array_to_bgr(image, channels), channels, None
    raise ImageError(f"cannot read an image from a {type(image).__name__}; give a path, a PIL image or a numpy array")


def array_to_bgr(array: np.ndarray, channels: Channels = "bgr") -> np.ndarray:
    """Return a new contiguous BGR uint8 copy of an ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array."""
    if channels not in ("bgr", "rgb"):
        raise ImageError(f"channels must be 'bgr' or 'rgb', not {channels!r}")
    _check_shape(array.shape, "array")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
            array = np.clip(np.nan_to_num(array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(f"array of shape {array.shape} is not an image (want HxW, HxWx3 or HxWx4)")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    array = array[:, :, :3]
    if channels == "rgb":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array).copy()


def pil_to_bgr(image: Image.Image, what: str) -> np.ndarray:
    """Return a BGR uint8 array of a PIL image, upright according to its EXIF orientation."""
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not stop us reading the pixels
        pass
    if image.mode != "RGB":
        image = image.convert("RGB")
    rgb = np.asarray(image)
    _check_shape(rgb.shape, what)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Return the image at ``path`` as a BGR uint8 array; raise `ImageError` with one line if it cannot be used."""
    name = str(path)
    if not os.path.exists(name):
        raise ImageError(f"{name}: no such file")
    if os.path.isdir(name):
        raise ImageError(f"{name}: is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(name) as image:
                width, height = image.size
                _check_shape((height, width), name)
                image.load()  # decodes everything now: a truncated file raises here
                return pil_to_bgr(image, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unknown or unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name}: unreadable or truncated image ({one_line(error)})") from None


def metadata_of(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the metadata of the image at ``path`` that `write_image` can carry over (EXIF, ICC profile)."""
    with Image.open(path) as image:
        meta: dict[str, Any] = {}
        exif = image.getexif()
        if exif:
            # The pixels were turned upright on reading, so the orientation tag must not turn them again.
            exif[0x0112] = 1
            meta["exif"] = exif.tobytes()
        if image.info.get("icc_profile"):
            meta["icc_profile"] = image.info["icc_profile"]
        return meta


def encode_image(bgr: np.ndarray, suffix: str, metadata: dict[str, Any] | None = None, quality: int = 95) -> bytes:
    """Return the encoded bytes of a BGR image in the format named by ``suffix`` (no metadata unless given)."""
    suffix = suffix.lower()
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
    if suffix not in formats:
        raise ImageError(f"cannot write images as {suffix or 'files without a suffix'} (use one of {', '.join(formats)})")
    image = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    options: dict[str, Any] = dict(metadata or {})
    if formats[suffix] in ("JPEG", "WEBP"):
        options["quality"] = quality
    if formats[suffix] == "BMP":
        options = {}
    buffer = io.BytesIO()
    image.save(buffer, format=formats[suffix], **options)
    return buffer.getvalue()


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename: never a half-written file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_image(
    path: str | os.PathLike[str], bgr: np.ndarray, metadata: dict[str, Any] | None = None, quality: int = 95
) -> None:
    """Encode a BGR image by the suffix of ``path`` and write it atomically (metadata only if given)."""
    write_atomic(path, encode_image(bgr, Path(path).suffix, metadata, quality))


def list_images(
    inputs: list[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES, skip_hidden: bool = False
) -> list[tuple[Path, Path]]:
    """Return ``(file, relative_name)`` for every input file and every file with one of ``suffixes`` under input folders.

    Folders are walked recursively and sorted (without files whose name starts with a dot when
    ``skip_hidden``); files named directly are kept whatever their suffix,
    so that a wrong file gets its own error instead of being skipped silently.
    """
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            for file in sorted(
                p for p in root.rglob("*")
                if p.is_file() and p.suffix.lower() in suffixes and not (skip_hidden and p.name.startswith("."))
            ):
                found.append((file, file.relative_to(root)))
        else:
            found.append((root, Path(root.name)))
    return found

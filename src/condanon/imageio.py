"""Reading inputs into BGR arrays and writing outputs atomically, without metadata unless asked.

Every input passes the same checks: it decodes completely (a truncated file is an error, not a grey
half-image), it has 3 or fewer channels, and its size is between `MIN_SIDE` and `MAX_PIXELS`.
"""

from __future__ import annotations

import contextlib
import glob
import io
import logging
import os
import re
import secrets
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CondanonError, ImageError, one_line, show_path
from .types import Channels

log = logging.getLogger(__name__)

MIN_SIDE = 8
MAX_PIXELS = 150_000_000
"""Larger inputs are refused (a 12k x 12k frame): they are decompression bombs or mistakes.

Checked here from the header, before anything is decoded; Pillow's own global guard
(``Image.MAX_IMAGE_PIXELS``) belongs to the host program and is left as it is.
"""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
}


def suffix_of_format(image_format: str | None) -> str:
    """Return the suffix condanon writes a Pillow format under (``JPEG`` and a camera's ``MPO``: ``.jpg``); ``.png``
    for a format it does not write."""
    if image_format == "MPO":
        image_format = "JPEG"
    return next((suffix for suffix, kind in _FORMATS.items() if kind == image_format), ".png")


_BOMB = re.compile(r"\((\d+) pixels\)")


class PixelLimitError(ImageError):
    """An image with more pixels than the limit (it is refused from its header, before it is decoded)."""


def _check_shape(shape: tuple[int, ...], what: str) -> None:
    if len(shape) < 2:
        raise ImageError(f"{what}: not an image (array of shape {shape})")
    height, width = shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"{what}: image is {width}x{height} px, smaller than {MIN_SIDE} px on a side")
    if height * width > MAX_PIXELS:
        raise PixelLimitError(
            f"{what}: image is {width}x{height} px ({height * width / 1e6:.0f} MP), over the "
            f"{MAX_PIXELS / 1e6:.0f} MP limit"
        )


def as_bgr(image: Any, channels: Channels = "bgr") -> tuple[np.ndarray, Channels, str | None]:
    """Return ``(bgr_copy, channels_of_caller, source)`` for a path, PIL image or numpy array.

    numpy arrays are taken in the order named by ``channels`` (OpenCV's ``"bgr"`` by default); PIL
    images are RGB by nature, so their results come back as ``"rgb"``. The caller's array is never
    modified: the returned array is always a new one. See `array_to_bgr` for the dtypes and shapes read.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image), "bgr", str(image)
    if isinstance(image, Image.Image):
        return pil_to_bgr(image, "PIL image"), "rgb", None
    if isinstance(image, np.ndarray):
        return array_to_bgr(image, channels), channels, None
    raise ImageError(f"cannot read an image from a {type(image).__name__}; give a path, a PIL image or a numpy array")


def array_to_bgr(array: np.ndarray, channels: Channels = "bgr", what: str = "array") -> np.ndarray:
    """Return a new contiguous BGR uint8 copy of an ``(H, W)`` or ``(H, W, C)`` array, C in 1..4.

    dtypes: uint8 as is; uint16 scaled down by 257; bool as 0/255; other integers when their values
    are 0..255; floats in [0, 1] times 255, floats in [0, 255] as they are (NaN, infinities and other
    ranges are refused). Channels: 1 or 2 (grey, grey+alpha) become 3 grey ones; a 4th (alpha) is dropped.
    Anything else raises `ImageError` with one line.
    """
    if channels not in ("bgr", "rgb"):
        raise ImageError(f"channels must be 'bgr' or 'rgb', not {channels!r}")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        raise ImageError(f"{what} of shape {array.shape} is not an image (want HxW or HxWxC with C = 1, 2, 3 or 4)")
    _check_shape(array.shape, what)
    array = _to_uint8(array, what)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] in (1, 2):
        array = np.repeat(array[:, :, :1], 3, axis=2)
    array = array[:, :, :3]
    if channels == "rgb":
        array = array[:, :, ::-1]
    return np.array(array, dtype=np.uint8, order="C", copy=True)


def _to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """Return ``array``'s pixel values as uint8 (see `array_to_bgr`); raise `ImageError` for what is not pixels."""
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "u" and size == 1:
        return array
    if kind == "b":
        return array.astype(np.uint8) * np.uint8(255)
    if kind == "u" and size == 2:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageError(
                f"{what}: {array.dtype} values {low}..{high} are not pixel values (want 0..255, or uint16)"
            )
        return array.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(array).all():
            raise ImageError(f"{what}: {array.dtype} array holds NaN or infinite values")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"{what}: {array.dtype} values {lo:g}..{hi:g} are not pixel values (want 0..1, or 0..255)")
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.clip(array.astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8)
    raise ImageError(f"{what}: unsupported dtype {array.dtype} (want uint8, uint16, bool, integers or floats)")


def pil_to_bgr(image: Image.Image, what: str) -> np.ndarray:
    """Return a BGR uint8 array of a PIL image, upright according to its EXIF orientation.

    16-bit and 32-bit modes (``I;16``, ``I``, ``F``) are scaled to 8 bits (see `array_to_bgr`), not clipped.
    """
    width, height = image.size
    _check_shape((height, width), what)
    with contextlib.suppress(Exception):  # a broken EXIF block must not stop us reading the pixels
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):
        return array_to_bgr(np.asarray(image).astype(np.uint16), "bgr", what)
    if image.mode == "I":
        pixels = np.asarray(image)
        high = int(pixels.max()) if pixels.size else 0
        if 255 < high <= 65535 and int(pixels.min()) >= 0:  # 16-bit values held in 32 bits
            pixels = pixels.astype(np.uint16)
        return array_to_bgr(pixels, "bgr", what)
    if image.mode == "F":
        return array_to_bgr(np.asarray(image), "bgr", what)
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except (ValueError, OSError) as error:
            raise ImageError(f"{what}: cannot convert its {image.mode} pixels to RGB ({one_line(error)})") from None
    rgb = np.asarray(image)
    _check_shape(rgb.shape, what)
    return np.ascontiguousarray(rgb[:, :, ::-1])


@dataclass
class Frames:
    """The frames (or pages) of an image file as BGR arrays, with what is needed to write them back."""

    images: list[np.ndarray]
    format: str | None = None
    durations: list[int] = field(default_factory=list)
    loop: int | None = None
    alpha: np.ndarray | None = None
    """The transparency of a single-frame image that has some (written back where the format holds it)."""


def _alpha_of(image: Image.Image) -> np.ndarray | None:
    """Return the alpha channel of ``image`` (upright) when it has one that is not all opaque, else None."""
    if "A" not in image.getbands() and not (image.mode in ("P", "L", "RGB") and "transparency" in image.info):
        return None
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:
        upright = image
    alpha = np.asarray(upright.convert("RGBA").getchannel("A"))
    return None if alpha.size == 0 or int(alpha.min()) == 255 else np.ascontiguousarray(alpha)


ImageSource = str | os.PathLike[str] | bytes
"""A path, or an encoded image held in memory (an upload: it is never written to disk to be read)."""


def _open(path: ImageSource, name: str | None = None) -> tuple[str, Image.Image]:
    """Return the name and the opened (not decoded) image at ``path`` (or in its bytes), its size checked from the
    header."""
    if isinstance(path, bytes):
        name = show_path(name or "upload")
        opened: Any = io.BytesIO(path)
    else:
        name = show_path(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except OSError as error:
            raise ImageError(f"{name}: cannot read: {error.strerror or one_line(error)}") from None
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{name}: is a folder, not an image")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{name}: not a regular file (a FIFO, socket or device is never read)")
        opened = path
    try:
        image = Image.open(opened)
    except Image.DecompressionBombError as error:
        found = _BOMB.search(str(error))
        pixels = int(found.group(1)) if found else None
        if pixels is not None and pixels > MAX_PIXELS:
            raise PixelLimitError(
                f"{name}: image is {pixels / 1e6:.0f} MP, over the {MAX_PIXELS / 1e6:.0f} MP limit"
            ) from None
        raise ImageError(f"{name}: refused by the host program's Pillow pixel limit ({one_line(error)})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unknown or unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name}: unreadable or truncated image ({one_line(error)})") from None
    try:
        width, height = image.size
        _check_shape((height, width), name)
    except BaseException:
        image.close()
        raise
    return name, image


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Return the image at ``path`` as a BGR uint8 array; raise `ImageError` with one line if it cannot be used.

    A file of several frames or pages (animated GIF, multi-page TIFF) is refused rather than cut to
    its first: read it with `read_frames`.
    """
    frames = read_frames(path, max_frames=1)
    return frames.images[0]


def read_frames(
    path: ImageSource, max_frames: int | None = None, name: str | None = None, max_pixels: int = MAX_PIXELS
) -> Frames:
    """Return every frame (or page) of the image at ``path`` (a path, or encoded bytes named ``name`` in errors), each
    checked and decoded completely.

    More frames than ``max_frames`` raise `ImageError` (never a silent cut); so do more pixels in all
    the frames together than ``max_pixels`` (at most `MAX_PIXELS`).
    """
    max_pixels = min(max_pixels, MAX_PIXELS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name, image = _open(path, name)
        with image:
            try:
                count = int(getattr(image, "n_frames", 1) or 1)
                if image.format == "MPO" and count > 1:  # a camera JPEG with previews or a stereo pair after the photo
                    log.info("%s: reading the primary image of %d (MPO)", name, count)
                    count = 1
                width, height = image.size
                if max_frames is not None and count > max_frames:
                    raise ImageError(
                        f"{name}: has {count} frames or pages; anonymise it with the condanon command, which writes "
                        "them all, or read each one with condanon.imageio.read_frames"
                    )
                if count * width * height > max_pixels:
                    raise PixelLimitError(
                        f"{name}: {count} frames of {width}x{height} px, over the {max_pixels / 1e6:g} MP limit in all"
                    )
                frames = Frames([], image.format, loop=image.info.get("loop"))
                for index in range(count):
                    if count > 1:
                        image.seek(index)
                    image.load()  # decodes everything now: a truncated file raises here
                    frames.durations.append(int(image.info.get("duration", 0) or 0))
                    frames.images.append(pil_to_bgr(image, name))
                if count == 1:
                    frames.alpha = _alpha_of(image)
                return frames
            except ImageError:
                raise
            except Image.DecompressionBombError as error:
                raise ImageError(f"{name}: over the pixel limit ({one_line(error)})") from None
            except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
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
    return encode_frames(Frames([bgr]), suffix, metadata, quality)


def encode_frames(frames: Frames, suffix: str, metadata: dict[str, Any] | None = None, quality: int = 95) -> bytes:
    """Return the encoded bytes of every frame of ``frames`` in the format named by ``suffix``.

    Several frames need a format that holds them (GIF, TIFF, PNG, WebP): they are written as an
    animation or a multi-page file, with the frames' durations and loop count when known.
    """
    suffix = suffix.lower()
    if suffix not in _FORMATS:
        raise ImageError(
            f"cannot write images as {suffix or 'files without a suffix'} (use one of {', '.join(_FORMATS)})"
        )
    kind = _FORMATS[suffix]
    images = [Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])) for bgr in frames.images]
    alpha = frames.alpha
    if (
        alpha is not None
        and len(images) == 1
        and kind in ("PNG", "WEBP", "TIFF")
        and alpha.shape == frames.images[0].shape[:2]
    ):
        images[0].putalpha(Image.fromarray(alpha))  # transparency kept: only the colour channels hold faces
    if len(images) > 1 and kind not in ("GIF", "TIFF", "PNG", "WEBP"):
        raise ImageError(
            f"cannot write {len(images)} frames as {suffix} (one image only): use .gif, .tif, .png or .webp"
        )
    options: dict[str, Any] = dict(metadata or {})
    if kind in ("JPEG", "WEBP"):
        options["quality"] = quality
    if kind in ("BMP", "GIF"):
        options = {}
    if len(images) > 1:
        options.update(save_all=True, append_images=images[1:])
        if kind in ("GIF", "PNG", "WEBP") and any(frames.durations):
            options["duration"] = [max(d, 1) for d in frames.durations]
        if kind in ("GIF", "PNG", "WEBP") and frames.loop is not None:
            options["loop"] = frames.loop
    buffer = io.BytesIO()
    images[0].save(buffer, format=kind, **options)
    return buffer.getvalue()


TEMP_PATTERN = re.compile(r"^\..+\.condanon-(\d+)-[0-9a-f]{8}\.(tmp|partial(\.[^.]+)?)$")
"""Names of our temp files: ``.<name>.condanon-<pid>-<random>.tmp`` (`write_atomic`) and
``.<stem>.condanon-<pid>-<random>.partial<suffix>`` (`partial_video_path`): ours, nobody else's."""


def _temp_path(target: Path) -> Path:
    return target.parent / f".{target.name}.condanon-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def partial_video_path(target: str | os.PathLike[str]) -> Path:
    """Return a hidden name of this process to write the video ``target`` under until complete (same folder and suffix).

    `remove_stale_temps` recognises it once the process is gone (a kill leaves it behind).
    """
    target = Path(target)
    return target.parent / f".{target.stem}.condanon-{os.getpid()}-{secrets.token_hex(4)}.partial{target.suffix}"


def _alive(pid: int) -> bool:
    """Return whether process ``pid`` may still be running (unknown counts as running)."""
    if pid == os.getpid() or os.name == "nt":  # os.kill(pid, 0) would end the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str], name: str | None = None, recursive: bool = False) -> list[Path]:
    """Return the temp files (`TEMP_PATTERN`) left in ``folder`` by processes that died, after deleting them.

    Only names of `TEMP_PATTERN` whose process is gone are removed (those starting ``.<name>.`` only,
    when given; in subfolders too, when ``recursive``): never a file of the user's, nor a write still running.
    """
    pattern = f".{glob.escape(name)}.condanon-*" if name is not None else ".*.condanon-*"
    folder = Path(folder)
    candidates = folder.rglob(pattern) if recursive else folder.glob(pattern)
    removed = []
    try:
        for path in sorted(candidates):
            found = TEMP_PATTERN.match(path.name)
            if found is None or _alive(int(found.group(1))):
                continue
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    path.unlink()
                    removed.append(path)
                    log.info("removed %s (left by a write that was killed)", show_path(path))
            except OSError as error:
                log.debug("cannot remove %s: %s", show_path(path), error)
    except OSError as error:
        log.debug("cannot look for stale temp files in %s: %s", show_path(folder), error)
    return removed


def _create_temp(target: Path) -> tuple[int, Path]:
    """Return a new, exclusive temp file beside ``target``: its descriptor and path (mode 0666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = _temp_path(target)
        try:
            return os.open(tmp, flags, 0o666), tmp  # the mode a plain open() gives: the umask applies
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {target}")


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename: never a half-written file.

    The file gets the mode a plain ``open()`` would give it (0666 less the umask); a temp file that a
    killed earlier write of the same target left behind is removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    fd, tmp = _create_temp(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def check_writable(folder: str | os.PathLike[str], what: str = "output folder") -> None:
    """Return None if files can be written in ``folder`` (or, while it is missing, made in its nearest existing
    parent); raise `CondanonError` with one line if not. Nothing is left behind: the probe file is removed."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise CondanonError(f"{what}: {show_path(probe)} is not a folder")
    try:
        fd, tmp = _create_temp(probe / "probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as error:
        raise CondanonError(
            f"{what}: cannot write in {show_path(probe)} ({error.strerror or one_line(error)})"
        ) from None


def write_image(
    path: str | os.PathLike[str], bgr: np.ndarray, metadata: dict[str, Any] | None = None, quality: int = 95
) -> None:
    """Encode a BGR image by the suffix of ``path`` and write it atomically (metadata only if given)."""
    write_atomic(path, encode_image(bgr, Path(path).suffix, metadata, quality))


def write_frames(
    path: str | os.PathLike[str], frames: Frames, metadata: dict[str, Any] | None = None, quality: int = 95
) -> None:
    """Encode every frame of ``frames`` by the suffix of ``path`` (animation or pages) and write them atomically."""
    write_atomic(path, encode_frames(frames, Path(path).suffix, metadata, quality))


def list_images(
    inputs: list[str],
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
    skip_hidden: bool = False,
    exclude: list[Path] | None = None,
    errors: list[str] | None = None,
) -> list[tuple[Path, Path]]:
    """Return ``(file, relative_name)`` for every input file and every file with one of ``suffixes`` under input
    folders.

    Folders are walked recursively and sorted, following links to folders once each (a link loop
    ends there), without the folders in ``exclude`` (the output folder of a job) and without files
    whose name starts with a dot when ``skip_hidden``. What is not a regular file (a FIFO, a socket,
    a device, a broken link) is skipped with a log line. Folders that cannot be read add a one-line
    message to ``errors`` (when given). Files named directly are kept whatever they are, so that a
    wrong file gets its own error instead of being skipped silently.
    """
    excluded = {os.path.realpath(p) for p in exclude or []}
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        root = Path(item)
        if not root.is_dir():
            found.append((root, Path(root.name)))
            continue
        seen: set[tuple[int, int]] = set()
        walked: list[tuple[Path, Path]] = []

        def unreadable(error: OSError) -> None:
            message = f"{show_path(error.filename)}: cannot read this folder ({error.strerror or one_line(error)})"
            if errors is not None:
                errors.append(message)
            log.warning("%s", message)

        for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
            try:
                st = os.stat(dirpath)
            except OSError:
                dirnames[:] = []
                continue
            if (st.st_dev, st.st_ino) in seen or os.path.realpath(dirpath) in excluded:
                log.info(
                    "%s: skipped (%s)",
                    show_path(dirpath),
                    "walked already: a link loop" if (st.st_dev, st.st_ino) in seen else "the output folder",
                )
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames.sort()
            for name in filenames:
                path = Path(dirpath) / name
                if Path(name).suffix.lower() not in suffixes or (skip_hidden and name.startswith(".")):
                    continue
                try:
                    regular = stat.S_ISREG(os.stat(path).st_mode)
                except OSError:
                    regular = False
                if not regular:
                    log.info("%s: skipped (not a regular file)", show_path(path))
                    continue
                walked.append((path, path.relative_to(root)))
        found += sorted(walked, key=lambda pair: pair[1])
    return found

"""Robustness: malformed, truncated and odd inputs, odd arrays, odd names and hostile output folders.

The properties checked on every run of the command: no traceback reaches stderr; every refusal is
exactly one line starting ``condanon: error:``; the exit status is a documented one (0 all good, 1 some
input failed, 2 usage or configuration); a previously written output survives a failed rerun; no
partial or temp file is left behind.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, features

from condanon.cli import main
from condanon.errors import CondanonError
from condanon.imageio import as_bgr
from conftest import refuses_writes

MASK = ["--method", "mask", "-q"]
LEFTOVERS = ("*.tmp", "*.partial*", ".*.condanon-*")


def check_run(code: int, err: str, allowed: tuple[int, ...] = (0, 1, 2)) -> list[str]:
    """Assert the command's rules on one run; return its error lines."""
    assert code in allowed, (code, err)
    assert "Traceback" not in err and "\x1b" not in err
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith("condanon: error:")]
    for line in lines:  # with -q, stderr holds error lines and (from a real process) one-line log records only
        assert line.startswith("condanon: "), (line, err)
    assert (code == 0) == (not errors), (code, err)
    return errors


def run(argv: list[str], capsys: pytest.CaptureFixture[str], allowed: tuple[int, ...] = (0, 1, 2)) -> tuple[int, list[str]]:
    code = main(argv)
    return code, check_run(code, capsys.readouterr().err, allowed)


def no_leftovers(out: Path) -> None:
    if out.is_dir():
        left = [p for pattern in LEFTOVERS for p in out.rglob(pattern) if not p.name.startswith(".condanon-job")]
        assert not left, left


def pixels(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def animated(fmt: str, frames: int = 3) -> bytes:
    images = [pixels((40, 32), seed) for seed in range(frames)]
    options = {"duration": 80, "loop": 0} if fmt in ("GIF", "PNG", "WEBP") else {}
    return encoded(images[0], fmt, save_all=True, append_images=images[1:], **options)


JPEG = encoded(pixels((64, 48)), "JPEG")
PNG = encoded(pixels((64, 48)), "PNG")

# name -> (bytes, expected exit status, expected frames of the output, or None when refused)
BAD_FILES = {
    "zero.jpg": (b"", None),
    "random.png": (np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes(), None),
    "random.tif": (b"II*\x00" + np.random.default_rng(8).integers(0, 256, 500, dtype=np.uint8).tobytes(), None),
    "text.jpg": (b"this is not a picture\n", None),
    "truncated.jpg": (JPEG[: len(JPEG) // 2], None),
    "truncated.png": (PNG[: len(PNG) // 2], None),
    "bomb.png": (png_header_only(100_000, 100_000), None),
    "bomb160mp.png": (png_header_only(16_000, 10_000), None),
    "one.png": (encoded(pixels((1, 1)), "PNG"), None),
}
GOOD_FILES = {
    "cmyk.jpg": (encoded(pixels((48, 40)).convert("CMYK"), "JPEG"), 1),
    "palette.png": (encoded(pixels((48, 40)).convert("P"), "PNG"), 1),
    "grey16.png": (encoded(Image.fromarray(np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 30), "PNG"), 1),
    "grey_alpha.png": (encoded(pixels((48, 40)).convert("LA"), "PNG"), 1),
    "rgba.png": (encoded(pixels((48, 40)).convert("RGBA"), "PNG"), 1),
    "bilevel.png": (encoded(pixels((48, 40)).convert("1"), "PNG"), 1),
    "jpeg_named.png": (JPEG, 1),
    "animated.gif": (animated("GIF"), 3),
    "pages.tif": (animated("TIFF", 2), 2),
}
GOOD_FILES["animated.png"] = (animated("PNG"), 3)  # APNG
if features.check("webp"):
    GOOD_FILES["photo.webp"] = (encoded(pixels((48, 40)), "WEBP"), 1)
    GOOD_FILES["animated.webp"] = (animated("WEBP"), 3)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_file_is_one_line_and_keeps_the_earlier_output(name, tmp_path, capsys):
    data, _ = BAD_FILES[name]
    source = tmp_path / "in" / name
    source.parent.mkdir()
    good = tmp_path / "in" / "good.png"
    good.write_bytes(PNG)
    out = tmp_path / "out"
    # first an earlier run of a good file under the same name, then the bad bytes arrive
    source.write_bytes(encoded(pixels((48, 40), 3), "TIFF" if name.endswith(".tif") else "JPEG" if name.endswith(".jpg") else "PNG"))
    code, errors = run(["anonymize", str(source.parent), "-o", str(out), *MASK], capsys)
    assert code == 0
    before = (out / name).read_bytes()
    source.write_bytes(data)
    code, errors = run(["anonymize", str(source.parent), "-o", str(out), *MASK], capsys, allowed=(1,))
    assert len(errors) == 1 and name in errors[0], errors
    assert (out / name).read_bytes() == before  # no lost file
    assert (out / "good.png").is_file()
    no_leftovers(out)


@pytest.mark.parametrize("name", sorted(GOOD_FILES))
def test_odd_formats_are_anonymised_whole(name, tmp_path, capsys):
    data, frames = GOOD_FILES[name]
    source = tmp_path / name
    source.write_bytes(data)
    out = tmp_path / "out"
    code, errors = run(["anonymize", str(source), str(tmp_path / "missing.png"), "-o", str(out), *MASK], capsys, allowed=(1,))
    assert len(errors) == 1 and "missing.png" in errors[0], errors
    with Image.open(out / name) as written:
        assert getattr(written, "n_frames", 1) == frames
        written.load()
        with Image.open(source) as original:
            assert written.size == original.size
    no_leftovers(out)


def test_extreme_aspect_ratio_is_handled_in_one_line(tmp_path, capsys):
    source = tmp_path / "tall.png"
    Image.fromarray(np.zeros((100_000, 8, 3), np.uint8)).save(source)
    out = tmp_path / "out"
    code, errors = run(["anonymize", str(source), "-o", str(out), *MASK], capsys, allowed=(0, 1))
    assert code == 0 or (len(errors) == 1 and "tall.png" in errors[0])
    no_leftovers(out)


def test_a_real_process_prints_only_one_line_per_bad_file(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (data, _) in BAD_FILES.items():
        (folder / name).write_bytes(data)
    (folder / "good.png").write_bytes(PNG)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "condanon", "anonymize", str(folder), "-o", str(out), *MASK],
        capture_output=True, text=True, timeout=120, check=False,
    )
    errors = check_run(done.returncode, done.stderr, allowed=(1,))
    assert len(errors) == len(BAD_FILES)
    for name in BAD_FILES:
        assert sum(name in line for line in errors) == 1, (name, errors)
    assert (out / "good.png").is_file()
    no_leftovers(out)


# -- videos: only the exit status and the one-line rule ------------------------------------------------


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
@pytest.mark.video
def test_broken_video_follows_the_rules(kind, data, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    whole = (data / "video" / "single_face.mp4").read_bytes()
    clip.write_bytes({"truncated": whole[: len(whole) // 3], "garbage": b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 5000, "empty": b""}[kind])
    out = tmp_path / "out"
    code, errors = run(["anonymize", str(clip), str(tmp_path / "missing.png"), "-o", str(out), *MASK], capsys, allowed=(1,))
    assert any("missing.png" in line for line in errors)
    if kind != "truncated":
        assert any("clip.mp4" in line for line in errors) and not (out / "clip.mp4").exists()
    no_leftovers(out)


# -- odd arrays in the SDK -----------------------------------------------------------------------------

DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32, np.float16, np.float32, np.float64, np.bool_, np.complex64]


@st.composite
def odd_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    if draw(st.booleans()):
        dtype = dtype.newbyteorder(">") if dtype.itemsize > 1 else dtype
    height, width = draw(st.integers(4, 24)), draw(st.integers(4, 24))
    channels = draw(st.sampled_from([None, 0, 1, 2, 3, 4, 5]))
    shape = (height, width) if channels is None else (height, width, channels)
    if draw(st.booleans()):
        shape = (*shape, 2)  # one dimension too many
    array = draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True) if dtype.kind != "b" else None))
    how = draw(st.sampled_from(["plain", "strided", "transposed", "read-only", "fortran"]))
    if how == "strided":
        array = np.repeat(array, 2, axis=0)[::2]
    elif how == "transposed" and array.ndim >= 2:
        array = np.swapaxes(array, 0, 1)
    elif how == "read-only":
        array.flags.writeable = False
    elif how == "fortran":
        array = np.asfortranarray(array)
    return array


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_arrays(), st.sampled_from(["bgr", "rgb"]))
def test_any_array_is_read_or_refused_in_one_line(array, channels):
    original = array.copy()
    try:
        bgr, order, source = as_bgr(array, channels)
    except CondanonError as error:
        assert str(error) and "\n" not in str(error)
        return
    finally:
        assert np.array_equal(array, original, equal_nan=array.dtype.kind in "fc")  # the caller's array is untouched
    assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3 and bgr.flags.c_contiguous
    assert bgr.shape[:2] == array.shape[:2] and not np.shares_memory(bgr, array) and order == channels
    expected = reference_bgr(array, channels)
    assert expected is not None, f"{array.dtype} {array.shape} should have been refused"
    assert np.array_equal(bgr, expected)


def reference_bgr(array: np.ndarray, channels: str) -> np.ndarray | None:
    """The documented conversion, written plainly: the BGR uint8 image, or None where a refusal is due."""
    if array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4) or array.ndim not in (2, 3) or min(array.shape[:2]) < 8:
        return None
    kind, size = array.dtype.kind, array.dtype.itemsize
    values = array.astype(np.float64) if kind in "biuf" else None
    if values is None:
        return None
    if kind == "b":
        values = values * 255
    elif kind == "u" and size == 2:
        values = np.floor((values + 128) / 257)
    elif kind in "iu" and (values.min() < 0 or values.max() > 255):
        return None
    elif kind == "f":
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
            return None
        values = np.floor(values * (255.0 if values.max() <= 1 else 1.0) + 0.5)
    image = values.astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] < 3:
        image = np.repeat(image[:, :, :1], 3, axis=2)
    image = image[:, :, :3]
    return image if channels == "bgr" else image[:, :, ::-1]


@settings(max_examples=25, deadline=None, database=None)
@given(odd_arrays())
def test_the_sdk_anonymises_or_refuses_any_array(anonymizer, array):
    try:
        result = anonymizer.anonymize(array)
    except CondanonError as error:
        assert "\n" not in str(error)
        return
    assert result.image.shape == (*array.shape[:2], 3) and result.image.dtype == np.uint8


# -- odd file names ------------------------------------------------------------------------------------

NAMES = ["with space.png", "ünïcødé-顔.png", "new\nline.png", "ansi\x1b[31mred\x1b[0m.png", "-leading-dash.png", "tab\there.png", "\u202egnp.exe.png"]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_odd_names_are_written_and_shown_escaped(name, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / name).write_bytes(PNG)
    (folder / ("bad " + name)).write_bytes(b"broken")
    out = tmp_path / "out"
    code, errors = run(["anonymize", str(folder), "-o", str(out), *MASK], capsys, allowed=(1,))
    assert len(errors) == 1 and errors[0].isprintable()
    assert (out / name).is_file()
    code, errors = run(["anonymize", "-o", str(tmp_path / "single.png"), *MASK, "--", str(folder / name)], capsys, allowed=(0,))
    assert (tmp_path / "single.png").is_file()
    no_leftovers(out)


@settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_any_name_gives_one_printable_error_line(tmp_path_factory, capsys, stem):
    folder = tmp_path_factory.mktemp("names")
    try:
        (folder / f"{stem}.jpg").write_bytes(b"garbage")
    except OSError:  # a name this file system refuses (too long in bytes, ...)
        return
    code, errors = run(["anonymize", str(folder), "-o", str(folder / "out"), *MASK], capsys, allowed=(1,))
    assert len(errors) == 1 and errors[0].isprintable()
    shutil.rmtree(folder)


# -- hostile output folders and input walks ------------------------------------------------------------


def test_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.png").write_bytes(PNG)
    target = tmp_path / "out"
    target.write_bytes(b"mine")
    code, errors = run(["anonymize", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(target), *MASK], capsys, allowed=(2,))
    assert len(errors) == 1 and target.read_bytes() == b"mine"
    code, errors = run(["anonymize", str(tmp_path / "a.png"), "-o", str(target / "a.png"), *MASK], capsys, allowed=(2,))
    assert len(errors) == 1 and target.read_bytes() == b"mine"


def test_output_inside_input_is_left_out_of_every_rerun(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(PNG)
    for _ in range(2):
        run(["anonymize", str(folder), "-o", str(folder / "out"), *MASK], capsys, allowed=(0,))
    assert not (folder / "out" / "out").exists()
    code, errors = run(["anonymize", str(folder), "-o", str(folder), *MASK], capsys, allowed=(2,))
    assert len(errors) == 1 and (folder / "a.png").read_bytes() == PNG


def test_symlink_loops_in_the_walk_end(tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(PNG)
    (folder / "sub" / "b.png").write_bytes(PNG)
    (folder / "sub" / "loop").symlink_to(folder)  # in/sub/loop -> in
    (folder / "self").symlink_to(".")
    (folder / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    out = tmp_path / "out"
    code, errors = run(["anonymize", str(folder), "-o", str(out), *MASK], capsys, allowed=(0,))
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "sub/b.png"]


def test_read_only_output_folder_and_report(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "a.png").write_bytes(PNG)
    locked.chmod(0o555)
    immutable = False
    try:
        if not refuses_writes(locked):
            immutable = subprocess.run(["chattr", "+i", str(locked)], capture_output=True, check=False).returncode == 0
            if not immutable or not refuses_writes(locked):
                pytest.skip("cannot make a read-only folder here")
        for argv in (
            ["anonymize", str(tmp_path / "a.png"), "-o", str(locked)],
            ["anonymize", str(tmp_path / "a.png"), "-o", str(locked / "a.png")],
            ["anonymize", str(tmp_path / "a.png"), "-o", str(locked / "deeper" / "out")],
            ["anonymize", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--report", str(locked / "r.json")],
            ["analyze", str(tmp_path / "a.png"), "-o", str(locked / "faces.json")],
        ):
            code, errors = run(argv + ["-q"] + (["--method", "mask"] if argv[0] == "anonymize" else []), capsys, allowed=(1, 2))
            assert len(errors) == 1, (argv, errors)
        assert not (tmp_path / "out" / "a.png").exists()  # the report place was checked before the work
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(locked)], capture_output=True, check=False)
        locked.chmod(0o755)

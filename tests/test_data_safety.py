"""Issue #13: the data-safety defects, each reproduced on real files (one test or more per defect)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import import_torch, refuses_writes
from PIL import Image

import condanon
from condanon.cli import main
from condanon.errors import CondanonError, show_path
from condanon.imageio import as_bgr

MASK = ["--method", "mask", "-q"]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("condanon: error:")]


def noise(path: Path, size: tuple[int, int] = (48, 40), seed: int = 0, mode: str = "RGB") -> Path:
    """Write a small random image (no face: every method leaves it as it is) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format="PNG" if path.suffix.lower() not in (".jpg", ".jpeg", ".jfif") else "JPEG")
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def job_rows(out: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(out / ".condanon-job.sqlite") as db:
        return db.execute("SELECT source, target, status FROM entries ORDER BY source").fetchall()


@pytest.fixture
def read_only():
    """Make a folder that refuses writes, even for root (chmod, then the immutable flag); undo it afterwards."""
    made: list[Path] = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        made.append(folder)
        if not refuses_writes(folder):
            done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
            if done.returncode != 0 or not refuses_writes(folder):
                pytest.skip("cannot make a read-only folder here")
        return folder

    yield make
    for folder in made:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
        folder.chmod(0o755)


# -- 1. output-name collisions ------------------------------------------------------------------------


def test_two_inputs_with_one_output_name_are_refused_not_merged(tmp_path, capsys):
    first = noise(tmp_path / "a" / "x.png", (40, 30), seed=1)
    second = noise(tmp_path / "b" / "x.png", (50, 36), seed=2)
    other = noise(tmp_path / "c" / "y.png", seed=3)
    out = tmp_path / "out"
    code, err = run(["anonymize", str(first), str(second), str(other), "-o", str(out), *MASK], capsys)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 2 and all("same output" in line for line in lines), err
    assert not (out / "x.png").exists()  # neither wins silently
    assert (out / "y.png").is_file()
    assert [status for _, target, status in job_rows(out) if target.endswith("x.png")] != ["done", "done"]
    assert not any(status == "done" and target.endswith("x.png") for _, target, status in job_rows(out))


@pytest.mark.slow  # ~5 s: three photos through the CLI
def test_suffixes_that_map_to_one_output_keep_distinct_outputs(tmp_path, capsys):
    folder = tmp_path / "in"
    noise(folder / "x.png", (40, 30), seed=1)
    Image.fromarray(np.full((36, 50, 3), 90, np.uint8)).save(folder / "x.gif")
    jfif = noise(tmp_path / "y.jfif", (44, 32), seed=4)  # a JPEG under a suffix we do not write
    png = noise(tmp_path / "y.png", (52, 30), seed=5)
    out = tmp_path / "out"
    code, err = run(["anonymize", str(folder), str(jfif), str(png), "-o", str(out), *MASK], capsys)
    assert code == 0, err
    sizes = {}
    for name in ("x.png", "x.gif", "y.jfif.png", "y.png"):
        with Image.open(out / name) as image:
            sizes[name] = image.size
    assert sizes == {"x.png": (40, 30), "x.gif": (50, 36), "y.jfif.png": (44, 32), "y.png": (52, 30)}
    assert sorted(status for *_, status in job_rows(out)) == ["done"] * 4


# -- 2. partial files: only the job's own --------------------------------------------------------------


def test_folder_job_keeps_the_users_partial_named_files(tmp_path, capsys):
    inputs = tmp_path / "in"
    noise(inputs / "a.png")
    out = tmp_path / "out"
    mine = [out / ".holiday.partial.jpg", out / "sub" / ".notes.partial", out / ".x.partial.mp4"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"the user's own bytes")
    code, err = run(["anonymize", str(inputs), "-o", str(out), *MASK], capsys)
    assert code == 0, err
    for path in mine:
        assert path.read_bytes() == b"the user's own bytes"


def test_folder_job_removes_the_partials_it_left(tmp_path, capsys):
    from condanon.jobs import Job

    inputs = tmp_path / "in"
    noise(inputs / "a.png")
    out = tmp_path / "out"
    with Job(out, "earlier settings") as job:
        partial = job.partial_for(out / "clip.mp4")
        partial.write_bytes(b"half a video")  # then the process was killed
    assert partial.parent == out and partial.name.startswith(".clip.") and partial.suffix == ".mp4"
    code, err = run(["anonymize", str(inputs), "-o", str(out), *MASK], capsys)
    assert code == 0, err
    assert not partial.exists()


# -- 3. output folder inside the input folder ----------------------------------------------------------


def test_output_inside_input_is_not_walked(tmp_path, capsys):
    inputs = tmp_path / "in"
    noise(inputs / "a.png")
    out = inputs / "out"
    for _ in range(3):
        code, err = run(["anonymize", str(inputs), "-o", str(out), "--method", "mask"], capsys)
        assert code == 0, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.name.startswith(".condanon-job")) == ["a.png"]
    assert "1/1 inputs" in err


# -- 4. one line, not a traceback ----------------------------------------------------------------------


def test_read_only_output_folder_is_one_line(tmp_path, capsys, read_only):
    noise(tmp_path / "in" / "a.png")
    noise(tmp_path / "in" / "b.png", seed=2)
    out = read_only(tmp_path / "out")
    code, err = run(["anonymize", str(tmp_path / "in"), "-o", str(out), *MASK], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and error_lines(err) and str(out) in err
    code, err = run(["anonymize", str(tmp_path / "in" / "a.png"), "-o", str(out / "a.png"), *MASK], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and error_lines(err)


def test_report_into_a_read_only_place_is_refused_before_the_work(tmp_path, capsys, read_only):
    source = noise(tmp_path / "a.png")
    folder = read_only(tmp_path / "locked")
    out = tmp_path / "out"
    code, err = run(["anonymize", str(source), "-o", str(out), "--report", str(folder / "r.json"), *MASK], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "r.json" in err
    assert not (out / "a.png").exists()  # found before any work


def test_report_write_failing_after_the_work_keeps_the_outputs(tmp_path, capsys, monkeypatch):
    import condanon.cli as cli

    source = noise(tmp_path / "a.png")
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    real = cli.write_atomic

    def failing(path, data):  # the disk fills up after the up-front check
        if Path(path) == report:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(cli, "write_atomic", failing)
    code, err = run(["anonymize", str(source), "-o", str(out), "--report", str(report), *MASK], capsys)
    assert code == 1 and len(err.splitlines()) == 1 and "r.json" in err and "No space" in err
    assert (out / "a.png").is_file()


def test_output_naming_an_existing_file_with_several_inputs_is_a_usage_error(tmp_path, capsys):
    a, b = noise(tmp_path / "a.png"), noise(tmp_path / "b.png", seed=2)
    target = tmp_path / "result.png"
    target.write_bytes(b"keep me")
    code, err = run(["anonymize", str(a), str(b), "-o", str(target), *MASK], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and error_lines(err)
    assert target.read_bytes() == b"keep me"
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    code, err = run(["anonymize", str(a), "-o", str(notes), *MASK], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and notes.read_text() == "mine"


# -- 5. 16-bit, bool and float inputs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def grey16(tmp_path_factory, scenes) -> Path:
    with Image.open(scenes / "two_people.jpg") as image:
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    path = tmp_path_factory.mktemp("grey16") / "two_people16.png"
    Image.fromarray(grey).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    return path


@pytest.mark.slow  # ~6 s: a real photo, detection on the 16-bit file and on the output
def test_16_bit_grey_png_is_anonymised(grey16, tmp_path, capsys):
    result = condanon.Anonymizer(method="mask").anonymize(grey16)
    assert len(result.reports) >= 2  # the two people (white before the fix: no face at all)
    with Image.open(grey16) as image:
        expected = (np.asarray(image).astype(np.int64) + 128) // 257
    assert np.abs(condanon.imageio.read_image(grey16)[:, :, 0].astype(int) - expected).max() <= 1
    out = tmp_path / "out.png"
    code, err = run(["anonymize", str(grey16), "-o", str(out), *MASK], capsys)
    assert code == 0, err
    with Image.open(out) as written:
        pixels = np.asarray(written.convert("L"))
    assert pixels.mean() < 250 and pixels.std() > 20  # not all white


def test_sdk_arrays_of_other_dtypes_are_scaled(scenes, load):
    photo = load(scenes / "two_people.jpg")
    bgr16 = photo.astype(np.uint16) * 257
    assert np.array_equal(as_bgr(bgr16)[0], photo)
    assert np.array_equal(as_bgr(photo.astype(np.float32) / 255.0)[0], photo)
    assert np.array_equal(as_bgr(photo.astype(np.float64))[0], photo)  # floats over 1: 0..255 already
    flags = np.zeros((20, 30), bool)
    flags[5:10, 5:10] = True
    converted = as_bgr(flags)[0]
    assert converted.shape == (20, 30, 3) and converted.dtype == np.uint8
    assert set(np.unique(converted)) == {0, 255} and converted[7, 7, 0] == 255
    rgba = np.dstack([photo[:, :, ::-1], np.full(photo.shape[:2], 9, np.uint8)])
    assert np.array_equal(as_bgr(rgba, "rgb")[0], photo)
    assert len(condanon.Anonymizer(method="mask").anonymize(bgr16).reports) == 2


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((20, 20, 3), np.complex64),
        np.zeros((20, 20, 5), np.uint8),
        np.zeros((20, 20, 3, 2), np.uint8),
        np.full((20, 20, 3), np.nan, np.float32),
        np.full((20, 20, 3), -3.0),
        np.full((20, 20, 3), 70000, np.int32),
        np.zeros((20, 20, 3), object),
    ],
    ids=["complex", "5-channels", "4-d", "nan", "negative", "int-over-range", "object"],
)
def test_sdk_refuses_arrays_it_cannot_read_in_one_line(array):
    with pytest.raises(CondanonError) as caught:
        as_bgr(array)
    assert "\n" not in str(caught.value) and str(caught.value)


def test_alpha_is_kept_where_the_output_format_holds_it(tmp_path, capsys):
    rgba = np.dstack([np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8), np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))])
    source = tmp_path / "in" / "logo.png"
    source.parent.mkdir()
    Image.fromarray(rgba, "RGBA").save(source)
    out = tmp_path / "out"
    code, err = run(["anonymize", str(source.parent), "-o", str(out), *MASK], capsys)
    assert code == 0, err
    with Image.open(out / "logo.png") as written:
        assert written.mode == "RGBA"
        assert np.array_equal(np.asarray(written), rgba)  # no face: every channel as it was


# -- 6. Pillow's global bomb limit is left alone ---------------------------------------------------------


def test_import_leaves_pillows_global_pixel_limit_alone(tmp_path):
    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS\n"
        "import condanon, condanon.imageio, condanon.cli\n"
        "print(before is not None and Image.MAX_IMAGE_PIXELS == before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.strip() == "True", done.stderr


def test_pixel_limit_is_kept_whatever_the_host_sets(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    # a 13000 x 12000 PNG header (156 MP) over a tiny file: refused from the header, nothing decoded
    big = tmp_path / "bomb.png"
    PILImage.new("1", (13000, 12000)).save(big, optimize=True)
    assert big.stat().st_size < 100_000
    for limit in (None, 10**12):
        monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(condanon.ImageError, match="over the 150 MP limit"):
            condanon.imageio.read_image(big)
    monkeypatch.undo()
    with pytest.raises(condanon.ImageError, match="over the 150 MP limit"):
        condanon.imageio.read_image(big)


# -- 7. FIFOs and hostile names ------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_does_not_hang_the_batch(tmp_path):
    inputs = tmp_path / "in"
    noise(inputs / "a.png")
    os.mkfifo(inputs / "walked.jpg")
    explicit = tmp_path / "explicit.jpg"
    os.mkfifo(explicit)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "condanon", "anonymize", str(inputs), str(explicit), "-o", str(out), *MASK],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("condanon: error:") and "explicit.jpg" in lines[0]
    assert "regular file" in lines[0]
    assert (out / "a.png").is_file() and not (out / "walked.jpg").exists()


def test_control_characters_in_names_cannot_forge_lines(tmp_path, capsys):
    evil = tmp_path / "in" / "x\ncondanon: error: forged\x1b[31m.jpg"
    evil.parent.mkdir()
    evil.write_bytes(b"not an image")
    out = tmp_path / "out"
    code, err = run(["-v", "anonymize", str(evil.parent), "-o", str(out), "--method", "mask"], capsys)
    assert code == 1
    assert "\x1b" not in err and "forged" in err
    assert not any(line.startswith("condanon: error: forged") for line in err.splitlines())
    assert len(error_lines(err)) == 1 and "\\n" in error_lines(err)[0] and "\\x1b" in error_lines(err)[0]


def test_show_path_escapes_control_characters():
    assert show_path("a b/ü.jpg") == "a b/ü.jpg"
    assert show_path("x\ny\x1b[2J\r\t.jpg") == "x\\ny\\x1b[2J\\r\\t.jpg"
    assert show_path(Path("\u202egpj.exe")) == "\\u202egpj.exe"
    assert show_path(os.fsdecode(b"bad\xff.jpg")) == "bad\\udcff.jpg"


# -- 8. every frame of a GIF or TIFF -------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_frames(scenes) -> list[Image.Image]:
    with Image.open(scenes / "two_people.jpg") as image:
        photo = image.convert("RGB")
    photo = photo.resize((photo.width // 2, photo.height // 2))
    return [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), photo]


@pytest.mark.slow  # ~6 s each: detection on 3 real frames, twice (test_fuzz covers frames on small noise quickly)
@pytest.mark.parametrize("suffix", [".gif", ".tif"])
def test_every_frame_or_page_is_anonymised(face_frames, tmp_path, capsys, suffix):
    source = tmp_path / f"faces{suffix}"
    if suffix == ".gif":
        face_frames[0].save(source, save_all=True, append_images=face_frames[1:], duration=[100, 200, 300], loop=0)
    else:
        face_frames[0].save(source, save_all=True, append_images=face_frames[1:])
    out = tmp_path / "out"
    code, err = run(["anonymize", str(source), str(noise(tmp_path / "b.png")), "-o", str(out), *MASK], capsys)
    assert code == 0, err
    analyzer = condanon.Anonymizer(method="mask")
    with Image.open(source) as before, Image.open(out / source.name) as after:
        assert getattr(after, "n_frames", 1) == 3
        for index in range(3):
            before.seek(index)
            after.seek(index)
            original = np.asarray(before.convert("RGB"))[:, :, ::-1].copy()
            written = np.asarray(after.convert("RGB"))[:, :, ::-1].copy()
            faces = analyzer.find_faces(original)
            assert faces, index
            for face in faces:
                x1, y1, x2, y2 = (int(v) for v in face.box.to_list())
                cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
                core = (slice(cy - 3, cy + 3), slice(cx - 3, cx + 3))
                assert np.abs(written[core].astype(int) - original[core].astype(int)).mean() > 25, (index, face.box)
        if suffix == ".gif":
            after.seek(0)
            assert after.info.get("duration") == 100 and after.info.get("loop") == 0


# -- 9. stale temp files: only our own -----------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_ours_are_removed_and_the_users_kept(tmp_path, capsys):
    inputs = tmp_path / "in"
    noise(inputs / "a.png")
    out = tmp_path / "out"
    ours = [out / f".a.png.condanon-{dead_pid()}-0a1b2c3d.tmp", out / "sub" / f".b.png.condanon-{dead_pid()}-ffff0000.tmp"]
    users = [out / ".a.png.x8w2k1l0.tmp", out / "cache.tmp", out / ".a.png.condanon-notapid.tmp"]
    for path in ours + users:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    code, err = run(["anonymize", str(inputs), "-o", str(out), *MASK], capsys)
    assert code == 0, err
    assert not any(path.exists() for path in ours)
    assert all(path.read_bytes() == b"x" for path in users)


def test_next_write_removes_its_own_stale_temp(tmp_path):
    from condanon.imageio import write_atomic

    stale = tmp_path / f".r.json.condanon-{dead_pid()}-0a1b2c3d.tmp"
    live = tmp_path / f".r.json.condanon-{os.getpid()}-99999999.tmp"  # a write still running in this process
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    write_atomic(tmp_path / "r.json", b"{}")
    assert not stale.exists() and live.exists()
    assert (tmp_path / "r.json").read_bytes() == b"{}"


# -- 10. a broken model aborts the run -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["scenes/two_people.jpg", "out.jpg", "--method", "synthetic"], id="photo"),
        pytest.param(["video/single_face.mp4", "out.mp4"], id="video", marks=[pytest.mark.slow, pytest.mark.video]),
    ],
)
def test_corrupt_prototype_bank_aborts_with_one_line(data, tmp_path, capsys, monkeypatch, argv):
    from condanon import weights
    from condanon.synthesis import bank

    corrupt = tmp_path / "prototype-bank-v1.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.delitem(weights._loaded, "prototype-bank-v1", raising=False)
    monkeypatch.setattr(bank, "model_path", lambda name: corrupt)
    source, target, *options = argv
    out = tmp_path / target
    code, err = run(["anonymize", str(data / source), "-o", str(out), *options, "-q"], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and error_lines(err) and str(corrupt) in err
    assert not out.exists()


def test_other_per_face_failures_still_fall_back_to_the_mask(scenes, load, monkeypatch):
    anonymizer = condanon.Anonymizer(method=condanon.SyntheticOptions(candidates=1), checks=condanon.Checks(verify=False))

    def broken(*args, **kwargs):
        raise RuntimeError("a candidate went wrong")

    monkeypatch.setattr(anonymizer.synthesizer, "synthesize", broken)
    result = anonymizer.anonymize(load(scenes / "two_people.jpg"))
    checked = [r for r in result.reports if not r.face.uncertain]  # uncertain faces are never synthesised
    assert len(checked) >= 2 and all(r.verdict == "fallback" and r.method == "mask" for r in checked)


class Inert:
    """A training object from somewhere else (pickled by reference to this test module)."""


@pytest.mark.dp2
def test_refused_dp2_checkpoint_aborts_with_one_line(scenes, tmp_path, capsys):
    torch = import_torch()  # a skip without torch, a failure under CI
    path = tmp_path / "mine.pt"
    torch.save({"EMA_generator": {"w": torch.zeros(1)}, "train_state": Inert()}, path)
    out = tmp_path / "out.jpg"
    code, err = run(["anonymize", str(scenes / "two_people.jpg"), "-o", str(out), "--method", "dp2", "--dp2-weights", str(path), "-q"], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "mine.pt" in err and "verified official" in err
    assert not out.exists()


# -- 11. file modes --------------------------------------------------------------------------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_mode_of_a_normal_open(tmp_path, capsys, umask_022):
    source = noise(tmp_path / "a.png")
    out = tmp_path / "out"
    code, err = run(["anonymize", str(source), "-o", str(out), "--report", str(tmp_path / "r.json"), *MASK], capsys)
    assert code == 0, err
    assert stat.S_IMODE((out / "a.png").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_video_side_files_get_the_mode_of_a_normal_open(tmp_path, umask_022):
    from condanon.video.report import VideoReport

    report = VideoReport(source="clip.mp4", output="clip.mp4", input={}, method="mask")
    boxes = report.write_beside(tmp_path / "clip.mp4")
    assert stat.S_IMODE(boxes.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "clip.tracks.json").stat().st_mode) == 0o644


@pytest.mark.slow
@pytest.mark.video
def test_a_video_output_keeps_the_users_partial_named_file_and_gets_a_normal_mode(data, tmp_path, capsys, umask_022):
    out = tmp_path / "out"
    out.mkdir()
    users = out / ".clip.partial.mp4"  # the name the writer used to take for itself
    users.write_bytes(b"the user's own bytes")
    stale = out / f".clip.condanon-{dead_pid()}-0a1b2c3d.partial.mp4"  # ours, from a killed run
    stale.write_bytes(b"half a video")
    code, err = run(["anonymize", str(data / "video" / "single_face.mp4"), "-o", str(out / "clip.mp4"), *MASK], capsys)
    assert code == 0, err
    assert users.read_bytes() == b"the user's own bytes" and not stale.exists()
    for name in ("clip.mp4", "clip.tracks.json", "clip.boxes.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in out.iterdir()) == [".clip.partial.mp4", "clip.boxes.csv", "clip.mp4", "clip.tracks.json"]


# -- 12. dp2 checkpoints: never a full unpickler ----------------------------------------------------------


@pytest.mark.dp2
def test_verified_checkpoint_is_read_without_running_its_code(dp2_dir, tmp_path, monkeypatch):
    torch = import_torch()  # a skip without torch, a failure under CI
    import dataclasses
    import hashlib

    from condanon import weights
    from condanon.dp2.checkpoint import load_generator
    from condanon.dp2.generator import GeneratorConfig

    marker = tmp_path / "ran"
    (tmp_path / "trainer_hooks.py").write_text(
        "import pathlib\n"
        "def touch(path):\n    pathlib.Path(path).write_text('code ran')\n    return {}\n"
        "class Payload:\n    def __reduce__(self):\n        return (touch, (" + repr(str(marker)) + ",))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import trainer_hooks

    data = torch.load(dp2_dir / "tiny128.pt", weights_only=True)
    path = tmp_path / "official-name.ckpt"
    torch.save({"EMA_generator": data["state_dict"], "train_state": trainer_hooks.Payload()}, path)
    official = dataclasses.replace(weights.MODELS["dp2-fdf128"], filename=path.name, md5=hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setitem(weights.MODELS, "dp2-fdf128", official)
    generator = load_generator(path, config=GeneratorConfig.from_reference(data["config"]))
    assert not marker.exists()  # the checkpoint's callable was replaced by an inert stand-in, never called
    assert torch.equal(generator.style_net.w_avg, data["state_dict"]["style_net.w_avg"])


# -- the video contract: a summary's errors fail the input -------------------------------------------------


def test_video_summary_errors_fail_the_input_and_keep_the_output(tmp_path, capsys, monkeypatch):
    import condanon.cli as cli

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"stand-in bytes: the runner is replaced")
    out = tmp_path / "out"

    def fake_run(args, videos, source, target, partial=None, analytics=None, hook=None):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_bytes(b"what was decoded")
        return {"frames_written": 41, "tracks": [], "fps": 1.0, "errors": [f"{Path(source).name}: truncated: 41 of 72 frames decoded"]}

    monkeypatch.setattr(cli, "_run_video", fake_run)
    monkeypatch.setattr(cli, "_video_anonymizer", lambda args, anonymizer: object())
    code, err = run(["anonymize", str(clip), str(noise(tmp_path / "a.png")), "-o", str(out), *MASK], capsys)
    assert code == 1
    assert error_lines(err) == ["condanon: error: clip.mp4: truncated: 41 of 72 frames decoded"]
    assert (out / "clip.mp4").read_bytes() == b"what was decoded"
    assert dict((Path(s).name, status) for s, _, status in job_rows(out)) == {"clip.mp4": "failed", "a.png": "done"}


@pytest.mark.slow  # ~8 s: a subprocess with 12000 arguments
def test_a_long_command_line_does_not_crash_the_model_runtime(scenes):
    """onnxruntime's import recursed over every argument and segfaulted past a few hundred (a shell glob)."""
    code = "import sys; from condanon.cli import main; sys.exit(main())"
    args = ["analyze", str(scenes / "astronaut.jpg"), "--format", "csv"] + ["-q"] * 12000
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    rows = done.stdout.splitlines()
    assert rows[0].startswith("source,face") and len(rows) == 2 and "astronaut.jpg" in rows[1]

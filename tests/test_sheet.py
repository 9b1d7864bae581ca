"""``condanon sheet``: contact sheets (original beside anonymised) and their index, on real photos read in place."""

from __future__ import annotations

import io
import math
import re
import sys

import cv2
import numpy as np
import pytest

from condanon.cli import main
from condanon.sheet import face_label, render_sheet
from condanon.types import Attributes, Box, Face, FaceReport, Result

PHOTOS = {"two_people.jpg": 2, "astronaut.jpg": 1}
"""The photos used, with the number of faces the default detector finds (as in test_cli)."""
MAX_SIDE = 1000


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("condanon: error:")]


def run(argv: list[str]) -> tuple[int, str]:
    """Run the command in-process; return its exit status and what it wrote to stderr."""
    capture, old = io.StringIO(), sys.stderr
    sys.stderr = capture
    try:
        code = main(argv)
    finally:
        sys.stderr = old
    return code, capture.getvalue()


def half_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The expected size of each half: the pair scaled down (never up) to fit ``max_side``."""
    scale = min(1.0, max_side / max(2 * width, height))
    return math.floor(width * scale + 1e-9), math.floor(height * scale + 1e-9)


def index_rows(text: str) -> dict[str, list[str]]:
    """The rows of index.md's table, by source path, as lists of cells."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| sheet"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[1]] = cells
    return rows


@pytest.fixture(scope="module")
def mask_run(tmp_path_factory, scenes):
    out = tmp_path_factory.mktemp("sheets") / "out"
    inputs = [str(scenes / name) for name in PHOTOS]
    code, stderr = run(["sheet", *inputs, "--out", str(out), "--method", "mask", "--max-side", str(MAX_SIDE), "-q"])
    return code, stderr, out


def test_mask_run_succeeds_quietly(mask_run):
    code, stderr, out = mask_run
    assert code == 0, stderr
    assert stderr == ""
    assert sorted(p.name for p in out.iterdir()) == sorted([*PHOTOS, "index.md"])  # no temp files, no extras


@pytest.mark.parametrize("name", PHOTOS)
def test_sheet_is_original_beside_anonymised(mask_run, scenes, load, anonymizer, name):
    _, _, out = mask_run
    original = load(scenes / name)
    sheet = load(out / name)
    height, width = original.shape[:2]
    w, h = half_size(width, height, MAX_SIDE)
    assert max(sheet.shape[:2]) <= MAX_SIDE
    assert abs(sheet.shape[0] - h) <= 1
    assert abs(sheet.shape[1] - 2 * w) <= 2
    left, right = sheet[:, :w].astype(int), sheet[:, w : 2 * w].astype(int)
    scaled = cv2.resize(original, (w, sheet.shape[0]), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(left - scaled).mean() < 2.0  # the original, only JPEG noise
    assert np.median(np.abs(right - left)) < 3  # most of the picture is unchanged
    faces = anonymizer.find_faces(original)
    assert len(faces) == PHOTOS[name]
    sx, sy = w / width, sheet.shape[0] / height
    for face in faces:
        inner = face.box.scaled(0.6)  # well inside the box: clear of its outline and label
        x1, y1, x2, y2 = round(inner.x1 * sx), round(inner.y1 * sy), round(inner.x2 * sx), round(inner.y2 * sy)
        assert np.abs(right[y1:y2, x1:x2] - left[y1:y2, x1:x2]).mean() > 30, (name, face.box)


def test_index_lists_every_sheet(mask_run, scenes):
    _, _, out = mask_run
    text = (out / "index.md").read_text()
    rows = index_rows(text)
    assert set(rows) == {str(scenes / name) for name in PHOTOS}
    for name, faces in PHOTOS.items():
        cells = rows[str(scenes / name)]
        assert cells[0] == f"[{name}]({name})"
        assert int(cells[2]) == faces
        fallbacks = int(cells[3])
        assert 0 <= fallbacks <= faces
        assert len(re.findall(r"face \d+: ", cells[4])) == fallbacks  # one reason per fallback
    assert "Method `mask`, seed 0: 2 images, 3 faces" in text


def test_bad_input_fails_alone(tmp_path, scenes, load):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\x00 not really a JPEG " * 64)
    out = tmp_path / "out"
    code, stderr = run(["sheet", str(garbage), str(scenes / "astronaut.jpg"), "--out", str(out), "--method", "mask"])
    assert code == 1
    lines = error_lines(stderr)
    assert len(lines) == 1 and "garbage.jpg" in lines[0], stderr
    assert "Traceback" not in stderr
    assert "1/2 sheets" in stderr  # the summary, without -q
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.jpg", "index.md"]
    assert load(out / "astronaut.jpg").shape[1] == 2 * 512
    rows = index_rows((out / "index.md").read_text())
    assert rows[str(garbage)][0] == "—" and "error:" in rows[str(garbage)][4]
    assert rows[str(scenes / "astronaut.jpg")][0] == "[astronaut.jpg](astronaut.jpg)"


@pytest.mark.parametrize(
    "argv",
    [["sheet", "x.jpg"], ["sheet", "x.jpg", "--out", "o", "--method", "deepfake"], ["sheet", "--out", "o"]],
    ids=["no-out", "bad-method", "no-input"],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_bad_options_exit_2(scenes, tmp_path):
    photo = str(scenes / "astronaut.jpg")
    code, stderr = run(["sheet", photo, "--out", str(tmp_path / "o"), "--max-side", "10", "-q"])
    assert code == 2 and len(error_lines(stderr)) == 1 and "max_side" in stderr
    assert not (tmp_path / "o").exists()
    occupied = tmp_path / "file"
    occupied.write_text("x")
    code, stderr = run(["sheet", photo, "--out", str(occupied), "-q"])
    assert code == 2 and len(error_lines(stderr)) == 1 and "not a folder" in stderr


def _report(index: int, box: Box, verdict: str, before: Attributes | None, after: Attributes | None) -> FaceReport:
    face = Face(box=box, score=0.9)
    return FaceReport(index, face, "mask", verdict, None if verdict == "anonymized" else "test", before, after)  # type: ignore[arg-type]


def test_labels():
    before = Attributes(age=31.2, sex="female", emotion="happy")
    after = Attributes(age=28.7, sex="female", emotion="happy")
    box = Box(10, 10, 50, 50)
    assert face_label(_report(0, box, "anonymized", before, after)) == "0 ok F 31→29 happy→happy"
    flipped = Attributes(age=40, sex="male", emotion="sad")
    assert face_label(_report(3, box, "fallback", before, flipped)) == "3 fallback F→M 31→40 happy→sad"
    assert face_label(_report(1, box, "fallback", before, None)) == "1 fallback F 31 happy"
    assert face_label(_report(2, box, "anonymized", None, None)) == "2 ok"


def test_render_sheet_draws_boxes_in_verdict_colours(scenes, load):
    original = load(scenes / "astronaut.jpg")  # 512 x 512: with max_side 1024 nothing is scaled
    anonymised = original.copy()
    anonymised[100:200, 100:200] = 0
    anonymised[300:400, 300:400] = 0
    attributes = Attributes(age=40, sex="female", emotion="neutral")
    reports = [
        _report(0, Box(100, 100, 200, 200), "anonymized", attributes, attributes),
        _report(1, Box(300, 300, 400, 400), "fallback", attributes, attributes),
    ]
    result = Result(image=anonymised, faces=[r.face for r in reports], reports=reports)
    sheet = render_sheet(original, result, max_side=1024)
    assert sheet.shape == (512, 1024, 3) and sheet.dtype == np.uint8
    assert np.array_equal(sheet[:, :512], original)
    right = sheet[:, 512:].astype(int)
    b, g, r = right[..., 0], right[..., 1], right[..., 2]
    green = (g > 180) & (r < 120) & (b < 120)
    red = (r > 200) & (g < 100) & (b < 100)
    assert green[100:200, 100:102].mean() > 0.9  # the left edge of the "ok" box, drawn inside the box
    assert red[300:400, 300:302].mean() > 0.9  # the left edge of the fallback box
    assert not green[300:400, 300:302].any() and not red[100:200, 100:102].any()
    small = render_sheet(original, result, max_side=512)
    assert small.shape == (256, 512, 3)


def test_synthetic_method(tmp_path, scenes):
    out = tmp_path / "out"
    code, stderr = run(["sheet", str(scenes / "astronaut.jpg"), "--out", str(out), "--method", "synthetic", "-q"])
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.jpg", "index.md"]
    text = (out / "index.md").read_text()
    assert "Method `synthetic`" in text
    (row,) = index_rows(text).values()
    assert row[0] == "[astronaut.jpg](astronaut.jpg)" and row[2] == "1"
    assert "synthetic failed" not in row[4]  # a fallback is allowed; the method breaking is not

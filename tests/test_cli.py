"""The ``condanon`` command, run in-process (plus one real subprocess smoke test)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import condanon
from condanon.cli import main
from condanon.weights import MODELS


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("condanon: error:")]


def test_version_subprocess():
    done = subprocess.run(
        [sys.executable, "-m", "condanon", "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"condanon {condanon.__version__}"


@pytest.fixture(scope="module")
def batch(tmp_path_factory, scenes):
    """A folder of two good photos and three bad files, anonymised once with a JSON report."""
    root = tmp_path_factory.mktemp("batch")
    inputs = root / "in"
    inputs.mkdir()
    shutil.copy(scenes / "astronaut.jpg", inputs / "a_good.jpg")
    (inputs / "b_truncated.jpg").write_bytes((scenes / "two_people.jpg").read_bytes()[:5000])
    (inputs / "c_text.jpg").write_text("this is not a picture\n")
    Image.new("RGB", (1, 20000), (200, 100, 50)).save(inputs / "d_absurd.png")
    shutil.copy(scenes / "two_people.jpg", inputs / "e_good.jpg")
    return root, inputs


@pytest.fixture(scope="module")
def batch_run(batch):
    root, inputs = batch
    out = root / "out"
    report = root / "report.json"
    capture = io.StringIO()
    old = sys.stderr
    sys.stderr = capture
    try:
        code = main(["anonymize", str(inputs), "-o", str(out), "--report", str(report), "-q"])
    finally:
        sys.stderr = old
    return code, capture.getvalue(), out, report


BAD = ("b_truncated.jpg", "c_text.jpg", "d_absurd.png")
GOOD = {"a_good.jpg": 1, "e_good.jpg": 2}


def test_batch_exit_code_and_one_error_line_per_bad_file(batch_run):
    code, stderr, _, _ = batch_run
    assert code == 1
    lines = error_lines(stderr)
    assert len(lines) == len(BAD), stderr
    for name in BAD:
        assert sum(name in line for line in lines) == 1, (name, lines)
    assert any("truncated" in line for line in lines if "b_truncated" in line)
    assert any("not an image" in line for line in lines if "c_text" in line)
    assert any("1x20000" in line for line in lines if "d_absurd" in line)
    assert all(len(line) < 400 for line in lines)  # one short line each, no traceback
    assert "Traceback" not in stderr


def test_batch_writes_good_outputs_only(batch_run, batch):
    _, _, out, _ = batch_run
    _, inputs = batch
    for name, faces in GOOD.items():
        written = out / name
        assert written.is_file()
        with Image.open(written) as image:
            image.load()
            with Image.open(inputs / name) as original:
                assert image.size == original.size
                pixels = np.asarray(image).astype(int)
                assert np.abs(pixels - np.asarray(original)).mean() > 0.2  # the faces are gone
    for name in BAD:
        assert not (out / name).exists()
        assert not (out / name).with_suffix(".png").exists()
    # no temp files, no extras; the folder job's state (resumable runs) lies beside the outputs
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".condanon-job")) == sorted(GOOD)
    assert (out / ".condanon-job.sqlite").is_file()
    assert not list(out.rglob("*.tmp")) and not [p for p in out.rglob(".*") if not p.name.startswith(".condanon-job")]


def test_batch_report(batch_run, batch):
    _, _, out, report_path = batch_run
    _, inputs = batch
    report = json.loads(report_path.read_text())
    assert report["condanon"] == condanon.__version__
    assert report["method"] == "synthetic" and report["seed"] == 0
    assert report["inputs"] == 5 and report["failed"] == 3
    assert report["faces"] == sum(GOOD.values())
    by_source = {r["source"]: r for r in report["results"]}
    assert set(by_source) == {str(p) for p in sorted(inputs.iterdir())}
    for name in BAD:
        entry = by_source[str(inputs / name)]
        assert entry["error"] and name in entry["error"]
        assert "faces" not in entry
    for name, count in GOOD.items():
        entry = by_source[str(inputs / name)]
        assert entry["output"] == str(out / name)
        assert "error" not in entry
        assert len(entry["faces"]) == count
        for face in entry["faces"]:
            assert len(face["box"]) == 4 and face["box"][0] < face["box"][2]
            assert face["attributes_before"]["sex"] in ("female", "male")
            assert face["attributes_before"]["age"] is not None
            assert face["verdict"] in ("anonymized", "fallback")
            assert {"detect", "landmarks", "attributes"} <= set(entry["timings_ms"])
            assert "anonymize" in face["timings_ms"]


@pytest.fixture(scope="module")
def exif_photo(tmp_path_factory, scenes):
    path = tmp_path_factory.mktemp("exif") / "with_exif.jpg"
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    with Image.open(scenes / "astronaut.jpg") as image:
        image.save(path, exif=exif)
    with Image.open(path) as check:
        assert check.getexif()[0x010F] == "TestCam"
    return path


def test_metadata_is_stripped_by_default(exif_photo, tmp_path):
    out = tmp_path / "out"
    assert main(["anonymize", str(exif_photo), "-o", str(out), "-q", "--no-verify"]) == 0
    with Image.open(out / exif_photo.name) as image:
        assert len(image.getexif()) == 0
        assert "exif" not in image.info


def test_keep_metadata(exif_photo, tmp_path):
    out = tmp_path / "out"
    assert main(["anonymize", str(exif_photo), "-o", str(out), "-q", "--no-verify", "--keep-metadata"]) == 0
    with Image.open(out / exif_photo.name) as image:
        assert image.getexif()[0x010F] == "TestCam"


def test_analyze_csv(scenes, capsys):
    assert main(["analyze", str(scenes / "two_people.jpg"), "--format", "csv", "-q"]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].split(",")[:3] == ["source", "face", "x1"]
    assert len(rows) == 2
    for index, row in enumerate(rows):
        assert row["source"] == str(scenes / "two_people.jpg")
        assert int(row["face"]) == index
        assert row["sex"] in ("female", "male")
        assert 0 < float(row["age"]) < 100
        assert float(row["x1"]) < float(row["x2"]) and float(row["y1"]) < float(row["y2"])


def test_analyze_json_to_file(scenes, tmp_path, capsys):
    target = tmp_path / "faces.json"
    code = main(["analyze", str(scenes / "t1.jpg"), str(tmp_path / "missing.jpg"), "--format", "json", "-o", str(target), "-q"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(error_lines(captured.err)) == 1 and "missing.jpg" in captured.err
    images = json.loads(target.read_text())["images"]
    assert len(images) == 2
    assert len(images[0]["faces"]) == 6
    assert all(face["attributes"]["sex"] in ("female", "male") for face in images[0]["faces"])
    assert "error" in images[1]


def test_analyze_json_stdout(scenes, capsys):
    assert main(["analyze", str(scenes / "astronaut.jpg"), "-q"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert len(parsed["images"][0]["faces"]) == 1
    assert parsed["images"][0]["faces"][0]["attributes"]["sex"] == "female"


def test_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in MODELS:
        assert name in out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(MODELS) and all(r["status"] == "ok" for r in rows if not r["optional"])


def test_models_lists_the_optional_dp2_checkpoints_with_their_license(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert main(["models"]) == 0  # absent optional weights are not an error
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("dp2-fdf256"))
    assert "absent" in line and "non-commercial" in line
    assert main(["models", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "dp2-fdf256")
    assert row["md5"] == "e8e32190528af2ed75f0cb792b7f2b07" and row["optional"] and row["status"] == "missing"
    assert row["path"] == str(tmp_path / "hub" / "checkpoints" / "89660f04-5c11-4dbf-adac-cbe2f11b0aeea25cbf78-7558-475a-b3c7-03f5c10b7934646b0720-ca0a-4d53-aded-daddbfa45c9e")


@pytest.mark.parametrize(
    "argv",
    [
        ["anonymize", "x.jpg", "-o", "out", "--method", "deepfake"],
        ["anonymize", "x.jpg"],  # no output
        ["frobnicate"],
        [],
    ],
    ids=["bad-method", "no-output", "bad-command", "nothing"],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_bad_configuration_exits_2(scenes, tmp_path, capsys):
    code = main(["anonymize", str(scenes / "astronaut.jpg"), "-o", str(tmp_path / "o"), "--detector", "nope", "-q"])
    assert code == 2
    assert len(error_lines(capsys.readouterr().err)) == 1
    assert not (tmp_path / "o").exists()


def test_single_file_output(scenes, tmp_path, load):
    target = tmp_path / "sub" / "anon.png"
    assert main(["anonymize", str(scenes / "astronaut.jpg"), "-o", str(target), "-q", "--method", "mask"]) == 0
    assert target.is_file()
    assert [p.name for p in target.parent.iterdir()] == ["anon.png"]
    original = load(scenes / "astronaut.jpg")
    written = load(target)
    assert written.shape == original.shape
    changed = np.any(written != original, axis=2)
    assert 0.01 < changed.mean() < 0.3  # the face, and only the face region, is masked
    assert np.any(np.all(written == 0, axis=2))


def test_output_would_overwrite_input(scenes, tmp_path, capsys):
    photo = tmp_path / "photo.jpg"
    shutil.copy(scenes / "astronaut.jpg", photo)
    data = photo.read_bytes()
    assert main(["anonymize", str(photo), "-o", str(photo), "-q"]) == 1
    assert "overwrite" in capsys.readouterr().err
    assert photo.read_bytes() == data


def test_threshold_option(scenes, capsys):
    photo = str(scenes / "two_people.jpg")
    assert main(["analyze", photo, "--format", "csv", "-q", "--threshold", "0.3"]) == 0
    low = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(low) > 2  # the default threshold finds exactly the 2 people (test_analyze_csv)
    assert main(["analyze", photo, "-q", "--threshold", "1.5"]) == 2
    assert len(error_lines(capsys.readouterr().err)) == 1


def test_workers_give_the_same_outputs_and_reports_as_one(scenes, tmp_path):
    """A folder job on two worker processes writes byte-identical images and the same face reports, in input
    order, as one process does; the bad file among them fails alone."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("bbt2.jpg", "multi_face.jpg", "couple.jpg"):
        shutil.copy(scenes / name, inputs / name)
    (inputs / "broken.jpg").write_text("not a picture\n")
    runs = {}
    for workers in (1, 2):
        out, report = tmp_path / f"out{workers}", tmp_path / f"report{workers}.json"
        code = main(["anonymize", str(inputs), "-o", str(out), "--method", "blur", "--workers", str(workers)]
                    + ["--report", str(report), "-q"])  # fmt: skip
        assert code == 1  # the broken file
        runs[workers] = (out, json.loads(report.read_text()))
    (one, first), (two, second) = runs[1], runs[2]
    for name in ("bbt2.jpg", "multi_face.jpg", "couple.jpg"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert not (two / "broken.jpg").exists()

    def faces(report):
        return [
            (r["source"], [{k: v for k, v in f.items() if k != "timings_ms"} for f in r.get("faces", [])], "error" in r)
            for r in report["results"]
        ]

    assert faces(first) == faces(second)
    assert [r["source"] for r in second["results"]] == sorted(str(p) for p in inputs.iterdir())
    assert second["faces"] == first["faces"] > 5 and second["failed"] == 1


def test_workers_must_be_positive(scenes, tmp_path, capsys):
    code = main(["anonymize", str(scenes / "astronaut.jpg"), "-o", str(tmp_path / "o.png"), "--workers", "0"])
    assert code == 2 and "--workers must be at least 1" in capsys.readouterr().err


def test_default_workers_follow_the_cores_and_the_memory(monkeypatch):
    from condanon import workers

    monkeypatch.setattr(workers, "cores", lambda: 8)
    monkeypatch.setattr(workers, "_available_memory", lambda: 64 * 2**30)
    assert workers.default_workers() == 8
    monkeypatch.setattr(workers, "_available_memory", lambda: int(3.5 * 2**30))  # room for two
    assert workers.default_workers() == 2
    monkeypatch.setattr(workers, "_available_memory", lambda: 2**29)  # not even one: one all the same
    assert workers.default_workers() == 1
    monkeypatch.setattr(workers, "_available_memory", lambda: None)
    assert workers.default_workers() == 8

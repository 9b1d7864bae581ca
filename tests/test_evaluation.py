"""The evaluation harness on a small labelled set built from shared photos (copied into tmp_path only)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from condanon.cli import main
from condanon.errors import ConfigError
from condanon.evaluation import MethodSpec, evaluate, load_dataset

PEOPLE = ("glint_Tom_Hanks", "glint_Halle_Berry", "glint_Keanu_Reeves")
PER_PERSON = 3


@pytest.fixture(scope="module")
def small_set(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine tight 112 px crops: three photos of each of three people, with identity and sex labels."""
    folder = tmp_path_factory.mktemp("small_set")
    with open(data / "identity/index.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = []
    for person in PEOPLE:
        chosen += [r for r in rows if r["identity"] == person][:PER_PERSON]
    assert len(chosen) == len(PEOPLE) * PER_PERSON
    with open(folder / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "identity", "sex"])
        writer.writeheader()
        for i, row in enumerate(chosen):
            name = f"img{i}.jpg"
            shutil.copyfile(data / "identity" / row["path"], folder / name)
            writer.writerow({"path": name, "identity": row["identity"], "sex": row["sex"]})
    return folder


@pytest.fixture(scope="module")
def evaluation(small_set: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report")
    return evaluate([small_set], methods=["original", "pixelate", "mask"], out=out, workers=2), out


@pytest.mark.slow  # the evaluation fixture: ~18 s once
def test_original_is_the_untouched_reference(evaluation):
    result, _ = evaluation
    original = result.summaries[result.datasets[0].name]["original"]
    assert original.faces == original.samples == len(PEOPLE) * PER_PERSON
    assert original.sface_removed == 0.0 and original.dlib_removed == 0.0
    assert original.sex_agreement == 1.0 and original.age_difference == 0.0 and original.emotion_agreement == 1.0
    assert original.detected_primary == 1.0
    assert original.reid_faces == len(PEOPLE) * PER_PERSON
    assert original.reid_sface >= 0.8 and original.reid_dlib >= 0.8, "face recognition should work on the originals"


@pytest.mark.slow  # the evaluation fixture: ~18 s once
def test_a_solid_mask_removes_every_identity(evaluation):
    result, _ = evaluation
    mask = result.summaries[result.datasets[0].name]["mask"]
    assert mask.sface_removed == 1.0 and mask.dlib_removed == 1.0
    assert mask.detected_primary == 0.0, "a masked face should no longer be a face to YuNet"
    assert mask.reid_sface <= 0.5


@pytest.mark.slow  # the evaluation fixture: ~18 s once
def test_json_matches_a_recount_of_the_csv(evaluation):
    result, out = evaluation
    report = json.loads((out / "evaluation.json").read_text())
    with open(out / "faces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * len(PEOPLE) * PER_PERSON
    name = result.datasets[0].name
    for method in ("original", "pixelate", "mask"):
        mine = [r for r in rows if r["method"] == method and r["detected"] == "True"]
        summary = report["summaries"][name][method]
        assert summary["faces"] == len(mine)
        removed = sum(r["sface_matched"] == "False" for r in mine) / len(mine)
        assert summary["sface_removed"] == pytest.approx(removed, abs=1e-4)
        removed = sum(r["dlib_matched"] == "False" for r in mine) / len(mine)
        assert summary["dlib_removed"] == pytest.approx(removed, abs=1e-4)
        agree = sum(r["sex_before"] == r["sex_after"] for r in mine) / len(mine)
        assert summary["sex_agreement"] == pytest.approx(agree, abs=1e-4)
        accuracy = sum(r["sex_after"] == r["label_sex"] for r in mine) / len(mine)
        assert summary["sex_accuracy_after"] == pytest.approx(accuracy, abs=1e-4)
        hits = [r["reid_dlib_hit"] == "True" for r in mine if r["reid_dlib_hit"]]
        assert summary["reid_dlib"] == pytest.approx(sum(hits) / len(hits), abs=1e-4)
        detected = sum(r["detected_after_primary"] == "True" for r in mine) / len(mine)
        assert summary["detected_primary"] == pytest.approx(detected, abs=1e-4)
        assert summary["fallbacks"] == sum(r["verdict"] == "fallback" for r in mine)


@pytest.mark.slow  # the evaluation fixture: ~18 s once
def test_report_folder_has_tables_plots_and_contact_sheet(evaluation):
    result, out = evaluation
    for name in ("evaluation.md", "evaluation.json", "faces.csv", "privacy_utility.png", "attributes.png", "contact_sheet.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    text = (out / "evaluation.md").read_text()
    assert "| original |" in text and "| mask |" in text and "Padding:" in text
    assert set(json.loads((out / "evaluation.json").read_text())["files"]) >= {"markdown", "json", "csv", "contact_sheet"}


@pytest.mark.slow  # ~6 s
def test_limit_draws_a_seeded_subset(small_set):
    a = evaluate([small_set], methods=["mask"], limit=3, seed=1, workers=1)
    b = evaluate([small_set], methods=["mask"], limit=3, seed=1, workers=1)
    assert a.methods == ["original", "mask"], "original is always the reference row"
    assert [r.path for r in a.records] == [r.path for r in b.records]
    assert len({r.path for r in a.records}) == 3


def test_method_specs_and_bad_inputs(tmp_path):
    spec = MethodSpec.parse("blur:strength=0.25:shape=box")
    assert spec.method == "blur" and dict(spec.options) == {"strength": 0.25, "shape": "box"}
    with pytest.raises(ConfigError):
        MethodSpec.parse("vanish")
    with pytest.raises(ConfigError):
        MethodSpec.parse("blur:strength")
    with pytest.raises(ConfigError, match="index.csv"):
        load_dataset(tmp_path)


@pytest.mark.slow  # ~5 s
def test_unreadable_photo_is_reported_and_the_rest_measured(small_set, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(small_set, folder)
    (folder / "img0.jpg").write_text("not a photo")
    result = evaluate([folder], methods=["mask"], workers=1)
    assert len(result.errors) == 1 and "img0.jpg" in result.errors[0]
    assert result.summaries[result.datasets[0].name]["mask"].faces == len(PEOPLE) * PER_PERSON - 1


@pytest.mark.slow  # ~3-5 s; test_method_specs_and_bad_inputs stays quick
def test_cli_evaluate(small_set, tmp_path, capsys):
    out = tmp_path / "cli_report"
    code = main(["evaluate", "--data", str(small_set), "--methods", "blur:strength=0.25", "--limit", "4",
                 "--out", str(out), "--workers", "1", "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| original |" in printed and "| blur:strength=0.25 |" in printed
    assert (out / "faces.csv").is_file()


@pytest.mark.slow  # the evaluation fixture; fits the realism classifier
@pytest.mark.training
def test_realism_and_held_out_readers_are_measured(evaluation):
    result, out = evaluation
    table = result.summaries[result.datasets[0].name]
    original, mask = table["original"], table["mask"]
    assert original.texture_ratio == pytest.approx(1.0) and original.skin_de == 0.0
    assert original.ho_sex_agreement == 1.0 and original.ho_sex_ceiling is not None and original.ho_sex_ceiling >= 0.6
    assert mask.texture_ratio < 0.05 and mask.skin_de > 30 and mask.ho_emotion_agreement < original.ho_emotion_agreement
    assert original.two_sample is None  # nine photos: too few for the two-sample test's halves
    sizes = [g for g in ("< 64 px", "64-127 px", ">= 128 px") if g in result.breakdown]
    assert sum(result.breakdown[g]["original"].faces for g in sizes) == original.faces  # each face in one size group
    text = (out / "evaluation.md").read_text()
    assert "Realism and held-out readers" in text and "two-sample" in text
    with open(out / "faces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {"texture_ratio", "skin_de", "ho_sex_mirror", "ho_emotion_after"} <= set(rows[0])

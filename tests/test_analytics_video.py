"""Passenger analytics on real faces: a generated door clip with known people, and the CLI.

The door clip is made from labelled photos of ``shared/data/train/utkface`` (age and sex in each file's
name) walking through a painted corridor, with one more photo hung on the wall as a poster.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from condanon.analytics import PEOPLE_COLUMNS, TIMELINE_COLUMNS, analyze_video, write_analytics
from condanon.analytics.door_clip import DoorClip, make_door_clip, score_counts
from condanon.cli import main

from conftest import imread

pytestmark = [pytest.mark.slow, pytest.mark.video]


def _labelled_faces(data: Path, count: int, seed: int) -> list[tuple[np.ndarray, float, str]]:
    """Return ``count`` adult faces (photo, age, sex) drawn with ``seed`` from the labelled training photos."""
    files = sorted((data / "train" / "utkface").glob("*.jpg"))
    rng = np.random.default_rng(seed)
    faces: list[tuple[np.ndarray, float, str]] = []
    for path in rng.permutation(files):  # type: ignore[arg-type]
        age, sex = Path(path).name.split("_")[:2]
        if 20 <= int(age) <= 65:
            faces.append((imread(path), float(age), "male" if sex == "0" else "female"))
        if len(faces) == count:
            return faces
    raise AssertionError("not enough labelled faces")


@pytest.fixture(scope="module")
def door(data: Path, tmp_path_factory: pytest.TempPathFactory) -> DoorClip:
    faces = _labelled_faces(data, 5, seed=3)
    return make_door_clip(faces[:4], tmp_path_factory.mktemp("door") / "door.mp4", poster=faces[4][0], seed=3)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_door_clip_is_counted_exactly(door: DoorClip, tmp_path: Path) -> None:
    analytics = analyze_video(door.path, tmp_path, line=door.line, window=2.0, parquet=True)
    score = score_counts(door, analytics.people)
    assert score["people"] == 4, analytics.excluded  # the walkers, not the poster
    assert "static" in analytics.excluded.values()  # the poster was seen and left out
    assert score["crossings_found"] == score["crossings_expected"]
    assert score["sex_right"] >= 3, score["matched"]
    assert score["age_within_10"] >= 2, score["matched"]
    # the files say the same, under the documented schema
    people = _rows(tmp_path / "people.csv")
    assert list(people[0])[: len(PEOPLE_COLUMNS)] == list(PEOPLE_COLUMNS) and len(people) == 4
    timeline = _rows(tmp_path / "timeline.csv")
    assert list(timeline[0]) == list(TIMELINE_COLUMNS)
    for person in {row["person"] for row in timeline}:
        times = [float(r["time_s"]) for r in timeline if r["person"] == person]
        assert times == sorted(times) and len(times) >= 3  # read several times while walking through
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts["people"] == 4 and sum(counts["by_sex"].values()) == 4
    assert sum(w["new_people"] for w in counts["windows"]) == 4
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "people.parquet").num_rows == 4
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<td>4</td>" not in page[:0]
    for name in ("people_over_time", "age_sex_pyramid", "emotion_over_time"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_analytics_command_writes_each_input_and_reports_a_bad_one(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = data / "video" / "single_face.mp4"
    out = tmp_path / "out"
    status = main(["analytics", str(clip), str(tmp_path / "missing.mp4"), "--out", str(out), "--no-plots", "-q"])
    assert status == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "missing.mp4" in errors[0]
    people = _rows(out / "single_face" / "people.csv")
    assert len(people) == 1 and people[0]["sex"] in ("female", "male") and int(people[0]["frames"]) > 60
    assert not (out / "single_face" / "report.html").exists()  # --no-plots
    assert main(["analytics", str(clip), "--out", str(out), "--line", "1,2,3"]) == 2


def test_anonymize_writes_analytics_from_the_same_pass(data: Path, tmp_path: Path) -> None:
    clip = data / "video" / "single_face.mp4"
    target = tmp_path / "single.mp4"
    status = main(["anonymize", str(clip), "-o", str(target), "--method", "blur", "--analytics", str(tmp_path / "an"), "-q"])
    assert status == 0 and target.is_file()
    tracks = json.loads(target.with_name("single.tracks.json").read_text())["tracks"]
    people = _rows(tmp_path / "an" / "people.csv")
    assert len(people) == 1 and people[0]["tracks"] == str(tracks[0]["track"])
    assert int(people[0]["readings"]) == tracks[0]["readings"] >= 5  # read about twice a second for analytics
    assert main(["anonymize", str(clip), "-o", str(target), "--line", "0,0,1,1"]) == 2  # --line needs --analytics

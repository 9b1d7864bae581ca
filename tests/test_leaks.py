"""The independent photo leak check (`condanon.evaluation.leaks`) on one real group photo.

The original against itself leaks every face the judge can judge; against a copy with every face
blacked out it leaks none; with one face blacked out it leaks exactly the others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from condanon.evaluation.leaks import LeakReport, judge_faces, leaked_faces
from condanon.types import Face

PHOTO = "multiface.jpg"  # six frontal faces, ~100-115 px: every one judged by both judges
COVER = 1.3  # the black box covers the face box grown by this factor (the judges' chips reach past it)


def blacked_out(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Return a copy of ``image`` with a black box over each of ``faces``."""
    out = image.copy()
    height, width = image.shape[:2]
    for face in faces:
        x1, y1, x2, y2 = face.box.scaled(COVER).clipped(width, height).to_int()
        out[y1:y2, x1:x2] = 0
    return out


@pytest.fixture(scope="module")
def photo(scenes: Path, load) -> tuple[np.ndarray, list[Face]]:  # type: ignore[no-untyped-def]
    image = load(scenes / PHOTO)
    faces = judge_faces(image)
    assert len(faces) >= 5, f"the judge found only {len(faces)} faces on {PHOTO}: the test would test little"
    return image, faces


@pytest.mark.slow  # ~8 s
def test_original_leaks_every_face(photo: tuple[np.ndarray, list[Face]]) -> None:
    image, faces = photo
    report = leaked_faces(image, image.copy())  # it finds the faces itself: the same as the fixture's
    assert isinstance(report, LeakReport) and report.faces == len(faces)
    assert [f.box for f in report.face_leaks] == [f.box for f in faces]
    assert report.unchecked == 0
    assert report.leaked == report.faces == report.leaked_sure, report.to_dict()
    assert all(set(f.judges) == {"sface", "dlib"} for f in report.face_leaks)
    row = report.to_dict()["face_leaks"][0]
    assert {"box", "size", "score", "leaked", "judges"} <= set(row)


@pytest.mark.slow  # ~3 s; test_one_masked_leaks_the_others stays quick
def test_fully_masked_leaks_none(photo: tuple[np.ndarray, list[Face]]) -> None:
    image, faces = photo
    report = leaked_faces(image, blacked_out(image, faces), faces)
    assert report.faces == len(faces)
    assert report.leaked == 0, report.to_dict()


def test_one_masked_leaks_the_others(photo: tuple[np.ndarray, list[Face]]) -> None:
    image, faces = photo
    hidden = 0
    report = leaked_faces(image, blacked_out(image, [faces[hidden]]), faces)
    leaked = [i for i, face in enumerate(report.face_leaks) if face.leaked]
    assert leaked == [i for i in range(len(faces)) if i != hidden], report.to_dict()


def test_shapes_must_match(photo: tuple[np.ndarray, list[Face]]) -> None:
    image, _ = photo
    with pytest.raises(ValueError):
        leaked_faces(image, image[:-1])

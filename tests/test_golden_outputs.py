"""The outputs do not change when the code is only reorganised: digests of every shared scene and clip.

Each scene goes through the default synthetic method and through blur, each shared clip through the
default video run, all at seed 0. The pixels of every output (every frame of a clip) and the reports
(without their timings) are digested and compared with ``tests/golden_outputs.json``. A change meant to
alter outputs regenerates that file (``CONDANON_GOLDEN=update pytest tests/test_golden_outputs.py``) and
says why in its commit; a refactoring must leave it as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import condanon
from condanon.video import VideoAnonymizer

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).with_name("golden_outputs.json")
SCENE_METHODS = ("synthetic", "blur")
CLIPS = ("crowd.mp4", "single_face.mp4", "face_noface.mov")


def _digest_report(report: dict[str, Any]) -> str:
    """Return the sha256 of a report's JSON without its timings (they vary from run to run)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("timings_ms", "seconds", "fps_processed")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return hashlib.sha256(json.dumps(strip(report), sort_keys=True, default=str).encode()).hexdigest()


def _pixels(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def _scene_digests(scenes: Path) -> dict[str, str]:
    digests: dict[str, str] = {}
    for method in SCENE_METHODS:
        anonymizer = condanon.Anonymizer(method=method, seed=0)
        for path in sorted(scenes.glob("*.jpg")):
            result = anonymizer.anonymize(str(path))
            digests[f"{method}/{path.name}/pixels"] = _pixels(result.image)
            report = {**result.to_dict(), "source": path.name}  # the checkout's location is not an output
            digests[f"{method}/{path.name}/report"] = _digest_report(report)
    return digests


def _clip_digests(video: Path) -> dict[str, str]:
    digests: dict[str, str] = {}
    runner = VideoAnonymizer(condanon.Anonymizer(seed=0))
    for name in CLIPS:
        frames = hashlib.sha256()
        report = runner.run(video / name, None, frames=lambda frame: frames.update(np.ascontiguousarray(frame).tobytes()))
        digests[f"video/{name}/pixels"] = frames.hexdigest()
        digests[f"video/{name}/tracks"] = _digest_report({"tracks": report.to_dict()["tracks"], "boxes": report.boxes_csv()})
    return digests


@pytest.fixture(scope="module")
def golden() -> dict[str, str]:
    if os.environ.get("CONDANON_GOLDEN") == "update" or not GOLDEN.is_file():
        return {}
    return json.loads(GOLDEN.read_text())


def _compare(found: dict[str, str], golden: dict[str, str]) -> None:
    if os.environ.get("CONDANON_GOLDEN") == "update":
        merged = {**(json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}), **found}
        GOLDEN.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
        pytest.skip(f"golden digests written to {GOLDEN.name}")
    changed = sorted(key for key, value in found.items() if golden.get(key) != value)
    assert not changed, f"outputs changed ({len(changed)} of {len(found)}): {', '.join(changed)}"


def test_scene_outputs_are_unchanged(scenes: Path, golden: dict[str, str]) -> None:
    _compare(_scene_digests(scenes), golden)


def test_clip_outputs_are_unchanged(data: Path, golden: dict[str, str]) -> None:
    _compare(_clip_digests(data / "video"), golden)

"""A track whose first identity a recogniser still matches draws another one before any frame is written."""

from __future__ import annotations

import pytest

import condanon
from condanon.video import VideoAnonymizer
from condanon.video import anonymizer as video_anonymizer

pytestmark = [pytest.mark.video, pytest.mark.slow]
REAL_JUDGE = video_anonymizer.judge


def _run(data, monkeypatch, identities: int, refused: int):
    """Run single_face.mp4 where the in-loop check calls the first ``refused`` identities the person."""
    real = REAL_JUDGE
    calls = {"n": 0}

    def judge(embedder, before, after, bar=None, margin=0.0):
        check = real(embedder, before, after, bar, margin)
        if embedder.name == "sface":
            calls["n"] += 1
            if calls["n"] <= refused:  # as if the recogniser still knew the face
                check.matched = True
        return check

    monkeypatch.setattr(video_anonymizer, "judge", judge)
    frames = []
    runner = VideoAnonymizer(condanon.Anonymizer(seed=0), identities=identities)
    report = runner.run(data / "video" / "single_face.mp4", None, frames=frames.append)
    (track,) = [t for t in report.to_dict()["tracks"] if not t["uncertain"]]
    return track, frames


def test_a_refused_first_identity_is_replaced_on_the_same_keyframe(data, monkeypatch):
    track, frames = _run(data, monkeypatch, identities=3, refused=1)
    assert track["verdict"] == "anonymized" and track["failure"] is None
    assert track["synthesis"]["identities_tried"] == 2
    assert track["fallback_frames"] == 0  # no frame showed the mask: the first check comes before any is written
    assert frames


def test_a_track_falls_back_when_every_identity_is_refused(data, monkeypatch):
    track, _ = _run(data, monkeypatch, identities=2, refused=10**6)
    assert track["verdict"] == "fallback" and track["failure"]["kind"] == "identity"
    assert track["synthesis"]["identities_tried"] == 2
    track_one, _ = _run(data, monkeypatch, identities=1, refused=1)
    assert track_one["verdict"] == "fallback" and track_one["synthesis"]["identities_tried"] == 1


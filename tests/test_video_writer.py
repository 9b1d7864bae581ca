"""The video writer refuses an encoder that cannot write video in one line, and leaves no file behind."""

from __future__ import annotations

import pytest

from condanon.errors import VideoError
from condanon.video.io import EncodeOptions, VideoReader, VideoWriter
from condanon.video.segments import next_segment_number


@pytest.mark.parametrize(("codec", "why"), [("aac", "audio encoder, not a video one"), ("no-such-codec", "no such encoder")])
def test_a_codec_that_cannot_write_video_is_one_clear_error_and_no_file(data, tmp_path, codec, why):
    reader = VideoReader(data / "video" / "single_face.mp4")
    try:
        with pytest.raises(VideoError, match=why) as caught:
            VideoWriter(tmp_path / "out.mp4", reader.info, EncodeOptions(codec=codec))
    finally:
        reader.close()
    assert "\n" not in str(caught.value) and codec in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # neither the output nor its partial file


def test_segments_of_a_run_started_again_never_overwrite_a_recording(tmp_path) -> None:
    target = tmp_path / "live.mp4"
    assert next_segment_number(target) == 0
    for name in ("live.0000.mp4", "live.0003.mp4", "live.x.mp4", "other.0009.mp4", "live.0007.mkv"):
        (tmp_path / name).touch()
    assert next_segment_number(target) == 4  # after the highest of live's own .mp4 segments

"""The video writer refuses an encoder that cannot write video in one line, and leaves no file behind."""

from __future__ import annotations

import pytest

from condanon.errors import VideoError
from condanon.video.io import EncodeOptions, VideoReader, VideoWriter


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

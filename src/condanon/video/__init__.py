"""Videos and live streams: PyAV I/O with audio, face tracks with bridging, one synthetic identity per track."""

from .anonymizer import VideoAnonymizer
from .io import EncodeOptions, VideoInfo, VideoReader, VideoWriter, is_stream, is_video
from .report import TrackReport, VideoReport

__all__ = [
    "EncodeOptions",
    "TrackReport",
    "VideoAnonymizer",
    "VideoInfo",
    "VideoReader",
    "VideoReport",
    "VideoWriter",
    "is_stream",
    "is_video",
]

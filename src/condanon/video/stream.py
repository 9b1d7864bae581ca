"""Live sources that survive their drops: a camera or network stream reopened with exponential backoff.

`open_source` gives a file's `VideoReader` as it is, and wraps a live source in `Reconnecting`: when
the stream ends or fails, it is opened again after 1, 2, 4, ... seconds (at most `MAX_WAIT`), up to
``retries`` times in a row; frames from the new connection continue the numbering and the timeline
of the old one (times keep rising, each frame keeps the wall-clock time it was read at). When no
retry succeeds the run ends with what it read, ``lost`` is set and ``errors`` says why. A source that
cannot be opened at all, after the same retries, raises `StreamError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import VideoError, one_line
from .io import VideoFrame, VideoInfo, VideoReader, is_stream

log = logging.getLogger(__name__)

MAX_WAIT = 30.0
"""The longest wait between two reconnection attempts (seconds)."""


class StreamError(VideoError):
    """A live source could not be reached (after every retry)."""


def _open(source: str, audio: bool, retries: int, wait: float, stop: threading.Event) -> VideoReader:
    """Open a live source, retrying with backoff; raise `StreamError` when every attempt failed."""
    delay = wait
    for attempt in range(retries + 1):
        try:
            return VideoReader(source, audio=audio)
        except VideoError as error:
            if attempt == retries or stop.is_set():
                raise StreamError(f"{one_line(error)} (gave up after {attempt + 1} attempts)") from None
            log.warning("%s; retrying in %.1f s", one_line(error), delay)
            if stop.wait(delay):
                raise StreamError(f"{source}: stopped while reconnecting") from None
            delay = min(delay * 2.0, MAX_WAIT)
    raise AssertionError("unreachable")


class Reconnecting:
    """A live source's frames across reconnections (the `VideoReader` interface the video run uses).

    Audio is copied from the first connection only (a new connection's audio stream is another one).
    """

    def __init__(
        self, source: str, audio: bool = True, retries: int = 5, wait: float = 1.0, stop: threading.Event | None = None
    ) -> None:
        self.source = source
        self.retries = retries
        self.wait = wait
        self.stop = stop or threading.Event()
        self.reader = _open(source, audio, retries, wait, self.stop)
        self._first = self.reader
        self.info: VideoInfo = self.reader.info
        self.audio_stream = self.reader.audio_stream
        self.live = True
        self.errors: list[str] = []
        self.lost = False
        """Whether the stream dropped and no retry brought it back (the run ended with what it read)."""
        self._closed = False

    def take_audio(self) -> list[Any]:
        """Return the audio packets of the first connection demuxed so far."""
        return self._first.take_audio() if self.reader is self._first else []

    def __iter__(self) -> Iterator[VideoFrame]:
        index, last_time, last_pts = 0, 0.0, 0
        step = 1.0 / float(self.info.fps or 25)
        pts_step = max(1, round(step / float(self.info.time_base)))
        fresh = False  # a new connection: its clock starts again, so carry the old one on, one frame step later
        time_offset, pts_offset = 0.0, 0
        while True:
            reason = "the stream ended"
            try:
                for frame in self.reader:
                    if fresh:
                        time_offset, pts_offset = last_time + step - frame.time, last_pts + pts_step - frame.pts
                        fresh = False
                    frame.index = index
                    frame.time += time_offset
                    frame.pts += pts_offset
                    index += 1
                    last_time, last_pts = frame.time, frame.pts
                    yield frame
            except VideoError as error:
                reason = one_line(error)
            if self.stop.is_set() or self._closed:
                return
            if self.retries == 0:
                self.lost = True
                self.errors.append(f"{self.source}: {reason} after {index} frames (no reconnection asked for)")
                return
            log.warning("%s: %s after %d frames; reconnecting", self.source, reason, index)
            self.reader.close()
            try:
                self.reader = _open(self.source, False, self.retries, self.wait, self.stop)
            except StreamError as error:
                self.lost = True
                self.errors.append(f"{error} (lost after {index} frames: {reason})")
                return
            fresh = True

    def close(self) -> None:
        """Stop reading and release the source."""
        self._closed = True
        self.reader.close()
        if self._first is not self.reader:
            self._first.close()


def open_source(
    source: str, audio: bool = True, retries: int = 5, wait: float = 1.0, stop: threading.Event | None = None
) -> VideoReader | Reconnecting:
    """Return a reader of ``source``: a file's `VideoReader`, or for a live source one that reconnects."""
    if is_stream(source):
        return Reconnecting(source, audio, retries, wait, stop)
    return VideoReader(source, audio=audio)

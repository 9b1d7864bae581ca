"""Rolling output segments: a long live recording written as one finished file per N seconds.

``live.mp4`` with 600-second segments becomes ``live.0000.mp4``, ``live.0001.mp4``, ...: each is
complete and playable as soon as the next one starts (written under a temporary name and renamed, as
every video output), so an archive or an uploader can take it while the camera runs on, and a crash
loses at most the segment being written. Numbering goes on after the segments already there, so a run started
again (by hand, or a stream actor restarted by Ray) never overwrites a recording. Each segment's times start at
0. Audio is not copied into segments (a camera's audio would have to be cut at the same points).
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .io import EncodeOptions, VideoInfo, VideoWriter

log = logging.getLogger(__name__)


def segment_path(output: str | Path, number: int) -> Path:
    """Return the path of segment ``number`` of ``output`` (``live.mp4`` -> ``live.0003.mp4``)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.{number:04d}{output.suffix}")


def next_segment_number(output: str | Path) -> int:
    """Return the number after the highest segment of ``output`` already written (0 when there is none)."""
    output = Path(output)
    pattern = f"{glob.escape(output.stem)}.[0-9][0-9][0-9][0-9]{glob.escape(output.suffix)}"
    numbers = [int(path.name[len(output.stem) + 1 : len(output.stem) + 5]) for path in output.parent.glob(pattern)]
    return max(numbers, default=-1) + 1


class SegmentedWriter:
    """Writes frames into a new `VideoWriter` every ``seconds`` of input time (the `VideoWriter` interface)."""

    def __init__(self, output: str | Path, info: VideoInfo, options: EncodeOptions, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("segments must be longer than 0 seconds")
        self.output = Path(output)
        self.info = info
        self.options = EncodeOptions(options.codec, options.crf, options.preset, audio=False)
        self.seconds = seconds
        self.paths: list[Path] = []
        """The segments finished so far, in order."""
        self.frames = 0
        self._writer: VideoWriter | None = None
        self._start_pts = 0
        self._number = next_segment_number(self.output)

    def write(self, image: np.ndarray, pts: int) -> None:
        """Write one frame; a frame ``seconds`` or more after the current segment's first starts the next one."""
        time_base = float(self.info.time_base)
        if self._writer is not None and (pts - self._start_pts) * time_base >= self.seconds:
            self._finish(complete=True)
        if self._writer is None:
            self._writer = VideoWriter(segment_path(self.output, self._number), self.info, self.options)
            self._start_pts = pts
        self._writer.write(image, pts - self._start_pts)
        self.frames += 1

    def mux_audio(self, packets: list[Any]) -> None:
        """Drop the audio packets (segments carry no audio)."""

    def _finish(self, complete: bool) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close(complete=complete and writer.frames > 0)
        if complete and writer.frames > 0:
            self.paths.append(writer.path)
            log.info("segment written: %s", writer.path)
        self._number += 1

    def close(self, complete: bool = True) -> None:
        """Finish the segment being written (kept when ``complete``, else deleted; earlier ones stay)."""
        self._finish(complete)

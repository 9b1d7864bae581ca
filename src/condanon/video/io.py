"""Reading and writing videos and live streams with PyAV (FFmpeg): frames, timing and the audio track.

Outputs keep the input's resolution, frame count and timing: each output frame carries the input
frame's presentation time, so variable frame rates survive. Audio packets are copied as they are
(no re-encoding) unless the caller drops them. Writers work on a temporary name and are renamed into
place only when complete (`VideoWriter.close`); an aborted file job, or one whose write failed
(a full disk), leaves nothing at the target, while a live recording stopped by Ctrl-C is finalised
(its trailer written) and kept.

A file with a display rotation (phones store portrait clips as landscape pixels plus a display
matrix) is decoded upright: `VideoReader` turns every frame by the rotation, and `VideoInfo` gives
the upright size. Writers write those upright pixels with no rotation tag, so the output plays the
way the input played, in every player. Decoding that stops early (a decode error, a read error, or
fewer frames than the file declares) is not fatal: the frames decoded are kept and
`VideoReader.errors` says what happened, one line each.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import VideoError, one_line

if TYPE_CHECKING:
    from av.video.stream import VideoStream

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
TRUNCATION_TOLERANCE = (0.01, 0.05)
"""A file that decodes to fewer frames than it declares by more than this share (and more than 2 frames) is truncated:
the first for a frame count the container states, the second for one estimated from its duration (mkv, webm)."""
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
CAMERA_PREFIX = "camera:"


def list_media(
    inputs: list[str], exclude: list[Path] | None = None, errors: list[str] | None = None
) -> list[tuple[Path, Path]]:
    """Return ``(file, relative_name)`` for every input file and every image or video under input folders, as the
    command line's folder jobs and the service's jobs walk them.

    Hidden files are left out of folders (they include the temporary outputs of an interrupted job),
    and so are the folders in ``exclude`` (the output folder, when it lies inside an input folder).
    """
    from ..imageio import IMAGE_SUFFIXES, list_images

    return list_images(inputs, IMAGE_SUFFIXES + VIDEO_SUFFIXES, skip_hidden=True, exclude=exclude, errors=errors)


def is_video(path: str | os.PathLike[str]) -> bool:
    """Return whether ``path`` names a video file by its suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_stream(source: str) -> bool:
    """Return whether ``source`` is a live source: a network URL, ``camera:N`` or a ``/dev/video*`` device."""
    text = str(source)
    return text.lower().startswith((*STREAM_PREFIXES, CAMERA_PREFIX)) or text.startswith("/dev/video")


@dataclass(frozen=True)
class VideoInfo:
    """What a video source is: upright size, frame rate, frame count (``None`` for live sources), audio.

    ``rotation`` is the display rotation the frames are turned by to stand upright (degrees
    counter-clockwise, 0, 90, 180 or 270; FFmpeg's sign); ``width`` and ``height`` are after it.
    """

    source: str
    width: int
    height: int
    fps: Fraction
    frames: int | None
    codec: str
    audio: bool
    live: bool
    time_base: Fraction
    rotation: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "fps": round(float(self.fps), 3),
            "frames": self.frames,
            "codec": self.codec,
            "audio": self.audio,
            "live": self.live,
            "rotation": self.rotation,
        }


@dataclass
class VideoFrame:
    """One decoded frame: its index from 0, BGR pixels and presentation time (``pts`` in the stream's time base)."""

    index: int
    image: np.ndarray
    pts: int
    time: float
    wall: float | None = None
    """Wall-clock time (Unix seconds) at which a live source's frame was decoded; ``None`` for files."""


def display_rotation(source: str) -> int:
    """Return the display rotation of the file ``source``'s first video stream: 0, 90, 180 or 270 degrees
    counter-clockwise.

    Read from the first decoded frame's display matrix (FFmpeg turns the container's matrix, and an
    old ``rotate`` tag, into that); the stream's ``rotate`` tag (clockwise) when the frame has none.
    Horizontal or vertical flips in the matrix are not applied. 0 when nothing can be read.
    """
    import av

    try:
        with av.open(source) as container:
            stream = container.streams.video[0]
            degrees = 0.0
            for frame in container.decode(stream):
                degrees = float(frame.rotation or 0)
                break
            if not degrees and stream.metadata.get("rotate"):
                degrees = -float(stream.metadata["rotate"])
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        log.debug("%s: no display rotation read: %s", source, one_line(error, whole=True))
        return 0
    return round(degrees / 90.0) % 4 * 90


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Return ``image`` turned ``rotation`` degrees counter-clockwise (a display rotation), as a contiguous array."""
    turns = rotation // 90 % 4
    return image if turns == 0 else np.ascontiguousarray(np.rot90(image, turns))


def _open_container(source: str, timeout: float) -> Any:
    import av

    options: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    if source.startswith(CAMERA_PREFIX):
        source = f"/dev/video{int(source[len(CAMERA_PREFIX) :])}"
    if source.startswith("/dev/video"):
        kwargs["format"] = "v4l2"
    if source.lower().startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = "tcp"
    try:
        return av.open(source, mode="r", options=options, timeout=timeout, **kwargs)
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoError(f"{source}: cannot open video: {one_line(error, whole=True)}") from None


class VideoReader:
    """Decodes a video file, camera or network stream into `VideoFrame` objects, audio packets aside.

    Iterating yields frames in presentation order. Audio packets met on the way are queued; take them
    with `take_audio` (the caller copies them into the output). With ``threaded``, decoding runs in a
    background thread a few frames ahead of the caller.

    Frames come upright (turned by the file's display rotation, ``info.rotation``). When decoding
    stops early (a decode or read error after the first frame, or a file that ends more than
    `TRUNCATION_TOLERANCE` short of the frames it declares), the frames decoded are yielded and
    ``errors`` gets one line saying so.
    """

    def __init__(
        self, source: str | os.PathLike[str], audio: bool = True, threaded: bool = True, timeout: float = 10.0
    ) -> None:
        self.source = str(source)
        self.live = is_stream(self.source)
        if not self.live and not Path(self.source).is_file():
            raise VideoError(f"{self.source}: no such file")
        self.container = _open_container(self.source, timeout)
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{self.source}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        audio_streams = self.container.streams.audio
        self.audio_stream = audio_streams[0] if audio and audio_streams else None
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        frames = int(self.stream.frames) if self.stream.frames and not self.live else None
        self._estimated = frames is None
        if frames is None and not self.live and self.stream.duration and self.stream.time_base:
            frames = round(float(self.stream.duration * self.stream.time_base * rate))
        context = self.stream.codec_context
        rotation = 0 if self.live else display_rotation(self.source)
        width, height = int(context.width), int(context.height)
        if rotation in (90, 270):
            width, height = height, width
        self.info = VideoInfo(
            source=self.source,
            width=width,
            height=height,
            fps=Fraction(rate),
            frames=frames,
            codec=str(context.name),
            audio=bool(audio_streams),
            live=self.live,
            time_base=Fraction(self.stream.time_base or Fraction(1, 90000)),
            rotation=rotation,
        )
        self.errors: list[str] = []
        """What went wrong while decoding, one line each (the frames before it were yielded)."""
        self._audio: list[Any] = []
        self._lock = threading.Lock()
        self.threaded = threaded
        self._stop = threading.Event()

    def take_audio(self) -> list[Any]:
        """Return (and forget) the audio packets demuxed so far."""
        with self._lock:
            packets, self._audio = self._audio, []
        return packets

    def _decode(self) -> Iterator[VideoFrame]:
        import av

        streams = [self.stream] + ([self.audio_stream] if self.audio_stream is not None else [])
        index = 0
        step = 1.0 / float(self.info.fps)
        last_pts: int | None = None

        def made(frame: Any) -> VideoFrame:
            nonlocal last_pts
            pts = frame.pts
            if pts is None:  # some containers (avi) carry no times: count frames instead
                pts = round(index * step / self.info.time_base)
            if last_pts is not None and pts <= last_pts:
                pts = last_pts + 1
            last_pts = pts
            image = upright(frame.to_ndarray(format="bgr24"), self.info.rotation)
            wall = time.time() if self.live else None
            return VideoFrame(index, image, int(pts), float(pts * self.info.time_base), wall)

        try:
            for packet in self.container.demux(*streams):
                if self._stop.is_set():
                    return
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        with self._lock:
                            self._audio.append(packet)
                    continue
                for frame in packet.decode():
                    yield made(frame)
                    index += 1
        except (av.FFmpegError, OSError) as error:
            if index == 0:
                raise VideoError(f"{self.source}: cannot decode: {one_line(error, whole=True)}") from None
            reason = one_line(error, whole=True)
            try:  # the frames the decoder still holds
                for frame in self.stream.decode(None):
                    yield made(frame)
                    index += 1
            except (av.FFmpegError, OSError, ValueError):
                pass
            declared = self.info.frames
            if declared and index < declared:
                self._stopped_early(f"{self.source}: truncated: {index} of {declared} frames decoded ({reason})")
            else:
                self._stopped_early(f"{self.source}: decoding stopped after {index} frames: {reason}")
            return
        declared = self.info.frames
        if declared and not self.live and declared - index > max(2, TRUNCATION_TOLERANCE[self._estimated] * declared):
            self._stopped_early(f"{self.source}: truncated: {index} of {declared} frames decoded")

    def _stopped_early(self, message: str) -> None:
        log.warning("%s", message)
        self.errors.append(message)

    def __iter__(self) -> Iterator[VideoFrame]:
        if not self.threaded:
            yield from self._decode()
            return
        frames: queue.Queue[Any] = queue.Queue(maxsize=8)
        done = object()

        def run() -> None:
            try:
                for item in self._decode():
                    while not self._stop.is_set():
                        try:
                            frames.put(item, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
                frames.put(done)
            except BaseException as error:  # hand it to the consumer
                frames.put(error)

        thread = threading.Thread(target=run, name="condanon-decode", daemon=True)
        thread.start()
        try:
            while True:
                item = frames.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            thread.join(timeout=5)

    def close(self) -> None:
        """Stop decoding and release the source."""
        self._stop.set()
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class EncodeOptions:
    """How output video is encoded: codec (an FFmpeg encoder name), quality (``crf``) and speed (``preset``)."""

    codec: str = "libx264"
    crf: int = 20
    preset: str = "veryfast"
    audio: bool = True


def _pix_fmt(codec: str, width: int, height: int) -> str:
    if codec in ("libx264", "libx265", "h264", "hevc") and (width % 2 or height % 2):
        return "yuv444p"  # 4:2:0 needs even sides; cropping would change the resolution
    return "yuv420p"


class VideoWriter:
    """Encodes BGR frames into ``path`` with the timing of the input and a copy of its audio.

    Encoding runs in a background thread (FFmpeg releases the GIL), so it overlaps the next frames' work.

    The file is written under ``partial`` (a temporary name beside ``path``) and renamed to ``path``
    by ``close(complete=True)``; ``close(complete=False)`` deletes it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        info: VideoInfo,
        options: EncodeOptions = EncodeOptions(),
        audio_stream: Any | None = None,
        partial: str | os.PathLike[str] | None = None,
    ) -> None:
        import av

        self.path = Path(path)
        self.partial = (
            Path(partial)
            if partial is not None
            else self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.info = info
        try:
            self.container = av.open(str(self.partial), mode="w")
        except (av.FFmpegError, ValueError, OSError) as error:
            raise VideoError(f"{self.path}: cannot write video: {one_line(error, whole=True)}") from None
        try:
            kind = av.codec.Codec(options.codec, "w").type
            if kind != "video":  # an audio or subtitle encoder's name (--codec aac)
                raise ValueError(f"it is an {kind} encoder, not a video one")
            stream = self.container.add_stream(options.codec, rate=info.fps)
        except av.codec.codec.UnknownCodecError:
            self.container.close()
            self.partial.unlink(missing_ok=True)
            raise VideoError(
                f"{self.path}: cannot write video with {options.codec}: FFmpeg has no such encoder"
            ) from None
        except (av.FFmpegError, ValueError, OSError) as error:
            self.container.close()
            self.partial.unlink(missing_ok=True)
            raise VideoError(
                f"{self.path}: cannot write video with {options.codec}: {one_line(error, whole=True)}"
            ) from None
        self.stream = cast("VideoStream", stream)
        self.stream.width = info.width
        self.stream.height = info.height
        self.stream.pix_fmt = _pix_fmt(options.codec, info.width, info.height)
        self.stream.time_base = info.time_base
        self.stream.codec_context.time_base = info.time_base
        self.stream.thread_type = "AUTO"
        if options.codec in ("libx264", "libx265"):
            self.stream.options = {"crf": str(options.crf), "preset": options.preset}
        self.audio_in = audio_stream if options.audio else None
        self.audio_out = None
        self.audio_note: str | None = None
        if self.audio_in is not None:
            try:
                self.audio_out = self.container.add_stream_from_template(self.audio_in)
            except (av.FFmpegError, ValueError) as error:
                self.audio_note = f"audio not copied: {one_line(error, whole=True)}"
                log.warning("%s: %s", self.path, self.audio_note)
        self.frames = 0
        self._closed = False
        self._error: VideoError | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=16)
        self._thread = threading.Thread(target=self._encode, name="condanon-encode", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray, pts: int) -> None:
        """Queue one BGR frame shown at ``pts`` (in the input's time base) for encoding."""
        self._put(("video", image, pts))
        self.frames += 1

    def mux_audio(self, packets: list[Any]) -> None:
        """Queue audio packets from the input, copied into the output as they are."""
        if self.audio_out is not None and packets:
            self._put(("audio", packets, None))

    def _put(self, item: tuple[Any, Any, Any]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def _encode(self) -> None:
        """The encoder thread: encode and mux what `write` and `mux_audio` queue, until ``None``."""
        import av

        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain after a failure
            kind, payload, pts = item
            try:
                if kind == "video":
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(payload), format="bgr24")
                    frame.pts = pts
                    frame.time_base = self.info.time_base
                    for packet in self.stream.encode(frame):
                        self.container.mux(packet)
                else:
                    for packet in payload:
                        packet.stream = self.audio_out
                        self.container.mux(packet)
            except Exception as error:  # any failure (a full disk: OSError ENOSPC) ends the file; the thread drains on
                self._failed(error)

    def _failed(self, error: BaseException) -> None:
        """Record the first write failure as a one-line `VideoError`."""
        if self._error is None:
            self._error = VideoError(f"{self.path}: cannot write: {one_line(error, whole=True)}")

    def close(self, complete: bool = True) -> None:
        """Flush the encoder and finish the file; rename it into place, or delete it when not ``complete``.

        A write failure, now or earlier (a full disk), deletes the temporary file and raises one
        `VideoError` line.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        complete = complete and self._error is None
        try:
            try:
                if complete:
                    for packet in self.stream.encode(None):
                        self.container.mux(packet)
            finally:
                self.container.close()  # writes the trailer: it can fail on a full disk too
            if complete:
                from ..jobs import finish

                finish(self.partial, self.path)
        except Exception as error:
            self._failed(error)
        if not complete or self._error is not None:
            try:
                self.partial.unlink(missing_ok=True)
            except OSError as error:
                log.warning("%s: cannot remove: %s", self.partial, one_line(error, whole=True))
        if self._error is not None:
            raise self._error

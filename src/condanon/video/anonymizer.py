"""`VideoAnonymizer`: every face on every frame of a video or stream, one steady synthetic identity per track.

Frames flow through a short look-ahead buffer. Faces are detected on keyframes (every
``detect_every`` frames) and linked into tracks (`FaceTracks`); a frame leaves the buffer once the
keyframes after it are known, so the frames between keyframes, across detector misses and before a
track's first detection are covered too (`FaceTracks.at`). Per track:
- attributes are read on keyframes (at most every ``attribute_every`` frames) and aggregated
  (median age, mean sex and emotion probabilities);
- the synthetic method picks ONE identity with its verification loop, on the track's first keyframe
  with landmarks, and re-renders it on every frame at that frame's landmarks (re-estimated between
  keyframes, smoothed over time); frames bridged on one side only (before the first or after the
  last detection), faces under `MIN_SYNTHETIC_HEIGHT` and faces overlapped by a stronger one get the
  fallback;
- the track's output is checked on its first keyframe, before any of its frames is written, then
  every ``recheck_every`` frames: a track an embedder still recognises falls back for the rest of
  the video.

Frames come upright (the input's display rotation applied, `VideoReader`). A placed box that lies
wholly outside the frame (a face predicted past the edge) is skipped on that frame: nothing of it
is visible. One that lies partly outside is drawn unclipped (the method clips to the image, so an
ellipse keeps its shape at the edge) and recorded clipped to the frame in the boxes CSV.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..attributes import ATTRIBUTE_ESTIMATORS, CombinedEstimator, estimate_each
from ..detection.base import overlap
from ..errors import ModelError, VideoError
from ..faceness import mark_doubtful
from ..failures import Failure, small_failure, uncertain_failure
from ..identity import EMBEDDERS, Embedder, embed_original, judge, unjudged
from ..pipeline import MIN_SYNTHETIC_HEIGHT, Anonymizer
from ..synthesis.backend import SynthesisIdentity
from ..types import Face
from .camera import CameraMotion
from .io import EncodeOptions, VideoFrame, VideoReader, VideoWriter
from .report import Reading, Sighting, VideoReport, aggregate
from .segments import SegmentedWriter
from .stream import Reconnecting, open_source
from .tracking import FaceTracks, Placement

log = logging.getLogger(__name__)

VIDEO_ATTACKER = "dlib"
"""The held-out recogniser a track's first keyframe is also checked with (``attacker_checks``): on crowd.mp4 (blur,
every frame judged by SFace and dlib) tracks it masked cut the leaked faces (docs/speed.md)."""
OVERLAP = 0.3
"""A face overlapping a stronger one this much (IoU or share of the smaller box) gets the fallback on that
frame instead of a synthetic face: two synthetic faces drawn over each other cover neither, and YuNet
finds a second, weaker "face" on the hair of a near face. (Dropping such detections would leave the
people behind others uncovered.)"""
WEAK_SCORE = 0.3
"""Keyframe detections down to this score are handed to the tracker; below the image threshold they only continue
tracks.
"""

Progress = Callable[[int, int | None], None]
RETRY_CLEAR = 1.6
"""Before a track's next identity is checked, the drawn keyframe gets back its original pixels over the face box
grown by this factor (a synthetic face reaches past the box), so the refused identity cannot sway the check."""


@dataclasses.dataclass
class VideoRunReport(VideoReport):
    """A `VideoReport` with ``errors``: what went wrong without ending the run (a truncated input), one line each.

    ``to_dict`` always has the ``errors`` key (an empty list when all went well).
    """

    errors: list[str] = dataclasses.field(default_factory=list)
    lost: bool = False
    """A live source dropped and no reconnection brought it back: the run ended with what it had read."""
    segments: list[str] = dataclasses.field(default_factory=list)
    """With ``segment``: the finished segment files, in order."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: `VideoReport.to_dict` plus ``errors``, ``lost`` and ``segments`` (when any)."""
        extra = {"segments": list(self.segments)} if self.segments else {}
        return super().to_dict() | {"errors": list(self.errors), "lost": self.lost} | extra


class VideoAnonymizer:
    """Anonymises videos and live streams frame by frame, with tracks, bridging and per-track checks.

    Args:
        anonymizer: the image `Anonymizer` whose method, models and checks are used (default: synthetic).
        detect_every: frames between detections (tracks carry the faces between them).
        detector: the detector for keyframes (default: YuNet's pyramid; ``None``: the anonymizer's).
        tiles: YuNet also searches native-resolution tiles of frames over 1280 px (small faces; slower).
        tile_turns: each keyframe searches one in this many of the tiles, the next keyframe the next ones (a small
            face is found within this many keyframes; the look-ahead covers the frames before it).
        backfill: frames before a track's first detection that are covered (the look-ahead; default 2 keyframes).
        max_gap: frames a track may go undetected and still be bridged (default half a second).
        attribute_every: frames between attribute readings of one track (where the anonymizer reads
            attributes: `Anonymizer.reads_attributes`).
        recheck_every: frames between identity re-checks of one track's output (in-loop embedder).
        attributes: the estimators that read each track (fast ones: they share the in-loop identity
            vector; ``None``: the anonymizer's own). The synthetic method's final gate still uses the
            anonymizer's estimator, once per track.
        frame_landmarks: the synthetic method re-estimates the 68 landmarks on every frame (dlib, ~4 ms a
            face; on the interpolated box) instead of interpolating them between keyframes: the
            expression is followed frame by frame.
        margin: a track passes its identity checks when the similarity is this far on the safe side of
            the bar: the embedder's threshold, or for a synthetic face the identity bar of strangers of
            its age (`condanon.identity.strangers`), which is strict already, so 0 by default (the
            keyframe's candidate was accepted 0.02 under it).
        smoothing: weight of the previous frame's landmarks in their exponential smoothing (0: none).
        attacker_checks: also check each track's first keyframe with the held-out recogniser (the anonymizer's
            attacker, else `VIDEO_ATTACKER`) and mask (or draw again) a track it matches (dlib, ~100 ms a track;
            in video it is a check, not a report option); `condanon evaluate` measures it on every frame.
        min_score: a keyframe detection this strong starts a track of its own (weaker ones, down to
            `WEAK_SCORE`, only continue tracks); lower than the image threshold (0.6): in video a face
            missed once is missed on many frames, and YuNet scores small or half-hidden faces 0.35-0.55.
        max_fps: for live sources, frames whose time is closer than ``1 / max_fps`` to the last kept one are dropped.
        identities: synthetic identities a track may try before it falls back: one that a recogniser still
            matches on a keyframe check is replaced by a new one, drawn and checked on the same keyframe
            before any frame shows it (1: the first identity, then the fallback).
        reconnect: live sources: times in a row a dropped or unreachable stream is opened again, after
            ``reconnect_wait`` seconds, then twice as long each time (at most 30 s; `condanon.video.stream`).
        segment: write the output as one finished file per this many seconds (``live.0000.mp4``, ...;
            `condanon.video.segments`); ``None``: one file.
    """

    def __init__(
        self,
        anonymizer: Anonymizer | None = None,
        detect_every: int = 2,
        detector: str | None = "yunet",
        tiles: bool = True,
        tile_turns: int = 1,
        backfill: int | None = None,
        max_gap: int | None = None,
        attribute_every: int = 50,
        recheck_every: int = 25,
        max_fps: float | None = None,
        min_score: float = 0.45,
        attributes: tuple[str, ...] | None = ("age-sex-mean", "emotion"),
        attacker_checks: bool = True,
        frame_landmarks: bool = True,
        smoothing: float = 0.5,
        margin: float = 0.0,
        identities: int = 3,
        reconnect: int = 5,
        reconnect_wait: float = 1.0,
        segment: float | None = None,
    ) -> None:
        if detect_every < 1:
            raise VideoError("detect_every must be at least 1")
        if identities < 1:
            raise VideoError("identities must be at least 1")
        self.identities = identities
        self.reconnect = reconnect
        self.reconnect_wait = reconnect_wait
        if segment is not None and segment <= 0:
            raise VideoError("segment must be more than 0 seconds")
        self.segment = segment
        self.anonymizer = anonymizer or Anonymizer()
        if detector is not None:
            from ..detection import DETECTORS

            options: dict[str, Any] = {"tiles": tiles, "tile_turns": tile_turns} if detector == "yunet" else {}
            if detector.startswith("yunet"):  # weak detections only continue tracks (ByteTrack's second pass)
                options["score_threshold"] = WEAK_SCORE
            self.detector = DETECTORS.create(detector, **options)
        else:
            self.detector = self.anonymizer.detector
        self.detect_every = detect_every
        self.tile_turns = tile_turns if detector == "yunet" and tiles else None
        self.backfill = backfill
        self.max_gap = max_gap
        self.attribute_every = attribute_every
        self.recheck_every = recheck_every
        self.max_fps = max_fps
        self.min_score = min_score
        if attributes is None:
            self.estimator = self.anonymizer.estimator
        else:
            self.estimator = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create(name) for name in attributes])
        # In video the held-out recogniser is a check, not a report: a track it matches on its first keyframe is
        # masked (or drawn again). It runs once per track, whatever the image anonymizer's report option.
        self.attacker: Embedder | None = (
            (self.anonymizer.attacker or EMBEDDERS.create(VIDEO_ATTACKER)) if attacker_checks else None
        )
        self.frame_landmarks = frame_landmarks
        if not 0.0 <= smoothing < 1.0:
            raise VideoError("smoothing must be in [0, 1)")
        self.smoothing = smoothing
        self.margin = margin
        self.stop = threading.Event()
        """Set it (or press Ctrl-C in the CLI) to end a live run cleanly: the output is finalised."""

    def read(self, image: np.ndarray, faces: list[Face]) -> list[Any]:
        """Return the video estimators' attributes per face (``None`` for a face whose estimate failed)."""
        return estimate_each(self.estimator, image, faces)

    @property
    def method(self) -> str:
        """Return the anonymisation method's name."""
        return self.anonymizer.method

    def settings(self) -> dict[str, Any]:
        """Return the options that shape the output (for reports and resumable jobs)."""
        a = self.anonymizer
        return {
            "method": a.method,
            "seed": a.seed,
            "detect_every": self.detect_every,
            "detector": getattr(self.detector, "name", str(self.detector)),
            "tile_turns": self.tile_turns,
            "backfill": self.backfill,
            "max_gap": self.max_gap,
            "recheck_every": self.recheck_every,
            "identities": self.identities,
            "verify": a.verify,
            "fallback": a.fallback.name,
        }

    # -- the run ------------------------------------------------------------------------------

    def run(
        self,
        source: str | Path,
        output: str | Path | None,
        encode: EncodeOptions = EncodeOptions(),
        partial: str | Path | None = None,
        progress: Progress | None = None,
        frames: Callable[[np.ndarray], None] | None = None,
    ) -> VideoRunReport:
        """Anonymise ``source`` (file, URL or camera) into ``output``; return the report.

        ``output`` ``None`` writes no file (a window-less sink: give ``frames`` to receive each
        anonymised BGR frame). A live run ends on `stop` (or Ctrl-C, which sets it) and its file
        is finalised; a file run that fails or is interrupted leaves no output file (a write
        failure raises one `VideoError` line). An input whose decoding stops early is written as far
        as it decoded, every frame anonymised, and the report's ``errors`` says so.
        """
        start = time.perf_counter()
        reader = open_source(str(source), encode.audio, self.reconnect, self.reconnect_wait, self.stop)
        info = reader.info
        writer: VideoWriter | SegmentedWriter | None = None
        report = VideoRunReport(
            str(source), None if output is None else str(output), info.to_dict(), self.method, settings=self.settings()
        )
        complete = False
        restore = self._catch_interrupt() if info.live else None
        try:
            if output is not None and self.segment is not None:
                writer = SegmentedWriter(output, info, encode, self.segment)
                report.audio = "none"
            elif output is not None:
                writer = VideoWriter(output, info, encode, reader.audio_stream, partial)
                report.audio = "copied" if writer.audio_out is not None else (writer.audio_note or "none")
            state = _RunState(self, info.fps, report, (info.width, info.height))
            for frame in self._frames(reader, report):
                if writer is not None:
                    writer.mux_audio(reader.take_audio())
                for done in state.push(frame):
                    self._emit(done, writer, frames, report)
                if progress is not None:
                    progress(report.frames_read, info.frames)
            for done in state.flush():
                self._emit(done, writer, frames, report)
            if writer is not None:
                writer.mux_audio(reader.take_audio())
            complete = True
            report.errors.extend(reader.errors)
            report.lost = bool(getattr(reader, "lost", False))
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        finally:
            reader.close()
            if restore is not None:
                restore()
            if writer is not None:
                # a live recording is kept however it ended (it is playable up to there); a file job only when complete
                writer.close(complete=complete or (info.live and writer.frames > 0))
                if isinstance(writer, SegmentedWriter):
                    report.segments = [str(path) for path in writer.paths]
            report.seconds = time.perf_counter() - start
            report.interrupted = report.interrupted or (info.live and self.stop.is_set())
        return report

    def _catch_interrupt(self) -> Callable[[], object] | None:
        """Make Ctrl-C set `stop` (a clean end of a live run); return what restores the old handler."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: Any) -> None:
            if self.stop.is_set():  # a second Ctrl-C: stop at once
                signal.signal(signal.SIGINT, previous)
                raise KeyboardInterrupt
            log.info("stopping: finishing the output (Ctrl-C again to abort)")
            self.stop.set()

        signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _frames(self, reader: VideoReader | Reconnecting, report: VideoReport) -> Iterator[VideoFrame]:
        """Yield the frames to process; with ``max_fps`` on a live source, drop those that come too soon."""
        last: float | None = None
        index = 0
        for frame in reader:
            if self.stop.is_set():
                return
            if reader.live and self.max_fps and last is not None and frame.time - last < 1.0 / self.max_fps:
                report.frames_skipped += 1
                continue
            last = frame.time
            frame.index = index  # frames are numbered as processed (skips leave no holes)
            index += 1
            report.frames_read += 1
            yield frame

    def _emit(
        self,
        done: tuple[VideoFrame, np.ndarray],
        writer: VideoWriter | SegmentedWriter | None,
        sink: Any,
        report: VideoRunReport,
    ) -> None:
        frame, image = done
        if writer is not None:
            writer.write(image, frame.pts)
        if sink is not None:
            sink(image)
        report.frames_written += 1


class _RunState:
    """The per-run state: look-ahead buffer, tracks, and what each track has been given."""

    def __init__(
        self, owner: VideoAnonymizer, fps: Any, report: VideoReport, frame: tuple[int, int] | None = None
    ) -> None:
        self.owner = owner
        self.a = owner.anonymizer
        self.report = report
        self.tracks = FaceTracks(
            float(fps), owner.detect_every, owner.max_gap, owner.backfill, min_score=owner.min_score, frame=frame
        )
        self.buffer: deque[VideoFrame] = deque()
        self.keyframe = -1
        self.camera = CameraMotion()
        self.identities: dict[int, SynthesisIdentity] = {}
        """Per track: its synthetic identity (the synthesis backend renders it on every frame)."""
        self.failed: dict[int, Failure] = {}
        self.last_reading: dict[int, int] = {}
        self.last_check: dict[int, int] = {}
        self.tried: dict[int, int] = {}
        """Per track: how many synthetic identities have been drawn for it."""
        self.blackout: set[int] = set()
        self.smoothed: dict[int, tuple[int, np.ndarray]] = {}
        """Per track: the last frame rendered and its smoothed landmarks, in box units about the box centre."""
        self.need_landmarks = self.a.synthesizer is not None

    def push(self, frame: VideoFrame) -> list[tuple[VideoFrame, np.ndarray]]:
        """Take one frame; return the frames that are ready, anonymised."""
        self.buffer.append(frame)
        if frame.index % self.owner.detect_every == 0:
            self._keyframe(frame)
        ready = []
        while self.buffer and self.buffer[0].index + self.tracks.lookahead <= self.keyframe:
            ready.append(self._finish(self.buffer.popleft()))
        return ready

    def flush(self) -> list[tuple[VideoFrame, np.ndarray]]:
        """Return the frames still buffered, anonymised (end of the video)."""
        if self.buffer and self.buffer[-1].index > self.keyframe:
            self._keyframe(self.buffer[-1])  # the last frame is a keyframe: nothing at the end goes undetected
        ready = [self._finish(f) for f in self.buffer]
        self.buffer.clear()
        return ready

    # -- keyframes ------------------------------------------------------------------------------

    def _keyframe(self, frame: VideoFrame) -> None:
        image = frame.image
        try:
            faces = self.owner.detector.detect(image)
        except Exception as error:  # fail closed: an undetectable keyframe covers the whole frame
            log.warning("frame %d: detection failed: %s", frame.index, error)
            faces = []
            self.blackout.add(frame.index)
        faces = self.tracks.update(frame.index, faces)
        self.keyframe = frame.index
        camera = self.camera.update(image, [f.box for f in faces])
        if not faces:
            return
        camera = (round(camera[0], 1), round(camera[1], 1))
        for face in faces:
            x1, y1, x2, y2 = face.box.to_list()
            score = round(float(face.score), 4)
            sighting = Sighting(frame.index, round(frame.time, 4), frame.wall, (x1, y1, x2, y2), score, camera)
            self.report.track(_tracked(face), self.a.method).sightings.append(sighting)
        self._read_faceness(image, faces)
        if self.need_landmarks:
            try:
                self.a.landmarker.landmarks(image, faces)
            except Exception as error:
                log.warning("frame %d: landmarks failed: %s", frame.index, error)
        height, width = image.shape[:2]
        due = [f for f in faces if self._reading_due(f, frame.index, width, height)]
        for face, attributes in zip(due, self.owner.read(image, due)):
            face.attributes = attributes
            whole = face.box.within(width, height)
            if whole:  # a face cut by the frame's edge is read only until a whole one is: it reads years off
                self.last_reading[_tracked(face)] = frame.index
            if attributes is not None:
                score = round(float(face.score), 4)
                reading = Reading(frame.index, round(frame.time, 4), frame.wall, score, attributes, whole)
                self.report.track(_tracked(face), self.a.method).timeline.append(reading)
        crowded = _overlapped(faces) if self.a.synthesizer is not None else set()
        if self.a.synthesizer is not None:
            for face in faces:
                if (
                    _tracked(face) not in self.identities
                    and _tracked(face) not in self.failed
                    and id(face) not in crowded
                ):
                    self._choose(image, face, frame.index)
        if self.a.verify:
            self._check(image, [f for f in faces if id(f) not in crowded], frame.index)
        self.tracks.forget(frame.index - len(self.buffer))

    def _reading_due(self, face: Face, index: int, width: int, height: int) -> bool:
        """Return whether a face's attributes are read on this keyframe.

        A whole face every ``attribute_every`` frames; one cut by the frame's edge (walking in or out) only
        while its track has no reading at all.
        """
        if not self.a.reads_attributes:
            return False
        track_id = _tracked(face)
        if not face.box.within(width, height):
            return not self.report.track(track_id, self.a.method).timeline
        return index - self.last_reading.get(track_id, -(10**9)) >= self.owner.attribute_every

    def _read_faceness(self, image: np.ndarray, faces: list[Face]) -> None:
        """Check the faceness of the faces whose tracks no keyframe has yet read as a real face."""
        if self.a.faceness is None:
            return
        tracks = [self.report.track(_tracked(f), self.a.method) for f in faces]
        doubtful = [f for f, t in zip(faces, tracks) if t.faceness is None or t.uncertain]
        try:
            mark_doubtful(self.a.faceness, image, doubtful)
        except ModelError:
            raise
        except Exception as error:  # the check only withholds synthetic faces: without it, faces stay as detected
            log.warning("faceness check failed: %s", error)
            return
        for face in doubtful:
            if face.faceness is None:
                continue
            track = self.report.track(_tracked(face), self.a.method)
            track.read_faceness(face.faceness, face.doubt)
            if track.uncertain and self.a.synthesizer is not None and _tracked(face) not in self.identities:
                track.verdict, track.method = "fallback", self.a.fallback.name
                track.failure = uncertain_failure(track.doubt)
                track.reason = track.failure.detail

    def _choose(self, image: np.ndarray, face: Face, index: int) -> None:
        """Pick the track's synthetic identity with the verification loop, on this keyframe."""
        track_id = _tracked(face)
        track = self.report.track(track_id, self.a.method)
        if track.uncertain:  # not (yet) read as a real face: the fallback covers it until a keyframe does
            return
        if face.box.height < MIN_SYNTHETIC_HEIGHT:
            self._fail(track_id, small_failure(face.box.height, MIN_SYNTHETIC_HEIGHT, "for a synthetic face"))
            return
        if face.landmarks68 is None:
            return  # try again on the next keyframe (bridged frames get the fallback meanwhile)
        target = dataclasses.replace(face, attributes=aggregate(track.readings) or face.attributes)
        attempt = self.tried.get(track_id, 0)
        self.tried[track_id] = attempt + 1
        rng = np.random.default_rng([self.a.seed, _track_key(track_id), *([attempt] if attempt else [])])
        assert self.a.synthesizer is not None
        try:
            outcome = self.a.synthesizer.synthesize(image, image.copy(), target, rng)
        except ModelError:  # a broken model is the run's failure, not this track's: one line, exit 2
            raise
        except Exception as error:
            self._fail(track_id, Failure("error", f"synthetic failed: {error}", {"error": type(error).__name__}))
            return
        track.synthesis = outcome.to_dict() | {"chosen_on_frame": index, "identities_tried": attempt + 1}
        face.embeddings.update(target.embeddings)
        if outcome.passed and outcome.identity is not None:
            self.identities[track_id] = outcome.identity
            track.verdict, track.reason, track.method = "anonymized", None, self.a.method
        else:
            self._fail(track_id, outcome.failure())

    def _fail(self, track_id: int, failure: Failure) -> None:
        log.info("track %d falls back to %s: %s", track_id, self.a.fallback.name, failure)
        self.failed[track_id] = failure
        track = self.report.track(track_id, self.a.method)
        track.verdict, track.reason, track.method, track.failure = (
            "fallback",
            failure.detail,
            self.a.fallback.name,
            failure,
        )

    # -- output frames ----------------------------------------------------------------------------

    def _finish(self, frame: VideoFrame) -> tuple[VideoFrame, np.ndarray]:
        """Return ``frame`` with every placed track anonymised (and its boxes recorded)."""
        original = frame.image
        output = original.copy()
        height, width = original.shape[:2]
        placements = [p for p in self.tracks.at(frame.index) if p.face.box.clipped(width, height).area > 0]
        if frame.index in self.blackout:
            output[:] = 0  # detection failed on this keyframe: nothing of it may leak
        crowded = _overlapped([p.face for p in placements]) if self.a.synthesizer is not None else set()
        methods = [self._apply(original, output, p, frame.index, id(p.face) in crowded) for p in placements]
        for placement, method in zip(placements, methods):
            track = self.report.track(placement.track, self.a.method)
            x1, y1, x2, y2 = (round(v, 1) for v in placement.face.box.clipped(width, height).to_list())
            verdict = "anonymized" if method == self.a.method else "fallback"
            self.report.boxes.append(
                (frame.index, round(frame.time, 4), placement.track, x1, y1, x2, y2, placement.source, method, verdict)
            )
            track.seen(frame.index, placement.source)
        frame.image = output
        return frame, output

    def _renders(self, placement: Placement, crowded: bool = False) -> bool:
        """Return whether the track's own method (not the fallback) covers it on this placement.

        ``crowded``: the face is overlapped by a stronger one on this frame (it gets the fallback).
        """
        if placement.track in self.failed or crowded:
            return False
        if self.a.synthesizer is None:
            return True
        return (
            placement.core.height >= MIN_SYNTHETIC_HEIGHT  # a face that shrank under it since its identity was chosen
            and placement.track in self.identities
            and placement.source in ("detected", "interpolated")
            and placement.face.landmarks68 is not None
        )

    def _apply(self, original: np.ndarray, output: np.ndarray, placement: Placement, index: int, crowded: bool) -> str:
        """Anonymise one placed track in ``output``: its method, or the fallback (when it must, or on any error); return
        which.
        """
        try:
            if self._renders(placement, crowded):
                points = self._landmarks(original, placement, index) if self.a.synthesizer is not None else None
                self._render(output, placement, points)
                return self.a.method
        except Exception as error:
            log.debug("frame %d track %d: %s failed: %s", index, placement.track, self.a.method, error)
        try:
            self.a.fallback.apply(output, placement.face.box)
        except Exception as error:  # fail closed: black out the box's part of the frame
            log.warning(
                "frame %d track %d: %s failed, blacked out: %s", index, placement.track, self.a.fallback.name, error
            )
            x1, y1, x2, y2 = placement.face.box.clipped(output.shape[1], output.shape[0]).to_int()
            output[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = 0
        self.report.track(placement.track, self.a.method).fallback_frames += 1
        return self.a.fallback.name

    def _render(self, output: np.ndarray, placement: Placement, points: np.ndarray | None) -> None:
        """Draw the track's method at ``placement`` into ``output`` (the synthetic face at ``points``)."""
        if self.a.synthesizer is None:
            assert self.a.obscurer is not None
            self.a.obscurer.apply(output, placement.face.box)
            return
        assert points is not None
        rng = np.random.default_rng([self.a.seed, _track_key(placement.track), 1])
        face = dataclasses.replace(placement.face, box=placement.core, landmarks68=points)
        self.identities[placement.track].render(output, face, rng)

    def _landmarks(self, original: np.ndarray, placement: Placement, index: int) -> np.ndarray:
        """Return the 68 landmarks to render the track on this frame: this frame's own, smoothed over time.

        On a keyframe they are the detection's; between keyframes the predictor runs on the
        interpolated box (``frame_landmarks``) or they are interpolated. Exponential smoothing over
        consecutive frames takes out the predictor's frame-to-frame jitter.
        """
        face = placement.face
        points = face.landmarks68
        assert points is not None
        if self.owner.frame_landmarks and placement.source == "interpolated":
            probe = Face(box=placement.core, score=face.score, landmarks5=face.landmarks5, detector=face.detector)
            try:
                self.a.landmarker.landmarks(original, [probe])
                if probe.landmarks68 is not None:
                    points = probe.landmarks68
            except Exception as error:  # the interpolated points are a fine stand-in
                log.debug("frame %d track %d: landmarks failed: %s", index, placement.track, error)
        # smoothed in the box's frame: the shape is steadied, while the box (itself smooth) carries the
        # motion, so a fast face is not trailed by its synthetic one
        box = placement.core
        centre, size = np.array(box.center, np.float32), np.float32(max(box.height, 1.0))
        shape = (np.asarray(points, np.float32) - centre) / size
        last = self.smoothed.get(placement.track)
        if last is not None and last[0] == index - 1 and self.owner.smoothing > 0:
            shape = self.owner.smoothing * last[1] + (1.0 - self.owner.smoothing) * shape
        self.smoothed[placement.track] = (index, shape)
        return shape * size + centre

    def _check(self, image: np.ndarray, faces: list[Face], index: int) -> None:
        """Check the tracks of ``faces`` due for it on this keyframe, before any of their frames around it is written.

        Each due track's method is drawn on a copy of the keyframe and compared with the original: a
        track the in-loop embedder (or, on its first check with ``attacker_checks``, the held-out one)
        still matches within ``margin`` draws another identity (`_another_identity`); when none is left it
        falls back for the whole video from here, including the buffered frames before this keyframe (its
        first check comes before its first frame is written).
        """
        due = [
            Placement(_tracked(f), f, "detected")
            for f in faces
            if _tracked(f) not in self.failed
            and index - self.last_check.get(_tracked(f), -(10**9)) >= self.owner.recheck_every
            and self._renders(Placement(_tracked(f), f, "detected"))
        ]
        if not due:
            return
        drawn = image.copy()
        for placement in due:
            self._draw(drawn, placement, index)
        refused = [p for p in due if p.track not in self.failed and _refused(self._verify(image, drawn, p, index))]
        if self.a.synthesizer is None:  # blur, pixelate, mask: no other identity to draw; the refusal stands
            return
        for placement in refused:
            self._another_identity(image, drawn, placement, index)

    def _draw(self, drawn: np.ndarray, placement: Placement, index: int) -> bool:
        """Draw the track's method into the keyframe copy ``drawn``; on an error the track falls back (``False``)."""
        try:
            self._render(drawn, placement, placement.face.landmarks68)
        except Exception as error:
            failure = Failure("error", f"{self.a.method} failed on frame {index}: {error}", {"frame": index})
            self._fail(placement.track, failure)
            return False
        return True

    def _another_identity(self, image: np.ndarray, drawn: np.ndarray, placement: Placement, index: int) -> None:
        """Give a track whose identity a recogniser matched new identities on this keyframe, while any are left.

        Each new identity is drawn and checked on this keyframe before any frame shows it. On the track's
        first check no frame has been written yet, so the new identity is the only one its frames show; on a
        later recheck, the frames not yet written (the look-ahead buffer on) show the new one, as they would
        have shown the fallback. Only when every identity is refused does the track fall back.
        """
        track_id = placement.track
        while self.tried.get(track_id, 0) < self.owner.identities:
            del self.failed[track_id]
            self.identities.pop(track_id, None)
            self.last_check.pop(track_id, None)  # the new identity's check is a first check (the attacker too)
            track = self.report.track(track_id, self.a.method)
            track.verdict, track.reason, track.failure, track.method = "anonymized", None, None, self.a.method
            self._choose(image, placement.face, index)
            if track_id in self.failed or track_id not in self.identities:
                return
            x1, y1, x2, y2 = placement.face.box.scaled(RETRY_CLEAR).clipped(image.shape[1], image.shape[0]).to_int()
            drawn[y1:y2, x1:x2] = image[y1:y2, x1:x2]  # the refused identity's pixels go
            if not self._draw(drawn, placement, index) or not _refused(self._verify(image, drawn, placement, index)):
                return

    def _verify(self, original: np.ndarray, drawn: np.ndarray, placement: Placement, index: int) -> Failure | None:
        """Compare one drawn track with the original; a match sends the track to the fallback. Return why it failed."""
        first = placement.track not in self.last_check
        self.last_check[placement.track] = index
        track = self.report.track(placement.track, self.a.method)
        face = placement.face
        after_face = dataclasses.replace(face, embeddings={})
        embedders = [self.a.embedder] + ([self.owner.attacker] if self.owner.attacker is not None and first else [])
        checks = []
        for embedder in embedders:
            try:
                before = embed_original(embedder, original, [face])[0]
                after = embedder.embed(drawn, [after_face])[0]
            except Exception as error:
                log.warning(
                    "frame %d track %d: identity check with %s failed: %s", index, placement.track, embedder.name, error
                )
                checks.append(unjudged(embedder))
                continue
            after_face.embeddings[embedder.name] = after
            checks.append(judge(embedder, before, after, self.a.identity_bar(embedder, face), self.owner.margin))
        track.checks.append(checks)
        failed = [c for c in checks if c.matched is None or c.matched]
        if failed:
            c = failed[0]
            what = (
                "could not run"
                if c.matched is None
                else f"matched ({c.metric} {c.value:.3f}, bar {c.threshold:.3f} with margin {self.owner.margin})"
            )
            values = {"frame": index, "embedder": c.embedder, "value": c.value, "bar": c.threshold, "first": first}
            self._fail(
                placement.track,
                Failure(
                    "unchecked" if c.matched is None else "identity",
                    f"{c.embedder} check on frame {index} {what}",
                    values,
                ),
            )
            return self.failed[placement.track]
        if self.a.reads_attributes:
            readings = self.owner.read(drawn, [after_face])
            if readings[0] is not None:
                track.readings_after.append(readings[0])
        return None


def _refused(failure: Failure | None) -> bool:
    """Return whether a track's check failed because a recogniser still matched its identity (another may be drawn)."""
    return failure is not None and failure.kind == "identity"


def _overlapped(faces: list[Face]) -> set[int]:
    """Return the ``id()`` of each face that overlaps a stronger one by `OVERLAP` or more."""
    out = set()
    for face in faces:
        if any(other is not face and other.score > face.score and overlap(face, other) >= OVERLAP for other in faces):
            out.add(id(face))
    return out


def _tracked(face: Face) -> int:
    """Return the track id of a face the tracker kept (`condanon.video.tracking.FaceTracks.update` sets one on each)."""
    assert face.track_id is not None, "a tracked face has its track id"
    return face.track_id


def _track_key(track_id: int) -> int:
    """Return a seed part for a track id."""
    return zlib.crc32(str(track_id).encode())

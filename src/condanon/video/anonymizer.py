"""`VideoAnonymizer`: every face on every frame of a video or stream, one steady synthetic identity per track.

Frames flow through a short look-ahead buffer. Faces are detected on keyframes (every
``detect_every`` frames) and linked into tracks (`FaceTracks`); a frame leaves the buffer once the
keyframes after it are known, so the frames between keyframes, across detector misses and before a
track's first detection are covered too (`FaceTracks.at`). Per track:
- attributes are read on keyframes (at most every ``attribute_every`` frames) and aggregated
  (median age, mean sex and emotion probabilities);
- the synthetic method picks ONE identity with its verification loop, on the track's first keyframe
  with landmarks, and re-renders it on every frame at that frame's (interpolated, so smoothed)
  landmarks; frames bridged on one side only (before the first or after the last detection) get the
  fallback, as there are no landmarks to render on;
- the output is re-checked every ``recheck_every`` frames: a track the in-loop embedder still
  recognises falls back for the rest of the video (the fallback is never skipped).
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

from ..errors import VideoError
from ..identity import embed_original, is_match, similarity
from ..pipeline import Anonymizer
from ..synthesis.compose import Candidate, compose, triangles_for
from ..synthesis.synthesizer import _paste
from ..types import Face, IdentityCheck
from .io import EncodeOptions, VideoFrame, VideoReader, VideoWriter
from .report import VideoReport, aggregate
from .tracking import FaceTracks, Placement

log = logging.getLogger(__name__)

WEAK_SCORE = 0.3
"""Keyframe detections down to this score are handed to the tracker; below the image threshold they only continue tracks."""

Progress = Callable[[int, int | None], None]


class VideoAnonymizer:
    """Anonymises videos and live streams frame by frame, with tracks, bridging and per-track checks.

    Args:
        anonymizer: the image `Anonymizer` whose method, models and checks are used (default: synthetic).
        detect_every: frames between detections (tracks carry the faces between them).
        detector: the detector for keyframes (default: YuNet's pyramid without tiles; ``None``: the anonymizer's).
        backfill: frames before a track's first detection that are covered (the look-ahead; default 2 keyframes).
        max_gap: frames a track may go undetected and still be bridged (default half a second).
        attribute_every: frames between attribute readings of one track.
        recheck_every: frames between identity re-checks of one track's output (in-loop embedder).
        attributes: the estimators that read each track (fast ones: they share the in-loop identity
            vector; ``None``: the anonymizer's own). The synthetic method's final gate still uses the
            anonymizer's estimator, once per track.
        attacker_checks: also run the held-out attacker at each re-check (slow: dlib, ~85 ms a face;
            `condanon evaluate` measures it on every frame instead).
        max_fps: for live sources, frames whose time is closer than ``1 / max_fps`` to the last kept one are dropped.
    """

    def __init__(
        self,
        anonymizer: Anonymizer | None = None,
        detect_every: int = 5,
        detector: str | None = "yunet",
        backfill: int | None = None,
        max_gap: int | None = None,
        attribute_every: int = 50,
        recheck_every: int = 50,
        max_fps: float | None = None,
        attributes: tuple[str, ...] | None = ("age-sex-mean", "emotion"),
        attacker_checks: bool = False,
    ) -> None:
        if detect_every < 1:
            raise VideoError("detect_every must be at least 1")
        self.anonymizer = anonymizer or Anonymizer()
        if detector is not None:
            from ..detection import DETECTORS

            options: dict[str, Any] = {"tiles": False} if detector == "yunet" else {}
            if detector.startswith("yunet"):  # weak detections only continue tracks (ByteTrack's second pass)
                options["score_threshold"] = WEAK_SCORE
            self.detector = DETECTORS.create(detector, **options)
        else:
            self.detector = self.anonymizer.detector
        self.detect_every = detect_every
        self.backfill = backfill
        self.max_gap = max_gap
        self.attribute_every = attribute_every
        self.recheck_every = recheck_every
        self.max_fps = max_fps
        if attributes is None:
            self.estimator = self.anonymizer.estimator
        else:
            from ..attributes import ATTRIBUTE_ESTIMATORS, CombinedEstimator

            self.estimator = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create(name) for name in attributes])
        self.attacker_checks = attacker_checks
        self.stop = threading.Event()
        """Set it (or press Ctrl-C in the CLI) to end a live run cleanly: the output is finalised."""

    def read(self, image: np.ndarray, faces: list[Face]) -> list[Any]:
        """Return the video estimators' attributes per face (``None`` for a face whose estimate failed)."""
        out = []
        for face in faces:
            try:
                out.append(self.estimator.estimate(image, [face])[0])
            except Exception as error:
                log.warning("attribute estimation failed for a face at %s: %s", face.box.to_list(), error)
                out.append(None)
        return out

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
            "backfill": self.backfill,
            "max_gap": self.max_gap,
            "recheck_every": self.recheck_every,
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
    ) -> VideoReport:
        """Anonymise ``source`` (file, URL or camera) into ``output``; return the report.

        ``output`` ``None`` writes no file (a window-less sink: give ``frames`` to receive each
        anonymised BGR frame). A live run ends on `stop` (or Ctrl-C, which sets it) and its file
        is finalised; a file run that fails or is interrupted leaves no output file.
        """
        start = time.perf_counter()
        reader = VideoReader(source, audio=encode.audio)
        info = reader.info
        writer = None
        report = VideoReport(str(source), None if output is None else str(output), info.to_dict(), self.method, settings=self.settings())
        complete = False
        restore = self._catch_interrupt() if info.live else None
        try:
            if output is not None:
                writer = VideoWriter(output, info, encode, reader.audio_stream, partial)
                report.audio = "copied" if writer.audio_out is not None else (writer.audio_note or "none")
            state = _RunState(self, info.fps, report)
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
            report.seconds = time.perf_counter() - start
            report.interrupted = report.interrupted or (info.live and self.stop.is_set())
        return report

    def _catch_interrupt(self) -> Callable[[], None] | None:
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

    def _frames(self, reader: VideoReader, report: VideoReport) -> Iterator[VideoFrame]:
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

    def _emit(self, done: tuple[VideoFrame, np.ndarray], writer: VideoWriter | None, sink: Any, report: VideoReport) -> None:
        frame, image = done
        if writer is not None:
            writer.write(image, frame.pts)
        if sink is not None:
            sink(image)
        report.frames_written += 1


class _RunState:
    """The per-run state: look-ahead buffer, tracks, and what each track has been given."""

    def __init__(self, owner: VideoAnonymizer, fps: Any, report: VideoReport) -> None:
        self.owner = owner
        self.a = owner.anonymizer
        self.report = report
        self.tracks = FaceTracks(float(fps), owner.detect_every, owner.max_gap, owner.backfill, min_score=_threshold(owner))
        self.buffer: deque[VideoFrame] = deque()
        self.keyframe = -1
        self.candidates: dict[int, Candidate] = {}
        self.failed: dict[int, str] = {}
        self.last_reading: dict[int, int] = {}
        self.last_check: dict[int, int] = {}
        self.blackout: set[int] = set()
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
        if not faces:
            return
        if self.need_landmarks:
            try:
                self.a.landmarker.landmarks(image, faces)
            except Exception as error:
                log.warning("frame %d: landmarks failed: %s", frame.index, error)
        due = [f for f in faces if frame.index - self.last_reading.get(f.track_id, -10**9) >= self.owner.attribute_every]
        for face, attributes in zip(due, self.owner.read(image, due)):
            face.attributes = attributes
            self.last_reading[face.track_id] = frame.index
            if attributes is not None:
                self.report.track(face.track_id, self.a.method).readings.append(attributes)
        if self.a.synthesizer is not None:
            for face in faces:
                if face.track_id not in self.candidates and face.track_id not in self.failed:
                    self._choose(image, face, frame.index)
        self.tracks.forget(frame.index - len(self.buffer))

    def _choose(self, image: np.ndarray, face: Face, index: int) -> None:
        """Pick the track's synthetic identity with the verification loop, on this keyframe."""
        track = self.report.track(face.track_id, self.a.method)
        if face.landmarks68 is None:
            return  # try again on the next keyframe (bridged frames get the fallback meanwhile)
        target = dataclasses.replace(face, attributes=aggregate(track.readings) or face.attributes)
        rng = np.random.default_rng([self.a.seed, _track_key(face.track_id)])
        assert self.a.synthesizer is not None
        try:
            outcome = self.a.synthesizer.synthesize(image, image.copy(), target, rng)
        except Exception as error:
            self._fail(face.track_id, f"synthetic failed: {error}")
            return
        track.synthesis = outcome.to_dict() | {"chosen_on_frame": index}
        face.embeddings.update(target.embeddings)
        if outcome.passed and outcome.candidate is not None:
            self.candidates[face.track_id] = outcome.candidate
        else:
            self._fail(face.track_id, outcome.reason or "no candidate passed")

    def _fail(self, track_id: int, reason: str) -> None:
        log.info("track %d falls back to %s: %s", track_id, self.a.fallback.name, reason)
        self.failed[track_id] = reason
        track = self.report.track(track_id, self.a.method)
        track.verdict, track.reason, track.method = "fallback", reason, self.a.fallback.name

    # -- output frames ----------------------------------------------------------------------------

    def _finish(self, frame: VideoFrame) -> tuple[VideoFrame, np.ndarray]:
        """Return ``frame`` with every placed track anonymised (and its boxes recorded)."""
        original = frame.image
        output = original.copy()
        placements = self.tracks.at(frame.index)
        if frame.index in self.blackout:
            output[:] = 0  # detection failed on this keyframe: nothing of it may leak
        for placement in placements:
            self._apply(original, output, placement, frame.index)
        if self.a.verify:
            for placement in placements:
                if placement.source == "detected" and self._due(placement.track, frame.index):
                    self._recheck(original, output, placement, frame.index)
        for placement in placements:
            track = self.report.track(placement.track, self.a.method)
            x1, y1, x2, y2 = (round(v, 1) for v in placement.face.box.to_list())
            method = self.a.method if self._renders(placement) else self.a.fallback.name
            verdict = "anonymized" if method == self.a.method else "fallback"
            self.report.boxes.append((frame.index, round(frame.time, 4), placement.track, x1, y1, x2, y2, placement.source, method, verdict))
            track.seen(frame.index, placement.source)
        frame.image = output
        return frame, output

    def _renders(self, placement: Placement) -> bool:
        """Return whether the track's own method (not the fallback) covers it on this placement."""
        if placement.track in self.failed:
            return False
        if self.a.synthesizer is None:
            return True
        return (
            placement.track in self.candidates
            and placement.source in ("detected", "interpolated")
            and placement.face.landmarks68 is not None
        )

    def _apply(self, original: np.ndarray, output: np.ndarray, placement: Placement, index: int) -> None:
        track = self.report.track(placement.track, self.a.method)
        box = placement.face.box
        try:
            if self._renders(placement):
                if self.a.synthesizer is not None:
                    candidate = self.candidates[placement.track]
                    s = self.a.synthesizer
                    rng = np.random.default_rng([self.a.seed, _track_key(placement.track), 1])
                    patch, bounds = compose(
                        output, placement.face.landmarks68, candidate, triangles_for(s.bank.reference), s.shape_mix, rng, s.feature_mix
                    )
                    _paste(output, patch, bounds, (0, 0))
                else:
                    assert self.a.obscurer is not None
                    self.a.obscurer.apply(output, box)
                return
        except Exception as error:
            log.debug("frame %d track %d: %s failed: %s", index, placement.track, self.a.method, error)
        self.a.fallback.apply(output, box)
        track.fallback_frames += 1

    def _due(self, track_id: int, index: int) -> bool:
        return track_id not in self.failed and index - self.last_check.get(track_id, -10**9) >= self.owner.recheck_every

    def _recheck(self, original: np.ndarray, output: np.ndarray, placement: Placement, index: int) -> None:
        """Check the track's output against the original on this frame; a match sends the track to the fallback."""
        self.last_check[placement.track] = index
        track = self.report.tracks[placement.track]
        face = placement.face
        checks = []
        after_faces = dataclasses.replace(face, embeddings={})
        for embedder in [self.a.embedder] + ([self.a.attacker] if self.a.attacker and self.owner.attacker_checks else []):
            try:
                before = embed_original(embedder, original, [face])[0]
                after = embedder.embed(output, [after_faces])[0]
            except Exception as error:
                log.warning("frame %d track %d: identity check with %s failed: %s", index, placement.track, embedder.name, error)
                checks.append(IdentityCheck(embedder.name, embedder.metric, None, embedder.threshold, None))
                continue
            after_faces.embeddings[embedder.name] = after
            value = similarity(embedder.metric, before, after)
            checks.append(IdentityCheck(embedder.name, embedder.metric, value, embedder.threshold, is_match(embedder.metric, value, embedder.threshold)))
        track.checks.append(checks)
        in_loop = checks[0]
        if in_loop.matched is None or in_loop.matched:
            what = "could not run" if in_loop.matched is None else f"matched ({in_loop.metric} {in_loop.value:.3f})"
            self._fail(placement.track, f"{self.a.embedder.name} re-check on frame {index} {what}")
            self.a.fallback.apply(output, face.box)
            return
        if self.a.synthesizer is not None or self.a.preserve:
            readings = self.owner.read(output, [after_faces])
            if readings[0] is not None:
                track.readings_after.append(readings[0])


def _threshold(owner: VideoAnonymizer) -> float:
    """Return the score a detection needs to be anonymised without a track (the image pipeline's threshold)."""
    return float(getattr(owner.anonymizer.detector, "score_threshold", 0.6) or 0.6)


def _track_key(track_id: int) -> int:
    """Return a seed part for a track id."""
    return zlib.crc32(str(track_id).encode())

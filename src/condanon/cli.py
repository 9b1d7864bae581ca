"""The ``condanon`` command: ``anonymize`` (images, folders, videos, streams), ``analyze`` (faces and attributes,
images unchanged), ``evaluate`` (privacy against utility on labelled photos and clips), ``sheet`` (contact sheets
for review) and ``models`` (the models, their licenses, their files checked).

Exit status: 0 when every input went through; 1 when some input failed (the others are still
processed and written) or a late write (the ``--report``) failed; 2 for a usage or configuration
error, found before any work where it can be: ``-o`` an existing file for several inputs (or the input
folder itself), an output or ``--report`` place that cannot be written, a broken model file (a corrupt
prototype bank, a refused dp2 checkpoint: the run stops at the first face that needs it). Each failure
is one line on stderr, ``condanon: error: ...``, never a traceback; file names in it have their
control characters escaped (``\\n``, ``\\x1b``), so a name cannot forge or hide a line.

Policies of ``anonymize``:

- Output names: ``-o DIR/relative-name``; a suffix condanon does not write gets ``.png`` added
  (``x.jfif`` -> ``x.jfif.png``, so it cannot meet ``x.png``). Inputs whose outputs (or a video's
  ``.tracks.json`` / ``.boxes.csv``) would share a name are all refused, one line each, before any work
  (exit 1; the others go on); one output is never the work of two inputs.
- Walking folders: hidden files, the output folder (when it lies inside an input folder) and what is
  not a regular file (FIFOs, sockets, devices, broken links) are skipped, the latter with a log line
  (``-v``); links to folders are followed once (a link loop ends). A FIFO or device named directly is
  refused in one line.
- Animated GIFs and multi-page TIFFs (and APNG, animated WebP): every frame or page is anonymised and
  written. 16-bit inputs are written as 8-bit images.
- A folder job removes only the partial and temp files it made itself (recorded, or named
  ``.<name>.condanon-<pid>-<random>.tmp`` by a process that is gone); never a file of the user's.
- Outputs and reports get the mode a plain ``open()`` gives (0666 less the umask).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import stat
import sys
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .console import EXIT_LOST, EXIT_UNREACHABLE, error_line, frame_progress
from .distributed.videos import VideoItem
from .errors import CondanonError, ImageError, ModelError, one_line, show_path
from .imageio import (
    IMAGE_SUFFIXES,
    check_writable,
    list_images,
    partial_video_path,
    remove_stale_temps,
    write_atomic,
    write_image,
)
from .methods import FALLBACKS, cli_options, method_names
from .options import DEFAULT_DETECTOR, DEFAULT_FACENESS
from .runtime import preload_onnxruntime
from .video.io import VIDEO_SUFFIXES, is_stream, is_video, list_media
from .workers import Outcome, anonymize_file

if TYPE_CHECKING:
    from collections.abc import Callable

    from .distributed import RayEngine
    from .options import Detection
    from .pipeline import Anonymizer
    from .video import EncodeOptions, VideoAnonymizer

    Hook = Callable[[str, int, int | None], None]
    """Hears of progress: ``("files", done, total)`` and ``("frames", done, total or None)``."""

log = logging.getLogger("condanon.cli")


class _NoBar:
    """A progress bar that shows nothing (quiet runs, one input)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _HookBar:
    """A progress bar that tells a hook (the service's job runner) how many inputs are done."""

    def __init__(self, total: int, hook: Hook) -> None:
        self.total, self.done, self.hook = total, 0, hook
        hook("files", 0, total)

    def update(self, n: int = 1) -> None:
        self.done += n
        self.hook("files", self.done, self.total)

    def close(self) -> None:
        pass


def _progress_line(kind: str, done: int, total: int | None) -> None:
    """Print one progress line for the process that runs this one (``--progress-lines``)."""
    sys.stdout.write(json.dumps({"kind": kind, "done": done, "total": total}) + "\n")
    sys.stdout.flush()


def _bar(total: int, quiet: bool, desc: str, unit: str = "file") -> Any:
    """Return a progress bar of ``total`` inputs on stderr (one that shows nothing when quiet or for one input)."""
    if quiet or total < 2:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)


def _workers(args: argparse.Namespace, images: int) -> int:
    """Return the worker processes a folder job uses: as asked, else one per core (and never more than its images)."""
    from .workers import default_workers

    if args.workers is not None and args.workers < 1:
        raise CondanonError("--workers must be at least 1")
    asked = default_workers() if args.workers is None else int(args.workers)
    return max(1, min(asked, images))


def _progress(items: list[Any], quiet: bool, desc: str) -> Any:
    """Yield ``items`` while a progress bar of them runs on stderr (`_bar`)."""
    bar = _bar(len(items), quiet, desc, unit="img")
    try:
        for item in items:
            yield item
            bar.update()
    finally:
        bar.close()


class _OneLine(logging.Formatter):
    """Log records as one line each: control characters escaped, tracebacks left out (they never reach stderr)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        return show_path(self.formatMessage(record))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the `Anonymizer`'s keyword arguments from the command line (each method takes its own flags)."""
    from .methods import AUTO, DP2Options, SyntheticOptions, cli_options, method_options
    from .options import ATTRIBUTE_READERS, Checks

    values = {name: getattr(args, name, None) for name in cli_options()}
    if args.method == AUTO:
        from .pipeline import auto

        dp2 = method_options("dp2", values, ignore_others=True)
        synthetic = method_options("synthetic", values, ignore_others=True)
        assert isinstance(dp2, DP2Options) and isinstance(synthetic, SyntheticOptions)  # the registry's classes
        method = auto(dp2, synthetic)
    else:
        method = method_options(args.method, values, ignore_others=True)
    return {
        "method": method,
        "seed": args.seed,
        "detection": _detection(args),
        "checks": Checks(
            attributes=ATTRIBUTE_READERS if args.attributes or args.analytics else None,
            attacker=args.attacker,
            verify=not args.no_verify,
        ),
        "fallback": method_options(args.fallback, values, ignore_others=True),
    }


def _anonymizer(args: argparse.Namespace) -> Anonymizer:
    from .pipeline import Anonymizer

    return Anonymizer(**_options(args))


def _detection(args: argparse.Namespace) -> Detection:
    from .options import Detection

    return Detection(
        detector=args.detector, score_threshold=args.threshold, orientation=args.orientation, faceness=_faceness(args)
    )


def _faceness(args: argparse.Namespace) -> str | None:
    return None if args.faceness == "none" else args.faceness


def _output_path(out: Path, relative: Path, single_file_target: bool) -> Path:
    """Return where an input goes: ``out/relative``; a suffix condanon does not write gets ``.png`` added
    (``x.jfif.png``).
    """
    if single_file_target:
        return out
    target = out / relative
    if target.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
        target = target.with_name(target.name + ".png")  # the source suffix stays: x.jfif and x.png stay apart
    return target


def _claims(target: Path, video: bool) -> list[Path]:
    """Return every file an input writes: its output, and for a video the track report and box CSV beside it."""
    if not video:
        return [target]
    return [target, target.with_name(target.stem + ".tracks.json"), target.with_name(target.stem + ".boxes.csv")]


def _plan(inputs: list[tuple[Path, Path]], out: Path, single: bool) -> list[tuple[Path, Path, str | None]]:
    """Return ``(input, output, refusal)`` per input, refusals found before any work.

    An input given twice is kept once. Inputs whose outputs (or video side files) would have the same
    name are all refused: none of them would be written as the user expects, and no output is ever
    the result of two inputs. So is an output that would overwrite another input.
    """
    unique: list[tuple[Path, Path]] = []
    seen: set[tuple[str, str]] = set()
    for path, relative in inputs:
        key = (os.path.realpath(path), str(relative))
        if key in seen:
            log.info("%s: given twice, done once", path)
            continue
        seen.add(key)
        unique.append((path, relative))
    targets = [_output_path(out, relative, single) for _, relative in unique]
    owners: dict[str, list[int]] = {}
    for index, ((path, _), target) in enumerate(zip(unique, targets)):
        for claimed in _claims(target, is_video(path)):
            owners.setdefault(os.path.normcase(os.path.abspath(claimed)), []).append(index)
    sources = {os.path.normcase(os.path.realpath(path)): index for index, (path, _) in enumerate(unique)}
    refusals: dict[int, str] = {}
    for claimed_name, indices in owners.items():
        for index in indices:
            others = [unique[j][0] for j in indices if j != index]
            if others and index not in refusals:
                more = f" and {len(others) - 1} more" if len(others) > 1 else ""
                refusals[index] = (
                    f"{show_path(unique[index][0])}: same output name as {show_path(others[0])}{more} "
                    f"({show_path(claimed_name)}); none of them is written: rename one, or give them separate runs"
                )
    for index, target in enumerate(targets):
        other = sources.get(os.path.normcase(os.path.realpath(target)))
        if other is not None and other != index and index not in refusals:
            refusals[index] = (
                f"{show_path(unique[index][0])}: its output {show_path(target)} "
                f"would overwrite the input {show_path(unique[other][0])}"
            )
    return [(path, targets[index], refusals.get(index)) for index, (path, _) in enumerate(unique)]


def _check_report(report: str | None) -> None:
    """Raise `CondanonError` (a usage error) unless a report can be written at ``report``; before any work."""
    if not report:
        return
    path = Path(report)
    if path.is_dir():
        raise CondanonError(f"--report {show_path(path)}: is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise CondanonError(f"--report {show_path(path)}: the file is not writable")
    check_writable(path.parent or Path("."), f"--report {show_path(path)}")


def _write_report(report: str, data: dict[str, Any]) -> int:
    """Write the JSON report; return 0, or 1 after one error line when it cannot be written (outputs are kept)."""
    try:
        write_atomic(report, json.dumps(data, indent=2).encode())
    except OSError as error:
        error_line(
            f"{show_path(report)}: cannot write the report ({error.strerror or one_line(error)}); the outputs are kept"
        )
        return 1
    return 0


def _video_errors(report: dict[str, Any]) -> list[str]:
    """Return the one-line errors a video's summary carries (its output is kept, the input counts as failed)."""
    return [str(e) for e in report.get("errors") or []]


def _regular_file(path: Path) -> None:
    """Raise `ImageError` unless ``path`` is a regular file (a FIFO, socket or device would hang or never end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageError(f"{show_path(path)}: no such file") from None
    except OSError as error:
        raise ImageError(f"{show_path(path)}: cannot read: {error.strerror or one_line(error)}") from None
    if stat.S_ISDIR(mode):
        raise ImageError(f"{show_path(path)}: is a folder, not an image")
    if not stat.S_ISREG(mode):
        raise ImageError(f"{show_path(path)}: not a regular file (a FIFO, socket or device is never read)")


def _video_anonymizer(args: argparse.Namespace, anonymizer: Anonymizer) -> VideoAnonymizer:
    from .video import VideoAnonymizer

    return VideoAnonymizer(
        anonymizer,
        detect_every=args.detect_every,
        tiles=not args.no_tiles,
        backfill=args.backfill,
        identities=args.identities,
        max_fps=args.max_fps,
        attribute_every=_attribute_every(args),
        reconnect=args.reconnect,
        reconnect_wait=args.reconnect_wait,
        segment=args.segment,
    )


def _attribute_every(args: argparse.Namespace) -> int:
    """Return the frames between attribute readings: as asked, else more often when analytics are written."""
    from .analytics import ATTRIBUTE_EVERY

    if args.attribute_every is not None:
        if args.attribute_every < 1:
            raise CondanonError("--attribute-every must be at least 1")
        return int(args.attribute_every)
    return ATTRIBUTE_EVERY if args.analytics else 50


def _encode_options(args: argparse.Namespace) -> EncodeOptions:
    from .video import EncodeOptions

    return EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset, audio=not args.no_audio)


def _run_video(
    args: argparse.Namespace,
    videos: VideoAnonymizer,
    source: str,
    target: Path | None,
    partial: Path | None = None,
    analytics: Path | None = None,
    hook: Hook | None = None,
) -> dict[str, Any]:
    """Anonymise one video or stream into ``target``; write its track report and box CSV beside it, and the passenger
    analytics into ``analytics`` when given; return the report. ``hook`` hears of the frames done.
    """
    progress, bar = frame_progress(args, show_path(Path(source).name))
    if hook is not None:

        def progress(done: int, total: int | None) -> None:
            hook("frames", done, total)

    try:
        report = videos.run(source, target, _encode_options(args), partial=partial, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if target is not None:
        report.write_beside(target)
    if analytics is not None:
        from .cli_analytics import write_report_analytics

        write_report_analytics(args, report, analytics)
    log.info(
        "%s -> %s (%d frames, %d tracks, %.1f fps)",
        source,
        target,
        report.frames_written,
        len(report.tracks),
        report.fps,
    )
    return report.to_dict()


def _check_analytics(args: argparse.Namespace) -> None:
    """Refuse bad counting options, and an ``--analytics`` folder that cannot be written, before any work."""
    if not args.analytics:
        if args.line or args.roi or args.parquet:
            raise CondanonError("--line, --roi and --parquet need --analytics DIR")
        return
    from .cli_analytics import check_output_folder, counting

    counting(args)
    check_output_folder(args.analytics, "--analytics")


def _analytics_folder(args: argparse.Namespace, source: str, several: bool) -> Path | None:
    """Return where ``--analytics`` puts one video's outputs (``None`` without it)."""
    if not args.analytics:
        return None
    from .cli_analytics import analytics_folder

    return analytics_folder(Path(args.analytics), source, several)


def _settings_digest(args: argparse.Namespace) -> str:
    """Return a digest of every setting that shapes a job's outputs: the `Anonymizer`'s (``auto`` resolved), and video's
    and the writer's.
    """
    from .pipeline import ATTRIBUTE_NAMES, settings_of

    options = _options(args)
    settings = settings_of(
        options["method"],
        ATTRIBUTE_NAMES,
        options["seed"],
        options["detection"],
        options["checks"],
        options["fallback"],
    )
    outputs = (
        "detect_every",
        "no_tiles",
        "backfill",
        "identities",
        "segment",
        "codec",
        "crf",
        "preset",
        "no_audio",
        "keep_metadata",
    )
    settings |= {k: getattr(args, k, None) for k in outputs} | {"attribute_every": _attribute_every(args)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _check_stream_options(args: argparse.Namespace, output: str) -> None:
    """Refuse a stream job's bad ``--report``, analytics or ``--segment`` (it needs an ``output``) before any work."""
    _check_report(args.report)
    _check_analytics(args)
    if args.segment is not None and (args.segment <= 0 or args.output == "none"):
        raise CondanonError(f"--segment needs an output {output} and more than 0 seconds")


def _stream_status(report: dict[str, Any]) -> int:
    """Print a stream report's errors, one line each; return its exit status (4 lost, 1 errors, else 0)."""
    errors = _video_errors(report)
    for error in errors:
        error_line(error)
    return EXIT_LOST if report.get("lost") else (1 if errors else 0)


def _anonymize_stream(args: argparse.Namespace, out: Path) -> int:
    """Anonymise one live stream into ``out`` (a file, or ``none``) until it ends; return the exit status."""
    _check_stream_options(args, "file")
    target = None if args.output == "none" else out
    if target is not None:
        if target.is_dir():
            raise CondanonError(f"-o {show_path(target)}: is a folder; a stream needs an output file (or 'none')")
        check_writable(target.parent, f"output {show_path(target)}")
    anonymizer = _anonymizer(args)
    partial = None
    if target is not None:
        remove_stale_temps(target.parent, target.stem)
        partial = partial_video_path(target)
    analytics = _analytics_folder(args, args.inputs[0], several=False)
    from .video.stream import StreamError

    try:
        data = _run_video(args, _video_anonymizer(args, anonymizer), args.inputs[0], target, partial, analytics)
    except StreamError as unreachable:
        error_line(str(unreachable))
        return EXIT_UNREACHABLE
    status = _stream_status(data)
    if args.report:
        status = max(status, _write_report(args.report, data))
    if not args.quiet:
        print(f"{data['frames_written']} frames, {len(data['tracks'])} tracks, {data['fps']:.1f} fps", file=sys.stderr)
    return status


def _streams_on_ray(args: argparse.Namespace, streams: list[str], out: Path) -> int:
    """Anonymise each stream in a long-lived actor of its own on the cluster, into ``out/<stream's name>.mp4`` (``-o
    none``: no files); return the worst exit status (4 lost, 3 unreachable, 1 another error)."""
    import functools

    _check_stream_options(args, "folder")
    if args.output != "none":
        if out.exists() and not out.is_dir():
            raise CondanonError(f"-o {show_path(out)}: an existing file; streams on Ray need an output folder")
        out.mkdir(parents=True, exist_ok=True)
        check_writable(out, f"output {show_path(out)}")
    items = []
    for source, name in zip(streams, _stream_names(streams)):
        target = partial = None
        if args.output != "none":
            target = out / f"{name}.mp4"
            remove_stale_temps(out, target.stem)
            partial = partial_video_path(target)
        analytics = _analytics_folder(args, source, several=len(streams) > 1)
        items.append(VideoItem(source, target, partial, analytics))
    status = 0
    results: list[dict[str, Any]] = [{} for _ in items]
    engine = _ray_engine(args)
    try:
        for done in engine.streams(items, functools.partial(video_on_worker, args)):
            outcome = done.outcome
            if outcome.fatal is not None:
                raise ModelError(outcome.fatal)
            if outcome.error is not None or outcome.report is None:
                message = outcome.error or f"{show_path(items[done.index].source)}: no report"
                error_line(message)
                results[done.index] = {"source": items[done.index].source, "error": message}
                status = max(status, EXIT_UNREACHABLE if outcome.error_type == "StreamError" else 1)
                continue
            results[done.index] = outcome.report
            status = max(status, _stream_status(outcome.report))
        summary = {"condanon": __version__, "seed": args.seed, "streams": len(items), "results": results}
        summary["engine"] = _engine_summary(engine, [])
    finally:
        engine.close()
    if args.report:
        status = max(status, _write_report(args.report, summary))
    if not args.quiet:
        frames = sum(int(r.get("frames_written", 0)) for r in results)
        print(f"{len(items)} streams, {frames} frames written", file=sys.stderr)
    return status


def _stream_names(streams: list[str]) -> list[str]:
    """Return a file name stem per stream (its address with the scheme dropped, every other sign made ``_``), made
    unique by a number where two would meet."""
    import re

    names: list[str] = []
    for source in streams:
        name = re.sub(r"[^A-Za-z0-9.-]+", "_", source.split("://", 1)[-1]).strip("._") or "stream"
        stem, number = name, 2
        while name in names:
            name, number = f"{stem}_{number}", number + 1
        names.append(name)
    return names


def _on_ray(args: argparse.Namespace) -> bool:
    """Return whether the job runs on Ray (``--engine ray``, or a ``--ray-address``)."""
    engine, address = getattr(args, "engine", None), getattr(args, "ray_address", None)
    if engine == "local" and address:
        raise CondanonError("--ray-address is for --engine ray")
    return engine == "ray" or bool(address)


def _ray_engine(args: argparse.Namespace) -> RayEngine:
    """Return the job's connection to its Ray cluster (a local one without ``--ray-address``)."""
    from .distributed import RayEngine

    engine = RayEngine(args.ray_address, workers=args.workers)
    placement = engine.placement
    log.info("Ray: %d workers of %d CPUs on %d nodes", placement.workers, placement.cpus, placement.nodes)
    return engine


def _run_on_ray(
    args: argparse.Namespace,
    engine: RayEngine,
    items: list[tuple[int, Path, Path, VideoItem | None]],
    finished: Callable[[Outcome, int, Path, Path], None],
) -> list[str]:
    """Run the job's images (Ray Data actors) and then its videos (one task each) on the cluster, handing each result to
    ``finished`` as it comes; return the ids of the nodes that did the work."""
    import functools

    nodes: set[str] = set()
    images = [item for item in items if item[3] is None]
    videos = [item for item in items if item[3] is not None]
    runs = (  # generators: the videos start once every image is done
        (images, engine.images([(path, target) for _, path, target, _ in images], _options(args), args.keep_metadata)),
        (videos, engine.videos([video for *_, video in videos if video], functools.partial(video_on_worker, args))),
    )
    for files, results in runs:
        for done in results:
            at, path, target, _ = files[done.index]
            finished(_as_named(done.outcome, path), at, path, target)
            nodes.update([done.node] if done.node else [])
    return sorted(nodes)


def _as_named(outcome: Outcome, path: Path) -> Outcome:
    """Return ``outcome`` with its error naming the input as the command line did (workers get absolute names)."""
    absolute, named = show_path(os.path.abspath(path)), show_path(path)
    if outcome.error is None or absolute == named or not outcome.error.startswith(absolute):
        return outcome
    return dataclasses.replace(outcome, error=named + outcome.error[len(absolute) :])


def _engine_summary(engine: RayEngine, nodes: list[str]) -> dict[str, Any]:
    """Return the report's account of where a Ray job ran."""
    placement = engine.placement
    return {"name": "ray", "workers": placement.workers, "cpus_per_worker": placement.cpus, "nodes": nodes}


def video_on_worker(args: argparse.Namespace, item: VideoItem) -> dict[str, Any]:
    """Run one video of an ``--engine ray`` job on a Ray worker, as a local job runs it; return its report.

    The job's `VideoAnonymizer` is built once per worker process (the first video it gets) and kept.
    """
    from .distributed.videos import worker_videos

    args = argparse.Namespace(**(vars(args) | {"quiet": True, "progress_lines": False}))
    videos = worker_videos(_settings_digest(args), lambda: _video_anonymizer(args, _anonymizer(args)))
    return _run_video(args, videos, item.source, item.target, item.partial, item.analytics)


def cmd_anonymize(args: argparse.Namespace, hook: Hook | None = None) -> int:
    """Anonymise every input image, video or stream into the output folder (or file); return the exit status.

    ``hook`` (the service's job runner) is told ``("files", done, total)`` as inputs finish and ``("frames", done,
    total)`` as a video goes on, in place of the progress bars.

    A folder output is a resumable job: finished files are recorded in a small SQLite file there and
    skipped by the next run with the same options; outputs appear only complete (temporary name, then
    a rename), so a crash or Ctrl-C leaves nothing half-written. What can be checked before the work
    is: the output and report places must be writable, ``-o`` must not be an existing file for several
    inputs, and no two inputs may share an output name.
    """
    if hook is None and getattr(args, "progress_lines", False):
        hook = _progress_line
    out = Path(args.output)
    on_ray = _on_ray(args)
    streams = [item for item in args.inputs if is_stream(item)]
    if streams and on_ray:
        if len(streams) < len(args.inputs):
            raise CondanonError("streams and files go to separate runs: a stream's job runs until the stream ends")
        return _streams_on_ray(args, streams, out)
    if len(args.inputs) == 1 and streams:
        return _anonymize_stream(args, out)
    for item in args.inputs:
        if os.path.isdir(item) and os.path.realpath(item) == os.path.realpath(out):
            raise CondanonError(
                f"-o {show_path(out)}: is the input folder itself; give another folder (it may lie inside)"
            )
    if args.segment is not None:
        raise CondanonError("--segment is for one stream input (rtsp://..., camera:0); files are written whole")
    walk_errors: list[str] = []
    inputs = list_media(args.inputs, exclude=[out], errors=walk_errors)
    if not inputs and not walk_errors:
        error_line("no input images or videos found")
        return 1
    single = len(inputs) == 1 and out.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES and not out.is_dir()
    if not single and (out.exists() or out.is_symlink()) and not out.is_dir():
        raise CondanonError(
            f"-o {show_path(out)}: an existing file, not a folder; {len(inputs)} inputs need an output folder"
            if len(inputs) > 1
            else (
                f"-o {show_path(out)}: an existing file that is not an image or video name; "
                "give a folder or an image file"
            )
        )
    _check_report(args.report)
    _check_analytics(args)
    check_writable(out.parent if single else out, f"output {show_path(out)}")
    plan = _plan(inputs, out, single)
    videos_in_plan = sum(1 for path, _, _ in plan if is_video(path))
    anonymizer = _anonymizer(args)
    videos = None
    job = None
    if not single:
        from .jobs import Job

        try:
            job = Job(out, _settings_digest(args))
        except OSError as error:
            raise CondanonError(
                f"output {show_path(out)}: cannot keep the job state there ({error.strerror or one_line(error)})"
            ) from None
        job.clean_partials()
        remove_stale_temps(out, recursive=True)
    failures = skipped = 0
    nodes: list[str] = []
    reports: list[dict[str, Any]] = []
    for message in walk_errors:
        failures += 1
        error_line(message)
        reports.append({"error": message})
    images_in_plan = sum(1 for path, _, refusal in plan if refusal is None and not is_video(path))
    engine = _ray_engine(args) if on_ray else None
    ray_files: list[tuple[int, Path, Path, VideoItem | None]] = []  # the cluster's files, by their report's place
    workers = 1 if engine is not None else _workers(args, images_in_plan)
    pool = None
    if workers > 1:
        from .workers import WorkerPool

        pool = WorkerPool(_options(args), workers, keep_metadata=args.keep_metadata)
        log.info("%d workers", workers)
    pending: dict[Future[Outcome], tuple[int, Path, Path]] = {}  # a pool's files under way, by their report's place
    bar = _bar(len(plan), args.quiet, "anonymizing") if hook is None else _HookBar(len(plan), hook)

    def failed(path: Path, target: Path, message: str, at: int | None = None) -> None:
        nonlocal failures
        failures += 1
        error_line(message)
        entry = {"source": str(path), "error": message}
        if at is None:
            reports.append(entry)
        else:
            reports[at] = entry
        if job is not None:
            job.failed(path, target, message)

    def finished(outcome: Outcome, at: int, path: Path, target: Path) -> None:
        if outcome.fatal is not None:
            raise ModelError(outcome.fatal)  # a broken model is a configuration failure: the run stops (exit 2)
        if outcome.error is not None or outcome.report is None:
            failed(path, target, outcome.error or f"{show_path(path)}: no report", at)
        elif is_video(path):
            video_finished(outcome.report, at, path, target)
        else:
            reports[at] = outcome.report | {"source": str(path), "output": str(target)}  # as named here
            if job is not None:
                job.done(path, target)
        bar.update()

    def video_finished(report: dict[str, Any], at: int | None, path: Path, target: Path) -> None:
        """Record a video's report; one that carries errors (a truncated input) is kept, and the input failed."""
        nonlocal failures
        report["source"], report["output"] = str(path), str(target)  # as named here, wherever it ran
        if at is None:
            reports.append(report)
        else:
            reports[at] = report
        errors = _video_errors(report)
        if errors:
            failures += 1
            for message in errors:
                error_line(message)
            if job is not None:
                job.failed(path, target, "; ".join(errors))
        elif job is not None:
            job.done(path, target)

    def collect(block: bool) -> None:
        """Take in the pool's finished files (all of them when ``block``)."""
        if not pending:
            return
        done, _ = wait(list(pending), return_when=ALL_COMPLETED if block else FIRST_COMPLETED, timeout=None)
        for future in done:
            at, path, target = pending.pop(future)
            finished(future.result(), at, path, target)

    try:
        for path, target, refusal in plan:
            if refusal is not None:
                failed(path, target, refusal)
                bar.update()
                continue
            if job is not None and not job.needs(path, target):
                skipped += 1
                log.info("%s: done in an earlier run, skipped", path)
                bar.update()
                continue
            try:
                if target.resolve() == path.resolve():
                    raise CondanonError(f"{show_path(path)}: output would overwrite the input")
                _regular_file(path)
                if job is not None:
                    job.start(path, target)
                if is_video(path):
                    if job is not None:
                        partial = job.partial_for(target)
                    else:
                        remove_stale_temps(target.parent, target.stem)
                        partial = partial_video_path(target)
                    analytics = _analytics_folder(args, str(path), several=videos_in_plan > 1)
                    if engine is not None:
                        reports.append({})
                        ray_files.append(
                            (len(reports) - 1, path, target, VideoItem(str(path), target, partial, analytics))
                        )
                        continue
                    if videos is None:
                        videos = _video_anonymizer(args, anonymizer)
                    video_finished(
                        _run_video(args, videos, str(path), target, partial, analytics, hook), None, path, target
                    )
                elif engine is not None:
                    reports.append({})
                    ray_files.append((len(reports) - 1, path, target, None))
                    continue
                elif pool is not None:
                    if len(pending) >= 2 * workers:  # a bounded queue: finished files are recorded as they come
                        collect(block=False)
                    reports.append({})
                    pending[pool.submit(path, target)] = (len(reports) - 1, path, target)
                    continue
                else:
                    report = anonymize_file(anonymizer, path, target, args.keep_metadata)
                    report["output"] = str(target)
                    reports.append(report)
                    if job is not None:
                        job.done(path, target)
            except ModelError:
                raise  # a broken model is a configuration failure: the run stops (exit 2)
            except CondanonError as error:
                failed(path, target, str(error))
            except Exception as error:  # one broken input must not end the batch
                text = f"{show_path(path)}: {type(error).__name__}: {one_line(error)}"
                log.debug("%s failed", path, exc_info=True)
                failed(path, target, text)
            bar.update()
        collect(block=True)
        if engine is not None:
            nodes = _run_on_ray(args, engine, ray_files, finished)
    finally:
        if pool is not None:
            pool.close(cancel=True)
        if engine is not None:
            engine.close()
        bar.close()
        if job is not None:
            job.close()
    input_failures = failures - len(walk_errors)
    if args.report:
        summary = {
            "condanon": __version__,
            "method": anonymizer.method,  # what auto chose
            "seed": args.seed,
            "inputs": len(plan),
            "skipped": skipped,
            "failed": failures,
            "faces": sum(len(r.get("faces", [])) for r in reports),
            "tracks": sum(len(r.get("tracks", [])) for r in reports),
            "results": reports,
        }
        if engine is not None:
            summary["engine"] = _engine_summary(engine, nodes)
        failures += _write_report(args.report, summary)
    if not args.quiet:
        faces = sum(len(r.get("faces", [])) for r in reports)
        tracks = sum(len(r.get("tracks", [])) for r in reports)
        done_before = f", {skipped} done before" if skipped else ""
        print(
            f"{len(plan) - input_failures}/{len(plan)} inputs anonymized{done_before}, {faces} faces in images, "
            f"{tracks} tracks in videos",
            file=sys.stderr,
        )
    return 1 if failures else 0


ATTRIBUTE_FIELDS = ["age", "sex", "sex_confidence", "emotion", "emotion_confidence"]
CSV_FIELDS = ["source", "face", "x1", "y1", "x2", "y2", "score", "uncertain", "faceness", *ATTRIBUTE_FIELDS]
"""One row per face; ``uncertain`` faces (found only by a recall net, or of doubtful faceness) are not
people to count.
"""


def cmd_analyze(args: argparse.Namespace) -> int:
    """Print the faces and attributes of every input as JSON or CSV; return the exit status."""
    from .imageio import read_image
    from .pipeline import Anonymizer

    inputs = list_images(args.inputs)
    if not inputs:
        error_line("no input images found")
        return 1
    analyzer = Anonymizer(detection=_detection(args))
    failures = 0
    rows: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for path, _ in _progress(inputs, args.quiet, "analyzing"):
        try:
            faces = analyzer.find_faces(read_image(path))
        except CondanonError as error:
            failures += 1
            error_line(str(error))
            images.append({"source": str(path), "error": str(error)})
            continue
        images.append({"source": str(path), "faces": [f.to_dict() for f in faces]})
        for index, face in enumerate(faces):
            attributes = face.attributes.to_dict() if face.attributes else {}
            x1, y1, x2, y2 = face.box.to_list()
            rows.append(
                {
                    "source": str(path),
                    "face": index,
                    "x1": x1,
                    "y1": y1,
                    "x2": x2,
                    "y2": y2,
                    "score": round(face.score, 4),
                }
                | {"uncertain": face.uncertain, "faceness": None if face.faceness is None else round(face.faceness, 4)}
                | {k: attributes.get(k) for k in ATTRIBUTE_FIELDS}
            )
    if args.format == "json":
        text = json.dumps({"images": images}, indent=2) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if args.output:
        write_atomic(args.output, text.encode())
    else:
        sys.stdout.write(text)
    return 1 if failures else 0


def cmd_models(args: argparse.Namespace) -> int:
    """Print the model table and check each file; return 1 if any is missing or corrupt."""
    from .weights import check_models

    rows = check_models()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        widths = {"name": 15, "status": 8, "role": 44, "license": 0}
        print(f"{'name':<15} {'status':<8} {'role':<44} license / source")
        for row in rows:
            status = row["status"] if row["status"] in ("ok", "missing", "corrupt") else "missing"
            status = "absent" if row["optional"] and status == "missing" else status
            print(f"{row['name']:<{widths['name']}} {status:<8} {row['role']:<44} {row['license']}")
            print(f"{'':<15} {'':<8} {'':<44} from {row['source']}")
    bad = [r for r in rows if r["status"] != "ok" and not (r["optional"] and r["status"] == "missing")]
    for row in bad:
        error_line(f"model {row['name']} is {row['status']} at {row.get('path')}")
    return 1 if bad else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate the methods on the photo datasets and/or videos, write the report folder, print the tables."""
    if not args.data and not args.videos:
        error_line("give --data (photo datasets) and/or --videos")
        return 2
    methods = [m for m in args.methods.split(",") if m.strip()]
    status = 0
    if args.data:
        from .evaluation import evaluate
        from .evaluation.report import markdown_table

        result = evaluate(
            args.data,
            methods=methods,
            limit=args.limit,
            seed=args.seed,
            out=args.out,
            workers=args.workers,
            progress=not args.quiet,
        )
        overall = result.summaries.get("all") or next(iter(result.summaries.values()))
        print(markdown_table(overall))
        for error in result.errors:
            error_line(error)
        if not args.quiet:
            print(
                f"{len(result.records) // max(1, len(result.methods))} photos in {result.seconds:.0f} s; "
                f"report in {args.out}",
                file=sys.stderr,
            )
        status = 1 if result.errors else 0
    if args.videos:
        from .evaluation.video_run import evaluate_videos, markdown

        videos = [path for path, _ in list_media(args.videos) if is_video(path)]
        if not videos:
            error_line("no videos found in --videos")
            return 1
        say = None if args.quiet else (lambda text: print(f"evaluating {text}", file=sys.stderr))
        rows = evaluate_videos(
            videos,
            methods,
            args.out,
            every=args.every,
            detect_every=args.detect_every,
            tiles=not args.no_tiles,
            seed=args.seed,
            progress=say,
        )
        print(markdown(rows, args.every))
    return status


def cmd_sheet(args: argparse.Namespace) -> int:
    """Write a contact sheet (original beside anonymised) per input and an index.md; return the exit status."""
    from .imageio import read_image
    from .options import ATTRIBUTE_READERS, Checks
    from .pipeline import Anonymizer
    from .sheet import (
        SheetEntry,
        check_max_side,
        index_markdown,
        render_sheet,
        unique_name,
    )

    check_max_side(args.max_side)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CondanonError(f"{out}: exists and is not a folder")
    inputs = list_images(args.inputs)
    if not inputs:
        error_line("no input images found")
        return 1
    # a review sheet shows the attributes before and after whatever the method
    anonymizer = Anonymizer(method=args.method, seed=args.seed, checks=Checks(ATTRIBUTE_READERS))
    failures = 0
    entries: list[SheetEntry] = []
    taken: set[str] = set()
    for path, _ in _progress(inputs, args.quiet, "sheets"):
        try:
            name = unique_name(path.stem, taken)
            target = out / name
            if target.resolve() == path.resolve():
                raise CondanonError(f"{path}: the sheet would overwrite the input")
            original = read_image(path)  # read once: anonymize() copies it, the sheet shows it
            result = anonymizer.anonymize(original)
            write_image(target, render_sheet(original, result, args.max_side))
            entries.append(SheetEntry.from_result(str(path), name, result))
            log.info("%s -> %s (%d faces)", path, target, len(result.reports))
        except CondanonError as error:
            failures += 1
            error_line(str(error))
            entries.append(SheetEntry(str(path), error=str(error)))
        except Exception as error:  # one broken input must not end the batch
            failures += 1
            error_line(f"{path}: {type(error).__name__}: {error}")
            entries.append(SheetEntry(str(path), error=f"{type(error).__name__}: {error}"))
    write_atomic(out / "index.md", index_markdown(entries, args.method, args.seed).encode())
    if not args.quiet:
        faces = sum(e.faces for e in entries)
        fallbacks = sum(e.fallbacks for e in entries)
        print(
            f"{len(inputs) - failures}/{len(inputs)} sheets in {out}, {faces} faces, {fallbacks} fallbacks; "
            f"see {out / 'index.md'}",
            file=sys.stderr,
        )
    return 1 if failures else 0


ANONYMIZE_EPILOG = """\
outputs: -o DIR/<relative name>; a suffix condanon does not write gets .png added (x.jfif -> x.jfif.png).
  Inputs whose outputs would share a name (a/x.jpg and b/x.jpg) are all refused before any work, one
  line each; the others go on. GIF/TIFF: every frame or page is anonymised and written. 16-bit inputs
  come out as 8-bit images. Folders: hidden files, the output folder and non-regular files (FIFOs,
  devices) are skipped; a FIFO named directly is refused.
exit status: 0 all inputs done; 1 some input failed (one line each, the rest written) or the report
  could not be written; 2 usage or configuration error (unwritable -o or --report, -o an existing
  file for several inputs, a broken model file); 3 a stream could not be reached (after --reconnect
  tries); 4 a stream dropped and did not come back (the output up to there is kept and finalised)."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``condanon`` command."""
    parser = argparse.ArgumentParser(prog="condanon", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"condanon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens to each file")
    sub = parser.add_subparsers(dest="command", required=True)

    anon = sub.add_parser(
        "anonymize",
        help="anonymise images (files and folders)",
        epilog=ANONYMIZE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    anon.add_argument(
        "inputs",
        nargs="+",
        help="image and video files, folders (walked recursively), or one stream (rtsp://..., http://..., camera:0)",
    )
    anon.add_argument(
        "-o",
        "--output",
        required=True,
        help="output folder (a resumable job), or file for one input; 'none' for a stream: reports only",
    )
    anon.add_argument(
        "--method",
        default="synthetic",
        choices=method_names(),
        help="synthetic: a new face with the same age, sex, expression and pose (default); "
        "dp2: DeepPrivacy2's generator (needs condanon[dp2] and a checkpoint, docs/dp2.md; about 1 s a face, "
        "and in videos a face a frame, on 2 cores); "
        "auto: dp2 where PyTorch and its checkpoint are installed, else synthetic",
    )
    for flag, keywords in cli_options().values():  # each method's options (condanon.methods), defaults per method
        anon.add_argument(flag, **keywords)
    anon.add_argument("--report", help="write a JSON report of every face to this file")
    anon.add_argument("--seed", type=int, default=0)
    anon.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"detector backend (default {DEFAULT_DETECTOR}; yunet, yunet+hog, blazeface, ...)",
    )
    anon.add_argument("--threshold", type=float, help="YuNet detection score threshold (default 0.6)")
    anon.add_argument(
        "--orientation",
        default="auto",
        choices=["auto", "full", "off"],
        help="photos: search turned views for sideways, upside-down and tilted faces (auto: fully where "
        "the upright pass suggests it, docs/detection.md)",
    )
    anon.add_argument(
        "--faceness",
        default=DEFAULT_FACENESS,
        choices=[DEFAULT_FACENESS, "none"],
        help="check each detection is a real face: doubtful ones (crests, hands, mannequins, some profiles) "
        "are obscured by the fallback, never synthesised, and reported uncertain",
    )
    anon.add_argument("--fallback", default="mask", choices=FALLBACKS)
    anon.add_argument("--no-verify", action="store_true", help="skip the identity check on the output (faster)")
    anon.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes for the images of a folder job, each with its models loaded once (default: one per core, "
        "as memory allows; the outputs are the same as with one); with --engine ray, the workers on the cluster "
        "(default: one per CPU)",
    )
    anon.add_argument(
        "--engine",
        choices=["local", "ray"],
        default=None,
        help="where the work runs: this machine's processes (local, the default), or a Ray cluster (ray: images on "
        "Ray Data actors, one task per video, one actor per stream; the same outputs; docs/scale.md)",
    )
    anon.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to join (auto, HOST:6379, ray://HOST:10001; implies --engine ray); "
        "default: a local cluster of this machine's cores",
    )
    anon.add_argument(
        "--attributes",
        action="store_true",
        help="read age, sex and emotion of every face into the report also for blur, pixelate and mask "
        "(synthetic and dp2 always read them; --analytics turns this on)",
    )
    anon.add_argument(
        "--attacker",
        choices=["dlib"],
        default=None,
        help="also check each output face with this held-out recogniser, reported only (about 60 ms a face)",
    )
    anon.add_argument("--keep-metadata", action="store_true", help="keep EXIF and ICC metadata (stripped by default)")
    vid = anon.add_argument_group("video and streams")
    vid.add_argument(
        "--detect-every",
        type=int,
        default=2,
        help="frames between detections; tracks bridge the others "
        "(5 is 2-3x faster and leaks more faces in crowds: docs/video.md)",
    )
    vid.add_argument(
        "--no-tiles",
        action="store_true",
        help="skip YuNet's native-resolution tiles on frames over 1280 px (faster, misses small faces)",
    )
    vid.add_argument(
        "--backfill", type=int, help="frames covered before a track's first detection (default 2 keyframes)"
    )
    vid.add_argument(
        "--identities",
        type=int,
        default=3,
        help="synthetic identities a track may try when a recogniser still matches one on its first check (default 3)",
    )
    vid.add_argument(
        "--codec", default="libx264", help="video encoder (FFmpeg name: libx264, libx265, mpeg4, libvpx-vp9)"
    )
    vid.add_argument("--crf", type=int, default=20, help="x264/x265 quality (lower = better, bigger)")
    vid.add_argument("--preset", default="veryfast", help="x264/x265 speed preset")
    vid.add_argument("--no-audio", action="store_true", help="drop the audio track (copied by default)")
    vid.add_argument("--max-fps", type=float, help="live streams: drop frames to keep at most this rate")
    from .cli_analytics import add_analytics_options, add_parser, add_segment_option, add_stream_options

    add_stream_options(vid)
    add_segment_option(vid)

    add_analytics_options(anon.add_argument_group("passenger analytics (videos and streams)"), with_out=False)
    anon.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    # The service's job runner (condanon.serve.jobstore) reads progress from the job's stdout, one JSON line each.
    anon.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)
    anon.set_defaults(func=cmd_anonymize)

    ana = sub.add_parser("analyze", help="faces with age, sex and emotion; images are not changed")
    ana.add_argument("inputs", nargs="+", help="image files and folders")
    ana.add_argument("--format", default="json", choices=["json", "csv"])
    ana.add_argument("-o", "--output", help="write to this file instead of standard output")
    ana.add_argument("--detector", default=DEFAULT_DETECTOR)
    ana.add_argument("--threshold", type=float, help="YuNet detection score threshold (default 0.6)")
    ana.add_argument(
        "--orientation", default="auto", choices=["auto", "full", "off"], help="search turned views for faces"
    )
    ana.add_argument(
        "--faceness",
        default=DEFAULT_FACENESS,
        choices=[DEFAULT_FACENESS, "none"],
        help="mark doubtful detections (crests, hands, mannequins) uncertain: not people to count",
    )
    ana.add_argument("-q", "--quiet", action="store_true")
    ana.set_defaults(func=cmd_analyze)

    ev = sub.add_parser("evaluate", help="measure privacy against utility for each method on labelled datasets")
    ev.add_argument("--data", nargs="+", help="photo dataset folders (each with an index.csv)")
    ev.add_argument(
        "--videos", nargs="+", help="videos or folders of videos: leaked frames, track consistency, jitter, fps"
    )
    ev.add_argument("--every", type=int, default=1, help="videos: leak-test every Nth frame (1: all, the real metric)")
    ev.add_argument("--detect-every", type=int, default=2, help="videos: frames between detections")
    ev.add_argument("--no-tiles", action="store_true", help="videos: no native-resolution tiles")
    ev.add_argument(
        "--methods",
        default="synthetic,blur,pixelate,mask",
        help="comma-separated; options as name:key=value (e.g. blur:strength=0.25); 'original' is always added",
    )
    ev.add_argument("--limit", type=int, help="photos per dataset (a seeded random draw), for a quick run")
    ev.add_argument("--out", default="evaluation", help="report folder (tables, JSON, CSV, plots, contact sheet)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--workers", type=int, help="processes (default: one per core, at most 4)")
    ev.add_argument("-q", "--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    she = sub.add_parser("sheet", help="contact sheets for review: each original beside its anonymised image")
    she.add_argument("inputs", nargs="+", help="image files and folders (walked recursively)")
    she.add_argument("--out", required=True, help="folder for the sheets (<stem>.jpg) and index.md")
    she.add_argument("--method", default="synthetic", choices=method_names())
    she.add_argument("--seed", type=int, default=0)
    she.add_argument("--max-side", type=int, default=1600, help="longer side of each sheet at most (px)")
    she.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    she.set_defaults(func=cmd_sheet)

    add_parser(sub)

    from .cli_serve import add_parser as add_serve_parser

    add_serve_parser(sub)

    mod = sub.add_parser("models", help="list the models, their licenses, and check each file")
    mod.add_argument("--json", action="store_true")
    mod.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    preload_onnxruntime()
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine("condanon: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    try:
        return int(args.func(args))
    except CondanonError as error:  # usage and configuration: a broken model, an unwritable output or report
        error_line(one_line(error, whole=True))
        return 2
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except OSError as error:  # an input or output the system refused, found late
        log.debug("failed", exc_info=True)
        error_line(f"{show_path(error.filename) + ': ' if error.filename else ''}{error.strerror or one_line(error)}")
        return 1
    except Exception as error:  # never a traceback: one line, and -v logs what is known
        log.debug("failed", exc_info=True)
        error_line(f"internal error: {type(error).__name__}: {one_line(error)}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

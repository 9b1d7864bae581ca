"""The ``condanon`` command: ``anonymize``, ``analyze`` and ``models``.

Exit status: 0 when every input went through, 1 when some input failed (the others are still
processed and written), 2 for a usage or configuration error. Each failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .errors import CondanonError
from .imageio import IMAGE_SUFFIXES, list_images, metadata_of, write_atomic, write_image
from .video.io import VIDEO_SUFFIXES, is_stream, is_video

METHOD_CHOICES = ("synthetic", "dp2", "pixelate", "blur", "mask")
"""`pipeline.METHODS` in the order the help lists them (the pipeline is imported only when a command runs)."""

log = logging.getLogger("condanon.cli")


def _progress(items: list[Any], quiet: bool, desc: str) -> Any:
    if quiet or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", file=sys.stderr)


def _error(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"condanon: error: {message}", file=sys.stderr)  # keeps a running progress bar intact


def _anonymizer(args: argparse.Namespace) -> Any:
    from .pipeline import Anonymizer

    return Anonymizer(
        method=args.method,
        seed=args.seed,
        detector=args.detector,
        verify=not args.no_verify,
        shape=args.shape,
        mask_scale=args.mask_scale,
        strength=args.strength,
        blocks=args.blocks,
        fallback=args.fallback,
        score_threshold=args.threshold,
        candidates=args.candidates,
        dp2_weights=args.dp2_weights,
        truncation=args.truncation,
        dp2_steps=args.dp2_steps,
    )


def _output_path(out: Path, relative: Path, single_file_target: bool) -> Path:
    if single_file_target:
        return out
    target = out / relative
    if target.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
        target = target.with_suffix(".png")
    return target


def list_media(inputs: list[str]) -> list[tuple[Path, Path]]:
    """Return ``(file, relative_name)`` for every input file and every image or video under input folders.

    Hidden files are left out of folders: they include the temporary outputs of an interrupted job.
    """
    return list_images(inputs, IMAGE_SUFFIXES + VIDEO_SUFFIXES, skip_hidden=True)


def _video_anonymizer(args: argparse.Namespace, anonymizer: Any) -> Any:
    from .video import VideoAnonymizer

    return VideoAnonymizer(
        anonymizer, detect_every=args.detect_every, tiles=not args.no_tiles, backfill=args.backfill, max_fps=args.max_fps
    )


def _encode_options(args: argparse.Namespace) -> Any:
    from .video import EncodeOptions

    return EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset, audio=not args.no_audio)


def _frame_progress(args: argparse.Namespace, name: str) -> tuple[Any, Any]:
    """Return a progress callback (frames done, total) showing fps, and the bar to close (``None`` when quiet)."""
    if args.quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(desc=name, unit="frame", file=sys.stderr, leave=False)

    def update(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update, bar


def _run_video(args: argparse.Namespace, videos: Any, source: str, target: Path | None, partial: Path | None = None) -> dict[str, Any]:
    """Anonymise one video or stream into ``target``; write its track report and box CSV beside it; return the report."""
    progress, bar = _frame_progress(args, Path(source).name)
    try:
        report = videos.run(source, target, _encode_options(args), partial=partial, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if target is not None:
        report.write_beside(target)
    log.info("%s -> %s (%d frames, %d tracks, %.1f fps)", source, target, report.frames_written, len(report.tracks), report.fps)
    return report.to_dict()


def _settings_digest(args: argparse.Namespace) -> str:
    keys = ("method", "seed", "detector", "threshold", "shape", "mask_scale", "strength", "blocks", "fallback", "no_verify",
            "candidates", "dp2_weights", "truncation", "dp2_steps", "detect_every", "no_tiles", "backfill", "codec", "crf", "preset", "no_audio", "keep_metadata")
    return hashlib.sha256(json.dumps({k: getattr(args, k, None) for k in keys}, sort_keys=True).encode()).hexdigest()[:16]


def cmd_anonymize(args: argparse.Namespace) -> int:
    """Anonymise every input image, video or stream into the output folder (or file); return the exit status.

    A folder output is a resumable job: finished files are recorded in a small SQLite file there and
    skipped by the next run with the same options; outputs appear only complete (temporary name, then
    a rename), so a crash or Ctrl-C leaves nothing half-written.
    """
    out = Path(args.output)
    if len(args.inputs) == 1 and is_stream(args.inputs[0]):
        anonymizer = _anonymizer(args)
        target = None if args.output == "none" else out
        data = _run_video(args, _video_anonymizer(args, anonymizer), args.inputs[0], target)
        if args.report:
            write_atomic(args.report, json.dumps(data, indent=2).encode())
        if not args.quiet:
            print(f"{data['frames_written']} frames, {len(data['tracks'])} tracks, {data['fps']:.1f} fps", file=sys.stderr)
        return 0
    inputs = list_media(args.inputs)
    if not inputs:
        _error("no input images or videos found")
        return 1
    single = len(inputs) == 1 and out.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES and not out.is_dir()
    anonymizer = _anonymizer(args)
    videos = None
    job = None
    if not single:
        from .video.job import Job, clean_partials

        job = Job(out, _settings_digest(args))
        for leftover in clean_partials(out):
            log.info("removed %s (left by an interrupted run)", leftover)
    failures = skipped = 0
    reports = []
    try:
        for path, relative in _progress(inputs, args.quiet, "anonymizing"):
            target = _output_path(out, relative, single)
            if job is not None and not job.needs(path, target):
                skipped += 1
                log.info("%s: done in an earlier run, skipped", path)
                continue
            try:
                if target.resolve() == path.resolve():
                    raise CondanonError(f"{path}: output would overwrite the input")
                if job is not None:
                    job.start(path, target)
                if is_video(path):
                    if videos is None:
                        videos = _video_anonymizer(args, anonymizer)
                    from .video.job import partial_path

                    report = _run_video(args, videos, str(path), target, partial_path(target))
                else:
                    result = anonymizer.anonymize(path)
                    metadata = metadata_of(path) if args.keep_metadata else None
                    write_image(target, result.bgr, metadata)
                    report = result.to_dict()
                    log.info("%s -> %s (%d faces)", path, target, len(result.reports))
                report["output"] = str(target)
                reports.append(report)
                if job is not None:
                    job.done(path, target)
            except CondanonError as error:
                failures += 1
                _error(str(error))
                reports.append({"source": str(path), "error": str(error)})
                if job is not None:
                    job.failed(path, target, str(error))
            except Exception as error:  # one broken input must not end the batch
                failures += 1
                _error(f"{path}: {type(error).__name__}: {error}")
                reports.append({"source": str(path), "error": f"{type(error).__name__}: {error}"})
                if job is not None:
                    job.failed(path, target, f"{type(error).__name__}: {error}")
    finally:
        if job is not None:
            job.close()
    if args.report:
        summary = {
            "condanon": __version__,
            "method": args.method,
            "seed": args.seed,
            "inputs": len(inputs),
            "skipped": skipped,
            "failed": failures,
            "faces": sum(len(r.get("faces", [])) for r in reports),
            "tracks": sum(len(r.get("tracks", [])) for r in reports),
            "results": reports,
        }
        write_atomic(args.report, json.dumps(summary, indent=2).encode())
    if not args.quiet:
        faces = sum(len(r.get("faces", [])) for r in reports)
        tracks = sum(len(r.get("tracks", [])) for r in reports)
        done_before = f", {skipped} done before" if skipped else ""
        print(f"{len(inputs) - failures}/{len(inputs)} inputs anonymized{done_before}, {faces} faces in images, "
              f"{tracks} tracks in videos", file=sys.stderr)
    return 1 if failures else 0


CSV_FIELDS = ["source", "face", "x1", "y1", "x2", "y2", "score", "age", "sex", "sex_confidence", "emotion", "emotion_confidence"]


def cmd_analyze(args: argparse.Namespace) -> int:
    """Print the faces and attributes of every input as JSON or CSV; return the exit status."""
    from .imageio import read_image
    from .pipeline import Anonymizer

    inputs = list_images(args.inputs)
    if not inputs:
        _error("no input images found")
        return 1
    analyzer = Anonymizer(detector=args.detector, score_threshold=args.threshold)
    failures = 0
    rows: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for path, _ in _progress(inputs, args.quiet, "analyzing"):
        try:
            faces = analyzer.find_faces(read_image(path))
        except CondanonError as error:
            failures += 1
            _error(str(error))
            images.append({"source": str(path), "error": str(error)})
            continue
        images.append({"source": str(path), "faces": [f.to_dict() for f in faces]})
        for index, face in enumerate(faces):
            attributes = face.attributes.to_dict() if face.attributes else {}
            x1, y1, x2, y2 = face.box.to_list()
            rows.append(
                {"source": str(path), "face": index, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": round(face.score, 4)}
                | {k: attributes.get(k) for k in CSV_FIELDS[7:]}
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
        _error(f"model {row['name']} is {row['status']} at {row.get('path')}")
    return 1 if bad else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate the methods on the photo datasets and/or videos, write the report folder, print the tables."""
    if not args.data and not args.videos:
        _error("give --data (photo datasets) and/or --videos")
        return 2
    methods = [m for m in args.methods.split(",") if m.strip()]
    status = 0
    if args.data:
        from .evaluation import evaluate
        from .evaluation.report import markdown_table

        result = evaluate(
            args.data, methods=methods, limit=args.limit, seed=args.seed, out=args.out, workers=args.workers,
            progress=not args.quiet,
        )
        overall = result.summaries.get("all") or next(iter(result.summaries.values()))
        print(markdown_table(overall))
        for error in result.errors:
            _error(error)
        if not args.quiet:
            print(f"{len(result.records) // max(1, len(result.methods))} photos in {result.seconds:.0f} s; "
                  f"report in {args.out}", file=sys.stderr)
        status = 1 if result.errors else 0
    if args.videos:
        from .evaluation.video_run import evaluate_videos, markdown

        videos = [path for path, _ in list_media(args.videos) if is_video(path)]
        if not videos:
            _error("no videos found in --videos")
            return 1
        say = None if args.quiet else (lambda text: print(f"evaluating {text}", file=sys.stderr))
        rows = evaluate_videos(videos, methods, args.out, every=args.every, detect_every=args.detect_every, tiles=not args.no_tiles,
                               seed=args.seed, progress=say)
        print(markdown(rows, args.every))
    return status


def cmd_sheet(args: argparse.Namespace) -> int:
    """Write a contact sheet (original beside anonymised) per input and an index.md; return the exit status."""
    from .imageio import read_image
    from .pipeline import Anonymizer
    from .sheet import SheetEntry, check_max_side, index_markdown, render_sheet, unique_name

    check_max_side(args.max_side)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CondanonError(f"{out}: exists and is not a folder")
    inputs = list_images(args.inputs)
    if not inputs:
        _error("no input images found")
        return 1
    anonymizer = Anonymizer(method=args.method, seed=args.seed)
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
            _error(str(error))
            entries.append(SheetEntry(str(path), error=str(error)))
        except Exception as error:  # one broken input must not end the batch
            failures += 1
            _error(f"{path}: {type(error).__name__}: {error}")
            entries.append(SheetEntry(str(path), error=f"{type(error).__name__}: {error}"))
    write_atomic(out / "index.md", index_markdown(entries, args.method, args.seed).encode())
    if not args.quiet:
        faces = sum(e.faces for e in entries)
        fallbacks = sum(e.fallbacks for e in entries)
        print(f"{len(inputs) - failures}/{len(inputs)} sheets in {out}, {faces} faces, {fallbacks} fallbacks; "
              f"see {out / 'index.md'}", file=sys.stderr)
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``condanon`` command."""
    parser = argparse.ArgumentParser(prog="condanon", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"condanon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens to each file")
    sub = parser.add_subparsers(dest="command", required=True)

    anon = sub.add_parser("anonymize", help="anonymise images (files and folders)")
    anon.add_argument("inputs", nargs="+",
                      help="image and video files, folders (walked recursively), or one stream (rtsp://..., http://..., camera:0)")
    anon.add_argument("-o", "--output", required=True,
                      help="output folder (a resumable job), or file for one input; 'none' for a stream: reports only")
    anon.add_argument("--method", default="synthetic", choices=METHOD_CHOICES,
                      help="synthetic: a new face with the same age, sex, expression and pose (default); "
                           "dp2: DeepPrivacy2's generator (photos; needs condanon[dp2] and a checkpoint, docs/dp2.md)")
    anon.add_argument("--candidates", type=int,
                      help="synthetic/dp2 candidates tried per face before the fallback (default 6 / 4)")
    anon.add_argument("--dp2-weights", default="fdf256",
                      help="dp2 checkpoint: fdf256, fdf128 (in $TORCH_HOME/hub/checkpoints) or a file")
    anon.add_argument("--truncation", type=float, default=0.5,
                      help="dp2: truncation of the candidates after the first (0: DP2's average latent, 1: none)")
    anon.add_argument("--dp2-steps", type=int, default=0,
                      help="dp2: gradient steps on the best candidate's latent when none passed (~3 s each)")
    anon.add_argument("--report", help="write a JSON report of every face to this file")
    anon.add_argument("--seed", type=int, default=0)
    anon.add_argument("--detector", default="yunet+hog", help="detector backend (yunet, yunet+hog, yunet+haar, ...)")
    anon.add_argument("--threshold", type=float, help="YuNet detection score threshold (default 0.6)")
    anon.add_argument("--shape", default="ellipse", choices=["ellipse", "box"], help="region shape")
    anon.add_argument("--mask-scale", type=float, default=1.3, help="region size relative to the face box")
    anon.add_argument("--strength", type=float, default=0.5, help="blur kernel as a fraction of the face size")
    anon.add_argument("--blocks", type=int, default=8, help="mosaic cells across the face")
    anon.add_argument("--fallback", default="mask", choices=["mask", "pixelate", "blur"])
    anon.add_argument("--no-verify", action="store_true", help="skip the identity check on the output (faster)")
    anon.add_argument("--keep-metadata", action="store_true", help="keep EXIF and ICC metadata (stripped by default)")
    vid = anon.add_argument_group("video and streams")
    vid.add_argument("--detect-every", type=int, default=2, help="frames between detections; tracks bridge the others "
                     "(5 is 2-3x faster and leaks more faces in crowds: docs/video.md)")
    vid.add_argument("--no-tiles", action="store_true", help="skip YuNet's native-resolution tiles on frames over 1280 px (faster, misses small faces)")
    vid.add_argument("--backfill", type=int, help="frames covered before a track's first detection (default 2 keyframes)")
    vid.add_argument("--codec", default="libx264", help="video encoder (FFmpeg name: libx264, libx265, mpeg4, libvpx-vp9)")
    vid.add_argument("--crf", type=int, default=20, help="x264/x265 quality (lower = better, bigger)")
    vid.add_argument("--preset", default="veryfast", help="x264/x265 speed preset")
    vid.add_argument("--no-audio", action="store_true", help="drop the audio track (copied by default)")
    vid.add_argument("--max-fps", type=float, help="live streams: drop frames to keep at most this rate")
    anon.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    anon.set_defaults(func=cmd_anonymize)

    ana = sub.add_parser("analyze", help="faces with age, sex and emotion; images are not changed")
    ana.add_argument("inputs", nargs="+", help="image files and folders")
    ana.add_argument("--format", default="json", choices=["json", "csv"])
    ana.add_argument("-o", "--output", help="write to this file instead of standard output")
    ana.add_argument("--detector", default="yunet+hog")
    ana.add_argument("--threshold", type=float, help="YuNet detection score threshold (default 0.6)")
    ana.add_argument("-q", "--quiet", action="store_true")
    ana.set_defaults(func=cmd_analyze)

    ev = sub.add_parser("evaluate", help="measure privacy against utility for each method on labelled datasets")
    ev.add_argument("--data", nargs="+", help="photo dataset folders (each with an index.csv)")
    ev.add_argument("--videos", nargs="+", help="videos or folders of videos: leaked frames, track consistency, jitter, fps")
    ev.add_argument("--every", type=int, default=1, help="videos: leak-test every Nth frame (1: all, the real metric)")
    ev.add_argument("--detect-every", type=int, default=2, help="videos: frames between detections")
    ev.add_argument("--no-tiles", action="store_true", help="videos: no native-resolution tiles")
    ev.add_argument("--methods", default="synthetic,blur,pixelate,mask",
                    help="comma-separated; options as name:key=value (e.g. blur:strength=0.25); 'original' is always added")
    ev.add_argument("--limit", type=int, help="photos per dataset (a seeded random draw), for a quick run")
    ev.add_argument("--out", default="evaluation", help="report folder (tables, JSON, CSV, plots, contact sheet)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--workers", type=int, help="processes (default: one per core, at most 4)")
    ev.add_argument("-q", "--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    she = sub.add_parser("sheet", help="contact sheets for review: each original beside its anonymised image")
    she.add_argument("inputs", nargs="+", help="image files and folders (walked recursively)")
    she.add_argument("--out", required=True, help="folder for the sheets (<stem>.jpg) and index.md")
    she.add_argument("--method", default="synthetic", choices=METHOD_CHOICES)
    she.add_argument("--seed", type=int, default=0)
    she.add_argument("--max-side", type=int, default=1600, help="longer side of each sheet at most (px)")
    she.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    she.set_defaults(func=cmd_sheet)

    mod = sub.add_parser("models", help="list the models, their licenses, and check each file")
    mod.add_argument("--json", action="store_true")
    mod.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="condanon: %(levelname)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except CondanonError as error:
        _error(str(error))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

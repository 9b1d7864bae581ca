"""The ``condanon analytics`` command, and the ``--analytics`` options that ``anonymize`` shares with it.

``condanon analytics INPUT... --out DIR`` counts and reads the people of each video or stream and writes
people.csv, timeline.csv, counts.json, the plots and report.html (`condanon.analytics`); no anonymised
video is written. ``condanon anonymize ... --analytics DIR`` writes the same beside its anonymised
videos, from the same pass. One input writes into DIR; several write into DIR/<name of the input>/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from .analytics import ATTRIBUTE_EVERY, CountingLine, PassengerAnalytics, PeopleRules, Region, write_analytics
from .console import EXIT_LOST, EXIT_UNREACHABLE, error_line, frame_progress
from .errors import CondanonError, ModelError, show_path
from .video.report import VideoReport
from .video.stream import StreamError

log = logging.getLogger(__name__)

ANALYTICS_EPILOG = """\
outputs (schema condanon.analytics/1, docs/analytics.md): people.csv (one row per counted person),
  timeline.csv (one row per person per reading), counts.json (by sex, age band, emotion, per time
  window, line crossings), people_over_time.png, age_sex_pyramid.png, emotion_over_time.png and
  report.html (self-contained). Faces that are not people to count (crests, posters, one-off
  detections) are left out of the tables; counts.json says how many and why.
exit status: 0 all inputs done; 1 some input failed (one line each, the others written); 2 usage or
  configuration error; 3 a stream could not be reached (after --reconnect tries); 4 a stream dropped
  and did not come back (the analytics of what was read are written)."""


def add_analytics_options(group: Any, with_out: bool) -> None:
    """Add the counting options (and ``--analytics DIR`` unless ``with_out``) to an argument group."""
    if not with_out:
        group.add_argument(
            "--analytics",
            metavar="DIR",
            help="videos and streams: also write the passenger analytics (people.csv, timeline.csv, counts.json, "
            "plots, report.html) into DIR, from the same pass",
        )
    group.add_argument(
        "--line",
        metavar="X1,Y1,X2,Y2",
        help="count crossings of this line (pixels, or fractions of the frame: 0.5,0,0.5,1 is a vertical middle "
        "line, whose first direction is left to right)",
    )
    group.add_argument(
        "--line-names",
        metavar="A,B",
        help="names of the two directions of --line (default in,out), e.g. boarding,deboarding",
    )
    group.add_argument("--roi", metavar="X,Y,...", help="count only people seen inside this polygon (3+ points)")
    group.add_argument(
        "--window", type=float, default=10.0, help="seconds per row of the counts over time (default 10)"
    )
    group.add_argument(
        "--min-seconds",
        type=float,
        default=PeopleRules.min_seconds,
        help="a person is detected over at least this long",
    )
    group.add_argument(
        "--static-seconds",
        type=float,
        default=PeopleRules.static_seconds,
        help="a face seen this long that does not move against the background (a poster) is not counted; 0: off",
    )
    group.add_argument(
        "--attribute-every",
        type=int,
        help=f"frames between attribute readings of a face (default {ATTRIBUTE_EVERY} with analytics, else 50)",
    )
    group.add_argument(
        "--parquet", action="store_true", help="also write people.parquet and timeline.parquet (pyarrow)"
    )
    group.add_argument("--no-plots", action="store_true", help="no PNG plots and no report.html (no matplotlib needed)")


def add_stream_options(group: Any) -> None:
    """Add ``--reconnect`` and ``--reconnect-wait`` (live sources) to an argument group."""
    group.add_argument(
        "--reconnect",
        type=int,
        default=5,
        help="live streams: times in a row a dropped or unreachable stream is opened again (default 5; 0: never)",
    )
    group.add_argument(
        "--reconnect-wait",
        type=float,
        default=1.0,
        help="seconds before the first reconnection; each next one waits twice as long, at most 30 s",
    )


def add_segment_option(group: Any) -> None:
    """Add ``--segment SECONDS`` (one finished output file per that many seconds) to an argument group."""
    group.add_argument(
        "--segment",
        type=float,
        metavar="SECONDS",
        help="write the video as one finished file per SECONDS (out.0000.mp4, out.0001.mp4, ...; no audio): "
        "a long camera recording can be taken away while it runs",
    )


def counting(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``rules``, ``line``, ``region`` and ``window`` the options ask for (for `PassengerAnalytics`)."""
    if args.window <= 0:
        raise CondanonError("--window must be more than 0 seconds")
    if args.line_names and not args.line:
        raise CondanonError("--line-names needs --line")
    static = args.static_seconds if args.static_seconds > 0 else float("inf")
    return {
        "rules": PeopleRules(min_seconds=args.min_seconds, static_seconds=static),
        "line": CountingLine.parse(args.line, args.line_names) if args.line else None,
        "region": Region.parse(args.roi) if args.roi else None,
        "window": args.window,
    }


def check_output_folder(folder: str | Path, flag: str) -> None:
    """Refuse, before any work, an output folder that is an existing file or cannot be written (one line)."""
    from .imageio import check_writable

    if Path(folder).exists() and not Path(folder).is_dir():
        raise CondanonError(f"{flag} {show_path(folder)}: an existing file, not a folder")
    check_writable(folder, f"{flag} {show_path(folder)}")


def analytics_folder(root: Path, source: str, several: bool) -> Path:
    """Return where one input's analytics go: ``root``, or ``root/<input name>`` when there are several inputs."""
    return root / _stem(source) if several else root


def _stem(source: str) -> str:
    name = Path(source).name if "://" not in source else source.split("://", 1)[1]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).stem or name) or "stream"


def write_report_analytics(args: argparse.Namespace, report: VideoReport, folder: Path) -> PassengerAnalytics:
    """Count the people of a finished run's report and write the outputs into ``folder``."""
    analytics = PassengerAnalytics.from_report(report, **counting(args))
    write_analytics(analytics, folder, plots=not args.no_plots, parquet=args.parquet)
    log.info("%s: %d people counted -> %s", report.source, len(analytics.people), folder)
    return analytics


def cmd_analytics(args: argparse.Namespace) -> int:
    """Count and read the people of every input video or stream; return the exit status."""
    from .analytics import analysis_video_anonymizer
    from .video.io import is_stream, is_video

    counting(args)  # options checked before any work
    out = Path(args.out)
    check_output_folder(out, "--out")
    runner = analysis_video_anonymizer(args.seed, args.attribute_every or ATTRIBUTE_EVERY)
    runner.max_fps = args.max_fps
    runner.reconnect, runner.reconnect_wait = args.reconnect, args.reconnect_wait
    inputs: list[str] = []
    for item in args.inputs:
        if is_stream(item) or not Path(item).is_dir():
            inputs.append(item)
        else:
            inputs += sorted(str(p) for p in Path(item).rglob("*") if p.is_file() and is_video(p))
    if not inputs:
        error_line("no input videos found")
        return 1
    several = len(inputs) > 1
    failures = 0
    unreachable = lost = False
    for source in inputs:
        progress, bar = frame_progress(args, show_path(Path(source).name))
        try:
            report = runner.run(source, None, progress=progress)
        except ModelError:
            raise
        except CondanonError as error:
            failures += 1
            unreachable = unreachable or isinstance(error, StreamError)
            error_line(str(error))
            continue
        finally:
            if bar is not None:
                bar.close()
        for message in report.errors:
            failures += 1
            error_line(message)
        lost = lost or report.lost
        analytics = write_report_analytics(args, report, analytics_folder(out, source, several))
        if not args.quiet:
            print(
                f"{show_path(source)}: {_people(len(analytics.people))} counted of {len(report.tracks)} face tracks, "
                f"{report.frames_read} frames",
                file=sys.stderr,
            )
    if unreachable:
        return EXIT_UNREACHABLE
    if lost:
        return EXIT_LOST
    return 1 if failures else 0


def _people(count: int) -> str:
    return f"{count} {'person' if count == 1 else 'people'}"


def add_parser(sub: Any) -> None:
    """Add the ``analytics`` sub-command to the ``condanon`` parser's sub-parsers."""
    parser = sub.add_parser(
        "analytics",
        help="count people in videos and streams, with their age, sex and emotion over time (no video written)",
        epilog=ANALYTICS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", help="video files, folders of videos, or streams (rtsp://..., camera:0)")
    parser.add_argument("--out", required=True, help="folder for the outputs")
    add_analytics_options(parser.add_argument_group("counting"), with_out=True)
    streams = parser.add_argument_group("streams")
    streams.add_argument("--max-fps", type=float, help="live streams: drop frames to keep at most this rate")
    add_stream_options(streams)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    parser.set_defaults(func=cmd_analytics)

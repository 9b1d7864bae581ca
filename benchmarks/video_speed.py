"""Frames per second of condanon's video modes and of the peer `deface`, in one run, side by side.

    python benchmarks/video_speed.py [--video ../shared/data/video/crowd.mp4] [--deface PATH] [--detect-every 5]

Runs on the same machine, one after the other: our ``blur`` and ``synthetic`` modes on the 1080p
crowd clip (at the default settings and at the fast ones: detection every 5 frames, no tiles), deface at its defaults and with ``--scale 1280x720`` (benchmarks/deface_peer.py; install
deface in its own venv, it needs the GUI OpenCV), then our synthetic mode at 720p on the crowd clip
and on the shared clips with one face (scaled to 1280x720 first). Every run is timed from the call
to the finished file (models already loaded for ours; deface's start-up, ~0.5 s, is in its time),
output with audio. Prints a Markdown table with the ratio of each fps to deface's at its defaults.
Targets (issue #6): blur >= 10x deface; synthetic >= deface; synthetic >= 25 fps at 720p, <= 5 faces.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deface_peer import find_deface, run_deface  # noqa: E402
from shared_data import shared_root  # noqa: E402

from condanon.pipeline import Anonymizer  # noqa: E402
from condanon.video import EncodeOptions, VideoAnonymizer, VideoReader, VideoWriter  # noqa: E402


def scaled_copy(source: Path, target: Path, size: tuple[int, int]) -> Path:
    """Write ``source`` resized to ``size`` (w, h) with its timing and audio (the input of the 720p runs)."""
    reader = VideoReader(source)
    info = dataclasses.replace(reader.info, width=size[0], height=size[1])
    writer = VideoWriter(target, info, EncodeOptions(crf=18), reader.audio_stream)
    for frame in reader:
        writer.mux_audio(reader.take_audio())
        writer.write(cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA), frame.pts)
    writer.mux_audio(reader.take_audio())
    writer.close()
    reader.close()
    return target


def ours(method: str, video: Path, out: Path, detect_every: int, tiles: bool) -> dict[str, Any]:
    """Return the timing of one condanon run (a warm-up run on the first frames loads the models first)."""
    runner = VideoAnonymizer(Anonymizer(method=method), detect_every=detect_every, tiles=tiles)
    seen = []

    def warm_up(frame: Any) -> None:
        seen.append(1)
        if len(seen) >= 10:
            runner.stop.set()

    runner.run(video, None, frames=warm_up)  # loads the models; stops after 10 frames
    runner.stop.clear()
    start = time.perf_counter()
    report = runner.run(video, out)
    seconds = time.perf_counter() - start
    faces = sum(t.frames for t in report.tracks.values()) / max(report.frames_written, 1)
    return {"seconds": seconds, "frames": report.frames_written, "fps": report.frames_written / seconds, "faces": faces,
            "tracks": len(report.tracks)}


def size_of(video: Path) -> str:
    with av.open(str(video)) as container:
        context = container.streams.video[0].codec_context
        return f"{context.width}x{context.height}"


def main() -> None:
    """Run every mode and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, help="the 1080p clip (default: shared/data/video/crowd.mp4)")
    parser.add_argument("--deface", help="the deface executable (default: $DEFACE, PATH, /tmp/venv_deface/bin/deface)")
    parser.add_argument("--fast-every", type=int, default=5, help="detect-every of the fast setting (no tiles)")
    parser.add_argument("--shared", help="the shared folder (default: $CONDANON_SHARED, ../shared)")
    opts = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    shared = shared_root(opts.shared)
    crowd = opts.video or shared / "data" / "video" / "crowd.mp4"
    exe = find_deface(opts.deface)
    rows: list[tuple[str, str, Path, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="video_speed_") as tmp:
        work = Path(tmp)
        settings = (("default", 2, True), (f"fast: detect every {opts.fast_every}, no tiles", opts.fast_every, False))
        for method in ("blur", "synthetic"):
            for name, every, tiles in settings:
                result = ours(method, crowd, work / f"{method}.mp4", every, tiles)
                rows.append((f"condanon {method} ({name})", size_of(crowd), crowd, result))
        peer = None
        if exe is None:
            print("deface not found: install it in its own venv and pass --deface (see benchmarks/deface_peer.py)", file=sys.stderr)
        else:
            for label, extra in (("deface (defaults)", ()), ("deface --scale 1280x720", ("--scale", "1280x720"))):
                result = run_deface(crowd, work / f"deface{len(rows)}.mp4", extra, exe)
                rows.append((label, size_of(crowd), crowd, result))
                peer = peer or result["fps"]
        small = [(crowd, "crowd")] + [(shared / "data" / "video" / n, n.split(".")[0]) for n in ("single_face.mp4", "face_noface.mov")]
        for source, name in small:
            copy = scaled_copy(source, work / f"{name}_720p.mp4", (1280, 720))
            for label, every, tiles in settings:
                result = ours("synthetic", copy, work / f"{name}_720p_out.mp4", every, tiles)
                rows.append((f"condanon synthetic, {name} at 720p ({label})", "1280x720", copy, result))
    print(f"\n{crowd.name} and copies at 720p; 2-core CPU; default = detect every 2 frames, tiles over 1280 px\n")
    print("| run | size | frames | faces/frame | seconds | fps | x deface |")
    print("|---|---|---|---|---|---|---|")
    for label, size, _, r in rows:
        ratio = f"{r['fps'] / peer:.1f}" if peer else "-"
        faces = f"{r['faces']:.1f}" if "faces" in r else "-"
        print(f"| {label} | {size} | {r['frames']} | {faces} | {r['seconds']:.1f} | {r['fps']:.1f} | {ratio} |")


if __name__ == "__main__":
    main()

"""Time the peer video anonymiser `deface` (PyPI ``deface``, MIT, CenterFace detector) on a video.

    python benchmarks/deface_peer.py VIDEO [--deface PATH] [--out-dir DIR] [--repeat N] [--no-keep-audio]

Runs deface in a subprocess at its defaults and with ``--scale 1280x720`` (output with the input's
audio, ``--keep-audio``), and prints a Markdown table: wall seconds, frames, frames per second.
Frames are the input's, counted with PyAV; fps is frames / wall time of the whole subprocess, so it
includes deface's start-up (Python imports, model load, ffmpeg start: about 0.5 s on 2 cores).
The CPU seconds (deface and its ffmpeg children) show whether other work shared the cores: on an
idle 2-core machine wall time is about CPU time / 1.85.

deface needs opencv-python, which clashes with condanon's opencv-python-headless, so install it in
a separate venv (``python3.11 -m venv /tmp/venv_deface && /tmp/venv_deface/bin/pip install deface``)
and pass its executable with ``--deface`` or ``$DEFACE``; /tmp/venv_deface/bin/deface is tried last.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

DEFAULT_EXE = Path("/tmp/venv_deface/bin/deface")
INSTALL_HINT = (
    "deface is not installed: `pip install deface` in a separate venv (it needs opencv-python, which "
    "clashes with condanon's opencv-python-headless) and pass its path with --deface or $DEFACE"
)
# The runs of the table: a label and the extra deface arguments.
RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("defaults", ()),
    ("--scale 1280x720", ("--scale", "1280x720")),
)


def find_deface(explicit: str | None = None) -> str | None:
    """Return the ``deface`` executable, or None if there is none.

    Looks at ``explicit`` (a path or a command name), else ``$DEFACE``, else ``deface`` on the PATH,
    else /tmp/venv_deface/bin/deface. A path that was given (argument or ``$DEFACE``) but is not an
    executable gives None rather than a different deface.
    """
    given = explicit or os.environ.get("DEFACE")
    if given:
        return shutil.which(given)
    found = shutil.which("deface")
    if found:
        return found
    if DEFAULT_EXE.is_file() and os.access(DEFAULT_EXE, os.X_OK):
        return str(DEFAULT_EXE)
    return None


def require_deface(explicit: str | None = None) -> str:
    """Return the ``deface`` executable as `find_deface` does; raise RuntimeError with the install hint if none."""
    exe = find_deface(explicit)
    if exe is None:
        given = explicit or os.environ.get("DEFACE")
        raise RuntimeError(INSTALL_HINT + (f" (not an executable: {given})" if given else ""))
    return exe


def count_frames(video: Path) -> int:
    """Number of video frames in ``video``, from the container's count, else by decoding (PyAV)."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for _ in container.decode(stream))


def _frames_processed(log: str) -> int | None:
    """Frames deface reports in its last tqdm progress line (``105/105 [...]`` or ``192it [...]``)."""
    counts = re.findall(r"(?<![\d.])(\d+)(?:/\d+ \[|it \[)", log)
    return int(counts[-1]) if counts else None


def run_deface(
    video: Path,
    out: Path,
    args: Sequence[str] = (),
    exe: str | None = None,
    keep_audio: bool = True,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run deface on ``video`` writing ``out`` and time it.

    ``args`` are extra deface options (e.g. ``["--scale", "1280x720"]``); ``--keep-audio`` is added
    unless ``keep_audio`` is False (deface quietly writes no audio when the input has none).
    Returns ``{"seconds": wall, "frames": N, "fps": N / wall, "args": [...], "returncode": rc}``
    with N the input's frame count (PyAV), plus ``"frames_processed"`` (deface's own count, from its
    progress bar; it can differ on variable-frame-rate inputs, which its ffmpeg reader resamples),
    ``"cpu_seconds"`` (user + system CPU time of deface and its ffmpeg children: steadier than the
    wall time when other work shares the cores), ``"cmd"`` and, if deface failed, ``"log"`` (the end of its output).
    Raises RuntimeError when deface is not installed.
    """
    exe = require_deface(exe)
    video, out = Path(video), Path(out)
    if not video.is_file():
        raise FileNotFoundError(video)
    extra = list(args)
    if keep_audio and "--keep-audio" not in extra and "-k" not in extra:
        extra.append("--keep-audio")
    frames = count_frames(video)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe, str(video), "--output", str(out), *extra]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    log = proc.stdout + proc.stderr
    result: dict[str, Any] = {
        "seconds": seconds,
        "frames": frames,
        "fps": frames / seconds if seconds > 0 else float("nan"),
        "args": extra,
        "returncode": proc.returncode,
        "frames_processed": _frames_processed(proc.stderr),
        "cpu_seconds": cpu,
        "cmd": cmd,
    }
    if proc.returncode != 0 or not out.is_file():
        result["log"] = log.replace("\r", "\n")[-2000:]
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Time deface on one video at its defaults and with ``--scale 1280x720``; print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--deface", help="the deface executable (default: $DEFACE, PATH, /tmp/venv_deface/bin/deface)")
    parser.add_argument("--out-dir", type=Path, help="where deface writes its videos (default: a temporary folder)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting; the fastest is reported")
    parser.add_argument("--no-keep-audio", action="store_true", help="do not pass --keep-audio")
    opts = parser.parse_args(argv)
    try:
        exe = require_deface(opts.deface)
    except RuntimeError as error:
        raise SystemExit(str(error)) from None
    with tempfile.TemporaryDirectory(prefix="deface_peer_") as tmp:
        out_dir = opts.out_dir or Path(tmp)
        print(f"deface: {exe}; video: {opts.video} ({count_frames(opts.video)} frames)\n")
        print("| deface run | frames | seconds | fps | CPU seconds | return code |")
        print("|---|---|---|---|---|---|")
        for label, extra in RUNS:
            name = f"{opts.video.stem}_deface_{re.sub(r'[^A-Za-z0-9]+', '_', label).strip('_')}.mp4"
            runs = [
                run_deface(opts.video, out_dir / name, extra, exe=exe, keep_audio=not opts.no_keep_audio)
                for _ in range(max(1, opts.repeat))
            ]
            best = min(runs, key=lambda r: (r["returncode"] != 0, r["seconds"]))
            print(
                f"| {label} | {best['frames']} | {best['seconds']:.1f} | {best['fps']:.2f} "
                f"| {best['cpu_seconds']:.1f} | {best['returncode']} |"
            )
            if "log" in best:
                print(best["log"], file=sys.stderr)


if __name__ == "__main__":
    main()

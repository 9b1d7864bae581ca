"""What the command line shows a person: one-line errors, frame progress bars, and the exit codes of streams.

Shared by ``condanon``'s commands (`condanon.cli`, `condanon.cli_analytics`); the library itself prints
nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import show_path

EXIT_UNREACHABLE = 3
"""Exit status: a live source could not be reached, after every retry."""
EXIT_LOST = 4
"""Exit status: a live source dropped and no reconnection brought it back (what was read is written)."""


def error_line(message: str) -> None:
    """Print ``message`` as one ``condanon: error:`` line, control characters escaped (a file name
    cannot forge lines).
    """
    from tqdm import tqdm

    tqdm.write(f"condanon: error: {show_path(message)}", file=sys.stderr)  # keeps a running progress bar intact


def frame_progress(args: argparse.Namespace, name: str) -> tuple[Any, Any]:
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

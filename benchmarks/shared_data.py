"""Where the benchmarks find the shared photos: ``--shared``, else ``$CONDANON_SHARED``, else ``../shared``."""

from __future__ import annotations

import os
from pathlib import Path


def shared_root(given: str | None) -> Path:
    """Return the shared folder (the one holding ``data/``); exit with a one-line message if there is none."""
    root = Path(given or os.environ.get("CONDANON_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
    if not (root / "data").is_dir():
        raise SystemExit(f"no shared data at {root} (pass --shared or set CONDANON_SHARED)")
    return root

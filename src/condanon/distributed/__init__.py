"""Scale-out on Ray (``pip install "condanon[ray]"``): images through Ray Data's actor pools, one task per video,
one long-lived actor per camera stream; the same outputs, byte for byte, as a local run with the same seed.

```python
from pathlib import Path
from condanon.distributed import RayEngine

with RayEngine(workers=2) as engine:  # a local cluster; RayEngine("auto") joins a running one
    pairs = [(Path("in/a.jpg"), Path("out/a.jpg")), (Path("in/b.png"), Path("out/b.png"))]
    for done in engine.images(pairs, {"seed": 0}):
        print(pairs[done.index][0], done.outcome.error or len(done.outcome.report["faces"]))
```

``condanon anonymize INPUTS -o OUT --engine ray`` is the same job as a local folder job (its SQLite state,
resume, atomic writes, reports, analytics), with the work on the cluster. docs/scale.md.
"""

from __future__ import annotations

from .cluster import INSTALL_HINT, Cluster, Placement, import_ray
from .engine import RayEngine
from .results import Done
from .videos import VideoItem, VideoJob, VideoRun

__all__ = [
    "INSTALL_HINT",
    "Cluster",
    "Done",
    "Placement",
    "RayEngine",
    "VideoItem",
    "VideoJob",
    "VideoRun",
    "import_ray",
]

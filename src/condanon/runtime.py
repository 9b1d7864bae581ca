"""onnxruntime imported safely, once, before any model loads.

onnxruntime 1.30's import recurses over the process's command-line arguments (about 8 C frames each): with
a few hundred of them (a shell glob of photos, `condanon anonymize *.jpg`) it overflows the 8 MB stack and
the process dies with a segmentation fault. Imported once in a thread whose stack is large (address space,
not memory: only the pages used are touched), the module is then used from any thread without harm.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

PRELOAD_STACK = 1 << 30
"""Stack of the thread that imports onnxruntime (1 GiB of address space: over a million arguments)."""

_lock = threading.Lock()


def preload_onnxruntime() -> None:
    """Import onnxruntime (if installed) in a helper thread with a large stack; a no-op once it is imported."""
    if "onnxruntime" in sys.modules:
        return
    with _lock:
        if "onnxruntime" in sys.modules:
            return

        def load() -> None:
            with contextlib.suppress(ImportError):
                import onnxruntime  # noqa: F401

        previous = threading.stack_size(PRELOAD_STACK)
        try:
            thread = threading.Thread(target=load, name="condanon-onnxruntime-import")
            thread.start()
        finally:
            threading.stack_size(previous)
        thread.join()


def onnx_model(name: str) -> tuple[Any, threading.Lock]:
    """Return a single-threaded CPU session of the registered model ``name`` and a lock for its calls, loaded once.

    Raises `ModelError` (one line) when the file is missing, fails its checksum, or onnxruntime cannot read it.
    """
    from .weights import load_once

    return load_once(name, lambda: _session(name))


def _session(name: str) -> tuple[Any, threading.Lock]:
    from .errors import ModelError
    from .weights import model_path

    preload_onnxruntime()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # deterministic, and no oversubscription beside the other models
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path(name)), options, providers=["CPUExecutionProvider"])
    except ModelError:
        raise
    except Exception as error:  # onnxruntime raises its own types for a file it cannot parse
        raise ModelError(f"model {name!r} cannot be loaded: {' '.join(str(error).split())[:200]}") from None
    return session, threading.Lock()

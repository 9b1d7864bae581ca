"""onnxruntime imported safely, once, before any model loads.

onnxruntime 1.30's import recurses over the process's command-line arguments (about 8 C frames each): with
a few hundred of them (a shell glob of photos, `condanon anonymize *.jpg`) it overflows the 8 MB stack and
the process dies with a segmentation fault. Imported once in a thread whose stack is large (address space,
not memory: only the pages used are touched), the module is then used from any thread without harm.
"""

from __future__ import annotations

import sys
import threading

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
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                pass

        previous = threading.stack_size(PRELOAD_STACK)
        try:
            thread = threading.Thread(target=load, name="condanon-onnxruntime-import")
            thread.start()
        finally:
            threading.stack_size(previous)
        thread.join()

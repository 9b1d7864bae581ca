"""Shared fixtures: the real photos in ``../shared/data`` and one `Anonymizer` for the whole session.

The photos are never copied into the repository; tests write only under ``tmp_path``. Without the
shared folder the suite skips, except under CI (``CI=true``), where a green run that tested nothing
would be a defect, so it fails instead.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

import condanon

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """Return where the shared folder should be: ``$CONDANON_SHARED`` or ``../shared`` beside the repo."""
    env = os.environ.get("CONDANON_SHARED")
    return Path(env).expanduser().resolve() if env else REPO.parent / "shared"


def under_ci() -> bool:
    """Return whether the tests run under CI (``CI=true``), where missing test data or extras are failures."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def imread(path: str | os.PathLike[str]) -> np.ndarray:
    """Return the BGR uint8 image at ``path`` (read with OpenCV); fail the test if it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return image


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared folder (it contains ``data/``); skip when absent, fail when absent under CI."""
    root = shared_dir()
    if (root / "data").is_dir():
        return root
    if under_ci():
        pytest.fail(
            f"../shared is missing under CI: a green run that tested nothing is a defect "
            f"(looked for {root / 'data'}; set CONDANON_SHARED to the shared folder)",
            pytrace=False,
        )
    pytest.skip(f"real test data not found at {root / 'data'} (set CONDANON_SHARED to the shared folder)")


def import_torch():  # type: ignore[no-untyped-def]
    """Return the torch module; skip the calling test module without it, except under CI (it installs the dp2 extra)."""
    if under_ci():  # a skipped dp2 test there would be a green run that tested nothing
        import torch

        return torch
    return pytest.importorskip("torch", reason="the dp2 backend needs PyTorch (pip install 'condanon[dp2]')")


@pytest.fixture(scope="session")
def dp2_dir() -> Path:
    """The shared dp2 folder (spec, key lists, golden generators, crop conventions); skip when absent, fail under CI."""
    root = shared_dir() / "dp2"
    if all((root / name).is_file() for name in ("tiny256.pt", "tiny128.pt", "anonymizer_conventions.json")):
        return root
    if under_ci():
        pytest.fail(f"{root} is missing under CI: the dp2 tests would test nothing", pytrace=False)
    pytest.skip(f"DeepPrivacy2 golden files not found at {root} (set CONDANON_SHARED)")


@pytest.fixture(scope="session")
def data(shared: Path) -> Path:
    """The ``data`` folder of the shared folder."""
    return shared / "data"


@pytest.fixture(scope="session")
def scenes(data: Path) -> Path:
    """The folder of real multi-face scenes (``scenes/*.jpg``)."""
    return data / "scenes"


@pytest.fixture(scope="session")
def load() -> Callable[[str | os.PathLike[str]], np.ndarray]:
    """A function that reads an image as BGR uint8 with OpenCV."""
    return imread


@pytest.fixture(scope="session")
def anonymizer(shared: Path) -> condanon.Anonymizer:
    """One pixelate `Anonymizer` for the session that reads everything a report can hold: attributes and the
    held-out attacker, which pixelate skips unless asked (models load once per process anyway)."""
    from condanon.options import ATTRIBUTE_READERS

    return condanon.Anonymizer(method="pixelate", checks=condanon.Checks(ATTRIBUTE_READERS, attacker="dlib"))


def refuses_writes(folder: Path) -> bool:
    """Return whether writing into ``folder`` fails (a read-only folder; root ignores the mode bits)."""
    try:
        (folder / ".probe").write_bytes(b"")
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 24, crf: int = 14, rotation: int | None = None) -> Path:
    """Write BGR ``frames`` as an H.264 clip at ``path`` (one frame per tick), with a display ``rotation`` if given."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@contextlib.contextmanager
def serve_flaky_camera(video: Path, folder: Path) -> Iterator[str]:
    """Serve ``video`` as MPEG-TS from an HTTP camera on 127.0.0.1 twice, then 404 (it never comes back); yield its URL.

    A run reconnects once and then ends lost (exit 4), having read the clip twice.
    """
    import av

    clip = folder / f"{video.stem}.cam.ts"
    with av.open(str(video)) as source, av.open(str(clip), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.codec_context.time_base = Fraction(1, 25)
        decoded = source.streams.video[0]
        stream.width, stream.height = decoded.codec_context.width, decoded.codec_context.height
        stream.pix_fmt = "yuv420p"
        for index, frame in enumerate(source.decode(decoded)):
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    body = clip.read_bytes()
    served = [0]

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served[0] += 1
            if served[0] > 2:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cam.ts"
    finally:
        server.shutdown()

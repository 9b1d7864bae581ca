"""Folder jobs on a local Ray cluster (``--engine ray``): the same bytes and reports as a local job, a worker killed
mid-file losing nothing, a resumed job skipping what is done, streams as actors.

One Ray cluster of 2 CPUs (``ray.init(num_cpus=2)``) serves the module; the job joins it. The job crossing
two raylets is in test_distributed_nodes.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from condanon.cli import _stream_names, main
from condanon.distributed.results import decode
from condanon.errors import CondanonError
from conftest import serve_flaky_camera, under_ci

pytestmark = [pytest.mark.ray]

PHOTOS = ("astronaut.jpg", "couple.jpg", "messi5.jpg")
CLIP = "single_face.mp4"
VOLATILE = {"timings_ms", "output", "fps", "seconds", "elapsed_s", "started", "finished", "wall_time"}


def import_ray() -> Any:
    """Return the ray module; skip without it, except under CI (which installs the ray extra)."""
    if under_ci():
        import ray

        return ray
    return pytest.importorskip("ray", reason='the Ray engine needs Ray (pip install "condanon[ray]")')


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = import_ray()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def inputs(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three shared photos, a shared clip and a file that is not an image."""
    folder = tmp_path_factory.mktemp("inputs")
    for name in PHOTOS:
        shutil.copy(data / "scenes" / name, folder / name)
    shutil.copy(data / "video" / CLIP, folder / CLIP)
    (folder / "bad.png").write_bytes(b"not a picture at all")
    return folder


@pytest.fixture(scope="module")
def local(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The local job's outputs and report (two worker processes), for the Ray job to match."""
    out = tmp_path_factory.mktemp("local")
    status = main(["anonymize", str(inputs), "-o", str(out / "out"), "--report", str(out / "r.json"), "-q"])
    assert status == 1  # bad.png
    return out / "out", json.loads((out / "r.json").read_text())


def steady(value: Any) -> Any:
    """Return a report without what differs from run to run (timings, output places)."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def outputs(folder: Path) -> dict[str, bytes]:
    """Return every file a job wrote in ``folder`` (not its state files), by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def ray_job(inputs: Path, out: Path, report: Path, *more: str) -> int:
    return main(["anonymize", str(inputs), "-o", str(out), "--engine", "ray", "--workers", "2",
                 "--report", str(report), "-q", *more])  # fmt: skip


@pytest.mark.slow
def test_a_ray_job_writes_the_bytes_and_reports_of_a_local_job_and_resumes(
    ray_cluster: Any,
    inputs: Path,
    local: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local_out, local_report = local
    out = tmp_path / "out"
    assert ray_job(inputs, out, tmp_path / "r.json") == 1  # bad.png fails; the others go through
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("condanon: error:")]
    assert len(errors) == 1 and "bad.png" in errors[0] and "not an image" in errors[0]
    written = outputs(out)
    expected = outputs(local_out)
    assert set(written) == set(expected) == {*PHOTOS, CLIP, "single_face.tracks.json", "single_face.boxes.csv"}
    for name in (*PHOTOS, CLIP, "single_face.boxes.csv"):
        assert written[name] == expected[name], name  # byte for byte, images and the encoded clip
    report = json.loads((tmp_path / "r.json").read_text())
    assert steady(report["results"]) == steady(local_report["results"])  # every face's report, in the inputs' order
    assert report["faces"] == local_report["faces"] >= 4 and report["tracks"] == local_report["tracks"] >= 1
    assert report["engine"] | {"nodes": len(report["engine"]["nodes"])} == {
        "name": "ray", "workers": 2, "cpus_per_worker": 1, "nodes": 1
    }  # fmt: skip
    assert not [p for p in out.iterdir() if "partial" in p.name or p.name.endswith(".tmp")]

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert ray_job(inputs, out, tmp_path / "again.json") == 1  # resumed: only bad.png is tried again
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["skipped"] == 4 and again["failed"] == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in written} == {
        name: mtimes[name] for name in written
    }


def _processes(title: str) -> list[int]:
    """Return the ids of the processes whose command line starts with ``title`` (Ray names its workers so)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if command.startswith(title.encode()):
                found.append(int(entry))
    return found


def _kill_when(title: str, ready: Any, killed: list[int], timeout: float = 120.0) -> threading.Thread:
    """Start a thread that SIGKILLs the first process titled ``title`` once ``ready()`` holds."""

    def run() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = _processes(title)
            if found and ready():
                time.sleep(0.3)
                os.kill(found[0], signal.SIGKILL)
                killed.append(found[0])
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_worker_killed_mid_file_loses_nothing(
    ray_cluster: Any, inputs: Path, local: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    local_out, _ = local
    out = tmp_path / "out"
    killed: list[int] = []
    # an image actor, once the first output is written: it is then working on the next file
    image_killer = _kill_when("ray::MapWorker(MapBatches(ImageWorker", lambda: any(out.glob("*.jpg")), killed)
    # the video task's worker, a second into the clip
    started = time.monotonic()
    video_killer = _kill_when("ray::_run_one", lambda: time.monotonic() - started > 1.0, killed)
    assert ray_job(inputs, out, tmp_path / "r.json") == 1  # bad.png only
    image_killer.join(1)
    video_killer.join(1)
    assert len(killed) == 2, "both workers were killed mid-job"
    written, expected = outputs(out), outputs(local_out)
    for name in (*PHOTOS, CLIP):
        assert written[name] == expected[name], name
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed"] == 1 and report["skipped"] == 0
    assert not [p for p in out.iterdir() if "partial" in p.name or p.name.endswith(".tmp")]


@pytest.mark.slow
def test_streams_run_as_actors_one_each(ray_cluster: Any, data: Path, tmp_path: Path) -> None:
    clip = data / "video" / CLIP
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    out, report_file = tmp_path / "live", tmp_path / "r.json"
    with serve_flaky_camera(clip, tmp_path / "a") as first, serve_flaky_camera(clip, tmp_path / "b") as second:
        status = main(["anonymize", first, second, "-o", str(out), "--engine", "ray", "--method", "blur",
                       "--reconnect", "2", "--reconnect-wait", "0.05", "--report", str(report_file), "-q"])  # fmt: skip
    assert status == 4  # both cameras went away for good: lost, their files finished
    names = sorted(p.name for p in out.glob("*.mp4"))
    assert len(names) == 2 and all(name.startswith("127.0.0.1_") for name in names)
    report = json.loads(report_file.read_text())
    assert report["streams"] == 2 and [r["frames_written"] for r in report["results"]] == [144, 144]
    assert all(r["lost"] for r in report["results"])
    assert not list(out.glob(".*partial*"))


def test_stream_names_are_file_names_of_their_own() -> None:
    names = _stream_names(
        ["rtsp://cam1/live", "rtsp://cam1/live?x=1", "http://10.0.0.5:8080/a b", "camera:0", "rtsp://cam1/live"]
    )
    assert names == ["cam1_live", "cam1_live_x_1", "10.0.0.5_8080_a_b", "camera_0", "cam1_live_2"]


def test_workers_share_the_cluster_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import condanon.distributed.cluster as cluster

    class FakeRay:
        @staticmethod
        def nodes() -> list[dict[str, Any]]:
            return [{"Alive": True, "Resources": {"CPU": 4.0}}, {"Alive": True, "Resources": {"CPU": 2.0}},
                    {"Alive": False, "Resources": {"CPU": 64.0}}]  # fmt: skip

    monkeypatch.setattr(cluster, "import_ray", lambda: FakeRay)
    place = cluster.Cluster.placement
    this = object.__new__(cluster.Cluster)
    assert place(this) == cluster.Placement(workers=6, cpus=1, nodes=2)  # one per CPU of the live nodes
    assert place(this, workers=2) == cluster.Placement(workers=2, cpus=3, nodes=2)
    assert place(this, workers=1) == cluster.Placement(workers=1, cpus=4, nodes=2)  # at most one node's worth
    assert place(this, cpus=2) == cluster.Placement(workers=3, cpus=2, nodes=2)
    with pytest.raises(CondanonError, match="fits on no node"):
        place(this, cpus=8)
    with pytest.raises(CondanonError, match="at least 1"):
        place(this, workers=0)


def test_streams_and_files_do_not_mix_and_an_engine_is_named_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["anonymize", "rtsp://127.0.0.1:9/x", "a.jpg", "-o", str(tmp_path), "--engine", "ray"]) == 2
    assert "streams and files go to separate runs" in capsys.readouterr().err
    assert main(["anonymize", "a.jpg", "-o", str(tmp_path), "--engine", "local", "--ray-address", "auto"]) == 2
    assert "--ray-address is for --engine ray" in capsys.readouterr().err


@pytest.mark.slow
def test_a_file_whose_worker_dies_on_every_try_is_that_files_error(
    ray_cluster: Any, data: Path, tmp_path: Path
) -> None:
    import numpy as np

    from condanon.distributed.images import RETRIES, Attempts, ImageWorker

    attempts = ray_cluster.remote(Attempts).remote()
    for _ in range(RETRIES + 1):  # four tries of file 0 started, and each time its worker died
        ray_cluster.get(attempts.start.remote(0))
    worker = ImageWorker({"method": "blur"}, threads=1, level=30, keep_metadata=False, attempts=attempts)
    photo = data / "scenes" / "astronaut.jpg"
    rows = worker({"index": np.array([0, 1]), "source": np.array([str(photo)] * 2),
                   "target": np.array([str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")])})  # fmt: skip
    first, second = (decode(text) for text in rows["outcome"])
    assert first.error is not None and "died 4 times" in first.error and first.report is None
    assert not (tmp_path / "a.jpg").exists()  # not tried a fifth time
    assert second.error is None and len(second.report["faces"]) == 1 and (tmp_path / "b.jpg").is_file()


@pytest.mark.slow
def test_the_sdk_runs_images_and_videos_on_the_cluster(
    ray_cluster: Any, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from condanon.distributed import RayEngine, VideoItem, VideoJob

    monkeypatch.chdir(tmp_path)  # names relative to a folder the cluster's workers were not started in
    here = Path(os.path.relpath(inputs, tmp_path))
    options = {"method": "blur", "seed": 0}
    with RayEngine(workers=2) as engine:  # joins the module's cluster, and leaves it running
        pairs = [(here / "astronaut.jpg", Path("a.jpg")), (here / "bad.png", Path("bad.png"))]
        images = {done.index: done for done in engine.images(pairs, options)}
        clip = VideoItem(str(here / CLIP), Path("clip.mp4"))
        videos = list(engine.videos([clip], VideoJob(options)))
    assert ray_cluster.is_initialized()
    assert len(images[0].outcome.report["faces"]) == 1 and images[0].node
    assert "not an image" in images[1].outcome.error and not (tmp_path / "bad.png").exists()
    report = videos[0].outcome.report
    assert report["frames_written"] == 72 and len(report["tracks"]) == 1
    assert (tmp_path / "clip.mp4").is_file() and (tmp_path / "clip.tracks.json").is_file()
    assert (tmp_path / "clip.boxes.csv").is_file()

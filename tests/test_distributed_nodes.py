"""A Ray job that crosses nodes: a head raylet and a second raylet started on this machine (``ray start --head``, then
``ray start --address``), one CPU each, and ``condanon anonymize --ray-address`` run against them as a separate process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import under_ci

pytestmark = [pytest.mark.slow, pytest.mark.ray]

PHOTOS = ("astronaut.jpg", "messi5.jpg", "two_people.jpg", "t1.jpg")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


TOKEN = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
"""Every process of the cluster, and the job joining it, holds the cluster's token (Ray's token authentication)."""


def _ray(*args: str) -> subprocess.CompletedProcess[str]:
    ray = Path(sys.executable).with_name("ray")
    return subprocess.run(
        [str(ray), *args], capture_output=True, text=True, timeout=120, check=False, env=os.environ | TOKEN
    )


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[str]:
    """A Ray cluster of two raylets on this machine (1 CPU each); yield its address."""
    if not Path(sys.executable).with_name("ray").is_file():
        if under_ci():
            pytest.fail("the ray command is missing under CI (the test extra installs ray[data])")
        pytest.skip('the ray command is missing (pip install "condanon[ray]")')
    address = f"127.0.0.1:{_free_port()}"
    head = _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", address.split(":")[1],
                "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats")  # fmt: skip
    assert head.returncode == 0, head.stderr[-2000:]
    try:
        second = _ray("start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                      "--disable-usage-stats")  # fmt: skip
        assert second.returncode == 0, second.stderr[-2000:]
        yield address
    finally:
        _ray("stop", "--force")


def test_a_job_runs_on_both_nodes_with_the_bytes_of_a_local_job(two_nodes: str, data: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in PHOTOS:
        shutil.copy(data / "scenes" / name, inputs / name)
    condanon = [sys.executable, "-m", "condanon", "anonymize", str(inputs), "-q"]
    env = os.environ | TOKEN
    run = subprocess.run(
        [*condanon, "-o", str(tmp_path / "ray"), "--ray-address", two_nodes, "--workers", "2",
         "--report", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["engine"]["workers"] == 2 and report["engine"]["cpus_per_worker"] == 1
    assert len(report["engine"]["nodes"]) == 2  # one worker per raylet: the job really crossed nodes
    local = subprocess.run([*condanon, "-o", str(tmp_path / "local")], capture_output=True, text=True, timeout=300,
                           check=False)  # fmt: skip
    assert local.returncode == 0, local.stderr[-3000:]
    for name in PHOTOS:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name

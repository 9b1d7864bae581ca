"""The HTTP service (`condanon.serve`) through an ASGI test client, on real shared photos and a clip.

Each test builds its own app on a fresh state folder; the models under it are loaded once per process.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import imread, under_ci

if under_ci():
    import fastapi  # noqa: F401  # CI installs the serve extra: its absence is a failure there
else:
    pytest.importorskip("fastapi", reason='the service needs the serve extra: pip install "condanon[serve]"')
from fastapi.testclient import TestClient

from condanon import Anonymizer
from condanon.errors import ConfigError
from condanon.imageio import encode_image
from condanon.serve import ServeConfig, create_app
from condanon.serve.auth import KeyRing
from condanon.serve.config import read_key_file
from condanon.serve.engine import Engine
from condanon.serve.errors import ApiError
from condanon.serve.uploads import sniff

pytestmark = pytest.mark.serve

KEY = "client-key-0123456789"
OTHER = "other-client-key-9876543210"
REVIEWER = "reviewer-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _config(tmp: Path, **overrides: Any) -> ServeConfig:
    settings: dict[str, Any] = {
        "state": tmp / "state",
        "spool": tmp / "spool",
        "api_keys": (KEY, OTHER),
        "reviewer_keys": (REVIEWER,),
        "warm_up": False,
        "workers": 1,
    }
    return ServeConfig(**(settings | overrides))


class Servers:
    """Starts apps with overridden settings on one state folder; `stop` ends one; the rest end with the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: list[TestClient] = []

    def __call__(self, **overrides: Any) -> TestClient:
        client = TestClient(create_app(_config(self.tmp, **overrides)), raise_server_exceptions=False)
        client.__enter__()
        self.running.append(client)
        return client

    def stop(self, client: TestClient) -> None:
        self.running.remove(client)
        client.__exit__(None, None, None)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Servers]:
    servers = Servers(tmp_path)
    yield servers
    for client in list(servers.running):
        servers.stop(client)


def _one_line_error(answer: Any, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert body["error"] and "\n" not in body["error"]
    return str(body["error"])


def _post_image(client: TestClient, path: Path, headers: dict[str, str] | None = AUTH, **fields: str) -> Any:
    with open(path, "rb") as handle:
        files = {"file": (path.name, handle.read(), "image/jpeg" if path.suffix == ".jpg" else "image/png")}
    return client.post("/v1/anonymize", files=files, data=fields, headers=headers)


def _wait(client: TestClient, job_id: str, headers: dict[str, str] = AUTH, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- status and keys -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_health_needs_no_key_and_ready_comes_after_the_models(serve: Any) -> None:
    client = serve(warm_up=True)
    assert client.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the models did not load"
        time.sleep(0.2)
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.get("/openapi.json").json()["paths"]["/v1/anonymize"]["post"]["requestBody"]


def test_every_call_but_health_needs_a_known_key(serve: Any, data: Path) -> None:
    client = serve()
    photo = data / "scenes" / "bbt1.jpg"
    for headers in (None, {"Authorization": "Bearer not-a-key-of-ours-at-all"}, {"Authorization": KEY}):
        answer = _post_image(client, photo, headers=headers)
        assert "API key" in _one_line_error(answer, 401)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    _one_line_error(client.get("/v1/jobs"), 401)
    assert client.get("/v1/jobs", headers=AUTH).status_code == 200
    assert client.get("/").status_code == 200  # the page itself holds no data; its calls need the key


def test_keys_are_matched_whole_and_by_role() -> None:
    ring = KeyRing(("a" * 20,), ("b" * 20,))
    assert ring.caller("Bearer " + "a" * 20).role == "client"  # type: ignore[union-attr]
    assert ring.caller("bearer " + "b" * 20).role == "reviewer"  # type: ignore[union-attr]
    assert ring.caller("Bearer " + "a" * 19) is None
    assert ring.caller("Basic " + "a" * 20) is None
    assert ring.caller("Bearer " + "a" * 21) is None
    owner = ring.caller("Bearer " + "a" * 20).owner  # type: ignore[union-attr]
    assert "a" * 20 not in owner  # jobs are filed under a digest, never the key


def test_keys_come_from_a_file_or_the_environment_and_none_refuses_to_start(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# the service's keys\n" + KEY + "\n" + REVIEWER + " reviewer  # the privacy officer\n\n")
    assert read_key_file(keys) == ((KEY,), (REVIEWER,))
    keys.write_text("short\n")
    with pytest.raises(ConfigError, match="shorter than 16"):
        read_key_file(keys)
    with pytest.raises(ConfigError, match="no API key"):
        ServeConfig(state=tmp_path / "s", spool=tmp_path / "p")


def test_the_command_refuses_to_serve_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from condanon.cli import main

    monkeypatch.delenv("CONDANON_API_KEYS", raising=False)
    monkeypatch.delenv("CONDANON_REVIEWER_KEYS", raising=False)
    assert main(["serve", "--state", str(tmp_path / "s"), "--spool", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no API key" in error[0]


# -- one image --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_served_photo_is_the_sdk_output_changed_only_at_the_faces(serve: Any, data: Path, tmp_path: Path) -> None:
    original = imread(data / "scenes" / "bbt1.jpg")
    png = tmp_path / "bbt1.png"  # lossless, so that pixels outside the faces can be compared exactly
    cv2.imwrite(str(png), original)
    client = serve()
    answer = _post_image(client, png, method="blur")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    served = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
    expected = Anonymizer("blur").anonymize(original)
    assert int(answer.headers["X-Condanon-Faces"]) == len(expected.reports) >= 3
    assert answer.content == encode_image(expected.bgr, ".png")  # the SDK's pixels, encoded as the input was
    changed = np.any(served != original, axis=2)
    inside = np.zeros(changed.shape, bool)
    for report in expected.reports:
        x1, y1, x2, y2 = report.face.box.scaled(1.8).clipped(original.shape[1], original.shape[0]).to_int()
        assert changed[y1:y2, x1:x2].mean() > 0.05, "a face was left as it was"
        inside[y1:y2, x1:x2] = True
    assert not changed[~inside].any(), "pixels away from the faces changed"


@pytest.mark.slow
def test_the_report_on_request_and_no_leak_in_the_served_image(serve: Any, data: Path) -> None:
    from condanon.evaluation.leaks import leaked_faces

    client = serve()
    photo = data / "scenes" / "couple.jpg"
    answer = _post_image(client, photo, report="true")  # the default method: synthetic faces
    assert answer.status_code == 200, answer.text
    body = answer.json()
    faces = body["report"]["faces"]
    assert len(faces) == 2 and all(f["verdict"] in ("anonymized", "fallback") for f in faces)
    assert all(f["attributes_before"]["sex"] in ("male", "female") for f in faces)
    assert all(f["identity"] for f in faces)
    assert "embedding" not in json.dumps(body)  # no identity vectors leave the server
    assert body["image"]["media_type"] == "image/jpeg"
    served = cv2.imdecode(np.frombuffer(base64.b64decode(body["image"]["base64"]), np.uint8), cv2.IMREAD_COLOR)
    original = imread(photo)
    assert served.shape == original.shape
    judged = leaked_faces(original, served)
    assert judged.faces >= 2
    assert judged.leaked_sure == 0  # the leak check's own marginal hits (score < 0.6) are not faces here


def test_analyze_answers_attributes_and_keeps_nothing(serve: Any, data: Path, tmp_path: Path) -> None:
    client = serve()
    with open(data / "scenes" / "couple.jpg", "rb") as handle:
        answer = client.post("/v1/analyze", files={"file": ("c.jpg", handle, "image/jpeg")}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["faces"]) == 2 and (body["width"], body["height"]) == (2280, 1588)
    for face in body["faces"]:
        assert face["attributes"]["sex"] in ("male", "female") and face["attributes"]["emotion"]
        assert 0 < face["attributes"]["age"] < 100
    _post_image(client, data / "scenes" / "bbt1.jpg", method="pixelate")
    written = _files_under(tmp_path / "state") + _files_under(tmp_path / "spool")
    assert all(name.startswith("jobs.sqlite") for name in written), written  # no pixels stored


def test_bad_requests_get_a_4xx_and_one_line(serve: Any, data: Path, tmp_path: Path) -> None:
    client = serve(max_upload_bytes=400_000, max_pixels=1_000_000)
    bbt1 = (data / "scenes" / "bbt1.jpg").read_bytes()  # 292 KB, 1366x768 = 1.05 MP
    text = b"name,age\nalice,30\n" * 10

    def post(*, files: Any = None, **kwargs: Any) -> Any:
        return client.post("/v1/anonymize", files=files, headers=AUTH, **kwargs)

    assert "not an image" in _one_line_error(post(files={"file": ("x.jpg", text, "image/jpeg")}), 415)
    assert "text/csv" in _one_line_error(post(files={"file": ("x.csv", text, "text/csv")}), 415)
    assert "multipart" in _one_line_error(post(json={"file": "x"}), 415)
    assert "'file'" in _one_line_error(post(files={"other": ("x.jpg", bbt1, "image/jpeg")}), 400)
    assert "MP limit" in _one_line_error(post(files={"file": ("bbt1.jpg", bbt1, "image/jpeg")}), 413)
    small = cv2.imencode(".jpg", imread(data / "scenes" / "bbt1.jpg")[:300, :300])[1].tobytes()
    cut = small[: len(small) // 2]
    assert "truncated" in _one_line_error(post(files={"file": ("cut.jpg", cut, "image/jpeg")}), 422)
    assert "method" in _one_line_error(post(files={"file": ("s.jpg", small)}, data={"method": "deepfake"}), 400)
    assert "seed" in _one_line_error(post(files={"file": ("s.jpg", small)}, data={"seed": "x1"}), 400)
    assert "report" in _one_line_error(post(files={"file": ("s.jpg", small)}, data={"report": "maybe"}), 400)
    big = bbt1 + b"\0" * 200_000
    assert "MiB limit" in _one_line_error(post(files={"file": ("big.jpg", big, "image/jpeg")}), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it comes
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="b.jpg"\r\n\r\n'
        for _ in range(10):
            yield big[:100_000]

    chunked = client.post(
        "/v1/anonymize", content=chunks(), headers=AUTH | {"Content-Type": "multipart/form-data; boundary=xyz"}
    )
    assert "MiB limit" in _one_line_error(chunked, 413)
    _one_line_error(client.get("/v1/nothing-here", headers=AUTH), 404)
    _one_line_error(client.get("/v1/anonymize", headers=AUTH), 405)
    _one_line_error(client.get("/v1/jobs/0123456789abcdef", headers=AUTH), 404)


def test_a_full_queue_answers_503_with_retry_after(serve: Any, data: Path) -> None:
    client = serve(workers=1, queue=1)
    photo = data / "scenes" / "bbt1.jpg"
    give_back = client.app.state.engine.hold()  # type: ignore[attr-defined]
    try:
        answer = _post_image(client, photo, method="blur")
        assert "busy" in _one_line_error(answer, 503)
        assert int(answer.headers["Retry-After"]) >= 1
    finally:
        give_back()
    assert _post_image(client, photo, method="blur").status_code == 200


@pytest.mark.slow
def test_sixteen_concurrent_requests_are_all_answered(serve: Any, data: Path) -> None:
    client = serve(workers=1, queue=3)
    photo = cv2.imencode(".jpg", imread(data / "scenes" / "bbt1.jpg"))[1].tobytes()
    statuses: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def call() -> None:
        answer = client.post("/v1/anonymize", files={"file": ("b.jpg", photo)}, data={"method": "blur"}, headers=AUTH)
        with lock:
            statuses.append((answer.status_code, answer.headers.get("Retry-After")))

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(statuses) == 16
    assert all(code == 200 or (code == 503 and retry) for code, retry in statuses), statuses
    assert any(code == 200 for code, _ in statuses)


def test_a_request_past_its_timeout_is_504() -> None:
    import asyncio

    engine = Engine(workers=1, queue=0, timeout=0.05)

    async def request() -> None:
        async with engine.admit() as place:
            await engine.run(place, time.sleep, 0.5)

    try:
        with pytest.raises(ApiError) as caught:
            asyncio.run(request())
        assert caught.value.status == 504
        with pytest.raises(ApiError) as refused:  # the work outlives its request and keeps its place
            asyncio.run(request())
        assert refused.value.status == 503
        time.sleep(0.6)
        with pytest.raises(ApiError) as again:
            asyncio.run(request())
        assert again.value.status == 504
    finally:
        engine.close()


def test_cors_is_off_unless_an_origin_is_allowed(serve: Any) -> None:
    preflight = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    closed = serve()
    assert "access-control-allow-origin" not in closed.options("/v1/anonymize", headers=preflight).headers
    opened = serve(cors_origins=("https://dash.example",))
    answer = opened.options("/v1/anonymize", headers=preflight)
    assert answer.headers["access-control-allow-origin"] == "https://dash.example"


def test_content_is_told_from_its_first_bytes() -> None:
    assert sniff(b"\xff\xd8\xff\xe0" + b"\0" * 20) == "image/jpeg"
    assert sniff(b"\x89PNG\r\n\x1a\n" + b"\0" * 20) == "image/png"
    assert sniff(b"\0\0\0\x18ftypmp42" + b"\0" * 20) == "video/mp4"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert sniff(b"<html><body>") is None and sniff(b"") is None


# -- jobs -------------------------------------------------------------------------------------------


def _upload_job(client: TestClient, paths: list[Path], headers: dict[str, str] = AUTH, **fields: str) -> Any:
    files = [("file", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    return client.post("/v1/jobs", files=files, data=fields, headers=headers)


@pytest.mark.slow
def test_an_uploaded_job_runs_to_its_result_and_its_inputs_are_deleted(serve: Any, data: Path, tmp_path: Path) -> None:
    client = serve()
    photos = [data / "scenes" / "bbt1.jpg", data / "scenes" / "couple.jpg"]
    answer = _upload_job(client, photos, method="blur")
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert answer.headers["Location"] == f"/v1/jobs/{job_id}"
    job = _wait(client, job_id)
    assert job["status"] == "done" and job["progress"]["fraction"] == 1.0
    assert job["summary"]["inputs"] == 2 and job["summary"]["failed"] == 0 and job["summary"]["faces"] >= 5
    assert _files_under(tmp_path / "spool") == []  # the uploaded originals are gone
    files = client.get(f"/v1/jobs/{job_id}/files", headers=AUTH).json()["files"]
    assert files == ["out/bbt1.jpg", "out/couple.jpg", "report.json"]
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/v1/jobs/{job_id}/result", headers=AUTH).content))
    assert sorted(archive.namelist()) == files
    served = cv2.imdecode(np.frombuffer(archive.read("out/bbt1.jpg"), np.uint8), cv2.IMREAD_COLOR)
    expected = Anonymizer("blur").anonymize(imread(photos[0]))
    assert archive.read("out/bbt1.jpg") == encode_image(expected.bgr, ".jpg")
    assert served.shape == expected.image.shape
    assert str(tmp_path) not in archive.read("report.json").decode()  # no server folder is named to clients
    report = json.loads(archive.read("report.json"))
    assert [r["output"] for r in report["results"]] == ["out/bbt1.jpg", "out/couple.jpg"]
    assert [len(r["faces"]) for r in report["results"]] == [len(expected.reports), 2]
    # another client's key does not see it; the reviewer's does
    assert client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {OTHER}"}).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {REVIEWER}"}).status_code == 200
    assert client.delete(f"/v1/jobs/{job_id}", headers=AUTH).status_code == 204
    _one_line_error(client.get(f"/v1/jobs/{job_id}", headers=AUTH), 404)
    assert _files_under(tmp_path / "state" / "results") == []


def test_a_bad_file_in_a_job_is_reported_not_a_failed_job(serve: Any, data: Path, tmp_path: Path) -> None:
    client = serve()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((data / "scenes" / "bbt1.jpg").read_bytes()[:30000])
    job = _wait(client, _upload_job(client, [broken, data / "scenes" / "couple.jpg"], method="blur").json()["id"])
    assert job["status"] == "done"
    assert job["summary"]["failed"] == 1 and "broken.jpg" in job["summary"]["errors"][0]
    files = client.get(f"/v1/jobs/{job['id']}/files", headers=AUTH).json()["files"]
    assert files == ["out/couple.jpg", "report.json"]


@pytest.mark.slow
def test_path_jobs_stay_inside_the_root(serve: Any, data: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "couple.jpg").write_bytes((data / "scenes" / "couple.jpg").read_bytes())
    (root / "escape").symlink_to(data / "scenes", target_is_directory=True)
    (root / "inner").mkdir()
    (root / "inner" / "away").symlink_to(data / "scenes", target_is_directory=True)
    assert "off" in _one_line_error(serve().post("/v1/jobs", json={"path": "photos"}, headers=AUTH), 403)
    client = serve(root=root)

    def job(path: str) -> Any:
        return client.post("/v1/jobs", json={"path": path, "method": "blur"}, headers=AUTH)

    for outside in ("../", "/etc", "photos/../../", "escape", str(data / "scenes"), "inner"):
        assert "outside" in _one_line_error(job(outside), 403), outside
    _one_line_error(job("photos/none.jpg"), 404)
    answer = job("photos")
    assert answer.status_code == 202, answer.text
    done = _wait(client, answer.json()["id"])
    assert done["status"] == "done" and done["summary"]["faces"] == 2 and done["inputs"] == ["photos"]
    original = f"/v1/jobs/{done['id']}/originals/{root / 'photos' / 'couple.jpg'}"
    assert "reviewer" in _one_line_error(client.get(original, headers=AUTH), 403)
    shown = client.get(original, headers={"Authorization": f"Bearer {REVIEWER}"})
    assert shown.status_code == 200 and shown.content == (root / "photos" / "couple.jpg").read_bytes()


@pytest.mark.slow
def test_a_job_left_running_by_a_stopped_server_resumes_at_the_next_start(
    serve: Any, data: Path, tmp_path: Path
) -> None:
    first = serve(run_jobs=False)
    photos = [data / "scenes" / "bbt1.jpg", data / "scenes" / "couple.jpg"]
    job_id = _upload_job(first, photos, method="blur").json()["id"]
    assert first.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["status"] == "queued"
    serve.stop(first)  # the server stops ...
    with sqlite3.connect(tmp_path / "state" / "jobs.sqlite") as db:  # ... while its job ran
        db.execute("UPDATE jobs SET status = 'running' WHERE id = ?", (job_id,))
    second = serve()
    job = _wait(second, job_id)
    assert job["status"] == "done" and job["summary"]["inputs"] == 2 and job["summary"]["failed"] == 0
    files = second.get(f"/v1/jobs/{job_id}/files", headers=AUTH).json()["files"]
    assert files == ["out/bbt1.jpg", "out/couple.jpg", "report.json"]


@pytest.mark.slow
def test_results_expire(serve: Any, data: Path, tmp_path: Path) -> None:
    client = serve(result_ttl=0.5)
    job = _wait(client, _upload_job(client, [data / "scenes" / "couple.jpg"], method="blur").json()["id"])
    assert job["status"] == "done"
    deadline = time.monotonic() + 10
    while client.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()["status"] != "expired":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "expired" in _one_line_error(client.get(f"/v1/jobs/{job['id']}/result", headers=AUTH), 410)
    assert _files_under(tmp_path / "state" / "results") == []


def test_job_uploads_are_checked_before_they_are_queued(serve: Any, data: Path, tmp_path: Path) -> None:
    client = serve(max_video_seconds=1.0, max_files=2)
    clip = data / "video" / "single_face.mp4"  # 2.4 s
    assert "limit" in _one_line_error(_upload_job(client, [clip]), 413)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    assert "not an image" in _one_line_error(_upload_job(client, [text]), 415)
    three = [data / "scenes" / name for name in ("bbt1.jpg", "couple.jpg", "messi5.jpg")]
    assert "more than 2 files" in _one_line_error(_upload_job(client, three), 413)
    assert _files_under(tmp_path / "spool") == []
    assert client.get("/v1/jobs", headers=AUTH).json()["jobs"] == []


@pytest.mark.slow
@pytest.mark.video
def test_a_video_job_with_passenger_analytics(serve: Any, data: Path) -> None:
    client = serve()
    answer = _upload_job(client, [data / "video" / "single_face.mp4"], method="blur", analytics="true")
    assert answer.status_code == 202, answer.text
    job = _wait(client, answer.json()["id"])
    assert job["status"] == "done", job
    files = client.get(f"/v1/jobs/{job['id']}/files", headers=AUTH).json()["files"]
    assert "out/single_face.mp4" in files and "analytics/counts.json" in files
    assert any(name.startswith("analytics/") and name.endswith(".png") for name in files)
    videos = client.get(f"/v1/jobs/{job['id']}/analytics", headers=AUTH).json()["videos"]
    assert len(videos) == 1 and videos[0]["counts"]["people"] == 1 and videos[0]["plots"]
    table = client.get(f"/v1/jobs/{job['id']}/analytics?format=csv", headers=AUTH)
    assert table.headers["content-type"].startswith("text/csv")
    header, *rows = table.text.splitlines()
    assert header.startswith("video,person,") and len(rows) == 1


@pytest.mark.slow
@pytest.mark.parametrize("threads", [False, True], ids=["processes", "threads"])
def test_concurrent_requests_give_the_bytes_of_one_at_a_time(serve: Any, data: Path, threads: bool) -> None:
    """Two workers (processes, or threads sharing one set of models): the synthetic faces drawn at once are those
    drawn one by one, in this process (every choice is seeded by the image)."""
    client = serve(workers=2, threads=threads, warm_up=True)
    photos = [data / "scenes" / name for name in ("messi5.jpg", "astronaut.jpg")] * 2
    answers: dict[int, bytes] = {}

    def call(index: int) -> None:
        answers[index] = _post_image(client, photos[index]).content

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(photos))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    alone = Anonymizer(method="synthetic")
    for index, photo in enumerate(photos):
        expected = encode_image(alone.anonymize(imread(photo)).bgr, ".jpg")
        assert answers[index] == expected, photo.name


@pytest.mark.slow
def test_a_worker_process_that_dies_costs_one_request_not_the_server(serve: Any, data: Path) -> None:
    import os
    import signal

    client = serve(workers=2, warm_up=True)
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    photo = data / "scenes" / "messi5.jpg"
    executor = client.app.state.engine._executor  # type: ignore[attr-defined]
    victim = next(iter(executor._processes))
    os.kill(victim, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    time.sleep(0.5)
    answers = [_post_image(client, photo, method="blur") for _ in range(3)]
    codes = [answer.status_code for answer in answers]
    assert codes.count(500) <= 1 and codes[-1] == 200, codes
    if 500 in codes:
        assert "restarted" in _one_line_error(answers[codes.index(500)], 500)
    assert victim not in client.app.state.engine._executor._processes  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.video
def test_deleting_a_running_job_stops_it_and_leaves_nothing(serve: Any, data: Path, tmp_path: Path) -> None:
    client = serve()
    job_id = _upload_job(client, [data / "video" / "face_noface.mov"], method="blur").json()["id"]
    deadline = time.monotonic() + 120
    while client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["progress"]["frames_done"] < 2:
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.1)
    assert client.delete(f"/v1/jobs/{job_id}", headers=AUTH).status_code == 204
    deadline = time.monotonic() + 30
    while _files_under(tmp_path / "state" / "results") or client.app.state.runner._current:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the job's process went on"
        time.sleep(0.1)
    assert _files_under(tmp_path / "spool") == []
    _one_line_error(client.get(f"/v1/jobs/{job_id}", headers=AUTH), 404)


def test_a_job_whose_uploads_are_gone_fails_in_one_line(serve: Any, data: Path, tmp_path: Path) -> None:
    first = serve(run_jobs=False)
    job_id = _upload_job(first, [data / "scenes" / "couple.jpg"], method="blur").json()["id"]
    serve.stop(first)
    for spooled in (tmp_path / "spool").rglob("*.jpg"):  # as after a reboot, with the spool in memory
        spooled.unlink()
    job = _wait(serve(), job_id)
    assert job["status"] == "failed" and "upload them again" in job["error"] and "\n" not in job["error"]

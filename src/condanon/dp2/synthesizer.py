"""The ``dp2`` method: DeepPrivacy2's generator inpaints each face, conditioned by condanon's checks.

For each face:
1. the detection box is grown by the feather width, then expanded, cropped and resized by DP2's own
   conventions (`condanon.dp2.crops`); the grown box is the region the generator fills;
2. candidates are latents drawn from the seeded generator: the first is DP2's default (truncation 0,
   i.e. ``w_avg``), the others use ``truncation`` toward a random z, or toward one of the checkpoint's
   k-means centres when it has them (multi-modal truncation); they are generated in batches;
3. each candidate is resized back and pasted with a feathered edge (DP2 hard-copies the box, which shows
   seams): fully generated over the detection box, fading to the surrounding pixels over the band;
4. each is checked on the final pixels like every synthesis backend (`CheckedSynthesizer`): identity
   below the in-loop threshold minus a margin, attributes read the same, still a face. The best passing
   candidate of the first batch with one is kept;
5. with ``steps``, when no sampled candidate passed, the best one's ``w`` takes that many gradient steps
   (Adam) on `Guide.loss` (differentiable SFace, its age/sex probes and the emotion model, on the
   generator's crop), and the result is checked as one more candidate;
6. if none passes, the closest safe one is kept (its drift reported), or the face gets the fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..identity import Embedder
from ..synthesis.backend import CheckedSynthesizer, Goal, LoopChecks, Synthesis, paste
from ..types import Box, Face
from .checkpoint import checkpoint_path, load_generator
from .crops import (
    crop,
    expand_box,
    generation_mask,
    latent_from_seed,
    to_generator_input,
)
from .generator import CONFIGS, FaceGenerator, GeneratorConfig
from .guidance import Guide

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Latent:
    """How one candidate's latent is drawn: DP2's seed convention, the truncation, the centre if any."""

    z_idx: int
    truncation: float
    center: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready record (enough to redraw the candidate)."""
        return {"z_idx": self.z_idx, "truncation": self.truncation} | (
            {} if self.center is None else {"center": self.center}
        )


class DP2Identity:
    """A kept DP2 candidate: its latent ``w``, generated again on any frame's face box (`SynthesisIdentity`).

    Video gives a track one latent and renders it on every frame from that frame's box, so the person keeps
    one synthetic look while the generator follows the pose and light of each frame. It costs a generator
    pass per face per frame (about a second at 256 px on 2 cores): an offline method for archives.
    """

    def __init__(self, synthesizer: DP2Synthesizer, w: torch.Tensor) -> None:
        self.synthesizer = synthesizer
        self.w = w.detach().clone()

    def render(self, output: np.ndarray, face: Face, rng: np.random.Generator) -> None:
        """Generate the latent on ``face``'s box of ``output`` and paste it there with the feathered edge."""
        generator = self.synthesizer.generator
        region = self.synthesizer.region(face.box, output.shape[:2], generator.config.resolution)
        condition, mask = region.inputs(output)
        image = self.synthesizer.render(generator, condition, mask, self.w, region)[0]
        paste(output, region.blend(output, image), region.bounds, (0, 0))


DEFAULT_CANDIDATES = 4
"""A DP2 candidate costs a generator pass (about 1 s on 2 cores), so fewer are tried than the prototype loop's 6."""


class DP2Synthesizer(CheckedSynthesizer):
    """Replaces faces with DeepPrivacy2's inpainting, sampled and checked by condanon's loop.

    Args (besides `CheckedSynthesizer`'s: the embedder, `LoopChecks`, the still-a-face detector and the final gate):
        weights: ``"fdf256"`` or ``"fdf128"`` (the official checkpoints, md5-checked in torch hub's
            folder) or the path of a checkpoint file. Checked when the synthesizer is made; loaded on first use.
        config: the generator configuration of a checkpoint file that does not say it.
        truncation: how far candidates after the first move from the average latent toward a random one (0 to 1).
        batch: candidates generated per forward pass (1 is the fastest per face on a 2-core CPU: docs/dp2.md).
        feather: width of the blended band around the detection box, as a fraction of the box's longer side.
        steps: gradient steps on the best candidate's ``w`` when no sampled candidate passed (0: none).
            Each costs a generator forward and backward pass (about 3 s at 256 px on 2 cores).
        step_size: Adam's learning rate for those steps.
    """

    def __init__(
        self,
        embedder: Embedder,
        checks: LoopChecks | None = None,
        detect: Any | None = None,
        final: Any | None = None,
        *,
        weights: str | Path = "fdf256",
        batch: int = 1,
        truncation: float = 0.5,
        feather: float = 0.08,
        config: GeneratorConfig | None = None,
        steps: int = 0,
        step_size: float = 0.05,
    ) -> None:
        super().__init__(embedder, checks or LoopChecks(candidates=DEFAULT_CANDIDATES), detect, final)
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if not 0.0 <= truncation <= 1.0:
            raise ValueError(f"truncation must be between 0 and 1, not {truncation}")
        if not 0.0 <= feather <= 0.5:
            raise ValueError(f"feather must be between 0 and 0.5, not {feather}")
        self.weights = weights
        self.config = config
        self.batch = batch
        self.truncation = truncation
        self.feather = feather
        if steps < 0:
            raise ValueError("steps must be 0 or more")
        self.steps = steps
        self.step_size = step_size
        self._guide: Guide | None = None
        checkpoint_path(weights)  # fail now, with where to get the file, not on the first face

    @property
    def generator(self) -> FaceGenerator:
        """Return the generator (loaded once per process, on first use)."""
        return load_generator(self.weights, self.config)

    @property
    def name(self) -> str:
        """Return the generator's name for reports (``dp2-fdf256`` or the checkpoint's file name)."""
        return f"dp2-{self.weights}" if str(self.weights) in CONFIGS else Path(self.weights).name

    def synthesize(self, original: np.ndarray, output: np.ndarray, face: Face, rng: np.random.Generator) -> Synthesis:
        """Replace ``face`` in ``output`` (in place) by the best passing candidate; say what happened."""
        generator = self.generator
        goal = self.goal(original, face)
        region = self.region(face.box, output.shape[:2], generator.config.resolution)
        condition, mask = region.inputs(output)
        best: tuple[tuple[int, int, int, float], Synthesis, np.ndarray, tuple[int, int, int, int]] | None = None
        attempt = 0
        while attempt < self.candidates:
            latents = [
                self.latent(attempt + i, rng, generator) for i in range(min(self.batch, self.candidates - attempt))
            ]
            for latent, image in zip(latents, self.generate(generator, condition, mask, latents, region)):
                attempt += 1
                patch = region.blend(output, image)
                check = self.check_patch(output, patch, region.bounds, goal, face.attributes)
                outcome = Synthesis(
                    passed=check.passed,
                    attempts=attempt,
                    check=check,
                    latent=latent.to_dict() | {"generator": self.name},
                )
                if best is None or check.score < best[0]:
                    outcome.identity = DP2Identity(self, self.latent_w(generator, [latent]))
                    best = (check.score, outcome, patch, region.bounds)
            assert best is not None
            if best[1].passed:
                paste(output, best[2], region.bounds, (0, 0))
                return best[1]
        assert best is not None
        if self.steps and face.landmarks5 is not None:
            attempt += 1
            outcome, patch = self.refine(generator, best[1], condition, mask, region, face, goal, output, attempt)
            assert outcome.check is not None
            if outcome.check.passed:
                paste(output, patch, region.bounds, (0, 0))
                return outcome
            if outcome.check.score < best[0]:
                best = (outcome.check.score, outcome, patch, region.bounds)
        return self.settle(output, best[1], best[2], best[3], attempts=attempt)

    def refine(
        self,
        generator: FaceGenerator,
        start: Synthesis,
        condition: np.ndarray,
        mask: np.ndarray,
        region: FaceRegion,
        face: Face,
        goal: Goal,
        output: np.ndarray,
        attempt: int,
    ) -> tuple[Synthesis, np.ndarray]:
        """Return candidate ``start`` after `steps` gradient steps on its ``w``, checked, and its patch."""
        if self._guide is None:
            self._guide = Guide()
        size = generator.config.resolution
        scale = size / (region.expanded[2] - region.expanded[0])
        landmarks = (np.asarray(face.landmarks5, np.float64) - region.expanded[:2]) * scale
        target = self._guide.target(landmarks, size, goal.reference, goal.target, goal.limit)
        latent = Latent(start.latent["z_idx"], start.latent["truncation"], start.latent.get("center"))
        w = self.latent_w(generator, [latent]).detach().requires_grad_(True)
        optimiser = torch.optim.Adam([w], lr=self.step_size)
        cond, known = torch.from_numpy(condition), torch.from_numpy(mask)
        losses: list[float] = []
        best_w, best_loss = w.detach().clone(), float("inf")
        for step in range(self.steps + 1):
            last = step == self.steps
            with torch.set_grad_enabled(not last):  # the last latent is only scored: no graph for a backward pass
                loss, readings = self._guide.loss(generator(cond, known, w=w), target)
            losses.append(float(loss.detach()))
            if losses[-1] < best_loss:  # a step can overshoot: keep the best latent seen
                best_w, best_loss = w.detach().clone(), losses[-1]
            if last:
                break
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            optimiser.step()
        image = self.render(generator, condition, mask, best_w, region)[0]
        patch = region.blend(output, image)
        check = self.check_patch(output, patch, region.bounds, goal, face.attributes)
        record = start.latent | {"steps": self.steps, "loss": [round(losses[0], 4), round(best_loss, 4)]}
        log.debug(
            "dp2 steps: loss %s, kept %.3f (last readings %s)", [round(v, 3) for v in losses], best_loss, readings
        )
        identity = DP2Identity(self, best_w)
        return Synthesis(passed=check.passed, attempts=attempt, check=check, latent=record, identity=identity), patch

    def region(self, box: Box, image_hw: tuple[int, int], size: int) -> FaceRegion:
        """Return where ``box``'s face is generated and blended, by DP2's crop conventions."""
        return FaceRegion.around(box, image_hw, size, self.feather)

    def latent(self, index: int, rng: np.random.Generator, generator: FaceGenerator) -> Latent:
        """Return candidate ``index``'s latent: DP2's default (``w_avg``) first, then truncated random ones."""
        z_idx = int(rng.integers(0, 2**32))
        if index == 0:
            return Latent(z_idx, 0.0)
        centers = generator.style_net.centers()
        center = None if centers is None else z_idx % int(centers.shape[0])  # DP2's rule for the centre
        return Latent(z_idx, self.truncation, center)

    @staticmethod
    def latent_w(generator: FaceGenerator, latents: list[Latent]) -> torch.Tensor:
        """Return ``w`` ``[N, w_dim]`` for the latents (DP2's seed rule for z, then truncation)."""
        channels = generator.config.z_channels
        z = torch.from_numpy(np.concatenate([latent_from_seed(latent.z_idx, channels) for latent in latents]))
        w = []
        with torch.no_grad():
            for latent, row in zip(latents, z):
                if latent.center is not None:
                    w.append(
                        generator.style_net.multi_modal(row[None], latent.truncation, torch.tensor([latent.center]))
                    )
                else:
                    w.append(generator.truncated(row[None], latent.truncation))
        return torch.cat(w)

    def generate(
        self,
        generator: FaceGenerator,
        condition: np.ndarray,
        mask: np.ndarray,
        latents: list[Latent],
        region: FaceRegion,
    ) -> np.ndarray:
        """Return the candidates as BGR float images of the expanded box's size, values 0-255."""
        return self.render(generator, condition, mask, self.latent_w(generator, latents), region)

    @staticmethod
    @torch.inference_mode()
    def render(
        generator: FaceGenerator, condition: np.ndarray, mask: np.ndarray, w: torch.Tensor, region: FaceRegion
    ) -> np.ndarray:
        """Return the generator's images for latents ``w`` as BGR float images of the expanded box's size (0-255)."""
        n = w.shape[0]
        cond = torch.from_numpy(condition).expand(n, -1, -1, -1)
        known = torch.from_numpy(mask).expand(n, -1, -1, -1)
        image = generator(cond, known, w=w)
        image = ((image + 1) / 2).clamp(0, 1) * 255
        height, width = region.expanded_hw
        image = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
        return image.flip(1).permute(0, 2, 3, 1).numpy()  # RGB -> BGR, channels last


@dataclass
class FaceRegion:
    """One face's generation geometry in frame coordinates.

    ``expanded`` is DP2's crop box (it may stick out of the frame), ``grown`` the region the generator
    fills (the detection box plus the feather band), ``bounds`` that region inside the frame, ``alpha``
    the blend weight over ``bounds`` (1 on the detection box, fading to 0 across the band).
    """

    expanded: tuple[int, int, int, int]
    grown: tuple[int, int, int, int]
    bounds: tuple[int, int, int, int]
    alpha: np.ndarray
    size: int

    @classmethod
    def around(cls, box: Box, image_hw: tuple[int, int], size: int, feather: float) -> FaceRegion:
        height, width = image_hw
        band = max(1, round(feather * max(box.width, box.height))) if feather > 0 else 0
        x1, y1, x2, y2 = (round(v) for v in (box.x1, box.y1, box.x2, box.y2))
        grown = (x1 - band, y1 - band, x2 + band, y2 + band)
        expanded = expand_box(grown, image_hw, fdf128_expand=size == 128)
        bounds = (max(grown[0], 0), max(grown[1], 0), min(grown[2], width), min(grown[3], height))
        if bounds[2] <= bounds[0] or bounds[3] <= bounds[1]:
            raise ValueError("the face lies outside the image")
        inside = np.zeros((bounds[3] - bounds[1], bounds[2] - bounds[0]), np.uint8)
        inside[max(y1 - bounds[1], 0) : max(y2 - bounds[1], 0), max(x1 - bounds[0], 0) : max(x2 - bounds[0], 0)] = 1
        if band:
            distance = cv2.distanceTransform(
                1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE
            )  # 0 on the box, px outside it
            ramp = np.clip(1.0 - distance / band, 0.0, 1.0)
            alpha = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible edge at either end of the band
        else:
            alpha = inside.astype(np.float32)
        return cls(expanded, grown, bounds, alpha.astype(np.float32)[..., None], size)

    @property
    def expanded_hw(self) -> tuple[int, int]:
        x1, y1, x2, y2 = self.expanded
        return y2 - y1, x2 - x1

    def inputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the generator's ``condition`` ``[1, 3, S, S]`` and ``mask`` ``[1, 1, S, S]`` for a BGR ``image``."""
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        pixels = crop(rgb, self.expanded, self.size)
        return to_generator_input(pixels, generation_mask(self.grown, self.expanded, self.size))

    def blend(self, image: np.ndarray, generated: np.ndarray) -> np.ndarray:
        """Return the uint8 patch over ``bounds``: ``generated`` (expanded-box frame) feathered into ``image``."""
        x1, y1, x2, y2 = self.bounds
        ex, ey = self.expanded[0], self.expanded[1]
        new = generated[y1 - ey : y2 - ey, x1 - ex : x2 - ex]
        old = image[y1:y2, x1:x2].astype(np.float32)
        patch: np.ndarray = np.clip(np.rint(self.alpha * new + (1 - self.alpha) * old), 0, 255).astype(np.uint8)
        return patch

"""DeepPrivacy2's face generator (a style-modulated U-Net), written from its published architecture (docs/dp2.md).

The generator inpaints the unknown region (mask 0) of a face crop in [-1, 1], conditioned on the known
pixels and a latent ``w`` from a two-layer mapping network. Module and parameter names follow the
reference, so its checkpoints load strictly (`condanon.dp2.checkpoint`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .layers import Conv2d, FullyConnected

ENCODER_GAIN = math.sqrt(0.5)
DECODER_GAIN = math.sqrt(1.0 / 3.0)
CONV_CLAMP = 256.0


@dataclass(frozen=True)
class GeneratorConfig:
    """The constructor arguments of a DP2 face generator (the reference's names, the flags that matter here)."""

    imsize: tuple[int, int] = (256, 256)
    im_channels: int = 3
    min_fmap_resolution: int = 8
    cnum: int = 64
    max_cnum_mul: int = 8
    z_channels: int = 512
    w_dim: int = 512
    conv_clamp: float = CONV_CLAMP
    mask_output: bool = True
    scale_grad: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Reference arguments kept for the record (all must be off: CSE, keypoints, middle blocks)."""

    UNSUPPORTED: ClassVar[dict[str, Any]] = {
        "n_middle_blocks": 0,
        "input_cse": False,
        "input_keypoints": False,
        "n_keypoints": None,
    }

    @classmethod
    def from_reference(cls, kwargs: dict[str, Any]) -> GeneratorConfig:
        """Build from the reference's constructor keyword arguments; refuse features this implementation lacks."""
        for name, off in cls.UNSUPPORTED.items():
            if kwargs.get(name, off) not in (off, [], None, 0, False):
                raise ValueError(f"DP2 generator option {name}={kwargs[name]!r} is not supported")
        own = {f for f in cls.__dataclass_fields__ if f != "extra"}
        values: dict[str, Any] = {k: (tuple(v) if k == "imsize" else v) for k, v in kwargs.items() if k in own}
        return cls(**values, extra={k: v for k, v in kwargs.items() if k not in own})

    def to_dict(self) -> dict[str, Any]:
        """Return the arguments as a JSON-ready dict."""
        data = asdict(self)
        data.pop("extra")
        data["imsize"] = list(self.imsize)
        return data

    @property
    def resolution(self) -> int:
        return max(self.imsize)

    @property
    def n_levels(self) -> int:
        return int(math.log2(self.resolution) - math.log2(self.min_fmap_resolution)) + 1

    def channels(self, resolution: float) -> int:
        """Return the feature width at ``resolution``: ``cnum * min(R / r, max_cnum_mul)``."""
        factor: int = 2 ** int(math.log2(self.resolution) - math.log2(resolution))
        return self.cnum * min(factor, self.max_cnum_mul)


FDF256 = GeneratorConfig()
FDF128 = GeneratorConfig(imsize=(128, 128), cnum=128, max_cnum_mul=4)
CONFIGS = {"fdf256": FDF256, "fdf128": FDF128}


class MappingNetwork(nn.Module):
    """``z`` -> ``w``: normalise z, then two fully connected layers (lr 0.01, lrelu).

    Holds ``w_avg`` (and optional ``w_centers``).
    """

    w_avg: torch.Tensor

    def __init__(self, z_channels: int, w_dim: int) -> None:
        super().__init__()
        self.z_channels = z_channels
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.fc0 = FullyConnected(z_channels, w_dim, activation="lrelu", lr=0.01)
        self.fc1 = FullyConnected(w_dim, w_dim, activation="lrelu", lr=0.01)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.to(torch.float32)
        x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        w: torch.Tensor = self.fc1(self.fc0(x))
        return w

    def centers(self) -> torch.Tensor | None:
        """Return the k-means centres of w for multi-modal truncation (``None`` when the checkpoint has none)."""
        return self._buffers.get("w_centers")

    def set_centers(self, centers: torch.Tensor | None) -> None:
        """Register (or remove, with ``None``) the multi-modal truncation centres ``[K, w_dim]``."""
        if centers is None:
            self._buffers.pop("w_centers", None)
            return
        if centers.ndim != 2 or centers.shape[1] != self.w_avg.shape[0]:
            raise ValueError(f"w_centers must be [K, {self.w_avg.shape[0]}], not {list(centers.shape)}")
        self.register_buffer("w_centers", centers.to(self.w_avg))

    def truncated(self, z: torch.Tensor, truncation: float) -> torch.Tensor:
        """Return ``lerp(w_avg, mapping(z), t)`` with ``t`` clamped to [0, 1] (0 gives ``w_avg`` for every z)."""
        t = min(max(float(truncation), 0.0), 1.0)
        w = self(z)
        return torch.lerp(self.w_avg.expand_as(w), w, t)

    def multi_modal(self, z: torch.Tensor, truncation: float, indices: torch.Tensor) -> torch.Tensor:
        """Return ``lerp(w_centers[indices], mapping(z), t)``: truncation toward one of the k-means centres."""
        centers = self.centers()
        if centers is None:
            raise ValueError("this generator has no w_centers: multi-modal truncation is not available")
        t = min(max(float(truncation), 0.0), 1.0)
        return torch.lerp(centers[indices.long()], self(z), t)


class ResidualBlock(nn.Module):
    """``skip(x) + conv1(conv0(x))``; conv0 carries the downsampling, conv1 the upsampling."""

    def __init__(
        self, cin: int, cout: int, gain: float, clamp: float, up: int = 1, down: int = 1, w_dim: int | None = None
    ) -> None:
        super().__init__()
        norm = w_dim is not None
        self.conv0 = Conv2d(cin, cout, 3, clamp=clamp, down=down, w_dim=w_dim, norm=norm)
        self.conv1 = Conv2d(cout, cout, 3, gain=gain, clamp=clamp, up=up, w_dim=w_dim, norm=norm)
        self.skip = Conv2d(cin, cout, 1, bias=False, activation="linear", gain=gain, up=up, down=down)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        out: torch.Tensor = self.skip(x) + self.conv1(self.conv0(x, w), w)
        return out


class _MaskedOutput(torch.autograd.Function):
    """``condition * mask + (1 - mask) * fake`` whose backward scales the gradient by the unknown
    fraction (SPEC 4.5).
    """

    @staticmethod
    def forward(ctx: Any, condition: torch.Tensor, mask: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return condition * mask + (1 - mask) * fake

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        (mask,) = ctx.saved_tensors
        known = mask.mean(dim=(1, 2, 3), keepdim=True)
        return None, None, grad * (1 - mask) / (1 - known)


class FaceGenerator(nn.Module):
    """DP2's face inpainting generator (the reference's ``StyleGANUnet`` with CSE, keypoints and middle blocks off).

    Call it with ``condition`` ``[B, 3, H, W]`` (the crop in [-1, 1] times the mask), ``mask``
    ``[B, 1, H, W]`` (1 = known pixel) and ``w`` ``[B, w_dim]`` or ``z`` ``[B, z_channels]``; it
    returns the image (known region copied from ``condition``).
    """

    def __init__(self, config: GeneratorConfig = FDF256) -> None:
        super().__init__()
        if config.imsize[0] != config.imsize[1]:
            raise ValueError("only square generators are supported")
        self.config = config
        n, clamp = config.n_levels, config.conv_clamp
        resolution, ch = config.resolution, config.channels
        self.style_net = MappingNetwork(config.z_channels, config.w_dim)
        self.from_rgb = Conv2d(config.im_channels + 1, config.cnum, 1)
        self.encoder = nn.ModuleList()
        for i in range(n):
            r = resolution / 2**i
            cout = ch(r) if i == n - 1 else ch(r / 2)
            self.encoder.append(ResidualBlock(ch(r), cout, ENCODER_GAIN, clamp, down=1 if i == 0 else 2))
        for i in range(1, n):
            c = ch(config.min_fmap_resolution * 2**i / 2)
            conv = Conv2d(c, c, 1, gain=DECODER_GAIN, clamp=clamp, norm=True)
            self.add_module(f"unet_block{i}", conv)
        self.decoder = nn.ModuleList()
        for i in range(n):
            s = config.min_fmap_resolution * 2**i
            cin = ch(s) if i == 0 else ch(s / 2)
            up = 2 if i < n - 1 else 1
            self.decoder.append(ResidualBlock(cin, ch(s), DECODER_GAIN, clamp, up=up, w_dim=config.w_dim))
        self.to_rgb = Conv2d(config.cnum, config.im_channels, 1, activation="linear", clamp=clamp)

    def forward(
        self,
        condition: torch.Tensor,
        mask: torch.Tensor,
        z: torch.Tensor | None = None,
        w: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if w is None:
            if z is None:
                z = torch.randn(
                    condition.shape[0], self.config.z_channels, dtype=condition.dtype, device=condition.device
                )
            w = self.style_net(z)
        x = self.from_rgb(torch.cat([condition, mask], dim=1))
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        n = len(self.encoder)
        for i, block in enumerate(self.decoder):
            if i >= 1:
                x = x + getattr(self, f"unet_block{i}")(skips[n - 1 - i])
            x = block(x, w)
        fake: torch.Tensor = self.to_rgb(x)
        if not self.config.mask_output:
            return fake
        out: torch.Tensor
        if self.config.scale_grad:
            out = _MaskedOutput.apply(condition, mask, fake)  # type: ignore[no-untyped-call]  # torch leaves apply untyped
        else:
            out = condition * mask + (1 - mask) * fake
        return out

    def truncated(self, z: torch.Tensor, truncation: float) -> torch.Tensor:
        """Return the truncated latent ``lerp(w_avg, mapping(z), t)`` (see `MappingNetwork.truncated`)."""
        return self.style_net.truncated(z, truncation)

    def sample(
        self,
        condition: torch.Tensor,
        mask: torch.Tensor,
        z: torch.Tensor | None = None,
        truncation: float | None = None,
        centers: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generate with a truncated latent (``None``: plain ``z``); ``centers`` picks multi-modal centres by index."""
        out: torch.Tensor
        if truncation is None:
            out = self(condition, mask, z=z)
        else:
            if z is None:
                z = torch.randn(condition.shape[0], self.config.z_channels, device=condition.device)
            if centers is not None:
                out = self(condition, mask, w=self.style_net.multi_modal(z, truncation, centers))
            else:
                out = self(condition, mask, w=self.truncated(z, truncation))
        return out

    def num_parameters(self) -> int:
        """Return the number of learned parameters."""
        return sum(p.numel() for p in self.parameters())


def state_dict_layout(model: nn.Module) -> list[tuple[str, list[int]]]:
    """Return ``(key, shape)`` for every state_dict entry, in order."""
    return [(key, list(value.shape)) for key, value in model.state_dict().items()]


def resample_filter_ok(value: torch.Tensor) -> bool:
    """Return whether a stored ``resample_filter`` holds the fixed FIR filter."""
    expected = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    return tuple(value.shape) == (4, 4) and np.allclose(value.detach().cpu().numpy(), expected, atol=0, rtol=0)


__all__ = ["CONFIGS", "FDF128", "FDF256", "FaceGenerator", "GeneratorConfig", "MappingNetwork", "state_dict_layout"]

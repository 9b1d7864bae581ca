"""The primitive layers of the DeepPrivacy2 face generator, written from its published architecture (docs/dp2.md).

Weights are stored unscaled and scaled at run time (equalised learning rate); every layer ends with
bias, activation, gain and an optional clamp, in that order. Resampling uses one fixed 4x4 FIR filter.
Nothing here is copied from DeepPrivacy2 or NVIDIA code: it is the maths of the spec in plain PyTorch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2
NORM_EPS = 1e-5


def fir_filter() -> torch.Tensor:
    """Return the resampling filter: ``outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64``."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    return torch.outer(taps, taps) / 64.0


def _fir(x: torch.Tensor, kernel: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
    """Filter each channel of ``x`` with ``kernel`` (zero padding ``pad`` on every side)."""
    channels = x.shape[1]
    weight = (kernel * gain).to(x.dtype)[None, None].expand(channels, 1, *kernel.shape)
    return F.conv2d(F.pad(x, [pad] * 4), weight, groups=channels)


def _zero_insert(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` upsampled x2 with the samples at even indices and zeros between."""
    batch, channels, height, width = x.shape
    out = x.new_zeros(batch, channels, height * 2, width * 2)
    out[:, :, ::2, ::2] = x
    return out


def bias_act(
    x: torch.Tensor, bias: torch.Tensor | None, activation: str, gain: float, clamp: float | None
) -> torch.Tensor:
    """Return ``clamp(act(x + bias) * gain)`` with the bias broadcast over channels (axis 1).

    Without autograd (inference), ``x`` is overwritten in place: the same numbers, about a fifth less
    time for the whole generator on a CPU (callers pass a fresh tensor: a convolution's or norm's output).
    """
    if activation not in ("lrelu", "linear"):
        raise ValueError(f"unknown activation {activation!r}")
    shaped = None if bias is None else bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    if not torch.is_grad_enabled():
        if shaped is not None:
            x.add_(shaped)
        if activation == "lrelu":
            F.leaky_relu_(x, LRELU_SLOPE)
        if gain != 1.0:
            x.mul_(gain)
        return x if clamp is None else x.clamp_(-clamp, clamp)
    if shaped is not None:
        x = x + shaped
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    if gain != 1.0:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class FullyConnected(nn.Module):
    """Equalised fully connected layer: ``W * lr / sqrt(in)``, bias ``b * lr``; never clamps."""

    def __init__(
        self, in_features: int, out_features: int, activation: str = "linear", lr: float = 1.0, bias_init: float = 0.0
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.activation = activation
        self.weight_gain = lr / math.sqrt(in_features)
        self.bias_gain = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        bias = self.bias * self.bias_gain if self.bias_gain != 1.0 else self.bias
        if self.activation == "linear":
            return torch.addmm(bias.unsqueeze(0), x, weight.t())
        return bias_act(x.matmul(weight.t()), bias, self.activation, SQRT2, None)


class Conv2d(nn.Module):
    """Equalised convolution with optional x2 resampling, style modulation and instance norm.

    Args:
        in_channels, out_channels, kernel_size: the convolution (kernel 1 or 3).
        bias: whether the layer has a bias.
        activation: ``"lrelu"`` (gain sqrt(2) * ``gain``) or ``"linear"`` (gain ``gain``).
        gain: the layer gain; also scales the clamp bound (``clamp * gain``).
        clamp: the conv clamp (256 in DP2), or ``None`` for none.
        up, down: 2 to upsample or downsample by two (at most one of them).
        w_dim: the latent size; given, the input is modulated per sample and channel by ``x * gamma + beta``
            with ``gamma = affine(w)``, ``beta = affine_beta(w)`` (no weight demodulation).
        norm: instance-normalise the convolution's output (before the bias).
    """

    resample_filter: torch.Tensor | None
    """The FIR filter buffer of a resampling layer (``None`` without resampling)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "lrelu",
        gain: float = 1.0,
        clamp: float | None = None,
        up: int = 1,
        down: int = 1,
        w_dim: int | None = None,
        norm: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size not in (1, 3) or up not in (1, 2) or down not in (1, 2) or (up == 2 and down == 2):
            raise ValueError("unsupported convolution")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        if up > 1 or down > 1:
            self.register_buffer("resample_filter", fir_filter())
        else:
            self.resample_filter = None
        if w_dim is not None:
            self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
            self.affine_beta = FullyConnected(w_dim, in_channels, bias_init=0.0)
        self.modulated = w_dim is not None
        self.norm = norm
        self.kernel_size = kernel_size
        self.up, self.down = up, down
        self.activation = activation
        self.act_gain = (SQRT2 if activation == "lrelu" else 1.0) * gain
        self.clamp = None if clamp is None else clamp * gain
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        if self.modulated:
            if w is None:
                raise ValueError("a modulated convolution needs w")
            gamma = self.affine(w)[:, :, None, None]
            beta = self.affine_beta(w)[:, :, None, None]
            x = torch.addcmul(beta, x, gamma)
        weight = self.weight * self.weight_gain
        x = self._convolve(x, weight)
        if self.norm:
            x = F.instance_norm(x, eps=NORM_EPS)
        return bias_act(x, self.bias, self.activation, self.act_gain, self.clamp)

    def _convolve(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Apply the (resampling) convolution with the exact paddings of SPEC 2.4."""
        f = self.resample_filter
        if self.down == 2:
            assert f is not None
            if self.kernel_size == 3:
                return F.conv2d(_fir(x, f, pad=2), weight, stride=2)
            return F.conv2d(_fir(x, f, pad=1)[:, :, ::2, ::2], weight)
        if self.up == 2:
            assert f is not None
            if self.kernel_size == 3:  # transposed conv, no spatial flip: the kernel acts flipped
                return _fir(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2), f, pad=1, gain=4.0)
            return _fir(F.pad(_zero_insert(F.conv2d(x, weight)), [2, 1, 2, 1]), f, pad=0, gain=4.0)
        return F.conv2d(x, weight, padding=self.kernel_size // 2)

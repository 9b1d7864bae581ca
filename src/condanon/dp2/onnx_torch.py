"""Run an ONNX model as a differentiable PyTorch module (the operators condanon's in-loop models use).

The dp2 method's gradient steps need gradients of the identity and attribute readers with respect to
the image; those ship as ONNX files for onnxruntime, which has no backward pass. This interpreter
executes the graph with torch operators instead. Constant subgraphs (SFace's block-quantised weights:
``DequantizeLinear`` then ``Reshape``) are folded to float tensors once, at load. Operators outside
`OPERATORS` raise, naming the operator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _conv(args: list[torch.Tensor], attrs: dict[str, Any]) -> torch.Tensor:
    x, weight = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    if (top, left) != (bottom, right):
        x = F.pad(x, [left, right, top, bottom])
        top = left = 0
    return F.conv2d(
        x,
        weight,
        bias,
        stride=tuple(attrs.get("strides", [1, 1])),
        padding=(top, left),
        dilation=tuple(attrs.get("dilations", [1, 1])),
        groups=attrs.get("group", 1),
    )


def _gemm(args: list[torch.Tensor], attrs: dict[str, Any]) -> torch.Tensor:
    a = args[0].t() if attrs.get("transA", 0) else args[0]
    b = args[1].t() if attrs.get("transB", 0) else args[1]
    out: torch.Tensor = attrs.get("alpha", 1.0) * (a @ b)
    result: torch.Tensor = out + attrs.get("beta", 1.0) * args[2] if len(args) > 2 else out
    return result


def _flatten(args: list[torch.Tensor], attrs: dict[str, Any]) -> torch.Tensor:
    x, axis = args[0], attrs.get("axis", 1)
    return x.reshape(math.prod(x.shape[:axis]), -1)


OPERATORS: dict[str, Callable[[list[torch.Tensor], dict[str, Any]], torch.Tensor]] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "Flatten": _flatten,
    "BatchNormalization": lambda a, k: F.batch_norm(a[0], a[3], a[4], a[1], a[2], False, 0.0, k.get("epsilon", 1e-5)),
    "PRelu": lambda a, k: torch.where(a[0] >= 0, a[0], a[0] * a[1]),
    "Relu": lambda a, k: F.relu(a[0]),
    "Add": lambda a, k: a[0] + a[1],
    "Sub": lambda a, k: a[0] - a[1],
    "Mul": lambda a, k: a[0] * a[1],
    "Dropout": lambda a, k: a[0],
    "GlobalAveragePool": lambda a, k: a[0].mean(dim=(2, 3), keepdim=True),
    "Softmax": lambda a, k: F.softmax(a[0], dim=k.get("axis", -1)),
}


def _dequantize(args: list[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    """``(x - zero_point) * scale``, per tensor, per axis, or per block along the axis."""
    x = args[0].astype(np.float32)
    scale = args[1].astype(np.float32)
    zero = args[2].astype(np.float32) if len(args) > 2 else np.zeros_like(scale)
    if scale.ndim == 0 or scale.size == 1:
        return (x - zero) * scale
    axis = attrs.get("axis", 1) % x.ndim
    block = attrs.get("block_size", 0)
    if block:
        scale = np.repeat(scale, block, axis=axis).take(range(x.shape[axis]), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(x.shape[axis]), axis=axis)
    else:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (x - zero) * scale


def _reshape(args: list[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    shape = [dim if dim != 0 else args[0].shape[i] for i, dim in enumerate(args[1].astype(np.int64).tolist())]
    return args[0].reshape(shape)


FOLDERS: dict[str, Callable[[list[np.ndarray], dict[str, Any]], np.ndarray]] = {
    "DequantizeLinear": _dequantize,
    "Reshape": _reshape,
}
"""Operators evaluated once, at load, when all their inputs are constants."""


class OnnxModule(nn.Module):
    """A single-input, single-output ONNX graph executed with torch operators (differentiable)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(path))
        constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
        self.nodes: list[tuple[str, list[str], str, dict[str, Any]]] = []
        for node in model.graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            inputs = [name for name in node.input if name]
            if node.op_type == "Constant":
                constants[node.output[0]] = numpy_helper.to_array(attrs["value"])
            elif node.op_type in FOLDERS and all(name in constants for name in inputs):
                constants[node.output[0]] = FOLDERS[node.op_type]([constants[n] for n in inputs], attrs)
            elif node.op_type in OPERATORS:
                self.nodes.append((node.op_type, inputs, node.output[0], attrs))
            else:
                raise ValueError(
                    f"{Path(path).name}: ONNX operator {node.op_type} is not supported by the torch interpreter"
                )
        used = {name for _, inputs, _, _ in self.nodes for name in inputs}
        self._names: dict[str, str] = {}
        for index, name in enumerate(sorted(used & set(constants))):
            self._names[name] = f"c{index}"
            self.register_buffer(f"c{index}", torch.from_numpy(np.array(constants[name], dtype=np.float32)))
        graph_inputs = [i.name for i in model.graph.input if i.name not in constants and i.name in used]
        if len(graph_inputs) != 1 or len(model.graph.output) != 1:
            raise ValueError(f"{Path(path).name}: only single-input, single-output graphs are supported")
        self.input_name = graph_inputs[0]
        self.output_name = model.graph.output[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input_name: x}
        for op, inputs, output, attrs in self.nodes:
            args = [values[name] if name in values else getattr(self, self._names[name]) for name in inputs]
            values[output] = OPERATORS[op](args, attrs)
        return values[self.output_name]

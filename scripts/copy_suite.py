#!/usr/bin/env python3
"""Generate the copy-detection suite: fixtures/copies/<arch>/{base,copy-*,other-*}.onnx.

Run through scripts/copy_suite.sh (same pinned venv as make_fixtures.sh). Seeded, no
timestamps: a re-run writes byte-identical files.

For each of three small architectures (an MLP, a CNN, an attention-like stack of square
projections) it writes:
  base.onnx            the original;
  copy-<t>.onnx        the original under transformation <t> (the positives): re-serialized
                       with typed fields, renamed, reordered, fp16 round trip, stored as
                       fp16, int8 quantize-dequantize, Gaussian noise at 1/5/10/30 % of each
                       tensor's std, last layer retrained (replaced), light fine-tune of half
                       the layers, 5 % magnitude pruning, and a combination;
  other-<seed>.onnx    the same architecture from a different seed (the negatives).
crates/store/tests/it/copies.rs fingerprints them all and reports detection and
false-positive rates (docs/COPIES.md).
"""

import os
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "copies")
SEED = 20240611
OTHERS = 12
F32 = TensorProto.FLOAT


def rng(*names):
    return np.random.default_rng([SEED] + [zlib.crc32(str(n).encode()) for n in names])


# ------------------------------------------------------------------ architectures
# Each returns (nodes, initializers as [(name, array)], inputs, outputs); weights drawn
# like a framework's default init (He-uniform), biases small.


def he(r, shape, fan_in):
    b = np.sqrt(6.0 / fan_in)
    return r.uniform(-b, b, size=shape).astype(np.float32)


def mlp(r):
    dims = [64, 128, 64, 10]
    inits, nodes, x = [], [], "x"
    for i in range(3):
        w, b = f"fc{i}.weight", f"fc{i}.bias"
        inits += [(w, he(r, (dims[i], dims[i + 1]), dims[i])), (b, r.normal(0, 0.01, dims[i + 1]).astype(np.float32))]
        y = f"h{i}" if i < 2 else "y"
        nodes.append(helper.make_node("Gemm", [x, w, b], [y + ("_pre" if i < 2 else "")], name=f"fc{i}"))
        if i < 2:
            nodes.append(helper.make_node("Relu", [y + "_pre"], [y], name=f"relu{i}"))
        x = y
    return nodes, inits, [helper.make_tensor_value_info("x", F32, [1, 64])], [helper.make_tensor_value_info("y", F32, [1, 10])]


def cnn(r):
    inits = [
        ("conv1.weight", he(r, (16, 3, 3, 3), 27)),
        ("conv1.bias", r.normal(0, 0.01, 16).astype(np.float32)),
        ("conv2.weight", he(r, (32, 16, 3, 3), 144)),
        ("conv2.bias", r.normal(0, 0.01, 32).astype(np.float32)),
        ("fc.weight", he(r, (512, 10), 512)),
        ("fc.bias", r.normal(0, 0.01, 10).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
        helper.make_node("Flatten", ["p2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="fc"),
    ]
    return (
        nodes,
        inits,
        [helper.make_tensor_value_info("x", F32, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", F32, [1, 10])],
    )


def attn(r):
    d, layers = 32, 2
    inits, nodes, x = [], [], "x"
    for l in range(layers):
        for p in ["q", "k", "v", "o"]:
            inits.append((f"layer{l}.{p}.weight", he(r, (d, d), d)))
        inits.append((f"layer{l}.ff1.weight", he(r, (d, 4 * d), d)))
        inits.append((f"layer{l}.ff2.weight", he(r, (4 * d, d), 4 * d)))
        # A linear stand-in for attention: y = x + o(v(x)) ; ff: y + ff2(relu(ff1(y)))
        pre = f"l{l}"
        nodes += [
            helper.make_node("MatMul", [x, f"layer{l}.v.weight"], [pre + "v"]),
            helper.make_node("MatMul", [x, f"layer{l}.q.weight"], [pre + "q"]),
            helper.make_node("MatMul", [x, f"layer{l}.k.weight"], [pre + "k"]),
            helper.make_node("Mul", [pre + "q", pre + "k"], [pre + "qk"]),
            helper.make_node("Add", [pre + "v", pre + "qk"], [pre + "a"]),
            helper.make_node("MatMul", [pre + "a", f"layer{l}.o.weight"], [pre + "o"]),
            helper.make_node("Add", [x, pre + "o"], [pre + "r"]),
            helper.make_node("MatMul", [pre + "r", f"layer{l}.ff1.weight"], [pre + "f1"]),
            helper.make_node("Relu", [pre + "f1"], [pre + "f1r"]),
            helper.make_node("MatMul", [pre + "f1r", f"layer{l}.ff2.weight"], [pre + "f2"]),
            helper.make_node("Add", [pre + "r", pre + "f2"], ["y" if l == layers - 1 else pre + "out"]),
        ]
        x = pre + "out"
    return nodes, inits, [helper.make_tensor_value_info("x", F32, [1, d])], [helper.make_tensor_value_info("y", F32, [1, d])]


ARCHS = {"mlp": mlp, "cnn": cnn, "attn": attn}


def build(nodes, inits, inputs, outputs, name="g", producer="deed-copy-suite", typed=False):
    tensors = []
    for n, a in inits:
        if typed and a.dtype == np.float32:
            t = helper.make_tensor(n, F32, a.shape, a.flatten().tolist())  # float_data, not raw_data
        else:
            t = numpy_helper.from_array(a, n)
        tensors.append(t)
    g = helper.make_graph(nodes, name, inputs, outputs, tensors)
    m = helper.make_model(g, producer_name=producer, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


# ------------------------------------------------------------------ transformations


def with_weights(inits, f):
    return [(n, f(i, n, a)) for i, (n, a) in enumerate(inits)]


def noise(scale, r):
    return lambda i, n, a: (a + r.normal(0, scale * (a.std() or 1.0), a.shape)).astype(np.float32)


def int8_qdq(i, n, a):
    s = np.abs(a).max() / 127.0 or 1.0
    return (np.clip(np.round(a / s), -127, 127) * s).astype(np.float32)


def prune(frac):
    def f(i, n, a):
        k = int(frac * a.size)
        if k == 0:
            return a
        cut = np.partition(np.abs(a).flatten(), k)[k]
        return np.where(np.abs(a) < cut, 0, a).astype(np.float32)

    return f


def transforms(arch, nodes, inits, ins, outs):
    """Yields (name, ModelProto) for each copy of the base."""
    r = rng(arch, "transform")
    yield "reserialize", build(nodes, inits, ins, outs, name="other-graph", producer="pytorch", typed=True)
    ren = {n: f"t{i:03d}" for i, (n, _) in enumerate(inits)}
    rn_nodes = []
    for k, nd in enumerate(nodes):
        c = onnx.NodeProto()
        c.CopyFrom(nd)
        c.name = f"n{k}"
        for j, inp in enumerate(c.input):
            c.input[j] = ren.get(inp, inp)
        rn_nodes.append(c)
    yield "rename", build(rn_nodes, [(ren[n], a) for n, a in inits], ins, outs)
    yield "reorder", build(list(nodes), list(reversed(inits)), ins, outs)
    yield "fp16-roundtrip", build(nodes, with_weights(inits, lambda i, n, a: a.astype(np.float16).astype(np.float32)), ins, outs)
    # Stored as fp16 with a Cast after each weight.
    f16_inits, casts, rename = [], [], {}
    for n, a in inits:
        f16_inits.append((n + "_fp16", a.astype(np.float16)))
        casts.append(helper.make_node("Cast", [n + "_fp16"], [n], to=F32))
    yield "fp16-stored", build(casts + list(nodes), f16_inits, ins, outs)
    yield "int8-qdq", build(nodes, with_weights(inits, int8_qdq), ins, outs)
    for s in [0.01, 0.05, 0.10, 0.30]:
        yield f"noise-{int(s * 100):02d}pct", build(nodes, with_weights(inits, noise(s, r)), ins, outs)
    last = max(i for i, (n, a) in enumerate(inits) if a.ndim >= 2)
    rr = rng(arch, "retrain")
    yield "retrain-last", build(
        nodes,
        with_weights(inits, lambda i, n, a: (rr.permutation(a.flatten()).reshape(a.shape) if i == last else a)),
        ins,
        outs,
    )
    half = len(inits) // 2
    ft = noise(0.05, r)
    yield "finetune-half", build(nodes, with_weights(inits, lambda i, n, a: ft(i, n, a) if i >= half else a), ins, outs)
    yield "prune-5pct", build(nodes, with_weights(inits, prune(0.05)), ins, outs)
    combo = with_weights(inits, lambda i, n, a: int8_qdq(i, n, noise(0.05, r)(i, n, a)))
    yield "combo-rename-noise-int8", build(nodes, list(reversed([(f"w{i}", a) for i, (n, a) in enumerate(combo)])), ins, outs)


def main():
    count = 0
    for arch, make in ARCHS.items():
        d = os.path.join(OUT, arch)
        os.makedirs(d, exist_ok=True)
        nodes, inits, ins, outs = make(rng(arch, "base"))
        onnx.save(build(nodes, inits, ins, outs), os.path.join(d, "base.onnx"))
        for name, m in transforms(arch, nodes, inits, ins, outs):
            onnx.save(m, os.path.join(d, f"copy-{name}.onnx"))
            count += 1
        for s in range(OTHERS):
            n2, i2, a2, o2 = make(rng(arch, "other", s))
            onnx.save(build(n2, i2, a2, o2), os.path.join(d, f"other-{s:02d}.onnx"))
            count += 1
    print(f"wrote {count} models under {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()

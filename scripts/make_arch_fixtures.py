#!/usr/bin/env python3
"""Small-but-real architectures with onnxruntime reference outputs, in fixtures/arch/.

Run through scripts/make_fixtures.sh (same pinned venv; it runs this after
make_fixtures.py). Seeded, no timestamps: a re-run writes byte-identical files.

  resnet_mini     ResNet: conv stem, BatchNorm, MaxPool, 3 bottleneck blocks (1x1-3x3-1x1
                  with BatchNorm, projection shortcut, residual Add), GlobalAveragePool, Gemm
  squeezenet_mini SqueezeNet: Fire modules (squeeze 1x1, expand 1x1 + 3x3, Concat),
                  ceil-mode MaxPool, Dropout, 1x1 classifier conv, GlobalAveragePool
  bert_mini       BERT-style encoder, dynamic batch and sequence: Gather embeddings + positions
                  from Shape/Range, LayerNormalization, 2-head self-attention with a padding
                  mask (Equal/Where/Unsqueeze), Softmax, erf-form GELU, residuals, 2 layers
  bert_gelu20     the same encoder at opset 20 with the Gelu operator
  trees_clf       TreeEnsembleClassifier (ai.onnx.ml): 5 trees, 4 features, 3 classes, SOFTMAX
  trees_reg       TreeEnsembleRegressor (ai.onnx.ml): 4 trees, 2 targets, AVERAGE, base values
"""

import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

ARCH = os.path.join(mf.OUT, "arch")
F32 = TensorProto.FLOAT
I64 = TensorProto.INT64


class G:
    """A graph under construction with generated names."""

    def __init__(self, name, seed_name):
        self.name = name
        self.nodes, self.inits = [], []
        self.r = mf.rng_for(seed_name)
        self.k = 0

    def t(self, prefix="t"):
        self.k += 1
        return f"{prefix}{self.k}"

    def init(self, a, prefix="w"):
        n = self.t(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(a), n))
        return n

    def op(self, op, ins, n_out=1, domain="", **attrs):
        outs = [self.t() for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, ins, outs, name=outs[0] + "_" + op, domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    def randn(self, *shape, scale=1.0):
        return mf.randn(self.r, *shape, scale=scale)

    # layers
    def conv(self, x, cin, cout, k, stride=1, pad=0, bias=True, group=1):
        w = self.init(self.randn(cout, cin // group, k, k, scale=(2.0 / (cin // group * k * k)) ** 0.5))
        ins = [x, w] + ([self.init(self.randn(cout, scale=0.1))] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group)

    def bn(self, x, c):
        scale = self.init((1.0 + 0.1 * self.randn(c)).astype(np.float32))
        b = self.init(self.randn(c, scale=0.1))
        mean = self.init(self.randn(c, scale=0.1))
        var = self.init((0.5 + self.r.random(c)).astype(np.float32))
        return self.op("BatchNormalization", [x, scale, b, mean, var], epsilon=1e-5)


def finish(g, inputs, outputs, opsets):
    graph = helper.make_graph(g.nodes, g.name, inputs, outputs, initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
        producer_name=mf.PRODUCER,
        producer_version=mf.PRODUCER_VERSION,
    )
    model.ir_version = mf.IR_VERSION
    model.model_version = 1
    mf.onnx.checker.check_model(model, full_check=True)
    return model


def resnet():
    g = G("resnet_mini", "resnet_mini")
    x = "image"
    y = g.op("Relu", [g.bn(g.conv(x, 3, 16, 3, pad=1, bias=False), 16)])
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 16
    for mid, cout, stride in [(8, 32, 1), (16, 64, 2), (16, 64, 1)]:
        h = g.op("Relu", [g.bn(g.conv(y, cin, mid, 1, bias=False), mid)])
        h = g.op("Relu", [g.bn(g.conv(h, mid, mid, 3, stride=stride, pad=1, bias=False), mid)])
        h = g.bn(g.conv(h, mid, cout, 1, bias=False), cout)
        sc = y if (cin == cout and stride == 1) else g.bn(g.conv(y, cin, cout, 1, stride=stride, bias=False), cout)
        y = g.op("Relu", [g.op("Add", [h, sc])])
        cin = cout
    y = g.op("Flatten", [g.op("GlobalAveragePool", [y])], axis=1)
    y = g.op("Gemm", [y, g.init(g.randn(10, cin, scale=0.2)), g.init(g.randn(10, scale=0.1))], transB=1)
    g.nodes.append(helper.make_node("Softmax", [y], ["probs"], axis=-1))
    model = finish(
        g,
        [helper.make_tensor_value_info("image", F32, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("probs", F32, ["N", 10])],
        [("", 13)],
    )
    feeds = {"image": mf.randn(mf.rng_for("resnet_in"), 2, 3, 32, 32)}
    mf.save_case(ARCH, "resnet_mini", model, feeds, "ResNet with bottleneck blocks, image f32[N,3,32,32] -> probs f32[N,10]; batch 2")


def squeezenet():
    g = G("squeezenet_mini", "squeezenet_mini")
    y = g.op("Relu", [g.conv("image", 3, 16, 3, stride=2)])
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    cin = 16
    for sq, ex in [(8, 16), (8, 16), (12, 24)]:
        s = g.op("Relu", [g.conv(y, cin, sq, 1)])
        e1 = g.op("Relu", [g.conv(s, sq, ex, 1)])
        e3 = g.op("Relu", [g.conv(s, sq, ex, 3, pad=1)])
        y = g.op("Concat", [e1, e3], axis=1)
        cin = 2 * ex
    y = g.op("Dropout", [y])
    y = g.op("Relu", [g.conv(y, cin, 10, 1)])
    y = g.op("Flatten", [g.op("GlobalAveragePool", [y])], axis=1)
    g.nodes.append(helper.make_node("Softmax", [y], ["probs"], axis=1))
    model = finish(
        g,
        [helper.make_tensor_value_info("image", F32, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("probs", F32, ["N", 10])],
        [("", 13)],
    )
    feeds = {"image": mf.randn(mf.rng_for("squeezenet_in"), 2, 3, 32, 32)}
    mf.save_case(ARCH, "squeezenet_mini", model, feeds, "SqueezeNet with Fire modules, image f32[N,3,32,32] -> probs f32[N,10]; batch 2")


def bert(name, opset, gelu_op):
    g = G(name, "bert_mini")
    V, D, H, F, L, P = 50, 32, 2, 64, 2, 16
    dh = D // H
    ids, mask = "input_ids", "attention_mask"
    i0, i1, i2 = g.init(np.array(0, np.int64)), g.init(np.array(1, np.int64)), g.init(np.array([1], np.int64))
    shape = g.op("Shape", [ids])
    seq = g.op("Gather", [shape, i1], axis=0)
    pos = g.op("Range", [i0, seq, i1])
    x = g.op("Add", [g.op("Gather", [g.init(g.randn(V, D, scale=0.5)), ids]), g.op("Gather", [g.init(g.randn(P, D, scale=0.5)), pos])])

    def ln(v):
        return g.op("LayerNormalization", [v, g.init((1 + 0.1 * g.randn(D)).astype(np.float32)), g.init(g.randn(D, scale=0.1))], axis=-1, epsilon=1e-5)

    def dense(v, i, o):
        return g.op("Add", [g.op("MatMul", [v, g.init(g.randn(i, o, scale=(1.0 / i) ** 0.5))]), g.init(g.randn(o, scale=0.05))])

    x = ln(x)
    # Padding mask: 0 -> -10000 added to the scores, shape [B, 1, 1, S].
    is_pad = g.op("Equal", [mask, g.init(np.array(0, np.int64))])
    bias = g.op("Where", [is_pad, g.init(np.array(-10000.0, np.float32)), g.init(np.array(0.0, np.float32))])
    bias = g.op("Unsqueeze", [bias, g.init(np.array([1, 2], np.int64))])
    bsz = g.op("Gather", [shape, i0], axis=0)
    bs = g.op("Unsqueeze", [bsz, g.init(np.array([0], np.int64))])
    ss = g.op("Unsqueeze", [seq, g.init(np.array([0], np.int64))])
    heads_shape = g.op("Concat", [bs, ss, g.init(np.array([H, dh], np.int64))], axis=0)
    flat_shape = g.op("Concat", [bs, ss, g.init(np.array([D], np.int64))], axis=0)
    for _ in range(L):
        def heads(v):
            return g.op("Transpose", [g.op("Reshape", [v, heads_shape])], perm=[0, 2, 1, 3])

        q, k, v = heads(dense(x, D, D)), heads(dense(x, D, D)), heads(dense(x, D, D))
        s = g.op("Div", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]), g.init(np.array(dh**0.5, np.float32))])
        p = g.op("Softmax", [g.op("Add", [s, bias])], axis=-1)
        a = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [p, v])], perm=[0, 2, 1, 3]), flat_shape])
        x = ln(g.op("Add", [x, dense(a, D, D)]))
        h = dense(x, D, F)
        if gelu_op:
            h = g.op("Gelu", [h])
        else:
            e = g.op("Erf", [g.op("Div", [h, g.init(np.array(2**0.5, np.float32))])])
            h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [e, g.init(np.array(1.0, np.float32))])]), g.init(np.array(0.5, np.float32))])
        x = ln(g.op("Add", [x, dense(h, F, D)]))
    pooled = g.op("ReduceMean", [x], axes=[1], keepdims=0) if opset < 18 else g.op("ReduceMean", [x, i2], keepdims=0)
    g.nodes.append(helper.make_node("Tanh", [dense(pooled, D, D)], ["pooled"]))
    g.nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    model = finish(
        g,
        [helper.make_tensor_value_info(ids, I64, ["B", "S"]), helper.make_tensor_value_info(mask, I64, ["B", "S"])],
        [helper.make_tensor_value_info("hidden", F32, ["B", "S", D]), helper.make_tensor_value_info("pooled", F32, ["B", D])],
        [("", opset)],
    )
    r = mf.rng_for(name + "_in")
    ids_v = r.integers(0, V, size=(2, 7)).astype(np.int64)
    mask_v = np.ones((2, 7), np.int64)
    mask_v[1, 5:] = 0
    desc = f"BERT-style encoder (opset {opset}, {'Gelu op' if gelu_op else 'erf-form GELU'}), input_ids/attention_mask i64[B,S] -> hidden f32[B,S,32], pooled f32[B,32]; fed B=2, S=7"
    mf.save_case(ARCH, name, model, {ids: ids_v, mask: mask_v}, desc)


def random_trees(r, n_trees, depth, n_feat):
    """Complete binary trees: returns parallel node attribute lists and leaf list."""
    a = {k: [] for k in ["treeids", "nodeids", "featureids", "values", "modes", "true", "false", "missing"]}
    leaves = []
    modes = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"]
    for t in range(n_trees):
        n_nodes = 2 ** (depth + 1) - 1
        for i in range(n_nodes):
            leaf = i >= 2**depth - 1
            a["treeids"].append(t)
            a["nodeids"].append(i)
            a["featureids"].append(0 if leaf else int(r.integers(0, n_feat)))
            a["values"].append(0.0 if leaf else float(np.float32(r.standard_normal())))
            a["modes"].append("LEAF" if leaf else modes[int(r.integers(0, 4))])
            a["true"].append(0 if leaf else 2 * i + 1)
            a["false"].append(0 if leaf else 2 * i + 2)
            a["missing"].append(int(r.integers(0, 2)))
            if leaf:
                leaves.append((t, i))
    return a, leaves


def trees():
    r = mf.rng_for("trees_clf")
    a, leaves = random_trees(r, 5, 3, 4)
    cls = {"class_treeids": [], "class_nodeids": [], "class_ids": [], "class_weights": []}
    for t, i in leaves:
        for c in range(3):
            cls["class_treeids"].append(t)
            cls["class_nodeids"].append(i)
            cls["class_ids"].append(c)
            cls["class_weights"].append(float(np.float32(r.standard_normal())))
    node = helper.make_node(
        "TreeEnsembleClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
        nodes_treeids=a["treeids"], nodes_nodeids=a["nodeids"], nodes_featureids=a["featureids"],
        nodes_values=a["values"], nodes_modes=a["modes"], nodes_truenodeids=a["true"],
        nodes_falsenodeids=a["false"], nodes_missing_value_tracks_true=a["missing"],
        classlabels_int64s=[10, 20, 30], post_transform="SOFTMAX", base_values=[0.1, -0.2, 0.05], **cls,
    )
    g = helper.make_graph([node], "trees_clf", [helper.make_tensor_value_info("X", F32, ["N", 4])],
                          [helper.make_tensor_value_info("label", I64, ["N"]), helper.make_tensor_value_info("scores", F32, ["N", 3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3)],
                              producer_name=mf.PRODUCER, producer_version=mf.PRODUCER_VERSION)
    model.ir_version = mf.IR_VERSION
    mf.onnx.checker.check_model(model, full_check=True)
    X = mf.randn(mf.rng_for("trees_clf_in"), 16, 4)
    X[3, 1] = np.nan
    X[7, 2] = np.nan
    # JSON has no NaN: the fixture feeds finite values; NaN routing is tested in Rust.
    X = np.nan_to_num(X, nan=0.25)
    mf.save_case(ARCH, "trees_clf", model, {"X": X}, "TreeEnsembleClassifier 5 trees depth 3, 4 features, 3 classes, SOFTMAX; N=16")

    r = mf.rng_for("trees_reg")
    a, leaves = random_trees(r, 4, 2, 3)
    tg = {"target_treeids": [], "target_nodeids": [], "target_ids": [], "target_weights": []}
    for t, i in leaves:
        for c in range(2):
            tg["target_treeids"].append(t)
            tg["target_nodeids"].append(i)
            tg["target_ids"].append(c)
            tg["target_weights"].append(float(np.float32(r.standard_normal())))
    node = helper.make_node(
        "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml",
        nodes_treeids=a["treeids"], nodes_nodeids=a["nodeids"], nodes_featureids=a["featureids"],
        nodes_values=a["values"], nodes_modes=a["modes"], nodes_truenodeids=a["true"],
        nodes_falsenodeids=a["false"], n_targets=2, aggregate_function="AVERAGE", base_values=[1.0, -1.0], **tg,
    )
    g = helper.make_graph([node], "trees_reg", [helper.make_tensor_value_info("X", F32, ["N", 3])],
                          [helper.make_tensor_value_info("Y", F32, ["N", 2])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)],
                              producer_name=mf.PRODUCER, producer_version=mf.PRODUCER_VERSION)
    model.ir_version = mf.IR_VERSION
    mf.onnx.checker.check_model(model, full_check=True)
    mf.save_case(ARCH, "trees_reg", model, {"X": mf.randn(mf.rng_for("trees_reg_in"), 12, 3)},
                 "TreeEnsembleRegressor 4 trees depth 2, 3 features, 2 targets, AVERAGE + base values; N=12")


def main():
    os.makedirs(ARCH, exist_ok=True)
    resnet()
    squeezenet()
    bert("bert_mini", 17, False)
    bert("bert_gelu20", 20, True)
    trees()
    total = sum(os.path.getsize(os.path.join(ARCH, f)) for f in os.listdir(ARCH))
    with open(os.path.join(ARCH, "README.md"), "w", newline="\n") as f:
        f.write("# fixtures/arch\n\nWhole small architectures with onnxruntime 1.32.0 reference outputs (all graph\n"
                "optimizations off, one thread). Generated by `scripts/make_arch_fixtures.py`; do not edit.\n"
                "The engine test compares floats with a relative tolerance of 1e-4 (absolute 1e-5 near 0).\n\n")
        for path, desc in mf.written:
            f.write(f"- `{os.path.relpath(os.path.join(mf.OUT, path), ARCH)}`: {desc}\n")
        f.write(f"\nTotal size without this README: {total} bytes.\n")
    print(f"wrote {len(mf.written)} architecture fixtures, {total} bytes")


if __name__ == "__main__":
    main()

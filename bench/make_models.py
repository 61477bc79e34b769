"""Writes the models of `bench/run.sh engine` into bench/models/ (gitignored).

Random weights, real topologies, built with onnx.helper:
  mlp_b1, mlp_b64   784-2048-2048-10 (Gemm transB=1 + Relu, as PyTorch exports Linear)
  resnet50_b1       ResNet-50 v1.5 at 224x224, BatchNorm folded into the convolutions
  bert_l12_s128     BERT-base encoder: 12 layers, hidden 768, 12 heads, FFN 3072, sequence 128;
                    input is the embedded sequence [1, 128, 768] (no token lookup)
  trees_b512        ai.onnx.ml TreeEnsembleRegressor: 200 trees of depth 6 over 32 features, batch 512
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
rng = np.random.default_rng(20261126)


class G:
    """A graph under construction."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr, p="w"):
        nm = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def op(self, ty, ins, p=None, **attrs):
        out = self.name(p or ty.lower())
        self.nodes.append(helper.make_node(ty, ins, [out], **attrs))
        return out

    def save(self, fname, inp, out, opsets):
        graph = helper.make_graph(self.nodes, fname, [inp], [out], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
        model.ir_version = 8
        onnx.checker.check_model(model)
        path = os.path.join(OUT, fname + ".onnx")
        onnx.save(model, path)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


def he(shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def mlp(batch):
    g = G()
    x = "x"
    dims = [784, 2048, 2048, 10]
    for i in range(3):
        w = g.const(he((dims[i + 1], dims[i]), dims[i]))
        b = g.const(np.zeros(dims[i + 1], np.float32) + 0.01)
        x = g.op("Gemm", [x, w, b], transB=1)
        if i < 2:
            x = g.op("Relu", [x])
    g.save(f"mlp_b{batch}", helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 784]),
           helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, 10]), [("", 17)])


def resnet50():
    g = G()

    def conv(x, cin, cout, k, s, relu=True):
        w = g.const(he((cout, cin, k, k), cin * k * k))
        b = g.const((rng.standard_normal(cout) * 0.01).astype(np.float32))
        y = g.op("Conv", [x, w, b], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)
        return g.op("Relu", [y]) if relu else y

    x = conv("x", 3, 64, 7, 2)
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            s = stride if i == 0 else 1
            y = conv(x, cin, width, 1, 1)
            y = conv(y, width, width, 3, s)
            y = conv(y, width, width * 4, 1, 1, relu=False)
            sc = conv(x, cin, width * 4, 1, s, relu=False) if i == 0 else x
            x = g.op("Relu", [g.op("Add", [y, sc])])
            cin = width * 4
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x])
    w = g.const(he((1000, 2048), 2048))
    b = g.const(np.zeros(1000, np.float32))
    x = g.op("Gemm", [x, w, b], transB=1)
    g.save("resnet50_b1", helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224]),
           helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 1000]), [("", 17)])


def bert(layers, seq=128, hidden=768, heads=12, ffn=3072):
    g = G()
    dh = hidden // heads
    shape_heads = g.const(np.array([1, seq, heads, dh], np.int64), "shape")
    shape_back = g.const(np.array([1, seq, hidden], np.int64), "shape")
    scale = g.const(np.array(1.0 / np.sqrt(dh), np.float32), "scale")
    one = g.const(np.array(1.0, np.float32), "one")
    half = g.const(np.array(0.5, np.float32), "half")
    sqrt2 = g.const(np.array(np.sqrt(2.0), np.float32), "sqrt2")

    def dense(x, din, dout):
        w = g.const((rng.standard_normal((din, dout)) * 0.02).astype(np.float32))
        b = g.const((rng.standard_normal(dout) * 0.02).astype(np.float32))
        return g.op("Add", [g.op("MatMul", [x, w]), b])

    def layer_norm(x):
        gamma = g.const(np.ones(hidden, np.float32))
        beta = g.const(np.zeros(hidden, np.float32))
        return g.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-12)

    x = "x"
    for _ in range(layers):
        q = g.op("Transpose", [g.op("Reshape", [dense(x, hidden, hidden), shape_heads])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [dense(x, hidden, hidden), shape_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [dense(x, hidden, hidden), shape_heads])], perm=[0, 2, 1, 3])
        s = g.op("Softmax", [g.op("Mul", [g.op("MatMul", [q, k]), scale])], axis=-1)
        a = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [s, v])], perm=[0, 2, 1, 3]), shape_back])
        x = layer_norm(g.op("Add", [dense(a, hidden, hidden), x]))
        h = dense(x, hidden, ffn)
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [g.op("Erf", [g.op("Div", [h, sqrt2])]), one])]), half])
        x = layer_norm(g.op("Add", [dense(h, ffn, hidden), x]))
    g.save(f"bert_l{layers}_s{seq}", helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, hidden]),
           helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, seq, hidden]), [("", 17)])


def trees(n_trees=200, depth=6, features=32, batch=512):
    attrs = {k: [] for k in ["nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
                             "nodes_truenodeids", "nodes_falsenodeids", "target_treeids", "target_nodeids",
                             "target_ids", "target_weights"]}
    for t in range(n_trees):
        n_nodes = 2 ** (depth + 1) - 1
        for nid in range(n_nodes):
            leaf = nid >= 2 ** depth - 1
            attrs["nodes_treeids"].append(t)
            attrs["nodes_nodeids"].append(nid)
            attrs["nodes_featureids"].append(0 if leaf else int(rng.integers(features)))
            attrs["nodes_values"].append(0.0 if leaf else float(rng.uniform(-0.5, 0.5)))
            attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            attrs["nodes_truenodeids"].append(0 if leaf else 2 * nid + 1)
            attrs["nodes_falsenodeids"].append(0 if leaf else 2 * nid + 2)
            if leaf:
                attrs["target_treeids"].append(t)
                attrs["target_nodeids"].append(nid)
                attrs["target_ids"].append(0)
                attrs["target_weights"].append(float(rng.uniform(-1, 1)))
    node = helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain="ai.onnx.ml", n_targets=1,
                            aggregate_function="SUM", post_transform="NONE", **attrs)
    graph = helper.make_graph([node], "trees", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(OUT, f"trees_b{batch}.onnx")
    onnx.save(model, path)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    layers = int(os.environ.get("BERT_LAYERS", "12"))
    makers = {"mlp_b1": lambda: mlp(1), "mlp_b64": lambda: mlp(64), "resnet50_b1": resnet50,
              f"bert_l{layers}_s128": lambda: bert(layers), "trees_b512": trees}
    for name, make in makers.items():
        if "--force" in sys.argv or not os.path.exists(os.path.join(OUT, name + ".onnx")):
            make()

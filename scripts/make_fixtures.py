#!/usr/bin/env python3
"""Generate deed's test fixtures: small ONNX models and onnxruntime reference outputs.

Run through scripts/make_fixtures.sh (which pins the Python packages). Everything is
seeded and carries no timestamp, so a re-run writes byte-identical files.

Layout written under fixtures/:
  mlp.onnx, mlp.input.json, mlp.input.npy, mlp.expected.json
  cnn.onnx, cnn.input.json, cnn.expected.json
  ops/<case>.onnx, ops/<case>.input.json, ops/<case>.expected.json
  README.md

JSON tensor-set format: {"<name>": {"shape": [..], "dtype": "float32", "data": [flat row-major]}}
dtype is NumPy's name; floats are written as the shortest decimal that reads back to the
exact float32 value; bools as true/false.
"""

import json
import os
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures")
OPS = os.path.join(OUT, "ops")

PRODUCER = "deed-fixtures"
PRODUCER_VERSION = "1"
IR_VERSION = 8  # enough for opset 13; older than the newest so more readers accept it
SEED = 20240601

F32 = TensorProto.FLOAT
I64 = TensorProto.INT64
I32 = TensorProto.INT32
BOOL = TensorProto.BOOL

NP_TO_ONNX = {
    np.dtype("float32"): F32,
    np.dtype("int64"): I64,
    np.dtype("int32"): I32,
    np.dtype("bool"): BOOL,
}

written = []  # (relative path, description)


def rng_for(name):
    """A generator seeded by the case name, so cases do not disturb each other."""
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


# ---------------------------------------------------------------- writing


def tensor_json(a):
    a = np.asarray(a)
    shape = [int(d) for d in a.shape]  # before ascontiguousarray, which turns 0-d into 1-d
    a = np.ascontiguousarray(a)
    flat = a.ravel()
    if a.dtype == np.float32:
        data = [float(v) for v in flat]
        for v in data:
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError("fixtures must be free of NaN and infinities (JSON has none)")
    elif a.dtype == np.bool_:
        data = [bool(v) for v in flat]
    elif a.dtype.kind in "iu":
        data = [int(v) for v in flat]
    else:
        raise ValueError(f"unsupported dtype {a.dtype}")
    return {"shape": shape, "dtype": a.dtype.name, "data": data}


def write_json(path, tensors):
    obj = {name: tensor_json(a) for name, a in tensors.items()}
    with open(path, "w", newline="\n") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def write_bytes(path, b):
    with open(path, "wb") as f:
        f.write(b)


def rel(path):
    return os.path.relpath(path, OUT)


# ---------------------------------------------------------------- models


def finish_model(graph, opset, check=True, ml_opset=None):
    imports = [helper.make_opsetid("", opset)]
    if ml_opset is not None:
        imports.append(helper.make_opsetid("ai.onnx.ml", ml_opset))
    model = helper.make_model(
        graph,
        opset_imports=imports,
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
    )
    model.ir_version = IR_VERSION
    model.model_version = 1
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def run_ort(model, feeds):
    opts = ort.SessionOptions()
    # Reference = each node run as written: no fusion, no constant folding, one thread.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(names, feeds)
    return dict(zip(names, res))


def save_case(directory, name, model, feeds, description):
    outputs = run_ort(model, feeds)
    for oname, o in outputs.items():
        if not isinstance(o, np.ndarray):
            raise TypeError(f"{name}: output {oname} is not a tensor")
    base = os.path.join(directory, name)
    write_bytes(base + ".onnx", model.SerializeToString())
    write_json(base + ".input.json", feeds)
    write_json(base + ".expected.json", outputs)
    written.append((rel(base + ".onnx"), description))
    return outputs


def op_case(name, nodes, inputs, outputs, description, initializers=(), opset=13, ml_opset=None):
    """One tiny model. inputs: list of (name, ndarray) fed at run time.
    outputs: list of (name, onnx elem type). Output shapes are filled in from a first run.
    ml_opset: also import ai.onnx.ml at that version."""
    in_vi = [helper.make_tensor_value_info(n, NP_TO_ONNX[a.dtype], list(a.shape)) for n, a in inputs]
    inits = [numpy_helper.from_array(a, n) for n, a in initializers]
    feeds = dict(inputs)

    def build(shapes, check):
        out_vi = [helper.make_tensor_value_info(n, t, shapes.get(n)) for n, t in outputs]
        g = helper.make_graph(nodes, name, in_vi, out_vi, initializer=inits)
        return finish_model(g, opset, check, ml_opset)

    probe = run_ort(build({}, False), feeds)  # learns the output shapes
    model = build({n: list(a.shape) for n, a in probe.items()}, True)
    save_case(OPS, name, model, feeds, description)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def randn(r, *shape, scale=1.0):
    return (r.standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- whole models


def make_mlp():
    r = rng_for("mlp")
    s = 0.3
    W1 = randn(r, 32, 16, scale=s)  # Gemm transB=1: [out, in]
    b1 = randn(r, 32, scale=s)
    W2 = randn(r, 32, 16, scale=s)  # MatMul: [in, out]
    b2 = randn(r, 16, scale=s)
    W3 = randn(r, 16, 8, scale=s)  # Gemm transB=0: [in, out]
    b3 = randn(r, 8, scale=s)
    scale = np.array(2.5, dtype=np.float32)  # scalar, shape []
    inits = [
        numpy_helper.from_array(W1, "fc1.weight"),
        numpy_helper.from_array(b1, "fc1.bias"),
        numpy_helper.from_array(W2, "fc2.weight"),
        numpy_helper.from_array(b2, "fc2.bias"),
        numpy_helper.from_array(W3, "fc3.weight"),
        numpy_helper.from_array(b3, "fc3.bias"),
        numpy_helper.from_array(scale, "logit_scale"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("MatMul", ["a1", "fc2.weight"], ["h2m"], name="fc2_matmul"),
        helper.make_node("Add", ["h2m", "fc2.bias"], ["h2"], name="fc2_add"),
        helper.make_node("Tanh", ["h2"], ["a2"], name="tanh2"),
        helper.make_node("Gemm", ["a2", "fc3.weight", "fc3.bias"], ["h3"], name="fc3"),
        helper.make_node("Sigmoid", ["h3"], ["a3"], name="sigmoid3"),
        helper.make_node("Mul", ["a3", "logit_scale"], ["logits"], name="scale"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["probs"], ["label"], name="argmax", axis=1, keepdims=0),
    ]
    g = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", F32, ["N", 16])],
        [
            helper.make_tensor_value_info("probs", F32, ["N", 8]),
            helper.make_tensor_value_info("label", I64, ["N"]),
        ],
        initializer=inits,
    )
    model = finish_model(g, 13)
    x = randn(r, 2, 16)
    out = save_case(
        OUT,
        "mlp",
        model,
        {"x": x},
        "MLP, input x f32[N,16] -> probs f32[N,8], label i64[N]; fed with batch 2",
    )
    np.save(os.path.join(OUT, "mlp.input.npy"), x)
    written.append(("mlp.input.npy", "the same x as mlp.input.json, as .npy"))
    return out


def make_cnn():
    r = rng_for("cnn")
    s = 0.3
    K1 = randn(r, 4, 1, 3, 3, scale=s)
    c1 = randn(r, 4, scale=s)
    K2 = randn(r, 8, 4, 3, 3, scale=s)
    c2 = randn(r, 8, scale=s)
    Wf = randn(r, 10, 128, scale=s)
    bf = randn(r, 10, scale=s)
    shape = np.array([0, 8, 16], dtype=np.int64)  # 0 copies N
    inits = [
        numpy_helper.from_array(K1, "conv1.weight"),
        numpy_helper.from_array(c1, "conv1.bias"),
        numpy_helper.from_array(K2, "conv2.weight"),
        numpy_helper.from_array(c2, "conv2.bias"),
        numpy_helper.from_array(shape, "reshape.shape"),
        numpy_helper.from_array(Wf, "fc.weight"),
        numpy_helper.from_array(bf, "fc.bias"),
    ]
    nodes = [
        helper.make_node(
            "Conv",
            ["image", "conv1.weight", "conv1.bias"],
            ["c1"],
            name="conv1",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node(
            "Conv",
            ["p1", "conv2.weight", "conv2.bias"],
            ["c2"],
            name="conv2",
            kernel_shape=[3, 3],
            pads=[0, 0, 0, 0],
            strides=[1, 1],
            dilations=[1, 1],
        ),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        # [N,8,4,4] -> [N,8,16] (channels x positions) -> [N,128]
        helper.make_node("Reshape", ["r2", "reshape.shape"], ["chan_pos"], name="reshape"),
        helper.make_node("Flatten", ["chan_pos"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["fc"], name="fc", transB=1),
        helper.make_node("Identity", ["fc"], ["logits"], name="identity"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["probs"], ["label64"], name="argmax", axis=1, keepdims=0),
        helper.make_node("Cast", ["label64"], ["label"], name="cast", to=I32),
    ]
    g = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("image", F32, ["N", 1, 12, 12])],
        [
            helper.make_tensor_value_info("probs", F32, ["N", 10]),
            helper.make_tensor_value_info("label", I32, ["N"]),
        ],
        initializer=inits,
    )
    model = finish_model(g, 13)
    # A crude "digit": a bright diagonal stroke and a bar on a noisy background in [0,1].
    img = r.uniform(0.0, 0.2, size=(1, 1, 12, 12))
    for i in range(2, 10):
        img[0, 0, i, 11 - i] = 0.9
    img[0, 0, 9, 2:10] = 0.8
    image = img.astype(np.float32)
    return save_case(
        OUT,
        "cnn",
        model,
        {"image": image},
        "CNN, input image f32[N,1,12,12] -> probs f32[N,10], label i32[N]; fed with batch 1",
    )


# ---------------------------------------------------------------- per-op cases


def N(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


EDGE = f32([0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 1.0, -1.0, 9.0, -9.0, 15.0, -15.0,
            20.0, -20.0, 44.0, -44.0, 88.0, -88.0, 89.0, -89.0, 100.0, -100.0])
RANGE = np.concatenate([np.linspace(-20, 20, 41, dtype=np.float32), f32([-1e4, -1000.0, -50.0, 50.0, 1000.0, 1e4])])


def make_ops():
    # MatMul
    r = rng_for("matmul")
    op_case("matmul_2d", [N("MatMul", ["a", "b"], ["y"])], [("a", randn(r, 3, 4)), ("b", randn(r, 4, 5))],
            [("y", F32)], "MatMul [3,4] x [4,5]")
    op_case("matmul_3d_2d", [N("MatMul", ["a", "b"], ["y"])], [("a", randn(r, 2, 3, 4)), ("b", randn(r, 4, 5))],
            [("y", F32)], "MatMul broadcasting [2,3,4] x [4,5] -> [2,3,5]")
    op_case("matmul_batch_broadcast", [N("MatMul", ["a", "b"], ["y"])],
            [("a", randn(r, 2, 1, 3, 4)), ("b", randn(r, 3, 4, 2))],
            [("y", F32)], "MatMul batch broadcasting [2,1,3,4] x [3,4,2] -> [2,3,3,2]")
    op_case("matmul_1d_2d", [N("MatMul", ["a", "b"], ["y"])], [("a", randn(r, 4)), ("b", randn(r, 4, 3))],
            [("y", F32)], "MatMul vector x matrix [4] x [4,3] -> [3]")
    op_case("matmul_weight_init", [N("MatMul", ["a", "w"], ["y"])], [("a", randn(r, 2, 6))],
            [("y", F32)], "MatMul with the right operand an initializer [2,6] x [6,3]",
            initializers=[("w", randn(r, 6, 3))])

    # Gemm
    r = rng_for("gemm")
    op_case("gemm_bias_row", [N("Gemm", ["A", "B", "C"], ["Y"])],
            [("A", randn(r, 3, 4)), ("B", randn(r, 4, 5)), ("C", randn(r, 5))],
            [("Y", F32)], "Gemm A[3,4] B[4,5] + C[5] broadcast over rows")
    op_case("gemm_trans_alpha_beta", [N("Gemm", ["A", "B", "C"], ["Y"], transA=1, transB=1, alpha=0.5, beta=2.0)],
            [("A", randn(r, 4, 3)), ("B", randn(r, 5, 4)), ("C", randn(r, 3, 1))],
            [("Y", F32)], "Gemm transA=1 transB=1 alpha=0.5 beta=2: A[4,3]^T B[5,4]^T + C[3,1] broadcast over columns")
    op_case("gemm_transb_c_scalar", [N("Gemm", ["A", "B", "C"], ["Y"], transB=1, alpha=-1.5, beta=0.25)],
            [("A", randn(r, 2, 3)), ("B", randn(r, 4, 3)), ("C", randn(r, 1))],
            [("Y", F32)], "Gemm transB=1 alpha=-1.5 beta=0.25 with C of shape [1]")
    op_case("gemm_transa_c_full", [N("Gemm", ["A", "B", "C"], ["Y"], transA=1)],
            [("A", randn(r, 3, 2)), ("B", randn(r, 3, 4)), ("C", randn(r, 2, 4))],
            [("Y", F32)], "Gemm transA=1 with C the full [2,4]")
    op_case("gemm_no_c", [N("Gemm", ["A", "B"], ["Y"], alpha=2.0)],
            [("A", randn(r, 2, 3)), ("B", randn(r, 3, 2))],
            [("Y", F32)], "Gemm without C (optional since opset 11), alpha=2")

    # Add / Mul
    r = rng_for("binary")
    for op in ("Add", "Mul"):
        lo = op.lower()
        op_case(f"{lo}_same_shape", [N(op, ["a", "b"], ["y"])], [("a", randn(r, 2, 3)), ("b", randn(r, 2, 3))],
                [("y", F32)], f"{op} of equal shapes [2,3]")
        op_case(f"{lo}_bcast_rank", [N(op, ["a", "b"], ["y"])], [("a", randn(r, 2, 3, 4)), ("b", randn(r, 4))],
                [("y", F32)], f"{op} broadcasting [2,3,4] with [4]")
        op_case(f"{lo}_bcast_both", [N(op, ["a", "b"], ["y"])], [("a", randn(r, 2, 1, 4)), ("b", randn(r, 3, 1))],
                [("y", F32)], f"{op} broadcasting both sides [2,1,4] with [3,1] -> [2,3,4]")
        op_case(f"{lo}_scalar", [N(op, ["a", "b"], ["y"])], [("a", randn(r, 2, 3)), ("b", f32(-1.75))],
                [("y", F32)], f"{op} of [2,3] with a rank-0 scalar")
        op_case(f"{lo}_scalar_first", [N(op, ["b", "a"], ["y"])], [("a", randn(r, 3, 2)), ("b", f32([0.5]))],
                [("y", F32)], f"{op} of [1] (first operand) with [3,2]")
    op_case("add_int64", [N("Add", ["a", "b"], ["y"])],
            [("a", np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int64)), ("b", np.array([10, 20, 30], dtype=np.int64))],
            [("y", I64)], "Add of int64 with broadcasting")

    # Relu / Sigmoid / Tanh
    r = rng_for("unary")
    relu_in = np.concatenate([f32([0.0, -0.0, 1e-30, -1e-30, 3.5, -3.5, 100.0, -100.0]), randn(r, 8, scale=3.0)])
    op_case("relu", [N("Relu", ["x"], ["y"])], [("x", relu_in.reshape(2, 8))], [("y", F32)],
            "Relu, including 0, -0 and tiny values")
    for op in ("Sigmoid", "Tanh"):
        lo = op.lower()
        op_case(f"{lo}_range", [N(op, ["x"], ["y"])], [("x", RANGE)], [("y", F32)],
                f"{op} on -20..20 step 1 and large magnitudes (+-50, +-1000, +-1e4)")
        op_case(f"{lo}_edge", [N(op, ["x"], ["y"])], [("x", EDGE.reshape(4, 6))], [("y", F32)],
                f"{op} edge inputs: 0, -0, +-1e-30, +-1e-7, +-0.5 .. +-100 (around exp overflow at 88.7)")
        op_case(f"{lo}_random", [N(op, ["x"], ["y"])], [("x", randn(r, 3, 5, scale=4.0))], [("y", F32)],
                f"{op} on random normal inputs, scale 4")

    # Softmax
    r = rng_for("softmax")
    x3 = randn(r, 2, 3, 4, scale=2.0)
    op_case("softmax_axis_last", [N("Softmax", ["x"], ["y"], axis=-1)], [("x", x3)], [("y", F32)],
            "Softmax axis=-1 on [2,3,4] (opset 13)")
    op_case("softmax_axis1", [N("Softmax", ["x"], ["y"], axis=1)], [("x", x3)], [("y", F32)],
            "Softmax axis=1 on [2,3,4] (opset 13: normalizes along axis 1 only)")
    op_case("softmax_default_axis", [N("Softmax", ["x"], ["y"])], [("x", x3)], [("y", F32)],
            "Softmax with no axis attribute (opset 13 default -1) on [2,3,4]")
    op_case("softmax_opset11", [N("Softmax", ["x"], ["y"], axis=1)], [("x", x3)], [("y", F32)],
            "Softmax axis=1 on [2,3,4] under opset 11: input coerced to 2-D [2,12], normalized over the last 12",
            opset=11)
    op_case("softmax_opset11_default", [N("Softmax", ["x"], ["y"])], [("x", x3)], [("y", F32)],
            "Softmax with no axis under opset 11 (default axis=1, coerced to 2-D) on [2,3,4]", opset=11)
    big = f32([[1000.0, 999.0, 998.0, -1000.0], [-80.0, -90.0, -100.0, -110.0], [88.0, 89.0, 0.0, -89.0]])
    op_case("softmax_large", [N("Softmax", ["x"], ["y"], axis=-1)], [("x", big)], [("y", F32)],
            "Softmax on large-magnitude rows (needs max-subtraction to avoid overflow)")

    # Reshape
    r = rng_for("reshape")
    xr = randn(r, 2, 3, 4)
    for name, shape, desc in [
        ("reshape_zero_neg", [0, -1], "Reshape [2,3,4] with shape [0,-1] -> [2,12]"),
        ("reshape_neg_mid", [2, -1, 2], "Reshape [2,3,4] with shape [2,-1,2] -> [2,6,2]"),
        ("reshape_zero_mid", [-1, 0, 2, 2], "Reshape [2,3,4] with shape [-1,0,2,2] -> [2,3,2,2]"),
        ("reshape_flat", [24], "Reshape [2,3,4] to [24]"),
    ]:
        op_case(name, [N("Reshape", ["x", "shape"], ["y"])], [("x", xr)], [("y", F32)], desc,
                initializers=[("shape", np.array(shape, dtype=np.int64))])
    op_case("reshape_shape_input", [N("Reshape", ["x", "shape"], ["y"])],
            [("x", xr), ("shape", np.array([4, 0, -1], dtype=np.int64))], [("y", F32)],
            "Reshape with the shape fed as a graph input [4,0,-1] -> [4,3,2]")

    # Flatten
    r = rng_for("flatten")
    xf = randn(r, 2, 3, 2, 2)
    for axis in (0, 1, 2, 3, 4, -1):
        nm = f"flatten_axis{axis}" if axis >= 0 else f"flatten_axis_neg{-axis}"
        op_case(nm, [N("Flatten", ["x"], ["y"], axis=axis)], [("x", xf)], [("y", F32)],
                f"Flatten axis={axis} on [2,3,2,2]")

    # Conv
    r = rng_for("conv")
    x1 = randn(r, 1, 2, 7, 7)
    op_case("conv_basic", [N("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3])], [("x", x1)], [("y", F32)],
            "Conv 2->3 channels, 3x3, no padding, with bias",
            initializers=[("w", randn(r, 3, 2, 3, 3, scale=0.5)), ("b", randn(r, 3))])
    op_case("conv_no_bias", [N("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], [("x", x1)], [("y", F32)],
            "Conv 2->3 channels, 3x3, pads 1, no bias, kernel_shape inferred from the weight",
            initializers=[("w", randn(r, 3, 2, 3, 3, scale=0.5))])
    x4 = randn(r, 2, 4, 8, 8)
    op_case("conv_groups2", [N("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], group=2, pads=[1, 1, 1, 1])],
            [("x", x4)], [("y", F32)], "Conv group=2, 4->6 channels, 3x3, pads 1, batch 2",
            initializers=[("w", randn(r, 6, 2, 3, 3, scale=0.5)), ("b", randn(r, 6))])
    op_case("conv_depthwise", [N("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], group=4)],
            [("x", x4)], [("y", F32)], "Conv depthwise group=4, 4->4 channels, 3x3",
            initializers=[("w", randn(r, 4, 1, 3, 3, scale=0.5))])
    op_case("conv_dilations2", [N("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], dilations=[2, 2])],
            [("x", x1)], [("y", F32)], "Conv dilations=2, 3x3 on 7x7 -> 3x3",
            initializers=[("w", randn(r, 2, 2, 3, 3, scale=0.5)), ("b", randn(r, 2))])
    op_case("conv_strides2", [N("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], strides=[2, 2])],
            [("x", x1)], [("y", F32)], "Conv strides=2, 3x3 on 7x7 -> 3x3",
            initializers=[("w", randn(r, 2, 2, 3, 3, scale=0.5)), ("b", randn(r, 2))])
    op_case("conv_pads_asym", [N("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 2], pads=[0, 1, 2, 0])],
            [("x", x1)], [("y", F32)],
            "Conv 3x2 kernel, asymmetric pads [top=0,left=1,bottom=2,right=0] on 7x7 -> 7x7",
            initializers=[("w", randn(r, 2, 2, 3, 2, scale=0.5)), ("b", randn(r, 2))])
    x6 = randn(r, 1, 2, 6, 6)
    op_case("conv_same_upper", [N("Conv", ["x", "w", "b"], ["y"], kernel_shape=[4, 4], strides=[2, 2],
                                  auto_pad="SAME_UPPER")],
            [("x", x6)], [("y", F32)],
            "Conv auto_pad=SAME_UPPER, 4x4 kernel, strides 2 on 6x6 -> 3x3 (total pad 2 per axis, split 1 before and 1 after)",
            initializers=[("w", randn(r, 2, 2, 4, 4, scale=0.5)), ("b", randn(r, 2))])
    op_case("conv_same_upper_odd", [N("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                      auto_pad="SAME_UPPER")],
            [("x", x6)], [("y", F32)],
            "Conv auto_pad=SAME_UPPER, 3x3 kernel, strides 2 on 6x6 -> 3x3 (total pad 1: 0 before, 1 after)",
            initializers=[("w", randn(r, 2, 2, 3, 3, scale=0.5))])
    op_case("conv_same_lower_odd", [N("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                      auto_pad="SAME_LOWER")],
            [("x", x6)], [("y", F32)],
            "Conv auto_pad=SAME_LOWER, 3x3 kernel, strides 2 on 6x6 -> 3x3 (total pad 1: 1 before, 0 after)",
            initializers=[("w", randn(r, 2, 2, 3, 3, scale=0.5))])
    x9 = randn(r, 1, 4, 9, 9)
    op_case("conv_combo", [N("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], group=2, dilations=[2, 2],
                             strides=[2, 2], pads=[1, 2, 0, 1])],
            [("x", x9)], [("y", F32)], "Conv group=2, dilations=2, strides=2, pads [1,2,0,1], 4->4 channels on 9x9",
            initializers=[("w", randn(r, 4, 2, 3, 3, scale=0.5)), ("b", randn(r, 4))])

    # MaxPool
    r = rng_for("maxpool")
    xp = randn(r, 1, 2, 6, 6)
    op_case("maxpool_2x2", [N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], [("x", xp)],
            [("y", F32)], "MaxPool 2x2 stride 2 on 6x6")
    op_case("maxpool_pads_strides", [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                       pads=[1, 1, 1, 1])],
            [("x", xp - 10.0)], [("y", F32)],
            "MaxPool 3x3 stride 2 pads 1 on all-negative input (padding must act as -inf, not 0)")
    op_case("maxpool_pads_asym", [N("MaxPool", ["x"], ["y"], kernel_shape=[2, 3], pads=[0, 1, 1, 0])],
            [("x", xp - 10.0)], [("y", F32)], "MaxPool 2x3 stride 1 asymmetric pads [0,1,1,0], all-negative input")
    op_case("maxpool_ceil", [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
            [("x", xp)], [("y", F32)], "MaxPool 3x3 stride 2 ceil_mode=1 on 6x6 -> 3x3 (floor would give 2x2)")
    # Kept to a size where the last ceil window starts inside the input: when it would start
    # in the right padding (e.g. 2x2 s2 pads 1 on 5x5), onnx shape inference says 4 but
    # onnxruntime drops that window and gives 3, so such a case is not a fixture.
    op_case("maxpool_ceil_pads", [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1], ceil_mode=1)],
            [("x", xp - 10.0)], [("y", F32)],
            "MaxPool 3x3 stride 2 pads 1 ceil_mode=1 on 6x6 -> 4x4 (last window starts at the last input column)")
    op_case("maxpool_same_upper", [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                     auto_pad="SAME_UPPER")],
            [("x", xp - 10.0)], [("y", F32)], "MaxPool 3x3 stride 2 auto_pad=SAME_UPPER on 6x6 -> 3x3")
    op_case("maxpool_dilations", [N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2])],
            [("x", xp)], [("y", F32)], "MaxPool 2x2 dilations=2 stride 1 on 6x6 -> 4x4")

    # MaxPool with its second output, Indices
    r = rng_for("maxpool_indices")
    xi = randn(r, 2, 2, 5, 7)
    op_case("maxpool_indices_pads_strides",
            [N("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
            [("x", xi)], [("y", F32), ("i", I64)],
            "MaxPool 3x3 stride 2 pads 1 with Indices (storage_order 0) on [2,2,5,7]: flat NCHW index of each max")
    op_case("maxpool_indices_col_major",
            [N("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 0, 1],
               storage_order=1)],
            [("x", xi)], [("y", F32), ("i", I64)],
            "MaxPool 2x3 strides [1,2] asymmetric pads with Indices, storage_order 1 (column-major H,W within each plane)")
    op_case("maxpool_indices_dilations",
            [N("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], dilations=[2, 2], strides=[1, 2])],
            [("x", xi)], [("y", F32), ("i", I64)], "MaxPool 2x2 dilations 2 strides [1,2] with Indices")
    xt = np.round(randn(r, 1, 2, 6, 6, scale=1.5)).astype(np.float32)
    op_case("maxpool_indices_ties",
            [N("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
            [("x", xt)], [("y", F32), ("i", I64)],
            "MaxPool 3x3 stride 2 pads 1 with Indices on small integers (ties: the first maximum in window order)")
    op_case("maxpool_indices_3d_col_major",
            [N("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2, 2], strides=[2, 1, 2], storage_order=1)],
            [("x", randn(r, 1, 2, 4, 3, 5))], [("y", F32), ("i", I64)],
            "MaxPool 3D 2x2x2 strides [2,1,2] with Indices, storage_order 1 (column-major D,H,W)")

    # Identity
    r = rng_for("identity")
    op_case("identity", [N("Identity", ["x"], ["y"])], [("x", randn(r, 2, 3))], [("y", F32)], "Identity")
    op_case("identity_int64", [N("Identity", ["x"], ["y"])], [("x", np.array([[1, -2], [3, 1 << 40]], dtype=np.int64))],
            [("y", I64)], "Identity on int64")

    # Cast
    cf = f32([0.0, -0.0, 0.4, 0.5, 0.6, 0.999, 1.0, 1.5, 2.5, 2.7, -0.4, -0.5, -0.6, -1.5, -2.5, -2.7,
              1e-30, 123456.78, -123456.78, 16777216.0, 2147483520.0, -2147483648.0, 1e9, -1e9])
    op_case("cast_f32_to_i32", [N("Cast", ["x"], ["y"], to=I32)], [("x", cf.reshape(4, 6))], [("y", I32)],
            "Cast float32 -> int32: truncation toward zero, in-range values only")
    cf64 = np.concatenate([cf, f32([1e12, -1e12, 9.0e15, -9.0e15])])
    op_case("cast_f32_to_i64", [N("Cast", ["x"], ["y"], to=I64)], [("x", cf64.reshape(4, 7))], [("y", I64)],
            "Cast float32 -> int64: truncation toward zero, in-range values only")
    ci = np.array([0, 1, -1, 7, -7, 16777216, 16777217, 16777218, 16777219, -16777217, 2**31, -(2**31) - 1,
                   2**53 + 1, -(2**53) - 1, 2**62 + 2**38 + 1, -(2**63), 2**63 - 1, 123456789], dtype=np.int64)
    op_case("cast_i64_to_f32", [N("Cast", ["x"], ["y"], to=F32)], [("x", ci.reshape(3, 6))], [("y", F32)],
            "Cast int64 -> float32: round to nearest even beyond 2^24 (e.g. 16777217 -> 16777216, 16777219 -> 16777220)")
    cb = f32([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1.0, -3.0, 1e30, -1e30, 1e-45, 0.0])
    op_case("cast_f32_to_bool", [N("Cast", ["x"], ["y"], to=BOOL)], [("x", cb.reshape(3, 4))], [("y", BOOL)],
            "Cast float32 -> bool: nonzero -> true, +-0 -> false (1e-45 is the smallest subnormal)")
    op_case("cast_bool_to_f32", [N("Cast", ["x"], ["y"], to=F32)],
            [("x", np.array([[True, False, True], [False, False, True]]))], [("y", F32)],
            "Cast bool -> float32")
    op_case("cast_i32_to_i64", [N("Cast", ["x"], ["y"], to=I64)],
            [("x", np.array([0, -1, 2147483647, -2147483648], dtype=np.int32))], [("y", I64)],
            "Cast int32 -> int64 (sign extension)")
    op_case("cast_f32_to_f32", [N("Cast", ["x"], ["y"], to=F32)], [("x", f32([1.5, -0.0, 3.25]))], [("y", F32)],
            "Cast float32 -> float32 (no-op)")

    # ArgMax
    r = rng_for("argmax")
    xa = randn(r, 2, 3, 4)
    op_case("argmax_axis0_keepdims1", [N("ArgMax", ["x"], ["y"], axis=0, keepdims=1)], [("x", xa)], [("y", I64)],
            "ArgMax axis=0 keepdims=1 on [2,3,4] -> [1,3,4]")
    op_case("argmax_axis1_keepdims0", [N("ArgMax", ["x"], ["y"], axis=1, keepdims=0)], [("x", xa)], [("y", I64)],
            "ArgMax axis=1 keepdims=0 on [2,3,4] -> [2,4]")
    op_case("argmax_axis_neg1", [N("ArgMax", ["x"], ["y"], axis=-1, keepdims=0)], [("x", xa)], [("y", I64)],
            "ArgMax axis=-1 keepdims=0 on [2,3,4] -> [2,3]")
    op_case("argmax_default", [N("ArgMax", ["x"], ["y"])], [("x", xa)], [("y", I64)],
            "ArgMax with default attributes (axis=0, keepdims=1)")
    ties = f32([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [-1.0, -0.0, 0.0, -2.0], [0.0, 7.0, 1.0, 7.0]])
    op_case("argmax_ties_first", [N("ArgMax", ["x"], ["y"], axis=1, keepdims=0)], [("x", ties)], [("y", I64)],
            "ArgMax with ties, select_last_index=0 (first max wins; -0 == 0 is a tie)")
    op_case("argmax_select_last", [N("ArgMax", ["x"], ["y"], axis=1, keepdims=1, select_last_index=1)],
            [("x", ties)], [("y", I64)], "ArgMax with ties, select_last_index=1 (last max wins), keepdims=1")
    op_case("argmax_int64", [N("ArgMax", ["x"], ["y"], axis=0, keepdims=0)],
            [("x", np.array([[3, -9], [3, 10], [-1, 10]], dtype=np.int64))], [("y", I64)],
            "ArgMax on int64 axis=0 keepdims=0 with ties")


def make_ml_ops():
    """ai.onnx.ml SVMClassifier / SVMRegressor cases (attributes written by hand, no sklearn)."""

    def svc(name, description, x, labels, per_class, kernel, params, prob=False, post="NONE", seed=None):
        r = rng_for(seed or name)
        k = len(labels)
        v = sum(per_class)
        f = x.shape[1]
        attrs = dict(
            kernel_type=kernel,
            kernel_params=[float(p) for p in params],
            support_vectors=randn(r, v, f).ravel().tolist(),
            vectors_per_class=per_class,
            coefficients=randn(r, k - 1, v).ravel().tolist(),
            rho=randn(r, k * (k - 1) // 2, scale=0.3).ravel().tolist(),
            classlabels_ints=labels,
            post_transform=post,
        )
        if prob:
            attrs["prob_a"] = (-r.uniform(0.5, 3.0, k * (k - 1) // 2)).astype(np.float32).tolist()
            attrs["prob_b"] = randn(r, k * (k - 1) // 2, scale=0.3).tolist()
        op_case(name, [N("SVMClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml", **attrs)],
                [("X", x)], [("label", I64), ("scores", F32)], description, ml_opset=3)

    r = rng_for("svm_inputs")
    x4 = randn(r, 8, 4)
    svc("svm_clf_binary_linear", "SVMClassifier binary, LINEAR kernel, 3+2 support vectors, no probabilities: "
        "scores [-s, s], label by vote", x4, [0, 1], [3, 2], "LINEAR", [0, 0, 0])
    svc("svm_clf_binary_logistic",
        "SVMClassifier binary, RBF, post_transform LOGISTIC: scores [sigmoid(-s), sigmoid(s)]",
        x4, [5, 9], [2, 3], "RBF", [0.3, 0, 0], post="LOGISTIC")
    svc("svm_clf_binary_proba", "SVMClassifier binary, RBF, prob_a/prob_b (Platt scaling, 2-class coupling)",
        x4, [-1, 1], [3, 4], "RBF", [0.25, 0, 0], prob=True)
    svc("svm_clf_multi_rbf", "SVMClassifier 3 classes, RBF, no probabilities: the 3 pairwise scores, label by votes",
        x4, [0, 1, 2], [2, 3, 2], "RBF", [0.4, 0, 0])
    svc("svm_clf_multi_rbf_proba", "SVMClassifier 3 classes, RBF, prob_a/prob_b: pairwise coupling to 3 probabilities",
        x4, [0, 1, 2], [2, 3, 2], "RBF", [0.4, 0, 0], prob=True)
    svc("svm_clf_poly", "SVMClassifier 3 classes, POLY kernel (gamma 0.5, coef0 1, degree 3), no probabilities",
        x4, [10, 20, 30], [2, 2, 3], "POLY", [0.5, 1.0, 3])
    svc("svm_clf_sigmoid_proba", "SVMClassifier 4 classes, SIGMOID kernel (gamma 0.2, coef0 -0.5), probabilities, "
        "post_transform SOFTMAX", x4, [1, 2, 3, 4], [2, 1, 2, 2], "SIGMOID", [0.2, -0.5, 0], prob=True, post="SOFTMAX")

    r = rng_for("svm_clf_linear_mode")
    op_case("svm_clf_linear_mode",
            [N("SVMClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml", kernel_type="LINEAR",
               kernel_params=[0.0, 0.0, 0.0], coefficients=randn(r, 3, 4).ravel().tolist(), rho=[0.25],
               classlabels_ints=[7, 8, 9])],
            [("X", x4)], [("label", I64), ("scores", F32)],
            "SVMClassifier linear SVM (no support vectors): coefficients [3 classes, 4 features], score = x.w + rho[0]",
            ml_opset=3)
    r = rng_for("svm_clf_linear_binary")
    op_case("svm_clf_linear_binary",
            [N("SVMClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml", kernel_type="LINEAR",
               kernel_params=[0.0, 0.0, 0.0], coefficients=randn(r, 2, 4).ravel().tolist(), rho=[-0.1],
               classlabels_ints=[0, 1], post_transform="LOGISTIC")],
            [("X", x4)], [("label", I64), ("scores", F32)],
            "SVMClassifier linear SVM, 2 classes, mixed-sign weights, LOGISTIC (label 1 whenever the top raw score > 0)",
            ml_opset=3)

    def svr(name, description, kernel, params, n_sup, one_class=0, rho=0.2):
        r = rng_for(name)
        attrs = dict(kernel_type=kernel, kernel_params=[float(p) for p in params], n_supports=n_sup,
                     coefficients=randn(r, n_sup if n_sup else 4).tolist(), rho=[rho], one_class=one_class)
        if n_sup:
            attrs["support_vectors"] = randn(r, n_sup, 4).ravel().tolist()
        op_case(name, [N("SVMRegressor", ["X"], ["Y"], domain="ai.onnx.ml", **attrs)], [("X", x4)], [("Y", F32)],
                description, ml_opset=3)

    svr("svm_reg_rbf", "SVMRegressor RBF (gamma 0.3), 6 support vectors", "RBF", [0.3, 0, 0], 6)
    svr("svm_reg_poly", "SVMRegressor POLY (gamma 0.5, coef0 0.5, degree 2), 5 support vectors", "POLY",
        [0.5, 0.5, 2], 5)
    svr("svm_reg_linear", "SVMRegressor linear SVM (n_supports 0): y = x.coefficients + rho", "LINEAR", [0, 0, 0], 0)
    svr("svm_reg_one_class", "SVMRegressor one_class=1 (RBF): y = 1 if the score > 0 else -1", "RBF", [0.5, 0, 0], 6,
        one_class=1, rho=-0.1)


# ---------------------------------------------------------------- checks


def check(mlp, cnn):
    for name, out in (("mlp", mlp), ("cnn", cnn)):
        p = out["probs"]
        s = p.sum(axis=1, dtype=np.float64)
        assert np.all(np.abs(s - 1.0) < 1e-5), (name, s)
        assert np.array_equal(out["label"], p.argmax(axis=1)), name
    assert mlp["label"].dtype == np.int64 and cnn["label"].dtype == np.int32
    # Independent NumPy references for a few per-op cases.
    def load(case, which):
        with open(os.path.join(OPS, f"{case}.{which}.json")) as f:
            return {k: np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"]) for k, v in json.load(f).items()}

    for case, axis in (("softmax_axis_last", -1), ("softmax_axis1", 1), ("softmax_large", -1)):
        y = load(case, "expected")["y"]
        assert np.all(np.abs(y.sum(axis=axis, dtype=np.float64) - 1.0) < 1e-5), case
    y = load("softmax_opset11", "expected")["y"]
    assert np.all(np.abs(y.reshape(2, 12).sum(axis=1, dtype=np.float64) - 1.0) < 1e-5)
    x = load("matmul_3d_2d", "input")
    assert np.allclose(load("matmul_3d_2d", "expected")["y"], x["a"] @ x["b"], atol=1e-5)
    x = load("gemm_trans_alpha_beta", "input")
    assert np.allclose(load("gemm_trans_alpha_beta", "expected")["Y"], 0.5 * x["A"].T @ x["B"].T + 2.0 * x["C"],
                       atol=1e-5)
    assert load("cast_f32_to_i32", "expected")["y"].ravel()[:16].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 0, 0, 0,
                                                                              -1, -2, -2]
    assert load("argmax_ties_first", "expected")["y"].tolist() == [1, 0, 1, 1]
    assert load("argmax_select_last", "expected")["y"].ravel().tolist() == [2, 3, 2, 3]
    assert load("cast_f32_to_bool", "expected")["y"].ravel().tolist() == [False, False] + [True] * 8 + [True, False]
    for case in ("sigmoid_edge", "sigmoid_range"):
        y = load(case, "expected")["y"]
        assert np.all((y >= 0) & (y <= 1)), case
    for case in ("tanh_edge", "tanh_range"):
        y = load(case, "expected")["y"]
        assert np.all((y >= -1) & (y <= 1)), case
    # MaxPool Indices point at the maxima (row-major cases; the column-major ones transposed).
    for case in ("maxpool_indices_pads_strides", "maxpool_indices_dilations", "maxpool_indices_ties"):
        x, out = load(case, "input")["x"], load(case, "expected")
        assert np.array_equal(x.ravel()[out["i"]], out["y"]), case
    x, out = load("maxpool_indices_col_major", "input")["x"], load("maxpool_indices_col_major", "expected")
    assert np.array_equal(x.transpose(0, 1, 3, 2).ravel()[out["i"]], out["y"])
    # A linear SVM regressor is x.w + rho; one_class gives +-1.
    assert set(load("svm_reg_one_class", "expected")["Y"].ravel().tolist()) <= {-1.0, 1.0}
    # SVM probabilities sum to 1.
    for case in ("svm_clf_binary_proba", "svm_clf_multi_rbf_proba", "svm_clf_sigmoid_proba"):
        p = load(case, "expected")["scores"]
        assert np.all(np.abs(p.sum(axis=1, dtype=np.float64) - 1.0) < 1e-4), case


# ---------------------------------------------------------------- README


def write_readme():
    total = 0
    for dirpath, _, files in os.walk(OUT):
        for f in files:
            if f != "README.md":
                total += os.path.getsize(os.path.join(dirpath, f))
    lines = [
        "# fixtures",
        "",
        "Small real ONNX models with onnxruntime reference outputs, for the engine's tests.",
        "Generated by `scripts/make_fixtures.py`; do not edit by hand. Regenerate with",
        "",
        "    scripts/make_fixtures.sh",
        "",
        "which makes `.venv/` if missing, installs the pinned packages of",
        "`scripts/requirements-fixtures.txt` and runs the generator. A re-run writes",
        "byte-identical files (seeded NumPy, fixed producer name and version, no timestamps).",
        "",
        "## Versions used",
        "",
        f"- Python {sys.version_info.major}.{sys.version_info.minor}",
        f"- numpy {np.__version__}",
        f"- onnx {onnx.__version__}",
        f"- onnxruntime {ort.__version__} (CPUExecutionProvider)",
        f"- models: IR version {IR_VERSION}, default-domain opset 13 (opset 11 where a name says so),",
        f"  `ai.onnx.ml` opset 3 for the `svm_*` cases, producer `{PRODUCER}` {PRODUCER_VERSION}",
        "",
        "## Format",
        "",
        "For each case `<name>`:",
        "",
        "- `<name>.onnx`: the model; valid under `onnx.checker.check_model(full_check=True)`.",
        "- `<name>.input.json`: the inputs fed, by input name.",
        "- `<name>.expected.json`: onnxruntime's outputs, by output name.",
        "",
        'Both JSON files are tensor sets: `{"<name>": {"shape": [..], "dtype": "float32", "data": [..]}}`',
        "with `data` flat in row-major order and `dtype` NumPy's name (`float32`, `int64`, `int32`,",
        "`bool`). A float is written as the shortest decimal that reads back (as f64, then to f32)",
        "to the exact float32 value; `-0.0` keeps its sign; there are no NaNs or infinities.",
        "Bools are `true`/`false`.",
        "",
        "The references were computed with every graph optimization off, one thread, sequential",
        "execution, so each node ran as written (no fusion). onnxruntime's kernels (MLAS) pick",
        "SIMD paths by CPU and use their own summation orders and exp/tanh approximations, so",
        "compare floats with a tolerance (a few ulps relative, ~1e-6 absolute); integer and",
        "bool outputs (ArgMax, Cast) must match exactly.",
        "",
        "Known quirks of these references:",
        "",
        "- onnxruntime's Sigmoid is accurate in absolute terms only (error up to ~1.2e-7) and",
        "  flushes to exactly 0.0 below about x = -17 (true sigmoid(-20) is 2.06e-9); for",
        "  negative x its relative error is large (sigmoid(-15): 3.58e-7 vs the true 3.06e-7).",
        "  Compare Sigmoid with an absolute tolerance. Tanh is within 2 ulps and saturates to",
        "  exactly +-1.0 from about |x| = 9.",
        "- `cast_i64_to_f32` includes 2^62 + 2^38 + 1, which rounds up to 2^62 + 2^39 when",
        "  cast directly; going through f64 first rounds it twice and gives 2^62 (wrong).",
        "- MaxPool with ceil_mode=1: when the last window would start inside the right padding",
        "  (e.g. 2x2 stride 2 pads 1 on 5x5), onnx shape inference says 4 outputs but",
        "  onnxruntime drops that window and gives 3. No fixture sits on that edge.",
        "- SVMClassifier (onnxruntime's behaviour, which deed follows): the label is the",
        "  class with the most pairwise votes even when probabilities are computed; binary",
        "  scores without probabilities are `[-s, s]` (NONE), `[sigmoid(-s), sigmoid(s)]`",
        "  (LOGISTIC) or `[1 - s, s]` (SOFTMAX, untransformed); the pairwise coupling stops",
        "  at a tolerance of 0.005/k, so its probabilities are approximate by design.",
        "",
        "## Files",
        "",
        "Each `.onnx` below has its `.input.json` and `.expected.json` beside it.",
        "",
    ]
    for path, desc in written:
        lines.append(f"- `{path}`: {desc}")
    lines += [
        "",
        f"Total size without this README: {total} bytes.",
        "",
    ]
    with open(os.path.join(OUT, "README.md"), "w", newline="\n") as f:
        f.write("\n".join(lines))


def main():
    os.makedirs(OPS, exist_ok=True)
    mlp = make_mlp()
    cnn = make_cnn()
    make_ops()
    make_ml_ops()
    check(mlp, cnn)
    write_readme()
    print(f"wrote {len(written)} models/files under {OUT}")


if __name__ == "__main__":
    main()

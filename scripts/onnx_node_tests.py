#!/usr/bin/env python3
"""Write the ONNX backend node test cases out for deed's conformance test.

Run through scripts/onnx_node_tests.sh (which pins the onnx wheel). For every case of
`onnx.backend.test.case.node.collect_testcases()` this writes

  <out>/<case name>/model.onnx
  <out>/<case name>/input_<i>.npy, output_<i>.npy   (first data set; graph order)
  <out>/<case name>/meta.json  {"op", "domain", "opset", "expanded", "inputs", "outputs",
                                "rtol", "atol", "skip"}

`skip` is set (and no .npy written) when a case feeds or expects something deed's
tensors cannot hold: sequences, optionals, maps, strings, float16/bfloat16/float8/int4.
The Rust test `crates/engine/tests/it/conformance.rs` reads the folder (default
target/onnx-node-tests/) and prints the pass rate per operator.
"""

import json
import os
import shutil
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from onnx.backend.test.case.node import collect_testcases  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "onnx-node-tests")

OK_DTYPES = {
    np.dtype(t)
    for t in ("float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "bool")
}


def main_op(model):
    nodes = [n for n in model.graph.node if n.op_type != "Constant"] or list(model.graph.node)
    if not nodes:
        return "", ""
    n = nodes[0]
    return n.op_type, n.domain or "ai.onnx"


def opset_of(model, domain):
    d = "" if domain == "ai.onnx" else domain
    for o in model.opset_import:
        if (o.domain or "") == d or (d == "" and o.domain == "ai.onnx"):
            return int(o.version)
    return 0


def as_array(value):
    """NumPy scalars become 0-d arrays; TensorProtos of deed-supported types become arrays."""
    if isinstance(value, np.generic):
        return np.asarray(value)
    if isinstance(value, onnx.TensorProto):
        try:
            arr = numpy_helper.to_array(value)
        except Exception:  # noqa: BLE001
            return value
        return arr if arr.dtype in OK_DTYPES else value
    return value


def why_not(value):
    if isinstance(value, onnx.TensorProto):
        return f"tensor of ONNX type {value.data_type}"
    if not isinstance(value, np.ndarray):
        return f"non-tensor value ({type(value).__name__})"
    if value.dtype not in OK_DTYPES:
        return f"dtype {value.dtype}"
    return None


def main():
    cases = collect_testcases()
    base_op = {}
    for c in cases:
        if not c.name.endswith("_expanded") and "_expanded_" not in c.name:
            base_op[c.name] = main_op(c.model)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    written = 0
    for c in cases:
        if c.kind != "node":
            continue
        expanded = "_expanded" in c.name
        base = c.name.split("_expanded")[0]
        op, domain = base_op.get(base, main_op(c.model)) if expanded else main_op(c.model)
        d = os.path.join(OUT, c.name)
        os.makedirs(d)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(c.model.SerializeToString())
        inits = {i.name for i in c.model.graph.initializer}
        in_names = [i.name for i in c.model.graph.input if i.name not in inits]
        out_names = [o.name for o in c.model.graph.output]
        skip = None
        if not c.data_sets:
            skip = "no data set"
        else:
            inputs, outputs = c.data_sets[0]
            inputs = [as_array(v) for v in inputs]
            outputs = [as_array(v) for v in outputs]
            if len(inputs) != len(in_names) or len(outputs) != len(out_names):
                skip = "inputs or outputs do not match the graph"
            for v in list(inputs) + list(outputs):
                skip = skip or why_not(v)
            if skip is None:
                for i, v in enumerate(inputs):
                    np.save(os.path.join(d, f"input_{i}.npy"), np.ascontiguousarray(v).reshape(np.shape(v)))
                for i, v in enumerate(outputs):
                    np.save(os.path.join(d, f"output_{i}.npy"), np.ascontiguousarray(v).reshape(np.shape(v)))
        meta = {
            "op": op,
            "domain": domain,
            "opset": opset_of(c.model, domain),
            "expanded": expanded,
            "inputs": in_names,
            "outputs": out_names,
            "rtol": float(c.rtol),
            "atol": float(c.atol),
            "skip": skip,
        }
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        written += 1
    print(f"wrote {written} node test cases to {OUT} (onnx {onnx.__version__})")


if __name__ == "__main__":
    main()

"""How small can the trace be if every fraud-proof replay must stay under a budget?

    .venv/bin/python bench/trace_cuts.py bench/models/resnet50_b1.onnx 0.05

Cost model: MACs for Conv, MatMul and Gemm, output elements for every other node;
value sizes from onnx shape inference (dynamic dims = 1). Cuts the graph (file order,
which is deed's execution order for these models) into segments that each cost at most
FRACTION of the whole, choosing the cut points by dynamic programming to minimize the
bytes the trace must hash: values produced in a segment and read by a later one, plus
graph outputs. Prints the segment count, those bytes and the costliest segment's share.
An analysis for docs/ARCHITECTURE.md ("Known gaps"), not part of deed.
"""
import onnx, sys, numpy as np
from onnx import shape_inference
m = onnx.load(sys.argv[1], load_external_data=False)
frac = float(sys.argv[2])
m = shape_inference.infer_shapes(m)
g = m.graph
shapes = {}
for vi in list(g.value_info) + list(g.input) + list(g.output):
    d = [x.dim_value if x.dim_value > 0 else 1 for x in vi.type.tensor_type.shape.dim]
    shapes[vi.name] = d
inits = {i.name: list(i.dims) for i in g.initializer}
def numel(n): return int(np.prod(shapes.get(n, inits.get(n, [1])))) if n else 0
nodes = list(g.node)  # assume topological file order
cost = []
for n in nodes:
    out = numel(n.output[0])
    if n.op_type == 'Conv':
        w = inits[n.input[1]]; k = int(np.prod(w[1:]))
        cost.append(out * k)
    elif n.op_type in ('MatMul', 'Gemm'):
        a = shapes.get(n.input[0], inits.get(n.input[0])); k = a[-1]
        cost.append(out * k)
    else:
        cost.append(out)
N = len(nodes); total = sum(cost); B = total * frac
prod = {}
for i, n in enumerate(nodes):
    for o in n.output: prod[o] = i
lastread = {}
for i, n in enumerate(nodes):
    for x in n.input:
        if x in prod: lastread[x] = max(lastread.get(x, -1), i)
outs = set(o.name for o in g.output)
def exported(s, e):
    b = 0
    for i in range(s, e):
        for o in nodes[i].output:
            if o in outs or lastread.get(o, -1) >= e: b += 4 * numel(o)
    return b
pc = np.concatenate([[0], np.cumsum(cost)])
INF = float('inf'); dp = [INF] * (N + 1); dp[0] = 0; back = [0] * (N + 1)
for e in range(1, N + 1):
    for s in range(e - 1, -1, -1):
        if pc[e] - pc[s] > B and e - s > 1: break
        v = dp[s] + exported(s, e)
        if v < dp[e]: dp[e], back[e] = v, s
cuts = []; e = N
while e > 0: cuts.append(e); e = back[e]
cuts = cuts[::-1]
segcost = [pc[cuts[i]] - pc[cuts[i-1] if i else 0] for i in range(len(cuts))]
print(f"{sys.argv[1].split('/')[-1]} frac {frac}: segments {len(cuts)} exported {dp[N]/1e6:.1f} MB, max seg cost {max(segcost)/total:.3f}")

//! The seed corpus: how every file in `__fuzz__/loader/corpus/` is made.
//!
//! Two kinds of seed, both written by [`all`]:
//! - `fixture_*`: copies of small, well-formed models from `fixtures/` (a few per operator
//!   family, and the small architecture models), so mutations start from graphs that
//!   load and run;
//! - `edge_*`: well-formed models with edge-case values (NaNs with payloads, infinities,
//!   -0.0, subnormals), which must load and run;
//! - `op_*`: one small, well-formed node per operator family the engine implements (with
//!   its typical attributes and constant inputs), which must load: starting points from
//!   which mutations reach every kernel's attribute and shape handling;
//! - `hostile_*`: models built here that a loader must refuse (or run into a clean
//!   error): truncations, rank and element-count bombs, negative and overflowing dims,
//!   external-data references, cycles, dangling names, wrong initializer sizes, huge
//!   length varints, deep nesting, attribute and decode-expansion bombs, and operators
//!   whose attributes or shape inputs ask for huge outputs or work.
//!
//! The committed files must equal what this module builds (`corpus_is_current`);
//! `DEED_FUZZ_WRITE_CORPUS=1 cargo test -p deed-engine --test fuzz corpus_is_current`
//! rewrites them. Other files in the folder (named otherwise, e.g. `regression_*`: inputs
//! a fuzzer found) are replayed too, and kept as they are.

use crate::build::*;
use deed_engine::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    attr_type,
};
use deed_types::DType;
use prost::Message;

/// Models from `fixtures/` (relative to the repository root) copied into the corpus.
pub const FIXTURES: &[&str] = &[
    "mlp.onnx",
    "cnn.onnx",
    "arch/trees_clf.onnx",
    "arch/trees_reg.onnx",
    "arch/squeezenet_mini.onnx",
    "arch/bert_mini.onnx",
    "ops/add_bcast_both.onnx",
    "ops/add_int64.onnx",
    "ops/argmax_axis_neg1.onnx",
    "ops/argmax_int64.onnx",
    "ops/cast_f32_to_i64.onnx",
    "ops/cast_i64_to_f32.onnx",
    "ops/conv_groups2.onnx",
    "ops/conv_pads_asym.onnx",
    "ops/conv_dilations2.onnx",
    "ops/flatten_axis0.onnx",
    "ops/gemm_trans_alpha_beta.onnx",
    "ops/gemm_bias_row.onnx",
    "ops/matmul_batch_broadcast.onnx",
    "ops/matmul_1d_2d.onnx",
    "ops/maxpool_ceil.onnx",
    "ops/maxpool_indices_pads_strides.onnx",
    "ops/mul_bcast_rank.onnx",
    "ops/reshape_shape_input.onnx",
    "ops/reshape_zero_neg.onnx",
    "ops/conv_same_upper_odd.onnx",
    "ops/identity_int64.onnx",
    "ops/cast_bool_to_f32.onnx",
    "ops/sigmoid_edge.onnx",
    "ops/softmax_opset11.onnx",
    "ops/tanh_edge.onnx",
    "ops/svm_clf_multi_rbf_proba.onnx",
    "ops/svm_reg_linear.onnx",
];

/// Every generated seed: `(file name, bytes)`.
pub fn all() -> Vec<(String, Vec<u8>)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/");
    let mut out = vec![];
    for f in FIXTURES {
        let bytes = std::fs::read(format!("{root}{f}")).unwrap_or_else(|e| panic!("fixtures/{f}: {e}"));
        out.push((format!("fixture_{}", f.replace('/', "_")), bytes));
    }
    for (name, bytes) in hostile() {
        out.push((format!("hostile_{name}.onnx"), bytes));
    }
    for (name, bytes) in edge() {
        out.push((format!("edge_{name}.onnx"), bytes));
    }
    for (name, bytes) in ops() {
        out.push((format!("op_{name}.onnx"), bytes));
    }
    out
}

fn relu() -> G {
    G::new(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![vi("x", DType::F32, &[D::N(2)])],
        vec![vi("y", DType::F32, &[D::N(2)])],
    )
}

/// One node over float inputs `names` of dynamic rank-1..4 shapes, with initializers;
/// the output's type is left to inference.
fn one(
    op: &str,
    inputs: &[&str],
    dyn_inputs: &[(&str, usize)],
    attrs: Vec<AttributeProto>,
    inits: Vec<TensorProto>,
) -> Vec<u8> {
    const DIMS: [&str; 4] = ["a", "b", "c", "d"];
    let g = G::new(
        vec![node(op, inputs, &["y"], attrs)],
        dyn_inputs
            .iter()
            .map(|&(n, r)| vi(n, DType::F32, &DIMS[..r].iter().map(|p| D::P(p)).collect::<Vec<_>>()))
            .collect(),
        vec![vi("y", DType::F32, &[])],
    )
    .inits(inits);
    untyped_outputs(g.proto())
}

fn untyped_outputs(mut p: ModelProto) -> Vec<u8> {
    for o in &mut p.graph.as_mut().unwrap().output {
        o.r#type = None;
    }
    p.encode_to_vec()
}

/// A tensor with `dims` and no data at all.
fn bare(name: &str, dims: &[i64]) -> TensorProto {
    TensorProto { name: name.into(), dims: dims.to_vec(), data_type: 1, ..Default::default() }
}

/// `add(x, w)` with one initializer `w`.
fn add_with(w: TensorProto) -> Vec<u8> {
    G::new(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![vi("x", DType::F32, &[D::N(3)])],
        vec![vi("y", DType::F32, &[D::N(3)])],
    )
    .inits(vec![w])
    .bytes()
}

/// Protobuf varint encoding.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field header (`field`, wire type 2) claiming `len` bytes.
fn ld_header(field: u64, len: u64) -> Vec<u8> {
    let mut out = vec![];
    varint(field << 3 | 2, &mut out);
    varint(len, &mut out);
    out
}

/// A graph nested `depth` times through `If` nodes' `then_branch` attributes.
fn nested_graph(depth: usize) -> GraphProto {
    let mut g = GraphProto { name: "leaf".into(), ..Default::default() };
    for _ in 0..depth {
        let attr =
            AttributeProto { name: "then_branch".into(), r#type: attr_type::GRAPH, g: Some(g), ..Default::default() };
        g = GraphProto {
            node: vec![NodeProto {
                op_type: "If".into(),
                input: vec!["c".into()],
                output: vec!["o".into()],
                attribute: vec![attr],
                ..Default::default()
            }],
            ..Default::default()
        };
    }
    g
}

/// The hostile seeds, by name.
fn hostile() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![];
    let relu_bytes = relu().bytes();
    // Truncations: mid-message, inside the graph, one byte short.
    v.push(("truncated_half", relu_bytes[..relu_bytes.len() / 2].to_vec()));
    v.push(("truncated_one_short", relu_bytes[..relu_bytes.len() - 1].to_vec()));
    let conv = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/ops/conv_groups2.onnx")).unwrap();
    v.push(("truncated_conv", conv[..conv.len() * 2 / 3].to_vec()));

    // Rank and element-count bombs, negative and overflowing dims.
    v.push(("init_elements_2p62", add_with(bare("w", &[1 << 31, 1 << 31]))));
    v.push(("init_dims_overflow", add_with(bare("w", &[i64::MAX, i64::MAX, 4]))));
    v.push(("init_rank_100", add_with(bare("w", &[1; 100]))));
    v.push(("init_negative_dim", add_with(t_f32("w", &[-1], &[]))));
    v.push(("init_min_dim", add_with(bare("w", &[i64::MIN, 1]))));
    let dims: Vec<D> = (0..100).map(|_| D::N(1)).collect();
    v.push((
        "input_rank_100",
        G::new(
            vec![node("Relu", &["x"], &["y"], vec![])],
            vec![vi("x", DType::F32, &dims)],
            vec![vi("y", DType::F32, &[])],
        )
        .bytes(),
    ));
    v.push((
        "input_dims_huge",
        G::new(
            vec![node("Relu", &["x"], &["y"], vec![])],
            vec![vi("x", DType::F32, &[D::N(1 << 40), D::N(i64::MAX), D::N(-7)])],
            vec![vi("y", DType::F32, &[])],
        )
        .bytes(),
    ));

    // Wrong initializer sizes.
    v.push(("init_raw_short", add_with(t_f32("w", &[3], &[1., 2.]))));
    let mut w = t_f32("w", &[3], &[]);
    w.float_data = vec![1.0; 4];
    v.push(("init_float_data_long", add_with(w)));
    v.push(("init_int64_data_short", add_with(t_i64("w", &[3], &[1]))));

    // External data: refused without a source; bad references with one.
    let ext = |entries: &[(&str, &str)]| {
        let mut w = t_f32("w", &[3], &[]);
        w.data_location = 1;
        w.external_data =
            entries.iter().map(|(k, v)| StringStringEntryProto { key: (*k).into(), value: (*v).into() }).collect();
        add_with(w)
    };
    v.push(("external_data", ext(&[("location", "w.bin"), ("offset", "0"), ("length", "12")])));
    v.push(("external_data_traversal", ext(&[("location", "../../etc/passwd")])));
    v.push(("external_data_offset_overflow", ext(&[("location", "w.bin"), ("offset", "18446744073709551615")])));
    let mut huge = bare("w", &[1 << 20, 1 << 20]);
    huge.data_location = 1;
    huge.external_data = vec![StringStringEntryProto { key: "location".into(), value: "w.bin".into() }];
    v.push(("external_data_huge", add_with(huge)));

    // Cycles and dangling names.
    v.push((
        "cycle_two_nodes",
        G::new(
            vec![node("Add", &["x", "b"], &["a"], vec![]), node("Relu", &["a"], &["b"], vec![])],
            vec![vi("x", DType::F32, &[D::N(2)])],
            vec![vi("b", DType::F32, &[D::N(2)])],
        )
        .bytes(),
    ));
    v.push((
        "cycle_self",
        G::new(
            vec![node("Relu", &["a"], &["a"], vec![])],
            vec![vi("x", DType::F32, &[D::N(2)])],
            vec![vi("a", DType::F32, &[D::N(2)])],
        )
        .bytes(),
    ));
    v.push((
        "dangling_input",
        G::new(
            vec![node("Add", &["x", "ghost"], &["y"], vec![])],
            vec![vi("x", DType::F32, &[D::N(2)])],
            vec![vi("y", DType::F32, &[D::N(2)])],
        )
        .bytes(),
    ));
    let mut g = relu();
    g.outputs[0].name = "nowhere".into();
    v.push(("dangling_output", g.bytes()));
    let mut g = relu();
    g.nodes.push(node("Relu", &["x"], &["y"], vec![]));
    v.push(("produced_twice", g.bytes()));

    // Wire-level bombs: a graph field claiming 2^62 bytes, a tensor's raw_data claiming
    // more than the file, a ten-byte varint, and 10 000 empty nodes (2 bytes each, a whole
    // NodeProto each once decoded).
    let mut b = vec![0x08, 0x08]; // ir_version 8
    b.extend(ld_header(7, 1 << 62));
    b.extend(&relu_bytes[..8]);
    v.push(("varint_len_2p62", b));
    let mut b = relu_bytes.clone();
    b.extend(ld_header(7, 0x7fff_ffff));
    b.extend(ld_header(5, 0x7fff_fff0));
    b.extend([0u8; 16]);
    v.push(("varint_len_past_end", b));
    let mut b = vec![0x08];
    b.extend([0xff; 9]);
    b.push(0x01);
    b.extend(&relu_bytes);
    v.push(("varint_ten_bytes", b));
    let mut b = relu_bytes.clone();
    let mut graph = vec![];
    for _ in 0..10_000 {
        graph.extend([0x0a, 0x00]); // GraphProto.node, empty
    }
    b.extend(ld_header(7, graph.len() as u64));
    b.extend(graph);
    v.push(("empty_nodes_10k", b));

    // Deep nesting through subgraph attributes (past the decoder's recursion limit, and
    // just under it).
    for (name, depth) in [("nested_graphs_200", 200), ("nested_graphs_40", 40)] {
        let mut p = relu().proto();
        p.graph.as_mut().unwrap().node.push(NodeProto {
            op_type: "If".into(),
            input: vec!["x".into()],
            output: vec!["z".into()],
            attribute: vec![AttributeProto {
                name: "then_branch".into(),
                r#type: attr_type::GRAPH,
                g: Some(nested_graph(depth)),
                ..Default::default()
            }],
            ..Default::default()
        });
        v.push((name, p.encode_to_vec()));
    }

    // Attribute bombs: thousands of attributes, a long ints list, a huge tensor attribute.
    let mut g = relu();
    g.nodes[0].attribute = (0..2000).map(|i| attr_i(&format!("a{i}"), i)).collect();
    v.push(("attributes_2000", g.bytes()));
    v.push((
        "maxpool_kernel_ints_5000",
        one("MaxPool", &["x"], &[("x", 4)], vec![attr_ints("kernel_shape", &[2; 5000])], vec![]),
    ));
    v.push((
        "constant_value_bomb",
        untyped_outputs(
            G::new(
                vec![node("Constant", &[], &["y"], vec![attr_t("value", bare("v", &[1 << 30, 1 << 30]))])],
                vec![],
                vec![vi("y", DType::F32, &[])],
            )
            .proto(),
        ),
    ));
    v.push((
        "constant_value_ints_bomb",
        untyped_outputs(
            G::new(
                vec![node("Constant", &[], &["y"], vec![attr_ints("value_ints", &[1; 3000])])],
                vec![],
                vec![vi("y", DType::F32, &[])],
            )
            .proto(),
        ),
    ));

    // Operators asked for huge outputs or work at run time (small inputs, huge shapes).
    let shape = |dims: &[i64]| t_i64("s", &[dims.len() as i64], dims);
    let huge3 = [1 << 30, 1 << 30, 1 << 30];
    v.push(("reshape_huge", one("Reshape", &["x", "s"], &[("x", 1)], vec![], vec![shape(&huge3)])));
    v.push(("expand_huge", one("Expand", &["x", "s"], &[("x", 1)], vec![], vec![shape(&huge3)])));
    v.push(("expand_negative", one("Expand", &["x", "s"], &[("x", 1)], vec![], vec![shape(&[-1, i64::MIN])])));
    v.push(("tile_huge", one("Tile", &["x", "s"], &[("x", 2)], vec![], vec![shape(&[i64::MAX, 2])])));
    v.push(("pad_huge", one("Pad", &["x", "s"], &[("x", 2)], vec![], vec![shape(&[1 << 40, 0, i64::MAX, -1])])));
    // Found by fuzzing: opposite extreme pads leave a sane shape but overflowed `o - pad`.
    v.push((
        "regress_pad_opposite_extremes",
        one("Pad", &["x", "s"], &[("x", 1)], vec![], vec![shape(&[i64::MIN, i64::MAX])]),
    ));
    v.push((
        "regress_pad_reflect_extremes",
        one("Pad", &["x", "s"], &[("x", 1)], vec![attr_s("mode", "reflect")], vec![shape(&[i64::MAX, i64::MIN + 3])]),
    ));
    // Found by fuzzing: a negative step on an empty axis clamped with min > max (a panic
    // in release builds too).
    v.push((
        "regress_slice_negative_step_empty_axis",
        untyped_outputs(
            G::new(
                vec![node("Slice", &["e", "s", "t", "a", "p"], &["y"], vec![])],
                vec![],
                vec![vi("y", DType::F32, &[])],
            )
            .inits(vec![
                t_f32("e", &[2, 0], &[]),
                shape(&[-1]),
                t_i64("t", &[1], &[i64::MIN]),
                t_i64("a", &[1], &[1]),
                t_i64("p", &[1], &[-1]),
            ])
            .proto(),
        ),
    ));
    v.push((
        "constant_of_shape_huge",
        untyped_outputs(
            G::new(vec![node("ConstantOfShape", &["s"], &["y"], vec![])], vec![], vec![vi("y", DType::F32, &[])])
                .inits(vec![shape(&huge3)])
                .proto(),
        ),
    ));
    v.push((
        "range_huge",
        untyped_outputs(
            G::new(vec![node("Range", &["a", "b", "c"], &["y"], vec![])], vec![], vec![vi("y", DType::I64, &[])])
                .inits(vec![t_i64("a", &[], &[i64::MIN]), t_i64("b", &[], &[i64::MAX]), t_i64("c", &[], &[1])])
                .proto(),
        ),
    ));
    v.push((
        "range_zero_delta",
        untyped_outputs(
            G::new(vec![node("Range", &["a", "b", "c"], &["y"], vec![])], vec![], vec![vi("y", DType::F32, &[])])
                .inits(vec![t_f32("a", &[], &[0.]), t_f32("b", &[], &[1e30]), t_f32("c", &[], &[1e-30])])
                .proto(),
        ),
    ));
    v.push((
        "resize_scales_huge",
        one("Resize", &["x", "", "r"], &[("x", 4)], vec![], vec![t_f32("r", &[4], &[1., 1., 1e9, 1e9])]),
    ));
    v.push((
        "maxpool_work",
        one(
            "MaxPool",
            &["x"],
            &[("x", 4)],
            vec![
                attr_ints("kernel_shape", &[1 << 30, 1 << 30]),
                attr_ints("pads", &[(1 << 30) - 1; 4]),
                attr_ints("strides", &[1, 1]),
            ],
            vec![],
        ),
    ));
    v.push((
        "conv_transpose_huge",
        one(
            "ConvTranspose",
            &["x", "w"],
            &[("x", 4)],
            vec![attr_ints("strides", &[1 << 30, 1 << 30]), attr_ints("output_padding", &[1 << 29, 0])],
            vec![t_f32("w", &[1, 1, 1, 1], &[1.])],
        ),
    ));
    v.push((
        "conv_kernel_huge",
        one(
            "Conv",
            &["x", "w"],
            &[("x", 4)],
            vec![attr_ints("kernel_shape", &[i64::MAX, 1])],
            vec![t_f32("w", &[1, 1, 1, 1], &[1.])],
        ),
    ));
    v.push((
        "gather_axis_huge",
        one("Gather", &["x", "s"], &[("x", 2)], vec![attr_i("axis", i64::MIN)], vec![shape(&[0])]),
    ));
    v.push(("topk_k_huge", one("TopK", &["x", "s"], &[("x", 2)], vec![], vec![shape(&[i64::MAX])])));
    v.push((
        "slice_steps_zero",
        one("Slice", &["x", "s", "s", "s", "z"], &[("x", 2)], vec![], vec![shape(&[0]), t_i64("z", &[1], &[0])]),
    ));
    v.push(("softmax_axis_min", one("Softmax", &["x"], &[("x", 2)], vec![attr_i("axis", i64::MIN)], vec![])));
    v.push(("concat_axis_max", one("Concat", &["x", "x"], &[("x", 2)], vec![attr_i("axis", i64::MAX)], vec![])));
    v.push(("flatten_axis_max", one("Flatten", &["x"], &[("x", 2)], vec![attr_i("axis", i64::MAX)], vec![])));
    v.push(("split_negative", one("Split", &["x", "s"], &[("x", 1)], vec![], vec![shape(&[-5, 9])])));
    v.push(("cumsum_axis_huge", one("CumSum", &["x", "s"], &[("x", 2)], vec![], vec![t_i64("s", &[], &[i64::MAX])])));
    let mut big_opset = relu().proto();
    big_opset.opset_import = vec![OperatorSetIdProto { domain: String::new(), version: i64::MAX }];
    v.push(("opset_max", big_opset.encode_to_vec()));
    v
}

/// Well-formed models whose values are edge cases: a NaN with a payload and a negative
/// NaN (whose bits only MatMul, Gemm and Conv canonicalize), infinities, -0.0 and a
/// subnormal, flowing through normalization, softmax, pooling and a product.
fn edge() -> Vec<(&'static str, Vec<u8>)> {
    let odd = [
        f32::from_bits(0x7fc9_5ec1),
        f32::from_bits(0xffc0_0001),
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        1e-45,
        1.5,
        -2.0,
    ];
    let w = t_f32("w", &[8], &odd);
    let x = || vec![vi("x", DType::F32, &[D::P("n"), D::N(8)])];
    let mut v = vec![];
    for (name, op, attrs) in [
        ("layernorm_nan_payload", "LayerNormalization", vec![attr_i("axis", -1)]),
        ("softmax_nan_payload", "Softmax", vec![attr_i("axis", -1)]),
        ("reducemax_nan_payload", "ReduceMax", vec![attr_ints("axes", &[1])]),
    ] {
        let ins: &[&str] = if op == "LayerNormalization" { &["s", "w"] } else { &["s"] };
        let g = G::new(
            vec![node("Add", &["x", "w"], &["s"], vec![]), node(op, ins, &["y"], attrs)],
            x(),
            vec![vi("y", DType::F32, &[])],
        )
        .inits(vec![w.clone()]);
        v.push((name, untyped_outputs(g.proto())));
    }
    let g = G::new(
        vec![node("Mul", &["x", "w"], &["s"], vec![]), node("MatMul", &["s", "m"], &["y"], vec![])],
        x(),
        vec![vi("y", DType::F32, &[])],
    )
    .inits(vec![w, t_f32("m", &[8, 2], &odd.iter().chain(&odd).copied().collect::<Vec<_>>())]);
    v.push(("matmul_nan_payload", untyped_outputs(g.proto())));
    v
}

/// A tensor of `dtype` (a code) with `int32_data`.
fn t_i32data(name: &str, dtype: i32, dims: &[i64], data: &[i32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: dtype,
        int32_data: data.to_vec(),
        ..Default::default()
    }
}

/// One node at `opset` reading float inputs `x` and `y` (dims: 0 is dynamic) and
/// initializers; outputs `outs`, their types left to inference.
fn node_seed(
    opset: i64,
    op: &str,
    ins: &[&str],
    outs: &[&str],
    dims: &[i64],
    attrs: Vec<AttributeProto>,
    inits: Vec<TensorProto>,
) -> Vec<u8> {
    let decl = |n: &str| {
        let d: Vec<D> = dims.iter().map(|&d| if d == 0 { D::P("n") } else { D::N(d) }).collect();
        vi(n, DType::F32, &d)
    };
    let graph_inputs = ["x", "y"].into_iter().filter(|n| ins.contains(n)).map(decl).collect();
    let g =
        G::new(vec![node(op, ins, outs, attrs)], graph_inputs, outs.iter().map(|o| vi(o, DType::F32, &[])).collect())
            .inits(inits)
            .opset(opset);
    untyped_outputs(g.proto())
}

/// The `op_*` seeds.
fn ops() -> Vec<(String, Vec<u8>)> {
    let mut v = vec![];
    let x = &["x"][..];
    let y = &["y"][..];
    let m2 = &[0, 5][..];
    let m3 = &[0, 3, 4][..];
    let m4 = &[0, 3, 4, 4][..];
    let i64s = |n: &str, d: &[i64]| t_i64(n, &[d.len() as i64], d);
    let f32s = |n: &str, d: &[f32]| t_f32(n, &[d.len() as i64], d);
    let scalar = |n: &str, f: f32| t_f32(n, &[], &[f]);
    for (op, opset, attrs) in [
        ("Abs", 13, vec![]),
        ("Ceil", 13, vec![]),
        ("Floor", 13, vec![]),
        ("Neg", 13, vec![]),
        ("Sign", 13, vec![]),
        ("Sqrt", 13, vec![]),
        ("Log", 13, vec![]),
        ("Exp", 13, vec![]),
        ("Erf", 13, vec![]),
        ("Reciprocal", 13, vec![]),
        ("Round", 13, vec![]),
        ("Softplus", 13, vec![]),
        ("Softsign", 13, vec![]),
        ("Elu", 13, vec![attr_f("alpha", 0.5)]),
        ("Selu", 13, vec![]),
        ("Celu", 13, vec![attr_f("alpha", 2.0)]),
        ("HardSigmoid", 13, vec![attr_f("alpha", 0.3), attr_f("beta", 0.4)]),
        ("LeakyRelu", 13, vec![attr_f("alpha", 0.1)]),
        ("ThresholdedRelu", 13, vec![attr_f("alpha", 0.5)]),
        ("IsNaN", 13, vec![]),
        ("IsInf", 13, vec![attr_i("detect_negative", 0)]),
        ("HardSwish", 14, vec![]),
        ("Mish", 18, vec![]),
        ("Gelu", 20, vec![attr_s("approximate", "tanh")]),
        ("Dropout", 13, vec![]),
        ("LogSoftmax", 13, vec![attr_i("axis", 1)]),
        ("Hardmax", 13, vec![attr_i("axis", -1)]),
        ("ArgMin", 13, vec![attr_i("axis", 1), attr_i("keepdims", 0), attr_i("select_last_index", 1)]),
        ("ReduceMean", 13, vec![attr_ints("axes", &[-1]), attr_i("keepdims", 0)]),
        ("ReduceMax", 13, vec![attr_ints("axes", &[0, 2])]),
        ("ReduceMin", 13, vec![]),
        ("ReduceProd", 13, vec![attr_ints("axes", &[1])]),
        ("ReduceLogSum", 13, vec![attr_ints("axes", &[2])]),
        ("ReduceLogSumExp", 13, vec![attr_ints("axes", &[1])]),
        ("ReduceSumSquare", 13, vec![attr_ints("axes", &[0])]),
        ("Transpose", 13, vec![attr_ints("perm", &[2, 0, 1])]),
        ("Flatten", 13, vec![attr_i("axis", 2)]),
        ("Shape", 15, vec![attr_i("start", 1), attr_i("end", -1)]),
        ("Size", 13, vec![]),
        ("Concat", 13, vec![attr_i("axis", 1)]),
        ("Upsample", 7, vec![attr_floats("scales", &[1.0, 1.0, 2.0])]),
    ] {
        let ins: &[&str] = if op == "Concat" { &["x", "x"] } else { x };
        v.push((op.to_string(), node_seed(opset, op, ins, y, m3, attrs, vec![])));
    }
    for (op, attrs) in [
        ("Pow", vec![]),
        ("Mod", vec![attr_i("fmod", 1)]),
        ("Max", vec![]),
        ("Min", vec![]),
        ("Mean", vec![]),
        ("Sum", vec![]),
        ("Equal", vec![]),
        ("Greater", vec![]),
        ("LessOrEqual", vec![]),
        ("PRelu", vec![]),
    ] {
        v.push((
            op.to_string(),
            node_seed(13, op, &["x", "w"], y, m2, attrs, vec![f32s("w", &[0.5, -1.0, 2.0, 0.0, 3.0])]),
        ));
    }
    let mut push = |name: &str, bytes: Vec<u8>| v.push((name.to_string(), bytes));
    push(
        "Where",
        node_seed(
            13,
            "Where",
            &["c", "x", "w"],
            y,
            m2,
            vec![],
            vec![t_i32data("c", 9, &[5], &[1, 0, 1, 1, 0]), scalar("w", -1.0)],
        ),
    );
    push(
        "Clip",
        node_seed(13, "Clip", &["x", "lo", "hi"], y, m2, vec![], vec![scalar("lo", -0.5), scalar("hi", 0.75)]),
    );
    push("CastLike", node_seed(15, "CastLike", &["x", "t"], y, m2, vec![], vec![t_i64("t", &[1], &[0])]));
    push(
        "ReduceSum",
        node_seed(13, "ReduceSum", &["x", "a"], y, m3, vec![attr_i("keepdims", 1)], vec![i64s("a", &[1, -1])]),
    );
    push(
        "CumSum",
        node_seed(
            13,
            "CumSum",
            &["x", "a"],
            y,
            m3,
            vec![attr_i("exclusive", 1), attr_i("reverse", 1)],
            vec![t_i64("a", &[], &[1])],
        ),
    );
    push(
        "TopK",
        node_seed(
            13,
            "TopK",
            &["x", "k"],
            &["y", "i"],
            m3,
            vec![attr_i("axis", -1), attr_i("largest", 0)],
            vec![i64s("k", &[2])],
        ),
    );
    push(
        "Split",
        node_seed(13, "Split", &["x", "s"], &["y", "z"], m3, vec![attr_i("axis", 1)], vec![i64s("s", &[1, 2])]),
    );
    push("Squeeze", node_seed(13, "Squeeze", &["x", "a"], y, &[0, 1, 4], vec![], vec![i64s("a", &[1])]));
    push("Unsqueeze", node_seed(13, "Unsqueeze", &["x", "a"], y, m3, vec![], vec![i64s("a", &[0, -1])]));
    push(
        "Slice",
        node_seed(
            13,
            "Slice",
            &["x", "s", "e", "a", "t"],
            y,
            m3,
            vec![],
            vec![i64s("s", &[3, 0]), i64s("e", &[-5, 9]), i64s("a", &[2, 1]), i64s("t", &[-2, 2])],
        ),
    );
    push(
        "Gather",
        node_seed(13, "Gather", &["x", "i"], y, m3, vec![attr_i("axis", 1)], vec![t_i64("i", &[2, 2], &[0, -1, 2, 1])]),
    );
    push(
        "GatherElements",
        node_seed(
            13,
            "GatherElements",
            &["x", "i"],
            y,
            m2,
            vec![attr_i("axis", 1)],
            vec![t_i64("i", &[1, 3], &[4, 0, -2])],
        ),
    );
    push("Expand", node_seed(13, "Expand", &["x", "s"], y, &[0, 1], vec![], vec![i64s("s", &[2, 1, 3])]));
    push("Tile", node_seed(13, "Tile", &["x", "r"], y, m2, vec![], vec![i64s("r", &[2, 1])]));
    push(
        "Pad",
        node_seed(
            18,
            "Pad",
            &["x", "p", "c", "a"],
            y,
            m3,
            vec![attr_s("mode", "edge")],
            vec![i64s("p", &[1, 0, 0, 2]), scalar("c", 0.0), i64s("a", &[1, -1])],
        ),
    );
    push(
        "Pad_wrap",
        node_seed(19, "Pad", &["x", "p"], y, m2, vec![attr_s("mode", "wrap")], vec![i64s("p", &[0, 7, 0, -1])]),
    );
    push(
        "ConstantOfShape",
        node_seed(
            13,
            "ConstantOfShape",
            &["s"],
            y,
            m2,
            vec![attr_t("value", f32s("v", &[2.5]))],
            vec![i64s("s", &[2, 3])],
        ),
    );
    push(
        "Range",
        node_seed(
            13,
            "Range",
            &["a", "b", "c"],
            y,
            m2,
            vec![],
            vec![scalar("a", 0.0), scalar("b", 5.0), scalar("c", 1.5)],
        ),
    );
    push(
        "Resize",
        node_seed(
            13,
            "Resize",
            &["x", "", "s"],
            y,
            m4,
            vec![attr_s("mode", "linear"), attr_s("coordinate_transformation_mode", "align_corners")],
            vec![f32s("s", &[1.0, 1.0, 1.5, 0.5])],
        ),
    );
    push(
        "Resize_sizes",
        node_seed(
            13,
            "Resize",
            &["x", "", "", "s"],
            y,
            m4,
            vec![attr_s("mode", "nearest")],
            vec![i64s("s", &[1, 3, 7, 2])],
        ),
    );
    push(
        "AveragePool",
        node_seed(
            13,
            "AveragePool",
            x,
            y,
            m4,
            vec![
                attr_ints("kernel_shape", &[2, 3]),
                attr_ints("pads", &[1, 1, 0, 0]),
                attr_i("count_include_pad", 1),
                attr_i("ceil_mode", 1),
            ],
            vec![],
        ),
    );
    push("GlobalAveragePool", node_seed(13, "GlobalAveragePool", x, y, m4, vec![], vec![]));
    push("GlobalMaxPool", node_seed(13, "GlobalMaxPool", x, y, m4, vec![], vec![]));
    push("LRN", node_seed(13, "LRN", x, y, m4, vec![attr_i("size", 3)], vec![]));
    let c3 = |n: &str, d: [f32; 3]| f32s(n, &d);
    push(
        "BatchNormalization",
        node_seed(
            15,
            "BatchNormalization",
            &["x", "s", "b", "m", "v"],
            y,
            m4,
            vec![attr_f("epsilon", 1e-3)],
            vec![
                c3("s", [1.0, 2.0, 0.5]),
                c3("b", [0.0, 1.0, -1.0]),
                c3("m", [0.1, 0.2, 0.3]),
                c3("v", [1.0, 0.0, 4.0]),
            ],
        ),
    );
    push(
        "InstanceNormalization",
        node_seed(
            13,
            "InstanceNormalization",
            &["x", "s", "b"],
            y,
            m4,
            vec![],
            vec![c3("s", [1.0, 2.0, 0.5]), c3("b", [0.0, 1.0, -1.0])],
        ),
    );
    push(
        "LayerNormalization",
        node_seed(
            17,
            "LayerNormalization",
            &["x", "s", "b"],
            y,
            m3,
            vec![attr_i("axis", -1)],
            vec![f32s("s", &[1.0, 2.0, 0.5, 1.0]), f32s("b", &[0.0, 1.0, -1.0, 0.0])],
        ),
    );
    push(
        "ConvTranspose",
        node_seed(
            13,
            "ConvTranspose",
            &["x", "w"],
            y,
            m4,
            vec![attr_ints("strides", &[2, 2]), attr_ints("pads", &[1, 1, 1, 1]), attr_ints("output_padding", &[1, 0])],
            vec![t_f32("w", &[3, 2, 3, 3], &[0.25; 54])],
        ),
    );
    push(
        "Conv_grouped",
        node_seed(
            13,
            "Conv",
            &["x", "w"],
            y,
            m4,
            vec![attr_i("group", 3), attr_ints("dilations", &[2, 1]), attr_s("auto_pad", "SAME_LOWER")],
            vec![t_f32("w", &[3, 1, 2, 2], &[0.5; 12])],
        ),
    );
    push(
        "QuantizeLinear",
        node_seed(
            13,
            "QuantizeLinear",
            &["x", "s", "z"],
            y,
            m2,
            vec![],
            vec![scalar("s", 0.1), t_i32data("z", 2, &[], &[3])],
        ),
    );
    push(
        "DequantizeLinear",
        node_seed(
            13,
            "DequantizeLinear",
            &["q", "s", "z"],
            y,
            m2,
            vec![],
            vec![t_i32data("q", 3, &[4], &[-128, 0, 5, 127]), scalar("s", 0.5), t_i32data("z", 3, &[], &[-1])],
        ),
    );
    push(
        "MatMulInteger",
        node_seed(
            13,
            "MatMulInteger",
            &["a", "b"],
            y,
            m2,
            vec![],
            vec![t_i32data("a", 2, &[2, 3], &[1, 2, 3, 4, 5, 255]), t_i32data("b", 2, &[3, 1], &[7, 0, 9])],
        ),
    );
    v
}

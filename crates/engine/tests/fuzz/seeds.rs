//! The seed corpus: how every file in `__fuzz__/loader/corpus/` is made.
//!
//! Two kinds of seed, both written by [`all`]:
//! - `fixture_*`: copies of small, well-formed models from `fixtures/` (a few per operator
//!   family, and the small architecture models), so mutations start from graphs that
//!   load and run;
//! - `edge_*`: well-formed models with edge-case values (NaNs with payloads, infinities,
//!   -0.0, subnormals), which must load and run;
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

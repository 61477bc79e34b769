//! Hostile and malformed models: every one is an error with a clear message, never a panic.

use crate::build::*;
use deed_engine::onnx::{OperatorSetIdProto, TensorProto};
use deed_engine::{Limits, LoadError, Model, RunError, RunOptions};
use deed_types::{DType, Tensor, TensorSet};
use proptest::prelude::*;

fn relu_graph() -> G {
    G::new(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![vi("x", DType::F32, &[D::N(2)])],
        vec![vi("y", DType::F32, &[D::N(2)])],
    )
}

fn load_err(bytes: &[u8]) -> LoadError {
    Model::load(bytes).expect_err("the model must be refused")
}

#[test]
fn not_onnx() {
    assert!(matches!(load_err(b""), LoadError::NotOnnx(_)));
    assert!(matches!(load_err(b"hello, this is not a model"), LoadError::NotOnnx(_)));
    let e = load_err(&[0xff; 64]);
    assert!(e.to_string().starts_with("not an ONNX model: "), "{e}");
}

#[test]
fn truncated_everywhere() {
    let bytes = relu_graph().bytes();
    assert!(Model::load(&bytes).is_ok());
    for cut in 0..bytes.len() {
        // Some prefixes are themselves well-formed; none may panic.
        let _ = Model::load(&bytes[..cut]);
    }
    assert!(matches!(load_err(&bytes[..bytes.len() - 3]), LoadError::NotOnnx(_)));
}

#[test]
fn unsupported_op_named_at_load() {
    let mut g = relu_graph();
    g.nodes[0].op_type = "LSTM".into();
    let e = load_err(&g.bytes());
    assert!(matches!(&e, LoadError::UnsupportedOp { op, opset: 13, .. } if op == "LSTM"), "{e:?}");
    assert_eq!(e.to_string(), "unsupported operator 'LSTM' (domain 'ai.onnx', opset 13)");
    let mut g = relu_graph();
    g.nodes[0].domain = "com.microsoft".into();
    g.nodes[0].op_type = "FusedGemm".into();
    let mut p = g.proto();
    p.opset_import.push(OperatorSetIdProto { domain: "com.microsoft".into(), version: 1 });
    let e = load_err(&prost::Message::encode_to_vec(&p));
    assert_eq!(e.to_string(), "unsupported operator 'FusedGemm' (domain 'com.microsoft', opset 1)");
}

#[test]
fn unsupported_opset_and_dtypes() {
    let e = load_err(&relu_graph().opset(6).bytes());
    assert!(matches!(e, LoadError::UnsupportedOpset { version: 6, .. }), "{e}");
    let e = load_err(&relu_graph().opset(99).bytes());
    assert!(e.to_string().contains("opset 99"), "{e}");
    // Conv on int64 is refused at load, not at run.
    let g = G::new(
        vec![node("Conv", &["x", "w"], &["y"], vec![])],
        vec![vi("x", DType::I64, &[D::N(1), D::N(1), D::N(3), D::N(3)])],
        vec![vi("y", DType::I64, &[])],
    )
    .inits(vec![t_i64("w", &[1, 1, 1, 1], &[1])]);
    let e = load_err(&g.bytes());
    assert!(matches!(e, LoadError::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("Conv"), "{e}");
    // A float16 input.
    let mut g = relu_graph();
    g.inputs[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().elem_type = 10;
    let e = load_err(&g.bytes());
    assert!(e.to_string().contains("FLOAT16"), "{e}");
    // Declared output dtype that the graph does not compute.
    let mut g = relu_graph();
    g.outputs[0] = vi("y", DType::I64, &[D::N(2)]);
    assert!(matches!(load_err(&g.bytes()), LoadError::Invalid(_)));
    // Bad attribute values.
    let mut g = relu_graph();
    g.nodes[0] = node("Conv", &["x", "x"], &["y"], vec![attr_s("auto_pad", "SOMETIMES")]);
    assert!(load_err(&g.bytes()).to_string().contains("auto_pad"));
    // MaxPool's Indices: storage_order 0 or 1, and only from opset 8.
    let mut g = relu_graph();
    g.nodes[0] =
        node("MaxPool", &["x"], &["y", "idx"], vec![attr_ints("kernel_shape", &[2]), attr_i("storage_order", 2)]);
    assert!(load_err(&g.bytes()).to_string().contains("storage_order"));
    let mut g = relu_graph().opset(7);
    g.nodes[0] = node("MaxPool", &["x"], &["y", "idx"], vec![attr_ints("kernel_shape", &[2])]);
    assert!(load_err(&g.bytes()).to_string().contains("Indices"));
}

#[test]
fn external_data_refused() {
    let mut w = t_f32("w", &[2], &[1., 2.]);
    w.raw_data.clear();
    w.data_location = 1;
    w.external_data.push(deed_engine::onnx::StringStringEntryProto { key: "location".into(), value: "w.bin".into() });
    let g = G::new(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![vi("x", DType::F32, &[D::N(2)])],
        vec![vi("y", DType::F32, &[D::N(2)])],
    )
    .inits(vec![w]);
    let e = load_err(&g.bytes());
    assert!(matches!(&e, LoadError::ExternalData(n) if n == "w"), "{e:?}");
    assert!(e.to_string().contains("as a bundle"), "{e}");
}

/// External data read through an [`ExternalData`]: a map from file name to bytes.
struct Files(std::collections::HashMap<String, Vec<u8>>);

impl deed_engine::ExternalData for Files {
    fn read(&self, location: &str, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        let f = self.0.get(location).ok_or_else(|| format!("no file {location}"))?;
        let start = usize::try_from(offset).map_err(|e| e.to_string())?;
        f.get(start..start.checked_add(length).ok_or("overflow")?).map(<[u8]>::to_vec).ok_or_else(|| "short".into())
    }
}

#[test]
fn external_data_loads_through_a_source_and_bad_references_are_refused() {
    // The weights [10, 20] live at offset 8 of "w.safetensors" (after 8 bytes of header).
    let mut file = vec![0xAA; 8];
    file.extend([10f32, 20.].iter().flat_map(|v| v.to_le_bytes()));
    let files = Files([("w.safetensors".to_string(), file)].into_iter().collect());
    let entry = |k: &str, v: &str| deed_engine::onnx::StringStringEntryProto { key: k.into(), value: v.into() };
    let graph = |entries: Vec<deed_engine::onnx::StringStringEntryProto>, inline: bool| {
        let mut w = t_f32("w", &[2], &[1., 2.]);
        if !inline {
            w.raw_data.clear();
        }
        w.data_location = 1;
        w.external_data = entries;
        G::new(
            vec![node("Add", &["x", "w"], &["y"], vec![])],
            vec![vi("x", DType::F32, &[D::N(2)])],
            vec![vi("y", DType::F32, &[D::N(2)])],
        )
        .inits(vec![w])
        .bytes()
    };
    let ok = graph(vec![entry("location", "w.safetensors"), entry("offset", "8"), entry("length", "8")], false);
    let m = Model::load_external(&ok, &Limits::default(), &files).unwrap();
    let x = Tensor::f32(vec![2], vec![1., 2.]);
    let out = m.run(&TensorSet([("x".to_string(), x)].into_iter().collect()), &RunOptions::default()).unwrap();
    assert_eq!(out.outputs.0["y"], Tensor::f32(vec![2], vec![11., 22.]));
    // Without a source, refused as before.
    assert!(matches!(load_err(&ok), LoadError::ExternalData(_)));
    let refused = |entries, inline| {
        Model::load_external(&graph(entries, inline), &Limits::default(), &files).expect_err("must be refused")
    };
    for (entries, want) in [
        (vec![entry("location", "../w.safetensors"), entry("offset", "8")], "bare file name"),
        (vec![entry("location", "/etc/passwd")], "bare file name"),
        (vec![entry("location", ".hidden")], "bare file name"),
        (vec![entry("location", "w.safetensors"), entry("offset", "8"), entry("length", "4")], "length 4"),
        (vec![entry("location", "w.safetensors"), entry("offset", "12")], "short"),
        (vec![entry("location", "w.safetensors"), entry("offset", "18446744073709551615")], "overflows"),
        (vec![entry("location", "w.safetensors"), entry("offset", "-1")], "not a number"),
        (vec![entry("location", "w.safetensors"), entry("mode", "mmap")], "unknown key"),
        (vec![entry("offset", "8")], "without a location"),
        (vec![entry("location", "other.safetensors")], "no file"),
    ] {
        let e = refused(entries, false).to_string();
        assert!(e.contains(want), "{e} (wanted '{want}')");
    }
    let e = refused(vec![entry("location", "w.safetensors"), entry("offset", "8")], true).to_string();
    assert!(e.contains("inline data"), "{e}");
}

#[test]
fn initializer_size_must_match_dims() {
    let mut w = t_f32("w", &[3], &[1., 2.]);
    let g = |w: TensorProto| {
        G::new(
            vec![node("Add", &["x", "w"], &["y"], vec![])],
            vec![vi("x", DType::F32, &[D::N(3)])],
            vec![vi("y", DType::F32, &[D::N(3)])],
        )
        .inits(vec![w])
        .bytes()
    };
    let e = load_err(&g(w.clone()));
    assert!(e.to_string().contains("8 bytes of data but its shape [3] of float32 needs 12"), "{e}");
    w.raw_data.clear();
    w.float_data = vec![1.0; 4];
    assert!(load_err(&g(w.clone())).to_string().contains("4 values"));
    w.dims = vec![-1];
    assert!(load_err(&g(w)).to_string().contains("negative"));
}

#[test]
fn rank_and_element_bombs() {
    // An initializer claiming 2^62 elements with no data.
    let w = TensorProto { name: "w".into(), dims: vec![1 << 31, 1 << 31], data_type: 1, ..Default::default() };
    let g = G::new(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![vi("x", DType::F32, &[D::N(1)])],
        vec![vi("y", DType::F32, &[])],
    )
    .inits(vec![w.clone()]);
    assert!(matches!(load_err(&g.bytes()), LoadError::OverLimit { .. }));
    // Overflowing product.
    let mut w2 = w.clone();
    w2.dims = vec![i64::MAX, i64::MAX, 4];
    let mut g = relu_graph();
    g.nodes[0] = node("Add", &["x", "w"], &["y"], vec![]);
    g.inits = vec![w2];
    assert!(matches!(load_err(&g.bytes()), LoadError::OverLimit { .. }));
    // Rank 100.
    let mut w3 = w;
    w3.dims = vec![1; 100];
    let mut g = relu_graph();
    g.nodes[0] = node("Add", &["x", "w"], &["y"], vec![]);
    g.inits = vec![w3];
    assert!(matches!(load_err(&g.bytes()), LoadError::OverLimit { .. }));
    // Input declared with rank 100.
    let dims: Vec<D> = (0..100).map(|_| D::N(1)).collect();
    let g = G::new(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![vi("x", DType::F32, &dims)],
        vec![vi("y", DType::F32, &[])],
    );
    assert!(matches!(load_err(&g.bytes()), LoadError::OverLimit { .. }));
    // A Reshape to a huge shape fails at run with OverLimit, without allocating.
    let g = G::new(
        vec![node("Reshape", &["x", "s"], &["y"], vec![])],
        vec![vi("x", DType::F32, &[D::N(1)])],
        vec![vi("y", DType::F32, &[])],
    )
    .inits(vec![t_i64("s", &[3], &[1 << 30, 1 << 30, 1 << 30])]);
    let m = Model::load(&g.bytes()).unwrap();
    let mut s = TensorSet::default();
    s.0.insert("x".into(), Tensor::f32(vec![1], vec![1.0]));
    let e = m.run(&s, &RunOptions::default()).unwrap_err();
    assert!(matches!(e, RunError::OverLimit { .. }), "{e}");
    // MatMul whose output would be huge: [2^15, 1] x [1, 2^15] = 2^30 elements.
    let g = G::new(
        vec![node("MatMul", &["a", "b"], &["y"], vec![])],
        vec![vi("a", DType::F32, &[D::P("m"), D::N(1)]), vi("b", DType::F32, &[D::N(1), D::P("n")])],
        vec![vi("y", DType::F32, &[])],
    );
    let m = Model::load(&g.bytes()).unwrap();
    let mut s = TensorSet::default();
    s.0.insert("a".into(), Tensor::f32(vec![1 << 15, 1], vec![1.0; 1 << 15]));
    s.0.insert("b".into(), Tensor::f32(vec![1, 1 << 15], vec![1.0; 1 << 15]));
    assert!(matches!(m.run(&s, &RunOptions::default()).unwrap_err(), RunError::OverLimit { .. }));
}

#[test]
fn work_bombs() {
    // A MaxPool whose single window covers 2^60 positions (huge kernel, pads and strides on a 1x1 input).
    let big = 1i64 << 30;
    let g = G::new(
        vec![node(
            "MaxPool",
            &["x"],
            &["y"],
            vec![
                attr_ints("kernel_shape", &[big, big]),
                attr_ints("pads", &[big - 1, big - 1, big - 1, big - 1]),
                attr_ints("strides", &[1 << 31, 1 << 31]),
            ],
        )],
        vec![vi("x", DType::F32, &[D::N(1), D::N(1), D::N(1), D::N(1)])],
        vec![vi("y", DType::F32, &[])],
    );
    let m = Model::load(&g.bytes()).unwrap();
    let mut s = TensorSet::default();
    s.0.insert("x".into(), Tensor::f32(vec![1, 1, 1, 1], vec![1.0]));
    let e = m.run(&s, &RunOptions::default()).unwrap_err();
    assert!(matches!(e, RunError::OverLimit { .. }), "{e}");
    // A MatMul over the work limit.
    let g = G::new(
        vec![node("MatMul", &["a", "b"], &["y"], vec![])],
        vec![vi("a", DType::F32, &[D::N(64), D::N(64)]), vi("b", DType::F32, &[D::N(64), D::N(64)])],
        vec![vi("y", DType::F32, &[])],
    );
    let m = Model::load_with(&g.bytes(), &Limits { op_work_max: 1000, ..Default::default() }).unwrap();
    let mut s = TensorSet::default();
    s.0.insert("a".into(), Tensor::f32(vec![64, 64], vec![1.0; 4096]));
    s.0.insert("b".into(), Tensor::f32(vec![64, 64], vec![1.0; 4096]));
    let e = m.run(&s, &RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("work"), "{e}");
}

#[test]
fn cycle_and_dangling() {
    let g = G::new(
        vec![node("Add", &["x", "b"], &["a"], vec![]), node("Relu", &["a"], &["b"], vec![])],
        vec![vi("x", DType::F32, &[D::N(2)])],
        vec![vi("b", DType::F32, &[D::N(2)])],
    );
    let e = load_err(&g.bytes());
    assert!(e.to_string().contains("cycle"), "{e}");
    let g = G::new(
        vec![node("Relu", &["a"], &["a"], vec![])],
        vec![vi("x", DType::F32, &[D::N(2)])],
        vec![vi("a", DType::F32, &[D::N(2)])],
    );
    assert!(load_err(&g.bytes()).to_string().contains("cycle"));
    let g = G::new(
        vec![node("Add", &["x", "ghost"], &["y"], vec![])],
        vec![vi("x", DType::F32, &[D::N(2)])],
        vec![vi("y", DType::F32, &[D::N(2)])],
    );
    let e = load_err(&g.bytes());
    assert_eq!(
        e.to_string(),
        "invalid model: node 'Add_y' (Add) reads 'ghost', which is not a graph input, an initializer or the output of any node"
    );
    let mut g = relu_graph();
    g.outputs[0].name = "nowhere".into();
    assert!(load_err(&g.bytes()).to_string().contains("nowhere"));
    // A value produced twice.
    let mut g = relu_graph();
    g.nodes.push(node("Relu", &["x"], &["y"], vec![]));
    assert!(load_err(&g.bytes()).to_string().contains("more than once"));
    // Missing required input.
    let mut g = relu_graph();
    g.nodes[0] = node("Add", &["x"], &["y"], vec![]);
    assert!(load_err(&g.bytes()).to_string().contains("required input"));
}

#[test]
fn limits_on_size_and_nodes() {
    let bytes = relu_graph().bytes();
    let e = Model::load_with(&bytes, &Limits { model_bytes_max: 10, ..Default::default() }).unwrap_err();
    assert!(matches!(e, LoadError::OverLimit { .. }));
    assert!(e.to_string().contains("size in bytes"), "{e}");
    let mut g = relu_graph();
    for i in 0..10 {
        g.nodes.push(node("Relu", &["y"], &[&format!("z{i}")], vec![]));
    }
    let e = Model::load_with(&g.bytes(), &Limits { nodes_max: 5, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("node count"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Model::load(&bytes);
    }

    #[test]
    fn mutated_models_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = relu_graph().bytes();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(m) = Model::load(&bytes) {
            // Whatever loaded must run or fail cleanly on a plausible input.
            let mut s = TensorSet::default();
            for info in m.inputs() {
                let shape: Vec<usize> = info.shape.iter().map(|d| d.unwrap_or(2).min(4)).collect();
                let n = shape.iter().product();
                if info.dtype == DType::F32 {
                    s.0.insert(info.name.clone(), Tensor::f32(shape, vec![0.5; n]));
                }
            }
            let _ = m.run(&s, &RunOptions::default());
        }
    }
}

/// One node of any supported type with random small shapes and attributes: it must load
/// and run or fail with an error, never panic.
fn random_node_case(op: usize, shapes: Vec<Vec<usize>>, ints: Vec<i64>, seed: u64) {
    const OPS: [&str; 50] = [
        "Add",
        "ArgMax",
        "Cast",
        "Conv",
        "Div",
        "Exp",
        "Flatten",
        "Gemm",
        "Identity",
        "MatMul",
        "MaxPool",
        "Mul",
        "Relu",
        "Reshape",
        "Sigmoid",
        "Softmax",
        "Sub",
        "Tanh",
        "AveragePool",
        "ConvTranspose",
        "LRN",
        "Concat",
        "Transpose",
        "LogSoftmax",
        "ReduceMean",
        "ReduceMax",
        "CumSum",
        "TopK",
        "Gather",
        "Split",
        "Squeeze",
        "Unsqueeze",
        "Tile",
        "Expand",
        "Pad",
        "Slice",
        "Resize",
        "LayerNormalization",
        "PRelu",
        "Pow",
        "Where",
        "Erf",
        "Log",
        "Sqrt",
        "Gelu",
        "GlobalAveragePool",
        "InstanceNormalization",
        "Clip",
        "Range",
        "Sum",
    ];
    let op = OPS[op % OPS.len()];
    let pick = |i: usize| ints.get(i).copied().unwrap_or(1);
    let window = || {
        let r = (pick(0).rem_euclid(3) + 1) as usize;
        vec![
            attr_ints("kernel_shape", &(0..r).map(|i| pick(i + 1).rem_euclid(3) + 1).collect::<Vec<_>>()),
            attr_ints("strides", &(0..r).map(|i| pick(i + 2).rem_euclid(3) + 1).collect::<Vec<_>>()),
            attr_ints("pads", &(0..2 * r).map(|i| pick(i + 3).rem_euclid(2)).collect::<Vec<_>>()),
        ]
    };
    let (n_in, attrs) = match op {
        "ArgMax" => (
            1,
            vec![attr_i("axis", pick(0)), attr_i("keepdims", pick(1) & 1), attr_i("select_last_index", pick(2) & 1)],
        ),
        "Cast" => (1, vec![attr_i("to", [1, 6, 7, 9, 11, 2][pick(0).rem_euclid(6) as usize])]),
        "Flatten" | "Softmax" => (1, vec![attr_i("axis", pick(0))]),
        "Gemm" => {
            (3, vec![attr_i("transA", pick(0) & 1), attr_i("transB", pick(1) & 1), attr_f("beta", pick(2) as f32)])
        }
        "Conv" => (3, if pick(5) & 1 == 0 { window() } else { vec![attr_i("group", pick(6).rem_euclid(3) + 1)] }),
        "MaxPool" | "AveragePool" => (1, window()),
        "ConvTranspose" => (3, window()),
        "LRN" => (1, vec![attr_i("size", pick(0).rem_euclid(4) + 1)]),
        "Concat" | "LogSoftmax" | "CumSum" | "TopK" | "Gather" | "Split" | "LayerNormalization" => {
            (if op == "Concat" { 3 } else { 1 }, vec![attr_i("axis", pick(0))])
        }
        "Transpose" => (1, vec![attr_ints("perm", &ints.iter().take(3).map(|v| v.rem_euclid(3)).collect::<Vec<_>>())]),
        "ReduceMean" | "ReduceMax" => (1, vec![attr_ints("axes", &ints.iter().take(2).copied().collect::<Vec<_>>())]),
        "Erf" | "Log" | "Sqrt" | "Gelu" | "GlobalAveragePool" | "Squeeze" => (1, vec![]),
        "Where" | "Range" | "Sum" | "Clip" | "InstanceNormalization" => (3, vec![]),
        "Reshape" => (1, vec![]),
        "Exp" | "Identity" | "Relu" | "Sigmoid" | "Tanh" => (1, vec![]),
        _ => (2, vec![]),
    };
    let names = ["a", "b", "c"];
    let mut inputs: Vec<&str> = names[..n_in].to_vec();
    let mut inits = vec![];
    if ["Reshape", "Expand", "Tile", "Pad", "Slice", "Unsqueeze", "CumSum", "TopK", "Gather", "Resize"].contains(&op) {
        if op == "Resize" {
            inputs.push("");
            inputs.push("");
        }
        inputs.push("shape");
        inits.push(t_i64(
            "shape",
            &[ints.len().min(4) as i64],
            &ints.iter().take(4).map(|v| v % 5).collect::<Vec<_>>(),
        ));
    }
    let g = G::new(
        vec![node(op, &inputs, &["y"], attrs)],
        (0..n_in).map(|i| vi(names[i], DType::F32, &shapes[i].iter().map(|_| D::P("d")).collect::<Vec<_>>())).collect(),
        vec![vi("y", DType::F32, &[])],
    )
    .inits(inits);
    let mut p = g.proto();
    // Let the output dtype be inferred (Cast and ArgMax change it).
    p.graph.as_mut().unwrap().output[0].r#type = None;
    let Ok(m) = Model::load(&prost::Message::encode_to_vec(&p)) else { return };
    let mut s = TensorSet::default();
    for i in 0..n_in {
        let n: usize = shapes[i].iter().product();
        let data = (0..n).map(|k| (((k as u64 * 2654435761) ^ seed) % 17) as f32 - 8.0).collect();
        s.0.insert(names[i].into(), Tensor::f32(shapes[i].clone(), data));
    }
    let _ = m.run(&s, &RunOptions { threads: 2, trace: true });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_single_nodes_never_panic(
        op in 0usize..50,
        shapes in proptest::collection::vec(proptest::collection::vec(0usize..4, 0..5), 3),
        ints in proptest::collection::vec(-3i64..4, 0..10),
        seed in any::<u64>(),
    ) {
        random_node_case(op, shapes, ints, seed);
    }
}

/// One SVM node (`ai.onnx.ml` opset 3) over float32 features `[n, f]`.
fn svm_model(op: &str, attrs: Vec<deed_engine::onnx::AttributeProto>, f: i64) -> Vec<u8> {
    let outs: &[&str] = if op == "SVMClassifier" { &["label", "scores"] } else { &["y"] };
    let mut n = node(op, &["x"], outs, attrs);
    n.domain = "ai.onnx.ml".into();
    let g = G::new(
        vec![n],
        vec![vi("x", DType::F32, &[D::P("n"), D::N(f)])],
        outs.iter().map(|o| vi(o, DType::F32, &[])).collect(),
    );
    let mut p = g.proto();
    p.opset_import.push(OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: 3 });
    for o in &mut p.graph.as_mut().unwrap().output {
        o.r#type = None;
    }
    prost::Message::encode_to_vec(&p)
}

fn svc_attrs() -> Vec<deed_engine::onnx::AttributeProto> {
    vec![
        attr_s("kernel_type", "RBF"),
        attr_floats("kernel_params", &[0.5, 0.0, 0.0]),
        attr_floats("support_vectors", &[1.0, 0.0, 0.0, 1.0, -1.0, -1.0]),
        attr_ints("vectors_per_class", &[2, 1]),
        attr_floats("coefficients", &[0.5, -0.25, 0.75]),
        attr_floats("rho", &[0.1]),
        attr_ints("classlabels_ints", &[0, 1]),
    ]
}

#[test]
fn svm_bad_attribute_sizes_refused_at_load() {
    let x = TensorSet([("x".to_string(), Tensor::f32(vec![2, 2], vec![0.5, 1.0, -1.0, 0.3]))].into());
    let m = Model::load(&svm_model("SVMClassifier", svc_attrs(), 2)).unwrap();
    assert_eq!(m.run(&x, &RunOptions::default()).unwrap().outputs.0["scores"].shape, vec![2, 2]);
    let with = |name: &str, a: deed_engine::onnx::AttributeProto| {
        let mut v: Vec<_> = svc_attrs().into_iter().filter(|b| b.name != name).collect();
        v.push(a);
        svm_model("SVMClassifier", v, 2)
    };
    for (bytes, what) in [
        (with("support_vectors", attr_floats("support_vectors", &[1.0; 5])), "support vector values"),
        (with("coefficients", attr_floats("coefficients", &[1.0; 2])), "coefficients"),
        (with("rho", attr_floats("rho", &[0.1, 0.2])), "rho"),
        (with("vectors_per_class", attr_ints("vectors_per_class", &[2, -1])), "vectors_per_class"),
        (with("vectors_per_class", attr_ints("vectors_per_class", &[i64::MAX, i64::MAX])), "vectors_per_class"),
        (with("vectors_per_class", attr_ints("vectors_per_class", &[3])), "vectors_per_class"),
        (with("kernel_params", attr_floats("kernel_params", &[0.5])), "kernel_params"),
        (with("prob_a", attr_floats("prob_a", &[1.0, 2.0])), "prob_a"),
    ] {
        let e = load_err(&bytes);
        assert!(matches!(e, LoadError::Invalid(_)) && e.to_string().contains(what), "{e}");
    }
    let e = load_err(&with("classlabels_ints", attr_ints("classlabels_strings", &[])));
    assert!(e.to_string().contains("string tensors"), "{e}");
    // The model's feature count is checked when run.
    let x3 = TensorSet([("x".to_string(), Tensor::f32(vec![1, 3], vec![0.0; 3]))].into());
    let m = Model::load(&svm_model("SVMClassifier", svc_attrs(), 3)).unwrap();
    assert!(matches!(m.run(&x3, &RunOptions::default()), Err(RunError::Op { .. })));
}

/// SVMs with random attribute lengths and values: they load and run, or fail with an error.
fn random_svm_case(classifier: bool, lens: Vec<usize>, ints: Vec<i64>, kernel: usize, f: usize, seed: u64) {
    let vals = |n: usize, salt: u64| -> Vec<f32> {
        (0..n).map(|k| ((((k as u64 + salt) * 2654435761) ^ seed) % 13) as f32 / 4.0 - 1.5).collect()
    };
    let len = |i: usize| lens.get(i).copied().unwrap_or(0);
    let kt = ["LINEAR", "POLY", "RBF", "SIGMOID", "CUBIC"][kernel % 5];
    let mut attrs = vec![
        attr_s("kernel_type", kt),
        attr_floats("support_vectors", &vals(len(0), 1)),
        attr_floats("coefficients", &vals(len(1), 2)),
        attr_floats("rho", &vals(len(2), 3)),
    ];
    if len(3) > 0 {
        attrs.push(attr_floats("kernel_params", &vals(len(3), 4)));
    }
    let op = if classifier {
        attrs.push(attr_ints("vectors_per_class", &ints));
        attrs.push(attr_ints("classlabels_ints", &(0..len(4) as i64).collect::<Vec<_>>()));
        if len(5) > 0 {
            attrs.push(attr_floats("prob_a", &vals(len(5), 5)));
            attrs.push(attr_floats("prob_b", &vals(len(6), 6)));
        }
        "SVMClassifier"
    } else {
        attrs.push(attr_i("n_supports", ints.first().copied().unwrap_or(0)));
        attrs.push(attr_i("one_class", (seed & 1) as i64));
        "SVMRegressor"
    };
    let Ok(m) = Model::load(&svm_model(op, attrs, f as i64)) else { return };
    for n in [0usize, 3] {
        let mut data = vals(n * f, 7);
        if let Some(v) = data.first_mut() {
            *v = f32::NAN;
        }
        let s = TensorSet([("x".to_string(), Tensor::f32(vec![n, f], data))].into());
        let _ = m.run(&s, &RunOptions { threads: 2, trace: true });
    }
}

/// MaxPool with Indices on random windows: each index points at the value it comes with,
/// and the values are those of the one-output MaxPool.
fn maxpool_indices_case(dims: Vec<usize>, k: Vec<i64>, s: Vec<i64>, p: Vec<i64>, dil: Vec<i64>, col: bool, seed: u64) {
    let r = dims.len() - 2;
    let mut attrs = vec![
        attr_ints("kernel_shape", &k[..r]),
        attr_ints("strides", &s[..r]),
        attr_ints("pads", &p[..2 * r]),
        attr_ints("dilations", &dil[..r]),
    ];
    let load = |outs: &[&str], attrs: Vec<deed_engine::onnx::AttributeProto>| {
        let g = G::new(
            vec![node("MaxPool", &["x"], outs, attrs)],
            vec![vi("x", DType::F32, &dims.iter().map(|&d| D::N(d as i64)).collect::<Vec<_>>())],
            outs.iter().map(|o| vi(o, DType::F32, &[])).collect(),
        );
        let mut p = g.proto();
        for o in &mut p.graph.as_mut().unwrap().output {
            o.r#type = None;
        }
        Model::load(&prost::Message::encode_to_vec(&p))
    };
    let Ok(one) = load(&["y"], attrs.clone()) else { return };
    attrs.push(attr_i("storage_order", col as i64));
    let two = load(&["y", "i"], attrs).expect("loads with Indices when it loads without");
    let n: usize = dims.iter().product();
    let xv: Vec<f32> = (0..n).map(|k| ((((k as u64) * 2654435761) ^ seed) % 7) as f32 - 3.0).collect();
    let x = TensorSet([("x".to_string(), Tensor::f32(dims.clone(), xv.clone()))].into());
    let (Ok(a), Ok(b)) = (one.run(&x, &RunOptions::default()), two.run(&x, &RunOptions::default())) else {
        assert!(one.run(&x, &RunOptions::default()).is_err() && two.run(&x, &RunOptions::default()).is_err());
        return;
    };
    let y = &b.outputs.0["y"];
    assert_eq!(&a.outputs.0["y"], y);
    let (deed_types::TensorData::F32(yv), deed_types::TensorData::I64(iv)) = (&y.data, &b.outputs.0["i"].data) else {
        panic!("dtypes")
    };
    let sp = &dims[2..];
    let plane: usize = sp.iter().product();
    for (&v, &i) in yv.iter().zip(iv) {
        if i < 0 {
            assert_eq!(v, f32::NEG_INFINITY);
            continue;
        }
        let (pl, mut off) = (i as usize / plane, i as usize % plane);
        if col {
            // Column-major back to row-major.
            let mut c = vec![0; r];
            for d in 0..r {
                c[d] = off % sp[d];
                off /= sp[d];
            }
            off = c.iter().zip(sp).fold(0, |acc, (&c, &d)| acc * d + c);
        }
        assert_eq!(xv[pl * plane + off], v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn random_svms_never_panic(
        classifier in any::<bool>(),
        lens in proptest::collection::vec(0usize..12, 7),
        ints in proptest::collection::vec(-1i64..4, 0..5),
        kernel in 0usize..5,
        f in 0usize..4,
        seed in any::<u64>(),
    ) {
        random_svm_case(classifier, lens, ints, kernel, f, seed);
    }

    #[test]
    fn maxpool_indices_point_at_maxima(
        dims in proptest::collection::vec(1usize..6, 3..6),
        k in proptest::collection::vec(1i64..4, 3),
        s in proptest::collection::vec(1i64..4, 3),
        p in proptest::collection::vec(0i64..3, 6),
        dil in proptest::collection::vec(1i64..3, 3),
        col in any::<bool>(),
        seed in any::<u64>(),
    ) {
        maxpool_indices_case(dims, k, s, p, dil, col, seed);
    }
}

//! Load-time shape inference: definite contradictions are refused at load (one model per
//! rule), a symbolic batch dim is carried to the outputs, and — the honesty check — what
//! inference says about every node's outputs agrees with the shapes real runs produce,
//! for every fixture model (and the ONNX node tests, see `conformance.rs`).

use crate::build::{D, G, attr_i, attr_ints, attr_s, node, t_f32, t_i64, vi};
use deed_engine::{Dim, LoadError, Model, RunOptions};
use deed_types::{DType, Tensor, TensorData, TensorSet};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Runs `model` keeping every node's outputs and checks each against the inferred shape:
/// same rank where the rank is inferred, same size for every known dim, and one size per
/// symbolic name over the whole run. Returns how many dims were known.
pub fn check_inferred(model: &Model, inputs: &TensorSet) -> Result<usize, String> {
    let every = model.run_every_node(inputs, 1).map_err(|e| format!("run: {e}"))?;
    let mut syms: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut known = 0;
    // Graph inputs bind the symbols first.
    for info in model.inputs() {
        for (d, name) in info.dim_names.iter().enumerate() {
            if let Some(name) = name {
                syms.entry(name.clone()).or_insert((inputs.0[&info.name].shape[d], format!("input '{}'", info.name)));
            }
        }
    }
    for (pos, actual) in every.iter().enumerate() {
        let inferred = model.inferred_node_outputs(pos);
        assert_eq!(actual.len(), inferred.len());
        for (k, (t, dims)) in actual.iter().zip(&inferred).enumerate() {
            let (Some(t), Some(dims)) = (t, dims) else { continue };
            let at = || format!("{} output #{k}", model.node_label(pos));
            if dims.len() != t.shape.len() {
                return Err(format!("{}: inferred {dims:?}, ran {:?}", at(), t.shape));
            }
            for (d, (i, &n)) in dims.iter().zip(&t.shape).enumerate() {
                match i {
                    Dim::Known(k) if *k != n => return Err(format!("{}: inferred {dims:?}, ran {:?}", at(), t.shape)),
                    Dim::Known(_) => known += 1,
                    Dim::Sym(s) => {
                        let (v, from) = syms.entry(s.clone()).or_insert((n, at()));
                        if *v != n {
                            return Err(format!(
                                "{}: dim {d} is '{s}' = {n}, but '{s}' = {v} at {from} (inferred {dims:?}, ran {:?})",
                                at(),
                                t.shape
                            ));
                        }
                    }
                    Dim::Unknown => {}
                }
            }
        }
    }
    Ok(known)
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read_set(path: &Path) -> TensorSet {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    TensorSet::from_json(&v).unwrap()
}

/// Every fixture model: inference agrees with the run, node by node.
#[test]
fn inference_agrees_with_runs_on_every_fixture() {
    let mut models = vec![];
    for sub in ["", "ops", "arch"] {
        let dir = fixtures_dir().join(sub);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "onnx") {
                models.push(p);
            }
        }
    }
    models.sort();
    assert!(models.len() > 100, "fixtures found: {}", models.len());
    let (mut fails, mut known) = (vec![], 0);
    for p in &models {
        let stem = p.file_stem().unwrap().to_str().unwrap();
        let inputs = read_set(&p.with_file_name(format!("{stem}.input.json")));
        let model = match Model::load(&std::fs::read(p).unwrap()) {
            Ok(m) => m,
            Err(e) => {
                fails.push(format!("{}: load: {e}", p.display()));
                continue;
            }
        };
        match check_inferred(&model, &inputs) {
            Ok(k) => known += k,
            Err(e) => fails.push(format!("{}: {e}", p.display())),
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
    assert!(known > 500, "only {known} dims inferred over all fixtures");
}

/// The fixture architectures infer every node output's shape completely (no unknown
/// dims) — what makes inference useful on real exports.
#[test]
fn fixture_architectures_infer_fully() {
    let mut fails = vec![];
    for name in ["bert_mini", "bert_gelu20", "resnet_mini", "squeezenet_mini", "trees_clf", "trees_reg"] {
        let p = fixtures_dir().join(format!("arch/{name}.onnx"));
        let model = Model::load(&std::fs::read(&p).unwrap()).unwrap();
        for (value, s) in model.inferred_shapes() {
            if !s.as_ref().is_some_and(|s| s.iter().all(|d| !matches!(d, Dim::Unknown))) {
                fails.push(format!("{name}: '{value}' inferred as {s:?}"));
            }
        }
        for o in model.outputs() {
            assert!(!o.shape.is_empty(), "{name}: output '{}' has no shape", o.name);
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

fn f32_in(name: &str, dims: &[D]) -> deed_engine::onnx::ValueInfoProto {
    vi(name, DType::F32, dims)
}

/// Loads a model expected to be refused for its shapes; returns the error text.
fn refused(g: G, what: &str) -> String {
    match Model::load(&g.bytes()) {
        Err(e @ LoadError::Shape { .. }) => e.to_string(),
        Err(e) => panic!("{what}: refused, but not for shapes: {e}"),
        Ok(_) => panic!("{what}: loaded"),
    }
}

fn contains_all(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "'{msg}' does not mention '{p}'");
    }
}

#[test]
fn matmul_inner_dims_refused() {
    let g = G::new(
        vec![node("MatMul", &["a", "b"], &["y"], vec![])],
        vec![f32_in("a", &[D::P("N"), D::N(3)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![t_f32("b", &[4, 2], &[0.0; 8])]);
    let msg = refused(g, "MatMul");
    contains_all(&msg, &["MatMul_y", "(MatMul)", "[N, 3]", "[4, 2]", "inner"]);
}

#[test]
fn matmul_with_symbolic_inner_dim_loads() {
    // K is symbolic on one side: nothing definite, so the model loads.
    let g = G::new(
        vec![node("MatMul", &["a", "b"], &["y"], vec![])],
        vec![f32_in("a", &[D::N(2), D::P("K")]), f32_in("b", &[D::N(4), D::N(2)])],
        vec![f32_in("y", &[])],
    );
    let m = Model::load(&g.bytes()).unwrap();
    assert_eq!(m.outputs()[0].shape, vec![Some(2), Some(2)]);
}

#[test]
fn gemm_inner_dims_refused() {
    let g = G::new(
        vec![node("Gemm", &["a", "b"], &["y"], vec![attr_i("transB", 1)])],
        vec![f32_in("a", &[D::N(2), D::N(3)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![t_f32("b", &[4, 2], &[0.0; 8])]);
    contains_all(&refused(g, "Gemm"), &["(Gemm)", "[2, 3]", "[4, 2]", "transB = 1"]);
}

#[test]
fn broadcast_of_known_dims_refused() {
    let g = G::new(
        vec![node("Add", &["a", "b"], &["y"], vec![])],
        vec![f32_in("a", &[D::P("N"), D::N(3)]), f32_in("b", &[D::N(4)])],
        vec![f32_in("y", &[])],
    );
    contains_all(&refused(g, "Add"), &["(Add)", "[N, 3]", "[4]", "broadcast"]);
    // 1 broadcasts; a symbol against a known dim is not a contradiction.
    let g = G::new(
        vec![node("Add", &["a", "b"], &["y"], vec![])],
        vec![f32_in("a", &[D::P("N"), D::N(1)]), f32_in("b", &[D::P("M"), D::N(4)])],
        vec![f32_in("y", &[])],
    );
    let m = Model::load(&g.bytes()).unwrap();
    assert_eq!(m.outputs()[0].shape, vec![None, Some(4)]);
}

#[test]
fn reshape_element_count_refused() {
    let g = G::new(
        vec![node("Reshape", &["x", "s"], &["y"], vec![])],
        vec![f32_in("x", &[D::N(2), D::N(6)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![t_i64("s", &[2], &[5, -1])]);
    contains_all(&refused(g, "Reshape -1"), &["(Reshape)", "[2, 6]", "12 elements"]);
    let g = G::new(
        vec![node("Reshape", &["x", "s"], &["y"], vec![])],
        vec![f32_in("x", &[D::P("N"), D::N(6)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![t_i64("s", &[3], &[0, 4, 2])]);
    contains_all(&refused(g, "Reshape 0"), &["(Reshape)", "[N, 6]", "[N, 4, 2]"]);
}

#[test]
fn conv_channels_refused() {
    let g = G::new(
        vec![node("Conv", &["x", "w"], &["y"], vec![attr_i("group", 2)])],
        vec![f32_in("x", &[D::P("N"), D::N(6), D::N(8), D::N(8)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![t_f32("w", &[4, 2, 3, 3], &[0.0; 72])]);
    contains_all(&refused(g, "Conv"), &["(Conv)", "[N, 6, 8, 8]", "[4, 2, 3, 3]", "group 2"]);
}

#[test]
fn conv_output_shape_with_pads_strides_dilations() {
    let g = G::new(
        vec![node(
            "Conv",
            &["x", "w"],
            &["y"],
            vec![attr_ints("pads", &[1, 0, 1, 0]), attr_ints("strides", &[2, 1]), attr_ints("dilations", &[1, 2])],
        )],
        vec![f32_in("x", &[D::P("N"), D::N(3), D::N(9), D::N(10)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![t_f32("w", &[5, 3, 3, 3], &[0.1; 135])]);
    let m = Model::load(&g.bytes()).unwrap();
    // H: (9 + 2 − 3) / 2 + 1 = 5; W: 10 − (3 − 1)·2 = 6.
    assert_eq!(m.outputs()[0].shape, vec![None, Some(5), Some(5), Some(6)]);
    assert_eq!(m.outputs()[0].dim_names, vec![Some("N".to_string()), None, None, None]);
    let x = Tensor::f32(vec![2, 3, 9, 10], vec![0.5; 540]);
    let ins = TensorSet([("x".to_string(), x)].into_iter().collect());
    check_inferred(&m, &ins).unwrap();
    // SAME_UPPER with a stride keeps ceil(L / s).
    let g = G::new(
        vec![node("Conv", &["x", "w"], &["y"], vec![attr_s("auto_pad", "SAME_UPPER"), attr_ints("strides", &[2, 2])])],
        vec![f32_in("x", &[D::N(1), D::N(3), D::N(9), D::N(10)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![t_f32("w", &[5, 3, 3, 3], &[0.1; 135])]);
    let m = Model::load(&g.bytes()).unwrap();
    assert_eq!(m.outputs()[0].shape, vec![Some(1), Some(5), Some(5), Some(5)]);
}

#[test]
fn concat_non_axis_dims_refused() {
    let g = G::new(
        vec![node("Concat", &["a", "b"], &["y"], vec![attr_i("axis", 1)])],
        vec![f32_in("a", &[D::N(2), D::N(3)]), f32_in("b", &[D::N(4), D::N(5)])],
        vec![f32_in("y", &[])],
    );
    contains_all(&refused(g, "Concat"), &["(Concat)", "[2, 3]", "[4, 5]", "dimension 0"]);
}

#[test]
fn declared_output_shape_contradiction_refused() {
    let g = G::new(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![f32_in("x", &[D::P("N"), D::N(3)])],
        vec![f32_in("y", &[D::P("N"), D::N(4)])],
    );
    contains_all(&refused(g, "output"), &["graph output 'y'", "[N, 4]", "[N, 3]"]);
}

#[test]
fn window_larger_than_input_refused() {
    let g = G::new(
        vec![node("MaxPool", &["x"], &["y"], vec![attr_ints("kernel_shape", &[5, 5])])],
        vec![f32_in("x", &[D::N(1), D::N(1), D::N(4), D::N(8)])],
        vec![f32_in("y", &[])],
    );
    contains_all(&refused(g, "MaxPool"), &["(MaxPool)", "extent 5", "extent 4"]);
}

#[test]
fn squeeze_of_a_dim_not_1_refused() {
    let g = G::new(
        vec![node("Squeeze", &["x", "ax"], &["y"], vec![])],
        vec![f32_in("x", &[D::N(2), D::N(3)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![t_i64("ax", &[1], &[1])]);
    contains_all(&refused(g, "Squeeze"), &["(Squeeze)", "[2, 3]", "not 1"]);
}

#[test]
fn split_sizes_refused() {
    let g = G::new(
        vec![node("Split", &["x", "s"], &["a", "b"], vec![attr_i("axis", 1)])],
        vec![f32_in("x", &[D::N(2), D::N(6)])],
        vec![f32_in("a", &[]), f32_in("b", &[])],
    )
    .inits(vec![t_i64("s", &[2], &[2, 3])]);
    contains_all(&refused(g, "Split"), &["(Split)", "[2, 3]", "[2, 6]"]);
}

/// Shape → Gather → Unsqueeze → Concat → Reshape, as exporters emit for a dynamic batch,
/// then Expand and Slice from followed values.
#[test]
fn shape_chains_are_followed_through_a_symbolic_batch() {
    let g = G::new(
        vec![
            node("Shape", &["x"], &["s"], vec![]),
            node("Gather", &["s", "zero"], &["n"], vec![attr_i("axis", 0)]),
            node("Unsqueeze", &["n", "ax0"], &["n1"], vec![]),
            node("Concat", &["n1", "tail"], &["target"], vec![attr_i("axis", 0)]),
            node("Reshape", &["x", "target"], &["r"], vec![]),
            node("Slice", &["r", "st", "en", "sax"], &["sl"], vec![]),
            node("Expand", &["sl", "ex"], &["y"], vec![]),
        ],
        vec![f32_in("x", &[D::P("batch"), D::N(4), D::N(6)])],
        vec![f32_in("y", &[])],
    )
    .inits(vec![
        t_i64("zero", &[], &[0]),
        t_i64("ax0", &[1], &[0]),
        t_i64("tail", &[2], &[-1, 3]),
        t_i64("st", &[1], &[1]),
        t_i64("en", &[1], &[i64::MAX]),
        t_i64("sax", &[1], &[1]),
        t_i64("ex", &[4], &[2, 1, 1, 3]),
    ]);
    let m = Model::load(&g.bytes()).unwrap();
    let shapes = m.inferred_shapes();
    let sym = || Dim::Sym("batch".into());
    assert_eq!(shapes["r"], Some(vec![sym(), Dim::Known(8), Dim::Known(3)]));
    assert_eq!(shapes["sl"], Some(vec![sym(), Dim::Known(7), Dim::Known(3)]));
    assert_eq!(shapes["y"], Some(vec![Dim::Known(2), sym(), Dim::Known(7), Dim::Known(3)]));
    assert_eq!(m.outputs()[0].shape, vec![Some(2), None, Some(7), Some(3)]);
    assert_eq!(m.outputs()[0].dim_names, vec![None, Some("batch".to_string()), None, None]);
    for b in [1, 3] {
        let x = Tensor::f32(vec![b, 4, 6], vec![1.0; b * 24]);
        check_inferred(&m, &TensorSet([("x".to_string(), x)].into_iter().collect())).unwrap();
    }
}

/// A copy of `bytes` with the first dim of every graph input renamed to `batch`.
fn with_dynamic_batch(bytes: &[u8]) -> Vec<u8> {
    use prost::Message;
    let mut mp = deed_engine::onnx::ModelProto::decode(bytes).unwrap();
    let g = mp.graph.as_mut().unwrap();
    for i in &mut g.input {
        let shape = i.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape.as_mut().unwrap();
        shape.dim[0] = deed_engine::onnx::Dimension { dim_value: None, dim_param: Some("batch".into()) };
    }
    for o in &mut g.output {
        if let Some(s) = o.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()).and_then(|t| t.shape.as_mut()) {
            s.dim[0] = deed_engine::onnx::Dimension { dim_value: None, dim_param: Some("batch".into()) };
        }
    }
    mp.encode_to_vec()
}

/// The first `b` rows of every input (repeating the fixture's rows when `b` is larger).
fn batch_of(set: &TensorSet, b: usize) -> TensorSet {
    let mut out = TensorSet::default();
    for (name, t) in &set.0 {
        let rows = t.shape[0];
        let per = t.data.len() / rows;
        let idx: Vec<usize> = (0..b * per).map(|i| ((i / per) % rows) * per + i % per).collect();
        let data = match &t.data {
            TensorData::F32(v) => TensorData::F32(idx.iter().map(|&i| v[i]).collect()),
            TensorData::I64(v) => TensorData::I64(idx.iter().map(|&i| v[i]).collect()),
            other => panic!("unexpected input dtype {:?}", other.dtype()),
        };
        let mut shape = t.shape.clone();
        shape[0] = b;
        out.0.insert(name.clone(), Tensor { shape, data });
    }
    out
}

/// bert_mini and resnet_mini with their batch dim made symbolic: they run at batch 1 and
/// 3, their outputs are inferred as `[batch, ...]`, and every node agrees with the runs.
#[test]
fn symbolic_batch_runs_at_1_and_3() {
    for name in ["bert_mini", "resnet_mini"] {
        let p = fixtures_dir().join(format!("arch/{name}.onnx"));
        let model = Model::load(&with_dynamic_batch(&std::fs::read(&p).unwrap())).unwrap();
        for o in model.outputs() {
            assert_eq!(o.dim_names.first(), Some(&Some("batch".to_string())), "{name}: output '{}'", o.name);
            assert_eq!(o.shape[0], None);
            // Every other dim is known or named (bert_mini's sequence length is `seq`).
            let named = |d: usize| o.shape[d].is_some() || o.dim_names[d].is_some();
            assert!((1..o.shape.len()).all(named), "{name}: output '{}' {:?} {:?}", o.name, o.shape, o.dim_names);
        }
        let inputs = read_set(&fixtures_dir().join(format!("arch/{name}.input.json")));
        for b in [1, 3] {
            let ins = batch_of(&inputs, b);
            let out = model.run(&ins, &RunOptions::default()).unwrap();
            for o in model.outputs() {
                let got = &out.outputs.0[&o.name].shape;
                assert_eq!(got[0], b, "{name}");
                for (d, want) in o.shape.iter().enumerate().skip(1) {
                    assert!(want.is_none_or(|w| w == got[d]), "{name}: ran {got:?}, inferred {:?}", o.shape);
                }
            }
            check_inferred(&model, &ins).unwrap_or_else(|e| panic!("{name} at batch {b}: {e}"));
        }
    }
}

/// The input/output JSON of a model without symbolic dims is unchanged (no `dim_names`).
#[test]
fn io_info_json_is_backward_compatible() {
    let g = G::new(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![f32_in("x", &[D::N(2), D::N(3)])],
        vec![f32_in("y", &[D::N(2), D::N(3)])],
    );
    let m = Model::load(&g.bytes()).unwrap();
    let v = serde_json::to_value(m.outputs()).unwrap();
    assert_eq!(v, serde_json::json!([{"name": "y", "dtype": "float32", "shape": [2, 3]}]));
    let g = G::new(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![f32_in("x", &[D::P("N"), D::N(3)])],
        vec![f32_in("y", &[])],
    );
    let m = Model::load(&g.bytes()).unwrap();
    let v = serde_json::to_value(m.outputs()).unwrap();
    assert_eq!(v, serde_json::json!([{"name": "y", "dtype": "float32", "shape": [null, 3], "dim_names": ["N", null]}]));
}

/// The bench models (when present in the main checkout) load, and inference agrees with
/// a run at a small batch.
#[test]
fn bench_models_infer_and_agree() {
    let dir = std::env::var_os("DEED_BENCH_MODELS").map(PathBuf::from);
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        eprintln!("DEED_BENCH_MODELS not set or not a folder; skipped");
        return;
    };
    for name in ["mlp_b1", "mlp_b64", "trees_b512", "bert_l12_s128", "resnet50_b1"] {
        let p = dir.join(format!("{name}.onnx"));
        if !p.exists() {
            continue;
        }
        let model = Model::load(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut ins = TensorSet::default();
        for i in model.inputs() {
            let shape: Vec<usize> = i.shape.iter().map(|d| d.unwrap_or(2)).collect();
            let n: usize = shape.iter().product();
            let data = match i.dtype {
                DType::F32 => TensorData::F32((0..n).map(|k| (k % 7) as f32 * 0.1).collect()),
                DType::I64 => TensorData::I64((0..n).map(|k| (k % 5) as i64).collect()),
                d => panic!("{name}: input dtype {}", d.name()),
            };
            ins.0.insert(i.name.clone(), Tensor { shape, data });
        }
        let known = check_inferred(&model, &ins).unwrap_or_else(|e| panic!("{name}: {e}"));
        let partial: Vec<String> = model
            .inferred_shapes()
            .into_iter()
            .filter(|(_, s)| !s.as_ref().is_some_and(|s| s.iter().all(|d| matches!(d, Dim::Known(_)))))
            .map(|(v, s)| format!("{v}: {s:?}"))
            .collect();
        eprintln!("{name}: {known} dims inferred; outputs {:?}; not fully known: {partial:?}", model.outputs());
        // The exports have fixed shapes: every value infers completely.
        assert!(partial.is_empty(), "{name}: {partial:?}");
    }
}

/// The pattern exporters emit for `x.expand(n, -1)`: `Where(Equal(target, -1), 1, target)`
/// with the ones from ConstantOfShape; the batch symbol reaches Expand's output.
#[test]
fn expand_through_where_equal_constant_of_shape() {
    let ones = deed_engine::onnx::TensorProto { dims: vec![1], ..t_i64("one", &[1], &[1]) };
    let g = G::new(
        vec![
            node("Shape", &["y"], &["ys"], vec![]),
            node("Gather", &["ys", "zero"], &["n"], vec![attr_i("axis", 0)]),
            node("Unsqueeze", &["n", "ax0"], &["n1"], vec![]),
            node("Concat", &["n1", "minus1"], &["target"], vec![attr_i("axis", 0)]),
            node("Shape", &["target"], &["tl"], vec![]),
            node("ConstantOfShape", &["tl"], &["ones"], vec![crate::build::attr_t("value", ones)]),
            node("Equal", &["target", "minus1"], &["eq"], vec![]),
            node("Where", &["eq", "ones", "target"], &["w"], vec![]),
            node("Expand", &["x", "w"], &["out"], vec![]),
        ],
        vec![f32_in("x", &[D::N(1), D::N(4)]), f32_in("y", &[D::P("batch"), D::N(9)])],
        vec![f32_in("out", &[])],
    )
    .inits(vec![t_i64("zero", &[], &[0]), t_i64("ax0", &[1], &[0]), t_i64("minus1", &[1], &[-1])]);
    let m = Model::load(&g.bytes()).unwrap();
    assert_eq!(m.inferred_shapes()["out"], Some(vec![Dim::Sym("batch".into()), Dim::Known(4)]));
    for b in [1, 3] {
        let ins = TensorSet(
            [
                ("x".to_string(), Tensor::f32(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0])),
                ("y".to_string(), Tensor::f32(vec![b, 9], vec![0.0; b * 9])),
            ]
            .into_iter()
            .collect(),
        );
        check_inferred(&m, &ins).unwrap();
    }
}

/// One random node with known input shapes and constant shape arguments.
fn random_node(
    opset: i64,
    op: usize,
    shapes: &[Vec<usize>],
    ints: &[i64],
    dims: impl Fn(usize, usize, usize) -> D,
) -> (Vec<u8>, usize) {
    const OPS: [&str; 34] = [
        "Add",
        "MatMul",
        "Gemm",
        "Conv",
        "MaxPool",
        "AveragePool",
        "ConvTranspose",
        "Concat",
        "Transpose",
        "Flatten",
        "Reshape",
        "Expand",
        "Tile",
        "Pad",
        "Slice",
        "Split",
        "Squeeze",
        "Unsqueeze",
        "Gather",
        "ReduceMean",
        "ReduceSum",
        "ArgMax",
        "Softmax",
        "LayerNormalization",
        "Where",
        "PRelu",
        "Sum",
        "GlobalAveragePool",
        "TopK",
        "Shape",
        "Resize",
        "ConstantOfShape",
        "Range",
        "Mul",
    ];
    let op = OPS[op % OPS.len()];
    let pick = |i: usize| ints.get(i).copied().unwrap_or(1);
    let window = || {
        let r = (pick(0).rem_euclid(2) + 1) as usize;
        vec![
            attr_ints("kernel_shape", &(0..r).map(|i| pick(i + 1).rem_euclid(3) + 1).collect::<Vec<_>>()),
            attr_ints("strides", &(0..r).map(|i| pick(i + 2).rem_euclid(2) + 1).collect::<Vec<_>>()),
            attr_ints("pads", &(0..2 * r).map(|i| pick(i + 3).rem_euclid(2)).collect::<Vec<_>>()),
            attr_s("auto_pad", ["NOTSET", "NOTSET", "SAME_UPPER", "VALID"][pick(7).rem_euclid(4) as usize]),
        ]
    };
    let (n_in, attrs) = match op {
        "Gemm" => (3, vec![attr_i("transA", pick(0) & 1), attr_i("transB", pick(1) & 1)]),
        "Conv" => (2, if pick(5) & 1 == 0 { window() } else { vec![attr_i("group", pick(6).rem_euclid(3) + 1)] }),
        "MaxPool" | "AveragePool" => (1, window()),
        "ConvTranspose" => (2, window()),
        "Concat" => (3, vec![attr_i("axis", pick(0))]),
        "Split" | "Gather" | "Flatten" | "Softmax" | "LayerNormalization" | "TopK" | "ArgMax" => {
            (1, vec![attr_i("axis", pick(0))])
        }
        "Transpose" => (1, vec![attr_ints("perm", &ints.iter().take(3).map(|v| v.rem_euclid(3)).collect::<Vec<_>>())]),
        "ReduceMean" => (1, vec![attr_ints("axes", &ints.iter().take(2).copied().collect::<Vec<_>>())]),
        "Where" | "Sum" => (3, vec![]),
        "Add" | "MatMul" | "PRelu" | "Mul" => (2, vec![]),
        _ => (1, vec![]),
    };
    let names = ["a", "b", "c"];
    let mut inputs: Vec<&str> = names[..n_in].to_vec();
    let mut inits = vec![];
    let args: Vec<i64> = ints.iter().take(4).map(|v| v % 5).collect();
    match op {
        "Reshape" | "Expand" | "Tile" | "Pad" | "Squeeze" | "Unsqueeze" | "ReduceSum" | "TopK" | "Gather" => {
            inputs.push("arg");
            let args: Vec<i64> = if op == "TopK" { args.iter().map(|v| v.abs()).take(1).collect() } else { args };
            let dims: &[i64] = if op == "TopK" { &[1] } else { &[args.len() as i64] };
            inits.push(t_i64("arg", dims, &args));
        }
        "Slice" => {
            inputs.extend(["st", "en", "ax"]);
            let k = (pick(0).rem_euclid(2) + 1) as usize;
            inits.push(t_i64(
                "st",
                &[k as i64],
                &ints.iter().skip(1).take(k).copied().chain([0, 0]).take(k).collect::<Vec<_>>(),
            ));
            inits.push(t_i64(
                "en",
                &[k as i64],
                &ints.iter().skip(3).take(k).map(|v| v * 2).chain([9, 9]).take(k).collect::<Vec<_>>(),
            ));
            inits.push(t_i64("ax", &[k as i64], &(0..k as i64).map(|i| i - pick(5).rem_euclid(2)).collect::<Vec<_>>()));
        }
        "Resize" => {
            inputs.extend(["", "", "arg"]);
            inits.push(t_i64("arg", &[args.len() as i64], &args.iter().map(|v| v.abs() + 1).collect::<Vec<_>>()));
        }
        "Split" => {
            inputs.push("arg");
            inits.push(t_i64("arg", &[2], &[pick(1).rem_euclid(3), pick(2).rem_euclid(3)]));
        }
        "ConstantOfShape" | "Range" => {}
        _ => {}
    }
    let outs: &[&str] = if op == "Split" { &["y", "y2"] } else { &["y"] };
    let (first, extra) = match op {
        // These read an int64 input built from the first input's shape.
        "ConstantOfShape" | "Range" => (vec![node("Shape", &["a"], &["s"], vec![])], true),
        _ => (vec![], false),
    };
    let mut nodes = first;
    if extra {
        if op == "Range" {
            nodes.push(node("ReduceSum", &["s"], &["lim"], vec![attr_i("keepdims", 0)]));
            nodes.push(node(op, &["zero", "lim", "one"], outs, vec![]));
            inits.push(t_i64("zero", &[], &[0]));
            inits.push(t_i64("one", &[], &[1]));
        } else {
            nodes.push(node(op, &["s"], outs, vec![]));
        }
    } else {
        nodes.push(node(op, &inputs, outs, attrs));
    }
    let g = G::new(
        nodes,
        (0..n_in)
            .map(|i| {
                vi(names[i], DType::F32, &shapes[i].iter().enumerate().map(|(d, &n)| dims(i, d, n)).collect::<Vec<_>>())
            })
            .collect(),
        outs.iter().map(|o| vi(o, DType::F32, &[])).collect(),
    )
    .inits(inits)
    .opset(opset);
    let mut p = g.proto();
    for o in &mut p.graph.as_mut().unwrap().output {
        o.r#type = None;
    }
    (prost::Message::encode_to_vec(&p), n_in)
}

fn random_inputs(shapes: &[Vec<usize>], n_in: usize) -> TensorSet {
    let mut s = TensorSet::default();
    for (i, name) in ["a", "b", "c"].iter().enumerate().take(n_in) {
        let n: usize = shapes[i].iter().product();
        s.0.insert(name.to_string(), Tensor::f32(shapes[i].clone(), (0..n).map(|k| (k % 7) as f32 - 3.0).collect()));
    }
    s
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

    /// Random single nodes with known input shapes: a model that loads and runs agrees
    /// with its inferred shapes; a model refused for its shapes also fails when its
    /// inputs are declared fully dynamic (distinct names, so inference knows nothing) and
    /// run on those shapes — a refusal never turns away a model that would have run.
    #[test]
    fn random_nodes_inference_is_honest_and_refusals_are_sound(
        opset in proptest::sample::select(vec![7i64, 9, 11, 13, 18, 21]),
        op in 0usize..34,
        shapes in proptest::collection::vec(proptest::collection::vec(1usize..5, 0..5), 3),
        ints in proptest::collection::vec(-3i64..5, 0..10),
    ) {
        let (bytes, n_in) = random_node(opset, op, &shapes, &ints, |_, _, n| D::N(n as i64));
        let inputs = random_inputs(&shapes, n_in);
        match Model::load(&bytes) {
            Ok(m) => {
                if m.run(&inputs, &RunOptions::default()).is_ok() {
                    check_inferred(&m, &inputs).map_err(proptest::test_runner::TestCaseError::fail)?;
                }
            }
            Err(e @ LoadError::Shape { .. }) => {
                const NAMES: [&str; 15] = ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4", "c0", "c1", "c2", "c3", "c4"];
                let (dynamic, _) = random_node(opset, op, &shapes, &ints, |i, d, _| D::P(NAMES[i * 5 + d]));
                if let Ok(m) = Model::load(&dynamic) {
                    let r = m.run(&inputs, &RunOptions::default());
                    proptest::prop_assert!(r.is_err(), "refused at load ({e}) but runs: {:?}", r.map(|o| o.outputs));
                }
            }
            Err(_) => {}
        }
    }
}

/// Rank-level contradictions: axes out of range, perms and repeats that do not fit the
/// rank, constant indices out of range, negative target dims.
#[test]
fn rank_contradictions_refused() {
    let x = || vec![f32_in("x", &[D::P("N"), D::N(3)])];
    let y = || vec![f32_in("y", &[])];
    let cases: Vec<(G, &[&str])> = vec![
        (
            G::new(vec![node("Softmax", &["x"], &["y"], vec![attr_i("axis", 2)])], x(), y()),
            &["(Softmax)", "axis 2", "[N, 3]"],
        ),
        (
            G::new(vec![node("Transpose", &["x"], &["y"], vec![attr_ints("perm", &[1, 0, 2])])], x(), y()),
            &["(Transpose)", "perm [1, 0, 2]", "[N, 3]"],
        ),
        (
            G::new(vec![node("Gather", &["x", "i"], &["y"], vec![attr_i("axis", 1)])], x(), y()).inits(vec![t_i64(
                "i",
                &[2],
                &[0, 3],
            )]),
            &["(Gather)", "index 3", "[N, 3]"],
        ),
        (
            G::new(vec![node("ReduceMean", &["x"], &["y"], vec![attr_ints("axes", &[1, -1])])], x(), y()),
            &["(ReduceMean)", "repeated"],
        ),
        (
            G::new(vec![node("Tile", &["x", "r"], &["y"], vec![])], x(), y()).inits(vec![t_i64("r", &[1], &[2])]),
            &["(Tile)", "1 repeats", "[N, 3]"],
        ),
        (
            G::new(vec![node("Reshape", &["x", "s"], &["y"], vec![])], x(), y()).inits(vec![t_i64(
                "s",
                &[2],
                &[-1, -1],
            )]),
            &["(Reshape)", "more than one -1"],
        ),
        (
            G::new(vec![node("Gemm", &["x", "x"], &["y"], vec![])], vec![f32_in("x", &[D::N(3)])], y()),
            &["(Gemm)", "2-D"],
        ),
        (G::new(vec![node("GlobalAveragePool", &["x"], &["y"], vec![])], x(), y()), &["(GlobalAveragePool)", "[N, 3]"]),
    ];
    for (g, parts) in cases {
        contains_all(&refused(g, parts[0]), parts);
    }
}

/// A symbol two nodes force to different known sizes is a contradiction; forcing it to
/// the same size twice, or broadcasting it, is not.
#[test]
fn symbol_forced_to_two_sizes_refused() {
    let mm = |w: &'static str| node("MatMul", &["x", w], &[if w == "w3" { "y3" } else { "y4" }], vec![]);
    let g = G::new(
        vec![mm("w3"), mm("w4")],
        vec![f32_in("x", &[D::N(2), D::P("K")])],
        vec![f32_in("y3", &[]), f32_in("y4", &[])],
    )
    .inits(vec![t_f32("w3", &[3, 1], &[0.0; 3]), t_f32("w4", &[4, 1], &[0.0; 4])]);
    contains_all(&refused(g, "K = 3 and 4"), &["(MatMul)", "'K'", "must be 4", "be 3"]);
    let g = G::new(
        vec![mm("w3"), node("Add", &["x", "b4"], &["y4"], vec![])],
        vec![f32_in("x", &[D::N(2), D::P("K")])],
        vec![f32_in("y3", &[]), f32_in("y4", &[])],
    )
    .inits(vec![t_f32("w3", &[3, 1], &[0.0; 3]), t_f32("b4", &[1], &[0.0])]);
    Model::load(&g.bytes()).unwrap();
}

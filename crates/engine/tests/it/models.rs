//! Small models built in the test: values, input checks, the trace definition, threads.

use crate::build::*;
use deed_engine::{Model, RunError, RunOptions};
use deed_types::{DType, Hash32, Tensor, TensorData, TensorSet};

fn set(items: Vec<(&str, Tensor)>) -> TensorSet {
    TensorSet(items.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn f32s(t: &Tensor) -> &[f32] {
    match &t.data {
        TensorData::F32(v) => v,
        d => panic!("not f32: {:?}", d.dtype()),
    }
}

/// x[N,2] -> Gemm(W, b) -> Relu -> MatMul(W2) -> Add(b2) -> Softmax -> probs; ArgMax -> label.
fn mlp() -> Vec<u8> {
    G::new(
        vec![
            node("Gemm", &["x", "w1", "b1"], &["h"], vec![attr_i("transB", 1)]),
            node("Relu", &["h"], &["hr"], vec![]),
            node("MatMul", &["hr", "w2"], &["z0"], vec![]),
            node("Add", &["z0", "b2"], &["z"], vec![]),
            node("Softmax", &["z"], &["probs"], vec![attr_i("axis", -1)]),
            node("ArgMax", &["z"], &["label"], vec![attr_i("axis", 1), attr_i("keepdims", 0)]),
        ],
        vec![vi("x", DType::F32, &[D::P("N"), D::N(2)])],
        vec![vi("probs", DType::F32, &[D::P("N"), D::N(2)]), vi("label", DType::I64, &[D::P("N")])],
    )
    .inits(vec![
        // W1 stored as [out, in] with transB = 1.
        t_f32("w1", &[3, 2], &[1., 0., 0., 1., 1., -1.]),
        t_f32("b1", &[3], &[0., 0., 0.5]),
        t_f32("w2", &[3, 2], &[1., 0., 0., 1., 2., 0.]),
        t_f32("b2", &[2], &[0., 0.]),
    ])
    .bytes()
}

#[test]
fn mlp_hand_computed() {
    let m = Model::load(&mlp()).unwrap();
    assert_eq!(m.opset(), 13);
    assert_eq!(m.inputs().len(), 1, "initializers are not inputs");
    assert_eq!(m.inputs()[0].name, "x");
    assert_eq!(m.inputs()[0].shape, vec![None, Some(2)]);
    assert_eq!(
        m.outputs().iter().map(|o| (o.name.as_str(), o.dtype)).collect::<Vec<_>>(),
        vec![("probs", DType::F32), ("label", DType::I64)]
    );
    let x = Tensor::f32(vec![2, 2], vec![3., 1., -1., 2.]);
    let out = m.run(&set(vec![("x", x)]), &RunOptions::default()).unwrap();
    // Row 0: h = [3, 1, 2.5] -> z = [3 + 5, 1] = [8, 1]; row 1: h = [-1, 2, -2.5] -> relu [0, 2, 0] -> z = [0, 2].
    let e = |v: f32| deed_engine::math::exp(v);
    let p = f32s(&out.outputs.0["probs"]);
    let (a, b) = (e(0.0), e(-7.0));
    assert_eq!(&p[..2], &[a / (a + b), b / (a + b)]);
    let (a, b) = (e(-2.0), e(0.0));
    assert_eq!(&p[2..], &[a / (a + b), b / (a + b)]);
    assert_eq!(out.outputs.0["label"].data, TensorData::I64(vec![0, 1]));
    assert_eq!(out.outputs.0.len(), 2);
    assert_eq!(out.output_hash(), out.outputs.hash());
    // Six nodes: one trace segment.
    assert_eq!(out.trace.len(), 1);
}

#[test]
fn trace_definition() {
    // A chain of 2K + K/2 Adds (K = TRACE_SEGMENT_OPS), v_i = v_{i-1} + x (v_{-1} = x),
    // except node K + 4, which adds v_3: three segments. Segment 0 exports v_3 (read by
    // node K + 4), v_10 (a graph output) and v_{K-1} (read by node K); segment 1 exports
    // v_{2K-1}; segment 2 exports v_{n-1}, the other graph output. Internal values are
    // not hashed.
    let k = deed_engine::TRACE_SEGMENT_OPS;
    let n = 2 * k + k / 2;
    let name = |i: usize| format!("v{i}");
    let nodes: Vec<_> = (0..n)
        .map(|i| {
            let prev = if i == 0 { "x".to_string() } else { name(i - 1) };
            let other = if i == k + 4 { name(3) } else { "x".to_string() };
            node("Add", &[&prev, &other], &[&name(i)], vec![])
        })
        .collect();
    let bytes = G::new(
        nodes,
        vec![vi("x", DType::F32, &[D::N(2)])],
        vec![vi(&name(n - 1), DType::F32, &[D::N(2)]), vi("v10", DType::F32, &[D::N(2)])],
    )
    .bytes();
    let m = Model::load(&bytes).unwrap();
    assert_eq!((m.node_count(), m.trace_len()), (n, 3));
    let x = [0.5f32, -0.25];
    let mut v = Vec::new();
    for i in 0..n {
        let prev = if i == 0 { x } else { v[i - 1] };
        let other = if i == k + 4 { v[3] } else { x };
        v.push([prev[0] + other[0], prev[1] + other[1]]);
    }
    let t = |i: usize| Tensor::f32(vec![2], v[i].to_vec());
    let xt = Tensor::f32(vec![2], x.to_vec());
    let enc = |ids: &[usize]| {
        let mut buf = Vec::new();
        for &i in ids {
            t(i).encode_into(&mut buf);
        }
        Hash32::of(&buf)
    };
    let want = vec![enc(&[3, 10, k - 1]), enc(&[2 * k - 1]), enc(&[n - 1])];
    let out = m.run(&set(vec![("x", xt.clone())]), &RunOptions::default()).unwrap();
    assert_eq!(out.outputs.0[&name(n - 1)], t(n - 1));
    assert_eq!(out.trace, want);
    assert_eq!(out.trace_root(), deed_types::merkle::root(&want));
    // What a fraud proof replays: segment 1 reads v_{K-1}, x and v_3 (in order of first
    // read) and hashes to its entry; producer blobs split back into the exports.
    assert_eq!(
        m.entry_sources(1),
        vec![
            deed_engine::Source::Entry { entry: 0, value: 2 },
            deed_engine::Source::Input("x".into()),
            deed_engine::Source::Entry { entry: 0, value: 0 },
        ]
    );
    assert_eq!(m.entry_nodes(1), k..2 * k);
    assert_eq!(m.replay_entry(1, &[t(k - 1), xt.clone(), t(3)]).unwrap(), want[1]);
    assert_ne!(m.replay_entry(1, &[t(k - 2), xt.clone(), t(3)]).unwrap(), want[1]);
    assert!(m.replay_entry(1, &[t(k - 1), xt.clone()]).is_err());
    let (kept, blobs) = m.run_keep_all(&set(vec![("x", xt.clone())]), &RunOptions::default()).unwrap();
    assert_eq!(kept.trace, want);
    assert_eq!(m.split_entry_values(0, &blobs[0]).unwrap(), vec![t(3), t(10), t(k - 1)]);
    assert!(m.split_entry_values(1, &blobs[0]).is_err());
    let quiet = m.run(&set(vec![("x", xt)]), &RunOptions { threads: 1, trace: false }).unwrap();
    assert!(quiet.trace.is_empty());
    assert_eq!(quiet.output_hash(), out.output_hash());
}

#[test]
fn input_checks_have_clear_messages() {
    let m = Model::load(&mlp()).unwrap();
    let run = |s: TensorSet| m.run(&s, &RunOptions::default()).unwrap_err();
    let e = run(set(vec![("x", Tensor::f32(vec![2, 3], vec![0.; 6]))]));
    assert!(matches!(e, RunError::InputShape { .. }));
    assert_eq!(e.to_string(), "input 'x' has shape [2, 3] but the model expects [N, 2]");
    let e = run(set(vec![("x", Tensor::f32(vec![2], vec![0.; 2]))]));
    assert!(matches!(e, RunError::InputShape { .. }), "{e}");
    let e = run(TensorSet::default());
    assert!(matches!(&e, RunError::MissingInput(n) if n == "x"), "{e}");
    let e = run(set(vec![("x", Tensor::f32(vec![1, 2], vec![0.; 2])), ("y", Tensor::f32(vec![], vec![0.]))]));
    assert!(matches!(&e, RunError::UnexpectedInput(n) if n == "y"), "{e}");
    let e = run(set(vec![("w1", Tensor::f32(vec![3, 2], vec![0.; 6])), ("x", Tensor::f32(vec![1, 2], vec![0.; 2]))]));
    assert!(matches!(&e, RunError::UnexpectedInput(n) if n == "w1"), "initializers cannot be overridden: {e}");
    let e = run(set(vec![("x", Tensor::new(vec![1, 2], TensorData::I64(vec![1, 2])).unwrap())]));
    assert_eq!(e.to_string(), "input 'x' has dtype int64 but the model expects float32");
    // Zero rows is a valid batch.
    let out = m.run(&set(vec![("x", Tensor::f32(vec![0, 2], vec![]))]), &RunOptions::default()).unwrap();
    assert_eq!(out.outputs.0["probs"].shape, vec![0, 2]);
}

#[test]
fn input_element_limit() {
    let limits = deed_engine::Limits { input_elements_max: 10, ..Default::default() };
    let m = Model::load_with(&mlp(), &limits).unwrap();
    let e = m.run(&set(vec![("x", Tensor::f32(vec![6, 2], vec![0.; 12]))]), &RunOptions::default()).unwrap_err();
    assert!(matches!(e, RunError::OverLimit { .. }), "{e}");
    let e = Model::load_with(&mlp(), &deed_engine::Limits { tensor_elements_max: 5, ..Default::default() });
    assert!(e.is_err(), "initializer w1 has 6 elements");
}

#[test]
fn runtime_shape_errors_name_the_node() {
    // Add of two inputs whose dynamic shapes turn out not to broadcast.
    let bytes = G::new(
        vec![node("Add", &["a", "b"], &["c"], vec![])],
        vec![vi("a", DType::F32, &[D::P("n")]), vi("b", DType::F32, &[D::P("m")])],
        vec![vi("c", DType::F32, &[D::P("k")])],
    )
    .bytes();
    let m = Model::load(&bytes).unwrap();
    let s = set(vec![("a", Tensor::f32(vec![2], vec![0.; 2])), ("b", Tensor::f32(vec![3], vec![0.; 3]))]);
    let e = m.run(&s, &RunOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "node 'Add_c' (Add) failed: shapes [2] and [3] do not broadcast together");
}

#[test]
fn execution_order_is_topological_and_stable() {
    // Nodes listed backwards; a Constant feeds a Reshape; an output is also an input.
    let bytes = G::new(
        vec![
            node("Identity", &["r"], &["y"], vec![]),
            node("Reshape", &["x2", "shape"], &["r"], vec![]),
            node("Mul", &["x", "x"], &["x2"], vec![]),
            node("Constant", &[], &["shape"], vec![attr_t("value", t_i64("", &[2], &[-1, 2]))]),
        ],
        vec![vi("x", DType::F32, &[D::N(4)])],
        vec![vi("y", DType::F32, &[D::N(2), D::N(2)]), vi("x", DType::F32, &[D::N(4)])],
    )
    .bytes();
    let m = Model::load(&bytes).unwrap();
    let out = m.run(&set(vec![("x", Tensor::f32(vec![4], vec![1., 2., 3., 4.]))]), &RunOptions::default()).unwrap();
    assert_eq!(out.outputs.0["y"], Tensor::f32(vec![2, 2], vec![1., 4., 9., 16.]));
    assert_eq!(out.outputs.0["x"], Tensor::f32(vec![4], vec![1., 2., 3., 4.]));
    // Order: Mul (#2) and Constant (#3) are ready; #2 first, then #3, Reshape, Identity.
    let shape = Tensor::new(vec![2], TensorData::I64(vec![-1, 2])).unwrap();
    let x2 = Tensor::f32(vec![4], vec![1., 4., 9., 16.]);
    let every = m.run_every_node(&set(vec![("x", Tensor::f32(vec![4], vec![1., 2., 3., 4.]))]), 1).unwrap();
    assert_eq!(every[0], vec![Some(x2)]);
    assert_eq!(every[1], vec![Some(shape)]);
    assert_eq!(every.len(), 4);
    // One segment; it exports `y` only (`x` is a graph input, not a node's output).
    assert_eq!(out.trace, vec![Hash32::of(&out.outputs.0["y"].encode())]);
}

#[test]
fn constant_attribute_forms_and_cast() {
    let bytes = G::new(
        vec![
            node("Constant", &[], &["c"], vec![attr_ints("value_ints", &[1, -2, 3])]),
            node("Cast", &["c"], &["cf"], vec![attr_i("to", DType::F32.code() as i64)]),
            node("Constant", &[], &["s"], vec![attr_f("value_float", 0.5)]),
            node("Mul", &["cf", "s"], &["y"], vec![]),
        ],
        vec![],
        vec![vi("y", DType::F32, &[D::N(3)])],
    )
    .bytes();
    let m = Model::load(&bytes).unwrap();
    assert!(m.inputs().is_empty());
    let out = m.run(&TensorSet::default(), &RunOptions::default()).unwrap();
    assert_eq!(out.outputs.0["y"], Tensor::f32(vec![3], vec![0.5, -1.0, 1.5]));
}

#[test]
fn conv_pool_flatten_gemm_threads_agree() {
    // A small CNN big enough for the threaded paths: [1,3,32,32] -> Conv 8x3x3 -> Relu -> MaxPool -> Flatten -> Gemm 10.
    let w: Vec<f32> = (0..8 * 3 * 9).map(|i| ((i * 37 % 19) as f32 - 9.0) / 10.0).collect();
    let fc: Vec<f32> = (0..10 * 8 * 16 * 16).map(|i| ((i * 13 % 23) as f32 - 11.0) / 100.0).collect();
    let bytes = G::new(
        vec![
            node("Conv", &["img", "w", "b"], &["c"], vec![attr_ints("pads", &[1, 1, 1, 1])]),
            node("Relu", &["c"], &["r"], vec![]),
            node("MaxPool", &["r"], &["p"], vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])]),
            node("Flatten", &["p"], &["f"], vec![]),
            node("Gemm", &["f", "fc", "fcb"], &["y"], vec![attr_i("transB", 1), attr_f("alpha", 0.5)]),
            node("Tanh", &["y"], &["t"], vec![]),
            node("Sigmoid", &["y"], &["s"], vec![]),
            node("Exp", &["s"], &["e"], vec![]),
            node("Sub", &["t", "e"], &["d"], vec![]),
            node("Div", &["d", "e"], &["out"], vec![]),
        ],
        vec![vi("img", DType::F32, &[D::P("N"), D::N(3), D::N(32), D::N(32)])],
        vec![vi("out", DType::F32, &[D::P("N"), D::N(10)])],
    )
    .inits(vec![
        t_f32("w", &[8, 3, 3, 3], &w),
        t_f32("b", &[8], &[0.1, -0.1, 0.2, -0.2, 0.3, -0.3, 0.0, 0.05]),
        t_f32("fc", &[10, 2048], &fc),
        t_f32("fcb", &[10], &[0.0; 10]),
    ])
    .bytes();
    let m = Model::load(&bytes).unwrap();
    let img: Vec<f32> = (0..2 * 3 * 1024).map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0).collect();
    let s = set(vec![("img", Tensor::f32(vec![2, 3, 32, 32], img))]);
    let one = m.run(&s, &RunOptions { threads: 1, trace: true }).unwrap();
    for threads in [2, 3, 0] {
        let many = m.run(&s, &RunOptions { threads, trace: true }).unwrap();
        assert_eq!(many.output_hash(), one.output_hash(), "threads = {threads}");
        assert_eq!(many.trace, one.trace, "threads = {threads}");
    }
    // Every kernel path this CPU has, at several thread counts, gives the same trace root.
    for path in deed_engine::kernels::KernelPath::available() {
        for threads in [1, 2] {
            let r = m.run_with_kernels(&s, &RunOptions { threads, trace: true }, path).unwrap();
            assert_eq!(r.trace_root(), one.trace_root(), "{path:?}, threads = {threads}");
        }
    }
    // Many runs at once (as a node runs jobs), sharing the engine's worker pool with more
    // parallel parts in flight than there are workers: every run gives the same bits.
    std::thread::scope(|sc| {
        let runs: Vec<_> = (0..6)
            .map(|c| {
                let (m, s, one) = (&m, &s, &one);
                sc.spawn(move || {
                    for r in 0..8 {
                        let threads = 2 + (c + r) % 3;
                        let many = m.run(s, &RunOptions { threads, trace: true }).unwrap();
                        assert_eq!(many.trace, one.trace, "concurrent run {c}.{r}, threads = {threads}");
                    }
                })
            })
            .collect();
        for h in runs {
            h.join().unwrap();
        }
    });
    assert_eq!(one.outputs.0["out"].shape, vec![2, 10]);
    assert!(f32s(&one.outputs.0["out"]).iter().all(|v| v.is_finite()));
}

#[test]
fn model_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
    let m = std::sync::Arc::new(Model::load(&mlp()).unwrap());
    let s = set(vec![("x", Tensor::f32(vec![1, 2], vec![1., 2.]))]);
    let hashes: Vec<Hash32> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4).map(|_| sc.spawn(|| m.run(&s, &RunOptions::default()).unwrap().trace_root())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(hashes.windows(2).all(|w| w[0] == w[1]));
}

/// Weights packed at load (constant B of MatMul/Gemm) give the bits of the same weights
/// fed as graph inputs (never packed), on every kernel path and thread count: a Gemm with
/// transB over a weight also used by a second Gemm, a MatMul weight used twice, a weight
/// also used by an Add (not packed), K over one dot block and N not a multiple of 16.
#[test]
fn packed_weights_match_unpacked() {
    let (k, n) = (300usize, 37usize);
    let val = |i: usize, s: usize| ((i * s % 211) as f32 - 105.0) / 97.0;
    let wt: Vec<f32> = (0..n * k).map(|i| val(i, 31)).collect(); // [n, k], transB
    let wm: Vec<f32> = (0..n * n).map(|i| val(i, 17)).collect(); // [n, n]
    let wa: Vec<f32> = (0..n * n).map(|i| val(i, 13)).collect(); // [n, n], also added
    let nodes = vec![
        node("Gemm", &["x", "wt"], &["h1"], vec![attr_i("transB", 1)]),
        node("Gemm", &["x", "wt"], &["h2"], vec![attr_i("transB", 1), attr_f("alpha", 0.5)]),
        node("Add", &["h1", "h2"], &["h"], vec![]),
        node("MatMul", &["h", "wm"], &["m1"], vec![]),
        node("MatMul", &["m1", "wm"], &["m2"], vec![]),
        node("MatMul", &["m2", "wa"], &["y"], vec![]),
        node("Add", &["wa", "wa"], &["z"], vec![]),
    ];
    let x_vi = vi("x", DType::F32, &[D::P("N"), D::N(k as i64)]);
    let outs =
        vec![vi("y", DType::F32, &[D::P("N"), D::N(n as i64)]), vi("z", DType::F32, &[D::N(n as i64), D::N(n as i64)])];
    let packed = G::new(nodes.clone(), vec![x_vi.clone()], outs.clone())
        .inits(vec![
            t_f32("wt", &[n as i64, k as i64], &wt),
            t_f32("wm", &[n as i64, n as i64], &wm),
            t_f32("wa", &[n as i64, n as i64], &wa),
        ])
        .bytes();
    let fed = G::new(
        nodes,
        vec![
            x_vi,
            vi("wt", DType::F32, &[D::N(n as i64), D::N(k as i64)]),
            vi("wm", DType::F32, &[D::N(n as i64), D::N(n as i64)]),
            vi("wa", DType::F32, &[D::N(n as i64), D::N(n as i64)]),
        ],
        outs,
    )
    .bytes();
    let (mp, mf) = (Model::load(&packed).unwrap(), Model::load(&fed).unwrap());
    for rows in [1usize, 2, 9, 37] {
        let x = Tensor::f32(vec![rows, k], (0..rows * k).map(|i| val(i, 7)).collect());
        let sp = set(vec![("x", x.clone())]);
        let sf = set(vec![
            ("x", x),
            ("wt", Tensor::f32(vec![n, k], wt.clone())),
            ("wm", Tensor::f32(vec![n, n], wm.clone())),
            ("wa", Tensor::f32(vec![n, n], wa.clone())),
        ]);
        let want = mf
            .run_with_kernels(&sf, &RunOptions { threads: 1, trace: true }, deed_engine::kernels::KernelPath::Reference)
            .unwrap();
        for path in deed_engine::kernels::KernelPath::available() {
            for threads in [1, 2] {
                let opts = RunOptions { threads, trace: true };
                let (p, f) =
                    (mp.run_with_kernels(&sp, &opts, path).unwrap(), mf.run_with_kernels(&sf, &opts, path).unwrap());
                assert_eq!(p.output_hash(), want.output_hash(), "{path:?}, threads = {threads}");
                assert_eq!(p.trace, f.trace, "{path:?}, threads = {threads}");
            }
        }
    }
}

/// NaNs of other signs and payloads flowing through elementwise, normalization, softmax
/// and product ops: the hardware may pick a NaN result's bits differently on each kernel
/// path, and the trace and output hash must not care (`deed-engine/2`: NaNs are hashed
/// as the canonical NaN).
#[test]
fn nan_bits_do_not_reach_the_trace() {
    let bytes = G::new(
        vec![
            node("Add", &["x", "y"], &["s"], vec![]),
            node("Mul", &["s", "x"], &["p"], vec![]),
            node("LayerNormalization", &["p", "g", "b"], &["ln"], vec![attr_i("axis", -1)]),
            node("Softmax", &["ln"], &["sm"], vec![attr_i("axis", -1)]),
            node("Sigmoid", &["p"], &["sg"], vec![]),
            node("MatMul", &["sg", "w"], &["mm"], vec![]),
            node("Sqrt", &["y"], &["sq"], vec![]),
            node("Sub", &["sm", "sq"], &["out"], vec![]),
        ],
        vec![vi("x", DType::F32, &[D::N(4), D::N(64)]), vi("y", DType::F32, &[D::N(4), D::N(64)])],
        vec![vi("out", DType::F32, &[D::N(4), D::N(64)]), vi("mm", DType::F32, &[D::N(4), D::N(64)])],
    )
    .inits(vec![
        t_f32("g", &[64], &[1.5; 64]),
        t_f32("b", &[64], &[0.25; 64]),
        t_f32("w", &[64, 64], &(0..64 * 64).map(|i| ((i % 13) as f32 - 6.0) / 8.0).collect::<Vec<_>>()),
    ])
    .bytes();
    let m = Model::load(&bytes).unwrap();
    let odd = [f32::from_bits(0xffc0_0000), f32::from_bits(0x7fc0_0001), f32::from_bits(0xff80_0123), f32::NAN];
    let x: Vec<f32> = (0..256).map(|i| if i % 37 == 5 { odd[i % 4] } else { (i as f32 - 128.0) / 32.0 }).collect();
    let y: Vec<f32> = (0..256)
        .map(|i| match i % 41 {
            3 => odd[(i / 41) % 4],
            7 => f32::INFINITY,
            9 => -1.0,
            _ => (i % 17) as f32 / 4.0,
        })
        .collect();
    let s = set(vec![("x", Tensor::f32(vec![4, 64], x)), ("y", Tensor::f32(vec![4, 64], y))]);
    let want = m
        .run_with_kernels(&s, &RunOptions { threads: 1, trace: true }, deed_engine::kernels::KernelPath::Reference)
        .unwrap();
    assert!(f32s(&want.outputs.0["out"]).iter().any(|v| v.is_nan()), "the test must produce NaNs");
    for path in deed_engine::kernels::KernelPath::available() {
        for threads in [1, 2, 3] {
            let r = m.run_with_kernels(&s, &RunOptions { threads, trace: true }, path).unwrap();
            assert_eq!(r.trace, want.trace, "{path:?}, threads = {threads}");
            assert_eq!(r.output_hash(), want.output_hash(), "{path:?}, threads = {threads}");
        }
    }
}

//! Tree ensembles: the flat, blocked, threaded evaluation against the straightforward
//! one it replaced (kept here as the reference), bit for bit, on random ensembles.

use super::*;
use crate::onnx::{AttributeProto, NodeProto, attr_type};

/// A small xorshift generator (the tests only need variety, not quality).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const MODES: [&str; 6] = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"];

/// The attributes of one random ensemble.
#[derive(Default)]
struct Gen {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feats: Vec<i64>,
    tn: Vec<i64>,
    fnn: Vec<i64>,
    vals: Vec<f32>,
    modes: Vec<String>,
    miss: Vec<i64>,
    wt: Vec<i64>,
    wn: Vec<i64>,
    wid: Vec<i64>,
    ww: Vec<f32>,
    n_out: usize,
    classifier: bool,
    agg: &'static str,
    base: Vec<f32>,
    post: &'static str,
    max_feature: usize,
}

fn threshold(r: &mut Rng) -> f32 {
    match r.below(12) {
        0 => f32::NAN,
        1 => -0.0,
        _ => r.below(9) as f32 * 0.5 - 2.0,
    }
}

fn weight(r: &mut Rng) -> f32 {
    match r.below(10) {
        0 => -0.0,
        1 => 1e30,
        2 => -3.5e-39,
        3 => 1.0 / 3.0,
        _ => (r.below(2001) as f32 - 1000.0) / 64.0,
    }
}

fn generate(seed: u64) -> Gen {
    let mut r = Rng(seed | 1);
    let mut g = Gen { n_out: 1 + r.below(4), classifier: r.chance(50), ..Gen::default() };
    let binary = g.classifier && r.chance(40);
    if binary {
        g.n_out = 2;
    }
    let single_class = binary && r.chance(60);
    let features = 1 + r.below(6);
    let one_mode = r.chance(50).then(|| MODES[r.below(6)]);
    // (tree id, node id, is root) in attribute order, filled below.
    let mut entries = Vec::new();
    let trees = 1 + r.below(6);
    for tree in 0..trees {
        let tid = tree as i64 * 7 + 3;
        let m = 1 + r.below(24);
        let ids: Vec<i64> = (0..m as i64).map(|j| 100 - 3 * j).collect();
        let mut local = Vec::new();
        for j in 0..m {
            let leaf = j + 1 == m || (j > 0 && r.chance(30));
            let (mode, t, f) = if leaf {
                ("LEAF".to_string(), ids[j], ids[j])
            } else {
                // Children come later: acyclic; shared children make a DAG.
                let t = j + 1 + r.below(m - j - 1);
                let f = j + 1 + r.below(m - j - 1);
                (one_mode.unwrap_or(MODES[r.below(6)]).to_string(), ids[t], ids[f])
            };
            let feat = r.below(features);
            g.max_feature = g.max_feature.max(feat);
            local.push((tid, ids[j], feat as i64, t, f, threshold(&mut r), mode, r.chance(30) as i64));
            if leaf || r.chance(5) {
                // Weights on branch nodes are never used.
                for _ in 0..r.below(4) {
                    let c = if single_class { 1 } else { r.below(g.n_out) };
                    g.wt.push(tid);
                    g.wn.push(ids[j]);
                    g.wid.push(c as i64);
                    g.ww.push(weight(&mut r));
                }
            }
        }
        if r.chance(20) {
            // Two unreachable nodes in a cycle: ignored.
            local.push((tid, 500, 0, 501, 501, 0.0, "BRANCH_LEQ".into(), 0));
            local.push((tid, 501, 0, 500, 500, 0.0, "BRANCH_LEQ".into(), 0));
        }
        entries.push(local);
    }
    // Interleave the trees' nodes; each tree's root stays its first node.
    let mut order: Vec<(usize, usize)> = Vec::new();
    let mut next = vec![0usize; trees];
    loop {
        let open: Vec<usize> = (0..trees).filter(|&t| next[t] < entries[t].len()).collect();
        if open.is_empty() {
            break;
        }
        let t = open[r.below(open.len())];
        let j = if next[t] == 0 { 0 } else { next[t] + r.below(entries[t].len() - next[t]) };
        entries[t].swap(next[t], j);
        order.push((t, next[t]));
        next[t] += 1;
    }
    for (t, j) in order {
        let (tid, id, feat, tt, ff, v, mode, miss) = entries[t][j].clone();
        g.tree_ids.push(tid);
        g.node_ids.push(id);
        g.feats.push(feat);
        g.tn.push(tt);
        g.fnn.push(ff);
        g.vals.push(v);
        g.modes.push(mode);
        g.miss.push(miss);
    }
    // Weights in a shuffled attribute order.
    for k in (1..g.wt.len()).rev() {
        let j = r.below(k + 1);
        g.wt.swap(k, j);
        g.wn.swap(k, j);
        g.wid.swap(k, j);
        g.ww.swap(k, j);
    }
    g.agg = ["SUM", "AVERAGE", "MIN", "MAX"][r.below(4)];
    g.post = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"][r.below(4)];
    if r.chance(50) {
        g.base = (0..g.n_out).map(|_| weight(&mut r)).collect();
    }
    g
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::INTS, ints: v.to_vec(), ..Default::default() }
}
fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::FLOATS, floats: v.to_vec(), ..Default::default() }
}
fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::STRING, s: v.as_bytes().to_vec(), ..Default::default() }
}

fn node(g: &Gen) -> NodeProto {
    let p = if g.classifier { "class_" } else { "target_" };
    let mut attribute = vec![
        ints("nodes_treeids", &g.tree_ids),
        ints("nodes_nodeids", &g.node_ids),
        ints("nodes_featureids", &g.feats),
        ints("nodes_truenodeids", &g.tn),
        ints("nodes_falsenodeids", &g.fnn),
        floats("nodes_values", &g.vals),
        AttributeProto {
            name: "nodes_modes".into(),
            r#type: attr_type::STRINGS,
            strings: g.modes.iter().map(|m| m.as_bytes().to_vec()).collect(),
            ..Default::default()
        },
        ints("nodes_missing_value_tracks_true", &g.miss),
        ints(&format!("{p}treeids"), &g.wt),
        ints(&format!("{p}nodeids"), &g.wn),
        ints(&format!("{p}ids"), &g.wid),
        floats(&format!("{p}weights"), &g.ww),
        string("aggregate_function", g.agg),
        string("post_transform", g.post),
    ];
    if !g.base.is_empty() {
        attribute.push(floats("base_values", &g.base));
    }
    if g.classifier {
        attribute.push(ints("classlabels_int64s", &(0..g.n_out as i64).map(|c| 10 * c - 5).collect::<Vec<_>>()));
    } else {
        attribute.push(AttributeProto {
            name: "n_targets".into(),
            r#type: attr_type::INT,
            i: g.n_out as i64,
            ..Default::default()
        });
    }
    NodeProto {
        op_type: if g.classifier { "TreeEnsembleClassifier" } else { "TreeEnsembleRegressor" }.into(),
        attribute,
        ..Default::default()
    }
}

/// The evaluation as it was before the flat layout: one sample at a time, each tree
/// walked with a step bound, then the same post-processing.
fn reference(g: &Gen, x: &Tensor) -> Result<Vec<Tensor>, String> {
    struct Old {
        mode: &'static str,
        feature: usize,
        value: f32,
        t: usize,
        f: usize,
        nan_true: bool,
        leaf: Vec<(usize, f32)>,
    }
    let n = g.tree_ids.len();
    let find = |t: i64, id: i64| (0..n).find(|&i| g.tree_ids[i] == t && g.node_ids[i] == id).unwrap();
    let mut roots: Vec<usize> = Vec::new();
    for i in 0..n {
        if !roots.iter().any(|&r| g.tree_ids[r] == g.tree_ids[i]) {
            roots.push(i);
        }
    }
    let mut nodes: Vec<Old> = (0..n)
        .map(|i| {
            let mode = MODES.iter().copied().find(|&m| m == g.modes[i]).unwrap_or("LEAF");
            let (t, f) =
                if mode == "LEAF" { (i, i) } else { (find(g.tree_ids[i], g.tn[i]), find(g.tree_ids[i], g.fnn[i])) };
            Old { mode, feature: g.feats[i] as usize, value: g.vals[i], t, f, nan_true: g.miss[i] != 0, leaf: vec![] }
        })
        .collect();
    for k in 0..g.wt.len() {
        let i = find(g.wt[k], g.wn[k]);
        nodes[i].leaf.push((g.wid[k] as usize, g.ww[k]));
    }
    let (xv, ns, f) = features(x).map_err(|e| format!("{e:?}"))?;
    let n_out = g.n_out;
    let mut scores = vec![0.0f32; ns * n_out];
    for s in 0..ns {
        let row = &xv[s * f..(s + 1) * f];
        let out = &mut scores[s * n_out..(s + 1) * n_out];
        let mut seen = vec![false; n_out];
        for &root in &roots {
            let mut i = root;
            let mut steps = 0;
            while nodes[i].mode != "LEAF" {
                let nd = &nodes[i];
                let x = *row
                    .get(nd.feature)
                    .ok_or_else(|| format!("{:?}", inv(format!("feature {} of {f}", nd.feature))))?;
                let go = if x.is_nan() {
                    nd.nan_true
                } else {
                    match nd.mode {
                        "BRANCH_LEQ" => x <= nd.value,
                        "BRANCH_LT" => x < nd.value,
                        "BRANCH_GTE" => x >= nd.value,
                        "BRANCH_GT" => x > nd.value,
                        "BRANCH_EQ" => x == nd.value,
                        _ => x != nd.value,
                    }
                };
                i = if go { nd.t } else { nd.f };
                steps += 1;
                assert!(steps <= nodes.len(), "the generator makes no reachable cycles");
            }
            for &(c, w) in &nodes[i].leaf {
                out[c] = match g.agg {
                    "SUM" | "AVERAGE" => out[c] + w,
                    "MIN" if seen[c] => out[c].min(w),
                    "MAX" if seen[c] => out[c].max(w),
                    _ => w,
                };
                seen[c] = true;
            }
        }
        if g.agg == "AVERAGE" {
            out.iter_mut().for_each(|v| *v /= roots.len().max(1) as f32);
        }
        for (c, v) in out.iter_mut().enumerate() {
            if let Some(b) = g.base.get(c) {
                *v += *b;
            }
        }
    }
    let post = match g.post {
        "NONE" => Post::None,
        "LOGISTIC" => Post::Logistic,
        "SOFTMAX" => Post::Softmax,
        _ => Post::SoftmaxZero,
    };
    if !g.classifier {
        for row in scores.chunks_mut(n_out) {
            post_row(post, row);
        }
        return Ok(vec![Tensor { shape: vec![ns, n_out], data: TensorData::F32(scores) }]);
    }
    let binary_single = (n_out == 2)
        .then(|| {
            let mut ids = g.wid.clone();
            ids.sort_unstable();
            ids.dedup();
            (ids.len() == 1).then(|| g.ww.iter().all(|&w| w >= 0.0))
        })
        .flatten();
    let mut lab = Vec::new();
    for row in scores.chunks_mut(n_out) {
        if let Some(positive) = binary_single {
            let s = row[0] + row[1];
            row[1] = s;
            row[0] = if positive { 1.0 - s } else { -s };
        }
        post_row(post, row);
        let mut best = 0;
        for c in 1..row.len() {
            if row[c] > row[best] {
                best = c;
            }
        }
        lab.push(10 * best as i64 - 5);
    }
    Ok(vec![
        Tensor { shape: vec![ns], data: TensorData::I64(lab) },
        Tensor { shape: vec![ns, n_out], data: TensorData::F32(scores) },
    ])
}

/// Random features for `g`: thresholds, NaN, ±0, ±∞ and others; sometimes fewer features
/// than the trees read, and other dtypes.
fn input(g: &Gen, seed: u64) -> Tensor {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let n = r.below(70);
    let f = if r.chance(15) { r.below(g.max_feature + 1) } else { g.max_feature + 1 + r.below(3) };
    let v: Vec<f32> = (0..n * f)
        .map(|_| match r.below(10) {
            0 => f32::NAN,
            1 => -0.0,
            2 => f32::INFINITY,
            3 => f32::NEG_INFINITY,
            4..=6 => threshold(&mut r),
            _ => (r.below(4001) as f32 - 2000.0) / 500.0,
        })
        .collect();
    match r.below(6) {
        0 => Tensor { shape: vec![n, f], data: TensorData::F64(v.iter().map(|&a| a as f64).collect()) },
        1 => Tensor { shape: vec![n, f], data: TensorData::I64(v.iter().map(|&a| a as i64).collect()) },
        2 if n == 1 => Tensor { shape: vec![f], data: TensorData::F32(v) },
        _ => Tensor { shape: vec![n, f], data: TensorData::F32(v) },
    }
}

fn bits(ts: &[Tensor]) -> Vec<(Vec<usize>, Vec<u64>)> {
    ts.iter()
        .map(|t| {
            let b = match &t.data {
                TensorData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
                TensorData::I64(v) => v.iter().map(|&x| x as u64).collect(),
                d => panic!("{:?}", d.dtype()),
            };
            (t.shape.clone(), b)
        })
        .collect()
}

/// Checks one random ensemble on four inputs; returns how many runs failed (both ways).
fn check(seed: u64) -> usize {
    let g = generate(seed);
    let nd = node(&g);
    let attrs = Attrs::new(&nd, "trees".into());
    let trees = parse_trees(&attrs, g.classifier, &Limits::default()).expect("valid ensemble");
    let l = Limits::default();
    let mut failed = 0;
    for k in 0..4 {
        let x = input(&g, seed ^ k);
        let want = reference(&g, &x).map(|t| bits(&t));
        failed += want.is_err() as usize;
        for threads in [1, 2, 3] {
            let ctx = Ctx { limits: &l, threads, kernels: crate::kernels::KernelPath::Reference };
            // Threaded from the smallest batches on.
            let got = trees.run_with(&[Some(&x)], &ctx, 0).map(|t| bits(&t)).map_err(|e| format!("{e:?}"));
            assert_eq!(got, want, "seed {seed}, input {k}, threads {threads}");
        }
    }
    failed
}

#[test]
fn random_ensembles_match_the_reference() {
    let failed: usize = (0..600).map(check).sum();
    // Some inputs have too few features for a node a walk reaches: both fail alike.
    assert!((20..1200).contains(&failed), "{failed} of 2400 runs failed");
}

#[test]
fn cycles_refused_at_load_and_depth_measured() {
    let mut g = generate(11);
    // A reachable cycle: the root's child points back to the root.
    g.tree_ids = vec![1, 1];
    g.node_ids = vec![0, 1];
    g.feats = vec![0, 0];
    g.tn = vec![1, 0];
    g.fnn = vec![1, 0];
    g.vals = vec![0.0, 0.0];
    g.modes = vec!["BRANCH_LEQ".into(), "BRANCH_LEQ".into()];
    g.miss = vec![0, 0];
    g.wt.clear();
    g.wn.clear();
    g.wid.clear();
    g.ww.clear();
    let nd = node(&g);
    let err = parse_trees(&Attrs::new(&nd, "trees".into()), g.classifier, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("cycle"), "{err}");
    // A chain of depth 3 with a shared leaf: 0 → {1, 3}, 1 → {2, 3}, 2 → {3, 4}.
    g.tree_ids = vec![1; 5];
    g.node_ids = vec![0, 1, 2, 3, 4];
    g.feats = vec![0; 5];
    g.tn = vec![1, 2, 3, 0, 0];
    g.fnn = vec![3, 3, 4, 0, 0];
    g.vals = vec![0.0; 5];
    g.modes = ["BRANCH_LEQ", "BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF"].map(String::from).to_vec();
    g.miss = vec![0; 5];
    let nd = node(&g);
    let t = parse_trees(&Attrs::new(&nd, "trees".into()), g.classifier, &Limits::default()).unwrap();
    assert_eq!(t.roots, vec![Root { node: 0, min_depth: 1, depth: 3 }]);
    assert_eq!(t.nodes.len(), 5);
}

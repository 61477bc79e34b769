//! The `ai.onnx.ml` operators that scikit-learn, XGBoost and LightGBM exports use, on
//! float32 features `[N, F]` (int64/int32/float64 features are converted to f32 as `as`
//! does, which is exact for |x| < 2²⁴).
//!
//! **Tree ensembles** (part of the engine spec): trees are taken in order of their first
//! node in the attribute arrays; a tree's root is that first node. A node compares
//! `x[feature]` with its threshold (`BRANCH_LEQ`: `x ≤ t`, `LT`, `GTE`, `GT`, `EQ`,
//! `NEQ`) and a NaN feature follows the true branch when `missing_value_tracks_true`
//! is set, else the comparison (false). Per sample, each tree's leaf adds its weights
//! in attribute order to the per-target (per-class) accumulators, `s = s + w` in f32
//! from `+0.0`, trees in order. Then `AVERAGE` divides by the tree count, `MIN`/`MAX`
//! keep the extreme leaf value instead of summing; `base_values` are added last.
//! Classifier: with two class labels and weights for only one class the score `s`
//! becomes `[1 − s, s]` when every weight is non-negative, else `[−s, s]`. Post
//! transforms: `LOGISTIC` = the engine's sigmoid per score, `SOFTMAX` as the Softmax
//! operator, `SOFTMAX_ZERO` the same skipping exact zeros (left 0). The label is the
//! class with the first maximal final score.
//!
//! A tree in which a walk from the root could come back to a node it passed (a cycle) is
//! refused at load; nodes that no root reaches are ignored. How the work is scheduled —
//! blocks of samples walking one tree together, samples split over threads — changes no
//! bit: each sample's accumulators still receive the trees in order.
//!
//! **ZipMap** turns `[N, C]` probabilities into a sequence of N maps from class label to
//! probability. deed tensors have no maps, so ZipMap's output is carried as the very same
//! float32 `[N, C]` tensor: column `c` is the value for key `classlabels[c]` (the key
//! order of the attribute). The keys are part of the model, not of the data; an output
//! declared as a sequence of maps is accepted at load for this reason and reported as
//! float32 `[N, C]`.
//!
//! String tensors do not exist in deed: operators with string labels, keys or categories
//! (`classlabels_strings`, `keys_strings`, `cats_strings`, ...) are refused at load.
//!
//! Linear models: `score[c] = intercept[c] + Σ_f coef[c, f] · x[f]` with the engine's dot
//! product (`fma`, blocks of 256) then `+ intercept`. Scaler: `(x − offset) · scale`.
//! Normalizer: `MAX` divides by the largest |x|, `L1` by `Σ|x|` (sequential), `L2` by
//! `sqrt(Σ x²)` with `fma`; a zero norm leaves the row unchanged.

use super::util::{self, inv, want};
use super::{Ctx, KResult, Kernel, attr::Attrs};
use crate::onnx::NodeProto;
use crate::{Limits, LoadError};
use deed_types::{DType, Tensor, TensorData};
use std::borrow::Cow;
use std::sync::Arc;

// The SVMs live in their own file but are a child module, to share the post transforms.
#[path = "svm.rs"]
mod svm;

/// The `ai.onnx.ml` operators the engine implements.
pub const ML_OPS: &[&str] = &[
    "ArrayFeatureExtractor",
    "Binarizer",
    "Imputer",
    "LabelEncoder",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "OneHotEncoder",
    "SVMClassifier",
    "SVMRegressor",
    "Scaler",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "ZipMap",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

fn post(a: &Attrs<'_>) -> Result<Post, LoadError> {
    let p = a.string("post_transform", "NONE")?;
    Ok(match p.as_str() {
        "NONE" => Post::None,
        "LOGISTIC" => Post::Logistic,
        "SOFTMAX" => Post::Softmax,
        "SOFTMAX_ZERO" => Post::SoftmaxZero,
        other => return Err(a.unsupported(format!("post_transform '{other}'"))),
    })
}

fn refuse_strings(a: &Attrs<'_>, names: &[&str]) -> Result<(), LoadError> {
    for n in names {
        if a.has(n) {
            return Err(a.unsupported(format!(
                "attribute '{n}': string tensors are not supported by deed; export the model with integer labels"
            )));
        }
    }
    Ok(())
}

/// Floats from `name` or `name_as_tensor`.
fn floats_or_tensor(a: &Attrs<'_>, name: &str, limits: &Limits) -> Result<Option<Vec<f32>>, LoadError> {
    if let Some(v) = a.floats(name)? {
        return Ok(Some(v));
    }
    match a.tensor(&format!("{name}_as_tensor"))? {
        None => Ok(None),
        Some(t) => {
            let t = crate::load::tensor_from_proto(t, limits, "attribute tensor")?;
            match t.data {
                TensorData::F32(v) => Ok(Some(v)),
                TensorData::F64(v) => Ok(Some(v.into_iter().map(|x| x as f32).collect())),
                _ => Err(a.unsupported(format!("{name}_as_tensor of type {}", t.dtype().name()))),
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// One node of a tree in the flat layout of [`Trees`].
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Threshold.
    value: f32,
    /// Feature index (a leaf's is 0 and never decides anything).
    feature: u32,
    /// The next node when the test fails (`[0]`) or holds (`[1]`); a leaf's are itself, so
    /// a walk that is already at its leaf stays there.
    next: [u32; 2],
    mode: Mode,
    /// A NaN feature takes the true branch (else: the comparison, which is false).
    nan_true: bool,
}

impl Node {
    /// Whether the walk takes the true branch for feature value `x`.
    #[inline(always)]
    fn holds(&self, x: f32) -> bool {
        if x.is_nan() {
            self.nan_true
        } else {
            match self.mode {
                Mode::Leq => x <= self.value,
                Mode::Lt => x < self.value,
                Mode::Gte => x >= self.value,
                Mode::Gt => x > self.value,
                Mode::Eq => x == self.value,
                Mode::Neq => x != self.value,
                Mode::Leaf => false,
            }
        }
    }

    /// [`Node::holds`] for a node of mode `M` (one of the `M_*` codes; [`M_ANY`]: any
    /// mode), without branches: the comparison is false for a NaN `x` in every mode
    /// (`NEQ` checks it), so `or` with `nan_true` gives the same answer. A leaf may be
    /// asked too: both of its `next` are itself, so the answer does not matter.
    #[inline(always)]
    fn holds_as<const M: u8>(&self, x: f32) -> bool {
        let (v, nan) = (self.value, x.is_nan());
        let c = match M {
            M_LEQ => x <= v,
            M_LT => x < v,
            M_GTE => x >= v,
            M_GT => x > v,
            M_EQ => x == v,
            M_NEQ => !nan && x != v,
            _ => return self.holds(x),
        };
        c | (nan & self.nan_true)
    }
}

/// Mode codes for [`Node::holds_as`].
const M_LEQ: u8 = 0;
const M_LT: u8 = 1;
const M_GTE: u8 = 2;
const M_GT: u8 = 3;
const M_EQ: u8 = 4;
const M_NEQ: u8 = 5;
const M_ANY: u8 = 6;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Agg {
    Sum,
    Average,
    Min,
    Max,
}

/// A tree ensemble, validated and flattened at load: only the nodes reachable from the
/// roots, checked acyclic (so every walk ends at a leaf within its tree's depth), child
/// indices in bounds, leaf weights in flat arrays.
#[derive(Debug)]
struct Trees {
    /// The reachable nodes, each tree's in depth-first order from its root.
    nodes: Vec<Node>,
    /// The trees, in order.
    roots: Vec<Root>,
    /// Node `i`'s leaf weights are entries `leaf_start[i]..leaf_start[i + 1]` of
    /// `leaf_target` (target or class) and `leaf_weight`, in attribute order (empty for
    /// a branch node).
    leaf_start: Vec<u32>,
    leaf_target: Vec<u32>,
    leaf_weight: Vec<f32>,
    /// The mode of every reachable branch node, when they all have the same one.
    branch_mode: Option<Mode>,
    /// The largest feature index of any reachable node: with fewer features than that
    /// some walks may fail, so the run takes the checked, sample-by-sample path.
    max_feature: usize,
    /// `(node, feature)` for the nodes whose feature index does not fit their `u32`
    /// field (which then holds `u32::MAX`), sorted: only error messages need them.
    wide_features: Vec<(u32, usize)>,
    /// How many nodes the attributes define (the run's work check counts them all).
    n_attr_nodes: usize,
    n_out: usize,
    agg: Agg,
    base: Vec<f32>,
    post: Post,
    /// Classifier: labels; `None` for a regressor.
    labels: Option<Vec<i64>>,
    binary_single: Option<bool>,
}

/// A tree of [`Trees`]: its root and the fewest and most steps from the root to a leaf.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Root {
    node: u32,
    min_depth: u32,
    depth: u32,
}

/// A node as the attributes give it, children as attribute indices.
struct RawNode {
    mode: Mode,
    feature: usize,
    value: f32,
    t: usize,
    f: usize,
    nan_true: bool,
}

fn parse_trees(a: &Attrs<'_>, classifier: bool, limits: &Limits) -> Result<Trees, LoadError> {
    refuse_strings(a, &["classlabels_strings"])?;
    let req = |n: &str| -> Result<Vec<i64>, LoadError> {
        a.ints(n)?.ok_or_else(|| a.invalid(format!("attribute '{n}' is required")))
    };
    let tree_ids = req("nodes_treeids")?;
    let node_ids = req("nodes_nodeids")?;
    let feats = req("nodes_featureids")?;
    let tn = req("nodes_truenodeids")?;
    let fnn = req("nodes_falsenodeids")?;
    let vals = floats_or_tensor(a, "nodes_values", limits)?.unwrap_or_default();
    let modes = a.strings("nodes_modes")?.ok_or_else(|| a.invalid("attribute 'nodes_modes' is required"))?;
    let miss = a.ints("nodes_missing_value_tracks_true")?.unwrap_or_default();
    let n = tree_ids.len();
    if [node_ids.len(), feats.len(), tn.len(), fnn.len(), vals.len(), modes.len()].iter().any(|&l| l != n)
        || (!miss.is_empty() && miss.len() != n)
    {
        return Err(a.invalid("the nodes_* attributes differ in length"));
    }
    let mut index = std::collections::BTreeMap::new();
    let mut roots = Vec::new();
    for i in 0..n {
        if index.insert((tree_ids[i], node_ids[i]), i).is_some() {
            return Err(a.invalid(format!("node ({}, {}) is defined twice", tree_ids[i], node_ids[i])));
        }
        if !roots.iter().any(|&r: &usize| tree_ids[r] == tree_ids[i]) {
            roots.push(i);
        }
    }
    let find = |t: i64, id: i64| -> Result<usize, LoadError> {
        index.get(&(t, id)).copied().ok_or_else(|| a.invalid(format!("tree {t} has no node {id}")))
    };
    let mut raw = Vec::with_capacity(n);
    for i in 0..n {
        let mode = match modes[i].as_str() {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            m => return Err(a.invalid(format!("node mode '{m}'"))),
        };
        let (t, f) = if mode == Mode::Leaf { (i, i) } else { (find(tree_ids[i], tn[i])?, find(tree_ids[i], fnn[i])?) };
        let feature = usize::try_from(feats[i]).map_err(|_| a.invalid("negative feature id"))?;
        raw.push(RawNode { mode, feature, value: vals[i], t, f, nan_true: miss.get(i).is_some_and(|&m| m != 0) });
    }
    let p = if classifier { "class_" } else { "target_" };
    let tt = req(&format!("{p}treeids"))?;
    let tnod = req(&format!("{p}nodeids"))?;
    let tid = req(&format!("{p}ids"))?;
    let tw = floats_or_tensor(a, &format!("{p}weights"), limits)?.unwrap_or_default();
    if tnod.len() != tt.len() || tid.len() != tt.len() || tw.len() != tt.len() {
        return Err(a.invalid("the target/class attributes differ in length"));
    }
    let labels = if classifier {
        Some(a.ints("classlabels_int64s")?.ok_or_else(|| a.invalid("classifier has no classlabels_int64s"))?)
    } else {
        None
    };
    let n_out = match &labels {
        Some(l) => l.len(),
        None => usize::try_from(a.int("n_targets", 1)?).map_err(|_| a.invalid("n_targets"))?,
    };
    if n_out == 0 || n_out > 1 << 20 {
        return Err(a.invalid(format!("{n_out} outputs per sample")));
    }
    // (node, target, weight) in attribute order; a node's weights keep that order.
    let mut weights = Vec::with_capacity(tt.len());
    for k in 0..tt.len() {
        let i = find(tt[k], tnod[k])?;
        let c = usize::try_from(tid[k])
            .ok()
            .filter(|&c| c < n_out)
            .ok_or_else(|| a.invalid(format!("target id {}", tid[k])))?;
        weights.push((i, c as u32, tw[k]));
    }
    let base = floats_or_tensor(a, "base_values", limits)?.unwrap_or_default();
    if !base.is_empty() && base.len() != n_out {
        return Err(a.invalid("base_values has the wrong length"));
    }
    let agg = match a.string("aggregate_function", "SUM")?.as_str() {
        "SUM" => Agg::Sum,
        "AVERAGE" => Agg::Average,
        "MIN" => Agg::Min,
        "MAX" => Agg::Max,
        m => return Err(a.invalid(format!("aggregate_function '{m}'"))),
    };
    let binary_single = if classifier && n_out == 2 {
        let mut ids: Vec<i64> = tid.clone();
        ids.sort_unstable();
        ids.dedup();
        (ids.len() == 1).then(|| tw.iter().all(|&w| w >= 0.0))
    } else {
        None
    };
    // Flat indices are u32 (NEW = u32::MAX is "not reached").
    if n >= u32::MAX as usize || weights.len() >= u32::MAX as usize {
        return Err(a.invalid("more than 2³² − 2 nodes or leaf weights"));
    }
    let flat = flatten(&raw, &roots, &weights).map_err(|i| {
        a.invalid(format!(
            "tree {} has a cycle through node {}: a walk could never reach a leaf",
            tree_ids[i], node_ids[i]
        ))
    })?;
    Ok(Trees {
        nodes: flat.nodes,
        roots: flat.roots,
        leaf_start: flat.leaf_start,
        leaf_target: flat.leaf_target,
        leaf_weight: flat.leaf_weight,
        branch_mode: flat.branch_mode,
        max_feature: flat.max_feature,
        wide_features: flat.wide_features,
        n_attr_nodes: n,
        n_out,
        agg,
        base,
        post: post(a)?,
        labels,
        binary_single,
    })
}

/// The parts of [`Trees`] that [`flatten`] builds.
struct Flat {
    nodes: Vec<Node>,
    roots: Vec<Root>,
    leaf_start: Vec<u32>,
    leaf_target: Vec<u32>,
    leaf_weight: Vec<f32>,
    branch_mode: Option<Mode>,
    max_feature: usize,
    wide_features: Vec<(u32, usize)>,
}

/// Keeps the nodes reachable from `roots` (numbered depth-first, true branch first, tree
/// by tree), checks that no walk comes back to a node it passed (else `Err` with the
/// attribute index of a node on the cycle), and measures each tree's depth: the fewest
/// and the most steps from its root to a leaf. `weights` are `(node, target, weight)` in attribute order.
/// The caller checked that node and weight counts fit in `u32`.
fn flatten(raw: &[RawNode], roots: &[usize], weights: &[(usize, u32, f32)]) -> Result<Flat, usize> {
    const NEW: u32 = u32::MAX;
    // Attribute index → flat index (NEW: not reached yet); steps to the deepest leaf.
    let mut flat_of = vec![NEW; raw.len()];
    let (mut depth, mut min_depth) = (vec![0u32; raw.len()], vec![0u32; raw.len()]);
    let mut on_path = vec![false; raw.len()];
    let mut order = Vec::new();
    let mut out_roots = Vec::with_capacity(roots.len());
    for &root in roots {
        if flat_of[root] == NEW {
            // Iterative depth-first search; a node's depth is known once both children are.
            let mut stack = vec![(root, false)];
            while let Some((i, children_done)) = stack.pop() {
                let nd = &raw[i];
                if children_done {
                    on_path[i] = false;
                    if nd.mode != Mode::Leaf {
                        depth[i] = 1 + depth[nd.t].max(depth[nd.f]);
                        min_depth[i] = 1 + min_depth[nd.t].min(min_depth[nd.f]);
                    }
                    continue;
                }
                if flat_of[i] != NEW {
                    continue; // shared by two parents: already done
                }
                flat_of[i] = order.len() as u32;
                order.push(i);
                on_path[i] = true;
                stack.push((i, true));
                if nd.mode != Mode::Leaf {
                    for c in [nd.f, nd.t] {
                        if on_path[c] {
                            return Err(c);
                        }
                        if flat_of[c] == NEW {
                            stack.push((c, false));
                        }
                    }
                }
            }
        }
        out_roots.push(Root { node: flat_of[root], min_depth: min_depth[root], depth: depth[root] });
    }
    let mut per_node: Vec<Vec<(u32, f32)>> = vec![Vec::new(); raw.len()];
    for &(i, c, w) in weights {
        if flat_of[i] != NEW && raw[i].mode == Mode::Leaf {
            per_node[i].push((c, w));
        }
    }
    let (mut nodes, mut leaf_start) = (Vec::with_capacity(order.len()), Vec::with_capacity(order.len() + 1));
    let (mut leaf_target, mut leaf_weight) = (Vec::new(), Vec::new());
    let (mut max_feature, mut wide_features) = (0, Vec::new());
    for (k, &i) in order.iter().enumerate() {
        let nd = &raw[i];
        let k = k as u32;
        let (feature, next) =
            if nd.mode == Mode::Leaf { (0, [k, k]) } else { (nd.feature, [flat_of[nd.f], flat_of[nd.t]]) };
        max_feature = max_feature.max(feature);
        leaf_start.push(leaf_target.len() as u32);
        for &(c, w) in &per_node[i] {
            leaf_target.push(c);
            leaf_weight.push(w);
        }
        let narrow = u32::try_from(feature).unwrap_or(u32::MAX);
        if narrow as usize != feature {
            wide_features.push((k, feature));
        }
        nodes.push(Node { value: nd.value, feature: narrow, next, mode: nd.mode, nan_true: nd.nan_true });
    }
    leaf_start.push(leaf_target.len() as u32);
    let mut modes = nodes.iter().map(|n| n.mode).filter(|&m| m != Mode::Leaf);
    let first = modes.next();
    let branch_mode = if modes.all(|m| Some(m) == first) { first } else { None };
    Ok(Flat { nodes, roots: out_roots, leaf_start, leaf_target, leaf_weight, branch_mode, max_feature, wide_features })
}

/// Applies a post transform to one row of scores.
fn post_row(p: Post, s: &mut [f32]) {
    match p {
        Post::None => {}
        Post::Logistic => s.iter_mut().for_each(|v| *v = crate::math::sigmoid(*v)),
        Post::Softmax | Post::SoftmaxZero => {
            let zero = p == Post::SoftmaxZero;
            let mut m = f32::NEG_INFINITY;
            for &v in s.iter() {
                if !(zero && v == 0.0) && v > m {
                    m = v;
                }
            }
            let mut sum = 0.0f32;
            for v in s.iter_mut() {
                if !(zero && *v == 0.0) {
                    *v = crate::math::exp(*v - m);
                    sum += *v;
                }
            }
            for v in s.iter_mut() {
                if !(zero && *v == 0.0) {
                    *v /= sum;
                }
            }
        }
    }
}

/// Features as f32 rows `[N, F]` (borrowed when they already are f32).
fn features(x: &Tensor) -> KResult<(Cow<'_, [f32]>, usize, usize)> {
    let v: Cow<'_, [f32]> = match &x.data {
        TensorData::F32(v) => Cow::Borrowed(v),
        TensorData::F64(v) => v.iter().map(|&a| a as f32).collect(),
        TensorData::I64(v) => v.iter().map(|&a| a as f32).collect(),
        TensorData::I32(v) => v.iter().map(|&a| a as f32).collect(),
        d => return Err(inv(format!("features of type {}", d.dtype().name()))),
    };
    let (n, f) = match x.shape.len() {
        1 => (1, x.shape[0]),
        2 => (x.shape[0], x.shape[1]),
        _ => return Err(inv(format!("features must be [N, F], got {:?}", x.shape))),
    };
    Ok((v, n, f))
}

const FEATURE_TYPES: &[DType] = &[DType::F32, DType::F64, DType::I64, DType::I32];

/// Samples walked through one tree together (independent walks interleave in the CPU).
const TREE_BLOCK: usize = 32;
/// Node visits per thread below which a run stays on one thread: about a quarter of a
/// millisecond of work (waking a pool worker costs tens of microseconds on an idle
/// machine and can wait milliseconds for a core on a busy one). At half a millisecond a
/// 512-sample batch of 200 depth-6 trees (0.85 ms) stayed on one thread; split, it takes
/// 0.42 ms on two.
const TREE_PAR_MIN_STEPS: usize = 1 << 18;

impl Trees {
    /// Adds the weights of leaf `leaf` to one sample's accumulators `out`, in attribute
    /// order (`seen`: which accumulators already hold a leaf value, for MIN and MAX).
    #[inline(always)]
    fn add_leaf(&self, leaf: u32, out: &mut [f32], seen: &mut [bool]) {
        let (a, b) = (self.leaf_start[leaf as usize] as usize, self.leaf_start[leaf as usize + 1] as usize);
        let (targets, weights) = (&self.leaf_target[a..b], &self.leaf_weight[a..b]);
        if matches!(self.agg, Agg::Sum | Agg::Average) {
            for (&c, &w) in targets.iter().zip(weights) {
                out[c as usize] += w;
            }
            return;
        }
        for (&c, &w) in targets.iter().zip(weights) {
            let c = c as usize;
            out[c] = match self.agg {
                Agg::Sum | Agg::Average => out[c] + w,
                Agg::Min if seen[c] => out[c].min(w),
                Agg::Max if seen[c] => out[c].max(w),
                Agg::Min | Agg::Max => w,
            };
            seen[c] = true;
        }
    }

    /// AVERAGE's division and the base values, once every tree has been added.
    #[inline]
    fn finish(&self, out: &mut [f32]) {
        if self.agg == Agg::Average {
            out.iter_mut().for_each(|v| *v /= self.roots.len().max(1) as f32);
        }
        for (c, v) in out.iter_mut().enumerate() {
            if let Some(b) = self.base.get(c) {
                *v += *b;
            }
        }
    }

    /// Scores of the samples `x` (rows of `f` features, every node's feature `< f`) into
    /// `out` (rows of `n_out`, zero). Blocks of samples go through the trees in order, so
    /// each sample still adds tree after tree, exactly as in the module docs.
    fn eval_rows(&self, x: &[f32], f: usize, out: &mut [f32]) {
        // One copy of the loop per mode, for ensembles whose branches all test alike.
        match self.branch_mode {
            Some(Mode::Leq) => self.eval_rows_as::<M_LEQ>(x, f, out),
            Some(Mode::Lt) => self.eval_rows_as::<M_LT>(x, f, out),
            Some(Mode::Gte) => self.eval_rows_as::<M_GTE>(x, f, out),
            Some(Mode::Gt) => self.eval_rows_as::<M_GT>(x, f, out),
            Some(Mode::Eq) => self.eval_rows_as::<M_EQ>(x, f, out),
            Some(Mode::Neq) => self.eval_rows_as::<M_NEQ>(x, f, out),
            Some(Mode::Leaf) | None => self.eval_rows_as::<M_ANY>(x, f, out),
        }
    }

    /// [`Trees::eval_rows`] with every branch node of mode `M` (or [`M_ANY`]).
    fn eval_rows_as<const M: u8>(&self, x: &[f32], f: usize, out: &mut [f32]) {
        let n_out = self.n_out;
        let mut seen = vec![false; TREE_BLOCK * n_out];
        for (xs, acc) in x.chunks(TREE_BLOCK * f).zip(out.chunks_mut(TREE_BLOCK * n_out)) {
            let bl = acc.len() / n_out;
            seen.fill(false);
            for tree in &self.roots {
                let mut at = [tree.node; TREE_BLOCK];
                let at = &mut at[..bl];
                // No walk reaches a leaf in fewer than min_depth steps; after that, stop
                // once no walk moves (a leaf's next nodes are itself).
                for _ in 0..tree.min_depth {
                    for (i, row) in at.iter_mut().zip(xs.chunks_exact(f)) {
                        let nd = &self.nodes[*i as usize];
                        *i = nd.next[nd.holds_as::<M>(row[nd.feature as usize]) as usize];
                    }
                }
                for _ in tree.min_depth..tree.depth {
                    let mut moved = false;
                    for (i, row) in at.iter_mut().zip(xs.chunks_exact(f)) {
                        let nd = &self.nodes[*i as usize];
                        let next = nd.next[nd.holds_as::<M>(row[nd.feature as usize]) as usize];
                        moved |= next != *i;
                        *i = next;
                    }
                    if !moved {
                        break;
                    }
                }
                for (s, &leaf) in at.iter().enumerate() {
                    let r = s * n_out..(s + 1) * n_out;
                    self.add_leaf(leaf, &mut acc[r.clone()], &mut seen[r]);
                }
            }
            for row in acc.chunks_mut(n_out) {
                self.finish(row);
            }
        }
    }

    /// [`Trees::eval_rows`] sample by sample with every feature index checked: for inputs
    /// with fewer features than some node reads (an error if a walk reaches that node).
    fn eval_checked(&self, x: &[f32], n: usize, f: usize, out: &mut [f32]) -> KResult<()> {
        let mut seen = vec![false; self.n_out];
        for s in 0..n {
            let row = &x[s * f..(s + 1) * f];
            let acc = &mut out[s * self.n_out..(s + 1) * self.n_out];
            seen.fill(false);
            for tree in &self.roots {
                let mut i = tree.node;
                loop {
                    let nd = &self.nodes[i as usize];
                    if nd.mode == Mode::Leaf {
                        break;
                    }
                    let Some(&v) = row.get(nd.feature as usize) else {
                        let feature = match self.wide_features.binary_search_by_key(&i, |&(k, _)| k) {
                            Ok(k) => self.wide_features[k].1,
                            Err(_) => nd.feature as usize,
                        };
                        return Err(inv(format!("feature {feature} of {f}")));
                    };
                    i = nd.next[nd.holds(v) as usize];
                }
                self.add_leaf(i, acc, &mut seen);
            }
            self.finish(acc);
        }
        Ok(())
    }
}

impl Kernel for Trees {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn outputs(&self) -> usize {
        if self.labels.is_some() { 2 } else { 1 }
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, FEATURE_TYPES, "X")?;
        Ok(if self.labels.is_some() { vec![DType::I64, DType::F32] } else { vec![DType::F32] })
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        self.run_with(ins, ctx, TREE_PAR_MIN_STEPS)
    }
}

impl Trees {
    /// [`Kernel::run`] with the threading threshold as a parameter (tests thread tiny batches).
    fn run_with(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>, par_min_steps: usize) -> KResult<Vec<Tensor>> {
        let (xv, n, f) = features(ins[0].expect("req"))?;
        ctx.check_shape(&[n, self.n_out])?;
        ctx.check_work(&[n, self.n_attr_nodes.max(1)])?;
        let mut scores = vec![0.0f32; n * self.n_out];
        if self.max_feature < f {
            // Samples are independent: threads take contiguous ranges of them.
            let steps = self.roots.iter().map(|t| t.depth as usize + 1).sum::<usize>().max(1);
            let min_rows = (par_min_steps / steps).max(1);
            util::par_rows(&mut scores, self.n_out, ctx.threads, min_rows, |r0, out| {
                self.eval_rows(&xv[r0 * f..], f, out)
            });
        } else {
            self.eval_checked(&xv, n, f, &mut scores)?;
        }
        let Some(labels) = &self.labels else {
            for row in scores.chunks_mut(self.n_out) {
                post_row(self.post, row);
            }
            return Ok(vec![Tensor { shape: vec![n, self.n_out], data: TensorData::F32(scores) }]);
        };
        let mut lab = Vec::with_capacity(n);
        for row in scores.chunks_mut(self.n_out) {
            if let Some(positive) = self.binary_single {
                let s = row[0] + row[1];
                row[1] = s;
                row[0] = if positive { 1.0 - s } else { -s };
            }
            post_row(self.post, row);
            let mut best = 0;
            for c in 1..row.len() {
                if row[c] > row[best] {
                    best = c;
                }
            }
            lab.push(labels[best]);
        }
        Ok(vec![
            Tensor { shape: vec![n], data: TensorData::I64(lab) },
            Tensor { shape: vec![n, self.n_out], data: TensorData::F32(scores) },
        ])
    }
}

#[cfg(test)]
#[path = "ml_tree_tests.rs"]
mod tree_tests;

#[derive(Debug)]
struct Linear {
    coef: Vec<f32>,
    intercepts: Vec<f32>,
    n_out: usize,
    post: Post,
    labels: Option<Vec<i64>>,
}

impl Kernel for Linear {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn outputs(&self) -> usize {
        if self.labels.is_some() { 2 } else { 1 }
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, FEATURE_TYPES, "X")?;
        Ok(if self.labels.is_some() { vec![DType::I64, DType::F32] } else { vec![DType::F32] })
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (xv, n, f) = features(ins[0].expect("req"))?;
        if self.coef.len() != self.n_out * f {
            return Err(inv(format!(
                "{} coefficients do not fit {} outputs × {f} features",
                self.coef.len(),
                self.n_out
            )));
        }
        ctx.check_shape(&[n, self.n_out])?;
        let mut scores = Vec::with_capacity(n * self.n_out);
        for s in 0..n {
            let row = &xv[s * f..(s + 1) * f];
            for c in 0..self.n_out {
                let d = super::linalg::dot(&self.coef[c * f..(c + 1) * f], row);
                scores.push(d + self.intercepts.get(c).copied().unwrap_or(0.0));
            }
        }
        let Some(labels) = &self.labels else {
            for row in scores.chunks_mut(self.n_out) {
                post_row(self.post, row);
            }
            return Ok(vec![Tensor { shape: vec![n, self.n_out], data: TensorData::F32(scores) }]);
        };
        let mut lab = Vec::with_capacity(n);
        let mut out_scores = Vec::with_capacity(n * labels.len().max(self.n_out));
        for row in scores.chunks_mut(self.n_out) {
            post_row(self.post, row);
            if self.n_out == 1 && labels.len() == 2 {
                // One score for a binary problem: positive class when above the threshold.
                let thr = if self.post == Post::None { 0.0 } else { 0.5 };
                lab.push(if row[0] > thr { labels[1] } else { labels[0] });
                out_scores.extend([if self.post == Post::None { -row[0] } else { 1.0 - row[0] }, row[0]]);
            } else {
                let mut best = 0;
                for c in 1..row.len() {
                    if row[c] > row[best] {
                        best = c;
                    }
                }
                lab.push(*labels.get(best).ok_or_else(|| inv("more scores than class labels"))?);
                out_scores.extend_from_slice(row);
            }
        }
        let cols = out_scores.len() / n.max(1);
        Ok(vec![
            Tensor { shape: vec![n], data: TensorData::I64(lab) },
            Tensor { shape: vec![n, cols], data: TensorData::F32(out_scores) },
        ])
    }
}

/// Elementwise ops on feature rows: Scaler, Normalizer, Binarizer, Imputer.
#[derive(Debug)]
enum Rowwise {
    Scaler { offset: Vec<f32>, scale: Vec<f32> },
    Normalizer(String),
    Binarizer(f32),
    Imputer { values: Vec<f32>, missing: f32 },
}

impl Kernel for Rowwise {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        let d = want(ins, 0, FEATURE_TYPES, "X")?;
        Ok(vec![match self {
            Rowwise::Binarizer(_) | Rowwise::Imputer { .. } => {
                if d != DType::F32 {
                    return Err("only float32 input is supported".into());
                }
                d
            }
            _ => DType::F32,
        }])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let (mut v, n, f) = match self {
            Rowwise::Binarizer(_) | Rowwise::Imputer { .. } => {
                let v = util::f32s(x).to_vec();
                let f = x.shape.last().copied().unwrap_or(1);
                (v, 0, f)
            }
            _ => {
                let (v, n, f) = features(x)?;
                (v.into_owned(), n, f)
            }
        };
        let pick = |p: &[f32], j: usize| if p.len() == 1 { p[0] } else { p.get(j).copied().unwrap_or(0.0) };
        match self {
            Rowwise::Scaler { offset, scale } => {
                for (i, e) in v.iter_mut().enumerate() {
                    let j = i % f.max(1);
                    *e = (*e - pick(offset, j)) * if scale.is_empty() { 1.0 } else { pick(scale, j) };
                }
            }
            Rowwise::Binarizer(t) => v.iter_mut().for_each(|e| {
                *e = if *e > *t {
                    1.0
                } else if e.is_nan() {
                    *e
                } else {
                    0.0
                }
            }),
            Rowwise::Imputer { values, missing } => {
                for (i, e) in v.iter_mut().enumerate() {
                    let is_missing = if missing.is_nan() { e.is_nan() } else { *e == *missing };
                    if is_missing {
                        *e = pick(values, i % f.max(1));
                    }
                }
            }
            Rowwise::Normalizer(norm) => {
                for s in 0..n {
                    let row = &mut v[s * f..(s + 1) * f];
                    let d = match norm.as_str() {
                        "MAX" => row.iter().fold(0.0f32, |m, &e| if e.abs() > m { e.abs() } else { m }),
                        "L1" => row.iter().fold(0.0f32, |m, &e| m + e.abs()),
                        _ => row.iter().fold(0.0f32, |m, &e| e.mul_add(e, m)).sqrt(),
                    };
                    if d != 0.0 {
                        row.iter_mut().for_each(|e| *e /= d);
                    }
                }
            }
        }
        Ok(vec![Tensor { shape: x.shape.clone(), data: TensorData::F32(v) }])
    }
}

#[derive(Debug)]
struct ArrayFeatureExtractor;

impl Kernel for ArrayFeatureExtractor {
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 1, &[DType::I64], "Y")?;
        Ok(vec![util::dt(ins, 0)?])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (x, y) = (ins[0].expect("req"), ins[1].expect("req"));
        let ind = util::ints(y)?;
        let r = x.shape.len();
        if r == 0 {
            return Err(inv("ArrayFeatureExtractor of a rank-0 tensor"));
        }
        let last = x.shape[r - 1];
        let mut shape = x.shape.clone();
        shape[r - 1] = ind.len();
        if r == 1 {
            shape = vec![1, ind.len()];
        }
        let n = ctx.check_shape(&shape)?;
        let outer = x.data.len() / last.max(1);
        let mut idx = Vec::with_capacity(n);
        for o in 0..outer {
            for &i in &ind {
                let i =
                    usize::try_from(i).ok().filter(|&i| i < last).ok_or_else(|| inv(format!("index {i} of {last}")))?;
                idx.push(o * last + i);
            }
        }
        Ok(vec![Tensor { shape, data: util::take(&x.data, &idx) }])
    }
}

#[derive(Debug)]
struct ZipMap {
    classes: usize,
}

impl Kernel for ZipMap {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        Ok(vec![want(ins, 0, &[DType::F32], "X")?])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        if x.shape.len() != 2 || x.shape[1] != self.classes {
            return Err(inv(format!("ZipMap of {} labels given {:?}", self.classes, x.shape)));
        }
        Ok(vec![x.clone()])
    }
}

#[derive(Debug)]
enum Encoder {
    /// LabelEncoder int64 → int64 / float → float etc.: (keys, values, default), as f64 bit-exact keys.
    Label {
        keys: TensorData,
        values: TensorData,
        default: TensorData,
    },
    OneHot {
        cats: Vec<i64>,
        zeros: bool,
    },
}

impl Kernel for Encoder {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        match self {
            Encoder::Label { keys, values, .. } => {
                want(ins, 0, &[keys.dtype()], "X")?;
                Ok(vec![values.dtype()])
            }
            Encoder::OneHot { .. } => {
                want(ins, 0, &[DType::I64, DType::I32, DType::F32, DType::F64], "X")?;
                Ok(vec![DType::F32])
            }
        }
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        match self {
            Encoder::Label { keys, values, default } => {
                // Position of each x in keys (first match), else the default (appended last).
                let nk = keys.len();
                let pos: Vec<usize> = match (&x.data, keys) {
                    (TensorData::I64(v), TensorData::I64(k)) => {
                        v.iter().map(|a| k.iter().position(|b| b == a).unwrap_or(nk)).collect()
                    }
                    (TensorData::F32(v), TensorData::F32(k)) => v
                        .iter()
                        .map(|a| k.iter().position(|b| b == a || (a.is_nan() && b.is_nan())).unwrap_or(nk))
                        .collect(),
                    _ => unreachable!("checked at load"),
                };
                let table = util::concat_data(values.dtype(), &[values, default]);
                Ok(vec![Tensor { shape: x.shape.clone(), data: util::take(&table, &pos) }])
            }
            Encoder::OneHot { cats, zeros } => {
                let v: Vec<i64> = match &x.data {
                    TensorData::I64(v) => v.clone(),
                    TensorData::I32(v) => v.iter().map(|&a| a as i64).collect(),
                    TensorData::F32(v) => v.iter().map(|&a| a as i64).collect(),
                    TensorData::F64(v) => v.iter().map(|&a| a as i64).collect(),
                    _ => unreachable!("checked at load"),
                };
                let mut shape = x.shape.clone();
                shape.push(cats.len());
                let n = ctx.check_shape(&shape)?;
                let mut out = vec![0.0f32; n];
                for (i, a) in v.iter().enumerate() {
                    match cats.iter().position(|c| c == a) {
                        Some(p) => out[i * cats.len() + p] = 1.0,
                        None if !zeros => return Err(inv(format!("category {a} is unknown and zeros = 0"))),
                        None => {}
                    }
                }
                Ok(vec![Tensor { shape, data: TensorData::F32(out) }])
            }
        }
    }
}

/// Parses an `ai.onnx.ml` node (its op type is in [`ML_OPS`]).
pub(crate) fn parse(
    node: &NodeProto,
    opset: i64,
    a: &Attrs<'_>,
    limits: &Limits,
) -> Result<Arc<dyn Kernel>, LoadError> {
    let op = node.op_type.as_str();
    Ok(match op {
        "TreeEnsembleClassifier" => Arc::new(parse_trees(a, true, limits)?),
        "TreeEnsembleRegressor" => Arc::new(parse_trees(a, false, limits)?),
        "SVMClassifier" => svm::classifier(a, limits)?,
        "SVMRegressor" => svm::regressor(a, limits)?,
        "LinearClassifier" | "LinearRegressor" => {
            refuse_strings(a, &["classlabels_strings"])?;
            let coef = a.floats("coefficients")?.ok_or_else(|| a.invalid("attribute 'coefficients' is required"))?;
            let intercepts = a.floats("intercepts")?.unwrap_or_default();
            let (labels, n_out) = if op == "LinearClassifier" {
                let l = a.ints("classlabels_ints")?.ok_or_else(|| a.invalid("classifier has no classlabels_ints"))?;
                // One row of coefficients per class, or a single row for a binary problem.
                let n = if intercepts.is_empty() { l.len() } else { intercepts.len() };
                (Some(l), n)
            } else {
                (None, usize::try_from(a.int("targets", 1)?).map_err(|_| a.invalid("targets"))?)
            };
            if n_out == 0 {
                return Err(a.invalid("no outputs"));
            }
            Arc::new(Linear { coef, intercepts, n_out, post: post(a)?, labels })
        }
        "Scaler" => Arc::new(Rowwise::Scaler {
            offset: a.floats("offset")?.unwrap_or_else(|| vec![0.0]),
            scale: a.floats("scale")?.unwrap_or_default(),
        }),
        "Normalizer" => {
            let n = a.string("norm", "MAX")?;
            if !["MAX", "L1", "L2"].contains(&n.as_str()) {
                return Err(a.invalid(format!("norm '{n}'")));
            }
            Arc::new(Rowwise::Normalizer(n))
        }
        "Binarizer" => Arc::new(Rowwise::Binarizer(a.float("threshold", 0.0)?)),
        "Imputer" => {
            if a.has("imputed_value_int64s") {
                return Err(a.unsupported("Imputer on int64"));
            }
            Arc::new(Rowwise::Imputer {
                values: a.floats("imputed_value_floats")?.unwrap_or_default(),
                missing: a.float("replaced_value_float", 0.0)?,
            })
        }
        "ArrayFeatureExtractor" => Arc::new(ArrayFeatureExtractor),
        "ZipMap" => {
            refuse_strings(a, &[])?;
            let n = match (a.ints("classlabels_int64s")?, a.strings("classlabels_strings")?) {
                (Some(v), None) => v.len(),
                (None, Some(v)) => v.len(),
                _ => return Err(a.invalid("ZipMap needs exactly one of classlabels_int64s and classlabels_strings")),
            };
            Arc::new(ZipMap { classes: n })
        }
        "LabelEncoder" => {
            refuse_strings(a, &["keys_strings", "values_strings", "classes_strings", "default_string"])?;
            if opset < 2 {
                return Err(a.unsupported("LabelEncoder before ai.onnx.ml opset 2 (string to int only)"));
            }
            let keys = match (a.ints("keys_int64s")?, a.floats("keys_floats")?) {
                (Some(k), None) => TensorData::I64(k),
                (None, Some(k)) => TensorData::F32(k),
                _ => return Err(a.unsupported("LabelEncoder keys other than one int64 or float list")),
            };
            let (values, default) = match (a.ints("values_int64s")?, a.floats("values_floats")?) {
                (Some(v), None) => (TensorData::I64(v), TensorData::I64(vec![a.int("default_int64", -1)?])),
                (None, Some(v)) => (TensorData::F32(v), TensorData::F32(vec![a.float("default_float", -0.0)?])),
                _ => return Err(a.unsupported("LabelEncoder values other than one int64 or float list")),
            };
            if keys.len() != values.len() {
                return Err(a.invalid("keys and values differ in length"));
            }
            Arc::new(Encoder::Label { keys, values, default })
        }
        "OneHotEncoder" => {
            refuse_strings(a, &["cats_strings"])?;
            let cats = a.ints("cats_int64s")?.ok_or_else(|| a.invalid("attribute 'cats_int64s' is required"))?;
            Arc::new(Encoder::OneHot { cats, zeros: a.int("zeros", 1)? != 0 })
        }
        _ => return Err(LoadError::UnsupportedOp { op: op.into(), domain: super::ML_DOMAIN.into(), opset }),
    })
}

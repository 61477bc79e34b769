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

#[derive(Debug)]
struct TreeNode {
    mode: Mode,
    feature: usize,
    value: f32,
    t: usize,
    f: usize,
    nan_true: bool,
    /// (target/class, weight) pairs of a leaf, in attribute order.
    leaf: Vec<(usize, f32)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Agg {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug)]
struct Trees {
    nodes: Vec<TreeNode>,
    roots: Vec<usize>,
    n_out: usize,
    agg: Agg,
    base: Vec<f32>,
    post: Post,
    /// Classifier: labels; `None` for a regressor.
    labels: Option<Vec<i64>>,
    binary_single: Option<bool>,
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
    let mut nodes = Vec::with_capacity(n);
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
        nodes.push(TreeNode {
            mode,
            feature,
            value: vals[i],
            t,
            f,
            nan_true: miss.get(i).is_some_and(|&m| m != 0),
            leaf: vec![],
        });
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
    for k in 0..tt.len() {
        let i = find(tt[k], tnod[k])?;
        let c = usize::try_from(tid[k])
            .ok()
            .filter(|&c| c < n_out)
            .ok_or_else(|| a.invalid(format!("target id {}", tid[k])))?;
        nodes[i].leaf.push((c, tw[k]));
    }
    // Depth bound: a walk is at most `n` steps; a cycle would be caught by that bound.
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
    Ok(Trees { nodes, roots, n_out, agg, base, post: post(a)?, labels, binary_single })
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

/// Features as f32 rows `[N, F]`.
fn features(x: &Tensor) -> KResult<(Vec<f32>, usize, usize)> {
    let v: Vec<f32> = match &x.data {
        TensorData::F32(v) => v.clone(),
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
        let (xv, n, f) = features(ins[0].expect("req"))?;
        ctx.check_shape(&[n, self.n_out])?;
        ctx.check_work(&[n, self.nodes.len().max(1)])?;
        let mut scores = vec![0.0f32; n * self.n_out];
        for s in 0..n {
            let row = &xv[s * f..(s + 1) * f];
            let out = &mut scores[s * self.n_out..(s + 1) * self.n_out];
            let mut seen = vec![false; self.n_out];
            for &root in &self.roots {
                let mut i = root;
                let mut steps = 0;
                while self.nodes[i].mode != Mode::Leaf {
                    let nd = &self.nodes[i];
                    let x = *row.get(nd.feature).ok_or_else(|| inv(format!("feature {} of {f}", nd.feature)))?;
                    let go = if x.is_nan() {
                        nd.nan_true
                    } else {
                        match nd.mode {
                            Mode::Leq => x <= nd.value,
                            Mode::Lt => x < nd.value,
                            Mode::Gte => x >= nd.value,
                            Mode::Gt => x > nd.value,
                            Mode::Eq => x == nd.value,
                            Mode::Neq => x != nd.value,
                            Mode::Leaf => unreachable!(),
                        }
                    };
                    i = if go { nd.t } else { nd.f };
                    steps += 1;
                    if steps > self.nodes.len() {
                        return Err(inv("a tree has a cycle"));
                    }
                }
                for &(c, w) in &self.nodes[i].leaf {
                    out[c] = match self.agg {
                        Agg::Sum | Agg::Average => out[c] + w,
                        Agg::Min if seen[c] => out[c].min(w),
                        Agg::Max if seen[c] => out[c].max(w),
                        Agg::Min | Agg::Max => w,
                    };
                    seen[c] = true;
                }
            }
            if self.agg == Agg::Average {
                out.iter_mut().for_each(|v| *v /= self.roots.len().max(1) as f32);
            }
            for (c, v) in out.iter_mut().enumerate() {
                if let Some(b) = self.base.get(c) {
                    *v += *b;
                }
            }
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
            _ => features(x)?,
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

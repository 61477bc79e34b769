//! `SVMClassifier` and `SVMRegressor` (`ai.onnx.ml`), computed as onnxruntime 1.32 does,
//! on float32 features `[N, F]` (`[F]` is one sample; int64/int32/float64 features are
//! converted to f32 as for the other ml operators). A child of [`ml`](super), whose post
//! transforms (`NONE`, `LOGISTIC`, `SOFTMAX`, `SOFTMAX_ZERO`) it shares; `PROBIT` is
//! refused, as there.
//!
//! **Kernel** (part of the engine spec), between a sample `x` and a support vector `s`,
//! both of length F, with `kernel_params = [γ, c₀, degree]`:
//! - `LINEAR`: `dot(x, s)`, the engine's dot product (sequential `fma` in blocks of 256,
//!   block sums added in order; see [`linalg`](crate::ops::linalg));
//! - `POLY`: `pow(fma(γ, dot(x, s), c₀), degree)` with the engine's `pow`;
//! - `SIGMOID`: `tanh(fma(γ, dot(x, s), c₀))` with the engine's `tanh`;
//! - `RBF`: `exp((−γ) · d)` with the engine's `exp`, where `d = Σ (x − s)²` in the dot
//!   product's order: per block of 256, `acc = fma(x − s, x − s, acc)` from `+0.0`, the
//!   block sums added in order.
//!
//! **Classifier with support vectors** (`vectors_per_class` sums to V > 0; k class labels,
//! k ≥ 2; `support_vectors` `[V, F]`, class by class; `coefficients` `[k − 1, V]`; `rho`,
//! `prob_a`, `prob_b` one value per class pair `(i, j)`, `i < j`, in the order (0,1),
//! (0,2), …, (0,k−1), (1,2), …). For each sample the V kernel values `K[v]` are computed
//! in support-vector order. The pair score is `acc = +0.0`; for each support vector `v`
//! of class i in order `acc = fma(coef[j − 1][v], K[v], acc)`, then for each one of class j
//! `acc = fma(coef[i][v], K[v], acc)`; `s = acc + rho`. The pair votes for i when `s > 0`,
//! else for j. The label is the class with the most votes, the lowest index on ties —
//! also when probabilities are computed (onnxruntime does not take the most probable
//! class). The scores:
//! - without `prob_a`, two classes: `NONE` gives `[−s, s]`, `LOGISTIC`
//!   `[sigmoid(−s), sigmoid(s)]`, `SOFTMAX` and `SOFTMAX_ZERO` `[1 − s, s]` (no softmax:
//!   onnxruntime's layout);
//! - without `prob_a`, k > 2: the k(k−1)/2 pair scores, then the post transform;
//! - with `prob_a`/`prob_b` (Platt scaling and pairwise coupling, k columns, then the post
//!   transform): `r[i][j] = sigmoid(−fma(s, A, B))` clamped to `[1e−7, 1 − 1e−7]` (f32
//!   constants; a NaN stays NaN), `r[j][i] = 1 − r[i][j]`; then the coupling of Wu, Lin
//!   and Weng (2004, method 2, as in libsvm) in f32:
//!   `Q[i][i] = Σ_{j≠i} r[j][i]²` (`fma` from `+0.0`, j ascending),
//!   `Q[i][j] = −(r[j][i] · r[i][j])` for `j ≠ i`; `p[i] = 1/k`; `ε = 0.005/k`; up to 100
//!   rounds: `Qp[i] = Σ_j Q[i][j]·p[j]` (`fma` from `+0.0`, j ascending),
//!   `pQp = Σ_i p[i]·Qp[i]` (likewise); stop when the largest `|Qp[i] − pQp|` (a running
//!   maximum from 0 that takes strictly larger values, so NaN is skipped) is `< ε`; else
//!   for each i ascending: `δ = (pQp − Qp[i]) / Q[i][i]`, `p[i] = p[i] + δ`,
//!   `pQp = fma(δ, fma(δ, Q[i][i], 2·Qp[i]), pQp) / (1 + δ) / (1 + δ)`, then for every j
//!   `Qp[j] = fma(δ, Q[i][j], Qp[j]) / (1 + δ)` and `p[j] = p[j] / (1 + δ)`.
//!   The scores are the final `p`.
//!
//! **Linear classifier** (no support vectors: `vectors_per_class` absent or all zero;
//! `kernel_type` is then ignored): `coefficients` is `[k, F]` and
//! `score[c] = dot(x, coef[c]) + rho[0]` (one `rho`). The label is the first maximal raw
//! score's class, except with two labels (onnxruntime's rule): `labels[1]` when every
//! coefficient is `≥ 0` and the maximum is `≥ 0.5`, or when some coefficient is negative
//! and the maximum is `> 0`; else the first maximal class. With k ≥ 2 the post
//! transform is applied to the scores (after the label is chosen).
//!
//! **Regressor**: with `n_supports` V > 0, `y = dot(coef, K) + rho[0]` (the engine's dot
//! product over the V kernel values, `coefficients` `[V]`, `support_vectors` `[V, F]`);
//! with V = 0, `y = dot(x, coef) + rho[0]` (`coefficients` `[F]`). `one_class`: `y > 0`
//! gives `1`, anything else (NaN included) `−1`. The output is `[N, 1]`.
//!
//! Refused at load: string labels; an unknown `kernel_type`; `kernel_params` of other than
//! 3 values, or missing for a kernel that needs them; attribute lengths that do not fit
//! together; `prob_a`/`prob_b` without support vectors (onnxruntime then ignores them in
//! the scores but not in the label); a regressor `post_transform` other than `NONE`
//! (onnxruntime ignores it, the ONNX spec applies it). A sample whose feature count is
//! not the model's is a run-time error.

use super::{FEATURE_TYPES, Post, features, post, post_row, refuse_strings};
use crate::ops::linalg::{DOT_BLOCK, dot};
use crate::ops::util::{inv, want};
use crate::ops::{Ctx, KResult, Kernel, attr::Attrs};
use crate::{Limits, LoadError};
use deed_types::{DType, Tensor, TensorData};
use std::sync::Arc;

/// Most class labels (onnxruntime's bound).
const CLASSES_MAX: usize = 65_535;
/// Most rounds of the pairwise coupling.
const COUPLING_ROUNDS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq)]
enum KernelType {
    Linear,
    Poly,
    Rbf,
    Sigmoid,
}

/// A kernel with its support vectors `[v, f]`, `v, f ≥ 1`.
#[derive(Debug)]
struct SvKernel {
    kind: KernelType,
    gamma: f32,
    coef0: f32,
    degree: f32,
    sv: Vec<f32>,
    v: usize,
    f: usize,
}

/// `Σ (a − b)²` in the dot product's order.
fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for (ca, cb) in a.chunks(DOT_BLOCK).zip(b.chunks(DOT_BLOCK)) {
        let mut acc = 0.0f32;
        for (&x, &y) in ca.iter().zip(cb) {
            let d = x - y;
            acc = d.mul_add(d, acc);
        }
        total += acc;
    }
    total
}

impl SvKernel {
    /// The kernel values of sample `x` (length `f`) against every support vector, into `out` (length `v`).
    fn eval(&self, x: &[f32], out: &mut [f32]) {
        for (k, s) in out.iter_mut().zip(self.sv.chunks_exact(self.f)) {
            *k = match self.kind {
                KernelType::Linear => dot(x, s),
                KernelType::Poly => crate::math::pow(self.gamma.mul_add(dot(x, s), self.coef0), self.degree),
                KernelType::Sigmoid => crate::math::tanh(self.gamma.mul_add(dot(x, s), self.coef0)),
                KernelType::Rbf => crate::math::exp(-self.gamma * sq_dist(x, s)),
            };
        }
    }
}

/// Classifier modes.
#[derive(Debug)]
enum ClassifierMode {
    /// Support vectors: `counts[c]` vectors of class c starting at `starts[c]`;
    /// `coef` `[k − 1, V]`; `rho` and `prob` one per class pair.
    Svc {
        kernel: SvKernel,
        starts: Vec<usize>,
        counts: Vec<usize>,
        coef: Vec<f32>,
        rho: Vec<f32>,
        prob: Option<(Vec<f32>, Vec<f32>)>,
    },
    /// Weights `[k, F]`, one intercept.
    Linear { coef: Vec<f32>, f: usize, rho: f32, all_positive: bool },
}

#[derive(Debug)]
struct SvmClassifier {
    labels: Vec<i64>,
    mode: ClassifierMode,
    post: Post,
}

#[derive(Debug)]
enum RegressorMode {
    Svc { kernel: SvKernel, coef: Vec<f32> },
    Linear { coef: Vec<f32> },
}

#[derive(Debug)]
struct SvmRegressor {
    mode: RegressorMode,
    rho: f32,
    one_class: bool,
}

/// A float list attribute bounded by the element limit.
fn floats(a: &Attrs<'_>, name: &str, limits: &Limits) -> Result<Vec<f32>, LoadError> {
    let v = a.floats(name)?.unwrap_or_default();
    if v.len() > limits.tensor_elements_max {
        return Err(a.invalid(format!("attribute '{name}' has {} values, over the element limit", v.len())));
    }
    Ok(v)
}

/// `kernel_type` and `kernel_params`; `needed` is false when the kernel is not used (linear models).
fn kernel_params(a: &Attrs<'_>, needed: bool) -> Result<(KernelType, f32, f32, f32), LoadError> {
    let kt = a.string("kernel_type", "LINEAR")?;
    let kind = match kt.as_str() {
        "LINEAR" => KernelType::Linear,
        "POLY" => KernelType::Poly,
        "RBF" => KernelType::Rbf,
        "SIGMOID" => KernelType::Sigmoid,
        other => return Err(a.invalid(format!("kernel_type '{other}'"))),
    };
    let (gamma, coef0, degree) = match a.floats("kernel_params")? {
        Some(p) if p.len() == 3 => (p[0], p[1], p[2]),
        Some(p) => return Err(a.invalid(format!("kernel_params has {} values, expected 3", p.len()))),
        None if needed && kind != KernelType::Linear => {
            return Err(a.invalid(format!("kernel_type {kt} needs kernel_params [gamma, coef0, degree]")));
        }
        None => (0.0, 0.0, 0.0),
    };
    Ok((kind, gamma, coef0, degree))
}

/// Support vectors `[v, f]` for `v > 0` vectors.
fn support_vectors(a: &Attrs<'_>, v: usize, limits: &Limits) -> Result<SvKernel, LoadError> {
    let (kind, gamma, coef0, degree) = kernel_params(a, true)?;
    let sv = floats(a, "support_vectors", limits)?;
    if sv.is_empty() || sv.len() % v != 0 {
        return Err(a.invalid(format!("{} support vector values do not split into {v} vectors", sv.len())));
    }
    let f = sv.len() / v;
    Ok(SvKernel { kind, gamma, coef0, degree, sv, v, f })
}

/// Parses an `SVMClassifier` node.
pub(super) fn classifier(a: &Attrs<'_>, limits: &Limits) -> Result<Arc<dyn Kernel>, LoadError> {
    refuse_strings(a, &["classlabels_strings"])?;
    let labels = a.ints("classlabels_ints")?.ok_or_else(|| a.invalid("classifier has no classlabels_ints"))?;
    let k = labels.len();
    if k == 0 || k > CLASSES_MAX {
        return Err(a.invalid(format!("{k} class labels (1 to {CLASSES_MAX} supported)")));
    }
    let post = post(a)?;
    let coef = floats(a, "coefficients", limits)?;
    let rho = floats(a, "rho", limits)?;
    let (pa, pb) = (floats(a, "prob_a", limits)?, floats(a, "prob_b", limits)?);
    if pa.len() != pb.len() {
        return Err(a.invalid(format!("prob_a has {} values, prob_b {}", pa.len(), pb.len())));
    }
    let per_class = a.ints("vectors_per_class")?.unwrap_or_default();
    if !per_class.is_empty() && per_class.len() != k {
        return Err(a.invalid(format!("vectors_per_class has {} values for {k} classes", per_class.len())));
    }
    let mut counts = Vec::with_capacity(per_class.len());
    let mut starts = Vec::with_capacity(per_class.len());
    let mut v = 0usize;
    for &c in &per_class {
        let c = usize::try_from(c)
            .ok()
            .filter(|&c| c <= limits.tensor_elements_max)
            .ok_or_else(|| a.invalid(format!("vectors_per_class has the value {c}")))?;
        starts.push(v);
        counts.push(c);
        v = v
            .checked_add(c)
            .filter(|&v| v <= limits.tensor_elements_max)
            .ok_or_else(|| a.invalid("too many support vectors"))?;
    }
    let mode = if v > 0 {
        if k < 2 {
            return Err(a.invalid("a support-vector classifier needs at least two classes"));
        }
        let kernel = support_vectors(a, v, limits)?;
        let pairs = k * (k - 1) / 2;
        if (k - 1).checked_mul(v) != Some(coef.len()) {
            return Err(a.invalid(format!("{} coefficients, expected (classes − 1) × {v} vectors", coef.len())));
        }
        if rho.len() != pairs {
            return Err(a.invalid(format!("rho has {} values, expected one per class pair ({pairs})", rho.len())));
        }
        if !pa.is_empty() && pa.len() != pairs {
            return Err(a.invalid(format!("prob_a has {} values, expected one per class pair ({pairs})", pa.len())));
        }
        if !pa.is_empty() && k * k > limits.tensor_elements_max {
            return Err(a.invalid(format!("{k} classes: the coupling matrix is over the element limit")));
        }
        ClassifierMode::Svc { kernel, starts, counts, coef, rho, prob: (!pa.is_empty()).then_some((pa, pb)) }
    } else {
        kernel_params(a, false)?;
        if a.floats("support_vectors")?.is_some_and(|s| !s.is_empty()) {
            return Err(a.invalid("support_vectors given but vectors_per_class counts none"));
        }
        if !pa.is_empty() {
            return Err(a.unsupported("prob_a/prob_b on a linear SVM (no support vectors)"));
        }
        if coef.is_empty() || coef.len() % k != 0 {
            return Err(a.invalid(format!("{} coefficients do not split into {k} classes", coef.len())));
        }
        if rho.len() != 1 {
            return Err(a.invalid(format!("a linear SVM needs one rho, got {}", rho.len())));
        }
        let all_positive = coef.iter().all(|&w| w >= 0.0);
        ClassifierMode::Linear { f: coef.len() / k, coef, rho: rho[0], all_positive }
    };
    Ok(Arc::new(SvmClassifier { labels, mode, post }))
}

/// Parses an `SVMRegressor` node.
pub(super) fn regressor(a: &Attrs<'_>, limits: &Limits) -> Result<Arc<dyn Kernel>, LoadError> {
    if post(a)? != Post::None {
        return Err(a.unsupported(
            "SVMRegressor post_transform other than NONE (onnxruntime ignores it, the ONNX spec applies it)",
        ));
    }
    let v = a.int("n_supports", 0)?;
    let v = usize::try_from(v)
        .ok()
        .filter(|&v| v <= limits.tensor_elements_max)
        .ok_or_else(|| a.invalid(format!("n_supports is {v}")))?;
    let coef = floats(a, "coefficients", limits)?;
    let rho = floats(a, "rho", limits)?;
    if rho.len() != 1 {
        return Err(a.invalid(format!("rho has {} values, expected 1", rho.len())));
    }
    let mode = if v > 0 {
        let kernel = support_vectors(a, v, limits)?;
        if coef.len() != v {
            return Err(a.invalid(format!("{} coefficients for {v} support vectors", coef.len())));
        }
        RegressorMode::Svc { kernel, coef }
    } else {
        kernel_params(a, false)?;
        if a.floats("support_vectors")?.is_some_and(|s| !s.is_empty()) {
            return Err(a.invalid("support_vectors given but n_supports is 0"));
        }
        if coef.is_empty() {
            return Err(a.invalid("attribute 'coefficients' is required"));
        }
        RegressorMode::Linear { coef }
    };
    Ok(Arc::new(SvmRegressor { mode, rho: rho[0], one_class: a.int("one_class", 0)? != 0 }))
}

/// `v` clamped to `[lo, hi]`, NaN kept.
fn clamp_keep_nan(v: f32, lo: f32, hi: f32) -> f32 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// Pairwise coupling (see the module docs): `r` is `[k, k]` (diagonal unused); writes `p` (length k).
fn couple(k: usize, r: &[f32], p: &mut [f32]) {
    let mut q = vec![0.0f32; k * k];
    for i in 0..k {
        let mut d = 0.0f32;
        for j in (0..k).filter(|&j| j != i) {
            let rji = r[j * k + i];
            d = rji.mul_add(rji, d);
            q[i * k + j] = -(rji * r[i * k + j]);
        }
        q[i * k + i] = d;
    }
    let kf = k as f32;
    p.iter_mut().for_each(|v| *v = 1.0 / kf);
    let eps = 0.005 / kf;
    let mut qp = vec![0.0f32; k];
    for _ in 0..COUPLING_ROUNDS {
        let mut pqp = 0.0f32;
        for i in 0..k {
            let mut s = 0.0f32;
            for j in 0..k {
                s = q[i * k + j].mul_add(p[j], s);
            }
            qp[i] = s;
            pqp = p[i].mul_add(s, pqp);
        }
        let mut max_err = 0.0f32;
        for &v in &qp {
            let e = (v - pqp).abs();
            if e > max_err {
                max_err = e;
            }
        }
        if max_err < eps {
            break;
        }
        for i in 0..k {
            let qii = q[i * k + i];
            let delta = (pqp - qp[i]) / qii;
            p[i] += delta;
            let d1 = 1.0 + delta;
            pqp = delta.mul_add(delta.mul_add(qii, 2.0 * qp[i]), pqp) / d1 / d1;
            for j in 0..k {
                qp[j] = delta.mul_add(q[i * k + j], qp[j]) / d1;
                p[j] /= d1;
            }
        }
    }
}

/// The lowest index of a maximal value (`>` comparisons from index 0).
fn first_max<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for i in 1..v.len() {
        if v[i] > v[best] {
            best = i;
        }
    }
    best
}

impl SvmClassifier {
    fn columns(&self) -> usize {
        let k = self.labels.len();
        match &self.mode {
            ClassifierMode::Svc { prob: None, .. } if k == 2 => 2,
            ClassifierMode::Svc { prob: None, .. } => k * (k - 1) / 2,
            _ => k,
        }
    }
}

impl Kernel for SvmClassifier {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn outputs(&self) -> usize {
        2
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, FEATURE_TYPES, "X")?;
        Ok(vec![DType::I64, DType::F32])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (xv, n, f) = features(ins[0].expect("req"))?;
        let k = self.labels.len();
        let cols = self.columns();
        ctx.check_shape(&[n, cols])?;
        let mut labels = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n * cols);
        match &self.mode {
            ClassifierMode::Linear { coef, f: want_f, rho, all_positive } => {
                if f != *want_f {
                    return Err(inv(format!("the model has {want_f} features, the input {f}")));
                }
                ctx.check_work(&[n, k, f])?;
                for x in xv.chunks_exact(f).take(n) {
                    let row: Vec<f32> = coef.chunks_exact(f).map(|c| dot(x, c) + rho).collect();
                    let best = first_max(&row);
                    let max = row[best];
                    let c = if k == 2 && ((*all_positive && max >= 0.5) || (!*all_positive && max > 0.0)) {
                        1
                    } else {
                        best
                    };
                    labels.push(self.labels[c]);
                    let start = scores.len();
                    scores.extend_from_slice(&row);
                    if k >= 2 {
                        post_row(self.post, &mut scores[start..]);
                    }
                }
            }
            ClassifierMode::Svc { kernel, starts, counts, coef, rho, prob } => {
                if f != kernel.f {
                    return Err(inv(format!("the model has {} features, the input {f}", kernel.f)));
                }
                let v = kernel.v;
                ctx.check_work(&[n, v, f])?;
                ctx.check_work(&[n, k, v])?;
                if prob.is_some() {
                    ctx.check_work(&[n, COUPLING_ROUNDS, k, k])?;
                }
                let pairs = k * (k - 1) / 2;
                let mut kv = vec![0.0f32; v];
                let mut s = vec![0.0f32; pairs];
                let mut votes = vec![0usize; k];
                let mut r = vec![0.0f32; if prob.is_some() { k * k } else { 0 }];
                for x in xv.chunks_exact(f).take(n) {
                    kernel.eval(x, &mut kv);
                    votes.iter_mut().for_each(|c| *c = 0);
                    let mut p = 0;
                    for i in 0..k {
                        for j in i + 1..k {
                            let mut acc = 0.0f32;
                            let ci = &coef[(j - 1) * v..j * v];
                            for t in starts[i]..starts[i] + counts[i] {
                                acc = ci[t].mul_add(kv[t], acc);
                            }
                            let cj = &coef[i * v..(i + 1) * v];
                            for t in starts[j]..starts[j] + counts[j] {
                                acc = cj[t].mul_add(kv[t], acc);
                            }
                            let sc = acc + rho[p];
                            s[p] = sc;
                            votes[if sc > 0.0 { i } else { j }] += 1;
                            p += 1;
                        }
                    }
                    // Highest vote count, the lowest class index on ties.
                    let mut best = 0;
                    for c in 1..k {
                        if votes[c] > votes[best] {
                            best = c;
                        }
                    }
                    labels.push(self.labels[best]);
                    let start = scores.len();
                    match prob {
                        None if k == 2 => {
                            let s = s[0];
                            scores.extend(match self.post {
                                Post::None => [-s, s],
                                Post::Logistic => [crate::math::sigmoid(-s), crate::math::sigmoid(s)],
                                Post::Softmax | Post::SoftmaxZero => [1.0 - s, s],
                            });
                        }
                        None => {
                            scores.extend_from_slice(&s);
                            post_row(self.post, &mut scores[start..]);
                        }
                        Some((pa, pb)) => {
                            const LO: f32 = 1.0e-7;
                            const HI: f32 = 1.0 - 1.0e-7;
                            let mut p = 0;
                            for i in 0..k {
                                for j in i + 1..k {
                                    let v = crate::math::sigmoid(-s[p].mul_add(pa[p], pb[p]));
                                    let v = clamp_keep_nan(v, LO, HI);
                                    r[i * k + j] = v;
                                    r[j * k + i] = 1.0 - v;
                                    p += 1;
                                }
                            }
                            scores.resize(start + k, 0.0);
                            couple(k, &r, &mut scores[start..]);
                            post_row(self.post, &mut scores[start..]);
                        }
                    }
                }
            }
        }
        Ok(vec![
            Tensor { shape: vec![n], data: TensorData::I64(labels) },
            Tensor { shape: vec![n, cols], data: TensorData::F32(scores) },
        ])
    }
}

impl Kernel for SvmRegressor {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, FEATURE_TYPES, "X")?;
        Ok(vec![DType::F32])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (xv, n, f) = features(ins[0].expect("req"))?;
        ctx.check_shape(&[n, 1])?;
        let want_f = match &self.mode {
            RegressorMode::Svc { kernel, .. } => kernel.f,
            RegressorMode::Linear { coef } => coef.len(),
        };
        if f != want_f {
            return Err(inv(format!("the model has {want_f} features, the input {f}")));
        }
        let mut out = Vec::with_capacity(n);
        match &self.mode {
            RegressorMode::Svc { kernel, coef } => {
                ctx.check_work(&[n, kernel.v, f])?;
                let mut kv = vec![0.0f32; kernel.v];
                for x in xv.chunks_exact(f).take(n) {
                    kernel.eval(x, &mut kv);
                    out.push(dot(coef, &kv) + self.rho);
                }
            }
            RegressorMode::Linear { coef } => {
                ctx.check_work(&[n, f])?;
                for x in xv.chunks_exact(f).take(n) {
                    out.push(dot(x, coef) + self.rho);
                }
            }
        }
        if self.one_class {
            out.iter_mut().for_each(|y| *y = if *y > 0.0 { 1.0 } else { -1.0 });
        }
        Ok(vec![Tensor { shape: vec![n, 1], data: TensorData::F32(out) }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{AttributeProto, NodeProto, attr_type};

    enum A {
        F(Vec<f32>),
        I(Vec<i64>),
        S(&'static str),
        One(i64),
    }

    fn node(op: &str, attrs: Vec<(&str, A)>) -> NodeProto {
        let attribute = attrs
            .into_iter()
            .map(|(name, v)| {
                let mut p = AttributeProto { name: name.into(), ..Default::default() };
                match v {
                    A::F(f) => (p.r#type, p.floats) = (attr_type::FLOATS, f),
                    A::I(i) => (p.r#type, p.ints) = (attr_type::INTS, i),
                    A::S(s) => (p.r#type, p.s) = (attr_type::STRING, s.as_bytes().to_vec()),
                    A::One(i) => (p.r#type, p.i) = (attr_type::INT, i),
                }
                p
            })
            .collect();
        NodeProto { op_type: op.into(), attribute, ..Default::default() }
    }

    fn load(op: &str, attrs: Vec<(&str, A)>) -> Result<Arc<dyn Kernel>, LoadError> {
        let n = node(op, attrs);
        let a = Attrs::new(&n, "test node".into());
        let l = Limits::default();
        if op == "SVMClassifier" { classifier(&a, &l) } else { regressor(&a, &l) }
    }

    fn run(k: &Arc<dyn Kernel>, x: Tensor) -> KResult<Vec<Tensor>> {
        let l = Limits::default();
        let ctx = Ctx { limits: &l, threads: 1, kernels: crate::kernels::KernelPath::Reference };
        k.run(&[Some(&x)], &ctx)
    }

    fn x3() -> Tensor {
        Tensor::f32(vec![3, 2], vec![0.5, 1.0, -1.0, 0.3, 2.0, -1.5])
    }

    fn f32s(t: &Tensor) -> &[f32] {
        match &t.data {
            TensorData::F32(v) => v,
            _ => panic!("not f32"),
        }
    }

    fn i64s(t: &Tensor) -> &[i64] {
        match &t.data {
            TensorData::I64(v) => v,
            _ => panic!("not i64"),
        }
    }

    fn close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
        }
    }

    /// Binary, linear kernel, 3 support vectors (2 + 1).
    fn binary(extra: Vec<(&'static str, A)>) -> Vec<(&'static str, A)> {
        let mut v = vec![
            ("kernel_type", A::S("LINEAR")),
            ("kernel_params", A::F(vec![0.0, 0.0, 0.0])),
            ("support_vectors", A::F(vec![1.0, 0.0, 0.0, 1.0, -1.0, -1.0])),
            ("vectors_per_class", A::I(vec![2, 1])),
            ("coefficients", A::F(vec![0.5, -0.25, 0.75])),
            ("rho", A::F(vec![0.1])),
            ("classlabels_ints", A::I(vec![3, 7])),
        ];
        v.extend(extra);
        v
    }

    // Expected values below were printed by onnxruntime 1.32 for the same attributes.

    #[test]
    fn binary_scores_layout_per_post_transform() {
        let k = load("SVMClassifier", binary(vec![])).unwrap();
        let y = run(&k, x3()).unwrap();
        assert_eq!(i64s(&y[0]), &[7, 3, 3]);
        assert_eq!(y[1].shape, vec![3, 2]);
        close(f32s(&y[1]), &[1.025, -1.025, -0.05, 0.05, -1.1, 1.1], 1e-6);
        let k = load("SVMClassifier", binary(vec![("post_transform", A::S("LOGISTIC"))])).unwrap();
        let y = run(&k, x3()).unwrap();
        close(f32s(&y[1]), &[0.7359454, 0.2640546, 0.48750263, 0.51249737, 0.24973989, 0.7502601], 1e-6);
        let k = load("SVMClassifier", binary(vec![("post_transform", A::S("SOFTMAX"))])).unwrap();
        let y = run(&k, x3()).unwrap();
        close(f32s(&y[1]), &[2.025, -1.025, 0.95, 0.05, -0.1, 1.1], 1e-6);
        assert!(load("SVMClassifier", binary(vec![("post_transform", A::S("PROBIT"))])).is_err());
    }

    #[test]
    fn binary_probabilities() {
        let k = load("SVMClassifier", binary(vec![("prob_a", A::F(vec![-2.0])), ("prob_b", A::F(vec![0.1]))])).unwrap();
        let y = run(&k, x3()).unwrap();
        assert_eq!(i64s(&y[0]), &[7, 3, 3]);
        close(f32s(&y[1]), &[0.10417342, 0.8958266, 0.5, 0.5, 0.89090294, 0.10909699], 1e-6);
    }

    fn three(extra: Vec<(&'static str, A)>) -> Vec<(&'static str, A)> {
        let mut v = vec![
            ("kernel_type", A::S("RBF")),
            ("kernel_params", A::F(vec![0.7, 0.0, 0.0])),
            ("support_vectors", A::F(vec![1.0, 0.0, 0.0, 1.0, -1.0, -1.0, 0.5, 0.5, 2.0, -1.0])),
            ("vectors_per_class", A::I(vec![2, 1, 2])),
            ("coefficients", A::F(vec![0.5, -0.25, 0.75, 0.3, -0.6, 0.2, 0.4, -0.9, 0.1, 0.8])),
            ("rho", A::F(vec![0.1, -0.2, 0.05])),
            ("classlabels_ints", A::I(vec![10, 20, 30])),
        ];
        v.extend(extra);
        v
    }

    #[test]
    fn three_classes_votes_and_coupling() {
        let k = load("SVMClassifier", three(vec![])).unwrap();
        let y = run(&k, x3()).unwrap();
        assert_eq!(i64s(&y[0]), &[10, 10, 10]);
        close(
            f32s(&y[1]),
            &[
                0.10800786,
                0.46343946,
                0.1326869,
                0.27021837,
                0.0124278,
                -0.20514327,
                0.15236321,
                -0.67903227,
                0.7214371,
            ],
            1e-6,
        );
        let p = vec![("prob_a", A::F(vec![-1.5, -2.0, -0.7])), ("prob_b", A::F(vec![0.1, -0.2, 0.3]))];
        let k = load("SVMClassifier", three(p)).unwrap();
        let y = run(&k, x3()).unwrap();
        // The label follows the votes, not the most probable class (row 2).
        assert_eq!(i64s(&y[0]), &[10, 10, 10]);
        close(
            f32s(&y[1]),
            &[0.4550798, 0.31809717, 0.22682303, 0.39494863, 0.2583195, 0.3467318, 0.2265218, 0.36287823, 0.41059998],
            1e-6,
        );
    }

    #[test]
    fn linear_mode_labels() {
        let lin = |coef: Vec<f32>, rho: f32, labels: Vec<i64>| {
            load(
                "SVMClassifier",
                vec![
                    ("kernel_type", A::S("RBF")),
                    ("coefficients", A::F(coef)),
                    ("rho", A::F(vec![rho])),
                    ("classlabels_ints", A::I(labels)),
                ],
            )
            .unwrap()
        };
        let y = run(&lin(vec![1.0, -1.0, 0.5, 0.5], 0.2, vec![0, 1]), x3()).unwrap();
        // Mixed-sign weights and a positive maximum: label 1 even where class 0 scores higher.
        assert_eq!(i64s(&y[0]), &[1, 1, 1]);
        close(f32s(&y[1]), &[-0.3, 0.95, -1.1, -0.15, 3.7, 0.45], 1e-6);
        let y = run(&lin(vec![1.0, -1.0, 0.5, 0.5, 0.2, 0.1], 0.2, vec![0, 1, 2]), x3()).unwrap();
        assert_eq!(i64s(&y[0]), &[1, 2, 0]);
        let y = run(&lin(vec![1.0, 0.0, 0.5, 0.25], 0.0, vec![0, 1]), x3()).unwrap();
        assert_eq!(i64s(&y[0]), &[1, 1, 1]);
    }

    #[test]
    fn regressor_values() {
        let rbf = |rho: f32, extra: Vec<(&'static str, A)>| {
            let mut v = vec![
                ("kernel_type", A::S("RBF")),
                ("kernel_params", A::F(vec![0.5, 0.0, 0.0])),
                ("support_vectors", A::F(vec![1.0, 0.0, 0.0, 1.0, -1.0, -1.0])),
                ("n_supports", A::One(3)),
                ("coefficients", A::F(vec![0.5, -0.25, 0.75])),
                ("rho", A::F(vec![rho])),
            ];
            v.extend(extra);
            load("SVMRegressor", v).unwrap()
        };
        let y = run(&rbf(0.1, vec![]), x3()).unwrap();
        assert_eq!(y[0].shape, vec![3, 1]);
        close(f32s(&y[0]), &[0.17995921, 0.36817455, 0.20432203], 1e-6);
        let y = run(&rbf(-0.25, vec![("one_class", A::One(1))]), x3()).unwrap();
        assert_eq!(f32s(&y[0]), &[-1.0, 1.0, -1.0]);
        let lin = load(
            "SVMRegressor",
            vec![("coefficients", A::F(vec![2.0, -1.0])), ("rho", A::F(vec![0.5])), ("n_supports", A::One(0))],
        )
        .unwrap();
        close(f32s(&run(&lin, x3()).unwrap()[0]), &[0.5, -1.8, 6.0], 1e-6);
        // A sample of the wrong width is a run-time error.
        assert!(run(&lin, Tensor::f32(vec![1, 3], vec![1.0; 3])).is_err());
        assert!(
            load(
                "SVMRegressor",
                vec![("coefficients", A::F(vec![1.0])), ("rho", A::F(vec![0.0])), ("post_transform", A::S("LOGISTIC"))]
            )
            .is_err()
        );
    }

    #[test]
    fn bad_attributes_are_load_errors() {
        let drop = |name: &str, attrs: Vec<(&'static str, A)>| attrs.into_iter().filter(|(n, _)| *n != name).collect();
        let set = |name: &'static str, v: A, attrs: Vec<(&'static str, A)>| {
            let mut a: Vec<(&'static str, A)> = attrs.into_iter().filter(|(n, _)| *n != name).collect();
            a.push((name, v));
            a
        };
        let cases: Vec<Vec<(&'static str, A)>> = vec![
            drop("classlabels_ints", three(vec![])),
            set("classlabels_ints", A::I(vec![]), three(vec![])),
            set("vectors_per_class", A::I(vec![2, 1]), three(vec![])),
            set("vectors_per_class", A::I(vec![2, -1, 2]), three(vec![])),
            set("vectors_per_class", A::I(vec![i64::MAX, i64::MAX, 2]), three(vec![])),
            set("vectors_per_class", A::I(vec![2, 1, 3]), three(vec![])),
            set("support_vectors", A::F(vec![1.0; 9]), three(vec![])),
            set("support_vectors", A::F(vec![]), three(vec![])),
            set("coefficients", A::F(vec![0.5; 9]), three(vec![])),
            set("coefficients", A::F(vec![]), three(vec![])),
            set("rho", A::F(vec![0.1, 0.2]), three(vec![])),
            drop("rho", three(vec![])),
            three(vec![("prob_a", A::F(vec![1.0, 2.0, 3.0])), ("prob_b", A::F(vec![1.0]))]),
            three(vec![("prob_a", A::F(vec![1.0])), ("prob_b", A::F(vec![1.0]))]),
            set("kernel_params", A::F(vec![0.7]), three(vec![])),
            drop("kernel_params", three(vec![])),
            set("kernel_type", A::S("CUBIC"), three(vec![])),
            set("post_transform", A::S("PROBIT"), three(vec![])),
            three(vec![("classlabels_strings", A::I(vec![]))]),
            set("vectors_per_class", A::I(vec![0, 0, 0]), three(vec![])),
            drop("vectors_per_class", three(vec![])),
            set("classlabels_ints", A::I(vec![1]), set("vectors_per_class", A::I(vec![3]), three(vec![]))),
        ];
        for (i, c) in cases.into_iter().enumerate() {
            assert!(load("SVMClassifier", c).is_err(), "classifier case {i} loaded");
        }
        let reg = || {
            vec![
                ("kernel_type", A::S("POLY")),
                ("kernel_params", A::F(vec![0.5, 1.0, 3.0])),
                ("support_vectors", A::F(vec![1.0, 0.0, 0.0, 1.0])),
                ("n_supports", A::One(2)),
                ("coefficients", A::F(vec![0.5, -0.25])),
                ("rho", A::F(vec![0.1])),
            ]
        };
        assert!(load("SVMRegressor", reg()).is_ok());
        let cases: Vec<Vec<(&'static str, A)>> = vec![
            set("n_supports", A::One(-1), reg()),
            set("n_supports", A::One(3), reg()),
            set("n_supports", A::One(i64::MAX), reg()),
            set("coefficients", A::F(vec![1.0]), reg()),
            set("rho", A::F(vec![]), reg()),
            set("rho", A::F(vec![1.0, 2.0]), reg()),
            set("support_vectors", A::F(vec![1.0, 2.0, 3.0]), reg()),
            set("n_supports", A::One(0), reg()),
            drop("kernel_params", reg()),
            set("kernel_params", A::F(vec![1.0, 2.0, 3.0, 4.0]), reg()),
        ];
        for (i, c) in cases.into_iter().enumerate() {
            assert!(load("SVMRegressor", c).is_err(), "regressor case {i} loaded");
        }
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let k = load(
            "SVMClassifier",
            three(vec![("prob_a", A::F(vec![-1.5, -2.0, -0.7])), ("prob_b", A::F(vec![0.1, -0.2, 0.3]))]),
        )
        .unwrap();
        let y = run(&k, Tensor::f32(vec![2, 2], vec![f32::NAN, 1.0, f32::INFINITY, f32::NEG_INFINITY])).unwrap();
        assert_eq!(y[1].shape, vec![2, 3]);
        assert!(run(&k, Tensor::f32(vec![1, 3], vec![0.0; 3])).is_err());
        assert!(run(&k, Tensor::f32(vec![2, 1, 1], vec![0.0; 2])).is_err());
        let y = run(&k, Tensor::f32(vec![0, 2], vec![])).unwrap();
        assert_eq!((y[0].shape.clone(), y[1].shape.clone()), (vec![0], vec![0, 3]));
        let y = run(&k, Tensor::f32(vec![2], vec![0.5, 1.0])).unwrap();
        assert_eq!(y[1].shape, vec![1, 3]);
    }
}

//! Neural-network layers beyond Conv/MaxPool: AveragePool, GlobalAveragePool,
//! GlobalMaxPool, LRN, BatchNormalization, InstanceNormalization, LayerNormalization,
//! Dropout (inference) and ConvTranspose. All float32.
//!
//! **Orders** (part of the engine spec):
//! - **AveragePool**: the window's input values in row-major window order, summed
//!   sequentially from `+0.0` (`s = s + v`), then `s / count` where `count` is the
//!   number of window positions inside the input (`count_include_pad = 0`) or inside the
//!   padded input (`= 1`; positions a ceil-mode window hangs past the end padding are not
//!   counted). Output sizes as MaxPool ([`conv`](super::conv)).
//! - **GlobalAveragePool**: sequential sum over the spatial positions in row-major
//!   order, divided by their count. **GlobalMaxPool**: as MaxPool over the whole plane.
//! - **LRN**: `acc = 0; for c' in window (ascending): acc = fma(x_c', x_c', acc)`;
//!   `base = fma(alpha / size, acc, bias)` (alpha/size rounded to f32 first);
//!   `y = x / pow(base, beta)` with [`math::pow`](crate::math::pow).
//! - **BatchNormalization** (inference only): per channel `s = scale / sqrt(var + eps)`
//!   (f32: add, sqrt, divide), then `y = fma(x − mean, s, bias)`.
//! - **InstanceNormalization**: per (n, c): `mean = (Σ x) / len` (sequential sum),
//!   `var = (Σ fma(d, d, ·)) / len` with `d = x − mean`, `inv = 1 / sqrt(var + eps)`,
//!   `y = fma(d · inv, scale, bias)`.
//! - **LayerNormalization**: per row over the axes from `axis` on, as InstanceNormalization
//!   with `scale`/`bias` indexed by position in the row (broadcast), outputs Mean and
//!   InvStdDev of shape `X[..axis] + [1; rank − axis]`.
//! - **ConvTranspose**: output element `y[n, m, o]` (m in group g, `mg = m mod M/group`)
//!   is the engine's blocked dot product (see [`linalg`](super::linalg)) over the terms
//!   `(c, k)` in row-major order of `w[g·C/group + c, mg, k...]` against
//!   `x[n, g·C/group + c, i]` where `i_d = (o_d + pad_begin_d − k_d·dilation_d) / stride_d`
//!   when that divides exactly and lies inside the input, else `+0.0`; then `+ bias[m]`.

use super::conv::{AutoPad, Window};
use super::util::{self, inv, want, want_opt};
use super::{Ctx, KResult, Kernel, attr::Attrs};
use crate::LoadError;
use deed_types::{DType, Tensor, TensorData};
use std::sync::Arc;

#[derive(Debug)]
struct AvgPool {
    win: Window,
    include_pad: bool,
}
#[derive(Debug)]
struct GlobalPool {
    max: bool,
}
#[derive(Debug)]
struct Lrn {
    alpha: f32,
    beta: f32,
    bias: f32,
    size: usize,
}
#[derive(Debug)]
struct BatchNorm {
    eps: f32,
}
#[derive(Debug)]
struct InstanceNorm {
    eps: f32,
}
#[derive(Debug)]
struct LayerNorm {
    axis: i64,
    eps: f32,
}
#[derive(Debug)]
struct Dropout {
    /// Opset ≥ 12: ratio and training_mode are inputs.
    inputs: bool,
    /// Opset ≥ 10: the mask is bool (before: the data type).
    bool_mask: bool,
}
#[derive(Debug)]
struct ConvTranspose {
    win: Window,
    group: usize,
    output_padding: Vec<usize>,
    output_shape: Vec<usize>,
}

/// Parses the operators of this module.
pub(crate) fn parse(op: &str, opset: i64, a: &Attrs<'_>) -> Result<Option<Arc<dyn Kernel>>, LoadError> {
    let k: Arc<dyn Kernel> = match op {
        "AveragePool" => {
            let mut win = super::window(a, true, opset >= 10)?;
            if opset < 19 && a.has("dilations") {
                return Err(a.invalid("AveragePool takes 'dilations' only from opset 19"));
            }
            if win.dilations.is_empty() {
                win.dilations = vec![];
            }
            Arc::new(AvgPool { win, include_pad: a.int("count_include_pad", 0)? != 0 })
        }
        "GlobalAveragePool" => Arc::new(GlobalPool { max: false }),
        "GlobalMaxPool" => Arc::new(GlobalPool { max: true }),
        "LRN" => {
            let size = a.int_opt("size")?.ok_or_else(|| a.invalid("attribute 'size' is required"))?;
            if !(1..=super::WINDOW_ATTR_MAX).contains(&size) {
                return Err(a.invalid(format!("attribute 'size' is {size}")));
            }
            Arc::new(Lrn {
                alpha: a.float("alpha", 1e-4)?,
                beta: a.float("beta", 0.75)?,
                bias: a.float("bias", 1.0)?,
                size: size as usize,
            })
        }
        "BatchNormalization" => {
            if a.int("training_mode", 0)? != 0 {
                return Err(a.unsupported("BatchNormalization with training_mode = 1"));
            }
            if opset < 9 && a.int("spatial", 1)? == 0 {
                return Err(a.unsupported("BatchNormalization with spatial = 0"));
            }
            Arc::new(BatchNorm { eps: a.float("epsilon", 1e-5)? })
        }
        "InstanceNormalization" => Arc::new(InstanceNorm { eps: a.float("epsilon", 1e-5)? }),
        "LayerNormalization" => {
            if a.int("stash_type", 1)? != 1 {
                return Err(a.unsupported("LayerNormalization with stash_type other than 1 (float32)"));
            }
            Arc::new(LayerNorm { axis: a.int("axis", -1)?, eps: a.float("epsilon", 1e-5)? })
        }
        "Dropout" => {
            if opset < 12 && a.int("is_test", 1)? == 0 && opset < 7 {
                return Err(a.unsupported("Dropout in training mode"));
            }
            Arc::new(Dropout { inputs: opset >= 12, bool_mask: opset >= 10 })
        }
        "ConvTranspose" => {
            let group = a.int("group", 1)?;
            if !(1..=super::WINDOW_ATTR_MAX).contains(&group) {
                return Err(a.invalid(format!("attribute 'group' is {group}")));
            }
            let output_padding = super::to_usizes(a, "output_padding", a.ints("output_padding")?, 0)?;
            let output_shape = super::to_usizes(a, "output_shape", a.ints("output_shape")?, 0)?;
            Arc::new(ConvTranspose {
                win: super::window(a, false, false)?,
                group: group as usize,
                output_padding,
                output_shape,
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(k))
}

fn only_f32(ins: &[Option<DType>], n: usize) -> Result<Vec<DType>, String> {
    for i in 0..ins.len() {
        want_opt(ins, i, &[DType::F32], "every input")?;
    }
    Ok(vec![DType::F32; n])
}

/// Resolved pooling geometry: begin pads, end pads, output sizes.
pub(crate) struct PoolGeo {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pad_begin: Vec<usize>,
    pub pad_end: Vec<usize>,
    pub out: Vec<usize>,
}

/// Output geometry of a pooling window over `spatial` (same rules as MaxPool).
pub(crate) fn pool_geometry(win: &Window, spatial: &[usize]) -> KResult<PoolGeo> {
    let r = spatial.len();
    if win.kernel.len() != r {
        return Err(inv(format!(
            "kernel has {} dimensions but the input has {r} spatial dimensions",
            win.kernel.len()
        )));
    }
    let pick = |v: &Vec<usize>, what: &str, default: usize, len: usize| -> KResult<Vec<usize>> {
        if v.is_empty() {
            Ok(vec![default; len])
        } else if v.len() == len {
            Ok(v.clone())
        } else {
            Err(inv(format!("{what} has {} values, expected {len}", v.len())))
        }
    };
    let strides = pick(&win.strides, "strides", 1, r)?;
    let dilations = pick(&win.dilations, "dilations", 1, r)?;
    let pads = pick(&win.pads, "pads", 0, 2 * r)?;
    let (mut pb, mut pe, mut out) = (vec![], vec![], vec![]);
    let ovf = || inv("window arithmetic overflows");
    for d in 0..r {
        let (x, k, s, dl) = (spatial[d], win.kernel[d], strides[d], dilations[d]);
        let eff = (k - 1).checked_mul(dl).and_then(|v| v.checked_add(1)).ok_or_else(ovf)?;
        match win.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                let o = x.div_ceil(s);
                let need = o.saturating_sub(1).checked_mul(s).and_then(|v| v.checked_add(eff)).ok_or_else(ovf)?;
                let total = need.saturating_sub(x);
                let b = if win.auto_pad == AutoPad::SameUpper { total / 2 } else { total - total / 2 };
                pb.push(b);
                pe.push(total - b);
                out.push(o);
            }
            AutoPad::NotSet | AutoPad::Valid => {
                let (b, e) = if win.auto_pad == AutoPad::Valid { (0, 0) } else { (pads[d], pads[r + d]) };
                let total = x.checked_add(b).and_then(|v| v.checked_add(e)).ok_or_else(ovf)?;
                if total < eff {
                    return Err(inv(format!("window of extent {eff} is larger than the padded input extent {total}")));
                }
                let mut o = if win.ceil_mode { (total - eff).div_ceil(s) + 1 } else { (total - eff) / s + 1 };
                if win.ceil_mode && (o - 1) * s >= x + b {
                    o -= 1;
                }
                pb.push(b);
                pe.push(e);
                out.push(o);
            }
        }
    }
    Ok(PoolGeo { kernel: win.kernel.clone(), strides, dilations, pad_begin: pb, pad_end: pe, out })
}

impl Kernel for AvgPool {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        only_f32(ins, 1)
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        if x.shape.len() < 3 {
            return Err(inv(format!("X must be [N, C, spatial...], got {:?}", x.shape)));
        }
        let spatial = &x.shape[2..];
        let g = pool_geometry(&self.win, spatial)?;
        let mut shape = x.shape[..2].to_vec();
        shape.extend(&g.out);
        ctx.check_shape(&shape)?;
        let q: usize = g.kernel.iter().product();
        let p: usize = g.out.iter().product();
        let planes = x.shape[0] * x.shape[1];
        ctx.check_work(&[planes, p, q])?;
        let in_sp: usize = spatial.iter().product();
        let xv = util::f32s(x);
        let r = spatial.len();
        let mut out = Vec::with_capacity(planes * p);
        for plane in 0..planes {
            let base = plane * in_sp;
            let mut o = vec![0usize; r];
            for _ in 0..p {
                let mut kk = vec![0usize; r];
                let (mut sum, mut count) = (0.0f32, 0usize);
                for _ in 0..q {
                    let (mut off, mut inside, mut in_padded) = (0usize, true, true);
                    for d in 0..r {
                        let pos = o[d] * g.strides[d] + kk[d] * g.dilations[d];
                        if pos >= spatial[d] + g.pad_begin[d] + g.pad_end[d] {
                            in_padded = false;
                        }
                        if pos < g.pad_begin[d] || pos - g.pad_begin[d] >= spatial[d] {
                            inside = false;
                        } else {
                            off = off * spatial[d] + (pos - g.pad_begin[d]);
                        }
                    }
                    if inside {
                        sum += xv[base + off];
                        count += 1;
                    } else if self.include_pad && in_padded {
                        count += 1;
                    }
                    util::next_index(&mut kk, &g.kernel);
                }
                out.push(if count == 0 { f32::NAN } else { sum / count as f32 });
                util::next_index(&mut o, &g.out);
            }
        }
        Ok(vec![Tensor { shape, data: TensorData::F32(out) }])
    }
}

impl Kernel for GlobalPool {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        only_f32(ins, 1)
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        if x.shape.len() < 2 {
            return Err(inv(format!("X must be [N, C, spatial...], got {:?}", x.shape)));
        }
        let sp: usize = x.shape[2..].iter().product();
        let mut shape = x.shape[..2].to_vec();
        shape.extend(std::iter::repeat_n(1, x.shape.len() - 2));
        ctx.check_shape(&shape)?;
        let xv = util::f32s(x);
        let planes = x.shape[0] * x.shape[1];
        let out = (0..planes)
            .map(|pl| {
                let v = &xv[pl * sp..(pl + 1) * sp];
                if self.max {
                    let mut m = f32::NEG_INFINITY;
                    for &e in v {
                        if e.is_nan() {
                            return e;
                        }
                        if e > m {
                            m = e;
                        }
                    }
                    m
                } else {
                    let mut s = 0.0f32;
                    for &e in v {
                        s += e;
                    }
                    s / sp as f32
                }
            })
            .collect();
        Ok(vec![Tensor { shape, data: TensorData::F32(out) }])
    }
}

impl Kernel for Lrn {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        only_f32(ins, 1)
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        if x.shape.len() < 2 {
            return Err(inv(format!("X must be [N, C, ...], got {:?}", x.shape)));
        }
        let (n, c) = (x.shape[0], x.shape[1]);
        let sp: usize = x.shape[2..].iter().product();
        ctx.check_work(&[x.data.len(), self.size.min(c.max(1))])?;
        let xv = util::f32s(x);
        let lo = (self.size - 1) / 2;
        let hi = (self.size - 1).div_ceil(2);
        let t = self.alpha / self.size as f32;
        let mut out = vec![0.0f32; xv.len()];
        for ni in 0..n {
            for ci in 0..c {
                let (c0, c1) = (ci.saturating_sub(lo), (ci + hi).min(c - 1));
                for s in 0..sp {
                    let mut acc = 0.0f32;
                    for cc in c0..=c1 {
                        let v = xv[(ni * c + cc) * sp + s];
                        acc = v.mul_add(v, acc);
                    }
                    let base = t.mul_add(acc, self.bias);
                    let i = (ni * c + ci) * sp + s;
                    out[i] = xv[i] / crate::math::pow(base, self.beta);
                }
            }
        }
        Ok(vec![Tensor { shape: x.shape.clone(), data: TensorData::F32(out) }])
    }
}

fn per_channel<'a>(t: &'a Tensor, c: usize, what: &str) -> KResult<&'a [f32]> {
    let v = util::f32s(t);
    if v.len() != c || t.shape.len() != 1 {
        return Err(inv(format!("{what} has shape {:?}, expected [{c}]", t.shape)));
    }
    Ok(v)
}

impl Kernel for BatchNorm {
    fn arity(&self) -> (usize, usize) {
        (5, 5)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        only_f32(ins, 1)
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        if x.shape.len() < 2 {
            return Err(inv(format!("X must be [N, C, ...], got {:?}", x.shape)));
        }
        let c = x.shape[1];
        let sc = per_channel(ins[1].expect("req"), c, "scale")?;
        let b = per_channel(ins[2].expect("req"), c, "B")?;
        let mean = per_channel(ins[3].expect("req"), c, "mean")?;
        let var = per_channel(ins[4].expect("req"), c, "var")?;
        let s: Vec<f32> = (0..c).map(|i| sc[i] / (var[i] + self.eps).sqrt()).collect();
        let sp: usize = x.shape[2..].iter().product();
        let xv = util::f32s(x);
        let out = xv
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ci = (i / sp.max(1)) % c;
                (v - mean[ci]).mul_add(s[ci], b[ci])
            })
            .collect();
        Ok(vec![Tensor { shape: x.shape.clone(), data: TensorData::F32(out) }])
    }
}

/// Normalizes `v` (one row) into `out`: returns (mean, inv_std_dev).
/// LayerNormalization over whole rows of `xv` (compiled with FMA where the path allows,
/// [`crate::kernels::with_fma`]: the same bits, `mul_add` as one instruction).
struct LayerNormRows<'a> {
    xv: &'a [f32],
    out: &'a mut [f32],
    len: usize,
    eps: f32,
    /// Values and, per row position, the index of its value.
    scale: (&'a [f32], &'a [usize]),
    /// Values (empty: no bias) and, per row position, the index of its value.
    bias: (&'a [f32], &'a [usize]),
    /// One per row.
    means: &'a mut [f32],
    /// One per row.
    invs: &'a mut [f32],
}

/// Rows per thread below which LayerNormalization stays on fewer threads.
const LN_PAR_MIN_ROWS: usize = if cfg!(test) { 4 } else { 32 };

/// Rows whose sums [`LayerNormRows`] runs side by side.
const LN_GROUP: usize = 8;

impl crate::kernels::FmaWork for LayerNormRows<'_> {
    type Out = ();
    // Position-major over a group of rows is the point: the rows' chains interleave.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn run(self) {
        let ((sv, si), (bv, bi)) = (self.scale, self.bias);
        let len = self.len;
        let rows = self.xv.len() / len;
        let mut r0 = 0;
        // Whole groups: each row's sums are still sequential, but LN_GROUP independent
        // chains keep the adder busy where one chain would wait on each add.
        while r0 + LN_GROUP <= rows {
            let v: [&[f32]; LN_GROUP] = std::array::from_fn(|g| &self.xv[(r0 + g) * len..(r0 + g + 1) * len]);
            let mut s = [0.0f32; LN_GROUP];
            for j in 0..len {
                for g in 0..LN_GROUP {
                    s[g] += v[g][j];
                }
            }
            let mean: [f32; LN_GROUP] = std::array::from_fn(|g| s[g] / len as f32);
            let mut q = [0.0f32; LN_GROUP];
            for j in 0..len {
                for g in 0..LN_GROUP {
                    let d = v[g][j] - mean[g];
                    q[g] = d.mul_add(d, q[g]);
                }
            }
            for g in 0..LN_GROUP {
                let inv_std = 1.0 / (q[g] / len as f32 + self.eps).sqrt();
                let o = &mut self.out[(r0 + g) * len..(r0 + g + 1) * len];
                scale_row(v[g], mean[g], inv_std, o, |j| sv[si[j]], |j| if bv.is_empty() { 0.0 } else { bv[bi[j]] });
                self.means[r0 + g] = mean[g];
                self.invs[r0 + g] = inv_std;
            }
            r0 += LN_GROUP;
        }
        for r in r0..rows {
            let (row, o) = (&self.xv[r * len..(r + 1) * len], &mut self.out[r * len..(r + 1) * len]);
            let (m, s) =
                normalize_row(row, self.eps, o, |j| sv[si[j]], |j| if bv.is_empty() { 0.0 } else { bv[bi[j]] });
            self.means[r] = m;
            self.invs[r] = s;
        }
    }
}

#[inline(always)]
fn normalize_row(
    v: &[f32],
    eps: f32,
    out: &mut [f32],
    scale: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
) -> (f32, f32) {
    let n = v.len() as f32;
    let mut s = 0.0f32;
    for &e in v {
        s += e;
    }
    let mean = s / n;
    let mut q = 0.0f32;
    for &e in v {
        let d = e - mean;
        q = d.mul_add(d, q);
    }
    let var = q / n;
    let inv_std = 1.0 / (var + eps).sqrt();
    scale_row(v, mean, inv_std, out, scale, bias);
    (mean, inv_std)
}

/// `out[j] = fma((v[j] − mean)·inv_std, scale(j), bias(j))`.
#[inline(always)]
fn scale_row(
    v: &[f32],
    mean: f32,
    inv_std: f32,
    out: &mut [f32],
    scale: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
) {
    for (j, (&e, o)) in v.iter().zip(out.iter_mut()).enumerate() {
        *o = ((e - mean) * inv_std).mul_add(scale(j), bias(j));
    }
}

impl Kernel for InstanceNorm {
    fn arity(&self) -> (usize, usize) {
        (3, 3)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        only_f32(ins, 1)
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        if x.shape.len() < 3 {
            return Err(inv(format!("X must be [N, C, spatial...], got {:?}", x.shape)));
        }
        let c = x.shape[1];
        let sc = per_channel(ins[1].expect("req"), c, "scale")?;
        let b = per_channel(ins[2].expect("req"), c, "B")?;
        let sp: usize = x.shape[2..].iter().product();
        let xv = util::f32s(x);
        let mut out = vec![0.0f32; xv.len()];
        if sp > 0 {
            for (pl, (row, o)) in xv.chunks(sp).zip(out.chunks_mut(sp)).enumerate() {
                let ci = pl % c;
                normalize_row(row, self.eps, o, |_| sc[ci], |_| b[ci]);
            }
        }
        Ok(vec![Tensor { shape: x.shape.clone(), data: TensorData::F32(out) }])
    }
}

impl Kernel for LayerNorm {
    fn arity(&self) -> (usize, usize) {
        (2, 3)
    }
    fn outputs(&self) -> usize {
        3
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        only_f32(ins, 3)
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let r = x.shape.len();
        let axis = super::reduce::norm_axis(self.axis, r, false)?;
        let inner_shape = &x.shape[axis..];
        let len: usize = inner_shape.iter().product();
        let idx_for = |t: &Tensor, what: &str| -> KResult<Vec<usize>> {
            if super::elementwise::broadcast_shape(&t.shape, inner_shape).as_deref() != Some(inner_shape) {
                return Err(inv(format!("{what} of shape {:?} does not broadcast to {inner_shape:?}", t.shape)));
            }
            Ok(super::math_ops::bcast_index(&t.shape, inner_shape))
        };
        let sc = ins[1].expect("req");
        let si = idx_for(sc, "Scale")?;
        let scv = util::f32s(sc);
        let (bv, bi) = match ins.get(2).copied().flatten() {
            Some(b) => (util::f32s(b), idx_for(b, "B")?),
            None => (&[][..], vec![]),
        };
        let xv = util::f32s(x);
        let mut out = vec![0.0f32; xv.len()];
        let rows = xv.len().checked_div(len).unwrap_or(0);
        let (mut means, mut invs) = (vec![0.0f32; rows], vec![0.0f32; rows]);
        if len > 0 && rows > 0 {
            // Whole rows per thread: each row's arithmetic is the same wherever it runs.
            let per = rows.div_ceil(ctx.threads.min(rows.div_ceil(LN_PAR_MIN_ROWS)).max(1));
            let parts: Vec<_> = out
                .chunks_mut(per * len)
                .zip(means.chunks_mut(per))
                .zip(invs.chunks_mut(per))
                .enumerate()
                .map(|(i, ((o, m), v))| (i * per, o, m, v))
                .collect();
            let (eps, path) = (self.eps, ctx.kernels);
            let run = |(r0, out, means, invs): (usize, &mut [f32], &mut [f32], &mut [f32])| {
                let xv = &xv[r0 * len..r0 * len + out.len()];
                let work = LayerNormRows { xv, out, len, eps, scale: (scv, &si), bias: (bv, &bi), means, invs };
                crate::kernels::with_fma(path, work)
            };
            if parts.len() == 1 {
                parts.into_iter().for_each(run);
            } else {
                crate::pool::map(parts, run);
            }
        }
        let mut stat_shape = x.shape[..axis].to_vec();
        stat_shape.extend(std::iter::repeat_n(1, r - axis));
        if len == 0 {
            let n: usize = stat_shape.iter().product();
            means = vec![f32::NAN; n];
            invs = vec![f32::NAN; n];
        }
        Ok(vec![
            Tensor { shape: x.shape.clone(), data: TensorData::F32(out) },
            Tensor { shape: stat_shape.clone(), data: TensorData::F32(means) },
            Tensor { shape: stat_shape, data: TensorData::F32(invs) },
        ])
    }
}

impl Kernel for Dropout {
    fn arity(&self) -> (usize, usize) {
        if self.inputs { (1, 3) } else { (1, 1) }
    }
    fn outputs(&self) -> usize {
        2
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        let d = want(ins, 0, util::FLOATS, "the data")?;
        want_opt(ins, 1, util::FLOATS, "ratio")?;
        want_opt(ins, 2, &[DType::Bool], "training_mode")?;
        Ok(vec![d, if self.bool_mask { DType::Bool } else { d }])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        if let Some(t) = ins.get(2).copied().flatten()
            && t.data != TensorData::Bool(vec![false])
        {
            return Err(inv(
                "Dropout in training mode is random; deed runs inference only (training_mode must be false)",
            ));
        }
        let n = x.data.len();
        let mask = match (&x.data, self.bool_mask) {
            (_, true) => TensorData::Bool(vec![true; n]),
            (TensorData::F64(_), false) => TensorData::F64(vec![1.0; n]),
            _ => TensorData::F32(vec![1.0; n]),
        };
        Ok(vec![x.clone(), Tensor { shape: x.shape.clone(), data: mask }])
    }
}

impl Kernel for ConvTranspose {
    fn arity(&self) -> (usize, usize) {
        (2, 3)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        only_f32(ins, 1)
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (x, w) = (ins[0].expect("req"), ins[1].expect("req"));
        let b = ins.get(2).copied().flatten();
        if x.shape.len() < 3 || w.shape.len() != x.shape.len() {
            return Err(inv(format!("X {:?} and W {:?} must be [N, C, spatial...] of one rank", x.shape, w.shape)));
        }
        let (n, c) = (x.shape[0], x.shape[1]);
        let g = self.group;
        if w.shape[0] != c || c % g != 0 {
            return Err(inv(format!("W {:?} does not fit {c} input channels and group {g}", w.shape)));
        }
        let mg = w.shape[1];
        let m = mg * g;
        let cg = c / g;
        let spatial = &x.shape[2..];
        let kernel = &w.shape[2..];
        let r = spatial.len();
        if !self.win.kernel.is_empty() && self.win.kernel[..] != kernel[..] {
            return Err(inv(format!("kernel_shape {:?} does not match W {:?}", self.win.kernel, w.shape)));
        }
        if let Some(b) = b
            && b.shape != [m]
        {
            return Err(inv(format!("B has shape {:?}, expected [{m}]", b.shape)));
        }
        let pick = |v: &Vec<usize>, what: &str, d: usize| -> KResult<Vec<usize>> {
            match v.len() {
                0 => Ok(vec![d; r]),
                l if l == r => Ok(v.clone()),
                l => Err(inv(format!("{what} has {l} values for {r} spatial dimensions"))),
            }
        };
        let strides = pick(&self.win.strides, "strides", 1)?;
        let dil = pick(&self.win.dilations, "dilations", 1)?;
        let opad = pick(&self.output_padding, "output_padding", 0)?;
        let ovf = || inv("ConvTranspose size arithmetic overflows");
        let full: Vec<usize> = (0..r)
            .map(|d| {
                spatial[d]
                    .saturating_sub(1)
                    .checked_mul(strides[d])
                    .and_then(|v| v.checked_add(opad[d]))
                    .and_then(|v| (kernel[d].max(1) - 1).checked_mul(dil[d]).and_then(|e| v.checked_add(e + 1)))
                    .ok_or_else(ovf)
            })
            .collect::<KResult<_>>()?;
        let same = matches!(self.win.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
        // Begin pads may be negative when output_shape asks for more than the full output
        // (the extra positions only receive the bias), as in the ONNX reference.
        let (mut pb, mut out) = (vec![0i64; r], vec![0usize; r]);
        if !self.output_shape.is_empty() || same {
            let target: Vec<usize> = if !self.output_shape.is_empty() {
                let os = &self.output_shape;
                if os.len() != r {
                    return Err(inv(format!("output_shape has {} values for {r} spatial dimensions", os.len())));
                }
                os.clone()
            } else {
                (0..r).map(|d| spatial[d].checked_mul(strides[d]).ok_or_else(ovf)).collect::<KResult<_>>()?
            };
            for d in 0..r {
                let total = full[d] as i64 - target[d] as i64;
                let half = total.div_euclid(2);
                pb[d] = if self.win.auto_pad == AutoPad::SameUpper { half } else { total - half };
                out[d] = target[d];
            }
        } else {
            let pads = match self.win.pads.len() {
                0 => vec![0; 2 * r],
                l if l == 2 * r => self.win.pads.clone(),
                l => return Err(inv(format!("pads has {l} values for {r} spatial dimensions"))),
            };
            for d in 0..r {
                pb[d] = pads[d] as i64;
                out[d] =
                    full[d].checked_sub(pads[d] + pads[r + d]).ok_or_else(|| inv("pads are larger than the output"))?;
            }
        }
        let mut shape = vec![n, m];
        shape.extend(&out);
        ctx.check_shape(&shape)?;
        let q: usize = kernel.iter().product();
        let p: usize = out.iter().product();
        let kc = cg * q;
        ctx.check_work(&[n, m, p, kc])?;
        let in_sp: usize = spatial.iter().product();
        let (xv, wv) = (util::f32s(x), util::f32s(w));
        let bv = b.map(util::f32s);
        let mut y = Vec::with_capacity(n * m * p);
        let mut patch = vec![0.0f32; kc];
        let mut wrow = vec![0.0f32; kc];
        let mut src: Vec<Option<usize>> = vec![None; q];
        for ni in 0..n {
            for mo in 0..m {
                let (gi, mi) = (mo / mg, mo % mg);
                for ci in 0..cg {
                    let base = ((gi * cg + ci) * mg + mi) * q;
                    wrow[ci * q..(ci + 1) * q].copy_from_slice(&wv[base..base + q]);
                }
                let mut o = vec![0usize; r];
                for _ in 0..p {
                    // Input offsets per kernel position.
                    let mut kk = vec![0usize; r];
                    for s in src.iter_mut() {
                        let mut off = 0usize;
                        let mut ok = true;
                        for d in 0..r {
                            let t = o[d] as i64 + pb[d] - (kk[d] * dil[d]) as i64;
                            if t < 0
                                || !(t as usize).is_multiple_of(strides[d])
                                || t as usize / strides[d] >= spatial[d]
                            {
                                ok = false;
                                break;
                            }
                            off = off * spatial[d] + t as usize / strides[d];
                        }
                        *s = ok.then_some(off);
                        util::next_index(&mut kk, kernel);
                    }
                    for ci in 0..cg {
                        let xb = (ni * c + gi * cg + ci) * in_sp;
                        for (dst, s) in patch[ci * q..(ci + 1) * q].iter_mut().zip(&src) {
                            *dst = s.map_or(0.0, |s| xv[xb + s]);
                        }
                    }
                    let d = super::linalg::dot(&wrow, &patch);
                    y.push(match bv {
                        Some(bv) => d + bv[mo],
                        None => d,
                    });
                    util::next_index(&mut o, &out);
                }
            }
        }
        Ok(vec![Tensor { shape, data: TensorData::F32(y) }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::kernels::KernelPath;

    /// The spec's LayerNormalization, one row at a time with `normalize_row`.
    fn spec(x: &[f32], len: usize, eps: f32, scale: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut out = vec![0.0f32; x.len()];
        let (mut means, mut invs) = (Vec::new(), Vec::new());
        for (row, o) in x.chunks(len).zip(out.chunks_mut(len)) {
            let (m, s) = normalize_row(row, eps, o, |j| scale[j], |j| bias[j]);
            means.push(m);
            invs.push(s);
        }
        (out, means, invs)
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        util::f32s(t).iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn layer_norm_grouped_and_threaded_rows_are_the_spec() {
        let mut st = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            ((st >> 11) as f64 / (1u64 << 53) as f64 * 20.0 - 10.0) as f32
        };
        let l = Limits::default();
        // 8k+r rows for every remainder, rows of several lengths, a NaN and an infinity.
        for (rows, len) in [(1usize, 5usize), (7, 3), (8, 16), (13, 768), (37, 33), (64, 1)] {
            let mut x: Vec<f32> = (0..rows * len).map(|_| next()).collect();
            if rows * len > 40 {
                x[17] = f32::NAN;
                x[39] = f32::INFINITY;
            }
            let scale: Vec<f32> = (0..len).map(|_| next()).collect();
            let bias: Vec<f32> = (0..len).map(|_| next()).collect();
            let (want, wm, wi) = spec(&x, len, 1e-5, &scale, &bias);
            let xt = Tensor::f32(vec![rows, len], x);
            let (st_, bt) = (Tensor::f32(vec![len], scale), Tensor::f32(vec![len], bias));
            let ln = LayerNorm { axis: -1, eps: 1e-5 };
            for path in KernelPath::available() {
                for threads in [1, 2, 3] {
                    let ctx = Ctx { limits: &l, threads, kernels: path };
                    let got = ln.run(&[Some(&xt), Some(&st_), Some(&bt)], &ctx).unwrap();
                    let f = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got[0]), f(&want), "{rows}x{len} {path:?} threads {threads}");
                    assert_eq!(bits(&got[1]), f(&wm), "means {rows}x{len} {path:?} threads {threads}");
                    assert_eq!(bits(&got[2]), f(&wi), "invs {rows}x{len} {path:?} threads {threads}");
                }
            }
        }
    }
}

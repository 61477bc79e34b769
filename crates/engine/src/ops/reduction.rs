//! Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp, ArgMin,
//! LogSoftmax, Hardmax, CumSum and TopK.
//!
//! **Order** (part of the engine spec): a reduction visits the input in row-major order
//! and folds each element into its output element's accumulator, so each output sees its
//! inputs in row-major order of the reduced axes, one at a time:
//! - Sum: `s = s + v` from `+0.0` (integers wrap); SumSquare: `s = fma(v, v, s)`;
//!   L1: `s = s + |v|`; L2: `sqrt` of SumSquare; Mean: Sum `/ count`; Prod: `p = p · v`
//!   from 1; LogSum: `log(Sum)`; LogSumExp: `m` = Max, then `s = s + exp(v − m)`,
//!   result `m + log(s)` (`m = ±∞ ⇒ m`);
//! - Max/Min: from −∞/+∞ (the type's extreme for integers), a NaN anywhere gives NaN;
//! - an empty reduction gives the fold's start (0, 1, −∞, +∞; LogSumExp −∞).
//! - **LogSoftmax**: as Softmax ([`reduce`](super::reduce)) up to the sum `s`, then
//!   `y = (x − m) − log(s)`. **Hardmax**: 1.0 at the first maximum, 0 elsewhere.
//! - **CumSum**: sequential `s = s + v` along the axis (in reverse with `reverse = 1`;
//!   `exclusive = 1` writes `s` before adding).
//! - **TopK**: per slice, a stable sort of the indices by value (descending for
//!   `largest = 1`; NaN counts as larger than every number), ties keep the lower index
//!   first; the first K are returned (always sorted).
//! - **ArgMin**: the first index of the minimum (`select_last_index`: the last); a NaN
//!   never replaces the current best.

use super::util::{self, inv, want, want_opt};
use super::{Ctx, KResult, Kernel, attr::Attrs};
use crate::LoadError;
use crate::math;
use deed_types::{DType, Tensor, TensorData};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
enum R {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

#[derive(Debug)]
struct Reduce {
    r: R,
    keepdims: bool,
    /// Attribute axes (older opsets); `None` when they come as input #1.
    attr_axes: Option<Vec<i64>>,
    axes_input: bool,
    noop_with_empty_axes: bool,
}

#[derive(Debug)]
struct ArgMin {
    axis: i64,
    keepdims: bool,
    last: bool,
}

#[derive(Debug)]
struct LogSoftmax {
    axis: i64,
    legacy: bool,
    hard: bool,
}

#[derive(Debug)]
struct CumSum {
    exclusive: bool,
    reverse: bool,
}

#[derive(Debug)]
struct TopK {
    axis: i64,
    largest: bool,
    /// Opset < 10: K is an attribute.
    k_attr: Option<i64>,
}

/// Parses the operators of this module.
pub(crate) fn parse(op: &str, opset: i64, a: &Attrs<'_>) -> Result<Option<Arc<dyn Kernel>>, LoadError> {
    let r = match op {
        "ReduceSum" => Some(R::Sum),
        "ReduceMean" => Some(R::Mean),
        "ReduceMax" => Some(R::Max),
        "ReduceMin" => Some(R::Min),
        "ReduceProd" => Some(R::Prod),
        "ReduceL1" => Some(R::L1),
        "ReduceL2" => Some(R::L2),
        "ReduceSumSquare" => Some(R::SumSquare),
        "ReduceLogSum" => Some(R::LogSum),
        "ReduceLogSumExp" => Some(R::LogSumExp),
        _ => None,
    };
    if let Some(r) = r {
        // ReduceSum moved axes to an input at opset 13, the others at 18.
        let axes_input = if r == R::Sum { opset >= 13 } else { opset >= 18 };
        let attr_axes = if axes_input {
            if a.has("axes") {
                return Err(a.invalid(format!("{op} takes axes as an input from this opset, not an attribute")));
            }
            None
        } else {
            Some(a.ints("axes")?.unwrap_or_default())
        };
        return Ok(Some(Arc::new(Reduce {
            r,
            keepdims: a.int("keepdims", 1)? != 0,
            attr_axes,
            axes_input,
            noop_with_empty_axes: a.int("noop_with_empty_axes", 0)? != 0,
        })));
    }
    let k: Arc<dyn Kernel> = match op {
        "ArgMin" => Arc::new(ArgMin {
            axis: a.int("axis", 0)?,
            keepdims: a.int("keepdims", 1)? != 0,
            last: opset >= 12 && a.int("select_last_index", 0)? != 0,
        }),
        "LogSoftmax" | "Hardmax" => {
            let legacy = opset < 13;
            Arc::new(LogSoftmax { axis: a.int("axis", if legacy { 1 } else { -1 })?, legacy, hard: op == "Hardmax" })
        }
        "CumSum" => Arc::new(CumSum { exclusive: a.int("exclusive", 0)? != 0, reverse: a.int("reverse", 0)? != 0 }),
        "TopK" => Arc::new(TopK {
            axis: a.int("axis", -1)?,
            largest: opset < 11 || a.int("largest", 1)? != 0,
            k_attr: if opset < 10 {
                Some(a.int_opt("k")?.ok_or_else(|| a.invalid("attribute 'k' is required"))?)
            } else {
                None
            },
        }),
        _ => return Ok(None),
    };
    Ok(Some(k))
}

/// Output shape and, per input element (row-major), its output index.
fn reduce_map(shape: &[usize], axes: &[usize], keepdims: bool) -> (Vec<usize>, Vec<usize>, usize) {
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
    let out_dims: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let out_strides = util::strides(&out_dims);
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut map = Vec::with_capacity(n);
    for _ in 0..n {
        map.push(kept.iter().zip(&out_strides).map(|(&d, s)| idx[d] * s).sum());
        util::next_index(&mut idx, shape);
    }
    let count: usize = axes.iter().map(|&d| shape[d]).product();
    let out_shape = if keepdims {
        shape.iter().enumerate().map(|(d, &s)| if axes.contains(&d) { 1 } else { s }).collect()
    } else {
        out_dims
    };
    (out_shape, map, count)
}

fn fold_f32(r: R, v: &[f32], map: &[usize], out_n: usize, count: usize) -> Vec<f32> {
    let start = match r {
        R::Max | R::LogSumExp => f32::NEG_INFINITY,
        R::Min => f32::INFINITY,
        R::Prod => 1.0,
        _ => 0.0,
    };
    let mut acc = vec![start; out_n];
    let mm = |a: f32, b: f32, max: bool| {
        if a.is_nan() || b.is_nan() {
            f32::NAN
        } else if (max && b > a) || (!max && b < a) {
            b
        } else {
            a
        }
    };
    match r {
        R::LogSumExp => {
            let mut m = vec![f32::NEG_INFINITY; out_n];
            for (&x, &o) in v.iter().zip(map) {
                m[o] = mm(m[o], x, true);
            }
            let mut s = vec![0.0f32; out_n];
            for (&x, &o) in v.iter().zip(map) {
                s[o] += math::exp(x - m[o]);
            }
            for o in 0..out_n {
                acc[o] = if m[o].is_infinite() || m[o].is_nan() { m[o] } else { m[o] + math::log(s[o]) };
            }
            return acc;
        }
        _ => {
            for (&x, &o) in v.iter().zip(map) {
                let a = acc[o];
                acc[o] = match r {
                    R::Sum | R::Mean | R::LogSum => a + x,
                    R::SumSquare | R::L2 => x.mul_add(x, a),
                    R::L1 => a + x.abs(),
                    R::Prod => a * x,
                    R::Max => mm(a, x, true),
                    R::Min => mm(a, x, false),
                    R::LogSumExp => unreachable!(),
                };
            }
        }
    }
    for a in acc.iter_mut() {
        *a = match r {
            R::Mean => *a / count as f32,
            R::L2 => a.sqrt(),
            R::LogSum => math::log(*a),
            _ => *a,
        };
    }
    acc
}

macro_rules! fold_int {
    ($t:ty, $r:expr, $v:expr, $map:expr, $n:expr, $count:expr) => {{
        let r = $r;
        let start: $t = match r {
            R::Max => <$t>::MIN,
            R::Min => <$t>::MAX,
            R::Prod => 1,
            _ => 0,
        };
        let mut acc = vec![start; $n];
        for (&x, &o) in $v.iter().zip($map) {
            let a = acc[o];
            acc[o] = match r {
                R::Sum | R::Mean => a.wrapping_add(x),
                R::SumSquare => a.wrapping_add(x.wrapping_mul(x)),
                R::Prod => a.wrapping_mul(x),
                R::Max => a.max(x),
                R::Min => a.min(x),
                _ => unreachable!("checked at load"),
            };
        }
        if r == R::Mean && $count > 0 {
            for a in acc.iter_mut() {
                *a /= $count as $t;
            }
        }
        acc
    }};
}

impl Kernel for Reduce {
    fn arity(&self) -> (usize, usize) {
        if self.axes_input { (1, 2) } else { (1, 1) }
    }

    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        use DType::*;
        let ok: &[DType] = match self.r {
            R::Max | R::Min => &[F32, I32, I64, U8, I8],
            R::Sum | R::Prod | R::Mean | R::SumSquare => &[F32, I32, I64],
            _ => &[F32],
        };
        let d = want(ins, 0, ok, "the input")?;
        want_opt(ins, 1, &[I64], "axes")?;
        Ok(vec![d])
    }

    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let axes_raw: Vec<i64> = match (&self.attr_axes, ins.get(1).copied().flatten()) {
            (Some(a), _) => a.clone(),
            (None, Some(t)) => util::ints(t)?,
            (None, None) => vec![],
        };
        if axes_raw.is_empty() && self.noop_with_empty_axes && self.axes_input {
            return Ok(vec![x.clone()]);
        }
        let rank = x.shape.len();
        let axes = if axes_raw.is_empty() { (0..rank).collect() } else { util::norm_axes(&axes_raw, rank)? };
        let (shape, map, count) = reduce_map(&x.shape, &axes, self.keepdims);
        let n = ctx.check_shape(&shape)?;
        let data = match &x.data {
            TensorData::F32(v) => TensorData::F32(fold_f32(self.r, v, &map, n, count)),
            TensorData::I32(v) => TensorData::I32(fold_int!(i32, self.r, v, &map, n, count)),
            TensorData::I64(v) => TensorData::I64(fold_int!(i64, self.r, v, &map, n, count)),
            TensorData::U8(v) => TensorData::U8(fold_int!(u8, self.r, v, &map, n, count)),
            TensorData::I8(v) => TensorData::I8(fold_int!(i8, self.r, v, &map, n, count)),
            d => unreachable!("{:?} checked at load", d.dtype()),
        };
        Ok(vec![Tensor { shape, data }])
    }
}

impl Kernel for ArgMin {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, &[DType::F32, DType::I32, DType::I64], "the input")?;
        Ok(vec![DType::I64])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let rank = x.shape.len();
        if rank == 0 {
            return Err(inv("ArgMin needs an input of rank at least 1"));
        }
        let a = super::reduce::norm_axis(self.axis, rank, false)?;
        let len = x.shape[a];
        let outer: usize = x.shape[..a].iter().product();
        let inner: usize = x.shape[a + 1..].iter().product();
        let mut shape = x.shape.clone();
        if self.keepdims {
            shape[a] = 1;
        } else {
            shape.remove(a);
        }
        ctx.check_shape(&shape)?;
        if len == 0 && outer * inner > 0 {
            return Err(inv("ArgMin over an axis of length 0"));
        }
        fn run<T: Copy + PartialOrd>(v: &[T], outer: usize, len: usize, inner: usize, last: bool) -> Vec<i64> {
            let mut out = Vec::with_capacity(outer * inner);
            for o in 0..outer {
                for i in 0..inner {
                    let at = |j: usize| v[(o * len + j) * inner + i];
                    let (mut best, mut bi) = (at(0), 0usize);
                    for j in 1..len {
                        let cur = at(j);
                        if (last && cur <= best) || (!last && cur < best) {
                            best = cur;
                            bi = j;
                        }
                    }
                    out.push(bi as i64);
                }
            }
            out
        }
        let out = match &x.data {
            TensorData::F32(v) => run(v, outer, len, inner, self.last),
            TensorData::I32(v) => run(v, outer, len, inner, self.last),
            TensorData::I64(v) => run(v, outer, len, inner, self.last),
            d => unreachable!("{:?} checked at load", d.dtype()),
        };
        Ok(vec![Tensor { shape, data: TensorData::I64(out) }])
    }
}

impl Kernel for LogSoftmax {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        Ok(vec![want(ins, 0, &[DType::F32], "the input")?])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let v = util::f32s(x);
        let rank = x.shape.len();
        let (outer, len, inner) = if self.legacy {
            let a = super::reduce::norm_axis(self.axis, rank, true)?;
            (x.shape[..a].iter().product::<usize>(), x.shape[a..].iter().product::<usize>(), 1)
        } else {
            if rank == 0 {
                return Err(inv("needs an input of rank at least 1"));
            }
            let a = super::reduce::norm_axis(self.axis, rank, false)?;
            (x.shape[..a].iter().product::<usize>(), x.shape[a], x.shape[a + 1..].iter().product::<usize>())
        };
        let mut out = vec![0.0f32; v.len()];
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| (o * len + j) * inner + i;
                let mut m = f32::NEG_INFINITY;
                let mut mi = 0;
                for j in 0..len {
                    if v[at(j)] > m {
                        m = v[at(j)];
                        mi = j;
                    }
                }
                if self.hard {
                    if len > 0 {
                        out[at(mi)] = 1.0;
                    }
                    continue;
                }
                let mut s = 0.0f32;
                for j in 0..len {
                    s += math::exp(v[at(j)] - m);
                }
                let ls = math::log(s);
                for j in 0..len {
                    out[at(j)] = (v[at(j)] - m) - ls;
                }
            }
        }
        Ok(vec![Tensor { shape: x.shape.clone(), data: TensorData::F32(out) }])
    }
}

impl Kernel for CumSum {
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        use DType::*;
        let d = want(ins, 0, &[F32, F64, I32, I64, U32, U64], "the input")?;
        want(ins, 1, util::IDX, "axis")?;
        Ok(vec![d])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let rank = x.shape.len();
        if rank == 0 {
            return Err(inv("CumSum needs an input of rank at least 1"));
        }
        let a = super::reduce::norm_axis(util::scalar_i64(ins[1].expect("req"))?, rank, false)?;
        let len = x.shape[a];
        let outer: usize = x.shape[..a].iter().product();
        let inner: usize = x.shape[a + 1..].iter().product();
        let (ex, rev) = (self.exclusive, self.reverse);
        macro_rules! cum {
            ($v:expr, $zero:expr, $add:expr) => {{
                let v = $v;
                let mut out = vec![$zero; v.len()];
                for o in 0..outer {
                    for i in 0..inner {
                        let mut s = $zero;
                        for step in 0..len {
                            let j = if rev { len - 1 - step } else { step };
                            let at = (o * len + j) * inner + i;
                            if ex {
                                out[at] = s;
                                s = $add(s, v[at]);
                            } else {
                                s = $add(s, v[at]);
                                out[at] = s;
                            }
                        }
                    }
                }
                out
            }};
        }
        let data = match &x.data {
            TensorData::F32(v) => TensorData::F32(cum!(v, 0.0f32, |p: f32, q: f32| p + q)),
            TensorData::F64(v) => TensorData::F64(cum!(v, 0.0f64, |p: f64, q: f64| p + q)),
            TensorData::I32(v) => TensorData::I32(cum!(v, 0i32, |p: i32, q: i32| p.wrapping_add(q))),
            TensorData::I64(v) => TensorData::I64(cum!(v, 0i64, |p: i64, q: i64| p.wrapping_add(q))),
            TensorData::U32(v) => TensorData::U32(cum!(v, 0u32, |p: u32, q: u32| p.wrapping_add(q))),
            TensorData::U64(v) => TensorData::U64(cum!(v, 0u64, |p: u64, q: u64| p.wrapping_add(q))),
            d => unreachable!("{:?} checked at load", d.dtype()),
        };
        Ok(vec![Tensor { shape: x.shape.clone(), data }])
    }
}

impl Kernel for TopK {
    fn arity(&self) -> (usize, usize) {
        if self.k_attr.is_some() { (1, 1) } else { (2, 2) }
    }
    fn outputs(&self) -> usize {
        2
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        use DType::*;
        let d = want(ins, 0, &[F32, F64, I32, I64, U8, I8], "the input")?;
        want_opt(ins, 1, &[I64], "K")?;
        Ok(vec![d, I64])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let k = match self.k_attr {
            Some(k) => k,
            None => util::scalar_i64(ins[1].expect("req"))?,
        };
        let rank = x.shape.len();
        if rank == 0 {
            return Err(inv("TopK needs an input of rank at least 1"));
        }
        let a = super::reduce::norm_axis(self.axis, rank, false)?;
        let len = x.shape[a];
        let k =
            usize::try_from(k).ok().filter(|&k| k <= len).ok_or_else(|| inv(format!("K = {k} is not in 0..={len}")))?;
        let outer: usize = x.shape[..a].iter().product();
        let inner: usize = x.shape[a + 1..].iter().product();
        let mut shape = x.shape.clone();
        shape[a] = k;
        ctx.check_shape(&shape)?;
        ctx.check_work(&[outer, inner, len.max(1), (usize::BITS - len.leading_zeros()) as usize + 1])?;
        let largest = self.largest;
        let mut src = Vec::with_capacity(outer * inner * k);
        let mut idx_out = vec![0i64; outer * inner * k];
        macro_rules! sort_with {
            ($v:expr, $cmp:expr) => {{
                let v = $v;
                let mut order: Vec<usize> = Vec::with_capacity(len);
                for o in 0..outer {
                    for i in 0..inner {
                        order.clear();
                        order.extend(0..len);
                        let at = |j: usize| v[(o * len + j) * inner + i];
                        order.sort_by(|&p, &q| {
                            let c = $cmp(at(p), at(q));
                            if largest { c.reverse() } else { c }
                        });
                        for (t, &j) in order[..k].iter().enumerate() {
                            idx_out[(o * k + t) * inner + i] = j as i64;
                        }
                    }
                }
            }};
        }
        let fcmp = |p: f64, q: f64| match (p.is_nan(), q.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => p.partial_cmp(&q).expect("no NaN"),
        };
        match &x.data {
            TensorData::F32(v) => sort_with!(v, |p: f32, q: f32| fcmp(p as f64, q as f64)),
            TensorData::F64(v) => sort_with!(v, fcmp),
            TensorData::I32(v) => sort_with!(v, |p: i32, q: i32| p.cmp(&q)),
            TensorData::I64(v) => sort_with!(v, |p: i64, q: i64| p.cmp(&q)),
            TensorData::U8(v) => sort_with!(v, |p: u8, q: u8| p.cmp(&q)),
            TensorData::I8(v) => sort_with!(v, |p: i8, q: i8| p.cmp(&q)),
            d => unreachable!("{:?} checked at load", d.dtype()),
        }
        // `sort_by` is stable, so ties keep ascending index order — but reversing the
        // comparison for `largest` keeps stability too (equal elements compare Equal).
        for o in 0..outer {
            for t in 0..k {
                for i in 0..inner {
                    let j = idx_out[(o * k + t) * inner + i] as usize;
                    src.push((o * len + j) * inner + i);
                }
            }
        }
        let values = util::take(&x.data, &src);
        Ok(vec![Tensor { shape: shape.clone(), data: values }, Tensor { shape, data: TensorData::I64(idx_out) }])
    }
}

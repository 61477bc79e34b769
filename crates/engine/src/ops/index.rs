//! Operators that select, move or build data without arithmetic (any dtype): Concat,
//! ConstantOfShape, Expand, Gather, GatherElements, Pad, Range, Shape, Size, Slice,
//! Split, Squeeze, Tile, Transpose, Unsqueeze.
//!
//! Each is specified by the source element of every output element (row-major), so
//! there is no order question, except **Range**: element `i` is `fma(i, delta, start)`
//! for floats (`i` converted to the float type) and `start + i·delta` for integers,
//! with `n = max(0, ceil((limit − start) / delta))` computed in f64.
//! **Pad** modes: `constant` (the value, default 0), `edge` (clamp), `reflect` (mirror
//! without repeating the edge), `wrap` (modulo); negative pads crop.
//! Out-of-range Gather indices are an error (never a wrap beyond one period).

use super::util::{self, inv, want, want_opt};
use super::{Ctx, KResult, Kernel, attr::Attrs};
use crate::{Limits, LoadError};
use deed_types::{DType, Tensor, TensorData};
use std::sync::Arc;

#[derive(Debug)]
struct Concat {
    axis: i64,
}
#[derive(Debug)]
struct ConstantOfShape {
    value: Tensor,
}
#[derive(Debug)]
struct Expand;
#[derive(Debug)]
struct Gather {
    axis: i64,
    elements: bool,
}
#[derive(Debug, Clone, Copy, PartialEq)]
enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}
#[derive(Debug)]
struct Pad {
    mode: PadMode,
    /// Opset < 11: pads and value are attributes.
    attr: Option<(Vec<i64>, f32)>,
}
#[derive(Debug)]
struct Range;
#[derive(Debug)]
struct Shape {
    start: i64,
    end: Option<i64>,
}
#[derive(Debug)]
struct Size;
/// Slice's attributes before opset 10: starts, ends, axes.
type SliceAttrs = (Vec<i64>, Vec<i64>, Option<Vec<i64>>);

#[derive(Debug)]
struct Slice {
    /// Opset < 10: the attributes.
    attr: Option<SliceAttrs>,
}
#[derive(Debug)]
struct Split {
    axis: i64,
    outputs: usize,
    /// Opset < 13: the `split` attribute.
    attr_split: Option<Vec<i64>>,
    /// Opset ≥ 13: the sizes may come as input #1.
    input_split: bool,
    /// Opset ≥ 18: `num_outputs` (uneven last chunk allowed).
    num_outputs: Option<usize>,
}
#[derive(Debug)]
struct Squeeze {
    attr_axes: Option<Vec<i64>>,
    unsqueeze: bool,
}
#[derive(Debug)]
struct Tile;
#[derive(Debug)]
struct Transpose {
    perm: Option<Vec<i64>>,
}

/// Parses the operators of this module.
pub(crate) fn parse(
    op: &str,
    opset: i64,
    a: &Attrs<'_>,
    limits: &Limits,
) -> Result<Option<Arc<dyn Kernel>>, LoadError> {
    let k: Arc<dyn Kernel> = match op {
        "Concat" => {
            Arc::new(Concat { axis: a.int_opt("axis")?.ok_or_else(|| a.invalid("attribute 'axis' is required"))? })
        }
        "ConstantOfShape" => {
            let value = match a.tensor("value")? {
                Some(t) => {
                    let t = crate::load::tensor_from_proto(t, limits, "ConstantOfShape value")?;
                    if t.data.len() != 1 {
                        return Err(a.invalid("ConstantOfShape value must hold one element"));
                    }
                    t
                }
                None => Tensor::f32(vec![1], vec![0.0]),
            };
            Arc::new(ConstantOfShape { value })
        }
        "Expand" => Arc::new(Expand),
        "Gather" => Arc::new(Gather { axis: a.int("axis", 0)?, elements: false }),
        "GatherElements" => Arc::new(Gather { axis: a.int("axis", 0)?, elements: true }),
        "Pad" => {
            let m = a.string("mode", "constant")?;
            let mode = match m.as_str() {
                "constant" => PadMode::Constant,
                "reflect" => PadMode::Reflect,
                "edge" => PadMode::Edge,
                "wrap" if opset >= 19 => PadMode::Wrap,
                _ => return Err(a.invalid(format!("Pad mode '{m}' is not supported at opset {opset}"))),
            };
            let attr = if opset < 11 {
                let key = if opset < 2 { "paddings" } else { "pads" };
                let pads = a.ints(key)?.ok_or_else(|| a.invalid("attribute 'pads' is required"))?;
                Some((pads, a.float("value", 0.0)?))
            } else {
                None
            };
            Arc::new(Pad { mode, attr })
        }
        "Range" => Arc::new(Range),
        "Shape" => Arc::new(Shape {
            start: if opset >= 15 { a.int("start", 0)? } else { 0 },
            end: if opset >= 15 { a.int_opt("end")? } else { None },
        }),
        "Size" => Arc::new(Size),
        "Slice" => {
            let attr = if opset < 10 {
                let s = a.ints("starts")?.ok_or_else(|| a.invalid("attribute 'starts' is required"))?;
                let e = a.ints("ends")?.ok_or_else(|| a.invalid("attribute 'ends' is required"))?;
                Some((s, e, a.ints("axes")?))
            } else {
                None
            };
            Arc::new(Slice { attr })
        }
        "Split" => {
            let outputs = a.output_count();
            if outputs == 0 {
                return Err(a.invalid("Split has no outputs"));
            }
            let num_outputs = if opset >= 18 {
                match a.int_opt("num_outputs")? {
                    Some(n) if n as usize != outputs || n < 1 => {
                        return Err(a.invalid(format!("num_outputs = {n} but the node has {outputs} outputs")));
                    }
                    Some(n) => Some(n as usize),
                    None => None,
                }
            } else {
                None
            };
            Arc::new(Split {
                axis: a.int("axis", 0)?,
                outputs,
                attr_split: if opset < 13 { a.ints("split")? } else { None },
                input_split: opset >= 13,
                num_outputs,
            })
        }
        "Squeeze" | "Unsqueeze" => {
            let unsqueeze = op == "Unsqueeze";
            let attr_axes = if opset < 13 {
                let ax = a.ints("axes")?;
                if unsqueeze && ax.is_none() {
                    return Err(a.invalid("attribute 'axes' is required"));
                }
                Some(ax.unwrap_or_default())
            } else {
                None
            };
            Arc::new(Squeeze { attr_axes, unsqueeze })
        }
        "Tile" => Arc::new(Tile),
        "Transpose" => Arc::new(Transpose { perm: a.ints("perm")? }),
        _ => return Ok(None),
    };
    Ok(Some(k))
}

fn req<'a>(ins: &[Option<&'a Tensor>], i: usize) -> &'a Tensor {
    ins[i].expect("required input present (checked at load)")
}

fn one(t: Tensor) -> KResult<Vec<Tensor>> {
    Ok(vec![t])
}

/// A 1-D int64 shape tensor's values as dims.
fn shape_arg(t: &Tensor, ctx: &Ctx<'_>) -> KResult<Vec<i64>> {
    if t.shape.len() != 1 {
        return Err(inv(format!("the shape input must be 1-D, got {:?}", t.shape)));
    }
    if t.data.len() > ctx.limits.rank_max {
        return Err(super::KernelError::OverLimit {
            what: "rank of a shape input".into(),
            value: t.data.len() as u64,
            max: ctx.limits.rank_max as u64,
        });
    }
    util::ints(t)
}

impl Kernel for Concat {
    fn arity(&self) -> (usize, usize) {
        (1, usize::MAX)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        for i in 0..ins.len() {
            util::dt(ins, i)?;
            util::same(ins, 0, i)?;
        }
        Ok(vec![util::dt(ins, 0)?])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let ts: Vec<&Tensor> = ins.iter().map(|t| t.expect("all present")).collect();
        let r = ts[0].shape.len();
        if r == 0 {
            return Err(inv("Concat of rank-0 tensors"));
        }
        let axis = super::reduce::norm_axis(self.axis, r, false)?;
        let mut shape = ts[0].shape.clone();
        shape[axis] = 0;
        for t in &ts {
            if t.shape.len() != r || (0..r).any(|d| d != axis && t.shape[d] != ts[0].shape[d]) {
                return Err(inv(format!("Concat inputs {:?} and {:?} differ off axis {axis}", ts[0].shape, t.shape)));
            }
            shape[axis] = shape[axis].checked_add(t.shape[axis]).ok_or_else(|| inv("Concat size overflows"))?;
        }
        ctx.check_shape(&shape)?;
        let outer: usize = shape[..axis].iter().product();
        let all = util::concat_data(ts[0].dtype(), &ts.iter().map(|t| &t.data).collect::<Vec<_>>());
        let mut idx = Vec::with_capacity(all.len());
        let mut bases = Vec::with_capacity(ts.len());
        let mut b = 0;
        for t in &ts {
            bases.push(b);
            b += t.data.len();
        }
        for o in 0..outer {
            for (t, &base) in ts.iter().zip(&bases) {
                let blk: usize = t.shape[axis..].iter().product();
                idx.extend(base + o * blk..base + (o + 1) * blk);
            }
        }
        one(Tensor { shape, data: util::take(&all, &idx) })
    }
}

impl Kernel for ConstantOfShape {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, &[DType::I64], "the shape")?;
        Ok(vec![self.value.dtype()])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let dims = shape_arg(req(ins, 0), ctx)?;
        let shape: Vec<usize> = dims.iter().map(|&d| util::dim(d)).collect::<KResult<_>>()?;
        let n = ctx.check_shape(&shape)?;
        one(Tensor { shape, data: util::repeat_elem(&self.value.data, 0, n) })
    }
}

impl Kernel for Expand {
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 1, &[DType::I64], "the shape")?;
        Ok(vec![util::dt(ins, 0)?])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = req(ins, 0);
        let dims = shape_arg(req(ins, 1), ctx)?;
        let target: Vec<usize> = dims.iter().map(|&d| util::dim(d)).collect::<KResult<_>>()?;
        let shape = super::elementwise::broadcast_shape(&x.shape, &target)
            .ok_or_else(|| inv(format!("{:?} does not expand to {target:?}", x.shape)))?;
        ctx.check_shape(&shape)?;
        let idx = super::math_ops::bcast_index(&x.shape, &shape);
        one(Tensor { shape, data: util::take(&x.data, &idx) })
    }
}

impl Kernel for Gather {
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 1, util::IDX, "the indices")?;
        Ok(vec![util::dt(ins, 0)?])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (x, it) = (req(ins, 0), req(ins, 1));
        let r = x.shape.len();
        if r == 0 {
            return Err(inv("Gather from a rank-0 tensor"));
        }
        let axis = super::reduce::norm_axis(self.axis, r, false)?;
        let len = x.shape[axis];
        let ind = util::ints(it)?;
        let fix = |v: i64| -> KResult<usize> {
            let w = if v < 0 { v + len as i64 } else { v };
            if w < 0 || w >= len as i64 {
                return Err(inv(format!("index {v} is out of range for axis {axis} of length {len}")));
            }
            Ok(w as usize)
        };
        let st = util::strides(&x.shape);
        if self.elements {
            if it.shape.len() != r {
                return Err(inv(format!("indices {:?} and data {:?} differ in rank", it.shape, x.shape)));
            }
            if (0..r).any(|d| d != axis && it.shape[d] > x.shape[d]) {
                return Err(inv(format!("indices {:?} exceed data {:?}", it.shape, x.shape)));
            }
            let mut idx = Vec::with_capacity(ind.len());
            let mut pos = vec![0usize; r];
            for &v in &ind {
                let mut off = 0;
                for d in 0..r {
                    off += if d == axis { fix(v)? } else { pos[d] } * st[d];
                }
                idx.push(off);
                util::next_index(&mut pos, &it.shape);
            }
            return one(Tensor { shape: it.shape.clone(), data: util::take(&x.data, &idx) });
        }
        let mut shape = x.shape[..axis].to_vec();
        shape.extend(&it.shape);
        shape.extend(&x.shape[axis + 1..]);
        ctx.check_shape(&shape)?;
        let outer: usize = x.shape[..axis].iter().product();
        let inner: usize = x.shape[axis + 1..].iter().product();
        let fixed: Vec<usize> = ind.iter().map(|&v| fix(v)).collect::<KResult<_>>()?;
        let mut idx = Vec::with_capacity(outer * fixed.len() * inner);
        for o in 0..outer {
            for &j in &fixed {
                let base = (o * len + j) * inner;
                idx.extend(base..base + inner);
            }
        }
        one(Tensor { shape, data: util::take(&x.data, &idx) })
    }
}

impl Kernel for Pad {
    fn arity(&self) -> (usize, usize) {
        if self.attr.is_some() { (1, 1) } else { (2, 4) }
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        let d = util::dt(ins, 0)?;
        if self.attr.is_some() && d != DType::F32 {
            return Err("Pad before opset 11 takes float32 only".into());
        }
        want_opt(ins, 1, &[DType::I64], "pads")?;
        want_opt(ins, 2, &[d], "constant_value")?;
        want_opt(ins, 3, util::IDX, "axes")?;
        Ok(vec![d])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = req(ins, 0);
        let r = x.shape.len();
        let (pads_raw, value) = match &self.attr {
            Some((p, v)) => (p.clone(), Some(Tensor::f32(vec![], vec![*v]))),
            None => (util::ints(req(ins, 1))?, ins.get(2).copied().flatten().cloned()),
        };
        let axes: Vec<usize> = match ins.get(3).copied().flatten() {
            Some(t) => util::norm_axes(&util::ints(t)?, r)?,
            None => (0..r).collect(),
        };
        if pads_raw.len() != 2 * axes.len() {
            return Err(inv(format!("pads has {} values, expected {}", pads_raw.len(), 2 * axes.len())));
        }
        let mut pb = vec![0i64; r];
        let mut pe = vec![0i64; r];
        for (i, &ax) in axes.iter().enumerate() {
            pb[ax] = pads_raw[i];
            pe[ax] = pads_raw[axes.len() + i];
        }
        let mut shape = Vec::with_capacity(r);
        for d in 0..r {
            let s = (x.shape[d] as i64).checked_add(pb[d]).and_then(|s| s.checked_add(pe[d]));
            let Some(s) = s.filter(|&s| s >= 0) else {
                return Err(inv(format!("pads {pads_raw:?} crop axis {d} below zero or overflow it")));
            };
            shape.push(s as usize);
        }
        let n = ctx.check_shape(&shape)?;
        if self.mode != PadMode::Constant && n > 0 && x.shape.iter().zip(&shape).any(|(&i, &o)| i == 0 && o > 0) {
            return Err(inv("cannot pad an empty axis in reflect, edge or wrap mode"));
        }
        let st = util::strides(&x.shape);
        let nx = x.data.len();
        // Source index per output element; `nx` means the constant value.
        // In i128: a pad near i64::MIN or MAX with an opposite one may leave a sane shape
        // while `o - pad` overflows i64.
        let map = |o: usize, d: usize| -> Option<usize> {
            let len = x.shape[d] as i128;
            let i = o as i128 - i128::from(pb[d]);
            if (0..len).contains(&i) {
                return Some(i as usize);
            }
            match self.mode {
                PadMode::Constant => None,
                PadMode::Edge => Some(i.clamp(0, len - 1) as usize),
                PadMode::Wrap => Some(i.rem_euclid(len) as usize),
                PadMode::Reflect => {
                    if len == 1 {
                        return Some(0);
                    }
                    let period = 2 * (len - 1);
                    let m = i.rem_euclid(period);
                    Some(if m < len { m } else { period - m } as usize)
                }
            }
        };
        let mut idx = Vec::with_capacity(n);
        let mut o = vec![0usize; r];
        for _ in 0..n {
            let mut off = Some(0usize);
            for d in 0..r {
                off = match (off, map(o[d], d)) {
                    (Some(a), Some(i)) => Some(a + i * st[d]),
                    _ => None,
                };
            }
            idx.push(off.unwrap_or(nx));
            util::next_index(&mut o, &shape);
        }
        let fill = match value {
            Some(v) if v.data.len() == 1 => util::repeat_elem(&v.data, 0, 1),
            Some(v) if v.data.is_empty() => zero_of(x.dtype()),
            Some(v) => return Err(inv(format!("constant_value must be one value, got shape {:?}", v.shape))),
            None => zero_of(x.dtype()),
        };
        let both = util::concat_data(x.dtype(), &[&x.data, &fill]);
        one(Tensor { shape, data: util::take(&both, &idx) })
    }
}

/// One zero (false) element of `dtype`.
pub(crate) fn zero_of(dtype: DType) -> TensorData {
    super::shape::cast(&Tensor::new(vec![1], TensorData::I64(vec![0])).expect("valid"), dtype).data
}

impl Kernel for Range {
    fn arity(&self) -> (usize, usize) {
        (3, 3)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        use DType::*;
        let d = want(ins, 0, &[F32, F64, I16, I32, I64], "start")?;
        want(ins, 1, &[d], "limit")?;
        want(ins, 2, &[d], "delta")?;
        Ok(vec![d])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (s, l, d) = (req(ins, 0), req(ins, 1), req(ins, 2));
        let (sf, lf, df) = (util::scalar_f64(s)?, util::scalar_f64(l)?, util::scalar_f64(d)?);
        if df == 0.0 {
            return Err(inv("Range delta is 0"));
        }
        let nf = ((lf - sf) / df).ceil().max(0.0);
        if !nf.is_finite() || nf > ctx.limits.tensor_elements_max as f64 {
            return Err(super::KernelError::OverLimit {
                what: "Range element count".into(),
                value: if nf.is_finite() { nf as u64 } else { u64::MAX },
                max: ctx.limits.tensor_elements_max as u64,
            });
        }
        let n = nf as usize;
        let data = match (&s.data, &d.data) {
            (TensorData::F32(a), TensorData::F32(b)) => {
                TensorData::F32((0..n).map(|i| (i as f32).mul_add(b[0], a[0])).collect())
            }
            (TensorData::F64(a), TensorData::F64(b)) => {
                TensorData::F64((0..n).map(|i| (i as f64).mul_add(b[0], a[0])).collect())
            }
            (TensorData::I16(a), TensorData::I16(b)) => {
                TensorData::I16((0..n).map(|i| a[0].wrapping_add((i as i16).wrapping_mul(b[0]))).collect())
            }
            (TensorData::I32(a), TensorData::I32(b)) => {
                TensorData::I32((0..n).map(|i| a[0].wrapping_add((i as i32).wrapping_mul(b[0]))).collect())
            }
            (TensorData::I64(a), TensorData::I64(b)) => {
                TensorData::I64((0..n).map(|i| a[0].wrapping_add((i as i64).wrapping_mul(b[0]))).collect())
            }
            _ => unreachable!("Range dtypes checked at load"),
        };
        one(Tensor { shape: vec![n], data })
    }
}

impl Kernel for Shape {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        util::dt(ins, 0)?;
        Ok(vec![DType::I64])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = req(ins, 0);
        let r = x.shape.len() as i64;
        let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let (s, e) = (clampi(self.start), clampi(self.end.unwrap_or(r)));
        let dims: Vec<i64> = if s < e { x.shape[s..e].iter().map(|&d| d as i64).collect() } else { vec![] };
        one(Tensor { shape: vec![dims.len()], data: TensorData::I64(dims) })
    }
}

impl Kernel for Size {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        util::dt(ins, 0)?;
        Ok(vec![DType::I64])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        one(Tensor { shape: vec![], data: TensorData::I64(vec![req(ins, 0).data.len() as i64]) })
    }
}

/// Clamped (start, step, count) of one sliced axis of length `len`.
fn slice_axis(start: i64, end: i64, step: i64, len: usize) -> KResult<(i64, i64, usize)> {
    if step == 0 {
        return Err(inv("Slice step is 0"));
    }
    if len == 0 {
        // Nothing to take (and no valid index to clamp a negative-step start to).
        return Ok((0, step, 0));
    }
    let l = len as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(l) } else { v };
    let (s, e) = (fix(start), fix(end));
    let (s, e) = if step > 0 { (s.clamp(0, l), e.clamp(0, l)) } else { (s.clamp(0, l - 1), e.clamp(-1, l - 1)) };
    let count = if step > 0 {
        if e > s { ((e - s) as u64).div_ceil(step as u64) } else { 0 }
    } else if s > e {
        ((s - e) as u64).div_ceil(step.unsigned_abs())
    } else {
        0
    };
    Ok((s, step, count as usize))
}

impl Kernel for Slice {
    fn arity(&self) -> (usize, usize) {
        if self.attr.is_some() { (1, 1) } else { (3, 5) }
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        for i in 1..5 {
            want_opt(ins, i, util::IDX, "starts, ends, axes and steps")?;
        }
        Ok(vec![util::dt(ins, 0)?])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = req(ins, 0);
        let r = x.shape.len();
        let opt = |i: usize| ins.get(i).copied().flatten();
        let (starts, ends, axes, steps) = match &self.attr {
            Some((s, e, a)) => (s.clone(), e.clone(), a.clone(), None),
            None => (
                util::ints(req(ins, 1))?,
                util::ints(req(ins, 2))?,
                opt(3).map(util::ints).transpose()?,
                opt(4).map(util::ints).transpose()?,
            ),
        };
        let axes = match axes {
            Some(a) => util::norm_axes(&a, r)?,
            None => (0..starts.len().min(r)).collect(),
        };
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if starts.len() != ends.len() || starts.len() != axes.len() || steps.len() != starts.len() {
            return Err(inv("starts, ends, axes and steps differ in length"));
        }
        let mut first: Vec<i64> = vec![0; r];
        let mut step: Vec<i64> = vec![1; r];
        let mut shape = x.shape.clone();
        for (i, &ax) in axes.iter().enumerate() {
            let (s, st, c) = slice_axis(starts[i], ends[i], steps[i], x.shape[ax])?;
            first[ax] = s;
            step[ax] = st;
            shape[ax] = c;
        }
        let n = ctx.check_shape(&shape)?;
        let xs = util::strides(&x.shape);
        let mut idx = Vec::with_capacity(n);
        let mut o = vec![0usize; r];
        for _ in 0..n {
            let off: i64 = (0..r).map(|d| (first[d] + o[d] as i64 * step[d]) * xs[d] as i64).sum();
            idx.push(off as usize);
            util::next_index(&mut o, &shape);
        }
        one(Tensor { shape, data: util::take(&x.data, &idx) })
    }
}

impl Kernel for Split {
    fn arity(&self) -> (usize, usize) {
        if self.input_split { (1, 2) } else { (1, 1) }
    }
    fn outputs(&self) -> usize {
        self.outputs
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want_opt(ins, 1, &[DType::I64], "split")?;
        Ok(vec![util::dt(ins, 0)?; self.outputs])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = req(ins, 0);
        let r = x.shape.len();
        if r == 0 {
            return Err(inv("Split of a rank-0 tensor"));
        }
        let axis = super::reduce::norm_axis(self.axis, r, false)?;
        let len = x.shape[axis];
        let k = self.outputs;
        let sizes: Vec<usize> = match (&self.attr_split, ins.get(1).copied().flatten()) {
            (Some(s), _) => s.iter().map(|&v| util::dim(v)).collect::<KResult<_>>()?,
            (None, Some(t)) => util::ints(t)?.iter().map(|&v| util::dim(v)).collect::<KResult<_>>()?,
            (None, None) => {
                if self.num_outputs.is_some() {
                    let c = len.div_ceil(k);
                    (0..k).map(|i| c.min(len.saturating_sub(i * c))).collect()
                } else {
                    if !len.is_multiple_of(k) {
                        return Err(inv(format!("axis of length {len} does not split evenly into {k}")));
                    }
                    vec![len / k; k]
                }
            }
        };
        if sizes.len() != k || sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) != Some(len) {
            return Err(inv(format!("split sizes {sizes:?} do not cover {len} in {k} outputs")));
        }
        let outer: usize = x.shape[..axis].iter().product();
        let inner: usize = x.shape[axis + 1..].iter().product();
        let mut outs = Vec::with_capacity(k);
        let mut at = 0;
        for &s in &sizes {
            let mut idx = Vec::with_capacity(outer * s * inner);
            for o in 0..outer {
                let base = (o * len + at) * inner;
                idx.extend(base..base + s * inner);
            }
            let mut shape = x.shape.clone();
            shape[axis] = s;
            outs.push(Tensor { shape, data: util::take(&x.data, &idx) });
            at += s;
        }
        Ok(outs)
    }
}

impl Kernel for Squeeze {
    fn arity(&self) -> (usize, usize) {
        match (&self.attr_axes, self.unsqueeze) {
            (Some(_), _) => (1, 1),
            (None, true) => (2, 2),
            (None, false) => (1, 2),
        }
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want_opt(ins, 1, &[DType::I64], "axes")?;
        Ok(vec![util::dt(ins, 0)?])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = req(ins, 0);
        let axes: Vec<i64> = match (&self.attr_axes, ins.get(1).copied().flatten()) {
            (Some(a), _) => a.clone(),
            (None, Some(t)) => util::ints(t)?,
            (None, None) => vec![],
        };
        let shape = if self.unsqueeze {
            let r = x.shape.len() + axes.len();
            if r > ctx.limits.rank_max {
                return Err(super::KernelError::OverLimit {
                    what: "Unsqueeze output rank".into(),
                    value: r as u64,
                    max: ctx.limits.rank_max as u64,
                });
            }
            let ax = util::norm_axes(&axes, r)?;
            let mut src = x.shape.iter();
            (0..r).map(|d| if ax.contains(&d) { 1 } else { *src.next().expect("counts match") }).collect()
        } else if axes.is_empty() {
            x.shape.iter().copied().filter(|&d| d != 1).collect()
        } else {
            let ax = util::norm_axes(&axes, x.shape.len())?;
            if let Some(&d) = ax.iter().find(|&&d| x.shape[d] != 1) {
                return Err(inv(format!("cannot squeeze axis {d} of size {}", x.shape[d])));
            }
            x.shape.iter().enumerate().filter(|(d, _)| !ax.contains(d)).map(|(_, &s)| s).collect()
        };
        one(Tensor { shape, data: x.data.clone() })
    }
}

impl Kernel for Tile {
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 1, &[DType::I64], "repeats")?;
        Ok(vec![util::dt(ins, 0)?])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = req(ins, 0);
        let reps = util::ints(req(ins, 1))?;
        if reps.len() != x.shape.len() {
            return Err(inv(format!("repeats has {} values for rank {}", reps.len(), x.shape.len())));
        }
        let mut shape = Vec::with_capacity(reps.len());
        for (d, &rp) in reps.iter().enumerate() {
            shape.push(x.shape[d].checked_mul(util::dim(rp)?).ok_or_else(|| inv("Tile size overflows"))?);
        }
        let n = ctx.check_shape(&shape)?;
        let xs = util::strides(&x.shape);
        let mut idx = Vec::with_capacity(n);
        let mut o = vec![0usize; shape.len()];
        for _ in 0..n {
            idx.push((0..shape.len()).map(|d| (o[d] % x.shape[d]) * xs[d]).sum());
            util::next_index(&mut o, &shape);
        }
        one(Tensor { shape, data: util::take(&x.data, &idx) })
    }
}

impl Kernel for Transpose {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        Ok(vec![util::dt(ins, 0)?])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = req(ins, 0);
        let r = x.shape.len();
        let perm: Vec<usize> = match &self.perm {
            Some(p) => {
                if p.len() != r {
                    return Err(inv(format!("perm {p:?} does not fit rank {r}")));
                }
                util::norm_axes(p, r)?
            }
            None => (0..r).rev().collect(),
        };
        let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
        let data = util::map_same!(&x.data, v => permute(v, &x.shape, &perm));
        one(Tensor { shape, data })
    }
}

/// `v` (row-major, shape `in_shape`) with its axes permuted: output axis `d` is input axis
/// `perm[d]`. Output elements are written in row-major order, one innermost row at a time
/// (a slice copy when that row is contiguous in the input, else a strided gather); the
/// source of every element is the same as indexing it one by one.
fn permute<T: Copy>(v: &[T], in_shape: &[usize], perm: &[usize]) -> Vec<T> {
    let r = perm.len();
    if r == 0 || v.is_empty() {
        return v.to_vec();
    }
    let xs = util::strides(in_shape);
    let shape: Vec<usize> = perm.iter().map(|&p| in_shape[p]).collect();
    let (inner, step) = (shape[r - 1], xs[perm[r - 1]]);
    let outer_shape = &shape[..r - 1];
    let mut out = Vec::with_capacity(v.len());
    let mut o = vec![0usize; r - 1];
    for _ in 0..v.len() / inner {
        let base: usize = o.iter().zip(perm).map(|(&i, &p)| i * xs[p]).sum();
        if step == 1 {
            out.extend_from_slice(&v[base..base + inner]);
        } else {
            out.extend((0..inner).map(|j| v[base + j * step]));
        }
        util::next_index(&mut o, outer_shape);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: output element `o` (row-major over the permuted shape) is input
    /// element `Σ o[d] · stride[perm[d]]`.
    fn permute_by_index(v: &[u32], in_shape: &[usize], perm: &[usize]) -> Vec<u32> {
        let shape: Vec<usize> = perm.iter().map(|&p| in_shape[p]).collect();
        let xs = util::strides(in_shape);
        let mut o = vec![0usize; perm.len()];
        (0..v.len())
            .map(|_| {
                let i: usize = (0..perm.len()).map(|d| o[d] * xs[perm[d]]).sum();
                util::next_index(&mut o, &shape);
                v[i]
            })
            .collect()
    }

    #[test]
    fn permute_matches_the_index_definition() {
        let shapes: &[&[usize]] =
            &[&[], &[5], &[3, 4], &[1, 6, 3, 4], &[2, 3, 4, 5], &[2, 1, 3], &[2, 0, 3], &[3, 1, 2, 1, 4]];
        for &shape in shapes {
            let n: usize = shape.iter().product();
            let v: Vec<u32> = (0..n as u32).collect();
            let mut perm: Vec<usize> = (0..shape.len()).collect();
            // Every permutation (Heap's algorithm, iteratively).
            let mut c = vec![0usize; perm.len()];
            assert_eq!(permute(&v, shape, &perm), permute_by_index(&v, shape, &perm), "{shape:?} {perm:?}");
            let mut i = 1;
            while i < perm.len() {
                if c[i] < i {
                    perm.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
                    assert_eq!(permute(&v, shape, &perm), permute_by_index(&v, shape, &perm), "{shape:?} {perm:?}");
                    c[i] += 1;
                    i = 1;
                } else {
                    c[i] = 0;
                    i += 1;
                }
            }
        }
    }
}

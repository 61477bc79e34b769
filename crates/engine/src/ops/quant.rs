//! Quantized operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
//! MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.
//!
//! **Arithmetic** (part of the engine spec):
//! - integer products are exact: each term is `(a − a_zero) · (b − b_zero)` in i32, summed
//!   in i32 with wrapping, in the order of the float kernels (K ascending for MatMul;
//!   the weight tensor's row-major order for Conv, padding contributing 0);
//! - QuantizeLinear: `q = saturate(round_half_even(x / scale) + zero)` with the division
//!   in f32; NaN becomes `zero`; saturation to the output type's range;
//! - DequantizeLinear: `y = f32(x − zero) · scale` (one f32 rounding for the
//!   conversion of the exact integer difference, one for the product);
//! - QLinearMatMul / QLinearConv: `m = (a_scale · b_scale) / y_scale` in f32 (per output
//!   column or channel when a scale is per-axis), `y = saturate(round_half_even(f32(acc) · m) + y_zero)`,
//!   with `acc` the exact integer sum (plus the int32 bias for QLinearConv);
//! - DynamicQuantizeLinear: `lo = min(0, min x)`, `hi = max(0, max x)`,
//!   `scale = (hi − lo) / 255`, `zero = saturate(round_half_even(0 − lo / scale))` (0 when
//!   scale is 0), then QuantizeLinear to uint8.

use super::conv::Window;
use super::util::{self, inv, want, want_opt};
use super::{Ctx, KResult, Kernel, attr::Attrs};
use crate::LoadError;
use deed_types::{DType, Tensor, TensorData};
use std::sync::Arc;

#[derive(Debug)]
struct Quantize {
    axis: i64,
    out: Option<DType>,
}
#[derive(Debug)]
struct Dequantize {
    axis: i64,
}
#[derive(Debug)]
struct DynQuant;
#[derive(Debug)]
struct MatMulInt {
    qlinear: bool,
}
#[derive(Debug)]
struct ConvInt {
    win: Window,
    group: usize,
    qlinear: bool,
}

/// Parses the operators of this module.
pub(crate) fn parse(op: &str, opset: i64, a: &Attrs<'_>) -> Result<Option<Arc<dyn Kernel>>, LoadError> {
    let k: Arc<dyn Kernel> = match op {
        "QuantizeLinear" | "DequantizeLinear" => {
            if a.int("block_size", 0)? != 0 {
                return Err(a.unsupported(format!("{op} with block quantization (block_size)")));
            }
            if a.has("precision") && a.int("precision", 0)? != 0 && a.int("precision", 0)? != 1 {
                return Err(a.unsupported(format!("{op} with a precision other than float32")));
            }
            let axis = if opset >= 13 { a.int("axis", 1)? } else { 1 };
            let od = a.int("output_dtype", 0)?;
            let out = match od {
                0 => None,
                c => Some(
                    i32::try_from(c)
                        .ok()
                        .and_then(DType::from_code)
                        .ok_or_else(|| a.unsupported(format!("{op} output_dtype {c}")))?,
                ),
            };
            if op == "QuantizeLinear" {
                Arc::new(Quantize { axis, out })
            } else {
                if out.is_some_and(|d| d != DType::F32) {
                    return Err(a.unsupported("DequantizeLinear to a type other than float32"));
                }
                Arc::new(Dequantize { axis })
            }
        }
        "DynamicQuantizeLinear" => Arc::new(DynQuant),
        "MatMulInteger" => Arc::new(MatMulInt { qlinear: false }),
        "QLinearMatMul" => Arc::new(MatMulInt { qlinear: true }),
        "ConvInteger" | "QLinearConv" => {
            let group = a.int("group", 1)?;
            if !(1..=super::WINDOW_ATTR_MAX).contains(&group) {
                return Err(a.invalid(format!("attribute 'group' is {group}")));
            }
            Arc::new(ConvInt {
                win: super::window(a, false, false)?,
                group: group as usize,
                qlinear: op == "QLinearConv",
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(k))
}

const Q8: &[DType] = &[DType::U8, DType::I8];

/// Range of a quantized type.
fn qrange(d: DType) -> (f32, f32) {
    match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::I32 => (-2_147_483_648.0, 2_147_483_520.0),
        d => unreachable!("quantized type {d:?} checked at load"),
    }
}

/// Integer elements as i32.
fn i32s(t: &Tensor) -> Vec<i32> {
    match &t.data {
        TensorData::U8(v) => v.iter().map(|&x| x as i32).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as i32).collect(),
        TensorData::U16(v) => v.iter().map(|&x| x as i32).collect(),
        TensorData::I16(v) => v.iter().map(|&x| x as i32).collect(),
        TensorData::I32(v) => v.clone(),
        d => unreachable!("integer tensor {:?} checked at load", d.dtype()),
    }
}

/// Builds a tensor of quantized type `d` from values already in its range.
fn from_i32(d: DType, v: Vec<i32>) -> TensorData {
    match d {
        DType::U8 => TensorData::U8(v.into_iter().map(|x| x as u8).collect()),
        DType::I8 => TensorData::I8(v.into_iter().map(|x| x as i8).collect()),
        DType::U16 => TensorData::U16(v.into_iter().map(|x| x as u16).collect()),
        DType::I16 => TensorData::I16(v.into_iter().map(|x| x as i16).collect()),
        DType::I32 => TensorData::I32(v),
        d => unreachable!("quantized type {d:?} checked at load"),
    }
}

/// `saturate(round_half_even(v) + zero)` to `d`; NaN gives `zero`.
fn quantize_one(v: f32, zero: i32, d: DType) -> i32 {
    let (lo, hi) = qrange(d);
    if v.is_nan() {
        return zero;
    }
    let r = v.round_ties_even() as f64 + zero as f64;
    r.clamp(lo as f64, hi as f64) as i32
}

/// For each element of a tensor of `shape`, the index into a per-axis parameter of
/// length `len` (1 = per-tensor).
fn param_index(shape: &[usize], axis: i64, len: usize) -> KResult<Box<dyn Fn(usize) -> usize>> {
    if len == 1 {
        return Ok(Box::new(|_| 0));
    }
    let a = super::reduce::norm_axis(axis, shape.len(), false)?;
    if shape[a] != len {
        return Err(inv(format!("per-axis parameter of length {len} does not fit axis {a} of {shape:?}")));
    }
    let inner: usize = shape[a + 1..].iter().product();
    Ok(Box::new(move |i| (i / inner.max(1)) % len))
}

fn check_param(t: &Tensor, what: &str) -> KResult<()> {
    if t.shape.len() > 1 {
        return Err(inv(format!("{what} must be a scalar or 1-D, got {:?}", t.shape)));
    }
    Ok(())
}

impl Kernel for Quantize {
    fn arity(&self) -> (usize, usize) {
        (2, 3)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, &[DType::F32, DType::I32], "x")?;
        want(ins, 1, &[DType::F32], "y_scale")?;
        let qt = &[DType::U8, DType::I8, DType::U16, DType::I16];
        want_opt(ins, 2, qt, "y_zero_point")?;
        let d = match (ins.get(2).copied().flatten(), self.out) {
            (Some(z), Some(o)) if z != o => return Err("output_dtype differs from y_zero_point's type".into()),
            (Some(z), _) => z,
            (None, Some(o)) => o,
            (None, None) => DType::U8,
        };
        if !qt.contains(&d) {
            return Err(format!("quantizing to {} is not supported", d.name()));
        }
        Ok(vec![d])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let s = ins[1].expect("req");
        check_param(s, "y_scale")?;
        let zp = ins.get(2).copied().flatten();
        let d = zp.map_or(self.out.unwrap_or(DType::U8), |z| z.dtype());
        let zv = zp.map(i32s).unwrap_or_else(|| vec![0]);
        let sv = util::f32s(s);
        if zp.is_some_and(|z| z.data.len() != sv.len()) {
            return Err(inv("y_scale and y_zero_point differ in size"));
        }
        let pi = param_index(&x.shape, self.axis, sv.len())?;
        let xf: Vec<f32> = match &x.data {
            TensorData::F32(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&a| a as f32).collect(),
            _ => unreachable!("checked at load"),
        };
        let zf = |p: usize| if zv.len() == 1 { zv[0] } else { zv[p] };
        let out: Vec<i32> = xf.iter().enumerate().map(|(i, &v)| quantize_one(v / sv[pi(i)], zf(pi(i)), d)).collect();
        Ok(vec![Tensor { shape: x.shape.clone(), data: from_i32(d, out) }])
    }
}

impl Kernel for Dequantize {
    fn arity(&self) -> (usize, usize) {
        (2, 3)
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        let d = want(ins, 0, &[DType::U8, DType::I8, DType::U16, DType::I16, DType::I32], "x")?;
        want(ins, 1, &[DType::F32], "x_scale")?;
        want_opt(ins, 2, &[d], "x_zero_point")?;
        Ok(vec![DType::F32])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let s = ins[1].expect("req");
        check_param(s, "x_scale")?;
        let sv = util::f32s(s);
        let zv = ins.get(2).copied().flatten().map(i32s).unwrap_or_else(|| vec![0]);
        if zv.len() != 1 && zv.len() != sv.len() {
            return Err(inv("x_scale and x_zero_point differ in size"));
        }
        let pi = param_index(&x.shape, self.axis, sv.len())?;
        let xv = i32s(x);
        let out = xv
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let p = pi(i);
                let z = if zv.len() == 1 { zv[0] } else { zv[p] };
                ((q as i64 - z as i64) as f32) * sv[p]
            })
            .collect();
        Ok(vec![Tensor { shape: x.shape.clone(), data: TensorData::F32(out) }])
    }
}

impl Kernel for DynQuant {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn outputs(&self) -> usize {
        3
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, &[DType::F32], "x")?;
        Ok(vec![DType::U8, DType::F32, DType::U8])
    }
    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let v = util::f32s(x);
        let (mut lo, mut hi) = (0.0f32, 0.0f32);
        for &e in v {
            if e < lo {
                lo = e;
            }
            if e > hi {
                hi = e;
            }
        }
        let scale = (hi - lo) / 255.0;
        let zero = if scale == 0.0 { 0 } else { quantize_one(0.0 - lo / scale, 0, DType::U8) };
        let q: Vec<i32> =
            v.iter().map(|&e| if scale == 0.0 { zero } else { quantize_one(e / scale, zero, DType::U8) }).collect();
        Ok(vec![
            Tensor { shape: x.shape.clone(), data: from_i32(DType::U8, q) },
            Tensor { shape: vec![], data: TensorData::F32(vec![scale]) },
            Tensor { shape: vec![], data: TensorData::U8(vec![zero as u8]) },
        ])
    }
}

/// Input positions of MatMulInteger / QLinearMatMul: (a, a_zero, b, b_zero, a_scale, b_scale, y_scale, y_zero).
fn mm_slots(q: bool) -> [Option<usize>; 8] {
    if q {
        [Some(0), Some(2), Some(3), Some(5), Some(1), Some(4), Some(6), Some(7)]
    } else {
        [Some(0), Some(2), Some(1), Some(3), None, None, None, None]
    }
}

/// `f32(acc) · m`, rounded half to even, plus the zero point, saturated to `d`.
fn requantize(acc: i32, m: f32, zero: i32, d: DType) -> i32 {
    quantize_one(acc as f32 * m, zero, d)
}

impl Kernel for MatMulInt {
    fn arity(&self) -> (usize, usize) {
        if self.qlinear { (8, 8) } else { (2, 4) }
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        let s = mm_slots(self.qlinear);
        let a = want(ins, s[0].expect("a"), Q8, "A")?;
        let b = want(ins, s[2].expect("b"), Q8, "B")?;
        want_opt(ins, s[1].expect("az"), &[a], "the A zero point")?;
        want_opt(ins, s[3].expect("bz"), &[b], "the B zero point")?;
        if self.qlinear {
            for i in [1, 4, 6] {
                want(ins, i, &[DType::F32], "the scales")?;
            }
            return Ok(vec![want(ins, 7, Q8, "y_zero_point")?]);
        }
        Ok(vec![DType::I32])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let s = mm_slots(self.qlinear);
        let get = |k: usize| s[k].and_then(|i| ins.get(i).copied().flatten());
        let (a, b) = (get(0).expect("req"), get(2).expect("req"));
        if a.shape.is_empty() || b.shape.is_empty() {
            return Err(inv("MatMul of a rank-0 tensor"));
        }
        let a_sh = if a.shape.len() == 1 { vec![1, a.shape[0]] } else { a.shape.clone() };
        let b_sh = if b.shape.len() == 1 { vec![b.shape[0], 1] } else { b.shape.clone() };
        let (ra, rb) = (a_sh.len(), b_sh.len());
        let (m, k, n) = (a_sh[ra - 2], a_sh[ra - 1], b_sh[rb - 1]);
        if b_sh[rb - 2] != k {
            return Err(inv(format!("cannot multiply {:?} and {:?}", a.shape, b.shape)));
        }
        let batch = super::elementwise::broadcast_shape(&a_sh[..ra - 2], &b_sh[..rb - 2])
            .ok_or_else(|| inv(format!("batch dims of {:?} and {:?} do not broadcast", a.shape, b.shape)))?;
        let mut shape = batch.clone();
        if a.shape.len() > 1 {
            shape.push(m);
        }
        if b.shape.len() > 1 {
            shape.push(n);
        }
        let mut full = batch.clone();
        full.extend([m, n]);
        ctx.check_shape(&full)?;
        ctx.check_work(&[full.iter().product(), k])?;
        // Zero points: scalar, per row of A (length M) or per column of B (length N).
        let zp = |t: Option<&Tensor>, len: usize, what: &str| -> KResult<Vec<i32>> {
            match t {
                None => Ok(vec![0; len]),
                Some(t) if t.data.len() == 1 => Ok(vec![i32s(t)[0]; len]),
                Some(t) if t.data.len() == len => Ok(i32s(t)),
                Some(t) => Err(inv(format!("{what} zero point of shape {:?} does not fit", t.shape))),
            }
        };
        let (az, bz) = (zp(get(1), m, "A")?, zp(get(3), n, "B")?);
        let (av, bv) = (i32s(a), i32s(b));
        let nb: usize = batch.iter().product();
        let ia = super::math_ops::bcast_index(&a_sh[..ra - 2], &batch);
        let ib = super::math_ops::bcast_index(&b_sh[..rb - 2], &batch);
        let mut acc = Vec::with_capacity(nb * m * n);
        for bi in 0..nb {
            let (ao, bo) = (ia[bi] * m * k, ib[bi] * k * n);
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0i32;
                    for kk in 0..k {
                        let x = av[ao + i * k + kk] - az[i];
                        let y = bv[bo + kk * n + j] - bz[j];
                        s = s.wrapping_add(x.wrapping_mul(y));
                    }
                    acc.push(s);
                }
            }
        }
        if !self.qlinear {
            return Ok(vec![Tensor { shape, data: TensorData::I32(acc) }]);
        }
        let scale = |k: usize, len: usize, what: &str| -> KResult<Vec<f32>> {
            let t = get(k).expect("req");
            let v = util::f32s(t);
            match v.len() {
                1 => Ok(vec![v[0]; len]),
                l if l == len => Ok(v.to_vec()),
                _ => Err(inv(format!("{what} of shape {:?} does not fit", t.shape))),
            }
        };
        let (sa, sb, sy) = (scale(4, m, "a_scale")?, scale(5, n, "b_scale")?, scale(6, 1, "y_scale")?);
        let yz_t = get(7).expect("req");
        if yz_t.data.len() != 1 {
            return Err(inv("y_zero_point must be a single value"));
        }
        let (yz, d) = (i32s(yz_t)[0], yz_t.dtype());
        let out: Vec<i32> = acc
            .iter()
            .enumerate()
            .map(|(p, &v)| {
                let (i, j) = ((p / n) % m, p % n);
                requantize(v, (sa[i] * sb[j]) / sy[0], yz, d)
            })
            .collect();
        Ok(vec![Tensor { shape, data: from_i32(d, out) }])
    }
}

impl Kernel for ConvInt {
    fn arity(&self) -> (usize, usize) {
        if self.qlinear { (8, 9) } else { (2, 4) }
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        if self.qlinear {
            let x = want(ins, 0, Q8, "x")?;
            let w = want(ins, 3, Q8, "w")?;
            want_opt(ins, 2, &[x], "x_zero_point")?;
            want_opt(ins, 5, &[w], "w_zero_point")?;
            for i in [1, 4, 6] {
                want(ins, i, &[DType::F32], "the scales")?;
            }
            want_opt(ins, 8, &[DType::I32], "B")?;
            return Ok(vec![want(ins, 7, Q8, "y_zero_point")?]);
        }
        let x = want(ins, 0, Q8, "x")?;
        let w = want(ins, 1, Q8, "w")?;
        want_opt(ins, 2, &[x], "x_zero_point")?;
        want_opt(ins, 3, &[w], "w_zero_point")?;
        Ok(vec![DType::I32])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let o = |i: usize| ins.get(i).copied().flatten();
        let (xi, xzi, wi, wzi) = if self.qlinear { (0, 2, 3, 5) } else { (0, 2, 1, 3) };
        let (x, w) = (o(xi).expect("req"), o(wi).expect("req"));
        if x.shape.len() < 3 || w.shape.len() != x.shape.len() {
            return Err(inv(format!("X {:?} and W {:?} must be [N, C, spatial...] of one rank", x.shape, w.shape)));
        }
        let (n, c) = (x.shape[0], x.shape[1]);
        let (m, cg) = (w.shape[0], w.shape[1]);
        let g = self.group;
        if cg == 0 || c != cg * g || m % g != 0 {
            return Err(inv(format!("X has {c} channels and W is {:?}, which does not fit group {g}", w.shape)));
        }
        let kernel = w.shape[2..].to_vec();
        if !self.win.kernel.is_empty() && self.win.kernel != kernel {
            return Err(inv("kernel_shape does not match W"));
        }
        let mut win = self.win.clone();
        win.kernel = kernel.clone();
        win.ceil_mode = false;
        let spatial = &x.shape[2..];
        let geo = super::nn::pool_geometry(&win, spatial)?;
        let mut shape = vec![n, m];
        shape.extend(&geo.out);
        ctx.check_shape(&shape)?;
        let q: usize = kernel.iter().product();
        let p: usize = geo.out.iter().product();
        let kc = cg * q;
        ctx.check_work(&[n, m, p, kc])?;
        let xz = o(xzi).map_or(0, |t| i32s(t)[0]);
        if o(xzi).is_some_and(|t| t.data.len() != 1) {
            return Err(inv("x_zero_point must be a single value"));
        }
        let wz: Vec<i32> = match o(wzi) {
            None => vec![0; m],
            Some(t) if t.data.len() == 1 => vec![i32s(t)[0]; m],
            Some(t) if t.data.len() == m => i32s(t),
            Some(t) => return Err(inv(format!("w_zero_point of shape {:?} does not fit {m} channels", t.shape))),
        };
        let (xv, wv) = (i32s(x), i32s(w));
        let in_sp: usize = spatial.iter().product();
        let r = spatial.len();
        let mg = m / g;
        let mut acc = Vec::with_capacity(n * m * p);
        let mut offs: Vec<Option<usize>> = vec![None; q];
        for ni in 0..n {
            #[allow(clippy::needless_range_loop)] // mo indexes the output channel in several arrays
            for mo in 0..m {
                let gi = mo / mg;
                let mut op = vec![0usize; r];
                for _ in 0..p {
                    let mut kk = vec![0usize; r];
                    for s in offs.iter_mut() {
                        let mut off = 0usize;
                        let mut ok = true;
                        for d in 0..r {
                            let pos = op[d] * geo.strides[d] + kk[d] * geo.dilations[d];
                            if pos < geo.pad_begin[d] || pos - geo.pad_begin[d] >= spatial[d] {
                                ok = false;
                                break;
                            }
                            off = off * spatial[d] + (pos - geo.pad_begin[d]);
                        }
                        *s = ok.then_some(off);
                        util::next_index(&mut kk, &kernel);
                    }
                    let mut sum = 0i32;
                    for ci in 0..cg {
                        let xb = (ni * c + gi * cg + ci) * in_sp;
                        let wb = (mo * cg + ci) * q;
                        for (kq, s) in offs.iter().enumerate() {
                            if let Some(s) = s {
                                let xv = xv[xb + s] - xz;
                                let wv = wv[wb + kq] - wz[mo];
                                sum = sum.wrapping_add(xv.wrapping_mul(wv));
                            }
                        }
                    }
                    acc.push(sum);
                    util::next_index(&mut op, &geo.out);
                }
            }
        }
        if !self.qlinear {
            return Ok(vec![Tensor { shape, data: TensorData::I32(acc) }]);
        }
        let one = |i: usize, what: &str| -> KResult<f32> {
            let v = util::f32s(o(i).expect("req"));
            if v.len() != 1 {
                return Err(inv(format!("{what} must be a single value")));
            }
            Ok(v[0])
        };
        let (sx, sy) = (one(1, "x_scale")?, one(6, "y_scale")?);
        let swv = util::f32s(o(4).expect("req"));
        let sw: Vec<f32> = match swv.len() {
            1 => vec![swv[0]; m],
            l if l == m => swv.to_vec(),
            _ => return Err(inv("w_scale does not fit the output channels")),
        };
        let bias: Vec<i32> = match o(8) {
            Some(t) if t.data.len() == m => i32s(t),
            Some(t) => return Err(inv(format!("B has shape {:?}, expected [{m}]", t.shape))),
            None => vec![0; m],
        };
        let yz_t = o(7).expect("req");
        if yz_t.data.len() != 1 {
            return Err(inv("y_zero_point must be a single value"));
        }
        let (yz, d) = (i32s(yz_t)[0], yz_t.dtype());
        let out: Vec<i32> = acc
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let mo = (i / p.max(1)) % m;
                requantize(v.wrapping_add(bias[mo]), (sx * sw[mo]) / sy, yz, d)
            })
            .collect();
        Ok(vec![Tensor { shape, data: from_i32(d, out) }])
    }
}

//! Elementwise math beyond the four arithmetic operators: unary functions (Erf, Log,
//! Sqrt, Abs, Neg, activations, ...), comparisons and logic (bool results), Pow, Mod,
//! BitShift, Where, Clip, CastLike, PRelu, and the variadic Min, Max, Sum, Mean.
//!
//! **Order and rounding** (part of the engine spec): each output element depends only on
//! its own input elements. Exact IEEE operations (`Abs`, `Neg`, `Sqrt`, `Floor`, `Ceil`,
//! `Round` — half to even —, `Reciprocal` = `1 / x`, comparisons) work in the input's
//! float type. Transcendental functions take the f32 input to f64, run the engine's own
//! f64 cores from [`math`] and round once to f32 (float64 inputs to them are
//! refused at load). Where an activation has the form `a·x + b` it is one `fma`.
//! Formulas, with `x` the f64 value:
//! - `Erf`: `erf64(x)`; `Log`: `log`; `Softplus`: `x > 30 ⇒ x`, `x < −30 ⇒ exp(x)`, else
//!   `log1p64(exp64(x))`; `Softsign`: `x / (1 + |x|)` in f32;
//! - `Elu`: `x < 0 ⇒ alpha·expm1_64(x)`; `Selu`: `x > 0 ⇒ gamma·x`, else
//!   `gamma·(alpha·expm1_64(x))`; `Celu`: `max(0,x) + min(0, alpha·expm1_64(x/alpha))`;
//! - `Gelu` (`approximate = "none"`): `0.5·x·(1 + erf64(x/√2))`; (`"tanh"`):
//!   `0.5·x·(1 + tanh64(√(2/π)·(x + 0.044715·x³)))`; `Mish`: `x·tanh64(softplus(x))`;
//! - `HardSigmoid`: `max(0, min(1, fma(alpha, x, beta)))` in f32; `HardSwish`:
//!   `x · HardSigmoid(x)` with alpha = 1/6, beta = 0.5;
//! - `LeakyRelu`: `x < 0 ⇒ alpha·x` (f32); `ThresholdedRelu`: `x > alpha ⇒ x`, else 0;
//! - `PRelu`: `x < 0 ⇒ slope·x`, slope broadcast to x;
//! - `Pow` (f32 base): [`math::pow`] with the exponent converted to f32
//!   (as `as` does); integer base: exact repeated squaring with wrapping, a negative
//!   exponent gives `1/x^n` truncated (so 0 unless |x| = 1), `0^−n` is an error;
//! - `Min`/`Max`: NaN if either operand is NaN, else the smaller/larger (for ±0 the
//!   first operand wins); `Sum`: the inputs added left to right, broadcast one pair at
//!   a time; `Mean`: that sum divided by the input count;
//! - `Mod` (fmod = 0): the sign of the divisor (integers; floats `x − y·floor(x/y)` is
//!   not used: ONNX requires fmod = 1 for floats, giving C `fmod`, computed exactly as
//!   `x − trunc(x/y)·y` corrected to the exact remainder by IEEE `%`);
//! - `Clip`: `max(min_value, min(max_value, x))` in that order (NaN stays NaN).

use super::elementwise::broadcast_shape;
use super::util::{self, inv, map_same, names, want, want_opt};
use super::{Ctx, KResult, Kernel, attr::Attrs};
use crate::LoadError;
use crate::kernels::{self, KernelPath};
use crate::math;
use deed_types::{DType, Tensor, TensorData};
use std::sync::Arc;

/// Unary function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum U {
    Abs,
    Neg,
    Sign,
    Sqrt,
    Reciprocal,
    Floor,
    Ceil,
    Round,
    Erf,
    Log,
    Softplus,
    Softsign,
    Elu(f32),
    Selu(f32, f32),
    Celu(f32),
    Mish,
    HardSigmoid(f32, f32),
    HardSwish,
    ThresholdedRelu(f32),
    LeakyRelu(f32),
    Gelu { tanh: bool },
    IsNaN,
    IsInf { pos: bool, neg: bool },
    Not,
}

impl U {
    /// Exact IEEE operations, which also run on float64 (and, for some, integers).
    fn exact(self) -> bool {
        matches!(self, U::Abs | U::Neg | U::Sign | U::Sqrt | U::Reciprocal | U::Floor | U::Ceil | U::Round)
    }
}

/// Binary (broadcast) operator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum B {
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    And,
    Or,
    Xor,
    Pow,
    Mod { fmod: bool },
    BitShift { left: bool },
    PRelu,
}

/// Variadic operator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum V {
    Min,
    Max,
    Sum,
    Mean,
}

#[derive(Debug)]
struct Unary(U);
#[derive(Debug)]
struct Binary(B);
#[derive(Debug)]
struct Variadic(V);
#[derive(Debug)]
struct Where;
#[derive(Debug)]
struct CastLike;
#[derive(Debug)]
struct Clip {
    /// Attribute bounds (opset < 11).
    attr: Option<(f32, f32)>,
}

/// Parses the operators of this module.
pub(crate) fn parse(op: &str, opset: i64, a: &Attrs<'_>) -> Result<Option<Arc<dyn Kernel>>, LoadError> {
    let u = |u: U| -> Result<Option<Arc<dyn Kernel>>, LoadError> { Ok(Some(Arc::new(Unary(u)))) };
    let b = |b: B| -> Result<Option<Arc<dyn Kernel>>, LoadError> { Ok(Some(Arc::new(Binary(b)))) };
    let v = |v: V| -> Result<Option<Arc<dyn Kernel>>, LoadError> { Ok(Some(Arc::new(Variadic(v)))) };
    match op {
        "Abs" => u(U::Abs),
        "Neg" => u(U::Neg),
        "Sign" => u(U::Sign),
        "Sqrt" => u(U::Sqrt),
        "Reciprocal" => u(U::Reciprocal),
        "Floor" => u(U::Floor),
        "Ceil" => u(U::Ceil),
        "Round" => u(U::Round),
        "Erf" => u(U::Erf),
        "Log" => u(U::Log),
        "Softplus" => u(U::Softplus),
        "Softsign" => u(U::Softsign),
        "Elu" => u(U::Elu(a.float("alpha", 1.0)?)),
        "Selu" => u(U::Selu(a.float("alpha", 1.673_263_2)?, a.float("gamma", 1.050_701)?)),
        "Celu" => {
            let alpha = a.float("alpha", 1.0)?;
            if alpha == 0.0 {
                return Err(a.invalid("Celu alpha must not be 0"));
            }
            u(U::Celu(alpha))
        }
        "Mish" => u(U::Mish),
        "HardSigmoid" => u(U::HardSigmoid(a.float("alpha", 0.2)?, a.float("beta", 0.5)?)),
        "HardSwish" => u(U::HardSwish),
        "ThresholdedRelu" => u(U::ThresholdedRelu(a.float("alpha", 1.0)?)),
        "LeakyRelu" => u(U::LeakyRelu(a.float("alpha", 0.01)?)),
        "Gelu" => {
            let ap = a.string("approximate", "none")?;
            match ap.as_str() {
                "none" => u(U::Gelu { tanh: false }),
                "tanh" => u(U::Gelu { tanh: true }),
                _ => Err(a.invalid(format!("Gelu approximate '{ap}' is neither 'none' nor 'tanh'"))),
            }
        }
        "IsNaN" => u(U::IsNaN),
        "IsInf" => u(U::IsInf { pos: a.int("detect_positive", 1)? != 0, neg: a.int("detect_negative", 1)? != 0 }),
        "Not" => u(U::Not),
        "Equal" => b(B::Equal),
        "Less" => b(B::Less),
        "Greater" => b(B::Greater),
        "LessOrEqual" => b(B::LessOrEqual),
        "GreaterOrEqual" => b(B::GreaterOrEqual),
        "And" => b(B::And),
        "Or" => b(B::Or),
        "Xor" => b(B::Xor),
        "Pow" => b(B::Pow),
        "Mod" => b(B::Mod { fmod: a.int("fmod", 0)? != 0 }),
        "BitShift" => {
            let d = a.string("direction", "")?;
            match d.as_str() {
                "LEFT" => b(B::BitShift { left: true }),
                "RIGHT" => b(B::BitShift { left: false }),
                _ => Err(a.invalid(format!("BitShift direction '{d}' is neither LEFT nor RIGHT"))),
            }
        }
        "PRelu" => b(B::PRelu),
        "Min" => v(V::Min),
        "Max" => v(V::Max),
        "Sum" => v(V::Sum),
        "Mean" => v(V::Mean),
        "Where" => Ok(Some(Arc::new(Where))),
        "CastLike" => Ok(Some(Arc::new(CastLike))),
        "Clip" => {
            let attr = if opset < 11 {
                Some((a.float("min", f32::NEG_INFINITY)?, a.float("max", f32::INFINITY)?))
            } else {
                None
            };
            Ok(Some(Arc::new(Clip { attr })))
        }
        _ => Ok(None),
    }
}

/// For every element of `out_shape` (row-major), the flat index into a tensor of
/// `shape` broadcast to it. The reference for every n-ary broadcast here.
pub(crate) fn bcast_index(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let n: usize = out_shape.iter().product();
    let st = super::elementwise::broadcast_strides(shape, out_shape);
    let mut idx = vec![0usize; out_shape.len()];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(idx.iter().zip(&st).map(|(i, s)| i * s).sum());
        util::next_index(&mut idx, out_shape);
    }
    out
}

fn bshape(a: &[usize], b: &[usize], ctx: &Ctx<'_>) -> KResult<Vec<usize>> {
    let s = broadcast_shape(a, b).ok_or_else(|| inv(format!("shapes {a:?} and {b:?} do not broadcast together")))?;
    ctx.check_shape(&s)?;
    Ok(s)
}

/// Elements per thread below which a unary op stays on one thread: transcendental
/// functions cost about 10–50 ns per element, the exact ones about one, and a thread should
/// get a fraction of a millisecond of work (starting one costs tens of microseconds on an
/// idle machine and can wait milliseconds for a core on a busy one). Small in tests, so
/// that they run threaded.
const UNARY_PAR_MIN: usize = if cfg!(test) { 1 << 10 } else { 1 << 15 };
const UNARY_PAR_MIN_CHEAP: usize = if cfg!(test) { 1 << 10 } else { 1 << 18 };

/// A float32 unary op over `x`: elementwise, so threads split the elements. On every path
/// but `reference`, Erf and exact Gelu go through [`erf_many`] (a table approximation
/// where a proven error bound settles the f32 bits, the erf series on many elements at
/// once for the rest); the result is the same bits as [`unary_f32`] per element.
fn unary_f32_many(op: U, x: &[f32], ctx: &Ctx<'_>) -> Vec<f32> {
    let cheap = op.exact()
        || matches!(op, U::Softsign | U::HardSigmoid(..) | U::HardSwish | U::ThresholdedRelu(_) | U::LeakyRelu(_));
    let mut out = vec![0.0f32; x.len()];
    let batched = ctx.kernels != KernelPath::Reference && matches!(op, U::Erf | U::Gelu { tanh: false });
    let min = if cheap { UNARY_PAR_MIN_CHEAP } else { UNARY_PAR_MIN };
    util::par_chunks(&mut out, ctx.threads, min, |off, o| {
        let xs = &x[off..off + o.len()];
        if batched {
            kernels::with_fma(ctx.kernels, ErfMany { erf: op == U::Erf, x: xs, out: o, path: ctx.kernels });
        } else {
            kernels::with_fma(ctx.kernels, UnaryLoop { op, x: xs, out: o });
        }
    });
    out
}

/// `out[i] = unary_f32(op, x[i])`, as [`kernels::FmaWork`]: on the fast paths the math
/// functions' `mul_add`s are single instructions (the same bits as the runtime's `fma`).
struct UnaryLoop<'a> {
    op: U,
    x: &'a [f32],
    out: &'a mut [f32],
}

impl kernels::FmaWork for UnaryLoop<'_> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        for (y, &v) in self.out.iter_mut().zip(self.x) {
            *y = unary_f32(self.op, v);
        }
    }
}

/// [`erf_many`] as [`kernels::FmaWork`], so that its conversion loops are compiled for the
/// path's vector width.
struct ErfMany<'a> {
    erf: bool,
    x: &'a [f32],
    out: &'a mut [f32],
    path: KernelPath,
}

impl kernels::FmaWork for ErfMany<'_> {
    /// The number of elements that needed the series.
    type Out = usize;
    #[inline(always)]
    fn run(self) -> usize {
        erf_many(self.erf, self.x, self.out, self.path)
    }
}

/// `out[i] = unary_f32(Erf or Gelu, x[i])` (`erf`: Erf, else exact Gelu) by
/// [`kernels::erf_f32_many`]: a table approximation where it provably gives the same bits,
/// the erf64 series for the rest. Returns the number of elements that needed the series.
#[inline(always)]
fn erf_many(erf: bool, x: &[f32], out: &mut [f32], path: KernelPath) -> usize {
    kernels::erf_f32_many(path, erf, x, out)
}

#[inline(always)]
fn softplus64(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else if x < -30.0 {
        math::exp64_any(x)
    } else {
        math::log1p64(math::exp64_any(x))
    }
}

#[inline(always)]
fn expm1_64(x: f64) -> f64 {
    // The f32 expm1 evaluates in f64; reuse its core through exp64_any for the tails.
    if x < -40.0 { -1.0 } else { math::exp64_any(x) - 1.0 }
}

#[inline(always)]
fn unary_f32(op: U, x: f32) -> f32 {
    let d = x as f64;
    match op {
        U::Abs => x.abs(),
        U::Neg => -x,
        U::Sign => {
            if x.is_nan() {
                x
            } else if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        U::Sqrt => x.sqrt(),
        U::Reciprocal => 1.0 / x,
        U::Floor => x.floor(),
        U::Ceil => x.ceil(),
        U::Round => x.round_ties_even(),
        U::Erf => math::erf(x),
        U::Log => math::log(x),
        U::Softplus => {
            if x.is_nan() {
                x
            } else {
                softplus64(d) as f32
            }
        }
        U::Softsign => x / (1.0 + x.abs()),
        U::Elu(alpha) => {
            if x < 0.0 {
                alpha * math::expm1(x)
            } else {
                x
            }
        }
        U::Selu(alpha, gamma) => {
            if x > 0.0 {
                gamma * x
            } else if x.is_nan() {
                x
            } else {
                (gamma as f64 * (alpha as f64 * small_expm1(d))) as f32
            }
        }
        U::Celu(alpha) => {
            if x.is_nan() {
                return x;
            }
            let neg = (alpha as f64 * small_expm1(d / alpha as f64)).min(0.0);
            (d.max(0.0) + neg) as f32
        }
        U::Mish => {
            if x.is_nan() {
                x
            } else {
                (d * math::tanh64(softplus64(d))) as f32
            }
        }
        U::HardSigmoid(alpha, beta) => alpha.mul_add(x, beta).clamp(0.0, 1.0),
        U::HardSwish => x * (1.0f32 / 6.0).mul_add(x, 0.5).clamp(0.0, 1.0),
        U::ThresholdedRelu(alpha) => {
            if x > alpha {
                x
            } else {
                0.0
            }
        }
        U::LeakyRelu(alpha) => {
            if x < 0.0 {
                alpha * x
            } else {
                x
            }
        }
        U::Gelu { tanh } => {
            if x.is_nan() {
                return x;
            }
            let inner = if tanh {
                const C: f64 = 0.797_884_560_802_865_4; // √(2/π)
                math::tanh64(C * (0.044_715 * d * d).mul_add(d, d))
            } else {
                math::erf64(d * std::f64::consts::FRAC_1_SQRT_2)
            };
            (0.5 * d * (1.0 + inner)) as f32
        }
        U::IsNaN | U::IsInf { .. } | U::Not => unreachable!("bool-valued ops handled separately"),
    }
}

/// eˣ − 1 in f64 over the whole line (0 → 0 exactly, small x accurate).
fn small_expm1(x: f64) -> f64 {
    if x.abs() <= 50.0 { math::expm1(x as f32) as f64 } else { expm1_64(x) }
}

impl Kernel for Unary {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }

    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        let op = self.0;
        let d = util::dt(ins, 0)?;
        let ok = match op {
            U::Not => d == DType::Bool,
            U::Abs | U::Neg | U::Sign => util::NUMERIC.contains(&d),
            U::IsNaN | U::IsInf { .. } => d == DType::F32 || d == DType::F64,
            _ if op.exact() => util::is_float(d),
            _ => d == DType::F32,
        };
        if !ok {
            return Err(format!("{op:?} does not support inputs {}", names(ins)));
        }
        Ok(vec![match op {
            U::IsNaN | U::IsInf { .. } => DType::Bool,
            _ => d,
        }])
    }

    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("required");
        let op = self.0;
        let data = match (&x.data, op) {
            (TensorData::Bool(v), U::Not) => TensorData::Bool(v.iter().map(|&b| !b).collect()),
            (TensorData::F32(v), U::IsNaN) => TensorData::Bool(v.iter().map(|x| x.is_nan()).collect()),
            (TensorData::F64(v), U::IsNaN) => TensorData::Bool(v.iter().map(|x| x.is_nan()).collect()),
            (TensorData::F32(v), U::IsInf { pos, neg }) => TensorData::Bool(
                v.iter().map(|&x| (pos && x == f32::INFINITY) || (neg && x == f32::NEG_INFINITY)).collect(),
            ),
            (TensorData::F64(v), U::IsInf { pos, neg }) => TensorData::Bool(
                v.iter().map(|&x| (pos && x == f64::INFINITY) || (neg && x == f64::NEG_INFINITY)).collect(),
            ),
            (TensorData::F32(v), op) => TensorData::F32(unary_f32_many(op, v, ctx)),
            (TensorData::F64(v), op) => TensorData::F64(
                v.iter()
                    .map(|&x| match op {
                        U::Abs => x.abs(),
                        U::Neg => -x,
                        U::Sign => {
                            if x.is_nan() {
                                x
                            } else if x > 0.0 {
                                1.0
                            } else if x < 0.0 {
                                -1.0
                            } else {
                                0.0
                            }
                        }
                        U::Sqrt => x.sqrt(),
                        U::Reciprocal => 1.0 / x,
                        U::Floor => x.floor(),
                        U::Ceil => x.ceil(),
                        U::Round => x.round_ties_even(),
                        _ => unreachable!("float64 {op:?} refused at load"),
                    })
                    .collect(),
            ),
            (d, op) => int_unary(d, op),
        };
        Ok(vec![Tensor { shape: x.shape.clone(), data }])
    }
}

fn int_unary(d: &TensorData, op: U) -> TensorData {
    macro_rules! signed {
        ($v:expr) => {
            $v.iter()
                .map(|&x| match op {
                    U::Abs => x.wrapping_abs(),
                    U::Neg => x.wrapping_neg(),
                    _ => x.signum(),
                })
                .collect()
        };
    }
    macro_rules! unsigned {
        ($v:expr) => {
            $v.iter()
                .map(|&x| match op {
                    U::Abs => x,
                    U::Neg => x.wrapping_neg(),
                    _ => (x != 0) as _,
                })
                .collect()
        };
    }
    match d {
        TensorData::I8(v) => TensorData::I8(signed!(v)),
        TensorData::I16(v) => TensorData::I16(signed!(v)),
        TensorData::I32(v) => TensorData::I32(signed!(v)),
        TensorData::I64(v) => TensorData::I64(signed!(v)),
        TensorData::U8(v) => TensorData::U8(unsigned!(v)),
        TensorData::U16(v) => TensorData::U16(unsigned!(v)),
        TensorData::U32(v) => TensorData::U32(unsigned!(v)),
        TensorData::U64(v) => TensorData::U64(unsigned!(v)),
        d => unreachable!("{op:?} on {:?} refused at load", d.dtype()),
    }
}

/// Compares broadcast elements of two same-dtype tensors.
fn compare(op: B, a: &Tensor, b: &Tensor, shape: &[usize]) -> Vec<bool> {
    let (ia, ib) = (bcast_index(&a.shape, shape), bcast_index(&b.shape, shape));
    macro_rules! cmp {
        ($x:expr, $y:expr) => {
            ia.iter()
                .zip(&ib)
                .map(|(&i, &j)| {
                    let (p, q) = ($x[i], $y[j]);
                    match op {
                        B::Equal => p == q,
                        B::Less => p < q,
                        B::Greater => p > q,
                        B::LessOrEqual => p <= q,
                        B::GreaterOrEqual => p >= q,
                        _ => unreachable!(),
                    }
                })
                .collect()
        };
    }
    match (&a.data, &b.data) {
        (TensorData::F32(x), TensorData::F32(y)) => cmp!(x, y),
        (TensorData::F64(x), TensorData::F64(y)) => cmp!(x, y),
        (TensorData::I8(x), TensorData::I8(y)) => cmp!(x, y),
        (TensorData::U8(x), TensorData::U8(y)) => cmp!(x, y),
        (TensorData::I16(x), TensorData::I16(y)) => cmp!(x, y),
        (TensorData::U16(x), TensorData::U16(y)) => cmp!(x, y),
        (TensorData::I32(x), TensorData::I32(y)) => cmp!(x, y),
        (TensorData::U32(x), TensorData::U32(y)) => cmp!(x, y),
        (TensorData::I64(x), TensorData::I64(y)) => cmp!(x, y),
        (TensorData::U64(x), TensorData::U64(y)) => cmp!(x, y),
        (TensorData::Bool(x), TensorData::Bool(y)) => cmp!(x, y),
        _ => unreachable!("compare dtypes checked at load"),
    }
}

/// Integer power with wrapping; `None` for 0 to a negative power.
fn ipow(x: i64, y: i64) -> Option<i64> {
    if y < 0 {
        return match x {
            0 => None,
            1 => Some(1),
            -1 => Some(if y % 2 == 0 { 1 } else { -1 }),
            _ => Some(0),
        };
    }
    let (mut base, mut e, mut acc) = (x, y as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    Some(acc)
}

/// Elements of any numeric tensor as f64 (for Pow exponents).
fn as_f64(d: &TensorData) -> Vec<f64> {
    match d {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::I8(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I16(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U16(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
    }
}

/// Elements of an integer tensor as i64 (u64 wraps).
fn as_i64(d: &TensorData) -> Vec<i64> {
    match d {
        TensorData::I8(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::I16(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::U16(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::U32(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::I64(v) => v.clone(),
        TensorData::U64(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::F32(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::F64(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| x as i64).collect(),
    }
}

impl Kernel for Binary {
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }

    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        use DType::*;
        let (a, b) = (util::dt(ins, 0)?, util::dt(ins, 1)?);
        let same = || if a == b { Ok(()) } else { Err(format!("inputs have different dtypes: {}", names(ins))) };
        Ok(vec![match self.0 {
            B::Equal | B::Less | B::Greater | B::LessOrEqual | B::GreaterOrEqual => {
                same()?;
                if a == Bool && self.0 != B::Equal {
                    return Err(format!("{:?} does not compare bool tensors", self.0));
                }
                Bool
            }
            B::And | B::Or | B::Xor => {
                same()?;
                want(ins, 0, &[Bool], "the inputs")?
            }
            B::Pow => {
                want(ins, 0, &[F32, I32, I64], "the base")?;
                want(ins, 1, util::NUMERIC, "the exponent")?;
                a
            }
            B::Mod { fmod } => {
                same()?;
                want(ins, 0, util::NUMERIC, "the inputs")?;
                if util::is_float(a) && !fmod {
                    return Err("Mod on floats needs fmod = 1".into());
                }
                if a == F64 {
                    return Err("Mod on float64 is not supported".into());
                }
                a
            }
            B::BitShift { .. } => {
                same()?;
                want(ins, 0, &[U8, U16, U32, U64], "the inputs")?
            }
            B::PRelu => {
                same()?;
                want(ins, 0, &[F32], "the inputs")?
            }
        }])
    }

    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (a, b) = (ins[0].expect("required"), ins[1].expect("required"));
        let shape = if self.0 == B::PRelu {
            // Unidirectional: the slope broadcasts to X.
            let s = bshape(&a.shape, &b.shape, ctx)?;
            if s != a.shape {
                return Err(inv(format!("slope {:?} does not broadcast to X {:?}", b.shape, a.shape)));
            }
            s
        } else {
            bshape(&a.shape, &b.shape, ctx)?
        };
        let (ia, ib) = (bcast_index(&a.shape, &shape), bcast_index(&b.shape, &shape));
        let data = match self.0 {
            B::Equal | B::Less | B::Greater | B::LessOrEqual | B::GreaterOrEqual => {
                TensorData::Bool(compare(self.0, a, b, &shape))
            }
            B::And | B::Or | B::Xor => {
                let (TensorData::Bool(x), TensorData::Bool(y)) = (&a.data, &b.data) else { unreachable!() };
                TensorData::Bool(
                    ia.iter()
                        .zip(&ib)
                        .map(|(&i, &j)| match self.0 {
                            B::And => x[i] && y[j],
                            B::Or => x[i] || y[j],
                            _ => x[i] ^ y[j],
                        })
                        .collect(),
                )
            }
            B::PRelu => {
                let (x, s) = (util::f32s(a), util::f32s(b));
                TensorData::F32(
                    ia.iter().zip(&ib).map(|(&i, &j)| if x[i] < 0.0 { s[j] * x[i] } else { x[i] }).collect(),
                )
            }
            B::Pow => match &a.data {
                TensorData::F32(x) => {
                    let y: Vec<f32> = match &b.data {
                        TensorData::F32(y) => y.clone(),
                        d => as_f64(d).into_iter().map(|v| v as f32).collect(),
                    };
                    TensorData::F32(ia.iter().zip(&ib).map(|(&i, &j)| math::pow(x[i], y[j])).collect())
                }
                d => {
                    let x = as_i64(d);
                    let y: Vec<i64> = match &b.data {
                        TensorData::F32(_) | TensorData::F64(_) => {
                            let f = as_f64(&b.data);
                            if f.iter().any(|v| v.trunc() != *v) {
                                return Err(inv("integer Pow with a non-integer exponent"));
                            }
                            f.into_iter().map(|v| v as i64).collect()
                        }
                        other => as_i64(other),
                    };
                    let r: Vec<i64> = ia
                        .iter()
                        .zip(&ib)
                        .map(|(&i, &j)| ipow(x[i], y[j]).ok_or_else(|| inv("0 to a negative power")))
                        .collect::<KResult<_>>()?;
                    match d {
                        TensorData::I32(_) => TensorData::I32(r.into_iter().map(|v| v as i32).collect()),
                        _ => TensorData::I64(r),
                    }
                }
            },
            B::Mod { fmod } => {
                macro_rules! imod {
                    ($x:expr, $y:expr) => {{
                        if $y.iter().any(|&v| v == 0) && !shape.is_empty() && !ia.is_empty() {
                            return Err(inv("Mod by zero"));
                        }
                        ia.iter()
                            .zip(&ib)
                            .map(|(&i, &j)| {
                                let r = $x[i].wrapping_rem($y[j]);
                                #[allow(unused_comparisons)]
                                let fix = !fmod && r != 0 && ((r < 0) != ($y[j] < 0));
                                if fix { r.wrapping_add($y[j]) } else { r }
                            })
                            .collect()
                    }};
                }
                match (&a.data, &b.data) {
                    (TensorData::F32(x), TensorData::F32(y)) => {
                        TensorData::F32(ia.iter().zip(&ib).map(|(&i, &j)| x[i] % y[j]).collect())
                    }
                    (TensorData::I8(x), TensorData::I8(y)) => TensorData::I8(imod!(x, y)),
                    (TensorData::I16(x), TensorData::I16(y)) => TensorData::I16(imod!(x, y)),
                    (TensorData::I32(x), TensorData::I32(y)) => TensorData::I32(imod!(x, y)),
                    (TensorData::I64(x), TensorData::I64(y)) => TensorData::I64(imod!(x, y)),
                    (TensorData::U8(x), TensorData::U8(y)) => TensorData::U8(imod!(x, y)),
                    (TensorData::U16(x), TensorData::U16(y)) => TensorData::U16(imod!(x, y)),
                    (TensorData::U32(x), TensorData::U32(y)) => TensorData::U32(imod!(x, y)),
                    (TensorData::U64(x), TensorData::U64(y)) => TensorData::U64(imod!(x, y)),
                    _ => unreachable!("Mod dtypes checked at load"),
                }
            }
            B::BitShift { left } => {
                macro_rules! sh {
                    ($x:expr, $y:expr, $bits:expr) => {
                        ia.iter()
                            .zip(&ib)
                            .map(|(&i, &j)| {
                                let s = $y[j] as u64;
                                if s >= $bits {
                                    0
                                } else if left {
                                    $x[i] << s
                                } else {
                                    $x[i] >> s
                                }
                            })
                            .collect()
                    };
                }
                match (&a.data, &b.data) {
                    (TensorData::U8(x), TensorData::U8(y)) => TensorData::U8(sh!(x, y, 8)),
                    (TensorData::U16(x), TensorData::U16(y)) => TensorData::U16(sh!(x, y, 16)),
                    (TensorData::U32(x), TensorData::U32(y)) => TensorData::U32(sh!(x, y, 32)),
                    (TensorData::U64(x), TensorData::U64(y)) => TensorData::U64(sh!(x, y, 64)),
                    _ => unreachable!("BitShift dtypes checked at load"),
                }
            }
        };
        Ok(vec![Tensor { shape, data }])
    }
}

fn fmin<T: PartialOrd + Copy>(p: T, q: T, max: bool) -> T {
    // NaN is the only value not equal to itself.
    #[allow(clippy::eq_op)]
    if p != p {
        return p;
    }
    #[allow(clippy::eq_op)]
    if q != q {
        return q;
    }
    if max {
        if q > p { q } else { p }
    } else if q < p {
        q
    } else {
        p
    }
}

impl Kernel for Variadic {
    fn arity(&self) -> (usize, usize) {
        (1, usize::MAX)
    }

    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        let d = util::dt(ins, 0)?;
        for i in 0..ins.len() {
            util::dt(ins, i)?;
            util::same(ins, 0, i)?;
        }
        match self.0 {
            V::Min | V::Max => want(ins, 0, util::NUMERIC, "the inputs")?,
            V::Sum | V::Mean => want(ins, 0, &[DType::F32, DType::F64], "the inputs")?,
        };
        Ok(vec![d])
    }

    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let first = ins[0].expect("required");
        let mut acc = first.clone();
        for t in ins[1..].iter().map(|t| t.expect("all inputs present")) {
            let shape = bshape(&acc.shape, &t.shape, ctx)?;
            let (ia, ib) = (bcast_index(&acc.shape, &shape), bcast_index(&t.shape, &shape));
            macro_rules! go {
                ($($var:ident),*) => {
                    match (&acc.data, &t.data) {
                        $((TensorData::$var(x), TensorData::$var(y)) => TensorData::$var(
                            ia.iter().zip(&ib).map(|(&i, &j)| match self.0 {
                                V::Min => fmin(x[i], y[j], false),
                                V::Max => fmin(x[i], y[j], true),
                                V::Sum | V::Mean => add(x[i], y[j]),
                            }).collect()
                        ),)*
                        _ => unreachable!("variadic dtypes checked at load"),
                    }
                };
            }
            let data = go!(F32, F64, I8, U8, I16, U16, I32, U32, I64, U64);
            acc = Tensor { shape, data };
        }
        if self.0 == V::Mean {
            let n = ins.len();
            acc.data = match acc.data {
                TensorData::F32(v) => TensorData::F32(v.into_iter().map(|x| x / n as f32).collect()),
                TensorData::F64(v) => TensorData::F64(v.into_iter().map(|x| x / n as f64).collect()),
                _ => unreachable!("Mean dtypes checked at load"),
            };
        }
        Ok(vec![acc])
    }
}

/// `+` for the variadic Sum (wrapping for integers, which only reach here in Min/Max).
trait AddW: Copy {
    fn addw(self, o: Self) -> Self;
}
macro_rules! addw_int { ($($t:ty),*) => {$(impl AddW for $t { fn addw(self, o: Self) -> Self { self.wrapping_add(o) } })*}; }
addw_int!(i8, u8, i16, u16, i32, u32, i64, u64);
impl AddW for f32 {
    fn addw(self, o: Self) -> Self {
        self + o
    }
}
impl AddW for f64 {
    fn addw(self, o: Self) -> Self {
        self + o
    }
}
fn add<T: AddW>(a: T, b: T) -> T {
    a.addw(b)
}

impl Kernel for Where {
    fn arity(&self) -> (usize, usize) {
        (3, 3)
    }

    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, &[DType::Bool], "the condition")?;
        util::same(ins, 1, 2)?;
        Ok(vec![util::dt(ins, 1)?])
    }

    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (c, x, y) = (ins[0].expect("req"), ins[1].expect("req"), ins[2].expect("req"));
        let s1 = bshape(&c.shape, &x.shape, ctx)?;
        let shape = bshape(&s1, &y.shape, ctx)?;
        let (ic, ix, iy) =
            (bcast_index(&c.shape, &shape), bcast_index(&x.shape, &shape), bcast_index(&y.shape, &shape));
        let TensorData::Bool(cv) = &c.data else { unreachable!("checked at load") };
        // Gather from the concatenation [x; y].
        let both = util::concat_data(x.dtype(), &[&x.data, &y.data]);
        let nx = x.data.len();
        let idx: Vec<usize> = (0..ic.len()).map(|k| if cv[ic[k]] { ix[k] } else { nx + iy[k] }).collect();
        Ok(vec![Tensor { shape, data: util::take(&both, &idx) }])
    }
}

impl Kernel for CastLike {
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }

    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        util::dt(ins, 0)?;
        Ok(vec![util::dt(ins, 1)?])
    }

    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (x, t) = (ins[0].expect("req"), ins[1].expect("req"));
        Ok(vec![super::shape::cast(x, t.dtype())])
    }
}

impl Kernel for Clip {
    fn arity(&self) -> (usize, usize) {
        if self.attr.is_some() { (1, 1) } else { (1, 3) }
    }

    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        let d = want(ins, 0, util::NUMERIC, "the input")?;
        if self.attr.is_some() && d != DType::F32 {
            return Err("Clip before opset 11 takes float32 only".into());
        }
        want_opt(ins, 1, &[d], "min")?;
        want_opt(ins, 2, &[d], "max")?;
        Ok(vec![d])
    }

    fn run(&self, ins: &[Option<&Tensor>], _ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let bound = |i: usize| -> KResult<Option<&Tensor>> {
            match ins.get(i).copied().flatten() {
                Some(t) if t.data.len() != 1 => {
                    Err(inv(format!("Clip bound must be a single value, got {:?}", t.shape)))
                }
                t => Ok(t),
            }
        };
        let (lo, hi) = (bound(1)?, bound(2)?);
        macro_rules! clip {
            ($v:expr, $var:ident, $lo:expr, $hi:expr) => {{
                let lo = lo.map(|t| match &t.data {
                    TensorData::$var(b) => b[0],
                    _ => unreachable!(),
                });
                let hi = hi.map(|t| match &t.data {
                    TensorData::$var(b) => b[0],
                    _ => unreachable!(),
                });
                let (lo, hi) = (lo.unwrap_or($lo), hi.unwrap_or($hi));
                TensorData::$var(
                    $v.iter()
                        .map(|&x| {
                            let y = if x < lo { lo } else { x };
                            if y > hi { hi } else { y }
                        })
                        .collect(),
                )
            }};
        }
        let data = match (&x.data, self.attr) {
            (TensorData::F32(v), Some((lo, hi))) => TensorData::F32(
                v.iter()
                    .map(|&x| {
                        let y = if x < lo { lo } else { x };
                        if y > hi { hi } else { y }
                    })
                    .collect(),
            ),
            (TensorData::F32(v), None) => clip!(v, F32, f32::NEG_INFINITY, f32::INFINITY),
            (TensorData::F64(v), None) => clip!(v, F64, f64::NEG_INFINITY, f64::INFINITY),
            (TensorData::I8(v), None) => clip!(v, I8, i8::MIN, i8::MAX),
            (TensorData::U8(v), None) => clip!(v, U8, u8::MIN, u8::MAX),
            (TensorData::I16(v), None) => clip!(v, I16, i16::MIN, i16::MAX),
            (TensorData::U16(v), None) => clip!(v, U16, u16::MIN, u16::MAX),
            (TensorData::I32(v), None) => clip!(v, I32, i32::MIN, i32::MAX),
            (TensorData::U32(v), None) => clip!(v, U32, u32::MIN, u32::MAX),
            (TensorData::I64(v), None) => clip!(v, I64, i64::MIN, i64::MAX),
            (TensorData::U64(v), None) => clip!(v, U64, u64::MIN, u64::MAX),
            _ => unreachable!("Clip dtypes checked at load"),
        };
        Ok(vec![Tensor { shape: x.shape.clone(), data }])
    }
}

#[allow(dead_code)]
fn _uses(d: &TensorData) -> TensorData {
    map_same!(d, v => v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn run(k: &dyn Kernel, ins: &[&Tensor]) -> Tensor {
        let l = Limits::default();
        let ctx = Ctx { limits: &l, threads: 1, kernels: crate::kernels::KernelPath::Reference };
        let ins: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        k.run(&ins, &ctx).unwrap().remove(0)
    }

    /// f32 inputs for the unary ops: random bits, a dense stretch of (−7, 7), and edges.
    fn unary_inputs(len: usize) -> Vec<f32> {
        let r2 = 4.0 * std::f32::consts::SQRT_2; // Gelu's erf argument is 4 here
        let mut edges = vec![
            0.0,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7fa0_0001),
            f32::from_bits(0xffc0_1234),
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(1),
            -f32::from_bits(0x007f_ffff),
            f32::MIN_POSITIVE,
            f32::MAX,
            4.0,
            -4.0,
            r2,
            -r2,
        ];
        for x in [4.0f32, r2] {
            for d in 1..4 {
                edges.extend([f32::from_bits(x.to_bits() - d), f32::from_bits(x.to_bits() + d)]);
            }
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                match i % 5 {
                    0 => edges[(s >> 30) as usize % edges.len()],
                    1 => f32::from_bits((s >> 32) as u32),
                    _ => ((s >> 11) as f64 / (1u64 << 53) as f64 * 14.0 - 7.0) as f32,
                }
            })
            .collect()
    }

    #[test]
    fn unary_ops_same_bits_on_every_path_and_thread_count() {
        // Long enough to be split over 3 threads.
        let x = Tensor::f32(vec![5, 9000], unary_inputs(45_000));
        let TensorData::F32(xv) = &x.data else { unreachable!() };
        let l = Limits::default();
        for op in [U::Erf, U::Gelu { tanh: false }, U::Gelu { tanh: true }, U::Log, U::Mish, U::Abs, U::Softsign] {
            let want: Vec<u32> = xv.iter().map(|&v| unary_f32(op, v).to_bits()).collect();
            for kernels in KernelPath::available() {
                for threads in [1, 2, 3] {
                    let ctx = Ctx { limits: &l, threads, kernels };
                    let out = Unary(op).run(&[Some(&x)], &ctx).unwrap().remove(0);
                    assert_eq!(out.shape, x.shape);
                    let TensorData::F32(got) = out.data else { panic!("{op:?}: not f32") };
                    for (i, (g, &w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), w, "{op:?} {kernels:?} threads {threads}: x = {:e}", xv[i]);
                    }
                }
            }
        }
    }

    /// `erf_many` on `path` (compiled as `unary_f32_many` compiles it), checked bit for bit
    /// against the reference `unary_f32`; returns the number of series fallbacks.
    fn check_erf_many(path: KernelPath, erf: bool, x: &[f32]) -> usize {
        let op = if erf { U::Erf } else { U::Gelu { tanh: false } };
        let mut out = vec![0.0f32; x.len()];
        let slow = kernels::with_fma(path, ErfMany { erf, x, out: &mut out, path });
        for (&v, g) in x.iter().zip(&out) {
            let w = unary_f32(op, v);
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{op:?} {path:?}: x = {v:e} ({:#010x}): got {g:e}, want {w:e}",
                v.to_bits()
            );
        }
        slow
    }

    /// Normally distributed f32s (Box–Muller), mean `mu`, deviation `sigma`.
    fn normal(seed: u64, len: usize, mu: f64, sigma: f64) -> Vec<f32> {
        let mut s = seed | 1;
        let mut u = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..len)
            .map(|_| {
                let (u1, u2) = (u(), u());
                let z = (-2.0 * math::log(u1 as f32) as f64).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mu + sigma * z) as f32
            })
            .collect()
    }

    #[test]
    fn erf_and_gelu_fast_path_same_bits_with_and_without_fallback() {
        let mut x = unary_inputs(6000);
        // Subnormals, every interval boundary of |erf argument| = k/4 (Erf: x = k/4; Gelu:
        // x ≈ √2·k/4) and its f32 neighbours, both signs.
        for b in [1u32, 2, 0x0040_0000, 0x007f_ffff, 0x0080_0000] {
            x.extend([f32::from_bits(b), -f32::from_bits(b)]);
        }
        for k in 0..=17 {
            for c in [k as f32 / 4.0, k as f32 / 4.0 * std::f32::consts::SQRT_2] {
                for d in -2i32..=2 {
                    let y = f32::from_bits((c.to_bits() as i32 + d).max(0) as u32);
                    x.extend([y, -y]);
                }
            }
        }
        // A dense run near |argument| = 4, where the series' own rounding error is largest
        // and the check falls back most often (Gelu: also the cancellation in 1 + erf).
        let near4: Vec<f32> = (0..4000).map(|i| 3.75 + i as f32 / 16_000.0).collect();
        for path in KernelPath::available() {
            if path == KernelPath::Reference {
                continue;
            }
            for erf in [true, false] {
                check_erf_many(path, erf, &x);
                check_erf_many(path, erf, &x[1..]); // other ragged ends
                let s = if erf { 1.0 } else { std::f32::consts::SQRT_2 };
                let y: Vec<f32> = near4.iter().flat_map(|&v| [v * s, -v * s]).collect();
                assert!(check_erf_many(path, erf, &y) > 0, "{path:?} erf={erf}: no fallback near 4");
                check_erf_many(path, erf, &normal(5, 3000, 0.0, 2.0));
            }
        }
    }

    /// Every f32 input of Erf and of exact Gelu on every fast path, against the reference
    /// `unary_f32` bit for bit: the proof that the table's bounds hold where they are used
    /// (`kernels::erf`). Minutes in release: `cargo test --release -p deed-engine --lib
    /// erf_and_gelu_exhaustive -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn erf_and_gelu_exhaustive_every_f32_every_path() {
        let paths: Vec<KernelPath> =
            KernelPath::available().into_iter().filter(|&p| p != KernelPath::Reference).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        const CHUNK: u64 = 1 << 16;
        let chunks = (1u64 << 32) / CHUNK;
        for erf in [true, false] {
            let op = if erf { U::Erf } else { U::Gelu { tanh: false } };
            let start = std::time::Instant::now();
            let next = std::sync::atomic::AtomicU64::new(0);
            let slow: Vec<Vec<usize>> = std::thread::scope(|sc| {
                let hs: Vec<_> = (0..threads)
                    .map(|_| {
                        sc.spawn(|| {
                            let mut slow = vec![0usize; paths.len()];
                            let (mut x, mut want, mut out) = (
                                vec![0.0f32; CHUNK as usize],
                                vec![0u32; CHUNK as usize],
                                vec![0.0f32; CHUNK as usize],
                            );
                            loop {
                                let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if c >= chunks {
                                    break slow;
                                }
                                for (i, (v, w)) in x.iter_mut().zip(want.iter_mut()).enumerate() {
                                    *v = f32::from_bits((c * CHUNK + i as u64) as u32);
                                    *w = unary_f32(op, *v).to_bits();
                                }
                                for (p, &path) in paths.iter().enumerate() {
                                    slow[p] += kernels::with_fma(path, ErfMany { erf, x: &x, out: &mut out, path });
                                    for (i, (g, &w)) in out.iter().zip(&want).enumerate() {
                                        assert_eq!(
                                            g.to_bits(),
                                            w,
                                            "{op:?} {path:?}: x = {:e} ({:#010x})",
                                            x[i],
                                            x[i].to_bits()
                                        );
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().expect("exhaustive worker")).collect()
            });
            for (p, path) in paths.iter().enumerate() {
                let n: usize = slow.iter().map(|s| s[p]).sum();
                println!(
                    "{op:?} {path:?}: all 2^32 inputs same bits; {n} fell back to the series ({:.3e})",
                    n as f64 / 2f64.powi(32)
                );
            }
            println!("{op:?}: {:.1} s on {threads} threads", start.elapsed().as_secs_f64());
        }
    }

    /// Prints the fallback rate on normally distributed inputs (as in BERT's Gelu).
    #[test]
    #[ignore]
    fn erf_and_gelu_fallback_rate_on_normal_inputs() {
        let path = KernelPath::best();
        for (mu, sigma) in [(0.0, 1.0), (0.0, 2.0), (-1.0, 3.0)] {
            let x = normal(9, 1 << 22, mu, sigma);
            for erf in [true, false] {
                let n = check_erf_many(path, erf, &x);
                println!(
                    "N({mu}, {sigma}²) erf={erf} {path:?}: {n} of {} fell back ({:.2e})",
                    x.len(),
                    n as f64 / x.len() as f64
                );
            }
        }
    }

    #[test]
    fn where_and_compare() {
        let c = Tensor::new(vec![2, 1], TensorData::Bool(vec![true, false])).unwrap();
        let x = Tensor::f32(vec![3], vec![1., 2., 3.]);
        let y = Tensor::f32(vec![], vec![9.]);
        let r = run(&Where, &[&c, &x, &y]);
        assert_eq!(r.shape, vec![2, 3]);
        assert_eq!(r.data, TensorData::F32(vec![1., 2., 3., 9., 9., 9.]));
        let r = run(&Binary(B::Less), &[&x, &y]);
        assert_eq!(r.data, TensorData::Bool(vec![true; 3]));
    }

    #[test]
    fn variadic_and_pow() {
        let a = Tensor::f32(vec![2], vec![1., f32::NAN]);
        let b = Tensor::f32(vec![2, 1], vec![0., 5.]);
        let r = run(&Variadic(V::Max), &[&a, &b]);
        let TensorData::F32(v) = r.data else { panic!() };
        assert_eq!(v[0], 1.);
        assert!(v[1].is_nan());
        assert_eq!(v[2], 5.);
        let i = Tensor::new(vec![3], TensorData::I64(vec![2, -3, 5])).unwrap();
        let e = Tensor::new(vec![3], TensorData::I64(vec![10, 3, 0])).unwrap();
        assert_eq!(run(&Binary(B::Pow), &[&i, &e]).data, TensorData::I64(vec![1024, -27, 1]));
        let m = Tensor::new(vec![2], TensorData::I64(vec![-7, 7])).unwrap();
        let d = Tensor::new(vec![1], TensorData::I64(vec![3])).unwrap();
        assert_eq!(run(&Binary(B::Mod { fmod: false }), &[&m, &d]).data, TensorData::I64(vec![2, 1]));
    }
}

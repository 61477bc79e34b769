//! Elementwise operators: numpy-broadcast binary arithmetic (Add, Sub, Mul, Div) and
//! unary functions (Relu, Sigmoid, Tanh, Exp).
//!
//! Each output element is one IEEE-754 operation on its inputs (or one call of the
//! engine's own [`math`](crate::math) function), so there is no ordering question.
//! Integer arithmetic wraps (two's complement); integer division truncates toward zero
//! and a zero divisor is an error.

use super::{Ctx, KResult, KernelError};
use crate::kernels::KernelPath;
use deed_types::{Tensor, TensorData};

/// The numpy broadcast of two shapes, or `None` when they are incompatible.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i < r - a.len() { 1 } else { a[i - (r - a.len())] };
        let db = if i < r - b.len() { 1 } else { b[i - (r - b.len())] };
        out[i] = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else {
            return None;
        };
    }
    Some(out)
}

/// Row-major strides of `shape` right-aligned to `out`, 0 where `shape` is broadcast.
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    assert!(shape.len() <= out.len(), "broadcast source rank exceeds target rank");
    let off = out.len() - shape.len();
    let mut strides = vec![0; out.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        strides[off + i] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

/// Applies `f` to every pair of elements of `a` and `b` broadcast to `out_shape`
/// (which must be their broadcast shape), in row-major output order.
pub(crate) fn broadcast_map<A: Copy, B: Copy, T>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out_shape: &[usize],
    mut f: impl FnMut(A, B) -> T,
) -> Vec<T> {
    let n: usize = out_shape.iter().product();
    if a_shape == b_shape {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    if b.len() == 1 && a.len() == n {
        return a.iter().map(|&x| f(x, b[0])).collect();
    }
    if a.len() == 1 && b.len() == n {
        return b.iter().map(|&y| f(a[0], y)).collect();
    }
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    // r >= 1 here: two rank-0 shapes are equal and handled above.
    let rows = n / out_shape[out_shape.len() - 1];
    broadcast_rows(a, a_shape, b, b_shape, out_shape, 0, rows, &mut f, &mut out);
    out
}

/// Where [`broadcast_rows`] puts each row's values.
trait RowSink<T> {
    fn row(&mut self, vals: impl Iterator<Item = T>);
}

/// Appends rows.
impl<T> RowSink<T> for Vec<T> {
    #[inline(always)]
    fn row(&mut self, vals: impl Iterator<Item = T>) {
        self.extend(vals);
    }
}

/// Fills consecutive rows of a slice.
struct RowSlots<'a, T>(std::slice::ChunksMut<'a, T>);

impl<T> RowSink<T> for RowSlots<'_, T> {
    #[inline(always)]
    fn row(&mut self, vals: impl Iterator<Item = T>) {
        let row = self.0.next().expect("one row per call");
        for (o, v) in row.iter_mut().zip(vals) {
            *o = v;
        }
    }
}

/// Calls `sink` with the `f` values of output rows `row0..row0 + rows` (rows of the last
/// dimension) of the broadcast of `a` and `b` to `out_shape` (rank ≥ 1), one row at a
/// time, in order. The common inner strides get slice iterators that the compiler
/// vectorizes (bias adds, per-row scales).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn broadcast_rows<A: Copy, B: Copy, T>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out_shape: &[usize],
    row0: usize,
    rows: usize,
    f: &mut impl FnMut(A, B) -> T,
    sink: &mut impl RowSink<T>,
) {
    let r = out_shape.len();
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    let inner = out_shape[r - 1];
    let (ia, ib) = (sa[r - 1], sb[r - 1]);
    // The outer multi-index (all dims but the last) of row `row0`, and where its pairs
    // start in a and b.
    let mut idx = vec![0usize; r - 1];
    let mut rem = row0;
    for d in (0..r - 1).rev() {
        idx[d] = rem % out_shape[d];
        rem /= out_shape[d];
    }
    let mut oa: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
    let mut ob: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
    for _ in 0..rows {
        match (ia, ib) {
            (1, 1) => sink.row(a[oa..oa + inner].iter().zip(&b[ob..ob + inner]).map(|(&x, &y)| f(x, y))),
            (1, 0) => {
                let y = b[ob];
                sink.row(a[oa..oa + inner].iter().map(|&x| f(x, y)))
            }
            (0, 1) => {
                let x = a[oa];
                sink.row(b[ob..ob + inner].iter().map(|&y| f(x, y)))
            }
            _ => sink.row((0..inner).map(|j| f(a[oa + j * ia], b[ob + j * ib]))),
        }
        // Advance the outer multi-index (wrapping harmlessly after the last row).
        let mut d = r - 1;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < out_shape[d] {
                break;
            }
            oa -= sa[d] * idx[d];
            ob -= sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/// Output elements per thread below which a float binary operator stays on one thread
/// (a cheap, memory-bound loop). Small in tests, so that they run threaded.
const BINARY_PAR_MIN: usize = if cfg!(test) { 1 << 8 } else { 1 << 16 };

/// [`broadcast_map`] for `Fn` operators, its output rows (the last dimension) split over
/// `threads`: the same pairs, each computed once, so the same bits.
fn par_broadcast_map<T: Copy + Default + Send + Sync>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    threads: usize,
    f: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    let n: usize = out_shape.iter().product();
    let r = out_shape.len();
    if threads < 2 || n < 2 * BINARY_PAR_MIN || r == 0 {
        return broadcast_map(a, a_shape, b, b_shape, out_shape, f);
    }
    let inner = out_shape[r - 1];
    let mut out = vec![T::default(); n];
    super::util::par_rows(&mut out, inner, threads, (BINARY_PAR_MIN / inner).max(1), |row0, chunk| {
        let n_rows = chunk.len() / inner;
        let mut slots = RowSlots(chunk.chunks_mut(inner));
        broadcast_rows(a, a_shape, b, b_shape, out_shape, row0, n_rows, &mut |x, y| f(x, y), &mut slots);
    });
    out
}

/// A binary arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Runs a broadcast binary operator on two tensors of the same dtype (checked at load).
pub(crate) fn binary(op: BinOp, a: &Tensor, b: &Tensor, ctx: &Ctx<'_>) -> KResult<Tensor> {
    let shape = broadcast_shape(&a.shape, &b.shape).ok_or_else(|| {
        KernelError::Invalid(format!("shapes {:?} and {:?} do not broadcast together", a.shape, b.shape))
    })?;
    let n = ctx.check_shape(&shape)?;
    macro_rules! float {
        ($x:expr, $y:expr, $var:ident) => {
            TensorData::$var(match op {
                BinOp::Add => par_broadcast_map($x, &a.shape, $y, &b.shape, &shape, ctx.threads, |p, q| p + q),
                BinOp::Sub => par_broadcast_map($x, &a.shape, $y, &b.shape, &shape, ctx.threads, |p, q| p - q),
                BinOp::Mul => par_broadcast_map($x, &a.shape, $y, &b.shape, &shape, ctx.threads, |p, q| p * q),
                BinOp::Div => par_broadcast_map($x, &a.shape, $y, &b.shape, &shape, ctx.threads, |p, q| p / q),
            })
        };
    }
    macro_rules! int {
        ($x:expr, $y:expr, $var:ident) => {{
            if op == BinOp::Div && n > 0 && $y.iter().any(|&v| v == 0) {
                return Err(KernelError::Invalid("integer division by zero".into()));
            }
            TensorData::$var(match op {
                BinOp::Add => broadcast_map($x, &a.shape, $y, &b.shape, &shape, |p, q| p.wrapping_add(q)),
                BinOp::Sub => broadcast_map($x, &a.shape, $y, &b.shape, &shape, |p, q| p.wrapping_sub(q)),
                BinOp::Mul => broadcast_map($x, &a.shape, $y, &b.shape, &shape, |p, q| p.wrapping_mul(q)),
                BinOp::Div => broadcast_map($x, &a.shape, $y, &b.shape, &shape, |p, q| p.wrapping_div(q)),
            })
        }};
    }
    let data = match (&a.data, &b.data) {
        (TensorData::F32(x), TensorData::F32(y)) => float!(x, y, F32),
        (TensorData::F64(x), TensorData::F64(y)) => float!(x, y, F64),
        (TensorData::I32(x), TensorData::I32(y)) => int!(x, y, I32),
        (TensorData::I64(x), TensorData::I64(y)) => int!(x, y, I64),
        (TensorData::I8(x), TensorData::I8(y)) => int!(x, y, I8),
        (TensorData::U8(x), TensorData::U8(y)) => int!(x, y, U8),
        (TensorData::I16(x), TensorData::I16(y)) => int!(x, y, I16),
        (TensorData::U16(x), TensorData::U16(y)) => int!(x, y, U16),
        (TensorData::U32(x), TensorData::U32(y)) => int!(x, y, U32),
        (TensorData::U64(x), TensorData::U64(y)) => int!(x, y, U64),
        (x, y) => unreachable!("binary op dtypes {:?}/{:?} passed load-time checks", x.dtype(), y.dtype()),
    };
    Ok(Tensor { shape, data })
}

/// A unary elementwise function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnOp {
    /// `x < 0 ? 0 : x` (NaN and −0 pass through unchanged).
    Relu,
    /// [`math::sigmoid`](crate::math::sigmoid).
    Sigmoid,
    /// [`math::tanh`](crate::math::tanh).
    Tanh,
    /// [`math::exp`](crate::math::exp).
    Exp,
}

/// Elements per thread below which Sigmoid, Tanh and Exp stay on one thread (a thread
/// should get a fraction of a millisecond of work: starting one costs tens of microseconds
/// on an idle machine and can wait milliseconds for a core on a busy one). Small in tests,
/// so that they run threaded.
const UNARY_PAR_MIN: usize = if cfg!(test) { 1 << 10 } else { 1 << 15 };

/// `f` over every element of `v`, the elements split over `threads` (elementwise: the
/// split changes no bit); on the fast paths compiled with FMA (`kernels::with_fma`), so
/// that the math functions' `mul_add`s are single instructions (the same bits).
fn par_map<F: Fn(f32) -> f32 + Sync + Copy>(v: &[f32], threads: usize, path: KernelPath, f: F) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    super::util::par_chunks(&mut out, threads, UNARY_PAR_MIN, |off, o| {
        crate::kernels::with_fma(path, MapLoop { f, x: &v[off..], out: o })
    });
    out
}

/// `out[i] = f(x[i])`, as FMA work (see [`par_map`]).
struct MapLoop<'a, F> {
    f: F,
    x: &'a [f32],
    out: &'a mut [f32],
}

impl<F: Fn(f32) -> f32> crate::kernels::FmaWork for MapLoop<'_, F> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        for (y, &a) in self.out.iter_mut().zip(self.x) {
            *y = (self.f)(a);
        }
    }
}

/// Runs a unary function (dtypes checked at load: f32 for all, also i32/i64 for Relu) on
/// up to `threads` threads.
pub(crate) fn unary(op: UnOp, x: &Tensor, threads: usize, path: KernelPath) -> Tensor {
    let data = match (&x.data, op) {
        // Threaded too: a Conv's output is usually in the caches of the threads that made it.
        (TensorData::F32(v), UnOp::Relu) => {
            TensorData::F32(par_map(v, threads, path, |a: f32| if a < 0.0 { 0.0 } else { a }))
        }
        // The reference path runs the spec's functions; the others their branch-free
        // twins (the same bits on every input), which vectorize.
        (TensorData::F32(v), UnOp::Sigmoid) if path == KernelPath::Reference => {
            TensorData::F32(par_map(v, threads, path, crate::math::sigmoid))
        }
        (TensorData::F32(v), UnOp::Tanh) if path == KernelPath::Reference => {
            TensorData::F32(par_map(v, threads, path, crate::math::tanh))
        }
        (TensorData::F32(v), UnOp::Exp) if path == KernelPath::Reference => {
            TensorData::F32(par_map(v, threads, path, crate::math::exp))
        }
        (TensorData::F32(v), UnOp::Sigmoid) => TensorData::F32(par_map(v, threads, path, crate::math::sigmoid_lanes)),
        (TensorData::F32(v), UnOp::Tanh) => TensorData::F32(par_map(v, threads, path, crate::math::tanh_lanes)),
        (TensorData::F32(v), UnOp::Exp) => TensorData::F32(par_map(v, threads, path, crate::math::exp_lanes)),
        (TensorData::I32(v), UnOp::Relu) => TensorData::I32(v.iter().map(|&a| a.max(0)).collect()),
        (TensorData::I64(v), UnOp::Relu) => TensorData::I64(v.iter().map(|&a| a.max(0)).collect()),
        (d, op) => unreachable!("{op:?} on {:?} passed load-time checks", d.dtype()),
    };
    Tensor { shape: x.shape.clone(), data }
}

/// `v[i] = f(v[i])` in place, split over `threads` like [`par_map`].
fn par_map_in_place<F: Fn(f32) -> f32 + Sync + Copy>(v: &mut [f32], threads: usize, path: KernelPath, f: F) {
    super::util::par_chunks(v, threads, UNARY_PAR_MIN, |_, o| crate::kernels::with_fma(path, MapInPlace { f, v: o }));
}

/// `v[i] = f(v[i])`, as FMA work (see [`par_map`]).
struct MapInPlace<'a, F> {
    f: F,
    v: &'a mut [f32],
}

impl<F: Fn(f32) -> f32> crate::kernels::FmaWork for MapInPlace<'_, F> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        for y in self.v.iter_mut() {
            *y = (self.f)(*y);
        }
    }
}

/// [`unary`] computed in `x`'s own buffer, for a value nobody reads after this node:
/// the same function on every element, so the same bits. `Err(x)` back when it does not
/// apply (not float32).
pub(crate) fn unary_in_place(op: UnOp, mut x: Tensor, threads: usize, path: KernelPath) -> Result<Tensor, Tensor> {
    let TensorData::F32(v) = &mut x.data else { return Err(x) };
    let reference = path == KernelPath::Reference;
    match op {
        UnOp::Relu => par_map_in_place(v, threads, path, |a: f32| if a < 0.0 { 0.0 } else { a }),
        UnOp::Sigmoid if reference => par_map_in_place(v, threads, path, crate::math::sigmoid),
        UnOp::Tanh if reference => par_map_in_place(v, threads, path, crate::math::tanh),
        UnOp::Exp if reference => par_map_in_place(v, threads, path, crate::math::exp),
        UnOp::Sigmoid => par_map_in_place(v, threads, path, crate::math::sigmoid_lanes),
        UnOp::Tanh => par_map_in_place(v, threads, path, crate::math::tanh_lanes),
        UnOp::Exp => par_map_in_place(v, threads, path, crate::math::exp_lanes),
    }
    Ok(x)
}

/// [`binary`] computed in `a`'s own buffer, for a value nobody reads after this node,
/// when the result has `a`'s shape and `b` is float32 of the same shape, one element, or
/// a broadcast over `a`'s last dims (a bias): each element is `f(a[i], b[j])` for the
/// same `j` as the broadcast, so the same bits. `Err(a)` back when it does not apply.
pub(crate) fn binary_in_place(op: BinOp, mut a: Tensor, b: &Tensor, threads: usize) -> Result<Tensor, Tensor> {
    let (TensorData::F32(x), TensorData::F32(y)) = (&mut a.data, &b.data) else { return Err(a) };
    if broadcast_shape(&a.shape, &b.shape).as_deref() != Some(&a.shape[..]) {
        return Err(a);
    }
    // `b`'s shape without leading 1s must be a suffix of `a`'s: then element `i` of `a`
    // meets `b[i % b.len()]`.
    let core = &b.shape[b.shape.iter().take_while(|&&d| d == 1).count()..];
    // Short cycles other than a scalar would run in many short pieces: left to `binary`.
    if !a.shape.ends_with(core) || y.is_empty() || (y.len() > 1 && y.len() < CYCLE_MIN && y.len() != x.len()) {
        return Err(a);
    }
    match op {
        BinOp::Add => zip_cycle(x, y, threads, |p, q| p + q),
        BinOp::Sub => zip_cycle(x, y, threads, |p, q| p - q),
        BinOp::Mul => zip_cycle(x, y, threads, |p, q| p * q),
        BinOp::Div => zip_cycle(x, y, threads, |p, q| p / q),
    }
    Ok(a)
}

/// The shortest broadcast operand other than a scalar that [`binary_in_place`] takes.
const CYCLE_MIN: usize = 64;

/// `x[i] = f(x[i], y[i % y.len()])`, split over `threads` (each element on its own: the
/// split changes no bit).
fn zip_cycle(x: &mut [f32], y: &[f32], threads: usize, f: impl Fn(f32, f32) -> f32 + Sync + Copy) {
    let t = if x.len() < 2 * BINARY_PAR_MIN { 1 } else { threads };
    super::util::par_chunks(x, t, BINARY_PAR_MIN, |off, chunk| {
        if let [q] = y {
            chunk.iter_mut().for_each(|p| *p = f(*p, *q));
            return;
        }
        let mut j = off % y.len();
        let mut rest = chunk;
        while !rest.is_empty() {
            let run = rest.len().min(y.len() - j);
            let (now, later) = rest.split_at_mut(run);
            for (p, &q) in now.iter_mut().zip(&y[j..j + run]) {
                *p = f(*p, q);
            }
            rest = later;
            j = 0;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use proptest::prelude::*;

    fn ctx(l: &Limits) -> Ctx<'_> {
        Ctx { limits: l, threads: 1, kernels: crate::kernels::KernelPath::Reference }
    }

    /// The reference: compute every output element from its multi-index.
    fn naive<T: Copy>(a: &[T], ash: &[usize], b: &[T], bsh: &[usize], out: &[usize], f: fn(T, T) -> T) -> Vec<T> {
        let n: usize = out.iter().product();
        let r = out.len();
        (0..n)
            .map(|flat| {
                let mut rem = flat;
                let mut idx = vec![0; r];
                for d in (0..r).rev() {
                    idx[d] = rem % out[d];
                    rem /= out[d];
                }
                let pick = |sh: &[usize]| {
                    let off = r - sh.len();
                    sh.iter().enumerate().fold(0, |acc, (i, &dim)| acc * dim + if dim == 1 { 0 } else { idx[off + i] })
                };
                f(a[pick(ash)], b[pick(bsh)])
            })
            .collect()
    }

    #[test]
    fn broadcast_shapes() {
        assert_eq!(broadcast_shape(&[2, 3], &[3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shape(&[2, 1, 4], &[3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shape(&[], &[5]), Some(vec![5]));
        assert_eq!(broadcast_shape(&[0, 1], &[1, 3]), Some(vec![0, 3]));
        assert_eq!(broadcast_shape(&[2, 3], &[4]), None);
    }

    #[test]
    fn hand_computed() {
        let l = Limits::default();
        let a = Tensor::f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let b = Tensor::f32(vec![2], vec![10.0, 20.0]);
        assert_eq!(binary(BinOp::Add, &a, &b, &ctx(&l)).unwrap().data, TensorData::F32(vec![11.0, 22.0, 13.0, 24.0]));
        assert_eq!(binary(BinOp::Sub, &a, &b, &ctx(&l)).unwrap().data, TensorData::F32(vec![-9.0, -18.0, -7.0, -16.0]));
        assert_eq!(binary(BinOp::Mul, &b, &a, &ctx(&l)).unwrap().data, TensorData::F32(vec![10.0, 40.0, 30.0, 80.0]));
        let c = Tensor::f32(vec![2, 1], vec![2.0, 4.0]);
        assert_eq!(binary(BinOp::Div, &a, &c, &ctx(&l)).unwrap().data, TensorData::F32(vec![0.5, 1.0, 0.75, 1.0]));
        let i = Tensor::new(vec![3], TensorData::I64(vec![7, -7, 9])).unwrap();
        let j = Tensor::new(vec![1], TensorData::I64(vec![2])).unwrap();
        assert_eq!(binary(BinOp::Div, &i, &j, &ctx(&l)).unwrap().data, TensorData::I64(vec![3, -3, 4]));
        let z = Tensor::new(vec![1], TensorData::I64(vec![0])).unwrap();
        assert!(binary(BinOp::Div, &i, &z, &ctx(&l)).is_err());
        assert!(binary(BinOp::Add, &a, &Tensor::f32(vec![3], vec![0.0; 3]), &ctx(&l)).is_err());
    }

    #[test]
    fn threaded_broadcast_binary_same_bits() {
        let l = crate::Limits::default();
        let val = |i: usize| (i.wrapping_mul(2_654_435_761) >> 7) as f32 / 1e6 - 3.0;
        // Same shapes, a row vector, a column vector, a scalar, both sides broadcast, a
        // strided inner dimension (size-1 last axis on one side).
        let cases: [(Vec<usize>, Vec<usize>); 6] = [
            (vec![6, 7, 50], vec![6, 7, 50]),
            (vec![6, 7, 50], vec![50]),
            (vec![6, 7, 50], vec![6, 7, 1]),
            (vec![6, 7, 50], vec![]),
            (vec![6, 1, 50], vec![1, 7, 1]),
            (vec![1, 2100], vec![2100, 1]),
        ];
        for (sa, sb) in cases {
            let a = Tensor::f32(sa.clone(), (0..sa.iter().product()).map(val).collect());
            let b = Tensor::f32(sb.clone(), (0..sb.iter().product::<usize>()).map(|i| val(i + 77)).collect());
            for op in [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div] {
                let bits = |t: &Tensor| {
                    let TensorData::F32(v) = &t.data else { panic!() };
                    v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                };
                // One thread is the sequential `broadcast_map`.
                let one = binary(op, &a, &b, &Ctx { limits: &l, threads: 1, kernels: KernelPath::Reference }).unwrap();
                for threads in [2, 3] {
                    let got = binary(op, &a, &b, &Ctx { limits: &l, threads, kernels: KernelPath::Reference }).unwrap();
                    assert_eq!(got.shape, one.shape);
                    assert_eq!(bits(&got), bits(&one), "{op:?} {sa:?} {sb:?} threads {threads}");
                }
            }
        }
    }

    #[test]
    fn threaded_unary_same_bits() {
        // Long enough for three threads; values over the interesting range, NaN and ±0.
        let v: Vec<f32> = (0..40_000u32)
            .map(|i| match i % 1000 {
                0 => f32::NAN,
                1 => -0.0,
                _ => (i.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32 * 240.0 - 120.0,
            })
            .collect();
        let x = Tensor::f32(vec![4, 10_000], v.clone());
        for (op, f) in [
            (UnOp::Sigmoid, crate::math::sigmoid as fn(f32) -> f32),
            (UnOp::Tanh, crate::math::tanh),
            (UnOp::Exp, crate::math::exp),
        ] {
            let want: Vec<u32> = v.iter().map(|&a| f(a).to_bits()).collect();
            for path in KernelPath::available() {
                for threads in [1, 2, 3] {
                    let TensorData::F32(got) = unary(op, &x, threads, path).data else { panic!() };
                    let got: Vec<u32> = got.iter().map(|g| g.to_bits()).collect();
                    assert_eq!(got, want, "{op:?} {path:?} threads {threads}");
                }
            }
        }
    }

    #[test]
    fn unary_hand_computed() {
        let x = Tensor::f32(vec![4], vec![-1.0, 0.0, 2.5, f32::NAN]);
        let TensorData::F32(r) = unary(UnOp::Relu, &x, 1, KernelPath::Reference).data else { panic!() };
        assert_eq!(&r[..3], &[0.0, 0.0, 2.5]);
        assert!(r[3].is_nan());
        let TensorData::F32(s) = unary(UnOp::Sigmoid, &Tensor::f32(vec![1], vec![0.0]), 1, KernelPath::Reference).data
        else {
            panic!()
        };
        assert_eq!(s, vec![0.5]);
        let TensorData::F32(e) = unary(UnOp::Exp, &Tensor::f32(vec![2], vec![0.0, 1.0]), 1, KernelPath::Reference).data
        else {
            panic!()
        };
        assert_eq!(e, vec![1.0, std::f32::consts::E]);
        let TensorData::F32(t) =
            unary(UnOp::Tanh, &Tensor::f32(vec![2], vec![0.0, 20.0]), 1, KernelPath::Reference).data
        else {
            panic!()
        };
        assert_eq!(t, vec![0.0, 1.0]);
    }

    fn shape_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        proptest::collection::vec((0usize..4, 0usize..3), 0..5).prop_map(|dims| {
            // For each output dim pick a size and whether each side broadcasts it.
            let (mut a, mut b) = (vec![], vec![]);
            for (size, mode) in dims {
                a.push(if mode == 1 { 1 } else { size });
                b.push(if mode == 2 { 1 } else { size });
            }
            let cut = a.len() / 2;
            (a, b[cut..].to_vec())
        })
    }

    /// Float values with the awkward ones among them: ±0, ±∞, NaNs of both signs, subnormals.
    fn awkward(n: usize, seed: u32) -> Vec<f32> {
        let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN, 1e-40, -3e-39];
        (0..n)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761) ^ seed;
                if h.is_multiple_of(11) {
                    special[(h / 11) as usize % special.len()]
                } else {
                    (h % 2001) as f32 / 37.0 - 27.0
                }
            })
            .collect()
    }

    /// The bits the encoding and the trace see: every NaN canonical (which NaN an
    /// instruction returns depends on operand order, which compilers may swap).
    fn bits(t: &Tensor) -> Vec<u32> {
        match &t.data {
            TensorData::F32(v) => v.iter().map(|&x| deed_types::tensor::canonical_f32(x).to_bits()).collect(),
            _ => unreachable!(),
        }
    }

    proptest! {
        /// In place or not, the same bits (NaNs canonical, as everywhere bits are
        /// compared): a value the run owns and nobody reads again may lend its buffer, and
        /// that must change nothing.
        #[test]
        fn in_place_matches_out_of_place(
            lead in proptest::collection::vec(1usize..4, 0..3),
            tail in proptest::collection::vec(1usize..40, 1..3),
            form in 0usize..5,
            threads in 1usize..4,
            seed in any::<u32>(),
        ) {
            let ash: Vec<usize> = lead.iter().chain(&tail).copied().collect();
            let bsh: Vec<usize> = match form {
                0 => ash.clone(),
                1 => tail.clone(),
                2 => std::iter::once(1).chain(tail.iter().copied()).collect(),
                3 => vec![],
                _ => vec![1; ash.len()],
            };
            let na: usize = ash.iter().product();
            let nb: usize = bsh.iter().product();
            let a = Tensor::f32(ash.clone(), awkward(na, seed));
            let b = Tensor::f32(bsh.clone(), awkward(nb, seed.rotate_left(7)));
            let l = Limits::default();
            for path in crate::kernels::KernelPath::available() {
                let cx = Ctx { limits: &l, threads, kernels: path };
                for op in [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div] {
                    let want = binary(op, &a, &b, &cx).unwrap();
                    let keeps_shape = broadcast_shape(&ash, &bsh).as_deref() == Some(&ash[..]);
                    let expect_taken = keeps_shape && (nb == 1 || nb == na || nb >= CYCLE_MIN);
                    match binary_in_place(op, a.clone(), &b, threads) {
                        Ok(got) => {
                            prop_assert_eq!(&got.shape, &want.shape);
                            prop_assert_eq!(bits(&got), bits(&want), "{:?} {:?} {:?}", op, ash, bsh);
                        }
                        Err(back) => {
                            prop_assert!(!expect_taken, "declined {:?} {:?} {:?}", op, ash, bsh);
                            prop_assert_eq!(bits(&back), bits(&a));
                        }
                    }
                }
                for op in [UnOp::Relu, UnOp::Sigmoid, UnOp::Tanh, UnOp::Exp] {
                    let want = unary(op, &a, threads, path);
                    let got = unary_in_place(op, a.clone(), threads, path).unwrap();
                    prop_assert_eq!(bits(&got), bits(&want), "{:?} on {:?}", op, path);
                }
            }
        }

        #[test]
        fn broadcast_matches_reference((ash, bsh) in shape_pair(), seed in any::<u32>()) {
            let out = broadcast_shape(&ash, &bsh).unwrap();
            let na: usize = ash.iter().product();
            let nb: usize = bsh.iter().product();
            let a: Vec<i64> = (0..na as i64).map(|i| i * 7 + seed as i64).collect();
            let b: Vec<i64> = (0..nb as i64).map(|i| i * 1000 - 3).collect();
            let got = broadcast_map(&a, &ash, &b, &bsh, &out, |x, y| x * 3 + y);
            prop_assert_eq!(got, naive(&a, &ash, &b, &bsh, &out, |x, y| x * 3 + y));
            let got = broadcast_map(&b, &bsh, &a, &ash, &out, |x, y| x - y);
            prop_assert_eq!(got, naive(&b, &bsh, &a, &ash, &out, |x, y| x - y));
        }
    }
}

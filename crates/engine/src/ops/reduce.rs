//! Operators that reduce along an axis: Softmax and ArgMax.
//!
//! **Softmax** (part of the engine spec), for each slice along the reduced axis in
//! index order: `m = −∞; for v: if v > m { m = v }`; then `e_i = exp(x_i − m)` with the
//! engine's [`math::exp`](crate::math::exp); `s = 0.0; for i: s = s + e_i` sequentially;
//! `y_i = e_i / s`. Opset < 13 coerces the input to 2-D at `axis` (default 1) and
//! reduces over the whole trailing block; opset ≥ 13 reduces along `axis` (default −1).
//!
//! **ArgMax**: the first index of the maximum (`select_last_index = 1`: the last),
//! comparing with IEEE `>` (`>=` for last); a NaN never replaces the current best, so a
//! NaN only wins when it is the first element.

use super::{Ctx, KResult, KernelError, util};
use crate::kernels::{self, KernelPath};
use deed_types::{Tensor, TensorData};

/// Normalizes a possibly negative axis for a tensor of rank `rank` (`axis ∈ [−rank, rank)`,
/// or `[−rank, rank]` with `inclusive`).
pub(crate) fn norm_axis(axis: i64, rank: usize, inclusive: bool) -> KResult<usize> {
    let r = rank as i64;
    let hi = if inclusive { r } else { r - 1 };
    if axis < -r || axis > hi {
        return Err(KernelError::Invalid(format!("axis {axis} is out of range for a tensor of rank {rank}")));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// ONNX Softmax on one thread, on the reference path.
#[cfg(test)]
pub(crate) fn softmax(x: &Tensor, axis: i64, legacy: bool) -> KResult<Tensor> {
    softmax_with(x, axis, legacy, 1, KernelPath::Reference)
}

/// Elements per thread below which Softmax stays on one thread (see `UNARY_PAR_MIN` in
/// `math_ops`). Small in tests, so that they run threaded.
const SOFTMAX_PAR_MIN: usize = if cfg!(test) { 1 << 10 } else { 1 << 15 };

/// ONNX Softmax, on `threads` threads (each takes whole `[len, inner]` blocks, which are
/// independent) and, on the fast paths, compiled with FMA (`kernels::with_fma`): the same
/// operations in the same order on every path and thread count, so the same bits.
pub(crate) fn softmax_with(x: &Tensor, axis: i64, legacy: bool, threads: usize, path: KernelPath) -> KResult<Tensor> {
    let TensorData::F32(v) = &x.data else { unreachable!("Softmax dtype checked at load") };
    let rank = x.shape.len();
    let (len, inner) = if legacy {
        // Coerce to 2-D [prod(..axis), prod(axis..)]; a rank-0 input is one element.
        let a = norm_axis(axis, rank, true)?;
        (x.shape[a..].iter().product::<usize>(), 1)
    } else {
        if rank == 0 {
            return Err(KernelError::Invalid("Softmax needs an input of rank at least 1".into()));
        }
        let a = norm_axis(axis, rank, false)?;
        (x.shape[a], x.shape[a + 1..].iter().product::<usize>())
    };
    let mut out = vec![0.0f32; v.len()];
    let block = len * inner;
    if block > 0 {
        util::par_rows(&mut out, block, threads, (SOFTMAX_PAR_MIN / block).max(1), |o0, chunk| {
            let rows = path != KernelPath::Reference;
            kernels::with_fma(path, SoftmaxBlocks { v: &v[o0 * block..], len, inner, rows, out: chunk })
        });
    }
    Ok(Tensor { shape: x.shape.clone(), data: TensorData::F32(out) })
}

/// Softmax of whole `[len, inner]` blocks of `v` into `out` (which sets how many).
struct SoftmaxBlocks<'a> {
    v: &'a [f32],
    len: usize,
    inner: usize,
    /// Whether contiguous rows (`inner == 1`) take the vectorizable loops.
    rows: bool,
    out: &'a mut [f32],
}

impl kernels::FmaWork for SoftmaxBlocks<'_> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        let SoftmaxBlocks { v, len, inner, rows, out } = self;
        if inner == 1 && rows {
            // Contiguous rows: the same operations, in loops the compiler can put on SIMD
            // lanes. The maximum is taken in another order, which gives the same `m` up to
            // the sign of a zero maximum, and `v − (+0)` and `v − (−0)` are equal except
            // for `v = −0`, whose `exp` is 1 either way. The sum stays sequential.
            for (row, o) in v.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
                let m = row_max(row);
                for (e, &x) in o.iter_mut().zip(row) {
                    *e = crate::math::exp_lanes(x - m);
                }
                let mut s = 0.0f32;
                for &e in o.iter() {
                    s += e;
                }
                o.iter_mut().for_each(|e| *e /= s);
            }
            return;
        }
        for o in 0..out.len() / (len * inner) {
            for i in 0..inner {
                let at = |j: usize| (o * len + j) * inner + i;
                let mut m = f32::NEG_INFINITY;
                for j in 0..len {
                    if v[at(j)] > m {
                        m = v[at(j)];
                    }
                }
                let mut s = 0.0f32;
                for j in 0..len {
                    let e = crate::math::exp(v[at(j)] - m);
                    out[at(j)] = e;
                    s += e;
                }
                for j in 0..len {
                    out[at(j)] /= s;
                }
            }
        }
    }
}

/// The largest non-NaN element of `row`, or −∞ if there is none (the sign of a zero
/// result may differ from a sequential scan's).
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    const W: usize = 16;
    let mut acc = [f32::NEG_INFINITY; W];
    let mut chunks = row.chunks_exact(W);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &x in acc.iter().chain(chunks.remainder()) {
        m = if x > m { x } else { m };
    }
    m
}

/// ArgMax attributes.
#[derive(Clone, Debug)]
pub(crate) struct ArgMaxAttrs {
    pub axis: i64,
    pub keepdims: bool,
    pub select_last: bool,
}

/// ONNX ArgMax; output is int64.
pub(crate) fn argmax(attrs: &ArgMaxAttrs, x: &Tensor, ctx: &Ctx<'_>) -> KResult<Tensor> {
    let rank = x.shape.len();
    if rank == 0 {
        return Err(KernelError::Invalid("ArgMax needs an input of rank at least 1".into()));
    }
    let a = norm_axis(attrs.axis, rank, false)?;
    let len = x.shape[a];
    let outer: usize = x.shape[..a].iter().product();
    let inner: usize = x.shape[a + 1..].iter().product();
    let mut shape = x.shape.clone();
    if attrs.keepdims {
        shape[a] = 1;
    } else {
        shape.remove(a);
    }
    ctx.check_shape(&shape)?;
    if len == 0 && outer * inner > 0 {
        return Err(KernelError::Invalid(format!("ArgMax over axis {a} of length 0")));
    }
    fn run<T: Copy + PartialOrd>(v: &[T], outer: usize, len: usize, inner: usize, last: bool) -> Vec<i64> {
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| v[(o * len + j) * inner + i];
                let (mut best, mut bi) = (at(0), 0usize);
                for j in 1..len {
                    let cur = at(j);
                    if (last && cur >= best) || (!last && cur > best) {
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
        TensorData::F32(v) => run(v, outer, len, inner, attrs.select_last),
        TensorData::I32(v) => run(v, outer, len, inner, attrs.select_last),
        TensorData::I64(v) => run(v, outer, len, inner, attrs.select_last),
        d => unreachable!("ArgMax on {:?} passed load-time checks", d.dtype()),
    };
    Ok(Tensor { shape, data: TensorData::I64(out) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn f(t: &Tensor) -> Vec<f32> {
        let TensorData::F32(v) = &t.data else { panic!() };
        v.clone()
    }

    #[test]
    fn softmax_same_bits_on_every_path_and_thread_count() {
        let mut st = 0x1234_5678_9abc_def1u64;
        let v: Vec<f32> = (0..6 * 7 * 2000)
            .map(|i| {
                st ^= st << 13;
                st ^= st >> 7;
                st ^= st << 17;
                match i % 997 {
                    0 => f32::NAN,
                    1 => f32::NEG_INFINITY,
                    2 => -0.0,
                    3 => f32::INFINITY,
                    _ => ((st >> 11) as f64 / (1u64 << 53) as f64 * 200.0 - 100.0) as f32,
                }
            })
            .collect();
        let x = Tensor::f32(vec![6, 7, 2000], v);
        for (axis, legacy) in [(-1, false), (1, false), (0, false), (1, true), (2, true)] {
            let want = f(&softmax(&x, axis, legacy).unwrap());
            for path in KernelPath::available() {
                for threads in [1, 2, 3] {
                    let got = f(&softmax_with(&x, axis, legacy, threads, path).unwrap());
                    assert!(
                        got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "axis {axis} legacy {legacy} {path:?} threads {threads}"
                    );
                }
            }
        }
    }

    #[test]
    fn softmax_short_rows_and_zero_maxima_same_bits() {
        // Rows shorter than the maximum's 16 lanes, and rows whose maximum is a zero of
        // either sign (the vectorized maximum may return the other zero).
        let v = vec![-0.0, 0.0, -1.0, 0.0, -0.0, -2.0, -0.0, -0.0, f32::NAN, 3.0, f32::NAN, -1e30, 1.0];
        let x = Tensor::f32(vec![1, 13], v.clone());
        for len in [1usize, 2, 3, 13] {
            let n = 13 / len * len;
            let x = Tensor::f32(vec![n / len, len], v[..n].to_vec());
            let want = f(&softmax(&x, -1, false).unwrap());
            for path in KernelPath::available() {
                let got = f(&softmax_with(&x, -1, false, 1, path).unwrap());
                assert_eq!(bits(&got), bits(&want), "len {len} {path:?}");
            }
        }
        let _ = x;
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn softmax_axes() {
        let x = Tensor::f32(vec![2, 3], vec![1., 2., 3., 0., 0., 0.]);
        let y = f(&softmax(&x, -1, false).unwrap());
        let e = [crate::math::exp(-2.), crate::math::exp(-1.), 1.0];
        let s = (e[0] + e[1]) + e[2];
        assert_eq!(&y[..3], &[e[0] / s, e[1] / s, e[2] / s]);
        assert_eq!(&y[3..], &[1. / 3., 1. / 3., 1. / 3.]);
        // Along axis 0: columns.
        let y = f(&softmax(&x, 0, false).unwrap());
        let (a, b) = (crate::math::exp(0.0), crate::math::exp(-1.0));
        assert_eq!(y[0], a / (a + b));
        assert_eq!(y[3], b / (a + b));
        // Legacy axis=1 on [2,1,3] coerces to [2,3]; modern axis=1 reduces over the length-1 axis.
        let x3 = Tensor::f32(vec![2, 1, 3], vec![1., 2., 3., 0., 0., 0.]);
        assert_eq!(f(&softmax(&x3, 1, true).unwrap()), f(&softmax(&x, 1, false).unwrap()));
        assert_eq!(f(&softmax(&x3, 1, false).unwrap()), vec![1.0; 6]);
        assert!(softmax(&x, 2, false).is_err());
        // Large values do not overflow thanks to the max subtraction.
        let big = Tensor::f32(vec![2], vec![1000., 1000.]);
        assert_eq!(f(&softmax(&big, -1, false).unwrap()), vec![0.5, 0.5]);
    }

    #[test]
    fn argmax_variants() {
        let l = Limits::default();
        let ctx = Ctx { limits: &l, threads: 1, kernels: crate::kernels::KernelPath::Reference };
        let x = Tensor::f32(vec![2, 3], vec![1., 5., 5., 7., 0., 7.]);
        let am = |axis, keepdims, select_last| argmax(&ArgMaxAttrs { axis, keepdims, select_last }, &x, &ctx).unwrap();
        let y = am(1, true, false);
        assert_eq!((y.shape, y.data), (vec![2, 1], TensorData::I64(vec![1, 0])));
        let y = am(1, false, true);
        assert_eq!((y.shape, y.data), (vec![2], TensorData::I64(vec![2, 2])));
        let y = am(0, false, false);
        assert_eq!((y.shape, y.data), (vec![3], TensorData::I64(vec![1, 0, 1])));
        let y = am(-2, true, false);
        assert_eq!(y.shape, vec![1, 3]);
        let xi = Tensor::new(vec![3], TensorData::I32(vec![-1, 4, 2])).unwrap();
        let y = argmax(&ArgMaxAttrs { axis: 0, keepdims: false, select_last: false }, &xi, &ctx).unwrap();
        assert_eq!((y.shape, y.data), (vec![], TensorData::I64(vec![1])));
    }
}

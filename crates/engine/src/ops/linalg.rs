//! Dot products, MatMul and Gemm.
//!
//! **The dot product** (shared by MatMul, Gemm and Conv; part of the engine spec): for
//! vectors `a`, `b` of length K, split `0..K` into consecutive blocks of
//! [`DOT_BLOCK`] = 256 (the last may be shorter). Within a block,
//! `acc = 0.0; for k in block { acc = fma(a[k], b[k], acc) }` sequentially. The block
//! results are added in order: `total = 0.0; for each block { total = total + acc }`.
//! K = 0 gives +0.0. `fma` is `f32::mul_add`, correctly rounded on every platform.
//!
//! **Gemm**: `y[i,j] = alpha × dot(A'[i,:], B'[:,j])` (one rounded multiply, also when
//! alpha = 1), then, when C is given and `beta ≠ 0`, `y = y + (beta × c[i,j])`
//! (C broadcast to [M, N]; two roundings: the product, then the sum). With `beta = 0`
//! C is not read, as in onnxruntime.
//!
//! Threads only split independent output rows; each output element is computed by the
//! same sequential dot product, so the bits do not depend on the thread count.

use super::elementwise::{broadcast_shape, broadcast_strides};
use super::{Ctx, KResult, KernelError};
use crate::kernels::{self, Epilogue, KernelPath, Mat, PackedB};
use deed_types::{Tensor, TensorData};
use std::sync::Arc;

/// Length of the fixed blocks of a dot product.
pub const DOT_BLOCK: usize = 256;

/// Work (multiply-adds) below which an operator stays on the calling thread.
const PAR_MIN_MACS: usize = 1 << 18;

/// The engine's dot product (see the module docs for the exact order).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot product of unequal lengths");
    let mut total = 0.0f32;
    for (ca, cb) in a.chunks(DOT_BLOCK).zip(b.chunks(DOT_BLOCK)) {
        let mut acc = 0.0f32;
        for (&x, &y) in ca.iter().zip(cb) {
            acc = x.mul_add(y, acc);
        }
        total += acc;
    }
    total
}

/// `rows × cols` row-major → `cols × rows` row-major.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(src.len(), rows * cols, "transpose size");
    let mut out = vec![0.0; src.len()];
    // 32 × 32 tiles keep both the reads and the writes in cache.
    const T: usize = 32;
    for r0 in (0..rows).step_by(T) {
        for c0 in (0..cols).step_by(T) {
            for r in r0..(r0 + T).min(rows) {
                for c in c0..(c0 + T).min(cols) {
                    out[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    out
}

/// Number of worker threads to use for `macs` multiply-adds over `rows` independent rows.
pub(crate) fn threads_for(ctx: &Ctx<'_>, macs: usize, rows: usize) -> usize {
    if macs < PAR_MIN_MACS { 1 } else { ctx.threads.clamp(1, rows.max(1)) }
}

/// Calls `f(row_index, row)` for every `row_len`-long row of `out`, splitting
/// contiguous ranges of rows over `threads` threads of the engine's pool.
pub(crate) fn for_rows(out: &mut [f32], row_len: usize, threads: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if row_len == 0 {
        return;
    }
    let rows = out.len() / row_len;
    if threads <= 1 || rows <= 1 {
        for (i, row) in out.chunks_mut(row_len).enumerate() {
            f(i, row);
        }
        return;
    }
    let per = rows.div_ceil(threads);
    let parts: Vec<(usize, &mut [f32])> = out.chunks_mut(per * row_len).enumerate().collect();
    crate::pool::map(parts, |(t, chunk)| {
        for (i, row) in chunk.chunks_mut(row_len).enumerate() {
            f(t * per + i, row);
        }
    });
}

/// `out[i*n + j] = epi(i, j, dot(a[i*k..][..k], bt[j*k..][..k]))`: a is M×K, bt is N×K.
#[allow(clippy::too_many_arguments)]
fn gemm_nt(
    a: &[f32],
    bt: &[f32],
    m: usize,
    k: usize,
    n: usize,
    threads: usize,
    out: &mut [f32],
    epi: impl Fn(usize, usize, f32) -> f32 + Sync,
) {
    assert!(a.len() == m * k && bt.len() == n * k && out.len() == m * n, "gemm_nt sizes");
    for_rows(out, n, threads, |i, row| {
        let ai = &a[i * k..(i + 1) * k];
        for (j, y) in row.iter_mut().enumerate() {
            *y = epi(i, j, dot(ai, &bt[j * k..(j + 1) * k]));
        }
    });
}

fn f32s(t: &Tensor) -> &[f32] {
    match &t.data {
        TensorData::F32(v) => v,
        d => unreachable!("f32 kernel given {:?} (checked at load)", d.dtype()),
    }
}

/// ONNX MatMul (numpy `matmul` semantics): 1-D operands are promoted and the added
/// dimension removed again; batch dimensions broadcast.
/// `packed_b`, when given, is the constant 2-D B packed at load (`plan::pack_constant_weights`),
/// and `b` then holds only its shape: every path reads the packed copy.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, packed_b: Option<&PackedB>, ctx: &Ctx<'_>) -> KResult<Tensor> {
    let bad = || KernelError::Invalid(format!("cannot multiply shapes {:?} and {:?}", a.shape, b.shape));
    if a.shape.is_empty() || b.shape.is_empty() {
        return Err(bad());
    }
    let a_shape = if a.shape.len() == 1 { vec![1, a.shape[0]] } else { a.shape.clone() };
    let b_shape = if b.shape.len() == 1 { vec![b.shape[0], 1] } else { b.shape.clone() };
    let (ra, rb) = (a_shape.len(), b_shape.len());
    let (m, k) = (a_shape[ra - 2], a_shape[ra - 1]);
    let (k2, n) = (b_shape[rb - 2], b_shape[rb - 1]);
    if k != k2 {
        return Err(bad());
    }
    let (ba, bb) = (&a_shape[..ra - 2], &b_shape[..rb - 2]);
    let batch = broadcast_shape(ba, bb).ok_or_else(bad)?;
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    ctx.check_shape(&out_shape)?;
    ctx.check_work(&[out_shape.iter().product(), k])?;
    let mut final_shape = batch.clone();
    if a.shape.len() > 1 {
        final_shape.push(m);
    }
    if b.shape.len() > 1 {
        final_shape.push(n);
    }
    let nbatch: usize = batch.iter().product();
    let mut out = vec![0.0f32; nbatch * m * n];
    if out.is_empty() {
        return Ok(Tensor { shape: final_shape, data: TensorData::F32(out) });
    }
    let (av, bv) = (f32s(a), f32s(b));
    let (sa, sb) = (broadcast_strides(ba, &batch), broadcast_strides(bb, &batch));
    if ctx.kernels != KernelPath::Reference {
        if let Some(p) = packed_b {
            assert!(bb.is_empty() && p.dims() == (k, n), "packed B matches B's shape (planned at load)");
        }
        // Products `first..` of the batch into `outs`, each on `threads` threads.
        let run = |first: usize, outs: &mut [f32], threads: usize| {
            let mut idx = vec![0usize; batch.len()];
            for (i, chunk) in outs.chunks_mut(m * n).enumerate() {
                let (ia, ib) = batch_offsets(first + i, &batch, &sa, &sb, &mut idx);
                let am = Mat { data: &av[ia * m * k..(ia + 1) * m * k], rs: k, cs: 1 };
                match packed_b {
                    Some(p) => kernels::gemm_packed(ctx.kernels, threads, m, am, p, chunk, n, Epilogue::Canonical),
                    None => {
                        let bm = Mat { data: &bv[ib * k * n..(ib + 1) * k * n], rs: n, cs: 1 };
                        kernels::gemm(ctx.kernels, threads, m, n, k, am, bm, chunk, n, Epilogue::Canonical);
                    }
                }
            }
        };
        // A batch of products (attention heads) is split over the threads a whole product
        // each, rather than each product over all threads: one hand-off to the pool per
        // operator instead of one per product. Each element is still one thread's dot product.
        let threads = threads_for(ctx, nbatch.saturating_mul(m).saturating_mul(n).saturating_mul(k), nbatch);
        if nbatch >= threads && threads > 1 {
            let per = nbatch.div_ceil(threads);
            let parts: Vec<(usize, &mut [f32])> = out.chunks_mut(per * m * n).enumerate().collect();
            crate::pool::map(parts, |(t, part)| run(t * per, part, 1));
        } else {
            run(0, &mut out, ctx.threads);
        }
        // NaNs were made canonical by the products' epilogue.
        return Ok(Tensor { shape: final_shape, data: TensorData::F32(out) });
    }
    // Reference: transpose every B matrix once so the K loop reads contiguous memory.
    let bt = match packed_b {
        Some(p) => p.transposed(),
        None => {
            let nb: usize = bb.iter().product();
            let mut bt = Vec::with_capacity(bv.len());
            for i in 0..nb {
                bt.extend(transpose(&bv[i * k * n..(i + 1) * k * n], k, n));
            }
            bt
        }
    };
    let threads = threads_for(ctx, m.saturating_mul(n).saturating_mul(k), m);
    let mut idx = vec![0usize; batch.len()];
    for (ob, chunk) in out.chunks_mut(m * n).enumerate() {
        let (ia, ib) = batch_offsets(ob, &batch, &sa, &sb, &mut idx);
        let am = &av[ia * m * k..(ia + 1) * m * k];
        let btm = &bt[ib * n * k..(ib + 1) * n * k];
        gemm_nt(am, btm, m, k, n, threads, chunk, |_, _, d| d);
    }
    kernels::canonical_nan(&mut out);
    Ok(Tensor { shape: final_shape, data: TensorData::F32(out) })
}

/// The matrix indices in A and B (by broadcast strides `sa`, `sb`) of output batch `ob`.
fn batch_offsets(ob: usize, batch: &[usize], sa: &[usize], sb: &[usize], idx: &mut [usize]) -> (usize, usize) {
    let (mut ia, mut ib) = (0, 0);
    let mut rem = ob;
    for d in (0..batch.len()).rev() {
        idx[d] = rem % batch[d];
        rem /= batch[d];
        ia += idx[d] * sa[d];
        ib += idx[d] * sb[d];
    }
    (ia, ib)
}

/// Gemm attributes.
#[derive(Clone, Debug)]
pub(crate) struct GemmAttrs {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    /// B' (after `trans_b`), when B is a constant packed at load
    /// (`plan::pack_constant_weights`); B then holds only its shape, and every path reads
    /// this instead.
    pub packed_b: Option<Arc<PackedB>>,
}

/// ONNX Gemm: `alpha·A'·B' + beta·C` with the order in the module docs.
pub(crate) fn gemm(g: &GemmAttrs, a: &Tensor, b: &Tensor, c: Option<&Tensor>, ctx: &Ctx<'_>) -> KResult<Tensor> {
    if a.shape.len() != 2 || b.shape.len() != 2 {
        return Err(KernelError::Invalid(format!("A and B must be 2-D, got {:?} and {:?}", a.shape, b.shape)));
    }
    let (m, k) = if g.trans_a { (a.shape[1], a.shape[0]) } else { (a.shape[0], a.shape[1]) };
    let (k2, n) = if g.trans_b { (b.shape[1], b.shape[0]) } else { (b.shape[0], b.shape[1]) };
    if k != k2 {
        return Err(KernelError::Invalid(format!(
            "inner dimensions differ: A' is [{m}, {k}] and B' is [{k2}, {n}] (transA={}, transB={})",
            g.trans_a as u8, g.trans_b as u8
        )));
    }
    let out_shape = vec![m, n];
    ctx.check_shape(&out_shape)?;
    ctx.check_work(&[m, n, k])?;
    let c = c.filter(|_| g.beta != 0.0);
    let (cv, cs) = match c {
        Some(c) => {
            if broadcast_shape(&c.shape, &out_shape).as_deref() != Some(&out_shape[..]) {
                return Err(KernelError::Invalid(format!("C of shape {:?} does not broadcast to [{m}, {n}]", c.shape)));
            }
            (f32s(c), broadcast_strides(&c.shape, &out_shape))
        }
        None => (&[][..], vec![0, 0]),
    };
    let mut out = vec![0.0f32; m * n];
    if out.is_empty() {
        return Ok(Tensor { shape: out_shape, data: TensorData::F32(out) });
    }
    let (alpha, beta, has_c) = (g.alpha, g.beta, c.is_some());
    if ctx.kernels != KernelPath::Reference {
        let (av, bv) = (f32s(a), f32s(b));
        let am = if g.trans_a { Mat { data: av, rs: 1, cs: m } } else { Mat { data: av, rs: k, cs: 1 } };
        match g.packed_b.as_deref() {
            Some(p) => {
                assert_eq!(p.dims(), (k, n), "packed B matches B's shape (planned at load)");
                kernels::gemm_packed(ctx.kernels, ctx.threads, m, am, p, &mut out, n, Epilogue::None)
            }
            None => {
                let bm = if g.trans_b { Mat { data: bv, rs: 1, cs: k } } else { Mat { data: bv, rs: n, cs: 1 } };
                kernels::gemm(ctx.kernels, ctx.threads, m, n, k, am, bm, &mut out, n, Epilogue::None);
            }
        }
        // The epilogue of the reference, element by element (no fusing, same roundings).
        for (i, row) in out.chunks_mut(n).enumerate() {
            if has_c && cs[1] == 1 {
                // A row of C (a bias, or C itself): the same expression, vectorizable.
                for (y, &c) in row.iter_mut().zip(&cv[i * cs[0]..i * cs[0] + n]) {
                    *y = alpha * *y + beta * c;
                }
            } else if has_c {
                for (j, y) in row.iter_mut().enumerate() {
                    *y = alpha * *y + beta * cv[i * cs[0] + j * cs[1]];
                }
            } else {
                row.iter_mut().for_each(|y| *y *= alpha);
            }
        }
        kernels::canonical_nan(&mut out);
        return Ok(Tensor { shape: out_shape, data: TensorData::F32(out) });
    }
    let a_rm = if g.trans_a { transpose(f32s(a), k, m) } else { f32s(a).to_vec() };
    let bt = match g.packed_b.as_deref() {
        Some(p) => p.transposed(),
        None if g.trans_b => f32s(b).to_vec(),
        None => transpose(f32s(b), k, n),
    };
    let threads = threads_for(ctx, m.saturating_mul(n).saturating_mul(k), m);
    gemm_nt(&a_rm, &bt, m, k, n, threads, &mut out, |i, j, d| {
        let y = alpha * d;
        if has_c { y + beta * cv[i * cs[0] + j * cs[1]] } else { y }
    });
    kernels::canonical_nan(&mut out);
    Ok(Tensor { shape: out_shape, data: TensorData::F32(out) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use proptest::prelude::*;

    fn ctx(l: &Limits, threads: usize) -> Ctx<'_> {
        Ctx { limits: l, threads, kernels: KernelPath::Reference }
    }

    fn data(t: &Tensor) -> Vec<f32> {
        f32s(t).to_vec()
    }

    #[test]
    fn dot_order_is_blocked() {
        // 1e8 + 1 + ... in one block loses the ones; blocks of 256 keep them in the
        // second block's own accumulator.
        let mut a = vec![1.0f32; 512];
        a[0] = 1e8;
        let b = vec![1.0f32; 512];
        let mut acc = 0.0f32;
        for x in &a[..256] {
            acc = x.mul_add(1.0, acc);
        }
        let want = acc + 256.0;
        assert_eq!(dot(&a, &b), want);
        assert_eq!(dot(&[], &[]), 0.0);
        assert_eq!(dot(&[2.0, 3.0], &[4.0, 5.0]), 23.0);
    }

    #[test]
    fn matmul_hand_computed() {
        let l = Limits::default();
        let a = Tensor::f32(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let b = Tensor::f32(vec![3, 2], vec![7., 8., 9., 10., 11., 12.]);
        let y = matmul(&a, &b, None, &ctx(&l, 1)).unwrap();
        assert_eq!(y.shape, vec![2, 2]);
        assert_eq!(data(&y), vec![58., 64., 139., 154.]);
        // 1-D x 2-D and 2-D x 1-D.
        let v = Tensor::f32(vec![3], vec![1., 0., -1.]);
        let y = matmul(&v, &b, None, &ctx(&l, 1)).unwrap();
        assert_eq!((y.shape.clone(), data(&y)), (vec![2], vec![-4., -4.]));
        let y = matmul(&a, &v, None, &ctx(&l, 1)).unwrap();
        assert_eq!((y.shape.clone(), data(&y)), (vec![2], vec![-2., -2.]));
        // Batch broadcast: [2,1,2,3] x [3,3,2] -> [2,3,2,2].
        let a4 = Tensor::f32(vec![2, 1, 2, 3], (0..12).map(|x| x as f32).collect());
        let b3 = Tensor::f32(vec![3, 3, 2], (0..18).map(|x| x as f32).collect());
        let y = matmul(&a4, &b3, None, &ctx(&l, 1)).unwrap();
        assert_eq!(y.shape, vec![2, 3, 2, 2]);
        // Batch (1, 2): A[1] = [[6,7,8],[9,10,11]], B[2] = [[12,13],[14,15],[16,17]].
        let yv = data(&y);
        let off = (3 + 2) * 4;
        assert_eq!(
            &yv[off..off + 4],
            &[
                6. * 12. + 7. * 14. + 8. * 16.,
                6. * 13. + 7. * 15. + 8. * 17.,
                9. * 12. + 10. * 14. + 11. * 16.,
                9. * 13. + 10. * 15. + 11. * 17.
            ]
        );
        assert!(matmul(&a, &a, None, &ctx(&l, 1)).is_err());
    }

    #[test]
    fn gemm_hand_computed() {
        let l = Limits::default();
        let a = Tensor::f32(vec![3, 2], vec![1., 4., 2., 5., 3., 6.]); // A^T of [[1,2,3],[4,5,6]]
        let b = Tensor::f32(vec![2, 3], vec![7., 9., 11., 8., 10., 12.]); // B^T of [[7,8],[9,10],[11,12]]
        let c = Tensor::f32(vec![2], vec![1., -1.]);
        let g = GemmAttrs { alpha: 2.0, beta: 0.5, trans_a: true, trans_b: true, packed_b: None };
        let y = gemm(&g, &a, &b, Some(&c), &ctx(&l, 1)).unwrap();
        assert_eq!(y.shape, vec![2, 2]);
        assert_eq!(data(&y), vec![116.5, 127.5, 278.5, 307.5]);
        let g = GemmAttrs { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false, packed_b: None };
        let c = Tensor::f32(vec![2, 1], vec![1., 2.]);
        let y = gemm(&g, &b, &a, Some(&c), &ctx(&l, 1)).unwrap();
        assert_eq!((y.shape.clone(), data(&y)), (vec![2, 2], vec![59., 140., 66., 156.]));
        assert!(gemm(&g, &a, &a, None, &ctx(&l, 1)).is_err());
        let bad_c = Tensor::f32(vec![2], vec![0.; 2]);
        assert!(gemm(&g, &a, &b, Some(&bad_c), &ctx(&l, 1)).is_err());
    }

    #[test]
    fn threaded_matmul_is_bit_identical() {
        let l = Limits::default();
        // 70 x 300 x 65: over the threading threshold, rows not divisible by the thread count.
        let a = Tensor::f32(vec![2, 70, 300], (0..42_000).map(|i| ((i * 7919 % 1013) as f32) / 507.0 - 1.0).collect());
        let b = Tensor::f32(vec![300, 65], (0..19_500).map(|i| ((i * 104_729 % 997) as f32) / 499.0 - 1.0).collect());
        assert!(threads_for(&ctx(&l, 3), 70 * 300 * 65, 70) == 3);
        let one = matmul(&a, &b, None, &ctx(&l, 1)).unwrap();
        for t in [2, 3, 8] {
            assert_eq!(matmul(&a, &b, None, &ctx(&l, t)).unwrap(), one, "threads = {t}");
        }
        // Spot-check one element against the spec's dot product.
        let (av, bv) = (data(&a), data(&b));
        let (i, j) = (69 + 70, 64);
        let col: Vec<f32> = (0..300).map(|k| bv[k * 65 + j]).collect();
        assert_eq!(data(&one)[i * 65 + j].to_bits(), dot(&av[i * 300..(i + 1) * 300], &col).to_bits());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Batched, broadcast MatMul on every path equals the reference bit for bit.
        #[test]
        fn matmul_paths_match_reference(
            m in 1usize..12, k in 0usize..600, n in 1usize..40, batch in 1usize..4, bcast_b: bool, seed: u64,
        ) {
            let l = Limits::default();
            let mut s = seed | 1;
            let mut rnd = || {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (s >> 33) as u32;
                match r % 89 { 0 => f32::NAN, 1 => f32::INFINITY, 2 => -0.0, 3 => 1e-41, _ => (r % 4000) as f32 / 1999.0 - 1.0 }
            };
            let a = Tensor::f32(vec![batch, m, k], (0..batch * m * k).map(|_| rnd()).collect());
            let bshape = if bcast_b { vec![k, n] } else { vec![batch, k, n] };
            let b = Tensor::f32(bshape.clone(), (0..bshape.iter().product::<usize>()).map(|_| rnd()).collect());
            let want = matmul(&a, &b, None, &ctx(&l, 1)).unwrap();
            let wb: Vec<u32> = data(&want).iter().map(|x| x.to_bits()).collect();
            // A constant 2-D B is packed at load and keeps only its shape; every path then
            // reads the packed copy.
            let packed = bcast_b.then(|| PackedB::new(Mat { data: f32s(&b), rs: n, cs: 1 }, k, n, m <= 2));
            let shape_only = Tensor { shape: b.shape.clone(), data: TensorData::F32(Vec::new()) };
            for path in KernelPath::available() {
                for threads in [1, 3] {
                    for p in [None, packed.as_ref()] {
                        let bb = if p.is_some() { &shape_only } else { &b };
                        let got = matmul(&a, bb, p, &Ctx { limits: &l, threads, kernels: path }).unwrap();
                        let gb: Vec<u32> = data(&got).iter().map(|x| x.to_bits()).collect();
                        prop_assert_eq!(&wb, &gb, "{:?} threads {} packed {}", path, threads, p.is_some());
                    }
                }
            }
        }

        #[test]
        fn gemm_matches_reference_and_threads(m in 1usize..20, k in 0usize..600, n in 1usize..40, seed in any::<u64>(), ta: bool, tb: bool) {
            let l = Limits::default();
            let mut s = seed;
            let mut rnd = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5 };
            let av: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let bv: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            let cv: Vec<f32> = (0..n).map(|_| rnd()).collect();
            let a = Tensor::f32(if ta { vec![k, m] } else { vec![m, k] }, av.clone());
            let b = Tensor::f32(if tb { vec![n, k] } else { vec![k, n] }, bv.clone());
            let c = Tensor::f32(vec![n], cv.clone());
            let g = GemmAttrs { alpha: 0.75, beta: 1.5, trans_a: ta, trans_b: tb, packed_b: None };
            let y1 = gemm(&g, &a, &b, Some(&c), &ctx(&l, 1)).unwrap();
            let y4 = gemm(&g, &a, &b, Some(&c), &ctx(&l, 4)).unwrap();
            prop_assert_eq!(&y1, &y4);
            // B packed as at load (B' = B or B transposed).
            let bm = if tb { Mat { data: &bv, rs: 1, cs: k } } else { Mat { data: &bv, rs: n, cs: 1 } };
            let gp = GemmAttrs { packed_b: Some(Arc::new(PackedB::new(bm, k, n, ta))), ..g.clone() };
            let shape_only = Tensor { shape: b.shape.clone(), data: TensorData::F32(Vec::new()) };
            for path in KernelPath::available() {
                for threads in [1, 2] {
                    for g in [&g, &gp] {
                        let bb = if g.packed_b.is_some() { &shape_only } else { &b };
                        let yp = gemm(g, &a, bb, Some(&c), &Ctx { limits: &l, threads, kernels: path }).unwrap();
                        prop_assert_eq!(&y1, &yp, "{:?} packed {}", path, g.packed_b.is_some());
                    }
                }
            }
            // Reference straight from the spec text.
            let at = |i: usize, kk: usize| if ta { av[kk * m + i] } else { av[i * k + kk] };
            let bt = |kk: usize, j: usize| if tb { bv[j * k + kk] } else { bv[kk * n + j] };
            let yv = data(&y1);
            for i in 0..m {
                for j in 0..n {
                    let mut total = 0.0f32;
                    let mut kk = 0;
                    while kk < k {
                        let mut acc = 0.0f32;
                        for q in kk..(kk + DOT_BLOCK).min(k) { acc = at(i, q).mul_add(bt(q, j), acc); }
                        total += acc;
                        kk += DOT_BLOCK;
                    }
                    let want = 0.75 * total + 1.5 * cv[j];
                    prop_assert_eq!(yv[i * n + j].to_bits(), want.to_bits());
                }
            }
        }
    }
}

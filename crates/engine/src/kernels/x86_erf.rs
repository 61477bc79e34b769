//! The AVX-512 and AVX2 fast passes of Erf and exact Gelu ([`Fast512`], [`Fast256`], at the
//! end; see `erf`'s module docs), and AVX2 and AVX-512F blocks of the engine's f64 `erf` series ([`crate::math::erf64`]): one
//! argument per f64 lane, 4 or 8 lanes per register, several registers side by side (their
//! series are independent chains of divisions, which the CPU overlaps).
//!
//! Every lane performs exactly the scalar operations, in the same order, with the same
//! IEEE-754 instructions (`×`, `÷`, `+`, compare; no fused multiply-add, none being in the
//! scalar series): `t ← (t · (−x²)) / n`, `term ← t / (2n + 1)`, the stop test
//! `n ≥ x² ∧ |term| < |sum| · 2⁻⁵⁴`, then `sum ← sum + term` unless the lane stopped, and
//! finally `2/√π · sum`. A lane that stopped is frozen: its sum is never written again, so
//! the extra rounds the other lanes need cannot touch its bits (its `t` is zeroed so that
//! it cannot run into slow subnormal arithmetic either). The loop ends when every lane of
//! every register has stopped or after the scalar's last term (n = 79). Lanes the scalar answers without the
//! series — NaN (returned as is), `|x| ≥ 4` (`±1`) and `±0` (whose series sum is `+0`:
//! `−0 + (+0) = +0` at the first term and `+0` from then on) — take no part in it.
//!
//! The `unsafe` code here only calls the intrinsics: each block type can only be built after
//! runtime detection of its CPU features, and loads and stores go through fixed-size arrays.
#![allow(unsafe_code)]

use super::erf::{BATCH, MID};
use super::erf_table::{COEF, DEG, RHO};
use crate::math::{ERF_CUTOFF, ERF_TERMS, TWO_OVER_SQRT_PI, TWO_POW_M54};
use std::arch::x86_64::*;

/// The sign bit of an f64.
const SIGN: i64 = i64::MIN;

/// AVX-512F blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Erf512(());

impl Erf512 {
    /// `Some` only when the CPU has AVX-512F.
    pub(crate) fn new() -> Option<Self> {
        is_x86_feature_detected!("avx512f").then_some(Erf512(()))
    }

    /// `xs[i] ← erf64(xs[i])` for the `L` values, `L` = 8, 16, 32 or 64 (`L / 8`
    /// registers of 8 lanes run the series side by side).
    #[inline]
    pub(crate) fn block<const L: usize>(&self, xs: &mut [f64; L]) {
        let (v, rest) = xs.as_chunks_mut::<8>();
        assert!(rest.is_empty(), "whole registers");
        // SAFETY: `self` exists only if the CPU has AVX-512F (`new`); the kernel reads and
        // writes exactly the elements of the arrays.
        unsafe {
            match v.len() {
                1 => erf512::<1>(v.try_into().expect("1")),
                2 => erf512::<2>(v.try_into().expect("2")),
                4 => erf512::<4>(v.try_into().expect("4")),
                8 => erf512::<8>(v.try_into().expect("8")),
                _ => unreachable!("1, 2, 4 or 8 registers"),
            }
        }
    }
}

/// AVX2 blocks (the AVX2 path requires AVX2 and FMA; the series uses neither FMA nor
/// integer AVX2, only AVX double-precision arithmetic).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Erf256(());

impl Erf256 {
    /// `Some` only when the CPU has AVX2 and FMA (the requirements of the AVX2 path).
    pub(crate) fn new() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Erf256(()))
    }

    /// `xs[i] ← erf64(xs[i])` for the `L` values, `L` = 4, 8, 16 or 32 (`L / 4`
    /// registers of 4 lanes run the series side by side).
    #[inline]
    pub(crate) fn block<const L: usize>(&self, xs: &mut [f64; L]) {
        let (v, rest) = xs.as_chunks_mut::<4>();
        assert!(rest.is_empty(), "whole registers");
        // SAFETY: `self` exists only if the CPU has AVX2 (`new`); the kernel reads and
        // writes exactly the elements of the arrays.
        unsafe {
            match v.len() {
                1 => erf256::<1>(v.try_into().expect("1")),
                2 => erf256::<2>(v.try_into().expect("2")),
                4 => erf256::<4>(v.try_into().expect("4")),
                8 => erf256::<8>(v.try_into().expect("8")),
                _ => unreachable!("1, 2, 4 or 8 registers"),
            }
        }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn erf512<const V: usize>(xs: &mut [[f64; 8]; V]) {
    let zero = _mm512_setzero_pd();
    let cutoff = _mm512_set1_pd(ERF_CUTOFF);
    let quarter_ulp = _mm512_set1_pd(TWO_POW_M54);
    let (mut x, mut x2, mut neg_x2) = ([zero; V], [zero; V], [zero; V]);
    let (mut t, mut sum, mut active) = ([zero; V], [zero; V], [0u8; V]);
    for v in 0..V {
        // SAFETY: the array holds 8 f64s; unaligned load.
        x[v] = unsafe { _mm512_loadu_pd(xs[v].as_ptr()) };
        // The series lanes: |x| < 4 and x ≠ 0 (both false for NaN).
        active[v] = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(_mm512_abs_pd(x[v]), cutoff)
            & _mm512_cmp_pd_mask::<_CMP_NEQ_OQ>(x[v], zero);
        let xv = _mm512_maskz_mov_pd(active[v], x[v]);
        x2[v] = _mm512_mul_pd(xv, xv);
        neg_x2[v] = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(x2[v]), _mm512_set1_epi64(SIGN)));
        (t[v], sum[v]) = (xv, xv);
    }
    let mut n = 1;
    while active.iter().any(|&a| a != 0) && n < ERF_TERMS {
        let nf = _mm512_set1_pd(n as f64);
        let df = _mm512_set1_pd((2 * n + 1) as f64);
        for v in 0..V {
            t[v] = _mm512_div_pd(_mm512_mul_pd(t[v], neg_x2[v]), nf);
            let term = _mm512_div_pd(t[v], df);
            let stop = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(nf, x2[v])
                & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(
                    _mm512_abs_pd(term),
                    _mm512_mul_pd(_mm512_abs_pd(sum[v]), quarter_ulp),
                );
            active[v] &= !stop;
            sum[v] = _mm512_mask_add_pd(sum[v], active[v], sum[v], term);
            t[v] = _mm512_maskz_mov_pd(active[v], t[v]);
        }
        n += 1;
    }
    for v in 0..V {
        let mut r = _mm512_mul_pd(_mm512_set1_pd(TWO_OVER_SQRT_PI), sum[v]);
        // |x| ≥ 4: ±1 with the sign of x.
        let big = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(_mm512_abs_pd(x[v]), cutoff);
        let one = _mm512_castsi512_pd(_mm512_or_si512(
            _mm512_and_si512(_mm512_castpd_si512(x[v]), _mm512_set1_epi64(SIGN)),
            _mm512_castpd_si512(_mm512_set1_pd(1.0)),
        ));
        r = _mm512_mask_mov_pd(r, big, one);
        // NaN: the argument itself.
        r = _mm512_mask_mov_pd(r, _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(x[v], x[v]), x[v]);
        // SAFETY: as for the load.
        unsafe { _mm512_storeu_pd(xs[v].as_mut_ptr(), r) }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn erf256<const V: usize>(xs: &mut [[f64; 4]; V]) {
    let zero = _mm256_setzero_pd();
    let sign = _mm256_castsi256_pd(_mm256_set1_epi64x(SIGN));
    let cutoff = _mm256_set1_pd(ERF_CUTOFF);
    let quarter_ulp = _mm256_set1_pd(TWO_POW_M54);
    let (mut x2, mut neg_x2) = ([zero; V], [zero; V]);
    let (mut t, mut sum, mut active) = ([zero; V], [zero; V], [zero; V]);
    for v in 0..V {
        // SAFETY: the array holds 4 f64s; unaligned load.
        let x = unsafe { _mm256_loadu_pd(xs[v].as_ptr()) };
        // The series lanes (all-ones): |x| < 4 and x ≠ 0 (both false for NaN).
        active[v] = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_andnot_pd(sign, x), cutoff),
            _mm256_cmp_pd::<_CMP_NEQ_OQ>(x, zero),
        );
        let xv = _mm256_and_pd(active[v], x);
        x2[v] = _mm256_mul_pd(xv, xv);
        neg_x2[v] = _mm256_xor_pd(x2[v], sign);
        (t[v], sum[v]) = (xv, xv);
    }
    let mut n = 1;
    while active.iter().any(|&a| _mm256_movemask_pd(a) != 0) && n < ERF_TERMS {
        let nf = _mm256_set1_pd(n as f64);
        let df = _mm256_set1_pd((2 * n + 1) as f64);
        for v in 0..V {
            t[v] = _mm256_div_pd(_mm256_mul_pd(t[v], neg_x2[v]), nf);
            let term = _mm256_div_pd(t[v], df);
            let stop = _mm256_and_pd(
                _mm256_cmp_pd::<_CMP_GE_OQ>(nf, x2[v]),
                _mm256_cmp_pd::<_CMP_LT_OQ>(
                    _mm256_andnot_pd(sign, term),
                    _mm256_mul_pd(_mm256_andnot_pd(sign, sum[v]), quarter_ulp),
                ),
            );
            active[v] = _mm256_andnot_pd(stop, active[v]);
            sum[v] = _mm256_blendv_pd(sum[v], _mm256_add_pd(sum[v], term), active[v]);
            t[v] = _mm256_and_pd(t[v], active[v]);
        }
        n += 1;
    }
    for v in 0..V {
        // SAFETY: as above.
        let x = unsafe { _mm256_loadu_pd(xs[v].as_ptr()) };
        let mut r = _mm256_mul_pd(_mm256_set1_pd(TWO_OVER_SQRT_PI), sum[v]);
        // |x| ≥ 4: ±1 with the sign of x.
        let big = _mm256_cmp_pd::<_CMP_GE_OQ>(_mm256_andnot_pd(sign, x), cutoff);
        r = _mm256_blendv_pd(r, _mm256_or_pd(_mm256_and_pd(x, sign), _mm256_set1_pd(1.0)), big);
        // NaN: the argument itself.
        r = _mm256_blendv_pd(r, x, _mm256_cmp_pd::<_CMP_UNORD_Q>(x, x));
        // SAFETY: as for the load.
        unsafe { _mm256_storeu_pd(xs[v].as_mut_ptr(), r) }
    }
}

/// The AVX-512 fast pass of [`super::erf::erf_f32_many`]: eight elements per register,
/// each lane the operations of [`super::erf::fast_one`] in the same order, with the
/// 16-entry columns of the table picked per lane by `vpermt2pd` (no gathers). The bits
/// are those of `fast_one`: the same IEEE operations (`vfmadd` is the fused multiply-add
/// of `mul_add`; `vcvtpd2ps` rounds to nearest even as `as f32` does), the same selects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fast512(());

impl Fast512 {
    /// `Some` only when the CPU has AVX-512F (AVX2 and FMA come with it, and are checked).
    pub(crate) fn new() -> Option<Self> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
            .then_some(Fast512(()))
    }

    /// The fast pass over `x` (at most [`BATCH`] elements): certain results to `out`,
    /// the indices of the others to `slow`; returns their number.
    #[inline]
    pub(crate) fn pass(&self, erf: bool, x: &[f32], out: &mut [f32], slow: &mut [u16; BATCH]) -> usize {
        assert!(x.len() == out.len() && x.len() <= BATCH, "fast pass: lengths");
        // SAFETY: `self` exists only if the CPU has the features (`new`); the kernel reads
        // and writes through fixed-size chunks of the slices.
        unsafe { if erf { pass512::<true>(x, out, slow) } else { pass512::<false>(x, out, slow) } }
    }
}

/// One column of the table as the two halves `vpermt2pd` selects from.
#[target_feature(enable = "avx512f")]
#[inline]
fn column(c: &[f64; 16]) -> (__m512d, __m512d) {
    let (lo, hi) = c.split_at(8);
    // SAFETY: 8 f64s each; unaligned loads.
    unsafe { (_mm512_loadu_pd(lo.as_ptr()), _mm512_loadu_pd(hi.as_ptr())) }
}

#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn pass512<const ERF: bool>(x: &[f32], out: &mut [f32], slow: &mut [u16; BATCH]) -> usize {
    let sign = _mm512_set1_epi64(SIGN);
    let cutoff = _mm512_set1_pd(ERF_CUTOFF);
    let quarter = _mm512_set1_pd(0.25);
    let four = _mm512_set1_pd(4.0);
    let one = _mm512_set1_pd(1.0);
    let half = _mm512_set1_pd(0.5);
    let mid = column(&MID);
    let rho = column(&RHO);
    let mut n = 0;
    let (xs, _) = x.as_chunks::<8>();
    let (os, _) = out.as_chunks_mut::<8>();
    let whole = xs.len() * 8;
    for (j, (xv, ov)) in xs.iter().zip(os.iter_mut()).enumerate() {
        // SAFETY: 8 f32s; unaligned load.
        let v = unsafe { _mm256_loadu_ps(xv.as_ptr()) };
        let d = _mm512_cvtps_pd(v);
        let a = if ERF { d } else { _mm512_mul_pd(d, _mm512_set1_pd(std::f64::consts::FRAC_1_SQRT_2)) };
        let m = _mm512_abs_pd(a);
        // The lanes of the approximation: |a| < 4 (false for NaN).
        let small = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(m, cutoff);
        let first = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(m, quarter);
        // i = trunc(4m) (exact product); outside [0, 4) the index is garbage and unused.
        let i = _mm512_cvtepi32_epi64(_mm512_cvttpd_epi32(_mm512_mul_pd(m, four)));
        let pick = |c: (__m512d, __m512d)| _mm512_permutex2var_pd(c.0, i, c.1);
        // t = m·m in interval 0, else m − (2i+1)/8.
        let t = _mm512_mask_mul_pd(_mm512_sub_pd(m, pick(mid)), first, m, m);
        let mut p = pick(column(&COEF[DEG]));
        for c in COEF[..DEG].iter().rev() {
            p = _mm512_fmadd_pd(p, t, pick(column(c)));
        }
        let e = _mm512_mask_mul_pd(p, first, m, p);
        let r = _mm512_mul_pd(e, pick(rho));
        let (lo, hi) = (_mm512_sub_pd(e, r), _mm512_add_pd(e, r));
        let sign_a = _mm512_and_si512(_mm512_castpd_si512(a), sign);
        // The f32 results at both ends, and the result of lanes |a| ≥ 4 (±1 ↦ finish).
        let (l, h) = if ERF {
            (_mm512_cvtpd_ps(lo), _mm512_cvtpd_ps(_mm512_mask_mov_pd(one, small, hi)))
        } else {
            let signed = |e: __m512d| _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(e), sign_a));
            let g = |e: __m512d| _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_mul_pd(half, d), _mm512_add_pd(one, e)));
            // |a| ≥ 4: e = ±1 with the sign of a.
            (g(signed(lo)), g(signed(_mm512_mask_mov_pd(one, small, hi))))
        };
        let (l, h) = (_mm512_castps256_ps512(l), _mm512_castps256_ps512(h));
        let agree = _mm512_mask_cmpeq_epi32_mask(0xff, _mm512_castps_si512(l), _mm512_castps_si512(h));
        let unsure = (small as u16) & !agree & 0xff;
        let v512 = _mm512_castps256_ps512(v);
        let mut res = h;
        if ERF {
            // |result| with the sign of v (h ≥ 0 in every lane but NaN ones).
            let sv = _mm512_and_si512(_mm512_castps_si512(v512), _mm512_set1_epi32(i32::MIN));
            res = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(h), sv));
        }
        // NaN: v itself.
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v512, v512) & 0xff;
        res = _mm512_mask_mov_ps(res, nan, v512);
        // SAFETY: 8 f32s; unaligned store.
        unsafe { _mm256_storeu_ps(ov.as_mut_ptr(), _mm512_castps512_ps256(res)) };
        let mut u = unsure;
        while u != 0 {
            slow[n] = (j * 8 + u.trailing_zeros() as usize) as u16;
            n += 1;
            u &= u - 1;
        }
    }
    super::erf::fast_pass_portable(ERF, &x[whole..], &mut out[whole..], slow, whole, n)
}

/// The AVX2 fast pass of [`super::erf::erf_f32_many`]: four elements per register, each
/// lane the operations of [`super::erf::fast_one`] in the same order, the table's columns
/// read with `vgatherdpd` (indices 0–15 only: lanes outside `[0, 4)` compute on 0 and are
/// not used). Same bits as `fast_one`, as for [`Fast512`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fast256(());

impl Fast256 {
    /// `Some` only when the CPU has AVX2 and FMA.
    pub(crate) fn new() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Fast256(()))
    }

    /// As [`Fast512::pass`].
    #[inline]
    pub(crate) fn pass(&self, erf: bool, x: &[f32], out: &mut [f32], slow: &mut [u16; BATCH]) -> usize {
        assert!(x.len() == out.len() && x.len() <= BATCH, "fast pass: lengths");
        // SAFETY: `self` exists only if the CPU has the features (`new`); the kernel reads
        // and writes through fixed-size chunks of the slices, and gathers with indices
        // 0..16 from 16-element tables.
        unsafe { if erf { pass256::<true>(x, out, slow) } else { pass256::<false>(x, out, slow) } }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn pass256<const ERF: bool>(x: &[f32], out: &mut [f32], slow: &mut [u16; BATCH]) -> usize {
    let sign = _mm256_castsi256_pd(_mm256_set1_epi64x(SIGN));
    let cutoff = _mm256_set1_pd(ERF_CUTOFF);
    let quarter = _mm256_set1_pd(0.25);
    let four = _mm256_set1_pd(4.0);
    let one = _mm256_set1_pd(1.0);
    let half = _mm256_set1_pd(0.5);
    let sign32 = _mm_castsi128_ps(_mm_set1_epi32(i32::MIN));
    let mut n = 0;
    let (xs, _) = x.as_chunks::<4>();
    let (os, _) = out.as_chunks_mut::<4>();
    let whole = xs.len() * 4;
    for (j, (xv, ov)) in xs.iter().zip(os.iter_mut()).enumerate() {
        // SAFETY: 4 f32s; unaligned load.
        let v = unsafe { _mm_loadu_ps(xv.as_ptr()) };
        let d = _mm256_cvtps_pd(v);
        let a = if ERF { d } else { _mm256_mul_pd(d, _mm256_set1_pd(std::f64::consts::FRAC_1_SQRT_2)) };
        // The lanes of the approximation (all-ones): |a| < 4 (false for NaN); m = |a|
        // there, 0 elsewhere.
        let small = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_andnot_pd(sign, a), cutoff);
        let m = _mm256_and_pd(small, _mm256_andnot_pd(sign, a));
        let first = _mm256_cmp_pd::<_CMP_LT_OQ>(m, quarter);
        // i = trunc(4m) ∈ 0..16 (exact product).
        let i = _mm256_cvttpd_epi32(_mm256_mul_pd(m, four));
        // SAFETY: 16-element tables, indices in 0..16.
        let pick = |c: &[f64; 16]| unsafe { _mm256_i32gather_pd::<8>(c.as_ptr(), i) };
        let t = _mm256_blendv_pd(_mm256_sub_pd(m, pick(&MID)), _mm256_mul_pd(m, m), first);
        let mut p = pick(&COEF[DEG]);
        for c in COEF[..DEG].iter().rev() {
            p = _mm256_fmadd_pd(p, t, pick(c));
        }
        let e = _mm256_blendv_pd(p, _mm256_mul_pd(m, p), first);
        let r = _mm256_mul_pd(e, pick(&RHO));
        let (lo, hi) = (_mm256_sub_pd(e, r), _mm256_add_pd(e, r));
        // |a| ≥ 4 and NaN lanes: e = 1 (signed below for Gelu).
        let hi = _mm256_blendv_pd(one, hi, small);
        let (l, h) = if ERF {
            (_mm256_cvtpd_ps(lo), _mm256_cvtpd_ps(hi))
        } else {
            let sign_a = _mm256_and_pd(a, sign);
            let g = |e: __m256d| {
                _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_mul_pd(half, d), _mm256_add_pd(one, _mm256_or_pd(e, sign_a))))
            };
            (g(lo), g(hi))
        };
        let agree = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_castps_si128(l), _mm_castps_si128(h))));
        let unsure = _mm256_movemask_pd(small) & !agree & 0xf;
        // Erf: |result| with the sign of v (h ≥ 0 in every lane but NaN ones).
        let res = if ERF { _mm_or_ps(h, _mm_and_ps(v, sign32)) } else { h };
        // NaN: v itself.
        let res = _mm_blendv_ps(res, v, _mm_cmp_ps::<_CMP_UNORD_Q>(v, v));
        // SAFETY: 4 f32s; unaligned store.
        unsafe { _mm_storeu_ps(ov.as_mut_ptr(), res) };
        let mut u = unsure;
        while u != 0 {
            slow[n] = (j * 4 + u.trailing_zeros() as usize) as u16;
            n += 1;
            u &= u - 1;
        }
    }
    super::erf::fast_pass_portable(ERF, &x[whole..], &mut out[whole..], slow, whole, n)
}

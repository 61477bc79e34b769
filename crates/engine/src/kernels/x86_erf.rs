//! AVX2 and AVX-512F blocks of the engine's f64 `erf` series ([`crate::math::erf64`]): 4 or
//! 8 arguments at once, one per f64 lane.
//!
//! Every lane performs exactly the scalar operations, in the same order, with the same
//! IEEE-754 instructions (`×`, `÷`, `+`, compare; no fused multiply-add, none being in the
//! scalar series): `t ← (t · (−x²)) / n`, `term ← t / (2n + 1)`, the stop test
//! `n ≥ x² ∧ |term| < |sum| · 2⁻⁵⁴`, then `sum ← sum + term` unless the lane stopped, and
//! finally `2/√π · sum`. A lane that stopped is frozen: its sum is never written again, so
//! the extra rounds the other lanes need cannot touch its bits (its `t` is zeroed so that
//! it cannot run into slow subnormal arithmetic either). The loop ends when every lane has
//! stopped or after the scalar's last term (n = 79). Lanes the scalar answers without the
//! series — NaN (returned as is), `|x| ≥ 4` (`±1`) and `±0` (whose series sum is `+0`:
//! `−0 + (+0) = +0` at the first term and `+0` from then on) — take no part in it.
//!
//! The `unsafe` code here only calls the intrinsics: each block type can only be built after
//! runtime detection of its CPU features, and loads and stores go through fixed-size arrays.
#![allow(unsafe_code)]

use crate::math::{ERF_CUTOFF, ERF_TERMS, TWO_OVER_SQRT_PI, TWO_POW_M54};
use std::arch::x86_64::*;

/// The sign bit of an f64.
const SIGN: i64 = i64::MIN;

/// AVX-512F: 8 arguments per block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Erf512(());

impl Erf512 {
    /// `Some` only when the CPU has AVX-512F.
    pub(crate) fn new() -> Option<Self> {
        is_x86_feature_detected!("avx512f").then_some(Erf512(()))
    }

    /// `xs[i] ← erf64(xs[i])` for the 8 values.
    #[inline]
    pub(crate) fn block(&self, xs: &mut [f64; 8]) {
        // SAFETY: `self` exists only if the CPU has AVX-512F (`new`); the kernel reads and
        // writes exactly the 8 elements of the array.
        unsafe { erf512(xs) }
    }
}

/// AVX2: 4 arguments per block (the AVX2 path requires AVX2 and FMA; the series uses neither
/// FMA nor integer AVX2, only AVX double-precision arithmetic).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Erf256(());

impl Erf256 {
    /// `Some` only when the CPU has AVX2 and FMA (the requirements of the AVX2 path).
    pub(crate) fn new() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Erf256(()))
    }

    /// `xs[i] ← erf64(xs[i])` for the 4 values.
    #[inline]
    pub(crate) fn block(&self, xs: &mut [f64; 4]) {
        // SAFETY: `self` exists only if the CPU has AVX2 (`new`); the kernel reads and writes
        // exactly the 4 elements of the array.
        unsafe { erf256(xs) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn erf512(xs: &mut [f64; 8]) {
    // SAFETY: the array holds 8 f64s; unaligned loads and stores.
    let x = unsafe { _mm512_loadu_pd(xs.as_ptr()) };
    let zero = _mm512_setzero_pd();
    let cutoff = _mm512_set1_pd(ERF_CUTOFF);
    let ax = _mm512_abs_pd(x);
    // The series lanes: |x| < 4 and x ≠ 0 (both false for NaN).
    let mut active = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(ax, cutoff) & _mm512_cmp_pd_mask::<_CMP_NEQ_OQ>(x, zero);
    let xv = _mm512_maskz_mov_pd(active, x);
    let x2 = _mm512_mul_pd(xv, xv);
    let neg_x2 = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(x2), _mm512_set1_epi64(SIGN)));
    let quarter_ulp = _mm512_set1_pd(TWO_POW_M54);
    let (mut t, mut sum) = (xv, xv);
    let mut n = 1;
    while active != 0 && n < ERF_TERMS {
        let nf = _mm512_set1_pd(n as f64);
        t = _mm512_div_pd(_mm512_mul_pd(t, neg_x2), nf);
        let term = _mm512_div_pd(t, _mm512_set1_pd((2 * n + 1) as f64));
        let stop = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(nf, x2)
            & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(_mm512_abs_pd(term), _mm512_mul_pd(_mm512_abs_pd(sum), quarter_ulp));
        active &= !stop;
        sum = _mm512_mask_add_pd(sum, active, sum, term);
        t = _mm512_maskz_mov_pd(active, t);
        n += 1;
    }
    let mut r = _mm512_mul_pd(_mm512_set1_pd(TWO_OVER_SQRT_PI), sum);
    // |x| ≥ 4: ±1 with the sign of x.
    let big = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(ax, cutoff);
    let one = _mm512_castsi512_pd(_mm512_or_si512(
        _mm512_and_si512(_mm512_castpd_si512(x), _mm512_set1_epi64(SIGN)),
        _mm512_castpd_si512(_mm512_set1_pd(1.0)),
    ));
    r = _mm512_mask_mov_pd(r, big, one);
    // NaN: the argument itself.
    r = _mm512_mask_mov_pd(r, _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(x, x), x);
    // SAFETY: as for the load.
    unsafe { _mm512_storeu_pd(xs.as_mut_ptr(), r) }
}

#[target_feature(enable = "avx2")]
unsafe fn erf256(xs: &mut [f64; 4]) {
    // SAFETY: the array holds 4 f64s; unaligned loads and stores.
    let x = unsafe { _mm256_loadu_pd(xs.as_ptr()) };
    let zero = _mm256_setzero_pd();
    let sign = _mm256_castsi256_pd(_mm256_set1_epi64x(SIGN));
    let cutoff = _mm256_set1_pd(ERF_CUTOFF);
    let ax = _mm256_andnot_pd(sign, x);
    // The series lanes (all-ones): |x| < 4 and x ≠ 0 (both false for NaN).
    let mut active = _mm256_and_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(ax, cutoff), _mm256_cmp_pd::<_CMP_NEQ_OQ>(x, zero));
    let xv = _mm256_and_pd(active, x);
    let x2 = _mm256_mul_pd(xv, xv);
    let neg_x2 = _mm256_xor_pd(x2, sign);
    let quarter_ulp = _mm256_set1_pd(TWO_POW_M54);
    let (mut t, mut sum) = (xv, xv);
    let mut n = 1;
    while _mm256_movemask_pd(active) != 0 && n < ERF_TERMS {
        let nf = _mm256_set1_pd(n as f64);
        t = _mm256_div_pd(_mm256_mul_pd(t, neg_x2), nf);
        let term = _mm256_div_pd(t, _mm256_set1_pd((2 * n + 1) as f64));
        let stop = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_GE_OQ>(nf, x2),
            _mm256_cmp_pd::<_CMP_LT_OQ>(
                _mm256_andnot_pd(sign, term),
                _mm256_mul_pd(_mm256_andnot_pd(sign, sum), quarter_ulp),
            ),
        );
        active = _mm256_andnot_pd(stop, active);
        sum = _mm256_blendv_pd(sum, _mm256_add_pd(sum, term), active);
        t = _mm256_and_pd(t, active);
        n += 1;
    }
    let mut r = _mm256_mul_pd(_mm256_set1_pd(TWO_OVER_SQRT_PI), sum);
    // |x| ≥ 4: ±1 with the sign of x.
    let big = _mm256_cmp_pd::<_CMP_GE_OQ>(ax, cutoff);
    r = _mm256_blendv_pd(r, _mm256_or_pd(_mm256_and_pd(x, sign), _mm256_set1_pd(1.0)), big);
    // NaN: the argument itself.
    r = _mm256_blendv_pd(r, x, _mm256_cmp_pd::<_CMP_UNORD_Q>(x, x));
    // SAFETY: as for the load.
    unsafe { _mm256_storeu_pd(xs.as_mut_ptr(), r) }
}

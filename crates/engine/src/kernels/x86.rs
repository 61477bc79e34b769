//! AVX2+FMA and AVX-512F micro-kernels for [`super::gemm`]: one `mr × nr` tile of dot
//! products over one K block, added into C.
//!
//! Every lane of every accumulator computes exactly the reference order for its own output
//! element: `acc = 0.0; for k in block { acc = fma(a[k], b[k], acc) }` with the hardware
//! fused multiply-add, then `c = c + acc` (see [`crate::ops::linalg`]). Vectorizing across
//! independent output columns changes no bit; nothing is reassociated.
//!
//! Besides the SIMD modules, the engine's only `unsafe` code is one lifetime erasure in
//! `crate::pool` and the aligned weight buffer of `super::huge`. Each tile type can only
//! be built after runtime detection of its CPU features, and every safe entry point
//! checks the slice bounds that the unchecked loads and stores rely on.
#![allow(unsafe_code)]

use super::{Epilogue, GROUP, Mat, Tile, check_tile};
use std::arch::x86_64::*;

// The kernels address B by column groups of 16 lanes (one AVX-512 vector, two AVX2 ones).
const _: () = assert!(GROUP == 16);

/// Dispatches a runtime row count `mr` to a const-generic kernel instantiation; `$pa` is
/// the column stride of A when A is a packed panel (`rs = 1`), 0 for any strides; `$cb`
/// says that B's column groups are contiguous (`pstride == GROUP`: B read in place).
macro_rules! by_rows {
    ($mr:expr, $f:ident, $nv:literal, $pa:expr, $cb:expr, $($arg:expr),*) => {
        match $mr {
            1 => $f::<1, $nv, $pa, $cb>($($arg),*),
            2 => $f::<2, $nv, $pa, $cb>($($arg),*),
            3 => $f::<3, $nv, $pa, $cb>($($arg),*),
            4 => $f::<4, $nv, $pa, $cb>($($arg),*),
            5 => $f::<5, $nv, $pa, $cb>($($arg),*),
            6 => $f::<6, $nv, $pa, $cb>($($arg),*),
            7 => $f::<7, $nv, $pa, $cb>($($arg),*),
            8 => $f::<8, $nv, $pa, $cb>($($arg),*),
            9 => $f::<9, $nv, $pa, $cb>($($arg),*),
            10 => $f::<10, $nv, $pa, $cb>($($arg),*),
            11 => $f::<11, $nv, $pa, $cb>($($arg),*),
            12 => $f::<12, $nv, $pa, $cb>($($arg),*),
            _ => unreachable!("tile rows are checked"),
        }
    };
}

/// AVX-512F tiles: `MR` rows × `NV` vectors of 16 columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512<const MR: usize, const NV: usize>(());

impl<const MR: usize, const NV: usize> Avx512<MR, NV> {
    /// `Some` only when the CPU has AVX-512F.
    pub(crate) fn new() -> Option<Self> {
        is_x86_feature_detected!("avx512f").then_some(Avx512(()))
    }
}

/// AVX2 tiles with FMA: `MR` rows × `NV` vectors of 8 columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2<const MR: usize, const NV: usize>(());

impl<const MR: usize, const NV: usize> Avx2<MR, NV> {
    /// `Some` only when the CPU has AVX2 and FMA.
    pub(crate) fn new() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
    }
}

macro_rules! tile_impl {
    ($ty:ident, $kern:ident, $fin:ident, $lanes:literal, $(($mr:literal, $nv:literal)),*) => {$(
        impl Tile for $ty<$mr, $nv> {
            const MR: usize = $mr;
            const NR: usize = $nv * $lanes;
            #[inline]
            fn finish(&self, epi: Epilogue<'_>, r0: usize, rows: usize, c: &mut [f32], ldc: usize, ncols: usize) {
                // SAFETY: `self` exists only if the CPU has the instruction set (`new`).
                unsafe { $fin(epi, r0, rows, c, ldc, ncols) }
            }
            #[inline]
            fn tile(
                &self,
                mr: usize,
                kc: usize,
                a: Mat<'_>,
                b: &[f32],
                ldb: usize,
                pstride: usize,
                c: &mut [f32],
                ldc: usize,
                ncols: usize,
                first: bool,
            ) {
                check_tile(Self::MR, Self::NR, mr, kc, a, b, ldb, pstride, c, ldc, ncols);
                let (ars, acs, a, b, c) = (a.rs, a.cs, a.data.as_ptr(), b.as_ptr(), c.as_mut_ptr());
                // SAFETY: `self` exists only if the CPU has the kernel's features (`new`), and
                // `check_tile` proved that every element the kernel touches — a[r*ars + k*acs],
                // b[b_at(k, j, ldb, pstride)] and c[r*ldc + j] for k < kc, r < mr, j < ncols —
                // is in bounds; lanes at j >= ncols are masked off and never accessed.
                unsafe {
                    // A packed panel (as the driver packs it) gets constant strides, so the
                    // row addresses fold into the loads.
                    match (ars == 1 && acs == $mr, pstride == GROUP) {
                        (true, true) => by_rows!(mr, $kern, $nv, $mr, true, kc, a, ars, acs, b, ldb, pstride, c, ldc, ncols, first),
                        (true, false) => by_rows!(mr, $kern, $nv, $mr, false, kc, a, ars, acs, b, ldb, pstride, c, ldc, ncols, first),
                        (false, true) => by_rows!(mr, $kern, $nv, 0, true, kc, a, ars, acs, b, ldb, pstride, c, ldc, ncols, first),
                        (false, false) => by_rows!(mr, $kern, $nv, 0, false, kc, a, ars, acs, b, ldb, pstride, c, ldc, ncols, first),
                    }
                }
            }
        }
    )*};
}

tile_impl!(Avx512, kern512, finish512, 16, (2, 4), (2, 8), (12, 2), (6, 4));
tile_impl!(Avx2, kern256, finish256, 8, (6, 2), (2, 8));

/// [`Epilogue::apply`] compiled for AVX-512 (16 lanes): the same operations.
#[target_feature(enable = "avx512f")]
unsafe fn finish512(epi: Epilogue<'_>, r0: usize, rows: usize, c: &mut [f32], ldc: usize, ncols: usize) {
    epi.apply(r0, rows, c, ldc, ncols)
}

/// [`Epilogue::apply`] compiled for AVX2: the same operations.
#[target_feature(enable = "avx2,fma")]
unsafe fn finish256(epi: Epilogue<'_>, r0: usize, rows: usize, c: &mut [f32], ldc: usize, ncols: usize) {
    epi.apply(r0, rows, c, ldc, ncols)
}

/// `c[r*ldc + j] = old + dot_block(a[r, ..], b[.., j])` for `r < R`, `j < ncols` (`old`
/// is `c[r*ldc + j]`, or `+0.0` and C unread when `first`), where
/// `a[r, k]` is `a[r*ars + k*acs]` and `b[k, j]` is `b[b_at(k, j, ldb, pstride)]`. With
/// `PA > 0`, the caller guarantees `ars == 1` and `acs == PA` (a packed panel of A); with
/// `CB`, `pstride == GROUP`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn kern512<const R: usize, const NV: usize, const PA: usize, const CB: bool>(
    kc: usize,
    a: *const f32,
    ars: usize,
    acs: usize,
    b: *const f32,
    ldb: usize,
    pstride: usize,
    c: *mut f32,
    ldc: usize,
    ncols: usize,
    first: bool,
) {
    let mut masks = [0u16; NV];
    for (v, m) in masks.iter_mut().enumerate() {
        let valid = ncols.saturating_sub(v * 16).min(16);
        *m = ((1u32 << valid) - 1) as u16;
    }
    let (ars, acs) = if PA > 0 { (1, PA) } else { (ars, acs) };
    let pstride = if CB { GROUP } else { pstride };
    let full = ncols == NV * 16;
    // Vector v is column group v (GROUP = 16 lanes).
    let mut bp = [b; NV];
    for (v, p) in bp.iter_mut().enumerate() {
        *p = b.wrapping_add(v * pstride);
    }
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    for k in 0..kc {
        let mut bv = [_mm512_setzero_ps(); NV];
        for v in 0..NV {
            let p = bp[v].wrapping_add(k * ldb);
            // SAFETY: lanes at columns < ncols are in bounds (checked by the caller); masked
            // lanes are not accessed.
            bv[v] = unsafe { if full { _mm512_loadu_ps(p) } else { _mm512_maskz_loadu_ps(masks[v], p) } };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: a[r*ars + k*acs] is in bounds for r < R, k < kc (checked by the caller).
            let av = _mm512_set1_ps(unsafe { *a.add(r * ars + k * acs) });
            for v in 0..NV {
                acc_r[v] = _mm512_fmadd_ps(av, bv[v], acc_r[v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for v in 0..NV {
            let p = c.wrapping_add(r * ldc + v * 16);
            // SAFETY: as for the loads of b: unmasked lanes are in bounds of c.
            unsafe {
                let old = if first { _mm512_setzero_ps() } else { _mm512_maskz_loadu_ps(masks[v], p) };
                _mm512_mask_storeu_ps(p, masks[v], _mm512_add_ps(old, acc_r[v]));
            }
        }
    }
}

/// The AVX2 twin of [`kern512`], 8 columns per vector.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn kern256<const R: usize, const NV: usize, const PA: usize, const CB: bool>(
    kc: usize,
    a: *const f32,
    ars: usize,
    acs: usize,
    b: *const f32,
    ldb: usize,
    pstride: usize,
    c: *mut f32,
    ldc: usize,
    ncols: usize,
    first: bool,
) {
    let mut masks = [_mm256_setzero_si256(); NV];
    for (v, m) in masks.iter_mut().enumerate() {
        let valid = ncols.saturating_sub(v * 8).min(8) as i32;
        *m = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    let (ars, acs) = if PA > 0 { (1, PA) } else { (ars, acs) };
    let pstride = if CB { GROUP } else { pstride };
    let full = ncols == NV * 8;
    // Vector v is the lower or upper half of column group v / 2 (GROUP = 16 lanes).
    let mut bp = [b; NV];
    for (v, p) in bp.iter_mut().enumerate() {
        *p = b.wrapping_add((v * 8 / GROUP) * pstride + (v * 8) % GROUP);
    }
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    for k in 0..kc {
        let mut bv = [_mm256_setzero_ps(); NV];
        for v in 0..NV {
            let p = bp[v].wrapping_add(k * ldb);
            // SAFETY: lanes at columns < ncols are in bounds (checked by the caller); masked
            // lanes are not accessed (vmaskmovps suppresses them).
            bv[v] = unsafe { if full { _mm256_loadu_ps(p) } else { _mm256_maskload_ps(p, masks[v]) } };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: a[r*ars + k*acs] is in bounds for r < R, k < kc (checked by the caller).
            let av = _mm256_set1_ps(unsafe { *a.add(r * ars + k * acs) });
            for v in 0..NV {
                acc_r[v] = _mm256_fmadd_ps(av, bv[v], acc_r[v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for v in 0..NV {
            let p = c.wrapping_add(r * ldc + v * 8);
            // SAFETY: as for the loads of b: unmasked lanes are in bounds of c.
            unsafe {
                let old = if first { _mm256_setzero_ps() } else { _mm256_maskload_ps(p, masks[v]) };
                _mm256_maskstore_ps(p, masks[v], _mm256_add_ps(old, acc_r[v]));
            }
        }
    }
}

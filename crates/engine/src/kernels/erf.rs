//! Many evaluations of the engine's f64 `erf` ([`crate::math::erf64`]) at once, with the same
//! bits as one call per element on every [`KernelPath`].
//!
//! - `reference`: one [`crate::math::erf64`] call per element (the specification);
//! - `scalar`: the same series on a block of [`PORTABLE_LANES`] arguments in plain Rust;
//! - `avx2` / `avx512`: the series on blocks of 32 / 64 arguments, 4 / 8 f64 lanes per
//!   register and 8 registers side by side (see `x86_erf`).
//!
//! A block runs until its slowest lane has converged, so the driver first orders each
//! batch of [`BATCH`] arguments by `|x|` ([`bin`]: the number of terms the series needs
//! grows with `|x|`) and hands the blocks lanes that stop at about the same term. Which
//! arguments share a block never matters for the bits: lanes are independent and a lane
//! that has stopped is frozen (see `x86_erf`, and [`erf64_block`] for the portable twin).

use super::KernelPath;
use super::erf_table::{COEF, DEG, RHO};
use crate::math::{ERF_CUTOFF, ERF_TERMS, TWO_OVER_SQRT_PI, TWO_POW_M54};

/// Arguments per AVX-512 block: 8 registers side by side (the series is a chain of
/// dependent divisions; independent registers keep the divider busy).
const ERF512_LANES: usize = 64;
/// Arguments per AVX2 block: 8 registers side by side.
const ERF256_LANES: usize = 32;
/// Lanes of the portable block.
const PORTABLE_LANES: usize = 8;
/// Arguments ordered together by the driver; elements per batch of [`erf_f32_many`].
pub(crate) const BATCH: usize = 2048;
/// The widest block [`sorted_blocks`] pads to.
const MAX_LANES: usize = 64;
/// Bins of `|x|` below [`ERF_CUTOFF`] (see [`bin`]), plus one for the arguments without series.
const BINS: usize = 5 * 16 + 1;

/// `xs[i] ← erf64(xs[i])` for every element, on `path` (which must be available).
/// Inlined, so that a caller compiled for wider vectors (`with_fma`) gets its loops so.
#[inline(always)]
pub(crate) fn erf64_many(path: KernelPath, xs: &mut [f64]) {
    match path {
        KernelPath::Reference => xs.iter_mut().for_each(|x| *x = crate::math::erf64(*x)),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => {
            let k = super::x86_erf::Erf512::new().expect("path checked");
            sorted_blocks::<ERF512_LANES>(xs, |b| k.block(b))
        }
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => {
            let k = super::x86_erf::Erf256::new().expect("path checked");
            sorted_blocks::<ERF256_LANES>(xs, |b| k.block(b))
        }
        _ => sorted_blocks::<PORTABLE_LANES>(xs, erf64_block),
    }
}

/// The bin of `x`, from the bits of `|x|` (whose integer order is their order as
/// numbers): 16 bins per binade from 1/8 up to the cutoff, everything smaller in bin 0,
/// and NaN and `|x| ≥ 4` in the last bin.
#[inline]
fn bin(x: f64) -> u8 {
    const LOW: u64 = 0.125f64.to_bits() >> 48;
    let a = x.to_bits() & !(1 << 63);
    if a >= ERF_CUTOFF.to_bits() { (BINS - 1) as u8 } else { (a >> 48).saturating_sub(LOW) as u8 }
}

/// Runs `block` over `xs` in batches of [`BATCH`], each ordered by [`bin`] (a counting
/// sort; the order within a bin does not matter) and padded with zeros (which need no
/// series) to whole blocks of `L`.
#[inline(always)]
fn sorted_blocks<const L: usize>(xs: &mut [f64], block: impl Fn(&mut [f64; L])) {
    // Four interleaved counters per bin, so that runs of one bin do not wait on one counter.
    const WAYS: usize = 4;
    assert!((1..=MAX_LANES).contains(&L), "block width");
    let mut bins = [0u8; BATCH];
    let mut order = [0u16; BATCH];
    let mut buf = [0.0f64; BATCH + MAX_LANES];
    for batch in xs.chunks_mut(BATCH) {
        let n = batch.len();
        let mut count = [[0u16; BINS]; WAYS];
        for (bs, xc) in bins.chunks_mut(WAYS).zip(batch.chunks(WAYS)) {
            for ((b, &x), c) in bs.iter_mut().zip(xc).zip(count.iter_mut()) {
                *b = bin(x);
                c[*b as usize] += 1;
            }
        }
        let mut at = 0;
        for b in 0..BINS {
            for c in count.iter_mut() {
                let k = c[b];
                c[b] = at;
                at += k;
            }
        }
        // `count` now holds each (way, bin)'s next slot.
        for (i, (bs, xc)) in bins.chunks(WAYS).zip(batch.chunks(WAYS)).enumerate() {
            for (k, ((&b, &x), c)) in bs.iter().zip(xc).zip(count.iter_mut()).enumerate() {
                let p = c[b as usize] as usize;
                c[b as usize] += 1;
                buf[p] = x;
                order[p] = (i * WAYS + k) as u16;
            }
        }
        let padded = n.next_multiple_of(L);
        buf[n..padded].fill(0.0);
        for chunk in buf[..padded].chunks_exact_mut(L) {
            block(chunk.try_into().expect("chunks of L"));
        }
        for (&v, &i) in buf.iter().zip(&order[..n]) {
            batch[i as usize] = v;
        }
    }
}

/// The portable block: `xs[i] ← erf64(xs[i])` for `L` arguments, lane by lane the very
/// operations of [`crate::math::erf64`], stopped lanes frozen (as in `x86_erf`).
pub(crate) fn erf64_block<const L: usize>(xs: &mut [f64; L]) {
    let mut active = [false; L];
    let mut x2 = [0.0f64; L];
    let mut t = [0.0f64; L];
    let mut sum = [0.0f64; L];
    for l in 0..L {
        let x = xs[l];
        active[l] = x.abs() < ERF_CUTOFF && x != 0.0;
        let xv = if active[l] { x } else { 0.0 };
        x2[l] = xv * xv;
        t[l] = xv;
        sum[l] = xv;
    }
    let mut n = 1;
    while n < ERF_TERMS && active.contains(&true) {
        let (nf, df) = (n as f64, (2 * n + 1) as f64);
        for l in 0..L {
            t[l] = t[l] * -x2[l] / nf;
            let term = t[l] / df;
            if nf >= x2[l] && term.abs() < sum[l].abs() * TWO_POW_M54 {
                active[l] = false;
            }
            if active[l] {
                sum[l] += term;
            } else {
                t[l] = 0.0;
            }
        }
        n += 1;
    }
    for l in 0..L {
        let x = xs[l];
        xs[l] = if x.is_nan() {
            x
        } else if x.abs() >= ERF_CUTOFF {
            1.0f64.copysign(x)
        } else {
            TWO_OVER_SQRT_PI * sum[l]
        };
    }
}

/// The f32 results of Erf (`erf`) or exact Gelu (else) for every element of `x`, into
/// `out` (the same length), with the bits of `math::erf` / the reference Gelu
/// (`0.5·d·(1 + erf64(d/√2))` rounded to f32, `d = x as f64`) on every path. Returns how
/// many elements needed the series (the stragglers of the certainty check).
///
/// Each batch of [`BATCH`] elements takes the fast pass ([`fast_one`], or `x86_erf`'s
/// AVX-512 twin), which answers every element it is certain of and lists the others;
/// those then go through [`erf64_many`] together. Inlined, so that a caller compiled for
/// FMA (`with_fma`) gets single fused multiply-adds.
#[inline(always)]
pub(crate) fn erf_f32_many(path: KernelPath, erf: bool, x: &[f32], out: &mut [f32]) -> usize {
    assert_eq!(x.len(), out.len(), "erf_f32_many: lengths");
    if path == KernelPath::Reference {
        for (y, &v) in out.iter_mut().zip(x) {
            *y = if v.is_nan() { v } else { finish(erf, v, crate::math::erf64(arg(erf, v))) };
        }
        return x.len();
    }
    let mut slow = [0u16; BATCH];
    let mut args = [0.0f64; BATCH];
    let mut total = 0;
    for (xc, oc) in x.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
        let n = fast_pass(path, erf, xc, oc, &mut slow);
        if n == 0 {
            continue;
        }
        for (a, &i) in args.iter_mut().zip(&slow[..n]) {
            *a = arg(erf, xc[i as usize]);
        }
        erf64_many(path, &mut args[..n]);
        for (&e, &i) in args.iter().zip(&slow[..n]) {
            oc[i as usize] = finish(erf, xc[i as usize], e);
        }
        total += n;
    }
    total
}

/// The fast pass over at most [`BATCH`] elements on `path`: writes every element it is
/// certain of to `out`, and the indices of the others to `slow`; returns their number.
#[inline(always)]
fn fast_pass(path: KernelPath, erf: bool, x: &[f32], out: &mut [f32], slow: &mut [u16; BATCH]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if path == KernelPath::Avx512
        && let Some(k) = super::x86_erf::Fast512::new()
    {
        return k.pass(erf, x, out, slow);
    }
    let _ = path;
    fast_pass_portable(erf, x, out, slow, 0, 0)
}

/// [`fast_pass`] one element at a time with [`fast_one`]; `x[i]` is element `base + i` of
/// the batch (the AVX-512 pass hands its ragged end here), and the first `n` entries of
/// `slow` are taken already. Returns the new number of entries.
#[inline(always)]
pub(crate) fn fast_pass_portable(
    erf: bool,
    x: &[f32],
    out: &mut [f32],
    slow: &mut [u16; BATCH],
    base: usize,
    mut n: usize,
) -> usize {
    for (i, (y, &v)) in out.iter_mut().zip(x).enumerate() {
        match fast_one(erf, v) {
            Some(r) => *y = r,
            None => {
                slow[n] = (base + i) as u16;
                n += 1;
            }
        }
    }
    n
}

/// The argument of `erf64` for the element `v`: `d`, or for Gelu `d·(1/√2)`.
#[inline(always)]
fn arg(erf: bool, v: f32) -> f64 {
    let d = v as f64;
    if erf { d } else { d * std::f64::consts::FRAC_1_SQRT_2 }
}

/// The f32 result of the element `v` given `e = erf64(arg(v))`: exactly the reference's
/// last step (`math::erf`, or `unary_f32`'s exact Gelu). Monotone in `e` (non-decreasing for
/// Erf and for Gelu with `v ≥ 0`, non-increasing for Gelu with `v < 0`) for non-NaN `v`.
#[inline(always)]
pub(crate) fn finish(erf: bool, v: f32, e: f64) -> f32 {
    if v.is_nan() {
        v
    } else if erf {
        (e as f32).copysign(v)
    } else {
        let d = v as f64;
        (0.5 * d * (1.0 + e)) as f32
    }
}

/// The interval midpoints `(2i + 1)/8` the polynomials of intervals i ≥ 1 are centred on.
pub(crate) const MID: [f64; 16] = {
    let mut m = [0.0; 16];
    let mut i = 1;
    while i < 16 {
        m[i] = (2 * i + 1) as f64 / 8.0;
        i += 1;
    }
    m
};

/// `(e', ρ)` for `0 ≤ m < 4`: the table's approximation of `erf64(m)` and its relative
/// bound, `|e' − erf64(m)| ≤ ρ·e'` (see the module docs). The same operations, in the
/// same order, as `x86_erf`'s AVX-512 lanes.
#[inline(always)]
pub(crate) fn approx(m: f64) -> (f64, f64) {
    let i = (m * 4.0) as usize;
    let t = if i == 0 { m * m } else { m - MID[i] };
    let mut p = COEF[DEG][i];
    for c in COEF[..DEG].iter().rev() {
        p = p.mul_add(t, c[i]);
    }
    (if i == 0 { m * p } else { p }, RHO[i])
}

/// The element's result if the certainty check settles it: `finish(erf64(arg(v)))` for
/// NaN and `|arg| ≥ 4` directly; below, if `finish` gives the same bits at both ends of
/// `e' ∓ ρ·e'` (which contains `erf64(|arg|)`), those bits; else `None`.
#[inline(always)]
pub(crate) fn fast_one(erf: bool, v: f32) -> Option<f32> {
    let a = arg(erf, v);
    let m = a.abs();
    if !(m < ERF_CUTOFF) {
        // NaN (finish returns v), or ±1 as erf64 returns it.
        return Some(finish(erf, v, 1.0f64.copysign(a)));
    }
    let (e, rho) = approx(m);
    let r = e * rho;
    let (lo, hi) = (e - r, e + r);
    let (l, h) = if erf {
        // finish takes |erf64| to f32 and gives it the sign of v.
        (lo as f32, hi as f32)
    } else {
        // erf64 is odd bit for bit (its operations are sign-symmetric; ±0 ↦ +0, which
        // finish treats as −0: 1 + ±0 = 1).
        (finish(false, v, lo.copysign(a)), finish(false, v, hi.copysign(a)))
    };
    if l.to_bits() != h.to_bits() {
        return None;
    }
    Some(if erf { h.copysign(v) } else { h })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::erf64;
    use proptest::prelude::*;

    /// Arguments the series treats specially or that sit on a boundary, as f64 and as the
    /// f64 of an f32 (what Erf and Gelu pass).
    fn edges() -> Vec<f64> {
        let below4 = f64::from_bits(4.0f64.to_bits() - 1);
        let mut v = vec![
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001), // signalling-pattern NaN with a payload
            f64::from_bits(0xfff8_dead_beef_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            4.0,
            -4.0,
            below4,
            -below4,
            f64::from_bits(4.0f64.to_bits() + 1),
            f32::from_bits(4.0f32.to_bits() - 1) as f64,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            2.2e-308,
            1e-300,
            f32::from_bits(1) as f64, // the smallest f32 subnormal
            -(f32::from_bits(0x007f_ffff) as f64),
            f32::MIN_POSITIVE as f64,
            1e-8,
            -1e-8,
            0.5,
            1.0,
            -2.0,
            3.0,
            3.5,
            -3.999,
        ];
        // Every bin edge of the driver's ordering, and just around it.
        for k in 0..=64 {
            let e = k as f64 / 16.0;
            for x in [e, f64::from_bits(e.to_bits().saturating_sub(1)), f64::from_bits(e.to_bits() + 1)] {
                v.push(x);
                v.push(-x);
            }
        }
        v
    }

    fn random(seed: u64, len: usize) -> Vec<f64> {
        let mut s = seed | 1;
        let edges = edges();
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                match s % 8 {
                    0 => edges[(s >> 20) as usize % edges.len()],
                    1 => f64::from_bits(s.rotate_left(17)), // any bits
                    2 => (u - 0.5) * 2f64.powi(-((s >> 40) as i32 % 80)),
                    3 => f32::from_bits((s >> 7) as u32) as f64,
                    4 => (((u * 10.0 - 5.0) as f32) as f64) * std::f64::consts::FRAC_1_SQRT_2,
                    _ => u * 9.0 - 4.5,
                }
            })
            .collect()
    }

    /// Runs `k.block` at each width over `xs` and checks it.
    #[cfg(target_arch = "x86_64")]
    macro_rules! for_widths {
        ($xs:expr, $same:expr, $k:expr, $($l:literal),*) => {$(
            let mut got = $xs.to_vec();
            sorted_blocks::<$l>(&mut got, |b| $k.block(b));
            $same(got, concat!(stringify!($k), " ", $l, " lanes"));
        )*};
    }

    fn check(xs: &[f64]) {
        let want: Vec<u64> = xs.iter().map(|&x| erf64(x).to_bits()).collect();
        for path in KernelPath::available() {
            let mut got = xs.to_vec();
            erf64_many(path, &mut got);
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w, "{path:?}: erf64({:e}) = {:e}, want {:e}", xs[i], g, f64::from_bits(w));
            }
        }
        // The blocks at other widths too.
        let same = |got: Vec<f64>, what: &str| {
            assert_eq!(got.iter().map(|g| g.to_bits()).collect::<Vec<_>>(), want, "{what}");
        };
        let mut got = xs.to_vec();
        sorted_blocks::<3>(&mut got, erf64_block);
        same(got, "portable, 3 lanes");
        #[cfg(target_arch = "x86_64")]
        {
            use super::super::x86_erf::{Erf256, Erf512};
            if let Some(k) = Erf512::new() {
                for_widths!(xs, same, k, 8, 16, 32);
            }
            if let Some(k) = Erf256::new() {
                for_widths!(xs, same, k, 4, 8, 16);
            }
        }
    }

    #[test]
    fn edges_match_scalar_on_every_path() {
        let e = edges();
        check(&e);
        // Each edge alone and next to arguments that need many terms.
        for &x in &e {
            check(&[x]);
            check(&[3.9, x, -3.7, 2.5, x, 1e-3, 3.99, x, 0.1]);
        }
    }

    #[test]
    fn long_random_runs_match_scalar_on_every_path() {
        // Over several batches, with a ragged end.
        check(&random(7, 3 * BATCH + 37));
        // Uniform on (−4.5, 4.5): every bin, full blocks of slow lanes.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let v: Vec<f64> = (0..20_000)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 * 9.0 - 4.5
            })
            .collect();
        check(&v);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_inputs_match_scalar_on_every_path(seed: u64, len in 0usize..1100) {
            check(&random(seed, len));
        }
        #[test]
        fn any_bits_match_scalar_on_every_path(bits in proptest::collection::vec(any::<u64>(), 0..40)) {
            check(&bits.iter().map(|&b| f64::from_bits(b)).collect::<Vec<_>>());
        }
    }
}

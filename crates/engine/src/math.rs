//! The engine's own transcendental functions, built only from IEEE-754 `+ − × ÷`,
//! fused multiply-add and bit manipulation, so that every machine gets the same bits.
//! The platform's libm (`f32::exp`, `f64::tanh`, ...) is never called: its results
//! differ between C libraries and versions.
//!
//! Every f32 function evaluates in f64 with a fixed sequence of operations and rounds
//! once to f32 at the end. The f64 cores are accurate to a few f64 ulps, so the f32
//! results are within 1 ulp of the true value (nearly always correctly rounded).
//!
//! The functions are `#[inline(always)]` so that loops compiled with FMA
//! (`kernels::with_fma`) get `mul_add` as one instruction rather than a call into the
//! runtime's `fma`; the bits are the same either way.
//!
//! Exact algorithms (part of the engine spec, `SPEC_VERSION`):
//! - `exp64(x)`: `k = fma(x, log2 e, S) − S` with `S = 1.5·2⁵²` (round to nearest even),
//!   `r = (x − k·LN2_HI) − k·LN2_LO`, `p = Σₙ₌₀¹² rⁿ/n!` by Horner with `fma`
//!   (highest degree first), result `p · 2ᵏ` with `2ᵏ` built from its bits.
//! - `expm1_64(x)`: same reduction; `q = r·(1 + r·(1/2! + r·(… + r/13!)))` by Horner with
//!   `fma`; `k = 0 ⇒ q`, else `fma(2ᵏ, q, 2ᵏ − 1)`.
//! - [`exp`]: NaN ⇒ NaN; `x > 88.8 ⇒ +∞`; `x < −104 ⇒ +0`; else `exp64(x) as f32`.
//! - [`tanh`]: NaN ⇒ NaN; `a = |x|`; `a > 9.5 ⇒ 1`; else `e = expm1_64(2a)`,
//!   `t = e / (e + 2)`; result `copysign(t as f32, x)`.
//! - [`sigmoid`]: NaN ⇒ NaN; `x ≥ 0`: `x > 40 ⇒ 1`, else `1 / (1 + exp64(−x))`;
//!   `x < 0`: `x < −110 ⇒ +0`, else `e = exp64(x)`, `e / (1 + e)`; rounded to f32.
//! - `log64(x)` (x > 0 finite): `x = m·2ᵉ` with `m ∈ [√½, √2)` from the bits (subnormals
//!   scaled by 2⁵⁴ first), `f = m − 1`, `s = f / (2 + f)`, `z = s²`,
//!   `p = Σₙ₌₀¹³ zⁿ/(2n+1)` by Horner with `fma` (highest degree first), `log m = 2·s·p`,
//!   result `e·LN2_HI + (e·LN2_LO + log m)`.
//! - `log1p64(u)`: `w = 1 + u`; `w = 1 ⇒ u`; else `log64(w) − ((w − 1) − u) / w`.
//! - [`log`]: NaN ⇒ NaN; `x < 0 ⇒ NaN`; `±0 ⇒ −∞`; `+∞ ⇒ +∞`; else `log64(x) as f32`.
//! - `erf64(x)`: `|x| ≥ 4 ⇒ ±1`; else `2/√π · Σₙ₌₀⁷⁹ (−1)ⁿ x²ⁿ⁺¹ / (n!·(2n+1))`, the terms
//!   built one from the previous (`t ← t·(−x²)/n`) and summed in order n = 0, 1, ….
//! - [`erf`]: NaN ⇒ NaN; `erf64(x) as f32` (keeps the sign of zero). This series is the
//!   specification. On the fast kernel paths the Erf and exact Gelu operators compute
//!   the same f32 bits another way (`kernels::erf`): a polynomial table with a proven
//!   error bound answers every element whose f32 result that bound settles, and the
//!   series, on many arguments at once on SIMD lanes, the rest. The `#[ignore]`d test
//!   `ops::math_ops::tests::erf_and_gelu_exhaustive_every_f32_every_path` checks all 2³²
//!   f32 inputs of both operators on every path.
//! - [`pow`]: the C99 `pow` special cases (see the function); otherwise
//!   `|x|^y = exp64(y·log64(|x|))` with `y·log64|x| > 709 ⇒ +∞`, `< −745 ⇒ +0`, negated
//!   for negative `x` and odd integer `y`; rounded once to f32.
//! - [`expm1`]: `expm1_64(x) as f32` for `−40 ≤ x ≤ 50`; below, `−1`; above, `+∞`.
//! - [`log1p`]: NaN ⇒ NaN; `x < −1 ⇒ NaN`; `x = −1 ⇒ −∞`; `+∞ ⇒ +∞`; else `log1p64 as f32`.

const LOG2E: f64 = std::f64::consts::LOG2_E;
/// High part of ln 2 with 32 trailing zero bits, so `k · LN2_HI` is exact for |k| < 2²⁰.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// ln 2 − LN2_HI.
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1.5 · 2⁵²: adding and subtracting it rounds an f64 of magnitude < 2⁵¹ to the nearest integer (ties to even).
const ROUND_SHIFT: f64 = 6_755_399_441_055_744.0;

/// Reciprocal factorials 1/n! for n = 0..=13, as f64 (evaluated at compile time, exactly rounded).
const INV_FACT: [f64; 14] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// Splits `x` into `k` and `r` with `x = k·ln 2 + r`, `|r| ≤ ln 2 / 2` (approximately).
#[inline(always)]
fn reduce(x: f64) -> (i64, f64) {
    let kf = x.mul_add(LOG2E, ROUND_SHIFT) - ROUND_SHIFT;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    (kf as i64, r)
}

/// 2ᵏ for −1022 ≤ k ≤ 1023, from its bits.
#[inline(always)]
fn pow2(k: i64) -> f64 {
    assert!((-1022..=1023).contains(&k), "pow2 exponent out of range");
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// eˣ in f64 for |x| ≤ 708.
#[inline(always)]
fn exp64(x: f64) -> f64 {
    assert!(x.abs() <= 708.0, "exp64 domain");
    let (k, r) = reduce(x);
    let mut p = INV_FACT[12];
    for n in (0..12).rev() {
        p = p.mul_add(r, INV_FACT[n]);
    }
    p * pow2(k)
}

/// eˣ − 1 in f64 for |x| ≤ 50, accurate relative to the result also near 0.
#[inline(always)]
fn expm1_64(x: f64) -> f64 {
    assert!(x.abs() <= 50.0, "expm1_64 domain");
    let (k, r) = reduce(x);
    let mut p = INV_FACT[13];
    for n in (1..13).rev() {
        p = p.mul_add(r, INV_FACT[n]);
    }
    let q = p * r;
    if k == 0 {
        q
    } else {
        let s = pow2(k);
        s.mul_add(q, s - 1.0)
    }
}

/// eˣ for f32, within 1 ulp.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.8 {
        return f32::INFINITY;
    }
    if x < -104.0 {
        return 0.0;
    }
    exp64(x as f64) as f32
}

/// `exp64` without its domain check and with the integer part taken from the rounding
/// shift's bits: for |k| < 2⁵¹ the bits of `t` are those of S plus k, which is `kf as
/// i64` wherever `exp64` is defined, so inside [−1022·ln 2, 708] the result has the same
/// bits; outside it is some value the `_lanes` callers select away.
#[inline(always)]
fn exp64_lanes(x: f64) -> f64 {
    let t = x.mul_add(LOG2E, ROUND_SHIFT);
    let kf = t - ROUND_SHIFT;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let mut p = INV_FACT[12];
    for n in (0..12).rev() {
        p = p.mul_add(r, INV_FACT[n]);
    }
    let k = t.to_bits().wrapping_sub(ROUND_SHIFT.to_bits());
    p * f64::from_bits(k.wrapping_add(1023) << 52)
}

/// `expm1_64` as [`exp64_lanes`] is `exp64`: both of its cases computed, one chosen.
#[inline(always)]
fn expm1_64_lanes(x: f64) -> f64 {
    let t = x.mul_add(LOG2E, ROUND_SHIFT);
    let kf = t - ROUND_SHIFT;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let mut p = INV_FACT[13];
    for n in (1..13).rev() {
        p = p.mul_add(r, INV_FACT[n]);
    }
    let q = p * r;
    let k = t.to_bits().wrapping_sub(ROUND_SHIFT.to_bits());
    let s = f64::from_bits(k.wrapping_add(1023) << 52);
    if k == 0 { q } else { s.mul_add(q, s - 1.0) }
}

/// [`exp`] without branches, bit for bit the same on every input: every lane computes
/// the f64 core and the special cases are chosen at the end. A loop of these compiles to
/// SIMD lanes; the arithmetic is the same IEEE operations.
#[inline(always)]
pub(crate) fn exp_lanes(x: f32) -> f32 {
    let y = exp64_lanes(x as f64) as f32;
    let y = if x < -104.0 { 0.0 } else { y };
    let y = if x > 88.8 { f32::INFINITY } else { y };
    if x.is_nan() { x } else { y }
}

/// [`tanh`] without branches (as [`exp_lanes`] is `exp`).
#[inline(always)]
pub(crate) fn tanh_lanes(x: f32) -> f32 {
    let a = (x as f64).abs();
    let e = expm1_64_lanes(2.0 * a);
    let t = (e / (e + 2.0)) as f32;
    let t = if a > 9.5 { 1.0f32 } else { t };
    if x.is_nan() { x } else { t.copysign(x) }
}

/// [`sigmoid`] without branches (as [`exp_lanes`] is `exp`): both signs use
/// `e = exp64(−|x|)`, then `1 / (1 + e)` or `e / (1 + e)`.
#[inline(always)]
pub(crate) fn sigmoid_lanes(x: f32) -> f32 {
    let xd = x as f64;
    let e = exp64_lanes(-xd.abs());
    let pos = xd >= 0.0;
    let y = ((if pos { 1.0 } else { e }) / (1.0 + e)) as f32;
    let y = if xd > 40.0 { 1.0 } else { y };
    let y = if xd < -110.0 { 0.0 } else { y };
    if x.is_nan() { x } else { y }
}

/// tanh(x) for f32, within 1 ulp; odd, keeps the sign of zero.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = (x as f64).abs();
    let t = if a > 9.5 {
        1.0f32
    } else {
        let e = expm1_64(2.0 * a);
        (e / (e + 2.0)) as f32
    };
    t.copysign(x)
}

/// The logistic function 1 / (1 + e⁻ˣ) for f32, within 1 ulp.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let xd = x as f64;
    if xd >= 0.0 {
        if xd > 40.0 {
            return 1.0;
        }
        (1.0 / (1.0 + exp64(-xd))) as f32
    } else {
        if xd < -110.0 {
            return 0.0;
        }
        let e = exp64(xd);
        (e / (1.0 + e)) as f32
    }
}

/// ln(x) in f64 for finite x > 0 (see the module docs).
#[inline(always)]
pub(crate) fn log64(x: f64) -> f64 {
    assert!(x > 0.0 && x.is_finite(), "log64 domain");
    let (mut x, mut e) = (x, 0i64);
    if x < f64::MIN_POSITIVE {
        x *= 18_014_398_509_481_984.0; // 2^54
        e = -54;
    }
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let mut p: f64 = 1.0 / 27.0;
    for n in (0..13).rev() {
        p = p.mul_add(z, 1.0 / (2 * n + 1) as f64);
    }
    let lm = 2.0 * s * p;
    let ef = e as f64;
    ef * LN2_HI + (ef * LN2_LO + lm)
}

/// ln(1 + u) in f64 for finite u > −1, accurate also for small u.
#[inline(always)]
pub(crate) fn log1p64(u: f64) -> f64 {
    let w = 1.0 + u;
    if w == 1.0 {
        return u;
    }
    log64(w) - ((w - 1.0) - u) / w
}

/// eˣ in f64 for any x: +∞ above 709, +0 below −745 (the engine's own [`exp64`] inside).
#[inline(always)]
pub(crate) fn exp64_any(x: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x > 709.0 {
        f64::INFINITY
    } else if x < -708.0 {
        // exp64 needs |x| ≤ 708; below, split off a power of two so the result may go subnormal.
        if x < -745.2 { 0.0 } else { exp64(x + 64.0 * std::f64::consts::LN_2) * pow2(-64) }
    } else {
        exp64(x)
    }
}

/// tanh(x) in f64 (same formula as [`tanh`], without the final rounding to f32).
#[inline(always)]
pub(crate) fn tanh64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let t = if a > 19.0 {
        1.0
    } else {
        let e = expm1_64(2.0 * a);
        e / (e + 2.0)
    };
    t.copysign(x)
}

/// ln(x) for f32, within 1 ulp.
#[inline(always)]
pub fn log(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    log64(x as f64) as f32
}

/// ln(1 + x) for f32, within 1 ulp.
#[inline(always)]
pub fn log1p(x: f32) -> f32 {
    if x.is_nan() || x < -1.0 {
        return f32::NAN;
    }
    if x == -1.0 {
        return f32::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    log1p64(x as f64) as f32
}

/// eˣ − 1 for f32, within 1 ulp.
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 50.0 {
        return f32::INFINITY;
    }
    if x < -40.0 {
        return -1.0;
    }
    expm1_64(x as f64) as f32
}

/// erf(x) in f64 (see the module docs); absolute error below 1e-11.
#[inline(always)]
pub(crate) fn erf64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= ERF_CUTOFF {
        return 1.0f64.copysign(x);
    }
    let x2 = x * x;
    let mut t = x; // (−1)ⁿ x²ⁿ⁺¹ / n!
    let mut sum = x;
    for n in 1..ERF_TERMS {
        t = t * -x2 / n as f64;
        let term = t / (2 * n + 1) as f64;
        // Stopping early gives the same bits as all 80 terms: once n ≥ x², the terms only
        // shrink, and a term below a quarter ulp of a nonzero sum leaves it unchanged under
        // round-to-nearest (so every later term does too). A zero sum never stops here.
        if n as f64 >= x2 && term.abs() < sum.abs() * TWO_POW_M54 {
            break;
        }
        sum += term;
    }
    TWO_OVER_SQRT_PI * sum
}

/// 2⁻⁵⁴: a quarter ulp of 1.0 in f64.
pub(crate) const TWO_POW_M54: f64 = 1.0 / 18_014_398_509_481_984.0;
/// `erf64` sums the terms n = 0 … `ERF_TERMS − 1` at most.
pub(crate) const ERF_TERMS: usize = 80;
/// `|x| ≥ ERF_CUTOFF ⇒ erf64(x) = ±1`.
pub(crate) const ERF_CUTOFF: f64 = 4.0;
/// 2/√π, the factor of the erf series.
pub(crate) const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// The error function for f32 (absolute error below 1e-7; nearly always correctly rounded).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    (erf64(x as f64) as f32).copysign(x)
}

/// Whether the finite f64 `y` is an odd integer.
fn is_odd_int(y: f64) -> bool {
    y.abs() < 9_007_199_254_740_992.0 && y.trunc() == y && (y as i64) % 2 != 0
}

/// `x` to the power `y` for f32 with the C99 special cases, within 1 ulp.
#[inline(always)]
pub fn pow(x: f32, y: f32) -> f32 {
    let (xd, yd) = (x as f64, y as f64);
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if x.is_nan() || y.is_nan() {
        return f32::NAN;
    }
    let y_odd = y.is_finite() && is_odd_int(yd);
    if x == 0.0 {
        return if y < 0.0 {
            if y_odd { f32::INFINITY.copysign(x) } else { f32::INFINITY }
        } else if y_odd {
            x
        } else {
            0.0
        };
    }
    if y.is_infinite() {
        let a = x.abs();
        return if a == 1.0 {
            1.0
        } else if (a < 1.0) == (y < 0.0) {
            f32::INFINITY
        } else {
            0.0
        };
    }
    if x.is_infinite() {
        let mag = if y < 0.0 { 0.0f32 } else { f32::INFINITY };
        return if x < 0.0 && y_odd { -mag } else { mag };
    }
    if x < 0.0 && yd.trunc() != yd {
        return f32::NAN;
    }
    let t = yd * log64(xd.abs());
    let mag = exp64_any(t) as f32;
    if x < 0.0 && y_odd { -mag } else { mag }
}

#[cfg(test)]
mod tests {
    //! The tests may use the platform's libm as an oracle; the engine may not.
    use super::*;
    use proptest::prelude::*;

    /// Distance in units in the last place between two finite f32s (same-sign ordering).
    fn ulps(a: f32, b: f32) -> u64 {
        fn ord(x: f32) -> i64 {
            let b = x.to_bits() as i32 as i64;
            if b < 0 { i32::MIN as i64 - b } else { b }
        }
        (ord(a) - ord(b)).unsigned_abs()
    }

    fn check(f: fn(f32) -> f32, oracle: fn(f64) -> f64, x: f32) -> Result<(), TestCaseError> {
        let got = f(x);
        let want = oracle(x as f64) as f32;
        if want.is_nan() {
            prop_assert!(got.is_nan(), "x={x:e}: got {got:e}, want NaN");
        } else if want.is_infinite() || got.is_infinite() {
            prop_assert_eq!(got, want, "x={:e}", x);
        } else {
            prop_assert!(ulps(got, want) <= 1, "x={x:e}: got {got:e}, want {want:e} ({} ulps)", ulps(got, want));
        }
        Ok(())
    }

    fn oracle_sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(88.0), (88.0f64).exp() as f32);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(tanh(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert!(tanh(f32::NAN).is_nan());
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert!(sigmoid(f32::NAN).is_nan());
    }

    #[test]
    fn dense_sweep_within_one_ulp() {
        // Every 97th f32 bit pattern between −120 and 120 (positive and negative).
        let mut bits = 0u32;
        while bits < 0x42f0_0000 {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                check(exp, f64::exp, x).unwrap();
                check(tanh, f64::tanh, x).unwrap();
                check(sigmoid, oracle_sigmoid, x).unwrap();
            }
            bits += 97;
        }
    }

    #[test]
    fn exp_subnormal_and_overflow_edges() {
        for x in [-87.0f32, -88.0, -100.0, -103.0, -103.9, 88.5, 88.7, 88.72, 88.73] {
            check(exp, f64::exp, x).unwrap();
        }
    }

    #[test]
    fn log_erf_pow_special_and_sweep() {
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(0.0), f32::NEG_INFINITY);
        assert!(log(-1.0).is_nan());
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(-2.0, 3.0), -8.0);
        assert!(pow(-2.0, 0.5).is_nan());
        assert_eq!(pow(0.0, -1.0), f32::INFINITY);
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
        let mut bits = 1u32;
        while bits < 0x7f00_0000 {
            let x = f32::from_bits(bits);
            check(log, f64::ln, x).unwrap();
            check(log1p, f64::ln_1p, x).unwrap();
            bits += 9973;
        }
        let mut x = -6.0f32;
        while x < 6.0 {
            let got = erf(x) as f64;
            let want = erf_oracle(x as f64);
            assert!((got - want).abs() <= 1e-7, "erf({x}) = {got}, want {want}");
            check(expm1, f64::exp_m1, x).unwrap();
            x += 0.001_37;
        }
    }

    /// erf by a different series (Abramowitz–Stegun 7.1.6, all-positive terms), for tests.
    fn erf_oracle(x: f64) -> f64 {
        if x.abs() > 5.0 {
            return 1.0f64.copysign(x);
        }
        let mut t = x;
        let mut s = x;
        for n in 1..200 {
            t *= 2.0 * x * x / (2 * n + 1) as f64;
            s += t;
        }
        std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp() * s
    }

    proptest! {
        #[test]
        fn pow_accurate(x in 0.01f32..100.0, y in -10.0f32..10.0) {
            let got = pow(x, y);
            let want = (x as f64).powf(y as f64) as f32;
            if want.is_finite() && want != 0.0 {
                prop_assert!(ulps(got, want) <= 1, "pow({x}, {y}) = {got:e}, want {want:e}");
            }
        }
        #[test]
        fn exp_accurate(x in -110.0f32..90.0) { check(exp, f64::exp, x)?; }
        #[test]
        fn tanh_accurate(x in -12.0f32..12.0) { check(tanh, f64::tanh, x)?; }
        #[test]
        fn tanh_small(x in -1e-3f32..1e-3) { check(tanh, f64::tanh, x)?; }
        #[test]
        fn sigmoid_accurate(x in -120.0f32..50.0) { check(sigmoid, oracle_sigmoid, x)?; }
        #[test]
        fn any_bits_no_panic(b in any::<u32>()) {
            let x = f32::from_bits(b);
            let _ = (exp(x), tanh(x), sigmoid(x));
            if x.is_finite() {
                check(exp, f64::exp, x)?;
                check(tanh, f64::tanh, x)?;
                check(sigmoid, oracle_sigmoid, x)?;
            }
        }
    }

    /// The erf64 series with all 80 terms, as first specified; the early stop must match it.
    fn erf64_all_terms(x: f64) -> f64 {
        if x.is_nan() {
            return x;
        }
        if x.abs() >= 4.0 {
            return 1.0f64.copysign(x);
        }
        let x2 = x * x;
        let (mut t, mut sum) = (x, x);
        for n in 1..80 {
            t = t * -x2 / n as f64;
            sum += t / (2 * n + 1) as f64;
        }
        std::f64::consts::FRAC_2_SQRT_PI * sum
    }

    /// `exp_lanes` is `exp` on every f32 class: both special-case boundaries, the
    /// subnormal results, signed zeros, infinities, NaNs and a wide random sample.
    #[test]
    fn exp_lanes_is_exp() {
        let check = |x: f32| assert_eq!(exp_lanes(x).to_bits(), exp(x).to_bits(), "x = {x:e} ({:#x})", x.to_bits());
        for x in [0.0, -0.0, 1.0, -1.0, 88.8, -104.0, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN, 1e-45] {
            check(x);
            check(f32::from_bits(x.to_bits().wrapping_add(1)));
            check(f32::from_bits(x.to_bits().wrapping_sub(1)));
        }
        for bits in [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xff80_0001, 0x7fff_ffff] {
            check(f32::from_bits(bits));
        }
        // Every f32 between −110 and −80 (the results that underflow to subnormals and zero)
        // would be 10⁸ values; a stride keeps it quick and still crosses every binade.
        let (lo, hi) = ((-80.0f32).to_bits(), (-110.0f32).to_bits());
        for bits in (lo..=hi).step_by(97) {
            check(f32::from_bits(bits));
        }
        let mut st = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1_000_000 {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            check(f32::from_bits((st >> 32) as u32));
            check(((st & 0xffff_ffff) as f32 / u32::MAX as f32) * 200.0 - 110.0);
        }
    }

    /// `tanh_lanes` and `sigmoid_lanes` against the spec functions, as for `exp_lanes`.
    #[test]
    fn tanh_and_sigmoid_lanes() {
        let check = |x: f32| {
            assert_eq!(tanh_lanes(x).to_bits(), tanh(x).to_bits(), "tanh x = {x:e} ({:#x})", x.to_bits());
            assert_eq!(sigmoid_lanes(x).to_bits(), sigmoid(x).to_bits(), "sigmoid x = {x:e} ({:#x})", x.to_bits());
        };
        for x in [0.0f32, -0.0, 9.5, -9.5, 40.0, -40.0, 110.0, -110.0, 1e-45, -1e-45, f32::INFINITY, f32::NEG_INFINITY]
        {
            check(x);
            check(f32::from_bits(x.to_bits().wrapping_add(1)));
            check(f32::from_bits(x.to_bits().wrapping_sub(1)));
        }
        for bits in [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xff80_0001] {
            check(f32::from_bits(bits));
        }
        let mut st = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..500_000 {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            check(f32::from_bits((st >> 32) as u32));
            check(((st & 0xffff_ffff) as f32 / u32::MAX as f32) * 240.0 - 120.0);
        }
    }

    /// Every one of the 2³² f32 inputs (a few minutes in release):
    /// `cargo test --release -p deed-engine --lib lanes_exhaustive -- --ignored`.
    /// `exp_lanes` passed it on 2026-11-27 (345 s).
    #[test]
    #[ignore = "exhaustive, run on demand"]
    fn exp_lanes_exhaustive() {
        for bits in 0..=u32::MAX {
            let x = f32::from_bits(bits);
            assert_eq!(exp_lanes(x).to_bits(), exp(x).to_bits(), "x = {x:e} ({bits:#x})");
        }
    }

    /// As [`exp_lanes_exhaustive`], for `tanh_lanes` and `sigmoid_lanes` (passed on
    /// 2026-11-27, 738 s).
    #[test]
    #[ignore = "exhaustive, run on demand"]
    fn tanh_sigmoid_lanes_exhaustive() {
        for bits in 0..=u32::MAX {
            let x = f32::from_bits(bits);
            assert_eq!(tanh_lanes(x).to_bits(), tanh(x).to_bits(), "tanh x = {x:e} ({bits:#x})");
            assert_eq!(sigmoid_lanes(x).to_bits(), sigmoid(x).to_bits(), "sigmoid x = {x:e} ({bits:#x})");
        }
    }

    #[test]
    fn erf64_early_stop_is_bit_identical() {
        let specials = [0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-8, 0.5, 1.0, 2.0, 3.999_999, -3.999_999, 4.0, 1e300];
        for &x in &specials {
            assert_eq!(erf64(x).to_bits(), erf64_all_terms(x).to_bits(), "x = {x:e}");
        }
        let mut st = 0x2545_f491_4f6c_dd1du64;
        for i in 0..200_000 {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            // Uniform on (-4.5, 4.5), and values spread over many binades.
            let u = (st >> 11) as f64 / (1u64 << 53) as f64;
            let x = if i % 2 == 0 { u * 9.0 - 4.5 } else { (u - 0.5) * 2f64.powi(-((st % 60) as i32)) };
            assert_eq!(erf64(x).to_bits(), erf64_all_terms(x).to_bits(), "x = {x:e}");
        }
    }
}

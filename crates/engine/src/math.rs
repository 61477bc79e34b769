//! The engine's own transcendental functions, built only from IEEE-754 `+ − × ÷`,
//! fused multiply-add and bit manipulation, so that every machine gets the same bits.
//! The platform's libm (`f32::exp`, `f64::tanh`, ...) is never called: its results
//! differ between C libraries and versions.
//!
//! Every f32 function evaluates in f64 with a fixed sequence of operations and rounds
//! once to f32 at the end. The f64 cores are accurate to a few f64 ulps, so the f32
//! results are within 1 ulp of the true value (nearly always correctly rounded).
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
#[inline]
fn reduce(x: f64) -> (i64, f64) {
    let kf = x.mul_add(LOG2E, ROUND_SHIFT) - ROUND_SHIFT;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    (kf as i64, r)
}

/// 2ᵏ for −1022 ≤ k ≤ 1023, from its bits.
#[inline]
fn pow2(k: i64) -> f64 {
    assert!((-1022..=1023).contains(&k), "pow2 exponent out of range");
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// eˣ in f64 for |x| ≤ 708.
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

/// tanh(x) for f32, within 1 ulp; odd, keeps the sign of zero.
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

    proptest! {
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
}

#!/usr/bin/env python3
"""Generates crates/engine/src/kernels/erf_table.rs: the polynomial table and error
bounds of the engine's fast f32 Erf/Gelu path (see that module's docs).

Run from the repository root:  python3 scripts/gen_erf_table.py > crates/engine/src/kernels/erf_table.rs
Needs mpmath (exact-enough arithmetic at 100 decimal digits); deterministic output.

What it computes, for the 16 intervals I_i = [i/4, (i+1)/4), i = 0..15, of |a| < 4:
- i = 0: e'(a) = a·Q(a²), Q the Taylor polynomial of erf(a)/a in a² (degree DEG);
- i ≥ 1: e'(a) = P_i(a − m_i), m_i = (2i+1)/8, P_i the Taylor polynomial of erf at m_i
  (degree DEG); a − m_i is exact (Sterbenz), |a − m_i| ≤ 1/8;
- rho_i: a bound with |e'(a) − erf64(a)| ≤ rho_i·e'(a) for every f64 a in I_i, where e'
  is the f64 Horner evaluation with fma (as the engine does it) and erf64 the engine's
  f64 series (crates/engine/src/math.rs) with its own rounding errors; plus slack for the
  rounding of e'·rho and e' ± e'·rho. The pieces (all upper bounds):
  * Taylor remainder: sum of |coefficient|·h^k over the omitted degrees (to DEG + 200;
    the coefficients fall like 1/Gamma(k/2), the rest is far below 1e-100);
  * coefficient rounding to f64: sum |c~_k − c_k|·h^k;
  * Horner with fma: u·sum_k h^k·|p_k| (p_k the partial Horner values, bounded by
    sum_{j>=k} |c_j| h^(j−k), times 1.01);
  * the series (see series_abs): rounding of x² (exact effect bounded), the 2 roundings
    per term recurrence step (first order: eps_j times the tail S_N − S_{j−1} of the
    sum they scale, plus a second-order bound), the division by 2n+1, the additions,
    the early stop, and the final product by fl(2/sqrt(pi)).
"""
import mpmath
from mpmath import mp, mpf

mp.dps = 100
DEG = 12
U = mpf(2) ** -53
N_TERMS = 80  # math::ERF_TERMS
C_EXACT = 2 / mp.sqrt(mp.pi)
C_F64 = mpf(float.fromhex("0x1.20dd750429b6dp+0"))  # std::f64::consts::FRAC_2_SQRT_PI
assert abs(C_F64 - C_EXACT) <= U * C_EXACT


def f64(x):
    """x rounded to nearest f64 (mpmath's float() rounds correctly from 100 digits)."""
    return mpf(float(x))


def taylor_at(m, n):
    """Taylor coefficients a_k of erf at m, k = 0..n−1 (Hermite recursion)."""
    e = mp.exp(-m * m)
    coef = [mp.erf(m)]
    h_prev, h = mpf(0), mpf(1)  # H_{-1} (unused), H_0
    fact = mpf(1)
    for k in range(1, n):
        # erf^(k)(m) = C·(−1)^(k−1)·H_{k−1}(m)·e^{−m²}
        fact *= k
        coef.append(C_EXACT * (-1) ** (k - 1) * h * e / fact)
        h_prev, h = h, 2 * m * h - 2 * (k - 1) * h_prev if k > 1 else 2 * m * h
    return coef


def horner_bound(c, h):
    """u·1.01·Σ_k h^k·Σ_{j≥k} |c_j| h^(j−k): Horner with fma, rounding per step."""
    total = mpf(0)
    for k in range(len(c)):
        pk = sum(abs(c[j]) * h ** (j - k) for j in range(k, len(c)))
        total += h**k * pk
    return U * mpf("1.01") * total


def series_abs(amax, relative, amin_sum=None):
    """Bound on |erf64(a) − erf(a)| for 0 < a ≤ amax (divided by a if `relative`: each
    piece is then a polynomial in a² with non-negative coefficients plus terms ∝ a, so its
    value at amax bounds every smaller a). Unless `relative`, `amin_sum` is a lower bound of
    the series sum √π/2·erf(a) over the interval (which starts at amin > 0)."""
    y = amax * amax * (1 + U)  # fl(a²) ≤ this
    x = amax
    term = [x * y**n / (mp.factorial(n) * (2 * n + 1)) for n in range(N_TERMS + 1)]
    sinf = x if relative else min(x, mpf("0.8863"))  # |S_∞(y)| ≤ x·G(y) ≤ x, and ≤ √π/2·(x/x̂)
    sinf *= mpf("1.000001")
    n0 = int(mp.ceil(y))  # terms |term_n| decrease from n0 on (n + 1 > y)
    # Bounds on the partial sums |S_n|, plus slack for the computed ones. The magnitudes
    # |term_n| rise while their ratio y/(n+1)·(2n+1)/(2n+3) ≥ 1 and fall after (the ratio
    # falls with n). If they rise up to n, the alternating S_n is at most |term_n|;
    # otherwise they fall from n − 1 on and |S_n − S_∞| ≤ |term_{n+1}|.
    sb = [max(term[n], sinf + term[n + 1]) + mpf("1e-6") * sinf for n in range(N_TERMS)]
    # The stop index N: the first n ≥ y with |term_n| < |S_{n−1}|·2^-54 (the series'
    # test), at the latest n_stop, the first n ≥ n0 where that holds for every a ≤ amax
    # (|term_n(a)| ≤ term[n]; |S_{n−1}| ≥ slow, a lower bound of the sum on the interval).
    slow = (amax if relative else amin_sum) * mpf("0.97")
    n_stop = next((n for n in range(n0, N_TERMS) if term[n] * mpf("1.001") < slow * mpf(2) ** -54), N_TERMS)
    err = mpf(0)
    # Recurrence roundings (×(−y) and ÷n at step j ≤ N): first order, eps_j times the
    # part S_N − S_{j−1} of the sum the step scales: below |term_j| once the terms
    # decrease (j ≥ n0), else below |S_N| + |S_{j−1}|.
    for j in range(1, n_stop + 1):
        tj = term[j] if j >= n0 else sinf + term[n0] + sb[j - 1]
        err += 2 * U * mpf("1.01") * tj
    # Division by 2n+1, and the second-order part of the products of (1 + eps).
    err += sum(U * term[n] + ((2 * n + 1) * U) ** 2 * mpf("1.01") * term[n] for n in range(n_stop + 1))
    # Additions (n = 1 .. N − 1).
    err += U * mpf("1.01") * sum(sb[1:n_stop])
    # Early stop (tail after the stop index, alternating decreasing, below |S|·2^-54) or
    # the 80-term cap.
    err += mpf(2) ** -54 * mpf("1.01") * sinf + term[N_TERMS]
    err *= C_EXACT * (1 + 2 * U)
    # fl(2/√π)·Ŝ vs (2/√π)·Ŝ, and the final rounding.
    err += abs(C_F64 - C_EXACT) * sinf * mpf("1.01") + U * C_EXACT * sinf * mpf("1.01")
    # x² rounded: the exact series of y = x̂² is (x/x̂)·√π/2·erf(x̂), |x̂ − x| ≤ x·u/2·1.01.
    err += C_EXACT * x * U * mpf("0.51") + U * mpf("1.01") * min(1, C_EXACT * x * mpf("1.01"))
    return err / amax if relative else err


def main():
    h = mpf(1) / 8
    rows = []
    # Interval 0: Q(t) = Σ b_n t^n, t = a² ≤ 1/16.
    b = [C_EXACT * (-1) ** n / (mp.factorial(n) * (2 * n + 1)) for n in range(DEG + 200)]
    bt = [f64(v) for v in b[: DEG + 1]]
    t0 = mpf(1) / 16
    qmin = C_EXACT * (1 - t0 / 3)
    rem = sum(abs(v) * t0**n for n, v in enumerate(b[DEG + 1 :], start=DEG + 1))
    cr = sum(abs(bt[n] - b[n]) * t0**n for n in range(DEG + 1))
    hb = horner_bound(bt, t0)
    dq = sum(n * abs(bt[n]) * t0 ** (n - 1) for n in range(1, DEG + 1)) * t0 * U * mpf("1.01")
    poly_rel = (rem + cr + hb + dq) / qmin + U * mpf("1.01")
    ser_rel = series_abs(mpf(1) / 4, True) / qmin
    rho = (poly_rel + ser_rel) / (1 - poly_rel - ser_rel)
    rows.append((bt, rho, poly_rel, ser_rel))
    for i in range(1, 16):
        m = mpf(2 * i + 1) / 8
        a = taylor_at(m, DEG + 200)
        at = [f64(v) for v in a[: DEG + 1]]
        rem = sum(abs(v) * h**k for k, v in enumerate(a[DEG + 1 :], start=DEG + 1))
        cr = sum(abs(at[k] - a[k]) * h**k for k in range(DEG + 1))
        hb = horner_bound(at, h)
        poly = rem + cr + hb
        ser = series_abs(mpf(i + 1) / 4, False, mp.sqrt(mp.pi) / 2 * mp.erf(mpf(i) / 4))
        emin = mp.erf(mpf(i) / 4)
        rho = (poly + ser) / (emin - poly - ser)
        rows.append((at, rho, poly / emin, ser / emin))
    out = []
    out.append("// @generated by scripts/gen_erf_table.py; do not edit by hand.")
    out.append("//! The table of the fast f32 Erf/Gelu path (see `erf`'s module docs): per interval")
    out.append("//! `[i/4, (i+1)/4)` of `|a|`, the Taylor coefficients (lowest degree first) and the")
    out.append("//! relative bound `RHO[i]` with `|e' − erf64(a)| ≤ RHO[i]·e'`, all as exact f64 bits.")
    out.append("")
    out.append(f"/// Degree of the polynomials.\npub(crate) const DEG: usize = {DEG};")
    out.append("")
    out.append("/// `COEF[k][i]`: coefficient of degree k of interval i (interval 0: of `erf(a)/a` in `a²`;")
    out.append("/// interval i ≥ 1: of `erf` in `a − (2i+1)/8`).")
    out.append(f"pub(crate) const COEF: [[f64; 16]; {DEG + 1}] = [")
    for k in range(DEG + 1):
        out.append("    [")
        for i in range(16):
            v = float(rows[i][0][k])
            out.append(f"        f64::from_bits(0x{struct_bits(v):016x}), // {v!r}")
        out.append("    ],")
    out.append("];")
    out.append("")
    out.append("/// `RHO[i]`: the certainty bound of interval i, rounding slack included. Its parts")
    out.append("/// (relative to e'): polynomial / series:")
    for i in range(16):
        out.append(f"/// - {i:2}: {mpmath.nstr(rows[i][2], 3)} / {mpmath.nstr(rows[i][3], 3)}")
    out.append("pub(crate) const RHO: [f64; 16] = [")
    for i in range(16):
        r = rows[i][1]
        # Slack for fl(e'·ρ) and fl(e' ± r): ρ' ≥ (ρ + u)/(1 − u); rounded up generously.
        rp = float((r + 4 * U) * (1 + mpf("1e-6")))
        assert mpf(rp) >= (r + U) / (1 - U)
        out.append(f"    f64::from_bits(0x{struct_bits(rp):016x}), // {rp!r}")
    out.append("];")
    print("\n".join(out))


def struct_bits(v):
    import struct

    return struct.unpack("<Q", struct.pack("<d", v))[0]


if __name__ == "__main__":
    main()

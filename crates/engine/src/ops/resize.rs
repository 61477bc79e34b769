//! Resize (opsets 10–19) and Upsample (7–9): nearest, (n-)linear and (n-)cubic
//! interpolation on float32 tensors.
//!
//! **Arithmetic** (part of the engine spec), per resized axis with input length `L`,
//! output length `O` and scale `s` (given, or `O / L` in f32 when sizes are given), all
//! in f32: the output coordinate `x` maps to
//! - `half_pixel`: `(x + 0.5) / s − 0.5`; `pytorch_half_pixel`: the same, but 0 when `O = 1`;
//! - `asymmetric`: `x / s`; `align_corners`: `x · (L − 1) / (W − 1)` (0 when `W = 1`), where
//!   `W` is `s · L` (f32) when scales are given and `O` when sizes are;
//! - `half_pixel_symmetric`: `c·(1 − O / (s·L)) + (x + 0.5) / s − 0.5` with `c = L / 2`.
//!
//! **nearest** picks `round_prefer_floor` (ties down), `round_prefer_ceil`, `floor` or
//! `ceil` of that coordinate, clamped to `[0, L − 1]` (Upsample and Resize-10: `floor` of
//! `x / s`). **linear** clamps the coordinate to `[0, L − 1]`, takes `i0 = floor`,
//! `i1 = min(i0 + 1, L − 1)`, `w1 = c − i0`, `w0 = 1 − w1`, and sums over the 2ʳ corners
//! (corner bits in axis order, first axis most significant):
//! `acc = fma(w_axis1 · w_axis2 · …, v, acc)` from `+0.0`, the weight product formed left
//! to right; corners whose weight is 0 are skipped. **cubic** (coefficient `a`,
//! `cubic_coeff_a`, default −0.75) does not clamp the coordinate `c`; per axis it takes
//! four taps at `⌈c⌉ − 2 + j` (j = 0..3), each index clamped to `[0, L − 1]`, with `t = c −
//! ⌊c⌋` (1 when `c` is integral), `u = 1 − t` and weights, in f32 as written:
//! `w0 = ((a·(t+1) − 5a)·(t+1) + 8a)·(t+1) − 4a`, `w1 = ((a+2)·t − (a+3))·t·t + 1`,
//! `w2 = ((a+2)·u − (a+3))·u·u + 1`, `w3 = ((a·(u+1) − 5a)·(u+1) + 8a)·(u+1) − 4a`; with
//! `exclude_outside`, taps whose unclamped index is outside `[0, L − 1]` get weight 0 and
//! each weight is divided by `w0 + w1 + w2 + w3` (summed left to right). Taps of weight 0
//! are dropped; the output sums over the remaining tap combinations in axis order (first
//! axis most significant, taps ascending), `acc = fma(w_axis1 · w_axis2 · …, v, acc)`
//! from `+0.0`, the product formed left to right, combinations whose product is 0
//! skipped. Output lengths are `floor(L · s)` (computed in f64) or the given sizes; with
//! `keep_aspect_ratio_policy` `not_larger` (`not_smaller`) and sizes, every resized axis
//! takes the smallest (largest) of `size / L` (f32) as its scale and length
//! `floor(L · s + 0.5)` (f64).

use super::util::{self, inv, want, want_opt};
use super::{Ctx, KResult, Kernel, attr::Attrs};
use crate::LoadError;
use deed_types::{DType, Tensor, TensorData};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Coord {
    HalfPixel,
    PytorchHalfPixel,
    Asymmetric,
    AlignCorners,
    HalfPixelSymmetric,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// How a given `sizes` input is honoured.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Aspect {
    Stretch,
    NotLarger,
    NotSmaller,
}

#[derive(Debug)]
struct Resize {
    linear: bool,
    /// Cubic interpolation with this coefficient (`linear` is then false).
    cubic: Option<f32>,
    exclude_outside: bool,
    aspect: Aspect,
    coord: Coord,
    nearest: Nearest,
    /// Upsample-7: scales attribute.
    attr_scales: Option<Vec<f32>>,
    /// Input positions: (scales, sizes); Resize-10 and Upsample-9 have only scales at #1.
    scales_at: usize,
    sizes_at: Option<usize>,
    axes: Option<Vec<i64>>,
}

/// Parses the operators of this module.
pub(crate) fn parse(op: &str, opset: i64, a: &Attrs<'_>) -> Result<Option<Arc<dyn Kernel>>, LoadError> {
    if op != "Resize" && op != "Upsample" {
        return Ok(None);
    }
    let mode = a.string("mode", "nearest")?;
    let (linear, cubic) = match mode.as_str() {
        "nearest" => (false, false),
        "linear" | "bilinear" => (true, false),
        "cubic" if op == "Resize" && opset >= 11 => (false, true),
        m => return Err(a.unsupported(format!("{op} mode '{m}'"))),
    };
    if op == "Upsample" || opset < 11 {
        let attr_scales = if op == "Upsample" && opset < 9 {
            Some(a.floats("scales")?.ok_or_else(|| a.invalid("attribute 'scales' is required"))?)
        } else {
            None
        };
        return Ok(Some(Arc::new(Resize {
            linear,
            cubic: None,
            exclude_outside: false,
            aspect: Aspect::Stretch,
            coord: Coord::Asymmetric,
            nearest: Nearest::Floor,
            attr_scales,
            scales_at: 1,
            sizes_at: None,
            axes: None,
        })));
    }
    let ct = a.string("coordinate_transformation_mode", "half_pixel")?;
    let coord = match ct.as_str() {
        "half_pixel" => Coord::HalfPixel,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "asymmetric" => Coord::Asymmetric,
        "align_corners" => Coord::AlignCorners,
        "half_pixel_symmetric" if opset >= 19 => Coord::HalfPixelSymmetric,
        m => return Err(a.unsupported(format!("Resize coordinate_transformation_mode '{m}'"))),
    };
    let nm = a.string("nearest_mode", "round_prefer_floor")?;
    let nearest = match nm.as_str() {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        m => return Err(a.invalid(format!("Resize nearest_mode '{m}'"))),
    };
    if a.int("antialias", 0)? != 0 {
        return Err(a.unsupported("Resize with antialias = 1"));
    }
    let aspect = match a.string("keep_aspect_ratio_policy", "stretch")?.as_str() {
        "stretch" => Aspect::Stretch,
        "not_larger" if opset >= 18 => Aspect::NotLarger,
        "not_smaller" if opset >= 18 => Aspect::NotSmaller,
        p => return Err(a.invalid(format!("Resize keep_aspect_ratio_policy '{p}'"))),
    };
    let exclude_outside = a.int("exclude_outside", 0)? != 0;
    if exclude_outside && !cubic {
        return Err(a.unsupported("Resize with exclude_outside = 1 outside cubic mode"));
    }
    let cubic_a = a.float("cubic_coeff_a", -0.75)?;
    if !cubic_a.is_finite() {
        return Err(a.invalid("cubic_coeff_a is not finite"));
    }
    Ok(Some(Arc::new(Resize {
        linear,
        cubic: cubic.then_some(cubic_a),
        exclude_outside,
        aspect,
        coord,
        nearest,
        attr_scales: None,
        scales_at: 2,
        sizes_at: Some(3),
        axes: if opset >= 18 { a.ints("axes")? } else { None },
    })))
}

impl Kernel for Resize {
    fn arity(&self) -> (usize, usize) {
        match (self.attr_scales.is_some(), self.sizes_at) {
            (true, _) => (1, 1),
            (false, None) => (2, 2),
            (false, Some(_)) => (1, 4),
        }
    }
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        want(ins, 0, &[DType::F32], "X")?;
        want_opt(ins, 1, &[DType::F32], "roi or scales")?;
        want_opt(ins, self.scales_at, &[DType::F32], "scales")?;
        if let Some(s) = self.sizes_at {
            want_opt(ins, s, &[DType::I64], "sizes")?;
        }
        Ok(vec![DType::F32])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let x = ins[0].expect("req");
        let r = x.shape.len();
        let axes: Vec<usize> = match &self.axes {
            Some(a) => util::norm_axes(a, r)?,
            None => (0..r).collect(),
        };
        let scales_in: Option<Vec<f32>> = match &self.attr_scales {
            Some(s) => Some(s.clone()),
            None => {
                ins.get(self.scales_at).copied().flatten().map(|t| util::f32s(t).to_vec()).filter(|v| !v.is_empty())
            }
        };
        let sizes_in: Option<Vec<i64>> = self
            .sizes_at
            .and_then(|i| ins.get(i).copied().flatten())
            .map(util::ints)
            .transpose()?
            .filter(|v| !v.is_empty());
        let mut scale = vec![1.0f32; r];
        let mut out = x.shape.clone();
        let by_scales = scales_in.is_some();
        match (scales_in, sizes_in) {
            (Some(_), Some(_)) => return Err(inv("Resize takes scales or sizes, not both")),
            (None, None) => return Err(inv("Resize needs scales or sizes")),
            (Some(s), None) => {
                if s.len() != axes.len() {
                    return Err(inv(format!("scales has {} values for {} axes", s.len(), axes.len())));
                }
                for (&ax, &sv) in axes.iter().zip(&s) {
                    if !(sv > 0.0 && sv.is_finite()) {
                        return Err(inv(format!("scale {sv} is not positive")));
                    }
                    scale[ax] = sv;
                    let len = (x.shape[ax] as f64 * sv as f64).floor();
                    if len > ctx.limits.tensor_elements_max as f64 {
                        return Err(inv("Resize output is too large"));
                    }
                    out[ax] = len as usize;
                }
            }
            (None, Some(z)) => {
                if z.len() != axes.len() {
                    return Err(inv(format!("sizes has {} values for {} axes", z.len(), axes.len())));
                }
                for (&ax, &zv) in axes.iter().zip(&z) {
                    out[ax] = util::dim(zv)?;
                    scale[ax] = if x.shape[ax] == 0 { 1.0 } else { out[ax] as f32 / x.shape[ax] as f32 };
                }
                if self.aspect != Aspect::Stretch && !axes.is_empty() {
                    let pick = |a: f32, b: f32| if self.aspect == Aspect::NotLarger { a.min(b) } else { a.max(b) };
                    let s = axes.iter().map(|&ax| scale[ax]).reduce(pick).expect("non-empty");
                    for &ax in &axes {
                        let len = (x.shape[ax] as f64 * s as f64 + 0.5).floor();
                        if len > ctx.limits.tensor_elements_max as f64 {
                            return Err(inv("Resize output is too large"));
                        }
                        scale[ax] = s;
                        out[ax] = len as usize;
                    }
                }
            }
        }
        let n = ctx.check_shape(&out)?;
        if n > 0 && x.shape.contains(&0) {
            return Err(inv("cannot resize an empty tensor to a non-empty one"));
        }
        if n == 0 {
            return Ok(vec![Tensor { shape: out, data: TensorData::F32(Vec::new()) }]);
        }
        let taps_max = if self.cubic.is_some() {
            1usize << (2 * r.min(10))
        } else if self.linear {
            1 << r.min(20)
        } else {
            1
        };
        ctx.check_work(&[n, taps_max])?;
        // Per axis, per output index: (i0, i1, w0, w1) (nearest: i0 only), or the cubic
        // taps.
        let mut maps: Vec<Vec<(usize, usize, f32, f32)>> = Vec::with_capacity(r);
        let mut cubic: Vec<Vec<Vec<(usize, f32)>>> = Vec::new();
        for d in 0..r {
            let (l, o, s) = (x.shape[d], out[d], scale[d]);
            let mut m = Vec::with_capacity(o);
            let mut cubic_taps = Vec::new();
            for xo in 0..o {
                let xf = xo as f32;
                let c = match self.coord {
                    Coord::HalfPixel => (xf + 0.5) / s - 0.5,
                    Coord::PytorchHalfPixel => {
                        if o > 1 {
                            (xf + 0.5) / s - 0.5
                        } else {
                            0.0
                        }
                    }
                    Coord::Asymmetric => xf / s,
                    Coord::AlignCorners => {
                        let w = if by_scales { s * l as f32 } else { o as f32 };
                        if w != 1.0 { xf * (l as f32 - 1.0) / (w - 1.0) } else { 0.0 }
                    }
                    Coord::HalfPixelSymmetric => {
                        let adj = o as f32 / (s * l as f32);
                        let center = l as f32 / 2.0;
                        center * (1.0 - adj) + (xf + 0.5) / s - 0.5
                    }
                };
                let last = (l - 1) as f32;
                if let Some(a) = self.cubic {
                    cubic_taps.push(cubic_taps_of(c, l, a, self.exclude_outside));
                    continue;
                }
                if self.linear {
                    let c = c.clamp(0.0, last);
                    let i0 = c.floor();
                    let w1 = c - i0;
                    let i0 = i0 as usize;
                    m.push((i0, (i0 + 1).min(l - 1), 1.0 - w1, w1));
                } else {
                    let i = match self.nearest {
                        Nearest::Floor => c.floor(),
                        Nearest::Ceil => c.ceil(),
                        Nearest::RoundPreferFloor => {
                            if c - c.floor() == 0.5 {
                                c.floor()
                            } else {
                                c.round()
                            }
                        }
                        Nearest::RoundPreferCeil => {
                            if c - c.floor() == 0.5 {
                                c.ceil()
                            } else {
                                c.round()
                            }
                        }
                    };
                    let i = i.clamp(0.0, last) as usize;
                    m.push((i, i, 1.0, 0.0));
                }
            }
            maps.push(m);
            cubic.push(cubic_taps);
        }
        let xv = util::f32s(x);
        let st = util::strides(&x.shape);
        let mut y = Vec::with_capacity(n);
        let mut o = vec![0usize; r];
        for _ in 0..n {
            if self.cubic.is_some() {
                y.push(cubic_sum(&cubic, &o, &st, xv));
            } else if self.linear {
                let mut acc = 0.0f32;
                for corner in 0..(1usize << r) {
                    let mut w = 1.0f32;
                    let mut off = 0usize;
                    for d in 0..r {
                        let (i0, i1, w0, w1) = maps[d][o[d]];
                        let hi = (corner >> (r - 1 - d)) & 1 == 1;
                        w *= if hi { w1 } else { w0 };
                        off += if hi { i1 } else { i0 } * st[d];
                    }
                    if w != 0.0 {
                        acc = w.mul_add(xv[off], acc);
                    }
                }
                y.push(acc);
            } else {
                let off: usize = (0..r).map(|d| maps[d][o[d]].0 * st[d]).sum();
                y.push(xv[off]);
            }
            util::next_index(&mut o, &out);
        }
        Ok(vec![Tensor { shape: out, data: TensorData::F32(y) }])
    }
}

/// The taps of one cubic output coordinate `c` on an axis of length `l` (module docs):
/// (index, weight), indices ascending, zero weights dropped.
fn cubic_taps_of(c: f32, l: usize, a: f32, exclude_outside: bool) -> Vec<(usize, f32)> {
    let fl = c.floor();
    let t = if c == fl { 1.0f32 } else { c - fl };
    let u = 1.0 - t;
    let mut w = [
        ((a * (t + 1.0) - 5.0 * a) * (t + 1.0) + 8.0 * a) * (t + 1.0) - 4.0 * a,
        ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
        ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0,
        ((a * (u + 1.0) - 5.0 * a) * (u + 1.0) + 8.0 * a) * (u + 1.0) - 4.0 * a,
    ];
    let base = (c.ceil() - 2.0) as i64;
    let last = l as i64 - 1;
    if exclude_outside {
        for (j, wj) in w.iter_mut().enumerate() {
            let i = base + j as i64;
            if i < 0 || i > last {
                *wj = 0.0;
            }
        }
        let sum = w[0] + w[1] + w[2] + w[3];
        for wj in &mut w {
            *wj /= sum;
        }
    }
    (0..4).filter(|&j| w[j] != 0.0).map(|j| ((base + j as i64).clamp(0, last) as usize, w[j])).collect()
}

/// One cubic output: the weighted sum over every combination of the axes' taps at
/// output index `o` (first axis most significant), in the module docs' order.
fn cubic_sum(taps: &[Vec<Vec<(usize, f32)>>], o: &[usize], st: &[usize], xv: &[f32]) -> f32 {
    let axes: Vec<&[(usize, f32)]> = taps.iter().zip(o).map(|(t, &i)| t[i].as_slice()).collect();
    if axes.iter().any(|t| t.is_empty()) {
        return 0.0;
    }
    let r = axes.len();
    let mut pick = vec![0usize; r];
    let mut acc = 0.0f32;
    loop {
        let mut w = 1.0f32;
        let mut off = 0usize;
        for d in 0..r {
            let (i, wd) = axes[d][pick[d]];
            w *= wd;
            off += i * st[d];
        }
        if w != 0.0 {
            acc = w.mul_add(xv[off], acc);
        }
        // Next combination, last axis fastest.
        let mut d = r;
        loop {
            if d == 0 {
                return acc;
            }
            d -= 1;
            pick[d] += 1;
            if pick[d] < axes[d].len() {
                break;
            }
            pick[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cubic_taps_of;

    #[test]
    fn cubic_taps_by_hand() {
        // On a sample point the kernel is that sample alone.
        assert_eq!(cubic_taps_of(2.0, 6, -0.75, false), vec![(2, 1.0)]);
        // Half way: the Keys kernel with a = -0.75 at distances 1.5, 0.5, 0.5, 1.5.
        assert_eq!(cubic_taps_of(2.5, 6, -0.75, false), vec![(1, -0.09375), (2, 0.59375), (3, 0.59375), (4, -0.09375)]);
        // At the edge, taps beyond it repeat the edge sample...
        assert_eq!(cubic_taps_of(0.5, 6, -0.75, false), vec![(0, -0.09375), (0, 0.59375), (1, 0.59375), (2, -0.09375)]);
        // ...or, with exclude_outside, drop out and the rest is renormalized.
        let t = cubic_taps_of(0.5, 6, -0.75, true);
        let w: f32 = 0.59375 + 0.59375 - 0.09375;
        assert_eq!(t, vec![(0, 0.59375 / w), (1, 0.59375 / w), (2, -0.09375 / w)]);
    }
}

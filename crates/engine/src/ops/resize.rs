//! Resize (opsets 10–19) and Upsample (7–9): nearest and (n-)linear interpolation on
//! float32 tensors.
//!
//! **Arithmetic** (part of the engine spec), per resized axis with input length `L`,
//! output length `O` and scale `s` (given, or `O / L` in f32 when sizes are given), all
//! in f32: the output coordinate `x` maps to
//! - `half_pixel`: `(x + 0.5) / s − 0.5`; `pytorch_half_pixel`: the same, but 0 when `O = 1`;
//! - `asymmetric`: `x / s`; `align_corners`: `x · (L − 1) / (O − 1)` (0 when `O = 1`);
//! - `half_pixel_symmetric`: `c·(1 − O / (s·L)) + (x + 0.5) / s − 0.5` with `c = L / 2`.
//!
//! **nearest** picks `round_prefer_floor` (ties down), `round_prefer_ceil`, `floor` or
//! `ceil` of that coordinate, clamped to `[0, L − 1]` (Upsample and Resize-10: `floor` of
//! `x / s`). **linear** clamps the coordinate to `[0, L − 1]`, takes `i0 = floor`,
//! `i1 = min(i0 + 1, L − 1)`, `w1 = c − i0`, `w0 = 1 − w1`, and sums over the 2ʳ corners
//! (corner bits in axis order, first axis most significant):
//! `acc = fma(w_axis1 · w_axis2 · …, v, acc)` from `+0.0`, the weight product formed left
//! to right; corners whose weight is 0 are skipped. Output lengths are `floor(L · s)` (computed in f64) or the given sizes.

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

#[derive(Debug)]
struct Resize {
    linear: bool,
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
    let linear = match mode.as_str() {
        "nearest" => false,
        "linear" | "bilinear" => true,
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
    if a.string("keep_aspect_ratio_policy", "stretch")? != "stretch" {
        return Err(a.unsupported("Resize keep_aspect_ratio_policy other than 'stretch'"));
    }
    if a.int("exclude_outside", 0)? != 0 {
        return Err(a.unsupported("Resize with exclude_outside = 1"));
    }
    Ok(Some(Arc::new(Resize {
        linear,
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
            }
        }
        let n = ctx.check_shape(&out)?;
        if n > 0 && x.shape.contains(&0) {
            return Err(inv("cannot resize an empty tensor to a non-empty one"));
        }
        ctx.check_work(&[n, if self.linear { 1 << r.min(20) } else { 1 }])?;
        // Per axis, per output index: (i0, i1, w0, w1) (nearest: i0 only).
        let mut maps: Vec<Vec<(usize, usize, f32, f32)>> = Vec::with_capacity(r);
        for d in 0..r {
            let (l, o, s) = (x.shape[d], out[d], scale[d]);
            let mut m = Vec::with_capacity(o);
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
                        if o > 1 {
                            xf * (l as f32 - 1.0) / (o as f32 - 1.0)
                        } else {
                            0.0
                        }
                    }
                    Coord::HalfPixelSymmetric => {
                        let adj = o as f32 / (s * l as f32);
                        let center = l as f32 / 2.0;
                        center * (1.0 - adj) + (xf + 0.5) / s - 0.5
                    }
                };
                let last = (l - 1) as f32;
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
        }
        let xv = util::f32s(x);
        let st = util::strides(&x.shape);
        let mut y = Vec::with_capacity(n);
        let mut o = vec![0usize; r];
        for _ in 0..n {
            if self.linear {
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

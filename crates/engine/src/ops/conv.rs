//! N-dimensional Conv and MaxPool over `[N, C, spatial...]` tensors.
//!
//! **Conv** (part of the engine spec): output element `y[n, m, o...]` with `m` in group
//! `g` is `dot(w[m, :], patch)` with the engine's blocked dot product (see
//! [`linalg`](super::linalg)), where the K = (C/group)·∏kernel terms are taken in the
//! row-major order of the weight tensor `w[m, c, k1, k2, ...]` and `patch` holds the
//! matching input values `x[n, g·C/group + c, o_d·stride_d + k_d·dilation_d − pad_begin_d]`,
//! with `+0.0` at positions in the padding. When a bias is given, `y = dot + b[m]`
//! (one rounded add). This is exactly im2col followed by the Gemm dot product.
//!
//! **MaxPool**: the maximum over the window positions inside the input (padding is
//! ignored), visited in row-major window order starting from −∞, keeping a candidate
//! only when strictly greater; a NaN in the window makes the result NaN.
//! The optional second output **Indices** (int64, same shape) holds, for each output, the
//! position in X of the element it took: the first NaN of the window if there is one,
//! else the first window element (row-major window order) equal to the maximum, as
//! `plane · ∏spatial + offset` where `plane = n·C + c` and `offset` is the flat spatial
//! index, row-major for `storage_order` 0 (`Σ_d i_d · ∏_{e>d} D_e`) or column-major for
//! 1 (`Σ_d i_d · ∏_{e<d} D_e`); padding is never an index. A window that lies wholly in
//! the padding (possible with dilations) gives −∞ and index −1.
//!
//! Output sizes: with explicit pads, `out = floor((in + pb + pe − ((k−1)·d + 1)) / s) + 1`
//! (`ceil` with `ceil_mode`, dropping a last window that would start in the end padding);
//! `VALID` uses zero pads; `SAME_UPPER`/`SAME_LOWER` use `out = ceil(in / s)` and a total
//! pad of `max(0, (out−1)·s + (k−1)·d + 1 − in)`, split with the extra unit at the end
//! (UPPER) or the beginning (LOWER).

use super::linalg::dot;
use super::{Ctx, KResult, KernelError};
use crate::kernels::{self, Epilogue, KernelPath, Mat};
use deed_types::{Tensor, TensorData};

/// `auto_pad` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    pub(crate) fn parse(s: &str) -> Option<AutoPad> {
        Some(match s {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            _ => return None,
        })
    }
}

/// Window attributes shared by Conv and MaxPool; empty vectors mean "the default for the rank".
#[derive(Clone, Debug)]
pub(crate) struct Window {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// `[begin..., end...]`.
    pub pads: Vec<usize>,
    pub auto_pad: AutoPad,
    pub ceil_mode: bool,
}

/// Resolved geometry for one input.
struct Geometry {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pad_begin: Vec<usize>,
    out: Vec<usize>,
}

fn overflow() -> KernelError {
    KernelError::Invalid("window arithmetic overflows".into())
}

impl Window {
    fn resolve(&self, spatial: &[usize], kernel: &[usize]) -> KResult<Geometry> {
        let r = spatial.len();
        let pick = |v: &Vec<usize>, what: &str, default: usize, len: usize| -> KResult<Vec<usize>> {
            if v.is_empty() {
                Ok(vec![default; len])
            } else if v.len() == len {
                Ok(v.clone())
            } else {
                Err(KernelError::Invalid(format!(
                    "{what} has {} values but the input has {r} spatial dimensions",
                    v.len()
                )))
            }
        };
        if kernel.len() != r {
            return Err(KernelError::Invalid(format!(
                "kernel has {} spatial dimensions but the input has {r}",
                kernel.len()
            )));
        }
        let strides = pick(&self.strides, "strides", 1, r)?;
        let dilations = pick(&self.dilations, "dilations", 1, r)?;
        let pads = pick(&self.pads, "pads", 0, 2 * r)?;
        let mut out = Vec::with_capacity(r);
        let mut pad_begin = Vec::with_capacity(r);
        for d in 0..r {
            let (x, k, s, dl) = (spatial[d], kernel[d], strides[d], dilations[d]);
            let eff = k
                .checked_sub(1)
                .and_then(|k1| k1.checked_mul(dl))
                .and_then(|v| v.checked_add(1))
                .ok_or_else(overflow)?;
            match self.auto_pad {
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let o = x.div_ceil(s);
                    let need =
                        o.saturating_sub(1).checked_mul(s).and_then(|v| v.checked_add(eff)).ok_or_else(overflow)?;
                    let total = need.saturating_sub(x);
                    pad_begin.push(if self.auto_pad == AutoPad::SameUpper { total / 2 } else { total - total / 2 });
                    out.push(o);
                }
                AutoPad::NotSet | AutoPad::Valid => {
                    let (pb, pe) = if self.auto_pad == AutoPad::Valid { (0, 0) } else { (pads[d], pads[r + d]) };
                    let total = x.checked_add(pb).and_then(|v| v.checked_add(pe)).ok_or_else(overflow)?;
                    if total < eff {
                        return Err(KernelError::Invalid(format!(
                            "window of extent {eff} is larger than the padded input extent {total} in spatial dimension {d}"
                        )));
                    }
                    let mut o = if self.ceil_mode { (total - eff).div_ceil(s) + 1 } else { (total - eff) / s + 1 };
                    // A last window may not start in the end padding.
                    if self.ceil_mode && (o - 1) * s >= x + pb {
                        o -= 1;
                    }
                    pad_begin.push(pb);
                    out.push(o);
                }
            }
        }
        Ok(Geometry { kernel: kernel.to_vec(), strides, dilations, pad_begin, out })
    }
}

impl Geometry {
    /// For output position `o` (multi-index) and every kernel position (row-major),
    /// the flat spatial input offset, or `None` in the padding.
    fn offsets(&self, spatial: &[usize], o: &[usize], buf: &mut Vec<Option<usize>>) {
        buf.clear();
        let r = spatial.len();
        let mut kk = vec![0usize; r];
        let q: usize = self.kernel.iter().product();
        for _ in 0..q {
            let mut off = 0usize;
            let mut valid = true;
            for d in 0..r {
                // Bounded by the checked window arithmetic in `resolve`: at most in + pads.
                let pos = o[d] * self.strides[d] + kk[d] * self.dilations[d];
                if pos < self.pad_begin[d] || pos - self.pad_begin[d] >= spatial[d] {
                    valid = false;
                    break;
                }
                off = off * spatial[d] + (pos - self.pad_begin[d]);
            }
            buf.push(valid.then_some(off));
            for d in (0..r).rev() {
                kk[d] += 1;
                if kk[d] < self.kernel[d] {
                    break;
                }
                kk[d] = 0;
            }
        }
    }
}

/// Advances a row-major multi-index over `dims`.
fn next_index(idx: &mut [usize], dims: &[usize]) {
    for d in (0..dims.len()).rev() {
        idx[d] += 1;
        if idx[d] < dims[d] {
            return;
        }
        idx[d] = 0;
    }
}

fn f32s(t: &Tensor) -> &[f32] {
    match &t.data {
        TensorData::F32(v) => v,
        d => unreachable!("f32 kernel given {:?} (checked at load)", d.dtype()),
    }
}

/// Patch rows built at a time per thread, bounding the im2col buffer to about this many floats.
const PATCH_FLOATS: usize = 1 << 20;

/// ONNX Conv (see the module docs).
pub(crate) fn conv(
    win: &Window,
    group: usize,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    ctx: &Ctx<'_>,
) -> KResult<Tensor> {
    if x.shape.len() < 3 || w.shape.len() != x.shape.len() {
        return Err(KernelError::Invalid(format!(
            "X must be [N, C, spatial...] and W [M, C/group, kernel...] of the same rank, got {:?} and {:?}",
            x.shape, w.shape
        )));
    }
    let (n, c) = (x.shape[0], x.shape[1]);
    let (m, cg) = (w.shape[0], w.shape[1]);
    if group == 0 || c != cg * group || m % group != 0 {
        return Err(KernelError::Invalid(format!(
            "X has {c} channels and W is {:?}, which does not fit group = {group}",
            w.shape
        )));
    }
    if cg == 0 || w.shape[2..].contains(&0) {
        return Err(KernelError::Invalid(format!("W of shape {:?} is an empty kernel", w.shape)));
    }
    if !win.kernel.is_empty() && win.kernel[..] != w.shape[2..] {
        return Err(KernelError::Invalid(format!(
            "kernel_shape {:?} does not match W's shape {:?}",
            win.kernel, w.shape
        )));
    }
    if let Some(b) = b
        && b.shape != [m]
    {
        return Err(KernelError::Invalid(format!("bias has shape {:?}, expected [{m}]", b.shape)));
    }
    let spatial = &x.shape[2..];
    let geo = win.resolve(spatial, &w.shape[2..])?;
    let mut out_shape = vec![n, m];
    out_shape.extend(&geo.out);
    ctx.check_shape(&out_shape)?;
    let p: usize = geo.out.iter().product();
    let q: usize = geo.kernel.iter().product();
    let kc = cg * q;
    ctx.check_work(&[n, m, p, kc])?;
    let mg = m / group;
    let in_sp: usize = spatial.iter().product();
    let (xv, wv, bv) = (f32s(x), f32s(w), b.map(f32s));
    let mut out = vec![0.0f32; n * m * p];
    if out.is_empty() {
        return Ok(Tensor { shape: out_shape, data: TensorData::F32(out) });
    }
    if ctx.kernels != KernelPath::Reference {
        let dims = ConvDims { n, c, m, group, cg, mg, p, kc, in_sp };
        conv_fast(&geo, spatial, &dims, xv, wv, bv, ctx, &mut out);
        return Ok(Tensor { shape: out_shape, data: TensorData::F32(out) });
    }
    let macs = p.saturating_mul(kc).saturating_mul(m);
    let threads = super::linalg::threads_for(ctx, macs, p);
    // Output positions [start, end) of one (n, g) pair into a [mg, end - start] block.
    let block = |ni: usize, gi: usize, start: usize, end: usize| -> Vec<f32> {
        let len = end - start;
        let mut res = vec![0.0f32; mg * len];
        let chunk = (PATCH_FLOATS / kc.max(1)).max(1);
        let mut patch = vec![0.0f32; chunk.min(len) * kc];
        let mut offs = Vec::with_capacity(q);
        let mut o = vec![0usize; geo.out.len()];
        // Unravel `start` into the output multi-index.
        let mut rem = start;
        for d in (0..o.len()).rev() {
            o[d] = rem % geo.out[d];
            rem /= geo.out[d];
        }
        let mut s = start;
        while s < end {
            let e = (s + chunk).min(end);
            for row in patch.chunks_mut(kc).take(e - s) {
                geo.offsets(spatial, &o, &mut offs);
                for ci in 0..cg {
                    let base = (ni * c + gi * cg + ci) * in_sp;
                    for (dst, off) in row[ci * q..(ci + 1) * q].iter_mut().zip(&offs) {
                        *dst = match off {
                            Some(off) => xv[base + off],
                            None => 0.0,
                        };
                    }
                }
                next_index(&mut o, &geo.out);
            }
            for mi in 0..mg {
                let mo = gi * mg + mi;
                let wrow = &wv[mo * kc..(mo + 1) * kc];
                for (pi, row) in patch.chunks(kc).take(e - s).enumerate() {
                    let d = dot(wrow, row);
                    res[mi * len + (s - start) + pi] = match bv {
                        Some(bv) => d + bv[mo],
                        None => d,
                    };
                }
            }
            s = e;
        }
        res
    };
    for ni in 0..n {
        for gi in 0..group {
            let ranges: Vec<(usize, usize)> = {
                let per = p.div_ceil(threads);
                (0..p).step_by(per).map(|s| (s, (s + per).min(p))).collect()
            };
            let blocks: Vec<Vec<f32>> = if ranges.len() <= 1 {
                ranges.iter().map(|&(s, e)| block(ni, gi, s, e)).collect()
            } else {
                crate::pool::map(ranges.clone(), |(s, e)| block(ni, gi, s, e))
            };
            for (&(s, e), res) in ranges.iter().zip(&blocks) {
                let len = e - s;
                for mi in 0..mg {
                    let dst = ((ni * m) + gi * mg + mi) * p + s;
                    out[dst..dst + len].copy_from_slice(&res[mi * len..(mi + 1) * len]);
                }
            }
        }
    }
    kernels::canonical_nan(&mut out);
    Ok(Tensor { shape: out_shape, data: TensorData::F32(out) })
}

/// Sizes of one Conv, resolved.
struct ConvDims {
    n: usize,
    c: usize,
    m: usize,
    group: usize,
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    mg: usize,
    /// Output positions.
    p: usize,
    /// Dot product length, `cg × q`.
    kc: usize,
    /// Input positions.
    in_sp: usize,
}

/// Conv on a fast kernel path: per (batch, group), im2col columns `[kc, positions]` (or the
/// input itself for a 1×1, stride-1, unpadded kernel) feed the blocked product with the
/// group's weights `[mg, kc]` as A. Same terms, same order, same bits as the reference.
#[allow(clippy::too_many_arguments)]
fn conv_fast(
    geo: &Geometry,
    spatial: &[usize],
    d: &ConvDims,
    xv: &[f32],
    wv: &[f32],
    bv: Option<&[f32]>,
    ctx: &Ctx<'_>,
    out: &mut [f32],
) {
    let pointwise = geo.kernel.iter().all(|&k| k == 1)
        && geo.strides.iter().all(|&s| s == 1)
        && geo.pad_begin.iter().all(|&p| p == 0)
        && geo.out == spatial;
    let planar = spatial.len() == 2;
    let q: usize = geo.kernel.iter().product();
    // Narrow outputs make im2col rows of many short runs: gather them through a table.
    let gather = planar
        && !pointwise
        && geo.out[1] < GATHER_BELOW_WIDTH
        && d.in_sp < PAD_TAP as usize
        && q.saturating_mul(d.p) <= GATHER_TABLE_MAX;
    let table = if gather { gather_table(geo, spatial) } else { Vec::new() };
    // Columns per im2col chunk of other ranks, bounding the buffer to about PATCH_FLOATS floats.
    let chunk = (PATCH_FLOATS / d.kc).clamp(64, d.p.max(64));
    let mut cols = if pointwise || planar { Vec::new() } else { vec![0.0f32; d.kc * chunk.min(d.p)] };
    for ni in 0..d.n {
        for gi in 0..d.group {
            let x0 = (ni * d.c + gi * d.cg) * d.in_sp;
            let xg = &xv[x0..x0 + d.cg * d.in_sp];
            let w = Mat { data: &wv[gi * d.mg * d.kc..(gi + 1) * d.mg * d.kc], rs: d.kc, cs: 1 };
            let y0 = (ni * d.m + gi * d.mg) * d.p;
            let y = &mut out[y0..y0 + d.mg * d.p];
            // The bias's one rounded add and the canonical NaN, as each tile is finished.
            let epi = match bv {
                Some(bv) => Epilogue::RowBias(&bv[gi * d.mg..(gi + 1) * d.mg]),
                None => Epilogue::Canonical,
            };
            if pointwise {
                let b = Mat { data: xg, rs: d.in_sp, cs: 1 };
                kernels::gemm(ctx.kernels, ctx.threads, d.mg, d.p, d.kc, w, b, y, d.p, epi);
            } else if planar {
                // The im2col matrix is made block by block as the product packs it.
                let src = Im2colRows { geo, spatial, x: xg, q, in_sp: d.in_sp, p: d.p, table: &table };
                kernels::gemm_rows(ctx.kernels, ctx.threads, d.mg, d.p, d.kc, w, &src, y, d.p, epi);
            } else {
                for p0 in (0..d.p).step_by(chunk) {
                    let pc = chunk.min(d.p - p0);
                    im2col(geo, spatial, xg, d.cg, p0, pc, &mut cols[..d.kc * pc]);
                    let b = Mat { data: &cols[..d.kc * pc], rs: pc, cs: 1 };
                    kernels::gemm(ctx.kernels, ctx.threads, d.mg, pc, d.kc, w, b, &mut y[p0..], d.p, epi);
                }
            }
        }
    }
}

/// Output widths below which 2-D im2col rows are gathered through a table rather than
/// copied run by run (a run per output row: short runs cost more in calls than in data).
const GATHER_BELOW_WIDTH: usize = 8;

/// Entries above which no gather table is built (4 bytes each).
const GATHER_TABLE_MAX: usize = 1 << 22;

/// No input position: the tap is in the padding.
const PAD_TAP: u32 = u32::MAX;

/// For each kernel position `kp` and output position `o` of a 2-D Conv, entry
/// `kp · positions + o`: the input position its tap reads, or [`PAD_TAP`].
fn gather_table(geo: &Geometry, spatial: &[usize]) -> Vec<u32> {
    let (ih_n, iw_n) = (spatial[0] as isize, spatial[1] as isize);
    let (kh_n, kw_n) = (geo.kernel[0], geo.kernel[1]);
    let (oh_n, ow_n) = (geo.out[0], geo.out[1]);
    let mut t = Vec::with_capacity(kh_n * kw_n * oh_n * ow_n);
    for kh in 0..kh_n {
        for kw in 0..kw_n {
            let dh = (kh * geo.dilations[0]) as isize - geo.pad_begin[0] as isize;
            let dw = (kw * geo.dilations[1]) as isize - geo.pad_begin[1] as isize;
            for oh in 0..oh_n {
                let ih = (oh * geo.strides[0]) as isize + dh;
                for ow in 0..ow_n {
                    let iw = (ow * geo.strides[1]) as isize + dw;
                    let inside = (0..ih_n).contains(&ih) && (0..iw_n).contains(&iw);
                    t.push(if inside { (ih * iw_n + iw) as u32 } else { PAD_TAP });
                }
            }
        }
    }
    t
}

/// The im2col matrix of one (batch, group) of a 2-D Conv, `[cg·q, positions]`, made row by
/// row for the product: row `ci·q + kernel position`, `+0.0` in the padding.
struct Im2colRows<'a> {
    geo: &'a Geometry,
    spatial: &'a [usize],
    /// The group's input channels.
    x: &'a [f32],
    /// Kernel positions.
    q: usize,
    /// Input positions per channel.
    in_sp: usize,
    /// Output positions.
    p: usize,
    /// [`gather_table`], or empty to copy runs.
    table: &'a [u32],
}

impl kernels::RowSource for Im2colRows<'_> {
    fn row(&self, r: usize, c0: usize, out: &mut [f32]) {
        let (ci, kp) = (r / self.q, r % self.q);
        let xc = &self.x[ci * self.in_sp..(ci + 1) * self.in_sp];
        if self.table.is_empty() {
            return im2col_row_2d(self.geo, self.spatial, xc, kp, c0, out);
        }
        let taps = &self.table[kp * self.p + c0..][..out.len()];
        for (y, &i) in out.iter_mut().zip(taps) {
            *y = if i == PAD_TAP { 0.0 } else { xc[i as usize] };
        }
    }
}

/// Fills `cols` (`[cg·q, pc]` row-major) with the patches of output positions
/// `p0..p0 + pc`: row `ci·q + kernel position`, `+0.0` in the padding (ranks other than 2;
/// 2-D Conv makes its rows with [`im2col_row_2d`] as the product packs them).
fn im2col(geo: &Geometry, spatial: &[usize], x: &[f32], cg: usize, p0: usize, pc: usize, cols: &mut [f32]) {
    let q: usize = geo.kernel.iter().product();
    let in_sp: usize = spatial.iter().product();
    // The reference's offset table, one output position at a time.
    let mut o = vec![0usize; geo.out.len()];
    let mut rem = p0;
    for dd in (0..o.len()).rev() {
        o[dd] = rem % geo.out[dd];
        rem /= geo.out[dd];
    }
    let mut offs = Vec::with_capacity(q);
    for j in 0..pc {
        geo.offsets(spatial, &o, &mut offs);
        for ci in 0..cg {
            for (kp, off) in offs.iter().enumerate() {
                cols[(ci * q + kp) * pc + j] = off.map_or(0.0, |off| x[ci * in_sp + off]);
            }
        }
        next_index(&mut o, &geo.out);
    }
}

/// One im2col row of a 2-D Conv: kernel position `kp` of the input plane `xc`, for
/// output positions `p0..p0 + row.len()`. Each output row's segment is a run of padding
/// zeros, a (strided) copy of one input row, and padding zeros again.
fn im2col_row_2d(geo: &Geometry, spatial: &[usize], xc: &[f32], kp: usize, p0: usize, row: &mut [f32]) {
    let (ih_n, iw_n) = (spatial[0] as isize, spatial[1] as isize);
    let kw_n = geo.kernel[1];
    let (kh, kw) = (kp / kw_n, kp % kw_n);
    let ow_n = geo.out[1];
    let dh = (kh * geo.dilations[0]) as isize - geo.pad_begin[0] as isize;
    let dw = (kw * geo.dilations[1]) as isize - geo.pad_begin[1] as isize;
    let (sh, sw) = (geo.strides[0] as isize, geo.strides[1] as isize);
    // Output columns whose input column `ow·sw + dw` lies inside the row: [lo, hi).
    let lo = if dw < 0 { ((-dw + sw - 1) / sw) as usize } else { 0 }.min(ow_n);
    let hi = if dw >= iw_n { 0 } else { ((iw_n - 1 - dw) / sw + 1) as usize }.clamp(lo, ow_n);
    let (mut oh, mut ow) = (p0 / ow_n, p0 % ow_n);
    let pc = row.len();
    // Zeros everywhere first (one long fill rather than a short one per padded run),
    // then the runs that read the input.
    row.fill(0.0);
    let mut j = 0;
    while j < pc {
        let seg = (ow_n - ow).min(pc - j);
        let dst = &mut row[j..j + seg];
        let ih = oh as isize * sh + dh;
        if (0..ih_n).contains(&ih) {
            let src = &xc[(ih * iw_n) as usize..((ih + 1) * iw_n) as usize];
            let (a, b) = (lo.clamp(ow, ow + seg), hi.clamp(ow, ow + seg));
            let mid = &mut dst[a - ow..b - ow];
            if !mid.is_empty() {
                let iw0 = (a as isize * sw + dw) as usize;
                if sw == 1 {
                    mid.copy_from_slice(&src[iw0..iw0 + mid.len()]);
                } else if sw == 2 {
                    // Every other input: as pairs, which vectorizes (the last input may
                    // have no partner inside the row).
                    let n = mid.len();
                    let (pairs, _) = src[iw0..].as_chunks::<2>();
                    let whole = n.min(pairs.len());
                    for (v, pr) in mid[..whole].iter_mut().zip(pairs) {
                        *v = pr[0];
                    }
                    if whole < n {
                        mid[whole] = src[iw0 + 2 * whole];
                    }
                } else {
                    for (v, s) in mid.iter_mut().zip(src[iw0..].iter().step_by(sw as usize)) {
                        *v = *s;
                    }
                }
            }
        }
        j += seg;
        ow = 0;
        oh += 1;
    }
}

/// Window reads per thread below which MaxPool stays on fewer threads.
const MAXPOOL_PAR_MIN: usize = if cfg!(test) { 1 << 8 } else { 1 << 16 };

/// ONNX MaxPool, first output only (see the module docs).
pub(crate) fn max_pool(win: &Window, x: &Tensor, ctx: &Ctx<'_>) -> KResult<Tensor> {
    Ok(max_pool_impl(win, x, ctx, None)?.0)
}

/// MaxPool with its second output, Indices (see the module docs).
#[derive(Debug)]
pub(crate) struct MaxPoolIndices {
    pub win: Window,
    /// `storage_order` 1: spatial indices are flattened column-major.
    pub column_major: bool,
}

impl super::Kernel for MaxPoolIndices {
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    fn outputs(&self) -> usize {
        2
    }
    fn output_dtypes(&self, ins: &[Option<deed_types::DType>]) -> Result<Vec<deed_types::DType>, String> {
        use deed_types::DType;
        super::util::want(ins, 0, &[DType::F32], "X")?;
        Ok(vec![DType::F32, DType::I64])
    }
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>> {
        let (y, idx) = max_pool_impl(&self.win, ins[0].expect("req"), ctx, Some(self.column_major))?;
        Ok(vec![y, idx.expect("indices asked for")])
    }
}

/// MaxPool; with `indices = Some(column_major)` also the Indices output.
fn max_pool_impl(win: &Window, x: &Tensor, ctx: &Ctx<'_>, indices: Option<bool>) -> KResult<(Tensor, Option<Tensor>)> {
    if x.shape.len() < 3 {
        return Err(KernelError::Invalid(format!("X must be [N, C, spatial...], got {:?}", x.shape)));
    }
    let spatial = &x.shape[2..];
    if win.kernel.len() != spatial.len() {
        return Err(KernelError::Invalid(format!(
            "kernel_shape has {} dimensions but the input has {} spatial dimensions",
            win.kernel.len(),
            spatial.len()
        )));
    }
    let geo = win.resolve(spatial, &win.kernel)?;
    let mut out_shape = x.shape[..2].to_vec();
    out_shape.extend(&geo.out);
    ctx.check_shape(&out_shape)?;
    let p: usize = geo.out.iter().product();
    let q = geo.kernel.iter().fold(1usize, |a, &k| a.saturating_mul(k));
    let in_sp: usize = spatial.iter().product();
    let nc = x.shape[0] * x.shape[1];
    ctx.check_work(&[nc.max(1), p, q])?;
    let xv = f32s(x);
    let mut out = vec![0.0f32; nc * p];
    if let Some(column_major) = indices {
        let idx = max_pool_indices(&geo, spatial, xv, column_major, &mut out);
        return Ok((
            Tensor { shape: out_shape.clone(), data: TensorData::F32(out) },
            Some(Tensor { shape: out_shape, data: TensorData::I64(idx) }),
        ));
    }
    if out.is_empty() {
        return Ok((Tensor { shape: out_shape, data: TensorData::F32(out) }, None));
    }
    if spatial.len() == 2 {
        let min_planes = (MAXPOOL_PAR_MIN / p.saturating_mul(q).max(1)).max(1);
        super::util::par_rows(&mut out, p, ctx.threads, min_planes, |plane0, chunk| {
            let mut rows = Vec::new();
            for (i, y) in chunk.chunks_mut(p).enumerate() {
                let xs = &xv[(plane0 + i) * in_sp..(plane0 + i + 1) * in_sp];
                max_pool_plane_2d(&geo, spatial, xs, y, &mut rows);
            }
        });
        return Ok((Tensor { shape: out_shape, data: TensorData::F32(out) }, None));
    }
    // Window offsets depend only on the output position: a table of them (`q` per
    // position, `None` in the padding), computed once and applied to every (n, c) plane;
    // the planes are split over threads (each output is computed the same way anywhere).
    let mut table = Vec::with_capacity(p.saturating_mul(q));
    let mut o = vec![0usize; geo.out.len()];
    let mut offs = Vec::new();
    for _ in 0..p {
        geo.offsets(spatial, &o, &mut offs);
        table.extend_from_slice(&offs);
        next_index(&mut o, &geo.out);
    }
    let min_planes = (MAXPOOL_PAR_MIN / p.saturating_mul(q).max(1)).max(1);
    super::util::par_rows(&mut out, p, ctx.threads, min_planes, |plane0, chunk| {
        for (i, row) in chunk.chunks_mut(p).enumerate() {
            let xs = &xv[(plane0 + i) * in_sp..(plane0 + i + 1) * in_sp];
            for (y, offs) in row.iter_mut().zip(table.chunks(q)) {
                let mut best = f32::NEG_INFINITY;
                for &off in offs.iter().flatten() {
                    let v = xs[off];
                    if v.is_nan() {
                        best = v;
                        break;
                    }
                    if v > best {
                        best = v;
                    }
                }
                *y = best;
            }
        }
    });
    Ok((Tensor { shape: out_shape, data: TensorData::F32(out) }, None))
}

/// MaxPool's fold of one more window value into the running result: the first NaN in
/// window order wins; otherwise a value replaces the result only if it is greater (so
/// among equal values, `+0.0` and `−0.0` included, the first stays). From `−∞`.
#[inline(always)]
fn max_step(acc: f32, v: f32) -> f32 {
    // Branch-free, so that loops of it vectorize.
    let take = !acc.is_nan() & (v.is_nan() | (v > acc));
    if take { v } else { acc }
}

/// One plane of a 2-D MaxPool, separably: for every input row the window row's fold
/// (kernel columns in order), then for every output position the fold of those over the
/// kernel rows in order. The fold of a row-major window is the fold of its rows' folds
/// (the first NaN is the first NaN of the first row that has one; otherwise the first
/// greatest value is the first greatest of the first row that attains the greatest), so
/// the values are the reference's bit for bit; padded taps are skipped as there.
fn max_pool_plane_2d(geo: &Geometry, spatial: &[usize], xs: &[f32], y: &mut [f32], rows: &mut Vec<f32>) {
    let (ih_n, iw_n) = (spatial[0], spatial[1]);
    let (oh_n, ow_n) = (geo.out[0], geo.out[1]);
    let (sh, sw) = (geo.strides[0], geo.strides[1]);
    let (dh, dw) = (geo.dilations[0], geo.dilations[1]);
    let (ph, pw) = (geo.pad_begin[0], geo.pad_begin[1]);
    if ih_n == 0 || iw_n == 0 || ow_n == 0 {
        // No input (every tap is padding: −∞, as the window walk gives) or no output.
        y.fill(f32::NEG_INFINITY);
        return;
    }
    // rows[ih · ow_n + ow]: the fold of input row ih over output column ow's window.
    rows.clear();
    rows.resize(ih_n * ow_n, f32::NEG_INFINITY);
    for (x, acc) in xs.chunks_exact(iw_n).zip(rows.chunks_exact_mut(ow_n)) {
        for kw in 0..geo.kernel[1] {
            // Output columns whose tap `ow·sw + kw·dw − pw` is inside the row: [lo, hi).
            let off = kw * dw;
            let lo = pw.saturating_sub(off).div_ceil(sw).min(ow_n);
            let hi = if off >= iw_n + pw { 0 } else { (iw_n + pw - off - 1) / sw + 1 }.clamp(lo, ow_n);
            if lo == hi {
                continue;
            }
            let first = lo * sw + off - pw;
            let acc = &mut acc[lo..hi];
            match sw {
                1 => acc.iter_mut().zip(&x[first..]).for_each(|(a, &v)| *a = max_step(*a, v)),
                // As pairs, which vectorizes (the last tap may have no partner in the row).
                2 => {
                    let (pairs, _) = x[first..].as_chunks::<2>();
                    let whole = acc.len().min(pairs.len());
                    acc[..whole].iter_mut().zip(pairs).for_each(|(a, pr)| *a = max_step(*a, pr[0]));
                    if whole < acc.len() {
                        acc[whole] = max_step(acc[whole], x[first + 2 * whole]);
                    }
                }
                _ => acc.iter_mut().zip(x[first..].iter().step_by(sw)).for_each(|(a, &v)| *a = max_step(*a, v)),
            }
        }
    }
    for (oh, out) in y.chunks_exact_mut(ow_n).enumerate().take(oh_n) {
        out.fill(f32::NEG_INFINITY);
        for kh in 0..geo.kernel[0] {
            let pos = oh * sh + kh * dh;
            if pos < ph || pos - ph >= ih_n {
                continue;
            }
            let r = &rows[(pos - ph) * ow_n..(pos - ph + 1) * ow_n];
            for (o, &v) in out.iter_mut().zip(r) {
                *o = max_step(*o, v);
            }
        }
    }
}

/// MaxPool values into `out` (`[planes, positions]`) and their Indices (see the module docs).
fn max_pool_indices(geo: &Geometry, spatial: &[usize], xv: &[f32], column_major: bool, out: &mut [f32]) -> Vec<i64> {
    let p: usize = geo.out.iter().product();
    let in_sp: usize = spatial.iter().product();
    let mut idx = vec![-1i64; out.len()];
    if out.is_empty() {
        return idx;
    }
    // Column-major strides of the spatial dimensions.
    let mut col_stride = vec![1usize; spatial.len()];
    for d in 1..spatial.len() {
        col_stride[d] = col_stride[d - 1] * spatial[d - 1];
    }
    let reindex = |mut off: usize| -> usize {
        if !column_major {
            return off;
        }
        let mut c = 0;
        for d in (0..spatial.len()).rev() {
            c += (off % spatial[d]) * col_stride[d];
            off /= spatial[d];
        }
        c
    };
    let mut o = vec![0usize; geo.out.len()];
    let mut offs = Vec::new();
    for pi in 0..p {
        geo.offsets(spatial, &o, &mut offs);
        for plane in 0..out.len() / p {
            let xs = &xv[plane * in_sp..(plane + 1) * in_sp];
            let mut best = f32::NEG_INFINITY;
            let mut at = None;
            for &off in offs.iter().flatten() {
                let v = xs[off];
                if v.is_nan() {
                    (best, at) = (v, Some(off));
                    break;
                }
                // The first element is taken even when it is −∞, so every window with an
                // input position has an index; the value is the same as without indices.
                if v > best || at.is_none() {
                    (best, at) = (v, Some(off));
                }
            }
            out[plane * p + pi] = best;
            if let Some(off) = at {
                // Bounded by the element count of X, which fits the limits.
                idx[plane * p + pi] = (plane * in_sp + reindex(off)) as i64;
            }
        }
        next_index(&mut o, &geo.out);
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn ctx(l: &Limits, threads: usize) -> Ctx<'_> {
        Ctx { limits: l, threads, kernels: crate::kernels::KernelPath::Reference }
    }

    fn win(kernel: Vec<usize>, strides: Vec<usize>, pads: Vec<usize>, auto_pad: AutoPad) -> Window {
        Window { kernel, strides, dilations: vec![], pads, auto_pad, ceil_mode: false }
    }

    fn data(t: &Tensor) -> Vec<f32> {
        f32s(t).to_vec()
    }

    #[test]
    fn conv_2d_hand_computed() {
        let l = Limits::default();
        // x: 1x1x3x3 = 1..9, w: 1x1x2x2 = [1, 0, 0, -1], bias 10.
        let x = Tensor::f32(vec![1, 1, 3, 3], (1..=9).map(|v| v as f32).collect());
        let w = Tensor::f32(vec![1, 1, 2, 2], vec![1., 0., 0., -1.]);
        let b = Tensor::f32(vec![1], vec![10.]);
        let y = conv(&win(vec![], vec![], vec![], AutoPad::NotSet), 1, &x, &w, Some(&b), &ctx(&l, 1)).unwrap();
        assert_eq!(y.shape, vec![1, 1, 2, 2]);
        assert_eq!(data(&y), vec![6., 6., 6., 6.]);
        // Pads 1 all round, stride 2: out 2x2; positions (-1,-1),(−1,1),(1,−1),(1,1).
        let y = conv(&win(vec![2, 2], vec![2, 2], vec![1, 1, 1, 1], AutoPad::NotSet), 1, &x, &w, None, &ctx(&l, 1))
            .unwrap();
        assert_eq!(y.shape, vec![1, 1, 2, 2]);
        // (-1,-1): w00*pad + w11*x[0,0] = -1; (-1,1): -x[0,2] = -3; (1,-1): -x[2,0] = -7; (1,1): x[1,1]-x[2,2] = 5-9.
        assert_eq!(data(&y), vec![-1., -3., -7., -4.]);
        // SAME_UPPER keeps the spatial size with stride 1.
        let y = conv(&win(vec![], vec![], vec![], AutoPad::SameUpper), 1, &x, &w, None, &ctx(&l, 1)).unwrap();
        assert_eq!(y.shape, vec![1, 1, 3, 3]);
        // Pad 1 at the end: y[2,2] = x[2,2]*1 = 9.
        assert_eq!(data(&y)[8], 9.);
        let y = conv(&win(vec![], vec![], vec![], AutoPad::SameLower), 1, &x, &w, None, &ctx(&l, 1)).unwrap();
        // Pad 1 at the beginning: y[0,0] = -x[0,0] = -1.
        assert_eq!(data(&y)[0], -1.);
    }

    #[test]
    fn conv_groups_dilation_and_threads_agree() {
        let l = Limits::default();
        let x = Tensor::f32(vec![2, 4, 9, 7], (0..2 * 4 * 63).map(|v| ((v * 37 % 101) as f32) / 50.0 - 1.0).collect());
        let w = Tensor::f32(vec![6, 2, 3, 2], (0..72).map(|v| ((v * 13 % 29) as f32) / 14.0 - 1.0).collect());
        let b = Tensor::f32(vec![6], vec![0.5, -0.5, 1., 2., 3., 4.]);
        let wn = Window {
            kernel: vec![],
            strides: vec![2, 1],
            dilations: vec![2, 3],
            pads: vec![1, 2, 0, 1],
            auto_pad: AutoPad::NotSet,
            ceil_mode: false,
        };
        let y1 = conv(&wn, 2, &x, &w, Some(&b), &ctx(&l, 1)).unwrap();
        // Reference, straight from the definition.
        let (xv, wv) = (data(&x), data(&w));
        let (oh, ow) = (y1.shape[2], y1.shape[3]);
        assert_eq!((oh, ow), ((9 + 1 - 5) / 2 + 1, (7 + 3 - 4) + 1));
        let yv = data(&y1);
        for ni in 0..2 {
            for mo in 0..6 {
                let gi = mo / 3;
                for i in 0..oh {
                    for j in 0..ow {
                        let mut terms = vec![];
                        for ci in 0..2 {
                            for ki in 0..3 {
                                for kj in 0..2 {
                                    let (r, c) = ((i * 2 + ki * 2) as isize - 1, (j + kj * 3) as isize - 2);
                                    let xval = if r < 0 || c < 0 || r >= 9 || c >= 7 {
                                        0.0
                                    } else {
                                        xv[((ni * 4 + gi * 2 + ci) * 9 + r as usize) * 7 + c as usize]
                                    };
                                    terms.push((wv[((mo * 2 + ci) * 3 + ki) * 2 + kj], xval));
                                }
                            }
                        }
                        let mut acc = 0.0f32;
                        for (a, bb) in terms {
                            acc = a.mul_add(bb, acc);
                        }
                        let want = (0.0 + acc) + data(&b)[mo];
                        assert_eq!(yv[((ni * 6 + mo) * oh + i) * ow + j].to_bits(), want.to_bits());
                    }
                }
            }
        }
        // Force the threaded path with a low limit? The threshold is on work, so use a bigger input.
        let big = Tensor::f32(vec![1, 4, 64, 64], (0..4 * 4096).map(|v| ((v * 31 % 97) as f32) / 48.0 - 1.0).collect());
        let wb = Tensor::f32(vec![8, 4, 3, 3], (0..288).map(|v| ((v * 7 % 23) as f32) / 11.0 - 1.0).collect());
        let wn = win(vec![3, 3], vec![], vec![1, 1, 1, 1], AutoPad::NotSet);
        let a = conv(&wn, 1, &big, &wb, None, &ctx(&l, 1)).unwrap();
        let c = conv(&wn, 1, &big, &wb, None, &ctx(&l, 3)).unwrap();
        assert_eq!(a, c);
    }

    fn special_values(seed: u64, len: usize) -> Vec<f32> {
        const SPECIAL: [f32; 7] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e-40, -3e-39, 3e38];
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (s >> 33) as u32;
                if r.is_multiple_of(97) {
                    SPECIAL[(r / 97) as usize % SPECIAL.len()]
                } else {
                    (r % 2000) as f32 / 997.0 - 1.0
                }
            })
            .collect()
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        data(t).iter().map(|x| x.to_bits()).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Every fast path and thread count gives the reference's bits, padded taps included.
        #[test]
        fn fast_paths_match_reference(
            rank in 1usize..4, n in 1usize..3, cg in 1usize..5, mg in 1usize..6, group in 1usize..3,
            sizes in proptest::collection::vec(1usize..9, 3), kern in proptest::collection::vec(1usize..4, 3),
            stride in 1usize..3, dil in 1usize..3, pad in 0usize..3, auto in 0usize..3, bias: bool, seed: u64,
        ) {
            let l = Limits::default();
            let mut xs = vec![n, cg * group];
            xs.extend(&sizes[..rank]);
            let mut ws = vec![mg * group, cg];
            ws.extend(&kern[..rank]);
            let x = Tensor::f32(xs.clone(), special_values(seed, xs.iter().product()));
            let w = Tensor::f32(ws.clone(), special_values(seed ^ 7, ws.iter().product()));
            let b = Tensor::f32(vec![mg * group], special_values(seed ^ 9, mg * group));
            let wn = Window {
                kernel: vec![],
                strides: vec![stride; rank],
                dilations: vec![dil; rank],
                pads: vec![pad; 2 * rank],
                auto_pad: [AutoPad::NotSet, AutoPad::SameUpper, AutoPad::Valid][auto],
                ceil_mode: false,
            };
            let reference = conv(&wn, group, &x, &w, bias.then_some(&b), &ctx(&l, 1));
            for path in KernelPath::available() {
                for threads in [1, 2, 3] {
                    let c = Ctx { limits: &l, threads, kernels: path };
                    let got = conv(&wn, group, &x, &w, bias.then_some(&b), &c);
                    match (&reference, &got) {
                        (Ok(r), Ok(g)) => {
                            proptest::prop_assert_eq!(&r.shape, &g.shape);
                            proptest::prop_assert_eq!(bits(r), bits(g), "{:?} threads {}", path, threads);
                        }
                        (Err(_), Err(_)) => {}
                        _ => proptest::prop_assert!(false, "reference and {:?} disagree on success", path),
                    }
                }
            }
        }
    }

    #[test]
    fn fast_conv_resnet_like_shapes() {
        // Threaded, over the work threshold: 3x3 padded, 7x7 stride 2, 1x1 pointwise, 1x1 stride 2, 3x3 padded
        // and strided.
        let l = Limits::default();
        // The last two fill their im2col columns on several threads.
        let cases: [(usize, usize, usize, usize, usize, usize); 6] = [
            (16, 20, 24, 3, 1, 1),
            (3, 30, 8, 7, 2, 3),
            (32, 14, 40, 1, 1, 0),
            (32, 14, 40, 1, 2, 0),
            (24, 48, 8, 3, 1, 1),
            (24, 47, 8, 3, 2, 2),
        ];
        for (c, hw, m, k, s, pd) in cases {
            let x = Tensor::f32(vec![1, c, hw, hw], special_values(c as u64, c * hw * hw));
            let w = Tensor::f32(vec![m, c, k, k], special_values(m as u64, m * c * k * k));
            let b = Tensor::f32(vec![m], special_values(3, m));
            let wn = win(vec![k, k], vec![s, s], vec![pd; 4], AutoPad::NotSet);
            let r = conv(&wn, 1, &x, &w, Some(&b), &ctx(&l, 1)).unwrap();
            for path in KernelPath::available() {
                for threads in [1, 2] {
                    let g = conv(&wn, 1, &x, &w, Some(&b), &Ctx { limits: &l, threads, kernels: path }).unwrap();
                    assert_eq!(bits(&r), bits(&g), "{path:?} threads {threads} case {c} {hw} {m} {k}");
                }
            }
        }
    }

    #[test]
    fn conv_1d_and_3d_shapes() {
        let l = Limits::default();
        let x = Tensor::f32(vec![1, 1, 5], vec![1., 2., 3., 4., 5.]);
        let w = Tensor::f32(vec![1, 1, 3], vec![1., 1., 1.]);
        let y = conv(&win(vec![], vec![], vec![], AutoPad::Valid), 1, &x, &w, None, &ctx(&l, 1)).unwrap();
        assert_eq!(data(&y), vec![6., 9., 12.]);
        let x = Tensor::f32(vec![1, 1, 2, 2, 2], vec![1.; 8]);
        let w = Tensor::f32(vec![2, 1, 2, 2, 2], vec![1.; 16]);
        let y = conv(&win(vec![], vec![], vec![], AutoPad::NotSet), 1, &x, &w, None, &ctx(&l, 1)).unwrap();
        assert_eq!((y.shape.clone(), data(&y)), (vec![1, 2, 1, 1, 1], vec![8., 8.]));
        // Empty kernels and empty batches.
        let x0 = Tensor::f32(vec![1, 0, 3], vec![]);
        let w0 = Tensor::f32(vec![2, 0, 1], vec![]);
        assert!(conv(&win(vec![], vec![], vec![], AutoPad::NotSet), 1, &x0, &w0, None, &ctx(&l, 1)).is_err());
        let w0 = Tensor::f32(vec![2, 1, 0], vec![]);
        let x1 = Tensor::f32(vec![1, 1, 3], vec![1.; 3]);
        assert!(conv(&win(vec![], vec![], vec![], AutoPad::NotSet), 1, &x1, &w0, None, &ctx(&l, 1)).is_err());
        let xe = Tensor::f32(vec![0, 1, 3], vec![]);
        let w1 = Tensor::f32(vec![2, 1, 2], vec![1.; 4]);
        let y = conv(&win(vec![], vec![], vec![], AutoPad::NotSet), 1, &xe, &w1, None, &ctx(&l, 1)).unwrap();
        assert_eq!(y.shape, vec![0, 2, 2]);
        let bad = Tensor::f32(vec![1, 2, 3], vec![1.; 6]);
        assert!(conv(&win(vec![], vec![], vec![], AutoPad::NotSet), 1, &x, &bad, None, &ctx(&l, 1)).is_err());
    }

    #[test]
    fn maxpool_2d_separable_matches_window_order() {
        // Random windows over values full of ties (±0 and a few small integers), NaNs of
        // two payloads and −∞: the separable 2-D path against the indices path's plain
        // window walk, bit for bit.
        let l = Limits::default();
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) % n
        };
        let vals = [0.0f32, -0.0, 1.0, -1.0, 2.0, f32::NAN, -f32::NAN, f32::NEG_INFINITY, f32::from_bits(0x7fc0_0001)];
        for case in 0..300 {
            // Empty planes too (every tap then in the padding).
            let (h, w) = (next(9) as usize, next(9) as usize);
            let k = vec![1 + next(3) as usize, 1 + next(3) as usize];
            let st = vec![1 + next(3) as usize, 1 + next(3) as usize];
            let dil = vec![1 + next(2) as usize, 1 + next(2) as usize];
            let pads = vec![
                next(k[0] as u64) as usize,
                next(k[1] as u64) as usize,
                next(k[0] as u64) as usize,
                next(k[1] as u64) as usize,
            ];
            let ceil_mode = next(2) == 1;
            let n = 2 * h * w;
            let x = Tensor::f32(vec![1, 2, h, w], (0..n).map(|_| vals[next(vals.len() as u64) as usize]).collect());
            let wn = Window { kernel: k, strides: st, dilations: dil, pads, auto_pad: AutoPad::NotSet, ceil_mode };
            let Ok(fast) = max_pool(&wn, &x, &ctx(&l, 1)) else { continue };
            let (want, _) = with_indices(&wn, &x, false);
            assert_eq!(
                bits(&fast),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "case {case}: {wn:?} {h}x{w}"
            );
        }
    }

    #[test]
    fn maxpool_threads_and_indices_path_agree() {
        let l = Limits::default();
        let x = Tensor::f32(vec![2, 5, 9, 11], special_values(11, 2 * 5 * 9 * 11));
        for (k, st, pd) in [(3usize, 2usize, 1usize), (2, 1, 0), (3, 1, 1)] {
            let w = win(vec![k, k], vec![st, st], vec![pd; 4], AutoPad::NotSet);
            let one = max_pool(&w, &x, &ctx(&l, 1)).unwrap();
            let (with_idx, _) = with_indices(&w, &x, false);
            assert_eq!(bits(&one), with_idx.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "k {k} s {st} p {pd}");
            for threads in [2, 3] {
                let got = max_pool(&w, &x, &ctx(&l, threads)).unwrap();
                assert_eq!(bits(&got), bits(&one), "k {k} s {st} p {pd} threads {threads}");
            }
        }
    }

    #[test]
    fn maxpool_hand_computed() {
        let l = Limits::default();
        let x = Tensor::f32(vec![1, 1, 4, 4], (0..16).map(|v| v as f32).collect());
        let y = max_pool(&win(vec![2, 2], vec![2, 2], vec![], AutoPad::NotSet), &x, &ctx(&l, 1)).unwrap();
        assert_eq!((y.shape.clone(), data(&y)), (vec![1, 1, 2, 2], vec![5., 7., 13., 15.]));
        // 3x3 stride 2 with ceil_mode on 4x4: floor gives 1, ceil gives 2.
        let mut w = win(vec![3, 3], vec![2, 2], vec![], AutoPad::NotSet);
        assert_eq!(max_pool(&w, &x, &ctx(&l, 1)).unwrap().shape, vec![1, 1, 1, 1]);
        w.ceil_mode = true;
        let y = max_pool(&w, &x, &ctx(&l, 1)).unwrap();
        assert_eq!((y.shape.clone(), data(&y)), (vec![1, 1, 2, 2], vec![10., 11., 14., 15.]));
        // Padding is ignored, not zero: all-negative input keeps negative maxima.
        let neg = Tensor::f32(vec![1, 1, 2, 2], vec![-4., -3., -2., -1.]);
        let y = max_pool(&win(vec![2, 2], vec![1, 1], vec![1, 1, 0, 0], AutoPad::NotSet), &neg, &ctx(&l, 1)).unwrap();
        assert_eq!(data(&y), vec![-4., -3., -2., -1.]);
        // NaN propagates.
        let nan = Tensor::f32(vec![1, 1, 1, 2], vec![1., f32::NAN]);
        assert!(
            data(&max_pool(&win(vec![1, 2], vec![], vec![], AutoPad::NotSet), &nan, &ctx(&l, 1)).unwrap())[0].is_nan()
        );
        // Dilations.
        let mut w = win(vec![2, 2], vec![], vec![], AutoPad::NotSet);
        w.dilations = vec![2, 2];
        let y = max_pool(&w, &x, &ctx(&l, 1)).unwrap();
        assert_eq!((y.shape.clone(), data(&y)), (vec![1, 1, 2, 2], vec![10., 11., 14., 15.]));
        // SAME_UPPER with stride 2 on 4x4 -> 2x2.
        let y = max_pool(&win(vec![3, 3], vec![2, 2], vec![], AutoPad::SameUpper), &x, &ctx(&l, 1)).unwrap();
        assert_eq!((y.shape.clone(), data(&y)), (vec![1, 1, 2, 2], vec![10., 11., 14., 15.]));
    }

    fn with_indices(w: &Window, x: &Tensor, column_major: bool) -> (Vec<f32>, Vec<i64>) {
        let l = Limits::default();
        let (y, i) = max_pool_impl(w, x, &ctx(&l, 1), Some(column_major)).unwrap();
        let i = i.unwrap();
        assert_eq!(y.shape, i.shape);
        let TensorData::I64(iv) = i.data else { panic!("indices are int64") };
        (data(&y), iv)
    }

    #[test]
    fn maxpool_indices() {
        let l = Limits::default();
        // 2 planes of 3x4; the second plane is the first negated.
        let mut v: Vec<f32> = (0..12).map(|v| ((v * 7) % 12) as f32).collect();
        v.extend(v.clone().iter().map(|a| -a));
        let x = Tensor::f32(vec![1, 2, 3, 4], v);
        let w = win(vec![2, 2], vec![1, 2], vec![], AutoPad::NotSet);
        let (y, i) = with_indices(&w, &x, false);
        // Values agree with the one-output path.
        assert_eq!(y, data(&max_pool(&w, &x, &ctx(&l, 1)).unwrap()));
        let xv = data(&x);
        for (k, &ix) in i.iter().enumerate() {
            assert_eq!(xv[ix as usize], y[k]);
        }
        // Row-major plane 0 = [[0,7,2,9],[4,11,6,1],[8,3,10,5]].
        assert_eq!(&i[..4], &[5, 3, 5, 10]);
        // Column-major: (h, w) -> h + 3w within the plane, plus the plane offset 12.
        let (_, ic) = with_indices(&w, &x, true);
        assert_eq!(&ic[..4], &[1 + 3, 3 * 3, 1 + 3, 2 + 3 * 2]);
        for (r, c) in i.iter().zip(&ic) {
            let (plane, off) = (r / 12, r % 12);
            assert_eq!(*c, plane * 12 + (off / 4) + 3 * (off % 4));
        }
        // Ties: the first in window order; -inf windows still point at their first element.
        let t = Tensor::f32(vec![1, 1, 2, 2], vec![1., 3., 3., 3.]);
        assert_eq!(with_indices(&win(vec![2, 2], vec![], vec![], AutoPad::NotSet), &t, false).1, vec![1]);
        let ninf = Tensor::f32(vec![1, 1, 1, 3], vec![f32::NEG_INFINITY; 3]);
        let (y, i) = with_indices(&win(vec![1, 2], vec![], vec![0, 1, 0, 0], AutoPad::NotSet), &ninf, false);
        assert_eq!((y, i), (vec![f32::NEG_INFINITY; 3], vec![0, 0, 1]));
        // NaN: the first NaN.
        let nan = Tensor::f32(vec![1, 1, 1, 4], vec![1., f32::NAN, 5., f32::NAN]);
        let (y, i) = with_indices(&win(vec![1, 4], vec![], vec![], AutoPad::NotSet), &nan, false);
        assert!(y[0].is_nan());
        assert_eq!(i, vec![1]);
        // A window wholly in the padding (dilation 4 over 3 columns): -inf and -1.
        let mut w = win(vec![1, 2], vec![], vec![0, 1, 0, 1], AutoPad::NotSet);
        w.dilations = vec![1, 4];
        let x = Tensor::f32(vec![1, 1, 1, 3], vec![1., 2., 3.]);
        assert_eq!(with_indices(&w, &x, false), (vec![f32::NEG_INFINITY], vec![-1]));
        // Empty input.
        let e = Tensor::f32(vec![0, 1, 2, 2], vec![]);
        assert_eq!(with_indices(&win(vec![2, 2], vec![], vec![], AutoPad::NotSet), &e, false), (vec![], vec![]));
    }
}

//! Helpers shared by the op-family modules: dtype-generic data movement, reading small
//! integer inputs (axes, shapes, pads), and load-time dtype checks.

use super::{KResult, KernelError};
use deed_types::{DType, Tensor, TensorData};

/// Applies `$body` (an expression over the slice `$v` producing a `Vec` of the same
/// element type) to whichever variant `$data` holds, rewrapping the result.
macro_rules! map_same {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            deed_types::TensorData::F32($v) => deed_types::TensorData::F32($body),
            deed_types::TensorData::F64($v) => deed_types::TensorData::F64($body),
            deed_types::TensorData::I8($v) => deed_types::TensorData::I8($body),
            deed_types::TensorData::U8($v) => deed_types::TensorData::U8($body),
            deed_types::TensorData::I16($v) => deed_types::TensorData::I16($body),
            deed_types::TensorData::U16($v) => deed_types::TensorData::U16($body),
            deed_types::TensorData::I32($v) => deed_types::TensorData::I32($body),
            deed_types::TensorData::U32($v) => deed_types::TensorData::U32($body),
            deed_types::TensorData::I64($v) => deed_types::TensorData::I64($body),
            deed_types::TensorData::U64($v) => deed_types::TensorData::U64($body),
            deed_types::TensorData::Bool($v) => deed_types::TensorData::Bool($body),
        }
    };
}
pub(crate) use map_same;

/// Calls `f(first_row, rows)` on consecutive ranges of whole `row_len`-long rows of `out`
/// that together cover it once: all on the calling thread when there are fewer than
/// `2 · min_rows` rows or `threads ≤ 1`, else contiguous ranges on up to `threads` threads
/// of the engine's pool ([`crate::pool`]). For work where every row depends only on its own inputs, so the split never
/// changes a bit.
pub(crate) fn par_rows<T: Send>(
    out: &mut [T],
    row_len: usize,
    threads: usize,
    min_rows: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let rows = out.len() / row_len.max(1);
    let threads = threads.min(rows / min_rows.max(1)).max(1);
    if threads == 1 {
        f(0, out);
        return;
    }
    let per = rows.div_ceil(threads);
    let parts: Vec<(usize, &mut [T])> = out.chunks_mut(per * row_len).enumerate().map(|(i, c)| (i * per, c)).collect();
    crate::pool::map(parts, |(first, chunk)| f(first, chunk));
}

/// Calls `f(offset, chunk)` on consecutive chunks of `out` that together cover it once,
/// `offset` being the chunk's first index: one chunk on the calling thread when `out` has
/// fewer than `2 · min_per_thread` elements or `threads ≤ 1`, else contiguous ranges on up
/// to `threads` pool threads (about `min_per_thread` long or longer). For elementwise work,
/// where every output depends only on its own inputs, so the split never changes a bit.
pub(crate) fn par_chunks<T: Send>(
    out: &mut [T],
    threads: usize,
    min_per_thread: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    par_rows(out, 1, threads, min_per_thread, f)
}

/// A kernel error with this message.
pub(crate) fn inv(msg: impl Into<String>) -> KernelError {
    KernelError::Invalid(msg.into())
}

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Advances a row-major multi-index over `dims`; false when it wrapped around.
pub(crate) fn next_index(idx: &mut [usize], dims: &[usize]) -> bool {
    for d in (0..dims.len()).rev() {
        idx[d] += 1;
        if idx[d] < dims[d] {
            return true;
        }
        idx[d] = 0;
    }
    false
}

/// The elements of `data` at the flat positions `idx`, in that order.
pub(crate) fn take(data: &TensorData, idx: &[usize]) -> TensorData {
    map_same!(data, v => idx.iter().map(|&i| v[i]).collect())
}

/// The elements of `parts` (all of one dtype) one after another.
pub(crate) fn concat_data(dtype: DType, parts: &[&TensorData]) -> TensorData {
    let mut out = empty(dtype);
    for p in parts {
        append(&mut out, p);
    }
    out
}

/// Appends `src` to `dst` (same dtype, checked at load).
pub(crate) fn append(dst: &mut TensorData, src: &TensorData) {
    macro_rules! app {
        ($($var:ident),*) => {
            match (dst, src) {
                $((TensorData::$var(d), TensorData::$var(s)) => d.extend_from_slice(s),)*
                (d, s) => unreachable!("append {:?} to {:?} (dtypes checked at load)", s.dtype(), d.dtype()),
            }
        };
    }
    app!(F32, F64, I8, U8, I16, U16, I32, U32, I64, U64, Bool)
}

/// An empty tensor body of `dtype`.
pub(crate) fn empty(dtype: DType) -> TensorData {
    match dtype {
        DType::F32 => TensorData::F32(vec![]),
        DType::F64 => TensorData::F64(vec![]),
        DType::I8 => TensorData::I8(vec![]),
        DType::U8 => TensorData::U8(vec![]),
        DType::I16 => TensorData::I16(vec![]),
        DType::U16 => TensorData::U16(vec![]),
        DType::I32 => TensorData::I32(vec![]),
        DType::U32 => TensorData::U32(vec![]),
        DType::I64 => TensorData::I64(vec![]),
        DType::U64 => TensorData::U64(vec![]),
        DType::Bool => TensorData::Bool(vec![]),
    }
}

/// `n` copies of element `i` of `src`.
pub(crate) fn repeat_elem(src: &TensorData, i: usize, n: usize) -> TensorData {
    map_same!(src, v => vec![v[i]; n])
}

/// The values of an integer tensor (int32 or int64, checked at load) as i64.
pub(crate) fn ints(t: &Tensor) -> KResult<Vec<i64>> {
    match &t.data {
        TensorData::I64(v) => Ok(v.clone()),
        TensorData::I32(v) => Ok(v.iter().map(|&x| x as i64).collect()),
        d => Err(inv(format!("expected an int32 or int64 tensor, got {}", d.dtype().name()))),
    }
}

/// The f32 elements of `t` (dtype checked at load).
pub(crate) fn f32s(t: &Tensor) -> &[f32] {
    match &t.data {
        TensorData::F32(v) => v,
        d => unreachable!("f32 kernel given {:?} (checked at load)", d.dtype()),
    }
}

/// A rank-0 or one-element tensor's only value as f64 (any numeric dtype).
pub(crate) fn scalar_f64(t: &Tensor) -> KResult<f64> {
    if t.data.len() != 1 {
        return Err(inv(format!("expected a single value, got shape {:?}", t.shape)));
    }
    Ok(match &t.data {
        TensorData::F32(v) => v[0] as f64,
        TensorData::F64(v) => v[0],
        TensorData::I8(v) => v[0] as f64,
        TensorData::U8(v) => v[0] as f64,
        TensorData::I16(v) => v[0] as f64,
        TensorData::U16(v) => v[0] as f64,
        TensorData::I32(v) => v[0] as f64,
        TensorData::U32(v) => v[0] as f64,
        TensorData::I64(v) => v[0] as f64,
        TensorData::U64(v) => v[0] as f64,
        TensorData::Bool(v) => v[0] as u8 as f64,
    })
}

/// A rank-0 or one-element integer tensor's value.
pub(crate) fn scalar_i64(t: &Tensor) -> KResult<i64> {
    let v = ints(t)?;
    if v.len() != 1 {
        return Err(inv(format!("expected a single value, got shape {:?}", t.shape)));
    }
    Ok(v[0])
}

/// Normalizes a list of possibly negative axes for rank `rank`; duplicates are an error.
pub(crate) fn norm_axes(axes: &[i64], rank: usize) -> KResult<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = super::reduce::norm_axis(a, rank, false)?;
        if out.contains(&n) {
            return Err(inv(format!("axis {a} is repeated")));
        }
        out.push(n);
    }
    Ok(out)
}

/// Checks that a dimension value from a tensor is non-negative and fits the limits.
pub(crate) fn dim(v: i64) -> KResult<usize> {
    usize::try_from(v).map_err(|_| inv(format!("dimension {v} is negative")))
}

/// Float dtypes the float kernels handle.
pub(crate) fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64)
}

/// Comma-separated dtype names, `(none)` for absent inputs.
pub(crate) fn names(ins: &[Option<DType>]) -> String {
    let v: Vec<&str> = ins.iter().map(|d| d.map_or("(none)", |d| d.name())).collect();
    format!("({})", v.join(", "))
}

/// The dtype of required input `i` (present: checked at load before dtypes are asked).
pub(crate) fn dt(ins: &[Option<DType>], i: usize) -> Result<DType, String> {
    ins.get(i).copied().flatten().ok_or_else(|| format!("input #{i} is required"))
}

/// Input `i`'s dtype must be one of `ok`.
pub(crate) fn want(ins: &[Option<DType>], i: usize, ok: &[DType], what: &str) -> Result<DType, String> {
    let d = dt(ins, i)?;
    if ok.contains(&d) {
        Ok(d)
    } else {
        let list: Vec<&str> = ok.iter().map(|d| d.name()).collect();
        Err(format!("{what} must be one of [{}], got {}", list.join(", "), d.name()))
    }
}

/// Optional input `i`'s dtype, if present, must be one of `ok`.
pub(crate) fn want_opt(ins: &[Option<DType>], i: usize, ok: &[DType], what: &str) -> Result<(), String> {
    if ins.get(i).copied().flatten().is_some() {
        want(ins, i, ok, what)?;
    }
    Ok(())
}

/// Inputs `i` and `j` (when present) must share a dtype.
pub(crate) fn same(ins: &[Option<DType>], i: usize, j: usize) -> Result<(), String> {
    match (ins.get(i).copied().flatten(), ins.get(j).copied().flatten()) {
        (Some(a), Some(b)) if a != b => Err(format!("inputs #{i} and #{j} have different dtypes: {}", names(ins))),
        _ => Ok(()),
    }
}

/// Integer index dtypes.
pub(crate) const IDX: &[DType] = &[DType::I32, DType::I64];
/// Float dtypes.
pub(crate) const FLOATS: &[DType] = &[DType::F32, DType::F64];
/// Every numeric dtype.
pub(crate) const NUMERIC: &[DType] = &[
    DType::F32,
    DType::F64,
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::I32,
    DType::U32,
    DType::I64,
    DType::U64,
];

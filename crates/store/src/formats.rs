//! Model formats read under limits: ONNX initializers and safetensors tensors, without
//! building a run graph, and the pairing of an ONNX graph with a safetensors weight file.
//!
//! Two readers per format:
//! - a *streaming* scanner ([`RegionScanner`]) that sees the bytes once, as they are
//!   ingested, and reports where tensor data lies, so the chunker can cut there;
//! - a *slice* parser ([`onnx_tensors`], [`safetensors_tensors`]) that returns every
//!   tensor's dtype, dims and data (borrowed), for fingerprinting.
//!
//! The ONNX reader walks the protobuf wire format itself (only `ModelProto.graph` →
//! `GraphProto.initializer` → `TensorProto`), so the store needs no protobuf crate and no
//! dependency on the engine. Everything from outside is bounded: header sizes, tensor
//! counts, rank, element counts (checked multiplication), and declared lengths against
//! the bytes actually present. A malformed file is an error, never a panic.

use std::collections::VecDeque;

/// Bounds for parsing model files.
#[derive(Clone, Debug)]
pub struct FormatLimits {
    /// Most tensors (initializers) in one file.
    pub tensors_max: usize,
    /// Highest rank of a tensor.
    pub rank_max: usize,
    /// Most elements of one tensor.
    pub tensor_elements_max: u64,
    /// Largest safetensors JSON header, in bytes.
    pub safetensors_header_bytes_max: u64,
}

impl Default for FormatLimits {
    fn default() -> Self {
        FormatLimits {
            tensors_max: 200_000,
            rank_max: 16,
            tensor_elements_max: 1 << 34,
            safetensors_header_bytes_max: 8 << 20,
        }
    }
}

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Not well-formed (truncated, bad framing, inconsistent sizes).
    #[error("malformed {format}: {reason}")]
    Malformed {
        /// "ONNX" or "safetensors".
        format: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Over one of the [`FormatLimits`].
    #[error("{0}")]
    Limit(String),
    /// An external-data reference that deed refuses (path traversal, unknown target).
    #[error("external data refused: {0}")]
    External(String),
}

fn onnx_err(reason: impl Into<String>) -> FormatError {
    FormatError::Malformed { format: "ONNX", reason: reason.into() }
}
fn st_err(reason: impl Into<String>) -> FormatError {
    FormatError::Malformed { format: "safetensors", reason: reason.into() }
}

/// ONNX `TensorProto.DataType` codes deed reads values of.
pub mod dtype {
    /// float32
    pub const FLOAT: i32 = 1;
    /// uint8
    pub const UINT8: i32 = 2;
    /// int8
    pub const INT8: i32 = 3;
    /// uint16
    pub const UINT16: i32 = 4;
    /// int16
    pub const INT16: i32 = 5;
    /// int32
    pub const INT32: i32 = 6;
    /// int64
    pub const INT64: i32 = 7;
    /// bool
    pub const BOOL: i32 = 9;
    /// float16
    pub const FLOAT16: i32 = 10;
    /// float64
    pub const DOUBLE: i32 = 11;
    /// uint32
    pub const UINT32: i32 = 12;
    /// uint64
    pub const UINT64: i32 = 13;
    /// bfloat16
    pub const BFLOAT16: i32 = 16;

    /// Bytes per element, for the fixed-width numeric types.
    pub fn width(code: i32) -> Option<usize> {
        Some(match code {
            UINT8 | INT8 | BOOL => 1,
            UINT16 | INT16 | FLOAT16 | BFLOAT16 => 2,
            FLOAT | INT32 | UINT32 => 4,
            INT64 | DOUBLE | UINT64 => 8,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Protobuf wire helpers (slice based).

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One field of a message: number, wire type, and either a varint value or a payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed(&'a [u8]),
}

/// Iterates the fields of one protobuf message; `Err` on malformed framing.
fn fields(msg: &[u8]) -> impl Iterator<Item = Result<(u64, Field<'_>), FormatError>> + '_ {
    let mut i = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || i >= msg.len() {
            return None;
        }
        let r = (|| {
            let key = varint(msg, &mut i).ok_or_else(|| onnx_err("truncated field key"))?;
            let (num, wt) = (key >> 3, key & 7);
            if num == 0 {
                return Err(onnx_err("field number 0"));
            }
            let f = match wt {
                0 => Field::Varint(varint(msg, &mut i).ok_or_else(|| onnx_err("truncated varint"))?),
                1 | 5 => {
                    let n = if wt == 1 { 8 } else { 4 };
                    let s = msg.get(i..i + n).ok_or_else(|| onnx_err("truncated fixed field"))?;
                    i += n;
                    Field::Fixed(s)
                }
                2 => {
                    let len = varint(msg, &mut i).ok_or_else(|| onnx_err("truncated length"))?;
                    let end = usize::try_from(len)
                        .ok()
                        .and_then(|l| i.checked_add(l))
                        .filter(|&e| e <= msg.len())
                        .ok_or_else(|| onnx_err("a length runs past the end of its message"))?;
                    let s = &msg[i..end];
                    i = end;
                    Field::Bytes(s)
                }
                _ => return Err(onnx_err(format!("unsupported wire type {wt}"))),
            };
            Ok((num, f))
        })();
        if r.is_err() {
            failed = true;
        }
        Some(r)
    })
}

// ---------------------------------------------------------------------------------------
// Slice parsers.

/// Where a tensor's elements are.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData<'a> {
    /// Little-endian elements of the tensor's dtype (`raw_data`, or a safetensors range).
    Raw(&'a [u8]),
    /// In a typed protobuf field (`float_data`, `int32_data`, ...) of this `TensorProto`
    /// message; read with [`typed_elements`] without materializing it.
    Typed {
        /// The whole `TensorProto` message.
        msg: &'a [u8],
        /// The field number holding the values.
        field: u64,
    },
    /// Stored outside the file (ONNX external data).
    External(ExternalRef),
}

/// An ONNX external-data reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalRef {
    /// The `location` entry, as written.
    pub location: String,
    /// Byte offset into that file.
    pub offset: u64,
    /// Byte length.
    pub length: u64,
}

/// A tensor read from a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor<'a> {
    /// Its name in the file (ignored by fingerprints).
    pub name: String,
    /// ONNX data type code.
    pub dtype: i32,
    /// Dimensions.
    pub dims: Vec<u64>,
    /// The data.
    pub data: TensorData<'a>,
}

impl RawTensor<'_> {
    /// Element count (dims checked at parse time, so no overflow).
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

fn checked_elements(dims: &[u64], limits: &FormatLimits) -> Result<u64, FormatError> {
    if dims.len() > limits.rank_max {
        return Err(FormatError::Limit(format!("tensor rank {} is over the limit of {}", dims.len(), limits.rank_max)));
    }
    let n = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= limits.tensor_elements_max)
        .ok_or_else(|| FormatError::Limit(format!("tensor of dims {dims:?} has too many elements")))?;
    Ok(n)
}

/// Every initializer of an ONNX model's main graph (names, dtypes, dims, data), in file
/// order. Sparse initializers and subgraph constants are not included.
pub fn onnx_tensors<'a>(bytes: &'a [u8], limits: &FormatLimits) -> Result<Vec<RawTensor<'a>>, FormatError> {
    let mut out = Vec::new();
    let mut graphs = 0;
    for f in fields(bytes) {
        if let (7, Field::Bytes(graph)) = f? {
            graphs += 1;
            for g in fields(graph) {
                if let (5, Field::Bytes(t)) = g? {
                    if out.len() >= limits.tensors_max {
                        return Err(FormatError::Limit(format!("more than {} initializers", limits.tensors_max)));
                    }
                    out.push(onnx_tensor(t, limits)?);
                }
            }
        }
    }
    if graphs == 0 {
        return Err(onnx_err("no graph (is this an ONNX model?)"));
    }
    Ok(out)
}

/// The typed field and its fixed width (None = varints) that holds a dtype's values.
fn typed_field(code: i32) -> (u64, Option<usize>) {
    match code {
        dtype::FLOAT => (4, Some(4)),
        dtype::DOUBLE => (10, Some(8)),
        dtype::INT64 => (7, None),
        dtype::UINT32 | dtype::UINT64 => (11, None),
        _ => (5, None),
    }
}

/// Calls `f` with each element of a typed field, as its wire value: the bits of a
/// fixed-width float, or the varint. The low `width(dtype)` bytes of that value, little
/// endian, are exactly what `raw_data` would hold for the element. Returns the count.
/// Allocates nothing, whatever the file says.
pub fn typed_elements(msg: &[u8], code: i32, f: &mut dyn FnMut(u64)) -> Result<u64, FormatError> {
    let (field, fixed) = typed_field(code);
    let mut count = 0u64;
    for r in fields(msg) {
        let (num, v) = r?;
        if num != field {
            continue;
        }
        match (v, fixed) {
            (Field::Bytes(b), Some(w)) => {
                if b.len() % w != 0 {
                    return Err(onnx_err("packed fixed-width field of a wrong length"));
                }
                for c in b.chunks_exact(w) {
                    let mut a = [0u8; 8];
                    a[..w].copy_from_slice(c);
                    f(u64::from_le_bytes(a));
                    count += 1;
                }
            }
            (Field::Bytes(b), None) => {
                let mut i = 0;
                while i < b.len() {
                    f(varint(b, &mut i).ok_or_else(|| onnx_err("truncated packed varint"))?);
                    count += 1;
                }
            }
            (Field::Fixed(c), Some(w)) if c.len() == w => {
                let mut a = [0u8; 8];
                a[..w].copy_from_slice(c);
                f(u64::from_le_bytes(a));
                count += 1;
            }
            (Field::Varint(x), None) => {
                f(x);
                count += 1;
            }
            _ => return Err(onnx_err("typed tensor field of the wrong wire type")),
        }
    }
    Ok(count)
}

fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 => {
            if frac == 0.0 {
                sign * f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// One element's value from little-endian bytes of dtype `code`.
pub fn element_value(code: i32, b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    let u = u64::from_le_bytes(a);
    match code {
        dtype::FLOAT => f64::from(f32::from_bits(u as u32)),
        dtype::DOUBLE => f64::from_bits(u),
        dtype::FLOAT16 => f16_to_f64(u as u16),
        dtype::BFLOAT16 => f64::from(f32::from_bits((u as u32) << 16)),
        dtype::INT8 => f64::from(u as u8 as i8),
        dtype::UINT8 | dtype::BOOL => f64::from(u as u8),
        dtype::INT16 => f64::from(u as u16 as i16),
        dtype::UINT16 => f64::from(u as u16),
        dtype::INT32 => f64::from(u as u32 as i32),
        dtype::UINT32 => f64::from(u as u32),
        dtype::INT64 => u as i64 as f64,
        _ => u as f64,
    }
}

fn onnx_tensor<'a>(t: &'a [u8], limits: &FormatLimits) -> Result<RawTensor<'a>, FormatError> {
    let mut dims = Vec::new();
    let (mut dtype, mut name, mut raw, mut location_external) = (0i32, String::new(), None, false);
    let mut external: Vec<(String, String)> = Vec::new();
    for f in fields(t) {
        let (num, f) = f?;
        match (num, f) {
            (1, Field::Varint(d)) => {
                if dims.len() >= limits.rank_max {
                    return Err(FormatError::Limit(format!("tensor rank over {}", limits.rank_max)));
                }
                dims.push(d as i64)
            }
            (1, Field::Bytes(p)) => {
                let mut i = 0;
                while i < p.len() {
                    if dims.len() >= limits.rank_max {
                        return Err(FormatError::Limit(format!("tensor rank over {}", limits.rank_max)));
                    }
                    dims.push(varint(p, &mut i).ok_or_else(|| onnx_err("truncated dims"))? as i64);
                }
            }
            (2, Field::Varint(v)) => dtype = v as i32,
            (8, Field::Bytes(s)) => name = String::from_utf8_lossy(s).into_owned(),
            (9, Field::Bytes(b)) => raw = Some(b),
            (13, Field::Bytes(e)) => {
                if external.len() >= 16 {
                    return Err(FormatError::External("more than 16 external_data entries".into()));
                }
                let (mut k, mut v) = (String::new(), String::new());
                for kv in fields(e) {
                    match kv? {
                        (1, Field::Bytes(s)) => k = String::from_utf8_lossy(s).into_owned(),
                        (2, Field::Bytes(s)) => v = String::from_utf8_lossy(s).into_owned(),
                        _ => {}
                    }
                }
                external.push((k, v));
            }
            (14, Field::Varint(v)) => location_external = v == 1,
            _ => {}
        }
    }
    let dims: Vec<u64> = dims
        .into_iter()
        .map(|d| u64::try_from(d).map_err(|_| onnx_err(format!("negative dim {d} in initializer '{name}'"))))
        .collect::<Result<_, _>>()?;
    let n = checked_elements(&dims, limits)?;
    let data = if location_external {
        TensorData::External(external_ref(&external, &name)?)
    } else if let Some(raw) = raw {
        let w = dtype::width(dtype).ok_or_else(|| onnx_err(format!("unsupported dtype {dtype} for '{name}'")))?;
        if (raw.len() as u64) != n.saturating_mul(w as u64) {
            return Err(onnx_err(format!(
                "initializer '{name}' has {} bytes of raw data but its dims {dims:?} need {}",
                raw.len(),
                n.saturating_mul(w as u64)
            )));
        }
        TensorData::Raw(raw)
    } else {
        let w = dtype::width(dtype).ok_or_else(|| onnx_err(format!("unsupported dtype {dtype} for '{name}'")))?;
        let _ = w;
        let count = typed_elements(t, dtype, &mut |_| {})?;
        if count != n {
            return Err(onnx_err(format!("initializer '{name}' has {count} values but its dims {dims:?} need {n}")));
        }
        TensorData::Typed { msg: t, field: typed_field(dtype).0 }
    };
    Ok(RawTensor { name, dtype, dims, data })
}

/// Validates an external-data reference: `location` must be a bare file name (no path
/// separators, no `..`, not absolute), and `offset`/`length` must be numbers.
fn external_ref(entries: &[(String, String)], name: &str) -> Result<ExternalRef, FormatError> {
    let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let location = get("location").ok_or_else(|| FormatError::External(format!("'{name}' has no location")))?;
    if location.is_empty()
        || location.contains(['/', '\\', '\0'])
        || location.starts_with('.')
        || location.contains(':')
        || location.len() > 255
    {
        return Err(FormatError::External(format!(
            "'{name}' points at '{location}': a location must be a bare file name (no directories, no '..')"
        )));
    }
    let num = |k: &str| -> Result<Option<u64>, FormatError> {
        get(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| FormatError::External(format!("'{name}': {k} '{v}' is not a number")))
            })
            .transpose()
    };
    let offset = num("offset")?.unwrap_or(0);
    let length = num("length")?.ok_or_else(|| FormatError::External(format!("'{name}' has no length")))?;
    offset.checked_add(length).ok_or_else(|| FormatError::External(format!("'{name}': offset + length overflows")))?;
    Ok(ExternalRef { location: location.to_string(), offset, length })
}

/// A parsed safetensors header entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeEntry {
    /// Tensor name.
    pub name: String,
    /// ONNX dtype code of its `dtype`.
    pub dtype: i32,
    /// Shape.
    pub dims: Vec<u64>,
    /// Start and end of its data, relative to the data section.
    pub begin: u64,
    /// End (exclusive).
    pub end: u64,
}

fn safetensors_dtype(s: &str) -> Option<i32> {
    Some(match s {
        "F32" => dtype::FLOAT,
        "F16" => dtype::FLOAT16,
        "BF16" => dtype::BFLOAT16,
        "F64" => dtype::DOUBLE,
        "I8" => dtype::INT8,
        "U8" => dtype::UINT8,
        "I16" => dtype::INT16,
        "U16" => dtype::UINT16,
        "I32" => dtype::INT32,
        "U32" => dtype::UINT32,
        "I64" => dtype::INT64,
        "U64" => dtype::UINT64,
        "BOOL" => dtype::BOOL,
        _ => return None,
    })
}

/// Reads a safetensors header given the JSON bytes and the data section's length.
/// Checks: each entry's dtype and shape, `end - begin == elements × width`, every range
/// inside the data section, and no two ranges overlapping. Entries come back sorted by
/// `begin`.
pub fn safetensors_header(json: &[u8], data_len: u64, limits: &FormatLimits) -> Result<Vec<SafeEntry>, FormatError> {
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| st_err(format!("header is not a JSON object: {e}")))?;
    if v.len() > limits.tensors_max + 1 {
        return Err(FormatError::Limit(format!("more than {} tensors", limits.tensors_max)));
    }
    let mut out = Vec::with_capacity(v.len());
    for (name, e) in &v {
        if name == "__metadata__" {
            continue;
        }
        let e = e.as_object().ok_or_else(|| st_err(format!("entry '{name}' is not an object")))?;
        let dt = e.get("dtype").and_then(|d| d.as_str()).ok_or_else(|| st_err(format!("'{name}' has no dtype")))?;
        let code = safetensors_dtype(dt).ok_or_else(|| st_err(format!("'{name}' has unsupported dtype {dt}")))?;
        let shape =
            e.get("shape").and_then(|s| s.as_array()).ok_or_else(|| st_err(format!("'{name}' has no shape")))?;
        if shape.len() > limits.rank_max {
            return Err(FormatError::Limit(format!("'{name}' has rank {} over {}", shape.len(), limits.rank_max)));
        }
        let dims: Vec<u64> = shape
            .iter()
            .map(|d| d.as_u64().ok_or_else(|| st_err(format!("'{name}' has a non-integer dim"))))
            .collect::<Result<_, _>>()?;
        let n = checked_elements(&dims, limits)?;
        let off = e
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .filter(|o| o.len() == 2)
            .ok_or_else(|| st_err(format!("'{name}' has no data_offsets [begin, end]")))?;
        let (begin, end) = match (off[0].as_u64(), off[1].as_u64()) {
            (Some(b), Some(e)) if b <= e && e <= data_len => (b, e),
            _ => return Err(st_err(format!("'{name}' has data_offsets outside the data ({data_len} bytes)"))),
        };
        let w = dtype::width(code).expect("every safetensors dtype has a width") as u64;
        if n.checked_mul(w) != Some(end - begin) {
            return Err(st_err(format!("'{name}': {} bytes do not hold dims {dims:?} of {dt}", end - begin)));
        }
        out.push(SafeEntry { name: name.clone(), dtype: code, dims, begin, end });
    }
    out.sort_by_key(|e| (e.begin, e.end));
    for w in out.windows(2) {
        if w[1].begin < w[0].end {
            return Err(st_err(format!("tensors '{}' and '{}' overlap", w[0].name, w[1].name)));
        }
    }
    Ok(out)
}

/// If `bytes` starts like a safetensors file, the header length it declares.
pub fn safetensors_header_len(head: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(head.get(..8)?.try_into().ok()?);
    (n >= 2 && head.get(8) == Some(&b'{')).then_some(n)
}

/// Every tensor of a safetensors file, sorted by offset.
pub fn safetensors_tensors<'a>(bytes: &'a [u8], limits: &FormatLimits) -> Result<Vec<RawTensor<'a>>, FormatError> {
    let n = safetensors_header_len(bytes).ok_or_else(|| st_err("no header"))?;
    if n > limits.safetensors_header_bytes_max {
        return Err(FormatError::Limit(format!(
            "safetensors header of {n} bytes is over the limit of {}",
            limits.safetensors_header_bytes_max
        )));
    }
    let data_start = 8 + n as usize;
    let json = bytes.get(8..data_start).ok_or_else(|| st_err("truncated header"))?;
    let data = &bytes[data_start..];
    let entries = safetensors_header(json, data.len() as u64, limits)?;
    Ok(entries
        .into_iter()
        .map(|e| RawTensor {
            data: TensorData::Raw(&data[e.begin as usize..e.end as usize]),
            name: e.name,
            dtype: e.dtype,
            dims: e.dims,
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Streaming scanner: where tensor data lies, for the chunker.

/// Tensors smaller than this are not worth a chunk of their own.
pub const REGION_BYTES_MIN: u64 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    Model,
    Graph,
    Tensor,
}

#[derive(Debug)]
enum St {
    Tag,
    Len(u64),
    Varint,
    Skip(u64),
}

/// A push scanner over the protobuf wire format of an ONNX model: reports the byte range
/// of each initializer's `raw_data`. Stops quietly at the first thing it does not
/// understand (chunking stays correct, only dedup gets coarser).
#[derive(Debug)]
struct OnnxScan {
    pos: u64,
    st: St,
    acc: u64,
    shift: u32,
    stack: Vec<(Msg, u64)>,
}

impl OnnxScan {
    fn new() -> Self {
        OnnxScan { pos: 0, st: St::Tag, acc: 0, shift: 0, stack: vec![(Msg::Model, u64::MAX)] }
    }

    /// Feeds bytes; pushes found regions. Returns false once it has given up.
    fn feed(&mut self, data: &[u8], out: &mut VecDeque<(u64, u64)>) -> bool {
        let mut i = 0usize;
        while i < data.len() {
            if let St::Skip(n) = self.st {
                let take = n.min((data.len() - i) as u64);
                i += take as usize;
                self.pos += take;
                self.st = if n == take { St::Tag } else { St::Skip(n - take) };
                continue;
            }
            if matches!(self.st, St::Tag) && self.shift == 0 {
                while self.stack.last().is_some_and(|&(_, end)| end == self.pos) {
                    self.stack.pop();
                }
                match self.stack.last() {
                    Some(&(_, end)) if end > self.pos => {}
                    _ => return false,
                }
            }
            let b = data[i];
            i += 1;
            self.pos += 1;
            self.acc |= u64::from(b & 0x7f) << self.shift;
            if b & 0x80 != 0 {
                self.shift += 7;
                if self.shift >= 64 {
                    return false;
                }
                continue;
            }
            let v = self.acc;
            self.acc = 0;
            self.shift = 0;
            self.st = match self.st {
                St::Tag => match (v >> 3, v & 7) {
                    (0, _) => return false,
                    (_, 0) => St::Varint,
                    (_, 1) => St::Skip(8),
                    (_, 5) => St::Skip(4),
                    (f, 2) => St::Len(f),
                    _ => return false,
                },
                St::Varint => St::Tag,
                St::Len(field) => {
                    let top = *self.stack.last().expect("checked above");
                    let Some(end) = self.pos.checked_add(v).filter(|&e| e <= top.1) else { return false };
                    match (top.0, field) {
                        (Msg::Model, 7) => {
                            self.stack.push((Msg::Graph, end));
                            St::Tag
                        }
                        (Msg::Graph, 5) => {
                            self.stack.push((Msg::Tensor, end));
                            St::Tag
                        }
                        (Msg::Tensor, 9) => {
                            if v >= REGION_BYTES_MIN {
                                out.push_back((self.pos, end));
                            }
                            St::Skip(v)
                        }
                        _ => St::Skip(v),
                    }
                }
                St::Skip(_) => unreachable!("handled above"),
            };
            if let St::Skip(0) = self.st {
                self.st = St::Tag;
            }
        }
        true
    }
}

/// Finds tensor data in a stream of ONNX or safetensors bytes, as they arrive.
#[derive(Debug)]
pub struct RegionScanner {
    state: ScanState,
    limits: FormatLimits,
    /// Regions found and not yet taken, in stream order, non-overlapping.
    pub regions: VecDeque<(u64, u64)>,
}

#[derive(Debug)]
enum ScanState {
    /// Still collecting the first bytes.
    Head(Vec<u8>),
    Onnx(OnnxScan),
    /// Collecting a safetensors header of this total length (8 + N).
    SafeHeader(Vec<u8>, u64),
    Done,
}

impl RegionScanner {
    /// A scanner for a new stream.
    pub fn new(limits: FormatLimits) -> Self {
        RegionScanner { state: ScanState::Head(Vec::new()), limits, regions: VecDeque::new() }
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        loop {
            match &mut self.state {
                ScanState::Done => return,
                ScanState::Head(h) => {
                    let take = (16 - h.len()).min(data.len());
                    h.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if h.len() < 16 {
                        return;
                    }
                    let head = std::mem::take(h);
                    match safetensors_header_len(&head) {
                        Some(n) if n <= self.limits.safetensors_header_bytes_max => {
                            self.state = ScanState::SafeHeader(Vec::new(), 8 + n);
                            self.feed(&head);
                        }
                        Some(_) => self.state = ScanState::Done,
                        None => {
                            let mut s = OnnxScan::new();
                            self.state =
                                if s.feed(&head, &mut self.regions) { ScanState::Onnx(s) } else { ScanState::Done };
                        }
                    }
                }
                ScanState::Onnx(s) => {
                    if !s.feed(data, &mut self.regions) {
                        self.state = ScanState::Done;
                    }
                    return;
                }
                ScanState::SafeHeader(buf, total) => {
                    let take = ((*total - buf.len() as u64) as usize).min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    if (buf.len() as u64) < *total {
                        return;
                    }
                    let data_start = *total;
                    // The data length is unknown while streaming: accept any offsets here; a
                    // lie only makes the cuts useless (the content is stored exactly anyway).
                    if let Ok(entries) = safetensors_header(&buf[8..], u64::MAX / 4, &self.limits) {
                        for e in entries {
                            if e.end - e.begin >= REGION_BYTES_MIN {
                                self.regions.push_back((data_start + e.begin, data_start + e.end));
                            }
                        }
                    }
                    self.state = ScanState::Done;
                    return;
                }
            }
            if data.is_empty() {
                return;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a protobuf length-delimited field.
    pub(crate) fn ld(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_varint(&mut v, field << 3 | 2);
        put_varint(&mut v, payload.len() as u64);
        v.extend_from_slice(payload);
        v
    }
    pub(crate) fn put_varint(v: &mut Vec<u8>, mut x: u64) {
        while x >= 0x80 {
            v.push((x as u8) | 0x80);
            x >>= 7;
        }
        v.push(x as u8);
    }
    pub(crate) fn vi(field: u64, x: u64) -> Vec<u8> {
        let mut v = Vec::new();
        put_varint(&mut v, field << 3);
        put_varint(&mut v, x);
        v
    }

    /// A minimal ONNX model with the given f32 initializers (raw_data).
    pub(crate) fn onnx_model(tensors: &[(&str, Vec<u64>, Vec<f32>)]) -> Vec<u8> {
        let mut graph = ld(1, &[ld(1, b"x"), ld(2, b"y"), ld(4, b"Identity")].concat());
        for (name, dims, data) in tensors {
            let mut t = Vec::new();
            for d in dims {
                t.extend(vi(1, *d));
            }
            t.extend(vi(2, 1));
            t.extend(ld(8, name.as_bytes()));
            let raw: Vec<u8> = data.iter().flat_map(|f| f.to_le_bytes()).collect();
            t.extend(ld(9, &raw));
            graph.extend(ld(5, &t));
        }
        [vi(1, 8), ld(7, &graph)].concat()
    }

    #[test]
    fn onnx_slice_and_stream_agree() {
        let a: Vec<f32> = (0..20000).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..30).map(|i| -(i as f32)).collect();
        let m = onnx_model(&[("a", vec![100, 200], a.clone()), ("b", vec![30], b)]);
        let ts = onnx_tensors(&m, &FormatLimits::default()).unwrap();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].dims, vec![100, 200]);
        let TensorData::Raw(r) = &ts[0].data else { panic!() };
        let start = r.as_ptr() as usize - m.as_ptr() as usize;
        for piece in [1usize, 7, 4096] {
            let mut s = RegionScanner::new(FormatLimits::default());
            for c in m.chunks(piece) {
                s.feed(c);
            }
            assert_eq!(s.regions.iter().copied().collect::<Vec<_>>(), vec![(start as u64, (start + 80000) as u64)]);
        }
    }

    #[test]
    fn typed_fields_hash_like_raw() {
        let mut t = [vi(1, 3), vi(2, 1), ld(8, b"w")].concat();
        let packed: Vec<u8> = [1.5f32, -2.0, 3.25].iter().flat_map(|f| f.to_le_bytes()).collect();
        t.extend(ld(4, &packed));
        let m = [vi(1, 8), ld(7, &ld(5, &t))].concat();
        let ts = onnx_tensors(&m, &FormatLimits::default()).unwrap();
        let TensorData::Typed { msg, .. } = ts[0].data else { panic!() };
        let mut canonical = vec![];
        typed_elements(msg, 1, &mut |v| canonical.extend_from_slice(&v.to_le_bytes()[..4])).unwrap();
        assert_eq!(canonical, packed);
    }

    #[test]
    fn external_paths_checked() {
        for (loc, ok) in [("w.safetensors", true), ("../etc/passwd", false), ("/abs", false), ("a/b", false)] {
            let kv = |k: &str, v: &str| ld(13, &[ld(1, k.as_bytes()), ld(2, v.as_bytes())].concat());
            let t = [vi(1, 2), vi(2, 1), ld(8, b"w"), kv("location", loc), kv("length", "8"), vi(14, 1)].concat();
            let m = [vi(1, 8), ld(7, &ld(5, &t))].concat();
            assert_eq!(onnx_tensors(&m, &FormatLimits::default()).is_ok(), ok, "{loc}");
        }
    }

    #[test]
    fn safetensors_checked() {
        let hdr = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        assert!(safetensors_header(hdr, 8, &FormatLimits::default()).is_err(), "overlap");
        let hdr = br#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#;
        assert!(safetensors_header(hdr, 8, &FormatLimits::default()).is_err(), "overflow");
        let hdr = br#"{"__metadata__":{"x":"y"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        assert_eq!(safetensors_header(hdr, 8, &FormatLimits::default()).unwrap().len(), 1);
    }
}

//! Tensors as they cross the wire: typed dense data, a canonical byte encoding that
//! every hash in deed is computed over, and the JSON form of the HTTP API and CLI.
//!
//! Canonical encoding of one tensor (docs/PROTOCOL.md): `dtype: u8` (the ONNX
//! `TensorProto.DataType` code), `rank: u32 LE`, `rank × dim: u64 LE`, then the
//! elements in row-major order, little-endian; booleans are one byte, 0 or 1; every float
//! NaN is the canonical quiet NaN (decoders refuse any other NaN bits).
//! A [`TensorSet`] is `"DTS1"`, `count: u32 LE`, then for each tensor in ascending
//! byte order of its name: `name_len: u32 LE`, the UTF-8 name, the tensor encoding.

use crate::{Error, Hash32};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The bits every f32 NaN is encoded as: the quiet NaN with sign 0 and no payload.
pub const CANONICAL_NAN_F32: u32 = 0x7fc0_0000;
/// The bits every f64 NaN is encoded as.
pub const CANONICAL_NAN_F64: u64 = 0x7ff8_0000_0000_0000;

/// `x`, or the canonical NaN if `x` is a NaN.
#[inline(always)]
pub fn canonical_f32(x: f32) -> f32 {
    if x.is_nan() { f32::from_bits(CANONICAL_NAN_F32) } else { x }
}

/// `x`, or the canonical NaN if `x` is a NaN.
#[inline(always)]
pub fn canonical_f64(x: f64) -> f64 {
    if x.is_nan() { f64::from_bits(CANONICAL_NAN_F64) } else { x }
}

/// Most elements a single tensor from outside may hold (256 Mi elements).
pub const TENSOR_ELEMENTS_MAX: usize = 1 << 28;
/// Highest rank a tensor from outside may have.
pub const TENSOR_RANK_MAX: usize = 16;
/// Most tensors a [`TensorSet`] from outside may hold.
pub const TENSOR_SET_LEN_MAX: usize = 1024;
/// Longest tensor name accepted from outside.
pub const TENSOR_NAME_BYTES_MAX: usize = 1024;

/// Magic bytes opening an encoded [`TensorSet`].
pub const TENSOR_SET_MAGIC: &[u8; 4] = b"DTS1";

/// Element types, numbered as ONNX numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DType {
    /// 32-bit IEEE float.
    F32 = 1,
    /// Unsigned byte.
    U8 = 2,
    /// Signed byte.
    I8 = 3,
    /// Unsigned 16-bit.
    U16 = 4,
    /// Signed 16-bit.
    I16 = 5,
    /// Signed 32-bit.
    I32 = 6,
    /// Signed 64-bit.
    I64 = 7,
    /// Boolean, one byte 0 or 1.
    Bool = 9,
    /// 64-bit IEEE float.
    F64 = 11,
    /// Unsigned 32-bit.
    U32 = 12,
    /// Unsigned 64-bit.
    U64 = 13,
}

impl DType {
    /// All supported types.
    pub const ALL: [DType; 11] = [
        DType::F32,
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::Bool,
        DType::F64,
        DType::U32,
        DType::U64,
    ];

    /// The ONNX `TensorProto.DataType` code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type with this ONNX code, if deed supports it.
    pub fn from_code(code: i32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.code() as i32 == code)
    }

    /// The name used in JSON (NumPy's names).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::Bool => "bool",
            DType::F64 => "float64",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
        }
    }

    /// The type with this JSON name.
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Bytes per element in the canonical encoding.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 | DType::Bool => 1,
            DType::U16 | DType::I16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }
}

/// The elements of a tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum TensorData {
    F32(Vec<f32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    F64(Vec<f64>),
    U32(Vec<u32>),
    U64(Vec<u64>),
}

/// Applies `$body` to the vector inside any [`TensorData`] variant.
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::TensorData::F32($v) => $body,
            $crate::TensorData::U8($v) => $body,
            $crate::TensorData::I8($v) => $body,
            $crate::TensorData::U16($v) => $body,
            $crate::TensorData::I16($v) => $body,
            $crate::TensorData::I32($v) => $body,
            $crate::TensorData::I64($v) => $body,
            $crate::TensorData::Bool($v) => $body,
            $crate::TensorData::F64($v) => $body,
            $crate::TensorData::U32($v) => $body,
            $crate::TensorData::U64($v) => $body,
        }
    };
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::U8(_) => DType::U8,
            TensorData::I8(_) => DType::I8,
            TensorData::U16(_) => DType::U16,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::Bool(_) => DType::Bool,
            TensorData::F64(_) => DType::F64,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the little-endian bytes of every element to `out`, every float NaN as the
    /// canonical quiet NaN ([`CANONICAL_NAN_F32`], [`CANONICAL_NAN_F64`]): IEEE-754 leaves a
    /// NaN result's sign and payload to the hardware, so the encoding (and every hash of
    /// it) must not depend on them.
    pub fn write_le(&self, out: &mut Vec<u8>) {
        out.reserve(self.len() * self.dtype().size());
        match self {
            TensorData::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
            TensorData::U8(v) => out.extend_from_slice(v),
            TensorData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
            TensorData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&canonical_f32(*x).to_le_bytes())),
            TensorData::U16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&canonical_f64(*x).to_le_bytes())),
            TensorData::U32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::U64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }

    /// Reads `n` elements of `dtype` from little-endian bytes (exactly `n * size` bytes).
    pub fn from_le(dtype: DType, bytes: &[u8]) -> Result<TensorData, Error> {
        let sz = dtype.size();
        if !bytes.len().is_multiple_of(sz) {
            return Err(Error::Tensor(format!(
                "{} bytes is not a whole number of {} elements",
                bytes.len(),
                dtype.name()
            )));
        }
        macro_rules! rd {
            ($t:ty, $var:ident) => {
                TensorData::$var(bytes.chunks_exact(sz).map(|c| <$t>::from_le_bytes(c.try_into().unwrap())).collect())
            };
        }
        Ok(match dtype {
            DType::Bool => {
                if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                    return Err(Error::Tensor(format!("boolean byte {b} is neither 0 nor 1")));
                }
                TensorData::Bool(bytes.iter().map(|&b| b == 1).collect())
            }
            DType::U8 => TensorData::U8(bytes.to_vec()),
            DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::F32 => rd!(f32, F32),
            DType::U16 => rd!(u16, U16),
            DType::I16 => rd!(i16, I16),
            DType::I32 => rd!(i32, I32),
            DType::I64 => rd!(i64, I64),
            DType::F64 => rd!(f64, F64),
            DType::U32 => rd!(u32, U32),
            DType::U64 => rd!(u64, U64),
        })
    }
}

/// A dense tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first. A scalar has an empty shape.
    pub shape: Vec<usize>,
    /// Elements, row-major; `data.len()` equals the product of `shape`.
    pub data: TensorData,
}

/// Product of dims, or `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl Tensor {
    /// A tensor, checked: the data length must equal the product of the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, Error> {
        let n = element_count(&shape).ok_or_else(|| Error::Tensor("element count overflows".into()))?;
        if n != data.len() {
            return Err(Error::Tensor(format!("shape {shape:?} needs {n} elements but {} were given", data.len())));
        }
        Ok(Tensor { shape, data })
    }

    /// A float32 tensor; panics when the shape and data disagree (for code and tests
    /// that build tensors they already know are consistent).
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor::new(shape, TensorData::F32(data)).expect("shape and data length agree")
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.dtype().code());
        out.extend_from_slice(&(self.shape.len() as u32).to_le_bytes());
        for &d in &self.shape {
            out.extend_from_slice(&(d as u64).to_le_bytes());
        }
        self.data.write_le(out);
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// BLAKE3 of the canonical encoding.
    pub fn hash(&self) -> Hash32 {
        Hash32::of(&self.encode())
    }

    /// Decodes one tensor from the front of `buf`, advancing it; enforces the limits.
    pub fn decode_from(buf: &mut &[u8]) -> Result<Tensor, Error> {
        let code = take(buf, 1)?[0];
        let dtype = DType::from_code(code as i32).ok_or_else(|| Error::Tensor(format!("unknown dtype code {code}")))?;
        let rank = u32::from_le_bytes(take(buf, 4)?.try_into().unwrap()) as usize;
        if rank > TENSOR_RANK_MAX {
            return Err(Error::Tensor(format!("rank {rank} is over the limit of {TENSOR_RANK_MAX}")));
        }
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            let d = u64::from_le_bytes(take(buf, 8)?.try_into().unwrap());
            shape.push(usize::try_from(d).map_err(|_| Error::Tensor("dimension too large".into()))?);
        }
        let n = element_count(&shape).filter(|&n| n <= TENSOR_ELEMENTS_MAX).ok_or_else(|| {
            Error::Tensor(format!("shape {shape:?} is over the limit of {TENSOR_ELEMENTS_MAX} elements"))
        })?;
        let data = TensorData::from_le(dtype, take(buf, n * dtype.size())?)?;
        // Only canonical NaNs: a tensor has exactly one encoding.
        let odd_nan = match &data {
            TensorData::F32(v) => v.iter().any(|x| x.is_nan() && x.to_bits() != CANONICAL_NAN_F32),
            TensorData::F64(v) => v.iter().any(|x| x.is_nan() && x.to_bits() != CANONICAL_NAN_F64),
            _ => false,
        };
        if odd_nan {
            return Err(Error::Tensor(
                "a NaN that is not the canonical quiet NaN (0x7fc00000 / 0x7ff8000000000000)".into(),
            ));
        }
        Ok(Tensor { shape, data })
    }

    /// The JSON form: `{"shape": [..], "dtype": "float32", "data": [..]}` with flat data.
    pub fn to_json(&self) -> serde_json::Value {
        let data = with_data!(&self.data, v => serde_json::to_value(v).expect("numbers serialize"));
        serde_json::json!({ "shape": self.shape, "dtype": self.dtype().name(), "data": data })
    }

    /// Reads the JSON form. `data` may be flat or nested to the shape; `dtype`
    /// defaults to float32.
    pub fn from_json(v: &serde_json::Value) -> Result<Tensor, Error> {
        #[derive(Deserialize)]
        struct Raw {
            shape: Vec<usize>,
            #[serde(default)]
            dtype: Option<String>,
            data: serde_json::Value,
        }
        let raw: Raw = serde_json::from_value(v.clone())
            .map_err(|e| Error::Tensor(format!("expected {{shape, dtype, data}}: {e}")))?;
        if raw.shape.len() > TENSOR_RANK_MAX {
            return Err(Error::Tensor(format!("rank {} is over the limit of {TENSOR_RANK_MAX}", raw.shape.len())));
        }
        let n = element_count(&raw.shape)
            .filter(|&n| n <= TENSOR_ELEMENTS_MAX)
            .ok_or_else(|| Error::Tensor("too many elements".into()))?;
        let dtype_name = raw.dtype.as_deref().unwrap_or("float32");
        let dtype =
            DType::from_name(dtype_name).ok_or_else(|| Error::Tensor(format!("unknown dtype '{dtype_name}'")))?;
        let mut flat = Vec::with_capacity(n.min(1 << 20));
        flatten(&raw.data, &mut flat, n)?;
        if flat.len() != n {
            return Err(Error::Tensor(format!("shape {:?} needs {n} elements but data has {}", raw.shape, flat.len())));
        }
        fn num<T: serde::de::DeserializeOwned>(x: &serde_json::Value, dt: DType) -> Result<T, Error> {
            T::deserialize(x).map_err(|_| Error::Tensor(format!("{x} is not a valid {}", dt.name())))
        }
        macro_rules! conv {
            ($var:ident) => {
                TensorData::$var(flat.iter().map(|x| num(x, dtype)).collect::<Result<_, _>>()?)
            };
        }
        let data = match dtype {
            DType::F32 => {
                TensorData::F32(flat.iter().map(|x| num::<f64>(x, dtype).map(|f| f as f32)).collect::<Result<_, _>>()?)
            }
            DType::F64 => conv!(F64),
            DType::U8 => conv!(U8),
            DType::I8 => conv!(I8),
            DType::U16 => conv!(U16),
            DType::I16 => conv!(I16),
            DType::I32 => conv!(I32),
            DType::I64 => conv!(I64),
            DType::U32 => conv!(U32),
            DType::U64 => conv!(U64),
            DType::Bool => TensorData::Bool(
                flat.iter()
                    .map(|x| match x {
                        serde_json::Value::Bool(b) => Ok(*b),
                        serde_json::Value::Number(n) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                            Ok(n.as_u64() == Some(1))
                        }
                        _ => Err(Error::Tensor(format!("{x} is not a bool"))),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Tensor::new(raw.shape, data)
    }
}

fn flatten<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>, max: usize) -> Result<(), Error> {
    match v {
        serde_json::Value::Array(items) => {
            for i in items {
                flatten(i, out, max)?;
            }
            Ok(())
        }
        other => {
            if out.len() >= max {
                return Err(Error::Tensor("data has more elements than the shape".into()));
            }
            out.push(other);
            Ok(())
        }
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
    if buf.len() < n {
        return Err(Error::Tensor(format!("truncated: needed {n} more bytes, {} left", buf.len())));
    }
    let (h, t) = buf.split_at(n);
    *buf = t;
    Ok(h)
}

/// Named tensors: the inputs or outputs of one inference, ordered by name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TensorSet(pub BTreeMap<String, Tensor>);

impl TensorSet {
    /// The canonical encoding (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(TENSOR_SET_MAGIC);
        out.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        for (name, t) in &self.0 {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            t.encode_into(&mut out);
        }
        out
    }

    /// BLAKE3 of the canonical encoding: the input or output hash of a receipt, and
    /// the digest of the set's blob id.
    pub fn hash(&self) -> Hash32 {
        Hash32::of(&self.encode())
    }

    /// Decodes a whole buffer; trailing bytes, duplicate or unsorted names are errors
    /// so that every set has exactly one encoding.
    pub fn decode(mut buf: &[u8]) -> Result<TensorSet, Error> {
        if take(&mut buf, 4)? != TENSOR_SET_MAGIC {
            return Err(Error::Tensor("not a tensor set (missing DTS1 magic)".into()));
        }
        let n = u32::from_le_bytes(take(&mut buf, 4)?.try_into().unwrap()) as usize;
        if n > TENSOR_SET_LEN_MAX {
            return Err(Error::Tensor(format!("{n} tensors is over the limit of {TENSOR_SET_LEN_MAX}")));
        }
        let mut map = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..n {
            let len = u32::from_le_bytes(take(&mut buf, 4)?.try_into().unwrap()) as usize;
            if len > TENSOR_NAME_BYTES_MAX {
                return Err(Error::Tensor("tensor name too long".into()));
            }
            let name = std::str::from_utf8(take(&mut buf, len)?)
                .map_err(|_| Error::Tensor("tensor name is not UTF-8".into()))?
                .to_owned();
            if last.as_ref().is_some_and(|l| l.as_str() >= name.as_str()) {
                return Err(Error::Tensor("tensor names are not in strictly ascending order".into()));
            }
            let t = Tensor::decode_from(&mut buf)?;
            last = Some(name.clone());
            map.insert(name, t);
        }
        if !buf.is_empty() {
            return Err(Error::Tensor(format!("{} trailing bytes after the tensor set", buf.len())));
        }
        Ok(TensorSet(map))
    }

    /// The JSON form: an object from name to tensor.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.iter().map(|(k, t)| (k.clone(), t.to_json())).collect())
    }

    /// Reads the JSON form.
    pub fn from_json(v: &serde_json::Value) -> Result<TensorSet, Error> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::Tensor("expected an object from input name to {shape, dtype, data}".into()))?;
        if obj.len() > TENSOR_SET_LEN_MAX {
            return Err(Error::Tensor("too many tensors".into()));
        }
        let mut map = BTreeMap::new();
        for (k, t) in obj {
            map.insert(k.clone(), Tensor::from_json(t).map_err(|e| Error::Tensor(format!("'{k}': {e}")))?);
        }
        Ok(TensorSet(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_roundtrip_nested_and_flat() {
        let v = serde_json::json!({"x": {"shape": [2, 2], "dtype": "float32", "data": [[1.0, 2.5], [3.0, -4.0]]}});
        let s = TensorSet::from_json(&v).unwrap();
        assert_eq!(s.0["x"], Tensor::f32(vec![2, 2], vec![1.0, 2.5, 3.0, -4.0]));
        let back = TensorSet::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        let bad = serde_json::json!({"x": {"shape": [3], "data": [1, 2]}});
        assert!(TensorSet::from_json(&bad).unwrap_err().to_string().contains("needs 3 elements"));
        let bad = serde_json::json!({"x": {"shape": [1], "dtype": "int8", "data": [300]}});
        assert!(TensorSet::from_json(&bad).is_err());
    }

    #[test]
    fn decode_rejects_bombs_and_noncanonical() {
        let mut b = vec![1u8];
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(Tensor::decode_from(&mut b.as_slice()).is_err());
        let mut s = TensorSet::default();
        s.0.insert("a".into(), Tensor::f32(vec![1], vec![1.0]));
        let mut enc = s.encode();
        enc.push(0);
        assert!(TensorSet::decode(&enc).is_err());
    }

    #[test]
    fn nans_are_encoded_canonically_and_only_so_decoded() {
        let odd32 = [f32::from_bits(0xffc0_0000), f32::from_bits(0x7fc0_0001), f32::from_bits(0x7f80_0001)];
        let t = Tensor::f32(vec![4], vec![odd32[0], 1.0, odd32[1], odd32[2]]);
        let enc = t.encode();
        let back = Tensor::decode_from(&mut enc.as_slice()).unwrap();
        let want = [CANONICAL_NAN_F32, 1.0f32.to_bits(), CANONICAL_NAN_F32, CANONICAL_NAN_F32];
        match &back.data {
            TensorData::F32(v) => assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want),
            d => panic!("{d:?}"),
        }
        let t64 = Tensor { shape: vec![2], data: TensorData::F64(vec![f64::from_bits(0xfff8_0000_0000_0001), 2.0]) };
        let enc64 = t64.encode();
        assert_eq!(enc64[enc64.len() - 16..enc64.len() - 8], CANONICAL_NAN_F64.to_le_bytes());
        // Hand-made bytes with another NaN are refused: one encoding per tensor.
        for bits in [0xffc0_0000u32, 0x7fc0_0001, 0x7f80_0001] {
            let mut b = vec![1u8];
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&1u64.to_le_bytes());
            b.extend_from_slice(&bits.to_le_bytes());
            let e = Tensor::decode_from(&mut b.as_slice()).unwrap_err();
            assert!(e.to_string().contains("canonical quiet NaN"), "{e}");
        }
        let mut b = vec![11u8];
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&0xfff8_0000_0000_0000u64.to_le_bytes());
        assert!(Tensor::decode_from(&mut b.as_slice()).is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(data in proptest::collection::vec(any::<i64>(), 0..50), name in "[a-z]{1,8}") {
            let t = Tensor::new(vec![data.len()], TensorData::I64(data)).unwrap();
            let mut s = TensorSet::default();
            s.0.insert(name, t);
            let enc = s.encode();
            prop_assert_eq!(TensorSet::decode(&enc).unwrap(), s);
        }
    }
}

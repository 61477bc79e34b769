//! NumPy `.npy` files (format versions 1.0–3.0, C order, little-endian) to and from
//! [`Tensor`]s.

use crate::{DType, Error, Tensor, TensorData};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Longest `.npy` header accepted.
pub const NPY_HEADER_BYTES_MAX: usize = 64 * 1024;

fn descr(d: DType) -> &'static str {
    match d {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::U8 => "|u1",
        DType::I8 => "|i1",
        DType::U16 => "<u2",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
    }
}

/// Encodes a tensor as a version 1.0 `.npy` file.
pub fn encode(t: &Tensor) -> Vec<u8> {
    let shape = match t.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", t.shape[0]),
        _ => format!("({})", t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", descr(t.dtype()));
    // Pad so that the data starts on a 64-byte boundary, header ends with '\n'.
    let total = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.data.len() * t.dtype().size());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    t.data.write_le(&mut out);
    out
}

/// Decodes a `.npy` file.
pub fn decode(bytes: &[u8]) -> Result<Tensor, Error> {
    let bad = |m: &str| Error::Tensor(format!("not a readable .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing \\x93NUMPY magic"));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header"));
            }
            (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12)
        }
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    if hlen > NPY_HEADER_BYTES_MAX || bytes.len() < hstart + hlen {
        return Err(bad("header length out of range"));
    }
    let header = std::str::from_utf8(&bytes[hstart..hstart + hlen]).map_err(|_| bad("header is not text"))?;
    let field = |key: &str| -> Result<&str, Error> {
        let at = header.find(&format!("'{key}'")).ok_or_else(|| bad(&format!("header lacks '{key}'")))?;
        let rest = &header[at + key.len() + 2..];
        let colon = rest.find(':').ok_or_else(|| bad("malformed header"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let d = field("descr")?;
    let d = d.strip_prefix('\'').and_then(|s| s.split('\'').next()).ok_or_else(|| bad("malformed descr"))?;
    let dtype = DType::ALL
        .into_iter()
        .find(|&t| descr(t) == d || descr(t).replace('|', "<") == d || descr(t).replace('<', "|") == d)
        .ok_or_else(|| bad(&format!("unsupported dtype '{d}' (big-endian and object arrays are not supported)")))?;
    if field("fortran_order")?.starts_with("True") {
        return Err(bad("Fortran-order arrays are not supported; save with np.ascontiguousarray"));
    }
    let s = field("shape")?;
    let s = s.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| bad("malformed shape"))?;
    let shape = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse::<usize>().map_err(|_| bad("malformed shape")))
        .collect::<Result<Vec<_>, _>>()?;
    if shape.len() > crate::tensor::TENSOR_RANK_MAX {
        return Err(bad("rank over the limit"));
    }
    let n = crate::tensor::element_count(&shape)
        .filter(|&n| n <= crate::tensor::TENSOR_ELEMENTS_MAX)
        .ok_or_else(|| bad("too many elements"))?;
    let body = &bytes[hstart + hlen..];
    if body.len() != n * dtype.size() {
        return Err(bad(&format!("shape {shape:?} needs {} data bytes, file has {}", n * dtype.size(), body.len())));
    }
    Tensor::new(shape, TensorData::from_le(dtype, body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for t in [
            Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            Tensor::new(vec![], TensorData::I64(vec![7])).unwrap(),
            Tensor::new(vec![3], TensorData::Bool(vec![true, false, true])).unwrap(),
        ] {
            let b = encode(&t);
            assert_eq!((b.len() - t.data.len() * t.dtype().size()) % 64, 0);
            assert_eq!(decode(&b).unwrap(), t);
        }
        assert!(decode(b"not npy").is_err());
    }
}

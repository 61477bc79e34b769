//! Trace hashing without building the encoding: BLAKE3 over the concatenated canonical
//! encodings ([`Tensor::encode_into`]) of a node's outputs, fed to the hasher in pieces.
//!
//! A float32 tensor's data is converted to little-endian bytes in cache-sized chunks and
//! hashed as it goes, instead of being copied whole into one buffer first; the digest is
//! the same (BLAKE3 is a function of the byte stream, not of how it is split).

use deed_types::{Hash32, Tensor, TensorData};

/// Floats converted per chunk (64 KiB of bytes: enough for BLAKE3's widest SIMD batches).
const CHUNK_FLOATS: usize = 16 * 1024;

/// `Hash32::of(enc(t1) ‖ enc(t2) ‖ …)`; `scratch` is reused between calls.
pub(crate) fn hash_encodings<'a>(tensors: impl Iterator<Item = &'a Tensor>, scratch: &mut Vec<u8>) -> Hash32 {
    let mut h = blake3::Hasher::new();
    for t in tensors {
        match &t.data {
            TensorData::F32(v) => {
                scratch.clear();
                scratch.push(t.dtype().code());
                scratch.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
                for &d in &t.shape {
                    scratch.extend_from_slice(&(d as u64).to_le_bytes());
                }
                h.update(scratch);
                for chunk in v.chunks(CHUNK_FLOATS) {
                    scratch.clear();
                    scratch.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                    h.update(scratch);
                }
            }
            _ => {
                scratch.clear();
                t.encode_into(scratch);
                h.update(scratch);
            }
        }
    }
    Hash32(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_digest_as_the_encoding() {
        let big = Tensor::f32(vec![3, CHUNK_FLOATS + 7], (0..3 * (CHUNK_FLOATS + 7)).map(|i| i as f32 * 0.5).collect());
        let small = Tensor::f32(vec![], vec![-0.0]);
        let ints = Tensor { shape: vec![2], data: TensorData::I64(vec![1, -2]) };
        let mut scratch = Vec::new();
        for set in [vec![], vec![&big], vec![&small, &ints, &big], vec![&ints]] {
            let mut enc = Vec::new();
            for t in &set {
                t.encode_into(&mut enc);
            }
            assert_eq!(hash_encodings(set.into_iter(), &mut scratch), Hash32::of(&enc));
        }
    }
}

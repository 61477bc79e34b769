//! Trace hashing without building the encoding: BLAKE3 over the concatenated canonical
//! encodings ([`Tensor::encode_into`]) of a node's outputs, fed to the hasher in pieces.
//!
//! A float32 tensor's data is converted to little-endian bytes in cache-sized chunks and
//! hashed as it goes, instead of being copied whole into one buffer first. With two or
//! more threads and a large output, the byte stream is split where BLAKE3's tree splits
//! it (`hazmat::left_subtree_len`), the two subtrees are hashed on two threads and merged
//! into the root. The digest is the same in every case: BLAKE3 is a function of the byte
//! stream, not of how it is fed.

use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_root};
use deed_types::{Hash32, Tensor, TensorData};

/// Floats converted per chunk (64 KiB of bytes: enough for BLAKE3's widest SIMD batches).
const CHUNK_FLOATS: usize = 16 * 1024;
/// Streams shorter than this are hashed on one thread.
const PAR_MIN_BYTES: u64 = 1 << 20;

/// One piece of the logical byte stream.
enum Seg<'a> {
    Bytes(Vec<u8>),
    F32(&'a [f32]),
}

impl Seg<'_> {
    fn len(&self) -> u64 {
        match self {
            Seg::Bytes(b) => b.len() as u64,
            Seg::F32(v) => 4 * v.len() as u64,
        }
    }
}

/// `Hash32::of(enc(t1) ‖ enc(t2) ‖ …)`, on up to two of `threads`.
pub(crate) fn hash_encodings<'a>(tensors: impl Iterator<Item = &'a Tensor>, threads: usize) -> Hash32 {
    let mut segs = Vec::new();
    for t in tensors {
        match &t.data {
            TensorData::F32(v) => {
                let mut head = Vec::with_capacity(5 + 8 * t.shape.len());
                head.push(t.dtype().code());
                head.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
                for &d in &t.shape {
                    head.extend_from_slice(&(d as u64).to_le_bytes());
                }
                segs.push(Seg::Bytes(head));
                segs.push(Seg::F32(v));
            }
            _ => {
                let mut enc = Vec::new();
                t.encode_into(&mut enc);
                segs.push(Seg::Bytes(enc));
            }
        }
    }
    let total: u64 = segs.iter().map(Seg::len).sum();
    if threads < 2 || total < PAR_MIN_BYTES {
        let mut h = blake3::Hasher::new();
        feed(&mut h, &segs, 0, total);
        return Hash32(*h.finalize().as_bytes());
    }
    let split = left_subtree_len(total);
    let halves = crate::pool::map(vec![(0, split), (split, total)], |(from, to)| {
        let mut h = blake3::Hasher::new();
        h.set_input_offset(from);
        feed(&mut h, &segs, from, to);
        h.finalize_non_root()
    });
    Hash32(*merge_subtrees_root(&halves[0], &halves[1], Mode::Hash).as_bytes())
}

/// Feeds bytes `[from, to)` of the stream `segs` into `h`.
fn feed(h: &mut blake3::Hasher, segs: &[Seg<'_>], from: u64, to: u64) {
    let mut buf: Vec<u8> = Vec::with_capacity(4 * CHUNK_FLOATS + 8);
    let mut pos = 0u64;
    for seg in segs {
        let (s, e) = (pos, pos + seg.len());
        pos = e;
        let (a, b) = (from.max(s), to.min(e));
        if a >= b {
            continue;
        }
        let (a, b) = ((a - s) as usize, (b - s) as usize);
        match seg {
            Seg::Bytes(v) => {
                h.update(&v[a..b]);
            }
            Seg::F32(v) => {
                // Elements covering bytes [a, b), converted a chunk at a time.
                let (first, last) = (a / 4, b.div_ceil(4));
                let mut i = first;
                while i < last {
                    let j = (i + CHUNK_FLOATS).min(last);
                    // Fixed 4-byte stores into a sized buffer compile to a plain copy on
                    // little-endian targets (extending through `flat_map` did not).
                    buf.resize(4 * (j - i), 0);
                    for (d, x) in buf.chunks_exact_mut(4).zip(&v[i..j]) {
                        d.copy_from_slice(&x.to_le_bytes());
                    }
                    let lo = if i == first { a - 4 * first } else { 0 };
                    let hi = if j == last { b - 4 * i } else { buf.len() };
                    h.update(&buf[lo..hi]);
                    i = j;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_digest_as_the_encoding() {
        let n = 3 * (CHUNK_FLOATS + 7);
        let big = Tensor::f32(vec![3, CHUNK_FLOATS + 7], (0..n).map(|i| i as f32 * 0.5).collect());
        let huge = Tensor::f32(vec![300_001], (0..300_001).map(|i| i as f32 - 7.25).collect());
        let small = Tensor::f32(vec![], vec![-0.0]);
        let ints = Tensor { shape: vec![2], data: TensorData::I64(vec![1, -2]) };
        for set in [vec![], vec![&big], vec![&small, &ints, &big], vec![&ints], vec![&huge], vec![&small, &huge, &big]]
        {
            let mut enc = Vec::new();
            for t in &set {
                t.encode_into(&mut enc);
            }
            for threads in [1, 2, 4] {
                assert_eq!(hash_encodings(set.iter().copied(), threads), Hash32::of(&enc), "threads {threads}");
            }
        }
    }
}

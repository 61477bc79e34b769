//! Trace hashing without building the encoding: BLAKE3 over the concatenated canonical
//! encodings ([`Tensor::encode_into`]) of a node's outputs, fed to the hasher in pieces.
//! Like the encoding, it hashes every NaN as the canonical quiet NaN.
//!
//! A float32 tensor's data is converted to little-endian bytes in cache-sized chunks and
//! hashed as it goes, instead of being copied whole into one buffer first. With two or
//! more threads and a large output, the byte stream is split where BLAKE3's tree splits
//! it (`hazmat::left_subtree_len`), the two subtrees are hashed on two threads and merged
//! into the root. The digest is the same in every case: BLAKE3 is a function of the byte
//! stream, not of how it is fed.

use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_root};
use deed_types::tensor::canonical_f32;
use deed_types::{Hash32, Tensor, TensorData};

/// Floats per hashed piece (see [`STAGE`]).
const CHUNK_FLOATS: usize = 16 * 1024;
/// Streams shorter than this are hashed on one thread.
const PAR_MIN_BYTES: u64 = 1 << 18;

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
    let mut st = Stage { h, buf: Vec::with_capacity(STAGE + 4) };
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
            Seg::Bytes(v) => st.bytes(&v[a..b]),
            Seg::F32(v) => {
                // Bytes [a, b) of the data: a partial first element, whole elements, a
                // partial last element.
                let (first, last) = (a.div_ceil(4), b / 4);
                if first > last {
                    // Inside one element.
                    st.bytes(&canonical_f32(v[a / 4]).to_le_bytes()[a % 4..b - 4 * (a / 4)]);
                    continue;
                }
                if a % 4 != 0 {
                    st.bytes(&canonical_f32(v[a / 4]).to_le_bytes()[a % 4..]);
                }
                st.floats(&v[first..last]);
                if b % 4 != 0 {
                    st.bytes(&canonical_f32(v[last]).to_le_bytes()[..b % 4]);
                }
            }
        }
    }
    st.h.update(&st.buf);
}

/// Bytes `[p0, p1)` of the little-endian encoding of `v`, every NaN canonical: borrowed
/// from `v` when the floats they overlap hold no NaN (the usual case; the check reads
/// what BLAKE3 is about to read anyway), else a canonicalized copy.
#[cfg(target_endian = "little")]
fn canonical_bytes(v: &[f32], p0: usize, p1: usize) -> std::borrow::Cow<'_, [u8]> {
    let (i0, i1) = (p0 / 4, p1.div_ceil(4));
    let raw: &[u8] = bytemuck::cast_slice(v);
    if !crate::kernels::has_nan(&v[i0..i1]) {
        return std::borrow::Cow::Borrowed(&raw[p0..p1]);
    }
    let c: Vec<u8> = v[i0..i1].iter().flat_map(|x| canonical_f32(*x).to_le_bytes()).collect();
    std::borrow::Cow::Owned(c[p0 - 4 * i0..p1 - 4 * i0].to_vec())
}

/// Bytes handed to BLAKE3 per `update` (64 KiB: enough for its widest SIMD batches).
const STAGE: usize = 4 * CHUNK_FLOATS;

/// Collects the stream into `STAGE`-byte pieces before hashing them. The pieces start at
/// multiples of `STAGE` from the start of the hashed range (0, or a BLAKE3 subtree
/// boundary, itself a multiple of `STAGE` for the ranges split off), so each `update` is a
/// whole, aligned 64-chunk subtree and BLAKE3 hashes all of it with its many-chunk SIMD
/// code. Feeding each tensor's data where it started (after a few header bytes) left
/// every update straddling chunk boundaries, and a part of each went through the
/// one-chunk path.
struct Stage<'h> {
    h: &'h mut blake3::Hasher,
    buf: Vec<u8>,
}

impl Stage<'_> {
    /// Hashes the first `STAGE` bytes once there are that many, keeping the rest (< 4).
    fn flush_full(&mut self) {
        if self.buf.len() >= STAGE {
            self.h.update(&self.buf[..STAGE]);
            self.buf.drain(..STAGE);
        }
    }

    fn bytes(&mut self, mut v: &[u8]) {
        while !v.is_empty() {
            let take = (STAGE - self.buf.len()).min(v.len());
            self.buf.extend_from_slice(&v[..take]);
            v = &v[take..];
            self.flush_full();
        }
    }

    /// The little-endian bytes of `v`. On a little-endian machine those are the floats'
    /// own bytes: whatever does not fill the staged piece is hashed in place, in whole
    /// `STAGE` pieces that start where the staged ones would have.
    fn floats(&mut self, v: &[f32]) {
        #[cfg(target_endian = "little")]
        {
            let n = 4 * v.len();
            // Top up the staged piece (or skip when it is empty: we are then aligned).
            let head = if self.buf.is_empty() { 0 } else { (STAGE - self.buf.len()).min(n) };
            self.bytes(&canonical_bytes(v, 0, head));
            let whole_end = head + (n - head) / STAGE * STAGE;
            // `buf` is empty here: either it was, or the top-up flushed it.
            debug_assert!(head == whole_end || self.buf.is_empty());
            for p in (head..whole_end).step_by(STAGE) {
                self.h.update(&canonical_bytes(v, p, p + STAGE));
            }
            self.bytes(&canonical_bytes(v, whole_end, n));
        }
        #[cfg(not(target_endian = "little"))]
        self.floats_converted(v);
    }

    /// The little-endian bytes of `v`, converted into the buffer.
    #[cfg(not(target_endian = "little"))]
    fn floats_converted(&mut self, v: &[f32]) {
        let mut i = 0;
        while i < v.len() {
            // Enough floats to reach `STAGE` bytes (at least one: `buf` is below `STAGE`).
            let j = (i + (STAGE - self.buf.len()).div_ceil(4)).min(v.len());
            let old = self.buf.len();
            // Fixed 4-byte stores into a sized buffer compile to a plain copy on
            // little-endian targets.
            self.buf.resize(old + 4 * (j - i), 0);
            for (d, x) in self.buf[old..].chunks_exact_mut(4).zip(&v[i..j]) {
                d.copy_from_slice(&canonical_f32(*x).to_le_bytes());
            }
            i = j;
            self.flush_full();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeding_in_two_ranges_is_feeding_all() {
        // Cut points inside headers, inside elements and on element edges.
        let v: Vec<f32> = (0..3 * CHUNK_FLOATS + 5).map(|i| i as f32 * 0.25 - 3.0).collect();
        let segs = [Seg::Bytes(vec![1, 2, 3]), Seg::F32(&v), Seg::Bytes(vec![9; 7]), Seg::F32(&v[..3])];
        let total: u64 = segs.iter().map(Seg::len).sum();
        let mut whole = blake3::Hasher::new();
        feed(&mut whole, &segs, 0, total);
        let want = whole.finalize();
        for cut in [0, 1, 3, 4, 5, 6, 7, 8, 65_536, 65_539, total - 13, total - 14, total - 1, total] {
            let mut h = blake3::Hasher::new();
            feed(&mut h, &segs, 0, cut);
            feed(&mut h, &segs, cut, total);
            assert_eq!(h.finalize(), want, "cut at {cut}");
        }
        let mut enc = vec![1, 2, 3];
        enc.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        enc.extend([9; 7]);
        enc.extend(v[..3].iter().flat_map(|x| x.to_le_bytes()));
        assert_eq!(want, blake3::hash(&enc));
    }

    #[test]
    fn nan_payloads_hash_as_the_canonical_nan() {
        // NaNs of other signs and payloads, in the staged head, the in-place pieces and the
        // tail, on one and two threads: the digest is the canonical encoding's.
        let n = 3 * CHUNK_FLOATS + 11;
        let odd = [f32::from_bits(0xffc0_0000), f32::from_bits(0x7fc0_0001), f32::from_bits(0x7f80_0001)];
        let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
        for (j, &i) in [0, 1, 5, CHUNK_FLOATS - 1, CHUNK_FLOATS, 2 * CHUNK_FLOATS + 3, n - 1].iter().enumerate() {
            v[i] = odd[j % odd.len()];
        }
        let odd_t = Tensor::f32(vec![n], v.clone());
        let canon_t = Tensor::f32(vec![n], v.iter().map(|&x| canonical_f32(x)).collect());
        let small = Tensor::f32(vec![3], vec![odd[0], 1.0, odd[1]]);
        let mut enc = Vec::new();
        small.encode_into(&mut enc);
        canon_t.encode_into(&mut enc);
        for threads in [1, 2] {
            assert_eq!(hash_encodings([&small, &odd_t].into_iter(), threads), Hash32::of(&enc), "threads {threads}");
        }
        // The encoding itself writes the canonical NaN.
        assert_eq!(odd_t.encode(), canon_t.encode());
    }

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

/// Nodes per trace segment: the trace has one entry per run of this many nodes in
/// execution order (the last run may be shorter). Part of the spec ([`crate::SPEC_VERSION`]).
pub const TRACE_SEGMENT_OPS: usize = 32;

/// One trace entry's share of the graph, fixed at load.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    /// Execution positions of its nodes.
    pub nodes: std::ops::Range<usize>,
    /// The values it commits to: those its nodes produce that a later segment reads or
    /// that are graph outputs, by (node position, output position).
    pub exports: Vec<usize>,
    /// The values its nodes read that neither they produce nor the model stores (graph
    /// inputs and earlier segments' exports), in order of first read.
    pub reads: Vec<usize>,
}

/// Cuts `nodes` (in execution order) into segments of [`TRACE_SEGMENT_OPS`] and finds
/// what each one commits to and reads. `is_const(slot)`: a weight or initializer.
pub(crate) fn plan_segments(
    nodes: &[crate::model::Node],
    output_ids: &[usize],
    slots: usize,
    is_const: impl Fn(usize) -> bool,
) -> Vec<Segment> {
    let seg_of = |pos: usize| pos / TRACE_SEGMENT_OPS;
    // The segment that produces each slot (None: graph input or weight).
    let mut producer = vec![None; slots];
    for (pos, n) in nodes.iter().enumerate() {
        for &o in n.outputs.iter().flatten() {
            producer[o] = Some(seg_of(pos));
        }
    }
    let mut exported = vec![false; slots];
    for &o in output_ids {
        exported[o] = producer[o].is_some();
    }
    for (pos, n) in nodes.iter().enumerate() {
        for &i in n.inputs.iter().flatten() {
            if producer[i].is_some_and(|s| s < seg_of(pos)) {
                exported[i] = true;
            }
        }
    }
    let mut segments = Vec::with_capacity(nodes.len().div_ceil(TRACE_SEGMENT_OPS));
    for start in (0..nodes.len()).step_by(TRACE_SEGMENT_OPS) {
        let range = start..(start + TRACE_SEGMENT_OPS).min(nodes.len());
        let here = &nodes[range.clone()];
        let exports = here.iter().flat_map(|n| n.outputs.iter().flatten().copied()).filter(|&o| exported[o]).collect();
        let mut reads = Vec::new();
        for &i in here.iter().flat_map(|n| n.inputs.iter().flatten()) {
            let inside = producer[i] == Some(seg_of(start));
            if !inside && !is_const(i) && !reads.contains(&i) {
                reads.push(i);
            }
        }
        segments.push(Segment { nodes: range, exports, reads });
    }
    segments
}

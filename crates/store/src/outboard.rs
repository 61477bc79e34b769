//! BLAKE3 verified streaming: the outboard of a blob and checks against it.
//!
//! A blob's content is cut into groups of [`GROUP_BYTES`] (16 chunks of 1 KiB, the last
//! group possibly short). The outboard is the list of the groups' BLAKE3 chaining values
//! (32 bytes each, 0.2 % of the content). BLAKE3's tree over the whole content is
//! left-complete, so merging those chaining values pairwise left to right (an odd one
//! carried up) rebuilds exactly the tree the plain hash builds: the root is the content's
//! BLAKE3 hash, which is the CID's digest. So a reader:
//!
//! 1. checks once that the stored chaining values merge to the CID (a corrupt outboard
//!    is caught here), then
//! 2. hashes each group it reads and compares it with its chaining value, before any
//!    byte of that group is handed out.
//!
//! A range read therefore hashes only the groups it touches (plus one pass over the
//! outboard), and a corrupt byte anywhere in a touched group is never served. A blob of
//! one group has no outboard: its content hash is checked directly. This is the bao
//! scheme with a chunk-group size of 16 KiB, built on `blake3::hazmat` (no extra crate);
//! a peer can serve the same outboard next to the content for verified downloads.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
use deed_types::Hash32;

/// Bytes per verified group: 16 BLAKE3 chunks.
pub const GROUP_BYTES: u64 = 16 * 1024;

/// Number of groups for a blob of `size` bytes (0 for the empty blob).
pub fn group_count(size: u64) -> u64 {
    size.div_ceil(GROUP_BYTES)
}

/// The chaining value of group `index` (its bytes are `data`). Only valid when the blob
/// has more than one group.
pub fn group_cv(index: u64, data: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(index * GROUP_BYTES);
    h.update(data);
    h.finalize_non_root()
}

/// Merges leaf chaining values into the root hash, left to right, odd ones carried up
/// (BLAKE3's left-complete tree). Needs at least two leaves.
pub fn root_of(leaves: &[ChainingValue]) -> Hash32 {
    assert!(leaves.len() >= 2, "a one-group blob has no outboard");
    let mut stack: Vec<ChainingValue> = Vec::with_capacity(64);
    for (i, cv) in leaves.iter().enumerate() {
        push(&mut stack, *cv, i as u64);
    }
    finish(stack)
}

/// Adds the `index`-th leaf to a merge stack (lazy merging, as BLAKE3's own hasher does:
/// a subtree is only merged once it is known not to be the root).
pub fn push(stack: &mut Vec<ChainingValue>, cv: ChainingValue, index: u64) {
    while stack.len() > index.count_ones() as usize {
        let right = stack.pop().expect("stack holds a right child");
        let left = stack.pop().expect("stack holds a left child");
        stack.push(merge_subtrees_non_root(&left, &right, Mode::Hash));
    }
    stack.push(cv);
}

/// Merges what is left on the stack into the root.
pub fn finish(mut stack: Vec<ChainingValue>) -> Hash32 {
    assert!(stack.len() >= 2);
    while stack.len() > 2 {
        let right = stack.pop().expect("right");
        let left = stack.pop().expect("left");
        stack.push(merge_subtrees_non_root(&left, &right, Mode::Hash));
    }
    Hash32(*merge_subtrees_root(&stack[0], &stack[1], Mode::Hash).as_bytes())
}

/// The chaining value of a whole subtree from its leaves, left to right: like
/// [`root_of`] but the top merge is a non-root one, so the result can be merged further
/// up. One leaf is its own subtree.
pub fn subtree_cv(leaves: &[ChainingValue]) -> ChainingValue {
    assert!(!leaves.is_empty(), "a subtree has at least one leaf");
    let mut stack: Vec<ChainingValue> = Vec::with_capacity(64);
    for (i, cv) in leaves.iter().enumerate() {
        push(&mut stack, *cv, i as u64);
    }
    while stack.len() > 1 {
        let right = stack.pop().expect("right");
        let left = stack.pop().expect("left");
        stack.push(merge_subtrees_non_root(&left, &right, Mode::Hash));
    }
    stack[0]
}

/// The chaining value of the `index`-th span of `span_bytes` bytes (a power of two, at
/// least [`GROUP_BYTES`]) of a blob of more than one span: `data` is that span's bytes
/// (the last one may be short). An aligned span of a power-of-two number of BLAKE3 chunks
/// is one subtree of the blob's hash tree, and so is the short last one, so these values
/// merge with [`root_of`] to the blob's hash. Peers use them to verify pieces of a blob
/// one at a time.
pub fn span_cv(index: u64, span_bytes: u64, data: &[u8]) -> ChainingValue {
    assert!(span_bytes.is_power_of_two() && span_bytes >= GROUP_BYTES);
    let mut h = blake3::Hasher::new();
    h.set_input_offset(index * span_bytes);
    h.update(data);
    h.finalize_non_root()
}

/// The chaining values of the spans of `span_bytes` (a power of two, at least
/// [`GROUP_BYTES`]) of a blob of `size` bytes, from its outboard (group chaining values):
/// each span merges its groups. Needs a blob of more than one span.
pub fn span_cvs(outboard: &[ChainingValue], size: u64, span_bytes: u64) -> Vec<ChainingValue> {
    assert!(span_bytes.is_power_of_two() && span_bytes >= GROUP_BYTES);
    assert!(size > span_bytes, "a blob of one span has no span list");
    assert_eq!(outboard.len() as u64, group_count(size), "an outboard has one value per group");
    let per = (span_bytes / GROUP_BYTES) as usize;
    outboard.chunks(per).map(subtree_cv).collect()
}

/// Streams content in, producing the outboard and the root hash in constant memory
/// (apart from the outboard itself, 32 bytes per 16 KiB).
pub struct OutboardBuilder {
    group: blake3::Hasher,
    group_len: u64,
    index: u64,
    leaves: Vec<ChainingValue>,
    stack: Vec<ChainingValue>,
}

impl Default for OutboardBuilder {
    fn default() -> Self {
        OutboardBuilder { group: blake3::Hasher::new(), group_len: 0, index: 0, leaves: vec![], stack: vec![] }
    }
}

impl OutboardBuilder {
    /// Feeds the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.group_len == GROUP_BYTES {
                self.close_group();
            }
            let take = ((GROUP_BYTES - self.group_len) as usize).min(data.len());
            self.group.update(&data[..take]);
            self.group_len += take as u64;
            data = &data[take..];
        }
    }

    fn close_group(&mut self) {
        let cv = self.group.finalize_non_root();
        push(&mut self.stack, cv, self.index);
        self.leaves.push(cv);
        self.index += 1;
        self.group = blake3::Hasher::new();
        self.group.set_input_offset(self.index * GROUP_BYTES);
        self.group_len = 0;
    }

    /// The root hash (the content's BLAKE3) and the outboard (empty for ≤ 1 group).
    pub fn finish(mut self) -> (Hash32, Vec<ChainingValue>) {
        if self.index == 0 {
            // Zero or one group: the group hasher started at offset 0 and is the whole tree.
            return (Hash32(*self.group.finalize().as_bytes()), vec![]);
        }
        if self.group_len > 0 {
            self.close_group();
        }
        (finish(self.stack), self.leaves)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_values_merge_to_the_root_and_match_the_bytes() {
        let span = GROUP_BYTES * 4;
        let data: Vec<u8> = (0..(span * 5 + 3 * GROUP_BYTES + 99)).map(|i| (i * 7 % 253) as u8).collect();
        for len in [span + 1, span * 2, span * 2 + 5, span * 3 + GROUP_BYTES, span * 5 + 3 * GROUP_BYTES + 99] {
            let d = &data[..len as usize];
            let mut b = OutboardBuilder::default();
            b.update(d);
            let (root, leaves) = b.finish();
            let spans = span_cvs(&leaves, len, span);
            assert_eq!(spans.len() as u64, len.div_ceil(span));
            assert_eq!(root_of(&spans), root, "len {len}");
            for (i, piece) in d.chunks(span as usize).enumerate() {
                assert_eq!(span_cv(i as u64, span, piece), spans[i], "len {len} span {i}");
            }
            // A span's bytes checked at another index do not match.
            assert_ne!(span_cv(1, span, &d[..span as usize]), spans[0]);
        }
    }

    #[test]
    fn root_equals_plain_blake3_for_every_shape() {
        let data: Vec<u8> = (0..(GROUP_BYTES * 9 + 77)).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 1024, GROUP_BYTES - 1, GROUP_BYTES, GROUP_BYTES + 1, GROUP_BYTES * 2, GROUP_BYTES * 3 + 5]
            .into_iter()
            .chain((4..=9).map(|g| g * GROUP_BYTES + 77))
        {
            let d = &data[..len as usize];
            let mut b = OutboardBuilder::default();
            for piece in d.chunks(5000) {
                b.update(piece);
            }
            let (root, leaves) = b.finish();
            assert_eq!(root, Hash32::of(d), "len {len}");
            assert_eq!(leaves.len() as u64, if group_count(len) > 1 { group_count(len) } else { 0 });
            if leaves.len() > 1 {
                assert_eq!(root_of(&leaves), root);
                for (i, g) in d.chunks(GROUP_BYTES as usize).enumerate() {
                    assert_eq!(group_cv(i as u64, g), leaves[i]);
                }
            }
        }
    }
}

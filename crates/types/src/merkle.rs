//! Binary Merkle roots over ordered lists of digests (trace commitments, block
//! transaction roots), and inclusion proofs for them.
//!
//! Leaf = BLAKE3(0x00 ‖ item), inner = BLAKE3(0x01 ‖ left ‖ right); a node without a
//! sibling is carried up unchanged. The root of the empty list is all zeros.

use crate::Hash32;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

fn leaf(item: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(&item.0);
    h.finalize().into()
}

fn inner(l: &Hash32, r: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(&l.0);
    h.update(&r.0);
    h.finalize().into()
}

/// The Merkle root of `items` in order.
pub fn root(items: &[Hash32]) -> Hash32 {
    if items.is_empty() {
        return Hash32::ZERO;
    }
    let mut level: Vec<Hash32> = items.iter().map(leaf).collect();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| if p.len() == 2 { inner(&p[0], &p[1]) } else { p[0] }).collect();
    }
    level[0]
}

/// One step of an inclusion proof: the sibling digest and whether it sits on the left.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ProofStep {
    /// The sibling's digest.
    pub sibling: Hash32,
    /// True when the sibling is the left child.
    pub left: bool,
}

/// The inclusion proof of `items[index]`.
pub fn prove(items: &[Hash32], index: usize) -> Vec<ProofStep> {
    assert!(index < items.len(), "proof index out of range");
    let mut level: Vec<Hash32> = items.iter().map(leaf).collect();
    let mut idx = index;
    let mut steps = Vec::new();
    while level.len() > 1 {
        let sib = idx ^ 1;
        if sib < level.len() {
            steps.push(ProofStep { sibling: level[sib], left: sib < idx });
        }
        level = level.chunks(2).map(|p| if p.len() == 2 { inner(&p[0], &p[1]) } else { p[0] }).collect();
        idx /= 2;
    }
    steps
}

/// Checks that `item` is included under `root` by `proof`.
pub fn verify(root: &Hash32, item: &Hash32, proof: &[ProofStep]) -> bool {
    let mut acc = leaf(item);
    for s in proof {
        acc = if s.left { inner(&s.sibling, &acc) } else { inner(&acc, &s.sibling) };
    }
    &acc == root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_single() {
        assert_eq!(root(&[]), Hash32::ZERO);
        let a = Hash32::of(b"a");
        assert_eq!(root(&[a]), leaf(&a));
        assert_ne!(root(&[a]), a, "a leaf must not equal its item");
    }

    proptest! {
        #[test]
        fn proofs_verify(n in 1usize..40, seed in any::<u64>()) {
            let items: Vec<Hash32> = (0..n).map(|i| Hash32::of(&(seed ^ i as u64).to_le_bytes())).collect();
            let r = root(&items);
            for i in 0..n {
                let p = prove(&items, i);
                prop_assert!(verify(&r, &items[i], &p));
                let other = Hash32::of(b"other");
                prop_assert!(!verify(&r, &other, &p));
            }
        }
    }
}

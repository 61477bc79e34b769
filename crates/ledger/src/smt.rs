//! The authenticated state map: a binary sparse Merkle tree over BLAKE3 key hashes,
//! stored inside the state it authenticates (under [`TREE_PREFIX`]) and updated
//! incrementally, once per block, from the block's [`WriteSet`].
//!
//! # Shape
//!
//! Each state entry `(key, value)` is a leaf at the 256-bit path `key_hash(key)`. A
//! subtree holding no leaf is *empty* (hash all zeros); a subtree holding exactly one
//! leaf is that leaf, lifted to the highest position where it is alone; a subtree with
//! two or more leaves is an internal node. So the tree, and its root, depend only on the
//! set of entries, never on the order they were written in.
//!
//! | hash       | definition                                   |
//! |------------|----------------------------------------------|
//! | key hash   | BLAKE3(`02` ‖ key)                           |
//! | value hash | BLAKE3(`03` ‖ value)                         |
//! | leaf       | BLAKE3(`00` ‖ key hash ‖ value hash)         |
//! | internal   | BLAKE3(`01` ‖ left hash ‖ right hash)        |
//! | empty      | 32 zero bytes                                |
//!
//! Bit `i` of a key hash (most significant bit of byte 0 first) picks the child at
//! depth `i`: 0 left, 1 right.
//!
//! # Storage
//!
//! Internal nodes are keyed by position (depth and path prefix), so an update
//! overwrites them in place and nothing needs pruning: `~smt/n/` ‖ depth (u8) ‖ path
//! (32 bytes, bits past the depth zeroed) → left child ‖ right child, each child encoded
//! as `00` (empty), `01` ‖ key hash ‖ value hash (leaf), or `02` ‖ hash (internal).
//! `~smt/root` holds the root child. These keys sort after every state key and are not
//! themselves leaves of the tree.
//!
//! # Proofs
//!
//! [`prove`] walks from the root towards `key_hash(key)` and returns the sibling hashes
//! and what the walk ends in: nothing (the key is absent), the key's own leaf (present),
//! or another key's leaf that sits where the key would be (absent). [`verify_proof`]
//! checks either answer against a root.

use crate::state::{StateRead, WriteSet};
use deed_types::Hash32;
use serde::{Deserialize, Serialize};

/// Prefix of the tree's own records in the state map; no state key starts with it.
pub const TREE_PREFIX: &[u8] = b"~smt/";
const ROOT_KEY: &[u8] = b"~smt/root";
const NODE_PREFIX: &[u8] = b"~smt/n/";
/// Deepest possible proof: one sibling per key-hash bit.
pub const PROOF_SIBLINGS_MAX: usize = 256;

fn h2(tag: u8, data: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[tag]);
    h.update(data);
    Hash32(*h.finalize().as_bytes())
}

fn h3(tag: u8, a: &Hash32, b: &Hash32) -> Hash32 {
    let mut buf = [0u8; 65];
    buf[0] = tag;
    buf[1..33].copy_from_slice(&a.0);
    buf[33..].copy_from_slice(&b.0);
    Hash32(*blake3::hash(&buf).as_bytes())
}

/// Where a state key sits in the tree.
pub fn key_hash(key: &[u8]) -> Hash32 {
    h2(2, key)
}

/// The digest of a state value.
pub fn value_hash(value: &[u8]) -> Hash32 {
    h2(3, value)
}

/// The hash of the leaf for a key hash and a value hash.
pub fn leaf_hash(key_hash: &Hash32, value_hash: &Hash32) -> Hash32 {
    h3(0, key_hash, value_hash)
}

fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    h3(1, left, right)
}

fn bit(h: &Hash32, i: usize) -> u8 {
    (h.0[i / 8] >> (7 - i % 8)) & 1
}

/// `h` with every bit at index `depth` or later cleared.
fn mask(h: &Hash32, depth: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    let full = depth / 8;
    out[..full].copy_from_slice(&h.0[..full]);
    if !depth.is_multiple_of(8) {
        out[full] = h.0[full] & (0xffu8 << (8 - depth % 8));
    }
    out
}

fn node_key(depth: usize, path: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(NODE_PREFIX.len() + 33);
    k.extend_from_slice(NODE_PREFIX);
    k.push(u8::try_from(depth).expect("internal nodes sit above depth 256"));
    k.extend_from_slice(path);
    k
}

/// A child slot of an internal node (or the root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Child {
    Empty,
    Leaf { key_hash: Hash32, value_hash: Hash32 },
    Node(Hash32),
}

impl Child {
    fn hash(&self) -> Hash32 {
        match self {
            Child::Empty => Hash32::ZERO,
            Child::Leaf { key_hash, value_hash } => leaf_hash(key_hash, value_hash),
            Child::Node(h) => *h,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Child::Empty => out.push(0),
            Child::Leaf { key_hash, value_hash } => {
                out.push(1);
                out.extend_from_slice(&key_hash.0);
                out.extend_from_slice(&value_hash.0);
            }
            Child::Node(h) => {
                out.push(2);
                out.extend_from_slice(&h.0);
            }
        }
    }

    /// Decodes one child from the front of `b`; a malformed record is a broken invariant.
    fn decode(b: &[u8]) -> (Child, &[u8]) {
        let h = |s: &[u8]| Hash32(s.try_into().expect("32 bytes"));
        match b.first() {
            Some(0) => (Child::Empty, &b[1..]),
            Some(1) if b.len() >= 65 => (Child::Leaf { key_hash: h(&b[1..33]), value_hash: h(&b[33..65]) }, &b[65..]),
            Some(2) if b.len() >= 33 => (Child::Node(h(&b[1..33])), &b[33..]),
            _ => panic!("corrupt state tree record"),
        }
    }
}

fn read_root(state: &(impl StateRead + ?Sized)) -> Option<Child> {
    state.get(ROOT_KEY).map(|b| {
        let (c, rest) = Child::decode(&b);
        assert!(rest.is_empty(), "corrupt state tree root");
        c
    })
}

fn read_node(state: &(impl StateRead + ?Sized), key: &[u8]) -> (Child, Child) {
    let b = state.get(key).unwrap_or_else(|| panic!("state tree node {} is missing", hex_of(key)));
    let (l, rest) = Child::decode(&b);
    let (r, rest) = Child::decode(rest);
    assert!(rest.is_empty(), "corrupt state tree node");
    (l, r)
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One leaf change: the key hash and the new value hash (`None` deletes).
type Update = (Hash32, Option<Hash32>);

struct Updater<'a, S: StateRead + ?Sized> {
    state: &'a S,
    out: WriteSet,
}

impl<S: StateRead + ?Sized> Updater<'_, S> {
    /// Applies `ups` (sorted by key hash, all under this subtree) to `child` at `depth`.
    fn update(&mut self, child: Child, depth: usize, ups: &[Update]) -> Child {
        if ups.is_empty() {
            return child;
        }
        match child {
            Child::Empty => {
                let leaves: Vec<(Hash32, Hash32)> = ups.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
                self.build(depth, &leaves)
            }
            Child::Leaf { key_hash, value_hash } => {
                let mut leaves: Vec<(Hash32, Hash32)> = ups.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
                if ups.binary_search_by(|(k, _)| k.cmp(&key_hash)).is_err() {
                    let at = leaves.partition_point(|(k, _)| *k < key_hash);
                    leaves.insert(at, (key_hash, value_hash));
                }
                self.build(depth, &leaves)
            }
            Child::Node(_) => {
                let key = node_key(depth, &mask(&ups[0].0, depth));
                let (l, r) = read_node(self.state, &key);
                let split = ups.partition_point(|(k, _)| bit(k, depth) == 0);
                let l = self.update(l, depth + 1, &ups[..split]);
                let r = self.update(r, depth + 1, &ups[split..]);
                self.finish(key, l, r)
            }
        }
    }

    /// Stores (or removes) the internal node `key` with children `l`, `r` in canonical form.
    fn finish(&mut self, key: Vec<u8>, l: Child, r: Child) -> Child {
        match (l, r) {
            (Child::Empty, Child::Empty) => {
                self.out.delete(key);
                Child::Empty
            }
            (Child::Empty, leaf @ Child::Leaf { .. }) | (leaf @ Child::Leaf { .. }, Child::Empty) => {
                self.out.delete(key);
                leaf
            }
            _ => {
                let mut v = Vec::with_capacity(130);
                l.encode(&mut v);
                r.encode(&mut v);
                self.out.put(key, v);
                Child::Node(node_hash(&l.hash(), &r.hash()))
            }
        }
    }

    /// The subtree at `depth` holding exactly `leaves` (sorted), with no prior nodes.
    fn build(&mut self, depth: usize, leaves: &[(Hash32, Hash32)]) -> Child {
        match leaves {
            [] => Child::Empty,
            [(k, v)] => Child::Leaf { key_hash: *k, value_hash: *v },
            _ => {
                assert!(depth < 256, "two distinct keys share a 256-bit key hash");
                let split = leaves.partition_point(|(k, _)| bit(k, depth) == 0);
                let l = self.build(depth + 1, &leaves[..split]);
                let r = self.build(depth + 1, &leaves[split..]);
                self.finish(node_key(depth, &mask(&leaves[0].0, depth)), l, r)
            }
        }
    }
}

/// Updates the tree stored in `state` with the state changes in `writes`, appends the
/// tree's own changes to `writes`, and returns the new root.
///
/// Work is proportional to the number of changed keys times the tree depth (about
/// log2 of the number of entries), not to the size of the state.
///
/// Panics if `writes` already touches the tree, or `state` holds entries but no tree.
pub(crate) fn commit(state: &(impl StateRead + ?Sized), writes: &mut WriteSet) -> Hash32 {
    let mut ups: Vec<Update> = writes
        .0
        .iter()
        .map(|(k, v)| {
            assert!(!k.starts_with(TREE_PREFIX), "state writes must not touch the tree's own records");
            (key_hash(k), v.as_deref().map(value_hash))
        })
        .collect();
    ups.sort_unstable_by_key(|u| u.0);
    let root = match read_root(state) {
        Some(r) => r,
        None => {
            assert!(state.scan_prefix_limit(b"", 1).is_empty(), "a non-empty state without its tree");
            Child::Empty
        }
    };
    let mut u = Updater { state, out: WriteSet::default() };
    let root = u.update(root, 0, &ups);
    let mut enc = Vec::with_capacity(65);
    root.encode(&mut enc);
    u.out.put(ROOT_KEY.to_vec(), enc);
    writes.extend(u.out);
    root.hash()
}

/// The root of the tree stored in `state`; if `state` carries no tree (a map assembled by
/// hand), the root of its entries computed from scratch.
pub fn root(state: &(impl StateRead + ?Sized)) -> Hash32 {
    if let Some(r) = read_root(state) {
        return r.hash();
    }
    let mut w = WriteSet::default();
    for (k, v) in state.scan_prefix(b"") {
        if !k.starts_with(TREE_PREFIX) {
            w.put(k, v);
        }
    }
    commit(&crate::MemState::new(), &mut w)
}

/// The leaf a proof's walk ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofLeaf {
    /// The leaf's key hash (the proven key's own, or another key's for a proof of absence).
    pub key_hash: Hash32,
    /// The leaf's value hash.
    pub value_hash: Hash32,
}

/// A proof that a key has a given value, or no value, under a state root.
///
/// JSON: `{"value": "<hex>" | null, "siblings": ["<hex>", ...], "leaf": {"key_hash": "<hex>",
/// "value_hash": "<hex>"} | null}`; siblings run from the root's child downwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateProof {
    /// The value under the key (borsh of the record, see [`crate::keys`]); `None` if absent.
    #[serde(with = "opt_hex")]
    pub value: Option<Vec<u8>>,
    /// Sibling hashes along the key's path, from depth 0 down.
    pub siblings: Vec<Hash32>,
    /// The leaf the walk ends in; `None` if it ends in an empty subtree.
    pub leaf: Option<ProofLeaf>,
}

impl StateProof {
    /// Checks that `key` maps to `self.value` (or to nothing) under `root`.
    pub fn verify(&self, root: &Hash32, key: &[u8]) -> bool {
        verify_proof(root, key, self.value.as_deref(), self)
    }
}

/// Checks that, under `root`, `key` maps to `value` (`None`: the key is absent). Only the
/// proof's `siblings` and `leaf` are used; its `value` field is ignored.
pub fn verify_proof(root: &Hash32, key: &[u8], value: Option<&[u8]>, proof: &StateProof) -> bool {
    if proof.siblings.len() > PROOF_SIBLINGS_MAX {
        return false;
    }
    let kh = key_hash(key);
    let depth = proof.siblings.len();
    let mut acc = match (value, &proof.leaf) {
        (Some(v), Some(l)) => {
            if l.key_hash != kh || l.value_hash != value_hash(v) {
                return false;
            }
            leaf_hash(&l.key_hash, &l.value_hash)
        }
        (Some(_), None) => return false,
        (None, None) => Hash32::ZERO,
        (None, Some(l)) => {
            // Another key's leaf, alone in the subtree the key would be in.
            if l.key_hash == kh || mask(&l.key_hash, depth) != mask(&kh, depth) {
                return false;
            }
            leaf_hash(&l.key_hash, &l.value_hash)
        }
    };
    for (i, sib) in proof.siblings.iter().enumerate().rev() {
        acc = if bit(&kh, i) == 0 { node_hash(&acc, sib) } else { node_hash(sib, &acc) };
    }
    acc == *root
}

/// Proves the value under `key` (or its absence) against [`root`]`(state)`. O(tree depth).
///
/// Panics if `state` holds entries but no tree (a map assembled by hand).
pub fn prove(state: &(impl StateRead + ?Sized), key: &[u8]) -> StateProof {
    let kh = key_hash(key);
    let mut child = read_root(state).unwrap_or_else(|| {
        assert!(state.scan_prefix_limit(b"", 1).is_empty(), "cannot prove against a state without its tree");
        Child::Empty
    });
    let mut siblings = Vec::new();
    let leaf = loop {
        match child {
            Child::Empty => break None,
            Child::Leaf { key_hash, value_hash } => break Some(ProofLeaf { key_hash, value_hash }),
            Child::Node(_) => {
                let depth = siblings.len();
                let (l, r) = read_node(state, &node_key(depth, &mask(&kh, depth)));
                if bit(&kh, depth) == 0 {
                    siblings.push(r.hash());
                    child = l;
                } else {
                    siblings.push(l.hash());
                    child = r;
                }
            }
        }
    };
    StateProof { value: state.get(key), siblings, leaf }
}

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else { return Ok(None) };
        let s = s.trim_start_matches("0x");
        if s.len() % 2 != 0 {
            return Err(D::Error::custom("odd number of hex digits"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| D::Error::custom(format!("bad hex: {e}"))))
            .collect::<Result<Vec<u8>, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemState;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entries_root(m: &BTreeMap<Vec<u8>, Vec<u8>>) -> Hash32 {
        root(&MemState(m.clone()))
    }

    #[test]
    fn empty_and_single() {
        let mut s = MemState::new();
        assert_eq!(root(&s), Hash32::ZERO);
        let mut w = WriteSet::default();
        w.put(b"a".to_vec(), b"1".to_vec());
        let r = commit(&s, &mut w);
        s.apply(&w);
        assert_eq!(r, leaf_hash(&key_hash(b"a"), &value_hash(b"1")));
        assert_eq!(root(&s), r);
        let p = prove(&s, b"a");
        assert!(p.siblings.is_empty() && p.verify(&r, b"a"));
        let absent = prove(&s, b"b");
        assert_eq!(absent.value, None);
        assert!(absent.verify(&r, b"b"));
        assert!(!verify_proof(&r, b"b", Some(b"1"), &absent));
        // Delete back to empty: the tree's records go too, except the root.
        let mut w = WriteSet::default();
        w.delete(b"a".to_vec());
        assert_eq!(commit(&s, &mut w), Hash32::ZERO);
        s.apply(&w);
        assert_eq!(s.0.len(), 1);
        assert!(prove(&s, b"a").verify(&Hash32::ZERO, b"a"));
    }

    #[test]
    fn json_shape() {
        let mut s = MemState::new();
        let mut w = WriteSet::default();
        for i in 0u8..5 {
            w.put(vec![b'k', i], vec![i]);
        }
        let r = commit(&s, &mut w);
        s.apply(&w);
        let p = prove(&s, &[b'k', 3]);
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["value"], "03");
        assert!(j["siblings"].is_array() && j["leaf"]["key_hash"].is_string());
        let back: StateProof = serde_json::from_value(j).unwrap();
        assert!(back.verify(&r, &[b'k', 3]));
        let none: StateProof = serde_json::from_value(serde_json::to_value(prove(&s, b"zz")).unwrap()).unwrap();
        assert!(none.value.is_none() && none.verify(&r, b"zz"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Incremental updates, in any batches, give the same root and the same stored
        /// tree as building from scratch; every key, present or absent, has a verifying
        /// proof, and no proof verifies a wrong answer.
        #[test]
        fn incremental_equals_scratch(
            batches in prop::collection::vec(
                prop::collection::vec((0u16..300, prop::option::of(0u8..4)), 0..40), 1..8),
        ) {
            let mut s = MemState::new();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for batch in batches {
                let mut w = WriteSet::default();
                for (k, v) in batch {
                    let k = k.to_be_bytes().to_vec();
                    match v {
                        Some(v) => { model.insert(k.clone(), vec![v]); w.put(k, vec![v]); }
                        None => { model.remove(&k); w.delete(k); }
                    }
                }
                let r = commit(&s, &mut w);
                s.apply(&w);
                prop_assert_eq!(r, entries_root(&model));
                prop_assert_eq!(root(&s), r);
                // The stored tree equals a tree built in one go.
                let mut fresh = MemState::new();
                let mut w2 = WriteSet::default();
                for (k, v) in &model { w2.put(k.clone(), v.clone()); }
                commit(&fresh, &mut w2);
                fresh.apply(&w2);
                prop_assert_eq!(&fresh, &s);
                for k in (0u16..300).step_by(7) {
                    let k = k.to_be_bytes();
                    let p = prove(&s, &k);
                    prop_assert_eq!(p.value.as_ref(), model.get(k.as_slice()));
                    prop_assert!(p.verify(&r, &k));
                    let wrong = Some(vec![9u8]);
                    prop_assert!(!verify_proof(&r, &k, wrong.as_deref(), &p));
                    if p.value.is_some() {
                        prop_assert!(!verify_proof(&r, &k, None, &p));
                    }
                }
            }
        }
    }
}

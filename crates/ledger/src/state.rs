//! State access: the [`StateRead`] trait the ledger reads through, an in-memory
//! [`MemState`], the [`WriteSet`] a block produces, and the state root.

use deed_types::Hash32;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Read access to ledger state: a sorted map from byte keys to byte values.
///
/// Implementations must present one consistent version of the state for the lifetime
/// of the value (a snapshot). A storage failure while reading is not recoverable by the
/// ledger and may panic.
pub trait StateRead {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Every entry whose key starts with `prefix`, in ascending key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// The first `limit` entries whose key starts with `prefix`, in ascending key order.
    /// Implementations should override this to do work proportional to `limit`; the
    /// per-block sweeps rely on it to stay bounded.
    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v = self.scan_prefix(prefix);
        v.truncate(limit);
        v
    }
}

impl<T: StateRead + ?Sized> StateRead for &T {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        (**self).get(key)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        (**self).scan_prefix(prefix)
    }
    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (**self).scan_prefix_limit(prefix, limit)
    }
}

/// State held in memory: for tests, tools and replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemState(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl MemState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `writes` (deleting the keys mapped to `None`).
    pub fn apply(&mut self, writes: &WriteSet) {
        for (k, v) in &writes.0 {
            match v {
                Some(v) => self.0.insert(k.clone(), v.clone()),
                None => self.0.remove(k),
            };
        }
    }
}

/// The first key after every key that starts with `prefix`, or `None` if there is none.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The key range `[prefix, prefix_end)` as bounds.
pub(crate) fn prefix_range(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (Bound::Included(prefix.to_vec()), prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded))
}

impl StateRead for MemState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0.range(prefix_range(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0.range(prefix_range(prefix)).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Changes to state, in key order: `Some(value)` sets a key, `None` deletes it.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct WriteSet(pub BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl WriteSet {
    /// Sets `key` to `value`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.0.insert(key, Some(value));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.0.insert(key, None);
    }

    /// Applies `later` on top of these writes.
    pub fn extend(&mut self, later: WriteSet) {
        self.0.extend(later.0);
    }

    /// Number of keys touched.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `base` entries under `prefix` with `writes` applied on top, in key order.
fn merge(
    base: Vec<(Vec<u8>, Vec<u8>)>,
    writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(base.len());
    let mut w = writes.range(prefix_range(prefix)).peekable();
    for (k, v) in base {
        while let Some((wk, wv)) = w.next_if(|(wk, _)| **wk < k) {
            if let Some(wv) = wv {
                out.push((wk.clone(), wv.clone()));
            }
        }
        match w.next_if(|(wk, _)| **wk == k) {
            Some((_, Some(wv))) => out.push((k, wv.clone())),
            Some((_, None)) => {}
            None => out.push((k, v)),
        }
    }
    for (wk, wv) in w {
        if let Some(wv) = wv {
            out.push((wk.clone(), wv.clone()));
        }
    }
    out
}

/// A state seen through uncommitted writes.
pub(crate) struct Overlay<'a, S: StateRead + ?Sized> {
    pub base: &'a S,
    pub writes: WriteSet,
}

impl<'a, S: StateRead + ?Sized> Overlay<'a, S> {
    pub fn new(base: &'a S) -> Self {
        Overlay { base, writes: WriteSet::default() }
    }
}

impl<S: StateRead + ?Sized> StateRead for Overlay<'_, S> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        Layered { base: self.base, writes: &self.writes }.get(key)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        Layered { base: self.base, writes: &self.writes }.scan_prefix(prefix)
    }
    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        Layered { base: self.base, writes: &self.writes }.scan_prefix_limit(prefix, limit)
    }
}

/// A state seen through writes it does not own: e.g. the finalized state through the
/// merged writes of unfinalized blocks (the BFT producer builds on those).
pub struct Layered<'a, S: StateRead + ?Sized> {
    /// The state underneath.
    pub base: &'a S,
    /// Writes on top of it.
    pub writes: &'a WriteSet,
}

impl<S: StateRead + ?Sized> StateRead for Layered<'_, S> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.0.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key),
        }
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        merge(self.base.scan_prefix(prefix), &self.writes.0, prefix)
    }
    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        // Each write under the prefix can hide at most one base entry.
        let hidden = self.writes.0.range(prefix_range(prefix)).count();
        let mut v = merge(self.base.scan_prefix_limit(prefix, limit.saturating_add(hidden)), &self.writes.0, prefix);
        v.truncate(limit);
        v
    }
}

/// The digest of one state entry: its leaf hash in the state tree
/// (see [`crate::smt`]), `BLAKE3(00 ‖ key_hash(key) ‖ value_hash(value))`.
pub fn leaf_digest(key: &[u8], value: &[u8]) -> Hash32 {
    crate::smt::leaf_hash(&crate::smt::key_hash(key), &crate::smt::value_hash(value))
}

/// The state root of `state`: the root of its sparse Merkle tree ([`crate::smt`]), read
/// in O(1) from the tree stored alongside the state. The empty state's root is all zeros.
/// A map assembled by hand without its tree gets its root computed from scratch.
pub fn state_root(state: &impl StateRead) -> Hash32 {
    crate::smt::root(state)
}

/// Updates the state tree for `writes` on top of `state`: appends the tree's changes to
/// `writes` and returns the new root. Called once per block (and for genesis).
pub(crate) fn commit_root(state: &(impl StateRead + ?Sized), writes: &mut WriteSet) -> Hash32 {
    crate::smt::commit(state, writes)
}

pub use crate::smt::{ProofLeaf, StateProof, prove, verify_proof};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_scan_merges_in_order() {
        let mut base = MemState::new();
        for k in [b"a/1", b"a/3", b"a/5", b"b/1"] {
            base.0.insert(k.to_vec(), k.to_vec());
        }
        let mut o = Overlay::new(&base);
        o.writes.put(b"a/0".to_vec(), b"x".to_vec());
        o.writes.delete(b"a/3".to_vec());
        o.writes.put(b"a/5".to_vec(), b"y".to_vec());
        o.writes.put(b"a/9".to_vec(), b"z".to_vec());
        o.writes.put(b"c/1".to_vec(), b"c".to_vec());
        let keys = o.scan_prefix(b"a/");
        assert_eq!(
            keys,
            vec![
                (b"a/0".to_vec(), b"x".to_vec()),
                (b"a/1".to_vec(), b"a/1".to_vec()),
                (b"a/5".to_vec(), b"y".to_vec()),
                (b"a/9".to_vec(), b"z".to_vec())
            ]
        );
        for limit in 0..6 {
            assert_eq!(o.scan_prefix_limit(b"a/", limit), keys[..limit.min(keys.len())].to_vec());
        }
        assert_eq!(o.get(b"a/3"), None);
        assert_eq!(o.get(b"b/1"), Some(b"b/1".to_vec()));
        let mut applied = base.clone();
        applied.apply(&o.writes);
        assert_eq!(o.scan_prefix(b""), applied.scan_prefix(b""));
    }

    #[test]
    fn prefix_end_handles_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn proofs_verify() {
        let mut s = MemState::new();
        let mut w = WriteSet::default();
        for i in 0u8..7 {
            w.put(vec![i], vec![i, i]);
        }
        let root = commit_root(&s, &mut w);
        s.apply(&w);
        assert_eq!(state_root(&s), root);
        let p = prove(&s, &[3]);
        assert!(p.verify(&root, &[3]));
        assert!(!p.verify(&root, &[4]));
        assert!(prove(&s, &[9]).value.is_none());
        assert!(prove(&s, &[9]).verify(&root, &[9]));
        assert_eq!(state_root(&MemState::new()), Hash32::ZERO);
    }
}

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
}

impl<T: StateRead + ?Sized> StateRead for &T {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        (**self).get(key)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        (**self).scan_prefix(prefix)
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
        match self.writes.0.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key),
        }
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        merge(self.base.scan_prefix(prefix), &self.writes.0, prefix)
    }
}

/// The digest of one state entry: a tagged BLAKE3 of `key_len (u32 LE) ‖ key ‖ value`.
pub fn leaf_digest(key: &[u8], value: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new_derive_key("deed state leaf v1");
    h.update(&u32::try_from(key.len()).expect("state keys are short").to_le_bytes());
    h.update(key);
    h.update(value);
    Hash32(*h.finalize().as_bytes())
}

/// The state root of `state`: the binary Merkle root ([`deed_types::merkle::root`]) of
/// the [`leaf_digest`]s of every entry in ascending key order. The empty state's root
/// is all zeros.
pub fn state_root(state: &impl StateRead) -> Hash32 {
    root_after(state, &WriteSet::default())
}

/// The state root of `state` with `writes` applied.
///
/// This is the one place the root is defined: a later version can replace the full
/// recomputation (O(state size) per block) with an incremental sparse Merkle tree
/// without changing any caller.
pub(crate) fn root_after(state: &(impl StateRead + ?Sized), writes: &WriteSet) -> Hash32 {
    let entries = merge(state.scan_prefix(b""), &writes.0, b"");
    let leaves: Vec<Hash32> = entries.iter().map(|(k, v)| leaf_digest(k, v)).collect();
    deed_types::merkle::root(&leaves)
}

/// An inclusion proof that `key` has `value` under a state root: the entry's index
/// among all entries and the Merkle path of its leaf digest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateProof {
    /// The value under the key.
    pub value: Vec<u8>,
    /// The Merkle path of [`leaf_digest`]`(key, value)`.
    pub path: Vec<deed_types::merkle::ProofStep>,
}

impl StateProof {
    /// Checks that `key` maps to `self.value` under `root`.
    pub fn verify(&self, root: &Hash32, key: &[u8]) -> bool {
        deed_types::merkle::verify(root, &leaf_digest(key, &self.value), &self.path)
    }
}

/// Proves the value under `key` against [`state_root`]`(state)`; `None` if absent.
/// (Proofs of absence come with the sparse Merkle tree.)
pub fn prove(state: &impl StateRead, key: &[u8]) -> Option<StateProof> {
    let entries = state.scan_prefix(b"");
    let index = entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)).ok()?;
    let leaves: Vec<Hash32> = entries.iter().map(|(k, v)| leaf_digest(k, v)).collect();
    Some(StateProof { value: entries[index].1.clone(), path: deed_types::merkle::prove(&leaves, index) })
}

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
        assert_eq!(o.get(b"a/3"), None);
        assert_eq!(o.get(b"b/1"), Some(b"b/1".to_vec()));
        let mut applied = base.clone();
        applied.apply(&o.writes);
        assert_eq!(root_after(&base, &o.writes), state_root(&applied));
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
        for i in 0u8..7 {
            s.0.insert(vec![i], vec![i, i]);
        }
        let root = state_root(&s);
        let p = prove(&s, &[3]).unwrap();
        assert!(p.verify(&root, &[3]));
        assert!(!p.verify(&root, &[4]));
        assert!(prove(&s, &[9]).is_none());
        assert_eq!(state_root(&MemState::new()), Hash32::ZERO);
    }
}

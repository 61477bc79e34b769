//! The unfinalized part of the chain as the application sees it: blocks proposed or
//! received but not yet final, their execution outcomes, and the state after any of
//! them (the finalized state seen through the writes of its unfinalized ancestors).

use commonware_cryptography::sha256::Digest;
use deed_ledger::{StateRead, WriteSet};
use deed_types::{Block, Hash32};
use std::collections::BTreeMap;
use std::ops::Bound;

/// The consensus digest of a block: its header hash.
pub fn digest_of(block: &Block) -> Digest {
    Digest(block.header.hash().0)
}

/// A header hash as a consensus digest.
pub fn to_digest(h: Hash32) -> Digest {
    Digest(h.0)
}

/// A consensus digest as a header hash.
pub fn to_hash(d: &Digest) -> Hash32 {
    Hash32(d.0)
}

/// The finalized state seen through `writes` (the merged writes of a chain of
/// unfinalized blocks, oldest first).
pub struct Layered<'a, S: StateRead> {
    /// The finalized state.
    pub base: &'a S,
    /// Writes on top of it.
    pub writes: &'a WriteSet,
}

fn range(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (Bound::Included(prefix.to_vec()), Bound::Excluded(end));
        }
    }
    (Bound::Included(prefix.to_vec()), Bound::Unbounded)
}

fn merge(
    base: Vec<(Vec<u8>, Vec<u8>)>,
    writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(base.len());
    let mut w = writes.range(range(prefix)).peekable();
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

impl<S: StateRead> StateRead for Layered<'_, S> {
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
        let hidden = self.writes.0.range(range(prefix)).count();
        let mut v = merge(self.base.scan_prefix_limit(prefix, limit.saturating_add(hidden)), &self.writes.0, prefix);
        v.truncate(limit);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deed_ledger::MemState;

    #[test]
    fn layered_reads_see_writes_first() {
        let mut base = MemState::new();
        let mut w0 = WriteSet::default();
        w0.put(b"a/1".to_vec(), b"x".to_vec());
        w0.put(b"a/3".to_vec(), b"y".to_vec());
        w0.put(b"b/1".to_vec(), b"z".to_vec());
        base.apply(&w0);
        let mut w = WriteSet::default();
        w.put(b"a/2".to_vec(), b"new".to_vec());
        w.delete(b"a/3".to_vec());
        let l = Layered { base: &base, writes: &w };
        assert_eq!(l.get(b"a/3"), None);
        assert_eq!(l.get(b"b/1"), Some(b"z".to_vec()));
        let keys: Vec<Vec<u8>> = l.scan_prefix(b"a/").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"a/1".to_vec(), b"a/2".to_vec()]);
        assert_eq!(l.scan_prefix_limit(b"a/", 1).len(), 1);
    }
}

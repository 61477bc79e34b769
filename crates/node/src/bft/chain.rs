//! The unfinalized part of the chain as the application sees it: blocks proposed or
//! received but not yet final, their execution outcomes, and the state after any of
//! them (the finalized state seen through the writes of its unfinalized ancestors).

use commonware_cryptography::sha256::Digest;
use deed_types::{Block, Hash32};

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
/// unfinalized blocks, oldest first): the ledger's own layered view.
pub use deed_ledger::Layered;

#[cfg(test)]
mod tests {
    use super::*;
    use deed_ledger::{MemState, StateRead, WriteSet};

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

//! State snapshots: the whole ledger state at one finalized height as a single blob, so
//! that a node far behind the network installs the state instead of re-executing every
//! block since its head.
//!
//! The encoding is canonical — every state entry except the state tree's own records, in
//! ascending key order, borsh-encoded after a version byte, the height and the state
//! root — so honest nodes write byte-identical snapshots of the same height, and a
//! snapshot's content id names it wherever it comes from. A snapshot is trusted for
//! nothing: [`decode_verified`] rebuilds the state tree from the entries and accepts them
//! only if the root equals the state root of a block header the caller has already
//! anchored to the finalized chain.

use crate::smt::TREE_PREFIX;
use crate::state::{MemState, StateRead, WriteSet, commit_root};
use borsh::{BorshDeserialize, BorshSerialize};
use deed_types::{BlockHeader, Hash32};

/// Version of the snapshot encoding.
pub const SNAPSHOT_VERSION: u8 = 1;

#[derive(BorshSerialize, BorshDeserialize)]
struct Encoded {
    version: u8,
    height: u64,
    state_root: Hash32,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The bytes are not a snapshot.
    #[error("the snapshot does not decode: {0}")]
    Malformed(String),
    /// An encoding this node does not know.
    #[error("snapshot version {0} is not supported (this node reads version {SNAPSHOT_VERSION})")]
    Version(u8),
    /// The snapshot is of another height or claims another root than the header.
    #[error(
        "the snapshot is of height {got_height} with root {got_root}, the block header says {want_height} and {want_root}"
    )]
    Mismatch {
        /// The snapshot's height.
        got_height: u64,
        /// The root it claims.
        got_root: Hash32,
        /// The header's height.
        want_height: u64,
        /// The header's state root.
        want_root: Hash32,
    },
    /// Entries out of order, repeated, or touching the tree's records.
    #[error("the snapshot's entries are not canonical: {0}")]
    NotCanonical(String),
    /// The entries do not hash to the header's state root.
    #[error("the snapshot's entries hash to {computed}, not to the block's state root {want}")]
    WrongRoot {
        /// The root of the entries.
        computed: Hash32,
        /// The header's state root.
        want: Hash32,
    },
}

/// The canonical snapshot of `state`, which is the state after the block at `height`
/// whose state root is `state_root`.
pub fn encode(state: &impl StateRead, height: u64, state_root: Hash32) -> Vec<u8> {
    let entries: Vec<(Vec<u8>, Vec<u8>)> =
        state.scan_prefix(b"").into_iter().filter(|(k, _)| !k.starts_with(TREE_PREFIX)).collect();
    borsh::to_vec(&Encoded { version: SNAPSHOT_VERSION, height, state_root, entries }).expect("borsh to Vec")
}

/// Decodes a snapshot and checks it against `header` (a block the caller trusts as
/// finalized): same height, and entries whose state tree has the header's root. Returns
/// the writes that make an empty state equal to it, the tree's records included.
pub fn decode_verified(bytes: &[u8], header: &BlockHeader) -> Result<WriteSet, SnapshotError> {
    let e: Encoded = borsh::from_slice(bytes).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    if e.version != SNAPSHOT_VERSION {
        return Err(SnapshotError::Version(e.version));
    }
    if e.height != header.height || e.state_root != header.state_root {
        return Err(SnapshotError::Mismatch {
            got_height: e.height,
            got_root: e.state_root,
            want_height: header.height,
            want_root: header.state_root,
        });
    }
    let mut writes = WriteSet::default();
    let mut prev: Option<&[u8]> = None;
    for (k, _) in &e.entries {
        if k.starts_with(TREE_PREFIX) {
            return Err(SnapshotError::NotCanonical("an entry is one of the state tree's own records".into()));
        }
        if prev.is_some_and(|p| p >= k.as_slice()) {
            return Err(SnapshotError::NotCanonical("keys are not strictly ascending".into()));
        }
        prev = Some(k);
    }
    for (k, v) in e.entries {
        writes.put(k, v);
    }
    let computed = commit_root(&MemState::new(), &mut writes);
    if computed != header.state_root {
        return Err(SnapshotError::WrongRoot { computed, want: header.state_root });
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(entries: &[(&[u8], &[u8])]) -> (MemState, Hash32) {
        let mut w = WriteSet::default();
        for (k, v) in entries {
            w.put(k.to_vec(), v.to_vec());
        }
        let root = commit_root(&MemState::new(), &mut w);
        let mut s = MemState::new();
        for (k, v) in w.0 {
            s.0.insert(k, v.expect("puts only"));
        }
        (s, root)
    }

    fn header(height: u64, state_root: Hash32) -> BlockHeader {
        BlockHeader {
            chain_id: "snap".into(),
            height,
            parent: Hash32::ZERO,
            time_ms: 1,
            tx_root: Hash32::ZERO,
            state_root,
            proposer: deed_types::Keypair::dev("snap").public(),
        }
    }

    #[test]
    fn a_snapshot_round_trips_to_the_same_state_and_root() {
        let (s, root) = state_with(&[(b"a", b"1"), (b"b/2", b"two"), (b"c", b"")]);
        let bytes = encode(&s, 7, root);
        assert_eq!(bytes, encode(&s, 7, root), "canonical");
        let writes = decode_verified(&bytes, &header(7, root)).unwrap();
        let mut rebuilt = MemState::new();
        for (k, v) in writes.0 {
            rebuilt.0.insert(k, v.unwrap());
        }
        assert_eq!(rebuilt.0, s.0, "the entries and the tree's records");
        assert_eq!(crate::state_root(&rebuilt), root);
    }

    #[test]
    fn a_snapshot_that_is_not_the_headers_state_is_refused() {
        let (s, root) = state_with(&[(b"a", b"1"), (b"b", b"2")]);
        let (_, other_root) = state_with(&[(b"a", b"1"), (b"b", b"3")]);
        let bytes = encode(&s, 7, root);
        assert!(matches!(decode_verified(&bytes, &header(8, root)), Err(SnapshotError::Mismatch { .. })));
        assert!(matches!(decode_verified(&bytes, &header(7, other_root)), Err(SnapshotError::Mismatch { .. })));
        // Entries changed but the claimed root kept: the rebuilt tree says otherwise.
        let mut e: Encoded = borsh::from_slice(&bytes).unwrap();
        e.entries[1].1 = b"3".to_vec();
        let forged = borsh::to_vec(&e).unwrap();
        assert!(matches!(decode_verified(&forged, &header(7, root)), Err(SnapshotError::WrongRoot { .. })));
        // Out of order, or smuggling tree records.
        e.entries.swap(0, 1);
        let forged = borsh::to_vec(&e).unwrap();
        assert!(matches!(decode_verified(&forged, &header(7, root)), Err(SnapshotError::NotCanonical(_))));
        let mut e: Encoded = borsh::from_slice(&bytes).unwrap();
        e.entries.push((b"~smt/root".to_vec(), vec![0]));
        let forged = borsh::to_vec(&e).unwrap();
        assert!(matches!(decode_verified(&forged, &header(7, root)), Err(SnapshotError::NotCanonical(_))));
        assert!(matches!(decode_verified(b"junk", &header(7, root)), Err(SnapshotError::Malformed(_))));
        let mut e: Encoded = borsh::from_slice(&bytes).unwrap();
        e.version = 9;
        assert_eq!(decode_verified(&borsh::to_vec(&e).unwrap(), &header(7, root)), Err(SnapshotError::Version(9)));
    }
}

//! 32-byte BLAKE3 digests and domain-separated hashing.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// A 32-byte BLAKE3 digest.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Hash32(#[serde(with = "crate::hexser")] pub [u8; 32]);

impl Hash32 {
    /// The all-zero digest, used for "no parent" and the empty Merkle tree.
    pub const ZERO: Hash32 = Hash32([0; 32]);

    /// Plain BLAKE3 of `data`. Used for content (blobs, tensors) so ids interoperate.
    pub fn of(data: &[u8]) -> Self {
        Hash32(*blake3::hash(data).as_bytes())
    }

    /// BLAKE3 in derive-key mode with `context` as the domain: used for every
    /// protocol structure (transactions, commitments, state keys) so that a hash of
    /// one kind can never be confused with a hash of another.
    pub fn tagged(context: &str, data: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(data);
        Hash32(*h.finalize().as_bytes())
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", hex::encode(&self.0[..8]))
    }
}

impl FromStr for Hash32 {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim_start_matches("0x"), &mut out)
            .map_err(|e| crate::Error::parse("hash", format!("expected 64 hex characters: {e}")))?;
        Ok(Hash32(out))
    }
}

impl From<blake3::Hash> for Hash32 {
    fn from(h: blake3::Hash) -> Self {
        Hash32(*h.as_bytes())
    }
}

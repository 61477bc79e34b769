//! Content ids: CIDv1 with the raw codec and a BLAKE3-256 multihash.
//!
//! Binary form: `0x01` (CID version 1), `0x55` (raw codec), `0x1e` (BLAKE3 multihash
//! code), `0x20` (digest length 32), then the 32-byte BLAKE3 digest of the content.
//! Text form: multibase base32 lower case, so every id starts with `b` — the same
//! string IPFS tooling prints for such a CID.

use crate::Hash32;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// Multicodec prefix of a CIDv1/raw/BLAKE3-256 id.
pub const CID_PREFIX: [u8; 4] = [0x01, 0x55, 0x1e, 0x20];

/// A content id. Only the digest is stored (and encoded in borsh); the CID prefix is fixed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Cid(pub Hash32);

impl Cid {
    /// The id of `content`.
    pub fn of(content: &[u8]) -> Self {
        Cid(Hash32::of(content))
    }

    /// The BLAKE3 digest this id names.
    pub fn digest(&self) -> &Hash32 {
        &self.0
    }

    /// The 36-byte binary CID.
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..4].copy_from_slice(&CID_PREFIX);
        out[4..].copy_from_slice(&self.0.0);
        out
    }

    /// The weights blob an ONNX external-data `location` names in a bundle:
    /// `<cid>.safetensors` (or a bare `<cid>`); `None` for any other name.
    pub fn from_location(location: &str) -> Option<Cid> {
        location.strip_suffix(".safetensors").unwrap_or(location).parse().ok()
    }

    /// The external-data `location` under which a bundle's graph names this weights blob.
    pub fn weights_location(&self) -> String {
        format!("{self}.safetensors")
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", data_encoding::BASE32_NOPAD.encode(&self.to_bytes()).to_ascii_lowercase())
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .strip_prefix('b')
            .ok_or_else(|| crate::Error::parse("cid", "expected a base32 CIDv1 starting with 'b'"))?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|e| crate::Error::parse("cid", format!("not base32: {e}")))?;
        if bytes.len() != 36 || bytes[..4] != CID_PREFIX {
            return Err(crate::Error::parse("cid", "not a CIDv1 with raw codec and a BLAKE3-256 multihash"));
        }
        let mut d = [0u8; 32];
        d.copy_from_slice(&bytes[4..]);
        Ok(Cid(Hash32(d)))
    }
}

impl Serialize for Cid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_prefix() {
        let c = Cid::of(b"hello");
        let s = c.to_string();
        assert!(s.starts_with("bafkr4i"), "{s}");
        assert_eq!(s.parse::<Cid>().unwrap(), c);
        assert!("bafy".parse::<Cid>().is_err());
        assert!("Qm123".parse::<Cid>().is_err());
    }
}

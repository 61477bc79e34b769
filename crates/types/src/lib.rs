//! Ids, hashes, keys, signatures, tensors on the wire, transactions and receipts.
//!
//! Everything here is plain data with a canonical binary encoding (borsh, see
//! docs/PROTOCOL.md) and a JSON form for the HTTP API. No I/O happens in this crate.

pub mod block;
pub mod cid;
pub mod crypto;
pub mod hash;
pub mod merkle;
pub mod npy;
pub mod tensor;
pub mod tx;

pub use block::{Block, BlockHeader, Genesis, GenesisAccount, GenesisExecutor, JobParams, Params};
pub use cid::Cid;
pub use crypto::{Address, Keypair, PublicKey, Signature};
pub use hash::Hash32;
pub use tensor::{DType, Tensor, TensorData, TensorSet};
pub use tx::{FraudProof, JobMode, Parent, Receipt, SignedReceipt, SignedTx, Tx, TxBody};

/// An amount of the native token, in base units. Amounts are integers everywhere.
pub type Amount = u128;

/// A model id: the [`Cid`] of the model file's bytes.
pub type ModelId = Cid;

/// Errors from decoding or checking wire data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A text id (address, cid, hash, key) did not parse.
    #[error("invalid {what}: {reason}")]
    Parse {
        /// What was being parsed ("address", "cid", ...).
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A signature did not verify against the claimed key.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// A tensor was malformed (shape and data disagree, unknown dtype, over a limit).
    #[error("invalid tensor: {0}")]
    Tensor(String),
}

impl Error {
    pub(crate) fn parse(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Parse { what, reason: reason.into() }
    }
}

/// Serde helpers that write fixed byte arrays as lowercase hex strings.
pub(crate) mod hexser {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer, const N: usize>(b: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; N];
        hex::decode_to_slice(s.trim_start_matches("0x"), &mut out)
            .map_err(|e| D::Error::custom(format!("expected {N} hex bytes: {e}")))?;
        Ok(out)
    }
}

/// Serde helpers for [`Amount`]s: written as decimal strings in JSON, because u128
/// does not fit a JSON number that every client reads exactly; read from a string or
/// a non-negative integer.
pub mod amount_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the amount as a decimal string.
    pub fn serialize<S: Serializer>(a: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    /// Reads a decimal string or an integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(n as u128),
            Raw::S(s) => {
                s.parse().map_err(|_| D::Error::custom(format!("'{s}' is not an amount (a non-negative integer)")))
            }
        }
    }
}

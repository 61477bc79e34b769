//! Transactions, their signatures, and inference receipts.
//!
//! A transaction is signed over `"deed-tx-v1\0"` followed by the borsh encoding of
//! [`Tx`]; its hash (the transaction id) is a tagged BLAKE3 of that same encoding, so
//! the id does not depend on the signature bytes.

use crate::{Address, Amount, Cid, Hash32, Keypair, PublicKey, Signature};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// Signing domain of transactions.
pub const TX_SIGNING_DOMAIN: &[u8] = b"deed-tx-v1\0";
/// Signing domain of receipts.
pub const RECEIPT_SIGNING_DOMAIN: &[u8] = b"deed-receipt-v1\0";
/// Longest model name.
pub const MODEL_NAME_BYTES_MAX: usize = 128;
/// Largest encoded transaction accepted from outside.
pub const TX_BYTES_MAX: usize = 64 * 1024;

/// The body of a transaction: what it does.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// A receipt carries its trace, so SubmitReceipt dwarfs the other variants; boxing it
// would only move the allocation, since transactions are decoded once and then moved.
#[allow(clippy::large_enum_variant)]
pub enum TxBody {
    /// Moves `amount` from the sender to `to`.
    Transfer {
        /// Recipient.
        to: Address,
        /// Base units moved.
        #[serde(with = "crate::amount_serde")]
        amount: Amount,
    },
    /// First half of registration: a blinded commitment to a model id, see
    /// [`model_commitment`]. Reveals must come in a later block.
    CommitModel {
        /// `model_commitment(model, sender, salt)`.
        commitment: Hash32,
    },
    /// Second half of registration: reveals the model id and claims it.
    RegisterModel {
        /// The model's content id.
        model: Cid,
        /// A display name.
        name: String,
        /// The salt used in the commitment.
        salt: Hash32,
        /// Price per call in base units; 0 means open and free.
        #[serde(with = "crate::amount_serde")]
        price: Amount,
        /// Models this one is derived from, each with the royalty it pays upstream (empty: an
        /// original model).
        #[serde(default)]
        parents: Vec<Parent>,
    },
    /// Pays for one inference: escrows `price + executor_fee` until a receipt settles it.
    RequestInference {
        /// The model to run.
        model: Cid,
        /// The input tensor set, stored as a blob (its id is the input hash).
        input: Cid,
        /// The price the payer agrees to; must equal the model's current price.
        #[serde(with = "crate::amount_serde")]
        price: Amount,
        /// What each executor is paid.
        #[serde(with = "crate::amount_serde")]
        executor_fee: Amount,
        /// One executor and a challenge window, or K executors that must agree.
        #[serde(default)]
        mode: JobMode,
    },
    /// An executor's answer to a job.
    SubmitReceipt {
        /// The signed receipt.
        receipt: SignedReceipt,
    },
    /// Moves `bps` basis points of the sender's share of `model` to `to`.
    TransferShares {
        /// The model.
        model: Cid,
        /// The new holder of the shares.
        to: Address,
        /// Basis points moved (at most what the sender holds).
        bps: u16,
    },
    /// An owner's vote for a model's license: 0 is open (free), any other price is paid per
    /// call. The license changes as soon as the owners voting for the same price hold a
    /// strict majority of the shares together (one owner above 5,000 bps changes it alone);
    /// until then the vote is pending in the model's record. See the `deed-ledger` docs.
    SetLicense {
        /// The model.
        model: Cid,
        /// The new price per call in base units.
        #[serde(with = "crate::amount_serde")]
        price: Amount,
    },
    /// Moves `amount` from the sender's balance into its executor stake.
    Stake {
        /// Base units staked.
        #[serde(with = "crate::amount_serde")]
        amount: Amount,
    },
    /// Starts unbonding `amount` of the sender's stake; it returns to the balance
    /// automatically `params.unbonding_blocks` blocks later, and stays slashable until then.
    Unstake {
        /// Base units unstaked.
        #[serde(with = "crate::amount_serde")]
        amount: Amount,
    },
    /// Proves that an executor's receipt for a job is wrong. The challenger escrows
    /// `params.jobs.challenge_bond`; if the proof holds the executor is slashed, the
    /// payer refunded and the bond returned, otherwise the bond goes to the executor.
    Challenge {
        /// The job.
        job: Hash32,
        /// Whose receipt is challenged.
        executor: PublicKey,
        /// Why it is wrong.
        proof: FraudProof,
    },
    /// Proof that a validator signed two conflicting consensus votes (two different
    /// proposals for the same round): slashes the validator's whole stake to the sender.
    /// `vote_a` and `vote_b` are the exact signed messages (see PROTOCOL.md).
    Evidence {
        /// The validator that equivocated.
        validator: PublicKey,
        /// The first signed vote message.
        #[serde(with = "hexvec")]
        vote_a: Vec<u8>,
        /// Its signature.
        sig_a: crate::Signature,
        /// The conflicting signed vote message.
        #[serde(with = "hexvec")]
        vote_b: Vec<u8>,
        /// Its signature.
        sig_b: crate::Signature,
    },
}

/// Variable-length bytes as hex in JSON.
mod hexvec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(|e| D::Error::custom(format!("expected hex bytes: {e}")))
    }
}

/// How many executors answer a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum JobMode {
    /// One executor; payment waits out a challenge window.
    #[default]
    Single,
    /// K distinct staked executors; agreement settles at once, disagreement opens a
    /// dispute by itself.
    Replicated(u8),
}

impl JobMode {
    /// How many receipts the job needs.
    pub fn replicas(self) -> u8 {
        match self {
            JobMode::Single => 1,
            JobMode::Replicated(k) => k,
        }
    }
}

impl std::fmt::Display for JobMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobMode::Single => f.write_str("single"),
            JobMode::Replicated(k) => write!(f, "replicated:{k}"),
        }
    }
}

impl std::str::FromStr for JobMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "single" => Ok(JobMode::Single),
            _ => {
                let k =
                    s.strip_prefix("replicated:").and_then(|k| k.parse::<u8>().ok()).filter(|k| *k >= 1).ok_or_else(
                        || crate::Error::parse("job mode", "expected 'single' or 'replicated:K' with K >= 1"),
                    )?;
                Ok(JobMode::Replicated(k))
            }
        }
    }
}

impl Serialize for JobMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a receipt is wrong, checked by every validator by replaying at most one trace
/// segment (a run of `deed_engine::TRACE_SEGMENT_OPS` nodes).
///
/// Intermediate tensors are never carried in the transaction: what segment `j` exports
/// (the values it produces that later segments read, and graph outputs) is committed by
/// `trace[j]` = BLAKE3 of their concatenated canonical encodings, which is exactly the
/// content id of a blob holding those bytes. The challenger uploads those blobs;
/// validators fetch them by id, so the trace itself authenticates them.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FraudProof {
    /// The trace does not have one entry per segment of the model.
    TraceLength,
    /// Segment `index` (its nodes in execution order), replayed on what it reads —
    /// graph inputs from the job's input, weights from the model, earlier segments'
    /// exports from the blobs named by the receipt's own trace — does not hash to
    /// `trace[index]`.
    Segment {
        /// The trace entry.
        index: u32,
    },
    /// Every graph output, taken from the blobs its producing nodes' trace entries name,
    /// does not hash to the receipt's output hash.
    Output,
}

/// A parent a derived model names at registration, and the royalty it pays that parent.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Parent {
    /// The parent model (must be registered).
    pub model: Cid,
    /// Share of the child's revenue paid to the parent, in basis points.
    pub royalty_bps: u16,
}

impl TxBody {
    /// A short name for tables and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::Transfer { .. } => "transfer",
            TxBody::CommitModel { .. } => "commit_model",
            TxBody::RegisterModel { .. } => "register_model",
            TxBody::RequestInference { .. } => "request_inference",
            TxBody::SubmitReceipt { .. } => "submit_receipt",
            TxBody::TransferShares { .. } => "transfer_shares",
            TxBody::SetLicense { .. } => "set_license",
            TxBody::Stake { .. } => "stake",
            TxBody::Unstake { .. } => "unstake",
            TxBody::Challenge { .. } => "challenge",
            TxBody::Evidence { .. } => "evidence",
        }
    }
}

/// The blinded commitment that [`TxBody::CommitModel`] carries.
pub fn model_commitment(model: &Cid, owner: &Address, salt: &Hash32) -> Hash32 {
    let mut b = Vec::with_capacity(84);
    b.extend_from_slice(&model.0.0);
    b.extend_from_slice(&owner.0);
    b.extend_from_slice(&salt.0);
    Hash32::tagged("deed model commitment v1", &b)
}

/// An unsigned transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Tx {
    /// The chain this transaction is for; a transaction for another chain is refused.
    pub chain_id: String,
    /// The sender's public key; the sender's account is its address.
    pub sender: PublicKey,
    /// The sender's next nonce (0 for the first transaction).
    pub nonce: u64,
    /// Transaction fee, paid to the block producer.
    #[serde(with = "crate::amount_serde")]
    pub fee: Amount,
    /// What the transaction does.
    pub body: TxBody,
}

impl Tx {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh encoding to a Vec cannot fail")
    }

    /// The transaction id.
    pub fn hash(&self) -> Hash32 {
        Hash32::tagged("deed tx id v1", &self.encode())
    }

    /// The bytes that are signed.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut m = TX_SIGNING_DOMAIN.to_vec();
        m.extend_from_slice(&self.encode());
        m
    }

    /// Signs with `key`; panics if `key` is not the sender (a caller bug).
    pub fn sign(self, key: &Keypair) -> SignedTx {
        assert_eq!(key.public(), self.sender, "signing key must be the transaction's sender");
        let signature = key.sign(&self.signing_bytes());
        SignedTx { tx: self, signature }
    }
}

/// A transaction with the sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedTx {
    /// The transaction.
    pub tx: Tx,
    /// Ed25519 signature by `tx.sender` over [`Tx::signing_bytes`].
    pub signature: Signature,
}

impl SignedTx {
    /// The transaction id.
    pub fn hash(&self) -> Hash32 {
        self.tx.hash()
    }

    /// Checks the signature.
    pub fn verify(&self) -> Result<(), crate::Error> {
        self.tx.sender.verify(&self.tx.signing_bytes(), &self.signature)
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        self.tx.sender.address()
    }
}

/// What an executor attests about one inference. Version 1.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Receipt {
    /// Receipt format version (1).
    pub version: u8,
    /// The chain the job was paid on.
    pub chain_id: String,
    /// The job: the id of the `RequestInference` transaction.
    pub job: Hash32,
    /// The model that ran.
    pub model: Cid,
    /// The engine spec version that ran it, e.g. `deed-engine/1`.
    pub engine: String,
    /// Hash of the input tensor set.
    pub input_hash: Hash32,
    /// Hash of the output tensor set.
    pub output_hash: Hash32,
    /// Merkle root of `trace`.
    pub trace_root: Hash32,
    /// Per-op output hashes in execution order.
    pub trace: Vec<Hash32>,
    /// The executor's public key.
    pub executor: PublicKey,
    /// Price paid to the owners.
    #[serde(with = "crate::amount_serde")]
    pub price: Amount,
    /// Fee paid to the executor.
    #[serde(with = "crate::amount_serde")]
    pub executor_fee: Amount,
}

impl Receipt {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh encoding to a Vec cannot fail")
    }

    /// The receipt's id.
    pub fn hash(&self) -> Hash32 {
        Hash32::tagged("deed receipt id v1", &self.encode())
    }

    /// Signs with the executor's key.
    pub fn sign(self, key: &Keypair) -> SignedReceipt {
        assert_eq!(key.public(), self.executor, "signing key must be the receipt's executor");
        let mut m = RECEIPT_SIGNING_DOMAIN.to_vec();
        m.extend_from_slice(&self.encode());
        let signature = key.sign(&m);
        SignedReceipt { receipt: self, signature }
    }
}

/// A receipt with the executor's signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// Ed25519 signature by `receipt.executor`.
    pub signature: Signature,
}

impl SignedReceipt {
    /// Checks the executor's signature and that the trace root matches the trace.
    pub fn verify(&self) -> Result<(), crate::Error> {
        let mut m = RECEIPT_SIGNING_DOMAIN.to_vec();
        m.extend_from_slice(&self.receipt.encode());
        self.receipt.executor.verify(&m, &self.signature)?;
        if crate::merkle::root(&self.receipt.trace) != self.receipt.trace_root {
            return Err(crate::Error::BadSignature("trace root does not match the trace".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_json_roundtrip() {
        let k = Keypair::dev("alice");
        let tx = Tx {
            chain_id: "deed-dev".into(),
            sender: k.public(),
            nonce: 3,
            fee: 10,
            body: TxBody::Transfer { to: Keypair::dev("bob").address(), amount: u128::MAX / 3 },
        };
        let stx = tx.sign(&k);
        stx.verify().unwrap();
        let json = serde_json::to_string(&stx).unwrap();
        let back: SignedTx = serde_json::from_str(&json).unwrap();
        assert_eq!(back, stx);
        back.verify().unwrap();
        let mut forged = back.clone();
        forged.tx.nonce = 4;
        assert!(forged.verify().is_err());
        let mut other_chain = stx.clone();
        other_chain.tx.chain_id = "deed-main".into();
        assert!(other_chain.verify().is_err());
    }
}

#[cfg(test)]
mod golden {
    //! Golden vectors for receipt v1, repeated in docs/PROTOCOL.md: any change to the
    //! encoding, the hash or the signing domain breaks this test.
    use super::*;

    fn golden_receipt() -> SignedReceipt {
        let exec = Keypair::dev("golden-executor");
        let trace = vec![Hash32::of(b"op0"), Hash32::of(b"op1"), Hash32::of(b"op2")];
        Receipt {
            version: 1,
            chain_id: "deed-dev".into(),
            job: Hash32::of(b"job"),
            model: Cid::of(b"model"),
            engine: "deed-engine/1".into(),
            input_hash: Hash32::of(b"input"),
            output_hash: Hash32::of(b"output"),
            trace_root: crate::merkle::root(&trace),
            trace,
            executor: exec.public(),
            price: 1000,
            executor_fee: 100,
        }
        .sign(&exec)
    }

    #[test]
    fn receipt_v1_golden_vector() {
        let sr = golden_receipt();
        sr.verify().unwrap();
        let enc = hex::encode(sr.receipt.encode());
        let id = sr.receipt.hash().to_string();
        let sig = hex::encode(sr.signature.0);
        assert_eq!(enc, GOLDEN_ENCODING);
        assert_eq!(id, GOLDEN_ID);
        assert_eq!(sig, GOLDEN_SIGNATURE);
    }

    const GOLDEN_ENCODING: &str = "0108000000646565642d64657663a2265e5c677a2d89fceda7adffcf95a8597d0927d2c1a27c00d89af997f9e6ccca53791b024d98ee5d8c126d923e16f6cede945beb0b93c9abca301ed453e70d000000646565642d656e67696e652f31e33fb19325cbc72b5905e783e0c47290468c610090e376de9215e8b5f8ba83d396e754fa8b2ab9d1f3f8f2d2bb4ec79a18016b212cf44f8fd2f7441e6e97a48b6b4a008c446bae3a2b1980f4bb6aee2bf1782e246f35e41bdd058b5af8f769e703000000a476dab31dd2c94b27b46b4b0b68f0ece15afbbbc7ce86b89c1b5be746d0f40914f13eced3580c20aabba574daae048911b80f80c8ac30ec73c308337501c363219899e9614d897ff36756c6a0513a6b0beb6a64912d219c946ab3cc2a757dcd1a8fb36e17e8fc5aa0580e2a18c318e64911f42eee6a6d7bbbe0c9fa846e41a7e803000000000000000000000000000064000000000000000000000000000000";
    const GOLDEN_ID: &str = "ab14fae738fa3279f1dfdf736f3e8a3bf74efc55b39078e31aef67978ffb4134";
    const GOLDEN_SIGNATURE: &str = "9bb902dc66f0254870ad4532c4d963a7ea16ec34e316d783347aba2dc2b91235415e346c5708b4adeeccca645b6f1fd7a9b8d36d68532978c96f5649cd727702";
}

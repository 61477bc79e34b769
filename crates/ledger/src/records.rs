//! The records the ledger keeps in state: accounts, models, commitments, jobs, executors.
//!
//! Stored borsh-encoded under the keys of [`crate::keys`]; written as JSON by the HTTP API.

use borsh::{BorshDeserialize, BorshSerialize};
use deed_types::{Address, Amount, Cid, Hash32, PublicKey};
use serde::{Deserialize, Serialize};

/// Full ownership in basis points: the `bps` of a model's owners sum to this.
pub const BPS_TOTAL: u16 = 10_000;

/// An account: a balance and the nonce its next transaction must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Account {
    /// Spendable base units.
    #[serde(with = "deed_types::amount_serde")]
    pub balance: Amount,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

/// One owner of a model and its share of the model's earnings.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Owner {
    /// Who is paid.
    pub address: Address,
    /// Share in basis points; a model's owners sum to [`BPS_TOTAL`].
    pub bps: u16,
}

/// A registered model.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model's content id.
    pub id: Cid,
    /// Display name given at registration.
    pub name: String,
    /// Who is paid for calls, in order; the first owner also receives rounding remainders.
    pub owners: Vec<Owner>,
    /// Price per call in base units.
    #[serde(with = "deed_types::amount_serde")]
    pub price: Amount,
    /// Height of the block that registered it.
    pub registered_height: u64,
    /// Settled calls.
    pub calls: u64,
    /// Total price paid to the owners over all settled calls.
    #[serde(with = "deed_types::amount_serde")]
    pub earnings: Amount,
}

/// A blinded claim on a model id, made by [`deed_types::TxBody::CommitModel`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Commitment {
    /// Who committed; only this account can reveal it.
    pub owner: Address,
    /// Height of the block that recorded it.
    pub height: u64,
    /// Last height at which it can still be revealed (`height + commit_ttl_blocks`).
    pub expires_height: u64,
}

/// A paid inference request.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Job {
    /// The id: the hash of the `RequestInference` transaction.
    pub id: Hash32,
    /// Who paid.
    pub payer: Address,
    /// The model to run.
    pub model: Cid,
    /// The input tensor set's blob id.
    pub input: Cid,
    /// Escrowed price, paid to the model's owners on settlement.
    #[serde(with = "deed_types::amount_serde")]
    pub price: Amount,
    /// Escrowed executor fee, paid to the executor on settlement.
    #[serde(with = "deed_types::amount_serde")]
    pub executor_fee: Amount,
    /// Height of the block that requested it.
    pub height: u64,
    /// Pending or settled.
    pub status: JobStatus,
}

/// Where a job stands.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for an executor's receipt; `price + executor_fee` is in escrow.
    Pending,
    /// Paid out on a receipt.
    Settled {
        /// The executor whose receipt settled it.
        executor: PublicKey,
        /// The receipt's id.
        receipt: Hash32,
        /// The output hash the receipt attests.
        output_hash: Hash32,
        /// Height of the block that settled it.
        height: u64,
    },
}

/// A staked executor.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Executor {
    /// The key its receipts are signed with; executor fees go to this key's address.
    pub key: PublicKey,
    /// Staked base units (not spendable; counted in total supply).
    #[serde(with = "deed_types::amount_serde")]
    pub stake: Amount,
}

/// The outcome of one transaction, as recorded by the node.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TxResult {
    /// The transaction id.
    pub hash: Hash32,
    /// Whether it was applied.
    pub ok: bool,
    /// Why not, for a user to read.
    pub error: Option<String>,
}

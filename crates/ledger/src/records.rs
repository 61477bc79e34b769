//! The records the ledger keeps in state: accounts, models, commitments, jobs, executors.
//!
//! Stored borsh-encoded under the keys of [`crate::keys`]; written as JSON by the HTTP API.

use borsh::{BorshDeserialize, BorshSerialize};
use deed_types::{Address, Amount, Cid, Hash32, JobMode, Parent, PublicKey};
use serde::{Deserialize, Serialize};

/// Full ownership in basis points: the `bps` of a model's owners sum to this.
pub const BPS_TOTAL: u16 = 10_000;
/// Shares that must back a change, strictly more than: half. One owner holding more may
/// publish a new version under a model's name; owners voting for the same license who
/// together hold more change it (see [`ModelRecord::license_votes`]).
pub const MAJORITY_BPS: u16 = 5_000;
/// Most royalty a model may pay its parents in total, in basis points: half its revenue.
pub const ROYALTY_BPS_MAX: u16 = 5_000;
/// Most parents a model may name.
pub const PARENTS_MAX: usize = 8;
/// Longest chain of ancestors: an original model has depth 0, its child 1, and so on.
pub const LINEAGE_DEPTH_MAX: u32 = 8;
/// Most distinct ancestors a model may have (bounds the work of one settlement).
pub const ANCESTORS_MAX: usize = 64;
/// Most owners of one model (bounds the work of one settlement).
pub const OWNERS_MAX: usize = 32;
/// Most versions under one model name.
pub const VERSIONS_MAX: u32 = 100_000;

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
    /// Total paid to the owners: call revenue net of royalties, plus royalties from
    /// descendants.
    #[serde(with = "deed_types::amount_serde")]
    pub earnings: Amount,
    /// Version number under `name` (1 for the first model of a name).
    pub version: u32,
    /// The models it derives from and the royalty each receives.
    pub parents: Vec<Parent>,
    /// Who revealed it (holds the registration, not necessarily shares).
    pub registrant: Address,
    /// Height of the registrant's commitment: an earlier live commitment to the same id
    /// takes the registration over.
    pub commit_height: u64,
    /// Royalties received from descendants' calls (included in `earnings`).
    #[serde(with = "deed_types::amount_serde")]
    pub royalties_in: Amount,
    /// Royalties paid to ancestors out of this model's revenue.
    #[serde(with = "deed_types::amount_serde")]
    pub royalties_out: Amount,
    /// Pending votes for a new license: at most one per owner, sorted by voter address.
    ///
    /// An owner's `SetLicense` records (or replaces) its vote. When the owners voting for
    /// the same price hold more than [`MAJORITY_BPS`] together, counted at their current
    /// shares, the price changes at once and every pending vote is cleared. A share
    /// transfer clears the votes of both its parties (their shares changed, so they vote
    /// again), so every pending vote is backed by exactly the shares its voter holds and no
    /// share counts twice; a takeover clears them all.
    pub license_votes: Vec<LicenseVote>,
}

/// One owner's pending vote for a model's license (see [`ModelRecord::license_votes`]).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct LicenseVote {
    /// The owner who voted.
    pub voter: Address,
    /// The price per call it voted for (0 = open).
    #[serde(with = "deed_types::amount_serde")]
    pub price: Amount,
    /// Height of the block that recorded the vote.
    pub height: u64,
}

impl ModelRecord {
    /// The basis points `a` holds (0 if none).
    pub fn bps_of(&self, a: &Address) -> u16 {
        self.owners.iter().find(|o| o.address == *a).map_or(0, |o| o.bps)
    }

    /// The basis points currently held by the owners with a pending vote for `price`.
    pub fn license_tally(&self, price: Amount) -> u32 {
        self.license_votes.iter().filter(|v| v.price == price).map(|v| u32::from(self.bps_of(&v.voter))).sum()
    }

    /// Records `voter`'s vote for `price` at `height`, replacing its earlier vote, then
    /// applies the license rule: if the owners voting for `price` now hold more than
    /// [`MAJORITY_BPS`] together, the price becomes `price`, every pending vote is cleared,
    /// and the result is true. The caller checks that `voter` is an owner.
    pub fn vote_license(&mut self, voter: Address, price: Amount, height: u64) -> bool {
        let vote = LicenseVote { voter, price, height };
        match self.license_votes.binary_search_by(|v| v.voter.cmp(&voter)) {
            Ok(i) => self.license_votes[i] = vote,
            Err(i) => self.license_votes.insert(i, vote),
        }
        if self.license_tally(price) > u32::from(MAJORITY_BPS) {
            self.price = price;
            self.license_votes.clear();
            true
        } else {
            false
        }
    }

    /// Drops the pending license votes of `a` and `b` (the parties of a share transfer).
    pub fn clear_votes_of(&mut self, a: &Address, b: &Address) {
        self.license_votes.retain(|v| v.voter != *a && v.voter != *b);
    }
}

/// A model name and its ordered list of versions (stored under `name/`; the versions
/// under `namev/`).
///
/// Whoever first registers a model under a name owns the name; after that, a new
/// version may be registered under it only by an account holding a strict majority
/// (> 5,000 bps) of the shares of the name's latest live version.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct NameRecord {
    /// The name.
    pub name: String,
    /// Versions ever registered (withdrawn ones included); the next is `versions + 1`.
    pub versions: u32,
    /// The latest version not withdrawn; `None` if every version was withdrawn (the name
    /// is then free for anyone).
    pub latest: Option<Cid>,
}

/// One version of a name.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct NameVersion {
    /// Version number, from 1.
    pub version: u32,
    /// The model.
    pub model: Cid,
    /// True when an earlier commitment took the model over and it left this name.
    pub withdrawn: bool,
}

/// What an account has earned, cumulatively.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Earnings {
    /// As a model owner: shares of call revenue and of royalties.
    #[serde(with = "deed_types::amount_serde")]
    pub owner: Amount,
    /// As an executor: executor fees.
    #[serde(with = "deed_types::amount_serde")]
    pub executor: Amount,
}

/// Stake on its way back to an executor's balance.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Unbonding {
    /// The executor.
    pub key: PublicKey,
    /// Base units unbonding (slashable until released).
    #[serde(with = "deed_types::amount_serde")]
    pub amount: Amount,
    /// The first block at this height or later returns it to the balance.
    pub release_height: u64,
}

/// A blinded claim on a model id, made by [`deed_types::TxBody::CommitModel`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Commitment {
    /// Who committed; only this account can reveal it.
    pub owner: Address,
    /// Height of the block that recorded it.
    pub height: u64,
    /// Last height at which it can still be revealed (`height + commit_ttl_blocks`); the
    /// first block after it deletes it.
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
    /// Escrowed price, paid to the model's owners and ancestors on settlement.
    #[serde(with = "deed_types::amount_serde")]
    pub price: Amount,
    /// Escrowed executor fee, paid to the executor on settlement.
    #[serde(with = "deed_types::amount_serde")]
    pub executor_fee: Amount,
    /// Height of the block that requested it.
    pub height: u64,
    /// One executor and a challenge window, or K that must agree.
    pub mode: JobMode,
    /// The receipts submitted so far, in order.
    pub receipts: Vec<ReceiptRef>,
    /// Where the job stands.
    pub status: JobStatus,
}

/// A receipt submitted for a job (the receipt itself is stored under `rcptx/`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ReceiptRef {
    /// Who signed it.
    pub executor: PublicKey,
    /// The receipt's id.
    pub receipt: Hash32,
    /// The output hash it attests.
    pub output_hash: Hash32,
    /// Its trace root.
    pub trace_root: Hash32,
    /// Height of the block that included it.
    pub height: u64,
}

/// Where a job stands.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for receipts; `price + replicas × executor_fee` is in escrow.
    Pending,
    /// A `single` job's receipt is in; it settles at height `until` unless a fraud
    /// proof lands first.
    Challengeable {
        /// The height at whose start the job settles.
        until: u64,
    },
    /// The executors of a `replicated` job disagree; fraud proofs may land until height
    /// `until`, each striking the receipt it proves wrong. Then, if the receipts left
    /// standing agree, they settle the job; otherwise the payer is refunded.
    Disputed {
        /// The height at whose start the payer is refunded.
        until: u64,
    },
    /// The escrow went back to the payer.
    Refunded {
        /// Height of the block that refunded it.
        height: u64,
        /// Why.
        reason: String,
    },
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

impl JobStatus {
    /// Short name, as in JSON's `state`.
    pub fn name(&self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Challengeable { .. } => "challengeable",
            JobStatus::Disputed { .. } => "disputed",
            JobStatus::Refunded { .. } => "refunded",
            JobStatus::Settled { .. } => "settled",
        }
    }
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

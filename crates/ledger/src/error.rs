//! Why a transaction or a block is refused. Messages are written for the person who
//! sent the transaction: what is wrong, and what to do about it.

use deed_types::{Amount, Cid, Hash32};

/// Why a transaction cannot be applied.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The transaction names another chain.
    #[error("wrong chain: this chain is '{expected}', the transaction is for '{got}'; sign it for '{expected}'")]
    WrongChain {
        /// This chain's id.
        expected: String,
        /// The transaction's chain id.
        got: String,
    },
    /// The signature does not match the sender key.
    #[error("bad signature: the transaction is not signed by its sender's key; sign it again")]
    BadSignature,
    /// The nonce was already used.
    #[error("nonce {got} was already used (account nonce is {expected}): a replayed or duplicate transaction")]
    NonceTooLow {
        /// The nonce the next transaction must carry.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce skips ahead.
    #[error(
        "nonce {got} is ahead of the next nonce {expected}: send the missing transactions first, or use nonce {expected}"
    )]
    NonceGap {
        /// The nonce the next transaction must carry.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The fee is under the chain's minimum.
    #[error("fee too low: the minimum fee is {min}, the transaction offers {got}")]
    FeeTooLow {
        /// The chain's minimum fee.
        min: Amount,
        /// The transaction's fee.
        got: Amount,
    },
    /// The sender cannot pay.
    #[error("insufficient funds: needs {needed}, balance is {available}")]
    InsufficientFunds {
        /// Fee plus amounts moved.
        needed: Amount,
        /// The sender's balance.
        available: Amount,
    },
    /// The model is not registered.
    #[error("unknown model {0}: it is not registered on this chain")]
    UnknownModel(Cid),
    /// The model is already registered.
    #[error("model {0} is already registered")]
    ModelExists(Cid),
    /// A reveal without a matching commitment by the sender.
    #[error(
        "no commitment: send CommitModel with model_commitment(model, your address, salt) first, \
         and reveal with the same model and salt in a later block"
    )]
    NoCommitment,
    /// A reveal in the same block as its commitment.
    #[error("commitment too recent: reveal the model in a block after the one that recorded its commitment")]
    CommitmentTooRecent,
    /// A reveal after the commitment expired.
    #[error("commitment expired: commit again with a fresh salt, then reveal within the commitment's lifetime")]
    CommitmentExpired,
    /// The sender already has a live commitment with this hash.
    #[error("duplicate commitment: you already have a live commitment with this hash; reveal it instead")]
    DuplicateCommitment,
    /// The offered price differs from the model's price.
    #[error("price mismatch: the model's price is {model_price}, the request offers {offered}")]
    PriceMismatch {
        /// The model's current price.
        model_price: Amount,
        /// The price in the request.
        offered: Amount,
    },
    /// The receipt names a job that does not exist.
    #[error("unknown job: no inference request with this id exists")]
    UnknownJob,
    /// The job takes no more receipts.
    #[error("job already answered: it has all the receipts it asked for")]
    JobSettled,
    /// This executor already answered this job.
    #[error("this executor already submitted a receipt for this job")]
    AlreadySubmitted,
    /// The job or receipt cannot be challenged now.
    #[error("cannot challenge: {0}")]
    NotChallengeable(String),
    /// A blob the transaction needs (model, input, or a challenger's producer blob) is
    /// not available to this node; upload it, then resubmit.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The job mode is not allowed.
    #[error("bad job mode: {0}")]
    BadMode(String),
    /// The sender is not a staked executor.
    #[error("not staked: only an executor with at least the minimum stake can submit receipts")]
    NotStaked,
    /// The receipt disagrees with the job or the submitter.
    #[error("receipt does not match: {0}")]
    ReceiptMismatch(String),
    /// The receipt's signature or trace root does not verify.
    #[error("bad receipt: {0}")]
    BadReceipt(String),
    /// The model name is unusable.
    #[error("bad model name: {0}")]
    BadName(String),
    /// An amount would exceed the largest representable amount.
    #[error("amount overflow: {0}")]
    Overflow(String),
    /// The encoded transaction is over the size limit.
    #[error("transaction too large: {bytes} bytes, the limit is {max}")]
    TooLarge {
        /// Encoded size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A reveal whose commitment is later than the one the model was registered with.
    #[error(
        "model {model} is already registered from a commitment at height {registered}; your commitment is from \
         height {yours}: only an earlier live commitment can take a registration over"
    )]
    CommitmentNotEarliest {
        /// The model.
        model: Cid,
        /// Height of the registered commitment.
        registered: u64,
        /// Height of the sender's commitment.
        yours: u64,
    },
    /// The name belongs to someone else.
    #[error(
        "the name '{name}' is taken: only an owner of more than half of its latest version ({latest}) can add a \
         version; choose another name"
    )]
    NameTaken {
        /// The name.
        name: String,
        /// Its latest version.
        latest: Cid,
    },
    /// The name has too many versions.
    #[error("the name '{0}' has the most versions allowed; choose another name")]
    TooManyVersions(String),
    /// The sender holds fewer shares than it tries to move.
    #[error("you hold {held} bps of model {model}, not {requested}: you can only transfer shares you hold")]
    InsufficientShares {
        /// The model.
        model: Cid,
        /// Basis points the sender holds.
        held: u16,
        /// Basis points it tried to move.
        requested: u16,
    },
    /// The sender holds no shares of the model, so it has no vote on its license.
    #[error("you hold no shares of model {model}: only its owners can vote on its license")]
    NotOwner {
        /// The model.
        model: Cid,
    },
    /// The shares operation is malformed.
    #[error("bad shares: {0}")]
    BadShares(String),
    /// A named parent is not registered.
    #[error("unknown parent {0}: a parent must be a registered model")]
    UnknownParent(Cid),
    /// The lineage would contain a cycle.
    #[error("lineage cycle: model {0} would become its own ancestor")]
    LineageCycle(Cid),
    /// The lineage is too deep.
    #[error("lineage too deep: the model would have depth {depth}, the limit is {max} generations")]
    LineageTooDeep {
        /// The depth it would have.
        depth: u32,
        /// The limit.
        max: u32,
    },
    /// The lineage has too many distinct ancestors.
    #[error("lineage too wide: the model would have {count} ancestors, the limit is {max}")]
    TooManyAncestors {
        /// Distinct ancestors it would have.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The declared parents are malformed (too many, duplicated, royalties over the cap).
    #[error("bad parents: {0}")]
    BadParents(String),
    /// More unstaked than staked.
    #[error("insufficient stake: {staked} staked, {requested} requested")]
    InsufficientStake {
        /// The stake.
        staked: Amount,
        /// The amount asked for.
        requested: Amount,
    },
    /// An amount that must be positive is zero.
    #[error("bad amount: {0}")]
    BadAmount(String),
    /// The state has no genesis (a node set-up error).
    #[error("the ledger has no genesis: initialize the chain first")]
    NoGenesis,
    /// Equivocation evidence that does not prove equivocation.
    #[error("bad evidence: {0}")]
    BadEvidence(String),
}

/// Why a block cannot be applied.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The header is malformed, for another chain, or badly signed.
    #[error("bad block header: {0}")]
    BadHeader(String),
    /// A transaction in the block fails.
    #[error("transaction {index} ({hash}) in the block fails: {error}")]
    Tx {
        /// Position in the block.
        index: usize,
        /// Its id.
        hash: Hash32,
        /// Why it fails.
        error: TxError,
    },
    /// The header's state root differs from the state the block produces.
    #[error("state root mismatch: the header says {expected}, applying the block gives {computed}")]
    StateRootMismatch {
        /// The header's root.
        expected: Hash32,
        /// The computed root.
        computed: Hash32,
    },
    /// The block has more transactions than allowed.
    #[error("too many transactions: {count}, the limit is {max}")]
    TooManyTxs {
        /// Transactions in the block.
        count: usize,
        /// `params.block_txs_max`.
        max: u32,
    },
    /// The state has no genesis.
    #[error("the ledger has no genesis: initialize the chain first")]
    NoGenesis,
}

/// Why a genesis is unusable.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// The genesis is inconsistent.
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

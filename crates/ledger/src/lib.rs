//! The state machine: apply a block to authenticated state (accounts, models, jobs, stakes). Pure.
//!
//! The ledger is a pure function of (state, block): no clock (time comes from the
//! block header), no I/O, no randomness, no floats, no hash-map iteration. State is a
//! sorted byte map read through [`StateRead`]; executing a block yields a [`WriteSet`]
//! and the new state root, which the caller persists ([`db::ChainDb`] does so
//! atomically with the block).
//!
//! - [`genesis_writes`] builds the initial state.
//! - [`propose`] (producer) runs candidate transactions and drops those that fail.
//! - [`apply_block`] (validator, replay) requires every transaction to succeed and the
//!   header's state root to match.
//! - [`check_tx`] admits transactions to the mempool.
//! - [`query`] answers questions about a state.
//!
//! # State layout
//!
//! Keys are an ASCII prefix followed by fixed-width binary ids; values are borsh.
//!
//! | key                                              | value                 |
//! |--------------------------------------------------|-----------------------|
//! | `meta/chain_id`                                  | chain id (`String`)   |
//! | `meta/params`                                    | [`deed_types::Params`]|
//! | `meta/validators`                                | `Vec<PublicKey>` (block producers) |
//! | `acct/` ‖ address (20 bytes)                     | [`Account`] (absent = zero) |
//! | `model/` ‖ model cid digest (32)                 | [`ModelRecord`]       |
//! | `commit/` ‖ commitment hash (32) ‖ owner (20)    | [`Commitment`]        |
//! | `job/` ‖ job id = request tx hash (32)           | [`Job`]               |
//! | `jobp/` ‖ job id (32)                            | empty (pending index) |
//! | `rcpt/` ‖ job id (32)                            | [`deed_types::SignedReceipt`] |
//! | `exec/` ‖ executor public key (32)               | [`Executor`]          |
//!
//! Commitments are keyed by hash *and* committer, so copying someone's commitment
//! hash from the mempool cannot block their commitment.
//!
//! Also `commitq/`, `name/`, `namev/`, `earn/`, `unbond/`, `unbondq/`: see [`keys`].
//!
//! # State root
//!
//! The root of a sparse Merkle tree over every entry ([`smt`]), kept next to the state
//! under `~smt/` and updated incrementally once per block (work ∝ keys changed × tree
//! depth). [`prove`] gives inclusion and non-inclusion proofs; [`verify_proof`] checks
//! them without state (for light clients and `deed prove`).
//!
//! # Per block
//!
//! Before its transactions, every block sweeps (bounded, oldest first, at most
//! [`SWEEP_ENTRIES_MAX`] each): commitments whose `expires_height` is below the block's
//! height are deleted; unbonding stake whose release height has come returns to the
//! executor's balance.
//!
//! # Models, names and versions
//!
//! A name owns an ordered list of versions (1, 2, …). The first registration under a
//! name creates it, owned by its registrant. A later registration under the same name
//! appends the next version only if the sender holds a strict majority (> 5,000 bps) of
//! the shares of the name's latest live version; otherwise it is refused
//! ([`TxError::NameTaken`]). So the right to publish versions follows the majority of
//! shares.
//!
//! Shares are basis points summing to 10,000 ([`BPS_TOTAL`]); `TransferShares` moves
//! part or all of the sender's share (never more than it holds), at most [`OWNERS_MAX`]
//! owners. A job escrows the price current at request time.
//!
//! # Licenses: owners vote
//!
//! The license is the price per call (0 = open). Owners holding a majority of the shares
//! change it, alone or together, through votes kept in the model's record
//! ([`ModelRecord::license_votes`], part of the authenticated state):
//!
//! - `SetLicense { model, price }` from an owner records its vote for `price` (replacing
//!   its earlier vote, if any); a sender holding no shares is refused
//!   ([`TxError::NotOwner`]). The transaction succeeds whether or not the license changes.
//! - Right after recording it, the votes for `price` are tallied at the voters' *current*
//!   shares. If they hold more than [`MAJORITY_BPS`] (5,000 bps) together, the price
//!   becomes `price` at once and every pending vote on the model (for any price) is
//!   cleared. So an owner with more than 5,000 bps changes the license in one transaction,
//!   and two owners of 3,000 bps each change it with their second vote. Exactly half is
//!   not enough; votes for different prices never add up.
//! - `TransferShares` clears the pending votes of its sender and its recipient: their
//!   shares changed, so they vote again if they still want to. Every pending vote is
//!   therefore backed by exactly the shares its voter holds, each owner has at most one
//!   vote, and no share is counted twice. A takeover (the contest rule) clears all votes.
//! - Votes do not expire. An owner withdraws support for a pending price by voting for
//!   another one (for example the current price).
//!
//! Votes are kept sorted by voter address, so the record's encoding is canonical; a
//! model has at most [`OWNERS_MAX`] of them.
//!
//! # The contest rule
//!
//! The earliest live commitment to an id wins it. A reveal for an id that is already
//! registered takes the registration over if the revealer's (live, older than this
//! block) commitment was made at a strictly lower height than the registered one's;
//! otherwise it is refused ([`TxError::CommitmentNotEarliest`]; same-height commitments:
//! the first reveal keeps it). Since the challenger's commitment must still be live, a
//! takeover can only happen within `commit_ttl_blocks` of the registration. A takeover:
//! owners become the challenger alone; price, parents and name are the challenger's; the
//! old version is marked withdrawn from its name; calls already settled stay paid (the
//! counters are kept as history) and pending jobs settle to the new owners. The new
//! parents get the full lineage check, including the cycle check, since this is the only
//! way an existing model's parents change.
//!
//! # Lineage and settlement rounding
//!
//! A model names up to [`PARENTS_MAX`] registered parents with a royalty each, at most
//! [`ROYALTY_BPS_MAX`] (5,000 bps) in total; depth at most [`LINEAGE_DEPTH_MAX`], at most
//! [`ANCESTORS_MAX`] distinct ancestors; no cycles. When a call settles, [`distribute`]
//! splits the price generation by generation: a model with revenue `r` pays each parent
//! `floor(r * royalty_bps / 10_000)` and its owners the rest, split by [`split`]: each
//! owner `floor(rest * bps / 10_000)`, the remainder to the first owner. Every remainder
//! stays at the paying model, so exactly the price is paid out. Earnings are recorded
//! per model ([`ModelRecord`]) and per account ([`Earnings`]).
//!
//! # Stakes
//!
//! `Stake` moves balance into the sender's executor stake. `Unstake` moves stake into an
//! unbonding entry released `params.unbonding_blocks` later, automatically, by the first
//! block at or after that height (no withdraw transaction). Unbonding stake stays
//! slashable; [`slash`] takes from the stake first, then from unbonding entries.

pub mod db;
mod error;
mod exec;
mod fraud;
pub mod keys;
pub mod query;
mod records;
pub mod smt;
pub mod snapshot;
mod state;

pub use error::{BlockError, GenesisError, TxError};
pub use exec::{
    BlockEnv, BlockOutcome, ModelPayout, Payouts, Proposal, RECEIPT_VERSION, SWEEP_ENTRIES_MAX, Slash, apply_block,
    apply_block_checked, apply_block_with_blobs, bad_signatures, check_genesis, check_tx, check_tx_verified,
    distribute, genesis_writes, mul_bps, propose, propose_checked, propose_with_blobs, slash, split,
};
pub use fraud::{BlobSource, BlobWeights, CachedBlobs, NoBlobs, load_model};
pub use records::{
    ANCESTORS_MAX, Account, BPS_TOTAL, Commitment, Earnings, Executor, Job, JobStatus, LINEAGE_DEPTH_MAX, LicenseVote,
    MAJORITY_BPS, ModelRecord, NameRecord, NameVersion, OWNERS_MAX, Owner, PARENTS_MAX, ROYALTY_BPS_MAX, ReceiptRef,
    TxResult, Unbonding, VERSIONS_MAX,
};
pub use state::{
    Layered, MemState, ProofLeaf, StateProof, StateRead, WriteSet, leaf_digest, prove, state_root, verify_proof,
};

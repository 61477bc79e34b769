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
//! # State root
//!
//! The binary Merkle root ([`deed_types::merkle::root`]) over
//! `leaf = BLAKE3-derive-key("deed state leaf v1", key_len as u32 LE ‖ key ‖ value)`
//! for every entry in ascending key order; all zeros for the empty state. It is
//! recomputed in full per block (O(state)), behind one internal function so an
//! incremental sparse Merkle tree can replace it without changing the API.
//! [`prove`] gives inclusion proofs against it.
//!
//! # Settlement rounding
//!
//! A call's price is split among the model's owners by basis points: each gets
//! `floor(price * bps / 10_000)` (computed as `(price / 10_000) * bps + (price % 10_000) * bps / 10_000`,
//! which cannot overflow), and what rounding leaves goes to the first owner. See [`split`].
//!
//! # Not yet
//!
//! - TODO(contest): "the earliest commitment to an id wins it, even against an earlier
//!   reveal" — today the first valid reveal wins; a later reveal by an account holding an
//!   earlier commitment should be able to take the id over (within the commit lifetime).
//! - Expired commitments are not garbage-collected; Stake/Unstake, disputes, licenses
//!   and lineage come later.

pub mod db;
mod error;
mod exec;
pub mod keys;
pub mod query;
mod records;
mod state;

pub use error::{BlockError, GenesisError, TxError};
pub use exec::{
    BlockEnv, BlockOutcome, Proposal, RECEIPT_VERSION, apply_block, check_genesis, check_tx, genesis_writes, propose,
    split,
};
pub use records::{Account, BPS_TOTAL, Commitment, Executor, Job, JobStatus, ModelRecord, Owner, TxResult};
pub use state::{MemState, StateProof, StateRead, WriteSet, leaf_digest, prove, state_root};

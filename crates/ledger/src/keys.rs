//! The state key layout: every record lives under a short ASCII prefix followed by
//! fixed-width binary ids, so a prefix scan lists one kind of record in id order.
//!
//! | key                                   | value (borsh)            |
//! |---------------------------------------|--------------------------|
//! | `meta/chain_id`                       | `String`                 |
//! | `meta/params`                         | [`deed_types::Params`]   |
//! | `meta/validators`                     | `Vec<PublicKey>`: who may produce blocks |
//! | `acct/` ‖ address (20)                | [`crate::Account`]       |
//! | `model/` ‖ cid digest (32)            | [`crate::ModelRecord`]   |
//! | `commit/` ‖ commitment (32) ‖ owner address (20) | [`crate::Commitment`] |
//! | `job/` ‖ job id (32)                  | [`crate::Job`]           |
//! | `jobp/` ‖ job id (32)                 | empty: index of pending jobs |
//! | `rcpt/` ‖ job id (32)                 | [`deed_types::SignedReceipt`] |
//! | `exec/` ‖ public key (32)             | [`crate::Executor`]      |
//!
//! An account equal to the default (zero balance, nonce 0) is not stored.

use deed_types::{Address, Cid, Hash32, PublicKey};

/// Prefix of the chain-wide metadata keys.
pub const META: &[u8] = b"meta/";
/// Key of the chain id.
pub const CHAIN_ID: &[u8] = b"meta/chain_id";
/// Key of the chain parameters.
pub const PARAMS: &[u8] = b"meta/params";
/// Key of the block producers' keys.
pub const VALIDATORS: &[u8] = b"meta/validators";
/// Prefix of accounts.
pub const ACCOUNT: &[u8] = b"acct/";
/// Prefix of models.
pub const MODEL: &[u8] = b"model/";
/// Prefix of model commitments.
pub const COMMITMENT: &[u8] = b"commit/";
/// Prefix of jobs.
pub const JOB: &[u8] = b"job/";
/// Prefix of the pending-job index.
pub const PENDING_JOB: &[u8] = b"jobp/";
/// Prefix of receipts (by job id).
pub const RECEIPT: &[u8] = b"rcpt/";
/// Prefix of executors.
pub const EXECUTOR: &[u8] = b"exec/";

fn cat(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Key of an account.
pub fn account(a: &Address) -> Vec<u8> {
    cat(ACCOUNT, &[&a.0])
}

/// Key of a model.
pub fn model(id: &Cid) -> Vec<u8> {
    cat(MODEL, &[&id.0.0])
}

/// Key of a commitment made by `owner`.
pub fn commitment(c: &Hash32, owner: &Address) -> Vec<u8> {
    cat(COMMITMENT, &[&c.0, &owner.0])
}

/// Prefix of every account's commitment to `c`.
pub fn commitment_prefix(c: &Hash32) -> Vec<u8> {
    cat(COMMITMENT, &[&c.0])
}

/// Key of a job.
pub fn job(id: &Hash32) -> Vec<u8> {
    cat(JOB, &[&id.0])
}

/// Key of a job in the pending index.
pub fn pending_job(id: &Hash32) -> Vec<u8> {
    cat(PENDING_JOB, &[&id.0])
}

/// Key of a job's receipt.
pub fn receipt(job: &Hash32) -> Vec<u8> {
    cat(RECEIPT, &[&job.0])
}

/// Key of an executor.
pub fn executor(k: &PublicKey) -> Vec<u8> {
    cat(EXECUTOR, &[&k.0])
}

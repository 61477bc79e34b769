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
//! | `rcptx/` ‖ job id (32) ‖ executor key (32) | [`deed_types::SignedReceipt`]: each executor's receipt |
//! | `jobq/` ‖ height (8, BE) ‖ job id (32) | empty: the job's challenge/dispute window closes at that height |
//! | `jobt/` ‖ height (8, BE) ‖ job id (32) | empty: the job is refunded then if still unanswered |
//! | `commitq/` ‖ expires height (8, BE) ‖ commitment (32) ‖ owner (20) | empty: expiry queue |
//! | `name/` ‖ BLAKE3(name) (32)           | [`crate::NameRecord`]    |
//! | `namev/` ‖ BLAKE3(name) (32) ‖ version (4, BE) | [`crate::NameVersion`] |
//! | `earn/` ‖ address (20)                | [`crate::Earnings`]      |
//! | `unbond/` ‖ public key (32) ‖ release height (8, BE) | [`crate::Unbonding`] |
//! | `unbondq/` ‖ release height (8, BE) ‖ public key (32) | empty: release queue |
//! | `~smt/…`                              | the state tree's own nodes (not leaves; see [`crate::smt`]) |
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
/// Prefix of the commitment expiry queue.
pub const COMMIT_QUEUE: &[u8] = b"commitq/";
/// Prefix of model names.
pub const NAME: &[u8] = b"name/";
/// Prefix of model name versions.
pub const NAME_VERSION: &[u8] = b"namev/";
/// Prefix of per-account earnings.
pub const EARNINGS: &[u8] = b"earn/";
/// Prefix of unbonding stakes.
pub const UNBONDING: &[u8] = b"unbond/";
/// Prefix of the unbonding release queue.
pub const UNBOND_QUEUE: &[u8] = b"unbondq/";

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

/// Prefix of every executor's receipt for a job (a replicated job has several).
pub const JOB_RECEIPT: &[u8] = b"rcptx/";
/// Prefix of the queue of jobs whose challenge or dispute window closes at a height.
pub const JOB_QUEUE: &[u8] = b"jobq/";
/// Prefix of the queue of jobs that time out unanswered at a height.
pub const JOB_TIMEOUT: &[u8] = b"jobt/";

/// Key of one executor's receipt for a job.
pub fn job_receipt(job: &Hash32, executor: &PublicKey) -> Vec<u8> {
    cat(JOB_RECEIPT, &[&job.0, &executor.0])
}

/// Key of a job in the window queue: it is decided at `height`.
pub fn job_queue(height: u64, job: &Hash32) -> Vec<u8> {
    cat(JOB_QUEUE, &[&height.to_be_bytes(), &job.0])
}

/// Key of a job in the timeout queue: refunded at `height` if still unanswered.
pub fn job_timeout(height: u64, job: &Hash32) -> Vec<u8> {
    cat(JOB_TIMEOUT, &[&height.to_be_bytes(), &job.0])
}

/// Key of an executor.
pub fn executor(k: &PublicKey) -> Vec<u8> {
    cat(EXECUTOR, &[&k.0])
}

/// Key of a commitment's entry in the expiry queue.
pub fn commit_queue(expires_height: u64, c: &Hash32, owner: &Address) -> Vec<u8> {
    cat(COMMIT_QUEUE, &[&expires_height.to_be_bytes(), &c.0, &owner.0])
}

/// The hash that keys a model name.
pub fn name_hash(name: &str) -> Hash32 {
    Hash32::tagged("deed model name v1", name.as_bytes())
}

/// Key of a model name.
pub fn name(name: &str) -> Vec<u8> {
    cat(NAME, &[&name_hash(name).0])
}

/// Prefix of every version of a model name.
pub fn name_versions(name: &str) -> Vec<u8> {
    cat(NAME_VERSION, &[&name_hash(name).0])
}

/// Key of one version of a model name.
pub fn name_version(name: &str, version: u32) -> Vec<u8> {
    cat(NAME_VERSION, &[&name_hash(name).0, &version.to_be_bytes()])
}

/// Key of an account's earnings.
pub fn earnings(a: &Address) -> Vec<u8> {
    cat(EARNINGS, &[&a.0])
}

/// Prefix of an executor's unbonding entries.
pub fn unbondings(k: &PublicKey) -> Vec<u8> {
    cat(UNBONDING, &[&k.0])
}

/// Key of an executor's unbonding entry released at `release_height`.
pub fn unbonding(k: &PublicKey, release_height: u64) -> Vec<u8> {
    cat(UNBONDING, &[&k.0, &release_height.to_be_bytes()])
}

/// Key of an unbonding entry in the release queue.
pub fn unbond_queue(release_height: u64, k: &PublicKey) -> Vec<u8> {
    cat(UNBOND_QUEUE, &[&release_height.to_be_bytes(), &k.0])
}

//! Read-only questions about state, for the node's API and for tests.

use crate::exec::{decode, read};
use crate::keys;
use crate::records::{
    Account, Commitment, Earnings, Executor, Job, JobStatus, ModelRecord, NameRecord, NameVersion, Unbonding,
};
use crate::state::StateRead;
use deed_types::{Address, Amount, Cid, Hash32, Params, PublicKey, SignedReceipt};

/// The chain id from genesis.
pub fn chain_id(s: &impl StateRead) -> Option<String> {
    read(s, keys::CHAIN_ID)
}

/// The chain parameters from genesis.
pub fn params(s: &impl StateRead) -> Option<Params> {
    read(s, keys::PARAMS)
}

/// The keys allowed to produce blocks (empty: anyone).
pub fn validators(s: &impl StateRead) -> Vec<PublicKey> {
    read(s, keys::VALIDATORS).unwrap_or_default()
}

/// An account; the zero account if it was never funded.
pub fn account(s: &impl StateRead, a: &Address) -> Account {
    read(s, &keys::account(a)).unwrap_or_default()
}

/// Every account with a balance or a used nonce, in address order.
pub fn accounts(s: &impl StateRead) -> Vec<(Address, Account)> {
    s.scan_prefix(keys::ACCOUNT)
        .into_iter()
        .map(|(k, v)| {
            let a: [u8; 20] = k[keys::ACCOUNT.len()..].try_into().expect("account keys end in a 20-byte address");
            (Address(a), decode(&k, &v))
        })
        .collect()
}

/// A registered model.
pub fn model(s: &impl StateRead, id: &Cid) -> Option<ModelRecord> {
    read(s, &keys::model(id))
}

/// Every registered model, by registration height, then id.
pub fn models(s: &impl StateRead) -> Vec<ModelRecord> {
    let mut v: Vec<ModelRecord> = s.scan_prefix(keys::MODEL).into_iter().map(|(k, v)| decode(&k, &v)).collect();
    v.sort_by_key(|m| (m.registered_height, m.id));
    v
}

/// A job.
pub fn job(s: &impl StateRead, id: &Hash32) -> Option<Job> {
    read(s, &keys::job(id))
}

/// Every pending job, in job id order.
pub fn pending_jobs(s: &impl StateRead) -> Vec<Job> {
    s.scan_prefix(keys::PENDING_JOB)
        .into_iter()
        .map(|(k, _)| {
            let id: [u8; 32] = k[keys::PENDING_JOB.len()..].try_into().expect("pending keys end in a 32-byte id");
            let j = job(s, &Hash32(id)).expect("every pending index entry has a job");
            assert_eq!(j.status, JobStatus::Pending, "the pending index lists only pending jobs");
            j
        })
        .collect()
}

/// One executor's receipt for a job.
pub fn job_receipt(s: &impl StateRead, job: &Hash32, executor: &PublicKey) -> Option<SignedReceipt> {
    read(s, &keys::job_receipt(job, executor))
}

/// The receipt that settled a job.
pub fn receipt(s: &impl StateRead, job: &Hash32) -> Option<SignedReceipt> {
    read(s, &keys::receipt(job))
}

/// A staked executor.
pub fn executor(s: &impl StateRead, key: &PublicKey) -> Option<Executor> {
    read(s, &keys::executor(key))
}

/// Every staked executor, in key order.
pub fn executors(s: &impl StateRead) -> Vec<Executor> {
    s.scan_prefix(keys::EXECUTOR).into_iter().map(|(k, v)| decode(&k, &v)).collect()
}

/// A commitment with this hash. Commitments are per account (an account cannot block
/// another by copying its commitment hash); if several accounts committed to the same
/// hash, the earliest (then lowest address) is returned.
pub fn commitment(s: &impl StateRead, c: &Hash32) -> Option<Commitment> {
    s.scan_prefix(&keys::commitment_prefix(c))
        .into_iter()
        .map(|(k, v)| decode::<Commitment>(&k, &v))
        .min_by_key(|c| (c.height, c.owner))
}

/// The commitment with this hash made by `owner`.
pub fn commitment_by(s: &impl StateRead, c: &Hash32, owner: &Address) -> Option<Commitment> {
    read(s, &keys::commitment(c, owner))
}

/// A model name and its latest live version.
pub fn name(s: &impl StateRead, name: &str) -> Option<NameRecord> {
    read(s, &keys::name(name))
}

/// Every version of a model name, in version order (withdrawn ones included).
pub fn name_versions(s: &impl StateRead, name: &str) -> Vec<NameVersion> {
    s.scan_prefix(&keys::name_versions(name)).into_iter().map(|(k, v)| decode(&k, &v)).collect()
}

/// What an account has earned as owner and as executor.
pub fn earnings(s: &impl StateRead, a: &Address) -> Earnings {
    read(s, &keys::earnings(a)).unwrap_or_default()
}

/// An executor's stake on its way back, soonest release first.
pub fn unbonding(s: &impl StateRead, key: &PublicKey) -> Vec<Unbonding> {
    s.scan_prefix(&keys::unbondings(key)).into_iter().map(|(k, v)| decode(&k, &v)).collect()
}

/// Every job whose escrow is still held: waiting for receipts, inside its challenge
/// window, or disputed.
pub fn open_jobs(s: &impl StateRead) -> Vec<Job> {
    s.scan_prefix(keys::JOB)
        .into_iter()
        .map(|(k, v)| decode::<Job>(&k, &v))
        .filter(|j| {
            matches!(j.status, JobStatus::Pending | JobStatus::Challengeable { .. } | JobStatus::Disputed { .. })
        })
        .collect()
}

/// All base units in existence: balances, stakes, unbonding stakes, and escrow of open jobs.
/// Constant from genesis on, since fees are paid to proposers rather than burned.
pub fn total_supply(s: &impl StateRead) -> Amount {
    let balances = accounts(s).into_iter().map(|(_, a)| a.balance);
    let stakes = executors(s).into_iter().map(|e| e.stake);
    let escrow = open_jobs(s).into_iter().map(|j| j.price + j.executor_fee * Amount::from(j.mode.replicas()));
    let unbonding = s.scan_prefix(keys::UNBONDING).into_iter().map(|(k, v)| decode::<Unbonding>(&k, &v).amount);
    balances
        .chain(stakes)
        .chain(escrow)
        .chain(unbonding)
        .fold(0, |t: Amount, x| t.checked_add(x).expect("total supply fits an Amount"))
}

//! Executing transactions and blocks: genesis, the producer's [`propose`], the
//! validator's [`apply_block`], and mempool admission with [`check_tx`].
//!
//! Every transaction is atomic: it either applies completely (fee, nonce and body)
//! or not at all. Fees go to the block's proposer, so the total supply never changes.

use crate::error::{BlockError, GenesisError, TxError};
use crate::fraud::{BlobSource, NoBlobs};
use crate::keys;
use crate::records::{
    ANCESTORS_MAX, Account, BPS_TOTAL, Commitment, Earnings, Executor, Job, JobStatus, LINEAGE_DEPTH_MAX, MAJORITY_BPS,
    ModelRecord, NameRecord, NameVersion, OWNERS_MAX, Owner, PARENTS_MAX, ROYALTY_BPS_MAX, ReceiptRef, Unbonding,
    VERSIONS_MAX,
};
use crate::state::{Overlay, StateRead, WriteSet, commit_root};
use borsh::{BorshDeserialize, BorshSerialize};
use deed_types::tx::{MODEL_NAME_BYTES_MAX, TX_BYTES_MAX, model_commitment};
use deed_types::{
    Address, Amount, Block, Cid, FraudProof, Genesis, Hash32, JobMode, Params, Parent, PublicKey, SignedReceipt,
    SignedTx, TxBody,
};
use std::collections::{BTreeMap, BTreeSet};

/// The receipt format version this ledger accepts.
pub const RECEIPT_VERSION: u8 = 1;

/// What a block's execution depends on besides state: taken from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEnv {
    /// The chain id (must equal the genesis chain id).
    pub chain_id: String,
    /// The block's height.
    pub height: u64,
    /// The block's time in ms since the Unix epoch.
    pub time_ms: u64,
    /// The block's producer; transaction fees go to its address.
    pub proposer: PublicKey,
}

impl BlockEnv {
    /// The environment a block's header describes.
    pub fn of(block: &Block) -> Self {
        let h = &block.header;
        BlockEnv { chain_id: h.chain_id.clone(), height: h.height, time_ms: h.time_ms, proposer: h.proposer }
    }
}

/// The producer's result: which transactions go into the block and what they do.
#[derive(Clone, Debug)]
pub struct Proposal {
    /// Transactions that applied, in order: the block's body.
    pub included: Vec<SignedTx>,
    /// Transactions that failed, with the reason; they are not in the block.
    pub rejected: Vec<(Hash32, TxError)>,
    /// The state changes of `included`.
    pub writes: WriteSet,
    /// The state root after `writes`: the header's `state_root`.
    pub state_root: Hash32,
}

impl Proposal {
    /// One [`crate::TxResult`] per included and rejected transaction, for
    /// [`crate::db::ChainDb::commit_block`].
    pub fn results(&self) -> Vec<crate::TxResult> {
        let ok = self.included.iter().map(|t| crate::TxResult { hash: t.hash(), ok: true, error: None });
        let bad =
            self.rejected.iter().map(|(h, e)| crate::TxResult { hash: *h, ok: false, error: Some(e.to_string()) });
        ok.chain(bad).collect()
    }
}

/// What applying a block does.
#[derive(Clone, Debug)]
pub struct BlockOutcome {
    /// The state changes.
    pub writes: WriteSet,
    /// The state root after them (equal to the header's).
    pub state_root: Hash32,
}

// ---------------------------------------------------------------------------------------
// Typed state access.

/// Reads and decodes a record; a value that does not decode is a broken invariant.
pub(crate) fn read<T: BorshDeserialize>(s: &(impl StateRead + ?Sized), key: &[u8]) -> Option<T> {
    s.get(key).map(|v| decode(key, &v))
}

pub(crate) fn decode<T: BorshDeserialize>(key: &[u8], v: &[u8]) -> T {
    borsh::from_slice(v)
        .unwrap_or_else(|e| panic!("corrupt ledger state under key {}: {e}", String::from_utf8_lossy(key)))
}

fn enc<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh encoding to a Vec cannot fail")
}

/// The chain id and parameters from genesis.
pub(crate) fn meta(s: &(impl StateRead + ?Sized)) -> Option<(String, Params)> {
    Some((read(s, keys::CHAIN_ID)?, read(s, keys::PARAMS)?))
}

/// A transaction's view of state: reads see its own writes first.
struct TxView<'a, S: StateRead + ?Sized> {
    o: Overlay<'a, S>,
}

impl<S: StateRead + ?Sized> TxView<'_, S> {
    fn get<T: BorshDeserialize>(&self, key: &[u8]) -> Option<T> {
        read(&self.o, key)
    }
    fn put<T: BorshSerialize>(&mut self, key: Vec<u8>, v: &T) {
        self.o.writes.put(key, enc(v));
    }
    fn del(&mut self, key: Vec<u8>) {
        self.o.writes.delete(key);
    }
    fn account(&self, a: &Address) -> Account {
        self.get(&keys::account(a)).unwrap_or_default()
    }
    fn set_account(&mut self, a: &Address, acct: &Account) {
        if *acct == Account::default() {
            self.del(keys::account(a));
        } else {
            self.put(keys::account(a), acct);
        }
    }
    fn debit(&mut self, a: &Address, amount: Amount) -> Result<(), TxError> {
        let mut acct = self.account(a);
        acct.balance = acct
            .balance
            .checked_sub(amount)
            .ok_or(TxError::InsufficientFunds { needed: amount, available: acct.balance })?;
        self.set_account(a, &acct);
        Ok(())
    }
    fn credit(&mut self, a: &Address, amount: Amount) -> Result<(), TxError> {
        if amount == 0 {
            return Ok(());
        }
        let mut acct = self.account(a);
        acct.balance = acct.balance.checked_add(amount).ok_or_else(|| TxError::Overflow(format!("balance of {a}")))?;
        self.set_account(a, &acct);
        Ok(())
    }
    /// Credits `amount` and records it in `a`'s earnings (as owner or as executor).
    fn earn(&mut self, a: &Address, amount: Amount, as_owner: bool) -> Result<(), TxError> {
        if amount == 0 {
            return Ok(());
        }
        self.credit(a, amount)?;
        let key = keys::earnings(a);
        let mut e: Earnings = self.get(&key).unwrap_or_default();
        let slot = if as_owner { &mut e.owner } else { &mut e.executor };
        *slot = slot.checked_add(amount).ok_or_else(|| TxError::Overflow(format!("earnings of {a}")))?;
        self.put(key, &e);
        Ok(())
    }
    fn model(&self, id: &Cid) -> Result<ModelRecord, TxError> {
        self.get(&keys::model(id)).ok_or(TxError::UnknownModel(*id))
    }
}

// ---------------------------------------------------------------------------------------
// Genesis.

/// Checks that a genesis is usable: a chain id, unique accounts and executors, and a
/// total supply that fits in an [`Amount`].
pub fn check_genesis(g: &Genesis) -> Result<(), GenesisError> {
    let bad = |m: String| Err(GenesisError::Invalid(m));
    if g.chain_id.is_empty() || g.chain_id.len() > 64 || g.chain_id.chars().any(|c| c.is_control()) {
        return bad("the chain id must be 1 to 64 printable bytes".into());
    }
    let mut supply: Amount = 0;
    let mut seen = std::collections::BTreeSet::new();
    for a in &g.accounts {
        if !seen.insert(a.address) {
            return bad(format!("account {} is listed twice", a.address));
        }
        supply = match supply.checked_add(a.balance) {
            Some(s) => s,
            None => return bad("total supply exceeds the largest amount".into()),
        };
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in &g.validators {
        if !seen.insert(*v) {
            return bad(format!("validator {v} is listed twice"));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in &g.executors {
        if !seen.insert(e.key) {
            return bad(format!("executor {} is listed twice", e.key));
        }
        supply = match supply.checked_add(e.stake) {
            Some(s) => s,
            None => return bad("total supply exceeds the largest amount".into()),
        };
    }
    Ok(())
}

/// The state a chain starts from (chain id, params, accounts, executors) and its root.
///
/// Panics if [`check_genesis`] refuses `g`.
pub fn genesis_writes(g: &Genesis) -> (WriteSet, Hash32) {
    if let Err(e) = check_genesis(g) {
        panic!("{e}");
    }
    let mut w = WriteSet::default();
    w.put(keys::CHAIN_ID.to_vec(), enc(&g.chain_id));
    w.put(keys::PARAMS.to_vec(), enc(&g.params));
    w.put(keys::VALIDATORS.to_vec(), enc(&g.validators));
    for a in &g.accounts {
        if a.balance > 0 {
            w.put(keys::account(&a.address), enc(&Account { balance: a.balance, nonce: 0 }));
        }
    }
    for e in &g.executors {
        w.put(keys::executor(&e.key), enc(&Executor { key: e.key, stake: e.stake }));
    }
    let root = commit_root(&crate::MemState::new(), &mut w);
    (w, root)
}

// ---------------------------------------------------------------------------------------
// Transaction checks.

/// Base units a transaction moves out of the sender's balance besides its fee.
fn body_amount(body: &TxBody, params: &Params) -> Result<Amount, TxError> {
    match body {
        TxBody::Transfer { amount, .. } => Ok(*amount),
        TxBody::RequestInference { price, executor_fee, mode, .. } => executor_fee
            .checked_mul(Amount::from(mode.replicas()))
            .and_then(|fees| fees.checked_add(*price))
            .ok_or_else(|| TxError::Overflow("price + executor fees exceed the largest amount".into())),
        TxBody::Stake { amount } => Ok(*amount),
        TxBody::Challenge { .. } => Ok(params.jobs.challenge_bond),
        _ => Ok(0),
    }
}

/// A model name is 1..=128 bytes of printable text.
fn check_name(name: &str) -> Result<(), TxError> {
    if name.trim().is_empty() {
        return Err(TxError::BadName("the name is empty; give the model a name".into()));
    }
    if name.len() > MODEL_NAME_BYTES_MAX {
        return Err(TxError::BadName(format!(
            "the name is {} bytes, the limit is {MODEL_NAME_BYTES_MAX}; shorten it",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(TxError::BadName("the name contains control characters; use printable text".into()));
    }
    Ok(())
}

/// Checks that need no state: size, and the body's self-consistency.
fn check_stateless(stx: &SignedTx) -> Result<(), TxError> {
    let bytes = borsh::object_length(stx).expect("borsh length cannot fail");
    if bytes > TX_BYTES_MAX {
        return Err(TxError::TooLarge { bytes, max: TX_BYTES_MAX });
    }
    match &stx.tx.body {
        TxBody::RegisterModel { name, parents, .. } => {
            check_name(name)?;
            check_parents_stateless(parents)?;
        }
        TxBody::SubmitReceipt { receipt } => check_receipt_stateless(&stx.tx.sender, receipt)?,
        TxBody::RequestInference { mode: JobMode::Replicated(0), .. } => {
            return Err(TxError::BadMode("replicated jobs need at least one executor".into()));
        }
        TxBody::Challenge { executor, .. } if *executor == stx.tx.sender => {
            return Err(TxError::NotChallengeable("an executor cannot challenge its own receipt".into()));
        }
        TxBody::TransferShares { to, bps, .. } => {
            if *bps == 0 || *bps > BPS_TOTAL {
                return Err(TxError::BadShares(format!("transfer 1 to {BPS_TOTAL} bps, not {bps}")));
            }
            if *to == stx.sender() {
                return Err(TxError::BadShares("transferring shares to yourself does nothing".into()));
            }
        }
        TxBody::Stake { amount } | TxBody::Unstake { amount } if *amount == 0 => {
            return Err(TxError::BadAmount("stake and unstake a positive amount".into()));
        }
        _ => {}
    }
    Ok(())
}

/// Parents must be few, distinct, and pay at most [`ROYALTY_BPS_MAX`] in total.
fn check_parents_stateless(parents: &[Parent]) -> Result<(), TxError> {
    if parents.len() > PARENTS_MAX {
        return Err(TxError::BadParents(format!("{} parents named, the limit is {PARENTS_MAX}", parents.len())));
    }
    let distinct: BTreeSet<Cid> = parents.iter().map(|p| p.model).collect();
    if distinct.len() != parents.len() {
        return Err(TxError::BadParents("a parent is named twice".into()));
    }
    let total: u32 = parents.iter().map(|p| u32::from(p.royalty_bps)).sum();
    if total > u32::from(ROYALTY_BPS_MAX) {
        return Err(TxError::BadParents(format!(
            "royalties total {total} bps, over the cap of {ROYALTY_BPS_MAX} bps (half of each call's revenue)"
        )));
    }
    Ok(())
}

fn check_receipt_stateless(sender: &PublicKey, r: &SignedReceipt) -> Result<(), TxError> {
    if r.receipt.executor != *sender {
        return Err(TxError::ReceiptMismatch(format!(
            "the receipt's executor is {}, but the transaction is sent by {sender}; executors submit their own receipts",
            r.receipt.executor
        )));
    }
    if r.receipt.version != RECEIPT_VERSION {
        return Err(TxError::ReceiptMismatch(format!(
            "receipt version {} is not supported (expected {RECEIPT_VERSION})",
            r.receipt.version
        )));
    }
    if r.receipt.engine.trim().is_empty() {
        return Err(TxError::ReceiptMismatch("the receipt does not name the engine version that ran".into()));
    }
    r.verify().map_err(|e| TxError::BadReceipt(e.to_string()))
}

fn check_nonce(acct: &Account, got: u64) -> Result<(), TxError> {
    if got < acct.nonce {
        return Err(TxError::NonceTooLow { expected: acct.nonce, got });
    }
    if got > acct.nonce {
        return Err(TxError::NonceGap { expected: acct.nonce, got });
    }
    Ok(())
}

/// Mempool admission: signature, chain id, size, fee, nonce and affordability against
/// `state`. `pending_nonce` is the nonce the sender's next transaction must carry given
/// the sender's transactions already in the mempool (the account nonce if none).
///
/// Affordability is checked against the current balance only, not net of the sender's
/// other pending transactions; a transaction that cannot pay by the time it is
/// proposed is dropped by [`propose`].
pub fn check_tx(state: &impl StateRead, stx: &SignedTx, pending_nonce: u64) -> Result<(), TxError> {
    stx.verify().map_err(|_| TxError::BadSignature)?;
    check_tx_verified(state, stx, pending_nonce)
}

/// [`check_tx`] for a transaction whose signature the caller has already checked (for
/// example with [`bad_signatures`] over a whole batch): every other rule.
pub fn check_tx_verified(state: &impl StateRead, stx: &SignedTx, pending_nonce: u64) -> Result<(), TxError> {
    let (chain_id, params) = meta(state).ok_or(TxError::NoGenesis)?;
    if stx.tx.chain_id != chain_id {
        return Err(TxError::WrongChain { expected: chain_id, got: stx.tx.chain_id.clone() });
    }
    check_stateless(stx)?;
    let acct: Account = read(state, &keys::account(&stx.sender())).unwrap_or_default();
    if stx.tx.nonce < acct.nonce {
        return Err(TxError::NonceTooLow { expected: acct.nonce, got: stx.tx.nonce });
    }
    let next = pending_nonce.max(acct.nonce);
    if stx.tx.nonce < next {
        return Err(TxError::NonceTooLow { expected: next, got: stx.tx.nonce });
    }
    if stx.tx.nonce > next {
        return Err(TxError::NonceGap { expected: next, got: stx.tx.nonce });
    }
    if stx.tx.fee < params.min_tx_fee {
        return Err(TxError::FeeTooLow { min: params.min_tx_fee, got: stx.tx.fee });
    }
    let needed = stx
        .tx
        .fee
        .checked_add(body_amount(&stx.tx.body, &params)?)
        .ok_or_else(|| TxError::Overflow("fee + amount exceeds the largest amount".into()))?;
    if acct.balance < needed {
        return Err(TxError::InsufficientFunds { needed, available: acct.balance });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Execution.

/// Everything a transaction's execution reads besides state.
struct Ctx<'e> {
    chain_id: &'e str,
    params: &'e Params,
    env: &'e BlockEnv,
    blobs: &'e dyn BlobSource,
}

/// Applies one transaction whose signature is already checked, on top of `view`;
/// returns its writes, or why it fails (then it has no effect).
fn execute(view: &(impl StateRead + ?Sized), cx: &Ctx<'_>, stx: &SignedTx) -> Result<WriteSet, TxError> {
    let tx = &stx.tx;
    if tx.chain_id != cx.chain_id {
        return Err(TxError::WrongChain { expected: cx.chain_id.to_string(), got: tx.chain_id.clone() });
    }
    check_stateless(stx)?;
    let sender = stx.sender();
    let mut v = TxView { o: Overlay::new(view) };
    let mut acct = v.account(&sender);
    check_nonce(&acct, tx.nonce)?;
    if tx.fee < cx.params.min_tx_fee {
        return Err(TxError::FeeTooLow { min: cx.params.min_tx_fee, got: tx.fee });
    }
    let needed = tx
        .fee
        .checked_add(body_amount(&tx.body, cx.params)?)
        .ok_or_else(|| TxError::Overflow("fee + amount exceeds the largest amount".into()))?;
    if acct.balance < needed {
        return Err(TxError::InsufficientFunds { needed, available: acct.balance });
    }
    acct.balance -= tx.fee;
    acct.nonce = acct.nonce.checked_add(1).ok_or_else(|| TxError::Overflow("account nonce".into()))?;
    v.set_account(&sender, &acct);
    v.credit(&cx.env.proposer.address(), tx.fee)?;

    match &tx.body {
        TxBody::Transfer { to, amount } => {
            v.debit(&sender, *amount)?;
            v.credit(to, *amount)?;
        }
        TxBody::CommitModel { commitment } => {
            let key = keys::commitment(commitment, &sender);
            if let Some(c) = v.get::<Commitment>(&key) {
                if cx.env.height <= c.expires_height {
                    return Err(TxError::DuplicateCommitment);
                }
                // Expired but not yet swept: replace it, and its place in the expiry queue.
                v.del(keys::commit_queue(c.expires_height, commitment, &sender));
            }
            let expires_height = cx
                .env
                .height
                .checked_add(cx.params.commit_ttl_blocks)
                .ok_or_else(|| TxError::Overflow("commitment expiry height".into()))?;
            v.put(key, &Commitment { owner: sender, height: cx.env.height, expires_height });
            v.o.writes.put(keys::commit_queue(expires_height, commitment, &sender), Vec::new());
        }
        TxBody::RegisterModel { model, name, salt, price, parents } => {
            register(&mut v, cx, &sender, model, name, salt, *price, parents)?;
        }
        TxBody::RequestInference { model, input, price, executor_fee, mode } => {
            if mode.replicas() > cx.params.jobs.replicas_max {
                return Err(TxError::BadMode(format!(
                    "{mode} asks for more executors than the chain allows ({})",
                    cx.params.jobs.replicas_max
                )));
            }
            let rec = v.model(model)?;
            if rec.price != *price {
                return Err(TxError::PriceMismatch { model_price: rec.price, offered: *price });
            }
            let id = stx.hash();
            assert!(
                v.get::<Job>(&keys::job(&id)).is_none(),
                "a job id is a transaction id and nonces make them unique"
            );
            v.debit(&sender, body_amount(&tx.body, cx.params)?)?;
            let job = Job {
                id,
                payer: sender,
                model: *model,
                input: *input,
                price: *price,
                executor_fee: *executor_fee,
                height: cx.env.height,
                mode: *mode,
                receipts: Vec::new(),
                status: JobStatus::Pending,
            };
            v.put(keys::job(&id), &job);
            v.o.writes.put(keys::pending_job(&id), Vec::new());
            let timeout = cx.env.height.saturating_add(cx.params.jobs.job_timeout_blocks.max(1));
            v.o.writes.put(keys::job_timeout(timeout, &id), Vec::new());
        }
        TxBody::SubmitReceipt { receipt } => submit_receipt(&mut v, cx, receipt)?,
        TxBody::Challenge { job, executor, proof } => challenge(&mut v, cx, &sender, job, executor, proof)?,
        TxBody::TransferShares { model, to, bps } => {
            let mut rec = v.model(model)?;
            let held = rec.bps_of(&sender);
            if held < *bps {
                return Err(TxError::InsufficientShares { model: *model, held, requested: *bps });
            }
            // Existing owners keep their places (the first receives rounding remainders);
            // a new owner goes last; an owner left with nothing leaves.
            match rec.owners.iter_mut().find(|o| o.address == *to) {
                Some(o) => o.bps += *bps,
                None => rec.owners.push(Owner { address: *to, bps: *bps }),
            }
            let from = rec.owners.iter_mut().find(|o| o.address == sender).expect("the sender holds shares");
            from.bps -= *bps;
            rec.owners.retain(|o| o.bps > 0);
            // Both parties' shares changed: their pending license votes no longer say how
            // many shares back them, so they go (the license rule never counts a share twice).
            rec.clear_votes_of(&sender, to);
            if rec.owners.len() > OWNERS_MAX {
                return Err(TxError::BadShares(format!("a model has at most {OWNERS_MAX} owners")));
            }
            assert_eq!(rec.owners.iter().map(|o| u32::from(o.bps)).sum::<u32>(), u32::from(BPS_TOTAL));
            v.put(keys::model(model), &rec);
        }
        TxBody::SetLicense { model, price } => {
            // A vote; it changes the license once the owners voting for this price hold a
            // majority (see `ModelRecord::license_votes`).
            let mut rec = v.model(model)?;
            if rec.bps_of(&sender) == 0 {
                return Err(TxError::NotOwner { model: *model });
            }
            rec.vote_license(sender, *price, cx.env.height);
            v.put(keys::model(model), &rec);
        }
        TxBody::Stake { amount } => {
            v.debit(&sender, *amount)?;
            let key = keys::executor(&tx.sender);
            let mut ex: Executor = v.get(&key).unwrap_or(Executor { key: tx.sender, stake: 0 });
            ex.stake = ex.stake.checked_add(*amount).ok_or_else(|| TxError::Overflow("stake".into()))?;
            v.put(key, &ex);
        }
        TxBody::Unstake { amount } => {
            let key = keys::executor(&tx.sender);
            let mut ex: Executor = v.get(&key).unwrap_or(Executor { key: tx.sender, stake: 0 });
            if ex.stake < *amount {
                return Err(TxError::InsufficientStake { staked: ex.stake, requested: *amount });
            }
            ex.stake -= *amount;
            if ex.stake == 0 {
                v.del(key);
            } else {
                v.put(key, &ex);
            }
            let release_height = cx
                .env
                .height
                .checked_add(cx.params.unbonding_blocks)
                .ok_or_else(|| TxError::Overflow("release height".into()))?;
            let ukey = keys::unbonding(&tx.sender, release_height);
            let mut u: Unbonding = v.get(&ukey).unwrap_or(Unbonding { key: tx.sender, amount: 0, release_height });
            u.amount = u.amount.checked_add(*amount).ok_or_else(|| TxError::Overflow("unbonding".into()))?;
            v.put(ukey, &u);
            v.o.writes.put(keys::unbond_queue(release_height, &tx.sender), Vec::new());
        }
        TxBody::Evidence { validator, vote_a, sig_a, vote_b, sig_b } => {
            let validators: Vec<PublicKey> = v.get(keys::VALIDATORS).unwrap_or_default();
            if !validators.contains(validator) {
                return Err(TxError::BadEvidence(format!("{validator} is not a validator of this chain")));
            }
            evidence::check(cx.chain_id, validator, vote_a, sig_a, vote_b, sig_b)?;
            let s = slash(&v.o, validator, Amount::MAX, &sender)?;
            v.o.writes.extend(s.writes);
        }
    }
    Ok(v.o.writes)
}

/// A reveal: registers `model` for the sender, or takes over an existing registration
/// made from a later commitment (the contest rule, see the crate docs).
#[allow(clippy::too_many_arguments)]
fn register<S: StateRead + ?Sized>(
    v: &mut TxView<'_, S>,
    cx: &Ctx<'_>,
    sender: &Address,
    model: &Cid,
    name: &str,
    salt: &Hash32,
    price: Amount,
    parents: &[Parent],
) -> Result<(), TxError> {
    let existing: Option<ModelRecord> = v.get(&keys::model(model));
    if existing.as_ref().is_some_and(|old| old.registrant == *sender) {
        return Err(TxError::ModelExists(*model));
    }
    let commitment = model_commitment(model, sender, salt);
    let key = keys::commitment(&commitment, sender);
    let c: Commitment = v.get(&key).ok_or(TxError::NoCommitment)?;
    assert_eq!(c.owner, *sender, "a commitment is keyed by its owner");
    if c.height >= cx.env.height {
        return Err(TxError::CommitmentTooRecent);
    }
    if cx.env.height > c.expires_height {
        return Err(TxError::CommitmentExpired);
    }
    let mut rec = ModelRecord {
        id: *model,
        name: name.to_string(),
        owners: vec![Owner { address: *sender, bps: BPS_TOTAL }],
        price,
        registered_height: cx.env.height,
        calls: 0,
        earnings: 0,
        version: 0,
        parents: parents.to_vec(),
        registrant: *sender,
        commit_height: c.height,
        royalties_in: 0,
        royalties_out: 0,
        license_votes: Vec::new(),
    };
    if let Some(old) = existing {
        if c.height >= old.commit_height {
            return Err(TxError::CommitmentNotEarliest {
                model: *model,
                registered: old.commit_height,
                yours: c.height,
            });
        }
        // Takeover: the earlier committer gets the registration. What was paid out stays
        // paid (the counters are history); pending jobs settle to the new owners.
        withdraw_version(v, &old)?;
        rec.calls = old.calls;
        rec.earnings = old.earnings;
        rec.royalties_in = old.royalties_in;
        rec.royalties_out = old.royalties_out;
        check_lineage(v, model, parents, true)?;
    } else {
        check_lineage(v, model, parents, false)?;
    }
    v.del(key);
    v.del(keys::commit_queue(c.expires_height, &commitment, sender));
    rec.version = add_version(v, sender, name, model)?;
    v.put(keys::model(model), &rec);
    Ok(())
}

/// Appends `model` as the next version of `name`, if `sender` may: the name is new or
/// free, or `sender` holds a strict majority of its latest live version. The version.
fn add_version<S: StateRead + ?Sized>(
    v: &mut TxView<'_, S>,
    sender: &Address,
    name: &str,
    model: &Cid,
) -> Result<u32, TxError> {
    let key = keys::name(name);
    let mut rec: NameRecord = v.get(&key).unwrap_or(NameRecord { name: name.to_string(), versions: 0, latest: None });
    if let Some(latest) = rec.latest {
        let m = v.model(&latest).expect("a name's latest version is registered");
        if m.bps_of(sender) <= MAJORITY_BPS {
            return Err(TxError::NameTaken { name: name.to_string(), latest });
        }
    }
    if rec.versions >= VERSIONS_MAX {
        return Err(TxError::TooManyVersions(name.to_string()));
    }
    rec.versions += 1;
    rec.latest = Some(*model);
    let version = rec.versions;
    v.put(key, &rec);
    v.put(keys::name_version(name, version), &NameVersion { version, model: *model, withdrawn: false });
    Ok(version)
}

/// Marks a taken-over model's version withdrawn from its name; the name's latest live
/// version moves back if it was the latest.
fn withdraw_version<S: StateRead + ?Sized>(v: &mut TxView<'_, S>, old: &ModelRecord) -> Result<(), TxError> {
    let vkey = keys::name_version(&old.name, old.version);
    let mut ver: NameVersion = v.get(&vkey).expect("a registered model's version exists");
    ver.withdrawn = true;
    v.put(vkey, &ver);
    let key = keys::name(&old.name);
    let mut rec: NameRecord = v.get(&key).expect("a registered model's name exists");
    if rec.latest == Some(old.id) {
        rec.latest =
            v.o.scan_prefix(&keys::name_versions(&old.name))
                .into_iter()
                .rev()
                .map(|(k, val)| decode::<NameVersion>(&k, &val))
                .find(|nv| !nv.withdrawn)
                .map(|nv| nv.model);
    }
    v.put(key, &rec);
    Ok(())
}

/// Parents must be registered; the lineage must stay acyclic (only a takeover can
/// re-parent an existing model), at most [`LINEAGE_DEPTH_MAX`] deep, and have at most
/// [`ANCESTORS_MAX`] distinct ancestors.
fn check_lineage<S: StateRead + ?Sized>(
    v: &TxView<'_, S>,
    model: &Cid,
    parents: &[Parent],
    existing: bool,
) -> Result<(), TxError> {
    for p in parents {
        if p.model == *model && existing {
            return Err(TxError::LineageCycle(*model));
        }
        if v.get::<ModelRecord>(&keys::model(&p.model)).is_none() {
            return Err(TxError::UnknownParent(p.model));
        }
    }
    // Depth-first over the ancestry with memoized depths; stops as soon as a limit is hit.
    let mut depth: BTreeMap<Cid, u32> = BTreeMap::new();
    let mut max_parent_depth = None::<u32>;
    for p in parents {
        let d = ancestor_depth(v, &p.model, model, &mut depth)?;
        max_parent_depth = Some(max_parent_depth.map_or(d, |m| m.max(d)));
    }
    let d = max_parent_depth.map_or(0, |m| m + 1);
    if d > LINEAGE_DEPTH_MAX {
        return Err(TxError::LineageTooDeep { depth: d, max: LINEAGE_DEPTH_MAX });
    }
    Ok(())
}

/// The depth of `id` (0 for an original model), memoized in `seen`; refuses if `child`
/// is among its ancestors or the ancestry grows past the limits.
fn ancestor_depth<S: StateRead + ?Sized>(
    v: &TxView<'_, S>,
    id: &Cid,
    child: &Cid,
    seen: &mut BTreeMap<Cid, u32>,
) -> Result<u32, TxError> {
    if id == child {
        return Err(TxError::LineageCycle(*child));
    }
    if let Some(d) = seen.get(id) {
        return Ok(*d);
    }
    if seen.len() >= ANCESTORS_MAX {
        return Err(TxError::TooManyAncestors { count: seen.len() + 1, max: ANCESTORS_MAX });
    }
    let rec = v.model(id).expect("every parent of a registered model is registered");
    let mut d = 0;
    for p in &rec.parents {
        let pd = ancestor_depth(v, &p.model, child, seen)?;
        d = d.max(pd + 1);
        if d > LINEAGE_DEPTH_MAX {
            return Err(TxError::LineageTooDeep { depth: d + 1, max: LINEAGE_DEPTH_MAX });
        }
    }
    seen.insert(*id, d);
    Ok(d)
}

/// Checks a receipt against its job and records it. A `single` job then waits out its
/// challenge window (or settles at once when the window is 0); a `replicated` job
/// settles when all K receipts agree, and opens a dispute by itself when they do not.
fn submit_receipt<S: StateRead + ?Sized>(
    v: &mut TxView<'_, S>,
    cx: &Ctx<'_>,
    sr: &SignedReceipt,
) -> Result<(), TxError> {
    let r = &sr.receipt;
    let ex: Executor = v.get(&keys::executor(&r.executor)).ok_or(TxError::NotStaked)?;
    if ex.stake < cx.params.min_executor_stake {
        return Err(TxError::NotStaked);
    }
    if r.chain_id != cx.chain_id {
        return Err(TxError::ReceiptMismatch(format!(
            "the receipt is for chain '{}', this chain is '{}'",
            r.chain_id, cx.chain_id
        )));
    }
    let mut job: Job = v.get(&keys::job(&r.job)).ok_or(TxError::UnknownJob)?;
    if job.status != JobStatus::Pending {
        return Err(TxError::JobSettled);
    }
    if job.receipts.iter().any(|x| x.executor == r.executor) {
        return Err(TxError::AlreadySubmitted);
    }
    let mismatch = |what: &str, job_v: String, rec_v: String| {
        Err(TxError::ReceiptMismatch(format!("the job's {what} is {job_v}, the receipt says {rec_v}")))
    };
    if r.model != job.model {
        return mismatch("model", job.model.to_string(), r.model.to_string());
    }
    if r.input_hash != *job.input.digest() {
        return mismatch("input hash", job.input.digest().to_string(), r.input_hash.to_string());
    }
    if r.price != job.price {
        return mismatch("price", job.price.to_string(), r.price.to_string());
    }
    if r.executor_fee != job.executor_fee {
        return mismatch("executor fee", job.executor_fee.to_string(), r.executor_fee.to_string());
    }
    let h = cx.env.height;
    job.receipts.push(ReceiptRef {
        executor: r.executor,
        receipt: r.hash(),
        output_hash: r.output_hash,
        trace_root: r.trace_root,
        height: h,
    });
    v.put(keys::job_receipt(&job.id, &r.executor), sr);
    if job.receipts.len() == 1 {
        // The canonical receipt of the job: the first one in.
        v.put(keys::receipt(&job.id), sr);
    }
    if job.receipts.len() < usize::from(job.mode.replicas()) {
        v.put(keys::job(&job.id), &job);
        return Ok(());
    }
    v.del(keys::pending_job(&job.id));
    match job.mode {
        JobMode::Single if cx.params.jobs.challenge_window_blocks > 0 => {
            let until = h.saturating_add(cx.params.jobs.challenge_window_blocks);
            job.status = JobStatus::Challengeable { until };
            v.o.writes.put(keys::job_queue(until, &job.id), Vec::new());
            v.put(keys::job(&job.id), &job);
        }
        _ => {
            if receipts_agree(&job.receipts) {
                pay_out(v, &mut job, h)?;
            } else {
                let until = h.saturating_add(cx.params.jobs.dispute_window_blocks.max(1));
                job.status = JobStatus::Disputed { until };
                v.o.writes.put(keys::job_queue(until, &job.id), Vec::new());
                v.put(keys::job(&job.id), &job);
            }
        }
    }
    Ok(())
}

/// Whether there are receipts and all attest the same output hash and trace root.
fn receipts_agree(receipts: &[ReceiptRef]) -> bool {
    receipts
        .first()
        .is_some_and(|f| receipts.iter().all(|x| x.output_hash == f.output_hash && x.trace_root == f.trace_root))
}

/// Pays a job out: the price up the lineage and to the owners ([`distribute`]), each
/// executor whose receipt stands its fee, and the fees of receipts struck by a fraud
/// proof back to the payer. The job's canonical receipt becomes the first one standing.
fn pay_out<S: StateRead + ?Sized>(v: &mut TxView<'_, S>, job: &mut Job, height: u64) -> Result<(), TxError> {
    let payouts = distribute(&v.o, &job.model, job.price);
    let mut paid: Amount = 0;
    for (addr, amount) in &payouts.accounts {
        v.earn(addr, *amount, true)?;
        paid += amount;
    }
    assert_eq!(paid, job.price, "settlement pays out exactly the price");
    for (id, m) in &payouts.models {
        let mut rec = v.model(id).expect("distribute reads registered models");
        let add = |a: Amount, b: Amount| a.checked_add(b).ok_or_else(|| TxError::Overflow("model earnings".into()));
        rec.earnings = add(rec.earnings, m.owners)?;
        rec.royalties_in = add(rec.royalties_in, m.royalties_in)?;
        rec.royalties_out = add(rec.royalties_out, m.royalties_out)?;
        if *id == job.model {
            rec.calls = rec.calls.checked_add(1).ok_or_else(|| TxError::Overflow("model call count".into()))?;
        }
        v.put(keys::model(id), &rec);
    }
    for x in job.receipts.clone() {
        v.earn(&x.executor.address(), job.executor_fee, false)?;
    }
    let struck = usize::from(job.mode.replicas()).saturating_sub(job.receipts.len()) as Amount;
    if struck > 0 {
        v.credit(&job.payer, job.executor_fee * struck)?;
    }
    let first = &job.receipts[0];
    let canonical: Option<SignedReceipt> = v.get(&keys::receipt(&job.id));
    if canonical.is_none_or(|c| c.receipt.hash() != first.receipt) {
        let standing: SignedReceipt =
            v.get(&keys::job_receipt(&job.id, &first.executor)).expect("standing receipts are stored");
        v.put(keys::receipt(&job.id), &standing);
    }
    job.status =
        JobStatus::Settled { executor: first.executor, receipt: first.receipt, output_hash: first.output_hash, height };
    v.put(keys::job(&job.id), job);
    Ok(())
}

/// What the payer escrowed for a job.
fn escrow_of(job: &Job) -> Amount {
    job.executor_fee * Amount::from(job.mode.replicas()) + job.price
}

/// Returns a job's whole escrow to its payer.
fn refund<S: StateRead + ?Sized>(
    v: &mut TxView<'_, S>,
    job: &mut Job,
    height: u64,
    reason: String,
) -> Result<(), TxError> {
    v.credit(&job.payer, escrow_of(job))?;
    v.del(keys::pending_job(&job.id));
    job.status = JobStatus::Refunded { height, reason };
    v.put(keys::job(&job.id), job);
    Ok(())
}

/// A fraud proof against one executor's standing receipt for a job. The challenger's
/// bond is escrowed first. If the proof holds: the executor loses `slash_bps` of its
/// stake, the challenger gets `challenger_reward_bps` of that plus the bond back and the
/// payer gets the rest of the slashed stake; then a disputed job strikes the receipt and
/// stays disputed while any receipt stands (see [`begin_block`]), and any other job ends
/// refunded (the payer gets the whole escrow back). If the proof fails: the bond goes to
/// the executor and the job goes on.
fn challenge<S: StateRead + ?Sized>(
    v: &mut TxView<'_, S>,
    cx: &Ctx<'_>,
    challenger: &Address,
    job_id: &Hash32,
    executor: &PublicKey,
    proof: &FraudProof,
) -> Result<(), TxError> {
    let mut job: Job = v.get(&keys::job(job_id)).ok_or(TxError::UnknownJob)?;
    let open = match job.status {
        JobStatus::Challengeable { until } | JobStatus::Disputed { until } => until,
        JobStatus::Pending if job.receipts.iter().any(|x| x.executor == *executor) => u64::MAX,
        ref other => {
            return Err(TxError::NotChallengeable(format!("the job is {}, past its challenge window", other.name())));
        }
    };
    assert!(open > cx.env.height, "closed windows are swept at the start of the block");
    // A receipt struck from a dispute stays stored (it is the evidence) but is no longer
    // the job's: it cannot be proven, nor its executor slashed, twice.
    if !job.receipts.iter().any(|x| x.executor == *executor) {
        return Err(TxError::NotChallengeable(format!("executor {executor} has no standing receipt for this job")));
    }
    let sr: SignedReceipt = v
        .get(&keys::job_receipt(job_id, executor))
        .ok_or_else(|| TxError::NotChallengeable(format!("executor {executor} has no receipt for this job")))?;
    let bond = cx.params.jobs.challenge_bond;
    v.debit(challenger, bond)?;
    if !crate::fraud::proven(cx.blobs, &job, &sr.receipt, proof)? {
        v.credit(&executor.address(), bond)?;
        return Ok(());
    }
    let (slashed, reward) = {
        let ex: Option<Executor> = v.get(&keys::executor(executor));
        let stake = ex.map_or(0, |e| e.stake);
        let amount = mul_bps(stake, cx.params.jobs.slash_bps);
        let s = slash(&v.o, executor, amount, challenger)?;
        v.o.writes.extend(s.writes);
        (s.slashed, mul_bps(s.slashed, cx.params.jobs.challenger_reward_bps))
    };
    // The challenger was credited everything slashed; the payer's part moves on.
    v.debit(challenger, slashed - reward)?;
    v.credit(&job.payer, slashed - reward)?;
    v.credit(challenger, bond)?;
    // In a dispute, the liar is struck from the job and the dispute goes on: more proofs
    // may land against the others, and if those left agree when the window closes, they
    // settle it (the honest executors are paid, the owners get the price).
    if let JobStatus::Disputed { .. } = job.status {
        job.receipts.retain(|x| x.executor != *executor);
        if !job.receipts.is_empty() {
            v.put(keys::job(job_id), &job);
            return Ok(());
        }
    }
    if let JobStatus::Challengeable { until } | JobStatus::Disputed { until } = job.status {
        v.del(keys::job_queue(until, job_id));
    }
    let reason = format!("fraud proven against executor {executor}: slashed {slashed}");
    refund(v, &mut job, cx.env.height, reason)
}

/// How one model's part of a settlement splits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelPayout {
    /// Paid to the model's owners.
    pub owners: Amount,
    /// Received from descendants as royalties.
    pub royalties_in: Amount,
    /// Paid to its parents as royalties.
    pub royalties_out: Amount,
}

/// Where a call's price goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payouts {
    /// Per account, in address order; sums to the price.
    pub accounts: BTreeMap<Address, Amount>,
    /// Per model touched, in id order.
    pub models: BTreeMap<Cid, ModelPayout>,
}

/// `floor(amount * bps / 10_000)` without overflow.
pub fn mul_bps(amount: Amount, bps: u16) -> Amount {
    let total = Amount::from(BPS_TOTAL);
    let bps = Amount::from(bps);
    // (amount / T) * bps <= amount since bps <= T; (amount % T) * bps < T * T.
    (amount / total) * bps + (amount % total) * bps / total
}

/// Splits a paid call's `price` for `model` up its lineage and among owners.
///
/// Generation 0 is the called model with revenue = price. Each generation is processed
/// in model id order; a model with revenue `r` pays each parent `floor(r * royalty_bps
/// / 10_000)` (the parent's revenue in the next generation, summed if several children
/// pay it), and what is left, `r - royalties`, goes to its owners by [`split`] (floors,
/// remainder to the first owner). Models at generation [`LINEAGE_DEPTH_MAX`] pay no
/// further royalties. Every rounding remainder stays with the paying model's owners,
/// so exactly `price` is paid out.
///
/// Panics if `model` or an ancestor is not registered (callers check the model first;
/// registered models are never deleted).
pub fn distribute(state: &(impl StateRead + ?Sized), model: &Cid, price: Amount) -> Payouts {
    let mut out = Payouts::default();
    let mut generation: BTreeMap<Cid, Amount> = BTreeMap::from([(*model, price)]);
    for g in 0..=LINEAGE_DEPTH_MAX {
        let mut next: BTreeMap<Cid, Amount> = BTreeMap::new();
        for (id, revenue) in &generation {
            let rec: ModelRecord = read(state, &keys::model(id)).expect("ancestors are registered");
            let mp = out.models.entry(*id).or_default();
            if g > 0 {
                mp.royalties_in += revenue;
            }
            let mut rest = *revenue;
            if g < LINEAGE_DEPTH_MAX {
                for p in &rec.parents {
                    let royalty = mul_bps(*revenue, p.royalty_bps);
                    rest -= royalty;
                    mp.royalties_out += royalty;
                    *next.entry(p.model).or_default() += royalty;
                }
            }
            mp.owners += rest;
            for (o, share) in rec.owners.iter().zip(split(rest, &rec.owners)) {
                *out.accounts.entry(o.address).or_default() += share;
            }
        }
        if next.is_empty() {
            break;
        }
        generation = next;
    }
    out.accounts.retain(|_, a| *a > 0);
    out
}

/// The per-block sweep, run before a block's transactions: deletes commitments that
/// expired before this block and returns unbonded stake whose release height has come,
/// at most [`SWEEP_ENTRIES_MAX`] of each per block (the rest wait for the next block,
/// oldest first).
fn begin_block(state: &(impl StateRead + ?Sized), height: u64) -> WriteSet {
    let mut v = TxView { o: Overlay::new(state) };
    // Jobs whose window closed: an unchallenged `single` receipt settles; a dispute
    // settles on the receipts left standing if they agree, else refunds the payer.
    for (k, _) in state.scan_prefix_limit(keys::JOB_QUEUE, SWEEP_ENTRIES_MAX) {
        let rest = &k[keys::JOB_QUEUE.len()..];
        let until = u64::from_be_bytes(rest[..8].try_into().expect("queue keys hold a height"));
        if until > height {
            break;
        }
        let id = Hash32(rest[8..40].try_into().expect("queue keys hold a job id"));
        v.del(k);
        let mut job: Job = v.get(&keys::job(&id)).expect("queued jobs exist");
        match job.status {
            JobStatus::Challengeable { .. } => {
                pay_out(&mut v, &mut job, height).expect("an escrowed price always pays out");
            }
            // Receipts only leave a dispute by a proven lie, so standing receipts that
            // agree mean every dissenter was proven wrong: they settle the job.
            JobStatus::Disputed { .. } if receipts_agree(&job.receipts) => {
                pay_out(&mut v, &mut job, height).expect("an escrowed price always pays out");
            }
            JobStatus::Disputed { .. } => {
                refund(&mut v, &mut job, height, "executors disagreed and no fraud proof settled it".into())
                    .expect("an escrow always refunds");
            }
            _ => {}
        }
    }
    for (k, _) in state.scan_prefix_limit(keys::JOB_TIMEOUT, SWEEP_ENTRIES_MAX) {
        let rest = &k[keys::JOB_TIMEOUT.len()..];
        let at = u64::from_be_bytes(rest[..8].try_into().expect("queue keys hold a height"));
        if at > height {
            break;
        }
        let id = Hash32(rest[8..40].try_into().expect("queue keys hold a job id"));
        v.del(k);
        let mut job: Job = v.get(&keys::job(&id)).expect("queued jobs exist");
        if job.status == JobStatus::Pending {
            refund(&mut v, &mut job, height, "no executor answered in time".into()).expect("an escrow always refunds");
        }
    }
    for (k, _) in state.scan_prefix_limit(keys::COMMIT_QUEUE, SWEEP_ENTRIES_MAX) {
        let rest = &k[keys::COMMIT_QUEUE.len()..];
        let expires = u64::from_be_bytes(rest[..8].try_into().expect("queue keys hold a height"));
        if expires >= height {
            break;
        }
        let c = Hash32(rest[8..40].try_into().expect("queue keys hold a commitment"));
        let owner = Address(rest[40..60].try_into().expect("queue keys hold an owner"));
        v.del(keys::commitment(&c, &owner));
        v.del(k);
    }
    for (k, _) in state.scan_prefix_limit(keys::UNBOND_QUEUE, SWEEP_ENTRIES_MAX) {
        let rest = &k[keys::UNBOND_QUEUE.len()..];
        let release = u64::from_be_bytes(rest[..8].try_into().expect("queue keys hold a height"));
        if release > height {
            break;
        }
        let key = PublicKey(rest[8..40].try_into().expect("queue keys hold a key"));
        let ukey = keys::unbonding(&key, release);
        if let Some(u) = v.get::<Unbonding>(&ukey) {
            v.credit(&key.address(), u.amount).expect("released stake was counted in the supply");
            v.del(ukey);
        }
        v.del(k);
    }
    v.o.writes
}

/// Most expired commitments, and most unbonding releases, one block processes.
pub const SWEEP_ENTRIES_MAX: usize = 1_024;

/// What [`slash`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slash {
    /// The state changes.
    pub writes: WriteSet,
    /// Base units taken (at most what was asked; less if the executor has less).
    pub slashed: Amount,
}

/// Takes up to `amount` from `executor`'s stake, then from its unbonding stake (soonest
/// release first), and pays it to `beneficiary`. Pure: the caller (the verification
/// rules) applies the writes as part of a transaction. Slashing nothing is not an error.
pub fn slash(
    state: &(impl StateRead + ?Sized),
    executor: &PublicKey,
    amount: Amount,
    beneficiary: &Address,
) -> Result<Slash, TxError> {
    let mut v = TxView { o: Overlay::new(state) };
    let mut left = amount;
    let key = keys::executor(executor);
    if let Some(mut ex) = v.get::<Executor>(&key) {
        let take = ex.stake.min(left);
        ex.stake -= take;
        left -= take;
        if ex.stake == 0 {
            v.del(key);
        } else {
            v.put(key, &ex);
        }
    }
    for (k, val) in state.scan_prefix(&keys::unbondings(executor)) {
        if left == 0 {
            break;
        }
        let mut u: Unbonding = decode(&k, &val);
        let take = u.amount.min(left);
        u.amount -= take;
        left -= take;
        if u.amount == 0 {
            v.del(k);
            v.del(keys::unbond_queue(u.release_height, executor));
        } else {
            v.put(k, &u);
        }
    }
    let slashed = amount - left;
    v.credit(beneficiary, slashed)?;
    Ok(Slash { writes: v.o.writes, slashed })
}

/// Splits `price` among `owners` by basis points: each gets
/// `floor(price * bps / 10_000)`, computed without overflow, and the rounding
/// remainder goes to the first owner. The result sums to exactly `price`.
pub fn split(price: Amount, owners: &[Owner]) -> Vec<Amount> {
    assert!(!owners.is_empty(), "a model has at least one owner");
    let mut shares: Vec<Amount> = owners.iter().map(|o| mul_bps(price, o.bps)).collect();
    let paid: Amount = shares.iter().sum();
    assert!(paid <= price, "owner shares sum to at most 10_000 bps");
    shares[0] += price - paid;
    shares
}

// ---------------------------------------------------------------------------------------
// Blocks.

/// Indices of transactions whose signature does not verify: one batch check, then
/// one by one only if the batch fails.
pub fn bad_signatures(txs: &[SignedTx]) -> Vec<usize> {
    bad_signatures_unchecked(txs, &[])
}

/// [`bad_signatures`], skipping transaction `i` when `checked[i]` is true: the caller
/// has already verified that very signature on that very transaction (for example when
/// it admitted the same signed transaction to its mempool). Indices past `checked` are
/// verified. Signature validity is a function of the bytes alone, so skipping a
/// re-check never changes an outcome.
fn bad_signatures_unchecked(txs: &[SignedTx], checked: &[bool]) -> Vec<usize> {
    let todo: Vec<usize> = (0..txs.len()).filter(|&i| !checked.get(i).copied().unwrap_or(false)).collect();
    if todo.is_empty() {
        return Vec::new();
    }
    let msgs: Vec<Vec<u8>> = todo.iter().map(|&i| txs[i].tx.signing_bytes()).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let keys: Vec<PublicKey> = todo.iter().map(|&i| txs[i].tx.sender).collect();
    let sigs: Vec<_> = todo.iter().map(|&i| txs[i].signature).collect();
    if deed_types::crypto::verify_batch(&refs, &keys, &sigs).is_ok() {
        return Vec::new();
    }
    (0..todo.len()).filter(|&j| keys[j].verify(&msgs[j], &sigs[j]).is_err()).map(|j| todo[j]).collect()
}

/// The producer's side: executes `txs` in order on top of `state`, keeping those that
/// apply and dropping, with the reason, those that fail. At most
/// `params.block_txs_max` transactions are included; any after that are neither
/// included nor rejected (they wait for the next block).
///
/// Panics if `state` has no genesis or `env` is for another chain (caller bugs).
pub fn propose(state: &impl StateRead, env: &BlockEnv, txs: Vec<SignedTx>) -> Proposal {
    propose_with_blobs(state, env, txs, &NoBlobs)
}

/// [`propose`], with the content fraud proofs need (models, inputs, producer blobs).
pub fn propose_with_blobs(
    state: &impl StateRead,
    env: &BlockEnv,
    txs: Vec<SignedTx>,
    blobs: &dyn BlobSource,
) -> Proposal {
    propose_checked(state, env, txs, blobs, &[])
}

/// [`propose_with_blobs`] for a producer that has already verified the signatures of
/// `txs[i]` where `sigs_checked[i]` is true (its mempool's transactions were verified
/// when admitted); see [`bad_signatures`]. The proposal is the same either way.
pub fn propose_checked(
    state: &impl StateRead,
    env: &BlockEnv,
    txs: Vec<SignedTx>,
    blobs: &dyn BlobSource,
    sigs_checked: &[bool],
) -> Proposal {
    let (chain_id, params) = meta(state).expect("propose needs a state with a genesis");
    assert_eq!(env.chain_id, chain_id, "the block environment is for another chain");
    let cx = Ctx { chain_id: &chain_id, params: &params, env, blobs };
    let bad = bad_signatures_unchecked(&txs, sigs_checked);
    let mut o = Overlay::new(state);
    o.writes = begin_block(state, env.height);
    let mut included = Vec::new();
    let mut rejected = Vec::new();
    let max = usize::try_from(params.block_txs_max).unwrap_or(usize::MAX);
    for (i, stx) in txs.into_iter().enumerate() {
        if included.len() == max {
            break;
        }
        let result = if bad.binary_search(&i).is_ok() { Err(TxError::BadSignature) } else { execute(&o, &cx, &stx) };
        match result {
            Ok(w) => {
                o.writes.extend(w);
                included.push(stx);
            }
            Err(e) => rejected.push((stx.hash(), e)),
        }
    }
    let mut writes = o.writes;
    let state_root = commit_root(state, &mut writes);
    Proposal { included, rejected, writes, state_root }
}

/// The validator's (and replay's) side: checks the header (chain, proposer signature,
/// proposer in the genesis validator set unless that set is empty, transaction root,
/// size), applies every transaction — each must succeed — and checks
/// the header's state root against the result.
///
/// Height, parent and time are the caller's to check against its chain head: the
/// state does not record them.
pub fn apply_block(state: &impl StateRead, block: &Block) -> Result<BlockOutcome, BlockError> {
    apply_block_with_blobs(state, block, &NoBlobs)
}

/// [`apply_block`], with the content fraud proofs need. A block whose fraud proof needs
/// a blob this validator cannot get is refused (it cannot be checked).
pub fn apply_block_with_blobs(
    state: &impl StateRead,
    block: &Block,
    blobs: &dyn BlobSource,
) -> Result<BlockOutcome, BlockError> {
    apply_block_checked(state, block, blobs, &[])
}

/// [`apply_block_with_blobs`] for a validator that has already verified the exact
/// signed transactions `block.txs[i]` where `sigs_checked[i]` is true (it holds them,
/// signature and all, in its mempool); the outcome is the same either way.
pub fn apply_block_checked(
    state: &impl StateRead,
    block: &Block,
    blobs: &dyn BlobSource,
    sigs_checked: &[bool],
) -> Result<BlockOutcome, BlockError> {
    let (chain_id, params) = meta(state).ok_or(BlockError::NoGenesis)?;
    let h = &block.header;
    if h.chain_id != chain_id {
        return Err(BlockError::BadHeader(format!(
            "the block is for chain '{}', this chain is '{chain_id}'",
            h.chain_id
        )));
    }
    block.verify().map_err(|e| BlockError::BadHeader(e.to_string()))?;
    let validators: Vec<PublicKey> = read(state, keys::VALIDATORS).unwrap_or_default();
    if !validators.is_empty() && !validators.contains(&h.proposer) {
        return Err(BlockError::BadHeader(format!("proposer {} is not one of the chain's validators", h.proposer)));
    }
    if block.txs.len() > usize::try_from(params.block_txs_max).unwrap_or(usize::MAX) {
        return Err(BlockError::TooManyTxs { count: block.txs.len(), max: params.block_txs_max });
    }
    if let Some(&index) = bad_signatures_unchecked(&block.txs, sigs_checked).first() {
        return Err(BlockError::Tx { index, hash: block.txs[index].hash(), error: TxError::BadSignature });
    }
    let env = BlockEnv::of(block);
    let cx = Ctx { chain_id: &chain_id, params: &params, env: &env, blobs };
    let mut o = Overlay::new(state);
    o.writes = begin_block(state, env.height);
    for (index, stx) in block.txs.iter().enumerate() {
        let w = execute(&o, &cx, stx).map_err(|error| BlockError::Tx { index, hash: stx.hash(), error })?;
        o.writes.extend(w);
    }
    let mut writes = o.writes;
    let computed = commit_root(state, &mut writes);
    if computed != h.state_root {
        return Err(BlockError::StateRootMismatch { expected: h.state_root, computed });
    }
    Ok(BlockOutcome { writes, state_root: computed })
}

mod evidence;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rules_tests;

#[cfg(test)]
mod prop_economy;

#[cfg(test)]
mod verify_tests;

#[cfg(test)]
mod split_tests {
    use super::*;

    fn owner(bps: u16) -> Owner {
        Owner { address: Address([bps as u8; 20]), bps }
    }

    #[test]
    fn split_rounds_down_and_gives_remainder_to_first() {
        assert_eq!(split(100, &[owner(10_000)]), vec![100]);
        assert_eq!(split(10, &[owner(3_333), owner(3_333), owner(3_334)]), vec![4, 3, 3]);
        assert_eq!(split(1, &[owner(5_000), owner(5_000)]), vec![1, 0]);
        let big = split(Amount::MAX, &[owner(5_000), owner(5_000)]);
        assert_eq!(big.iter().fold(0u128, |a, b| a.checked_add(*b).unwrap()), Amount::MAX);
        assert_eq!(big[1], Amount::MAX / 2);
    }
}

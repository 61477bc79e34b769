//! The node's application: chain database, blob store, mempool and model cache, with
//! the operations block producers and the API call — admit a transaction, propose a
//! block from the mempool, verify a block, finalize one.

use crate::{NodeConfig, NodeError, mempool::Mempool};
use deed_engine::Model;
use deed_ledger::{
    BlockEnv, Proposal, StateRead, TxResult,
    db::{ChainDb, CommitPoint},
};
use deed_store::Store;
use deed_types::{Block, BlockHeader, Cid, Genesis, Hash32, Keypair, SignedTx, TensorSet, TxBody};
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
};
use tokio::sync::{Notify, broadcast};

/// Loaded models kept in memory.
const MODEL_CACHE_LEN_MAX: usize = 8;
/// Capacity of the finalized-block broadcast channel.
const BLOCK_EVENTS_LEN_MAX: usize = 256;

/// Why a transaction was not admitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// The ledger refuses it.
    #[error(transparent)]
    Ledger(#[from] deed_ledger::TxError),
    /// The node's own policy refuses it (missing blob, input that does not fit the model).
    #[error("{0}")]
    Policy(String),
    /// The same transaction is already pending.
    #[error("transaction {0} is already pending")]
    Duplicate(Hash32),
    /// The mempool is full.
    #[error("the mempool is full ({0} transactions); try again shortly")]
    Full(usize),
    /// Storage failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl From<deed_ledger::db::DbError> for AdmitError {
    fn from(e: deed_ledger::db::DbError) -> Self {
        AdmitError::Node(e.into())
    }
}

/// Where a group-commit leader leaves a queued transaction's admission result.
type AdmitSlot = Arc<Mutex<Option<Result<Hash32, AdmitError>>>>;

/// Shared node state.
pub struct App {
    /// Blocks, state, transaction index and the durable mempool.
    pub db: ChainDb,
    /// Model and tensor blobs.
    pub store: Store,
    /// The node's identity: signs blocks and receipts.
    pub key: Keypair,
    /// The genesis this node runs.
    pub genesis: Genesis,
    /// Settings.
    pub config: NodeConfig,
    mempool: Mutex<Mempool>,
    /// Woken when a transaction is admitted.
    pub tx_notify: Notify,
    /// Every finalized block, in order.
    pub blocks: broadcast::Sender<Arc<Block>>,
    /// Fetches blobs this node lacks from its peers (connected by the BFT producer).
    pub fetcher: crate::bft::fetch::BlobFetcher,
    models: Mutex<VecDeque<(Cid, Arc<Model>)>>,
    commit: Mutex<()>,
    admit_queue: Mutex<Vec<(SignedTx, AdmitSlot)>>,
    admit_leader: Mutex<()>,
    failpoint: Option<(FailStage, u64)>,
    finalized: std::sync::atomic::AtomicU64,
}

/// Where a crash test asks the node to die: `DEED_FAILPOINT=STAGE:N` aborts the process
/// at the N-th block this process finalizes, at one of these stages. Test
/// instrumentation only; unset in production it costs one branch per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailStage {
    /// `before-commit`: before the block's write transaction begins.
    Before,
    /// `mid-commit`: inside `ChainDb::commit_block`, with the block's rows and state in
    /// the write transaction but before `commit()` ([`CommitPoint::Staged`]).
    Staged,
    /// `after-commit`: right after `commit()` returns, before the in-memory mempool is
    /// updated or the block announced ([`CommitPoint::Durable`]).
    Durable,
}

fn failpoint_from_env() -> Option<(FailStage, u64)> {
    let v = std::env::var("DEED_FAILPOINT").ok()?;
    let (stage, n) = v.split_once(':')?;
    let stage = match stage {
        "before-commit" => FailStage::Before,
        "mid-commit" => FailStage::Staged,
        "after-commit" => FailStage::Durable,
        _ => return None,
    };
    Some((stage, n.parse().ok()?))
}

/// The blob store as the ledger's content source for fraud proofs.
pub struct StoreBlobs<'a>(pub &'a Store);

impl deed_ledger::BlobSource for StoreBlobs<'_> {
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.0.get(cid).ok()
    }
    fn get_range(&self, cid: &Cid, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        let end = offset.checked_add(length as u64).ok_or("range overflows")?;
        if end > self.0.size(cid).map_err(|e| e.to_string())? {
            return Err(format!("bytes {offset}..{end} are outside blob {cid}"));
        }
        // A verified range read: every byte is checked against the blob's BLAKE3 tree.
        self.0.get_range(cid, offset, Some(end)).map_err(|e| e.to_string())
    }
}

/// Milliseconds since the Unix epoch from the wall clock (the node's, never the ledger's).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl App {
    /// Opens storage, writes genesis on first start, reloads the mempool.
    pub fn open(config: NodeConfig, key: Keypair, genesis: Genesis) -> Result<App, NodeError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let db = ChainDb::open(&config.data_dir.join("chain.redb"))?;
        db.init_genesis(&genesis)?;
        let store = Store::open(&config.data_dir.join("store"))?;
        let mut mempool = Mempool::default();
        for tx in db.mempool_all()? {
            mempool.push(tx);
        }
        let (blocks, _) = broadcast::channel(BLOCK_EVENTS_LEN_MAX);
        let fetcher = crate::bft::fetch::BlobFetcher::new(
            config.data_dir.join("fetch"),
            std::time::Duration::from_millis(config.blob_fetch_timeout_ms),
        );
        Ok(App {
            db,
            store,
            key,
            genesis,
            config,
            mempool: Mutex::new(mempool),
            tx_notify: Notify::new(),
            blocks,
            fetcher,
            models: Mutex::new(VecDeque::new()),
            commit: Mutex::new(()),
            admit_queue: Mutex::new(Vec::new()),
            admit_leader: Mutex::new(()),
            failpoint: failpoint_from_env(),
            finalized: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.genesis.chain_id
    }

    /// Pending transaction count.
    pub fn mempool_len(&self) -> usize {
        self.mempool.lock().unwrap().len()
    }

    /// Up to `max` pending transactions in arrival order (for BFT proposers and gossip).
    pub fn pending_txs(&self, max: usize) -> Vec<SignedTx> {
        self.mempool.lock().unwrap().take(max)
    }

    /// Pending transactions that arrived after the one numbered `after`, with their ids,
    /// and the number to ask from next time (see [`Mempool::since`]).
    pub fn pending_since(&self, after: u64, max: usize) -> (Vec<(Hash32, SignedTx)>, u64) {
        self.mempool.lock().unwrap().since(after, max)
    }

    /// For each transaction, whether this node already verified its signature (it holds
    /// the same signed transaction in its mempool), so block checks can skip it.
    pub fn sigs_checked(&self, txs: &[SignedTx]) -> Vec<bool> {
        let hashes: Vec<Hash32> = txs.iter().map(SignedTx::hash).collect();
        let pool = self.mempool.lock().unwrap();
        txs.iter().zip(&hashes).map(|(t, h)| pool.holds_signed(h, t)).collect()
    }

    /// True when a transaction is pending.
    pub fn is_pending(&self, h: &Hash32) -> bool {
        self.mempool.lock().unwrap().contains(h)
    }

    /// The nonce the next transaction from `addr` must carry.
    pub fn pending_nonce(&self, addr: &deed_types::Address) -> Result<u64, NodeError> {
        // The state is read under the mempool lock: a block that commits in between and
        // then drops its transactions from the mempool would otherwise leave an old
        // account nonce beside a mempool that no longer holds the later ones.
        let pool = self.mempool.lock().unwrap();
        let snap = self.db.snapshot()?;
        let acct = deed_ledger::query::account(&snap, addr);
        Ok(pool.pending_nonce(addr, acct.nonce))
    }

    /// A model, loaded (and cached) from the store.
    pub fn model(&self, id: &Cid) -> Result<Arc<Model>, NodeError> {
        if let Some((_, m)) = self.models.lock().unwrap().iter().find(|(c, _)| c == id) {
            return Ok(m.clone());
        }
        let bytes = self.store.get(id)?;
        let m = Arc::new(
            deed_ledger::load_model(&StoreBlobs(&self.store), &bytes).map_err(|e| NodeError::Model(e.to_string()))?,
        );
        let mut cache = self.models.lock().unwrap();
        if cache.len() >= MODEL_CACHE_LEN_MAX {
            cache.pop_front();
        }
        cache.push_back((*id, m.clone()));
        Ok(m)
    }

    /// Checks that `inputs` fit `model`'s declared inputs (names, dtypes, ranks, static dims).
    pub fn check_inputs(model: &Model, inputs: &TensorSet) -> Result<(), String> {
        for info in model.inputs() {
            let Some(t) = inputs.0.get(&info.name) else {
                return Err(format!("the model needs an input named '{}', which is missing", info.name));
            };
            if t.dtype() != info.dtype {
                return Err(format!(
                    "input '{}' is {} but the model expects {}",
                    info.name,
                    t.dtype().name(),
                    info.dtype.name()
                ));
            }
            let fits = t.shape.len() == info.shape.len()
                && t.shape.iter().zip(&info.shape).all(|(&d, want)| want.is_none_or(|w| w == d));
            if !fits {
                let want: Vec<String> =
                    info.shape.iter().map(|d| d.map_or("?".to_string(), |d| d.to_string())).collect();
                return Err(format!(
                    "input '{}' has shape {:?} but the model expects [{}]",
                    info.name,
                    t.shape,
                    want.join(", ")
                ));
            }
        }
        if let Some(extra) = inputs.0.keys().find(|k| !model.inputs().iter().any(|i| &i.name == *k)) {
            let names: Vec<&str> = model.inputs().iter().map(|i| i.name.as_str()).collect();
            return Err(format!("the model has no input named '{extra}' (its inputs: {})", names.join(", ")));
        }
        Ok(())
    }

    /// The node's own rules on top of the ledger's: referenced blobs must be here and
    /// valid, and inputs must fit the model, so that a paid job can actually run.
    fn policy_check(&self, tx: &SignedTx) -> Result<(), AdmitError> {
        match &tx.tx.body {
            TxBody::RegisterModel { model, parents, .. } => {
                if !self.store.has(model) {
                    return Err(AdmitError::Policy(format!(
                        "model {model} has not been uploaded to this node; upload it first (PUT /v1/blobs?kind=model)"
                    )));
                }
                self.model(model).map_err(|e| AdmitError::Policy(e.to_string()))?;
                let parents: Vec<Cid> = parents.iter().map(|p| p.model).collect();
                crate::blobs::check_not_a_copy(self, model, &parents).map_err(AdmitError::Policy)?;
            }
            TxBody::RequestInference { model, input, executor_fee, .. } => {
                if *executor_fee < self.config.executor_fee_min {
                    return Err(AdmitError::Policy(format!(
                        "executor fee {executor_fee} is below this node's minimum of {}",
                        self.config.executor_fee_min
                    )));
                }
                let snap = self.db.snapshot()?;
                if deed_ledger::query::model(&snap, model).is_none() {
                    return Err(AdmitError::Ledger(deed_ledger::TxError::UnknownModel(*model)));
                }
                let m = self.model(model).map_err(|e| AdmitError::Policy(e.to_string()))?;
                let bytes = self.store.get(input).map_err(|e| match e {
                    deed_store::StoreError::NotFound(_) => AdmitError::Policy(format!(
                        "input {input} has not been uploaded to this node; upload it first (PUT /v1/blobs?kind=input)"
                    )),
                    e => AdmitError::Node(e.into()),
                })?;
                let set = TensorSet::decode(&bytes).map_err(|e| AdmitError::Policy(e.to_string()))?;
                Self::check_inputs(&m, &set).map_err(AdmitError::Policy)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Admits a transaction into the mempool; durable when this returns Ok.
    ///
    /// Concurrent callers share one durable write (group commit): each queues its
    /// transaction, and whichever caller holds the admission lock admits everything
    /// queued so far as one batch, so N clients cost one fsync, not N.
    pub fn admit(&self, tx: SignedTx) -> Result<Hash32, AdmitError> {
        self.policy_check(&tx)?;
        let slot: AdmitSlot = Arc::new(Mutex::new(None));
        self.admit_queue.lock().unwrap().push((tx, slot.clone()));
        let _leader = self.admit_leader.lock().unwrap();
        if let Some(r) = slot.lock().unwrap().take() {
            return r;
        }
        let queued = std::mem::take(&mut *self.admit_queue.lock().unwrap());
        let (txs, slots): (Vec<SignedTx>, Vec<AdmitSlot>) = queued.into_iter().unzip();
        for (r, s) in self.admit_checked(txs, true).into_iter().zip(slots) {
            *s.lock().unwrap() = Some(r);
        }
        slot.lock().unwrap().take().expect("the leader answered its own transaction")
    }

    /// Admits several transactions (gossip, batch submission): node policy, one batch
    /// signature check, the ledger's rules in order (a sender's later nonces may follow
    /// its earlier ones in the same batch), and one durable write for all that pass.
    /// One result per transaction, in order.
    pub fn admit_batch(&self, txs: Vec<SignedTx>) -> Vec<Result<Hash32, AdmitError>> {
        self.admit_batch_with(txs, true)
    }

    /// [`Self::admit_batch`] for transactions relayed by a peer (gossip): the same
    /// checks, but the mempool write does not wait for the disk, since the peer that
    /// acknowledged them to their sender keeps them durable.
    pub fn admit_relayed(&self, txs: Vec<SignedTx>) -> Vec<Result<Hash32, AdmitError>> {
        self.admit_batch_with(txs, false)
    }

    fn admit_batch_with(&self, txs: Vec<SignedTx>, durable: bool) -> Vec<Result<Hash32, AdmitError>> {
        let mut results: Vec<Option<Result<Hash32, AdmitError>>> = Vec::with_capacity(txs.len());
        let mut passed = Vec::with_capacity(txs.len());
        for tx in txs {
            match self.policy_check(&tx) {
                Ok(()) => {
                    results.push(None);
                    passed.push(tx);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut checked = self.admit_checked(passed, durable).into_iter();
        results.into_iter().map(|r| r.unwrap_or_else(|| checked.next().expect("one result per checked tx"))).collect()
    }

    /// The part of admission after the node's policy: signatures (batched), ledger
    /// rules against the pending nonces, one mempool write (durable on return if
    /// `durable`).
    fn admit_checked(&self, txs: Vec<SignedTx>, durable: bool) -> Vec<Result<Hash32, AdmitError>> {
        if txs.is_empty() {
            return Vec::new();
        }
        let bad: HashSet<usize> = deed_ledger::bad_signatures(&txs).into_iter().collect();
        // State is read under the mempool lock (see `pending_nonce`): `finalize` commits a
        // block and only then drops its transactions from the mempool, so a snapshot taken
        // before the lock could predate a block whose transactions the mempool has already
        // dropped, and refuse the next nonce as a gap.
        let mut pool = self.mempool.lock().unwrap();
        let snap = match self.db.snapshot() {
            Ok(s) => s,
            Err(e) => {
                let msg = e.to_string();
                return txs
                    .iter()
                    .map(|_| Err(AdmitError::Node(NodeError::Internal(format!("chain database: {msg}")))))
                    .collect();
            }
        };
        let mut results = Vec::with_capacity(txs.len());
        let mut accepted: Vec<(Hash32, SignedTx)> = Vec::new();
        let mut in_batch: HashSet<Hash32> = HashSet::new();
        let mut nonces: HashMap<deed_types::Address, u64> = HashMap::new();
        for (i, tx) in txs.into_iter().enumerate() {
            let h = tx.hash();
            let r = (|| {
                if pool.contains(&h) || in_batch.contains(&h) {
                    return Err(AdmitError::Duplicate(h));
                }
                if pool.len() + accepted.len() >= crate::mempool::MEMPOOL_TXS_MAX {
                    return Err(AdmitError::Full(pool.len() + accepted.len()));
                }
                if bad.contains(&i) {
                    return Err(deed_ledger::TxError::BadSignature.into());
                }
                let sender = tx.sender();
                let pending = match nonces.get(&sender) {
                    Some(&n) => n,
                    None => {
                        let acct = deed_ledger::query::account(&snap, &sender);
                        pool.pending_nonce(&sender, acct.nonce)
                    }
                };
                deed_ledger::check_tx_verified(&snap, &tx, pending)?;
                nonces.insert(sender, tx.tx.nonce + 1);
                Ok(())
            })();
            match r {
                Ok(()) => {
                    in_batch.insert(h);
                    results.push(Ok(h));
                    accepted.push((h, tx));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if accepted.is_empty() {
            return results;
        }
        let to_write: Vec<SignedTx> = accepted.iter().map(|(_, t)| t.clone()).collect();
        let written =
            if durable { self.db.mempool_insert_batch(&to_write) } else { self.db.mempool_insert_relayed(&to_write) };
        if let Err(e) = written {
            // Nothing of the batch is durable: none of it is acknowledged.
            let full = matches!(e, deed_ledger::db::DbError::MempoolFull { .. });
            let msg = e.to_string();
            let len = pool.len();
            return results
                .into_iter()
                .map(|r| {
                    r.and_then(|_| {
                        Err(if full {
                            AdmitError::Full(len)
                        } else {
                            AdmitError::Node(NodeError::Internal(format!("chain database: {msg}")))
                        })
                    })
                })
                .collect();
        }
        for (h, tx) in accepted {
            pool.push_hashed(h, tx);
        }
        drop(pool);
        self.tx_notify.notify_one();
        results
    }

    /// Builds and signs the next block from the mempool; `None` when nothing is pending
    /// and `allow_empty` is false. Transactions that fail are left out and recorded as
    /// rejected. Empty blocks still advance the ledger's own schedule (commitment
    /// expiry, stake release).
    pub fn propose(&self, time_ms: u64, allow_empty: bool) -> Result<Option<(Block, Proposal)>, NodeError> {
        let txs = {
            let pool = self.mempool.lock().unwrap();
            pool.take(self.genesis.params.block_txs_max as usize)
        };
        if txs.is_empty() && !allow_empty {
            return Ok(None);
        }
        let snap = self.db.snapshot()?;
        let head = self.db.head()?;
        let height = head.as_ref().map_or(0, |h| h.height) + 1;
        let parent = head.as_ref().map_or(Hash32::ZERO, |h| h.hash());
        let time_ms = time_ms.max(head.as_ref().map_or(0, |h| h.time_ms + 1));
        let env = BlockEnv { chain_id: self.chain_id().to_string(), height, time_ms, proposer: self.key.public() };
        // Every mempool transaction's signature was verified when it was admitted.
        let checked = vec![true; txs.len()];
        let proposal = deed_ledger::propose_checked(&snap, &env, txs, &StoreBlobs(&self.store), &checked);
        let header = BlockHeader {
            chain_id: env.chain_id,
            height,
            parent,
            time_ms,
            tx_root: Block::tx_root(&proposal.included),
            state_root: proposal.state_root,
            proposer: env.proposer,
        };
        let block = Block::seal(header, proposal.included.clone(), &self.key);
        Ok(Some((block, proposal)))
    }

    /// Commits a finalized block durably, drops its transactions (and the rejected
    /// ones) from the mempool, and announces it.
    pub fn finalize(&self, block: Block, proposal: &Proposal) -> Result<(), NodeError> {
        let _g = self.commit.lock().unwrap();
        // Included and rejected transactions, recorded in the block's one durable write.
        let results: Vec<TxResult> = block
            .txs
            .iter()
            .map(|t| TxResult { hash: t.hash(), ok: true, error: None })
            .chain(proposal.rejected.iter().map(|(h, e)| TxResult { hash: *h, ok: false, error: Some(e.to_string()) }))
            .collect();
        let n = self.finalized.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let fail_at = |stage| {
            if self.failpoint == Some((stage, n)) {
                std::process::abort();
            }
        };
        fail_at(FailStage::Before);
        self.db.commit_block_observed(&block, &proposal.writes, &results, &mut |point| match point {
            CommitPoint::Staged => fail_at(FailStage::Staged),
            CommitPoint::Durable => fail_at(FailStage::Durable),
        })?;
        self.mempool.lock().unwrap().remove(results.iter().map(|r| r.hash));
        let _ = self.blocks.send(Arc::new(block));
        Ok(())
    }

    /// Replaces this node's state with a verified state snapshot (the writes of
    /// `deed_ledger::snapshot::decode_verified` for `block`) and makes `block` the head:
    /// how a BFT node far behind catches up.
    pub fn install_snapshot(&self, block: &Block, writes: &deed_ledger::WriteSet) -> Result<(), NodeError> {
        let _g = self.commit.lock().unwrap();
        self.db.install_snapshot(block, writes)?;
        self.mempool.lock().unwrap().remove(block.txs.iter().map(|t| t.hash()));
        let _ = self.blocks.send(Arc::new(block.clone()));
        Ok(())
    }

    /// Produces and finalizes one block if anything is pending (or, with `allow_empty`,
    /// regardless). Returns its height.
    pub fn produce_one(&self, allow_empty: bool) -> Result<Option<u64>, NodeError> {
        let Some((block, proposal)) = self.propose(now_ms(), allow_empty)? else { return Ok(None) };
        let h = block.header.height;
        self.finalize(block, &proposal)?;
        Ok(Some(h))
    }

    /// True while the ledger has work scheduled for coming blocks (a challenge or
    /// dispute window to close), so the producer should keep making blocks even with an
    /// empty mempool.
    pub fn has_scheduled_work(&self) -> bool {
        use deed_ledger::StateRead;
        self.db.snapshot().is_ok_and(|s| !s.scan_prefix_limit(deed_ledger::keys::JOB_QUEUE, 1).is_empty())
    }

    /// The latest block and a state view taken at that same block (no commit can slip
    /// between the two reads).
    pub fn head_and_state(&self) -> Result<(Option<Block>, deed_ledger::db::Snapshot), NodeError> {
        let _g = self.commit.lock().unwrap();
        let h = self.db.height()?;
        let block = if h == 0 { None } else { self.db.block(h)? };
        Ok((block, self.db.snapshot()?))
    }

    /// A consistent read view of the current state.
    pub fn state(&self) -> Result<impl StateRead, NodeError> {
        Ok(self.db.snapshot()?)
    }
}

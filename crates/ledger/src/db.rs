//! Chain storage on redb: genesis, blocks, the current state and its root, a
//! transaction index, and the mempool — each update one durable redb transaction,
//! so a crash at any instant loses nothing that was acknowledged.
//!
//! Tables:
//!
//! | table         | key                    | value                          |
//! |---------------|------------------------|--------------------------------|
//! | `meta`        | `genesis`, `genesis_root`, `head`, `state_root`, `mempool_seq` | borsh |
//! | `state`       | state key (see crate docs) | borsh record; plus the state tree's nodes under `~smt/` |
//! | `blocks`      | height (u64)           | borsh [`Block`]                |
//! | `txs`         | tx hash (32 bytes)     | borsh [`TxStatus`]             |
//! | `mempool`     | insertion sequence (u64) | borsh [`SignedTx`]           |
//! | `mempool_idx` | tx hash (32 bytes)     | insertion sequence (u64)       |

use crate::exec::decode;
use crate::state::{StateRead, WriteSet, prefix_range};
use crate::{GenesisError, MemState, TxResult};
use borsh::{BorshDeserialize, BorshSerialize};
use deed_types::{Block, BlockHeader, Cid, Genesis, Hash32, SignedTx};
use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const STATE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("state");
const BLOCKS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("blocks");
const TXS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("txs");
const MEMPOOL: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("mempool");
const MEMPOOL_IDX: TableDefinition<'static, &[u8], u64> = TableDefinition::new("mempool_idx");
/// BFT finalization certificates (opaque bytes the node layer encodes), by the height of
/// the block each one certifies.
const FINALIZATIONS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("finalizations");

const K_GENESIS: &str = "genesis";
const K_GENESIS_ROOT: &str = "genesis_root";
const K_HEAD: &str = "head";
const K_STATE_ROOT: &str = "state_root";
const K_MEMPOOL_SEQ: &str = "mempool_seq";
/// The newest state snapshot this node wrote: (height, content id).
const K_SNAPSHOT: &str = "snapshot";
/// The height of the snapshot this node's state was installed from (no blocks below it
/// are stored, nor the outcomes of their transactions).
const K_SYNCED_FROM: &str = "synced_from";

/// Most transactions the stored mempool holds.
pub const MEMPOOL_TXS_MAX: u64 = 100_000;

/// Storage errors.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database file could not be opened, read or written.
    #[error("storage error: {0}")]
    Storage(String),
    /// Stored bytes do not decode: the database is damaged.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// The chain has not been initialized with a genesis.
    #[error("the database has no genesis: initialize the chain first")]
    NoGenesis,
    /// The database already holds a different chain.
    #[error("the database holds genesis {stored}, not {given}: use another data directory for another chain")]
    GenesisMismatch {
        /// Hash of the stored genesis.
        stored: Hash32,
        /// Hash of the genesis given.
        given: Hash32,
    },
    /// The genesis is invalid.
    #[error(transparent)]
    BadGenesis(#[from] GenesisError),
    /// The block does not extend the current head.
    #[error("block does not extend the head: {0}")]
    NotNext(String),
    /// The mempool is full.
    #[error("the mempool is full ({max} transactions): try again later")]
    MempoolFull {
        /// The limit.
        max: u64,
    },
    /// Replaying the stored chain from genesis disagrees with what is stored.
    #[error("replay from genesis diverges at height {height}: {reason}")]
    ReplayDiverges {
        /// The first height that disagrees (0 = the final state).
        height: u64,
        /// What disagrees.
        reason: String,
    },
    /// The state was installed from a snapshot: the blocks below it are not stored.
    #[error(
        "this node's state was installed from a state snapshot at height {0}: the blocks below it are not stored, so \
         the chain cannot be replayed from genesis here (replay on a node that followed the chain from genesis)"
    )]
    NotReplayable(u64),
}

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Storage(e.to_string())
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A point inside [`ChainDb::commit_block_observed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitPoint {
    /// Everything the block changes — block, head, state root, state entries and tree
    /// nodes, transaction index, mempool removals — is written into the redb write
    /// transaction, which is not committed yet: a crash here must leave the previous block
    /// as the head, with nothing of this one visible.
    Staged,
    /// The write transaction's `commit()` has returned: the block is durable, and nothing
    /// else (the caller's in-memory mempool, announcements) has happened yet.
    Durable,
}

/// Where a transaction ended up.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TxStatus {
    /// Height of the block that includes it; `None` if it was rejected.
    pub height: Option<u64>,
    /// Its position in that block.
    pub index: Option<u32>,
    /// Whether it applied.
    pub ok: bool,
    /// Why it was rejected.
    pub error: Option<String>,
}

fn enc<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh encoding to a Vec cannot fail")
}

fn dec<T: BorshDeserialize>(what: &str, b: &[u8]) -> Result<T, DbError> {
    borsh::from_slice(b).map_err(|e| DbError::Corrupt(format!("{what}: {e}")))
}

/// The chain database. `Send + Sync`; share it with an `Arc`.
pub struct ChainDb {
    db: Database,
}

impl std::fmt::Debug for ChainDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainDb")
    }
}

/// A consistent read view of the state at one instant; later commits do not change it.
/// Drop it when done: a live snapshot keeps the pages it sees from being reused.
pub struct Snapshot {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

impl StateRead for Snapshot {
    /// Panics if the storage fails underneath (the ledger cannot continue without state).
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.table.get(key).expect("reading ledger state from storage failed").map(|v| v.value().to_vec())
    }

    /// Panics if the storage fails underneath.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.scan_prefix_limit(prefix, usize::MAX)
    }

    /// Panics if the storage fails underneath.
    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let (lo, hi) = prefix_range(prefix);
        let lo = lo.as_ref().map(Vec::as_slice);
        let hi = hi.as_ref().map(Vec::as_slice);
        self.table
            .range::<&[u8]>((lo, hi))
            .expect("reading ledger state from storage failed")
            .take(limit)
            .map(|r| {
                let (k, v) = r.expect("reading ledger state from storage failed");
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect()
    }
}

fn get_meta<T: BorshDeserialize>(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, DbError> {
    match t.get(key)? {
        Some(v) => Ok(Some(dec(key, v.value())?)),
        None => Ok(None),
    }
}

/// Removes `hash` from the mempool tables if present.
/// The tables a commit touches for each transaction, opened once per write transaction.
struct TxTables<'w> {
    txs: redb::Table<'w, &'static [u8], &'static [u8]>,
    idx: redb::Table<'w, &'static [u8], u64>,
    pool: redb::Table<'w, u64, &'static [u8]>,
}

impl<'w> TxTables<'w> {
    fn open(w: &'w WriteTransaction) -> Result<Self, DbError> {
        Ok(TxTables { txs: w.open_table(TXS)?, idx: w.open_table(MEMPOOL_IDX)?, pool: w.open_table(MEMPOOL)? })
    }

    /// Removes a transaction from the mempool, if it is there.
    fn unpool(&mut self, hash: &Hash32) -> Result<(), DbError> {
        let seq = self.idx.remove(hash.0.as_slice())?.map(|g| g.value());
        if let Some(seq) = seq {
            self.pool.remove(seq)?;
        }
        Ok(())
    }

    /// Records the transaction at `index` of the block at `height` as included.
    fn include(&mut self, hash: &Hash32, height: u64, index: usize) -> Result<(), DbError> {
        let index = u32::try_from(index).expect("a block holds fewer than 2^32 transactions");
        let status = TxStatus { height: Some(height), index: Some(index), ok: true, error: None };
        self.txs.insert(hash.0.as_slice(), enc(&status).as_slice())?;
        self.unpool(hash)
    }

    /// Records a rejection unless the transaction is already known as included (a replay
    /// of an included transaction has the same hash and must not overwrite its status),
    /// and removes it from the mempool.
    fn reject(&mut self, r: &TxResult) -> Result<(), DbError> {
        let existing: Option<TxStatus> = match self.txs.get(r.hash.0.as_slice())? {
            Some(v) => Some(dec("tx status", v.value())?),
            None => None,
        };
        if existing.is_none_or(|s| s.height.is_none()) {
            let status = TxStatus { height: None, index: None, ok: r.ok, error: r.error.clone() };
            self.txs.insert(r.hash.0.as_slice(), enc(&status).as_slice())?;
        }
        self.unpool(&r.hash)
    }
}

impl ChainDb {
    /// Opens the database at `path`, creating it if missing.
    pub fn open(path: &Path) -> Result<ChainDb, DbError> {
        let db = Database::create(path)?;
        // Create every table so read transactions can always open them.
        let w = db.begin_write()?;
        w.open_table(META)?;
        w.open_table(STATE)?;
        w.open_table(BLOCKS)?;
        w.open_table(TXS)?;
        w.open_table(MEMPOOL)?;
        w.open_table(MEMPOOL_IDX)?;
        w.open_table(FINALIZATIONS)?;
        w.commit()?;
        Ok(ChainDb { db })
    }

    /// Writes the genesis state. Idempotent for the same genesis (returns its state
    /// root); refuses a different genesis.
    pub fn init_genesis(&self, g: &Genesis) -> Result<Hash32, DbError> {
        let w = self.begin_write()?;
        {
            let meta = w.open_table(META)?;
            if let Some(stored) = get_meta::<Genesis>(&meta, K_GENESIS)? {
                if stored != *g {
                    return Err(DbError::GenesisMismatch { stored: stored.hash(), given: g.hash() });
                }
                return get_meta::<Hash32>(&meta, K_GENESIS_ROOT)?
                    .ok_or_else(|| DbError::Corrupt("genesis without a genesis root".into()));
            }
        }
        crate::check_genesis(g)?;
        let (writes, root) = crate::genesis_writes(g);
        Self::write_state(&w, &writes)?;
        {
            let mut meta = w.open_table(META)?;
            meta.insert(K_GENESIS, enc(g).as_slice())?;
            meta.insert(K_GENESIS_ROOT, enc(&root).as_slice())?;
            meta.insert(K_STATE_ROOT, enc(&root).as_slice())?;
        }
        w.commit()?;
        Ok(root)
    }

    /// A write transaction that is durable when its commit returns (redb's default,
    /// stated here because acknowledged writes depend on it).
    fn begin_write(&self) -> Result<WriteTransaction, DbError> {
        let mut w = self.db.begin_write()?;
        w.set_durability(Durability::Immediate).map_err(|e| DbError::Storage(e.to_string()))?;
        Ok(w)
    }

    fn write_state(w: &WriteTransaction, writes: &WriteSet) -> Result<(), DbError> {
        let mut t = w.open_table(STATE)?;
        for (k, v) in &writes.0 {
            match v {
                Some(v) => t.insert(k.as_slice(), v.as_slice())?,
                None => t.remove(k.as_slice())?,
            };
        }
        Ok(())
    }

    fn read_meta<T: BorshDeserialize>(&self, key: &str) -> Result<Option<T>, DbError> {
        let r = self.db.begin_read()?;
        get_meta(&r.open_table(META)?, key)
    }

    /// The genesis, if initialized.
    pub fn genesis(&self) -> Result<Option<Genesis>, DbError> {
        self.read_meta(K_GENESIS)
    }

    /// The latest block's header; `None` before block 1.
    pub fn head(&self) -> Result<Option<BlockHeader>, DbError> {
        self.read_meta(K_HEAD)
    }

    /// The latest block's height; 0 before block 1.
    pub fn height(&self) -> Result<u64, DbError> {
        Ok(self.head()?.map_or(0, |h| h.height))
    }

    /// The current state root (all zeros before genesis).
    pub fn state_root(&self) -> Result<Hash32, DbError> {
        Ok(self.read_meta(K_STATE_ROOT)?.unwrap_or(Hash32::ZERO))
    }

    /// A consistent read view of the current state.
    pub fn snapshot(&self) -> Result<Snapshot, DbError> {
        let r = self.db.begin_read()?;
        Ok(Snapshot { table: r.open_table(STATE)? })
    }

    /// Stores `block` with its state changes (from [`crate::propose`] or
    /// [`crate::apply_block`]) in one durable transaction: the block, the state writes,
    /// the new root and head, the transaction index for every transaction in the block
    /// and every rejected one in `results`, and their removal from the mempool.
    ///
    /// The block must extend the head (height + 1, parent = head hash).
    pub fn commit_block(&self, block: &Block, writes: &WriteSet, results: &[TxResult]) -> Result<(), DbError> {
        self.commit_block_observed(block, writes, results, &mut |_| {})
    }

    /// [`Self::commit_block`], calling `at` at each [`CommitPoint`] it passes, in order.
    /// Crash tests use it to die at exact points inside the durable write (the node's
    /// `DEED_FAILPOINT`); `at` must not touch this database.
    pub fn commit_block_observed(
        &self,
        block: &Block,
        writes: &WriteSet,
        results: &[TxResult],
        at: &mut dyn FnMut(CommitPoint),
    ) -> Result<(), DbError> {
        let h = &block.header;
        let w = self.begin_write()?;
        {
            let mut meta = w.open_table(META)?;
            if get_meta::<Genesis>(&meta, K_GENESIS)?.is_none() {
                return Err(DbError::NoGenesis);
            }
            let head: Option<BlockHeader> = get_meta(&meta, K_HEAD)?;
            let (height, parent) = head.map_or((1, Hash32::ZERO), |hd| (hd.height + 1, hd.hash()));
            if h.height != height {
                return Err(DbError::NotNext(format!("block height is {}, the next height is {height}", h.height)));
            }
            if h.parent != parent {
                return Err(DbError::NotNext(format!("block parent is {}, the head is {parent}", h.parent)));
            }
            meta.insert(K_HEAD, enc(h).as_slice())?;
            meta.insert(K_STATE_ROOT, enc(&h.state_root).as_slice())?;
            w.open_table(BLOCKS)?.insert(h.height, enc(block).as_slice())?;
        }
        Self::write_state(&w, writes)?;
        {
            let mut t = TxTables::open(&w)?;
            let mut in_block = std::collections::HashSet::with_capacity(block.txs.len());
            for (i, stx) in block.txs.iter().enumerate() {
                let hash = stx.hash();
                in_block.insert(hash);
                t.include(&hash, h.height, i)?;
            }
            for r in results.iter().filter(|r| !in_block.contains(&r.hash)) {
                t.reject(r)?;
            }
        }
        at(CommitPoint::Staged);
        w.commit()?;
        at(CommitPoint::Durable);
        Ok(())
    }

    /// Records that this node wrote the state snapshot of `height` as blob `cid`.
    pub fn set_snapshot(&self, height: u64, cid: &Cid) -> Result<(), DbError> {
        let w = self.begin_write()?;
        w.open_table(META)?.insert(K_SNAPSHOT, enc(&(height, *cid)).as_slice())?;
        w.commit()?;
        Ok(())
    }

    /// The newest state snapshot this node wrote: (height, content id).
    pub fn latest_snapshot(&self) -> Result<Option<(u64, Cid)>, DbError> {
        self.read_meta(K_SNAPSHOT)
    }

    /// The height of the snapshot this node's state was installed from, if it was.
    pub fn synced_from(&self) -> Result<Option<u64>, DbError> {
        self.read_meta(K_SYNCED_FROM)
    }

    /// Replaces the whole state with a verified snapshot (the writes of
    /// [`crate::snapshot::decode_verified`] for `block`'s header) and makes `block` the
    /// head, in one durable transaction. `block` must be above the head. Blocks between
    /// the old head and `block` are not stored.
    pub fn install_snapshot(&self, block: &Block, writes: &WriteSet) -> Result<(), DbError> {
        let h = &block.header;
        let w = self.begin_write()?;
        {
            let mut meta = w.open_table(META)?;
            if get_meta::<Genesis>(&meta, K_GENESIS)?.is_none() {
                return Err(DbError::NoGenesis);
            }
            let head: Option<BlockHeader> = get_meta(&meta, K_HEAD)?;
            let height = head.map_or(0, |hd| hd.height);
            if h.height <= height {
                return Err(DbError::NotNext(format!("snapshot height {} is not above the head {height}", h.height)));
            }
            meta.insert(K_HEAD, enc(h).as_slice())?;
            meta.insert(K_STATE_ROOT, enc(&h.state_root).as_slice())?;
            meta.insert(K_SYNCED_FROM, enc(&h.height).as_slice())?;
            w.open_table(BLOCKS)?.insert(h.height, enc(block).as_slice())?;
        }
        w.delete_table(STATE)?;
        Self::write_state(&w, writes)?;
        {
            let mut t = TxTables::open(&w)?;
            for (i, stx) in block.txs.iter().enumerate() {
                t.include(&stx.hash(), h.height, i)?;
            }
        }
        w.commit()?;
        Ok(())
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, DbError> {
        let r = self.db.begin_read()?;
        match r.open_table(BLOCKS)?.get(height)? {
            Some(v) => Ok(Some(dec("block", v.value())?)),
            None => Ok(None),
        }
    }

    /// Records the finalization certificate of the block at `height` (written before
    /// that block is committed, made durable by the commit that follows: losing one in a
    /// crash is harmless, a later block's certificate covers its ancestors).
    pub fn set_finalization(&self, height: u64, certificate: &[u8]) -> Result<(), DbError> {
        let mut w = self.db.begin_write()?;
        w.set_durability(Durability::None).map_err(|e| DbError::Storage(e.to_string()))?;
        w.open_table(FINALIZATIONS)?.insert(height, certificate)?;
        w.commit()?;
        Ok(())
    }

    /// The lowest certified height in `from..=to` and its certificate: the finality
    /// evidence for every block from `from` up to it (they are its ancestors).
    pub fn finalization_from(&self, from: u64, to: u64) -> Result<Option<(u64, Vec<u8>)>, DbError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(FINALIZATIONS)?;
        let first = t.range(from..=to)?.next().transpose()?;
        Ok(first.map(|(h, c)| (h.value(), c.value().to_vec())))
    }

    /// Where a transaction ended up, if it was included or rejected.
    pub fn tx_status(&self, hash: &Hash32) -> Result<Option<TxStatus>, DbError> {
        let r = self.db.begin_read()?;
        match r.open_table(TXS)?.get(hash.0.as_slice())? {
            Some(v) => Ok(Some(dec("tx status", v.value())?)),
            None => Ok(None),
        }
    }

    /// Records transactions the producer dropped (they never make a block) and removes
    /// them from the mempool. A transaction already included keeps its status.
    pub fn record_rejected(&self, results: &[TxResult]) -> Result<(), DbError> {
        let w = self.begin_write()?;
        {
            let mut t = TxTables::open(&w)?;
            for r in results {
                t.reject(r)?;
            }
        }
        w.commit()?;
        Ok(())
    }

    /// Adds a transaction to the stored mempool (a no-op if already there); durable on
    /// return.
    pub fn mempool_insert(&self, tx: &SignedTx) -> Result<(), DbError> {
        self.mempool_insert_batch(std::slice::from_ref(tx))
    }

    /// Adds transactions to the durable mempool in one write transaction (one fsync for
    /// the whole batch), in order; those already present are skipped. All or nothing: if
    /// the batch would overflow the mempool, nothing is written.
    pub fn mempool_insert_batch(&self, txs: &[SignedTx]) -> Result<(), DbError> {
        self.mempool_insert_with(txs, Durability::Immediate)
    }

    /// [`Self::mempool_insert_batch`] without waiting for the disk: for transactions
    /// relayed by peers, which acknowledged them to their senders and keep them durable
    /// themselves. They become durable with this database's next durable commit (the
    /// next block); a crash before that loses only this node's copy.
    pub fn mempool_insert_relayed(&self, txs: &[SignedTx]) -> Result<(), DbError> {
        self.mempool_insert_with(txs, Durability::None)
    }

    fn mempool_insert_with(&self, txs: &[SignedTx], durability: Durability) -> Result<(), DbError> {
        if txs.is_empty() {
            return Ok(());
        }
        let mut w = self.db.begin_write()?;
        w.set_durability(durability).map_err(|e| DbError::Storage(e.to_string()))?;
        {
            let mut idx = w.open_table(MEMPOOL_IDX)?;
            let mut pool = w.open_table(MEMPOOL)?;
            let mut meta = w.open_table(META)?;
            let mut seq: u64 = get_meta(&meta, K_MEMPOOL_SEQ)?.unwrap_or(0);
            let mut len = pool.len()?;
            for tx in txs {
                let hash = tx.hash();
                if idx.get(hash.0.as_slice())?.is_some() {
                    continue;
                }
                if len >= MEMPOOL_TXS_MAX {
                    return Err(DbError::MempoolFull { max: MEMPOOL_TXS_MAX });
                }
                pool.insert(seq, enc(tx).as_slice())?;
                idx.insert(hash.0.as_slice(), seq)?;
                seq += 1;
                len += 1;
            }
            meta.insert(K_MEMPOOL_SEQ, enc(&seq).as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    /// Removes transactions from the mempool without recording anything (eviction).
    pub fn mempool_remove(&self, hashes: &[Hash32]) -> Result<(), DbError> {
        let w = self.begin_write()?;
        {
            let mut t = TxTables::open(&w)?;
            for h in hashes {
                t.unpool(h)?;
            }
        }
        w.commit()?;
        Ok(())
    }

    /// Every mempool transaction, in insertion order.
    pub fn mempool_all(&self) -> Result<Vec<SignedTx>, DbError> {
        let r = self.db.begin_read()?;
        let pool = r.open_table(MEMPOOL)?;
        let mut out = Vec::new();
        for e in pool.iter()? {
            let (_, v) = e?;
            out.push(dec("mempool tx", v.value())?);
        }
        Ok(out)
    }

    /// The state, copied into memory (for tools and tests; O(state)).
    pub fn state_copy(&self) -> Result<MemState, DbError> {
        let snap = self.snapshot()?;
        Ok(MemState(snap.scan_prefix(b"").into_iter().collect()))
    }
}

/// Decodes a state value (re-exported for the node's convenience in debugging tools).
#[doc(hidden)]
pub fn decode_state<T: BorshDeserialize>(key: &[u8], v: &[u8]) -> T {
    decode(key, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<ChainDb>();
        check::<Snapshot>();
    }
}

/// What [`replay`] checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Blocks re-applied.
    pub blocks: u64,
    /// Transactions re-executed.
    pub txs: u64,
    /// The state root every step agreed on at the end.
    pub state_root: Hash32,
}

/// Re-executes every stored block from genesis on a fresh in-memory state with
/// [`crate::apply_block`] and checks each header's parent and state root, and that the
/// final replayed state equals the stored state entry by entry. This is the check that a
/// crash left nothing half-written.
pub fn replay(db: &ChainDb) -> Result<ReplayReport, DbError> {
    let genesis = db.genesis()?.ok_or(DbError::NoGenesis)?;
    if let Some(h) = db.synced_from()? {
        return Err(DbError::NotReplayable(h));
    }
    let (w, _) = crate::genesis_writes(&genesis);
    let mut state = MemState::new();
    state.apply(&w);
    let mut parent = Hash32::ZERO;
    let (mut blocks, mut txs) = (0u64, 0u64);
    let head = db.height()?;
    for h in 1..=head {
        let b = db.block(h)?.ok_or_else(|| DbError::ReplayDiverges { height: h, reason: "block is missing".into() })?;
        if b.header.parent != parent {
            return Err(DbError::ReplayDiverges { height: h, reason: "parent hash does not match".into() });
        }
        let out = crate::apply_block(&state, &b)
            .map_err(|e| DbError::ReplayDiverges { height: h, reason: format!("block does not apply: {e}") })?;
        if out.state_root != b.header.state_root {
            return Err(DbError::ReplayDiverges {
                height: h,
                reason: format!("recomputed state root {} vs header {}", out.state_root, b.header.state_root),
            });
        }
        state.apply(&out.writes);
        parent = b.header.hash();
        blocks += 1;
        txs += b.txs.len() as u64;
    }
    let stored = db.state_copy()?;
    if stored != state {
        return Err(DbError::ReplayDiverges { height: 0, reason: "replayed state differs from stored state".into() });
    }
    let state_root = crate::state_root(&state);
    if state_root != db.state_root()? {
        return Err(DbError::ReplayDiverges { height: 0, reason: "stored state root differs from the replay".into() });
    }
    Ok(ReplayReport { blocks, txs, state_root })
}

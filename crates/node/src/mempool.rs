//! Pending transactions, in arrival order, with each sender's next nonce.
//!
//! The mempool in memory mirrors the mempool table of the chain database: a
//! transaction is acknowledged only after it is durable there, and a restarted node
//! reloads it from disk.

use deed_types::{Address, Hash32, SignedTx};
use std::collections::{BTreeMap, HashMap};

/// Most transactions held while waiting for a block.
pub const MEMPOOL_TXS_MAX: usize = 50_000;

/// Pending transactions.
#[derive(Default, Debug)]
pub struct Mempool {
    txs: BTreeMap<u64, (Hash32, SignedTx)>,
    by_hash: HashMap<Hash32, u64>,
    next_nonce: HashMap<Address, u64>,
    seq: u64,
}

impl Mempool {
    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// True when a transaction with this id is pending.
    pub fn contains(&self, h: &Hash32) -> bool {
        self.by_hash.contains_key(h)
    }

    /// True when this very signed transaction (same id, same signature) is pending: its
    /// signature was verified when it was admitted.
    pub fn holds_signed(&self, h: &Hash32, tx: &SignedTx) -> bool {
        self.by_hash.get(h).and_then(|seq| self.txs.get(seq)).is_some_and(|(_, t)| t.signature == tx.signature)
    }

    /// The nonce the sender's next transaction must carry, given `account_nonce` on chain.
    pub fn pending_nonce(&self, sender: &Address, account_nonce: u64) -> u64 {
        self.next_nonce.get(sender).copied().unwrap_or(account_nonce).max(account_nonce)
    }

    /// Adds an admitted transaction.
    pub fn push(&mut self, tx: SignedTx) {
        let h = tx.hash();
        self.push_hashed(h, tx);
    }

    /// Adds an admitted transaction whose id `h` the caller has computed.
    pub fn push_hashed(&mut self, h: Hash32, tx: SignedTx) {
        let sender = tx.sender();
        let n = self.next_nonce.entry(sender).or_insert(0);
        *n = (*n).max(tx.tx.nonce + 1);
        self.seq += 1;
        self.by_hash.insert(h, self.seq);
        self.txs.insert(self.seq, (h, tx));
    }

    /// Up to `max` transactions in arrival order.
    pub fn take(&self, max: usize) -> Vec<SignedTx> {
        self.txs.values().take(max).map(|(_, t)| t.clone()).collect()
    }

    /// Up to `max` transactions that arrived after the one numbered `after` (0: from the
    /// start), with their ids, and the number of the last one returned (or `after`).
    /// Lets a gossiper send each transaction once without rescanning the whole pool.
    pub fn since(&self, after: u64, max: usize) -> (Vec<(Hash32, SignedTx)>, u64) {
        let mut last = after;
        let out = self
            .txs
            .range(after + 1..)
            .take(max)
            .map(|(&seq, t)| {
                last = seq;
                t.clone()
            })
            .collect();
        (out, last)
    }

    /// Drops transactions that were included in a block or rejected.
    pub fn remove(&mut self, hashes: impl IntoIterator<Item = Hash32>) {
        for h in hashes {
            if let Some(seq) = self.by_hash.remove(&h) {
                self.txs.remove(&seq);
            }
        }
        self.next_nonce.clear();
        for (_, tx) in self.txs.values() {
            let n = self.next_nonce.entry(tx.sender()).or_insert(0);
            *n = (*n).max(tx.tx.nonce + 1);
        }
    }
}

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
    /// Each sender's pending nonces (with how many pending transactions carry each), so
    /// the next nonce is the highest plus one and removal touches only its senders.
    nonces: HashMap<Address, BTreeMap<u64, u32>>,
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
        let pending = self.nonces.get(sender).and_then(|n| n.last_key_value()).map(|(n, _)| n + 1);
        pending.unwrap_or(account_nonce).max(account_nonce)
    }

    /// Adds an admitted transaction.
    pub fn push(&mut self, tx: SignedTx) {
        let h = tx.hash();
        self.push_hashed(h, tx);
    }

    /// Adds an admitted transaction whose id `h` the caller has computed.
    pub fn push_hashed(&mut self, h: Hash32, tx: SignedTx) {
        *self.nonces.entry(tx.sender()).or_default().entry(tx.tx.nonce).or_insert(0) += 1;
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
            let Some(seq) = self.by_hash.remove(&h) else { continue };
            let Some((_, tx)) = self.txs.remove(&seq) else { continue };
            let sender = tx.sender();
            let Some(per) = self.nonces.get_mut(&sender) else { continue };
            if let Some(c) = per.get_mut(&tx.tx.nonce) {
                *c -= 1;
                if *c == 0 {
                    per.remove(&tx.tx.nonce);
                }
            }
            if per.is_empty() {
                self.nonces.remove(&sender);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deed_types::{Keypair, Tx, TxBody};
    use proptest::prelude::*;

    fn tx(k: &Keypair, nonce: u64, amount: u128) -> SignedTx {
        Tx {
            chain_id: "mempool".into(),
            sender: k.public(),
            nonce,
            fee: 1,
            body: TxBody::Transfer { to: Address([1; 20]), amount },
        }
        .sign(k)
    }

    proptest! {
        /// Each sender's next nonce is always the highest pending nonce + 1, whatever is
        /// pushed and removed, as a full scan of the pool computes it.
        #[test]
        fn next_nonces_match_a_full_scan(ops in prop::collection::vec((0usize..3, 0u64..6, any::<bool>()), 1..60)) {
            let keys: Vec<Keypair> = (0..3).map(|i| Keypair::dev(&format!("mempool-{i}"))).collect();
            let mut pool = Mempool::default();
            let mut held: Vec<SignedTx> = Vec::new();
            for (i, (who, nonce, add)) in ops.into_iter().enumerate() {
                if add || held.is_empty() {
                    let t = tx(&keys[who], nonce, i as u128);
                    held.push(t.clone());
                    pool.push(t);
                } else {
                    let t = held.remove(nonce as usize % held.len());
                    pool.remove([t.hash()]);
                }
                for k in &keys {
                    let a = k.address();
                    let want = held.iter().filter(|t| t.sender() == a).map(|t| t.tx.nonce + 1).max().unwrap_or(0).max(2);
                    prop_assert_eq!(pool.pending_nonce(&a, 2), want);
                }
                prop_assert_eq!(pool.len(), held.len());
            }
        }
    }
}

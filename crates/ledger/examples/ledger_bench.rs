//! Ledger throughput on one core: signed transfers and paid-call settlements applied
//! per second (signatures checked, transaction signatures batch-verified), and block
//! commit latency through `ChainDb` (redb, durable).
//!
//! Run: `cargo run --release -p deed-ledger --example ledger_bench [-- --quick]`
//! (`bench/run.sh ledger` pins it to one core). Signing is client work and is done
//! before the clock starts.

use deed_ledger::db::ChainDb;
use deed_ledger::{BlockEnv, apply_block, propose};
use deed_types::tx::model_commitment;
use deed_types::{
    Amount, Block, BlockHeader, Cid, Genesis, GenesisAccount, GenesisExecutor, Hash32, Keypair, Params, Parent,
    Receipt, SignedTx, Tx, TxBody,
};
use std::time::{Duration, Instant};

const CHAIN: &str = "deed-bench";

struct Bench {
    db: ChainDb,
    producer: Keypair,
    head: Option<BlockHeader>,
    nonces: Vec<u64>,
    commit_lat: Vec<Duration>,
}

struct Timing {
    txs: usize,
    propose: Duration,
    apply: Duration,
}

impl Bench {
    fn tx(&mut self, who: usize, k: &Keypair, body: TxBody) -> SignedTx {
        let nonce = self.nonces[who];
        self.nonces[who] += 1;
        Tx { chain_id: CHAIN.into(), sender: k.public(), nonce, fee: 1, body }.sign(k)
    }

    /// Proposes (producer path), re-applies (validator path) and commits one block.
    fn block(&mut self, txs: Vec<SignedTx>) -> Timing {
        let n = txs.len();
        let height = self.head.as_ref().map_or(0, |h| h.height) + 1;
        let env = BlockEnv { chain_id: CHAIN.into(), height, time_ms: height, proposer: self.producer.public() };
        let snap = self.db.snapshot().unwrap();
        let t0 = Instant::now();
        let p = propose(&snap, &env, txs);
        let t_propose = t0.elapsed();
        assert!(p.rejected.is_empty(), "bench transactions must all apply: {:?}", p.rejected.first());
        let header = BlockHeader {
            chain_id: CHAIN.into(),
            height,
            parent: self.head.as_ref().map_or(Hash32::ZERO, |h| h.hash()),
            time_ms: height,
            tx_root: Block::tx_root(&p.included),
            state_root: p.state_root,
            proposer: self.producer.public(),
        };
        let block = Block::seal(header.clone(), p.included.clone(), &self.producer);
        let t1 = Instant::now();
        let out = apply_block(&snap, &block).unwrap();
        let t_apply = t1.elapsed();
        drop(snap);
        let t2 = Instant::now();
        self.db.commit_block(&block, &out.writes, &p.results()).unwrap();
        self.commit_lat.push(t2.elapsed());
        self.head = Some(header);
        Timing { txs: n, propose: t_propose, apply: t_apply }
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn rate(ts: &[Timing], f: impl Fn(&Timing) -> Duration) -> f64 {
    let n: usize = ts.iter().map(|t| t.txs).sum();
    let d: Duration = ts.iter().map(f).sum();
    n as f64 / d.as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (accounts, block_txs, transfer_blocks, settle_blocks) =
        if quick { (4_000, 2_000, 3, 2) } else { (20_000, 5_000, 10, 6) };
    let users: Vec<Keypair> = (0..accounts).map(|i| Keypair::dev(&format!("u{i}"))).collect();
    let execs: Vec<Keypair> = (0..8).map(|i| Keypair::dev(&format!("exec{i}"))).collect();
    let producer = Keypair::dev("producer");
    let g = Genesis {
        chain_id: CHAIN.into(),
        time_ms: 0,
        accounts: users
            .iter()
            .chain(&execs)
            .map(|k| GenesisAccount { address: k.address(), balance: 1_000_000_000_000 })
            .collect(),
        executors: execs.iter().map(|k| GenesisExecutor { key: k.public(), stake: 1_000_000 }).collect(),
        validators: vec![producer.public()],
        params: Params {
            min_tx_fee: 1,
            min_executor_stake: 1_000_000,
            commit_ttl_blocks: 100,
            block_txs_max: 10_000,
            unbonding_blocks: 10,
            jobs: deed_types::JobParams { challenge_window_blocks: 0, ..Default::default() },
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let db = ChainDb::open(&dir.path().join("chain.redb")).unwrap();
    db.init_genesis(&g).unwrap();
    let mut b = Bench { db, producer, head: None, nonces: vec![0; accounts + execs.len()], commit_lat: Vec::new() };

    // Transfers: every block spreads over all accounts.
    eprintln!("signing {} transfers…", transfer_blocks * block_txs);
    let mut transfer_t = Vec::new();
    let mut k = 0usize;
    for _ in 0..transfer_blocks {
        let txs: Vec<SignedTx> = (0..block_txs)
            .map(|_| {
                let from = k % accounts;
                let to = (k * 7919 + 13) % accounts;
                k += 1;
                let body = TxBody::Transfer { to: users[to].address(), amount: 1 };
                b.tx(from, &users[from], body)
            })
            .collect();
        transfer_t.push(b.block(txs));
    }

    // A three-generation lineage: grand derives from child (20%) and base (5%); child from base (10%).
    let salt = Hash32::of(b"salt");
    let ids: Vec<Cid> = ["base", "child", "grand"].iter().map(|n| Cid::of(n.as_bytes())).collect();
    let parents = [
        vec![],
        vec![Parent { model: ids[0], royalty_bps: 1_000 }],
        vec![Parent { model: ids[1], royalty_bps: 2_000 }, Parent { model: ids[0], royalty_bps: 500 }],
    ];
    for (i, id) in ids.iter().enumerate() {
        let c = TxBody::CommitModel { commitment: model_commitment(id, &users[i].address(), &salt) };
        let t = b.tx(i, &users[i], c);
        b.block(vec![t]);
        let body = TxBody::RegisterModel {
            model: *id,
            name: format!("m{i}"),
            salt,
            price: 1_000,
            parents: parents[i].clone(),
        };
        let t = b.tx(i, &users[i], body);
        b.block(vec![t]);
    }
    // Two more owners on grand, so settlement splits among several.
    let t1 = b.tx(2, &users[2], TxBody::TransferShares { model: ids[2], to: users[3].address(), bps: 3_000 });
    let t2 = b.tx(2, &users[2], TxBody::TransferShares { model: ids[2], to: users[4].address(), bps: 1_000 });
    b.block(vec![t1, t2]);

    // Requests, then settlements (the timed part).
    eprintln!("preparing {} paid calls…", settle_blocks * block_txs);
    let mut jobs = Vec::new();
    let mut k = 100usize;
    for _ in 0..settle_blocks {
        let txs: Vec<SignedTx> = (0..block_txs)
            .map(|_| {
                let from = k % accounts;
                k += 1;
                let body = TxBody::RequestInference {
                    model: ids[2],
                    input: Cid::of(&(k as u64).to_le_bytes()),
                    price: 1_000,
                    executor_fee: 10,
                    mode: Default::default(),
                };
                b.tx(from, &users[from], body)
            })
            .collect();
        jobs.extend(txs.iter().map(|t| match &t.tx.body {
            TxBody::RequestInference { input, .. } => (t.hash(), *input),
            _ => unreachable!(),
        }));
        b.block(txs);
    }
    let trace: Vec<Hash32> = (0..16u8).map(|i| Hash32::of(&[i])).collect();
    let mut settle_t = Vec::new();
    for chunk in jobs.chunks(block_txs) {
        let txs: Vec<SignedTx> = chunk
            .iter()
            .enumerate()
            .map(|(i, (job, input))| {
                let e = i % execs.len();
                let r = Receipt {
                    version: 1,
                    chain_id: CHAIN.into(),
                    job: *job,
                    model: ids[2],
                    engine: "deed-engine/1".into(),
                    input_hash: *input.digest(),
                    output_hash: Hash32::of(b"out"),
                    trace_root: deed_types::merkle::root(&trace),
                    trace: trace.clone(),
                    executor: execs[e].public(),
                    price: 1_000,
                    executor_fee: 10,
                }
                .sign(&execs[e]);
                b.tx(accounts + e, &execs[e], TxBody::SubmitReceipt { receipt: r })
            })
            .collect();
        settle_t.push(b.block(txs));
    }

    let mut lat = b.commit_lat.clone();
    let total: Amount = deed_ledger::query::total_supply(&b.db.snapshot().unwrap());
    assert_eq!(total, 1_000_000_000_000 * (accounts + execs.len()) as Amount + 8_000_000, "supply conserved");
    let state_keys = b.db.snapshot().map(|s| deed_ledger::StateRead::scan_prefix(&s, b"").len()).unwrap();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| transfers/s, validator path (apply_block: batch sig check + execute + state root) | {:.0} |",
        rate(&transfer_t, |t| t.apply)
    );
    println!("| transfers/s, producer path (propose) | {:.0} |", rate(&transfer_t, |t| t.propose));
    println!(
        "| paid-call settlements/s, validator path (3-generation lineage, 3 owners, receipt sig) | {:.0} |",
        rate(&settle_t, |t| t.apply)
    );
    println!("| paid-call settlements/s, producer path | {:.0} |", rate(&settle_t, |t| t.propose));
    println!(
        "| block commit latency p50 (ChainDb::commit_block, durable) | {:.1} ms |",
        pct(&mut lat, 0.5).as_secs_f64() * 1e3
    );
    println!("| block commit latency p99 | {:.1} ms |", pct(&mut lat, 0.99).as_secs_f64() * 1e3);
    println!(
        "| blocks / txs per block / accounts / state entries at end | {} / {} / {} / {} |",
        lat.len(),
        block_txs,
        accounts,
        state_keys
    );
}

//! Integration tests of deed-ledger: the redb-backed [`ChainDb`] driven by the pure
//! state machine, as the node drives it.

use deed_ledger::db::{ChainDb, DbError, TxStatus};
use deed_ledger::{BlockEnv, MemState, StateRead, TxResult, apply_block, genesis_writes, propose, query};
use deed_types::tx::model_commitment;
use deed_types::{
    Amount, Block, BlockHeader, Cid, Genesis, GenesisAccount, GenesisExecutor, Hash32, Keypair, Params, Receipt,
    SignedTx, Tx, TxBody,
};
use std::sync::Arc;

const CHAIN: &str = "deed-it";

fn key(n: &str) -> Keypair {
    Keypair::dev(n)
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        time_ms: 0,
        accounts: vec![
            GenesisAccount { address: key("alice").address(), balance: 1_000_000 },
            GenesisAccount { address: key("bob").address(), balance: 1_000_000 },
            GenesisAccount { address: key("exec").address(), balance: 1_000 },
        ],
        executors: vec![GenesisExecutor { key: key("exec").public(), stake: 5_000 }],
        validators: vec![key("producer").public()],
        params: Params {
            min_tx_fee: 1,
            min_executor_stake: 5_000,
            commit_ttl_blocks: 10,
            block_txs_max: 50,
            unbonding_blocks: 3,
            jobs: deed_types::JobParams { challenge_window_blocks: 0, ..Default::default() },
        },
    }
}

fn tx(db: &ChainDb, k: &Keypair, extra_nonce: u64, body: TxBody) -> SignedTx {
    let nonce = query::account(&db.snapshot().unwrap(), &k.address()).nonce + extra_nonce;
    Tx { chain_id: CHAIN.into(), sender: k.public(), nonce, fee: 1, body }.sign(k)
}

/// Produces one block from `txs` the way the node does: propose on a snapshot, seal,
/// commit with results.
fn produce(db: &ChainDb, txs: Vec<SignedTx>) -> (Block, Vec<TxResult>) {
    let producer = key("producer");
    let head = db.head().unwrap();
    let height = db.height().unwrap() + 1;
    let env = BlockEnv { chain_id: CHAIN.into(), height, time_ms: height * 1_000, proposer: producer.public() };
    let snap = db.snapshot().unwrap();
    let p = propose(&snap, &env, txs);
    let header = BlockHeader {
        chain_id: CHAIN.into(),
        height,
        parent: head.map_or(Hash32::ZERO, |h| h.hash()),
        time_ms: env.time_ms,
        tx_root: Block::tx_root(&p.included),
        state_root: p.state_root,
        proposer: producer.public(),
    };
    let block = Block::seal(header, p.included.clone(), &producer);
    let results = p.results();
    db.commit_block(&block, &p.writes, &results).unwrap();
    (block, results)
}

fn open_new() -> (tempfile::TempDir, ChainDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = ChainDb::open(&dir.path().join("chain.redb")).unwrap();
    db.init_genesis(&genesis()).unwrap();
    (dir, db)
}

/// Builds a short chain with a transfer, a model registration, a paid call and a
/// settled receipt.
fn build_chain(db: &ChainDb) {
    let (alice, bob, exec) = (key("alice"), key("bob"), key("exec"));
    let model = Cid::of(b"model");
    let salt = Hash32::of(b"salt");
    produce(
        db,
        vec![
            tx(db, &alice, 0, TxBody::Transfer { to: bob.address(), amount: 10 }),
            tx(db, &alice, 1, TxBody::CommitModel { commitment: model_commitment(&model, &alice.address(), &salt) }),
        ],
    );
    produce(
        db,
        vec![tx(db, &alice, 0, TxBody::RegisterModel { model, name: "m".into(), salt, price: 300, parents: vec![] })],
    );
    let req = tx(
        db,
        &bob,
        0,
        TxBody::RequestInference {
            model,
            input: Cid::of(b"in"),
            price: 300,
            executor_fee: 7,
            mode: Default::default(),
        },
    );
    produce(db, vec![req.clone()]);
    let job = query::job(&db.snapshot().unwrap(), &req.hash()).unwrap();
    let trace = vec![Hash32::of(b"t")];
    let r = Receipt {
        version: 1,
        chain_id: CHAIN.into(),
        job: job.id,
        model,
        engine: "deed-engine/1".into(),
        input_hash: *job.input.digest(),
        output_hash: Hash32::of(b"out"),
        trace_root: deed_types::merkle::root(&trace),
        trace,
        executor: exec.public(),
        price: 300,
        executor_fee: 7,
    }
    .sign(&exec);
    produce(db, vec![tx(db, &exec, 0, TxBody::SubmitReceipt { receipt: r })]);
    produce(db, vec![]);
    // The issue-4 transactions, so replay covers them: a derived model, shares, license, stake.
    let child = Cid::of(b"child");
    produce(
        db,
        vec![
            tx(db, &bob, 0, TxBody::CommitModel { commitment: model_commitment(&child, &bob.address(), &salt) }),
            tx(db, &alice, 0, TxBody::TransferShares { model, to: bob.address(), bps: 1_234 }),
            tx(db, &alice, 1, TxBody::SetLicense { model, price: 0 }),
            tx(db, &exec, 0, TxBody::Stake { amount: 100 }),
            tx(db, &exec, 1, TxBody::Unstake { amount: 50 }),
        ],
    );
    let parents = vec![deed_types::Parent { model, royalty_bps: 1_000 }];
    let reg = TxBody::RegisterModel { model: child, name: "child".into(), salt, price: 5, parents };
    produce(db, vec![tx(db, &bob, 0, reg)]);
}

#[test]
fn proofs_from_the_database_verify_against_the_stored_root() {
    let (_dir, db) = open_new();
    build_chain(&db);
    let snap = db.snapshot().unwrap();
    let root = db.state_root().unwrap();
    assert_eq!(db.head().unwrap().unwrap().state_root, root);
    let k = deed_ledger::keys::account(&key("bob").address());
    let p = deed_ledger::prove(&snap, &k);
    assert!(p.value.is_some() && deed_ledger::verify_proof(&root, &k, p.value.as_deref(), &p));
    let m = deed_ledger::keys::model(&Cid::of(b"child"));
    let p = deed_ledger::prove(&snap, &m);
    let rec: deed_ledger::ModelRecord = borsh::from_slice(p.value.as_ref().unwrap()).unwrap();
    assert_eq!(rec.parents.len(), 1);
    assert!(p.verify(&root, &m));
    // Absence, through JSON as the CLI would receive it.
    let nobody = deed_ledger::keys::account(&key("nobody").address());
    let json = serde_json::to_string(&deed_ledger::prove(&snap, &nobody)).unwrap();
    let p: deed_ledger::StateProof = serde_json::from_str(&json).unwrap();
    assert!(p.value.is_none() && deed_ledger::verify_proof(&root, &nobody, None, &p));
    assert!(!deed_ledger::verify_proof(&root, &nobody, Some(b"1"), &p));
}

#[test]
fn genesis_is_idempotent_and_exclusive() {
    let (_dir, db) = open_new();
    let root = db.state_root().unwrap();
    assert_eq!(db.init_genesis(&genesis()).unwrap(), root);
    assert_eq!(genesis_writes(&genesis()).1, root);
    assert_eq!(db.genesis().unwrap(), Some(genesis()));
    assert_eq!(db.height().unwrap(), 0);
    assert!(db.head().unwrap().is_none());
    let mut other = genesis();
    other.chain_id = "deed-other".into();
    assert!(matches!(db.init_genesis(&other), Err(DbError::GenesisMismatch { .. })));
    let snap = db.snapshot().unwrap();
    assert_eq!(query::chain_id(&snap).as_deref(), Some(CHAIN));
    assert_eq!(deed_ledger::state_root(&snap), root);
}

#[test]
fn blocks_and_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let (root, head, blocks, supply) = {
        let db = ChainDb::open(&path).unwrap();
        db.init_genesis(&genesis()).unwrap();
        build_chain(&db);
        let blocks: Vec<Block> = (1..=db.height().unwrap()).map(|h| db.block(h).unwrap().unwrap()).collect();
        (db.state_root().unwrap(), db.head().unwrap().unwrap(), blocks, query::total_supply(&db.snapshot().unwrap()))
    };
    let db = ChainDb::open(&path).unwrap();
    assert_eq!(db.state_root().unwrap(), root);
    assert_eq!(db.head().unwrap().unwrap(), head);
    assert_eq!(db.height().unwrap(), 7);
    for b in &blocks {
        assert_eq!(db.block(b.header.height).unwrap().as_ref(), Some(b));
    }
    assert!(db.block(8).unwrap().is_none());
    let snap = db.snapshot().unwrap();
    assert_eq!(deed_ledger::state_root(&snap), root, "the stored root is the root of the stored state");
    assert_eq!(query::total_supply(&snap), supply);
    let m = query::model(&snap, &Cid::of(b"model")).unwrap();
    assert_eq!((m.calls, m.earnings), (1, 300));
    assert_eq!(query::account(&snap, &key("bob").address()).balance, 1_000_000 + 10 - 300 - 7 - 1 - 2);
}

#[test]
fn replaying_stored_blocks_reproduces_every_state_root() {
    let (_dir, db) = open_new();
    build_chain(&db);
    let g = db.genesis().unwrap().unwrap();
    let (w, _) = genesis_writes(&g);
    let mut state = MemState::new();
    state.apply(&w);
    let mut parent = Hash32::ZERO;
    for h in 1..=db.height().unwrap() {
        let b = db.block(h).unwrap().unwrap();
        assert_eq!(b.header.parent, parent);
        let out = apply_block(&state, &b).unwrap();
        assert_eq!(out.state_root, b.header.state_root, "height {h}");
        state.apply(&out.writes);
        parent = b.header.hash();
    }
    assert_eq!(state.scan_prefix(b""), db.snapshot().unwrap().scan_prefix(b""), "replayed state equals stored state");
    assert_eq!(db.state_copy().unwrap(), state);
}

#[test]
fn commit_block_requires_the_next_height_and_parent() {
    let (_dir, db) = open_new();
    let (b1, _) = produce(&db, vec![]);
    // Committing the same block again: wrong height.
    let err = db.commit_block(&b1, &Default::default(), &[]).unwrap_err();
    assert!(matches!(err, DbError::NotNext(_)), "{err}");
    // Right height, wrong parent.
    let producer = key("producer");
    let header = BlockHeader { height: 2, parent: Hash32::of(b"elsewhere"), ..b1.header.clone() };
    let b2 = Block::seal(header, vec![], &producer);
    assert!(matches!(db.commit_block(&b2, &Default::default(), &[]), Err(DbError::NotNext(_))));
    assert_eq!(db.height().unwrap(), 1);
}

#[test]
fn commit_before_genesis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = ChainDb::open(&dir.path().join("c.redb")).unwrap();
    assert_eq!(db.state_root().unwrap(), Hash32::ZERO);
    assert!(db.genesis().unwrap().is_none());
    let producer = key("producer");
    let header = BlockHeader {
        chain_id: CHAIN.into(),
        height: 1,
        parent: Hash32::ZERO,
        time_ms: 0,
        tx_root: Block::tx_root(&[]),
        state_root: Hash32::ZERO,
        proposer: producer.public(),
    };
    let b = Block::seal(header, vec![], &producer);
    assert!(matches!(db.commit_block(&b, &Default::default(), &[]), Err(DbError::NoGenesis)));
}

#[test]
fn mempool_persists_in_order_and_drains_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let alice = key("alice");
    let txs: Vec<SignedTx> = {
        let db = ChainDb::open(&path).unwrap();
        db.init_genesis(&genesis()).unwrap();
        let txs: Vec<SignedTx> = (0..4)
            .map(|n| tx(&db, &alice, n, TxBody::Transfer { to: key("bob").address(), amount: 1 + n as Amount }))
            .collect();
        // Inserted out of nonce order: the mempool keeps insertion order.
        for i in [2, 0, 1, 3] {
            db.mempool_insert(&txs[i]).unwrap();
        }
        db.mempool_insert(&txs[0]).unwrap(); // duplicate: no-op
        txs
    };
    let db = ChainDb::open(&path).unwrap();
    let pool = db.mempool_all().unwrap();
    assert_eq!(pool, vec![txs[2].clone(), txs[0].clone(), txs[1].clone(), txs[3].clone()]);
    // The producer orders by nonce; the first one (nonce 2) fails with a gap in proposal order,
    // so propose in the order it would pick: sorted by nonce.
    let mut ordered = pool.clone();
    ordered.sort_by_key(|t| t.tx.nonce);
    ordered.truncate(3);
    let (b, _) = produce(&db, ordered);
    assert_eq!(b.txs.len(), 3);
    assert_eq!(db.mempool_all().unwrap(), vec![txs[3].clone()]);
    let st = db.tx_status(&txs[1].hash()).unwrap().unwrap();
    assert_eq!(st, TxStatus { height: Some(1), index: Some(1), ok: true, error: None });
    db.mempool_remove(&[txs[3].hash()]).unwrap();
    assert!(db.mempool_all().unwrap().is_empty());
}

#[test]
fn rejected_transactions_are_recorded_without_overwriting_included_ones() {
    let (_dir, db) = open_new();
    let (alice, bob) = (key("alice"), key("bob"));
    let good = tx(&db, &alice, 0, TxBody::Transfer { to: bob.address(), amount: 5 });
    let broke = tx(&db, &bob, 0, TxBody::Transfer { to: alice.address(), amount: 10_000_000 });
    db.mempool_insert(&good).unwrap();
    db.mempool_insert(&broke).unwrap();
    let (_, results) = produce(&db, vec![good.clone(), broke.clone()]);
    assert_eq!(results.len(), 2);
    let st = db.tx_status(&broke.hash()).unwrap().unwrap();
    assert_eq!((st.height, st.index, st.ok), (None, None, false));
    assert!(st.error.unwrap().starts_with("insufficient funds"), "the reason is kept for the user");
    assert!(db.mempool_all().unwrap().is_empty(), "included and rejected both leave the mempool");

    // A replay of `good` is rejected, but `good` stays included.
    db.mempool_insert(&good).unwrap();
    let (b, results) = produce(&db, vec![good.clone()]);
    assert!(b.txs.is_empty());
    assert!(!results[0].ok);
    let st = db.tx_status(&good.hash()).unwrap().unwrap();
    assert_eq!((st.height, st.ok), (Some(1), true));
    db.record_rejected(&[TxResult { hash: good.hash(), ok: false, error: Some("x".into()) }]).unwrap();
    assert!(db.tx_status(&good.hash()).unwrap().unwrap().ok);

    // The producer-only path.
    let lost = tx(&db, &bob, 5, TxBody::Transfer { to: alice.address(), amount: 1 });
    db.mempool_insert(&lost).unwrap();
    db.record_rejected(&[TxResult { hash: lost.hash(), ok: false, error: Some("nonce gap".into()) }]).unwrap();
    assert!(db.mempool_all().unwrap().is_empty());
    assert_eq!(db.tx_status(&lost.hash()).unwrap().unwrap().error.as_deref(), Some("nonce gap"));
    assert!(db.tx_status(&Hash32::of(b"never seen")).unwrap().is_none());
}

#[test]
fn snapshots_are_isolated_from_later_commits() {
    let (_dir, db) = open_new();
    let before = db.snapshot().unwrap();
    let root_before = deed_ledger::state_root(&before);
    produce(&db, vec![tx(&db, &key("alice"), 0, TxBody::Transfer { to: key("bob").address(), amount: 5 })]);
    assert_eq!(deed_ledger::state_root(&before), root_before, "an old snapshot does not see the new block");
    assert_ne!(deed_ledger::state_root(&db.snapshot().unwrap()), root_before);
}

#[test]
fn shared_across_threads() {
    let (_dir, db) = open_new();
    let db = Arc::new(db);
    let alice = key("alice");
    let txs: Vec<SignedTx> =
        (0..8).map(|n| tx(&db, &alice, n, TxBody::Transfer { to: key("bob").address(), amount: 1 })).collect();
    std::thread::scope(|s| {
        for t in &txs {
            let db = db.clone();
            s.spawn(move || db.mempool_insert(t).unwrap());
        }
    });
    assert_eq!(db.mempool_all().unwrap().len(), 8);
    let mut pool = db.mempool_all().unwrap();
    pool.sort_by_key(|t| t.tx.nonce);
    let (b, _) = produce(&db, pool);
    assert_eq!(b.txs.len(), 8);
    assert!(db.mempool_all().unwrap().is_empty());
}

#[test]
fn serde_shapes_for_the_api() {
    let (_dir, db) = open_new();
    build_chain(&db);
    let snap = db.snapshot().unwrap();
    let job = query::job(&snap, &db.block(3).unwrap().unwrap().txs[0].hash()).unwrap();
    let v = serde_json::to_value(&job).unwrap();
    assert_eq!(v["status"]["state"], "settled");
    assert_eq!(v["price"], "300", "amounts are decimal strings");
    let a = serde_json::to_value(query::account(&snap, &key("alice").address())).unwrap();
    assert!(a["balance"].is_string());
    let st = serde_json::to_value(db.tx_status(&job.id).unwrap().unwrap()).unwrap();
    assert_eq!(st["height"], 3);
}

#[test]
fn a_state_snapshot_installs_on_a_fresh_node_which_then_follows_the_chain() {
    let (_dir, db) = open_new();
    build_chain(&db);
    let h = db.height().unwrap();
    let block = db.block(h).unwrap().unwrap();
    let bytes = deed_ledger::snapshot::encode(&db.snapshot().unwrap(), h, db.state_root().unwrap());

    // A node that has only the genesis installs it: the same state, entry by entry
    // (the state tree's records included), and the block as its head.
    let (_dir2, fresh) = open_new();
    let writes = deed_ledger::snapshot::decode_verified(&bytes, &block.header).unwrap();
    fresh.install_snapshot(&block, &writes).unwrap();
    assert_eq!(fresh.state_copy().unwrap(), db.state_copy().unwrap());
    assert_eq!(fresh.state_root().unwrap(), block.header.state_root);
    assert_eq!(fresh.head().unwrap().unwrap(), block.header);
    assert_eq!(fresh.synced_from().unwrap(), Some(h));
    assert!(fresh.block(1).unwrap().is_none());
    // Not twice, nor below the head.
    assert!(matches!(fresh.install_snapshot(&block, &writes), Err(DbError::NotNext(_))));
    // The next block commits on both, to the same root.
    let bob = key("bob");
    let t = tx(&db, &key("alice"), 0, TxBody::Transfer { to: bob.address(), amount: 5 });
    let (next, results) = produce(&db, vec![t]);
    let out = apply_block(&fresh.snapshot().unwrap(), &next).unwrap();
    fresh.commit_block(&next, &out.writes, &results).unwrap();
    assert_eq!(fresh.state_root().unwrap(), db.state_root().unwrap());
    // Replay from genesis is impossible there, and says why.
    assert!(matches!(deed_ledger::db::replay(&fresh), Err(DbError::NotReplayable(x)) if x == h));
    assert!(deed_ledger::db::replay(&db).is_ok());
}

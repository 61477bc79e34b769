//! Admission: batches and concurrent clients (group commit) admit exactly what one-by-one
//! admission would, durably, and refuse the rest with the same reasons.

use deed_node::app::{AdmitError, App};
use deed_node::{NodeConfig, dev_genesis};
use deed_types::{Keypair, SignedTx, Tx, TxBody};
use std::sync::Arc;

fn transfer(from: &Keypair, to: &Keypair, nonce: u64, amount: u128) -> SignedTx {
    Tx {
        chain_id: deed_node::DEV_CHAIN_ID.into(),
        sender: from.public(),
        nonce,
        fee: 10,
        body: TxBody::Transfer { to: to.address(), amount },
    }
    .sign(from)
}

fn open(dir: &std::path::Path, users: &[Keypair]) -> App {
    let node = Keypair::dev("admit-node");
    let funded: Vec<_> = users.iter().map(|k| k.address()).collect();
    let mut c = NodeConfig::new(dir.to_path_buf());
    c.executor = false;
    let genesis = dev_genesis(&node, &funded, 1_000);
    App::open(c, node, genesis).unwrap()
}

#[test]
fn a_batch_admits_in_order_and_refuses_each_bad_one_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let users: Vec<Keypair> = (0..3).map(|i| Keypair::dev(&format!("admit-user-{i}"))).collect();
    let app = open(tmp.path(), &users);
    let (a, b, c) = (&users[0], &users[1], &users[2]);
    let mut forged = transfer(b, a, 0, 1);
    forged.signature = transfer(b, a, 0, 2).signature;
    let batch = vec![
        transfer(a, b, 0, 5),
        transfer(a, b, 1, 5), // follows its predecessor in the same batch
        transfer(a, b, 1, 5), // the same transaction again
        transfer(a, b, 3, 5), // a nonce gap
        forged,
        transfer(c, a, 0, u128::MAX / 2), // more than c has
        transfer(b, c, 0, 7),
    ];
    let r = app.admit_batch(batch.clone());
    assert_eq!(r.len(), batch.len());
    assert_eq!(*r[0].as_ref().unwrap(), batch[0].hash());
    assert_eq!(*r[1].as_ref().unwrap(), batch[1].hash());
    assert!(matches!(r[2], Err(AdmitError::Duplicate(_))), "{:?}", r[2]);
    assert!(matches!(r[3], Err(AdmitError::Ledger(deed_ledger::TxError::NonceGap { .. }))), "{:?}", r[3]);
    assert!(matches!(r[4], Err(AdmitError::Ledger(deed_ledger::TxError::BadSignature))), "{:?}", r[4]);
    assert!(matches!(r[5], Err(AdmitError::Ledger(deed_ledger::TxError::InsufficientFunds { .. }))), "{:?}", r[5]);
    assert_eq!(*r[6].as_ref().unwrap(), batch[6].hash());
    assert_eq!(app.mempool_len(), 3);
    // What was acknowledged is durable: a reopened node has exactly it pending.
    drop(app);
    let app = open(tmp.path(), &users);
    assert_eq!(app.mempool_len(), 3);
    for i in [0, 1, 6] {
        assert!(app.is_pending(&batch[i].hash()));
    }
    assert_eq!(app.pending_nonce(&a.address()).unwrap(), 2);
}

#[test]
fn concurrent_clients_share_durable_writes_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let users: Vec<Keypair> = (0..16).map(|i| Keypair::dev(&format!("admit-many-{i}"))).collect();
    let app = Arc::new(open(tmp.path(), &users));
    let per = 25u64;
    std::thread::scope(|s| {
        for (u, k) in users.iter().enumerate() {
            let (app, to) = (app.clone(), &users[(u + 1) % users.len()]);
            s.spawn(move || {
                for n in 0..per {
                    app.admit(transfer(k, to, n, 1)).unwrap();
                    // A resubmission is refused as a duplicate, never admitted twice.
                    let again = app.admit(transfer(k, to, n, 1));
                    assert!(matches!(again, Err(AdmitError::Duplicate(_))), "{again:?}");
                }
            });
        }
    });
    let want = users.len() * per as usize;
    assert_eq!(app.mempool_len(), want);
    drop(app);
    let app = open(tmp.path(), &users);
    assert_eq!(app.mempool_len(), want);
    // And they make valid blocks: everything is included, nothing rejected.
    while app.mempool_len() > 0 {
        app.produce_one(false).unwrap();
    }
    for k in &users {
        assert_eq!(deed_ledger::query::account(&app.state().unwrap(), &k.address()).nonce, per);
    }
}

#[test]
fn relayed_transactions_are_checked_alike_and_made_durable_by_the_next_durable_write() {
    let tmp = tempfile::tempdir().unwrap();
    let users: Vec<Keypair> = (0..2).map(|i| Keypair::dev(&format!("admit-relay-{i}"))).collect();
    let app = open(tmp.path(), &users);
    let (a, b) = (&users[0], &users[1]);
    let relayed = vec![transfer(a, b, 0, 5), transfer(a, b, 2, 5), transfer(a, b, 1, 5)];
    let r = app.admit_relayed(relayed.clone());
    assert_eq!(*r[0].as_ref().unwrap(), relayed[0].hash());
    assert!(matches!(r[1], Err(AdmitError::Ledger(deed_ledger::TxError::NonceGap { .. }))), "{:?}", r[1]);
    assert_eq!(*r[2].as_ref().unwrap(), relayed[2].hash());
    // A transaction a client submits here is durable on return, and so is everything
    // written before it.
    let own = transfer(b, a, 0, 1);
    app.admit(own.clone()).unwrap();
    drop(app);
    let app = open(tmp.path(), &users);
    assert_eq!(app.mempool_len(), 3);
    for t in [&relayed[0], &relayed[2], &own] {
        assert!(app.is_pending(&t.hash()));
    }
}

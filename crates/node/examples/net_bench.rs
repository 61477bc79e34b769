//! Network benchmark: finalized transfers per second and time to finality (p50, p99)
//! with N validators on loopback (real sockets, simplex), or the solo producer.
//!
//! `net_bench [--validators N] [--solo] [--txs M] [--accounts A] [--clients C] [--rate R]
//! [--runtime-threads T]`
//!
//! Transfers are signed up front from A funded accounts and submitted by C concurrent
//! clients to the validators' mempools through `App::admit` (the HTTP path minus JSON),
//! each account's to one validator, in nonce order. A transfer's time to finality runs
//! from its submission to the commit of the block holding it on validator 0. With
//! `--rate R` the clients together offer R transfers per second (paced), so finality is
//! measured at that load instead of at saturation, where it is mostly time in the queue.
//! Every validator's p2p/consensus runtime gets T worker threads (default: the machine's
//! cores divided among the validators, at least one), as co-located nodes should be set.

use deed_node::bft::{BftConfig, BftProducer};
use deed_node::producer::SoloProducer;
use deed_node::{NodeConfig, NodeHandle};
use deed_types::{Hash32, Keypair, SignedTx, Tx, TxBody};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let solo = std::env::args().any(|a| a == "--solo");
    let n = if solo { 1 } else { arg("--validators", 4usize) };
    let total = arg("--txs", 20_000usize);
    let accounts = arg("--accounts", 200usize);
    let clients = arg("--clients", 32usize).clamp(1, accounts);
    // Offered load in transfers per second over all clients; 0: as fast as admitted.
    let rate: f64 = arg("--rate", 0.0);
    // Each validator's p2p/consensus runtime threads: by default the cores shared out
    // (the validators all run in this process), at least one.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime_threads = arg("--runtime-threads", (cores / n).max(1));
    let tmp = tempfile::tempdir().unwrap();
    let keys: Vec<Keypair> = (0..n).map(|i| Keypair::dev(&format!("bench-validator-{i}"))).collect();
    let users: Vec<Keypair> = (0..accounts).map(|i| Keypair::dev(&format!("bench-user-{i}"))).collect();
    let vals: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let funded: Vec<_> = users.iter().map(|k| k.address()).collect();
    let genesis = deed_node::bft::testnet_genesis("deed-bench", &vals, &funded, deed_node::app::now_ms());
    let p2p: Vec<std::net::SocketAddr> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()).collect();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..n {
        let mut c = NodeConfig::new(tmp.path().join(format!("node{i}")));
        c.listen = "127.0.0.1:0".into();
        c.executor = false;
        let key = Keypair::from_seed(keys[i].seed());
        let h = if solo {
            c.block_interval_ms = 20;
            let p = SoloProducer { interval: Duration::from_millis(20), idle: Duration::from_millis(1_000) };
            deed_node::start(c, key, genesis.clone(), Box::new(p)).await.unwrap()
        } else {
            let peers = keys.iter().zip(&p2p).map(|(k, a)| (k.public(), *a)).collect();
            let mut b = BftConfig::new(p2p[i], peers, tmp.path().join(format!("node{i}/consensus")));
            b.runtime_threads = runtime_threads;
            deed_node::start(c, key, genesis.clone(), Box::new(BftProducer::new(b))).await.unwrap()
        };
        nodes.push(h);
    }
    // Sign everything first.
    let per = total.div_ceil(accounts);
    let mut txs: Vec<SignedTx> = Vec::with_capacity(total);
    for nonce in 0..per as u64 {
        for (u, k) in users.iter().enumerate() {
            if txs.len() == total {
                break;
            }
            let to = users[(u + 1) % users.len()].address();
            txs.push(
                Tx {
                    chain_id: "deed-bench".into(),
                    sender: k.public(),
                    nonce,
                    fee: 10,
                    body: TxBody::Transfer { to, amount: 1 },
                }
                .sign(k),
            );
        }
    }
    // Let the network form.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let submitted: Arc<Mutex<HashMap<Hash32, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    for node in nodes.iter().take(1) {
        let mut rx = node.app.blocks.subscribe();
        let (sub, lat, done) = (submitted.clone(), latencies.clone(), done.clone());
        tokio::spawn(async move {
            while let Ok(b) = rx.recv().await {
                let now = Instant::now();
                let mut l = lat.lock().unwrap();
                let s = sub.lock().unwrap();
                for t in &b.txs {
                    if let Some(t0) = s.get(&t.hash()) {
                        l.push(now.duration_since(*t0).as_secs_f64() * 1e3);
                    }
                }
                done.notify_one();
            }
        });
    }
    let start = Instant::now();
    // C concurrent clients, as many HTTP clients would be: client c submits the
    // transfers of accounts c, c + C, ... in nonce order, each account's to one node.
    // Each waits while its node holds more than 20,000 pending transfers.
    let apps: Vec<_> = nodes.iter().map(|h| h.app.clone()).collect();
    let mut per_client: Vec<Vec<(usize, SignedTx)>> = vec![Vec::new(); clients];
    for (i, tx) in txs.into_iter().enumerate() {
        let account = i % accounts;
        per_client[account % clients].push((account % apps.len(), tx));
    }
    let submit: Vec<_> = per_client
        .into_iter()
        .map(|mine| {
            let (submitted, apps) = (submitted.clone(), apps.clone());
            tokio::task::spawn_blocking(move || {
                for (k, (node, tx)) in mine.into_iter().enumerate() {
                    if rate > 0.0 {
                        let due = start + Duration::from_secs_f64(k as f64 * clients as f64 / rate);
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                    let app = &apps[node];
                    while app.mempool_len() > 20_000 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    submitted.lock().unwrap().insert(tx.hash(), Instant::now());
                    if let Err(e) = app.admit(tx) {
                        eprintln!("admit failed: {e}");
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    // Finality as node 0 sees it: wait until every transfer is final there.
    while latencies.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::timeout(Duration::from_millis(200), done.notified()).await.ok();
    }
    let elapsed = start.elapsed().as_secs_f64();
    for s in submit {
        s.await.unwrap();
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let heights: Vec<u64> = nodes.iter().map(|h| h.app.db.height().unwrap()).collect();
    println!(
        "{{\"producer\":\"{}\",\"validators\":{n},\"txs\":{total},\"offered_tps\":{rate},\"runtime_threads\":{runtime_threads},\"seconds\":{elapsed:.2},\"tps\":{:.0},\"finality_ms_p50\":{:.0},\"finality_ms_p99\":{:.0},\"heights\":{heights:?}}}",
        if solo { "solo" } else { "simplex" },
        l.len().min(total) as f64 / elapsed,
        pct(&l, 0.5),
        pct(&l, 0.99),
    );
    for h in nodes {
        let _ = h.shutdown().await;
    }
}

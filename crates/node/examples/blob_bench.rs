//! Blob replication benchmark: how fast a validator fetches a blob it lacks from a peer
//! (commonware p2p resolver on loopback, every piece verified, then ingested into the
//! store), against a local ingest of the same bytes.
//!
//! `blob_bench [--mib M] [--validators N] [--holders H]`
//!
//! The blob (M MiB of pseudo-random bytes) is put on the first H validators; the last
//! validator fetches it. Reported: local ingest time, fetch time (header to stored),
//! throughput, and the fetcher's counters.

use deed_node::bft::{BftConfig, BftProducer};
use deed_node::{NodeConfig, NodeHandle};
use deed_types::Keypair;
use std::time::{Duration, Instant};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mib = arg("--mib", 1024);
    let n = arg("--validators", 4).max(2);
    let holders = arg("--holders", 1).clamp(1, n - 1);
    let tmp = tempfile::tempdir().unwrap();
    let keys: Vec<Keypair> = (0..n).map(|i| Keypair::dev(&format!("blob-bench-{i}"))).collect();
    let vals: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let genesis = deed_node::bft::testnet_genesis("deed-blob-bench", &vals, &[], deed_node::app::now_ms());
    let p2p: Vec<std::net::SocketAddr> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()).collect();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..n {
        let mut c = NodeConfig::new(tmp.path().join(format!("node{i}")));
        c.listen = "127.0.0.1:0".into();
        c.executor = false;
        c.model_bytes_max = u64::MAX;
        let peers = keys.iter().zip(&p2p).map(|(k, a)| (k.public(), *a)).collect();
        let b = BftConfig::new(p2p[i], peers, tmp.path().join(format!("node{i}/consensus")));
        let key = Keypair::from_seed(keys[i].seed());
        nodes.push(deed_node::start(c, key, genesis.clone(), Box::new(BftProducer::new(b))).await.unwrap());
    }
    // Connected: a few blocks finalized.
    let t = Instant::now();
    while nodes.iter().any(|n| n.app.db.height().unwrap() < 2) {
        assert!(t.elapsed() < Duration::from_secs(60), "the cluster does not finalize");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let blob: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut ingest = Duration::ZERO;
    let mut id = None;
    for node in &nodes[..holders] {
        let t = Instant::now();
        id = Some(node.app.store.put(&blob).unwrap());
        ingest = t.elapsed();
    }
    let id = id.unwrap();
    let size = blob.len() as f64;
    drop(blob);
    let fetcher = nodes[n - 1].app.clone();
    let t = Instant::now();
    tokio::task::spawn_blocking(move || fetcher.fetcher.fetch(&fetcher.store, &id, u64::MAX)).await.unwrap().unwrap();
    let fetch = t.elapsed();
    let st = nodes[n - 1].app.fetcher.stats();
    println!("blob: {mib} MiB, {n} validators, {holders} holding it; loopback");
    println!(
        "local ingest (put):       {:>8.2} s  {:>8.1} MiB/s",
        ingest.as_secs_f64(),
        size / ingest.as_secs_f64() / 1048576.0
    );
    println!(
        "fetch from peers, stored: {:>8.2} s  {:>8.1} MiB/s",
        fetch.as_secs_f64(),
        size / fetch.as_secs_f64() / 1048576.0
    );
    println!("fetcher counters: {st:?}");
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

//! Crash safety: SIGKILL (and aborts at chosen points around block commit) at random
//! moments while transactions stream in, over several seeds. After each run, every
//! transaction the node acknowledged must end up in a block, and replaying the stored
//! chain from genesis must reproduce every state root.
//!
//! `DEED_CRASH_SEEDS=N` runs more seeds (default 3, to keep the suite quick).

use super::common::{NodeProc, ok_json};
use serde_json::{Value, json};
use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

/// A tiny HTTP/1.1 client over a raw socket; `None` when the node is unreachable.
fn http(url: &str, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let host = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status: u16 = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// xorshift64*: a seeded, reproducible source of kill times.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Builds and signs a transfer with the dev key `from` (dev keys are derived from their
/// names; see `Keypair::dev`), using the node's JSON shapes only.
fn transfer(from: &str, nonce: u64, to: &str) -> String {
    let key = deed_types::Keypair::dev(from);
    let tx = deed_types::Tx {
        chain_id: "deed-dev".into(),
        sender: key.public(),
        nonce,
        fee: 10,
        body: deed_types::TxBody::Transfer { to: to.parse().unwrap(), amount: 1 },
    };
    serde_json::to_string(&tx.sign(&key)).unwrap()
}

fn pending_nonce(url: &str, from: &str) -> Option<u64> {
    let addr = deed_types::Keypair::dev(from).address();
    let (st, body) = http(url, "GET", &format!("/v1/accounts/{addr}"), None)?;
    if st != 200 {
        return None;
    }
    serde_json::from_str::<Value>(&body).ok()?["pending_nonce"].as_u64()
}

fn run_seed(seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    ok_json(&home, &["init"]);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let to = deed_types::Keypair::dev("crash-sink").address().to_string();
    let senders = ["dev1", "dev2", "dev3"];
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        // Die by SIGKILL at a random time, or by abort just before / just after a commit.
        let failpoint = match rng.below(3) {
            0 => None,
            1 => Some(format!("before-commit:{}", 1 + rng.below(4))),
            _ => Some(format!("after-commit:{}", 1 + rng.below(4))),
        };
        let env: Vec<(&str, &str)> = failpoint.iter().map(|f| ("DEED_FAILPOINT", f.as_str())).collect();
        let mut node = NodeProc::start_with(&home, &env);
        let url = node.url.clone();
        let kill_at = Instant::now() + Duration::from_millis(300 + rng.below(900));
        let mut nonces: Vec<Option<u64>> = vec![None; senders.len()];
        let mut i = 0usize;
        while Instant::now() < kill_at {
            if node.child.try_wait().unwrap().is_some() {
                break; // the failpoint fired
            }
            let s = i % senders.len();
            i += 1;
            let nonce = match nonces[s] {
                Some(n) => n,
                None => match pending_nonce(&url, senders[s]) {
                    Some(n) => n,
                    None => continue,
                },
            };
            let body = transfer(senders[s], nonce, &to);
            match http(&url, "POST", "/v1/txs", Some(&body)) {
                Some((202, resp)) => {
                    let v: Value = serde_json::from_str(&resp).unwrap();
                    acked.push(v["hash"].as_str().unwrap().to_string());
                    nonces[s] = Some(nonce + 1);
                }
                Some((st, resp)) => panic!("seed {seed} round {round}: unexpected {st}: {resp}"),
                None => nonces[s] = None, // unknown whether it landed: ask again
            }
        }
        node.kill9();
    }
    // Recover and wait until every acknowledged transaction is in a block.
    let node = NodeProc::start(&home);
    let deadline = Instant::now() + Duration::from_secs(30);
    for h in &acked {
        loop {
            let (st, body) = http(&node.url, "GET", &format!("/v1/txs/{h}"), None).expect("node serves");
            let v: Value = serde_json::from_str(&body).unwrap_or(json!({}));
            assert_ne!(st, 404, "seed {seed}: acknowledged transaction {h} was lost");
            match v["status"].as_str() {
                Some("included") => break,
                Some("rejected") => panic!("seed {seed}: acknowledged transaction {h} was rejected: {body}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "seed {seed}: {h} still not included");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    node.kill9();
    let r = ok_json(&home, &["replay"]);
    assert_eq!(r["ok"], true, "seed {seed}: {r}");
    assert!(!acked.is_empty(), "seed {seed}: the harness acknowledged nothing, so it tested nothing");
    eprintln!("crash seed {seed}: {} acknowledged txs survived; replayed {} blocks", acked.len(), r["blocks"]);
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_transaction() {
    let seeds: u64 = std::env::var("DEED_CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    for seed in 0..seeds {
        run_seed(seed);
    }
}

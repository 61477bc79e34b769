//! Crash safety: the node dies at random moments while transactions stream in, over many
//! seeds, and after each seed every transaction the node acknowledged must end up in a
//! block, and replaying the stored chain from genesis must reproduce every state root
//! and the stored state (`deed replay`).
//!
//! Each seed runs three rounds on one data directory; each round ends one of four ways,
//! cycling through them so that every seed meets three and every two seeds all four:
//! SIGKILL at a random time (300–1,200 ms in, usually mid-stream and often mid-commit), or
//! an abort at a failpoint of the node's N-th block commit (N random in 1..=4, see
//! `DEED_FAILPOINT` in crates/node/src/app.rs): `before-commit` (before the write
//! transaction), `mid-commit` (every row of the block written into the redb write
//! transaction, before `commit()`), `after-commit` (right after `commit()` returns, before
//! the mempool and announcements). A failpoint round checks that its failpoint fired.
//!
//! `DEED_CRASH_SEEDS=N` runs N seeds (default 24: 72 crashes, about 45 s on 2 cores).

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

/// How a round ends: SIGKILL at a random time, or an abort at a failpoint.
const DEATHS: [Option<&str>; 4] = [None, Some("before-commit"), Some("mid-commit"), Some("after-commit")];

/// Most time a failpoint round waits for its failpoint (N ≤ 4 blocks, one per 250 ms).
const FAILPOINT_WAIT: Duration = Duration::from_secs(15);

/// Runs one seed; returns how many rounds ended each way (indexed like [`DEATHS`]).
fn run_seed(seed: u64) -> [u32; 4] {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    ok_json(&home, &["init"]);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let to = deed_types::Keypair::dev("crash-sink").address().to_string();
    let senders = ["dev1", "dev2", "dev3"];
    let mut acked: Vec<String> = Vec::new();
    let mut deaths = [0u32; 4];
    for round in 0..3u64 {
        let kind = ((seed * 3 + round) % DEATHS.len() as u64) as usize;
        let failpoint = DEATHS[kind].map(|stage| format!("{stage}:{}", 1 + rng.below(4)));
        let env: Vec<(&str, &str)> = failpoint.iter().map(|f| ("DEED_FAILPOINT", f.as_str())).collect();
        let mut node = match start_node(&home, &env) {
            Ok(node) => node,
            Err(status) => {
                // A restarted node commits the mempool it recovered at once, so a
                // failpoint at block 1 can fire before the node prints its address.
                let f = failpoint
                    .as_deref()
                    .unwrap_or_else(|| panic!("seed {seed} round {round}: the node died while starting: {status}"));
                assert!(aborted(&status), "seed {seed} round {round}: failpoint {f}: the node exited with {status}");
                deaths[kind] += 1;
                continue;
            }
        };
        let url = node.url.clone();
        let started = Instant::now();
        let stop_at = started
            + match failpoint {
                None => Duration::from_millis(300 + rng.below(900)),
                Some(_) => FAILPOINT_WAIT,
            };
        let mut nonces: Vec<Option<u64>> = vec![None; senders.len()];
        let mut i = 0usize;
        let mut exited = None;
        while Instant::now() < stop_at {
            if let Some(status) = node.child.try_wait().unwrap() {
                exited = Some(status);
                break;
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
        if let Some(f) = &failpoint {
            // The node stops answering as it dies; wait for the exit itself.
            let status = exited.or_else(|| wait_exit(&mut node, stop_at)).unwrap_or_else(|| {
                panic!("seed {seed} round {round}: failpoint {f} did not fire within {FAILPOINT_WAIT:?}")
            });
            assert!(aborted(&status), "seed {seed} round {round}: failpoint {f}: the node exited with {status}");
        } else {
            assert!(exited.is_none(), "seed {seed} round {round}: the node died by itself: {exited:?}");
        }
        deaths[kind] += 1;
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
    deaths
}

/// Starts a dev node on `home` with `env`, as `NodeProc::start_with` does; `Err` with its
/// exit status if it dies before printing its address (a failpoint can fire that early).
fn start_node(home: &std::path::Path, env: &[(&str, &str)]) -> Result<NodeProc, std::process::ExitStatus> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_deed"))
        .arg("--home")
        .arg(home)
        .args(["node", "--dev", "--listen", "127.0.0.1:0", "--json"])
        .env("DEED_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("reading the node's stdout");
    if line.is_empty() {
        return Err(child.wait().unwrap());
    }
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("node said {line:?}: {e}"));
    let url = format!("http://{}", v["listen"].as_str().unwrap());
    Ok(NodeProc { child, url })
}

/// Waits until `node` exits or `deadline` passes.
fn wait_exit(node: &mut NodeProc, deadline: Instant) -> Option<std::process::ExitStatus> {
    while Instant::now() < deadline {
        if let Some(status) = node.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// True when the process ended by `abort()` (SIGABRT), as a failpoint ends it.
fn aborted(status: &std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(6)
    }
    #[cfg(not(unix))]
    {
        !status.success()
    }
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_transaction() {
    let seeds: u64 = std::env::var("DEED_CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24);
    let started = Instant::now();
    let mut deaths = [0u32; 4];
    for seed in 0..seeds {
        for (total, n) in deaths.iter_mut().zip(run_seed(seed)) {
            *total += n;
        }
    }
    if seeds >= 2 {
        assert!(deaths.iter().all(|&n| n > 0), "every way of dying was exercised: {deaths:?}");
    }
    eprintln!(
        "crash: {seeds} seeds in {:.1} s; rounds by SIGKILL {}, before-commit {}, mid-commit {}, after-commit {}",
        started.elapsed().as_secs_f64(),
        deaths[0],
        deaths[1],
        deaths[2],
        deaths[3]
    );
}

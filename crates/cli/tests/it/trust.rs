//! `deed verify` and `deed prove` trust a genesis the client pinned, not the node they
//! ask: the first contact pins the node's genesis in the home (and says so), a node on
//! another genesis is refused, `--genesis FILE|HASH` overrides, and finality is checked
//! against the pinned validators — a header signed by a key that is not the sole
//! validator, a producer's signature passed off as BFT finality, or a certificate of
//! another block is refused even when it comes with everything else honest. A lying node
//! is a proxy in front of an honest one that rewrites some of its answers.

use crate::common::*;
use deed_types::{BlockHeader, Keypair};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

type Lie = dyn Fn(&str, Value) -> Value + Send + Sync;

/// A lying node on a loopback port: answers each GET with the honest node's answer as
/// rewritten by `lie(path, answer)`. Stops when dropped.
struct Liar {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The honest node's answer to `GET path`: status and body.
fn upstream(url: &str, path: &str) -> (u16, Vec<u8>) {
    let host = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete HTTP answer");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "a chunked answer to {path}");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, resp[split + 4..].to_vec())
}

impl Liar {
    fn start(honest: &str, lie: Box<Lie>) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, honest) = (stop.clone(), honest.to_string());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                        break;
                    }
                }
                let (status, body) = upstream(&honest, &path);
                let body = match serde_json::from_slice::<Value>(&body) {
                    Ok(v) if status == 200 => serde_json::to_vec(&lie(&path, v)).unwrap(),
                    _ => body,
                };
                let kind = if status == 200 { "application/json" } else { "application/problem+json" };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body);
            }
        });
        Liar { url, stop, thread: Some(thread) }
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs deed with --json, expects exit 3 (not verified / refused), returns stderr.
fn refused(home: &Path, args: &[&str]) -> String {
    let mut a = args.to_vec();
    a.push("--json");
    fails(home, &a, 3)
}

/// A copy of `header` claiming `producer`, with its signature over the result.
fn resigned(header: &Value, producer: &Keypair) -> (Value, Value) {
    let mut h: BlockHeader = serde_json::from_value(header.clone()).unwrap();
    h.proposer = producer.public();
    let sig = producer.sign(&h.hash().0);
    (serde_json::to_value(h).unwrap(), serde_json::to_value(sig).unwrap())
}

#[test]
fn solo_chain_pins_its_genesis_and_refuses_forged_finality() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("node");
    ok_json(&home, &["init"]);
    let node = NodeProc::start(&home);
    let url = node.url.clone();
    let dev1 = key_addr(&home, "dev1");
    let genesis_hash = get_json(&url, "/v1/status")["genesis_hash"].as_str().unwrap().to_string();

    // Blocks, and a receipt to verify.
    let model = fixtures().join("mlp.onnx");
    let published =
        ok_json(&home, &["--node", &url, "publish", model.to_str().unwrap(), "--name", "mlp", "--price", "1000"]);
    let id = published["model"].as_str().unwrap().to_string();
    let out_dir = tmp.path().join("out");
    let input = fixtures().join("mlp.input.json");
    let run = [
        "--node",
        &url,
        "--key",
        "dev1",
        "run",
        &id,
        "--input",
        input.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    ok_json(&home, &run);
    let receipt = out_dir.join("receipt.json");
    let receipt = receipt.to_str().unwrap();

    // First contact from a fresh home: the node's genesis is pinned and reported.
    let client = tmp.path().join("client");
    ok_json(&client, &["init"]);
    let p = ok_json(&client, &["--node", &url, "prove", "balance", &dev1]);
    assert_eq!(p["verified"], true, "{p}");
    assert_eq!(p["trust"]["source"], "first use", "{p}");
    assert_eq!(p["trust"]["genesis_hash"], genesis_hash.as_str());
    assert_eq!(p["trust"]["validators"], 1);
    assert!(p["finality"].as_str().unwrap().contains("sole genesis validator"), "{p}");
    assert!(client.join("trusted-genesis.json").is_file());
    let p = ok_json(&client, &["--node", &url, "prove", "balance", &dev1]);
    assert_eq!(p["trust"]["source"], "pinned", "{p}");
    // People are told, on stderr, what was trusted and where it is pinned.
    let fresh = tmp.path().join("fresh");
    let out = deed(&fresh, &["--node", &url, "prove", "balance", &dev1]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("on first use") && err.contains(&genesis_hash) && err.contains("trusted-genesis.json"),
        "{err}"
    );
    // A node's own home trusts its own genesis.json.
    let p = ok_json(&home, &["--node", &url, "prove", "balance", &dev1]);
    assert_eq!(p["trust"]["source"], "node home", "{p}");

    // A node on another genesis (another dev chain) is refused by the pinned home...
    let other_home = tmp.path().join("other");
    ok_json(&other_home, &["init"]);
    let other = NodeProc::start(&other_home);
    let other_hash = get_json(&other.url, "/v1/status")["genesis_hash"].as_str().unwrap().to_string();
    assert_ne!(other_hash, genesis_hash);
    wait_height(&other.url, 1);
    let err = refused(&client, &["--node", &other.url, "prove", "balance", &dev1]);
    assert!(err.contains("another chain") && err.contains(&other_hash) && err.contains(&genesis_hash), "{err}");
    // ... and by --genesis naming the first chain, by hash or file; the flag pins nothing.
    let err = refused(&fresh, &["--node", &other.url, "--genesis", &genesis_hash, "prove", "balance", &dev1]);
    assert!(err.contains("another chain"), "{err}");
    let own_file = home.join("genesis.json");
    let own_file = own_file.to_str().unwrap();
    refused(&fresh, &["--node", &other.url, "--genesis", own_file, "prove", "balance", &dev1]);
    let flagged = tmp.path().join("flagged");
    let p = ok_json(&flagged, &["--node", &other.url, "--genesis", &other_hash, "prove", "balance", &dev1]);
    assert_eq!(p["trust"]["source"], "flag", "{p}");
    assert!(!flagged.join("trusted-genesis.json").exists(), "an explicit anchor is not pinned");
    let err = fails(&flagged, &["--node", &url, "--genesis", "neither", "prove", "balance", &dev1], 2);
    assert!(err.contains("neither a genesis hash"), "{err}");

    let v = ok_json(&client, &["--node", &url, "verify", receipt]);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["trust"]["source"], "pinned", "{v}");
    let err = refused(&client, &["--node", &other.url, "verify", receipt]);
    assert!(err.contains("another chain"), "{err}");

    // A liar that signs the headers it serves with its own key: a header that is not the
    // sole validator's is not final, though the state proof under it is honest.
    let stranger = Keypair::dev("stranger");
    let liar = Liar::start(
        &url,
        Box::new(move |path, mut v| {
            if path.starts_with("/v1/proofs/") {
                v["header"] = resigned(&v["header"], &stranger).0;
            } else if path.starts_with("/v1/finality/") {
                let (h, sig) = resigned(&v["header"], &stranger);
                v = json!({ "header": h, "mode": "solo", "signature": sig });
            }
            v
        }),
    );
    let err = refused(&client, &["--node", &liar.url, "prove", "balance", &dev1]);
    assert!(err.contains("not by the chain's sole validator"), "{err}");
    let err = refused(&client, &["--node", &liar.url, "verify", receipt]);
    assert!(err.contains("not by the chain's sole validator"), "{err}");

    // A liar that passes off a certificate that is no quorum certificate of this chain.
    let liar = Liar::start(
        &url,
        Box::new(|path, v| {
            if !path.starts_with("/v1/finality/") {
                return v;
            }
            json!({ "header": v["header"], "mode": "bft", "certificate": "00".repeat(80), "chain": [] })
        }),
    );
    let err = refused(&client, &["--node", &liar.url, "prove", "balance", &dev1]);
    assert!(err.contains("certificate"), "{err}");

    // A liar whose block at the receipt's height is not the final one there (its
    // evidence is honest).
    let liar = Liar::start(
        &url,
        Box::new(|path, mut v| {
            if path.starts_with("/v1/blocks/") {
                v["header"]["state_root"] = json!("11".repeat(32));
            }
            v
        }),
    );
    let err = refused(&client, &["--node", &liar.url, "verify", receipt]);
    assert!(err.contains("is not the final one"), "{err}");
}

/// Waits until the node at `url` has committed block `height`.
fn wait_height(url: &str, height: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_json(url, "/v1/status")["height"].as_u64().unwrap() < height {
        assert!(Instant::now() < deadline, "{url} never reached height {height}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The URL a testnet node's home points its client commands at.
fn node_url(home: &Path) -> String {
    let cfg = std::fs::read_to_string(home.join("config.toml")).unwrap();
    cfg.lines()
        .find_map(|l| l.strip_prefix("node_url = ").map(|v| v.trim_matches('"').to_string()))
        .expect("node_url in config.toml")
}

#[test]
fn bft_testnet_finality_is_a_quorum_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let d = dir.to_string_lossy().into_owned();
    let base = crate::testnet::free_base().to_string();
    ok_json(
        tmp.path(),
        &["testnet", "init", "--validators", "4", "--full-nodes", "1", "--out", &d, "--base-port", &base],
    );
    let _down = crate::testnet::Down(dir.clone());
    ok_json(tmp.path(), &["testnet", "up", &d]);
    let val = node_url(&dir.join("node0"));
    let full = node_url(&dir.join("full0"));
    let dev1 = key_addr(&dir.join("node0"), "dev1");
    wait_height(&val, 2);

    // Honest: a fresh home pins the chain on first use; a validator's and a full node's
    // answers are certified final by a quorum of the four.
    let client = tmp.path().join("client");
    let p = ok_json(&client, &["--node", &val, "prove", "balance", &dev1]);
    assert_eq!(p["trust"]["source"], "first use", "{p}");
    assert_eq!(p["trust"]["validators"], 4, "{p}");
    assert!(p["finality"].as_str().unwrap().contains("quorum of the 4 genesis validators"), "{p}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let p = loop {
        // The full node holds certificates from the blocks it received with one.
        let out = deed(&client, &["--node", &full, "prove", "balance", &dev1, "--json"]);
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        assert!(Instant::now() < deadline, "full node: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(p["trust"]["source"], "pinned", "{p}");
    assert!(p["finality"].as_str().unwrap().contains("quorum"), "{p}");
    let genesis = dir.join("node0").join("genesis.json");
    let p = ok_json(
        &tmp.path().join("flag"),
        &["--node", &full, "--genesis", genesis.to_str().unwrap(), "prove", "balance", &dev1],
    );
    assert_eq!(p["trust"]["source"], "flag", "{p}");

    // A producer's header signature is no finality on a chain of four validators.
    let up = val.clone();
    let liar = Liar::start(
        &val,
        Box::new(move |path, v| {
            if !path.starts_with("/v1/finality/") {
                return v;
            }
            let block = get_json(&up, &format!("/v1/blocks/{}", v["header"]["height"]));
            assert_eq!(block["header"], v["header"]);
            json!({ "header": v["header"], "mode": "solo", "signature": block["signature"] })
        }),
    );
    let err = refused(&client, &["--node", &liar.url, "prove", "balance", &dev1]);
    assert!(err.contains("4 validators"), "{err}");
    drop(liar);

    // A real certificate, of another block: block 1's evidence served for a later one.
    let first = get_json(&val, "/v1/finality/1");
    let certified = 1 + first["chain"].as_array().unwrap().len() as u64;
    wait_height(&val, certified + 2);
    let cert = first["certificate"].as_str().unwrap().to_string();
    let liar = Liar::start(
        &val,
        Box::new(move |path, v| {
            if !path.starts_with("/v1/finality/") {
                return v;
            }
            json!({ "header": v["header"], "mode": "bft", "certificate": cert, "chain": [] })
        }),
    );
    let err = refused(&client, &["--node", &liar.url, "prove", "balance", &dev1]);
    assert!(err.contains("another block"), "{err}");
}

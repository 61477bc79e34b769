//! `deed testnet` with a full node, through the real binary: `init --full-nodes 1` writes a
//! full node's home beside the validators', `up` starts it too, `deed status` on it says
//! it is a full node, a transfer sent through it is finalized, and it holds the
//! validators' blocks and state roots; `down` stops everything (also when the test fails).

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Stops the testnet when dropped, so a failing test leaves no node running.
pub(crate) struct Down(pub(crate) PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let dir = self.0.to_string_lossy().into_owned();
        let _ = deed(&self.0, &["testnet", "down", &dir]);
    }
}

/// A base port whose HTTP (base..base+5) and p2p (base+100..base+105) ports are free now.
pub(crate) fn free_base() -> u16 {
    let start = 20_000 + (std::process::id() % 20_000) as u16;
    (0..200)
        .map(|i| start + i * 7)
        .find(|b| (0..5).chain(100..105).all(|o| std::net::TcpListener::bind(("127.0.0.1", b + o)).is_ok()))
        .expect("free ports")
}

fn status(home: &Path) -> Value {
    ok_json(home, &["status"])
}

#[test]
fn a_testnet_with_a_full_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let d = dir.to_string_lossy().into_owned();
    let base = free_base().to_string();
    let init = ok_json(
        tmp.path(),
        &["testnet", "init", "--validators", "4", "--full-nodes", "1", "--out", &d, "--base-port", &base],
    );
    let nodes = init["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5, "{init}");
    assert_eq!(nodes[4]["role"], "full node", "{init}");
    let full = dir.join("full0");
    let val = dir.join("node0");
    assert!(full.join("network.toml").is_file());

    let _down = Down(dir.clone());
    let up = ok_json(tmp.path(), &["testnet", "up", &d]);
    assert_eq!(up["nodes"].as_array().unwrap().len(), 5, "{up}");

    let s = status(&full);
    assert_eq!(s["role"], "full node", "{s}");
    assert_eq!(status(&val)["role"], "validator");
    let text = String::from_utf8_lossy(&deed(&full, &["status"]).stdout).into_owned();
    assert!(text.contains("role:       full node"), "{text}");

    // A transfer through the full node is finalized (the command waits for its block).
    let to = ok_json(&full, &["key", "list"]);
    let to = to["keys"].as_array().and_then(|k| k.iter().find(|k| k["name"] == "dev2")).map(|k| k["address"].clone());
    let to = to.and_then(|a| a.as_str().map(String::from)).expect("dev2's address");
    let sent = ok_json(&full, &["--key", "dev1", "transfer", &to, "12345"]);
    let h = sent["height"].as_u64().unwrap();

    // Both hold the same block there (same hash, so the same state root).
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&val)["height"].as_u64().unwrap() < h {
        assert!(Instant::now() < deadline, "the validator never reached height {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let block = |home: &Path| {
        let cfg = std::fs::read_to_string(home.join("config.toml")).unwrap();
        let node_url = cfg
            .lines()
            .find_map(|l| l.strip_prefix("node_url = ").map(|v| v.trim_matches('"').to_string()))
            .expect("node_url in config.toml");
        get_json(&node_url, &format!("/v1/blocks/{h}"))
    };
    let (a, b) = (block(&full), block(&val));
    assert_eq!(a["header"], b["header"], "block {h} differs between the full node and a validator");

    let down = ok_json(tmp.path(), &["testnet", "down", &d]);
    assert_eq!(down["stopped"].as_array().unwrap().len(), 5, "{down}");
}

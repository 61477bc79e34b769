//! The verification protocol on real nodes and real models, with executors that lie on
//! purpose (built with the `adversary` feature): every misbehaviour is caught — by
//! replication at once, by an auditor, or by a challenger within the window — the liar
//! slashed, the payer refunded, the honest side paid; an honest executor is never
//! slashed; a frivolous challenge loses its bond.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const STAKE: u128 = deed_node::DEV_EXECUTOR_STAKE;

struct Net {
    _tmp: tempfile::TempDir,
    home: std::path::PathBuf,
    node: NodeProc,
    model: String,
}

/// A dev node (with `extra` node args) and the mlp model published at price 1000.
fn net(extra: &[&str]) -> Net {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    ok_json(&home, &["init"]);
    let node = NodeProc::start_args(&home, extra, &[]);
    let m = fixtures().join("mlp.onnx");
    let p = ok_json(&home, &["--node", &node.url, "publish", m.to_str().unwrap(), "--name", "mlp", "--price", "1000"]);
    let model = p["model"].as_str().unwrap().to_string();
    Net { _tmp: tmp, home, node, model }
}

impl Net {
    fn url(&self) -> &str {
        &self.node.url
    }

    fn node_key(&self) -> String {
        get_json(self.url(), "/v1/status")["node_key"].as_str().unwrap().to_string()
    }

    fn stake_of(&self, key: &str) -> u128 {
        let v = get_json(self.url(), "/v1/executors");
        v["executors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .map_or(0, |e| e["stake"].as_str().unwrap().parse().unwrap())
    }

    /// `dev1` pays for a run on `input` (scaled) without waiting for settlement.
    fn run(&self, mode: &str, seed: u32) -> Value {
        ok_json(&self.home, &self.run_args(mode, seed).iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn run_args(&self, mode: &str, seed: u32) -> Vec<String> {
        let dir = self.home.parent().unwrap().join(format!("out-{seed}-{}", mode.replace(':', "")));
        let input = dir.with_extension("json");
        let data: Vec<String> =
            (0..16).map(|i| format!("{:.3}", (i as f32 - 7.5) * 0.1 * (1.0 + seed as f32))).collect();
        std::fs::write(&input, format!(r#"{{"x": {{"shape": [1, 16], "data": [{}]}}}}"#, data.join(","))).unwrap();
        let args = [
            "--node",
            self.url(),
            "--key",
            "dev1",
            "run",
            &self.model,
            "--input",
            input.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
            "--mode",
            mode,
            "--no-settle",
        ];
        args.iter().map(|s| s.to_string()).collect()
    }

    fn job(&self, job: &str) -> Value {
        get_json(self.url(), &format!("/v1/jobs/{job}"))
    }

    /// Waits until the job reaches a final state; returns it.
    fn final_state(&self, job: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let j = self.job(job);
            let st = &j["job"]["status"];
            if st["state"] == "refunded" || st["state"] == "settled" {
                return st.clone();
            }
            assert!(Instant::now() < deadline, "job {job} still {st}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn assert_caught(n: &Net, job: &str, liar: &str, payer_before: u128, catcher: Option<(&str, u128)>) {
    let st = n.final_state(job);
    assert_eq!(st["state"], "refunded", "the lie was not caught: {st}");
    assert!(st["reason"].as_str().unwrap().contains("fraud proven"), "{st}");
    assert_eq!(n.stake_of(liar), STAKE / 2, "the liar loses half its stake");
    let payer = key_addr(&n.home, "dev1");
    let fee: u128 = 10;
    // The payer paid one request fee and got the escrow back plus half the slash.
    assert_eq!(balance(&n.home, n.url(), &payer), payer_before - fee + STAKE / 4);
    if let Some((who, before)) = catcher {
        let addr = key_addr(&n.home, who);
        assert_eq!(balance(&n.home, n.url(), &addr), before - fee + STAKE / 4, "the catcher is rewarded");
    }
}

#[test]
fn wrong_output_is_caught_by_an_auditor() {
    let n = net(&["--misbehave", "wrong-output"]);
    let liar = n.node_key();
    let _auditor = WorkerProc::start(&n.home, n.url(), "dev2", &["--audit", "1"], &[]);
    let payer0 = balance(&n.home, n.url(), &key_addr(&n.home, "dev1"));
    let auditor0 = balance(&n.home, n.url(), &key_addr(&n.home, "dev2"));
    let r = n.run("single", 1);
    assert_caught(&n, r["job"].as_str().unwrap(), &liar, payer0, Some(("dev2", auditor0)));
}

#[test]
fn wrong_trace_is_caught_by_a_challenger() {
    let n = net(&["--misbehave", "wrong-trace"]);
    let liar = n.node_key();
    let payer0 = balance(&n.home, n.url(), &key_addr(&n.home, "dev1"));
    let ch0 = balance(&n.home, n.url(), &key_addr(&n.home, "dev3"));
    let r = n.run("single", 2);
    let receipt = r["receipt"].as_str().unwrap();
    // The receipt does not verify; the challenge proves it.
    let err = fails(&n.home, &["--node", n.url(), "verify", receipt], 3);
    assert!(err.contains("op #"), "{err}");
    let c = ok_json(&n.home, &["--node", n.url(), "--key", "dev3", "challenge", receipt]);
    assert_eq!(c["proven"], true, "{c}");
    assert_caught(&n, r["job"].as_str().unwrap(), &liar, payer0, Some(("dev3", ch0)));
}

#[test]
fn substituted_model_is_caught_by_replication_at_once() {
    let n = net(&["--misbehave", "substitute-model"]);
    let liar = n.node_key();
    // An honest executor beside the lying node: dev2, staked.
    ok_json(&n.home, &["--node", n.url(), "--key", "dev2", "stake", &STAKE.to_string()]);
    let honest = get_json(n.url(), "/v1/executors")["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == key_addr(&n.home, "dev2").as_str())
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let _w = WorkerProc::start(&n.home, n.url(), "dev2", &["--execute"], &[]);
    let payer0 = balance(&n.home, n.url(), &key_addr(&n.home, "dev1"));
    // The executors disagree, the dispute opens by itself, the honest executor proves the
    // lie: the payer sees the job refunded.
    let args = n.run_args("replicated:2", 3);
    let err = fails(&n.home, &args.iter().map(String::as_str).collect::<Vec<_>>(), 5);
    assert!(err.contains("fraud proven"), "{err}");
    let job = err.split("job ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    let st = n.final_state(&job);
    assert_eq!(st["state"], "refunded", "{st}");
    assert_eq!(n.stake_of(&liar), STAKE / 2);
    assert_eq!(n.stake_of(&honest), STAKE, "the honest executor keeps its stake");
    let payer = balance(&n.home, n.url(), &key_addr(&n.home, "dev1"));
    assert_eq!(payer, payer0 - 10 + STAKE / 4);
}

#[test]
fn stale_output_is_caught_by_an_auditor() {
    let n = net(&["--misbehave", "stale-output"]);
    let liar = n.node_key();
    let _auditor = WorkerProc::start(&n.home, n.url(), "dev2", &["--audit", "1"], &[]);
    // The first answer is honest (there is nothing stale yet); it settles.
    let first = n.run("single", 4);
    assert_eq!(n.final_state(first["job"].as_str().unwrap())["state"], "settled");
    let payer0 = balance(&n.home, n.url(), &key_addr(&n.home, "dev1"));
    let second = n.run("single", 5);
    assert_caught(&n, second["job"].as_str().unwrap(), &liar, payer0, None);
}

#[test]
fn honest_executors_are_never_disputed_and_frivolous_challenges_lose_their_bond() {
    let n = net(&[]);
    let node_key = n.node_key();
    ok_json(&n.home, &["--node", n.url(), "--key", "dev2", "stake", &STAKE.to_string()]);
    // A second honest executor with other threads and the scalar reference kernels.
    let _w = WorkerProc::start(
        &n.home,
        n.url(),
        "dev2",
        &["--execute", "--audit", "1", "--threads", "2"],
        &[("DEED_ENGINE_KERNELS", "reference")],
    );
    let mut jobs = Vec::new();
    for seed in 10..16 {
        jobs.push(n.run("replicated:2", seed)["job"].as_str().unwrap().to_string());
    }
    for j in &jobs {
        let st = n.final_state(j);
        assert_eq!(st["state"], "settled", "honest executors disagreed: {st}");
    }
    assert_eq!(n.stake_of(&node_key), STAKE);
    // A frivolous challenge: the receipt is right, the bond goes to the executor.
    let r = n.run("single", 20);
    let receipt = r["receipt"].as_str().unwrap();
    let none = ok_json(&n.home, &["--node", n.url(), "--key", "dev3", "challenge", receipt]);
    assert_eq!(none["challenged"], false, "the CLI refuses to post a challenge it would lose");
    let ch0 = balance(&n.home, n.url(), &key_addr(&n.home, "dev3"));
    let c = ok_json(&n.home, &["--node", n.url(), "--key", "dev3", "challenge", receipt, "--force"]);
    assert_eq!(c["proven"], false);
    let bond: u128 = 100_000;
    assert_eq!(balance(&n.home, n.url(), &key_addr(&n.home, "dev3")), ch0 - 10 - bond);
    assert_eq!(n.final_state(r["job"].as_str().unwrap())["state"], "settled");
    assert_eq!(n.stake_of(&node_key), STAKE);
}

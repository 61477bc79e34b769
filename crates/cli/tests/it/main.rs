//! End-to-end tests that drive the real `deed` binary against a real node on a
//! loopback port: init, node --dev, publish, run, verify, crash and restart, a testnet with a
//! full node, and the
//! refusals users hit.

mod bundle;
#[path = "../common/mod.rs"]
mod common;
mod crash;
mod tamper;
mod testnet;
mod trust;

use common::*;
use serde_json::Value;
use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

/// The one JSON document `out` printed on stdout; panics if there are none or several.
fn one_json(args: &[&str], out: &Output) -> Value {
    let docs: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            panic!("deed {args:?}: stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        });
    assert_eq!(docs.len(), 1, "deed {args:?}: expected exactly one JSON document, got {docs:?}");
    docs.into_iter().next().unwrap()
}

/// Runs deed with --json, expects failure with `code` and exactly one JSON document on
/// stdout whose `error` carries that code; returns the document and stderr.
fn fails_json(home: &Path, args: &[&str], code: i32) -> (Value, String) {
    let mut a = args.to_vec();
    a.push("--json");
    let out = deed(home, &a);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "deed {a:?}: expected exit {code}; stderr: {err}");
    let doc = one_json(&a, &out);
    assert_eq!(doc["error"]["code"], code, "{doc}");
    assert!(!doc["error"]["message"].as_str().unwrap().is_empty(), "{doc}");
    (doc, err)
}

/// Sends SIGINT (what Ctrl-C sends) to the node and waits up to `limit` for it to exit;
/// returns its exit code.
fn interrupt(node: &mut NodeProc, limit: Duration) -> Option<i32> {
    let pid = node.child.id().to_string();
    let st = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
    assert!(st.success(), "kill -INT {pid} failed");
    let t = Instant::now();
    loop {
        if let Some(s) = node.child.try_wait().unwrap() {
            return s.code();
        }
        assert!(t.elapsed() < limit, "the node did not exit within {limit:?} of SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts every output is within 1e-5 (absolute or relative) of onnxruntime's.
fn assert_close(got: &Value, expected_file: &Path) {
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(expected_file).unwrap()).unwrap();
    for (name, e) in exp.as_object().unwrap() {
        let g = &got[name];
        assert_eq!(g["shape"], e["shape"], "{name} shape");
        assert_eq!(g["dtype"], e["dtype"], "{name} dtype");
        let (gd, ed) = (g["data"].as_array().unwrap(), e["data"].as_array().unwrap());
        assert_eq!(gd.len(), ed.len());
        for (i, (a, b)) in gd.iter().zip(ed).enumerate() {
            if e["dtype"] == "float32" || e["dtype"] == "float64" {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                assert!((a - b).abs() <= 1e-5 || (a - b).abs() <= 1e-5 * b.abs(), "{name}[{i}]: {a} vs {b}");
            } else {
                assert_eq!(a, b, "{name}[{i}]");
            }
        }
    }
}

#[test]
fn publish_run_verify_survives_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let init = ok_json(&home, &["init"]);
    let owner = init["address"].as_str().unwrap().to_string();
    let node = NodeProc::start(&home);
    let url = node.url.clone();
    let payer = key_addr(&home, "dev1");
    let supply0 = supply(&url);

    let price = 1_000u128;
    let model_path = fixtures().join("mlp.onnx");
    let p =
        ok_json(&home, &["--node", &url, "publish", model_path.to_str().unwrap(), "--name", "mlp", "--price", "1000"]);
    let id = p["model"].as_str().unwrap().to_string();
    assert!(id.starts_with("bafkr4i"), "CIDv1 raw blake3: {id}");

    let status = ok_json(&home, &["--node", &url, "status"]);
    let tx_fee: u128 = status["min_tx_fee"].as_str().unwrap().parse().unwrap();
    let exec_fee: u128 = status["executor"]["fee_min"].as_str().unwrap().parse().unwrap();
    let (owner0, payer0) = (balance(&home, &url, &owner), balance(&home, &url, &payer));

    let out_dir = tmp.path().join("out");
    let input = fixtures().join("mlp.input.json");
    let r = ok_json(
        &home,
        &[
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
        ],
    );
    assert_close(&r["outputs"], &fixtures().join("mlp.expected.json"));
    assert!(out_dir.join("receipt.json").is_file() && out_dir.join("probs.npy").is_file());

    // Money: the owner got exactly the price; the payer paid price + executor fee + one tx fee.
    assert_eq!(balance(&home, &url, &owner), owner0 + price);
    assert_eq!(balance(&home, &url, &payer), payer0 - price - exec_fee - tx_fee);
    assert_eq!(supply(&url), supply0, "total supply is conserved");
    let m = ok_json(&home, &["--node", &url, "model", &id]);
    assert_eq!(m["calls"], 1);
    assert_eq!(m["earnings"], "1000");

    // The receipt verifies; one changed byte does not.
    let receipt = out_dir.join("receipt.json");
    let v = ok_json(&home, &["--node", &url, "verify", receipt.to_str().unwrap()]);
    assert_eq!(v["verified"], true);
    let text = std::fs::read_to_string(&receipt).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let out_hash = doc["receipt"]["receipt"]["output_hash"].as_str().unwrap();
    let flipped = format!("{}{}", if out_hash.starts_with('0') { '1' } else { '0' }, &out_hash[1..]);
    let tampered = tmp.path().join("tampered.json");
    std::fs::write(&tampered, text.replace(out_hash, &flipped)).unwrap();
    let err = fails(&home, &["--node", &url, "verify", tampered.to_str().unwrap()], 3);
    assert!(err.contains("signature"), "{err}");
    // With --json: one document, verified=false with the reason, and the same exit code.
    let (doc, _) = fails_json(&home, &["--node", &url, "verify", tampered.to_str().unwrap()], 3);
    assert_eq!(doc["verified"], false, "{doc}");
    assert!(doc["reason"].as_str().unwrap().contains("signature"), "{doc}");
    assert!(doc["error"]["message"].as_str().unwrap().contains("not verified"), "{doc}");

    // The .npy path for a single-input model gives the same bits.
    let out2 = tmp.path().join("out2");
    let npy = fixtures().join("mlp.input.npy");
    let r2 = ok_json(
        &home,
        &[
            "--node",
            &url,
            "--key",
            "dev1",
            "run",
            &id,
            "--input",
            npy.to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
        ],
    );
    assert_eq!(r2["output_hash"], r["output_hash"]);

    // A plain transfer from the home's key: the recipient gets the amount, the sender
    // pays it plus one transaction fee (fees go to the producer, the node's own key).
    let friend = ok_json(&home, &["key", "new", "friend"])["address"].as_str().unwrap().to_string();
    let owner1 = balance(&home, &url, &owner);
    let t = ok_json(&home, &["--node", &url, "transfer", &friend, "12345"]);
    assert_eq!(
        (t["from"].as_str(), t["to"].as_str(), t["amount"].as_str()),
        (Some(&*owner), Some(&*friend), Some("12345"))
    );
    assert!(t["height"].as_u64().unwrap() > 0);
    assert_eq!(balance(&home, &url, &friend), 12_345);
    assert_eq!(balance(&home, &url, &owner), owner1 - 12_345 - tx_fee);

    // SIGKILL, restart: models, balances and receipts are all there.
    let before = (balance(&home, &url, &owner), balance(&home, &url, &payer));
    node.kill9();
    let node = NodeProc::start(&home);
    let url = node.url.clone();
    assert_eq!((balance(&home, &url, &owner), balance(&home, &url, &payer)), before);
    let models = ok_json(&home, &["--node", &url, "models"]);
    assert!(models["models"].as_array().unwrap().iter().any(|m| m["id"] == id.as_str()));
    let v = ok_json(&home, &["--node", &url, "verify", receipt.to_str().unwrap()]);
    assert_eq!(v["verified"], true);
    assert_eq!(supply(&url), supply0);

    // Ctrl-C (SIGINT): the node stops promptly with exit 0; a restart resumes where it
    // stopped (height not reset, balances kept) and keeps producing blocks.
    let mut node = node;
    let s0 = ok_json(&home, &["--node", &url, "status"]);
    let h0 = s0["height"].as_u64().unwrap();
    assert!(h0 > 0);
    let before = (balance(&home, &url, &owner), balance(&home, &url, &payer), balance(&home, &url, &friend));
    assert_eq!(interrupt(&mut node, Duration::from_secs(10)), Some(0), "SIGINT is a clean stop");
    drop(node);
    let node = NodeProc::start(&home);
    let url = node.url.clone();
    let s1 = ok_json(&home, &["--node", &url, "status"]);
    assert!(s1["height"].as_u64().unwrap() >= h0, "height reset after Ctrl-C: {s0} then {s1}");
    assert_eq!((balance(&home, &url, &owner), balance(&home, &url, &payer), balance(&home, &url, &friend)), before);
    let t = ok_json(&home, &["--node", &url, "transfer", &friend, "1"]);
    assert!(t["height"].as_u64().unwrap() > h0, "new blocks extend the old chain: {t}");
    assert_eq!(balance(&home, &url, &friend), before.2 + 1);
    assert_eq!(supply(&url), supply0);
}

#[test]
fn bad_input_is_refused_and_the_node_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    ok_json(&home, &["init"]);
    let node = NodeProc::start(&home);
    let url = node.url.as_str();
    let model_path = fixtures().join("mlp.onnx");

    // Not ONNX, truncated ONNX, a pickle.
    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a model at all").unwrap();
    // (--json on failure paths: exactly one document, the error with its exit code.)
    let (doc, err) = fails_json(&home, &["--node", url, "publish", junk.to_str().unwrap(), "--name", "junk"], 5);
    assert!(err.contains("not a usable model"), "{err}");
    assert!(doc["error"]["message"].as_str().unwrap().contains("not a usable model"), "{doc}");
    let bytes = std::fs::read(&model_path).unwrap();
    let trunc = tmp.path().join("trunc.onnx");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&home, &["--node", url, "publish", trunc.to_str().unwrap(), "--name", "trunc"], 5);
    assert!(err.contains("not a usable model"), "{err}");
    let pickle = tmp.path().join("model.pt");
    std::fs::write(&pickle, b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}").unwrap();
    let err = fails(&home, &["--node", url, "publish", pickle.to_str().unwrap(), "--name", "pt"], 5);
    assert!(err.contains("pickle"), "{err}");

    let p =
        ok_json(&home, &["--node", url, "publish", model_path.to_str().unwrap(), "--name", "mlp", "--price", "500"]);
    let id = p["model"].as_str().unwrap().to_string();
    // Publishing the same bytes again is refused: the id is taken.
    let err =
        fails(&home, &["--node", url, "--key", "dev2", "publish", model_path.to_str().unwrap(), "--name", "x"], 5);
    assert!(err.contains("already registered"), "{err}");

    // Wrong shape and wrong dtype.
    let wrong_shape = tmp.path().join("shape.json");
    std::fs::write(
        &wrong_shape,
        r#"{"x": {"shape": [1, 15], "dtype": "float32", "data": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}}"#,
    )
    .unwrap();
    let (_, err) = fails_json(&home, &["--node", url, "run", &id, "--input", wrong_shape.to_str().unwrap()], 5);
    assert!(err.contains("shape"), "{err}");
    let wrong_dtype = tmp.path().join("dtype.json");
    let data = vec!["0"; 16].join(",");
    std::fs::write(&wrong_dtype, format!(r#"{{"x": {{"shape": [1, 16], "dtype": "int64", "data": [{data}]}}}}"#))
        .unwrap();
    let err = fails(&home, &["--node", url, "run", &id, "--input", wrong_dtype.to_str().unwrap()], 5);
    assert!(err.contains("int64") && err.contains("float32"), "{err}");

    // Unknown model.
    let unknown = "bafkr4iaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let input = fixtures().join("mlp.input.json");
    let (_, err) = fails_json(&home, &["--node", url, "run", unknown, "--input", input.to_str().unwrap()], 6);
    assert!(err.contains("no model"), "{err}");

    // Too little balance: a fresh key has nothing.
    ok_json(&home, &["key", "new", "pauper"]);
    let (_, err) =
        fails_json(&home, &["--node", url, "--key", "pauper", "run", &id, "--input", input.to_str().unwrap()], 5);
    assert!(err.contains("insufficient funds"), "{err}");

    // A bad signature, and a replayed transaction.
    let to = key_addr(&home, "dev3");
    let out = deed(&home, &["--node", url, "transfer", &to, "5", "--sign-only"]);
    assert!(out.status.success());
    let mut tx: Value = serde_json::from_slice(&out.stdout).unwrap();
    let good = tx.clone();
    let sig = tx["signature"].as_str().unwrap().to_string();
    tx["signature"] = Value::String(format!("{}{}", if sig.starts_with('0') { '1' } else { '0' }, &sig[1..]));
    let bad_file = tmp.path().join("bad.json");
    std::fs::write(&bad_file, tx.to_string()).unwrap();
    let (_, err) = fails_json(&home, &["--node", url, "tx", "submit", bad_file.to_str().unwrap()], 5);
    assert!(err.contains("signature"), "{err}");
    let good_file = tmp.path().join("good.json");
    std::fs::write(&good_file, good.to_string()).unwrap();
    ok_json(&home, &["--node", url, "tx", "submit", good_file.to_str().unwrap()]);
    let err = fails(&home, &["--node", url, "tx", "submit", good_file.to_str().unwrap()], 5);
    assert!(err.contains("already used") || err.contains("replay"), "{err}");

    // A usage error and an unreachable node, with --json: one document each too.
    let (doc, _) = fails_json(&home, &["--node", url, "publish", "--price", "x"], 2);
    assert!(doc["error"]["message"].as_str().unwrap().contains("--price"), "{doc}");
    let (doc, _) = fails_json(&home, &["--node", "http://127.0.0.1:1", "status"], 4);
    assert!(doc["error"]["message"].as_str().unwrap().contains("cannot reach"), "{doc}");
    // A receipt that is not even JSON: not verified, one document, no node needed.
    let (doc, _) = fails_json(&home, &["--node", url, "verify", junk.to_str().unwrap()], 3);
    assert_eq!(doc["verified"], false, "{doc}");
    assert!(doc["reason"].as_str().unwrap().contains("not valid JSON"), "{doc}");

    // Still serving.
    let s = ok_json(&home, &["--node", url, "status"]);
    assert!(s["height"].as_u64().unwrap() >= 3);
}

#[test]
fn exec_runs_offline_and_reports_median() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["mlp", "cnn"] {
        let model = fixtures().join(format!("{name}.onnx"));
        let input = fixtures().join(format!("{name}.input.json"));
        let v = ok_json(
            tmp.path(),
            &["exec", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--repeat", "3"],
        );
        assert_close(&v["outputs"], &fixtures().join(format!("{name}.expected.json")));
        assert!(v["median_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(v["repeat"], 3);
        let v2 = ok_json(
            tmp.path(),
            &["exec", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--threads", "2"],
        );
        assert_eq!(v2["output_hash"], v["output_hash"], "{name}: thread count changed the bits");
        assert_eq!(v2["trace_root"], v["trace_root"]);
    }
    let err = fails(tmp.path(), &["exec", "/nonexistent.onnx", "--input", "x.json"], 1);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn lineage_royalties_shares_license_stake_and_proofs() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let base_owner = ok_json(&home, &["init"])["address"].as_str().unwrap().to_string();
    let node = NodeProc::start(&home);
    let url = node.url.as_str();
    let (dev2, dev3) = (key_addr(&home, "dev2"), key_addr(&home, "dev3"));

    // A base model, and a derived one that pays it 20% of its revenue.
    let base = fixtures().join("mlp.onnx");
    let p = ok_json(&home, &["--node", url, "publish", base.to_str().unwrap(), "--name", "base"]);
    let base_id = p["model"].as_str().unwrap().to_string();
    // The same bytes cannot be registered twice, by anyone.
    let err = fails(&home, &["--node", url, "--key", "dev3", "publish", base.to_str().unwrap(), "--name", "copy"], 5);
    assert!(err.contains("already registered"), "{err}");
    let parent_arg = format!("{base_id}:2000");
    // A derived model (different bytes, still a valid model), paying its parent 20%.
    let mlp_child = tmp.path().join("mlp_child.onnx");
    let mut bytes = std::fs::read(&base).unwrap();
    // A protobuf-level change that keeps the model valid: append a doc_string field
    // (ModelProto field 6, wire type 2) to the serialized model.
    let doc = b"derived";
    bytes.push(0x32);
    bytes.push(doc.len() as u8);
    bytes.extend_from_slice(doc);
    std::fs::write(&mlp_child, &bytes).unwrap();
    let p = ok_json(
        &home,
        &[
            "--node",
            url,
            "--key",
            "dev2",
            "publish",
            mlp_child.to_str().unwrap(),
            "--name",
            "derived",
            "--price",
            "1000",
            "--parent",
            &parent_arg,
        ],
    );
    let derived = p["model"].as_str().unwrap().to_string();
    assert_ne!(derived, base_id);
    assert_eq!(p["parents"].as_array().unwrap().len(), 1);

    let input = fixtures().join("mlp.input.json");
    let run = |key: &str, id: &str| {
        let out = tmp.path().join(format!("out-{key}-{}", &id[id.len() - 6..]));
        ok_json(
            &home,
            &[
                "--node",
                url,
                "--key",
                key,
                "run",
                id,
                "--input",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        )
    };
    let (b0, d2_0) = (balance(&home, url, &base_owner), balance(&home, url, &dev2));
    run("dev1", &derived);
    assert_eq!(balance(&home, url, &base_owner), b0 + 200, "the parent's owner gets 20% of the price");
    assert_eq!(balance(&home, url, &dev2), d2_0 + 800, "the derived model's owner gets the rest");

    // Shares: dev2 gives 30% to dev3; dev1 holds none and cannot give any.
    let t = ok_json(&home, &["--node", url, "--key", "dev2", "model", "transfer", &derived, &dev3, "3000"]);
    let owners = t["model"]["owners"].as_array().unwrap();
    assert_eq!(owners.len(), 2);
    let err = fails(&home, &["--node", url, "--key", "dev1", "model", "transfer", &derived, &dev3, "1"], 5);
    assert!(err.to_lowercase().contains("share"), "{err}");

    // License: the 30% minority only records a vote; the 70% majority changes it (and
    // clears the pending votes).
    let price0 = ok_json(&home, &["--node", url, "model", &derived])["price"].clone();
    let v = ok_json(&home, &["--node", url, "--key", "dev3", "model", "license", &derived, "--price", "1"]);
    assert_eq!(v["applied"], false, "{v}");
    assert_eq!(v["model"]["price"], price0, "a minority vote changes nothing");
    assert_eq!(v["model"]["license_votes"][0]["price"], "1", "{v}");
    assert_eq!(v["model"]["license_votes"][0]["voter"], dev3.as_str(), "{v}");
    let v = ok_json(&home, &["--node", url, "--key", "dev2", "model", "license", &derived, "--price", "2000"]);
    assert_eq!(v["applied"], true, "{v}");
    assert_eq!(v["model"]["price"], "2000");
    assert_eq!(v["model"]["license_votes"].as_array().map_or(0, Vec::len), 0, "votes cleared: {v}");
    let (b0, d2_0, d3_0) = (balance(&home, url, &base_owner), balance(&home, url, &dev2), balance(&home, url, &dev3));
    let paid_job = run("dev1", &derived)["job"].as_str().unwrap().to_string();
    assert_eq!(balance(&home, url, &base_owner), b0 + 400);
    assert_eq!(balance(&home, url, &dev2), d2_0 + 1120, "70% of the 1600 left after royalties");
    assert_eq!(balance(&home, url, &dev3), d3_0 + 480, "30% of the 1600 left after royalties");
    let e = ok_json(&home, &["--node", url, "earnings", &dev3]);
    assert_eq!(e["earnings"]["owner"], "480");

    // Stake and unstake.
    let s = ok_json(&home, &["--node", url, "--key", "dev1", "stake", "5000"]);
    assert_eq!(s["executor"]["stake"], "5000");
    let s = ok_json(&home, &["--node", url, "--key", "dev1", "unstake", "1000"]);
    assert_eq!(s["executor"]["stake"], "4000");
    let err = fails(&home, &["--node", url, "--key", "dev3", "unstake", "1"], 5);
    assert!(!err.is_empty());

    // Proofs: checked by the CLI against a signed header's state root.
    let pr = ok_json(&home, &["--node", url, "prove", "balance", &dev3]);
    assert_eq!(pr["verified"], true);
    let proven: u128 = pr["value"]["balance"].as_str().unwrap().parse().unwrap();
    assert_eq!(proven, balance(&home, url, &dev3));
    let pm = ok_json(&home, &["--node", url, "prove", "model", &derived]);
    assert_eq!(pm["value"]["price"], "2000");
    assert_eq!(pm["present"], true);
    let absent = ok_json(&home, &["--node", url, "prove", "balance", "deed1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
    assert_eq!(absent["present"], false, "absence is proven too");
    let pe = ok_json(&home, &["--node", url, "prove", "earnings", &dev3]);
    assert_eq!(
        (pe["verified"].as_bool(), pe["kind"].as_str(), pe["present"].as_bool()),
        (Some(true), Some("earnings"), Some(true))
    );
    assert_eq!(pe["value"], e["earnings"], "the proven earnings are what `deed earnings` says");
    let pj = ok_json(&home, &["--node", url, "prove", "job", &paid_job]);
    assert_eq!((pj["verified"].as_bool(), pj["kind"].as_str()), (Some(true), Some("job")));
    assert_eq!(pj["value"]["id"], paid_job.as_str());
    assert_eq!(pj["value"]["price"], "2000");
    assert_eq!(pj["value"]["status"]["state"], "settled", "{pj}");

    // A proof with one byte changed on its way from the node is refused (exit 3) by the
    // CLI's own check: the header's signature, then the Merkle path to its state root.
    let proxy = tamper::TamperProxy::start(url);
    let through = ok_json(&home, &["--node", &proxy.url, "prove", "balance", &dev3]);
    assert_eq!(through["value"], pr["value"], "the proxy passes an untouched proof through");
    let tampers: [(tamper::Tamper, &str); 6] = [
        (|p| tamper::flip_hex(&mut p["proof"]["value"]), "Merkle path"),
        (|p| tamper::flip_hex(&mut p["proof"]["siblings"][0]), "Merkle path"),
        (|p| tamper::flip_hex(&mut p["proof"]["leaf"]["value_hash"]), "Merkle path"),
        // The header must be the one the trusted validators finalized at its height.
        (|p| tamper::flip_hex(&mut p["header"]["state_root"]), "not the final block"),
        (|p| tamper::flip_hex(&mut p["header"]["tx_root"]), "not the final block"),
        (|p| tamper::flip_hex(&mut p["key"]), "different key"),
    ];
    for (i, (f, why)) in tampers.into_iter().enumerate() {
        proxy.set(f);
        let (doc, err) = fails_json(&home, &["--node", &proxy.url, "prove", "balance", &dev3], 3);
        assert!(err.contains("proof rejected") && err.contains(why), "tamper #{i}: {err}");
        assert!(doc.get("value").is_none() && doc.get("verified").is_none(), "tamper #{i}: {doc}");
    }
    drop(proxy);

    // Two parents (the flag repeats): a model paying `base` 10% and `derived` 5%.
    let child2 = tmp.path().join("mlp_child2.onnx");
    let mut bytes = std::fs::read(&base).unwrap();
    let doc = b"derived from two";
    bytes.extend_from_slice(&[0x32, doc.len() as u8]);
    bytes.extend_from_slice(doc);
    std::fs::write(&child2, &bytes).unwrap();
    let (pa, pb) = (format!("{base_id}:1000"), format!("{derived}:500"));
    let p = ok_json(
        &home,
        &[
            "--node",
            url,
            "--key",
            "dev3",
            "publish",
            child2.to_str().unwrap(),
            "--name",
            "two-parents",
            "--price",
            "10000",
            "--parent",
            &pa,
            "--parent",
            &pb,
        ],
    );
    let two = p["model"].as_str().unwrap().to_string();
    let want = serde_json::json!([{ "model": base_id, "royalty_bps": 1000 }, { "model": derived, "royalty_bps": 500 }]);
    assert_eq!(p["parents"], want);
    assert_eq!(ok_json(&home, &["--node", url, "model", &two])["parents"], want, "the record keeps both parents");
    // A paid call of 10000: base 1000 directly; derived 500, of which it pays base 20%
    // (100) and splits 400 70/30 between dev2 and dev3; dev3, the sole owner, the 8500 left.
    let (b0, d2_0, d3_0) = (balance(&home, url, &base_owner), balance(&home, url, &dev2), balance(&home, url, &dev3));
    run("dev1", &two);
    assert_eq!(balance(&home, url, &base_owner), b0 + 1100);
    assert_eq!(balance(&home, url, &dev2), d2_0 + 280);
    assert_eq!(balance(&home, url, &dev3), d3_0 + 8500 + 120);

    // License --open after a paid license: the model reads as open (price 0), and a call
    // costs the payer only the executor fee and the transaction fee, paying no owner.
    let l = ok_json(&home, &["--node", url, "--key", "dev2", "model", "license", &derived, "--open"]);
    assert_eq!(l["model"]["price"], "0");
    assert_eq!(ok_json(&home, &["--node", url, "model", &derived])["price"], "0");
    let status = ok_json(&home, &["--node", url, "status"]);
    let tx_fee: u128 = status["min_tx_fee"].as_str().unwrap().parse().unwrap();
    let exec_fee: u128 = status["executor"]["fee_min"].as_str().unwrap().parse().unwrap();
    let payer = key_addr(&home, "dev1");
    let before = [&base_owner, &dev2, &dev3, &payer].map(|a| balance(&home, url, a));
    let r = run("dev1", &derived);
    assert_eq!(r["price"], "0");
    let after = [&base_owner, &dev2, &dev3, &payer].map(|a| balance(&home, url, a));
    assert_eq!(after[..3], before[..3], "an open model pays its owners and ancestors nothing");
    assert_eq!(after[3], before[3] - exec_fee - tx_fee);

    // `models --owner ADDR`: exactly the models the address holds a share of.
    let owned = |addr: &str| {
        let v = ok_json(&home, &["--node", url, "models", "--owner", addr]);
        let mut ids: Vec<String> =
            v["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(owned(&base_owner), vec![base_id.clone()]);
    assert_eq!(owned(&dev2), vec![derived.clone()]);
    assert_eq!(owned(&dev3), sorted(vec![derived.clone(), two.clone()]));
    assert_eq!(owned(&key_addr(&home, "dev1")), Vec::<String>::new());
    assert_eq!(ok_json(&home, &["--node", url, "models"])["models"].as_array().unwrap().len(), 3);
}

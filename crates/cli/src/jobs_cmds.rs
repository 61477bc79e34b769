//! Paid inference and its verification: `deed run`, `deed verify`, `deed challenge`,
//! and `deed worker` (an executor or auditor beside any node, over HTTP).

use crate::{
    EXIT_NOT_VERIFIED, Fail,
    client::Client,
    commands::{Ctx, build_tx, submit_and_wait},
    tensors,
};
use anyhow::{Context, Result};
use deed_engine::RunOptions;
use deed_ledger::Job;
use deed_node::worker::{self, Chain, WorkerConfig};
use deed_types::{Amount, Block, Cid, Hash32, JobMode, PublicKey, SignedReceipt, SignedTx, TensorSet, TxBody};
use serde_json::{Value, json};
use std::{
    io::Read,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

fn input_names(info: &Value) -> Vec<String> {
    info["inputs"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// `deed run`: upload the input, pay, wait until the job settles, fetch and check the
/// outputs, write receipt.json and the outputs.
pub fn run(ctx: &Ctx, id: &str, input: &Path, out: &Path, timeout_s: u64, mode: &str, settle: bool) -> Result<()> {
    let id: Cid = id.parse()?;
    let mode: JobMode = mode.parse().map_err(|e: deed_types::Error| Fail::new(2, e.to_string()))?;
    let key = ctx.signer()?;
    let c = ctx.client()?;
    let info = c.get(&format!("/v1/models/{id}"))?;
    let inputs = tensors::read_inputs(input, &input_names(&info))?;
    let price: u128 = info["price"].as_str().unwrap_or("0").parse()?;
    let st = c.get("/v1/status")?;
    let executor_fee: u128 = st["executor"]["fee_min"].as_str().unwrap_or("0").parse()?;
    let up = c.put_blob("input", &mut inputs.encode().as_slice() as &mut dyn Read)?;
    let input_cid: Cid = up["cid"].as_str().context("upload answer lacks cid")?.parse()?;
    let body = TxBody::RequestInference { model: id, input: input_cid, price, executor_fee, mode };
    let tx = build_tx(&c, &key, body)?;
    let (job, _) = submit_and_wait(ctx, &c, &tx, "request")?;
    ctx.note(&format!("  job {job} ({mode}): waiting for receipts and settlement"));
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let mut said_window = false;
    let (receipt, settled_height) = loop {
        let j = c.get(&format!("/v1/jobs/{job}"))?;
        let state = j["job"]["status"]["state"].as_str();
        if !settle && matches!(state, Some("challengeable" | "settled")) {
            let r: SignedReceipt = serde_json::from_value(j["receipt"].clone()).context("job has no receipt")?;
            break (r, j["job"]["receipts"][0]["height"].as_u64().unwrap_or(0));
        }
        match state {
            Some("settled") => {
                let r: SignedReceipt = serde_json::from_value(j["receipt"].clone()).context("job has no receipt")?;
                break (r, j["job"]["status"]["height"].as_u64().unwrap_or(0));
            }
            Some("refunded") => {
                return Err(Fail::new(
                    crate::EXIT_REFUSED,
                    format!(
                        "job {job} was refunded: {}",
                        j["job"]["status"]["reason"].as_str().unwrap_or("no reason given")
                    ),
                )
                .into());
            }
            Some("challengeable") if !said_window => {
                said_window = true;
                ctx.note(&format!(
                    "  receipt in; payment settles at height {} unless challenged",
                    j["job"]["status"]["until"]
                ));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(Fail::new(1, format!("job {job} did not settle within {timeout_s} s")).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out_bytes = c.get_bytes(&format!("/v1/blobs/{}", Cid(receipt.receipt.output_hash)))?;
    if Hash32::of(&out_bytes) != receipt.receipt.output_hash {
        return Err(Fail::new(1, "the node served outputs that do not match the receipt's output hash").into());
    }
    let outputs = TensorSet::decode(&out_bytes)?;
    std::fs::create_dir_all(out)?;
    let doc = json!({ "receipt": receipt, "job": job, "block_height": settled_height, "node": c.base });
    let receipt_path = out.join("receipt.json");
    std::fs::write(&receipt_path, serde_json::to_string_pretty(&doc)? + "\n")?;
    let mut files = tensors::write_outputs(out, &outputs)?;
    files.insert(0, receipt_path.display().to_string());
    let fees = executor_fee * Amount::from(mode.replicas());
    let v = json!({
        "model": id, "job": job, "mode": mode, "outputs": outputs.to_json(), "output_hash": receipt.receipt.output_hash,
        "trace_root": receipt.receipt.trace_root, "receipt": receipt_path, "block_height": settled_height,
        "files": files, "price": price.to_string(), "executor_fee": executor_fee.to_string(),
        "executor_fees": fees.to_string(),
    });
    ctx.emit(&v, || {
        format!(
            "outputs:\n{}output hash: {}\nreceipt: {} ({} block {settled_height})\n",
            tensors::describe(&outputs),
            receipt.receipt.output_hash,
            receipt_path.display(),
            if settle { "settled in" } else { "in" }
        )
    });
    Ok(())
}

/// Reports a receipt that does not verify: the checks that passed and the reason, as
/// text on stdout, or (with `--json`) as the fields of the one failure document `main`
/// prints: `{"verified": false, "reason", "checks", "error"}`. Exit code 3 either way.
fn not_verified(ctx: &Ctx, checks: &[(&str, String)], reason: String) -> Result<()> {
    let fail = Fail::new(EXIT_NOT_VERIFIED, format!("not verified: {reason}"));
    if ctx.json {
        let detail = json!({ "verified": false, "reason": reason,
                             "checks": checks.iter().map(|(k, v)| json!({k.to_string(): v})).collect::<Vec<_>>() });
        let Value::Object(detail) = detail else { unreachable!("a json! object") };
        return Err(fail.with_detail(detail).into());
    }
    for (k, v) in checks {
        println!("  ok  {k}: {v}");
    }
    println!("NOT VERIFIED: {reason}");
    Err(fail.into())
}

fn read_receipt(path: &Path) -> Result<(Value, std::result::Result<SignedReceipt, String>)> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Fail::new(1, format!("cannot read {}: {e}", path.display())))?;
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Ok((Value::Null, Err(format!("{} is not valid JSON: {e}", path.display())))),
    };
    let sr = serde_json::from_value::<SignedReceipt>(doc["receipt"].clone())
        .map_err(|e| format!("the file holds no well-formed receipt: {e}"));
    Ok((doc, sr))
}

fn receipt_client(ctx: &Ctx, doc: &Value) -> Result<Client> {
    Ok(match &ctx.node {
        Some(u) => Client::new(u),
        None => match doc["node"].as_str() {
            Some(u) if !ctx.home.config_path().exists() => Client::new(u),
            _ => ctx.client()?,
        },
    })
}

/// The finality part of `deed verify`: the block at `height` is final by the trusted
/// genesis's validators ([`crate::trust::final_block`]), the node's block there is that
/// header's (same hash, transactions under its root), and it carries this receipt.
/// Returns what was established, or why not.
fn final_inclusion(
    c: &Client,
    anchor: &crate::trust::Anchor,
    height: u64,
    sr: &SignedReceipt,
) -> Result<String, String> {
    let (ev, fin) = crate::trust::final_block(c, anchor, height)?;
    let block: Block = c
        .get(&format!("/v1/blocks/{height}"))
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::from_value(v).map_err(|e| format!("malformed block {height}: {e}")))?;
    if block.header != ev.header {
        return Err(format!(
            "the node's block {height} ({}) is not the final one ({})",
            block.header.hash(),
            ev.header.hash()
        ));
    }
    if Block::tx_root(&block.txs) != block.header.tx_root {
        return Err(format!("block {height}'s transactions do not match its header's transaction root"));
    }
    let included = block.txs.iter().any(|t| matches!(&t.tx.body, TxBody::SubmitReceipt { receipt } if receipt == sr));
    if !included {
        return Err(format!("block {height} does not contain this receipt"));
    }
    Ok(format!("in block {height} ({}), {}", fin.block, fin.how))
}

/// `deed verify`: signature, finality, and a bit-exact re-run.
pub fn verify(ctx: &Ctx, path: &Path, input: Option<&Path>, model: Option<&Path>, offline: bool) -> Result<()> {
    let (doc, sr) = read_receipt(path)?;
    let sr = match sr {
        Ok(r) => r,
        Err(reason) => return not_verified(ctx, &[], reason),
    };
    let r = &sr.receipt;
    let mut checks: Vec<(&str, String)> = Vec::new();
    if let Err(e) = sr.verify() {
        return not_verified(ctx, &checks, format!("the executor's signature does not cover this receipt ({e})"));
    }
    checks.push(("signature", format!("valid, executor {}", r.executor)));
    if offline && (input.is_none() || model.is_none()) {
        return Err(Fail::new(2, "--offline needs --input and --model (nothing can be fetched)").into());
    }
    let c = if offline { None } else { Some(receipt_client(ctx, &doc)?) };
    let mut job_state = Value::Null;
    let mut trust = Value::Null;
    if let Some(c) = &c {
        // Trust: the node is on the genesis this client trusts (not the one it serves).
        let anchor = match crate::trust::anchor(ctx, c) {
            Ok(a) => a,
            Err(e) => match e.downcast::<Fail>() {
                Ok(f) if f.code == EXIT_NOT_VERIFIED => return not_verified(ctx, &checks, f.msg),
                Ok(f) => return Err(f.into()),
                Err(e) => return Err(e),
            },
        };
        checks.push(("trust", anchor.describe()));
        trust = anchor.to_json();
        if anchor.genesis.chain_id != r.chain_id {
            return not_verified(
                ctx,
                &checks,
                format!(
                    "receipt is for chain '{}', the trusted genesis is of '{}'",
                    r.chain_id, anchor.genesis.chain_id
                ),
            );
        }
        let job = match c.get(&format!("/v1/jobs/{}", r.job)) {
            Ok(j) => j,
            Err(e) => return not_verified(ctx, &checks, format!("the chain has no job {}: {e}", r.job)),
        };
        job_state = job["job"]["status"].clone();
        let job: Job = serde_json::from_value(job["job"].clone()).context("malformed job")?;
        let Some(entry) = job.receipts.iter().find(|x| x.receipt == r.hash()) else {
            return not_verified(ctx, &checks, format!("job {} holds no such receipt", r.job));
        };
        match final_inclusion(c, &anchor, entry.height, &sr) {
            Ok(done) => checks.push(("finality", done)),
            Err(why) => return not_verified(ctx, &checks, why),
        }
    } else {
        checks.push(("finality", "skipped (--offline)".into()));
    }
    // Re-execution: model and input by hash (or from files, checked against the hashes).
    let model_bytes = match model {
        Some(p) => std::fs::read(p).map_err(|e| Fail::new(1, format!("cannot read {}: {e}", p.display())))?,
        None => c.as_ref().expect("online").get_bytes(&format!("/v1/blobs/{}", r.model))?,
    };
    if Cid::of(&model_bytes) != r.model {
        return not_verified(ctx, &checks, "the model bytes do not match the receipt's model id".into());
    }
    let loaded = match (model, c.as_ref()) {
        (Some(p), _) => {
            crate::weights::load_file(p, &model_bytes).map_err(|e| Fail::new(1, format!("model does not load: {e}")))?
        }
        (None, Some(c)) => crate::weights::load_remote(c, &model_bytes)?,
        (None, None) => unreachable!("the model came from the node"),
    };
    let inputs = match input {
        Some(p) => {
            let names: Vec<String> = loaded.inputs().iter().map(|i| i.name.clone()).collect();
            tensors::read_inputs(p, &names)?
        }
        None => {
            let b = c.as_ref().expect("online").get_bytes(&format!("/v1/blobs/{}", Cid(r.input_hash)))?;
            TensorSet::decode(&b)?
        }
    };
    if inputs.hash() != r.input_hash {
        return not_verified(ctx, &checks, "the input does not match the receipt's input hash".into());
    }
    if r.engine != deed_engine::SPEC_VERSION {
        return not_verified(
            ctx,
            &checks,
            format!("receipt was made with {} but this deed runs {}", r.engine, deed_engine::SPEC_VERSION),
        );
    }
    let out = loaded.run(&inputs, &RunOptions { threads: 1, trace: true })?;
    if out.trace.len() != r.trace.len() {
        return not_verified(
            ctx,
            &checks,
            format!("the model has {} trace entries but the receipt's trace has {}", out.trace.len(), r.trace.len()),
        );
    }
    if let Some(i) = out.trace.iter().zip(&r.trace).position(|(a, b)| a != b) {
        return not_verified(
            ctx,
            &checks,
            format!(
                "trace entry #{i}, {}, differs from the re-run: {} vs {}",
                loaded.entry_label(i),
                out.trace[i],
                r.trace[i]
            ),
        );
    }
    if out.output_hash() != r.output_hash {
        return not_verified(
            ctx,
            &checks,
            format!("output hash differs: re-run {} vs receipt {}", out.output_hash(), r.output_hash),
        );
    }
    checks.push(("re-execution", format!("{} trace entries, output {} bit for bit", r.trace.len(), r.output_hash)));
    let v = json!({ "verified": true, "job": r.job, "model": r.model, "output_hash": r.output_hash,
                    "trace_root": r.trace_root, "engine": r.engine, "job_state": job_state, "trust": trust,
                    "checks": checks.iter().map(|(k, v)| json!({k.to_string(): v})).collect::<Vec<_>>() });
    ctx.emit(&v, || {
        let mut s = String::new();
        for (k, v) in &checks {
            s.push_str(&format!("  ok  {k}: {v}\n"));
        }
        s.push_str("VERIFIED\n");
        s
    });
    Ok(())
}

/// `deed challenge`: re-run the receipt's job, build the cheapest fraud proof, upload
/// the producer blobs it needs, post it, and report the outcome.
pub fn challenge(ctx: &Ctx, path: &Path, force: bool) -> Result<()> {
    let (doc, sr) = read_receipt(path)?;
    let sr = sr.map_err(|e| Fail::new(1, e))?;
    let r = &sr.receipt;
    let key = ctx.signer()?;
    let c = receipt_client(ctx, &doc)?;
    let model_bytes = c.get_bytes(&format!("/v1/blobs/{}", r.model))?;
    let input_bytes = c.get_bytes(&format!("/v1/blobs/{}", Cid(r.input_hash)))?;
    if Cid::of(&model_bytes) != r.model || Hash32::of(&input_bytes) != r.input_hash {
        return Err(Fail::new(1, "the node served bytes that do not match the receipt's hashes").into());
    }
    let model = crate::weights::load_remote(&c, &model_bytes)?;
    let inputs = TensorSet::decode(&input_bytes)?;
    let (honest, blobs) = model.run_keep_all(&inputs, &RunOptions { threads: 1, trace: true })?;
    let agrees = honest.output_hash() == r.output_hash && honest.trace == r.trace;
    if agrees && !force {
        let v = json!({ "challenged": false, "reason": "the re-run agrees with the receipt bit for bit" });
        ctx.emit(&v, || "nothing to challenge: the re-run agrees with the receipt bit for bit\n".into());
        return Ok(());
    }
    let (proof, needed) = worker::build_proof(&model, r, &honest, &blobs);
    for b in &needed {
        c.put_blob("raw", &mut b.as_slice() as &mut dyn Read)?;
    }
    let body = TxBody::Challenge { job: r.job, executor: r.executor, proof: proof.clone() };
    let tx = build_tx(&c, &key, body)?;
    let (hash, height) = submit_and_wait(ctx, &c, &tx, "challenge")?;
    let j = c.get(&format!("/v1/jobs/{}", r.job))?;
    let state = j["job"]["status"]["state"].as_str().unwrap_or("?").to_string();
    // A proof that holds ends the job refunded, or (in a dispute) strikes the receipt.
    let executor = serde_json::to_value(r.executor)?;
    let standing = j["job"]["receipts"].as_array().is_some_and(|rs| rs.iter().any(|x| x["executor"] == executor));
    let proven = state == "refunded" || !standing;
    let v = json!({ "challenged": true, "proof": proof, "tx": hash, "height": height, "proven": proven,
                    "job_state": j["job"]["status"] });
    ctx.emit(&v, || {
        if proven && state == "refunded" {
            format!("fraud proven ({proof:?}) in block {height}: executor {} slashed, payer refunded\n", r.executor)
        } else if proven {
            format!(
                "fraud proven ({proof:?}) in block {height}: executor {} slashed, its receipt struck from the dispute\n",
                r.executor
            )
        } else {
            format!("challenge in block {height} did not hold ({proof:?}): the bond went to the executor\n")
        }
    });
    Ok(())
}

/// A [`Chain`] reached over a node's HTTP API.
struct Http(Client);

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

impl Chain for Http {
    fn chain_id(&self) -> Result<String, String> {
        Ok(self.0.get("/v1/status").map_err(s)?["chain_id"].as_str().unwrap_or_default().to_string())
    }
    fn min_tx_fee(&self) -> Result<Amount, String> {
        self.0.get("/v1/status").map_err(s)?["min_tx_fee"].as_str().unwrap_or("0").parse().map_err(s)
    }
    fn pending_jobs(&self) -> Result<Vec<Job>, String> {
        serde_json::from_value(self.0.get("/v1/jobs?state=pending").map_err(s)?["jobs"].clone()).map_err(s)
    }
    fn open_jobs(&self) -> Result<Vec<Job>, String> {
        serde_json::from_value(self.0.get("/v1/jobs?state=open").map_err(s)?["jobs"].clone()).map_err(s)
    }
    fn receipt(&self, job: &Hash32, executor: &PublicKey) -> Result<Option<SignedReceipt>, String> {
        let j = self.0.get(&format!("/v1/jobs/{job}")).map_err(s)?;
        let all: Vec<SignedReceipt> = serde_json::from_value(j["receipts"].clone()).map_err(s)?;
        Ok(all.into_iter().find(|r| r.receipt.executor == *executor))
    }
    fn block_hash(&self, height: u64) -> Result<Option<Hash32>, String> {
        match self.0.get(&format!("/v1/blocks/{height}")) {
            Ok(b) => Ok(Some(serde_json::from_value::<Block>(b).map_err(s)?.header.hash())),
            Err(f) if f.code == crate::EXIT_NOT_FOUND => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn blob(&self, cid: &Cid) -> Result<Vec<u8>, String> {
        let b = self.0.get_bytes(&format!("/v1/blobs/{cid}")).map_err(s)?;
        if Cid::of(&b) != *cid {
            return Err(format!("the node served bytes that do not match {cid}"));
        }
        Ok(b)
    }
    fn put_blob(&self, bytes: &[u8]) -> Result<Cid, String> {
        let v = self.0.put_blob("raw", &mut &bytes[..] as &mut dyn Read).map_err(s)?;
        v["cid"].as_str().unwrap_or_default().parse().map_err(s)
    }
    fn next_nonce(&self, addr: &deed_types::Address) -> Result<u64, String> {
        self.0.get(&format!("/v1/accounts/{addr}")).map_err(s)?["pending_nonce"]
            .as_u64()
            .ok_or_else(|| "account lacks pending_nonce".to_string())
    }
    fn submit(&self, tx: SignedTx) -> Result<Hash32, String> {
        let v = self.0.post("/v1/txs", &serde_json::to_value(&tx).map_err(s)?).map_err(s)?;
        v["hash"].as_str().unwrap_or_default().parse().map_err(s)
    }
    fn failed(&self, tx: &Hash32) -> Result<Option<bool>, String> {
        let v = self.0.get(&format!("/v1/txs/{tx}")).map_err(s)?;
        Ok(match v["status"].as_str() {
            Some("included") => Some(false),
            Some("rejected") => Some(true),
            _ => None,
        })
    }
}

/// `deed worker`: an executor and/or auditor beside any node, until Ctrl-C.
pub fn worker(ctx: &Ctx, execute: bool, audit: f64, threads: usize, misbehave: Option<String>) -> Result<()> {
    if !execute && audit <= 0.0 {
        return Err(Fail::new(2, "nothing to do: pass --execute and/or --audit RATE").into());
    }
    if !(0.0..=1.0).contains(&audit) {
        return Err(Fail::new(2, "--audit is a rate between 0 and 1").into());
    }
    let misbehave = misbehave.map(|m| m.parse()).transpose().map_err(|e: String| Fail::new(2, e))?;
    let key = ctx.signer()?;
    let c = ctx.client()?;
    let st = c.get("/v1/status")?;
    let fee_min: Amount = st["executor"]["fee_min"].as_str().unwrap_or("0").parse()?;
    let filter = std::env::var("DEED_LOG").unwrap_or_else(|_| "info".into());
    let level = filter.parse::<tracing::Level>().unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).try_init();
    let cfg = WorkerConfig { execute, audit_rate: audit, executor_fee_min: fee_min, threads, misbehave };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = key.address();
    let handle = worker::spawn(Arc::new(Http(c)), key, cfg, stop_rx);
    if ctx.json {
        println!("{}", json!({ "worker": addr, "execute": execute, "audit": audit }));
    } else {
        eprintln!("deed worker {addr}: execute={execute} audit={audit}; Ctrl-C to stop");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let _ = stop_tx.send(true);
    let _ = handle.join();
    Ok(())
}

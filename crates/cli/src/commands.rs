//! What each command does.

use crate::{Cli, Cmd, EXIT_NOT_VERIFIED, Fail, KeyCmd, TxCmd, client::Client, tensors};
use anyhow::{Context, Result};
use deed_engine::{Model, RunOptions};
use deed_node::Home;
use deed_types::{
    Address, Block, Cid, Hash32, Keypair, SignedReceipt, SignedTx, TensorSet, Tx, TxBody, tx::model_commitment,
};
use serde_json::{Value, json};
use std::{
    io::Read,
    path::Path,
    time::{Duration, Instant},
};

/// Everything a command needs from the global flags.
pub(crate) struct Ctx {
    pub(crate) home: Home,
    pub(crate) node: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) json: bool,
}

impl Ctx {
    pub(crate) fn client(&self) -> Result<Client> {
        let url = match &self.node {
            Some(u) => u.clone(),
            None => self.home.config()?.node_url,
        };
        Ok(Client::new(&url))
    }

    pub(crate) fn signer(&self) -> Result<Keypair> {
        let name = match &self.key {
            Some(k) => k.clone(),
            None => self.home.config()?.default_key,
        };
        Ok(self.home.key(&name)?)
    }

    /// Prints `v` as JSON, or `human` otherwise.
    pub(crate) fn emit(&self, v: &Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{v}");
        } else {
            print!("{}", human());
        }
    }

    /// Progress and status lines for humans, on stderr so stdout stays clean.
    pub(crate) fn note(&self, s: &str) {
        if !self.json {
            eprintln!("{s}");
        }
    }
}

pub fn dispatch(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        home: Home::at(cli.home.clone().unwrap_or_else(Home::default_dir)),
        node: cli.node.clone(),
        key: cli.key.clone(),
        json: cli.json,
    };
    match cli.cmd {
        Cmd::Init => init(&ctx),
        Cmd::Key(KeyCmd::New { name }) => key_new(&ctx, &name),
        Cmd::Key(KeyCmd::List) => key_list(&ctx),
        Cmd::Node { listen, dev } => node(&ctx, listen, dev),
        Cmd::Publish { file, name, price, parents } => publish(&ctx, &file, &name, price, &parents),
        Cmd::Models { owner } => models(&ctx, owner),
        Cmd::Model { action: Some(a), .. } => crate::ledger_cmds::model_action(&ctx, a),
        Cmd::Model { id, action: None } => model(&ctx, &id.unwrap_or_default()),
        Cmd::Stake { amount } => crate::ledger_cmds::stake(&ctx, amount, true),
        Cmd::Unstake { amount } => crate::ledger_cmds::stake(&ctx, amount, false),
        Cmd::Earnings { addr } => crate::ledger_cmds::earnings(&ctx, addr),
        Cmd::Prove(p) => crate::ledger_cmds::prove(&ctx, p),
        Cmd::Run { id, input, out, timeout } => run(&ctx, &id, &input, &out, timeout),
        Cmd::Verify { receipt } => verify(&ctx, &receipt),
        Cmd::Exec { file, input, repeat, threads } => exec(&ctx, &file, &input, repeat, threads),
        Cmd::Balance { addr } => balance(&ctx, addr),
        Cmd::Transfer { to, amount, sign_only } => transfer(&ctx, &to, amount, sign_only),
        Cmd::Status => status(&ctx),
        Cmd::Tx(TxCmd::Submit { file }) => tx_submit(&ctx, &file),
        Cmd::Tx(TxCmd::Show { hash }) => tx_show(&ctx, &hash),
        Cmd::Replay => replay(&ctx),
    }
}

fn init(ctx: &Ctx) -> Result<()> {
    let addr = ctx.home.init()?;
    let v = json!({ "home": ctx.home.dir, "address": addr, "key": deed_node::home::DEFAULT_KEY });
    ctx.emit(&v, || format!("initialised {}\naddress: {addr}\n", ctx.home.dir.display()));
    Ok(())
}

fn key_new(ctx: &Ctx, name: &str) -> Result<()> {
    ctx.home.require()?;
    let k = ctx.home.new_key(name)?;
    let v = json!({ "name": name, "address": k.address(), "public_key": k.public() });
    ctx.emit(&v, || format!("{name}: {}\n", k.address()));
    Ok(())
}

fn key_list(ctx: &Ctx) -> Result<()> {
    ctx.home.require()?;
    let keys = ctx.home.keys()?;
    let v: Vec<Value> =
        keys.iter().map(|(n, k)| json!({ "name": n, "address": k.address(), "public_key": k.public() })).collect();
    ctx.emit(&json!({ "keys": v }), || {
        let mut s = format!("{:<12} ADDRESS\n", "NAME");
        for (n, k) in &keys {
            s.push_str(&format!("{n:<12} {}\n", k.address()));
        }
        s
    });
    Ok(())
}

fn node(ctx: &Ctx, listen: Option<String>, dev: bool) -> Result<()> {
    ctx.home.require()?;
    let filter = std::env::var("DEED_LOG").unwrap_or_else(|_| "info".into());
    let level = filter.parse::<tracing::Level>().unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let handle = deed_node::start_home(&ctx.home, listen, dev).await?;
        let head = handle.app.db.height()?;
        let addr = handle.addr;
        if ctx.json {
            println!(
                "{}",
                json!({ "listen": addr.to_string(), "chain_id": handle.app.chain_id(), "height": head,
                        "node_key": handle.app.key.public() })
            );
        } else {
            eprintln!("deed node on http://{addr} — chain {} at height {head}; Ctrl-C to stop", handle.app.chain_id());
        }
        handle
            .run_until(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// Submits a transaction and waits until it is in a block; returns (hash, height).
pub(crate) fn submit_and_wait(ctx: &Ctx, c: &Client, tx: &SignedTx, what: &str) -> Result<(Hash32, u64)> {
    let r = c.post("/v1/txs", &serde_json::to_value(tx)?)?;
    let hash: Hash32 = r["hash"].as_str().unwrap_or_default().parse()?;
    ctx.note(&format!("  {what}: submitted {hash}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = c.get(&format!("/v1/txs/{hash}"))?;
        match s["status"].as_str() {
            Some("included") => return Ok((hash, s["height"].as_u64().unwrap_or(0))),
            Some("rejected") => {
                return Err(Fail::new(
                    crate::EXIT_REFUSED,
                    format!("{what} was rejected: {}", s["error"].as_str().unwrap_or("no reason given")),
                )
                .into());
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(Fail::new(1, format!("{what} {hash} was not included within 60 s")).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn build_tx(c: &Client, key: &Keypair, body: TxBody) -> Result<SignedTx> {
    let st = c.get("/v1/status")?;
    let chain_id = st["chain_id"].as_str().context("status lacks chain_id")?.to_string();
    let fee: u128 = st["min_tx_fee"].as_str().unwrap_or("0").parse()?;
    let acct = c.get(&format!("/v1/accounts/{}", key.address()))?;
    let nonce = acct["pending_nonce"].as_u64().context("account lacks pending_nonce")?;
    Ok(Tx { chain_id, sender: key.public(), nonce, fee, body }.sign(key))
}

fn progress(ctx: &Ctx, len: u64, msg: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if ctx.json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

fn publish(ctx: &Ctx, file: &Path, name: &str, price: u128, parents: &[String]) -> Result<()> {
    let parents = parents.iter().map(|p| crate::ledger_cmds::parse_parent(p)).collect::<Result<Vec<_>>>()?;
    let key = ctx.signer()?;
    let c = ctx.client()?;
    let f = std::fs::File::open(file).map_err(|e| Fail::new(1, format!("cannot open {}: {e}", file.display())))?;
    let len = f.metadata()?.len();
    let pb = progress(ctx, len, "uploading");
    let mut reader = pb.wrap_read(f);
    let up = c.put_blob("model", &mut reader as &mut dyn Read);
    pb.finish_and_clear();
    let up = up?;
    let id: Cid = up["cid"].as_str().context("upload answer lacks cid")?.parse()?;
    ctx.note(&format!("uploaded {} ({len} bytes) as {id}", file.display()));
    if let Ok(existing) = c.get(&format!("/v1/models/{id}")) {
        let owners: Vec<String> = existing["owners"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["address"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        return Err(Fail::new(
            crate::EXIT_REFUSED,
            format!("model {id} is already registered (owners: {}); it cannot be registered again", owners.join(", ")),
        )
        .into());
    }
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let salt = Hash32(salt);
    let commitment = model_commitment(&id, &key.address(), &salt);
    let tx = build_tx(&c, &key, TxBody::CommitModel { commitment })?;
    let (_, commit_height) = submit_and_wait(ctx, &c, &tx, "commit")?;
    let body = TxBody::RegisterModel { model: id, name: name.to_string(), salt, price, parents: parents.clone() };
    let tx = build_tx(&c, &key, body)?;
    let (reg_tx, height) = submit_and_wait(ctx, &c, &tx, "register")?;
    let v = json!({
        "model": id, "name": name, "price": price.to_string(), "owner": key.address(), "size": len,
        "commit_height": commit_height, "register_height": height, "register_tx": reg_tx,
        "inputs": up["inputs"], "outputs": up["outputs"], "parents": parents,
    });
    ctx.emit(&v, || {
        format!(
            "published {name}\nmodel id: {id}\nowner:    {}\nprice:    {}\nheight:   {height}\n",
            key.address(),
            if price == 0 { "open (free)".to_string() } else { format!("{price} per call") }
        )
    });
    Ok(())
}

fn models(ctx: &Ctx, owner: Option<String>) -> Result<()> {
    let c = ctx.client()?;
    let path = match &owner {
        Some(o) => format!("/v1/models?owner={}", o.parse::<Address>()?),
        None => "/v1/models".to_string(),
    };
    let v = c.get(&path)?;
    ctx.emit(&v, || {
        let mut s = format!("{:<62} {:<20} {:>10} {:>8} {:>12}\n", "MODEL", "NAME", "PRICE", "CALLS", "EARNINGS");
        for m in v["models"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "{:<62} {:<20} {:>10} {:>8} {:>12}\n",
                m["id"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap_or(""),
                m["price"].as_str().unwrap_or(""),
                m["calls"],
                m["earnings"].as_str().unwrap_or("")
            ));
        }
        s
    });
    Ok(())
}

fn model(ctx: &Ctx, id: &str) -> Result<()> {
    let id: Cid = id.parse()?;
    let c = ctx.client()?;
    let m = c.get(&format!("/v1/models/{id}"))?;
    ctx.emit(&m, || {
        let mut s = format!(
            "model:    {id}\nname:     {}\nprice:    {}\ncalls:    {}\nearnings: {}\nregistered at height {}\nowners:\n",
            m["name"].as_str().unwrap_or(""),
            m["price"].as_str().unwrap_or(""),
            m["calls"],
            m["earnings"].as_str().unwrap_or(""),
            m["registered_height"]
        );
        for o in m["owners"].as_array().into_iter().flatten() {
            let bps = o["bps"].as_u64().unwrap_or(0);
            s.push_str(&format!("  {} {}.{:02}%\n", o["address"].as_str().unwrap_or(""), bps / 100, bps % 100));
        }
        for (label, key) in [("inputs", "inputs"), ("outputs", "outputs")] {
            s.push_str(&format!("{label}:\n"));
            for i in m[key].as_array().into_iter().flatten() {
                let dims: Vec<String> = i["shape"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d.as_u64().map_or("?".to_string(), |d| d.to_string()))
                    .collect();
                let dtype = i["dtype"].as_str().unwrap_or("?");
                s.push_str(&format!("  {} {dtype} [{}]\n", i["name"].as_str().unwrap_or(""), dims.join(", ")));
            }
        }
        s
    });
    Ok(())
}

fn input_names(info: &Value) -> Vec<String> {
    info["inputs"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn run(ctx: &Ctx, id: &str, input: &Path, out: &Path, timeout_s: u64) -> Result<()> {
    let id: Cid = id.parse()?;
    let key = ctx.signer()?;
    let c = ctx.client()?;
    let info = c.get(&format!("/v1/models/{id}"))?;
    let inputs = tensors::read_inputs(input, &input_names(&info))?;
    let price: u128 = info["price"].as_str().unwrap_or("0").parse()?;
    let st = c.get("/v1/status")?;
    let executor_fee: u128 = st["executor"]["fee_min"].as_str().unwrap_or("0").parse()?;
    let up = c.put_blob("input", &mut inputs.encode().as_slice() as &mut dyn Read)?;
    let input_cid: Cid = up["cid"].as_str().context("upload answer lacks cid")?.parse()?;
    let tx = build_tx(&c, &key, TxBody::RequestInference { model: id, input: input_cid, price, executor_fee })?;
    let (job, _) = submit_and_wait(ctx, &c, &tx, "request")?;
    ctx.note(&format!("  job {job}: waiting for the receipt"));
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let (receipt, settled_height) = loop {
        let j = c.get(&format!("/v1/jobs/{job}"))?;
        if j["job"]["status"]["state"].as_str() == Some("settled") {
            let r: SignedReceipt = serde_json::from_value(j["receipt"].clone()).context("job has no receipt")?;
            break (r, j["job"]["status"]["height"].as_u64().unwrap_or(0));
        }
        if Instant::now() > deadline {
            return Err(Fail::new(1, format!("no receipt for job {job} within {timeout_s} s")).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out_bytes = c.get_bytes(&format!("/v1/blobs/{}", Cid(receipt.receipt.output_hash)))?;
    if Hash32::of(&out_bytes) != receipt.receipt.output_hash {
        return Err(Fail::new(1, "the node served outputs that do not match the receipt's output hash").into());
    }
    let outputs = TensorSet::decode(&out_bytes)?;
    std::fs::create_dir_all(out)?;
    let doc = json!({
        "receipt": receipt,
        "job": job,
        "block_height": settled_height,
        "node": c.base,
    });
    let receipt_path = out.join("receipt.json");
    std::fs::write(&receipt_path, serde_json::to_string_pretty(&doc)? + "\n")?;
    let mut files = tensors::write_outputs(out, &outputs)?;
    files.insert(0, receipt_path.display().to_string());
    let v = json!({
        "model": id, "job": job, "outputs": outputs.to_json(), "output_hash": receipt.receipt.output_hash,
        "trace_root": receipt.receipt.trace_root, "receipt": receipt_path, "block_height": settled_height,
        "files": files, "price": price.to_string(), "executor_fee": executor_fee.to_string(),
    });
    ctx.emit(&v, || {
        format!(
            "outputs:\n{}output hash: {}\nreceipt: {} (block {settled_height})\n",
            tensors::describe(&outputs),
            receipt.receipt.output_hash,
            receipt_path.display()
        )
    });
    Ok(())
}

/// One check of `deed verify`, for the report.
fn not_verified(ctx: &Ctx, checks: &[(&str, String)], reason: String) -> Result<()> {
    if ctx.json {
        let v = json!({ "verified": false, "reason": reason, "checks": checks.iter().map(|(k, v)| json!({k.to_string(): v})).collect::<Vec<_>>() });
        println!("{v}");
    } else {
        for (k, v) in checks {
            println!("  ok  {k}: {v}");
        }
        println!("NOT VERIFIED: {reason}");
    }
    Err(Fail::new(EXIT_NOT_VERIFIED, format!("not verified: {reason}")).into())
}

fn verify(ctx: &Ctx, path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Fail::new(1, format!("cannot read {}: {e}", path.display())))?;
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return not_verified(ctx, &[], format!("{} is not valid JSON: {e}", path.display())),
    };
    let sr: SignedReceipt = match serde_json::from_value(doc["receipt"].clone()) {
        Ok(r) => r,
        Err(e) => return not_verified(ctx, &[], format!("the file holds no well-formed receipt: {e}")),
    };
    let r = &sr.receipt;
    let mut checks: Vec<(&str, String)> = Vec::new();
    if let Err(e) = sr.verify() {
        return not_verified(ctx, &checks, format!("the executor's signature does not cover this receipt ({e})"));
    }
    checks.push(("signature", format!("valid, executor {}", r.executor)));
    let c = match &ctx.node {
        Some(u) => Client::new(u),
        None => match doc["node"].as_str() {
            Some(u) if !ctx.home.config_path().exists() => Client::new(u),
            _ => ctx.client()?,
        },
    };
    // Finality: the receipt must be in a block signed by a producer named in genesis.
    let genesis: deed_types::Genesis = serde_json::from_value(c.get("/v1/genesis")?)?;
    if genesis.chain_id != r.chain_id {
        return not_verified(
            ctx,
            &checks,
            format!("receipt is for chain '{}', node runs '{}'", r.chain_id, genesis.chain_id),
        );
    }
    let job = c.get(&format!("/v1/jobs/{}", r.job));
    let job = match job {
        Ok(j) => j,
        Err(e) => return not_verified(ctx, &checks, format!("the chain has no job {}: {e}", r.job)),
    };
    let height = job["job"]["status"]["height"].as_u64().unwrap_or(0);
    if job["job"]["status"]["receipt"].as_str() != Some(r.hash().to_string().as_str()) {
        return not_verified(ctx, &checks, format!("job {} was not settled with this receipt", r.job));
    }
    let block: Block = serde_json::from_value(c.get(&format!("/v1/blocks/{height}"))?)?;
    if !genesis.validators.contains(&block.header.proposer) {
        return not_verified(ctx, &checks, format!("block {height} was produced by a key genesis does not name"));
    }
    if let Err(e) = block.verify() {
        return not_verified(ctx, &checks, format!("block {height} does not verify: {e}"));
    }
    let included = block.txs.iter().any(|t| matches!(&t.tx.body, TxBody::SubmitReceipt { receipt } if receipt == &sr));
    if !included {
        return not_verified(ctx, &checks, format!("block {height} does not contain this receipt"));
    }
    checks.push(("finality", format!("in finalized block {height} ({})", block.header.hash())));
    // Re-execution: fetch model and input by hash, check them, run, compare bits.
    let model_bytes = c.get_bytes(&format!("/v1/blobs/{}", r.model))?;
    if Cid::of(&model_bytes) != r.model {
        return not_verified(ctx, &checks, "the node served model bytes that do not match the model id".into());
    }
    let input_bytes = c.get_bytes(&format!("/v1/blobs/{}", Cid(r.input_hash)))?;
    if Hash32::of(&input_bytes) != r.input_hash {
        return not_verified(ctx, &checks, "the node served input bytes that do not match the input hash".into());
    }
    if r.engine != deed_engine::SPEC_VERSION {
        return not_verified(
            ctx,
            &checks,
            format!("receipt was made with {} but this deed runs {}", r.engine, deed_engine::SPEC_VERSION),
        );
    }
    let inputs = TensorSet::decode(&input_bytes)?;
    let model = Model::load(&model_bytes).map_err(|e| Fail::new(1, format!("model does not load: {e}")))?;
    let out = model.run(&inputs, &RunOptions { threads: 1, trace: true })?;
    if out.trace.len() != r.trace.len() {
        return not_verified(
            ctx,
            &checks,
            format!("the model has {} ops but the receipt's trace has {}", out.trace.len(), r.trace.len()),
        );
    }
    if let Some(i) = out.trace.iter().zip(&r.trace).position(|(a, b)| a != b) {
        return not_verified(
            ctx,
            &checks,
            format!("op #{i} of the trace differs from the re-run ({} vs {})", out.trace[i], r.trace[i]),
        );
    }
    if out.output_hash() != r.output_hash {
        return not_verified(
            ctx,
            &checks,
            format!("output hash differs: re-run {} vs receipt {}", out.output_hash(), r.output_hash),
        );
    }
    checks.push(("re-execution", format!("{} ops, output {} bit for bit", r.trace.len(), r.output_hash)));
    let v = json!({ "verified": true, "job": r.job, "model": r.model, "block_height": height,
                    "output_hash": r.output_hash, "trace_root": r.trace_root, "engine": r.engine,
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

fn exec(ctx: &Ctx, file: &Path, input: &Path, repeat: usize, threads: usize) -> Result<()> {
    let bytes = std::fs::read(file).map_err(|e| Fail::new(1, format!("cannot read {}: {e}", file.display())))?;
    deed_store::refuse_pickle(&bytes).map_err(|e| Fail::new(1, e.to_string()))?;
    let t0 = Instant::now();
    let model = Model::load(&bytes).map_err(|e| Fail::new(1, format!("{}: {e}", file.display())))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let names: Vec<String> = model.inputs().iter().map(|i| i.name.clone()).collect();
    let inputs = tensors::read_inputs(input, &names)?;
    let opts = RunOptions { threads, trace: true };
    let mut times = Vec::with_capacity(repeat.max(1));
    let mut out = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let o = model.run(&inputs, &opts).map_err(|e| Fail::new(1, e.to_string()))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        out = Some(o);
    }
    let out = out.expect("ran at least once");
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let v = json!({
        "model": Cid::of(&bytes), "outputs": out.outputs.to_json(), "output_hash": out.output_hash(),
        "trace_root": out.trace_root(), "ops": out.trace.len(), "engine": deed_engine::SPEC_VERSION,
        "repeat": times.len(), "median_ms": median, "load_ms": load_ms, "threads": threads,
    });
    ctx.emit(&v, || {
        let mut s = format!(
            "outputs:\n{}output hash: {}\ntrace root:  {} ({} ops)\n",
            tensors::describe(&out.outputs),
            out.output_hash(),
            out.trace_root(),
            out.trace.len()
        );
        if repeat > 1 {
            s.push_str(&format!("median: {median:.3} ms over {} runs\n", times.len()));
        }
        s
    });
    Ok(())
}

fn balance(ctx: &Ctx, addr: Option<String>) -> Result<()> {
    let addr: Address = match addr {
        Some(a) => a.parse()?,
        None => ctx.signer()?.address(),
    };
    let c = ctx.client()?;
    let v = c.get(&format!("/v1/accounts/{addr}"))?;
    ctx.emit(&v, || format!("{addr}: {}\n", v["balance"].as_str().unwrap_or("0")));
    Ok(())
}

fn transfer(ctx: &Ctx, to: &str, amount: u128, sign_only: bool) -> Result<()> {
    let to: Address = to.parse()?;
    let key = ctx.signer()?;
    let c = ctx.client()?;
    let tx = build_tx(&c, &key, TxBody::Transfer { to, amount })?;
    if sign_only {
        println!("{}", serde_json::to_string_pretty(&tx)?);
        return Ok(());
    }
    let (hash, height) = submit_and_wait(ctx, &c, &tx, "transfer")?;
    let v = json!({ "tx": hash, "height": height, "from": key.address(), "to": to, "amount": amount.to_string() });
    ctx.emit(&v, || format!("sent {amount} to {to} in block {height} (tx {hash})\n"));
    Ok(())
}

fn status(ctx: &Ctx) -> Result<()> {
    let c = ctx.client()?;
    let v = c.get("/v1/status")?;
    ctx.emit(&v, || {
        format!(
            "chain:      {}\nheight:     {}\nfinalized:  {}\nhead:       {}\nstate root: {}\nproducer:   {}\nmempool:    {}\n",
            v["chain_id"].as_str().unwrap_or(""),
            v["height"],
            v["finalized_height"],
            v["head_hash"].as_str().unwrap_or("-"),
            v["state_root"].as_str().unwrap_or(""),
            v["producer"].as_str().unwrap_or(""),
            v["mempool"],
        )
    });
    Ok(())
}

fn tx_submit(ctx: &Ctx, file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(file)?;
    let tx: SignedTx = serde_json::from_str(&text)
        .map_err(|e| Fail::new(1, format!("{}: not a signed transaction: {e}", file.display())))?;
    let c = ctx.client()?;
    let (hash, height) = submit_and_wait(ctx, &c, &tx, tx.tx.body.kind())?;
    ctx.emit(&json!({ "tx": hash, "height": height }), || format!("included in block {height}: {hash}\n"));
    Ok(())
}

fn tx_show(ctx: &Ctx, hash: &str) -> Result<()> {
    let h: Hash32 = hash.parse()?;
    let c = ctx.client()?;
    let v = c.get(&format!("/v1/txs/{h}"))?;
    ctx.emit(&v, || format!("{h}: {}\n", v["status"].as_str().unwrap_or("?")));
    Ok(())
}

fn replay(ctx: &Ctx) -> Result<()> {
    ctx.home.require()?;
    let path = ctx.home.data_dir().join("chain.redb");
    if !path.exists() {
        return Err(Fail::new(crate::EXIT_NOT_FOUND, format!("no chain database at {}", path.display())).into());
    }
    let db = deed_ledger::db::ChainDb::open(&path)
        .map_err(|e| Fail::new(1, format!("cannot open {} (is the node still running?): {e}", path.display())))?;
    let t = Instant::now();
    let r = deed_ledger::db::replay(&db).map_err(|e| Fail::new(EXIT_NOT_VERIFIED, e.to_string()))?;
    let v = json!({ "ok": true, "blocks": r.blocks, "txs": r.txs, "state_root": r.state_root,
                    "seconds": t.elapsed().as_secs_f64() });
    ctx.emit(&v, || {
        format!(
            "replayed {} blocks ({} txs) from genesis: every state root matches, final {}\n",
            r.blocks, r.txs, r.state_root
        )
    });
    Ok(())
}

//! What each command does.

use crate::{Cli, Cmd, EXIT_NOT_VERIFIED, Fail, KeyCmd, TxCmd, client::Client, tensors};
use anyhow::{Context, Result};
use deed_engine::RunOptions;
use deed_node::Home;
use deed_types::{Address, Cid, Hash32, Keypair, SignedTx, Tx, TxBody, tx::model_commitment};
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
    /// `--genesis`: the trust anchor of `verify` and `prove` ([`crate::trust`]).
    pub(crate) genesis: Option<String>,
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
        genesis: cli.genesis.clone(),
        json: cli.json,
    };
    match cli.cmd {
        Cmd::Init => init(&ctx),
        Cmd::Key(KeyCmd::New { name }) => key_new(&ctx, &name),
        Cmd::Key(KeyCmd::List) => key_list(&ctx),
        Cmd::Node {
            listen,
            dev,
            audit,
            no_executor,
            #[cfg(feature = "adversary")]
            misbehave,
        } => {
            #[cfg(not(feature = "adversary"))]
            let misbehave: Option<String> = None;
            node(&ctx, listen, dev, audit, no_executor, misbehave)
        }
        Cmd::Worker {
            execute,
            audit,
            threads,
            #[cfg(feature = "adversary")]
            misbehave,
        } => {
            #[cfg(not(feature = "adversary"))]
            let misbehave: Option<String> = None;
            crate::jobs_cmds::worker(&ctx, execute, audit, threads, misbehave)
        }
        Cmd::Challenge { receipt, force } => crate::jobs_cmds::challenge(&ctx, &receipt, force),
        Cmd::Publish { file, name, price, parents } => publish(&ctx, &file, &name, price, &parents),
        Cmd::Models { owner } => models(&ctx, owner),
        Cmd::Model { action: Some(a), .. } => crate::ledger_cmds::model_action(&ctx, a),
        Cmd::Model { id, action: None } => model(&ctx, &id.unwrap_or_default()),
        Cmd::Stake { amount } => crate::ledger_cmds::stake(&ctx, amount, true),
        Cmd::Unstake { amount } => crate::ledger_cmds::stake(&ctx, amount, false),
        Cmd::Earnings { addr } => crate::ledger_cmds::earnings(&ctx, addr),
        Cmd::Prove(p) => crate::ledger_cmds::prove(&ctx, p),
        Cmd::Run { id, input, out, timeout, mode, no_settle } => {
            crate::jobs_cmds::run(&ctx, &id, &input, &out, timeout, &mode, !no_settle)
        }
        Cmd::Verify { receipt, input, model, offline } => {
            crate::jobs_cmds::verify(&ctx, &receipt, input.as_deref(), model.as_deref(), offline)
        }
        Cmd::Exec { file, input, repeat, threads } => exec(&ctx, &file, &input, repeat, threads),
        Cmd::Balance { addr } => balance(&ctx, addr),
        Cmd::Transfer { to, amount, sign_only } => transfer(&ctx, &to, amount, sign_only),
        Cmd::Status => status(&ctx),
        Cmd::Pull { id, out } => crate::store_cmds::pull(&ctx, &id, out),
        Cmd::Store(crate::store_cmds::StoreCmd::Stats) => crate::store_cmds::stats(&ctx),
        Cmd::Similar { target } => crate::store_cmds::similar(&ctx, &target),
        Cmd::Tx(TxCmd::Submit { file }) => tx_submit(&ctx, &file),
        Cmd::Tx(TxCmd::Show { hash }) => tx_show(&ctx, &hash),
        Cmd::Replay => replay(&ctx),
        Cmd::Testnet(t) => crate::testnet::run(&ctx, t),
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

fn node(
    ctx: &Ctx,
    listen: Option<String>,
    dev: bool,
    audit: f64,
    no_executor: bool,
    misbehave: Option<String>,
) -> Result<()> {
    ctx.home.require()?;
    if !(0.0..=1.0).contains(&audit) {
        return Err(Fail::new(2, "--audit is a rate between 0 and 1").into());
    }
    let misbehave: Option<deed_node::worker::Misbehave> =
        misbehave.map(|m| m.parse()).transpose().map_err(|e: String| Fail::new(2, e))?;
    let filter = std::env::var("DEED_LOG").unwrap_or_else(|_| "info".into());
    let level = filter.parse::<tracing::Level>().unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let handle = deed_node::start_home_with(&ctx.home, listen, dev, |c| {
            c.audit_rate = audit;
            c.executor = !no_executor;
            c.misbehave = misbehave;
        })
        .await?;
        let head = handle.app.db.height()?;
        let addr = handle.addr;
        let role =
            if handle.app.genesis.validators.contains(&handle.app.key.public()) { "validator" } else { "full node" };
        if ctx.json {
            println!(
                "{}",
                json!({ "listen": addr.to_string(), "chain_id": handle.app.chain_id(), "height": head,
                        "node_key": handle.app.key.public(), "role": role })
            );
        } else {
            eprintln!(
                "deed node ({role}) on http://{addr} — chain {} at height {head}; Ctrl-C to stop",
                handle.app.chain_id()
            );
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
    upload_bundle_weights(ctx, &c, file)?;
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

/// Graph files at most this large are scanned for bundle weights before publishing
/// (a bundle's graph holds no weights, so it is small; a larger file carries its own).
const BUNDLE_GRAPH_BYTES_MAX: u64 = 64 << 20;

/// A bundle (an ONNX graph whose initializers are in `<weights CID>.safetensors` files,
/// docs/PROTOCOL.md *Model files*) needs its weights on the node before its graph:
/// uploads each weights file named by `file`, from the graph's folder, checked against
/// the CID in its name.
fn upload_bundle_weights(ctx: &Ctx, c: &crate::client::Client, file: &Path) -> Result<()> {
    let len = std::fs::metadata(file).map_err(|e| Fail::new(1, format!("cannot open {}: {e}", file.display())))?.len();
    if len > BUNDLE_GRAPH_BYTES_MAX {
        return Ok(());
    }
    let bytes = std::fs::read(file)?;
    let Ok(tensors) = deed_store::formats::onnx_tensors(&bytes, &Default::default()) else {
        return Ok(()); // Not ONNX: the node says why when the graph is uploaded.
    };
    let mut locations: Vec<String> = tensors
        .into_iter()
        .filter_map(|t| match t.data {
            deed_store::formats::TensorData::External(e) => Some(e.location),
            _ => None,
        })
        .collect();
    locations.sort();
    locations.dedup();
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    for loc in locations {
        let cid = Cid::from_location(&loc).ok_or_else(|| {
            Fail::new(
                1,
                format!(
                    "{} keeps weights in '{loc}'; deed bundles name them <weights CID>.safetensors",
                    file.display()
                ),
            )
        })?;
        if !deed_engine::is_bare_file_name(&loc) {
            return Err(Fail::new(1, format!("external data location '{loc}' is not a bare file name")).into());
        }
        let path = dir.join(&loc);
        let f = std::fs::File::open(&path)
            .map_err(|e| Fail::new(1, format!("cannot open the bundle's weights {}: {e}", path.display())))?;
        let wlen = f.metadata()?.len();
        let pb = progress(ctx, wlen, "uploading weights");
        let mut reader = pb.wrap_read(f);
        let up = c.put_blob("raw", &mut reader as &mut dyn Read);
        pb.finish_and_clear();
        let got: Cid = up?["cid"].as_str().context("upload answer lacks cid")?.parse()?;
        if got != cid {
            return Err(
                Fail::new(1, format!("{} does not hash to the CID in its name (it is {got})", path.display())).into()
            );
        }
        ctx.note(&format!("uploaded weights {} ({wlen} bytes)", path.display()));
    }
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
                // A dynamic dim shows its symbolic name (`batch`) when the engine knows one.
                let dims: Vec<String> = i["shape"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(k, d)| match (d.as_u64(), i["dim_names"][k].as_str()) {
                        (Some(d), _) => d.to_string(),
                        (None, Some(name)) => name.to_string(),
                        (None, None) => "?".to_string(),
                    })
                    .collect();
                let dtype = i["dtype"].as_str().unwrap_or("?");
                s.push_str(&format!("  {} {dtype} [{}]\n", i["name"].as_str().unwrap_or(""), dims.join(", ")));
            }
        }
        s
    });
    Ok(())
}

fn exec(ctx: &Ctx, file: &Path, input: &Path, repeat: usize, threads: usize) -> Result<()> {
    let bytes = std::fs::read(file).map_err(|e| Fail::new(1, format!("cannot read {}: {e}", file.display())))?;
    deed_store::refuse_pickle(&bytes).map_err(|e| Fail::new(1, e.to_string()))?;
    let t0 = Instant::now();
    let model =
        crate::weights::load_file(file, &bytes).map_err(|e| Fail::new(1, format!("{}: {e}", file.display())))?;
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
        "trace_root": out.trace_root(), "ops": model.node_count(), "trace_entries": out.trace.len(), "engine": deed_engine::SPEC_VERSION,
        "repeat": times.len(), "median_ms": median, "load_ms": load_ms, "threads": threads,
    });
    ctx.emit(&v, || {
        let mut s = format!(
            "outputs:\n{}output hash: {}\ntrace root:  {} ({} ops, {} trace entries)\n",
            tensors::describe(&out.outputs),
            out.output_hash(),
            out.trace_root(),
            model.node_count(),
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
            "chain:      {}\nrole:       {}\nheight:     {}\nfinalized:  {}\nhead:       {}\nstate root: {}\nproducer:   {}\nmempool:    {}\n",
            v["chain_id"].as_str().unwrap_or(""),
            v["role"].as_str().unwrap_or("validator"),
            v["height"],
            v["finalized_height"],
            v["head_hash"].as_str().unwrap_or("-"),
            v["state_root"].as_str().unwrap_or(""),
            v["producer"].as_str().unwrap_or(""),
            v["mempool"],
        ) + &crate::testnet::peers_text(&v)
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

//! `deed testnet init|up|down`: a local N-validator network on loopback, each node in
//! its own home (`DIR/node0`, `DIR/node1`, …) with its own HTTP and p2p ports, plus M
//! full nodes (`DIR/full0`, …: non-voting nodes that follow and verify the chain).

use crate::commands::Ctx;
use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use deed_node::Home;
use deed_node::bft::home::{NetworkFile, Peer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Testnet commands.
#[derive(Subcommand, Debug)]
pub enum TestnetCmd {
    /// Write N validator homes and M full-node homes into DIR (genesis, keys, ports, peers).
    Init {
        /// Number of validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Number of full nodes (they verify and re-execute every block, serve the API and
        /// forward transactions, but do not vote).
        #[arg(long, default_value_t = 0)]
        full_nodes: usize,
        /// Output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// First HTTP port (node i listens on BASE+i, full node j on BASE+N+j; p2p on
        /// the HTTP port + 100).
        #[arg(long, default_value_t = 7100)]
        base_port: u16,
        /// Chain id.
        #[arg(long, default_value = "deed-testnet")]
        chain_id: String,
    },
    /// Start every node of DIR in the background (pid files and logs in each home).
    Up {
        /// The testnet folder.
        dir: PathBuf,
    },
    /// Stop every node of DIR.
    Down {
        /// The testnet folder.
        dir: PathBuf,
    },
}

/// Runs a testnet command.
pub(crate) fn run(ctx: &Ctx, cmd: TestnetCmd) -> Result<()> {
    match cmd {
        TestnetCmd::Init { validators, full_nodes, out, base_port, chain_id } => {
            init(ctx, validators, full_nodes, &out, base_port, &chain_id)
        }
        TestnetCmd::Up { dir } => up(ctx, &dir),
        TestnetCmd::Down { dir } => down(ctx, &dir),
    }
}

/// The node homes of a testnet folder, in order: validators, then full nodes.
pub fn homes(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for prefix in ["node", "full"] {
        for i in 0.. {
            let h = dir.join(format!("{prefix}{i}"));
            if !h.is_dir() {
                break;
            }
            out.push(h);
        }
    }
    if out.is_empty() {
        bail!("no node homes in {} (run `deed testnet init --out {}` first)", dir.display(), dir.display());
    }
    Ok(out)
}

fn init(ctx: &Ctx, n: usize, m: usize, out: &Path, base_port: u16, chain_id: &str) -> Result<()> {
    if n == 0 || n > 64 {
        bail!("--validators must be between 1 and 64");
    }
    if m > 32 {
        bail!("--full-nodes must be at most 32");
    }
    if out.join("node0").exists() {
        bail!("{} already holds a testnet; pick another --out or remove it", out.display());
    }
    base_port.checked_add(100 + (n + m) as u16).context("--base-port too high")?;
    let p2p_base = base_port + 100;
    let mut homes = Vec::new();
    let mut peers = Vec::new();
    let mut funded = Vec::new();
    for i in 0..n + m {
        let name = if i < n { format!("node{i}") } else { format!("full{}", i - n) };
        let home = Home::at(out.join(name));
        funded.push(home.init()?);
        let http = format!("127.0.0.1:{}", base_port + i as u16);
        let mut cfg = home.config()?;
        cfg.listen = http.clone();
        cfg.node_url = format!("http://{http}");
        home.save_config(&cfg)?;
        peers
            .push(Peer { key: home.node_key()?.public(), addr: format!("127.0.0.1:{}", p2p_base + i as u16).parse()? });
        homes.push(home);
    }
    let full_nodes = peers.split_off(n);
    let keys: Vec<_> = peers.iter().map(|p| p.key).collect();
    let genesis = deed_node::bft::testnet_genesis(chain_id, &keys, &funded, deed_node::app::now_ms());
    let text = serde_json::to_string_pretty(&genesis)?;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    for (i, home) in homes.iter().enumerate() {
        std::fs::write(home.genesis_path(), &text)?;
        for name in deed_node::DEV_KEYS {
            let _ = home.import_key(name, deed_types::Keypair::dev(name));
        }
        let me = if i < n { &peers[i] } else { &full_nodes[i - n] };
        let net = NetworkFile {
            p2p_listen: me.addr,
            peers: peers.clone(),
            full_nodes: full_nodes.clone(),
            block_interval_ms: deed_node::bft::actor::Timing::default().block_interval_ms,
            idle_block_ms: deed_node::bft::actor::Timing::default().idle_block_ms,
            // The nodes share this machine: each runtime gets its share of the cores.
            runtime_threads: (cores / homes.len().max(1)).max(1),
        };
        deed_node::bft::home::save(home, &net)?;
    }
    let all: Vec<&Peer> = peers.iter().chain(&full_nodes).collect();
    let role = |i: usize| if i < n { "validator" } else { "full node" };
    let v = json!({
        "dir": out, "validators": n, "full_nodes": m, "chain_id": chain_id, "genesis_hash": genesis.hash(),
        "nodes": homes.iter().enumerate().map(|(i, h)| json!({
            "home": h.dir, "role": role(i), "http": format!("http://127.0.0.1:{}", base_port + i as u16),
            "p2p": all[i].addr.to_string(), "node_key": all[i].key,
        })).collect::<Vec<_>>(),
    });
    ctx.emit(&v, || {
        let fulls = if m == 1 { "1 full node".to_string() } else { format!("{m} full nodes") };
        let mut s = format!("testnet of {n} validators and {fulls} in {} (chain {chain_id})\n", out.display());
        for (i, h) in homes.iter().enumerate() {
            s.push_str(&format!(
                "  {}: {}  http://127.0.0.1:{}  p2p {}  home {}\n",
                h.dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                role(i),
                base_port + i as u16,
                all[i].addr,
                h.dir.display()
            ));
        }
        s.push_str(&format!("start it with: deed testnet up {}\n", out.display()));
        s
    });
    Ok(())
}

fn pid_path(home: &Path) -> PathBuf {
    home.join("node.pid")
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| !s.contains(") Z "))
}

fn read_pid(home: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_path(home)).ok()?.trim().parse().ok()
}

fn up(ctx: &Ctx, dir: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the deed binary")?;
    let mut started = Vec::new();
    for h in homes(dir)? {
        if let Some(pid) = read_pid(&h)
            && alive(pid)
        {
            ctx.note(&format!("{} already running (pid {pid})", h.display()));
            started.push((h, pid));
            continue;
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(h.join("node.log"))?;
        let child = Command::new(&exe)
            .arg("--home")
            .arg(&h)
            .arg("node")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the node of {}", h.display()))?;
        std::fs::write(pid_path(&h), child.id().to_string())?;
        started.push((h, child.id()));
    }
    // Wait until every node answers HTTP.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (h, pid) in &started {
        let url = Home::at(h).config()?.node_url;
        loop {
            if crate::client::Client::new(&url).get("/v1/status").is_ok() {
                break;
            }
            if !alive(*pid) {
                bail!("the node of {} exited; see {}", h.display(), h.join("node.log").display());
            }
            if Instant::now() > deadline {
                bail!("the node of {} does not answer on {url}; see {}", h.display(), h.join("node.log").display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let v = json!({ "nodes": started.iter().map(|(h, p)| json!({"home": h, "pid": p})).collect::<Vec<_>>() });
    ctx.emit(&v, || {
        let mut s = String::new();
        for (h, p) in &started {
            s.push_str(&format!("{}: running (pid {p}, log {})\n", h.display(), h.join("node.log").display()));
        }
        s
    });
    Ok(())
}

fn down(ctx: &Ctx, dir: &Path) -> Result<()> {
    let mut stopped = Vec::new();
    for h in homes(dir)? {
        let Some(pid) = read_pid(&h) else { continue };
        if alive(pid) {
            // SIGINT: the node's clean shutdown path (like Ctrl-C).
            let _ = Command::new("kill").arg("-INT").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            }
            stopped.push(pid);
        }
        let _ = std::fs::remove_file(pid_path(&h));
    }
    ctx.emit(&json!({ "stopped": stopped }), || format!("stopped {} node(s)\n", stopped.len()));
    Ok(())
}

/// The peers lines of `deed status` (empty for a solo node).
pub(crate) fn peers_text(status: &serde_json::Value) -> String {
    let Some(peers) = status["peers"].as_array().filter(|p| !p.is_empty()) else { return String::new() };
    let mut s = format!("peers:      {}\n", peers.len());
    for p in peers {
        let seen =
            p["last_seen_ms_ago"].as_u64().map_or("never heard from".to_string(), |ms| format!("seen {ms} ms ago"));
        let role = p["role"].as_str().unwrap_or("validator");
        s.push_str(&format!(
            "  {} {} {role} ({seen})\n",
            p["addr"].as_str().unwrap_or("?"),
            p["key"].as_str().unwrap_or("?")
        ));
    }
    s
}

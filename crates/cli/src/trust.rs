//! The client's trust anchor and finality checks: what `deed verify` and `deed prove`
//! believe about a chain without believing the node they ask.
//!
//! The anchor is a genesis the client knows independently of the node, like a light
//! client's trusted checkpoint, taken from (first match wins):
//! 1. `--genesis FILE|HASH`: a genesis file, or the hash the node's genesis must have;
//! 2. `trusted-genesis.json` in the home: the genesis pinned there earlier;
//! 3. `genesis.json` in the home: a node's own home (dev or testnet) has its genesis;
//! 4. otherwise trust on first use: the node's genesis is pinned in the home's
//!    `trusted-genesis.json`, and said so (on stderr, and as `trust.source = "first use"`
//!    with `--json`).
//!
//! A node that serves another genesis is refused. Finality is then checked against the
//! anchor's validators ([`deed_node::bft::finality::verify_evidence`]), never the node's.

use crate::{EXIT_NOT_FOUND, Fail, client::Client, commands::Ctx};
use anyhow::Result;
use deed_node::bft::finality::{Evidence, Verified, verify_evidence};
use deed_types::{Genesis, Hash32};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The file in a home that pins the genesis a client trusts.
pub const TRUSTED_GENESIS_FILE: &str = "trusted-genesis.json";

/// How long a finality check waits for a node to hold the evidence of a block it has
/// just committed (a certificate may still be on its way to a full node).
const EVIDENCE_WAIT: Duration = Duration::from_secs(5);

/// Where the trusted genesis came from.
#[derive(Debug)]
pub enum Source {
    /// `--genesis FILE|HASH`.
    Flag(String),
    /// Pinned in the home earlier.
    Pinned(PathBuf),
    /// The genesis of the node whose home this is.
    NodeHome(PathBuf),
    /// Pinned now, from the node asked (trust on first use).
    FirstUse(PathBuf),
}

/// The genesis a client checks a node's answers against.
#[derive(Debug)]
pub struct Anchor {
    /// The trusted genesis.
    pub genesis: Genesis,
    /// Its hash.
    pub hash: Hash32,
    /// Where it came from.
    pub source: Source,
}

impl Anchor {
    /// The anchor as reported with `--json`.
    pub fn to_json(&self) -> Value {
        let (source, from) = match &self.source {
            Source::Flag(f) => ("flag", f.clone()),
            Source::Pinned(p) => ("pinned", p.display().to_string()),
            Source::NodeHome(p) => ("node home", p.display().to_string()),
            Source::FirstUse(p) => ("first use", p.display().to_string()),
        };
        json!({ "genesis_hash": self.hash, "chain_id": self.genesis.chain_id,
                "validators": self.genesis.validators.len(), "source": source, "from": from })
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let from = match &self.source {
            Source::Flag(f) => format!("--genesis {f}"),
            Source::Pinned(p) => format!("pinned in {}", p.display()),
            Source::NodeHome(p) => format!("this node home's {}", p.display()),
            Source::FirstUse(p) => format!("pinned on first use in {}", p.display()),
        };
        format!(
            "genesis {} of chain '{}' ({} validator{}), {from}",
            self.hash,
            self.genesis.chain_id,
            self.genesis.validators.len(),
            if self.genesis.validators.len() == 1 { "" } else { "s" }
        )
    }
}

fn read_genesis(path: &std::path::Path) -> Result<Genesis, Fail> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Fail::new(1, format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Fail::new(1, format!("{} is not a genesis: {e}", path.display())))
}

/// The genesis the client trusts (see the module docs), checked against the one the
/// node serves: a node on another genesis is refused (exit 3), whatever it answers.
pub fn anchor(ctx: &Ctx, c: &Client) -> Result<Anchor> {
    let served: Genesis = serde_json::from_value(c.get("/v1/genesis")?)
        .map_err(|e| Fail::new(1, format!("the node at {} served a malformed genesis: {e}", c.base)))?;
    let served_hash = served.hash();
    let pinned = ctx.home.dir.join(TRUSTED_GENESIS_FILE);
    let own = ctx.home.genesis_path();
    let anchor = if let Some(flag) = &ctx.genesis {
        let genesis = match flag.parse::<Hash32>() {
            // A hash: the node's genesis must be the one with this hash.
            Ok(h) if h == served_hash => served.clone(),
            Ok(h) => {
                return Err(refuse(c, &served, served_hash, &format!("--genesis says genesis {h}")));
            }
            Err(_) if std::path::Path::new(flag).is_file() => read_genesis(std::path::Path::new(flag))?,
            Err(_) => {
                return Err(Fail::new(
                    2,
                    format!("--genesis '{flag}': neither a genesis hash (64 hex characters) nor a genesis file"),
                )
                .into());
            }
        };
        Anchor { hash: genesis.hash(), genesis, source: Source::Flag(flag.clone()) }
    } else if pinned.is_file() {
        let genesis = read_genesis(&pinned)?;
        Anchor { hash: genesis.hash(), genesis, source: Source::Pinned(pinned) }
    } else if own.is_file() {
        let genesis = read_genesis(&own)?;
        Anchor { hash: genesis.hash(), genesis, source: Source::NodeHome(own) }
    } else {
        std::fs::create_dir_all(&ctx.home.dir)
            .map_err(|e| Fail::new(1, format!("cannot create {}: {e}", ctx.home.dir.display())))?;
        let text = serde_json::to_string_pretty(&served)? + "\n";
        let tmp = pinned.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &pinned))
            .map_err(|e| Fail::new(1, format!("cannot pin the genesis in {}: {e}", pinned.display())))?;
        let a = Anchor { genesis: served.clone(), hash: served_hash, source: Source::FirstUse(pinned.clone()) };
        ctx.note(&format!(
            "trusting {}: from now on this home refuses any node that serves another genesis (to trust another \
             chain, pass --genesis FILE|HASH or delete that file)",
            a.describe()
        ));
        a
    };
    if anchor.hash != served_hash {
        return Err(refuse(c, &served, served_hash, &format!("this client trusts {}", anchor.describe())));
    }
    Ok(anchor)
}

fn refuse(c: &Client, served: &Genesis, served_hash: Hash32, trusted: &str) -> anyhow::Error {
    Fail::new(
        crate::EXIT_NOT_VERIFIED,
        format!(
            "the node at {} is on another chain: it serves genesis {served_hash} of chain '{}', but {trusted}: \
             refused (pass --genesis FILE|HASH to check against another chain)",
            c.base, served.chain_id
        ),
    )
    .into()
}

/// Fetches the node's evidence that the block at `height` is final and checks it against
/// the anchor: certified by a quorum of the trusted genesis's validators (BFT) or signed
/// by its sole validator (solo). Returns the final header's evidence and what was
/// established; `Err` holds why the block is not proven final (or the node's failure).
pub fn final_block(c: &Client, anchor: &Anchor, height: u64) -> Result<(Evidence, Verified), String> {
    let deadline = Instant::now() + EVIDENCE_WAIT;
    let v = loop {
        match c.get(&format!("/v1/finality/{height}")) {
            Ok(v) => break v,
            Err(f) if f.code == EXIT_NOT_FOUND && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(f) => return Err(format!("no finality evidence for block {height}: {f}")),
        }
    };
    let ev: Evidence = serde_json::from_value(v).map_err(|e| format!("malformed finality evidence: {e}"))?;
    if ev.header.height != height {
        return Err(format!("asked for the finality of block {height}, the node answered for {}", ev.header.height));
    }
    let verified = verify_evidence(&anchor.genesis, &ev)?;
    Ok((ev, verified))
}

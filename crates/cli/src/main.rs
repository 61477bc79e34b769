//! The `deed` binary: `deed node` and the client commands.

mod client;
mod commands;
mod jobs_cmds;
mod ledger_cmds;
mod store_cmds;
mod tensors;
mod testnet;
mod trust;
mod weights;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit code: something failed.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: a receipt did not verify.
pub const EXIT_NOT_VERIFIED: i32 = 3;
/// Exit code: the node could not be reached.
pub const EXIT_UNREACHABLE: i32 = 4;
/// Exit code: the node refused the request (bad input, funds, signature, replay).
pub const EXIT_REFUSED: i32 = 5;
/// Exit code: a model, job, transaction or blob does not exist.
pub const EXIT_NOT_FOUND: i32 = 6;

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Fail {
    /// Process exit code.
    pub code: i32,
    /// What to tell the user.
    pub msg: String,
    /// Fields the `--json` failure document carries beside `error` (e.g. `verified:
    /// false` and the reason for a receipt that does not verify), so a failing command
    /// still prints exactly one JSON document.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl Fail {
    /// A failure.
    pub fn new(code: i32, msg: impl Into<String>) -> Fail {
        Fail { code, msg: msg.into(), detail: serde_json::Map::new() }
    }

    /// This failure, with `detail`'s fields added to its `--json` document (`error` is
    /// reserved for the code and message and cannot be overridden).
    pub fn with_detail(mut self, detail: serde_json::Map<String, serde_json::Value>) -> Fail {
        self.detail.extend(detail.into_iter().filter(|(k, _)| k != "error"));
        self
    }

    /// The one JSON document a failing command prints with `--json`:
    /// `{"error": {"code", "message"}, ...detail}`.
    pub fn json(&self) -> serde_json::Value {
        let mut doc = self.detail.clone();
        doc.insert("error".into(), serde_json::json!({ "code": self.code, "message": self.msg }));
        serde_json::Value::Object(doc)
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Fail {}

/// deed: publish AI models as owned assets, run them for a fee, verify every answer.
#[derive(Parser, Debug)]
#[command(name = "deed", version, about, long_about = None)]
pub struct Cli {
    /// Home folder with keys and config [default: $DEED_HOME, else ~/.deed].
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Node URL for client commands [default: node_url from config.toml].
    #[arg(long, global = true, value_name = "URL")]
    pub node: Option<String>,
    /// Name of the key that signs [default: default_key from config.toml].
    #[arg(long, global = true, value_name = "NAME")]
    pub key: Option<String>,
    /// The chain `verify` and `prove` trust, as a genesis file or hash [default: the
    /// genesis pinned in the home (trusted-genesis.json, else a node home's
    /// genesis.json), else the node's genesis, pinned on first use].
    #[arg(long, global = true, value_name = "FILE|HASH")]
    pub genesis: Option<String>,
    /// Print one JSON document on stdout instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create the home folder with a key and a config; prints the account address.
    Init,
    /// Manage signing keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Run a node: the embedded single-node network by default.
    Node {
        /// Address to listen on [default: listen from config.toml, 127.0.0.1:7070].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// On first start, write a dev genesis that funds the home's keys and dev accounts.
        #[arg(long)]
        dev: bool,
        /// Re-execute this share (0..=1) of answered jobs and challenge lies.
        #[arg(long, value_name = "RATE", default_value_t = 0.0)]
        audit: f64,
        /// Do not answer jobs with this node's executor.
        #[arg(long)]
        no_executor: bool,
        /// Make this node's executor lie: wrong-output, wrong-trace, substitute-model,
        /// stale-output (for tests and demos).
        #[cfg(feature = "adversary")]
        #[arg(long, value_name = "HOW")]
        misbehave: Option<String>,
    },
    /// Run an executor and/or auditor beside any node, over its HTTP API.
    Worker {
        /// Answer paid jobs (needs a staked key).
        #[arg(long)]
        execute: bool,
        /// Re-execute this share (0..=1) of answered jobs and challenge lies.
        #[arg(long, value_name = "RATE", default_value_t = 0.0)]
        audit: f64,
        /// Engine threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Lie on purpose (tests and demos).
        #[cfg(feature = "adversary")]
        #[arg(long, value_name = "HOW")]
        misbehave: Option<String>,
    },
    /// Challenge a receipt: re-run it, find where it is wrong, and post a fraud proof
    /// (escrows the chain's challenge bond; lost if the receipt was right).
    Challenge {
        /// The receipt.json written by `deed run`.
        receipt: PathBuf,
        /// Post the challenge even if the re-run agrees with the receipt.
        #[arg(long)]
        force: bool,
    },
    /// Upload and register a model (ONNX) you own.
    Publish {
        /// The .onnx file.
        file: PathBuf,
        /// A display name.
        #[arg(long)]
        name: String,
        /// Price per call in base units; 0 means open and free.
        #[arg(long, default_value_t = 0)]
        price: u128,
        /// A model this one derives from and the royalty it pays it, as ID:BPS
        /// (e.g. bafkr...:1000 for 10%). Repeatable.
        #[arg(long = "parent", value_name = "ID:BPS")]
        parents: Vec<String>,
    },
    /// List registered models.
    Models {
        /// Only models this address owns a share of.
        #[arg(long, value_name = "ADDR")]
        owner: Option<String>,
    },
    /// Show one model (`deed model ID`), or change it: transfer shares, set its license.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Model {
        /// Model id (CID) to show.
        #[arg(required = true)]
        id: Option<String>,
        /// A change to make.
        #[command(subcommand)]
        action: Option<ModelCmd>,
    },
    /// Pay for an inference through the network and wait for its receipt.
    Run {
        /// Model id (CID).
        id: String,
        /// Inputs: JSON tensors ({"name": {"shape", "dtype", "data"}}) or a .npy file.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Where receipt.json and the outputs are written.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Seconds to wait for the receipt.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// `single` (one executor, paid after a challenge window) or `replicated:K`
        /// (K executors that must agree).
        #[arg(long, default_value = "single")]
        mode: String,
        /// Return as soon as the receipt is on chain, without waiting for the challenge
        /// window to close and the payment to settle.
        #[arg(long)]
        no_settle: bool,
    },
    /// Check a receipt: signature, inclusion in a finalized block, and a bit-exact re-run.
    Verify {
        /// The receipt.json written by `deed run`.
        receipt: PathBuf,
        /// Use this input file (JSON or .npy) instead of fetching the input by hash.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Use this model file instead of fetching the model by id.
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
        /// Skip the finality check (no node needed; with --input and --model).
        #[arg(long)]
        offline: bool,
    },
    /// Run a local model offline (no node).
    Exec {
        /// The .onnx file.
        file: PathBuf,
        /// Inputs: JSON tensors or a .npy file.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Run this many times and report the median latency.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Engine threads (0 = all cores); the bits do not depend on it.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Show an account's balance.
    Balance {
        /// Address [default: the signing key's].
        addr: Option<String>,
    },
    /// Send tokens.
    Transfer {
        /// Recipient address.
        to: String,
        /// Amount in base units.
        amount: u128,
        /// Print the signed transaction instead of submitting it.
        #[arg(long)]
        sign_only: bool,
    },
    /// Node status: height, head, state root.
    Status,
    /// Download a blob by id with a progress bar, resuming a partial download; the file
    /// is kept only if its BLAKE3 matches the id.
    Pull {
        /// Blob or model id (CID).
        id: String,
        /// Where to write it [default: the id, in the current folder].
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The node's blob store.
    #[command(subcommand)]
    Store(store_cmds::StoreCmd),
    /// Registered models nearest to a model (an id or a local file) by weight fingerprint.
    Similar {
        /// Model id (CID) or path to an .onnx / .safetensors file.
        target: String,
    },
    /// Stake tokens as an executor (receipts need a stake).
    Stake {
        /// Base units moved from your balance into your stake.
        amount: u128,
    },
    /// Start unbonding stake; it returns to your balance after the unbonding delay.
    Unstake {
        /// Base units to unbond.
        amount: u128,
    },
    /// What an account has earned as an owner (calls and royalties) and as an executor.
    Earnings {
        /// Address [default: the signing key's].
        addr: Option<String>,
    },
    /// Fetch a Merkle proof of a fact from the node and check it against a signed block.
    #[command(subcommand)]
    Prove(ProveCmd),
    /// Raw transactions.
    #[command(subcommand)]
    Tx(TxCmd),
    /// Re-execute the home's stored chain from genesis and check every state root
    /// (offline: stop the node first).
    Replay,
    /// A local multi-validator network: init, up, down.
    #[command(subcommand)]
    Testnet(testnet::TestnetCmd),
}

/// Changes to a model.
#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Give some or all of your shares in a model to another account.
    Transfer {
        /// Model id.
        id: String,
        /// Recipient address.
        to: String,
        /// Basis points to move (10000 = 100%).
        bps: u16,
    },
    /// Vote for a price per call; it applies once the owners voting for it hold more
    /// than half of the shares (at once for an owner who holds that much alone).
    License {
        /// Model id.
        id: String,
        /// New price per call in base units.
        #[arg(long, conflicts_with = "open", required_unless_present = "open")]
        price: Option<u128>,
        /// Make the model open and free (price 0).
        #[arg(long)]
        open: bool,
    },
}

/// Facts that can be proven against a block's state root.
#[derive(Subcommand, Debug)]
pub enum ProveCmd {
    /// An account's balance and nonce.
    Balance {
        /// Address [default: the signing key's].
        addr: Option<String>,
    },
    /// A model's record: owners, price, calls, earnings.
    Model {
        /// Model id.
        id: String,
    },
    /// An account's earnings.
    Earnings {
        /// Address [default: the signing key's].
        addr: Option<String>,
    },
    /// A job's status (pending or settled, and by which receipt).
    Job {
        /// Job id (the request transaction's hash).
        id: String,
    },
}

/// Key commands.
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Create a new key.
    New {
        /// Its name.
        name: String,
    },
    /// List keys and their addresses.
    List,
}

/// Raw transaction commands.
#[derive(Subcommand, Debug)]
pub enum TxCmd {
    /// Submit a signed transaction from a JSON file.
    Submit {
        /// The file (as printed by `--sign-only`).
        file: PathBuf,
    },
    /// Show a transaction's status.
    Show {
        /// Transaction hash.
        hash: String,
    },
}

/// Whether `--json` was asked for, read from the raw arguments (for usage errors, which
/// stop before the flags are parsed). Arguments after `--` are values, not flags.
fn json_requested() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

/// Parses the command line. A usage error goes to stderr as clap renders it (exit 2);
/// with `--json` it is also the one JSON document on stdout.
fn parse_cli() -> Cli {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            if !informational && json_requested() {
                let msg = match e.kind() {
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                        "a subcommand or argument is missing (see --help)".to_string()
                    }
                    _ => {
                        // clap's text up to its usage line, on one line.
                        let text = e.render().to_string();
                        let head = text.split("\n\nUsage:").next().unwrap_or_default();
                        let head = head.strip_prefix("error: ").unwrap_or(head);
                        head.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    }
                };
                println!("{}", Fail::new(e.exit_code(), msg).json());
            }
            e.exit()
        }
    }
}

fn main() {
    let cli = parse_cli();
    let json = cli.json;
    let code = match commands::dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            let fail = match e.downcast::<Fail>() {
                Ok(f) => f,
                Err(e) => Fail::new(EXIT_ERROR, format!("{e:#}")),
            };
            if json {
                println!("{}", fail.json());
            }
            eprintln!("error: {}", fail.msg);
            fail.code
        }
    };
    std::process::exit(code);
}

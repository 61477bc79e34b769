//! The BFT block producer: validators order transactions into blocks with simplex
//! consensus (commonware) over authenticated p2p.
//!
//! How the [`BlockProducer`] maps onto simplex:
//!
//! - *Automaton* ([`actor::Mailbox`]): `propose` builds a block on the consensus parent
//!   from the mempool with `ledger::propose`, on the finalized state seen through the
//!   writes of the parent's unfinalized ancestors; `verify` executes a proposal with
//!   `ledger::apply_block` on that same state (so its header's state root is checked)
//!   and checks its parent, leader and time against the consensus context.
//! - *Relay*: the leader sends the whole block to the other validators on a block
//!   channel; consensus itself only orders 32-byte digests (the header hash).
//! - *Reporter*: a finalization commits the finalized block and every ancestor not yet
//!   committed through [`App::finalize`]; equivocation (conflicting votes) is recorded.
//!   A node whose execution of a finalized block fails, or whose state root differs,
//!   stops loudly instead of following a chain it cannot verify.
//! - Catching up: a missing block (a parent, or the chain under a finalization) is
//!   asked for with its ancestors from peers; answers are anchored by hashes to the
//!   block asked for, and every block is re-executed before it is committed.
//! - Blobs: a model or input this node lacks is fetched from peers by content id with
//!   commonware's p2p resolver on its own channel, piece by verified piece ([`fetch`]).
//! - Full nodes: a node whose key is not a genesis validator's, listed with its address
//!   in every home's `network.toml`, runs the same actor without consensus. Validators
//!   send it each block they commit with the block's finalization certificate; it
//!   verifies the certificate ([`finality`]), anchors and re-executes the blocks under
//!   it, serves the API, and forwards transactions submitted to it to the validators.
//!
//! The same [`engine::start`] runs on the tokio runtime here and on commonware's
//! deterministic runtime in the simulation tests.

pub mod actor;
pub mod chain;
pub mod engine;
pub mod fetch;
pub mod finality;
pub mod home;
pub mod wire;

use crate::producer::{BlockProducer, ProducerFuture};
use crate::{App, NodeError};
use actor::{Stats, Timing, to_consensus_key};
use commonware_codec::DecodeExt;
use commonware_cryptography::{ChaCha20Poly1305, Signer, ed25519};
use commonware_p2p::AddressableManager;
use commonware_p2p::authenticated::lookup;
use commonware_runtime::{Quota, Runner, Supervisor};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZU32, NZUsize, ordered::Map};
use deed_types::PublicKey;
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use tokio::sync::watch;

/// Network settings of a BFT node.
#[derive(Clone, Debug)]
pub struct BftConfig {
    /// Where p2p listens.
    pub p2p_listen: SocketAddr,
    /// Every validator's node key and p2p address (this node's included when it is one).
    pub peers: Vec<(PublicKey, SocketAddr)>,
    /// Every full node's node key and p2p address (this node's included when it is one).
    pub full_nodes: Vec<(PublicKey, SocketAddr)>,
    /// Consensus journal directory.
    pub storage_dir: PathBuf,
    /// Block timing.
    pub timing: Timing,
    /// Leader timeout.
    pub leader_timeout_ms: u64,
    /// Certification timeout.
    pub certification_timeout_ms: u64,
    /// Worker threads of the node's p2p and consensus runtime (at least 1). Two suit a
    /// node with a machine to itself; nodes sharing a few cores (a local testnet, the
    /// network bench) do better with one each, since every extra thread only adds
    /// context switches there.
    pub runtime_threads: usize,
    /// Test instrumentation: make this validator misbehave.
    pub adversary: Option<actor::Adversary>,
}

impl BftConfig {
    /// Defaults for a node listening on `p2p_listen` with these peers.
    pub fn new(p2p_listen: SocketAddr, peers: Vec<(PublicKey, SocketAddr)>, storage_dir: PathBuf) -> Self {
        BftConfig {
            p2p_listen,
            peers,
            full_nodes: Vec::new(),
            storage_dir,
            timing: Timing::default(),
            runtime_threads: 2,
            leader_timeout_ms: 2_000,
            certification_timeout_ms: 3_000,
            adversary: None,
        }
    }
}

/// Live network facts for `/v1/status`.
#[derive(Debug, Default)]
pub struct NetInfo {
    /// The validators' keys and addresses.
    pub peers: Vec<(PublicKey, SocketAddr)>,
    /// The full nodes' keys and addresses.
    pub full_nodes: Vec<(PublicKey, SocketAddr)>,
    /// Consensus counters.
    pub stats: Arc<std::sync::Mutex<Stats>>,
}

impl NetInfo {
    /// The peers and consensus counters as JSON for `/v1/status`.
    pub fn to_json(&self, me: &PublicKey) -> serde_json::Value {
        let st = self.stats.lock().unwrap().clone();
        let now = crate::app::now_ms();
        let roles = self.peers.iter().map(|p| (p, "validator")).chain(self.full_nodes.iter().map(|p| (p, "full node")));
        let peers: Vec<serde_json::Value> = roles
            .filter(|((k, _), _)| k != me)
            .map(|((k, a), role)| {
                let seen = st.peers_seen.get(k).map(|t| now.saturating_sub(*t));
                serde_json::json!({ "key": k, "addr": a.to_string(), "role": role, "last_seen_ms_ago": seen })
            })
            .collect();
        serde_json::json!({
            "peers": peers,
            "consensus": {
                "engine": "commonware simplex",
                "validators": self.peers.len(),
                "full_nodes": self.full_nodes.len(),
                "finalized_view": st.finalized_view,
                "certificates_rejected": st.certificates_rejected,
                "proposed": st.proposed,
                "verified": st.verified,
                "rejected": st.rejected,
                "last_rejection": st.last_rejection,
                "snapshot_installed": st.snapshot_installed,
                "faults": st.faults.iter().map(|(k, kind, v)| serde_json::json!({"validator": k, "kind": kind, "view": v})).collect::<Vec<_>>(),
            }
        })
    }
}

/// Orders blocks with simplex among the genesis validators; on a node whose key is not a
/// validator's, follows them as a full node.
pub struct BftProducer {
    /// Settings.
    pub config: BftConfig,
    /// Counters, shared with whoever wants to watch.
    pub stats: Arc<std::sync::Mutex<Stats>>,
}

impl BftProducer {
    /// A producer with fresh counters.
    pub fn new(config: BftConfig) -> Self {
        BftProducer { config, stats: Arc::default() }
    }
}

/// Per-channel rate limit (messages per second per peer); generous, loopback testnets.
const CHANNEL_RATE_PER_SECOND: u32 = 10_000;

impl BlockProducer for BftProducer {
    fn name(&self) -> &'static str {
        "simplex"
    }

    fn run(self: Box<Self>, app: Arc<App>, mut shutdown: watch::Receiver<bool>) -> ProducerFuture {
        Box::pin(async move {
            let me = *self;
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name("deed-bft".into())
                .spawn(move || {
                    let r = run_network(me, app, stop_rx);
                    let _ = done_tx.send(r);
                })
                .map_err(NodeError::Io)?;
            let mut done_rx = done_rx;
            tokio::select! {
                r = &mut done_rx => {
                    return r.unwrap_or_else(|_| Err(NodeError::Internal("consensus thread panicked".into())));
                }
                _ = shutdown.wait_for(|v| *v) => {}
            }
            let _ = stop_tx.send(());
            done_rx.await.unwrap_or_else(|_| Err(NodeError::Internal("consensus thread panicked".into())))
        })
    }
}

/// Runs p2p and consensus on a commonware tokio runtime until `stop` fires or the
/// application diverges.
fn run_network(p: BftProducer, app: Arc<App>, stop: tokio::sync::oneshot::Receiver<()>) -> Result<(), NodeError> {
    std::fs::create_dir_all(&p.config.storage_dir)?;
    let cfg = commonware_runtime::tokio::Config::new()
        .with_worker_threads(p.config.runtime_threads.max(1))
        .with_storage_directory(p.config.storage_dir.clone());
    let runner = commonware_runtime::tokio::Runner::new(cfg);
    runner.start(move |context| async move {
        let signer = ed25519::PrivateKey::decode(app.key.seed().to_vec())
            .map_err(|e| NodeError::Internal(format!("node key: {e}")))?;
        let ns = engine::namespace(app.chain_id());
        let handshake = Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: signer.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        );
        let me = app.key.public();
        let validator = app.genesis.validators.contains(&me);
        if !validator && !p.config.full_nodes.iter().any(|(k, _)| *k == me) {
            return Err(NodeError::Internal(format!(
                "node key {me} is neither a genesis validator nor listed under full_nodes in the network \
                 settings, so no peer would accept it"
            )));
        }
        let everyone: Vec<(PublicKey, SocketAddr)> =
            p.config.peers.iter().chain(&p.config.full_nodes).cloned().collect();
        let mut p2p_cfg = lookup::Config::local(
            handshake,
            &ns,
            p.config.p2p_listen,
            NZUsize!(everyone.len().max(1) + 1),
            wire::MESSAGE_BYTES_MAX,
            NZUsize!(4096),
        );
        p2p_cfg.peer_connection_cooldown = Duration::from_millis(200);
        let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_cfg);
        // Validators and full nodes alike track everyone: lookup talks only to tracked peers.
        let peers: Map<ed25519::PublicKey, commonware_p2p::Address> = Map::from_iter_dedup(
            everyone.iter().map(|(k, a)| (to_consensus_key(k), commonware_p2p::Address::from(*a))),
        );
        let _ = oracle.track(0, peers);
        let quota = Quota::per_second(NZU32!(CHANNEL_RATE_PER_SECOND));
        let channels = engine::Channels {
            votes: network.register(wire::CHANNEL_VOTES, quota),
            certs: network.register(wire::CHANNEL_CERTS, quota),
            resolver: network.register(wire::CHANNEL_RESOLVER, quota),
            blocks: network.register(wire::CHANNEL_BLOCKS, quota),
            txs: network.register(wire::CHANNEL_TXS, quota),
            blobs: network.register(wire::CHANNEL_BLOBS, quota),
        };
        let net = network.start();
        let full_nodes: Vec<ed25519::PublicKey> =
            p.config.full_nodes.iter().map(|(k, _)| to_consensus_key(k)).collect();
        let running = if validator {
            start_validator(context, app, &p, signer, full_nodes, oracle, channels)
        } else {
            let fcfg = engine::FullNodeConfig { me: signer.public_key(), full_nodes, timing: p.config.timing };
            engine::start_full_node(context.child("full_node"), app, fcfg, channels, p.stats.clone())
        }
        .map_err(|f| NodeError::Internal(f.0))?;
        let engine::Running { app: actor, consensus, blobs } = running;
        let r = tokio::select! {
            r = actor => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(f)) => Err(NodeError::Internal(f.0)),
                Err(e) => Err(NodeError::Internal(format!("consensus stopped: {e:?}"))),
            },
            _ = stop => Ok(()),
        };
        consensus.abort();
        blobs.resolver.abort();
        blobs.ticker.abort();
        net.abort();
        r
    })
}

/// Starts consensus and the application actor of a validator.
fn start_validator<S, R>(
    context: commonware_runtime::tokio::Context,
    app: Arc<App>,
    p: &BftProducer,
    signer: ed25519::PrivateKey,
    full_nodes: Vec<ed25519::PublicKey>,
    oracle: lookup::Oracle<ed25519::PublicKey>,
    channels: engine::Channels<S, R>,
) -> Result<engine::Running, actor::Fatal>
where
    S: commonware_p2p::Sender<PublicKey = ed25519::PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = ed25519::PublicKey>,
{
    let participants: Vec<ed25519::PublicKey> = app.genesis.validators.iter().map(to_consensus_key).collect();
    let ecfg = engine::EngineConfig {
        participants,
        signer,
        timing: p.config.timing,
        leader_timeout: Duration::from_millis(p.config.leader_timeout_ms),
        certification_timeout: Duration::from_millis(p.config.certification_timeout_ms),
        partition: "deed-simplex".into(),
        adversary: p.config.adversary,
        full_nodes,
    };
    engine::start(context.child("validator"), app, ecfg, oracle, channels, p.stats.clone())
}

/// The genesis of a local testnet: `validators` (node keys) produce blocks and are
/// staked as executors (their stake is what equivocation slashes), `funded` accounts
/// and the dev keys get [`crate::DEV_BALANCE`].
pub fn testnet_genesis(
    chain_id: &str,
    validators: &[PublicKey],
    funded: &[deed_types::Address],
    time_ms: u64,
) -> deed_types::Genesis {
    use deed_types::{GenesisAccount, GenesisExecutor, Keypair, Params};
    let mut accounts: Vec<GenesisAccount> =
        funded.iter().map(|a| GenesisAccount { address: *a, balance: crate::DEV_BALANCE }).collect();
    for name in crate::DEV_KEYS {
        accounts.push(GenesisAccount { address: Keypair::dev(name).address(), balance: crate::DEV_BALANCE });
    }
    for v in validators {
        accounts.push(GenesisAccount { address: v.address(), balance: crate::DEV_BALANCE });
    }
    accounts.sort_by_key(|a| a.address);
    accounts.dedup_by_key(|a| a.address);
    let mut vals = validators.to_vec();
    vals.sort();
    vals.dedup();
    deed_types::Genesis {
        chain_id: chain_id.into(),
        time_ms,
        accounts,
        executors: vals.iter().map(|k| GenesisExecutor { key: *k, stake: crate::DEV_EXECUTOR_STAKE }).collect(),
        validators: vals,
        params: Params::default(),
    }
}

//! One validator: simplex consensus plus the application [`Actor`], wired to p2p channels
//! and generic over the commonware runtime (tokio in a node, deterministic in the
//! simulation), so the same code runs in both. [`start_full_node`] wires a full node: the
//! same actor without consensus, following certified finalized blocks.

use super::actor::{Actor, Fatal, Stats, Timing, to_consensus_key};
use super::chain::to_digest;
use super::finality::Finality;
use crate::App;
use commonware_consensus::simplex::config::{Config, Floor, ForwardPolicy, SkipPolicy};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::{Engine, scheme::ed25519::Scheme};
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::{Sha256, Signer, ed25519};
use commonware_p2p::{Blocker, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage};
use commonware_utils::{NZDuration, NZU16, NZUsize, ordered::Set};
use deed_types::Hash32;
use rand_core::CryptoRng;
use std::sync::Arc;
use std::time::Duration;

/// The namespace every consensus signature is bound to (with the chain id).
pub fn namespace(chain_id: &str) -> Vec<u8> {
    format!("deed-simplex/{chain_id}").into_bytes()
}

/// Consensus settings of one validator.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The validator set (consensus identities).
    pub participants: Vec<ed25519::PublicKey>,
    /// This validator's signing key (the node key).
    pub signer: ed25519::PrivateKey,
    /// Block timing.
    pub timing: Timing,
    /// How long a view waits for its leader's proposal.
    pub leader_timeout: Duration,
    /// How long a view waits for a notarized proposal to be certified.
    pub certification_timeout: Duration,
    /// Storage partition of the consensus journal (unique per validator sharing a runtime).
    pub partition: String,
    /// Test instrumentation: propose invalid blocks.
    pub adversary: Option<super::actor::Adversary>,
    /// The full nodes (non-voting peers that get finalized blocks with certificates).
    pub full_nodes: Vec<ed25519::PublicKey>,
}

/// A running validator or full node: the application actor, consensus and blob replication.
pub struct Running {
    /// Ends with the actor: a [`Fatal`] divergence, or consensus stopping.
    pub app: Handle<Result<(), Fatal>>,
    /// Consensus (on a full node: the task that drops the consensus traffic it hears).
    pub consensus: Handle<()>,
    /// Blob replication.
    pub blobs: super::fetch::Running,
}

impl Running {
    /// Stops everything (a crash, as far as the rest of the network can tell).
    pub fn abort(&self) {
        self.app.abort();
        self.consensus.abort();
        self.blobs.resolver.abort();
        self.blobs.ticker.abort();
    }
}

/// A pair of p2p channel halves.
pub type Channel<S, R> = (S, R);

/// The six p2p channels a validator uses.
pub struct Channels<S, R> {
    /// Votes.
    pub votes: Channel<S, R>,
    /// Certificates.
    pub certs: Channel<S, R>,
    /// Certificate resolver.
    pub resolver: Channel<S, R>,
    /// Blocks.
    pub blocks: Channel<S, R>,
    /// Transaction gossip.
    pub txs: Channel<S, R>,
    /// Blob parts (the blob resolver).
    pub blobs: Channel<S, R>,
}

/// Starts consensus and the application actor.
pub fn start<E, B, S, R>(
    context: E,
    app: Arc<App>,
    cfg: EngineConfig,
    blocker: B,
    channels: Channels<S, R>,
    stats: Arc<std::sync::Mutex<Stats>>,
) -> Result<Running, Fatal>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
{
    let participants: Set<ed25519::PublicKey> = Set::from_iter_dedup(cfg.participants.iter().cloned());
    let ns = namespace(app.chain_id());
    let scheme =
        Scheme::signer(&ns, participants.clone(), cfg.signer.clone()).expect("the node key is one of the validators");
    let ordered: Vec<ed25519::PublicKey> = participants.iter().cloned().collect();
    let (mut actor, mailbox) = Actor::new(context.child("app"), app.clone(), cfg.timing, ordered, stats)?;
    actor.set_adversary(cfg.adversary);
    actor.set_full_nodes(cfg.full_nodes.clone());
    let engine_cfg = Config {
        scheme,
        elector: RoundRobin::<Sha256>::default(),
        blocker,
        automaton: mailbox.clone(),
        relay: mailbox.clone(),
        reporter: mailbox,
        track_historical_votes: false,
        strategy: Sequential,
        partition: cfg.partition.clone(),
        mailbox_size: NZUsize!(1024),
        epoch: Epoch::zero(),
        floor: Floor::Genesis(to_digest(Hash32::ZERO)),
        replay_buffer: NZUsize!(1 << 20),
        write_buffer: NZUsize!(1 << 20),
        page_cache: CacheRef::new(NZU16!(1024), NZUsize!(10)),
        leader_timeout: cfg.leader_timeout,
        certification_timeout: cfg.certification_timeout,
        timeout_retry: Duration::from_secs(10),
        view_retention: ViewDelta::new(10),
        skip: SkipPolicy::Disabled,
        fetch_timeout: NZDuration!(Duration::from_secs(1)),
        fetch_retry_delay: Duration::from_millis(100),
        forward: ForwardPolicy::Disabled,
    };
    let engine = Engine::new(context.child("engine"), engine_cfg);
    let Channels { votes, certs, resolver, blocks, txs, blobs } = channels;
    let corrupt = cfg.adversary == Some(super::actor::Adversary::CorruptBlobs);
    let holders = Set::from_iter_dedup(participants.iter().chain(&cfg.full_nodes).cloned());
    let blobs = super::fetch::start(context.child("blobs"), app, holders, cfg.signer.public_key(), corrupt, blobs);
    let consensus = engine.start(votes, certs, resolver);
    let app = context.child("app").spawn(move |_| actor.run(blocks, txs));
    Ok(Running { app, consensus, blobs })
}

/// Settings of a full node.
#[derive(Clone, Debug)]
pub struct FullNodeConfig {
    /// This node's identity (its node key; not a validator).
    pub me: ed25519::PublicKey,
    /// The full nodes, this one included (blob holders besides the validators).
    pub full_nodes: Vec<ed25519::PublicKey>,
    /// Timing (only the tick matters: a full node proposes nothing).
    pub timing: Timing,
}

/// Starts a full node: the application actor following finalized blocks whose
/// certificates verify against the genesis validators, and blob replication. It
/// registers the consensus channels too, and drops what arrives on them: validators
/// send votes and certificates to every connected peer, and a message on a channel a
/// peer has not registered ends the connection.
pub fn start_full_node<E, S, R>(
    context: E,
    app: Arc<App>,
    cfg: FullNodeConfig,
    channels: Channels<S, R>,
    stats: Arc<std::sync::Mutex<Stats>>,
) -> Result<Running, Fatal>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
{
    let validators: Vec<ed25519::PublicKey> = app.genesis.validators.iter().map(to_consensus_key).collect();
    if validators.contains(&cfg.me) {
        return Err(Fatal("this node key is a validator's; a validator cannot run as a full node".into()));
    }
    let finality = Finality::new(app.chain_id(), &app.genesis.validators);
    let (mut actor, _mailbox) = Actor::new(context.child("app"), app.clone(), cfg.timing, validators.clone(), stats)?;
    actor.follow(finality);
    let Channels { votes, certs, resolver, blocks, txs, blobs } = channels;
    let holders = Set::from_iter_dedup(validators.iter().chain(&cfg.full_nodes).cloned());
    let blobs = super::fetch::start(context.child("blobs"), app, holders, cfg.me, false, blobs);
    let (mut votes, mut certs, mut resolver) = (votes.1, certs.1, resolver.1);
    let consensus = context.child("consensus_sink").spawn(move |_| async move {
        loop {
            let r = tokio::select! {
                biased;
                r = votes.recv() => r.map(|_| ()),
                r = certs.recv() => r.map(|_| ()),
                r = resolver.recv() => r.map(|_| ()),
            };
            if r.is_err() {
                return;
            }
        }
    });
    let app = context.child("app").spawn(move |_| actor.run(blocks, txs));
    Ok(Running { app, consensus, blobs })
}

//! One validator: simplex consensus plus the application [`Actor`], wired to p2p channels
//! and generic over the commonware runtime (tokio in a node, deterministic in the
//! simulation), so the same code runs in both.

use super::actor::{Actor, Fatal, Stats, Timing};
use super::chain::to_digest;
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
}

/// A running validator: the application actor, consensus and blob replication.
pub struct Running {
    /// Ends with the actor: a [`Fatal`] divergence, or consensus stopping.
    pub app: Handle<Result<(), Fatal>>,
    /// Consensus.
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
    let blobs = super::fetch::start(context.child("blobs"), app, participants, cfg.signer.public_key(), corrupt, blobs);
    let consensus = engine.start(votes, certs, resolver);
    let app = context.child("app").spawn(move |_| actor.run(blocks, txs));
    Ok(Running { app, consensus, blobs })
}

//! The application actor simplex drives: it proposes blocks from the mempool, verifies
//! others' proposals by executing them with the ledger, relays blocks, serves and fetches
//! ancestors for catching up, gossips transactions, and commits finalized blocks. A
//! gossiped transaction that needs a blob this node lacks (a model to register, a model
//! or input to run) waits while the blob is fetched from peers, then is admitted.
//!
//! [`Mailbox`] is the consensus-facing side (automaton, relay and reporter in one);
//! [`Actor`] owns the unfinalized chain and is the only writer of the chain database
//! while it runs.
//!
//! The same actor runs a *full node* ([`Actor::follow`]): no consensus drives it; it
//! commits a block only when a validator sends it with a finalization certificate that
//! verifies against the genesis validators ([`super::finality`]), fetches and anchors
//! the blocks under it like a validator catching up, re-executes all of them, and
//! forwards the transactions submitted to it to the validators.

use super::chain::{Layered, digest_of, to_digest, to_hash};
use super::finality::Finality;
use super::wire::{ANCESTORS_LEN_MAX, GOSSIP_TXS_MAX, Wire};
use crate::App;
use commonware_actor::Feedback;
use commonware_consensus::simplex::types::{Activity, Context};
use commonware_consensus::simplex::{Plan, scheme::ed25519::Scheme};
use commonware_consensus::{Automaton, CertifiableAutomaton, Relay, Reporter, Viewable};
use commonware_cryptography::{ed25519, sha256::Digest};
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::Clock;
use commonware_utils::channel::{mpsc, oneshot};
use deed_ledger::{BlockEnv, Proposal, TxError, WriteSet};
use deed_types::{Block, BlockHeader, Hash32, PublicKey, SignedTx};
use rand_core::CryptoRng;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The consensus context of a proposal.
pub type Ctx = Context<Digest, ed25519::PublicKey>;

/// Most unfinalized blocks kept (proposals and fetched ancestors).
const BLOCKS_LEN_MAX: usize = 4_096;
/// Most transaction ids remembered as received by gossip (not sent back, not admitted twice).
const GOSSIPED_LEN_MAX: usize = 200_000;
/// How far in the future (by the local clock) a block's time may be.
const CLOCK_SKEW_MS_MAX: u64 = 5_000;
/// How long before a missing block is asked for again.
const REFETCH_MS: u64 = 500;
/// Most gossiped transactions waiting for blobs.
const PARKED_LEN_MAX: usize = 1_024;
/// Most finalization certificates a validator keeps for blocks it has not committed yet
/// (and most certified blocks a full node keeps waiting for their ancestors).
const CERTS_LEN_MAX: usize = 64;
/// How often a full node sends its pending transactions to the validators again (a
/// first send may have gone out before it was connected, or been refused for a gap).
const RESEND_MS: u64 = 1_000;
/// How long a full node goes without a certified block before it asks the validators for
/// their newest one (it may have missed the last announcements, or the chain stalled).
const ASK_FINALIZED_MS: u64 = 2_000;
/// Most state snapshot offers kept at once (one per peer is plenty).
const SNAPSHOTS_LEN_MAX: usize = 16;
/// How often a node far behind asks its peers for their newest state snapshot.
const SNAPSHOT_ASK_MS: u64 = 2_000;
/// How long a node far behind waits for snapshot offers before it re-executes the
/// blocks it missed one by one.
const SNAPSHOT_WAIT_MS: u64 = 1_000;

/// Timing of block production.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Least time between a block and its parent when transactions are pending.
    pub block_interval_ms: u64,
    /// Longest a leader waits for transactions before proposing an empty block (keep it
    /// below the leader timeout).
    pub idle_block_ms: u64,
    /// How often pending work (gossip, retries) is looked at.
    pub tick_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { block_interval_ms: 20, idle_block_ms: 1_000, tick_ms: 10 }
    }
}

/// Test instrumentation: a validator that proposes invalid blocks (the others must
/// reject them; consensus then skips the view), or serves wrong blob bytes (the others
/// must refuse them and avoid it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adversary {
    /// Adds a transaction whose signature does not verify.
    BadSignature,
    /// Adds a transfer of more than the sender has.
    Overdraft,
    /// Serves blob pieces with one byte flipped (headers stay honest, so the receiver
    /// learns the pieces' hashes and catches the lie piece by piece).
    CorruptBlobs,
}

/// What consensus asks of the application, and what it reports.
pub enum Message {
    /// Build a block on `context.parent`.
    Propose {
        /// The round, leader and parent.
        context: Ctx,
        /// Where the block's digest goes.
        response: oneshot::Sender<Digest>,
    },
    /// Check a proposal.
    Verify {
        /// The round, leader and parent.
        context: Ctx,
        /// The proposed block's digest.
        payload: Digest,
        /// The verdict.
        response: oneshot::Sender<bool>,
    },
    /// Send our proposal to the other validators.
    Broadcast {
        /// The block's digest.
        payload: Digest,
    },
    /// A block (and with it all its ancestors) is final.
    Finalized {
        /// The consensus view it was finalized in.
        view: u64,
        /// The block's digest.
        payload: Digest,
        /// The finalization certificate, encoded (what full nodes check).
        certificate: Vec<u8>,
    },
    /// A validator signed two conflicting votes.
    Fault {
        /// The culprit.
        validator: ed25519::PublicKey,
        /// Which kind of conflict.
        kind: &'static str,
        /// The view.
        view: u64,
        /// The two signed votes, when the ledger can judge them.
        evidence: Option<VotePair>,
    },
}

/// The consensus-facing handle of the [`Actor`]: automaton, relay and reporter.
#[derive(Clone)]
pub struct Mailbox {
    tx: mpsc::UnboundedSender<Message>,
    participants: Arc<Vec<ed25519::PublicKey>>,
    namespace: Arc<Vec<u8>>,
}

impl Mailbox {
    fn send(&self, m: Message) -> bool {
        self.tx.send(m).is_ok()
    }
}

impl Automaton for Mailbox {
    type Context = Ctx;
    type Digest = Digest;

    async fn propose(&mut self, context: Ctx) -> oneshot::Receiver<Digest> {
        let (response, rx) = oneshot::channel();
        self.send(Message::Propose { context, response });
        rx
    }

    async fn verify(&mut self, context: Ctx, payload: Digest) -> oneshot::Receiver<bool> {
        let (response, rx) = oneshot::channel();
        self.send(Message::Verify { context, payload, response });
        rx
    }
}

impl CertifiableAutomaton for Mailbox {}

impl Relay for Mailbox {
    type Digest = Digest;
    type PublicKey = ed25519::PublicKey;
    type Plan = Plan<ed25519::PublicKey>;

    fn broadcast(&mut self, payload: Digest, _plan: Self::Plan) -> Feedback {
        if self.send(Message::Broadcast { payload }) { Feedback::Ok } else { Feedback::Closed }
    }
}

/// Two conflicting signed votes: (message, signature) twice, the messages exactly as
/// signed (what `TxBody::Evidence` carries).
pub type VotePair = ((Vec<u8>, [u8; 64]), (Vec<u8>, [u8; 64]));

/// The signed message and signature of one encoded vote (a proposal followed by the
/// signer's index and its 64-byte ed25519 signature).
fn signed_vote(ns: &[u8], proposal: &[u8], encoded: &[u8]) -> Option<(Vec<u8>, [u8; 64])> {
    let sig: [u8; 64] = encoded.get(encoded.len().checked_sub(64)?..)?.try_into().ok()?;
    Some((commonware_utils::union_unique(ns, proposal), sig))
}

impl Reporter for Mailbox {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        use commonware_codec::{Encode, Read};
        use commonware_consensus::simplex::types::Attributable;
        use commonware_consensus::simplex::types::{Finalize, Notarize};
        let notarize_ns = [self.namespace.as_slice(), b"_NOTARIZE"].concat();
        let finalize_ns = [self.namespace.as_slice(), b"_FINALIZE"].concat();
        let (signer, kind, view, evidence) = match activity {
            Activity::Finalization(f) => {
                let m = Message::Finalized {
                    view: f.proposal.round.view().get(),
                    payload: f.proposal.payload,
                    certificate: super::finality::encode(&f),
                };
                return if self.send(m) { Feedback::Ok } else { Feedback::Closed };
            }
            Activity::ConflictingNotarize(c) => {
                let mut buf = c.encode();
                let pair = (|| {
                    let a = Notarize::<Scheme, Digest>::read_cfg(&mut buf, &()).ok()?;
                    let b = Notarize::<Scheme, Digest>::read_cfg(&mut buf, &()).ok()?;
                    let va = signed_vote(&notarize_ns, &a.proposal.encode(), &a.encode())?;
                    let vb = signed_vote(&notarize_ns, &b.proposal.encode(), &b.encode())?;
                    Some((va, vb))
                })();
                (c.signer(), "conflicting notarize", c.view().get(), pair)
            }
            Activity::ConflictingFinalize(c) => {
                let mut buf = c.encode();
                let pair = (|| {
                    let a = Finalize::<Scheme, Digest>::read_cfg(&mut buf, &()).ok()?;
                    let b = Finalize::<Scheme, Digest>::read_cfg(&mut buf, &()).ok()?;
                    let va = signed_vote(&finalize_ns, &a.proposal.encode(), &a.encode())?;
                    let vb = signed_vote(&finalize_ns, &b.proposal.encode(), &b.encode())?;
                    Some((va, vb))
                })();
                (c.signer(), "conflicting finalize", c.view().get(), pair)
            }
            Activity::NullifyFinalize(c) => (c.signer(), "nullify and finalize", c.view().get(), None),
            _ => return Feedback::Ok,
        };
        let Some(validator) = self.participants.get(signer.get() as usize).cloned() else { return Feedback::Ok };
        let m = Message::Fault { validator, kind, view, evidence };
        if self.send(m) { Feedback::Ok } else { Feedback::Closed }
    }
}

/// Converts a node key to its consensus identity (the same ed25519 key).
pub fn to_consensus_key(pk: &PublicKey) -> ed25519::PublicKey {
    use commonware_codec::DecodeExt;
    ed25519::PublicKey::decode(pk.0.to_vec()).expect("an ed25519 public key")
}

/// Converts a consensus identity to a node key.
pub fn from_consensus_key(pk: &ed25519::PublicKey) -> PublicKey {
    let mut b = [0u8; 32];
    b.copy_from_slice(pk.as_ref());
    PublicKey(b)
}

/// A block's execution on top of its parent: the state writes and, for our own
/// proposals, the transactions left out.
struct Executed {
    writes: WriteSet,
    rejected: Vec<(Hash32, TxError)>,
}

/// The finalized head this actor builds on.
#[derive(Clone, Copy, Debug)]
struct Head {
    height: u64,
    digest: Digest,
    time_ms: u64,
}

/// Why a chain could not be resolved.
enum Gap {
    /// This block is not here yet.
    Missing(Digest),
    /// The chain does not descend from our finalized head.
    Stale,
    /// A block reads blobs this node is fetching (a challenge's proof blobs).
    Blobs,
    /// The chain reaches down to an offered state snapshot's block: install it first.
    Snapshot(Digest),
}

/// Why a block cannot be executed.
enum ExecError {
    Gap(Gap),
    Invalid(String),
}

/// A fatal divergence: this node cannot follow the chain the network finalized.
#[derive(Debug)]
pub struct Fatal(pub String);

/// Counters for status and tests.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    /// Proposals this node built.
    pub proposed: u64,
    /// Proposals of others this node accepted.
    pub verified: u64,
    /// Proposals of others this node rejected, with the last reason.
    pub rejected: u64,
    /// The last rejection's reason.
    pub last_rejection: Option<String>,
    /// The last finalized view.
    pub finalized_view: u64,
    /// Full node: finalized blocks received whose certificate did not verify.
    pub certificates_rejected: u64,
    /// Equivocations seen: (validator, kind, view).
    pub faults: Vec<(PublicKey, String, u64)>,
    /// When each peer was last heard from (wall-clock ms).
    pub peers_seen: BTreeMap<PublicKey, u64>,
    /// The height of the state snapshot this node installed to catch up, if it did.
    pub snapshot_installed: Option<u64>,
}

/// The application actor.
pub struct Actor<E: Clock> {
    context: E,
    app: Arc<App>,
    me: PublicKey,
    timing: Timing,
    mailbox: mpsc::UnboundedReceiver<Message>,
    head: Head,
    blocks: BTreeMap<Digest, Arc<Block>>,
    executed: BTreeMap<Digest, Arc<Executed>>,
    proposals: Vec<(Ctx, oneshot::Sender<Digest>)>,
    verifies: Vec<(Ctx, Digest, oneshot::Sender<bool>)>,
    finalized: BTreeMap<u64, Digest>,
    requested: BTreeMap<Digest, SystemTime>,
    gossiped: HashSet<Hash32>,
    gossip_seq: u64,
    stats: Arc<std::sync::Mutex<Stats>>,
    adversary: Option<Adversary>,
    reported: HashSet<PublicKey>,
    /// Gossiped transactions waiting for blobs being fetched, in arrival order.
    parked: VecDeque<Parked>,
    /// [`crate::bft::fetch::BlobFetcher::ended`] when `parked` was last looked at.
    fetches_seen: u64,
    /// The genesis validators.
    validators: Vec<ed25519::PublicKey>,
    /// The full nodes, which get every finalized block with its certificate.
    full_nodes: Vec<ed25519::PublicKey>,
    /// Set on a full node: how it checks finalization certificates.
    finality: Option<Finality>,
    /// Certificates of finalized blocks not yet committed here, by view.
    certs: BTreeMap<u64, (Digest, Vec<u8>)>,
    /// Full node: when pending transactions were last sent to the validators.
    resent_at: SystemTime,
    /// Full node: when a certified block last arrived, or the validators were last asked.
    heard_final_at: SystemTime,
    /// Validator: the newest block it announced to the full nodes, with its certificate
    /// (what it answers [`Wire::GetFinalized`] with).
    last_final: Option<(Arc<Block>, Vec<u8>)>,
    /// State snapshots peers offered, by the digest of the block they are the state after.
    snapshots: BTreeMap<Digest, (Arc<Block>, deed_types::Cid)>,
    /// When this node last asked for snapshots.
    snapshot_asked: Option<SystemTime>,
}

/// A gossiped transaction waiting for blobs this node is fetching.
struct Parked {
    tx: SignedTx,
    blobs: Vec<deed_types::Cid>,
}

impl<E: Clock + CryptoRng> Actor<E> {
    /// A new actor for `app` (whose node key is this validator's) and its mailbox.
    pub fn new(
        context: E,
        app: Arc<App>,
        timing: Timing,
        participants: Vec<ed25519::PublicKey>,
        stats: Arc<std::sync::Mutex<Stats>>,
    ) -> Result<(Self, Mailbox), Fatal> {
        let namespace = super::engine::namespace(app.chain_id());
        let (tx, rx) = mpsc::unbounded_channel();
        let head = match app.db.head().map_err(|e| Fatal(e.to_string()))? {
            Some(h) => Head { height: h.height, digest: to_digest(h.hash()), time_ms: h.time_ms },
            None => Head { height: 0, digest: to_digest(Hash32::ZERO), time_ms: app.genesis.time_ms },
        };
        let me = app.key.public();
        Ok((
            Actor {
                context,
                app,
                me,
                timing,
                mailbox: rx,
                head,
                blocks: BTreeMap::new(),
                executed: BTreeMap::new(),
                proposals: Vec::new(),
                verifies: Vec::new(),
                finalized: BTreeMap::new(),
                requested: BTreeMap::new(),
                gossiped: HashSet::new(),
                gossip_seq: 0,
                stats,
                adversary: None,
                reported: HashSet::new(),
                parked: VecDeque::new(),
                fetches_seen: 0,
                validators: participants.clone(),
                full_nodes: Vec::new(),
                finality: None,
                certs: BTreeMap::new(),
                resent_at: SystemTime::UNIX_EPOCH,
                heard_final_at: SystemTime::UNIX_EPOCH,
                last_final: None,
                snapshots: BTreeMap::new(),
                snapshot_asked: None,
            },
            Mailbox { tx, participants: Arc::new(participants), namespace: Arc::new(namespace) },
        ))
    }

    /// Makes this validator propose invalid blocks (tests only).
    pub fn set_adversary(&mut self, a: Option<Adversary>) {
        self.adversary = a;
    }

    /// The full nodes this validator sends finalized blocks (with certificates) to.
    pub fn set_full_nodes(&mut self, full_nodes: Vec<ed25519::PublicKey>) {
        self.full_nodes = full_nodes;
    }

    /// Makes this actor a full node: consensus does not drive it (its mailbox is not
    /// read); it commits blocks whose finalization `finality` verifies.
    pub fn follow(&mut self, finality: Finality) {
        self.finality = Some(finality);
    }

    /// The other validators (the recipients of proposals and transaction gossip).
    fn other_validators(&self) -> Vec<ed25519::PublicKey> {
        let me = to_consensus_key(&self.me);
        self.validators.iter().filter(|v| **v != me).cloned().collect()
    }

    fn now_ms(&self) -> u64 {
        self.context.current().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    /// Runs until the mailbox closes (consensus stopped) or the node diverges.
    pub async fn run(
        mut self,
        (mut block_tx, mut block_rx): (
            impl Sender<PublicKey = ed25519::PublicKey>,
            impl Receiver<PublicKey = ed25519::PublicKey>,
        ),
        (mut gossip_tx, mut gossip_rx): (
            impl Sender<PublicKey = ed25519::PublicKey>,
            impl Receiver<PublicKey = ed25519::PublicKey>,
        ),
    ) -> Result<(), Fatal> {
        let tick = Duration::from_millis(self.timing.tick_ms);
        let app = self.app.clone();
        let mut fresh_txs = true;
        let mut next_tick = self.context.current() + tick;
        loop {
            // `biased`: a fixed polling order, so the deterministic runtime replays a seed
            // exactly (tokio's default picks a random branch first). The tick comes first
            // so a flood of messages cannot starve retries and gossip.
            tokio::select! {
                biased;
                _ = self.context.sleep_until(next_tick) => {
                    next_tick = self.context.current() + tick;
                    if std::mem::take(&mut fresh_txs) {
                        self.gossip(&mut gossip_tx);
                    }
                    if self.finality.is_some() {
                        self.resend(&mut gossip_tx);
                        self.ask_finalized(&mut block_tx);
                    }
                    self.unpark();
                    self.retry(&mut block_tx)?;
                }
                m = self.mailbox.recv(), if self.finality.is_none() => {
                    let Some(m) = m else { return Ok(()) };
                    self.handle(m, &mut block_tx)?;
                }
                m = block_rx.recv() => {
                    let Ok((peer, bytes)) = m else { return Ok(()) };
                    if let Some(w) = Wire::decode(bytes.as_ref()) {
                        self.on_wire(peer, w, &mut block_tx, &mut gossip_tx)?;
                    }
                }
                m = gossip_rx.recv() => {
                    let Ok((peer, bytes)) = m else { return Ok(()) };
                    if let Some(w) = Wire::decode(bytes.as_ref()) {
                        self.on_wire(peer, w, &mut block_tx, &mut gossip_tx)?;
                    }
                }
                _ = app.tx_notify.notified() => {
                    fresh_txs = true;
                }
            }
        }
    }

    fn handle(&mut self, m: Message, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) -> Result<(), Fatal> {
        match m {
            Message::Propose { context, response } => {
                self.proposals.push((context, response));
                self.retry_proposals(net);
            }
            Message::Verify { context, payload, response } => {
                self.verifies.push((context, payload, response));
                self.retry_verifies(net);
            }
            Message::Broadcast { payload } => {
                let to = self.other_validators();
                if let Some(b) = self.blocks.get(&payload)
                    && !to.is_empty()
                {
                    let _ = net.send(Recipients::Some(to), Wire::Block(Box::new((**b).clone())).encode(), true);
                }
            }
            Message::Finalized { view, payload, certificate } => {
                self.stats.lock().unwrap().finalized_view = view;
                // Kept until the block commits: stored as its finality evidence (served by
                // the API to clients) and sent to the full nodes.
                self.certs.insert(view, (payload, certificate));
                while self.certs.len() > CERTS_LEN_MAX {
                    self.certs.pop_first();
                }
                self.finalized.insert(view, payload);
                self.try_finalize(net)?;
            }
            Message::Fault { validator, kind, view, evidence } => {
                let v = from_consensus_key(&validator);
                tracing::warn!(validator = %v, kind, view, "equivocation detected");
                self.stats.lock().unwrap().faults.push((v, kind.to_string(), view));
                if let Some(((vote_a, sig_a), (vote_b, sig_b))) = evidence
                    && self.reported.insert(v)
                {
                    self.submit_evidence(v, vote_a, sig_a, vote_b, sig_b);
                }
            }
        }
        Ok(())
    }

    fn on_wire(
        &mut self,
        peer: ed25519::PublicKey,
        w: Wire,
        net: &mut impl Sender<PublicKey = ed25519::PublicKey>,
        gossip: &mut impl Sender<PublicKey = ed25519::PublicKey>,
    ) -> Result<(), Fatal> {
        let now = self.now_ms();
        self.stats.lock().unwrap().peers_seen.insert(from_consensus_key(&peer), now);
        match w {
            Wire::Block(b) => {
                // Proposals come from validators, and only validators vote on them (a full
                // node takes blocks only with a certificate, or anchored under one).
                if b.header.height > self.head.height && self.validators.contains(&peer) && self.finality.is_none() {
                    self.insert_block(*b);
                    self.retry(net)?;
                }
            }
            Wire::Finalized { block, certificate } => {
                let Some(finality) = &self.finality else { return Ok(()) };
                let d = digest_of(&block);
                if block.header.height <= self.head.height || self.finalized.values().any(|f| *f == d) {
                    return Ok(());
                }
                match finality.check(&mut self.context, &block, &certificate) {
                    Ok(view) => {
                        self.heard_final_at = self.context.current();
                        self.stats.lock().unwrap().finalized_view = view;
                        self.blocks.insert(d, Arc::new(*block));
                        self.finalized.insert(view, d);
                        self.certs.insert(view, (d, certificate));
                        while self.certs.len() > CERTS_LEN_MAX {
                            self.certs.pop_first();
                        }
                        // Only the newest matters (the rest is anchored under it); bounded.
                        while self.finalized.len() > CERTS_LEN_MAX {
                            self.finalized.pop_first();
                        }
                        self.try_finalize(net)?;
                    }
                    Err(why) => {
                        let from = from_consensus_key(&peer);
                        tracing::warn!(height = block.header.height, %from, "finalized block refused: {why}");
                        let mut st = self.stats.lock().unwrap();
                        st.certificates_rejected += 1;
                        st.last_rejection = Some(why);
                    }
                }
            }
            Wire::GetFinalized => {
                if let Some((block, certificate)) = &self.last_final {
                    let m = Wire::Finalized { block: Box::new((**block).clone()), certificate: certificate.clone() };
                    let _ = net.send(Recipients::One(peer), m.encode(), false);
                }
            }
            Wire::GetAncestors { digest, height, count } => {
                let out = self.ancestors(to_digest(digest), height, count.min(ANCESTORS_LEN_MAX));
                if !out.is_empty() {
                    let _ = net.send(Recipients::One(peer), Wire::Ancestors(out).encode(), false);
                }
            }
            Wire::Ancestors(list) => {
                // Anchored: the first block is one we asked for, each next one is the
                // parent of the one before. Anything else is dropped.
                let Some(first) = list.first() else { return Ok(()) };
                if !self.requested.contains_key(&digest_of(first)) {
                    return Ok(());
                }
                let mut expect = digest_of(first);
                for b in list {
                    if digest_of(&b) != expect || b.header.height <= self.head.height {
                        break;
                    }
                    expect = to_digest(b.header.parent);
                    self.requested.remove(&digest_of(&b));
                    self.insert_block(b);
                }
                self.retry(net)?;
            }
            Wire::GetSnapshot => {
                if let Ok(Some((h, cid))) = self.app.db.latest_snapshot()
                    && self.app.store.has(&cid)
                    && let Ok(Some(b)) = self.app.db.block(h)
                {
                    let _ = net.send(Recipients::One(peer), Wire::Snapshot { block: Box::new(b), cid }.encode(), false);
                }
            }
            Wire::Snapshot { block, cid } => {
                // Only when asked, and kept as an offer: it is installed only if the
                // finalized chain, walked down from its tip, reaches this very block.
                if self.snapshot_asked.is_some()
                    && block.header.height > self.head.height
                    && self.snapshots.len() < SNAPSHOTS_LEN_MAX
                {
                    self.snapshots.insert(digest_of(&block), (Arc::new(*block), cid));
                    self.retry(net)?;
                }
            }
            Wire::Txs(txs) => {
                let _ = gossip;
                let fresh: Vec<SignedTx> = txs.into_iter().filter(|t| self.gossiped.insert(t.hash())).collect();
                let ready = self.park_missing(fresh);
                self.admit_gossiped(ready);
            }
        }
        Ok(())
    }

    fn admit_gossiped(&mut self, txs: Vec<SignedTx>) {
        if txs.is_empty() {
            return;
        }
        let hashes: Vec<Hash32> = txs.iter().map(SignedTx::hash).collect();
        for (h, r) in hashes.iter().zip(self.app.admit_relayed(txs)) {
            if let Err(e) = r {
                tracing::trace!("gossiped transaction not admitted: {e}");
                // Forgotten, so a resend (a full node's, after an earlier gap) is looked at again.
                self.gossiped.remove(h);
            }
        }
    }

    /// Parks gossiped transactions that need blobs this node lacks (starting their
    /// fetches), and those behind a parked one from the same sender (nonce order);
    /// returns the rest, ready for admission.
    fn park_missing(&mut self, txs: Vec<SignedTx>) -> Vec<SignedTx> {
        let mut ready = Vec::with_capacity(txs.len());
        for tx in txs {
            let missing: Vec<(deed_types::Cid, u64)> = super::fetch::blobs_needed(&self.app, &tx)
                .into_iter()
                .filter(|(c, _)| !self.app.store.has(c))
                .collect();
            let sender = tx.sender();
            let queued = self.parked.iter().any(|p| p.tx.sender() == sender);
            if missing.is_empty() && !queued {
                ready.push(tx);
                continue;
            }
            if self.parked.len() >= PARKED_LEN_MAX {
                tracing::debug!(tx = %tx.hash(), "gossiped transaction dropped: too many wait for blobs");
                continue;
            }
            // Fetch only for transactions someone actually signed.
            if !missing.is_empty() && !deed_ledger::bad_signatures(std::slice::from_ref(&tx)).is_empty() {
                continue;
            }
            let mut blobs = Vec::with_capacity(missing.len());
            let mut refused = None;
            for (c, max) in missing {
                match self.app.fetcher.start(&self.app.store, &c, max) {
                    Ok(true) => {} // arrived meanwhile
                    Ok(false) => blobs.push(c),
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = refused {
                tracing::debug!(tx = %tx.hash(), "gossiped transaction not admitted: {e}");
                continue;
            }
            if blobs.is_empty() && !queued {
                ready.push(tx);
                continue;
            }
            self.parked.push_back(Parked { tx, blobs });
        }
        ready
    }

    /// Admits parked transactions whose blobs have arrived, drops those whose fetch
    /// failed; looks only when a fetch has ended since the last time.
    fn unpark(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let ended = self.app.fetcher.ended();
        if ended == self.fetches_seen {
            return;
        }
        self.fetches_seen = ended;
        use super::fetch::FetchStatus;
        let mut ready = Vec::new();
        let mut waiting: HashSet<deed_types::Address> = HashSet::new();
        for p in std::mem::take(&mut self.parked) {
            let sender = p.tx.sender();
            if waiting.contains(&sender) {
                self.parked.push_back(p);
                continue;
            }
            let mut pending = false;
            let mut failed = None;
            for c in &p.blobs {
                match self.app.fetcher.status(&self.app.store, c) {
                    FetchStatus::Present => {}
                    FetchStatus::Fetching => pending = true,
                    FetchStatus::Failed(e) => failed = Some(e.to_string()),
                    FetchStatus::Unknown => failed = Some(format!("blob {c} is neither here nor being fetched")),
                }
            }
            if let Some(why) = failed {
                tracing::debug!(tx = %p.tx.hash(), "gossiped transaction dropped: {why}");
                continue;
            }
            if pending {
                waiting.insert(sender);
                self.parked.push_back(p);
                continue;
            }
            // What has arrived may name more (a bundle's weights, a challenge's
            // producer blobs): another round of fetches, or ready.
            match self.fetch_missing(&p.tx) {
                Ok(more) if more.is_empty() => ready.push(p.tx),
                Ok(more) => {
                    waiting.insert(sender);
                    self.parked.push_back(Parked { tx: p.tx, blobs: more });
                }
                Err(e) => tracing::debug!(tx = %p.tx.hash(), "gossiped transaction dropped: {e}"),
            }
        }
        self.admit_gossiped(ready);
    }

    /// Starts fetching the blobs `tx` needs that are neither here nor on their way;
    /// returns those still to arrive.
    fn fetch_missing(&self, tx: &SignedTx) -> Result<Vec<deed_types::Cid>, String> {
        let mut blobs = Vec::new();
        for (c, max) in super::fetch::blobs_needed(&self.app, tx) {
            if self.app.store.has(&c) {
                continue;
            }
            match self.app.fetcher.start(&self.app.store, &c, max) {
                Ok(true) => {}
                Ok(false) => blobs.push(c),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(blobs)
    }

    fn insert_block(&mut self, b: Block) {
        if self.blocks.len() >= BLOCKS_LEN_MAX {
            return;
        }
        let d = digest_of(&b);
        self.blocks.entry(d).or_insert_with(|| Arc::new(b));
    }

    /// The block `digest` and up to `count - 1` ancestors, newest first, from memory or
    /// the chain database.
    fn ancestors(&self, digest: Digest, height: Option<u64>, count: u32) -> Vec<Block> {
        let mut out: Vec<Block> = Vec::new();
        let mut want = digest;
        let mut h = height;
        if h.is_none() && !self.blocks.contains_key(&want) {
            // Search the recent finalized chain.
            let top = self.head.height;
            let mut x = top;
            while x > 0 && top - x < 4_096 {
                if let Ok(Some(b)) = self.app.db.block(x)
                    && digest_of(&b) == want
                {
                    h = Some(x);
                    break;
                }
                x -= 1;
            }
        }
        let mut bytes = 0usize;
        while (out.len() as u32) < count && want != to_digest(Hash32::ZERO) {
            let b = if let Some(b) = self.blocks.get(&want) {
                (**b).clone()
            } else if let Some(x) = h.filter(|x| *x <= self.head.height) {
                match self.app.db.block(x) {
                    Ok(Some(b)) if digest_of(&b) == want => b,
                    _ => break,
                }
            } else {
                break;
            };
            bytes += borsh::to_vec(&b).map(|v| v.len()).unwrap_or(0);
            if bytes > (super::wire::MESSAGE_BYTES_MAX as usize) / 2 && !out.is_empty() {
                break;
            }
            want = to_digest(b.header.parent);
            h = b.header.height.checked_sub(1);
            out.push(b);
        }
        out
    }

    fn request(&mut self, d: Digest, height: Option<u64>, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) {
        let now = self.context.current();
        if let Some(t) = self.requested.get(&d)
            && now.duration_since(*t).unwrap_or_default() < Duration::from_millis(REFETCH_MS)
        {
            return;
        }
        self.requested.insert(d, now);
        let msg = Wire::GetAncestors { digest: to_hash(&d), height, count: ANCESTORS_LEN_MAX };
        let _ = net.send(Recipients::All, msg.encode(), false);
    }

    /// The unfinalized blocks from the head (exclusive) to `tip` (inclusive), oldest first.
    fn chain_to(&self, tip: Digest) -> Result<Vec<Digest>, Gap> {
        let mut out = Vec::new();
        let mut d = tip;
        while d != self.head.digest {
            if self.snapshots.contains_key(&d) {
                return Err(Gap::Snapshot(d));
            }
            let Some(b) = self.blocks.get(&d) else { return Err(Gap::Missing(d)) };
            if b.header.height <= self.head.height {
                return Err(Gap::Stale);
            }
            out.push(d);
            d = to_digest(b.header.parent);
        }
        out.reverse();
        Ok(out)
    }

    /// Merged writes of `chain` (all executed), oldest first.
    fn merged(&self, chain: &[Digest]) -> WriteSet {
        let mut w = WriteSet::default();
        for d in chain {
            w.extend(self.executed[d].writes.clone());
        }
        w
    }

    /// The parent header fields of a block built on `parent` (height, hash, time).
    fn parent_info(&self, parent: &Digest) -> (u64, u64) {
        if *parent == self.head.digest {
            (self.head.height, self.head.time_ms)
        } else {
            let b = &self.blocks[parent];
            (b.header.height, b.header.time_ms)
        }
    }

    /// Executes `tip` and any unexecuted ancestors.
    fn execute(&mut self, tip: Digest) -> Result<(), ExecError> {
        let chain = self.chain_to(tip).map_err(ExecError::Gap)?;
        let snap = self.app.db.snapshot().map_err(|e| ExecError::Invalid(format!("storage: {e}")))?;
        for (i, d) in chain.iter().enumerate() {
            if self.executed.contains_key(d) {
                continue;
            }
            let block = self.blocks[d].clone();
            let parent = to_digest(block.header.parent);
            let (ph, pt) = self.parent_info(&parent);
            if block.header.height != ph + 1 {
                return Err(ExecError::Invalid(format!("height {} on a parent at {ph}", block.header.height)));
            }
            if block.header.time_ms <= pt {
                return Err(ExecError::Invalid("block time is not after its parent's".into()));
            }
            let writes = self.merged(&chain[..i]);
            let state = Layered { base: &snap, writes: &writes };
            let checked = self.app.sigs_checked(&block.txs);
            let blobs = super::fetch::NotingBlobs::new(&self.app.store);
            let outcome = match deed_ledger::apply_block_checked(&state, &block, &blobs, &checked) {
                Ok(o) => o,
                Err(e) => {
                    let absent = blobs.absent();
                    if absent.is_empty() {
                        return Err(ExecError::Invalid(e.to_string()));
                    }
                    // Not refused for what this node lacks: fetch it, then execute again.
                    for c in &absent {
                        if let Err(f) = self.app.fetcher.start(&self.app.store, c, self.app.config.model_bytes_max) {
                            tracing::warn!(height = block.header.height, "block waits for blob {c}: {f}");
                        }
                    }
                    tracing::debug!(height = block.header.height, ?absent, "block waits for blobs");
                    return Err(ExecError::Gap(Gap::Blobs));
                }
            };
            self.executed.insert(*d, Arc::new(Executed { writes: outcome.writes, rejected: Vec::new() }));
        }
        Ok(())
    }

    fn retry(&mut self, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) -> Result<(), Fatal> {
        self.try_finalize(net)?;
        self.retry_verifies(net);
        self.retry_proposals(net);
        Ok(())
    }

    fn retry_verifies(&mut self, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) {
        let pending = std::mem::take(&mut self.verifies);
        for (context, payload, response) in pending {
            if response.is_closed() {
                continue;
            }
            match self.verify(&context, payload) {
                Ok(v) => {
                    let _ = response.send(v);
                }
                Err(Gap::Missing(d)) => {
                    let hint = self.blocks.get(&payload).map(|b| b.header.height);
                    self.request(d, if d == payload { None } else { hint.map(|h| h - 1) }, net);
                    self.verifies.push((context, payload, response));
                }
                Err(Gap::Blobs | Gap::Snapshot(_)) => self.verifies.push((context, payload, response)),
                Err(Gap::Stale) => {
                    let _ = response.send(false);
                }
            }
        }
    }

    /// The verdict on a proposal, or the gap that keeps us from giving one yet.
    fn verify(&mut self, context: &Ctx, payload: Digest) -> Result<bool, Gap> {
        let Some(block) = self.blocks.get(&payload).cloned() else { return Err(Gap::Missing(payload)) };
        let reject = |s: &mut Self, why: String| {
            tracing::warn!(height = block.header.height, proposer = %block.header.proposer, "rejected proposal: {why}");
            let mut st = s.stats.lock().unwrap();
            st.rejected += 1;
            st.last_rejection = Some(why);
            Ok(false)
        };
        if to_digest(block.header.parent) != context.parent.1 {
            return reject(self, "the block's parent is not the consensus parent".into());
        }
        if block.header.proposer != from_consensus_key(&context.leader) {
            return reject(self, "the block's proposer is not the round's leader".into());
        }
        if block.header.time_ms > self.now_ms() + CLOCK_SKEW_MS_MAX {
            return reject(self, "the block's time is too far in the future".into());
        }
        match self.execute(payload) {
            Ok(()) => {
                self.stats.lock().unwrap().verified += 1;
                Ok(true)
            }
            Err(ExecError::Gap(g)) => Err(g),
            Err(ExecError::Invalid(why)) => reject(self, why),
        }
    }

    fn retry_proposals(&mut self, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) {
        let pending = std::mem::take(&mut self.proposals);
        for (context, response) in pending {
            if response.is_closed() {
                continue;
            }
            match self.propose(&context) {
                Ok(Some(d)) => {
                    let _ = response.send(d);
                }
                Ok(None) => self.proposals.push((context, response)),
                Err(Gap::Missing(d)) => {
                    self.request(d, None, net);
                    self.proposals.push((context, response));
                }
                Err(Gap::Blobs | Gap::Snapshot(_)) => self.proposals.push((context, response)),
                Err(Gap::Stale) => {}
            }
        }
    }

    /// Builds a block on the context's parent, or `None` to wait (nothing pending and
    /// the idle time not reached, or too soon after the parent).
    fn propose(&mut self, context: &Ctx) -> Result<Option<Digest>, Gap> {
        let parent = context.parent.1;
        let chain = self.chain_to(parent)?;
        if let Err(e) = self.execute(parent) {
            return match e {
                ExecError::Gap(g) => Err(g),
                ExecError::Invalid(_) => Err(Gap::Stale),
            };
        }
        let (ph, pt) = self.parent_info(&parent);
        let now = self.now_ms();
        let in_chain: HashSet<Hash32> =
            chain.iter().flat_map(|d| self.blocks[d].txs.iter().map(|t| t.hash())).collect();
        let txs: Vec<SignedTx> = self
            .app
            .pending_txs(self.app.genesis.params.block_txs_max as usize + in_chain.len())
            .into_iter()
            .filter(|t| !in_chain.contains(&t.hash()))
            .collect();
        let due = if txs.is_empty() { pt + self.timing.idle_block_ms } else { pt + self.timing.block_interval_ms };
        if now < due {
            return Ok(None);
        }
        let time_ms = now.max(pt + 1);
        let writes = self.merged(&chain);
        let snap = match self.app.db.snapshot() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("storage: {e}");
                return Ok(None);
            }
        };
        let state = Layered { base: &snap, writes: &writes };
        let env = BlockEnv { chain_id: self.app.chain_id().to_string(), height: ph + 1, time_ms, proposer: self.me };
        // Mempool transactions: their signatures were verified when admitted.
        let checked = vec![true; txs.len()];
        let mut p = deed_ledger::propose_checked(&state, &env, txs, &crate::app::StoreBlobs(&self.app.store), &checked);
        if let Some(a) = self.adversary.filter(|a| matches!(a, Adversary::BadSignature | Adversary::Overdraft)) {
            let nonce = deed_ledger::query::account(&state, &self.me.address()).nonce;
            let amount = if a == Adversary::Overdraft { u128::MAX / 2 } else { 1 };
            let tx = deed_types::Tx {
                chain_id: env.chain_id.clone(),
                sender: self.me,
                nonce,
                fee: self.app.genesis.params.min_tx_fee,
                body: deed_types::TxBody::Transfer { to: deed_types::Address([7; 20]), amount },
            };
            let mut stx = tx.sign(&self.app.key);
            if a == Adversary::BadSignature {
                stx.signature.0[0] ^= 1;
            }
            p.included.push(stx);
        }
        let header = BlockHeader {
            chain_id: env.chain_id,
            height: env.height,
            parent: to_hash(&parent),
            time_ms,
            tx_root: Block::tx_root(&p.included),
            state_root: p.state_root,
            proposer: self.me,
        };
        let block = Block::seal(header, p.included, &self.app.key);
        let d = digest_of(&block);
        self.executed.insert(d, Arc::new(Executed { writes: p.writes, rejected: p.rejected }));
        self.blocks.insert(d, Arc::new(block));
        self.stats.lock().unwrap().proposed += 1;
        Ok(Some(d))
    }

    /// Commits every block up to the newest finalized one we can reach.
    fn try_finalize(&mut self, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) -> Result<(), Fatal> {
        let Some((&view, &tip)) = self.finalized.iter().next_back() else { return Ok(()) };
        if tip == self.head.digest {
            self.finalized.clear();
            return Ok(());
        }
        let chain = match self.chain_to(tip) {
            Ok(c) if self.await_snapshot(tip, c.len(), net) => return Ok(()),
            Ok(c) => c,
            Err(Gap::Missing(d)) => {
                let hint = self.blocks.values().find(|b| to_digest(b.header.parent) == d).map(|b| b.header.height - 1);
                self.request(d, hint, net);
                self.maybe_ask_snapshot(tip, net);
                return Ok(());
            }
            Err(Gap::Snapshot(d)) => return self.install_snapshot(d),
            Err(Gap::Blobs) => return Ok(()), // chain_to never says so
            Err(Gap::Stale) => {
                self.certs.retain(|v, _| *v > view);
                // Finalized at or below our head: it must be a block we already committed.
                let b = self.blocks.get(&tip).cloned();
                let ours = b.as_ref().and_then(|b| self.app.db.block(b.header.height).ok().flatten());
                match (b, ours) {
                    (Some(b), Some(o)) if digest_of(&o) != tip => {
                        return Err(self.fatal(format!(
                            "SAFETY VIOLATION: the network finalized block {} at height {} but this node \
                             committed {} there",
                            b.header.hash(),
                            b.header.height,
                            o.header.hash()
                        )));
                    }
                    _ => {
                        self.finalized.retain(|v, _| *v > view);
                        return Ok(());
                    }
                }
            }
        };
        // The tip's certificate is its finality evidence and its ancestors' (stored before
        // they commit, so a client never sees a committed head without it).
        if let (Some((_, cert)), Some(b)) = (self.certs.get(&view).filter(|(d, _)| *d == tip), self.blocks.get(&tip))
            && let Err(e) = self.app.db.set_finalization(b.header.height, cert)
        {
            tracing::warn!(height = b.header.height, "finalization certificate not stored: {e}");
        }
        for d in chain {
            if let Err(e) = self.execute(d) {
                let b = &self.blocks[&d];
                let why = match e {
                    // Retried at the next tick, once the fetches end.
                    ExecError::Gap(Gap::Blobs) => return Ok(()),
                    ExecError::Invalid(w) => w,
                    ExecError::Gap(_) => "a gap in the chain".into(),
                };
                return Err(self.fatal(format!(
                    "STATE DIVERGENCE: finalized block {} at height {} does not execute on this node's \
                     state: {why}. This node stops rather than follow a chain it cannot verify.",
                    b.header.hash(),
                    b.header.height
                )));
            }
            let block = self.blocks[&d].clone();
            let ex = self.executed[&d].clone();
            let proposal = Proposal {
                included: block.txs.clone(),
                rejected: ex.rejected.iter().map(|(h, e)| (*h, e.clone())).collect(),
                writes: ex.writes.clone(),
                state_root: block.header.state_root,
            };
            self.app.finalize((*block).clone(), &proposal).map_err(|e| self.fatal(format!("commit failed: {e}")))?;
            let root = self.app.db.state_root().map_err(|e| self.fatal(format!("storage: {e}")))?;
            if root != block.header.state_root {
                return Err(self.fatal(format!(
                    "STATE ROOT MISMATCH at height {}: block says {}, this node computed {}",
                    block.header.height, block.header.state_root, root
                )));
            }
            self.head = Head { height: block.header.height, digest: d, time_ms: block.header.time_ms };
            tracing::debug!(height = self.head.height, txs = block.txs.len(), "finalized");
            let interval = self.app.config.snapshot_interval;
            if interval > 0 && self.head.height.is_multiple_of(interval) {
                self.write_snapshot(self.head.height, root);
            }
        }
        let h = self.head.height;
        self.snapshots.retain(|_, (b, _)| b.header.height > h);
        self.finalized.retain(|v, _| *v > view);
        self.announce(view, tip, net);
        let h = self.head.height;
        self.blocks.retain(|_, b| b.header.height > h);
        let blocks = &self.blocks;
        self.executed.retain(|d, _| blocks.contains_key(d));
        self.requested.retain(|d, _| !blocks.contains_key(d));
        Ok(())
    }

    /// Sends the block just committed at `tip`, finalized in `view`, with its
    /// certificate to the full nodes (a validator's duty; only the newest committed block
    /// goes: full nodes anchor the ones under it by hash).
    fn announce(&mut self, view: u64, tip: Digest, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) {
        let cert = self.certs.get(&view).filter(|(d, _)| *d == tip).map(|(_, c)| c.clone());
        self.certs.retain(|v, _| *v > view);
        let (Some(certificate), Some(block)) = (cert, self.blocks.get(&tip).cloned()) else { return };
        if self.full_nodes.is_empty() {
            return;
        }
        let m = Wire::Finalized { block: Box::new((*block).clone()), certificate: certificate.clone() };
        let _ = net.send(Recipients::Some(self.full_nodes.clone()), m.encode(), false);
        self.last_final = Some((block, certificate));
    }

    /// Full node: asks the validators for their newest certified block when none came for
    /// a while (a full node just started, or one that missed announcements, learns the
    /// chain's head even while finality is stalled).
    fn ask_finalized(&mut self, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) {
        let now = self.context.current();
        if now.duration_since(self.heard_final_at).unwrap_or_default() < Duration::from_millis(ASK_FINALIZED_MS) {
            return;
        }
        self.heard_final_at = now;
        let to = self.other_validators();
        if !to.is_empty() {
            let _ = net.send(Recipients::Some(to), Wire::GetFinalized.encode(), false);
        }
    }

    /// Full node: sends the transactions still pending here to the validators again.
    fn resend(&mut self, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) {
        let now = self.context.current();
        if now.duration_since(self.resent_at).unwrap_or_default() < Duration::from_millis(RESEND_MS) {
            return;
        }
        self.resent_at = now;
        let txs = self.app.pending_txs(GOSSIP_TXS_MAX);
        let to = self.other_validators();
        if !txs.is_empty() && !to.is_empty() {
            let _ = net.send(Recipients::Some(to), Wire::Txs(txs).encode(), false);
        }
    }

    /// Asks peers for their newest state snapshot when the finalized `tip` is more than a
    /// snapshot interval above this node's head (at most every [`SNAPSHOT_ASK_MS`]).
    fn maybe_ask_snapshot(&mut self, tip: Digest, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) {
        let interval = self.app.config.snapshot_interval;
        let Some(t) = self.blocks.get(&tip) else { return };
        if interval == 0 || t.header.height <= self.head.height + interval {
            return;
        }
        if self.since_snapshot_asked().is_some_and(|d| d < Duration::from_millis(SNAPSHOT_ASK_MS)) {
            return;
        }
        self.snapshot_asked = Some(self.context.current());
        tracing::info!(head = self.head.height, tip = t.header.height, "far behind: asking peers for a state snapshot");
        let _ = net.send(Recipients::All, Wire::GetSnapshot.encode(), false);
    }

    fn since_snapshot_asked(&self) -> Option<Duration> {
        self.snapshot_asked.map(|a| self.context.current().duration_since(a).unwrap_or_default())
    }

    /// Whether to hold off re-executing a reachable chain up to `tip`: it is longer than
    /// a snapshot interval, so peers are asked for a snapshot first and their offers get
    /// [`SNAPSHOT_WAIT_MS`] to arrive (an offer on this chain stops `chain_to` at it).
    fn await_snapshot(
        &mut self,
        tip: Digest,
        len: usize,
        net: &mut impl Sender<PublicKey = ed25519::PublicKey>,
    ) -> bool {
        let interval = self.app.config.snapshot_interval;
        if interval == 0 || len as u64 <= interval {
            return false;
        }
        self.maybe_ask_snapshot(tip, net);
        self.since_snapshot_asked().is_some_and(|d| d < Duration::from_millis(SNAPSHOT_WAIT_MS))
    }

    /// Installs the offered snapshot of block `d`, which the finalized chain reaches:
    /// fetches its blob first, and drops the offer if the blob cannot be had or is not
    /// that block's state (the chain is then followed block by block past it).
    fn install_snapshot(&mut self, d: Digest) -> Result<(), Fatal> {
        use super::fetch::FetchStatus;
        let (block, cid) = self.snapshots[&d].clone();
        let store = &self.app.store;
        match self.app.fetcher.status(store, &cid) {
            FetchStatus::Present => {}
            FetchStatus::Fetching => return Ok(()),
            FetchStatus::Failed(e) => {
                tracing::warn!(height = block.header.height, "state snapshot {cid} not fetched: {e}");
                self.snapshots.remove(&d);
                return Ok(());
            }
            FetchStatus::Unknown => {
                if let Err(e) = self.app.fetcher.start(store, &cid, self.app.config.model_bytes_max) {
                    tracing::warn!(height = block.header.height, "state snapshot {cid} not fetched: {e}");
                    self.snapshots.remove(&d);
                }
                return Ok(());
            }
        }
        let checked = store
            .get(&cid)
            .map_err(|e| e.to_string())
            .and_then(|b| deed_ledger::snapshot::decode_verified(&b, &block.header).map_err(|e| e.to_string()));
        let writes = match checked {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(height = block.header.height, "state snapshot {cid} refused: {e}");
                self.snapshots.remove(&d);
                return Ok(());
            }
        };
        self.app.install_snapshot(&block, &writes).map_err(|e| self.fatal(format!("installing a snapshot: {e}")))?;
        let h = block.header.height;
        tracing::info!(height = h, %cid, "caught up by installing a state snapshot");
        self.head = Head { height: h, digest: d, time_ms: block.header.time_ms };
        self.stats.lock().unwrap().snapshot_installed = Some(h);
        self.blocks.retain(|_, b| b.header.height > h);
        self.executed.clear();
        self.snapshots.retain(|_, (b, _)| b.header.height > h);
        Ok(())
    }

    /// Writes the state after the block at `height` (just committed) as a snapshot blob,
    /// on its own thread from a consistent read view, and records it.
    fn write_snapshot(&self, height: u64, root: Hash32) {
        let app = self.app.clone();
        let snap = match app.db.snapshot() {
            Ok(s) => s,
            Err(e) => return tracing::warn!(height, "state snapshot not written: {e}"),
        };
        let spawned = std::thread::Builder::new().name("deed-snapshot".into()).spawn(move || {
            let bytes = deed_ledger::snapshot::encode(&snap, height, root);
            drop(snap);
            match app.store.put(&bytes).map_err(|e| e.to_string()).and_then(|cid| {
                app.db.set_snapshot(height, &cid).map_err(|e| e.to_string())?;
                Ok(cid)
            }) {
                Ok(cid) => tracing::debug!(height, %cid, bytes = bytes.len(), "state snapshot written"),
                Err(e) => tracing::warn!(height, "state snapshot not written: {e}"),
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(height, "state snapshot not written: {e}");
        }
    }

    fn fatal(&self, msg: String) -> Fatal {
        tracing::error!("{msg}");
        eprintln!("deed node: FATAL: {msg}");
        Fatal(msg)
    }

    /// Puts equivocation evidence on the ledger: an `Evidence` transaction signed by this
    /// node, admitted to its mempool (and so gossiped to the proposers).
    fn submit_evidence(
        &self,
        validator: PublicKey,
        vote_a: Vec<u8>,
        sig_a: [u8; 64],
        vote_b: Vec<u8>,
        sig_b: [u8; 64],
    ) {
        let me = self.app.key.address();
        let nonce = match self.app.pending_nonce(&me) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("cannot submit equivocation evidence: {e}");
                return;
            }
        };
        let tx = deed_types::Tx {
            chain_id: self.app.chain_id().to_string(),
            sender: self.me,
            nonce,
            fee: self.app.genesis.params.min_tx_fee,
            body: deed_types::TxBody::Evidence {
                validator,
                vote_a,
                sig_a: deed_types::Signature(sig_a),
                vote_b,
                sig_b: deed_types::Signature(sig_b),
            },
        };
        match self.app.admit(tx.sign(&self.app.key)) {
            Ok(h) => tracing::warn!(%validator, tx = %h, "submitted equivocation evidence"),
            Err(e) => tracing::warn!(%validator, "equivocation evidence not admitted: {e}"),
        }
    }

    /// Sends newly admitted transactions to the other validators (each once: those that
    /// came by gossip are already known to the others' mempools). A full node sends the
    /// ones submitted to it the same way.
    fn gossip(&mut self, net: &mut impl Sender<PublicKey = ed25519::PublicKey>) {
        let (pending, last) = self.app.pending_since(self.gossip_seq, crate::mempool::MEMPOOL_TXS_MAX);
        self.gossip_seq = last;
        let fresh: Vec<SignedTx> =
            pending.into_iter().filter(|(h, _)| !self.gossiped.contains(h)).map(|(_, t)| t).collect();
        if fresh.is_empty() {
            return;
        }
        if self.gossiped.len() + fresh.len() > GOSSIPED_LEN_MAX {
            self.gossiped.clear();
        }
        let to = self.other_validators();
        if to.is_empty() {
            return;
        }
        for chunk in fresh.chunks(GOSSIP_TXS_MAX) {
            let _ = net.send(Recipients::Some(to.clone()), Wire::Txs(chunk.to_vec()).encode(), false);
        }
    }
}

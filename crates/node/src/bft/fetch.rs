//! Blob replication: a node fetches a blob it lacks (a model, an input) from its peers by
//! content id, over commonware's p2p resolver on the blob channel, and verifies every
//! piece on arrival.
//!
//! A blob of `size` bytes is cut into pieces of [`PIECE_BYTES`] (the last one may be
//! short). A resolver key ([`BlobKey`]) names a blob's digest and a *part*: part 0 is the
//! blob's [`Header`], part `p ≥ 1` is piece `p − 1`.
//!
//! - The header carries the size, the pieces' BLAKE3 chaining values and the last piece's
//!   bytes. It is checked against the CID alone: the values must merge to the CID, and the
//!   last piece must hash to the last value *at its index*, which pins the number of
//!   pieces and so the size. A blob of one piece is its own header (its bytes must hash to
//!   the CID), so inputs and small models cost one request.
//! - Piece `i` must be exactly [`PIECE_BYTES`] bytes that hash, as the BLAKE3 subtree at
//!   offset `i × PIECE_BYTES`, to the header's `i`-th value.
//!
//! A response that fails its check is refused: the resolver reports the peer to
//! [`Avoid`], which keeps it out of blob fetches for [`AVOID_MS`], and asks another peer
//! for the same part. Verified pieces are written at their offset into a partial file in
//! `data/fetch/`; when all are in, the file is ingested into the store, which hashes it
//! once more, so what lands is the CID's content or nothing.
//!
//! Bounds: [`FETCHES_MAX`] blobs at once; [`BYTES_IN_FLIGHT_MAX`] bytes of pieces asked for
//! and not yet received, over all blobs; the caller's size limit, checked on the verified
//! header before any piece is asked for; [`SERVES_MAX`] parts being read for peers at once
//! (more are answered "not here", and the peer asks someone else); and an idle timeout per
//! blob: no header, or no new piece, within it ends the fetch with an error that says so.
//!
//! Avoiding, not blocking: a peer that served a wrong piece is kept out of blob fetches
//! only. It is not disconnected, so consensus with it goes on — one node's verdict proves
//! nothing to the others, and a bug or a version skew must not split validators.

use super::actor::from_consensus_key;
use crate::App;
use bytes::{BufMut, Bytes};
use commonware_actor::Feedback;
use commonware_codec::{Buf, FixedSize, Read, ReadExt, Write};
use commonware_cryptography::ed25519;
use commonware_p2p::{BlockedSubscription, Blocker, Receiver, Sender};
use commonware_resolver::{Consumer, Delivery, Outcome, Resolution, Resolver, p2p};
use commonware_runtime::{Clock, Handle, Metrics, Spawner};
use commonware_utils::channel::{oneshot, ring};
use commonware_utils::{NZDuration, NZUsize, Span, ordered::Set};
use deed_engine::Source;
use deed_store::{Store, StoreError, outboard};
use deed_types::{Cid, FraudProof, Hash32, PublicKey, SignedTx, TxBody};
use rand_core::Rng;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Bytes per piece (a power of two: each piece is one subtree of the blob's BLAKE3 tree).
pub const PIECE_BYTES: u64 = 1 << 20;
/// Most blobs fetched at once.
pub const FETCHES_MAX: usize = 16;
/// Most bytes of pieces asked for and not yet received, over all fetches.
pub const BYTES_IN_FLIGHT_MAX: u64 = 32 * PIECE_BYTES;
/// Most parts being read from the store for peers at once.
pub const SERVES_MAX: usize = 8;
/// How long a peer that served a wrong part is left out of blob fetches.
pub const AVOID_MS: u64 = 10 * 60 * 1000;
/// Largest header served: it must fit one p2p message with the resolver's envelope.
pub const HEADER_BYTES_MAX: usize = super::wire::MESSAGE_BYTES_MAX as usize - 64;
/// How long one peer has to answer one request before another peer is asked.
const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Pause before asking again after a miss or a refused answer.
const RETRY_DELAY_MS: u64 = 100;
/// How often timeouts and avoidance expiry are looked at.
const TICK_MS: u64 = 200;
/// Outcomes of ended fetches kept for waiters.
const FINISHED_LEN_MAX: usize = 256;

/// The peers' consensus identity.
type Peer = ed25519::PublicKey;

/// The resolver's mailbox for blob parts.
pub type BlobMailbox = p2p::Mailbox<BlobKey, Peer>;

/// Number of pieces of a blob of `size` bytes (at least one, for the empty blob too).
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_BYTES).max(1)
}

/// Length of piece `index` of a blob of `size` bytes.
fn piece_len(size: u64, index: u64) -> u64 {
    size.saturating_sub(index * PIECE_BYTES).min(PIECE_BYTES)
}

/// What is asked of a peer: a blob (by its BLAKE3 digest) and a part of it — 0 for the
/// header, `p ≥ 1` for piece `p − 1`. On the wire: the 32-byte digest, then the part as a
/// big-endian u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey {
    /// The blob's BLAKE3 digest (its CID's).
    pub digest: [u8; 32],
    /// 0 = header, `p ≥ 1` = piece `p − 1`.
    pub part: u32,
}

impl BlobKey {
    /// The header of `cid`.
    pub fn header(cid: &Cid) -> Self {
        BlobKey { digest: cid.0.0, part: 0 }
    }

    /// Piece `index` of `cid`.
    pub fn piece(cid: &Cid, index: u32) -> Self {
        BlobKey { digest: cid.0.0, part: index + 1 }
    }

    /// The blob this key is a part of.
    pub fn cid(&self) -> Cid {
        Cid(Hash32(self.digest))
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.part {
            0 => write!(f, "{} header", self.cid()),
            p => write!(f, "{} piece {}", self.cid(), p - 1),
        }
    }
}

impl Write for BlobKey {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.digest);
        buf.put_u32(self.part);
    }
}

impl Read for BlobKey {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, commonware_codec::Error> {
        let digest = <[u8; 32]>::read(buf)?;
        let part = u32::read(buf)?;
        Ok(BlobKey { digest, part })
    }
}

impl FixedSize for BlobKey {
    const SIZE: usize = 36;
}

impl Span for BlobKey {}

/// A blob's header: its size, its pieces' chaining values (none for a one-piece blob), and
/// its last piece's bytes. On the wire: size (u64 LE), the number of values (u32 LE), the
/// values (32 bytes each), then the last piece to the end of the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The blob's size in bytes.
    pub size: u64,
    /// One chaining value per piece, or none when the blob is one piece.
    pub cvs: Vec<[u8; 32]>,
    /// The last piece (the whole blob when it is one piece).
    pub tail: Vec<u8>,
}

impl Header {
    /// The header of a stored blob (for serving it).
    pub fn build(store: &Store, cid: &Cid) -> Result<Header, StoreError> {
        let m = store.manifest(cid)?;
        let n = piece_count(m.size);
        if n == 1 {
            return Ok(Header { size: m.size, cvs: Vec::new(), tail: store.get(cid)? });
        }
        let cvs = outboard::span_cvs(&m.outboard, m.size, PIECE_BYTES);
        let tail = store.get_range(cid, (n - 1) * PIECE_BYTES, None)?;
        Ok(Header { size: m.size, cvs, tail })
    }

    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12 + self.cvs.len() * 32 + self.tail.len());
        v.extend_from_slice(&self.size.to_le_bytes());
        v.extend_from_slice(&(self.cvs.len() as u32).to_le_bytes());
        for cv in &self.cvs {
            v.extend_from_slice(cv);
        }
        v.extend_from_slice(&self.tail);
        v
    }

    /// Decodes a peer's header; `None` when malformed.
    pub fn decode(b: &[u8]) -> Option<Header> {
        let size = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let n = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
        let end = n.checked_mul(32)?.checked_add(12)?;
        let cvs = b.get(12..end)?.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
        Some(Header { size, cvs, tail: b[end..].to_vec() })
    }

    /// Whether this header is `cid`'s: see the module docs for why this pins the size.
    pub fn verify(&self, cid: &Cid) -> bool {
        let n = piece_count(self.size);
        if n == 1 {
            return self.cvs.is_empty() && self.tail.len() as u64 == self.size && Cid::of(&self.tail) == *cid;
        }
        if n > u64::from(u32::MAX - 1) || self.cvs.len() as u64 != n {
            return false;
        }
        let last = n - 1;
        self.tail.len() as u64 == piece_len(self.size, last)
            && outboard::root_of(&self.cvs) == cid.0
            && outboard::span_cv(last, PIECE_BYTES, &self.tail) == self.cvs[last as usize]
    }
}

/// Whether `data` is piece `index` (not the last) of a blob whose pieces hash to `cvs`.
pub fn verify_piece(cvs: &[[u8; 32]], index: u64, data: &[u8]) -> bool {
    (index + 1) < cvs.len() as u64
        && data.len() as u64 == PIECE_BYTES
        && outboard::span_cv(index, PIECE_BYTES, data) == cvs[index as usize]
}

/// Why a blob could not be fetched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The node has no peers (not a validator of a BFT network, or p2p is down).
    #[error("blob {0} is not on this node, and this node has no peers to fetch it from")]
    NoPeers(Cid),
    /// No peer answered with the blob's header in time.
    #[error("blob {cid} is not on this node and no peer served it within {secs} s")]
    NotServed {
        /// The blob.
        cid: Cid,
        /// The idle timeout.
        secs: u64,
    },
    /// Peers stopped sending pieces.
    #[error("blob {cid}: peers stopped serving it ({have} of {total} pieces arrived, none in the last {secs} s)")]
    Stalled {
        /// The blob.
        cid: Cid,
        /// Pieces received.
        have: u64,
        /// Pieces in all.
        total: u64,
        /// The idle timeout.
        secs: u64,
    },
    /// The blob is larger than the caller accepts (its size comes from a verified header).
    #[error("blob {cid} is {size} bytes, more than the limit of {max_bytes} bytes for it here")]
    TooLarge {
        /// The blob.
        cid: Cid,
        /// Its size.
        size: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// Too many fetches at once.
    #[error("too many blob fetches in progress ({0}); try again shortly")]
    Busy(usize),
    /// The blob arrived but could not be stored.
    #[error("blob {cid} was fetched but could not be stored: {detail}")]
    Store {
        /// The blob.
        cid: Cid,
        /// Why.
        detail: String,
    },
}

/// Where a blob stands, for callers that poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchStatus {
    /// In the store.
    Present,
    /// Being fetched.
    Fetching,
    /// The last fetch failed.
    Failed(FetchError),
    /// Neither here nor being fetched.
    Unknown,
}

/// Counters for status and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchStats {
    /// Fetches started.
    pub started: u64,
    /// Blobs fetched and stored.
    pub fetched: u64,
    /// Fetches that failed.
    pub failed: u64,
    /// Verified bytes received (headers' last pieces and pieces).
    pub bytes_fetched: u64,
    /// Answers refused because they did not match the blob's id.
    pub refused: u64,
    /// Peers left out of blob fetches now (node keys).
    pub avoided: Vec<PublicKey>,
    /// Parts served to peers.
    pub served: u64,
    /// Bytes served to peers.
    pub served_bytes: u64,
}

/// Where one fetch is.
enum Phase {
    /// Waiting for the header.
    Header,
    /// Pieces coming in.
    Pieces {
        cvs: Arc<Vec<[u8; 32]>>,
        file: Arc<File>,
        got: Vec<bool>,
        have: u64,
        /// Next piece to ask for.
        next: u64,
    },
    /// All there; being ingested.
    Storing,
}

/// One blob being fetched.
struct Job {
    /// Names its partial file (unique per fetch, so a fetch ending never touches the file
    /// of a newer fetch of the same blob).
    id: u64,
    max_bytes: u64,
    phase: Phase,
    /// Bytes of pieces asked for and not yet received.
    asked: u64,
    /// When it fails if nothing new arrives (set by the first tick, moved on by progress).
    deadline: Option<SystemTime>,
    /// Verified bytes received so far (waiters watch it for progress).
    progress: u64,
}

#[derive(Default)]
struct Inner {
    mailbox: Option<BlobMailbox>,
    jobs: BTreeMap<Cid, Job>,
    next_id: u64,
    in_flight: u64,
    finished: VecDeque<(Cid, Result<(), FetchError>)>,
    /// Avoided peers: until when (`None` until the next tick sets it).
    avoided: BTreeMap<Peer, Option<SystemTime>>,
    avoided_subs: Vec<ring::Sender<Set<Peer>>>,
    stats: FetchStats,
}

/// Fetches missing blobs from peers: the node-facing side of blob replication. Lives in
/// [`App`]; [`start`] connects it to p2p when the node runs the BFT producer. Without
/// that (the solo producer) every fetch fails at once with [`FetchError::NoPeers`].
pub struct BlobFetcher {
    inner: Mutex<Inner>,
    changed: Condvar,
    dir: PathBuf,
    timeout: Duration,
    ended: AtomicU64,
}

impl std::fmt::Debug for BlobFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobFetcher").field("dir", &self.dir).field("timeout", &self.timeout).finish()
    }
}

impl BlobFetcher {
    /// A fetcher keeping partial blobs in `dir` (emptied: partial files of an earlier run
    /// are not resumed) that gives up on a blob after `timeout` without progress.
    pub fn new(dir: PathBuf, timeout: Duration) -> Self {
        let _ = std::fs::remove_dir_all(&dir);
        BlobFetcher { inner: Mutex::default(), changed: Condvar::new(), dir, timeout, ended: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The idle timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether p2p is up to fetch from.
    pub fn connected(&self) -> bool {
        self.lock().mailbox.is_some()
    }

    fn connect(&self, mailbox: BlobMailbox) {
        self.lock().mailbox = Some(mailbox);
    }

    /// Counts fetches that ended (either way): pollers look again when it moves.
    pub fn ended(&self) -> u64 {
        self.ended.load(Ordering::Acquire)
    }

    /// Counters.
    pub fn stats(&self) -> FetchStats {
        let g = self.lock();
        let mut s = g.stats.clone();
        s.avoided = g.avoided.keys().map(from_consensus_key).collect();
        s
    }

    /// Starts fetching `cid` (at most `max_bytes`) unless it is here or on its way.
    /// `Ok(true)` when it is already in the store.
    pub fn start(&self, store: &Store, cid: &Cid, max_bytes: u64) -> Result<bool, FetchError> {
        if store.has(cid) {
            return Ok(true);
        }
        let mut g = self.lock();
        if g.jobs.contains_key(cid) {
            return Ok(false);
        }
        let Some(mut mailbox) = g.mailbox.clone() else { return Err(FetchError::NoPeers(*cid)) };
        if g.jobs.len() >= FETCHES_MAX {
            return Err(FetchError::Busy(g.jobs.len()));
        }
        if !mailbox.fetch(BlobKey::header(cid)).accepted() {
            return Err(FetchError::NoPeers(*cid));
        }
        g.finished.retain(|(c, _)| c != cid);
        g.next_id += 1;
        let id = g.next_id;
        g.jobs.insert(*cid, Job { id, max_bytes, phase: Phase::Header, asked: 0, deadline: None, progress: 0 });
        g.stats.started += 1;
        tracing::debug!(%cid, "fetching blob from peers");
        Ok(false)
    }

    /// Where `cid` stands.
    pub fn status(&self, store: &Store, cid: &Cid) -> FetchStatus {
        {
            let g = self.lock();
            if g.jobs.contains_key(cid) {
                return FetchStatus::Fetching;
            }
            if let Some((_, Err(e))) = g.finished.iter().rev().find(|(c, _)| c == cid) {
                return FetchStatus::Failed(e.clone());
            }
        }
        if store.has(cid) { FetchStatus::Present } else { FetchStatus::Unknown }
    }

    /// Waits for a started fetch of `cid` to end. Gives up by itself if the fetch makes no
    /// progress for twice the idle timeout (the fetch's own timeout normally ends it first).
    pub fn wait(&self, store: &Store, cid: &Cid) -> Result<(), FetchError> {
        let secs = self.timeout.as_secs();
        let patience = self.timeout * 2;
        let mut last = (u64::MAX, Instant::now());
        let mut g = self.lock();
        loop {
            let Some(job) = g.jobs.get(cid) else {
                if let Some((_, r)) = g.finished.iter().rev().find(|(c, _)| c == cid) {
                    return r.clone();
                }
                drop(g);
                return if store.has(cid) { Ok(()) } else { Err(FetchError::NotServed { cid: *cid, secs }) };
            };
            if job.progress != last.0 {
                last = (job.progress, Instant::now());
            }
            let waited = last.1.elapsed();
            if waited >= patience {
                return Err(FetchError::NotServed { cid: *cid, secs });
            }
            g = self
                .changed
                .wait_timeout(g, (patience - waited).min(Duration::from_millis(500)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Fetches `cid` (at most `max_bytes`) from peers unless it is here, and waits for it.
    /// Blocking: call it from a thread that may wait (a worker, `spawn_blocking`).
    pub fn fetch(&self, store: &Store, cid: &Cid, max_bytes: u64) -> Result<(), FetchError> {
        if self.start(store, cid, max_bytes)? {
            return Ok(());
        }
        self.wait(store, cid)
    }

    /// Ends a fetch: drops its state and partial file, records the outcome, cancels what
    /// is still asked for, wakes waiters.
    fn end(&self, cid: &Cid, id: u64, r: Result<(), FetchError>) {
        let file = {
            let mut g = self.lock();
            if g.jobs.get(cid).is_none_or(|j| j.id != id) {
                return;
            }
            let job = g.jobs.remove(cid).expect("just seen");
            g.in_flight -= job.asked;
            match &r {
                Ok(()) => g.stats.fetched += 1,
                Err(e) => {
                    g.stats.failed += 1;
                    tracing::warn!("{e}");
                    if let Some(mut m) = g.mailbox.clone() {
                        let digest = cid.0.0;
                        let _ = m.retain(move |k, _| k.digest != digest);
                    }
                }
            }
            if g.finished.len() >= FINISHED_LEN_MAX {
                g.finished.pop_front();
            }
            g.finished.push_back((*cid, r));
            self.schedule(&mut g);
            matches!(job.phase, Phase::Pieces { .. } | Phase::Storing)
        };
        if file {
            let _ = std::fs::remove_file(self.partial(cid, id));
        }
        self.ended.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_all();
    }

    fn partial(&self, cid: &Cid, id: u64) -> PathBuf {
        self.dir.join(format!("{}.{id}.part", hex::encode(cid.0.0)))
    }

    /// Asks for more pieces, one blob after another in turn, while the in-flight budget
    /// allows.
    fn schedule(&self, g: &mut Inner) {
        let Some(mut mailbox) = g.mailbox.clone() else { return };
        let mut keys: Vec<BlobKey> = Vec::new();
        let Inner { jobs, in_flight, .. } = g;
        loop {
            let mut asked = false;
            for (cid, job) in jobs.iter_mut() {
                let Phase::Pieces { got, next, .. } = &mut job.phase else { continue };
                // The last piece came with the header.
                let last = got.len() as u64 - 1;
                if *next >= last || *in_flight + PIECE_BYTES > BYTES_IN_FLIGHT_MAX {
                    continue;
                }
                keys.push(BlobKey::piece(cid, *next as u32));
                *next += 1;
                *in_flight += PIECE_BYTES;
                job.asked += PIECE_BYTES;
                asked = true;
            }
            if !asked {
                break;
            }
        }
        if !keys.is_empty() {
            let _ = mailbox.fetch_all(keys);
        }
    }

    /// Judges and keeps a peer's answer for `key` (runs on a blocking thread).
    fn deliver(&self, store: &Store, key: BlobKey, value: &[u8], now: SystemTime) -> Outcome {
        let cid = key.cid();
        if key.part == 0 {
            self.on_header(store, &cid, value, now)
        } else {
            self.on_piece(store, &cid, key.part - 1, value, now)
        }
    }

    fn on_header(&self, store: &Store, cid: &Cid, value: &[u8], now: SystemTime) -> Outcome {
        let (id, max_bytes) = match self.lock().jobs.get(cid) {
            Some(Job { phase: Phase::Header, id, max_bytes, .. }) => (*id, *max_bytes),
            _ => return Outcome::Ignored,
        };
        let Some(h) = Header::decode(value).filter(|h| h.verify(cid)) else {
            self.lock().stats.refused += 1;
            return Outcome::Invalid;
        };
        if h.size > max_bytes {
            self.end(cid, id, Err(FetchError::TooLarge { cid: *cid, size: h.size, max_bytes }));
            return Outcome::Resolved(Resolution::Complete);
        }
        let n = piece_count(h.size);
        if n == 1 {
            {
                let mut g = self.lock();
                let g = &mut *g;
                let Some(job) = g.jobs.get_mut(cid).filter(|j| j.id == id && matches!(j.phase, Phase::Header)) else {
                    return Outcome::Ignored;
                };
                job.phase = Phase::Storing;
                job.progress += h.tail.len() as u64;
                g.stats.bytes_fetched += h.tail.len() as u64;
            }
            let r = ingest(store, cid, &h.tail[..], max_bytes);
            self.end(cid, id, r);
            return Outcome::Resolved(Resolution::Complete);
        }
        let file = match self.open_partial(&self.partial(cid, id), &h) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                self.end(cid, id, Err(FetchError::Store { cid: *cid, detail: format!("partial file: {e}") }));
                return Outcome::Ignored;
            }
        };
        let mut g = self.lock();
        let g = &mut *g;
        let Some(job) = g.jobs.get_mut(cid).filter(|j| j.id == id && matches!(j.phase, Phase::Header)) else {
            let _ = std::fs::remove_file(self.partial(cid, id));
            return Outcome::Ignored;
        };
        let mut got = vec![false; n as usize];
        got[n as usize - 1] = true;
        job.phase = Phase::Pieces { cvs: Arc::new(h.cvs), file, got, have: 1, next: 0 };
        job.progress += h.tail.len() as u64;
        job.deadline = Some(now + self.timeout);
        g.stats.bytes_fetched += h.tail.len() as u64;
        self.schedule(g);
        Outcome::Resolved(Resolution::Complete)
    }

    /// Creates the partial file of a blob with its last piece in place.
    fn open_partial(&self, path: &std::path::Path, h: &Header) -> std::io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        f.set_len(h.size)?;
        f.write_all_at(&h.tail, (piece_count(h.size) - 1) * PIECE_BYTES)?;
        Ok(f)
    }

    fn on_piece(&self, store: &Store, cid: &Cid, index: u32, value: &[u8], now: SystemTime) -> Outcome {
        let i = u64::from(index);
        let (id, max_bytes, cvs, file) = match self.lock().jobs.get(cid) {
            Some(Job { id, max_bytes, phase: Phase::Pieces { cvs, file, got, next, .. }, .. })
                if i < *next && !got[i as usize] =>
            {
                (*id, *max_bytes, cvs.clone(), file.clone())
            }
            _ => return Outcome::Ignored,
        };
        if !verify_piece(&cvs, i, value) {
            self.lock().stats.refused += 1;
            return Outcome::Invalid;
        }
        if let Err(e) = file.write_all_at(value, i * PIECE_BYTES) {
            self.end(cid, id, Err(FetchError::Store { cid: *cid, detail: format!("partial file: {e}") }));
            return Outcome::Ignored;
        }
        let done = {
            let mut g = self.lock();
            let g = &mut *g;
            let Some(job) = g.jobs.get_mut(cid).filter(|j| j.id == id) else { return Outcome::Ignored };
            let Phase::Pieces { got, have, .. } = &mut job.phase else { return Outcome::Ignored };
            if got[i as usize] {
                return Outcome::Ignored;
            }
            got[i as usize] = true;
            *have += 1;
            let done = *have == got.len() as u64;
            job.asked -= PIECE_BYTES;
            job.progress += PIECE_BYTES;
            job.deadline = Some(now + self.timeout);
            g.in_flight -= PIECE_BYTES;
            g.stats.bytes_fetched += PIECE_BYTES;
            if done {
                job.phase = Phase::Storing;
            }
            self.schedule(g);
            done
        };
        if done {
            let r = File::open(self.partial(cid, id))
                .map_err(|e| FetchError::Store { cid: *cid, detail: format!("partial file: {e}") })
                .and_then(|f| ingest(store, cid, std::io::BufReader::with_capacity(1 << 20, f), max_bytes));
            self.end(cid, id, r);
        }
        Outcome::Resolved(Resolution::Complete)
    }

    /// Fails fetches past their deadline; lets avoided peers back in when their time is up.
    fn tick(&self, now: SystemTime) {
        let mut expired = Vec::new();
        {
            let mut g = self.lock();
            let secs = self.timeout.as_secs();
            for (cid, job) in g.jobs.iter_mut() {
                if matches!(job.phase, Phase::Storing) {
                    continue;
                }
                match job.deadline {
                    None => job.deadline = Some(now + self.timeout),
                    Some(d) if now > d => {
                        let e = match &job.phase {
                            Phase::Pieces { have, got, .. } => {
                                FetchError::Stalled { cid: *cid, have: *have, total: got.len() as u64, secs }
                            }
                            _ => FetchError::NotServed { cid: *cid, secs },
                        };
                        expired.push((*cid, job.id, e));
                    }
                    Some(_) => {}
                }
            }
            let before = g.avoided.len();
            g.avoided.retain(|_, until| match until {
                None => {
                    *until = Some(now + Duration::from_millis(AVOID_MS));
                    true
                }
                Some(t) => now < *t,
            });
            if g.avoided.len() != before {
                publish_avoided(&mut g);
            }
        }
        for (cid, id, e) in expired {
            self.end(&cid, id, Err(e));
        }
    }

    fn avoid(&self, peer: Peer) {
        let mut g = self.lock();
        if g.avoided.insert(peer.clone(), None).is_none() {
            tracing::warn!(
                peer = %from_consensus_key(&peer),
                "a peer served blob bytes that do not match their id; it is left out of blob fetches for {} min",
                AVOID_MS / 60_000
            );
            publish_avoided(&mut g);
        }
    }

    fn subscribe_avoided(&self) -> BlockedSubscription<Peer> {
        let (tx, rx) = ring::channel(NZUsize!(1));
        let mut g = self.lock();
        tx.send_lossy(Set::from_iter_dedup(g.avoided.keys().cloned()));
        g.avoided_subs.push(tx);
        rx
    }
}

fn publish_avoided(g: &mut Inner) {
    let set = Set::from_iter_dedup(g.avoided.keys().cloned());
    g.avoided_subs.retain(|s| !s.is_closed());
    for s in &g.avoided_subs {
        s.send_lossy(set.clone());
    }
}

/// Stores fetched bytes and checks that they are `cid`'s (every piece was verified, so a
/// mismatch here is a bug, not a peer's lie).
fn ingest(store: &Store, cid: &Cid, reader: impl std::io::Read, max_bytes: u64) -> Result<(), FetchError> {
    let info = store.ingest(reader, max_bytes).map_err(|e| FetchError::Store { cid: *cid, detail: e.to_string() })?;
    if info.cid != *cid {
        return Err(FetchError::Store { cid: *cid, detail: format!("the reassembled bytes hash to {}", info.cid) });
    }
    tracing::info!(%cid, size = info.size, "fetched blob from peers");
    Ok(())
}

/// A [`deed_ledger::BlobSource`] over this node's store that notes each blob asked for
/// but absent. A block whose execution reads blobs this node has not fetched yet (a
/// challenge's proof, a bundle's weights) fails for want of them; the noted ids tell the
/// caller to fetch and retry, instead of refusing a block every node with the blobs
/// accepts.
pub struct NotingBlobs<'a> {
    store: &'a Store,
    absent: std::sync::Mutex<Vec<Cid>>,
}

impl<'a> NotingBlobs<'a> {
    /// Reads from `store`.
    pub fn new(store: &'a Store) -> Self {
        NotingBlobs { store, absent: Default::default() }
    }

    /// The blobs asked for that were not here, each once, in the order asked.
    pub fn absent(self) -> Vec<Cid> {
        self.absent.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, cid: &Cid) -> bool {
        if self.store.has(cid) {
            return false;
        }
        let mut a = self.absent.lock().unwrap_or_else(|e| e.into_inner());
        if !a.contains(cid) {
            a.push(*cid);
        }
        true
    }
}

impl deed_ledger::BlobSource for NotingBlobs<'_> {
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        if self.note(cid) {
            return None;
        }
        crate::app::StoreBlobs(self.store).get(cid)
    }

    fn get_range(&self, cid: &Cid, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        if self.note(cid) {
            return Err(format!("blob {cid} is not available"));
        }
        crate::app::StoreBlobs(self.store).get_range(cid, offset, length)
    }
}

/// Bundle graphs at most this large are scanned for the weights files they name (a
/// bundle's graph holds no weights, so it is small).
const BUNDLE_GRAPH_BYTES_MAX: u64 = 64 << 20;

/// The weights blobs a stored model graph names (a bundle, docs/PROTOCOL.md *Model
/// files*); empty for a self-contained model or one not stored here.
fn bundle_weights(app: &App, model: &Cid) -> Vec<Cid> {
    if app.store.size(model).map_or(true, |n| n > BUNDLE_GRAPH_BYTES_MAX) {
        return Vec::new();
    }
    let Ok(bytes) = app.store.get(model) else { return Vec::new() };
    let Ok(tensors) = deed_store::formats::onnx_tensors(&bytes, &Default::default()) else { return Vec::new() };
    let mut out: Vec<Cid> = tensors
        .into_iter()
        .filter_map(|t| match t.data {
            deed_store::formats::TensorData::External(e) => Cid::from_location(&e.location),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A model and, once its graph is here but does not load (a bundle whose weights are
/// missing), the weights it names. A model that loads is cached, so asking again is cheap.
fn model_blobs(app: &App, model: &Cid, out: &mut Vec<(Cid, u64)>) {
    out.push((*model, app.config.model_bytes_max));
    if app.store.has(model) && app.model(model).is_err() {
        out.extend(bundle_weights(app, model).into_iter().map(|w| (w, app.config.model_bytes_max)));
    }
}

/// The blobs a transaction needs on this node before it can be admitted (and before a
/// block carrying it can be checked), with the most bytes accepted for each, as far as
/// can be told from what is here: a bundle's weights are known once its graph has
/// arrived, and a challenge's producer blobs once the model can be loaded. A caller
/// asks again after each round of fetches until nothing is missing.
pub fn blobs_needed(app: &App, tx: &SignedTx) -> Vec<(Cid, u64)> {
    let mut out = Vec::new();
    match &tx.tx.body {
        TxBody::RegisterModel { model, .. } => model_blobs(app, model, &mut out),
        TxBody::RequestInference { model, input, .. } => {
            model_blobs(app, model, &mut out);
            out.push((*input, crate::api::INPUT_BLOB_BYTES_MAX));
        }
        TxBody::Challenge { job, executor, proof } => {
            let Ok(snap) = app.db.snapshot() else { return out };
            let Some(job) = deed_ledger::query::job(&snap, job) else { return out };
            model_blobs(app, &job.model, &mut out);
            out.push((job.input, crate::api::INPUT_BLOB_BYTES_MAX));
            let Some(receipt) = deed_ledger::query::job_receipt(&snap, &job.id, executor) else { return out };
            if out.iter().any(|(c, _)| !app.store.has(c)) {
                return out; // The model and weights first: the proof's sources need them.
            }
            let Ok(model) = app.model(&job.model) else { return out };
            let sources = match proof {
                FraudProof::TraceLength => Vec::new(),
                FraudProof::Segment { index } => model.entry_sources(*index as usize),
                FraudProof::Output => model.output_sources().into_iter().map(|(_, s)| s).collect(),
            };
            let trace = &receipt.receipt.trace;
            for s in sources {
                if let Source::Entry { entry, .. } = s
                    && let Some(h) = trace.get(entry)
                {
                    // A producer blob holds one segment's exports: bounded like a model.
                    out.push((Cid(*h), app.config.model_bytes_max));
                }
            }
        }
        _ => {}
    }
    out.sort_by_key(|(c, _)| *c);
    out.dedup_by_key(|(c, _)| *c);
    out
}

/// The resolver's consumer: hands each answer to the [`BlobFetcher`] on a blocking thread
/// (it hashes up to a piece and writes it) and reports the verdict.
pub struct BlobConsumer<E> {
    app: Arc<App>,
    context: Arc<E>,
}

impl<E> Clone for BlobConsumer<E> {
    fn clone(&self) -> Self {
        BlobConsumer { app: self.app.clone(), context: self.context.clone() }
    }
}

impl<E: Clock + Spawner> Consumer for BlobConsumer<E> {
    type Key = BlobKey;
    type Value = Bytes;
    type Subscriber = ();
    type Outcome = Outcome;

    fn deliver(&mut self, delivery: Delivery<BlobKey, ()>, value: Bytes) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let app = self.app.clone();
        let key = delivery.key;
        self.context.child("blob_deliver").shared(true).spawn(move |ctx| async move {
            let outcome = app.fetcher.deliver(&app.store, key, &value, ctx.current());
            let _ = tx.send(outcome);
        });
        rx
    }
}

/// The resolver's producer: serves headers and pieces of stored blobs, read (and
/// verified) on a blocking thread, at most [`SERVES_MAX`] at once.
pub struct BlobProducer<E> {
    app: Arc<App>,
    context: Arc<E>,
    serving: Arc<AtomicUsize>,
    corrupt: bool,
}

impl<E> Clone for BlobProducer<E> {
    fn clone(&self) -> Self {
        BlobProducer {
            app: self.app.clone(),
            context: self.context.clone(),
            serving: self.serving.clone(),
            corrupt: self.corrupt,
        }
    }
}

impl<E: Spawner> p2p::Producer for BlobProducer<E> {
    type Key = BlobKey;

    fn produce(&mut self, key: BlobKey) -> oneshot::Receiver<Bytes> {
        let (tx, rx) = oneshot::channel();
        // Dropping `tx` answers "not here": the peer asks someone else.
        if self.serving.fetch_add(1, Ordering::AcqRel) >= SERVES_MAX {
            self.serving.fetch_sub(1, Ordering::AcqRel);
            return rx;
        }
        let (app, serving, corrupt) = (self.app.clone(), self.serving.clone(), self.corrupt);
        self.context.child("blob_serve").shared(true).spawn(move |_| async move {
            let r = serve(&app.store, key);
            serving.fetch_sub(1, Ordering::AcqRel);
            match r {
                Ok(mut v) => {
                    if corrupt && key.part > 0 && !v.is_empty() {
                        // Test instrumentation (`Adversary::CorruptBlobs`): a lying peer.
                        let k = v.len() / 2;
                        v[k] ^= 1;
                    }
                    {
                        let mut g = app.fetcher.lock();
                        g.stats.served += 1;
                        g.stats.served_bytes += v.len() as u64;
                    }
                    let _ = tx.send(Bytes::from(v));
                }
                Err(StoreError::NotFound(_)) => {}
                Err(e) => tracing::debug!(%key, "not serving blob part: {e}"),
            }
        });
        rx
    }
}

/// Reads one part of a stored blob for a peer.
fn serve(store: &Store, key: BlobKey) -> Result<Vec<u8>, StoreError> {
    let cid = key.cid();
    if key.part == 0 {
        let b = Header::build(store, &cid)?.encode();
        if b.len() > HEADER_BYTES_MAX {
            return Err(StoreError::TooLarge { max_bytes: HEADER_BYTES_MAX as u64 });
        }
        return Ok(b);
    }
    let size = store.size(&cid)?;
    let i = u64::from(key.part - 1);
    if i >= piece_count(size) {
        return Err(StoreError::BadRange { start: i * PIECE_BYTES, end: (i + 1) * PIECE_BYTES, size });
    }
    store.get_range(&cid, i * PIECE_BYTES, Some((i * PIECE_BYTES + PIECE_BYTES).min(size)))
}

/// The resolver's blocker: a peer that served a wrong part is avoided for blob fetches
/// (see the module docs), not disconnected.
#[derive(Clone)]
pub struct Avoid(Arc<App>);

impl Blocker for Avoid {
    type PublicKey = Peer;

    fn block(&mut self, peer: Peer) -> Feedback {
        self.0.fetcher.avoid(peer);
        Feedback::Ok
    }

    fn blocked(&mut self) -> BlockedSubscription<Peer> {
        self.0.fetcher.subscribe_avoided()
    }
}

/// Running blob replication: the resolver and the timer.
pub struct Running {
    /// The resolver engine.
    pub resolver: Handle<()>,
    /// Timeouts and avoidance expiry.
    pub ticker: Handle<()>,
}

/// Starts blob replication for `app` among `participants` on a p2p channel, and connects
/// the app's [`BlobFetcher`] to it. `corrupt` makes this node serve pieces with a byte
/// flipped (test instrumentation).
pub fn start<E, S, R>(
    context: E,
    app: Arc<App>,
    participants: Set<Peer>,
    me: Peer,
    corrupt: bool,
    channel: (S, R),
) -> Running
where
    E: Clock + Spawner + Metrics + Rng,
    S: Sender<PublicKey = Peer>,
    R: Receiver<PublicKey = Peer>,
{
    let (engine, mailbox) = p2p::Engine::new(
        context.child("blob_resolver"),
        p2p::Config {
            peer_provider: commonware_p2p::utils::StaticProvider::new(0, participants),
            blocker: Avoid(app.clone()),
            consumer: BlobConsumer { app: app.clone(), context: Arc::new(context.child("blob_consumer")) },
            producer: BlobProducer {
                app: app.clone(),
                context: Arc::new(context.child("blob_producer")),
                serving: Arc::default(),
                corrupt,
            },
            mailbox_size: NZUsize!(1024),
            me: Some(me),
            fetch_timeout: NZDuration!(Duration::from_millis(REQUEST_TIMEOUT_MS)),
            fetch_retry_delay: Duration::from_millis(RETRY_DELAY_MS),
            priority_requests: false,
            priority_responses: false,
        },
    );
    app.fetcher.connect(mailbox);
    let resolver = engine.start(channel);
    let ticker = context.child("blob_ticker").spawn(move |ctx| async move {
        loop {
            ctx.sleep(Duration::from_millis(TICK_MS)).await;
            app.fetcher.tick(ctx.current());
        }
    });
    Running { resolver, ticker }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 % 251) as u8).collect()
    }

    fn header_of(d: &[u8]) -> Header {
        let n = piece_count(d.len() as u64);
        if n == 1 {
            return Header { size: d.len() as u64, cvs: Vec::new(), tail: d.to_vec() };
        }
        let cvs = d
            .chunks(PIECE_BYTES as usize)
            .enumerate()
            .map(|(i, p)| outboard::span_cv(i as u64, PIECE_BYTES, p))
            .collect();
        Header { size: d.len() as u64, cvs, tail: d[((n - 1) * PIECE_BYTES) as usize..].to_vec() }
    }

    #[test]
    fn a_key_encodes_in_36_bytes_and_back() {
        use commonware_codec::{DecodeExt, Encode};
        let k = BlobKey::piece(&Cid::of(b"x"), 7);
        let b = k.encode();
        assert_eq!(b.len(), BlobKey::SIZE);
        assert_eq!(&b[32..], &8u32.to_be_bytes());
        assert_eq!(BlobKey::decode(b).unwrap(), k);
        assert!(BlobKey::decode(Bytes::from(vec![0u8; 35])).is_err());
    }

    #[test]
    fn headers_of_every_shape_verify_and_round_trip() {
        let p = PIECE_BYTES as usize;
        for len in [0, 1, 16 * 1024, p - 1, p, p + 1, 2 * p, 3 * p + 12_345] {
            let d = data(len);
            let cid = Cid::of(&d);
            let h = header_of(&d);
            assert!(h.verify(&cid), "len {len}");
            assert_eq!(Header::decode(&h.encode()).unwrap(), h);
            // A header built from a store says the same.
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            store.put(&d).unwrap();
            assert_eq!(Header::build(&store, &cid).unwrap(), h, "len {len}");
            for (i, piece) in d.chunks(p).enumerate().take(h.cvs.len().saturating_sub(1)) {
                assert!(verify_piece(&h.cvs, i as u64, piece));
                assert_eq!(serve(&store, BlobKey::piece(&cid, i as u32)).unwrap(), piece);
            }
        }
    }

    #[test]
    fn a_wrong_header_or_piece_is_refused() {
        let p = PIECE_BYTES as usize;
        let d = data(4 * p + 100);
        let cid = Cid::of(&d);
        let h = header_of(&d);
        // A flipped byte in the last piece, a value, or a size.
        let mut x = h.clone();
        x.tail[7] ^= 1;
        assert!(!x.verify(&cid));
        let mut x = h.clone();
        x.cvs[1][0] ^= 1;
        assert!(!x.verify(&cid));
        let mut x = h.clone();
        x.size -= 1;
        assert!(!x.verify(&cid));
        // A shorter list whose last value is a parent of two true values still merges to
        // the root, but the last piece does not hash to it: the size is pinned.
        // (Four pieces: root = merge(merge(a, b), merge(c, d)); claim three: a, b, merge(c, d).)
        let d4 = &d[..3 * p + 100];
        let cid4 = Cid::of(d4);
        let h4 = header_of(d4);
        assert!(h4.verify(&cid4));
        let parent = blake3::hazmat::merge_subtrees_non_root(&h4.cvs[2], &h4.cvs[3], blake3::hazmat::Mode::Hash);
        let short =
            Header { size: 3 * PIECE_BYTES, cvs: vec![h4.cvs[0], h4.cvs[1], parent], tail: d4[2 * p..3 * p].to_vec() };
        assert_eq!(outboard::root_of(&short.cvs), cid4.0);
        assert!(!short.verify(&cid4));
        // Another blob's header.
        assert!(!header_of(&data(10)).verify(&cid));
        // Garbage does not decode or does not verify.
        for junk in [&[][..], &[1, 2, 3][..], &[0xff; 40][..]] {
            assert!(Header::decode(junk).is_none_or(|h| !h.verify(&cid)));
        }
        // Pieces: a flipped byte, the right bytes at the wrong index, a short piece, the last index.
        let mut piece = d[p..2 * p].to_vec();
        assert!(verify_piece(&h.cvs, 1, &piece));
        assert!(!verify_piece(&h.cvs, 2, &piece));
        piece[100] ^= 1;
        assert!(!verify_piece(&h.cvs, 1, &piece));
        assert!(!verify_piece(&h.cvs, 1, &d[p..2 * p - 1]));
        assert!(!verify_piece(&h.cvs, 1, &[]));
        assert!(!verify_piece(&h.cvs, 4, &d[4 * p..]));
        assert!(!verify_piece(&h.cvs, 99, &d[..p]));
    }

    #[test]
    fn the_largest_header_fits_a_message() {
        let pieces = (crate::NodeConfig::new(PathBuf::new()).model_bytes_max).div_ceil(PIECE_BYTES) as usize;
        let header = 12 + pieces * 32 + PIECE_BYTES as usize;
        assert!(header <= HEADER_BYTES_MAX);
        let msg = p2p::max_message_size::<BlobKey>(HEADER_BYTES_MAX);
        assert!(msg <= super::super::wire::MESSAGE_BYTES_MAX as usize, "{msg}");
    }
}

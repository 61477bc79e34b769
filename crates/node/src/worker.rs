//! The worker: an executor that answers paid jobs and an auditor that re-executes
//! answered ones and challenges lies — one small actor that talks to a chain through
//! [`Chain`], so it runs inside a node (embedded) or beside any node over HTTP
//! (`deed worker`).
//!
//! Auditing: a job in its challenge window is audited when
//! `BLAKE3(hash of the block that included its receipt ‖ job id)`, read as a number in
//! [0, 1), is below the audit rate — nobody can predict or bias that when signing a
//! receipt. Disputed jobs (replicated executors that disagree) are always checked.
//! A lie is proven with the cheapest fraud proof: a trace of the wrong length, else the
//! first trace segment whose entry differs (uploading the producer blobs its inputs need),
//! else the outputs.

use deed_engine::{Model, RunOptions, Source};
use deed_ledger::{Job, JobStatus};
use deed_types::{Amount, Cid, FraudProof, Hash32, Keypair, Receipt, SignedReceipt, SignedTx, TensorSet, Tx, TxBody};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::watch;

/// How often the worker looks for work.
const POLL_MS: u64 = 100;
/// Loaded models a worker keeps.
const MODELS_LEN_MAX: usize = 8;

/// What a worker needs from a chain: reads, blobs, and transaction submission.
pub trait Chain: Send + Sync + 'static {
    /// The chain id.
    fn chain_id(&self) -> Result<String, String>;
    /// The minimum transaction fee.
    fn min_tx_fee(&self) -> Result<Amount, String>;
    /// Jobs still waiting for receipts.
    fn pending_jobs(&self) -> Result<Vec<Job>, String>;
    /// Jobs in a challenge window or a dispute.
    fn open_jobs(&self) -> Result<Vec<Job>, String>;
    /// One executor's receipt for a job.
    fn receipt(&self, job: &Hash32, executor: &deed_types::PublicKey) -> Result<Option<SignedReceipt>, String>;
    /// The hash of the block at `height`.
    fn block_hash(&self, height: u64) -> Result<Option<Hash32>, String>;
    /// A blob, verified against its id.
    fn blob(&self, cid: &Cid) -> Result<Vec<u8>, String>;
    /// Stores a blob.
    fn put_blob(&self, bytes: &[u8]) -> Result<Cid, String>;
    /// The nonce `addr`'s next transaction must carry.
    fn next_nonce(&self, addr: &deed_types::Address) -> Result<u64, String>;
    /// Submits a transaction (acknowledged when durable).
    fn submit(&self, tx: SignedTx) -> Result<Hash32, String>;
    /// Whether a submitted transaction failed (`Some(false)` included, `None` pending/unknown).
    fn failed(&self, tx: &Hash32) -> Result<Option<bool>, String>;
}

/// Ways an adversarial executor lies (for tests and demos). Only builds with the
/// `adversary` feature of this crate (enabled by the `deed` package's `adversary`
/// feature) have any: in other builds this type has no values, so no worker can lie and
/// the lying code is not compiled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehave {
    /// Attests an output hash the model did not produce.
    #[cfg(feature = "adversary")]
    WrongOutput,
    /// Honest outputs, one trace entry made up.
    #[cfg(feature = "adversary")]
    WrongTrace,
    /// Runs a cheaper model (the real one with a weight perturbed) instead.
    #[cfg(feature = "adversary")]
    SubstituteModel,
    /// Answers with the outputs and trace of the previous job's input.
    #[cfg(feature = "adversary")]
    StaleOutput,
}

impl std::str::FromStr for Misbehave {
    type Err = String;
    #[cfg(feature = "adversary")]
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "wrong-output" => Misbehave::WrongOutput,
            "wrong-trace" => Misbehave::WrongTrace,
            "substitute-model" => Misbehave::SubstituteModel,
            "stale-output" => Misbehave::StaleOutput,
            _ => {
                return Err(format!(
                    "unknown misbehaviour '{s}': wrong-output, wrong-trace, substitute-model, stale-output"
                ));
            }
        })
    }
    #[cfg(not(feature = "adversary"))]
    fn from_str(s: &str) -> Result<Self, String> {
        Err(format!("cannot misbehave ('{s}'): this build lacks the `adversary` feature"))
    }
}

/// What a worker does.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Answer pending jobs.
    pub execute: bool,
    /// Share of answered single jobs to re-execute, 0.0..=1.0.
    pub audit_rate: f64,
    /// Smallest executor fee worth working for.
    pub executor_fee_min: Amount,
    /// Engine threads.
    pub threads: usize,
    /// Lie on purpose (tests).
    pub misbehave: Option<Misbehave>,
}

/// A re-execution that kept every node's producer blob: (model, run, blobs).
type HonestRun = (Arc<Model>, deed_engine::RunOutput, Vec<Vec<u8>>);

/// A worker's state between polls.
struct Worker {
    chain: Arc<dyn Chain>,
    key: Keypair,
    cfg: WorkerConfig,
    models: Mutex<Vec<(Cid, Arc<Model>)>>,
    /// Jobs answered: the receipt transaction.
    answered: BTreeMap<Hash32, Hash32>,
    /// Jobs that cannot run here.
    failed: BTreeSet<Hash32>,
    /// (job, executor) pairs audited (and challenged if needed).
    audited: BTreeSet<(Hash32, deed_types::PublicKey)>,
    /// The previous job's run, for `stale-output`.
    #[cfg(feature = "adversary")]
    last: Option<deed_engine::RunOutput>,
}

/// Starts a worker on its own thread (it runs the engine and blocking I/O); it stops
/// when `shutdown` turns true.
pub fn spawn(
    chain: Arc<dyn Chain>,
    key: Keypair,
    cfg: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) -> std::thread::JoinHandle<()> {
    let mut w = Worker {
        chain,
        key,
        cfg,
        models: Mutex::new(Vec::new()),
        answered: BTreeMap::new(),
        failed: BTreeSet::new(),
        audited: BTreeSet::new(),
        #[cfg(feature = "adversary")]
        last: None,
    };
    std::thread::Builder::new()
        .name("deed-worker".into())
        .spawn(move || {
            while !*shutdown.borrow() {
                w.round();
                std::thread::sleep(Duration::from_millis(POLL_MS));
            }
        })
        .expect("spawning the worker thread")
}

impl Worker {
    fn round(&mut self) {
        if self.cfg.execute {
            match self.chain.pending_jobs() {
                Ok(jobs) => {
                    for job in jobs {
                        self.maybe_execute(&job);
                    }
                }
                Err(e) => tracing::debug!("worker: cannot list jobs: {e}"),
            }
        }
        if self.cfg.audit_rate > 0.0 || self.cfg.execute {
            match self.chain.open_jobs() {
                Ok(jobs) => {
                    for job in jobs {
                        self.maybe_audit(&job);
                    }
                }
                Err(e) => tracing::debug!("worker: cannot list open jobs: {e}"),
            }
        }
    }

    fn model(&self, id: &Cid) -> Result<Arc<Model>, String> {
        if let Some((_, m)) = self.models.lock().unwrap().iter().find(|(c, _)| c == id) {
            return Ok(m.clone());
        }
        let bytes = self.chain.blob(id)?;
        let blobs = ChainBlobs(&*self.chain);
        let m = Arc::new(
            deed_ledger::load_model(&deed_ledger::CachedBlobs::new(&blobs), &bytes).map_err(|e| e.to_string())?,
        );
        let mut cache = self.models.lock().unwrap();
        if cache.len() >= MODELS_LEN_MAX {
            cache.remove(0);
        }
        cache.push((*id, m.clone()));
        Ok(m)
    }

    fn sign_and_submit(&self, body: TxBody) -> Result<Hash32, String> {
        let tx = Tx {
            chain_id: self.chain.chain_id()?,
            sender: self.key.public(),
            nonce: self.chain.next_nonce(&self.key.address())?,
            fee: self.chain.min_tx_fee()?,
            body,
        }
        .sign(&self.key);
        self.chain.submit(tx)
    }

    fn maybe_execute(&mut self, job: &Job) {
        if job.receipts.iter().any(|r| r.executor == self.key.public()) || self.failed.contains(&job.id) {
            return;
        }
        if let Some(tx) = self.answered.get(&job.id) {
            // Re-answer only if our receipt transaction was rejected.
            if self.chain.failed(tx).ok().flatten() != Some(true) {
                return;
            }
        }
        if job.executor_fee < self.cfg.executor_fee_min {
            self.failed.insert(job.id);
            return;
        }
        match self.execute(job) {
            Ok(tx) => {
                self.answered.insert(job.id, tx);
            }
            Err(e) => {
                tracing::warn!(job = %job.id, "job not executed: {e}");
                self.failed.insert(job.id);
            }
        }
    }

    fn execute(&mut self, job: &Job) -> Result<Hash32, String> {
        let model = self.model(&job.model)?;
        let inputs = TensorSet::decode(&self.chain.blob(&job.input)?).map_err(|e| e.to_string())?;
        let opts = RunOptions { threads: self.cfg.threads, trace: true };
        #[cfg_attr(not(feature = "adversary"), allow(unused_mut))]
        let mut out = model.run(&inputs, &opts).map_err(|e| e.to_string())?;
        if let Some(how) = self.cfg.misbehave {
            #[cfg(feature = "adversary")]
            self.lie(how, job, &inputs, &opts, &mut out)?;
            #[cfg(not(feature = "adversary"))]
            match how {}
        }
        self.chain.put_blob(&out.outputs.encode())?;
        let receipt = Receipt {
            version: 1,
            chain_id: self.chain.chain_id()?,
            job: job.id,
            model: job.model,
            engine: deed_engine::SPEC_VERSION.to_string(),
            input_hash: *job.input.digest(),
            output_hash: out.output_hash(),
            trace_root: out.trace_root(),
            trace: out.trace,
            executor: self.key.public(),
            price: job.price,
            executor_fee: job.executor_fee,
        }
        .sign(&self.key);
        self.sign_and_submit(TxBody::SubmitReceipt { receipt })
    }

    /// Replaces an honest run's outputs or trace with a lie (feature `adversary`).
    #[cfg(feature = "adversary")]
    fn lie(
        &mut self,
        how: Misbehave,
        job: &Job,
        inputs: &TensorSet,
        opts: &RunOptions,
        out: &mut deed_engine::RunOutput,
    ) -> Result<(), String> {
        match how {
            Misbehave::WrongOutput => {
                // The first output, whatever its element type, changed in every element
                // (an output that cannot change would make the lie the truth).
                use deed_types::TensorData as D;
                let t = out.outputs.0.values_mut().next().ok_or("no outputs")?;
                match &mut t.data {
                    D::F32(v) => v.iter_mut().for_each(|x| *x += 1.0),
                    D::F64(v) => v.iter_mut().for_each(|x| *x += 1.0),
                    D::U8(v) => v.iter_mut().for_each(|x| *x = x.wrapping_add(1)),
                    D::I8(v) => v.iter_mut().for_each(|x| *x = x.wrapping_add(1)),
                    D::U16(v) => v.iter_mut().for_each(|x| *x = x.wrapping_add(1)),
                    D::I16(v) => v.iter_mut().for_each(|x| *x = x.wrapping_add(1)),
                    D::I32(v) => v.iter_mut().for_each(|x| *x = x.wrapping_add(1)),
                    D::I64(v) => v.iter_mut().for_each(|x| *x = x.wrapping_add(1)),
                    D::U32(v) => v.iter_mut().for_each(|x| *x = x.wrapping_add(1)),
                    D::U64(v) => v.iter_mut().for_each(|x| *x = x.wrapping_add(1)),
                    D::Bool(v) => v.iter_mut().for_each(|x| *x = !*x),
                }
            }
            Misbehave::WrongTrace => {
                let k = out.trace.len() / 2;
                out.trace[k] = Hash32::of(b"a made-up trace entry");
            }
            Misbehave::SubstituteModel => {
                let cheap = substitute(&self.chain.blob(&job.model)?)?;
                *out = cheap.run(inputs, opts).map_err(|e| e.to_string())?;
            }
            Misbehave::StaleOutput => {
                let fresh = out.clone();
                if let Some(stale) = &self.last {
                    *out = stale.clone();
                }
                self.last = Some(fresh);
            }
        }
        Ok(())
    }

    /// Whether this worker audits a job in its challenge window: decided by the hash of
    /// the block that included the job's first receipt ([`audit_sampled`]), which no
    /// executor knows when signing.
    fn sampled(&self, job: &Job) -> bool {
        if self.cfg.audit_rate >= 1.0 {
            return true;
        }
        let Some(first) = job.receipts.first() else { return false };
        let Ok(Some(block)) = self.chain.block_hash(first.height) else { return false };
        audit_sampled(&block, &job.id, self.cfg.audit_rate)
    }

    fn maybe_audit(&mut self, job: &Job) {
        let disputed = matches!(job.status, JobStatus::Disputed { .. });
        let todo: Vec<_> = job
            .receipts
            .iter()
            .filter(|r| r.executor != self.key.public() && !self.audited.contains(&(job.id, r.executor)))
            .cloned()
            .collect();
        if todo.is_empty() {
            return;
        }
        let mine = job.receipts.iter().any(|r| r.executor == self.key.public());
        if !(disputed && (mine || self.cfg.audit_rate > 0.0)) && !(self.cfg.audit_rate > 0.0 && self.sampled(job)) {
            for r in &todo {
                self.audited.insert((job.id, r.executor));
            }
            return;
        }
        let honest = match self.honest_run(job) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(job = %job.id, "audit: cannot re-execute: {e}");
                return;
            }
        };
        for r in todo {
            self.audited.insert((job.id, r.executor));
            if r.output_hash == honest.1.output_hash() && r.trace_root == honest.1.trace_root() {
                tracing::debug!(job = %job.id, executor = %r.executor, "audit: receipt agrees");
                continue;
            }
            let Ok(Some(sr)) = self.chain.receipt(&job.id, &r.executor) else { continue };
            let (proof, needed) = build_proof(&honest.0, &sr.receipt, &honest.1, &honest.2);
            let uploaded = needed.iter().try_for_each(|b| self.chain.put_blob(b).map(|_| ()));
            if let Err(e) = uploaded {
                tracing::warn!(job = %job.id, "audit: cannot upload proof blobs: {e}");
                continue;
            }
            match self.sign_and_submit(TxBody::Challenge { job: job.id, executor: r.executor, proof: proof.clone() }) {
                Ok(tx) => {
                    tracing::warn!(job = %job.id, executor = %r.executor, ?proof, %tx, "audit: lie found, challenged")
                }
                Err(e) => tracing::warn!(job = %job.id, "audit: challenge not accepted: {e}"),
            }
        }
    }

    fn honest_run(&self, job: &Job) -> Result<HonestRun, String> {
        let model = self.model(&job.model)?;
        let inputs = TensorSet::decode(&self.chain.blob(&job.input)?).map_err(|e| e.to_string())?;
        let (out, blobs) = model
            .run_keep_all(&inputs, &RunOptions { threads: self.cfg.threads, trace: true })
            .map_err(|e| e.to_string())?;
        Ok((model, out, blobs))
    }
}

/// The audit sampling rule: a job whose first receipt was included in the block with
/// hash `block` is audited at `rate` when `BLAKE3-tagged("deed audit sample v1", block ‖
/// job)`, its first 8 bytes read as a little-endian integer and scaled to [0, 1), is
/// below `rate`. A rate of 1 or more audits everything; 0 or less (or NaN) nothing. The
/// same inputs always give the same answer, and every auditor at the same rate samples
/// the same jobs.
pub fn audit_sampled(block: &Hash32, job: &Hash32, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    let mut b = block.0.to_vec();
    b.extend_from_slice(&job.0);
    let h = Hash32::tagged("deed audit sample v1", &b);
    let x = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64;
    x < rate
}

/// The cheapest fraud proof against `r` given an honest run (its outputs and every
/// trace entry's producer blob), and the producer blobs validators will need.
pub fn build_proof(
    model: &Model,
    r: &Receipt,
    honest: &deed_engine::RunOutput,
    blobs: &[Vec<u8>],
) -> (FraudProof, Vec<Vec<u8>>) {
    if r.trace.len() != honest.trace.len() {
        return (FraudProof::TraceLength, Vec::new());
    }
    let needed = |sources: Vec<Source>| -> Vec<Vec<u8>> {
        let mut entries: BTreeSet<usize> = BTreeSet::new();
        for s in sources {
            if let Source::Entry { entry, .. } = s {
                entries.insert(entry);
            }
        }
        entries.into_iter().map(|e| blobs[e].clone()).collect()
    };
    match r.trace.iter().zip(&honest.trace).position(|(a, b)| a != b) {
        Some(i) => (FraudProof::Segment { index: i as u32 }, needed(model.entry_sources(i))),
        None => (FraudProof::Output, needed(model.output_sources().into_iter().map(|(_, s)| s).collect())),
    }
}

/// A "cheaper" copy of a model: its first float initializer perturbed (for the
/// `substitute-model` misbehaviour).
#[cfg(feature = "adversary")]
fn substitute(bytes: &[u8]) -> Result<Model, String> {
    use prost::Message;
    let mut m = deed_engine::onnx::ModelProto::decode(bytes).map_err(|e| e.to_string())?;
    let g = m.graph.as_mut().ok_or("no graph")?;
    let t = g.initializer.iter_mut().find(|t| t.data_type == 1).ok_or("no float weights to substitute")?;
    if !t.raw_data.is_empty() {
        for c in t.raw_data.chunks_exact_mut(4) {
            let v = f32::from_le_bytes(c.try_into().expect("4 bytes")) * 0.5;
            c.copy_from_slice(&v.to_le_bytes());
        }
    } else {
        t.float_data.iter_mut().for_each(|v| *v *= 0.5);
    }
    Model::load(&m.encode_to_vec()).map_err(|e| e.to_string())
}

/// A [`Chain`]'s blobs as a ledger [`deed_ledger::BlobSource`] (for loading bundles).
struct ChainBlobs<'a>(&'a dyn Chain);

impl deed_ledger::BlobSource for ChainBlobs<'_> {
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.0.blob(cid).ok()
    }
}

/// A [`Chain`] inside this node.
pub struct Embedded(pub Arc<crate::App>);

impl Chain for Embedded {
    fn chain_id(&self) -> Result<String, String> {
        Ok(self.0.chain_id().to_string())
    }
    fn min_tx_fee(&self) -> Result<Amount, String> {
        Ok(self.0.genesis.params.min_tx_fee)
    }
    fn pending_jobs(&self) -> Result<Vec<Job>, String> {
        Ok(deed_ledger::query::pending_jobs(&self.0.state().map_err(|e| e.to_string())?))
    }
    fn open_jobs(&self) -> Result<Vec<Job>, String> {
        Ok(deed_ledger::query::open_jobs(&self.0.state().map_err(|e| e.to_string())?)
            .into_iter()
            .filter(|j| !matches!(j.status, JobStatus::Pending))
            .collect())
    }
    fn receipt(&self, job: &Hash32, executor: &deed_types::PublicKey) -> Result<Option<SignedReceipt>, String> {
        Ok(deed_ledger::query::job_receipt(&self.0.state().map_err(|e| e.to_string())?, job, executor))
    }
    fn block_hash(&self, height: u64) -> Result<Option<Hash32>, String> {
        Ok(self.0.db.block(height).map_err(|e| e.to_string())?.map(|b| b.header.hash()))
    }
    fn blob(&self, cid: &Cid) -> Result<Vec<u8>, String> {
        let app = &self.0;
        if !app.store.has(cid) && app.fetcher.connected() {
            // Not uploaded here: fetch it from the peers (verified piece by piece).
            app.fetcher.fetch(&app.store, cid, app.config.model_bytes_max).map_err(|e| e.to_string())?;
        }
        app.store.get(cid).map_err(|e| e.to_string())
    }
    fn put_blob(&self, bytes: &[u8]) -> Result<Cid, String> {
        self.0.store.put(bytes).map_err(|e| e.to_string())
    }
    fn next_nonce(&self, addr: &deed_types::Address) -> Result<u64, String> {
        self.0.pending_nonce(addr).map_err(|e| e.to_string())
    }
    fn submit(&self, tx: SignedTx) -> Result<Hash32, String> {
        self.0.admit(tx).map_err(|e| e.to_string())
    }
    fn failed(&self, tx: &Hash32) -> Result<Option<bool>, String> {
        if self.0.is_pending(tx) {
            return Ok(None);
        }
        Ok(self.0.db.tx_status(tx).map_err(|e| e.to_string())?.map(|s| !s.ok))
    }
}

#[cfg(test)]
mod tests {
    use super::audit_sampled;
    use deed_types::Hash32;

    fn job(i: u64) -> Hash32 {
        Hash32::of(&i.to_le_bytes())
    }

    /// Of `n` jobs, how many a block samples at `rate`.
    fn count(block: &Hash32, n: u64, rate: f64) -> usize {
        (0..n).filter(|&i| audit_sampled(block, &job(i), rate)).count()
    }

    #[test]
    fn the_same_block_and_job_always_give_the_same_choice() {
        let block = Hash32::of(b"block 7");
        for i in 0..200 {
            let first = audit_sampled(&block, &job(i), 0.5);
            for _ in 0..3 {
                assert_eq!(audit_sampled(&block, &job(i), 0.5), first, "job {i}");
            }
            // A copy of the inputs (not the same memory) decides the same.
            assert_eq!(audit_sampled(&Hash32(block.0), &Hash32(job(i).0), 0.5), first);
        }
    }

    #[test]
    fn the_sampled_share_is_close_to_the_rate() {
        const N: u64 = 20_000;
        for (b, rate) in [(0u8, 0.05), (1, 0.1), (2, 0.25), (3, 0.5), (4, 0.75), (5, 0.9), (6, 0.99)] {
            let block = Hash32::of(&[b]);
            let share = count(&block, N, rate) as f64 / N as f64;
            // Binomial standard deviation at N = 20 000 is at most 0.0036; allow ~5.5σ.
            assert!((share - rate).abs() < 0.02, "rate {rate}: sampled {share}");
        }
    }

    #[test]
    fn rates_at_the_ends_sample_nothing_or_everything() {
        let block = Hash32::of(b"b");
        assert_eq!(count(&block, 2_000, 0.0), 0);
        assert_eq!(count(&block, 2_000, -1.0), 0);
        assert_eq!(count(&block, 2_000, f64::NAN), 0);
        assert_eq!(count(&block, 2_000, 1.0), 2_000);
        assert_eq!(count(&block, 2_000, 1.5), 2_000);
    }

    #[test]
    fn a_higher_rate_samples_a_superset() {
        let block = Hash32::of(b"superset");
        for i in 0..2_000 {
            let j = job(i);
            let mut was = false;
            for rate in [0.1, 0.3, 0.5, 0.7, 0.9] {
                let now = audit_sampled(&block, &j, rate);
                assert!(now || !was, "job {i} sampled below rate {rate} but not at it");
                was = now;
            }
        }
    }

    #[test]
    fn the_choice_depends_on_the_block_and_on_the_job() {
        // Different blocks pick (nearly) independent halves of the same jobs: the overlap
        // of two 50 % samples is about a quarter, not a half (which a rule ignoring the
        // block would give).
        const N: u64 = 4_000;
        let (a, b) = (Hash32::of(b"block a"), Hash32::of(b"block b"));
        let both = (0..N).filter(|&i| audit_sampled(&a, &job(i), 0.5) && audit_sampled(&b, &job(i), 0.5)).count();
        let share = both as f64 / N as f64;
        assert!((share - 0.25).abs() < 0.04, "overlap {share}");
        // One block does not decide alike for every job (a rule ignoring the job would).
        let n = count(&a, N, 0.5);
        assert!(n > 0 && n < N as usize, "{n}");
    }

    #[test]
    fn the_rule_is_the_tagged_hash_of_block_then_job() {
        // Pins the rule bit for bit: changing the tag, the order or the bytes read changes
        // which jobs auditors sample, and every auditor must agree on it.
        let (block, j) = (Hash32::of(b"pinned block"), job(42));
        let mut bytes = block.0.to_vec();
        bytes.extend_from_slice(&j.0);
        let h = Hash32::tagged("deed audit sample v1", &bytes);
        let x = u64::from_le_bytes(h.0[..8].try_into().unwrap()) as f64 / u64::MAX as f64;
        assert!(x > 0.0 && x < 1.0);
        assert!(audit_sampled(&block, &j, x + 1e-9));
        assert!(!audit_sampled(&block, &j, x));
        assert!(!audit_sampled(&block, &j, x - 1e-9));
    }
}

//! Deciding a fraud proof: replay at most one trace segment of the model with the engine.
//!
//! The ledger stays a pure function of (state, block, content): models, inputs and the
//! challenger's producer blobs are read by content id through [`BlobSource`], and any
//! two honest validators holding the same ids hold the same bytes. A blob nobody can
//! supply makes the challenge undecidable, so it is refused (the proposer leaves it
//! out; a block carrying it is invalid) rather than judged.

use crate::error::TxError;
use crate::records::Job;
use deed_engine::{Model, Source};
use deed_types::{Cid, FraudProof, Receipt, Tensor, TensorSet};
use std::collections::BTreeMap;

/// Content by id: the node's blob store. Implementations must return only bytes that
/// hash to the id (the ledger re-checks).
pub trait BlobSource {
    /// The bytes of `cid`, if this node has them.
    fn get(&self, cid: &Cid) -> Option<Vec<u8>>;

    /// `length` bytes of `cid` from `offset`, verified against the id. The default
    /// reads the whole blob, checks its hash and slices it; a store with a BLAKE3
    /// outboard answers with a verified range read instead.
    fn get_range(&self, cid: &Cid, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        let b = self.get(cid).ok_or_else(|| format!("blob {cid} is not available"))?;
        if Cid::of(&b) != *cid {
            return Err(format!("blob {cid}: the bytes served do not match the id"));
        }
        slice(&b, cid, offset, length)
    }
}

/// A [`BlobSource`] over another that keeps the last whole blob it fetched and verified,
/// so that loading a bundle — one range read per tensor — fetches its weights once.
pub struct CachedBlobs<'a> {
    inner: &'a dyn BlobSource,
    last: std::sync::Mutex<Option<(Cid, std::sync::Arc<Vec<u8>>)>>,
}

impl<'a> CachedBlobs<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a dyn BlobSource) -> Self {
        CachedBlobs { inner, last: std::sync::Mutex::new(None) }
    }
}

impl BlobSource for CachedBlobs<'_> {
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.inner.get(cid)
    }
    fn get_range(&self, cid: &Cid, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let blob = match &*last {
            Some((c, b)) if c == cid => b.clone(),
            _ => {
                let b = self.inner.get(cid).ok_or_else(|| format!("blob {cid} is not available"))?;
                if Cid::of(&b) != *cid {
                    return Err(format!("blob {cid}: the bytes served do not match the id"));
                }
                let b = std::sync::Arc::new(b);
                *last = Some((*cid, b.clone()));
                b
            }
        };
        slice(&blob, cid, offset, length)
    }
}

fn slice(b: &[u8], cid: &Cid, offset: u64, length: usize) -> Result<Vec<u8>, String> {
    let start = usize::try_from(offset).ok().filter(|&o| o <= b.len());
    match start.and_then(|s| Some(s..s.checked_add(length)?)).filter(|r| r.end <= b.len()) {
        Some(r) => Ok(b[r].to_vec()),
        None => Err(format!("bytes {offset}..+{length} are outside blob {cid} ({} bytes)", b.len())),
    }
}

/// A bundle's weights, read from a [`BlobSource`]: an external-data `location` of
/// `<cid>.safetensors` names the weights blob by content (docs/PROTOCOL.md, *Model files*).
pub struct BlobWeights<'a>(pub &'a dyn BlobSource);

impl deed_engine::ExternalData for BlobWeights<'_> {
    fn read(&self, location: &str, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        let cid = Cid::from_location(location)
            .ok_or_else(|| format!("'{location}' does not name a weights blob (<cid>.safetensors)"))?;
        self.0.get_range(&cid, offset, length)
    }
}

/// Loads a registered model by id: an ONNX file, or a bundle whose weights are read
/// through `blobs` too.
pub fn load_model(blobs: &dyn BlobSource, bytes: &[u8]) -> Result<Model, deed_engine::LoadError> {
    Model::load_external(bytes, &deed_engine::Limits::default(), &BlobWeights(blobs))
}

/// A source with no blobs: fraud proofs cannot be decided with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBlobs;

impl BlobSource for NoBlobs {
    fn get(&self, _: &Cid) -> Option<Vec<u8>> {
        None
    }
}

impl BlobSource for BTreeMap<Cid, Vec<u8>> {
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        BTreeMap::get(self, cid).cloned()
    }
}

fn fetch(blobs: &dyn BlobSource, cid: &Cid, what: &str) -> Result<Vec<u8>, TxError> {
    let b = blobs.get(cid).ok_or_else(|| TxError::Unavailable(format!("{what} {cid} is not available")))?;
    if Cid::of(&b) != *cid {
        return Err(TxError::Unavailable(format!("{what} {cid}: the bytes served do not match the id")));
    }
    Ok(b)
}

/// Whether `proof` shows that `receipt` (for `job`) is wrong. `Ok(false)` means the
/// proof is well-formed and decidable but does not hold (the challenge fails).
pub(crate) fn proven(blobs: &dyn BlobSource, job: &Job, r: &Receipt, proof: &FraudProof) -> Result<bool, TxError> {
    let model_bytes = fetch(blobs, &job.model, "model")?;
    // A registered model was loaded when it was admitted; if it no longer loads (a
    // different engine spec), nothing about it can be proven here.
    let model = load_model(blobs, &model_bytes)
        .map_err(|e| TxError::NotChallengeable(format!("the model does not load with this engine: {e}")))?;
    let n = model.trace_len();
    let input = || -> Result<TensorSet, TxError> {
        let b = fetch(blobs, &job.input, "input")?;
        TensorSet::decode(&b).map_err(|e| TxError::NotChallengeable(format!("the job's input does not decode: {e}")))
    };
    let mut producers: BTreeMap<usize, Vec<Tensor>> = BTreeMap::new();
    let mut input_set: Option<TensorSet> = None;
    // The value a source names, taken from what the receipt committed to.
    let mut value = |src: &Source| -> Result<Option<Tensor>, TxError> {
        Ok(match src {
            Source::Const => None,
            Source::Input(name) => {
                if input_set.is_none() {
                    input_set = Some(input()?);
                }
                input_set.as_ref().expect("just set").0.get(name).cloned()
            }
            Source::Entry { entry, value } => {
                if !producers.contains_key(entry) {
                    let blob = fetch(blobs, &Cid(r.trace[*entry]), "producer blob")?;
                    // Bytes the trace commits to but that do not decode: the executor
                    // committed garbage; the proof should name that entry instead.
                    let outs = model.split_entry_values(*entry, &blob).map_err(|e| {
                        TxError::NotChallengeable(format!("producer blob of trace entry #{entry} does not decode: {e}"))
                    })?;
                    producers.insert(*entry, outs);
                }
                producers[entry].get(*value).cloned()
            }
        })
    };
    match proof {
        FraudProof::TraceLength => Ok(r.trace.len() != n),
        _ if r.trace.len() != n => Err(TxError::NotChallengeable(
            "the trace has the wrong length: prove that instead (kind trace_length)".into(),
        )),
        FraudProof::Segment { index } => {
            let i = *index as usize;
            if i >= n {
                return Err(TxError::NotChallengeable(format!("trace entry {i} does not exist; the trace has {n}")));
            }
            let mut inputs = Vec::new();
            for s in &model.entry_sources(i) {
                // A graph input the job's input set lacks: the job could not run at all.
                let Some(t) = value(s)? else { return Ok(false) };
                inputs.push(t);
            }
            // A replay that fails means the committed inputs are inconsistent: an earlier
            // segment is wrong, and that is the one to prove.
            match model.replay_entry(i, &inputs) {
                Ok(h) => Ok(h != r.trace[i]),
                Err(_) => Ok(false),
            }
        }
        FraudProof::Output => {
            let mut outs = BTreeMap::new();
            for (name, src) in model.output_sources() {
                let t = match src {
                    Source::Const => model.const_output(&name).cloned(),
                    s => value(&s)?,
                };
                let Some(t) = t else { return Ok(false) };
                outs.insert(name, t);
            }
            Ok(TensorSet(outs).hash() != r.output_hash)
        }
    }
}

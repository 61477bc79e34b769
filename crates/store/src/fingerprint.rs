//! Weight fingerprints: exact per-tensor hashes and a similarity sketch, to catch copies.
//!
//! **Exact.** Each tensor hashes to BLAKE3 (derive-key `deed tensor v1`) over its dtype
//! code, rank, dims and little-endian elements — the same bytes whether the file held
//! them in `raw_data` or a typed field, under whatever name, in whatever order. The
//! model's *weights hash* is the hash of the sorted list of its tensor hashes: a
//! re-serialized, renamed or reordered copy has the same weights hash.
//!
//! **Similar.** For each tensor of at least [`INFORMATIVE_ELEMENTS_MIN`] elements whose
//! values are not all equal, the sketch is [`SKETCH_LEN`] values taken at positions
//! derived from the tensor's dims alone (so two tensors of the same shape are sampled at
//! the same coordinates), standardized (minus their mean, over their standard deviation)
//! and quantized to `i8` in steps of 1/32 σ. The Pearson correlation of two sketches
//! estimates the correlation of the two tensors (±1/16 for unrelated tensors). It is
//! unchanged by scale and offset (int8 quantize–dequantize, fp16 round trips) and
//! degrades gracefully with noise (noise of σ·s gives 1/√(1+s²)), pruning and
//! fine-tuning; independently initialized or trained tensors correlate around 0.
//!
//! [`similarity`] matches tensors of equal shape one to one, greedily by correlation,
//! counts pairs whose correlation is at least [`TENSOR_CORR_MIN`], and returns their
//! element-weighted mean correlation over the smaller model's informative weights: the
//! share of one model's weights found in the other. A score of at least
//! [`NEAR_COPY_MIN`] is a near copy. Measured rates are in docs/COPIES.md.

use crate::formats::{self, FormatError, FormatLimits, RawTensor, TensorData};
use deed_types::Hash32;
use serde::{Deserialize, Serialize};

/// Values per tensor sketch.
pub const SKETCH_LEN: usize = 256;
/// Smallest tensor that gets a sketch (below, a correlation is mostly noise).
pub const INFORMATIVE_ELEMENTS_MIN: u64 = 64;
/// Most sketched tensors per model (the largest ones), bounding comparison time.
pub const SKETCHES_MAX: usize = 1024;
/// Least correlation for two tensors to count as the same tensor.
pub const TENSOR_CORR_MIN: f64 = 0.5;
/// Least [`similarity`] for a model to be a near copy of another.
pub const NEAR_COPY_MIN: f64 = 0.3;
/// Quantization steps per standard deviation in a sketch.
const SKETCH_STEPS_PER_SIGMA: f64 = 32.0;

/// One tensor's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSig {
    /// Canonical content hash (dtype, dims, elements).
    pub hash: Hash32,
    /// Dimensions.
    pub dims: Vec<u64>,
    /// The standardized, quantized samples; empty when the tensor is not informative or
    /// not among the [`SKETCHES_MAX`] largest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sketch: Vec<i8>,
}

impl TensorSig {
    fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A model's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Hash of the sorted tensor hashes: equal for exact weight copies.
    pub weights: Hash32,
    /// Every tensor, sorted by hash.
    pub tensors: Vec<TensorSig>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Sample positions for a tensor of these dims: all elements when few, else
/// [`SKETCH_LEN`] pseudo-random positions seeded by the dims.
pub fn sample_positions(dims: &[u64]) -> Vec<u64> {
    let n: u64 = dims.iter().product();
    if n <= SKETCH_LEN as u64 {
        return (0..n).collect();
    }
    let mut seed_bytes = Vec::with_capacity(8 * dims.len());
    for d in dims {
        seed_bytes.extend_from_slice(&d.to_le_bytes());
    }
    let seed = u64::from_le_bytes(Hash32::tagged("deed sketch positions v1", &seed_bytes).0[..8].try_into().unwrap());
    (0..SKETCH_LEN as u64).map(|j| splitmix(seed ^ splitmix(j)) % n).collect()
}

/// Standardizes and quantizes samples; `None` when they are constant or not finite.
fn quantize(samples: &[f64]) -> Option<Vec<i8>> {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    if !(sd.is_finite() && sd > 0.0) {
        return None;
    }
    Some(
        samples.iter().map(|v| ((v - mean) / sd * SKETCH_STEPS_PER_SIGMA).round().clamp(-127.0, 127.0) as i8).collect(),
    )
}

fn tensor_hasher(dtype: i32, dims: &[u64]) -> blake3::Hasher {
    let mut h = blake3::Hasher::new_derive_key("deed tensor v1");
    h.update(&[dtype as u8]);
    h.update(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        h.update(&d.to_le_bytes());
    }
    h
}

fn tensor_hash(dtype: i32, dims: &[u64], data: &[u8]) -> Hash32 {
    let mut h = tensor_hasher(dtype, dims);
    h.update(data);
    Hash32(*h.finalize().as_bytes())
}

/// Fingerprint of one tensor given its canonical bytes or decoded values.
fn sig_of(t: &RawTensor<'_>, raw: &[u8]) -> TensorSig {
    let hash = tensor_hash(t.dtype, &t.dims, raw);
    let n = t.elements();
    let mut sketch = Vec::new();
    if n >= INFORMATIVE_ELEMENTS_MIN {
        let w = formats::dtype::width(t.dtype).unwrap_or(1);
        let samples: Vec<f64> = sample_positions(&t.dims)
            .into_iter()
            .map(|p| {
                let v = formats::element_value(t.dtype, &raw[p as usize * w..(p as usize + 1) * w]);
                if v.is_finite() { v } else { 0.0 }
            })
            .collect();
        sketch = quantize(&samples).unwrap_or_default();
    }
    TensorSig { hash, dims: t.dims.clone(), sketch }
}

/// Fingerprint of a tensor held in a typed protobuf field, streamed: the canonical bytes
/// go straight into the hash, samples are picked up as their positions pass.
fn typed_sig(t: &RawTensor<'_>, msg: &[u8]) -> Result<TensorSig, FormatError> {
    let w = formats::dtype::width(t.dtype).unwrap_or(1);
    let mut h = tensor_hasher(t.dtype, &t.dims);
    let n = t.elements();
    let mut positions: Vec<(u64, usize)> = if n >= INFORMATIVE_ELEMENTS_MIN {
        sample_positions(&t.dims).into_iter().enumerate().map(|(j, p)| (p, j)).collect()
    } else {
        vec![]
    };
    positions.sort_unstable();
    let mut samples = vec![0.0f64; positions.len()];
    let (mut idx, mut next) = (0u64, 0usize);
    formats::typed_elements(msg, t.dtype, &mut |v| {
        let b = v.to_le_bytes();
        h.update(&b[..w]);
        while next < positions.len() && positions[next].0 == idx {
            let x = formats::element_value(t.dtype, &b[..w]);
            samples[positions[next].1] = if x.is_finite() { x } else { 0.0 };
            next += 1;
        }
        idx += 1;
    })?;
    let sketch = if samples.is_empty() { vec![] } else { quantize(&samples).unwrap_or_default() };
    Ok(TensorSig { hash: Hash32(*h.finalize().as_bytes()), dims: t.dims.clone(), sketch })
}

/// Resolves an ONNX external-data `location` to the bytes of that file.
pub type Resolve<'r> = &'r dyn Fn(&str) -> Option<Vec<u8>>;

/// Fingerprints a model file: ONNX (external data resolved through `resolve`) or
/// safetensors.
pub fn of_model(bytes: &[u8], limits: &FormatLimits, resolve: Resolve<'_>) -> Result<Fingerprint, FormatError> {
    let tensors = if formats::safetensors_header_len(bytes).is_some() {
        formats::safetensors_tensors(bytes, limits)?
    } else {
        formats::onnx_tensors(bytes, limits)?
    };
    let mut sigs = Vec::with_capacity(tensors.len());
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for t in &tensors {
        let sig = match &t.data {
            TensorData::Raw(r) => sig_of(t, r),
            TensorData::Typed { msg, .. } => typed_sig(t, msg)?,
            TensorData::External(e) => {
                if !files.iter().any(|(l, _)| l == &e.location) {
                    if files.len() >= 16 {
                        return Err(FormatError::External("more than 16 external data files".into()));
                    }
                    let b = resolve(&e.location)
                        .ok_or_else(|| FormatError::External(format!("'{}' is not in the store", e.location)))?;
                    files.push((e.location.clone(), b));
                }
                let file = &files.iter().find(|(l, _)| l == &e.location).expect("just added").1;
                let w = formats::dtype::width(t.dtype)
                    .ok_or_else(|| FormatError::External(format!("'{}' has an unsupported dtype", t.name)))?;
                let range = usize::try_from(e.offset)
                    .ok()
                    .zip(usize::try_from(e.length).ok())
                    .and_then(|(o, l)| Some(o..o.checked_add(l)?))
                    .filter(|r| r.end <= file.len() && (r.len() as u64) == t.elements().saturating_mul(w as u64))
                    .ok_or_else(|| {
                        FormatError::External(format!("'{}': offset/length do not fit its dims in the file", t.name))
                    })?;
                sig_of(t, &file[range])
            }
        };
        sigs.push(sig);
    }
    // Keep sketches only for the largest tensors.
    let mut order: Vec<usize> = (0..sigs.len()).filter(|&i| !sigs[i].sketch.is_empty()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(sigs[i].elements()), sigs[i].hash));
    for &i in order.iter().skip(SKETCHES_MAX) {
        sigs[i].sketch.clear();
    }
    sigs.sort_by(|a, b| (a.hash, &a.dims).cmp(&(b.hash, &b.dims)));
    let mut all = Vec::with_capacity(sigs.len() * 32);
    for s in &sigs {
        all.extend_from_slice(&s.hash.0);
    }
    Ok(Fingerprint { weights: Hash32::tagged("deed weights v1", &all), tensors: sigs })
}

fn corr(a: &[i8], b: &[i8]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let n = a.len() as f64;
    let ma = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let mb = b.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa == 0.0 || sbb == 0.0 { 0.0 } else { sab / (saa * sbb).sqrt() }
}

/// How much of one model's weights is found in the other, in [0, 1]; symmetric.
/// 1.0 for exact weight copies; see the module docs.
pub fn similarity(a: &Fingerprint, b: &Fingerprint) -> f64 {
    if a.weights == b.weights && !a.tensors.is_empty() {
        return 1.0;
    }
    let informative =
        |f: &Fingerprint| -> Vec<usize> { (0..f.tensors.len()).filter(|&i| !f.tensors[i].sketch.is_empty()).collect() };
    let (ia, ib) = (informative(a), informative(b));
    let mass = |f: &Fingerprint, idx: &[usize]| idx.iter().map(|&i| f.tensors[i].elements() as f64).sum::<f64>();
    let (ma, mb) = (mass(a, &ia), mass(b, &ib));
    if ma == 0.0 || mb == 0.0 {
        return 0.0;
    }
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for &i in &ia {
        let ta = &a.tensors[i];
        for &j in &ib {
            let tb = &b.tensors[j];
            if ta.dims != tb.dims {
                continue;
            }
            let c = if ta.hash == tb.hash { 1.0 } else { corr(&ta.sketch, &tb.sketch) };
            if c >= TENSOR_CORR_MIN {
                pairs.push((c, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let (mut used_a, mut used_b) = (vec![false; a.tensors.len()], vec![false; b.tensors.len()]);
    let mut score = 0.0;
    for (c, i, j) in pairs {
        if used_a[i] || used_b[j] {
            continue;
        }
        used_a[i] = true;
        used_b[j] = true;
        score += c * a.tensors[i].elements() as f64;
    }
    (score / ma.min(mb)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests::onnx_model;

    fn lcg(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = splitmix(s);
                ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
            })
            .collect()
    }

    fn fp(ts: &[(&str, Vec<u64>, Vec<f32>)]) -> Fingerprint {
        of_model(&onnx_model(ts), &FormatLimits::default(), &|_| None).unwrap()
    }

    #[test]
    fn copies_and_strangers() {
        let (w1, w2) = (lcg(1, 64 * 128), lcg(2, 128 * 10));
        let base = fp(&[("w1", vec![64, 128], w1.clone()), ("w2", vec![128, 10], w2.clone())]);
        // renamed and reordered: same weights hash
        let renamed = fp(&[("b", vec![128, 10], w2.clone()), ("a", vec![64, 128], w1.clone())]);
        assert_eq!(base.weights, renamed.weights);
        assert_eq!(similarity(&base, &renamed), 1.0);
        // noise
        let noisy: Vec<f32> = w1.iter().zip(lcg(9, w1.len())).map(|(a, n)| a + 0.1 * n).collect();
        let s = similarity(&base, &fp(&[("w1", vec![64, 128], noisy), ("w2", vec![128, 10], w2.clone())]));
        assert!(s > 0.9, "{s}");
        // a stranger
        let other = fp(&[("w1", vec![64, 128], lcg(3, 64 * 128)), ("w2", vec![128, 10], lcg(4, 1280))]);
        let s = similarity(&base, &other);
        assert!(s < 0.1, "{s}");
    }
}

//! Deterministic ONNX inference: parse under limits, plan, reproducible kernels, per-segment trace commitments.
//!
//! ```text
//! let model = Model::load(&bytes)?;                       // every check happens here
//! let out = model.run(&inputs, &RunOptions::default())?;  // same bits on every machine
//! out.output_hash(); out.trace_root();                    // what a receipt commits to
//! ```
//!
//! # Determinism
//!
//! Every operator is a plain scalar kernel whose loop order is its specification
//! (DESIGN.md §3). The orders that matter are written next to the code and repeated in
//! docs/PROTOCOL.md:
//! - dot products (MatMul, Gemm, Conv): sequential `fma` in blocks of 256, block sums
//!   added in order — [`ops::linalg`];
//! - Gemm: `alpha × dot`, then `+ beta × c` — [`ops::linalg`];
//! - Conv: im2col order of the weight tensor, `+0.0` in the padding, bias added after —
//!   [`ops::conv`];
//! - Softmax: max, `exp(x − max)`, sequential sum, divide — [`ops::reduce`];
//! - exp, tanh, sigmoid: the engine's own — [`math`];
//! - Cast: saturating float → int, NaN → 0 — [`ops::shape`].
//!
//! Threads ([`RunOptions::threads`]) only split independent output rows or positions,
//! never a reduction, so the result does not depend on the thread count. Threads are
//! taken from one process-wide pool of persistent workers that runs each operator's fixed
//! list of parts (`pool`: which thread runs a part never changes what it computes).
//!
//! # Kernel paths
//!
//! MatMul, Gemm and Conv run on a [`kernels::KernelPath`]: the scalar `reference` (the
//! specification) or a blocked, packed path (`scalar`, `avx2`, `avx512`) that gives the
//! same bits ([`kernels`] says why). [`Model::run`] uses `DEED_ENGINE_KERNELS` (`auto`
//! when unset: the widest path the CPU has, detected at run time);
//! [`Model::run_with_kernels`] picks one explicitly.
//!
//! # Trace
//!
//! Nodes run in the order fixed at load: Kahn's topological sort taking the ready node
//! that comes first in the file (a file already in topological order runs in file order).
//! That order is cut into *segments* of [`TRACE_SEGMENT_OPS`] nodes (the last may be
//! shorter), and the trace holds one [`Hash32`] per segment: BLAKE3 over the
//! concatenation of the canonical encodings ([`Tensor::encode_into`]) of the values the
//! segment *exports* — those its nodes produce that a later segment reads or that are
//! graph outputs — in order of (node position, output position). A segment that exports
//! nothing hashes the empty string. Constant nodes are nodes like any other.
//! [`RunOutput::trace_root`] is [`deed_types::merkle::root`] of that list. With
//! [`RunOptions::trace`] off the list is empty.
//!
//! A fraud proof names one segment; validators replay its nodes from the values it
//! reads ([`Model::replay_entry`]). Values internal to a segment are not hashed: that is
//! what keeps tracing cheap (under `deed-engine/2` every node's outputs were hashed,
//! 269 MB per BERT-base run; per segment it is 22 MB).
//!
//! # Spec version
//!
//! [`SPEC_VERSION`] names these semantics; any change that alters an output bit or the
//! trace bumps it. `deed-engine/2`: every NaN is encoded and hashed as the canonical
//! quiet NaN (in `/1` a NaN's sign and payload, which the hardware picks, reached the
//! output hash and the trace, so two honest machines could disagree). `deed-engine/3`:
//! one trace entry per segment of [`TRACE_SEGMENT_OPS`] nodes instead of one per node.

mod error;
mod infer;
pub mod kernels;
mod load;
pub mod math;
mod model;
pub mod onnx;
pub mod ops;
mod plan;
mod pool;
mod replay;
mod scan;
mod trace;

pub use error::{LoadError, RunError};
pub use infer::Dim;
pub use load::is_bare_file_name;
pub use model::Model;

/// Where a model's external tensor data is read from (see [`Model::load_external`]).
/// The engine asks only for the exact bytes of each tensor; an implementation checks
/// what it reads (a content-addressed store verifies every range) and answers with an
/// error message for anything it cannot serve.
pub trait ExternalData {
    /// `length` bytes at `offset` of the file named `location` (a bare file name).
    fn read(&self, location: &str, offset: u64, length: usize) -> Result<Vec<u8>, String>;
}
pub use replay::Source;
pub use trace::TRACE_SEGMENT_OPS;

#[cfg(doc)]
use deed_types::Tensor;
use deed_types::{DType, Hash32, TensorSet};

/// The version of the engine's semantics, recorded in every receipt.
pub const SPEC_VERSION: &str = "deed-engine/3";

/// Bounds on everything that comes from outside. Loading or running past one is an
/// error, never a crash or an unbounded allocation.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest model file, in bytes.
    pub model_bytes_max: usize,
    /// Largest estimated in-memory size of the decoded protobuf, in bytes (protobuf
    /// expands; see the wire scan in the loader).
    pub decoded_bytes_max: usize,
    /// Most nodes in the graph.
    pub nodes_max: usize,
    /// Most bytes of initializer data, summed over all initializers.
    pub initializer_bytes_max: usize,
    /// Most elements of any one tensor: initializers, inputs, intermediates, outputs.
    pub tensor_elements_max: usize,
    /// Highest rank of any tensor.
    pub rank_max: usize,
    /// Most elements over all inputs of one run.
    pub input_elements_max: usize,
    /// Most work one node may do: multiply-adds for MatMul, Gemm and Conv, window reads
    /// for MaxPool. Bounds the time a small hostile model can demand.
    pub op_work_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            model_bytes_max: 2 << 30,
            decoded_bytes_max: 4 << 30,
            nodes_max: 100_000,
            initializer_bytes_max: 2 << 30,
            tensor_elements_max: deed_types::tensor::TENSOR_ELEMENTS_MAX,
            rank_max: deed_types::tensor::TENSOR_RANK_MAX,
            input_elements_max: deed_types::tensor::TENSOR_ELEMENTS_MAX,
            op_work_max: 1 << 40,
        }
    }
}

/// A graph input or output as the model declares it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IoInfo {
    /// The tensor's name.
    pub name: String,
    /// Element type (serialized by its JSON name, e.g. `"float32"`).
    #[serde(serialize_with = "dtype_name")]
    pub dtype: DType,
    /// Dimensions; `None` for a dynamic one (a `dim_param` or unknown). For an output,
    /// the declared shape with what load-time shape inference found filled in (an output
    /// whose model declares no shape reports the inferred one); an output whose rank is
    /// neither declared nor inferred reports an empty list.
    pub shape: Vec<Option<usize>>,
    /// Per dimension, the symbolic name of a dynamic dim (`"batch"`) where one is known:
    /// an input's `dim_param`, or for an output the name inference carried to it. Empty
    /// when no dim has a name (and then not serialized, so the JSON of models without
    /// symbolic dims is unchanged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dim_names: Vec<Option<String>>,
}

impl IoInfo {
    /// `shape` and `dim_names` from inferred dims.
    pub(crate) fn set_dims(&mut self, dims: &[Dim]) {
        self.shape = dims.iter().map(|d| if let Dim::Known(n) = d { Some(*n) } else { None }).collect();
        self.dim_names = dims.iter().map(|d| if let Dim::Sym(s) = d { Some(s.clone()) } else { None }).collect();
        if self.dim_names.iter().all(Option::is_none) {
            self.dim_names.clear();
        }
    }
}

fn dtype_name<S: serde::Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads for large kernels; 0 means all cores. Never changes the result.
    pub threads: usize,
    /// Whether to compute the per-node trace.
    pub trace: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { threads: 1, trace: true }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// Exactly the graph outputs, by name.
    pub outputs: TensorSet,
    /// One hash per trace segment, in execution order (empty when tracing was off).
    pub trace: Vec<Hash32>,
}

impl RunOutput {
    /// The hash of the outputs' canonical encoding ([`TensorSet::hash`]).
    pub fn output_hash(&self) -> Hash32 {
        self.outputs.hash()
    }

    /// The Merkle root of the trace.
    pub fn trace_root(&self) -> Hash32 {
        deed_types::merkle::root(&self.trace)
    }
}

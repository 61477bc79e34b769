//! Errors from loading a model and from running it, worded for the person who sent it.

use deed_types::DType;

/// Why a model could not be loaded. Every unsupported feature is found here, at load
/// time, never in the middle of a run.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not an ONNX model (not a protobuf `ModelProto`, truncated, or without a graph).
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),
    /// Something in the model is over one of the engine's [`Limits`](crate::Limits).
    #[error("model {what} is {value}, over the limit of {max}")]
    OverLimit {
        /// What was measured ("size in bytes", "node count", ...).
        what: String,
        /// The measured value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// A node uses an operator the engine does not implement.
    #[error("unsupported operator '{op}' (domain '{domain}', opset {opset})")]
    UnsupportedOp {
        /// The operator type, e.g. `LSTM`.
        op: String,
        /// The operator's domain (`ai.onnx` for the default domain).
        domain: String,
        /// The opset version the model imports for that domain (0 when it imports none).
        opset: i64,
    },
    /// The model imports a version of the default ONNX operator set the engine does not implement.
    #[error("unsupported ONNX opset {version} (deed-engine supports opsets {min} to {max})")]
    UnsupportedOpset {
        /// The imported version.
        version: i64,
        /// Lowest supported version.
        min: i64,
        /// Highest supported version.
        max: i64,
    },
    /// A tensor keeps its data in an external file and the model was loaded without a
    /// source of external data ([`Model::load`](crate::Model::load)).
    #[error(
        "tensor '{0}' keeps its data in an external file; load it as a bundle (graph + weights), \
         or save the model with all weights inside the .onnx file"
    )]
    ExternalData(String),
    /// A tensor's external data could not be read or does not fit the tensor.
    #[error("external data of tensor '{tensor}' (in '{location}'): {reason}")]
    External {
        /// The tensor.
        tensor: String,
        /// The file its data is in.
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// A supported operator is used with inputs, attributes or types the engine does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The model is malformed: a cycle, a dangling input, inconsistent data, a bad attribute.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// Load-time shape inference found shapes that cannot fit: a node that would fail on
    /// every input the model accepts (see the engine's `infer` module), or a graph output
    /// declared with a shape the graph does not compute.
    #[error("shapes do not fit at {node}: {reason}")]
    Shape {
        /// The node as a label, e.g. `node 'conv1' (Conv)`, or `graph output 'y'`.
        node: String,
        /// The operator type (empty for a graph output).
        op: String,
        /// The contradiction, with the shapes involved (`?` an unknown dim, a name a
        /// symbolic one).
        reason: String,
    },
}

/// Why a run failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A model input was not given.
    #[error("missing input '{0}': the model needs it")]
    MissingInput(String),
    /// A tensor was given that is not a model input.
    #[error("unexpected input '{0}': the model has no input of that name")]
    UnexpectedInput(String),
    /// An input has the wrong element type.
    #[error("input '{name}' has dtype {} but the model expects {}", .got.name(), .expected.name())]
    InputDtype {
        /// Input name.
        name: String,
        /// What the model declares.
        expected: DType,
        /// What was given.
        got: DType,
    },
    /// An input has the wrong rank or a wrong static dimension.
    #[error("input '{name}' has shape {got:?} but the model expects {expected}")]
    InputShape {
        /// Input name.
        name: String,
        /// The declared shape, dynamic dimensions by name, e.g. `[N, 16]`.
        expected: String,
        /// The shape given.
        got: Vec<usize>,
    },
    /// An input or an intermediate tensor is over one of the engine's [`Limits`](crate::Limits).
    #[error("{what} is {value}, over the limit of {max}")]
    OverLimit {
        /// What was measured.
        what: String,
        /// The measured value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The kernel path asked for (`DEED_ENGINE_KERNELS`) is unknown or not available on this CPU.
    #[error("{0}")]
    Kernels(String),
    /// A node could not compute its outputs (for example, shapes that do not broadcast).
    #[error("node '{node}' ({op}) failed: {reason}")]
    Op {
        /// The node's name (or `#index` when it has none).
        node: String,
        /// The operator type.
        op: String,
        /// What went wrong.
        reason: String,
    },
}

//! (in progress)

use super::{Kernel, attr::Attrs};
use crate::onnx::NodeProto;
use crate::{Limits, LoadError};
use std::sync::Arc;

/// The `ai.onnx.ml` operators the engine implements.
pub const ML_OPS: &[&str] = &[];

/// Parses an `ai.onnx.ml` node.
pub(crate) fn parse(
    node: &NodeProto,
    opset: i64,
    _a: &Attrs<'_>,
    _limits: &Limits,
) -> Result<Arc<dyn Kernel>, LoadError> {
    Err(LoadError::UnsupportedOp { op: node.op_type.clone(), domain: super::ML_DOMAIN.into(), opset })
}

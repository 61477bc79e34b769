//! (in progress)

use super::{Kernel, attr::Attrs};
use crate::LoadError;
use std::sync::Arc;

/// Parses the operators of this module.
pub(crate) fn parse(_op: &str, _opset: i64, _a: &Attrs<'_>) -> Result<Option<Arc<dyn Kernel>>, LoadError> {
    Ok(None)
}

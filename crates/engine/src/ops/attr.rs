//! Typed access to a node's attributes, with load-time errors that name the node.

use crate::LoadError;
use crate::onnx::{AttributeProto, NodeProto, TensorProto, attr_type};

/// A node's attributes, looked up by name (the first of duplicates wins, as in onnxruntime).
pub(crate) struct Attrs<'a> {
    node: &'a NodeProto,
    label: String,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a NodeProto, label: String) -> Self {
        Attrs { node, label }
    }

    /// A load error about this node.
    pub(crate) fn invalid(&self, msg: impl std::fmt::Display) -> LoadError {
        LoadError::Invalid(format!("{}: {msg}", self.label))
    }

    /// An "unsupported" load error about this node.
    pub(crate) fn unsupported(&self, msg: impl std::fmt::Display) -> LoadError {
        LoadError::Unsupported(format!("{}: {msg}", self.label))
    }

    /// How many outputs the node lists (including empty, optional ones).
    pub(crate) fn output_count(&self) -> usize {
        self.node.output.len()
    }

    /// A list of strings attribute.
    pub(crate) fn strings(&self, name: &str) -> Result<Option<Vec<String>>, LoadError> {
        match self.find(name, attr_type::STRINGS, "a list of strings")? {
            None => Ok(None),
            Some(a) => a
                .strings
                .iter()
                .map(|s| {
                    String::from_utf8(s.clone()).map_err(|_| self.invalid(format!("attribute '{name}' is not UTF-8")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
        }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.node.attribute.iter().any(|a| a.name == name)
    }

    fn find(&self, name: &str, ty: i32, ty_name: &str) -> Result<Option<&'a AttributeProto>, LoadError> {
        let Some(a) = self.node.attribute.iter().find(|a| a.name == name) else { return Ok(None) };
        if !a.ref_attr_name.is_empty() {
            return Err(self.invalid(format!("attribute '{name}' refers to a function attribute outside a function")));
        }
        if a.r#type != ty && a.r#type != attr_type::UNDEFINED {
            return Err(self.invalid(format!("attribute '{name}' must be {ty_name}")));
        }
        Ok(Some(a))
    }

    pub(crate) fn int_opt(&self, name: &str) -> Result<Option<i64>, LoadError> {
        Ok(self.find(name, attr_type::INT, "an int")?.map(|a| a.i))
    }

    pub(crate) fn int(&self, name: &str, default: i64) -> Result<i64, LoadError> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }

    pub(crate) fn float(&self, name: &str, default: f32) -> Result<f32, LoadError> {
        Ok(self.find(name, attr_type::FLOAT, "a float")?.map_or(default, |a| a.f))
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, LoadError> {
        Ok(self.find(name, attr_type::FLOATS, "a list of floats")?.map(|a| a.floats.clone()))
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, LoadError> {
        Ok(self.find(name, attr_type::INTS, "a list of ints")?.map(|a| a.ints.clone()))
    }

    pub(crate) fn string(&self, name: &str, default: &str) -> Result<String, LoadError> {
        match self.find(name, attr_type::STRING, "a string")? {
            None => Ok(default.to_owned()),
            Some(a) => String::from_utf8(a.s.clone())
                .map_err(|_| self.invalid(format!("attribute '{name}' is not valid UTF-8"))),
        }
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, LoadError> {
        match self.find(name, attr_type::TENSOR, "a tensor")? {
            None => Ok(None),
            Some(a) => a.t.as_ref().map(Some).ok_or_else(|| self.invalid(format!("attribute '{name}' has no tensor"))),
        }
    }
}

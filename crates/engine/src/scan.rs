//! A pass over the protobuf wire format before decoding, to bound the memory decoding
//! will take.
//!
//! Protobuf can expand a lot when decoded: two bytes (a tag and an empty length) become
//! a whole `NodeProto` or a 24-byte `String`, one byte of a packed varint becomes an
//! 8-byte `i64`. This scan walks exactly the fields that the [`onnx`](crate::onnx)
//! structs keep (others are skipped by prost without allocating), estimates the decoded
//! size generously, and refuses the model before decoding when the estimate is over
//! [`Limits::decoded_bytes_max`](crate::Limits::decoded_bytes_max). It also bounds nesting
//! depth, and reports malformed wire data as "not an ONNX model".

use crate::{Limits, LoadError};

/// Estimated cost of one decoded message (a generous bound on the largest struct).
const MESSAGE_COST: u64 = 512;
/// Estimated cost of one repeated scalar or one string header.
const FIELD_COST: u64 = 32;
/// Deepest nesting of messages followed (prost's own recursion limit is 100).
const DEPTH_MAX: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    SparseTensor,
    ValueInfo,
    Type,
    TypeTensor,
    Shape,
    Dim,
    /// `OperatorSetIdProto` and `StringStringEntryProto`: strings and scalars only.
    Flat,
}

/// How a field of a kept message decodes.
enum Kind {
    /// Not in the engine's structs: prost skips it.
    Skip,
    /// A scalar, or (wire type 2) a string or bytes or a packed fixed-width array.
    Plain,
    /// Possibly packed varints: each payload byte may become an 8-byte element.
    Varints,
    /// A nested message.
    Message(Msg),
}

fn kind(msg: Msg, field: u64) -> Kind {
    use Kind::*;
    match (msg, field) {
        (Msg::Model, 7) => Message(Msg::Graph),
        (Msg::Model, 8 | 14) => Message(Msg::Flat),
        (Msg::Model, 1..=5) => Plain,
        (Msg::Graph, 1) => Message(Msg::Node),
        (Msg::Graph, 5) => Message(Msg::Tensor),
        (Msg::Graph, 15) => Message(Msg::SparseTensor),
        (Msg::Graph, 11..=13) => Message(Msg::ValueInfo),
        (Msg::Graph, 2) => Plain,
        (Msg::Node, 5) => Message(Msg::Attribute),
        (Msg::Node, 1..=4 | 7) => Plain,
        (Msg::Attribute, 5 | 10) => Message(Msg::Tensor),
        (Msg::Attribute, 6 | 11) => Message(Msg::Graph),
        (Msg::Attribute, 22) => Message(Msg::SparseTensor),
        (Msg::Attribute, 8) => Varints,
        (Msg::Attribute, 1..=4 | 7 | 9 | 20 | 21) => Plain,
        (Msg::Tensor, 1 | 5 | 7 | 11) => Varints,
        (Msg::Tensor, 13) => Message(Msg::Flat),
        (Msg::Tensor, 2 | 4 | 6 | 8 | 9 | 10 | 14) => Plain,
        (Msg::SparseTensor, 1 | 2) => Message(Msg::Tensor),
        (Msg::SparseTensor, 3) => Varints,
        (Msg::ValueInfo, 2) => Message(Msg::Type),
        (Msg::ValueInfo, 1) => Plain,
        (Msg::Type, 1) => Message(Msg::TypeTensor),
        (Msg::TypeTensor, 2) => Message(Msg::Shape),
        (Msg::TypeTensor, 1) => Plain,
        (Msg::Shape, 1) => Message(Msg::Dim),
        (Msg::Dim, 1 | 2) => Plain,
        (Msg::Flat, 1 | 2) => Plain,
        _ => Skip,
    }
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn take<'a>(buf: &mut &'a [u8], n: u64) -> Result<&'a [u8], String> {
    let n = usize::try_from(n).ok().filter(|&n| n <= buf.len()).ok_or("truncated field")?;
    let (h, t) = buf.split_at(n);
    *buf = t;
    Ok(h)
}

fn walk(mut buf: &[u8], msg: Msg, depth: usize, cost: &mut u64) -> Result<(), String> {
    if depth > DEPTH_MAX {
        return Err(format!("messages nested deeper than {DEPTH_MAX}"));
    }
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return Err("field number 0".into());
        }
        let k = kind(msg, field);
        let add = match wire {
            0 => {
                varint(&mut buf)?;
                FIELD_COST
            }
            1 => {
                take(&mut buf, 8)?;
                FIELD_COST
            }
            5 => {
                take(&mut buf, 4)?;
                FIELD_COST
            }
            2 => {
                let len = varint(&mut buf)?;
                let payload = take(&mut buf, len)?;
                match k {
                    Kind::Message(m) => {
                        walk(payload, m, depth + 1, cost)?;
                        MESSAGE_COST
                    }
                    Kind::Varints => FIELD_COST + 8 * payload.len() as u64,
                    _ => FIELD_COST + payload.len() as u64,
                }
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        if !matches!(k, Kind::Skip) {
            *cost = cost.saturating_add(add);
        }
    }
    Ok(())
}

/// Checks the wire format of a `ModelProto` and its estimated decoded size.
pub(crate) fn check(bytes: &[u8], limits: &Limits) -> Result<(), LoadError> {
    let mut cost = 0u64;
    walk(bytes, Msg::Model, 0, &mut cost).map_err(|e| LoadError::NotOnnx(format!("malformed protobuf: {e}")))?;
    if cost > limits.decoded_bytes_max as u64 {
        return Err(LoadError::OverLimit {
            what: "estimated decoded size in bytes".into(),
            value: cost,
            max: limits.decoded_bytes_max as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{GraphProto, ModelProto, NodeProto};
    use prost::Message;

    #[test]
    fn counts_node_bombs() {
        let g = GraphProto { node: vec![NodeProto::default(); 10_000], ..Default::default() };
        let bytes = ModelProto { ir_version: 8, graph: Some(g), ..Default::default() }.encode_to_vec();
        assert!(bytes.len() < 30_000);
        let limits = Limits { decoded_bytes_max: 1 << 20, ..Limits::default() };
        assert!(matches!(check(&bytes, &limits), Err(LoadError::OverLimit { .. })));
        assert!(check(&bytes, &Limits::default()).is_ok());
    }

    #[test]
    fn malformed() {
        assert!(matches!(check(&[0x3a, 0x05, 0x01], &Limits::default()), Err(LoadError::NotOnnx(_))));
        assert!(matches!(check(&[0xff; 12], &Limits::default()), Err(LoadError::NotOnnx(_))));
        assert!(check(&[], &Limits::default()).is_ok());
    }
}

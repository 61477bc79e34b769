//! Mutations of a seed model: blind byte edits, protobuf-wire edits (length inflation)
//! and edits of the decoded model (extreme integers and floats, rewired inputs, swapped
//! operator types, changed dtypes, dropped nodes). Each carries its own numbers, which
//! are taken modulo whatever they index, so any value is a valid mutation; bolero
//! generates and shrinks them.

use bolero::TypeGenerator;
use deed_engine::onnx::{AttributeProto, GraphProto, ModelProto, TensorProto};
use prost::Message;

/// One edit of a model file.
#[derive(Clone, Debug, TypeGenerator)]
pub enum Mutation {
    /// Flip one bit.
    FlipBit { at: u32, bit: u8 },
    /// Overwrite one byte.
    SetByte { at: u32, value: u8 },
    /// Cut the file.
    Truncate { at: u32 },
    /// Remove a range.
    Delete { at: u32, len: u16 },
    /// Repeat a range right after itself.
    Duplicate { at: u32, len: u16 },
    /// Insert a range of another seed.
    Splice { other: u16, from: u32, len: u16, at: u32 },
    /// Rewrite the length varint of a length-delimited field (nested fields included).
    Length { nth: u16, how: u8 },
    /// Set an integer of the decoded model (a dim, an attribute, int64 data, an opset).
    Int { nth: u16, how: u8 },
    /// Set a float of the decoded model (an attribute, float data).
    Float { nth: u16, how: u8 },
    /// Point a node input at another value name (making cycles, dangling names and
    /// arity changes), or append one.
    Rewire { node: u16, input: u8, to: u16 },
    /// Change a node's operator type.
    Op { node: u16, op: u8 },
    /// Change the data type of an initializer or a graph input.
    Dtype { nth: u16, code: u8 },
    /// Remove a node.
    DropNode { node: u16 },
}

/// Operator types a node may be switched to, with their domain: every one the engine
/// implements (`ops::SUPPORTED_OPS`, `ops::EXT_OPS` and the `ai.onnx.ml` ones).
fn ops() -> &'static [(&'static str, &'static str)] {
    use deed_engine::ops::{EXT_OPS, ML_DOMAIN, SUPPORTED_OPS, ml::ML_OPS};
    static OPS: std::sync::OnceLock<Vec<(&str, &str)>> = std::sync::OnceLock::new();
    OPS.get_or_init(|| {
        let default = SUPPORTED_OPS.iter().chain(EXT_OPS).map(|op| ("", *op));
        default.chain(ML_OPS.iter().map(|op| (ML_DOMAIN, *op))).collect()
    })
}

const DTYPES: &[i32] = &[1, 6, 7, 9, 11, 2, 3, 4, 5, 12, 13, 10, 8, 0, 16];

fn pos(at: u32, len: usize) -> usize {
    if len == 0 { 0 } else { at as usize % (len + 1) }
}

/// Applies `m` to `bytes`; `seeds` are the other files a splice may take from.
pub fn apply(m: &Mutation, bytes: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    match *m {
        Mutation::FlipBit { at, bit } => {
            if !bytes.is_empty() {
                let i = at as usize % bytes.len();
                bytes[i] ^= 1 << (bit % 8);
            }
        }
        Mutation::SetByte { at, value } => {
            if !bytes.is_empty() {
                let i = at as usize % bytes.len();
                bytes[i] = value;
            }
        }
        Mutation::Truncate { at } => bytes.truncate(pos(at, bytes.len())),
        Mutation::Delete { at, len } => {
            let a = pos(at, bytes.len());
            let b = (a + len as usize).min(bytes.len());
            bytes.drain(a..b);
        }
        Mutation::Duplicate { at, len } => {
            let a = pos(at, bytes.len());
            let b = (a + len as usize).min(bytes.len());
            let chunk = bytes[a..b].to_vec();
            bytes.splice(b..b, chunk);
        }
        Mutation::Splice { other, from, len, at } => {
            if seeds.is_empty() {
                return;
            }
            let o = &seeds[other as usize % seeds.len()];
            let a = pos(from, o.len());
            let b = (a + len as usize).min(o.len());
            let at = pos(at, bytes.len());
            bytes.splice(at..at, o[a..b].iter().copied());
        }
        Mutation::Length { nth, how } => inflate_length(bytes, nth as usize, how),
        Mutation::Int { nth, how } => edit_model(bytes, |p| {
            let n = count_ints(p);
            let mut k = nth as usize % n.max(1);
            for_each_int(p, &mut |v| {
                if k == 0 {
                    *v = extreme_int(*v, how);
                }
                k = k.wrapping_sub(1);
            });
        }),
        Mutation::Float { nth, how } => edit_model(bytes, |p| {
            let mut n = 0;
            for_each_float(p, &mut |_| n += 1);
            let mut k = nth as usize % n.max(1);
            for_each_float(p, &mut |v| {
                if k == 0 {
                    *v =
                        [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e30, -1e30, 1e-45, f32::MAX, 0.5, 3.0]
                            [how as usize % 11];
                }
                k = k.wrapping_sub(1);
            });
        }),
        Mutation::Rewire { node, input, to } => edit_model(bytes, |p| {
            let Some(g) = p.graph.as_mut() else { return };
            if g.node.is_empty() {
                return;
            }
            let mut names: Vec<String> = vec![String::new(), "ghost".into()];
            names.extend(g.input.iter().map(|v| v.name.clone()));
            names.extend(g.initializer.iter().map(|t| t.name.clone()));
            names.extend(g.node.iter().flat_map(|n| n.output.iter().cloned()));
            let name = names[to as usize % names.len()].clone();
            let n = node as usize % g.node.len();
            let ins = &mut g.node[n].input;
            let i = input as usize % (ins.len() + 1);
            if i == ins.len() {
                ins.push(name);
            } else {
                ins[i] = name;
            }
        }),
        Mutation::Op { node, op } => edit_model(bytes, |p| {
            let Some(g) = p.graph.as_mut() else { return };
            if !g.node.is_empty() {
                let n = node as usize % g.node.len();
                let (domain, op) = ops()[op as usize % ops().len()];
                g.node[n].op_type = op.into();
                g.node[n].domain = domain.into();
            }
        }),
        Mutation::Dtype { nth, code } => edit_model(bytes, |p| {
            let Some(g) = p.graph.as_mut() else { return };
            let code = DTYPES[code as usize % DTYPES.len()];
            let n = g.initializer.len() + g.input.len();
            if n == 0 {
                return;
            }
            let k = nth as usize % n;
            if k < g.initializer.len() {
                g.initializer[k].data_type = code;
            } else if let Some(tt) =
                g.input[k - g.initializer.len()].r#type.as_mut().and_then(|t| t.tensor_type.as_mut())
            {
                tt.elem_type = code;
            }
        }),
        Mutation::DropNode { node } => edit_model(bytes, |p| {
            let Some(g) = p.graph.as_mut() else { return };
            if !g.node.is_empty() {
                let n = node as usize % g.node.len();
                g.node.remove(n);
            }
        }),
    }
}

/// Decodes, edits and re-encodes; a file that does not decode is left alone.
fn edit_model(bytes: &mut Vec<u8>, f: impl FnOnce(&mut ModelProto)) {
    if let Ok(mut p) = ModelProto::decode(bytes.as_slice()) {
        f(&mut p);
        *bytes = p.encode_to_vec();
    }
}

fn extreme_int(v: i64, how: u8) -> i64 {
    const VALUES: [i64; 17] = [
        0,
        1,
        2,
        3,
        -1,
        -2,
        7,
        64,
        1 << 16,
        (1 << 31) - 1,
        1 << 31,
        1 << 32,
        1 << 62,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        -(1 << 31),
    ];
    match how as usize % 20 {
        17 => v.wrapping_add(1),
        18 => v.wrapping_sub(1),
        19 => v.wrapping_mul(2),
        k => VALUES[k],
    }
}

fn count_ints(p: &mut ModelProto) -> usize {
    let mut n = 0;
    for_each_int(p, &mut |_| n += 1);
    n
}

/// Every integer that shapes or parametrizes the model, in a fixed order.
fn for_each_int(p: &mut ModelProto, f: &mut dyn FnMut(&mut i64)) {
    for o in &mut p.opset_import {
        f(&mut o.version);
    }
    if let Some(g) = p.graph.as_mut() {
        graph_ints(g, f, 0);
    }
}

fn graph_ints(g: &mut GraphProto, f: &mut dyn FnMut(&mut i64), depth: usize) {
    for t in &mut g.initializer {
        tensor_ints(t, f);
    }
    for v in g.input.iter_mut().chain(&mut g.output).chain(&mut g.value_info) {
        if let Some(s) = v.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()).and_then(|t| t.shape.as_mut()) {
            for d in &mut s.dim {
                if let Some(x) = d.dim_value.as_mut() {
                    f(x);
                }
            }
        }
    }
    for n in &mut g.node {
        for a in &mut n.attribute {
            attr_ints(a, f, depth);
        }
    }
}

fn attr_ints(a: &mut AttributeProto, f: &mut dyn FnMut(&mut i64), depth: usize) {
    f(&mut a.i);
    a.ints.iter_mut().for_each(&mut *f);
    if let Some(t) = a.t.as_mut() {
        tensor_ints(t, f);
    }
    if depth < 4
        && let Some(g) = a.g.as_mut()
    {
        graph_ints(g, f, depth + 1);
    }
}

fn tensor_ints(t: &mut TensorProto, f: &mut dyn FnMut(&mut i64)) {
    t.dims.iter_mut().for_each(&mut *f);
    t.int64_data.iter_mut().for_each(&mut *f);
}

/// Every float attribute and float32 data value.
fn for_each_float(p: &mut ModelProto, f: &mut dyn FnMut(&mut f32)) {
    let Some(g) = p.graph.as_mut() else { return };
    for t in &mut g.initializer {
        t.float_data.iter_mut().for_each(&mut *f);
    }
    for n in &mut g.node {
        for a in &mut n.attribute {
            f(&mut a.f);
            a.floats.iter_mut().for_each(&mut *f);
            if let Some(t) = a.t.as_mut() {
                t.float_data.iter_mut().for_each(&mut *f);
            }
        }
    }
}

/// A length-delimited field found in the wire data: where its length varint is and how
/// long the payload claims to be.
struct Field {
    len_at: usize,
    len_end: usize,
    len: u64,
}

fn read_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        if shift < 64 {
            v |= u64::from(byte & 0x7f) << shift;
        }
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Collects the length-delimited fields of `b[start..end]`, following payloads that
/// themselves parse as messages. Returns false when the range is not a well-formed
/// message.
fn wire_fields(b: &[u8], start: usize, end: usize, out: &mut Vec<Field>, depth: usize) -> bool {
    let mut i = start;
    let mut found = vec![];
    while i < end {
        let Some(tag) = read_varint(&b[..end], &mut i) else { return false };
        if tag >> 3 == 0 {
            return false;
        }
        match tag & 7 {
            0 => {
                if read_varint(&b[..end], &mut i).is_none() {
                    return false;
                }
            }
            1 => i += 8,
            5 => i += 4,
            2 => {
                let len_at = i;
                let Some(len) = read_varint(&b[..end], &mut i) else { return false };
                let len_end = i;
                let Some(next) = usize::try_from(len).ok().and_then(|l| i.checked_add(l)).filter(|&n| n <= end) else {
                    return false;
                };
                found.push((Field { len_at, len_end, len }, i, next));
                i = next;
            }
            _ => return false,
        }
    }
    if i != end {
        return false;
    }
    for (f, s, e) in found {
        out.push(f);
        if depth < 16 && out.len() < 4096 {
            let mut inner = vec![];
            if wire_fields(b, s, e, &mut inner, depth + 1) {
                out.extend(inner);
            }
        }
    }
    true
}

/// Rewrites the length of the `nth` length-delimited field (in file order of discovery).
fn inflate_length(bytes: &mut Vec<u8>, nth: usize, how: u8) {
    let mut fields = vec![];
    wire_fields(bytes, 0, bytes.len(), &mut fields, 0);
    if fields.is_empty() {
        return;
    }
    let f = &fields[nth % fields.len()];
    let len = match how % 9 {
        0 => f.len + 1,
        1 => f.len.saturating_sub(1),
        2 => f.len * 2 + 1,
        3 => 0,
        4 => (1 << 31) - 1,
        5 => 1 << 32,
        6 => 1 << 62,
        7 => u64::MAX,
        _ => f.len + bytes.len() as u64,
    };
    let mut enc = vec![];
    let mut v = len;
    while v >= 0x80 {
        enc.push((v as u8) | 0x80);
        v >>= 7;
    }
    enc.push(v as u8);
    bytes.splice(f.len_at..f.len_end, enc);
}

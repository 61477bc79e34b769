//! Loading: decode the protobuf under limits, convert tensors, resolve names to value
//! slots, reject anything unsupported, check dtypes, and fix the execution order.
//!
//! **Execution order** (part of the engine spec, since the trace follows it): Kahn's
//! topological sort that, whenever several nodes are ready, takes the one that comes
//! first in the file. A file whose nodes are already in topological order (as ONNX
//! requires) therefore runs in file order.

use crate::infer::{self, Fact};
use crate::model::{Model, Node};
use crate::onnx::{self, ModelProto, TensorProto, ValueInfoProto};
use crate::ops::{ML_DOMAIN, ML_OPSET_MAX, OPSET_MAX, OPSET_MIN, Op};
use crate::{ExternalData, IoInfo, Limits, LoadError};
use deed_types::{DType, Tensor, TensorData};
use prost::Message;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

fn over(what: impl Into<String>, value: u64, max: usize) -> LoadError {
    LoadError::OverLimit { what: what.into(), value, max: max as u64 }
}

/// ONNX's name for a data type code, for error messages.
fn onnx_type_name(code: i32) -> &'static str {
    match code {
        0 => "UNDEFINED",
        8 => "STRING",
        10 => "FLOAT16",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        17..=20 => "FLOAT8",
        21 | 22 => "4-bit integer",
        _ => "unknown",
    }
}

/// Converts a `TensorProto` (an initializer or a Constant's value) under the limits.
/// External data is refused.
pub(crate) fn tensor_from_proto(tp: &TensorProto, limits: &Limits, what: &str) -> Result<Tensor, LoadError> {
    tensor_from_proto_ext(tp, limits, what, None)
}

/// True when a file name is acceptable as an external-data `location`: a bare name (no
/// folder, drive or stream separator, not hidden, not `.`/`..`), at most 255 bytes.
pub fn is_bare_file_name(location: &str) -> bool {
    !location.is_empty()
        && location.len() <= 255
        && !location.starts_with('.')
        && !location.contains(['/', '\\', ':', '\0'])
}

/// Reads an external-data tensor's bytes (`want` of them) through `ext`, after checking
/// its `location`, `offset` and `length` entries.
fn read_external(tp: &TensorProto, ext: &dyn ExternalData, want: usize, what: &str) -> Result<Vec<u8>, LoadError> {
    let name = &tp.name;
    let (mut location, mut offset, mut length) = (None, 0u64, None);
    for e in &tp.external_data {
        let bad = |why: &str| LoadError::Invalid(format!("{what} '{name}': external data {why}"));
        match e.key.as_str() {
            "location" => location = Some(e.value.as_str()),
            "offset" => offset = e.value.parse().map_err(|_| bad(&format!("offset '{}' is not a number", e.value)))?,
            "length" => {
                length =
                    Some(e.value.parse::<u64>().map_err(|_| bad(&format!("length '{}' is not a number", e.value)))?)
            }
            "checksum" => {} // Optional SHA-1 of the data; the weights are content-addressed anyway.
            k => return Err(bad(&format!("has an unknown key '{k}'"))),
        }
    }
    let location =
        location.ok_or_else(|| LoadError::Invalid(format!("{what} '{name}': external data without a location")))?;
    let fail = |reason: String| LoadError::External { tensor: name.clone(), location: location.to_string(), reason };
    if !is_bare_file_name(location) {
        return Err(fail("the location must be a bare file name (no folders)".into()));
    }
    if !tp.raw_data.is_empty() {
        return Err(fail("the tensor also has inline data".into()));
    }
    if let Some(l) = length
        && l != want as u64
    {
        return Err(fail(format!("length {l} does not match the tensor's {want} bytes")));
    }
    if offset.checked_add(want as u64).is_none() {
        return Err(fail(format!("offset {offset} + length {want} overflows")));
    }
    let bytes = ext.read(location, offset, want).map_err(fail)?;
    if bytes.len() != want {
        return Err(fail(format!("read {} bytes, wanted {want}", bytes.len())));
    }
    Ok(bytes)
}

/// [`tensor_from_proto`], reading external data through `ext` when given.
fn tensor_from_proto_ext(
    tp: &TensorProto,
    limits: &Limits,
    what: &str,
    ext: Option<&dyn ExternalData>,
) -> Result<Tensor, LoadError> {
    let name = &tp.name;
    let external = tp.data_location == onnx::DATA_LOCATION_EXTERNAL || !tp.external_data.is_empty();
    if external && ext.is_none() {
        return Err(LoadError::ExternalData(name.clone()));
    }
    let dtype = DType::from_code(tp.data_type).ok_or_else(|| {
        LoadError::Unsupported(format!(
            "{what} '{name}' has data type {} ({}), which deed does not support",
            tp.data_type,
            onnx_type_name(tp.data_type)
        ))
    })?;
    if tp.dims.len() > limits.rank_max {
        return Err(over(format!("rank of {what} '{name}'"), tp.dims.len() as u64, limits.rank_max));
    }
    let mut shape = Vec::with_capacity(tp.dims.len());
    for &d in &tp.dims {
        let d = usize::try_from(d)
            .map_err(|_| LoadError::Invalid(format!("{what} '{name}' has a negative dimension {d}")))?;
        shape.push(d);
    }
    let n =
        deed_types::tensor::element_count(&shape).filter(|&n| n <= limits.tensor_elements_max).ok_or_else(|| {
            over(format!("element count of {what} '{name}' {shape:?}"), u64::MAX, limits.tensor_elements_max)
        })?;
    let data = if let (true, Some(ext)) = (external, ext) {
        let bytes = read_external(tp, ext, n * dtype.size(), what)?;
        TensorData::from_le(dtype, &bytes).map_err(|e| LoadError::Invalid(format!("{what} '{name}': {e}")))?
    } else if !tp.raw_data.is_empty() {
        let want = n * dtype.size();
        if tp.raw_data.len() != want {
            return Err(LoadError::Invalid(format!(
                "{what} '{name}' has {} bytes of data but its shape {shape:?} of {} needs {want}",
                tp.raw_data.len(),
                dtype.name()
            )));
        }
        TensorData::from_le(dtype, &tp.raw_data).map_err(|e| LoadError::Invalid(format!("{what} '{name}': {e}")))?
    } else {
        let count_err = |got: usize| {
            LoadError::Invalid(format!("{what} '{name}' has {got} values but its shape {shape:?} needs {n}"))
        };
        let range_err = || LoadError::Invalid(format!("{what} '{name}' has a value out of range for {}", dtype.name()));
        macro_rules! typed {
            ($field:ident, $var:ident, $t:ty) => {{
                if tp.$field.len() != n {
                    return Err(count_err(tp.$field.len()));
                }
                TensorData::$var(
                    tp.$field.iter().map(|&v| <$t>::try_from(v).map_err(|_| range_err())).collect::<Result<_, _>>()?,
                )
            }};
        }
        match dtype {
            DType::F32 => {
                if tp.float_data.len() != n {
                    return Err(count_err(tp.float_data.len()));
                }
                TensorData::F32(tp.float_data.clone())
            }
            DType::F64 => {
                if tp.double_data.len() != n {
                    return Err(count_err(tp.double_data.len()));
                }
                TensorData::F64(tp.double_data.clone())
            }
            DType::I64 => typed!(int64_data, I64, i64),
            DType::I32 => typed!(int32_data, I32, i32),
            DType::I16 => typed!(int32_data, I16, i16),
            DType::I8 => typed!(int32_data, I8, i8),
            DType::U16 => typed!(int32_data, U16, u16),
            DType::U8 => typed!(int32_data, U8, u8),
            DType::U32 => typed!(uint64_data, U32, u32),
            DType::U64 => typed!(uint64_data, U64, u64),
            DType::Bool => {
                if tp.int32_data.len() != n {
                    return Err(count_err(tp.int32_data.len()));
                }
                TensorData::Bool(
                    tp.int32_data
                        .iter()
                        .map(|&v| match v {
                            0 => Ok(false),
                            1 => Ok(true),
                            _ => Err(range_err()),
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
        }
    };
    Ok(Tensor { shape, data })
}

/// A graph input or output's declared type: dtype (absent: to be inferred), dims, and
/// the shape as text with dim names (`[N, 16]`).
type IoDecl = (Option<DType>, Vec<Option<usize>>, String);

/// Reads a graph input's or output's declared type.
fn io_info(vi: &ValueInfoProto, kind: &str, limits: &Limits, need_shape: bool) -> Result<IoDecl, LoadError> {
    let name = &vi.name;
    let Some(tt) = vi.r#type.as_ref().map(|t| t.tensor_type.as_ref()) else {
        // No type at all: allowed for outputs (inferred), not for inputs.
        if need_shape {
            return Err(LoadError::Invalid(format!("{kind} '{name}' declares no type")));
        }
        return Ok((None, vec![], "[?]".into()));
    };
    let tt = tt.ok_or_else(|| {
        LoadError::Unsupported(format!(
            "{kind} '{name}' is not a tensor (sequences, maps and optionals are not supported)"
        ))
    })?;
    let dtype = match tt.elem_type {
        0 if !need_shape => None,
        code => Some(DType::from_code(code).ok_or_else(|| {
            LoadError::Unsupported(format!(
                "{kind} '{name}' has data type {code} ({}), which deed does not support",
                onnx_type_name(code)
            ))
        })?),
    };
    let Some(shape) = &tt.shape else {
        if need_shape {
            return Err(LoadError::Unsupported(format!(
                "{kind} '{name}' declares no shape; deed needs every model input's rank"
            )));
        }
        return Ok((dtype, vec![], "[?]".into()));
    };
    if shape.dim.len() > limits.rank_max {
        return Err(over(format!("rank of {kind} '{name}'"), shape.dim.len() as u64, limits.rank_max));
    }
    let mut dims = Vec::with_capacity(shape.dim.len());
    let mut text = Vec::with_capacity(shape.dim.len());
    for d in &shape.dim {
        match (d.dim_value, &d.dim_param) {
            (Some(v), _) if v >= 0 => {
                let v = usize::try_from(v).ok().filter(|&v| v <= limits.tensor_elements_max).ok_or_else(|| {
                    over(format!("a dimension of {kind} '{name}'"), v as u64, limits.tensor_elements_max)
                })?;
                dims.push(Some(v));
                text.push(v.to_string());
            }
            (_, Some(p)) if !p.is_empty() => {
                dims.push(None);
                text.push(p.clone());
            }
            _ => {
                dims.push(None);
                text.push("?".into());
            }
        }
    }
    Ok((dtype, dims, format!("[{}]", text.join(", "))))
}

/// Value slots under construction: name → id, and per id its dtype and constant value.
#[derive(Default)]
struct Values {
    ids: BTreeMap<String, usize>,
    dtypes: Vec<Option<DType>>,
    consts: Vec<Option<Tensor>>,
}

impl Values {
    fn add(&mut self, name: &str, dtype: Option<DType>, c: Option<Tensor>) -> usize {
        let id = self.dtypes.len();
        self.ids.insert(name.to_owned(), id);
        self.dtypes.push(dtype);
        self.consts.push(c);
        id
    }
}

/// Parses and checks a model (see [`Model::load_with`]).
pub(crate) fn load(bytes: &[u8], limits: &Limits, ext: Option<&dyn ExternalData>) -> Result<Model, LoadError> {
    if bytes.len() > limits.model_bytes_max {
        return Err(over("size in bytes", bytes.len() as u64, limits.model_bytes_max));
    }
    crate::scan::check(bytes, limits)?;
    let mut mp =
        ModelProto::decode(bytes).map_err(|e| LoadError::NotOnnx(format!("the protobuf does not decode: {e}")))?;
    // Initializers are moved out of the protobuf and each one's bytes freed once converted,
    // so the decoded copy of the weights and the converted tensors are never all alive at once.
    let initializers = mp.graph.as_mut().map(|g| std::mem::take(&mut g.initializer)).unwrap_or_default();
    let graph = mp.graph.as_ref().ok_or_else(|| LoadError::NotOnnx("the file contains no graph".into()))?;
    if mp.ir_version <= 0 {
        return Err(LoadError::NotOnnx("the file has no IR version".into()));
    }

    // Operator sets: the default domain ("" or "ai.onnx") must be in range.
    let mut opsets: BTreeMap<&str, i64> = BTreeMap::new();
    for o in &mp.opset_import {
        let d = if o.domain == "ai.onnx" { "" } else { o.domain.as_str() };
        opsets.insert(d, o.version);
    }
    let opset = opsets.get("").copied().unwrap_or(0);
    let uses_default = graph.node.iter().any(|n| n.domain.is_empty() || n.domain == "ai.onnx");
    if uses_default && !(OPSET_MIN..=OPSET_MAX).contains(&opset) {
        return Err(LoadError::UnsupportedOpset { version: opset, min: OPSET_MIN, max: OPSET_MAX });
    }

    if graph.node.len() > limits.nodes_max {
        return Err(over("node count", graph.node.len() as u64, limits.nodes_max));
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(LoadError::Unsupported("sparse initializers".into()));
    }

    // Value slots, by name. A BTreeMap only for lookup; nothing iterates it.
    let mut vals = Values::default();

    // Initializers.
    let mut init_bytes: u64 = 0;
    for tp in initializers {
        if tp.name.is_empty() {
            return Err(LoadError::Invalid("an initializer has no name".into()));
        }
        if vals.ids.contains_key(&tp.name) {
            return Err(LoadError::Invalid(format!("initializer '{}' is defined twice", tp.name)));
        }
        let t = tensor_from_proto_ext(&tp, limits, "initializer", ext)?;
        init_bytes = init_bytes.saturating_add((t.data.len() * t.dtype().size()) as u64);
        if init_bytes > limits.initializer_bytes_max as u64 {
            return Err(over("initializer size in bytes", init_bytes, limits.initializer_bytes_max));
        }
        vals.add(&tp.name, Some(t.dtype()), Some(t));
    }

    // Graph inputs that are not initializers.
    let mut inputs = Vec::new();
    let mut input_ids = Vec::new();
    let mut input_text = Vec::new();
    let mut input_decl = Vec::new();
    for vi in &graph.input {
        if let Some(&id) = vals.ids.get(&vi.name) {
            if vals.consts[id].is_none() {
                return Err(LoadError::Invalid(format!("graph input '{}' is listed twice", vi.name)));
            }
            continue; // An initializer listed as an input: a constant in deed.
        }
        if vi.name.is_empty() {
            return Err(LoadError::Invalid("a graph input has no name".into()));
        }
        let (dtype, shape, text) = io_info(vi, "input", limits, true)?;
        let dtype = dtype.expect("inputs have a dtype");
        input_ids.push(vals.add(&vi.name, Some(dtype), None));
        let decl = infer::declared(vi).expect("inputs declare a shape");
        let mut info = IoInfo { name: vi.name.clone(), dtype, shape, dim_names: vec![] };
        info.set_dims(&decl);
        inputs.push(info);
        input_decl.push(decl);
        input_text.push(text);
    }

    // Nodes: parse, then name their outputs.
    struct Parsed {
        label: String,
        op: Op,
    }
    let mut parsed = Vec::with_capacity(graph.node.len());
    for (i, node) in graph.node.iter().enumerate() {
        let label = if node.name.is_empty() {
            format!("node #{i} ({})", node.op_type)
        } else {
            format!("node '{}' ({})", node.name, node.op_type)
        };
        let domain = if node.domain == "ai.onnx" { "" } else { node.domain.as_str() };
        let dom_opset = opsets.get(domain).copied().unwrap_or(0);
        let unsupported = || LoadError::UnsupportedOp {
            op: node.op_type.clone(),
            domain: if domain.is_empty() { "ai.onnx".into() } else { domain.to_owned() },
            opset: dom_opset,
        };
        if !crate::ops::is_supported(domain, &node.op_type) {
            return Err(unsupported());
        }
        if domain == ML_DOMAIN && !(1..=ML_OPSET_MAX).contains(&dom_opset) {
            return Err(unsupported());
        }
        let op = Op::parse(node, domain, dom_opset, label.clone(), limits)?;
        let (min_in, max_in) = op.arity();
        let used_inputs = node.input.iter().rposition(|s| !s.is_empty()).map_or(0, |p| p + 1);
        if used_inputs > max_in {
            return Err(LoadError::Invalid(format!("{label} has {used_inputs} inputs, at most {max_in} allowed")));
        }
        if let Some(k) = (0..min_in).find(|&k| node.input.get(k).is_none_or(|s| s.is_empty())) {
            return Err(LoadError::Invalid(format!("{label} is missing its required input #{k}")));
        }
        let used_outputs = node.output.iter().rposition(|s| !s.is_empty()).map_or(0, |p| p + 1);
        let max_out = op.output_count();
        if used_outputs > max_out {
            return Err(LoadError::Invalid(format!(
                "{label} has {used_outputs} outputs, the operator defines {max_out}"
            )));
        }
        for out in node.output.iter().filter(|s| !s.is_empty()) {
            if vals.ids.contains_key(out) {
                return Err(LoadError::Invalid(format!("value '{out}' is produced more than once ({label})")));
            }
            vals.add(out, None, None);
        }
        parsed.push(Parsed { label, op });
    }
    let Values { ids, mut dtypes, consts } = vals;

    // Shape facts: exact for constants, declared for graph inputs, inferred for the rest.
    let mut facts: Vec<Fact> = consts.iter().map(|c| c.as_ref().map_or_else(Fact::default, Fact::of_tensor)).collect();
    for (&id, decl) in input_ids.iter().zip(input_decl) {
        facts[id].shape = Some(decl);
    }
    let binds = infer::Binds::default();

    // Resolve inputs; build edges between nodes.
    let mut producer: Vec<Option<usize>> = vec![None; dtypes.len()];
    for (i, node) in graph.node.iter().enumerate() {
        for out in node.output.iter().filter(|s| !s.is_empty()) {
            producer[ids[out]] = Some(i);
        }
    }
    let mut node_inputs: Vec<Vec<Option<usize>>> = Vec::with_capacity(graph.node.len());
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    let mut indeg = vec![0usize; graph.node.len()];
    for (i, node) in graph.node.iter().enumerate() {
        let used = node.input.iter().rposition(|s| !s.is_empty()).map_or(0, |p| p + 1);
        let mut ins = Vec::with_capacity(used);
        for name in &node.input[..used] {
            if name.is_empty() {
                ins.push(None);
                continue;
            }
            let id = *ids.get(name).ok_or_else(|| {
                LoadError::Invalid(format!(
                    "{} reads '{name}', which is not a graph input, an initializer or the output of any node",
                    parsed[i].label
                ))
            })?;
            if let Some(p) = producer[id] {
                consumers[p].push(i);
                indeg[i] += 1;
            }
            ins.push(Some(id));
        }
        node_inputs.push(ins);
    }

    // Topological order, lowest file index first among ready nodes.
    let mut ready: BinaryHeap<Reverse<usize>> = (0..indeg.len()).filter(|&i| indeg[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(indeg.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &c in &consumers[i] {
            indeg[c] -= 1;
            if indeg[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    if order.len() != indeg.len() {
        let stuck = (0..indeg.len()).find(|&i| indeg[i] > 0).expect("some node is left");
        return Err(LoadError::Invalid(format!("the graph has a cycle through {}", parsed[stuck].label)));
    }

    // Dtypes in execution order.
    let mut slots: Vec<Option<Parsed>> = parsed.into_iter().map(Some).collect();
    let mut nodes = Vec::with_capacity(order.len());
    for &i in &order {
        let p = slots[i].take().expect("each node once");
        let ins = &node_inputs[i];
        let in_types: Vec<Option<DType>> =
            ins.iter().map(|id| id.map(|id| dtypes[id].expect("inputs typed before use"))).collect();
        let out_types =
            p.op.output_dtypes(&in_types).map_err(|e| LoadError::Unsupported(format!("{}: {e}", p.label)))?;
        let outputs: Vec<Option<usize>> = (0..out_types.len())
            .map(|k| graph.node[i].output.get(k).filter(|s| !s.is_empty()).map(|s| ids[s]))
            .collect();
        for (o, &d) in outputs.iter().zip(&out_types) {
            if let Some(o) = o {
                dtypes[*o] = Some(d);
            }
        }
        let out_facts = match &p.op {
            Op::Constant(t) => vec![Fact::of_tensor(t)],
            _ => {
                let gn = &graph.node[i];
                let domain = if gn.domain == "ai.onnx" { "" } else { gn.domain.as_str() };
                let dom_opset = opsets.get(domain).copied().unwrap_or(0);
                let in_facts: Vec<Option<&Fact>> = ins.iter().map(|id| id.map(|id| &facts[id])).collect();
                infer::infer_node(gn, domain, dom_opset, &in_facts, &out_types, &binds)
                    .map_err(|reason| LoadError::Shape { node: p.label.clone(), op: gn.op_type.clone(), reason })?
            }
        };
        for (o, f) in outputs.iter().zip(out_facts) {
            if let Some(o) = o {
                facts[*o] = f;
            }
        }
        nodes.push(Node {
            label: p.label,
            op_type: graph.node[i].op_type.clone(),
            op: p.op,
            inputs: ins.clone(),
            outputs,
            dtypes: out_types,
        });
    }

    // Graph outputs.
    let mut outputs = Vec::new();
    let mut output_ids = Vec::new();
    for vi in &graph.output {
        let id = *ids.get(&vi.name).ok_or_else(|| {
            LoadError::Invalid(format!(
                "graph output '{}' is not a graph input, an initializer or the output of any node",
                vi.name
            ))
        })?;
        if outputs.iter().any(|o: &IoInfo| o.name == vi.name) {
            return Err(LoadError::Invalid(format!("graph output '{}' is listed twice", vi.name)));
        }
        // ZipMap's sequence-of-maps output is carried as its float32 [N, C] input (see ops::ml).
        let from_zipmap = producer[id].is_some_and(|p| graph.node[p].op_type == "ZipMap");
        let (declared, shape, _) = match io_info(vi, "output", limits, false) {
            Err(LoadError::Unsupported(_)) if from_zipmap => (None, vec![], String::new()),
            r => r?,
        };
        let actual = dtypes[id].expect("every value is typed");
        if let Some(d) = declared
            && d != actual
        {
            return Err(LoadError::Invalid(format!(
                "graph output '{}' is declared as {} but the graph computes {}",
                vi.name,
                d.name(),
                actual.name()
            )));
        }
        let mut info = IoInfo { name: vi.name.clone(), dtype: actual, shape, dim_names: vec![] };
        let inferred = facts[id].shape.as_deref();
        match infer::declared(vi) {
            Some(decl) => {
                let dims = infer::check_declared(&decl, inferred).map_err(|reason| LoadError::Shape {
                    node: format!("graph output '{}'", vi.name),
                    op: String::new(),
                    reason,
                })?;
                info.set_dims(&dims);
            }
            None => {
                if let Some(dims) = inferred {
                    info.set_dims(dims);
                }
            }
        }
        outputs.push(info);
        output_ids.push(id);
    }

    // Free each intermediate value after its last reader.
    let mut last_use: Vec<Option<usize>> = vec![None; dtypes.len()];
    for (pos, n) in nodes.iter().enumerate() {
        for id in n.inputs.iter().flatten() {
            last_use[*id] = Some(pos);
        }
    }
    let mut free_after = vec![Vec::new(); nodes.len()];
    // Outputs nobody reads are dropped right after they were traced.
    for (pos, n) in nodes.iter().enumerate() {
        for &o in n.outputs.iter().flatten() {
            if last_use[o].is_none() && !output_ids.contains(&o) {
                free_after[pos].push(o);
            }
        }
    }
    for (id, lu) in last_use.iter().enumerate() {
        if let Some(pos) = lu
            && !output_ids.contains(&id)
        {
            free_after[*pos].push(id);
        }
    }

    let mut value_names = vec![String::new(); facts.len()];
    for (name, &id) in &ids {
        value_names[id] = name.clone();
    }
    // Elementwise nodes whose first input dies with them may compute in its buffer.
    let in_place = nodes
        .iter()
        .enumerate()
        .map(|(pos, n)| match n.inputs.first() {
            Some(Some(id)) => {
                n.op.can_run_in_place() && free_after[pos].contains(id) && !n.inputs[1..].contains(&Some(*id))
            }
            _ => false,
        })
        .collect();
    let segments = crate::trace::plan_segments(&nodes, &output_ids, consts.len(), |slot| {
        consts[slot].is_some() && !input_ids.contains(&slot)
    });
    let mut model = Model {
        segments,
        opset,
        shapes: facts.into_iter().map(|f| f.shape).collect(),
        value_names,
        inputs,
        input_ids,
        input_text,
        outputs,
        output_ids,
        nodes,
        consts,
        free_after,
        in_place,
        limits: limits.clone(),
    };
    crate::plan::pack_constant_weights(&mut model);
    Ok(model)
}

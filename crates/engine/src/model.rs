//! A loaded model and its run loop: check inputs, run nodes in order (elementwise ones in
//! a dying input's buffer), hash each trace segment's exports, free values after their
//! last reader, collect the graph outputs.

use crate::kernels::KernelPath;
use crate::ops::{Ctx, KernelError, Op};
use crate::{Dim, IoInfo, Limits, LoadError, RunError, RunOptions, RunOutput};
use deed_types::{DType, Tensor, TensorSet};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One node, ready to run.
pub(crate) struct Node {
    /// How errors name it: `node 'conv1' (Conv)` or `node #3 (Conv)`.
    pub label: String,
    pub op_type: String,
    pub op: Op,
    /// Value slot per input position; `None` for an absent optional input.
    pub inputs: Vec<Option<usize>>,
    /// Value slot per output position, `None` when its name is empty or absent; one
    /// entry per output the operator defines.
    pub outputs: Vec<Option<usize>>,
    /// The outputs' dtypes, fixed at load.
    pub dtypes: Vec<DType>,
}

/// A checked, planned ONNX model, ready to run any number of times (also concurrently).
pub struct Model {
    pub(crate) opset: i64,
    pub(crate) inputs: Vec<IoInfo>,
    pub(crate) input_ids: Vec<usize>,
    /// Each input's declared shape as text, with dim names: `[N, 16]`.
    pub(crate) input_text: Vec<String>,
    pub(crate) outputs: Vec<IoInfo>,
    pub(crate) output_ids: Vec<usize>,
    /// In execution order.
    pub(crate) nodes: Vec<Node>,
    /// Initializer values by slot.
    pub(crate) consts: Vec<Option<Tensor>>,
    /// Per node position: slots to free after it ran.
    pub(crate) free_after: Vec<Vec<usize>>,
    /// Per node position: its first input dies with it and the op can compute in that
    /// input's buffer ([`Op::run_in_place`]) — taken when the run owns the buffer.
    pub(crate) in_place: Vec<bool>,
    /// The trace's segments, one per trace entry, covering `nodes` in order.
    pub(crate) segments: Vec<crate::trace::Segment>,
    pub(crate) limits: Limits,
    /// Per value slot, the shape load-time inference found (`None`: rank unknown).
    pub(crate) shapes: Vec<Option<Vec<Dim>>>,
    /// Per value slot, the value's name.
    pub(crate) value_names: Vec<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("opset", &self.opset)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl Model {
    /// Loads a model with the default [`Limits`].
    pub fn load(bytes: &[u8]) -> Result<Model, LoadError> {
        Model::load_with(bytes, &Limits::default())
    }

    /// Loads a model: checks size, decodes, converts initializers, refuses unsupported
    /// operators, types and external data, detects cycles and dangling names, infers
    /// every dtype and fixes the execution order. The limits also apply to its runs.
    pub fn load_with(bytes: &[u8], limits: &Limits) -> Result<Model, LoadError> {
        crate::load::load(bytes, limits, None)
    }

    /// Loads a graph whose initializers may keep their data in external files (ONNX
    /// external data: `location`, `offset`, `length`), read through `ext`. This is how a
    /// bundle — an ONNX graph plus safetensors weights — loads (docs/PROTOCOL.md, *Model
    /// files*). The data read counts against [`Limits::initializer_bytes_max`]; the
    /// location must be a bare file name; `length`, when given, must equal the tensor's
    /// size. Inline initializers load as with [`Model::load_with`].
    pub fn load_external(bytes: &[u8], limits: &Limits, ext: &dyn crate::ExternalData) -> Result<Model, LoadError> {
        crate::load::load(bytes, limits, Some(ext))
    }

    /// The graph inputs the caller provides (initializers are not among them).
    pub fn inputs(&self) -> &[IoInfo] {
        &self.inputs
    }

    /// The graph outputs, in the model's order.
    pub fn outputs(&self) -> &[IoInfo] {
        &self.outputs
    }

    /// The imported version of the default ONNX operator set.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// The shape load-time inference found for every named value — graph inputs,
    /// weights and constants, node outputs — by name: `None` when not even the rank is
    /// known, else one [`Dim`] per dimension. Inference never changes what a run computes.
    pub fn inferred_shapes(&self) -> BTreeMap<String, Option<Vec<Dim>>> {
        self.value_names.iter().cloned().zip(self.shapes.iter().cloned()).collect()
    }

    /// The inferred shape of each output of the node at execution position `pos` (in the
    /// operator's output order; `None` for an unnamed output or an unknown rank).
    pub fn inferred_node_outputs(&self, pos: usize) -> Vec<Option<Vec<Dim>>> {
        self.nodes[pos].outputs.iter().map(|o| o.and_then(|o| self.shapes[o].clone())).collect()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of trace entries: one per [`crate::TRACE_SEGMENT_OPS`] nodes.
    pub fn trace_len(&self) -> usize {
        self.segments.len()
    }

    pub(crate) fn check_inputs(&self, inputs: &TensorSet) -> Result<(), RunError> {
        for name in inputs.0.keys() {
            if !self.inputs.iter().any(|i| &i.name == name) {
                return Err(RunError::UnexpectedInput(name.clone()));
            }
        }
        let mut total: u64 = 0;
        for (info, text) in self.inputs.iter().zip(&self.input_text) {
            let t = inputs.0.get(&info.name).ok_or_else(|| RunError::MissingInput(info.name.clone()))?;
            if t.dtype() != info.dtype {
                return Err(RunError::InputDtype { name: info.name.clone(), expected: info.dtype, got: t.dtype() });
            }
            let fits = t.shape.len() == info.shape.len()
                && t.shape.iter().zip(&info.shape).all(|(&g, e)| e.is_none_or(|e| e == g));
            if !fits {
                return Err(RunError::InputShape {
                    name: info.name.clone(),
                    expected: text.clone(),
                    got: t.shape.clone(),
                });
            }
            if t.shape.len() > self.limits.rank_max {
                return Err(RunError::OverLimit {
                    what: format!("rank of input '{}'", info.name),
                    value: t.shape.len() as u64,
                    max: self.limits.rank_max as u64,
                });
            }
            let n = t.data.len() as u64;
            if n > self.limits.tensor_elements_max as u64 {
                return Err(RunError::OverLimit {
                    what: format!("element count of input '{}'", info.name),
                    value: n,
                    max: self.limits.tensor_elements_max as u64,
                });
            }
            total = total.saturating_add(n);
        }
        if total > self.limits.input_elements_max as u64 {
            return Err(RunError::OverLimit {
                what: "element count over all inputs".into(),
                value: total,
                max: self.limits.input_elements_max as u64,
            });
        }
        Ok(())
    }

    /// Runs the model. The outputs and the trace are the same bits on every machine and
    /// for every thread count. The kernel path is the one `DEED_ENGINE_KERNELS` names
    /// ([`KernelPath::from_env`]); naming one this CPU lacks is an error.
    pub fn run(&self, inputs: &TensorSet, opts: &RunOptions) -> Result<RunOutput, RunError> {
        let kernels = KernelPath::from_env().map_err(RunError::Kernels)?;
        self.run_with_kernels(inputs, opts, kernels)
    }

    /// [`Model::run`] with an explicit kernel path (the same bits for every path).
    pub fn run_with_kernels(
        &self,
        inputs: &TensorSet,
        opts: &RunOptions,
        kernels: KernelPath,
    ) -> Result<RunOutput, RunError> {
        if !kernels.is_available() {
            return Err(RunError::Kernels(format!("kernel path '{}' is not available on this CPU", kernels.name())));
        }
        self.check_inputs(inputs)?;
        let threads = match opts.threads {
            0 => crate::pool::cores(),
            n => n,
        };
        let ctx = Ctx { limits: &self.limits, threads, kernels };
        let mut values: Vec<Option<Cow<'_, Tensor>>> =
            self.consts.iter().map(|c| c.as_ref().map(Cow::Borrowed)).collect();
        for (info, &id) in self.inputs.iter().zip(&self.input_ids) {
            values[id] = Some(Cow::Borrowed(&inputs.0[&info.name]));
        }
        let mut trace = Vec::with_capacity(if opts.trace { self.segments.len() } else { 0 });
        let mut profile = profile_enabled().then(BTreeMap::<&str, (u32, std::time::Duration)>::new);
        for (pos, node) in self.nodes.iter().enumerate() {
            let started = profile.as_ref().map(|_| std::time::Instant::now());
            let in_shapes: Option<Vec<Option<Vec<usize>>>> = profile_nodes().then(|| {
                node.inputs.iter().map(|id| id.and_then(|id| values[id].as_ref()).map(|t| t.shape.clone())).collect()
            });
            // A first input that dies here and that this run owns (not a weight, not a
            // graph input) lends its buffer to an elementwise node; declined (another
            // dtype or broadcast), it goes back where it was.
            let mut in_place = None;
            if self.in_place[pos]
                && let Some(id) = node.inputs[0]
                && matches!(values[id], Some(Cow::Owned(_)))
            {
                let Some(Cow::Owned(t)) = values[id].take() else { unreachable!("just matched") };
                let rest: Vec<Option<&Tensor>> =
                    node.inputs[1..].iter().map(|i| i.and_then(|i| values[i].as_deref())).collect();
                match node.op.run_in_place(t, &rest, &ctx) {
                    Ok(out) => in_place = Some(out),
                    Err(t) => values[id] = Some(Cow::Owned(t)),
                }
            }
            let outs: Vec<Cow<'_, Tensor>> = match in_place {
                Some(out) => vec![Cow::Owned(out)],
                None => {
                    let ins: Vec<Option<&Tensor>> = node
                        .inputs
                        .iter()
                        .map(|id| id.map(|id| values[id].as_deref().expect("inputs computed before use")))
                        .collect();
                    let kerr = |e| match e {
                        KernelError::Invalid(reason) => {
                            RunError::Op { node: node_name(&node.label), op: node.op_type.clone(), reason }
                        }
                        KernelError::OverLimit { what, value, max } => {
                            RunError::OverLimit { what: format!("{}: {what}", node.label), value, max }
                        }
                    };
                    match &node.op {
                        // Constants are borrowed from the model, not copied.
                        Op::Constant(t) => vec![Cow::Borrowed(t)],
                        Op::Ext(k) => k.run(&ins, &ctx).map_err(kerr)?.into_iter().map(Cow::Owned).collect(),
                        op => vec![Cow::Owned(op.run(&ins, &ctx).map_err(kerr)?)],
                    }
                }
            };
            assert_eq!(outs.len(), node.dtypes.len(), "{}: kernel output count", node.label);
            for (out, &dtype) in outs.iter().zip(&node.dtypes) {
                assert_eq!(out.dtype(), dtype, "{}: kernel dtype differs from load-time inference", node.label);
                assert_eq!(
                    deed_types::tensor::element_count(&out.shape),
                    Some(out.data.len()),
                    "{}: kernel produced an inconsistent tensor",
                    node.label
                );
            }
            if let (Some(p), Some(t)) = (profile.as_mut(), started) {
                let e = p.entry(node.op_type.as_str()).or_default();
                *e = (e.0 + 1, e.1 + t.elapsed());
                if let Some(shapes) = &in_shapes {
                    eprintln!("  {:>9.3} ms  {}  in {shapes:?}", t.elapsed().as_secs_f64() * 1e3, node.label);
                }
            }
            for (out, slot) in outs.into_iter().zip(&node.outputs) {
                if let Some(o) = slot {
                    values[*o] = Some(out);
                }
            }
            // A segment's entry is hashed after its last node, before anything is freed:
            // what it commits to is read by later segments or is a graph output, so it
            // is still held.
            if opts.trace && self.segments[trace.len()].nodes.end == pos + 1 {
                let started = profile.as_ref().map(|_| std::time::Instant::now());
                let exports = self.segments[trace.len()].exports.iter();
                let held = exports.map(|&s| values[s].as_deref().expect("a segment's exports are held to its end"));
                trace.push(crate::trace::hash_encodings(held, threads));
                if let (Some(p), Some(t)) = (profile.as_mut(), started) {
                    let e = p.entry("(trace hashing)").or_default();
                    *e = (e.0 + 1, e.1 + t.elapsed());
                }
            }
            for &id in &self.free_after[pos] {
                values[id] = None;
            }
        }
        let mut outputs = BTreeMap::new();
        for (info, &id) in self.outputs.iter().zip(&self.output_ids) {
            let t = values[id].as_deref().expect("graph outputs are kept").clone();
            outputs.insert(info.name.clone(), t);
        }
        if let Some(p) = profile {
            print_profile(&p);
        }
        Ok(RunOutput { outputs: TensorSet(outputs), trace })
    }
}

/// Whether `DEED_ENGINE_PROFILE` is set (to anything but `0`): each run then prints the
/// time spent per op type to stderr. Read once per process.
fn profile_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DEED_ENGINE_PROFILE").is_some_and(|v| v != "0"))
}

/// Whether `DEED_ENGINE_PROFILE=nodes`: the profile then also lists every node.
fn profile_nodes() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DEED_ENGINE_PROFILE").is_some_and(|v| v == "nodes"))
}

/// One run's profile, costliest op type first.
fn print_profile(p: &BTreeMap<&str, (u32, std::time::Duration)>) {
    let total: std::time::Duration = p.values().map(|v| v.1).sum();
    let mut rows: Vec<_> = p.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
    let mut s = format!("deed-engine profile: {:.3} ms\n", total.as_secs_f64() * 1e3);
    for (op, (n, d)) in rows {
        let ms = d.as_secs_f64() * 1e3;
        let pct = 100.0 * d.as_secs_f64() / total.as_secs_f64().max(1e-12);
        s.push_str(&format!("  {op:<24} {n:>6} × {ms:>10.3} ms {pct:>5.1}%\n"));
    }
    eprint!("{s}");
}

/// `node 'conv1' (Conv)` → `conv1`; `node #3 (Conv)` → `#3`.
fn node_name(label: &str) -> String {
    let rest = label.strip_prefix("node ").unwrap_or(label);
    let end = rest.rfind(" (").unwrap_or(rest.len());
    rest[..end].trim_matches('\'').to_owned()
}

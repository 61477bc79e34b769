//! Single-op replay for fraud proofs, and whole runs that keep every node's outputs
//! for the challengers who build them.
//!
//! A receipt's trace entry for node `j` is BLAKE3 over the concatenated canonical
//! encodings of `j`'s named outputs — the same bytes as a blob holding them, so the
//! trace entry *is* that blob's content id. A fraud proof names one node; validators
//! rebuild its inputs (graph inputs from the job's input set, weights from the model,
//! intermediate values from producer blobs authenticated by the trace) and replay
//! just that node with [`Model::replay_node`].

use crate::model::Model;
use crate::ops::{Ctx, KernelError, Op};
use crate::{RunError, RunOptions, RunOutput};
use deed_types::{Hash32, Tensor, TensorSet};
use std::collections::BTreeMap;

/// Where one input of a node (or one graph output) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A graph input, by name.
    Input(String),
    /// A weight or constant stored in the model.
    Const,
    /// Output position `output` of the node at execution position `node`.
    Node {
        /// Execution position of the producing node.
        node: usize,
        /// Position among that node's outputs.
        output: usize,
    },
    /// An optional input that is not given.
    Absent,
}

impl Model {
    fn source_of(&self, slot: usize) -> Source {
        if let Some(i) = self.input_ids.iter().position(|&s| s == slot) {
            return Source::Input(self.inputs[i].name.clone());
        }
        if self.consts.get(slot).is_some_and(Option::is_some) {
            return Source::Const;
        }
        for (pos, n) in self.nodes.iter().enumerate() {
            if let Some(k) = n.outputs.iter().position(|o| *o == Some(slot)) {
                return Source::Node { node: pos, output: k };
            }
        }
        unreachable!("every value slot is an input, a constant or a node output (checked at load)")
    }

    /// Where each input of the node at execution position `pos` comes from.
    pub fn node_sources(&self, pos: usize) -> Vec<Source> {
        self.nodes[pos].inputs.iter().map(|s| s.map_or(Source::Absent, |s| self.source_of(s))).collect()
    }

    /// Where each graph output comes from, by output name.
    pub fn output_sources(&self) -> Vec<(String, Source)> {
        self.outputs.iter().zip(&self.output_ids).map(|(info, &s)| (info.name.clone(), self.source_of(s))).collect()
    }

    /// A readable label for the node at execution position `pos`, e.g. `node 'conv1' (Conv)`.
    pub fn node_label(&self, pos: usize) -> &str {
        &self.nodes[pos].label
    }

    /// Splits a producer blob (the concatenated encodings of a node's named outputs, as
    /// hashed into the trace) into one tensor per output position (`None` where the
    /// output is unnamed).
    pub fn split_node_outputs(&self, pos: usize, mut blob: &[u8]) -> Result<Vec<Option<Tensor>>, RunError> {
        let node = &self.nodes[pos];
        let mut out = Vec::with_capacity(node.outputs.len());
        for slot in &node.outputs {
            if slot.is_some() {
                let t = Tensor::decode_from(&mut blob).map_err(|e| RunError::Op {
                    node: node.label.clone(),
                    op: node.op_type.clone(),
                    reason: format!("producer blob does not decode: {e}"),
                })?;
                out.push(Some(t));
            } else {
                out.push(None);
            }
        }
        if !blob.is_empty() {
            return Err(RunError::Op {
                node: node.label.clone(),
                op: node.op_type.clone(),
                reason: "producer blob has trailing bytes".into(),
            });
        }
        Ok(out)
    }

    /// Runs one node. `inputs` has one entry per input position: the tensor for
    /// graph-input and node-output sources; ignored (may be `None`) for constants, which
    /// come from the model, and for absent inputs.
    fn exec_one(&self, pos: usize, inputs: &[Option<Tensor>], threads: usize) -> Result<Vec<Tensor>, RunError> {
        let node = &self.nodes[pos];
        let sources = self.node_sources(pos);
        if inputs.len() != sources.len() {
            return Err(RunError::Op {
                node: node.label.clone(),
                op: node.op_type.clone(),
                reason: format!("{} inputs given, the node has {}", inputs.len(), sources.len()),
            });
        }
        let mut ins: Vec<Option<&Tensor>> = Vec::with_capacity(sources.len());
        for ((src, given), slot) in sources.iter().zip(inputs).zip(&node.inputs) {
            let t = match src {
                Source::Absent => None,
                Source::Const => self.consts[slot.expect("a constant source has a slot")].as_ref(),
                _ => Some(given.as_ref().ok_or_else(|| RunError::Op {
                    node: node.label.clone(),
                    op: node.op_type.clone(),
                    reason: "an input needed for replay is missing".into(),
                })?),
            };
            ins.push(t);
        }
        let kernels = crate::kernels::KernelPath::from_env().map_err(RunError::Kernels)?;
        let ctx = Ctx { limits: &self.limits, threads, kernels };
        let kerr = |e| match e {
            KernelError::Invalid(reason) => RunError::Op { node: node.label.clone(), op: node.op_type.clone(), reason },
            KernelError::OverLimit { what, value, max } => {
                RunError::OverLimit { what: format!("{}: {what}", node.label), value, max }
            }
        };
        let outs = match &node.op {
            Op::Constant(t) => vec![t.clone()],
            Op::Ext(k) => k.run(&ins, &ctx).map_err(kerr)?,
            op => vec![op.run(&ins, &ctx).map_err(kerr)?],
        };
        if outs.len() != node.outputs.len() {
            return Err(RunError::Op {
                node: node.label.clone(),
                op: node.op_type.clone(),
                reason: "kernel produced the wrong number of outputs".into(),
            });
        }
        Ok(outs)
    }

    /// The trace entry of a node given its outputs.
    fn trace_entry(&self, pos: usize, outs: &[Tensor]) -> Hash32 {
        let mut buf = Vec::new();
        for (t, slot) in outs.iter().zip(&self.nodes[pos].outputs) {
            if slot.is_some() {
                t.encode_into(&mut buf);
            }
        }
        Hash32::of(&buf)
    }

    /// Replays the node at execution position `pos` on `inputs` (see [`Model::node_sources`]
    /// for what each position needs) and returns its trace entry. Single-threaded: the
    /// bits do not depend on it.
    pub fn replay_node(&self, pos: usize, inputs: &[Option<Tensor>]) -> Result<Hash32, RunError> {
        if pos >= self.nodes.len() {
            return Err(RunError::Op {
                node: format!("#{pos}"),
                op: "?".into(),
                reason: format!("the model has {} nodes", self.nodes.len()),
            });
        }
        let outs = self.exec_one(pos, inputs, 1)?;
        Ok(self.trace_entry(pos, &outs))
    }

    /// Runs the whole model node by node and keeps every node's outputs (as producer
    /// blobs: the bytes its trace entry hashes). For challengers and auditors; uses more
    /// memory than [`Model::run`], same bits.
    pub fn run_keep_all(&self, inputs: &TensorSet, opts: &RunOptions) -> Result<(RunOutput, Vec<Vec<u8>>), RunError> {
        self.check_inputs(inputs)?;
        let threads = match opts.threads {
            0 => crate::pool::cores(),
            n => n,
        };
        let mut produced: Vec<Vec<Tensor>> = Vec::with_capacity(self.nodes.len());
        let mut blobs = Vec::with_capacity(self.nodes.len());
        let mut trace = Vec::with_capacity(self.nodes.len());
        let value = |src: &Source, produced: &Vec<Vec<Tensor>>| -> Option<Tensor> {
            match src {
                Source::Input(name) => inputs.0.get(name).cloned(),
                Source::Node { node, output } => Some(produced[*node][*output].clone()),
                Source::Const | Source::Absent => None,
            }
        };
        for pos in 0..self.nodes.len() {
            let ins: Vec<Option<Tensor>> = self.node_sources(pos).iter().map(|s| value(s, &produced)).collect();
            let outs = self.exec_one(pos, &ins, threads)?;
            let mut buf = Vec::new();
            for (t, slot) in outs.iter().zip(&self.nodes[pos].outputs) {
                if slot.is_some() {
                    t.encode_into(&mut buf);
                }
            }
            trace.push(Hash32::of(&buf));
            blobs.push(buf);
            produced.push(outs);
        }
        let mut outputs = BTreeMap::new();
        for (name, src) in self.output_sources() {
            let t = match &src {
                Source::Const => {
                    let slot = self.output_ids[self.outputs.iter().position(|o| o.name == name).expect("named output")];
                    self.consts[slot].clone().expect("constant output")
                }
                s => value(s, &produced).expect("graph outputs are computed"),
            };
            outputs.insert(name, t);
        }
        Ok((RunOutput { outputs: TensorSet(outputs), trace: if opts.trace { trace } else { Vec::new() } }, blobs))
    }

    /// A constant graph output's value (graphs whose output is a weight directly).
    pub fn const_output(&self, name: &str) -> Option<&Tensor> {
        let i = self.outputs.iter().position(|o| o.name == name)?;
        self.consts.get(self.output_ids[i])?.as_ref()
    }
}

//! Segment replay for fraud proofs, and whole runs that keep what challengers need.
//!
//! A receipt's trace entry `i` is BLAKE3 over the concatenated canonical encodings of
//! the values segment `i` exports (see the crate docs, *Trace*) — the same bytes as a
//! blob holding them, so the trace entry *is* that blob's content id, its *producer
//! blob*. A fraud proof names one segment; validators rebuild the values it reads (graph
//! inputs from the job's input set, weights from the model, earlier segments' exports
//! from their producer blobs, authenticated by the trace) and replay just its nodes with
//! [`Model::replay_entry`].

use crate::model::Model;
use crate::ops::{Ctx, KernelError, Op};
use crate::{RunError, RunOptions, RunOutput};
use deed_types::{Hash32, Tensor, TensorSet};
use std::collections::BTreeMap;

/// Where a value a segment reads (or a graph output) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A graph input, by name.
    Input(String),
    /// A weight or constant stored in the model.
    Const,
    /// Position `value` among the exports of trace entry `entry` (its producer blob).
    Entry {
        /// The trace entry (segment) that exports it.
        entry: usize,
        /// Position among that segment's exports.
        value: usize,
    },
}

impl Model {
    fn source_of(&self, slot: usize) -> Source {
        if let Some(i) = self.input_ids.iter().position(|&s| s == slot) {
            return Source::Input(self.inputs[i].name.clone());
        }
        if self.consts.get(slot).is_some_and(Option::is_some) {
            return Source::Const;
        }
        for (entry, seg) in self.segments.iter().enumerate() {
            if let Some(value) = seg.exports.iter().position(|&s| s == slot) {
                return Source::Entry { entry, value };
            }
        }
        unreachable!("a value read across segments is an input, a constant or an export (planned at load)")
    }

    fn check_entry(&self, entry: usize) -> Result<&crate::trace::Segment, RunError> {
        self.segments.get(entry).ok_or_else(|| RunError::Op {
            node: format!("trace entry #{entry}"),
            op: "?".into(),
            reason: format!("the model's trace has {} entries", self.segments.len()),
        })
    }

    /// Where each value trace entry `entry` reads comes from (graph inputs and earlier
    /// entries' exports; weights are not listed), in the order [`Model::replay_entry`]
    /// takes them. Empty for an entry that does not exist.
    pub fn entry_sources(&self, entry: usize) -> Vec<Source> {
        self.segments.get(entry).map_or_else(Vec::new, |s| s.reads.iter().map(|&r| self.source_of(r)).collect())
    }

    /// Where each graph output comes from, by output name.
    pub fn output_sources(&self) -> Vec<(String, Source)> {
        self.outputs.iter().zip(&self.output_ids).map(|(info, &s)| (info.name.clone(), self.source_of(s))).collect()
    }

    /// A readable label for the node at execution position `pos`, e.g. `node 'conv1' (Conv)`.
    pub fn node_label(&self, pos: usize) -> &str {
        &self.nodes[pos].label
    }

    /// Execution positions of the nodes trace entry `entry` covers (empty if there is none).
    pub fn entry_nodes(&self, entry: usize) -> std::ops::Range<usize> {
        self.segments.get(entry).map_or(0..0, |s| s.nodes.clone())
    }

    /// A readable label for trace entry `entry`, e.g.
    /// `ops #16–#31 (node 'conv3' (Conv) … node 'relu9' (Relu))`.
    pub fn entry_label(&self, entry: usize) -> String {
        let r = self.entry_nodes(entry);
        if r.is_empty() {
            return format!("trace entry #{entry}");
        }
        let (a, b) = (r.start, r.end - 1);
        if a == b {
            return format!("op #{a} ({})", self.nodes[a].label);
        }
        format!("ops #{a}–#{b} ({} … {})", self.nodes[a].label, self.nodes[b].label)
    }

    /// Splits a producer blob (the concatenated encodings of an entry's exports, as
    /// hashed into the trace) into one tensor per export.
    pub fn split_entry_values(&self, entry: usize, mut blob: &[u8]) -> Result<Vec<Tensor>, RunError> {
        let seg = self.check_entry(entry)?;
        let bad = |reason: String| RunError::Op { node: self.entry_label(entry), op: "segment".into(), reason };
        let mut out = Vec::with_capacity(seg.exports.len());
        for _ in &seg.exports {
            out.push(Tensor::decode_from(&mut blob).map_err(|e| bad(format!("producer blob does not decode: {e}")))?);
        }
        if !blob.is_empty() {
            return Err(bad("producer blob has trailing bytes".into()));
        }
        Ok(out)
    }

    /// Runs the node at execution position `pos`, its inputs taken from `values` by slot
    /// (weights from the model).
    fn exec_one(&self, pos: usize, values: &[Option<Tensor>], threads: usize) -> Result<Vec<Tensor>, RunError> {
        let node = &self.nodes[pos];
        let err = |reason: String| RunError::Op { node: node.label.clone(), op: node.op_type.clone(), reason };
        let mut ins: Vec<Option<&Tensor>> = Vec::with_capacity(node.inputs.len());
        for slot in &node.inputs {
            ins.push(match slot {
                None => None,
                Some(s) => Some(
                    values[*s]
                        .as_ref()
                        .or(self.consts[*s].as_ref())
                        .ok_or_else(|| err("an input needed for replay is missing".into()))?,
                ),
            });
        }
        let kernels = crate::kernels::KernelPath::from_env().map_err(RunError::Kernels)?;
        let ctx = Ctx { limits: &self.limits, threads, kernels };
        let kerr = |e| match e {
            KernelError::Invalid(reason) => err(reason),
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
            return Err(err("kernel produced the wrong number of outputs".into()));
        }
        Ok(outs)
    }

    /// Runs nodes `range` on `values` (by slot), storing their named outputs there.
    fn exec_range(
        &self,
        range: std::ops::Range<usize>,
        values: &mut [Option<Tensor>],
        threads: usize,
    ) -> Result<(), RunError> {
        for pos in range {
            let outs = self.exec_one(pos, values, threads)?;
            for (t, slot) in outs.into_iter().zip(&self.nodes[pos].outputs) {
                if let Some(s) = slot {
                    values[*s] = Some(t);
                }
            }
        }
        Ok(())
    }

    /// The producer blob of segment `entry`: its exports' encodings, from `values`.
    fn entry_blob(&self, entry: usize, values: &[Option<Tensor>]) -> Vec<u8> {
        let mut buf = Vec::new();
        for &s in &self.segments[entry].exports {
            values[s].as_ref().expect("a segment's exports were computed").encode_into(&mut buf);
        }
        buf
    }

    /// Replays the nodes of trace entry `entry` on `inputs` (one tensor per
    /// [`Model::entry_sources`] position) and returns the entry. Single-threaded: the
    /// bits do not depend on it.
    pub fn replay_entry(&self, entry: usize, inputs: &[Tensor]) -> Result<Hash32, RunError> {
        let seg = self.check_entry(entry)?;
        if inputs.len() != seg.reads.len() {
            return Err(RunError::Op {
                node: self.entry_label(entry),
                op: "segment".into(),
                reason: format!("{} inputs given, the segment reads {}", inputs.len(), seg.reads.len()),
            });
        }
        let mut values: Vec<Option<Tensor>> = vec![None; self.consts.len()];
        for (&slot, t) in seg.reads.iter().zip(inputs) {
            values[slot] = Some(t.clone());
        }
        self.exec_range(seg.nodes.clone(), &mut values, 1)?;
        Ok(Hash32::of(&self.entry_blob(entry, &values)))
    }

    /// Runs the whole model and keeps every node's outputs: one list per node in
    /// execution order, `None` for an unnamed output. For tests and auditors; holds
    /// every intermediate value, same bits as [`Model::run`].
    pub fn run_every_node(&self, inputs: &TensorSet, threads: usize) -> Result<Vec<Vec<Option<Tensor>>>, RunError> {
        let values = self.run_all_values(inputs, threads)?;
        Ok(self.nodes.iter().map(|n| n.outputs.iter().map(|o| o.and_then(|s| values[s].clone())).collect()).collect())
    }

    /// Every value slot after a whole run, nothing freed.
    fn run_all_values(&self, inputs: &TensorSet, threads: usize) -> Result<Vec<Option<Tensor>>, RunError> {
        self.check_inputs(inputs)?;
        let threads = match threads {
            0 => crate::pool::cores(),
            n => n,
        };
        let mut values: Vec<Option<Tensor>> = vec![None; self.consts.len()];
        for (info, &id) in self.inputs.iter().zip(&self.input_ids) {
            values[id] = Some(inputs.0[&info.name].clone());
        }
        self.exec_range(0..self.nodes.len(), &mut values, threads)?;
        Ok(values)
    }

    /// Runs the whole model and keeps every trace entry's producer blob (the bytes its
    /// entry hashes). For challengers and auditors; uses more memory than
    /// [`Model::run`], same bits.
    pub fn run_keep_all(&self, inputs: &TensorSet, opts: &RunOptions) -> Result<(RunOutput, Vec<Vec<u8>>), RunError> {
        let values = self.run_all_values(inputs, opts.threads)?;
        let blobs: Vec<Vec<u8>> = (0..self.segments.len()).map(|e| self.entry_blob(e, &values)).collect();
        let trace = if opts.trace { blobs.iter().map(|b| Hash32::of(b)).collect() } else { Vec::new() };
        let mut outputs = BTreeMap::new();
        for (info, &s) in self.outputs.iter().zip(&self.output_ids) {
            let t = values[s].as_ref().or(self.consts[s].as_ref()).expect("graph outputs are computed");
            outputs.insert(info.name.clone(), t.clone());
        }
        Ok((RunOutput { outputs: TensorSet(outputs), trace }, blobs))
    }

    /// A constant graph output's value (graphs whose output is a weight directly).
    pub fn const_output(&self, name: &str) -> Option<&Tensor> {
        let i = self.outputs.iter().position(|o| o.name == name)?;
        self.consts.get(self.output_ids[i])?.as_ref()
    }
}

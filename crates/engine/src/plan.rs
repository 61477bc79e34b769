//! Load-time preparation that changes where values live, never what they are.
//!
//! Gemm with `transB = 1` over a constant B (how PyTorch exports `Linear`) would transpose
//! or gather B on every run; instead the initializer is stored transposed once, at load,
//! and those nodes run with `transB = 0`. Every element of B' is the same value at the same
//! logical position, so every dot product — and every output bit — is unchanged.
//!
//! Then every constant 2-D B of MatMul and Gemm is also packed once into the panels the
//! fast kernels read ([`PackedB`]), kept beside the tensor (the reference path reads the
//! tensor). Packing moves values, never combines them: the same bits again.

use crate::kernels::{Mat, PackedB};
use crate::model::Model;
use crate::ops::Op;
use deed_types::TensorData;
use std::collections::HashMap;
use std::sync::Arc;

/// Stores constant Gemm B operands in `[K, N]` layout (see the module docs).
pub(crate) fn pretranspose_gemm_weights(model: &mut Model) {
    for id in 0..model.consts.len() {
        let Some(t) = &model.consts[id] else { continue };
        if t.shape.len() != 2 || !matches!(t.data, TensorData::F32(_)) || model.output_ids.contains(&id) {
            continue;
        }
        let mut uses = 0;
        let mut all_gemm_b_t = true;
        for node in &model.nodes {
            for (pos, input) in node.inputs.iter().enumerate() {
                if *input == Some(id) {
                    uses += 1;
                    all_gemm_b_t &= pos == 1 && matches!(&node.op, Op::Gemm(g) if g.trans_b);
                }
            }
        }
        if uses == 0 || !all_gemm_b_t {
            continue;
        }
        let Some(t) = model.consts[id].as_mut() else { continue };
        let (n, k) = (t.shape[0], t.shape[1]);
        if let TensorData::F32(v) = &mut t.data {
            *v = crate::ops::linalg::transpose(v, n, k);
        }
        t.shape = vec![k, n];
        for node in &mut model.nodes {
            if node.inputs.get(1) == Some(&Some(id))
                && let Op::Gemm(g) = &mut node.op
            {
                g.trans_b = false;
            }
        }
    }
}

/// Packs the constant 2-D f32 B of every MatMul and Gemm node (see the module docs); a
/// constant used by several nodes is packed once.
pub(crate) fn pack_constant_weights(model: &mut Model) {
    let mut packed: HashMap<(usize, bool), Arc<PackedB>> = HashMap::new();
    for node in &mut model.nodes {
        let Some(Some(id)) = node.inputs.get(1).copied() else { continue };
        let Some(t) = &model.consts[id] else { continue };
        let TensorData::F32(v) = &t.data else { continue };
        if t.shape.len() != 2 {
            continue;
        }
        let (r, c) = (t.shape[0], t.shape[1]);
        let (slot, trans) = match &mut node.op {
            Op::MatMul { packed_b } => (packed_b, false),
            Op::Gemm(g) => (&mut g.packed_b, g.trans_b),
            _ => continue,
        };
        let p = packed.entry((id, trans)).or_insert_with(|| {
            // B' = B ([K, N]) or, with transB, B seen transposed ([N, K] stored).
            let (k, n, b) =
                if trans { (c, r, Mat { data: v, rs: 1, cs: c }) } else { (r, c, Mat { data: v, rs: c, cs: 1 }) };
            Arc::new(PackedB::new(b, k, n))
        });
        *slot = Some(p.clone());
    }
}

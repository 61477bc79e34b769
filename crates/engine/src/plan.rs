//! Load-time preparation that changes where values live, never what they are.
//!
//! Gemm with `transB = 1` over a constant B (how PyTorch exports `Linear`) would transpose
//! or gather B on every run; instead the initializer is stored transposed once, at load,
//! and those nodes run with `transB = 0`. Every element of B' is the same value at the same
//! logical position, so every dot product — and every output bit — is unchanged.

use crate::model::Model;
use crate::ops::Op;
use deed_types::TensorData;

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

//! Load-time preparation that changes where values live, never what they are.
//!
//! Every constant 2-D B used only by MatMul and Gemm is packed once into the panels
//! the fast kernels read ([`PackedB`]); the nodes hold the packed matrix and the constant
//! keeps only its shape (the reference kernels read the packed matrix too, through
//! [`PackedB::transposed`]). Packing moves values, never combines them: the same bits
//! again.

use crate::infer::Dim;
use crate::kernels::{Mat, NARROW_ROWS, PackedB};
use crate::model::Model;
use crate::ops::Op;
use deed_types::TensorData;
use std::sync::Arc;

/// The most a packed copy may outgrow its matrix (any N ≥ 8 stays within it).
const MAX_GROWTH: f64 = 2.0;

/// Packs each constant 2-D f32 tensor whose every use is as B of MatMul or Gemm (one
/// orientation) into a [`PackedB`] those nodes hold, and leaves the constant holding only
/// its shape (see the module docs): weights are not stored twice. Constants are done one
/// at a time, so the load never holds two copies of more than one of them.
pub(crate) fn pack_constant_weights(model: &mut Model) {
    for id in 0..model.consts.len() {
        let Some(t) = &model.consts[id] else { continue };
        if t.shape.len() != 2 || !matches!(t.data, TensorData::F32(_)) || model.output_ids.contains(&id) {
            continue;
        }
        // Every use must be input 1 of MatMul or Gemm, all with the same transB.
        let mut trans = None;
        let mut ok = true;
        // Whether a use may be a matrix-vector product, which streams B once per run.
        let mut streamed = false;
        for node in &model.nodes {
            for (pos, input) in node.inputs.iter().enumerate() {
                if *input != Some(id) {
                    continue;
                }
                let t = match &node.op {
                    Op::MatMul { .. } if pos == 1 => false,
                    Op::Gemm(g) if pos == 1 => g.trans_b,
                    _ => {
                        ok = false;
                        continue;
                    }
                };
                ok &= *trans.get_or_insert(t) == t;
                let a = node.inputs[0].and_then(|a| model.shapes[a].as_deref());
                streamed |= product_rows(&node.op, a).is_none_or(|m| m <= NARROW_ROWS);
            }
        }
        let (Some(trans), true) = (trans, ok) else { continue };
        let Some(t) = model.consts[id].as_mut() else { continue };
        let (r, c) = (t.shape[0], t.shape[1]);
        // A matrix of few columns would grow up to 16 times in its zero-padded chunks (a
        // hostile [2^29, 1] initializer to 32 GiB): such a B stays as it is, and the
        // products pack it per call, a K block at a time.
        if PackedB::growth(if trans { r } else { c }, streamed) > MAX_GROWTH {
            continue;
        }
        let TensorData::F32(v) = &mut t.data else { continue };
        // B' = B ([K, N]) or, with transB, B seen transposed ([N, K] stored).
        let (k, n, b) =
            if trans { (c, r, Mat { data: v, rs: 1, cs: c }) } else { (r, c, Mat { data: v, rs: c, cs: 1 }) };
        let packed = Arc::new(PackedB::new(b, k, n, streamed));
        *v = Vec::new();
        for node in &mut model.nodes {
            if node.inputs.get(1) == Some(&Some(id)) {
                match &mut node.op {
                    Op::MatMul { packed_b } => *packed_b = Some(packed.clone()),
                    Op::Gemm(g) => g.packed_b = Some(packed.clone()),
                    _ => unreachable!("every use was checked above"),
                }
            }
        }
    }
}

/// The rows of the product a MatMul or Gemm with A of inferred shape `a` makes (a MatMul
/// multiplies every leading index of A), if its shape fixes them at load.
fn product_rows(op: &Op, a: Option<&[Dim]>) -> Option<usize> {
    let known = |d: &Dim| if let Dim::Known(n) = d { Some(*n) } else { None };
    let a = a?;
    match op {
        Op::Gemm(g) => known(a.get(usize::from(g.trans_a))?),
        _ => a.split_last().map_or(Some(1), |(_, lead)| lead.iter().try_fold(1usize, |r, d| r.checked_mul(known(d)?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::linalg::GemmAttrs;

    #[test]
    fn narrow_matrices_are_not_padded_beyond_twice_their_size() {
        for streamed in [false, true] {
            assert_eq!(PackedB::growth(1, streamed), 16.0);
            assert!(PackedB::growth(7, streamed) > MAX_GROWTH);
            for n in (8..2000).chain([4095, 4097, 1 << 20]) {
                assert!(PackedB::growth(n, streamed) <= MAX_GROWTH, "n {n} streamed {streamed}");
            }
        }
    }

    #[test]
    fn product_rows_from_inferred_shapes() {
        let k = |n| Dim::Known(n);
        let matmul = Op::MatMul { packed_b: None };
        assert_eq!(product_rows(&matmul, Some(&[k(784)])), Some(1));
        assert_eq!(product_rows(&matmul, Some(&[k(1), k(784)])), Some(1));
        assert_eq!(product_rows(&matmul, Some(&[k(2), k(3), k(784)])), Some(6));
        assert_eq!(product_rows(&matmul, Some(&[Dim::Sym("batch".into()), k(784)])), None);
        assert_eq!(product_rows(&matmul, Some(&[k(usize::MAX), k(2), k(784)])), None);
        assert_eq!(product_rows(&matmul, None), None);
        let gemm = |trans_a| Op::Gemm(GemmAttrs { alpha: 1.0, beta: 1.0, trans_a, trans_b: false, packed_b: None });
        assert_eq!(product_rows(&gemm(false), Some(&[k(64), k(784)])), Some(64));
        assert_eq!(product_rows(&gemm(true), Some(&[k(784), k(1)])), Some(1));
        assert_eq!(product_rows(&gemm(false), Some(&[Dim::Unknown, k(784)])), None);
    }
}

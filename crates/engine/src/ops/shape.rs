//! Operators that move or convert data without arithmetic: Reshape, Flatten, Cast.
//!
//! **Cast** (part of the engine spec) converts each element as Rust's `as` does, which
//! pins down what C leaves undefined: float → float and integer → float round to
//! nearest even; float → integer truncates toward zero and **saturates** at the target's
//! range, with NaN → 0; integer → integer keeps the low bits (two's complement wrap);
//! anything → bool is `x != 0` (so NaN → true); bool → number is 0 or 1.

use super::reduce::norm_axis;
use super::{Ctx, KResult, KernelError};
use deed_types::{DType, Tensor, TensorData};

/// ONNX Reshape with the `0` (copy) and `-1` (infer) rules; `allowzero` makes `0` a real zero.
pub(crate) fn reshape(x: &Tensor, shape: &Tensor, allowzero: bool, ctx: &Ctx<'_>) -> KResult<Tensor> {
    let TensorData::I64(spec) = &shape.data else { unreachable!("Reshape shape dtype checked at load") };
    if shape.shape.len() != 1 {
        return Err(KernelError::Invalid(format!("the shape input must be 1-D, got shape {:?}", shape.shape)));
    }
    if spec.len() > ctx.limits.rank_max {
        return Err(KernelError::OverLimit {
            what: "Reshape target rank".into(),
            value: spec.len() as u64,
            max: ctx.limits.rank_max as u64,
        });
    }
    let bad = |why: &str| KernelError::Invalid(format!("cannot reshape {:?} to {spec:?}: {why}", x.shape));
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_some() => return Err(bad("more than one -1")),
            -1 => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*x.shape.get(i).ok_or_else(|| bad("a 0 has no matching input dimension"))?),
            d if d < 0 => return Err(bad("negative dimension")),
            d => out.push(usize::try_from(d).map_err(|_| bad("dimension too large"))?),
        }
    }
    if allowzero && infer.is_some() && spec.contains(&0) {
        return Err(bad("-1 together with 0 under allowzero"));
    }
    let n = x.data.len();
    if let Some(i) = infer {
        let known = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("too many elements"))?;
        if known == 0 || !n.is_multiple_of(known) {
            return Err(bad("the -1 dimension cannot be inferred"));
        }
        out[i] = n / known;
    }
    let total = ctx.check_shape(&out)?;
    if total != n {
        return Err(bad(&format!("{n} elements do not fit {total}")));
    }
    Ok(Tensor { shape: out, data: x.data.clone() })
}

/// ONNX Flatten to `[prod(shape[..axis]), prod(shape[axis..])]`.
pub(crate) fn flatten(x: &Tensor, axis: i64) -> KResult<Tensor> {
    let a = norm_axis(axis, x.shape.len(), true)?;
    let shape = vec![x.shape[..a].iter().product(), x.shape[a..].iter().product()];
    Ok(Tensor { shape, data: x.data.clone() })
}

/// Elements that Cast can convert with `as`.
trait Num: Copy {
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
    fn to_i8(self) -> i8;
    fn to_u8(self) -> u8;
    fn to_i16(self) -> i16;
    fn to_u16(self) -> u16;
    fn to_i32(self) -> i32;
    fn to_u32(self) -> u32;
    fn to_i64(self) -> i64;
    fn to_u64(self) -> u64;
    fn nonzero(self) -> bool;
}

macro_rules! impl_num {
    ($($t:ty),*) => {$(
        impl Num for $t {
            fn to_f32(self) -> f32 { self as f32 }
            fn to_f64(self) -> f64 { self as f64 }
            fn to_i8(self) -> i8 { self as i8 }
            fn to_u8(self) -> u8 { self as u8 }
            fn to_i16(self) -> i16 { self as i16 }
            fn to_u16(self) -> u16 { self as u16 }
            fn to_i32(self) -> i32 { self as i32 }
            fn to_u32(self) -> u32 { self as u32 }
            fn to_i64(self) -> i64 { self as i64 }
            fn to_u64(self) -> u64 { self as u64 }
            #[allow(clippy::float_cmp)]
            fn nonzero(self) -> bool { self != (0 as $t) }
        }
    )*};
}
impl_num!(f32, f64, i8, u8, i16, u16, i32, u32, i64, u64);

fn cast_from<T: Num>(v: &[T], to: DType) -> TensorData {
    match to {
        DType::F32 => TensorData::F32(v.iter().map(|x| x.to_f32()).collect()),
        DType::F64 => TensorData::F64(v.iter().map(|x| x.to_f64()).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|x| x.to_i8()).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|x| x.to_u8()).collect()),
        DType::I16 => TensorData::I16(v.iter().map(|x| x.to_i16()).collect()),
        DType::U16 => TensorData::U16(v.iter().map(|x| x.to_u16()).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|x| x.to_i32()).collect()),
        DType::U32 => TensorData::U32(v.iter().map(|x| x.to_u32()).collect()),
        DType::I64 => TensorData::I64(v.iter().map(|x| x.to_i64()).collect()),
        DType::U64 => TensorData::U64(v.iter().map(|x| x.to_u64()).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|x| x.nonzero()).collect()),
    }
}

/// ONNX Cast (see the module docs for the exact conversions).
pub(crate) fn cast(x: &Tensor, to: DType) -> Tensor {
    let data = match &x.data {
        TensorData::F32(v) => cast_from(v, to),
        TensorData::F64(v) => cast_from(v, to),
        TensorData::I8(v) => cast_from(v, to),
        TensorData::U8(v) => cast_from(v, to),
        TensorData::I16(v) => cast_from(v, to),
        TensorData::U16(v) => cast_from(v, to),
        TensorData::I32(v) => cast_from(v, to),
        TensorData::U32(v) => cast_from(v, to),
        TensorData::I64(v) => cast_from(v, to),
        TensorData::U64(v) => cast_from(v, to),
        TensorData::Bool(v) => cast_from(&v.iter().map(|&b| b as u8).collect::<Vec<u8>>(), to),
    };
    Tensor { shape: x.shape.clone(), data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn i64t(v: Vec<i64>) -> Tensor {
        Tensor::new(vec![v.len()], TensorData::I64(v)).unwrap()
    }

    #[test]
    fn reshape_rules() {
        let l = Limits::default();
        let ctx = Ctx { limits: &l, threads: 1, kernels: crate::kernels::KernelPath::Reference };
        let x = Tensor::f32(vec![2, 3, 4], (0..24).map(|v| v as f32).collect());
        assert_eq!(reshape(&x, &i64t(vec![4, -1]), false, &ctx).unwrap().shape, vec![4, 6]);
        assert_eq!(reshape(&x, &i64t(vec![0, -1]), false, &ctx).unwrap().shape, vec![2, 12]);
        assert_eq!(reshape(&x, &i64t(vec![0, 0, 2, 2]), false, &ctx).unwrap().shape, vec![2, 3, 2, 2]);
        assert!(reshape(&x, &i64t(vec![-1, -1]), false, &ctx).is_err());
        assert!(reshape(&x, &i64t(vec![5, -1]), false, &ctx).is_err());
        assert!(reshape(&x, &i64t(vec![7]), false, &ctx).is_err());
        assert!(reshape(&x, &i64t(vec![-2, 12]), false, &ctx).is_err());
        // allowzero: a literal zero only fits an empty tensor.
        assert!(reshape(&x, &i64t(vec![0, 24]), true, &ctx).is_err());
        let empty = Tensor::f32(vec![0, 3], vec![]);
        assert_eq!(reshape(&empty, &i64t(vec![3, 0]), true, &ctx).unwrap().shape, vec![3, 0]);
        assert!(reshape(&empty, &i64t(vec![0, -1]), true, &ctx).is_err());
        assert!(reshape(&x, &i64t(vec![1; 40]), false, &ctx).is_err());
    }

    #[test]
    fn flatten_axes() {
        let x = Tensor::f32(vec![2, 3, 4], vec![0.; 24]);
        assert_eq!(flatten(&x, 1).unwrap().shape, vec![2, 12]);
        assert_eq!(flatten(&x, 0).unwrap().shape, vec![1, 24]);
        assert_eq!(flatten(&x, 3).unwrap().shape, vec![24, 1]);
        assert_eq!(flatten(&x, -1).unwrap().shape, vec![6, 4]);
        assert!(flatten(&x, 4).is_err());
    }

    #[test]
    fn cast_semantics() {
        let x = Tensor::f32(vec![6], vec![1.9, -1.9, f32::NAN, 1e20, -1e20, 0.0]);
        assert_eq!(cast(&x, DType::I64).data, TensorData::I64(vec![1, -1, 0, i64::MAX, i64::MIN, 0]));
        assert_eq!(cast(&x, DType::U8).data, TensorData::U8(vec![1, 0, 0, 255, 0, 0]));
        assert_eq!(cast(&x, DType::Bool).data, TensorData::Bool(vec![true, true, true, true, true, false]));
        let i = Tensor::new(vec![2], TensorData::I64(vec![300, 16_777_217])).unwrap();
        assert_eq!(cast(&i, DType::I8).data, TensorData::I8(vec![44, 1]));
        assert_eq!(cast(&i, DType::F32).data, TensorData::F32(vec![300.0, 16_777_216.0]));
        let b = Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap();
        assert_eq!(cast(&b, DType::F32).data, TensorData::F32(vec![1.0, 0.0]));
    }
}

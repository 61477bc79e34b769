//! The supported operators: parsed and type-checked once at load into an `Op`, then run
//! by plain scalar kernels whose loop order is the specification (see each module).

pub(crate) mod attr;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod linalg;
pub mod math_ops;
pub mod ml;
pub mod nn;
pub mod quant;
pub mod reduce;
pub mod reduction;
pub mod resize;
pub mod shape;
pub(crate) mod util;

use crate::onnx::NodeProto;
use crate::{Limits, LoadError};
use attr::Attrs;
use conv::{AutoPad, Window};
use deed_types::{DType, Tensor};
use elementwise::{BinOp, UnOp};
use linalg::GemmAttrs;
use reduce::ArgMaxAttrs;
use std::sync::Arc;

/// Lowest default-domain opset the engine implements.
pub const OPSET_MIN: i64 = 7;
/// Highest default-domain opset the engine implements. Opsets 22 to 25 only widened the
/// type lists of the operators supported here (16-bit, 8-bit and 4-bit floats, 2- and
/// 4-bit integers, which deed refuses at load) and added attributes that only matter
/// for those types (QuantizeLinear `precision`, DequantizeLinear `output_dtype`, Cast
/// `round_mode`; checked when parsed), so their semantics are those of 21.
pub const OPSET_MAX: i64 = 25;

/// The operator types of the default (`ai.onnx`) domain with a built-in `Op` variant;
/// [`EXT_OPS`] lists the rest.
pub const SUPPORTED_OPS: &[&str] = &[
    "Add", "ArgMax", "Cast", "Constant", "Conv", "Div", "Exp", "Flatten", "Gemm", "Identity", "MatMul", "MaxPool",
    "Mul", "Relu", "Reshape", "Sigmoid", "Softmax", "Sub", "Tanh",
];

/// The `ai.onnx.ml` domain.
pub const ML_DOMAIN: &str = "ai.onnx.ml";
/// Highest `ai.onnx.ml` opset the engine implements (the versions of its operators are
/// checked one by one when parsed).
pub const ML_OPSET_MAX: i64 = 5;

/// Whether the engine implements `op_type` in `domain` (`""` is the default domain).
pub fn is_supported(domain: &str, op_type: &str) -> bool {
    match domain {
        "" => SUPPORTED_OPS.contains(&op_type) || EXT_OPS.contains(&op_type),
        ML_DOMAIN => ml::ML_OPS.contains(&op_type),
        _ => false,
    }
}

/// Default-domain operators implemented as `Kernel`s in the op-family modules.
pub const EXT_OPS: &[&str] = &[
    // nn
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "ConvTranspose",
    "Dropout",
    "Elu",
    "Gelu",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "HardSigmoid",
    "HardSwish",
    "InstanceNormalization",
    "LRN",
    "LayerNormalization",
    "LeakyRelu",
    "PRelu",
    "Selu",
    "Softplus",
    "Softsign",
    "ThresholdedRelu",
    "Celu",
    "Mish",
    // math
    "Abs",
    "And",
    "BitShift",
    "Ceil",
    "Equal",
    "Erf",
    "Floor",
    "Greater",
    "GreaterOrEqual",
    "IsInf",
    "IsNaN",
    "Less",
    "LessOrEqual",
    "Log",
    "Max",
    "Mean",
    "Min",
    "Mod",
    "Neg",
    "Not",
    "Or",
    "Pow",
    "Reciprocal",
    "Round",
    "Sign",
    "Sqrt",
    "Sum",
    "Where",
    "Xor",
    "CastLike",
    // reduction
    "ArgMin",
    "CumSum",
    "LogSoftmax",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "TopK",
    "Hardmax",
    // index
    "Concat",
    "ConstantOfShape",
    "Expand",
    "Gather",
    "GatherElements",
    "Pad",
    "Range",
    "Shape",
    "Size",
    "Slice",
    "Split",
    "Squeeze",
    "Tile",
    "Transpose",
    "Unsqueeze",
    // resize
    "Resize",
    "Upsample",
    // quant
    "ConvInteger",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "QLinearConv",
    "QLinearMatMul",
    "QuantizeLinear",
];

/// An operator implemented outside the built-in `Op` variants: every op family added
/// after the first set lives in its own module behind this trait.
pub(crate) trait Kernel: Send + Sync + std::fmt::Debug {
    /// `(min inputs, max inputs)`.
    fn arity(&self) -> (usize, usize);
    /// How many outputs the operator defines (the kernel always computes them all).
    fn outputs(&self) -> usize {
        1
    }
    /// The output dtypes for these input dtypes (`None`: an absent optional input), one
    /// per output, or why the combination is not supported.
    fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String>;
    /// Runs the operator: exactly [`Kernel::outputs`] tensors.
    fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Vec<Tensor>>;
}

/// Largest value accepted for a window attribute (kernel size, stride, dilation, pad).
pub(crate) const WINDOW_ATTR_MAX: i64 = 1 << 31;

/// What a kernel needs besides its inputs.
pub(crate) struct Ctx<'a> {
    pub limits: &'a Limits,
    /// Worker threads allowed (≥ 1).
    pub threads: usize,
    /// Which implementation of the matrix kernels to use (all give the same bits).
    pub kernels: crate::kernels::KernelPath,
}

impl Ctx<'_> {
    /// Checks the work of one node (multiply-adds, or window reads for pooling) against
    /// [`Limits::op_work_max`]; `parts` are multiplied with overflow saturating.
    pub(crate) fn check_work(&self, parts: &[usize]) -> KResult<()> {
        let work = parts.iter().fold(1u64, |a, &p| a.saturating_mul(p as u64));
        if work > self.limits.op_work_max {
            return Err(KernelError::OverLimit {
                what: "work (multiply-adds)".into(),
                value: work,
                max: self.limits.op_work_max,
            });
        }
        Ok(())
    }

    /// Checks an output shape against the rank and element limits; returns its element count.
    pub(crate) fn check_shape(&self, shape: &[usize]) -> KResult<usize> {
        if shape.len() > self.limits.rank_max {
            return Err(KernelError::OverLimit {
                what: "output rank".into(),
                value: shape.len() as u64,
                max: self.limits.rank_max as u64,
            });
        }
        match deed_types::tensor::element_count(shape) {
            Some(n) if n <= self.limits.tensor_elements_max => Ok(n),
            n => Err(KernelError::OverLimit {
                what: format!("element count of an output of shape {shape:?}"),
                value: n.map_or(u64::MAX, |n| n as u64),
                max: self.limits.tensor_elements_max as u64,
            }),
        }
    }
}

/// Why a kernel failed.
#[derive(Debug)]
pub(crate) enum KernelError {
    /// Inputs the operator cannot handle (shapes that do not fit, a zero divisor, ...).
    Invalid(String),
    /// An output would be over a limit.
    OverLimit { what: String, value: u64, max: u64 },
}

pub(crate) type KResult<T> = Result<T, KernelError>;

/// A parsed operator with its attributes.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// `packed_b`: a constant B packed at load (`plan::pack_constant_weights`).
    MatMul {
        packed_b: Option<Arc<crate::kernels::PackedB>>,
    },
    Gemm(GemmAttrs),
    Binary(BinOp),
    Unary(UnOp),
    Softmax {
        axis: i64,
        legacy: bool,
    },
    Reshape {
        allowzero: bool,
    },
    Flatten {
        axis: i64,
    },
    Conv {
        win: Window,
        group: usize,
    },
    MaxPool(Window),
    Identity,
    Cast(DType),
    ArgMax(ArgMaxAttrs),
    Constant(Tensor),
    /// Any other operator.
    Ext(Arc<dyn Kernel>),
}

pub(crate) fn to_usizes(a: &Attrs<'_>, name: &str, v: Option<Vec<i64>>, min: i64) -> Result<Vec<usize>, LoadError> {
    v.unwrap_or_default()
        .into_iter()
        .map(|x| {
            if (min..=WINDOW_ATTR_MAX).contains(&x) {
                Ok(x as usize)
            } else {
                Err(a.invalid(format!("attribute '{name}' has value {x}, outside {min}..={WINDOW_ATTR_MAX}")))
            }
        })
        .collect()
}

pub(crate) fn window(a: &Attrs<'_>, kernel_required: bool, with_ceil: bool) -> Result<Window, LoadError> {
    let kernel = to_usizes(a, "kernel_shape", a.ints("kernel_shape")?, 1)?;
    if kernel_required && kernel.is_empty() {
        return Err(a.invalid("attribute 'kernel_shape' is required"));
    }
    let strides = to_usizes(a, "strides", a.ints("strides")?, 1)?;
    let dilations = to_usizes(a, "dilations", a.ints("dilations")?, 1)?;
    let pads = to_usizes(a, "pads", a.ints("pads")?, 0)?;
    let ap = a.string("auto_pad", "NOTSET")?;
    let auto_pad =
        AutoPad::parse(&ap).ok_or_else(|| a.invalid(format!("attribute 'auto_pad' has unknown value '{ap}'")))?;
    if !kernel.is_empty() {
        let r = kernel.len();
        for (name, v, want) in [("strides", &strides, r), ("dilations", &dilations, r), ("pads", &pads, 2 * r)] {
            if !v.is_empty() && v.len() != want {
                return Err(a.invalid(format!("attribute '{name}' has {} values, expected {want}", v.len())));
            }
        }
    }
    let ceil_mode = with_ceil && a.int("ceil_mode", 0)? != 0;
    Ok(Window { kernel, strides, dilations, pads, auto_pad, ceil_mode })
}

impl Op {
    /// Parses a node of `domain` (`""` or [`ML_DOMAIN`], checked by [`is_supported`]) at
    /// that domain's `opset`. `label` names the node in errors.
    pub(crate) fn parse(
        node: &NodeProto,
        domain: &str,
        opset: i64,
        label: String,
        limits: &Limits,
    ) -> Result<Op, LoadError> {
        let a = Attrs::new(node, label);
        if domain == ML_DOMAIN {
            return Ok(Op::Ext(ml::parse(node, opset, &a, limits)?));
        }
        if !SUPPORTED_OPS.contains(&node.op_type.as_str()) {
            return Ok(Op::Ext(parse_ext(node, opset, &a, limits)?));
        }
        Ok(match node.op_type.as_str() {
            "MatMul" => Op::MatMul { packed_b: None },
            "Gemm" => {
                if opset < 7 || a.has("broadcast") {
                    // Pre-7 Gemm had a `broadcast` attribute; opsets below 7 are refused earlier anyway.
                    return Err(a.unsupported("Gemm's legacy 'broadcast' attribute"));
                }
                Op::Gemm(GemmAttrs {
                    alpha: a.float("alpha", 1.0)?,
                    beta: a.float("beta", 1.0)?,
                    trans_a: a.int("transA", 0)? != 0,
                    trans_b: a.int("transB", 0)? != 0,
                    packed_b: None,
                })
            }
            "Add" => Op::Binary(BinOp::Add),
            "Sub" => Op::Binary(BinOp::Sub),
            "Mul" => Op::Binary(BinOp::Mul),
            "Div" => Op::Binary(BinOp::Div),
            "Relu" => Op::Unary(UnOp::Relu),
            "Sigmoid" => Op::Unary(UnOp::Sigmoid),
            "Tanh" => Op::Unary(UnOp::Tanh),
            "Exp" => Op::Unary(UnOp::Exp),
            "Softmax" => {
                let legacy = opset < 13;
                Op::Softmax { axis: a.int("axis", if legacy { 1 } else { -1 })?, legacy }
            }
            "Reshape" => Op::Reshape { allowzero: opset >= 14 && a.int("allowzero", 0)? != 0 },
            "Flatten" => Op::Flatten { axis: a.int("axis", 1)? },
            "Conv" => {
                let group = a.int("group", 1)?;
                if !(1..=WINDOW_ATTR_MAX).contains(&group) {
                    return Err(a.invalid(format!("attribute 'group' is {group}")));
                }
                Op::Conv { win: window(&a, false, false)?, group: group as usize }
            }
            "MaxPool" => {
                let with_indices = node.output.get(1).is_some_and(|o| !o.is_empty());
                if with_indices && opset < 8 {
                    return Err(a.invalid("MaxPool has a second output (Indices) only from opset 8"));
                }
                let win = window(&a, true, opset >= 10)?;
                let r = win.kernel.len();
                for (i, &p) in win.pads.iter().enumerate() {
                    if p >= win.kernel[i % r] {
                        return Err(
                            a.invalid(format!("pad {p} is not smaller than the kernel size {}", win.kernel[i % r]))
                        );
                    }
                }
                if with_indices {
                    let column_major = match a.int("storage_order", 0)? {
                        0 => false,
                        1 => true,
                        o => return Err(a.invalid(format!("attribute 'storage_order' is {o}, expected 0 or 1"))),
                    };
                    return Ok(Op::Ext(Arc::new(conv::MaxPoolIndices { win, column_major })));
                }
                Op::MaxPool(win)
            }
            "Identity" => Op::Identity,
            "Cast" => {
                let to = a.int_opt("to")?.ok_or_else(|| a.invalid("attribute 'to' is required"))?;
                let to = i32::try_from(to)
                    .ok()
                    .and_then(DType::from_code)
                    .ok_or_else(|| a.unsupported(format!("Cast to data type {to}")))?;
                Op::Cast(to)
            }
            "ArgMax" => Op::ArgMax(ArgMaxAttrs {
                axis: a.int("axis", 0)?,
                keepdims: a.int("keepdims", 1)? != 0,
                select_last: opset >= 12 && a.int("select_last_index", 0)? != 0,
            }),
            "Constant" => Op::Constant(constant(&a, limits)?),
            _ => unreachable!("caller checks SUPPORTED_OPS"),
        })
    }

    /// How many outputs the operator defines.
    pub(crate) fn output_count(&self) -> usize {
        match self {
            Op::Ext(k) => k.outputs(),
            _ => 1,
        }
    }

    /// The output dtypes, one per output (see [`Op::output_dtype`]).
    pub(crate) fn output_dtypes(&self, ins: &[Option<DType>]) -> Result<Vec<DType>, String> {
        match self {
            Op::Ext(k) => {
                let v = k.output_dtypes(ins)?;
                assert_eq!(v.len(), k.outputs(), "{k:?}: one dtype per output");
                Ok(v)
            }
            op => Ok(vec![op.output_dtype(ins)?]),
        }
    }

    /// `(min inputs, max inputs)`.
    pub(crate) fn arity(&self) -> (usize, usize) {
        match self {
            Op::Ext(k) => k.arity(),
            Op::Constant(_) => (0, 0),
            Op::Unary(_)
            | Op::Softmax { .. }
            | Op::Flatten { .. }
            | Op::MaxPool(_)
            | Op::Identity
            | Op::Cast(_)
            | Op::ArgMax(_) => (1, 1),
            Op::MatMul { .. } | Op::Binary(_) | Op::Reshape { .. } => (2, 2),
            Op::Gemm(_) | Op::Conv { .. } => (2, 3),
        }
    }

    /// The output dtype for these input dtypes (`None` for an absent optional input),
    /// or why the combination is not supported.
    pub(crate) fn output_dtype(&self, ins: &[Option<DType>]) -> Result<DType, String> {
        use DType::*;
        let first = ins.first().copied().flatten();
        let all_f32 = || {
            if ins.iter().flatten().all(|&d| d == F32) {
                Ok(F32)
            } else {
                Err(format!("only float32 inputs are supported, got {}", names(ins)))
            }
        };
        match self {
            Op::MatMul { .. } | Op::Gemm(_) | Op::Conv { .. } | Op::MaxPool(_) | Op::Softmax { .. } => all_f32(),
            Op::Unary(UnOp::Relu) => match first {
                Some(d @ (F32 | I32 | I64)) => Ok(d),
                _ => Err(format!("only float32, int32 and int64 inputs are supported, got {}", names(ins))),
            },
            Op::Unary(_) => all_f32(),
            Op::Binary(_) => match (first, ins.get(1).copied().flatten()) {
                (Some(a), Some(b)) if a != b => Err(format!("inputs have different dtypes: {}", names(ins))),
                (Some(d @ (F32 | F64 | I8 | U8 | I16 | U16 | I32 | U32 | I64 | U64)), _) => Ok(d),
                _ => Err(format!("only numeric inputs are supported, got {}", names(ins))),
            },
            Op::Reshape { .. } => match ins.get(1).copied().flatten() {
                Some(I64) => Ok(first.expect("required input")),
                _ => Err(format!("the shape input must be int64, got {}", names(ins))),
            },
            Op::Flatten { .. } | Op::Identity => Ok(first.expect("required input")),
            Op::Cast(to) => Ok(*to),
            Op::ArgMax(_) => match first {
                Some(F32 | I32 | I64) => Ok(I64),
                _ => Err(format!("only float32, int32 and int64 inputs are supported, got {}", names(ins))),
            },
            Op::Constant(t) => Ok(t.dtype()),
            Op::Ext(_) => unreachable!("Ext ops answer through output_dtypes"),
        }
    }

    /// Whether [`Op::run_in_place`] may take its first input's buffer.
    pub(crate) fn can_run_in_place(&self) -> bool {
        matches!(self, Op::Unary(_) | Op::Binary(_))
    }

    /// Runs the operator in `first`'s buffer (its first input, which nobody reads after
    /// this node; `rest` are the other inputs): the same bits as [`Op::run`]. `Err(first)`
    /// back when this op, dtype or shape cannot be done in place.
    pub(crate) fn run_in_place(
        &self,
        first: Tensor,
        rest: &[Option<&Tensor>],
        ctx: &Ctx<'_>,
    ) -> Result<Tensor, Tensor> {
        match (self, rest) {
            (Op::Unary(op), []) => elementwise::unary_in_place(*op, first, ctx.threads, ctx.kernels),
            (Op::Binary(op), [Some(b)]) => elementwise::binary_in_place(*op, first, b, ctx.threads),
            _ => Err(first),
        }
    }

    /// Runs the operator; inputs were checked for presence and dtype at load.
    pub(crate) fn run(&self, ins: &[Option<&Tensor>], ctx: &Ctx<'_>) -> KResult<Tensor> {
        let req = |i: usize| ins[i].expect("required input present (checked at load)");
        let opt = |i: usize| ins.get(i).copied().flatten();
        match self {
            Op::MatMul { packed_b } => linalg::matmul(req(0), req(1), packed_b.as_deref(), ctx),
            Op::Gemm(g) => linalg::gemm(g, req(0), req(1), opt(2), ctx),
            Op::Binary(op) => elementwise::binary(*op, req(0), req(1), ctx),
            Op::Unary(op) => Ok(elementwise::unary(*op, req(0), ctx.threads, ctx.kernels)),
            Op::Softmax { axis, legacy } => reduce::softmax_with(req(0), *axis, *legacy, ctx.threads, ctx.kernels),
            Op::Reshape { allowzero } => shape::reshape(req(0), req(1), *allowzero, ctx),
            Op::Flatten { axis } => shape::flatten(req(0), *axis),
            Op::Conv { win, group } => conv::conv(win, *group, req(0), req(1), opt(2), ctx),
            Op::MaxPool(win) => conv::max_pool(win, req(0), ctx),
            Op::Identity => Ok(req(0).clone()),
            Op::Cast(to) => Ok(shape::cast(req(0), *to)),
            Op::ArgMax(a) => reduce::argmax(a, req(0), ctx),
            Op::Constant(t) => Ok(t.clone()),
            Op::Ext(_) => unreachable!("Ext ops run through run_all"),
        }
    }
}

/// Parses a default-domain operator implemented in an op-family module.
fn parse_ext(node: &NodeProto, opset: i64, a: &Attrs<'_>, limits: &Limits) -> Result<Arc<dyn Kernel>, LoadError> {
    let op = node.op_type.as_str();
    if let Some(k) = nn::parse(op, opset, a)? {
        return Ok(k);
    }
    if let Some(k) = math_ops::parse(op, opset, a)? {
        return Ok(k);
    }
    if let Some(k) = reduction::parse(op, opset, a)? {
        return Ok(k);
    }
    if let Some(k) = index::parse(op, opset, a, limits)? {
        return Ok(k);
    }
    if let Some(k) = resize::parse(op, opset, a)? {
        return Ok(k);
    }
    if let Some(k) = quant::parse(op, opset, a)? {
        return Ok(k);
    }
    Err(LoadError::UnsupportedOp { op: op.to_owned(), domain: "ai.onnx".into(), opset })
}

fn names(ins: &[Option<DType>]) -> String {
    let v: Vec<&str> = ins.iter().map(|d| d.map_or("(none)", |d| d.name())).collect();
    format!("({})", v.join(", "))
}

/// The value of a Constant node.
fn constant(a: &Attrs<'_>, limits: &Limits) -> Result<Tensor, LoadError> {
    let mut found: Vec<Tensor> = Vec::new();
    if let Some(t) = a.tensor("value")? {
        found.push(crate::load::tensor_from_proto(t, limits, "Constant value")?);
    }
    if a.has("value_float") {
        found.push(Tensor::f32(vec![], vec![a.float("value_float", 0.0)?]));
    }
    if let Some(v) = a.floats("value_floats")? {
        found.push(Tensor::f32(vec![v.len()], v));
    }
    if let Some(v) = a.int_opt("value_int")? {
        found.push(Tensor { shape: vec![], data: deed_types::TensorData::I64(vec![v]) });
    }
    if let Some(v) = a.ints("value_ints")? {
        found.push(Tensor { shape: vec![v.len()], data: deed_types::TensorData::I64(v) });
    }
    for other in ["sparse_value", "value_string", "value_strings"] {
        if a.has(other) {
            return Err(a.unsupported(format!("Constant with '{other}'")));
        }
    }
    match found.len() {
        1 => Ok(found.pop().expect("one")),
        0 => Err(a.invalid("Constant has no value attribute")),
        _ => Err(a.invalid("Constant has more than one value attribute")),
    }
}

//! Load-time shape inference: what the loader can tell about every value's shape before
//! any input is seen, so that a model whose shapes contradict each other is refused at
//! load instead of failing in the middle of a run.
//!
//! Each value gets a [`Fact`]: its rank (known or not) and per dimension a [`Dim`] —
//! `Known(n)`, `Sym(name)` (a `dim_param` of a graph input such as `batch`, carried
//! through the graph), or `Unknown`. Small integer tensors (at most [`VALUE_MAX`]
//! elements) also carry their values where they can be followed: initializers,
//! Constants, `Shape` (whose values are dims, possibly symbolic) and what exporters build
//! from it (`Gather`, `Slice`, `Concat`, `Unsqueeze`, `Squeeze`, `Cast`, integer
//! `Add`/`Sub`/`Mul`/`Div`, `Range`, `ConstantOfShape`). That is what lets `Reshape`,
//! `Expand`, `Tile`, `Pad`, `Slice`, `Split`, `ConstantOfShape` and the rest see their
//! shape arguments.
//!
//! An operator without a rule here gives unknown outputs, never an error. A node is
//! refused only for a **definite** contradiction — two known dims that must be equal
//! and differ, two known dims that do not broadcast, a reshape of a known element count
//! into a known shape of another count, Conv channels that do not fit the weights, and
//! the like, or a symbol two nodes force to two different known sizes; a symbolic or
//! unknown dim against a known one is never a refusal by itself. Inference reads the
//! model only: it changes no output bit and no trace.

use crate::onnx::NodeProto;
use crate::ops::ML_DOMAIN;
use crate::ops::attr::Attrs;
use crate::ops::conv::AutoPad;
use deed_types::{DType, Tensor, TensorData};

/// Most elements of an integer tensor whose values inference follows.
pub(crate) const VALUE_MAX: usize = 64;

/// One dimension of an inferred shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size known at load.
    Known(usize),
    /// A size fixed only by the inputs of a run, named by a graph input's `dim_param`
    /// (every dim with that name has the same size in a run).
    Sym(String),
    /// Nothing known.
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

impl Dim {
    fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            _ => None,
        }
    }
}

/// A tracked element of a small integer tensor: a number, a symbolic dim, or unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    I(i64),
    S(String),
    U,
}

impl Val {
    fn to_dim(&self) -> Dim {
        match self {
            Val::I(n) if *n >= 0 => Dim::Known(*n as usize),
            Val::S(s) => Dim::Sym(s.clone()),
            _ => Dim::Unknown,
        }
    }
    fn from_dim(d: &Dim) -> Val {
        match d {
            Dim::Known(n) => i64::try_from(*n).map_or(Val::U, Val::I),
            Dim::Sym(s) => Val::S(s.clone()),
            Dim::Unknown => Val::U,
        }
    }
    fn int(&self) -> Option<i64> {
        match self {
            Val::I(n) => Some(*n),
            _ => None,
        }
    }
}

/// What load-time inference knows about one value.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Fact {
    /// The dims; `None` when not even the rank is known.
    pub shape: Option<Vec<Dim>>,
    /// Row-major element values of a small integer tensor, when followed.
    pub value: Option<Vec<Val>>,
    /// The values of a small float32 constant (Resize scales).
    pub floats: Option<Vec<f32>>,
}

impl Fact {
    fn shaped(dims: Vec<Dim>) -> Fact {
        Fact { shape: Some(dims), value: None, floats: None }
    }

    /// The exact fact of a constant tensor (values kept for small integer tensors).
    pub(crate) fn of_tensor(t: &Tensor) -> Fact {
        let shape = Some(t.shape.iter().map(|&n| Dim::Known(n)).collect());
        let value = (t.data.len() <= VALUE_MAX)
            .then(|| match &t.data {
                TensorData::I64(v) => Some(v.iter().map(|&x| Val::I(x)).collect()),
                TensorData::I32(v) => Some(v.iter().map(|&x| Val::I(x as i64)).collect()),
                TensorData::Bool(v) => Some(v.iter().map(|&x| Val::I(x as i64)).collect()),
                _ => None,
            })
            .flatten();
        let floats = match &t.data {
            TensorData::F32(v) if v.len() <= VALUE_MAX => Some(v.clone()),
            _ => None,
        };
        Fact { shape, value, floats }
    }
}

/// A shape as text: `[batch, 128, ?]`, or `[?…]` when the rank is unknown.
pub(crate) fn shape_text(s: Option<&[Dim]>) -> String {
    match s {
        None => "[?…]".into(),
        Some(d) => format!("[{}]", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

fn st(d: &[Dim]) -> String {
    shape_text(Some(d))
}

/// The product of dims: known when all are; a lone symbol times known 1s stays it.
fn prod(dims: &[Dim]) -> Dim {
    let mut n: usize = 1;
    let mut sym = None;
    for d in dims {
        match d {
            Dim::Known(k) => match n.checked_mul(*k) {
                Some(v) => n = v,
                None => return Dim::Unknown,
            },
            Dim::Sym(s) if sym.is_none() => sym = Some(s.clone()),
            _ => return Dim::Unknown,
        }
    }
    match sym {
        None => Dim::Known(n),
        Some(s) if n == 1 => Dim::Sym(s),
        Some(_) => Dim::Unknown,
    }
}

/// Two dims that must be equal: the better known of them, or `None` if both are known
/// and differ.
fn unify(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => (x == y).then(|| a.clone()),
        (Dim::Known(_), _) => Some(a.clone()),
        (_, Dim::Known(_)) => Some(b.clone()),
        (Dim::Sym(_), _) => Some(a.clone()),
        _ => Some(b.clone()),
    }
}

/// The multidirectional broadcast of two dims, or `None` if both are known, differ and
/// neither is 1.
fn bcast_dim(a: &Dim, b: &Dim) -> Option<Dim> {
    Some(match (a, b) {
        (Dim::Known(1), _) => b.clone(),
        (_, Dim::Known(1)) => a.clone(),
        (Dim::Known(x), Dim::Known(y)) => return (x == y).then(|| a.clone()),
        // The other side is 1 or equal to the known one.
        (Dim::Known(_), _) => a.clone(),
        (_, Dim::Known(_)) => b.clone(),
        (Dim::Sym(x), Dim::Sym(y)) if x == y => a.clone(),
        _ => Dim::Unknown,
    })
}

/// Numpy-style broadcast of several shapes; `Ok(None)` when a rank is unknown.
fn broadcast(shapes: &[Option<&[Dim]>]) -> Result<Option<Vec<Dim>>, String> {
    let mut out: Vec<Dim> = vec![];
    let mut known_all = true;
    for s in shapes {
        let Some(s) = s else {
            known_all = false;
            continue;
        };
        let r = out.len().max(s.len());
        let mut next = Vec::with_capacity(r);
        for i in 0..r {
            let a = (i + out.len()).checked_sub(r).map_or(Dim::Known(1), |j| out[j].clone());
            let b = (i + s.len()).checked_sub(r).map_or(Dim::Known(1), |j| s[j].clone());
            next.push(bcast_dim(&a, &b).ok_or_else(|| {
                let all: Vec<String> = shapes.iter().map(|s| shape_text(*s)).collect();
                format!("shapes {} do not broadcast (dim {a} against {b})", all.join(" and "))
            })?);
        }
        out = next;
    }
    Ok(known_all.then_some(out))
}

/// Normalizes a possibly negative axis for rank `r`.
fn axis(a: i64, r: usize) -> Option<usize> {
    let r = r as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// An axis attribute the kernel requires in range for the input's rank (`inclusive`:
/// the rank itself is allowed, as for Flatten).
fn req_axis(v: i64, s: &[Dim], inclusive: bool) -> Result<usize, String> {
    let r = s.len() as i64;
    let hi = if inclusive { r } else { r - 1 };
    if v < -r || v > hi {
        return Err(format!("axis {v} is out of range for the input {} of rank {r}", st(s)));
    }
    Ok(if v < 0 { (v + r) as usize } else { v as usize })
}

/// Axes the kernel requires in range for rank `r` and distinct (`util::norm_axes`).
fn req_axes(v: &[i64], r: usize, s: &[Dim]) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(v.len());
    for &a in v {
        let ri = r as i64;
        if a < -ri || a >= ri {
            return Err(format!("axis {a} is out of range for rank {r} (input {})", st(s)));
        }
        let n = if a < 0 { (a + ri) as usize } else { a as usize };
        if out.contains(&n) {
            return Err(format!("axis {a} is repeated in {v:?}"));
        }
        out.push(n);
    }
    Ok(out)
}

fn rank_at_least(s: &[Dim], n: usize, what: &str) -> Result<(), String> {
    if s.len() < n {
        return Err(format!("{what} needs an input of rank at least {n}, got {}", st(s)));
    }
    Ok(())
}

/// The inputs of one node, as inference sees them.
struct Ins<'a> {
    facts: &'a [Option<&'a Fact>],
    binds: &'a Binds,
}

/// Sizes that kernels force on symbols, over the whole graph: a symbol that must equal a
/// known size (a MatMul inner dim, Conv channels, a Concat side) is bound to it, and a
/// second, different size forced on it is a contradiction no input can satisfy.
pub(crate) type Binds = std::cell::RefCell<std::collections::BTreeMap<String, usize>>;

impl Ins<'_> {
    /// Records that `a` and `b` must be equal (the caller checked they unify).
    fn bind(&self, a: &Dim, b: &Dim) -> Result<(), String> {
        let ((Dim::Sym(name), Dim::Known(n)) | (Dim::Known(n), Dim::Sym(name))) = (a, b) else { return Ok(()) };
        let mut binds = self.binds.borrow_mut();
        match binds.get(name) {
            Some(m) if m != n => {
                Err(format!("dim '{name}' must be {n} here, but another node already requires it to be {m}"))
            }
            _ => {
                binds.insert(name.clone(), *n);
                Ok(())
            }
        }
    }

    fn shape(&self, i: usize) -> Option<&[Dim]> {
        self.facts.get(i).copied().flatten().and_then(|f| f.shape.as_deref())
    }
    fn present(&self, i: usize) -> bool {
        self.facts.get(i).copied().flatten().is_some()
    }
    fn vals(&self, i: usize) -> Option<&[Val]> {
        self.facts.get(i).copied().flatten().and_then(|f| f.value.as_deref())
    }
    /// All values of input `i`, when every one is a known integer.
    fn ints(&self, i: usize) -> Option<Vec<i64>> {
        self.vals(i)?.iter().map(Val::int).collect()
    }
}

/// Typed attribute reads; parsing already validated them, so a failure reads as absent.
struct A<'a>(Attrs<'a>);

impl A<'_> {
    fn int(&self, name: &str, d: i64) -> i64 {
        self.0.int(name, d).unwrap_or(d)
    }
    fn int_opt(&self, name: &str) -> Option<i64> {
        self.0.int_opt(name).ok().flatten()
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.0.ints(name).ok().flatten()
    }
    fn floats(&self, name: &str) -> Option<Vec<f32>> {
        self.0.floats(name).ok().flatten()
    }
    fn string(&self, name: &str, d: &str) -> String {
        self.0.string(name, d).unwrap_or_else(|_| d.to_owned())
    }
    fn has(&self, name: &str) -> bool {
        self.0.has(name)
    }
}

type R = Result<Vec<Fact>, String>;

fn one(dims: Vec<Dim>) -> R {
    Ok(vec![Fact::shaped(dims)])
}

fn one_opt(dims: Option<Vec<Dim>>) -> R {
    Ok(vec![Fact { shape: dims, value: None, floats: None }])
}

fn unknown() -> R {
    Ok(vec![])
}

/// Infers the output facts of one node (one per output position; missing ones are
/// unknown). `Err` is a definite contradiction, worded with the shapes involved.
pub(crate) fn infer_node(
    node: &NodeProto,
    domain: &str,
    opset: i64,
    ins: &[Option<&Fact>],
    out_dtypes: &[DType],
    binds: &Binds,
) -> Result<Vec<Fact>, String> {
    let a = A(Attrs::new(node, String::new()));
    let x = Ins { facts: ins, binds };
    let mut outs = if domain == ML_DOMAIN { ml(node.op_type.as_str(), &a, &x)? } else { op(node, opset, &a, &x)? };
    outs.resize(out_dtypes.len(), Fact::default());
    outs.truncate(out_dtypes.len());
    for (f, d) in outs.iter_mut().zip(out_dtypes) {
        // Values are followed for integer tensors only, and must fit the shape.
        let fits = match (&f.value, &f.shape) {
            (Some(v), Some(s)) => prod(s) == Dim::Known(v.len()),
            _ => false,
        };
        if !fits || !matches!(d, DType::I64 | DType::I32 | DType::Bool) {
            f.value = None;
        }
    }
    Ok(outs)
}

const UNARY: &[&str] = &[
    "Relu",
    "Sigmoid",
    "Tanh",
    "Exp",
    "Abs",
    "Ceil",
    "Erf",
    "Floor",
    "IsInf",
    "IsNaN",
    "Log",
    "Neg",
    "Not",
    "Reciprocal",
    "Round",
    "Sign",
    "Sqrt",
    "Elu",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Selu",
    "Softplus",
    "Softsign",
    "ThresholdedRelu",
    "Celu",
    "Mish",
    "Clip",
    "Softmax",
    "LogSoftmax",
    "Hardmax",
    "CumSum",
    "LRN",
    "InstanceNormalization",
    "QuantizeLinear",
    "DequantizeLinear",
    "BatchNormalization",
    "CastLike",
];

const BINARY: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "And",
    "BitShift",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "Mod",
    "Or",
    "Pow",
    "Xor",
    "Max",
    "Min",
    "Mean",
    "Sum",
    "Where",
    "PRelu",
];

fn op(node: &NodeProto, opset: i64, a: &A<'_>, x: &Ins<'_>) -> R {
    let t = node.op_type.as_str();
    if t == "Softmax"
        && let Some(s) = x.shape(0)
    {
        let legacy = opset < 13;
        if !legacy {
            rank_at_least(s, 1, "Softmax")?;
        }
        req_axis(a.int("axis", if legacy { 1 } else { -1 }), s, legacy)?;
    }
    if UNARY.contains(&t) {
        return one_opt(x.shape(0).map(<[Dim]>::to_vec));
    }
    if BINARY.contains(&t) {
        let shapes: Vec<Option<&[Dim]>> = (0..x.facts.len()).filter(|&i| x.present(i)).map(|i| x.shape(i)).collect();
        let out = broadcast(&shapes)?;
        let value = match t {
            "Add" | "Sub" | "Mul" | "Div" | "Equal" => int_arith(t, x),
            "Where" => where_vals(x),
            _ => None,
        };
        return Ok(vec![Fact { shape: out, value, floats: None }]);
    }
    match t {
        "Identity" | "Cast" => Ok(vec![Fact {
            shape: x.shape(0).map(<[Dim]>::to_vec),
            value: x.vals(0).map(<[Val]>::to_vec),
            floats: None,
        }]),
        "Dropout" => {
            let s = x.shape(0).map(<[Dim]>::to_vec);
            Ok(vec![Fact { shape: s.clone(), value: None, floats: None }, Fact { shape: s, value: None, floats: None }])
        }
        "Constant" => Ok(vec![]), // Set from the parsed value by the caller.
        "MatMul" | "MatMulInteger" => {
            matmul(x, x.shape(0), x.shape(1)).map(|s| vec![Fact { shape: s, value: None, floats: None }])
        }
        "QLinearMatMul" => {
            matmul(x, x.shape(0), x.shape(3)).map(|s| vec![Fact { shape: s, value: None, floats: None }])
        }
        "Gemm" => gemm(a, x),
        "Conv" | "ConvInteger" => conv(a, x, x.shape(0), x.shape(1), x.shape(2).filter(|_| t == "Conv")),
        "QLinearConv" => conv(a, x, x.shape(0), x.shape(3), x.shape(8)),
        "ConvTranspose" => conv_transpose(a, x),
        "MaxPool" | "AveragePool" => pool(a, opset, x.shape(0)),
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let Some(s) = x.shape(0) else { return unknown() };
            if s.len() < 3 {
                return Err(format!("X must be [N, C, spatial...], got {}", st(s)));
            }
            one(s[..2].iter().cloned().chain(std::iter::repeat_n(Dim::Known(1), s.len() - 2)).collect())
        }
        "LayerNormalization" => {
            let Some(s) = x.shape(0) else { return unknown() };
            let ax = req_axis(a.int("axis", -1), s, false)?;
            let stat: Vec<Dim> =
                s.iter().enumerate().map(|(i, d)| if i < ax { d.clone() } else { Dim::Known(1) }).collect();
            Ok(vec![Fact::shaped(s.to_vec()), Fact::shaped(stat.clone()), Fact::shaped(stat)])
        }
        "DynamicQuantizeLinear" => Ok(vec![
            Fact { shape: x.shape(0).map(<[Dim]>::to_vec), value: None, floats: None },
            Fact::shaped(vec![]),
            Fact::shaped(vec![]),
        ]),
        "ArgMax" | "ArgMin" => {
            let Some(s) = x.shape(0) else { return unknown() };
            let ax = if t == "ArgMax" {
                rank_at_least(s, 1, "ArgMax")?;
                req_axis(a.int("axis", 0), s, false)?
            } else {
                let Some(ax) = axis(a.int("axis", 0), s.len()) else { return unknown() };
                ax
            };
            one(reduce_dims(s, &[ax], a.int("keepdims", 1) != 0))
        }
        t if t.starts_with("Reduce") => reduce(t, opset, a, x),
        "TopK" => {
            let Some(s) = x.shape(0) else { return unknown() };
            rank_at_least(s, 1, "TopK")?;
            let ax = req_axis(a.int("axis", -1), s, false)?;
            let k = if opset < 10 { a.int_opt("k") } else { x.ints(1).and_then(|v| v.first().copied()) };
            let mut d = s.to_vec();
            d[ax] = k.filter(|&k| k >= 0).map_or(Dim::Unknown, |k| Dim::Known(k as usize));
            Ok(vec![Fact::shaped(d.clone()), Fact::shaped(d)])
        }
        "Reshape" => reshape(a, opset, x),
        "Flatten" => {
            let Some(s) = x.shape(0) else { return unknown() };
            let ax = req_axis(a.int("axis", 1), s, true)?;
            let value = x.vals(0).map(<[Val]>::to_vec);
            Ok(vec![Fact { shape: Some(vec![prod(&s[..ax]), prod(&s[ax..])]), value, floats: None }])
        }
        "Transpose" => {
            let Some(s) = x.shape(0) else { return unknown() };
            let perm: Vec<usize> = match a.ints("perm") {
                Some(p) => {
                    if p.len() != s.len() {
                        return Err(format!("perm {p:?} does not fit the input {} of rank {}", st(s), s.len()));
                    }
                    req_axes(&p, s.len(), s)?
                }
                None => (0..s.len()).rev().collect(),
            };
            one(perm.iter().map(|&i| s[i].clone()).collect())
        }
        "Concat" => concat(a, x),
        "Split" => split(node, opset, a, x),
        "Slice" => slice(opset, a, x),
        "Gather" => gather(a, x),
        "GatherElements" => one_opt(x.shape(1).map(<[Dim]>::to_vec)),
        "Squeeze" | "Unsqueeze" => squeeze(t == "Unsqueeze", opset, a, x),
        "Expand" => {
            let Some(v) = x.vals(1) else {
                return unknown();
            };
            if let Some(n) = v.iter().filter_map(Val::int).find(|&n| n < 0) {
                return Err(format!("the target shape has a negative dimension {n}"));
            }
            let target: Vec<Dim> = v.iter().map(Val::to_dim).collect();
            one_opt(broadcast(&[x.shape(0), Some(&target)])?)
        }
        "Tile" => {
            let (Some(s), Some(rep)) = (x.shape(0), x.vals(1)) else { return unknown() };
            if rep.len() != s.len() {
                return Err(format!("{} repeats for the input {} of rank {}", rep.len(), st(s), s.len()));
            }
            if let Some(n) = rep.iter().filter_map(Val::int).find(|&n| n < 0) {
                return Err(format!("repeat {n} is negative"));
            }
            one(s
                .iter()
                .zip(rep)
                .map(|(d, r)| match (d, r) {
                    (_, Val::I(1)) => d.clone(),
                    (Dim::Known(n), Val::I(r)) if *r >= 0 => {
                        n.checked_mul(*r as usize).map_or(Dim::Unknown, Dim::Known)
                    }
                    _ => Dim::Unknown,
                })
                .collect())
        }
        "Pad" => pad(opset, a, x),
        "Shape" => {
            let Some(s) = x.shape(0) else {
                return unknown();
            };
            let r = s.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (start, end) = if opset >= 15 {
                (clampi(a.int("start", 0)), a.int_opt("end").map_or(s.len(), clampi))
            } else {
                (0, s.len())
            };
            let dims = &s[start..end.max(start)];
            Ok(vec![Fact {
                shape: Some(vec![Dim::Known(dims.len())]),
                value: Some(dims.iter().map(Val::from_dim).collect()),
                floats: None,
            }])
        }
        "Size" => {
            let value = x.shape(0).map(|s| vec![Val::from_dim(&prod(s))]);
            Ok(vec![Fact { shape: Some(vec![]), value, floats: None }])
        }
        "ConstantOfShape" => {
            if let Some(v) = x.vals(0) {
                let dims: Vec<Dim> = v.iter().map(Val::to_dim).collect();
                // An int64 fill is followed (the default fill is float 0).
                let fill =
                    node.attribute.iter().find(|at| at.name == "value").and_then(|at| at.t.as_ref()).and_then(|t| {
                        if t.data_type != DType::I64.code() as i32 {
                            return None;
                        }
                        match (t.int64_data.first(), t.raw_data.get(..8)) {
                            (Some(&f), _) => Some(f),
                            (None, Some(raw)) => Some(i64::from_le_bytes(raw.try_into().expect("8 bytes"))),
                            _ => None,
                        }
                    });
                let value = match (fill, prod(&dims)) {
                    (Some(f), Dim::Known(n)) if n <= VALUE_MAX => Some(vec![Val::I(f); n]),
                    _ => None,
                };
                return Ok(vec![Fact { shape: Some(dims), value, floats: None }]);
            }
            one_opt(x.shape(0).and_then(|s| s.first()).and_then(Dim::known).map(|n| vec![Dim::Unknown; n]))
        }
        "Range" => {
            let (Some(s), Some(l), Some(d)) = (x.ints(0), x.ints(1), x.ints(2)) else {
                // Range(0, n, 1) over a symbolic n (a sequence length) has n elements.
                if let (Some([Val::I(0)]), Some([Val::S(n)]), Some([Val::I(1)])) = (x.vals(0), x.vals(1), x.vals(2)) {
                    return one(vec![Dim::Sym(n.clone())]);
                }
                return one(vec![Dim::Unknown]);
            };
            let (&[s], &[l], &[d]) = (&s[..], &l[..], &d[..]) else { return unknown() };
            if d == 0 {
                return unknown();
            }
            let (span, step) =
                if d > 0 { (l as i128 - s as i128, d as i128) } else { (s as i128 - l as i128, -(d as i128)) };
            let Ok(n) = usize::try_from(((span + step - 1).div_euclid(step)).max(0)) else { return unknown() };
            // Values are followed only while none overflows (the kernel would refuse or wrap).
            let value = if n <= VALUE_MAX {
                (0..n as i64).map(|i| i.checked_mul(d).and_then(|v| v.checked_add(s)).map(Val::I)).collect()
            } else {
                None
            };
            Ok(vec![Fact { shape: Some(vec![Dim::Known(n)]), value, floats: None }])
        }
        "Resize" | "Upsample" => resize(t, opset, a, x),
        _ => unknown(),
    }
}

/// Elementwise integer arithmetic on followed values (a scalar or one-element side
/// broadcasts).
fn int_arith(t: &str, x: &Ins<'_>) -> Option<Vec<Val>> {
    let (p, q) = (x.vals(0)?, x.vals(1)?);
    let n = p.len().max(q.len());
    if !(p.len() == n || p.len() == 1) || !(q.len() == n || q.len() == 1) {
        return None;
    }
    // Only when both sides have shapes that broadcast to a same-length result.
    let (sp, sq) = (x.shape(0)?, x.shape(1)?);
    if sp.len() > 1 || sq.len() > 1 {
        return None;
    }
    Some(
        (0..n)
            .map(|i| {
                let (u, v) = (&p[if p.len() == 1 { 0 } else { i }], &q[if q.len() == 1 { 0 } else { i }]);
                match (t, u, v) {
                    ("Equal", Val::I(a), Val::I(b)) => Val::I((a == b) as i64),
                    // A dim is never negative.
                    ("Equal", Val::S(_), Val::I(n)) | ("Equal", Val::I(n), Val::S(_)) if *n < 0 => Val::I(0),
                    ("Equal", Val::S(a), Val::S(b)) if a == b => Val::I(1),
                    ("Equal", _, _) => Val::U,
                    ("Mul", _, Val::I(1)) | ("Add" | "Sub", _, Val::I(0)) | ("Div", _, Val::I(1)) => u.clone(),
                    ("Mul", Val::I(1), _) | ("Add", Val::I(0), _) => v.clone(),
                    (_, Val::I(a), Val::I(b)) => match t {
                        "Add" => a.checked_add(*b).map_or(Val::U, Val::I),
                        "Sub" => a.checked_sub(*b).map_or(Val::U, Val::I),
                        "Mul" => a.checked_mul(*b).map_or(Val::U, Val::I),
                        _ if *b != 0 && a % b == 0 => Val::I(a / b),
                        _ => Val::U,
                    },
                    _ => Val::U,
                }
            })
            .collect(),
    )
}

/// `Where` on followed values: each element from `x` or `y` by a known condition.
fn where_vals(x: &Ins<'_>) -> Option<Vec<Val>> {
    let (c, a, b) = (x.vals(0)?, x.vals(1)?, x.vals(2)?);
    if [x.shape(0)?, x.shape(1)?, x.shape(2)?].iter().any(|s| s.len() > 1) {
        return None;
    }
    let n = c.len().max(a.len()).max(b.len());
    let at = |v: &[Val], i: usize| v.get(if v.len() == 1 { 0 } else { i }).cloned();
    (0..n)
        .map(|i| match at(c, i)? {
            Val::I(0) => at(b, i),
            Val::I(_) => at(a, i),
            _ => Some(Val::U),
        })
        .collect()
}

fn matmul(x: &Ins<'_>, a: Option<&[Dim]>, b: Option<&[Dim]>) -> Result<Option<Vec<Dim>>, String> {
    let (Some(sa), Some(sb)) = (a, b) else { return Ok(None) };
    if sa.is_empty() || sb.is_empty() {
        return Err(format!("cannot multiply a rank-0 tensor: A is {} and B is {}", st(sa), st(sb)));
    }
    let a2: Vec<Dim> = if sa.len() == 1 { vec![Dim::Known(1), sa[0].clone()] } else { sa.to_vec() };
    let b2: Vec<Dim> = if sb.len() == 1 { vec![sb[0].clone(), Dim::Known(1)] } else { sb.to_vec() };
    let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
    if unify(ka, kb).is_none() {
        return Err(format!("inner dimensions differ: A is {} and B is {} ({ka} against {kb})", st(sa), st(sb)));
    }
    x.bind(ka, kb)?;
    let batch = broadcast(&[Some(&a2[..a2.len() - 2]), Some(&b2[..b2.len() - 2])])
        .map_err(|e| format!("batch dimensions of A {} and B {}: {e}", st(sa), st(sb)))?
        .expect("ranks known");
    let mut out = batch;
    if sa.len() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if sb.len() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(Some(out))
}

fn gemm(a: &A<'_>, x: &Ins<'_>) -> R {
    let (Some(sa), Some(sb)) = (x.shape(0), x.shape(1)) else { return unknown() };
    if sa.len() != 2 || sb.len() != 2 {
        return Err(format!("A and B must be 2-D, got {} and {}", st(sa), st(sb)));
    }
    let (ta, tb) = (a.int("transA", 0) != 0, a.int("transB", 0) != 0);
    let (m, ka) = if ta { (&sa[1], &sa[0]) } else { (&sa[0], &sa[1]) };
    let (kb, n) = if tb { (&sb[1], &sb[0]) } else { (&sb[0], &sb[1]) };
    if unify(ka, kb).is_none() {
        return Err(format!(
            "inner dimensions differ: A is {} (transA = {}) and B is {} (transB = {})",
            st(sa),
            ta as u8,
            st(sb),
            tb as u8
        ));
    }
    x.bind(ka, kb)?;
    let out = vec![m.clone(), n.clone()];
    if let Some(c) = x.shape(2)
        && c.len() <= 2
    {
        for (cd, od) in c.iter().rev().zip(out.iter().rev()) {
            if let (Dim::Known(cv), Dim::Known(ov)) = (cd, od)
                && *cv != 1
                && cv != ov
            {
                return Err(format!("C {} does not broadcast to the output {}", st(c), st(&out)));
            }
        }
    }
    one(out)
}

/// One spatial output size of a sliding window (the engine's rules: Conv and pools).
#[allow(clippy::too_many_arguments)]
fn window_dim(
    x: &Dim,
    k: &Dim,
    s: usize,
    dl: usize,
    pb: usize,
    pe: usize,
    auto_pad: AutoPad,
    ceil: bool,
    d: usize,
) -> Result<Dim, String> {
    let Some(k) = k.known() else { return Ok(Dim::Unknown) };
    let Some(eff) = k.checked_sub(1).and_then(|v| v.checked_mul(dl)).and_then(|v| v.checked_add(1)) else {
        return Ok(Dim::Unknown);
    };
    match auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => Ok(match x {
            Dim::Known(n) => Dim::Known(n.div_ceil(s)),
            _ if s == 1 => x.clone(),
            _ => Dim::Unknown,
        }),
        AutoPad::NotSet | AutoPad::Valid => {
            let (pb, pe) = if auto_pad == AutoPad::Valid { (0, 0) } else { (pb, pe) };
            match x {
                Dim::Known(n) => {
                    let Some(total) = n.checked_add(pb).and_then(|v| v.checked_add(pe)) else {
                        return Ok(Dim::Unknown);
                    };
                    if total < eff {
                        return Err(format!(
                            "window of extent {eff} is larger than the padded input extent {total} in spatial dimension {d}"
                        ));
                    }
                    let mut o = if ceil { (total - eff).div_ceil(s) + 1 } else { (total - eff) / s + 1 };
                    if ceil && (o - 1) * s >= n + pb {
                        o -= 1;
                    }
                    Ok(Dim::Known(o))
                }
                _ if s == 1 && pb + pe + 1 == eff => Ok(x.clone()),
                _ => Ok(Dim::Unknown),
            }
        }
    }
}

struct Win {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<usize>,
    auto_pad: AutoPad,
}

fn win(a: &A<'_>) -> Option<Win> {
    let u = |name: &str| -> Option<Vec<usize>> {
        a.ints(name).unwrap_or_default().into_iter().map(|v| usize::try_from(v).ok()).collect()
    };
    Some(Win {
        kernel: u("kernel_shape")?,
        strides: u("strides")?,
        dilations: u("dilations")?,
        pads: u("pads")?,
        auto_pad: AutoPad::parse(&a.string("auto_pad", "NOTSET"))?,
    })
}

/// `v[i]`, or `default` when `v` is empty; `None` when `v` has the wrong length.
fn pick(v: &[usize], len: usize, default: usize) -> Option<Vec<usize>> {
    match v.len() {
        0 => Some(vec![default; len]),
        l if l == len => Some(v.to_vec()),
        _ => None,
    }
}

fn spatial_out(w: &Win, xs: &[Dim], ks: &[Dim], ceil: bool) -> Result<Option<Vec<Dim>>, String> {
    let r = xs.len();
    let (Some(s), Some(dl), Some(p)) = (pick(&w.strides, r, 1), pick(&w.dilations, r, 1), pick(&w.pads, 2 * r, 0))
    else {
        return Ok(None);
    };
    if ks.len() != r || s.contains(&0) || dl.contains(&0) {
        return Ok(None);
    }
    (0..r)
        .map(|d| window_dim(&xs[d], &ks[d], s[d], dl[d], p[d], p[r + d], w.auto_pad, ceil, d))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn conv(a: &A<'_>, x: &Ins<'_>, xs: Option<&[Dim]>, ws: Option<&[Dim]>, bs: Option<&[Dim]>) -> R {
    let Some(w) = win(a) else { return unknown() };
    let group = a.int("group", 1).max(1) as usize;
    let (Some(xs), Some(ws)) = (xs, ws) else {
        return one_opt(None);
    };
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(format!("X {} and W {} must be [N, C, spatial...] of one rank", st(xs), st(ws)));
    }
    if let (Some(c), Some(cg)) = (xs[1].known(), ws[1].known())
        && Some(c) != cg.checked_mul(group)
    {
        return Err(format!("X {} has {c} channels but W {} expects {cg} × group {group}", st(xs), st(ws)));
    }
    if let Some(c) = ws[1].known().and_then(|cg| cg.checked_mul(group)) {
        x.bind(&xs[1], &Dim::Known(c))?;
    }
    if let Some(m) = ws[0].known()
        && m % group != 0
    {
        return Err(format!("W {} has {m} output channels, not a multiple of group {group}", st(ws)));
    }
    if !w.kernel.is_empty() {
        let mismatch = w.kernel.len() != ws.len() - 2
            || w.kernel.iter().zip(&ws[2..]).any(|(k, d)| d.known().is_some_and(|d| d != *k));
        if mismatch {
            return Err(format!("kernel_shape {:?} does not match W {}", w.kernel, st(ws)));
        }
    }
    if let Some(b) = bs
        && (b.len() != 1 || unify(&b[0], &ws[0]).is_none())
    {
        return Err(format!("bias {} does not fit W {} (expected [{}])", st(b), st(ws), ws[0]));
    }
    if let Some(b) = bs {
        x.bind(&b[0], &ws[0])?;
    }
    let Some(sp) = spatial_out(&w, &xs[2..], &ws[2..], false)? else {
        return one(vec![xs[0].clone(), ws[0].clone()]
            .into_iter()
            .chain(std::iter::repeat_n(Dim::Unknown, xs.len() - 2))
            .collect());
    };
    one([xs[0].clone(), ws[0].clone()].into_iter().chain(sp).collect())
}

fn conv_transpose(a: &A<'_>, x: &Ins<'_>) -> R {
    let Some(w) = win(a) else { return unknown() };
    let group = a.int("group", 1).max(1) as usize;
    let (Some(xs), Some(ws)) = (x.shape(0), x.shape(1)) else { return unknown() };
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(format!("X {} and W {} must be [N, C, spatial...] of one rank", st(xs), st(ws)));
    }
    if unify(&xs[1], &ws[0]).is_none() {
        return Err(format!("X {} has {} channels but W {} expects {}", st(xs), xs[1], st(ws), ws[0]));
    }
    x.bind(&xs[1], &ws[0])?;
    let m = match ws[1].known() {
        Some(mg) => Dim::Known(mg * group),
        None => Dim::Unknown,
    };
    let r = xs.len() - 2;
    let u = |name: &str| -> Option<Vec<usize>> {
        a.ints(name).unwrap_or_default().into_iter().map(|v| usize::try_from(v).ok()).collect()
    };
    let (Some(os), Some(opad)) = (u("output_shape"), u("output_padding")) else { return unknown() };
    let same = matches!(w.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
    let (Some(s), Some(dl), Some(opad)) = (pick(&w.strides, r, 1), pick(&w.dilations, r, 1), pick(&opad, r, 0)) else {
        return unknown();
    };
    let mut out = vec![xs[0].clone(), m];
    for d in 0..r {
        let dim = if !os.is_empty() {
            os.get(d).filter(|_| os.len() == r).map_or(Dim::Unknown, |&v| Dim::Known(v))
        } else if same {
            xs[2 + d].known().and_then(|n| n.checked_mul(s[d])).map_or(Dim::Unknown, Dim::Known)
        } else {
            let Some(p) = pick(&w.pads, 2 * r, 0) else { return unknown() };
            match (xs[2 + d].known(), ws[2 + d].known()) {
                (Some(n), Some(k)) => {
                    let full = n
                        .saturating_sub(1)
                        .checked_mul(s[d])
                        .and_then(|v| v.checked_add(opad[d]))
                        .and_then(|v| (k.max(1) - 1).checked_mul(dl[d]).and_then(|e| v.checked_add(e + 1)));
                    let pads = p[d].checked_add(p[r + d]);
                    match (full, pads) {
                        (Some(f), Some(q)) => f.checked_sub(q).map_or(Dim::Unknown, Dim::Known),
                        _ => Dim::Unknown,
                    }
                }
                _ => Dim::Unknown,
            }
        };
        out.push(dim);
    }
    one(out)
}

fn pool(a: &A<'_>, opset: i64, xs: Option<&[Dim]>) -> R {
    let Some(w) = win(a) else { return unknown() };
    let Some(xs) = xs else { return unknown() };
    if xs.len() < 3 {
        return Err(format!("X must be [N, C, spatial...], got {}", st(xs)));
    }
    if w.kernel.len() != xs.len() - 2 {
        return Err(format!(
            "kernel_shape {:?} does not fit the {} spatial dims of X {}",
            w.kernel,
            xs.len() - 2,
            st(xs)
        ));
    }
    let ceil = opset >= 10 && a.int("ceil_mode", 0) != 0;
    let ks: Vec<Dim> = w.kernel.iter().map(|&k| Dim::Known(k)).collect();
    let sp = spatial_out(&w, &xs[2..], &ks, ceil)?.unwrap_or_else(|| vec![Dim::Unknown; xs.len() - 2]);
    let out: Vec<Dim> = xs[..2].iter().cloned().chain(sp).collect();
    Ok(vec![Fact::shaped(out.clone()), Fact::shaped(out)])
}

fn reduce_dims(s: &[Dim], axes: &[usize], keep: bool) -> Vec<Dim> {
    s.iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keep) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect()
}

fn reduce(t: &str, opset: i64, a: &A<'_>, x: &Ins<'_>) -> R {
    let Some(s) = x.shape(0) else { return unknown() };
    let axes_input = if t == "ReduceSum" { opset >= 13 } else { opset >= 18 };
    let axes = if axes_input {
        if x.present(1) {
            match x.ints(1) {
                Some(v) => v,
                None => return unknown(),
            }
        } else {
            vec![]
        }
    } else {
        a.ints("axes").unwrap_or_default()
    };
    let keep = a.int("keepdims", 1) != 0;
    if axes.is_empty() {
        if axes_input && a.int("noop_with_empty_axes", 0) != 0 {
            return one(s.to_vec());
        }
        return one(reduce_dims(s, &(0..s.len()).collect::<Vec<_>>(), keep));
    }
    let axes = req_axes(&axes, s.len(), s)?;
    one(reduce_dims(s, &axes, keep))
}

fn reshape(a: &A<'_>, opset: i64, x: &Ins<'_>) -> R {
    let allowzero = opset >= 14 && a.int("allowzero", 0) != 0;
    let value = x.vals(0).map(<[Val]>::to_vec);
    let Some(target) = x.vals(1) else {
        let rank = x.shape(1).and_then(|s| s.first()).and_then(Dim::known);
        return Ok(vec![Fact { shape: rank.map(|r| vec![Dim::Unknown; r]), value, floats: None }]);
    };
    let input = x.shape(0);
    let ints: Vec<i64> = target.iter().filter_map(Val::int).collect();
    if let Some(n) = ints.iter().find(|&&n| n < -1) {
        return Err(format!("the target shape has a negative dimension {n}"));
    }
    if ints.iter().filter(|&&n| n == -1).count() > 1 {
        return Err("the target shape has more than one -1".into());
    }
    let mut out: Vec<Dim> = Vec::with_capacity(target.len());
    let mut minus = None;
    for (i, v) in target.iter().enumerate() {
        out.push(match v {
            Val::I(0) if !allowzero => match input {
                Some(s) if i < s.len() => s[i].clone(),
                _ => Dim::Unknown,
            },
            Val::I(-1) if minus.is_none() => {
                minus = Some(i);
                Dim::Unknown
            }
            v => v.to_dim(),
        });
    }
    if let Some(s) = input {
        // Cancel the factors both sides share, then what is left must be known.
        let mut left: Vec<Dim> = s.to_vec();
        let mut right: Vec<Dim> = vec![];
        for (i, d) in out.iter().enumerate() {
            if Some(i) == minus {
                continue;
            }
            if let Some(p) = left.iter().position(|l| matches!(l, Dim::Sym(_)) && l == d) {
                left.remove(p);
            } else {
                right.push(d.clone());
            }
        }
        if let (Dim::Known(have), Dim::Known(want)) = (prod(&left), prod(&right)) {
            match minus {
                Some(_) if want == 0 => {
                    return Err(format!(
                        "cannot reshape {} into {}: the -1 dimension cannot be inferred",
                        st(s),
                        st(&out)
                    ));
                }
                Some(m) if want != 0 => {
                    if have % want != 0 {
                        return Err(format!(
                            "cannot reshape {} ({have} elements after cancelling shared dims) into {} with -1",
                            st(s),
                            st(&out)
                        ));
                    }
                    out[m] = Dim::Known(have / want);
                }
                None if have != want => {
                    return Err(format!(
                        "cannot reshape {} ({have} elements) into {} ({want} elements)",
                        st(s),
                        st(&out)
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(vec![Fact { shape: Some(out), value, floats: None }])
}

fn concat(a: &A<'_>, x: &Ins<'_>) -> R {
    let shapes: Vec<Option<&[Dim]>> = (0..x.facts.len()).map(|i| x.shape(i)).collect();
    let Some(first) = shapes.iter().flatten().next() else { return unknown() };
    let r = first.len();
    if r == 0 {
        return Err("Concat of rank-0 tensors".into());
    }
    let ax = req_axis(a.int("axis", 0), first, false)?;
    let mut out: Vec<Dim> = vec![Dim::Unknown; r];
    let mut along: Vec<Dim> = vec![];
    for s in &shapes {
        let Some(s) = s else {
            along.push(Dim::Unknown);
            continue;
        };
        if s.len() != r {
            let all: Vec<String> = shapes.iter().map(|s| shape_text(*s)).collect();
            return Err(format!("inputs {} have different ranks", all.join(", ")));
        }
        for d in 0..r {
            if d == ax {
                continue;
            }
            x.bind(&out[d], &s[d])?;
            out[d] = unify(&out[d], &s[d]).ok_or_else(|| {
                let all: Vec<String> = shapes.iter().map(|s| shape_text(*s)).collect();
                format!("inputs {} differ in dimension {d}, which is not the concatenation axis {ax}", all.join(", "))
            })?;
        }
        along.push(s[ax].clone());
    }
    let total = along.iter().try_fold(0usize, |acc, d| d.known().and_then(|k| acc.checked_add(k)));
    out[ax] = match total {
        Some(n) => Dim::Known(n),
        None if along.len() == 1 => along[0].clone(),
        None => Dim::Unknown,
    };
    let value = if r == 1 {
        (0..x.facts.len()).map(|i| x.vals(i)).collect::<Option<Vec<_>>>().map(|v| v.concat())
    } else {
        None
    };
    Ok(vec![Fact { shape: Some(out), value, floats: None }])
}

fn split(node: &NodeProto, opset: i64, a: &A<'_>, x: &Ins<'_>) -> R {
    let Some(s) = x.shape(0) else { return unknown() };
    rank_at_least(s, 1, "Split")?;
    let ax = req_axis(a.int("axis", 0), s, false)?;
    let k = node.output.len();
    let sizes: Option<Vec<i64>> = if opset < 13 {
        a.ints("split")
    } else if x.present(1) {
        match x.ints(1) {
            Some(v) => Some(v),
            None => return unknown(),
        }
    } else {
        None
    };
    let dims: Vec<Dim> = match (sizes, &s[ax]) {
        (Some(v), len) => {
            if let Some(n) = len.known()
                && (v.len() != k || v.iter().any(|&x| x < 0) || v.iter().map(|&x| x as i128).sum::<i128>() != n as i128)
            {
                return Err(format!("split sizes {v:?} do not cover dimension {ax} of {} in {k} outputs", st(s)));
            }
            v.iter().map(|&x| usize::try_from(x).map_or(Dim::Unknown, Dim::Known)).collect()
        }
        (None, Dim::Known(n)) if opset >= 18 && a.has("num_outputs") => {
            let c = n.div_ceil(k);
            (0..k).map(|i| Dim::Known(c.min(n.saturating_sub(i * c)))).collect()
        }
        (None, Dim::Known(n)) if n % k == 0 => vec![Dim::Known(n / k); k],
        (None, _) => vec![Dim::Unknown; k],
    };
    Ok(dims
        .into_iter()
        .map(|d| {
            let mut o = s.to_vec();
            o[ax] = d;
            Fact::shaped(o)
        })
        .collect())
}

/// Length of `[start, end)` by `step` over a dim of `n` (ONNX clamping rules).
fn slice_len(n: usize, start: i64, end: i64, step: i64) -> (usize, i128) {
    if n == 0 {
        return (0, 0);
    }
    let n = n as i128;
    let norm = |v: i64| if v < 0 { v as i128 + n } else { v as i128 };
    let (s, e) = (norm(start), norm(end));
    let step = step as i128;
    if step > 0 {
        let (s, e) = (s.clamp(0, n), e.clamp(0, n));
        (((e - s).max(0) + step - 1).div_euclid(step) as usize, s)
    } else {
        let (s, e) = (s.clamp(0, n - 1), e.clamp(-1, n - 1));
        (((s - e).max(0) + (-step) - 1).div_euclid(-step) as usize, s)
    }
}

fn slice(opset: i64, a: &A<'_>, x: &Ins<'_>) -> R {
    let Some(s) = x.shape(0) else { return unknown() };
    let (starts, ends, axes, steps) = if opset < 10 {
        (a.ints("starts"), a.ints("ends"), a.ints("axes"), None)
    } else {
        let opt = |i: usize| if x.present(i) { x.ints(i).map(Some) } else { Some(None) };
        let (Some(axes), Some(steps)) = (opt(3), opt(4)) else { return one(vec![Dim::Unknown; s.len()]) };
        (x.ints(1), x.ints(2), axes, steps)
    };
    let (Some(starts), Some(ends)) = (starts, ends) else { return one(vec![Dim::Unknown; s.len()]) };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return unknown();
    }
    req_axes(&axes, s.len(), s)?;
    let mut out = s.to_vec();
    let mut picks: Vec<Option<(i128, i64, usize)>> = vec![None; s.len()];
    for i in 0..starts.len() {
        let Some(ax) = axis(axes[i], s.len()) else { return unknown() };
        if steps[i] == 0 {
            return unknown();
        }
        out[ax] = match &s[ax] {
            Dim::Known(n) => {
                let (len, first) = slice_len(*n, starts[i], ends[i], steps[i]);
                picks[ax] = Some((first, steps[i], len));
                Dim::Known(len)
            }
            d if starts[i] == 0 && steps[i] == 1 && ends[i] >= i32::MAX as i64 => d.clone(),
            _ => Dim::Unknown,
        };
    }
    let value = match (x.vals(0), s.len(), picks.first()) {
        (Some(v), 1, Some(Some((first, step, len)))) => {
            Some((0..*len).map(|j| v[(first + j as i128 * *step as i128) as usize].clone()).collect())
        }
        (Some(v), 1, Some(None)) => Some(v.to_vec()),
        _ => None,
    };
    Ok(vec![Fact { shape: Some(out), value, floats: None }])
}

fn gather(a: &A<'_>, x: &Ins<'_>) -> R {
    let (Some(s), Some(is)) = (x.shape(0), x.shape(1)) else { return unknown() };
    rank_at_least(s, 1, "Gather")?;
    let ax = req_axis(a.int("axis", 0), s, false)?;
    if let (Some(idx), Dim::Known(n)) = (x.ints(1), &s[ax])
        && let Some(i) = idx.iter().find(|&&i| i < -(*n as i64) || i >= *n as i64)
    {
        return Err(format!("index {i} is out of range for axis {ax} of the input {}", st(s)));
    }
    let out: Vec<Dim> = s[..ax].iter().chain(is).chain(&s[ax + 1..]).cloned().collect();
    let value = match (x.vals(0), x.ints(1), s.len()) {
        (Some(v), Some(idx), 1) => idx
            .iter()
            .map(|&i| {
                let i = if i < 0 { i + v.len() as i64 } else { i };
                usize::try_from(i).ok().and_then(|i| v.get(i).cloned())
            })
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    Ok(vec![Fact { shape: Some(out), value, floats: None }])
}

fn squeeze(unsqueeze: bool, opset: i64, a: &A<'_>, x: &Ins<'_>) -> R {
    let value = x.vals(0).map(<[Val]>::to_vec);
    let axes = if opset < 13 {
        a.ints("axes").unwrap_or_default()
    } else if x.present(1) {
        match x.ints(1) {
            Some(v) => v,
            None => return unknown(),
        }
    } else {
        vec![]
    };
    let Some(s) = x.shape(0) else { return unknown() };
    let out = if unsqueeze {
        let r = s.len() + axes.len();
        let mut ax = req_axes(&axes, r, s)?;
        ax.sort_unstable();
        let mut it = s.iter();
        let mut out = Vec::with_capacity(r);
        for i in 0..r {
            if ax.binary_search(&i).is_ok() {
                out.push(Dim::Known(1));
            } else {
                match it.next() {
                    Some(d) => out.push(d.clone()),
                    None => return unknown(),
                }
            }
        }
        out
    } else if axes.is_empty() {
        if s.iter().any(|d| d.known().is_none()) {
            return unknown();
        }
        s.iter().filter(|d| **d != Dim::Known(1)).cloned().collect()
    } else {
        let ax = req_axes(&axes, s.len(), s)?;
        for &i in &ax {
            if let Dim::Known(n) = s[i]
                && n != 1
            {
                return Err(format!("cannot squeeze dimension {i} of {}: its size is {n}, not 1", st(s)));
            }
        }
        s.iter().enumerate().filter(|(i, _)| !ax.contains(i)).map(|(_, d)| d.clone()).collect()
    };
    Ok(vec![Fact { shape: Some(out), value, floats: None }])
}

fn pad(opset: i64, a: &A<'_>, x: &Ins<'_>) -> R {
    let Some(s) = x.shape(0) else { return unknown() };
    let r = s.len();
    let pads = if opset < 11 { a.ints("pads").or_else(|| a.ints("paddings")) } else { x.ints(1) };
    let Some(pads) = pads else { return one(vec![Dim::Unknown; r]) };
    let axes: Vec<usize> = if opset >= 18 && x.present(3) {
        let Some(v) = x.ints(3) else { return one(vec![Dim::Unknown; r]) };
        match v.iter().map(|&v| axis(v, r)).collect() {
            Some(v) => v,
            None => return unknown(),
        }
    } else {
        (0..r).collect()
    };
    let k = axes.len();
    if pads.len() != 2 * k {
        return Err(format!("{} pads for the input {} ({k} axes need {})", pads.len(), st(s), 2 * k));
    }
    let mut out = s.to_vec();
    for (i, &ax) in axes.iter().enumerate() {
        let add = pads[i] as i128 + pads[k + i] as i128;
        out[ax] = match &s[ax] {
            d if add == 0 => d.clone(),
            Dim::Known(n) => match usize::try_from(*n as i128 + add) {
                Ok(v) => Dim::Known(v),
                Err(_) => return Err(format!("pads {pads:?} crop axis {ax} of the input {} below zero", st(s))),
            },
            _ => Dim::Unknown,
        };
    }
    one(out)
}

fn resize(t: &str, opset: i64, a: &A<'_>, x: &Ins<'_>) -> R {
    let Some(s) = x.shape(0) else { return unknown() };
    let r = s.len();
    let unknown_dims = || one(vec![Dim::Unknown; r]);
    let axes: Vec<usize> = match a.ints("axes").filter(|_| t == "Resize" && opset >= 18) {
        Some(v) => match v.iter().map(|&v| axis(v, r)).collect() {
            Some(v) => v,
            None => return unknown(),
        },
        None => (0..r).collect(),
    };
    // An input given as an empty tensor counts as absent (as in the kernel).
    let given = |i: usize| x.present(i) && x.shape(i).is_none_or(|s| prod(s) != Dim::Known(0));
    let (scales_at, sizes_at) = if t == "Upsample" || opset < 11 { (1, None) } else { (2, Some(3)) };
    let mut out = s.to_vec();
    if t == "Upsample" && opset < 9 {
        let Some(f) = a.floats("scales") else { return unknown_dims() };
        return scaled(s, &axes, &f).map_or_else(unknown_dims, one);
    }
    if given(scales_at) {
        let Some(f) = x.facts.get(scales_at).copied().flatten().and_then(|f| f.floats.clone()) else {
            return unknown_dims();
        };
        return scaled(s, &axes, &f).map_or_else(unknown_dims, one);
    }
    if let Some(z) = sizes_at.filter(|&i| given(i)) {
        if a.string("keep_aspect_ratio_policy", "stretch") != "stretch" {
            return unknown_dims();
        }
        let Some(v) = x.ints(z) else { return unknown_dims() };
        if v.len() != axes.len() {
            return unknown_dims();
        }
        for (&ax, &n) in axes.iter().zip(&v) {
            out[ax] = usize::try_from(n).map_or(Dim::Unknown, Dim::Known);
        }
        return one(out);
    }
    unknown_dims()
}

/// Output dims `floor(L · s)` (in f64, as the kernel computes them) for known `L`.
fn scaled(s: &[Dim], axes: &[usize], f: &[f32]) -> Option<Vec<Dim>> {
    if f.len() != axes.len() || f.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
        return None;
    }
    let mut out = s.to_vec();
    for (&ax, &v) in axes.iter().zip(f) {
        out[ax] = match &s[ax] {
            d if v == 1.0 => d.clone(),
            Dim::Known(n) => {
                let len = (*n as f64 * v as f64).floor();
                if len > u32::MAX as f64 { Dim::Unknown } else { Dim::Known(len as usize) }
            }
            _ => Dim::Unknown,
        };
    }
    Some(out)
}

/// `ai.onnx.ml` operators: the batch dim goes through, class and target counts come
/// from the attributes.
fn ml(t: &str, a: &A<'_>, x: &Ins<'_>) -> R {
    let s = x.shape(0);
    let n = s.and_then(|s| match s.len() {
        2 => Some(s[0].clone()),
        _ => None,
    });
    let ints_len = |name: &str| a.ints(name).map(|v| v.len());
    match t {
        "Binarizer" | "Imputer" | "LabelEncoder" | "Normalizer" | "Scaler" | "ZipMap" => {
            one_opt(s.map(<[Dim]>::to_vec))
        }
        "TreeEnsembleClassifier" | "LinearClassifier" => {
            let Some(n) = n else { return unknown() };
            let c = ints_len("classlabels_int64s").or_else(|| ints_len("classlabels_ints"));
            let c = c.filter(|&c| t == "TreeEnsembleClassifier" || c > 2).map_or(Dim::Unknown, Dim::Known);
            Ok(vec![Fact::shaped(vec![n.clone()]), Fact::shaped(vec![n, c])])
        }
        "TreeEnsembleRegressor" | "LinearRegressor" => {
            let Some(n) = n else { return unknown() };
            let targets = a.int_opt("n_targets").or_else(|| a.int_opt("targets")).unwrap_or(1);
            let c = usize::try_from(targets).map_or(Dim::Unknown, Dim::Known);
            one(vec![n, c])
        }
        "SVMClassifier" => {
            let Some(n) = n else { return unknown() };
            Ok(vec![Fact::shaped(vec![n.clone()]), Fact::shaped(vec![n, Dim::Unknown])])
        }
        "SVMRegressor" => {
            let Some(n) = n else { return unknown() };
            one(vec![n, Dim::Unknown])
        }
        "ArrayFeatureExtractor" => {
            let (Some(s), Some(is)) = (s, x.shape(1)) else { return unknown() };
            let Dim::Known(k) = prod(is) else { return unknown() };
            match s.len() {
                0 => unknown(),
                1 => one(vec![Dim::Known(1), Dim::Known(k)]),
                r => one(s[..r - 1].iter().cloned().chain([Dim::Known(k)]).collect()),
            }
        }
        "OneHotEncoder" => {
            let Some(s) = s else { return unknown() };
            let Some(c) = ints_len("cats_int64s") else { return unknown() };
            one(s.iter().cloned().chain([Dim::Known(c)]).collect())
        }
        _ => unknown(),
    }
}

/// The shape a graph input or output declares: `None` when it declares none; a
/// `dim_param` becomes a symbol, a dim with neither value nor name unknown.
pub(crate) fn declared(vi: &crate::onnx::ValueInfoProto) -> Option<Vec<Dim>> {
    let shape = vi.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match (d.dim_value, &d.dim_param) {
                (Some(v), _) if v >= 0 => Dim::Known(v as usize),
                (_, Some(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                _ => Dim::Unknown,
            })
            .collect(),
    )
}

/// Checks a graph output's declared shape against the inferred one; returns the
/// better known of the two, dim by dim.
pub(crate) fn check_declared(declared: &[Dim], inferred: Option<&[Dim]>) -> Result<Vec<Dim>, String> {
    let Some(inf) = inferred else { return Ok(declared.to_vec()) };
    // Some writers declare `shape {}` (rank 0) for "no shape"; only a non-scalar
    // declaration is held against the graph.
    if declared.is_empty() && !inf.is_empty() {
        return Ok(inf.to_vec());
    }
    let clash = || format!("declared as {} but the graph computes {}", st(declared), st(inf));
    if declared.len() != inf.len() {
        return Err(clash());
    }
    declared
        .iter()
        .zip(inf)
        .map(|(d, i)| match (d, i) {
            (Dim::Known(a), Dim::Known(b)) if a != b => Err(clash()),
            (Dim::Known(_), _) | (Dim::Sym(_), Dim::Unknown | Dim::Sym(_)) => Ok(d.clone()),
            _ => Ok(i.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: usize) -> Dim {
        Dim::Known(n)
    }
    fn s(n: &str) -> Dim {
        Dim::Sym(n.into())
    }

    #[test]
    fn broadcast_rules() {
        let b = |x: &[Dim], y: &[Dim]| broadcast(&[Some(x), Some(y)]);
        assert_eq!(b(&[s("N"), k(1)], &[k(4)]).unwrap(), Some(vec![s("N"), k(4)]));
        // A symbol against a known n ≠ 1 is n (the symbol must be 1 or n).
        assert_eq!(b(&[s("N")], &[k(3)]).unwrap(), Some(vec![k(3)]));
        assert_eq!(b(&[s("N")], &[s("M")]).unwrap(), Some(vec![Dim::Unknown]));
        assert_eq!(b(&[s("N")], &[s("N")]).unwrap(), Some(vec![s("N")]));
        assert!(b(&[k(2), k(3)], &[k(4)]).unwrap_err().contains("[2, 3] and [4]"));
        assert_eq!(broadcast(&[Some(&[k(2)][..]), None]).unwrap(), None);
    }

    #[test]
    fn products_and_unification() {
        assert_eq!(prod(&[k(2), k(3)]), k(6));
        assert_eq!(prod(&[k(1), s("N")]), s("N"));
        assert_eq!(prod(&[k(2), s("N")]), Dim::Unknown);
        assert_eq!(unify(&s("N"), &k(3)), Some(k(3)));
        assert_eq!(unify(&k(2), &k(3)), None);
    }

    #[test]
    fn slice_lengths_follow_the_onnx_clamping() {
        assert_eq!(slice_len(10, 1, i64::MAX, 1).0, 9);
        assert_eq!(slice_len(10, -3, -1, 1).0, 2);
        assert_eq!(slice_len(10, 0, 10, 3).0, 4);
        assert_eq!(slice_len(10, -1, i64::MIN, -1).0, 10);
        assert_eq!(slice_len(10, 8, 2, -2).0, 3);
        assert_eq!(slice_len(0, -1, i64::MIN, -1).0, 0);
        assert_eq!(slice_len(5, 7, 9, 1).0, 0);
    }

    #[test]
    fn window_sizes() {
        let w = |x, k, st, p, ap, ceil| window_dim(&x, &Dim::Known(k), st, 1, p, p, ap, ceil, 0);
        assert_eq!(w(k(224), 7, 2, 3, AutoPad::NotSet, false).unwrap(), k(112));
        assert_eq!(w(k(112), 3, 2, 1, AutoPad::NotSet, false).unwrap(), k(56));
        assert_eq!(w(k(5), 2, 2, 0, AutoPad::NotSet, true).unwrap(), k(3));
        assert_eq!(w(k(7), 3, 2, 0, AutoPad::SameUpper, false).unwrap(), k(4));
        // A symbolic size keeps its name through a size-preserving window.
        assert_eq!(w(s("H"), 3, 1, 1, AutoPad::NotSet, false).unwrap(), s("H"));
        assert_eq!(w(s("H"), 3, 2, 1, AutoPad::NotSet, false).unwrap(), Dim::Unknown);
        assert!(w(k(2), 5, 1, 1, AutoPad::NotSet, false).is_err());
    }
}

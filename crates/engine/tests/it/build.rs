//! Building small ONNX models in tests, straight from the prost structs.

use deed_engine::onnx::*;
use deed_types::DType;
use prost::Message;

/// A dimension in a value info: a fixed size or a named dynamic one.
pub enum D {
    N(i64),
    P(&'static str),
}

pub fn vi(name: &str, dtype: DType, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            D::N(v) => Dimension { dim_value: Some(*v), dim_param: None },
            D::P(p) => Dimension { dim_value: None, dim_param: Some((*p).into()) },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: dtype.code() as i32,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

pub fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs.first().unwrap_or(&"")),
        op_type: op.into(),
        domain: String::new(),
        attribute,
    }
}

pub fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::INT, i, ..Default::default() }
}

pub fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::FLOAT, f, ..Default::default() }
}

pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::INTS, ints: ints.to_vec(), ..Default::default() }
}

pub fn attr_floats(name: &str, floats: &[f32]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::FLOATS, floats: floats.to_vec(), ..Default::default() }
}

pub fn attr_s(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::STRING, s: s.as_bytes().to_vec(), ..Default::default() }
}

pub fn attr_t(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::TENSOR, t: Some(t), ..Default::default() }
}

/// A float32 tensor with its data in `raw_data`.
pub fn t_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DType::F32.code() as i32,
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 tensor with its data in `int64_data`.
pub fn t_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DType::I64.code() as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

pub struct G {
    pub nodes: Vec<NodeProto>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    pub inits: Vec<TensorProto>,
    pub opset: i64,
}

impl G {
    pub fn new(nodes: Vec<NodeProto>, inputs: Vec<ValueInfoProto>, outputs: Vec<ValueInfoProto>) -> G {
        G { nodes, inputs, outputs, inits: vec![], opset: 13 }
    }

    pub fn inits(mut self, inits: Vec<TensorProto>) -> G {
        self.inits = inits;
        self
    }

    pub fn opset(mut self, opset: i64) -> G {
        self.opset = opset;
        self
    }

    pub fn proto(self) -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: self.opset }],
            producer_name: "deed-engine tests".into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: "g".into(),
                initializer: self.inits,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn bytes(self) -> Vec<u8> {
        self.proto().encode_to_vec()
    }
}

//! A bundle — an ONNX graph whose weights are a safetensors file named by its CID —
//! runs like a self-contained model: offline with `deed exec`, and published, paid
//! for, executed and verified through a node.

use crate::common::*;
use deed_engine::onnx::{ModelProto, StringStringEntryProto};
use deed_types::Cid;
use prost::Message;
use std::path::{Path, PathBuf};

/// Splits `fixtures/mlp.onnx` into `<dir>/mlp_graph.onnx` and `<dir>/<cid>.safetensors`;
/// returns the graph's path.
fn make_bundle(dir: &Path) -> PathBuf {
    let mut m = ModelProto::decode(std::fs::read(fixtures().join("mlp.onnx")).unwrap().as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    let mut spans = Vec::new();
    for t in &g.initializer {
        assert_eq!(t.data_type, 1, "the fixture's weights are float32");
        let bytes: Vec<u8> = if t.raw_data.is_empty() {
            t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            t.raw_data.clone()
        };
        let (b, e) = (data.len(), data.len() + bytes.len());
        header.insert(t.name.clone(), serde_json::json!({ "dtype": "F32", "shape": t.dims, "data_offsets": [b, e] }));
        data.extend(bytes);
        spans.push((b, e));
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(&header);
    file.extend(&data);
    let cid = Cid::of(&file);
    let base = 8 + header.len();
    for (t, (b, e)) in g.initializer.iter_mut().zip(spans) {
        t.raw_data.clear();
        t.float_data.clear();
        t.data_location = 1;
        let entry = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
        t.external_data = vec![
            entry("location", cid.weights_location()),
            entry("offset", (base + b).to_string()),
            entry("length", (e - b).to_string()),
        ];
    }
    std::fs::write(dir.join(cid.weights_location()), &file).unwrap();
    let graph = dir.join("mlp_graph.onnx");
    std::fs::write(&graph, m.encode_to_vec()).unwrap();
    graph
}

#[test]
fn a_bundle_runs_offline_and_through_a_node_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    ok_json(&home, &["init"]);
    let bundle_dir = tmp.path().join("bundle");
    std::fs::create_dir_all(&bundle_dir).unwrap();
    let graph = make_bundle(&bundle_dir);
    let input = fixtures().join("mlp.input.json");
    let (graph_s, input_s) = (graph.to_str().unwrap(), input.to_str().unwrap());

    // Offline: the same bits as the self-contained file.
    let whole = ok_json(&home, &["exec", fixtures().join("mlp.onnx").to_str().unwrap(), "--input", input_s]);
    let split = ok_json(&home, &["exec", graph_s, "--input", input_s]);
    assert_eq!(split["output_hash"], whole["output_hash"]);
    assert_eq!(split["trace_root"], whole["trace_root"]);

    // Weights that do not hash to the CID in their name are refused.
    let tampered_dir = tmp.path().join("tampered");
    std::fs::create_dir_all(&tampered_dir).unwrap();
    for e in std::fs::read_dir(&bundle_dir).unwrap() {
        let p = e.unwrap().path();
        let mut b = std::fs::read(&p).unwrap();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let last = b.len() - 1;
            b[last] ^= 1;
        }
        std::fs::write(tampered_dir.join(p.file_name().unwrap()), b).unwrap();
    }
    let err = fails(&home, &["exec", tampered_dir.join("mlp_graph.onnx").to_str().unwrap(), "--input", input_s], 1);
    assert!(err.contains("does not hash to the CID"), "{err}");

    // Through a node: publish uploads the weights, then the graph; run; verify.
    let node = NodeProc::start(&home);
    let url = node.url.clone();
    let p = ok_json(&home, &["--node", &url, "publish", graph_s, "--name", "mlp-bundle"]);
    let id = p["model"].as_str().unwrap().to_string();
    assert_eq!(id, Cid::of(&std::fs::read(&graph).unwrap()).to_string(), "the model id is the graph's CID");
    let out = tmp.path().join("out");
    let r = ok_json(
        &home,
        &["--node", &url, "--key", "dev1", "run", &id, "--input", input_s, "--out", out.to_str().unwrap()],
    );
    assert_eq!(r["output_hash"], whole["output_hash"]);
    let receipt = out.join("receipt.json");
    let v = ok_json(&home, &["--node", &url, "verify", receipt.to_str().unwrap()]);
    assert_eq!(v["verified"], true, "{v}");
    let v = ok_json(
        &home,
        &["--node", &url, "verify", receipt.to_str().unwrap(), "--offline", "--model", graph_s, "--input", input_s],
    );
    assert_eq!(v["verified"], true, "{v}");
}

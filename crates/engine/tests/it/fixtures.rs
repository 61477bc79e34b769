//! Every model in `fixtures/` (made with onnxruntime by `scripts/make_fixtures.py`)
//! must reproduce onnxruntime's outputs within 1e-5 (absolute or relative; integers
//! exactly), and give identical output hashes and traces for 1 and 2 threads.

use deed_engine::{Model, RunOptions};
use deed_types::{Tensor, TensorData, TensorSet};
use std::path::{Path, PathBuf};

const TOLERANCE: f64 = 1e-5;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read_set(path: &Path) -> TensorSet {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    TensorSet::from_json(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Differences between `got` and `want`, as messages.
fn compare(name: &str, got: &Tensor, want: &Tensor, tol: f64) -> Option<String> {
    if got.shape != want.shape || got.dtype() != want.dtype() {
        return Some(format!(
            "{name}: got {} {:?}, want {} {:?}",
            got.dtype().name(),
            got.shape,
            want.dtype().name(),
            want.shape
        ));
    }
    match (&got.data, &want.data) {
        (TensorData::F32(g), TensorData::F32(w)) => {
            let mut worst = (0.0f64, 0usize);
            for (i, (&a, &b)) in g.iter().zip(w).enumerate() {
                let (a, b) = (a as f64, b as f64);
                let diff = (a - b).abs();
                let ok = diff <= TOLERANCE || diff <= tol * b.abs() || (a.is_nan() && b.is_nan());
                if !ok && diff > worst.0 {
                    worst = (diff, i);
                }
            }
            (worst.0 > 0.0).then(|| {
                format!("{name}[{}]: got {:e}, want {:e} (diff {:e})", worst.1, g[worst.1], w[worst.1], worst.0)
            })
        }
        (g, w) => (g != w).then(|| format!("{name}: integer data differs")),
    }
}

/// Runs one fixture; returns failure messages.
fn check(model_path: &Path) -> Vec<String> {
    check_tol(model_path, TOLERANCE)
}

/// Runs one fixture with relative tolerance `tol` (absolute 1e-5 near zero).
fn check_tol(model_path: &Path, tol: f64) -> Vec<String> {
    let stem = model_path.file_stem().unwrap().to_str().unwrap();
    let dir = model_path.parent().unwrap();
    let label = model_path.strip_prefix(fixtures_dir()).unwrap_or(model_path).display().to_string();
    let (inp, exp) = (dir.join(format!("{stem}.input.json")), dir.join(format!("{stem}.expected.json")));
    if !inp.exists() || !exp.exists() {
        return vec![format!("{label}: missing input or expected JSON")];
    }
    let bytes = std::fs::read(model_path).unwrap();
    let model = match Model::load(&bytes) {
        Ok(m) => m,
        Err(e) => return vec![format!("{label}: load: {e}")],
    };
    let (inputs, expected) = (read_set(&inp), read_set(&exp));
    let one = match model.run(&inputs, &RunOptions { threads: 1, trace: true }) {
        Ok(o) => o,
        Err(e) => return vec![format!("{label}: run: {e}")],
    };
    let two = model.run(&inputs, &RunOptions { threads: 2, trace: true }).unwrap();
    let mut fails = Vec::new();
    if one.output_hash() != two.output_hash() || one.trace_root() != two.trace_root() {
        fails.push(format!("{label}: 1 and 2 threads differ"));
    }
    // The node-by-node run (what challengers and fraud proofs use: no buffer lent in
    // place, nothing freed) gives the same trace and outputs as the run loop.
    let (kept, _) = model.run_keep_all(&inputs, &RunOptions { threads: 2, trace: true }).unwrap();
    if kept.trace != one.trace || kept.output_hash() != one.output_hash() {
        fails.push(format!("{label}: run_keep_all differs from run"));
    }
    if one.outputs.0.keys().collect::<Vec<_>>() != expected.0.keys().collect::<Vec<_>>() {
        fails.push(format!("{label}: outputs {:?}, expected {:?}", one.outputs.0.keys(), expected.0.keys()));
    }
    for (name, want) in &expected.0 {
        if let Some(got) = one.outputs.0.get(name)
            && let Some(msg) = compare(name, got, want, tol)
        {
            fails.push(format!("{label}: {msg}"));
        }
    }
    fails
}

fn models_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "onnx")).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn fixtures_match_onnxruntime() {
    let root = fixtures_dir();
    let mut models = models_in(&root);
    models.extend(models_in(&root.join("ops")));
    let mut fails = Vec::new();
    for m in &models {
        fails.extend(check(m));
    }
    eprintln!("{} fixture models checked, {} failures", models.len(), fails.len());
    assert!(fails.is_empty(), "fixture failures:\n{}", fails.join("\n"));
}

#[test]
fn whole_model_fixtures_present() {
    // The MLP and CNN are the end-to-end models the rest of deed's tests use.
    for name in ["mlp.onnx", "cnn.onnx"] {
        let p = fixtures_dir().join(name);
        if p.exists() {
            assert!(check(&p).is_empty(), "{name}: {:?}", check(&p));
        } else {
            eprintln!("fixture {name} not generated yet");
        }
    }
}

/// Whole architectures (ResNet, SqueezeNet, BERT-style encoders, tree ensembles) from
/// `scripts/make_arch_fixtures.py`: onnxruntime's outputs within 1e-4 relative.
#[test]
fn architectures_match_onnxruntime() {
    let models = models_in(&fixtures_dir().join("arch"));
    let mut fails = Vec::new();
    for m in &models {
        fails.extend(check_tol(m, 1e-4));
    }
    eprintln!("{} architecture fixtures checked, {} failures", models.len(), fails.len());
    assert!(fails.is_empty(), "architecture fixture failures:\n{}", fails.join("\n"));
}

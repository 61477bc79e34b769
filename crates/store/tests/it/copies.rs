//! Copy detection over fixtures/copies (made by scripts/copy_suite.sh): every copy of a
//! base model must score at least `NEAR_COPY_MIN` against it, and unrelated models of
//! the same architecture must not. Prints the rates and every copy's score (the numbers
//! in docs/COPIES.md).

use deed_store::{
    fingerprint::{self, Fingerprint, NEAR_COPY_MIN},
    formats::FormatLimits,
};
use std::path::{Path, PathBuf};

fn fp(p: &Path) -> Fingerprint {
    let b = std::fs::read(p).unwrap();
    fingerprint::of_model(&b, &FormatLimits::default(), &|_| None).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn detection_and_false_positive_rates() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/copies");
    let (mut pos, mut hit, mut neg, mut fpos) = (0u32, 0u32, 0u32, 0u32);
    let mut worst_copy = (1.0f64, String::new());
    let mut worst_other = (0.0f64, String::new());
    for arch in ["mlp", "cnn", "attn"] {
        let dir = root.join(arch);
        let base = fp(&dir.join("base.onnx"));
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        let copies: Vec<(String, Fingerprint)> =
            names.iter().filter(|n| n.starts_with("copy-")).map(|n| (n.clone(), fp(&dir.join(n)))).collect();
        let others: Vec<(String, Fingerprint)> =
            names.iter().filter(|n| n.starts_with("other-")).map(|n| (n.clone(), fp(&dir.join(n)))).collect();
        assert!(copies.len() >= 10 && others.len() >= 10, "suite missing under {}", dir.display());
        for (n, c) in &copies {
            let s = fingerprint::similarity(&base, c);
            println!("{arch:5} {n:32} {s:.3}");
            pos += 1;
            hit += u32::from(s >= NEAR_COPY_MIN);
            if s < worst_copy.0 {
                worst_copy = (s, format!("{arch}/{n}"));
            }
        }
        // Negatives: base vs others, others vs others, copies vs others.
        let mut group: Vec<&(String, Fingerprint)> = others.iter().collect();
        let base_entry = ("base.onnx".to_string(), base.clone());
        group.push(&base_entry);
        let mut check = |a: &(String, Fingerprint), b: &(String, Fingerprint)| {
            let s = fingerprint::similarity(&a.1, &b.1);
            neg += 1;
            fpos += u32::from(s >= NEAR_COPY_MIN);
            if s > worst_other.0 {
                worst_other = (s, format!("{arch}/{} ~ {}", a.0, b.0));
            }
        };
        for i in 0..group.len() {
            for j in i + 1..group.len() {
                check(group[i], group[j]);
            }
        }
        for c in &copies {
            for o in &others {
                check(c, o);
            }
        }
    }
    let det = f64::from(hit) / f64::from(pos);
    let fpr = f64::from(fpos) / f64::from(neg);
    println!("detection {hit}/{pos} = {:.1}%  (lowest copy score {:.3}: {})", det * 100.0, worst_copy.0, worst_copy.1);
    println!(
        "false positives {fpos}/{neg} = {:.2}%  (highest unrelated score {:.3}: {})",
        fpr * 100.0,
        worst_other.0,
        worst_other.1
    );
    assert!(det >= 0.95, "detection {det}");
    assert!(fpr <= 0.01, "false positives {fpr}");
}

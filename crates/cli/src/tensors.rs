//! Reading inputs from JSON or `.npy` files, and printing and writing outputs.

use crate::Fail;
use deed_types::{Tensor, TensorSet, npy, with_data};
use std::path::Path;

/// Elements printed per tensor in human output before eliding.
const PRINT_ELEMENTS_MAX: usize = 16;

/// Reads a tensor set from a JSON file, or a single-input `.npy` file named after
/// `single_input` (the model's only input).
pub fn read_inputs(path: &Path, input_names: &[String]) -> Result<TensorSet, Fail> {
    let bytes = std::fs::read(path).map_err(|e| Fail::new(1, format!("cannot read {}: {e}", path.display())))?;
    let is_npy = path.extension().is_some_and(|e| e == "npy") || bytes.starts_with(b"\x93NUMPY");
    if is_npy {
        let t = npy::decode(&bytes).map_err(|e| Fail::new(1, format!("{}: {e}", path.display())))?;
        let [name] = input_names else {
            return Err(Fail::new(
                1,
                format!(
                    "a .npy file holds one tensor but the model has {} inputs ({}); use a JSON input file",
                    input_names.len(),
                    input_names.join(", ")
                ),
            ));
        };
        let mut s = TensorSet::default();
        s.0.insert(name.clone(), t);
        return Ok(s);
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Fail::new(
            1,
            format!(
                "{}: not JSON ({e}); expected {{\"name\": {{\"shape\", \"dtype\", \"data\"}}}} or a .npy file",
                path.display()
            ),
        )
    })?;
    TensorSet::from_json(&v).map_err(|e| Fail::new(1, format!("{}: {e}", path.display())))
}

/// One line per tensor: name, dtype, shape, and the first values.
pub fn describe(set: &TensorSet) -> String {
    let mut out = String::new();
    for (name, t) in &set.0 {
        out.push_str(&format!("  {name}: {} {:?} = {}\n", t.dtype().name(), t.shape, preview(t)));
    }
    out
}

fn preview(t: &Tensor) -> String {
    let items: Vec<String> =
        with_data!(&t.data, v => v.iter().take(PRINT_ELEMENTS_MAX).map(|x| format!("{x:?}")).collect());
    let more =
        if t.data.len() > PRINT_ELEMENTS_MAX { format!(", … ({} values)", t.data.len()) } else { String::new() };
    format!("[{}{more}]", items.join(", "))
}

/// Writes `outputs.json` and one `<name>.npy` per output into `dir`.
pub fn write_outputs(dir: &Path, set: &TensorSet) -> Result<Vec<String>, Fail> {
    let mut written = Vec::new();
    let p = dir.join("outputs.json");
    std::fs::write(&p, serde_json::to_string_pretty(&set.to_json()).expect("json"))
        .map_err(|e| Fail::new(1, format!("cannot write {}: {e}", p.display())))?;
    written.push(p.display().to_string());
    for (name, t) in &set.0 {
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let p = dir.join(format!("{safe}.npy"));
        std::fs::write(&p, npy::encode(t)).map_err(|e| Fail::new(1, format!("cannot write {}: {e}", p.display())))?;
        written.push(p.display().to_string());
    }
    Ok(written)
}

//! Times one ONNX model under tract: `tract-bench MODEL THREADS RUNS` prints one JSON line
//! with load_ms (parse + optimize + plan), median_ms over RUNS runs and peak RSS (VmHWM).
//! Inputs are deterministic pseudo-random values of each input's declared shape.

use std::time::Instant;
use tract_onnx::prelude::*;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_owned()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let (path, threads, runs): (&str, usize, usize) = (&args[1], args[2].parse()?, args[3].parse()?);
    if threads > 1 {
        tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::multithread(threads));
    }
    let t0 = Instant::now();
    let model = tract_onnx::onnx().model_for_path(path)?.into_optimized()?.into_runnable()?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut inputs = TVec::new();
    for i in 0..model.model().inputs.len() {
        let fact = model.model().input_fact(i)?;
        let shape: Vec<usize> = fact.shape.as_concrete().expect("concrete input shape").to_vec();
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|j| ((j * 7919 % 1013) as f32) / 1013.0 - 0.5).collect();
        inputs.push(Tensor::from_shape(&shape, &data)?.into_tvalue());
    }
    model.run(inputs.clone())?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        model.run(inputs.clone())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"load_ms\": {load_ms:.3}, \"median_ms\": {:.4}, \"peak_rss_kib\": {}}}",
        times[times.len() / 2],
        vm_hwm_kib()
    );
    Ok(())
}

//! Times one ONNX model under deed's engine, for `bench/run.sh engine`.
//!
//! `engine_bench MODEL THREADS RUNS` prints one JSON line: `load_ms` (read + parse +
//! plan), `median_ms` with tracing on and `median_ms_notrace` with it off (runs
//! interleaved), the kernel path and the process's peak RSS (`VmHWM`). Inputs are
//! deterministic pseudo-random values of each input's declared shape (dynamic dims = 1).

use deed_engine::kernels::KernelPath;
use deed_engine::{Model, RunOptions};
use deed_types::{DType, Tensor, TensorData, TensorSet};
use std::collections::BTreeMap;
use std::time::Instant;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: engine_bench MODEL THREADS RUNS");
        std::process::exit(2);
    }
    let threads: usize = args[2].parse().expect("THREADS");
    let runs: usize = args[3].parse().expect("RUNS");
    let t0 = Instant::now();
    let bytes = std::fs::read(&args[1]).expect("read model");
    let model = match Model::load(&bytes) {
        Ok(m) => m,
        Err(e) => {
            println!("{{\"error\": {:?}}}", e.to_string());
            return;
        }
    };
    drop(bytes);
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut inputs = BTreeMap::new();
    for info in model.inputs() {
        let shape: Vec<usize> = info.shape.iter().map(|d| d.unwrap_or(1)).collect();
        let n: usize = shape.iter().product();
        let data = match info.dtype {
            DType::F32 => TensorData::F32((0..n).map(|j| ((j * 7919 % 1013) as f32) / 1013.0 - 0.5).collect()),
            DType::I64 => TensorData::I64((0..n).map(|j| (j % 7) as i64).collect()),
            d => panic!("input dtype {d:?} not generated"),
        };
        inputs.insert(info.name.clone(), Tensor { shape, data });
    }
    let inputs = TensorSet(inputs);
    let on = RunOptions { threads, trace: true };
    let off = RunOptions { threads, trace: false };
    if let Err(e) = model.run(&inputs, &on) {
        println!("{{\"error\": {:?}}}", e.to_string());
        return;
    }
    let (mut t_on, mut t_off) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (opts, times) in [(&on, &mut t_on), (&off, &mut t_off)] {
            let t = Instant::now();
            let out = model.run(&inputs, opts).expect("run");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(out);
        }
    }
    println!(
        "{{\"load_ms\": {load_ms:.3}, \"median_ms\": {:.4}, \"median_ms_notrace\": {:.4}, \"kernels\": \"{}\", \"peak_rss_kib\": {}}}",
        median(t_on),
        median(t_off),
        KernelPath::from_env().map_or("error", |p| p.name()),
        vm_hwm_kib()
    );
}

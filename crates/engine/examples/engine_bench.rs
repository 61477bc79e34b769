//! Times one ONNX model under deed's engine, for `bench/run.sh engine`.
//!
//! `engine_bench MODEL THREADS RUNS` prints one JSON line: `load_ms` (read + parse +
//! plan), `median_ms` with tracing on and `median_ms_notrace` with it off (runs
//! interleaved), the kernel path, the process's peak RSS (`VmHWM`) and, at one thread,
//! `cpu_ms`/`cpu_ms_notrace`: the medians of the thread's own on-CPU time per run. Inputs are
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

/// Nanoseconds this thread has spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`), if known.
#[allow(unsafe_code)]
fn on_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
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
    let (mut t_on, mut t_off, mut cpu_on, mut cpu_off) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        for (opts, times, cpu) in [(&on, &mut t_on, &mut cpu_on), (&off, &mut t_off, &mut cpu_off)] {
            let c = on_cpu_ns();
            let t = Instant::now();
            let out = model.run(&inputs, opts).expect("run");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if let (Some(c0), Some(c1)) = (c, on_cpu_ns()) {
                cpu.push((c1 - c0) as f64 / 1e6);
            }
            std::hint::black_box(out);
        }
    }
    // With one thread, the calling thread's on-CPU time leaves out the time other
    // processes held the core: an A/B measure that survives a busy machine.
    let cpu = |v: Vec<f64>| if threads == 1 && v.len() == runs { format!("{:.4}", median(v)) } else { "null".into() };
    let (cpu_on, cpu_off) = (cpu(cpu_on), cpu(cpu_off));
    println!(
        "{{\"load_ms\": {load_ms:.3}, \"median_ms\": {:.4}, \"median_ms_notrace\": {:.4}, \"kernels\": \"{}\", \"peak_rss_kib\": {}, \"cpu_ms\": {cpu_on}, \"cpu_ms_notrace\": {cpu_off}}}",
        median(t_on),
        median(t_off),
        KernelPath::from_env().map_or("error", |p| p.name()),
        vm_hwm_kib()
    );
}

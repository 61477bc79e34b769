//! The fuzz target's body: load any bytes, run whatever loads (see the crate docs).

use crate::alloc;
use deed_engine::kernels::KernelPath;
use deed_engine::{ExternalData, Limits, Model, RunOptions};
use deed_types::{DType, Tensor, TensorData, TensorSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// How many inputs were checked, loaded (default limits), loaded (tight limits), ran
/// without error, and ran with traces that differ only in NaN bits: a measure of how
/// deep the cases get.
pub static STATS: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];

/// The longest any one input took, in microseconds (that input is saved as
/// [`alloc::SLOWEST_INPUT`]).
pub static SLOWEST_US: AtomicUsize = AtomicUsize::new(0);

/// [`STATS`] as text, and reset.
pub fn stats() -> String {
    let [a, b, c, d, e] = STATS.each_ref().map(|s| s.swap(0, Relaxed));
    let slowest = SLOWEST_US.swap(0, Relaxed) as f64 / 1e3;
    format!(
        "{a} inputs: {b} loaded, {c} loaded under tight limits, {d} ran without error ({e} with NaN bits differing \
         between kernel paths); slowest {slowest:.1} ms"
    )
}

/// Limits small enough that a loaded model runs in milliseconds and allocates little.
pub fn tight() -> Limits {
    Limits {
        model_bytes_max: 1 << 20,
        decoded_bytes_max: 32 << 20,
        nodes_max: 256,
        initializer_bytes_max: 1 << 20,
        tensor_elements_max: 1 << 16,
        rank_max: 8,
        input_elements_max: 1 << 16,
        op_work_max: 1 << 20,
    }
}

/// An external-data source with one 64 KiB file, `w.bin`, of fixed bytes. It asserts the
/// engine never asks for more than the initializer limit.
struct OneFile {
    max: usize,
}

impl ExternalData for OneFile {
    fn read(&self, location: &str, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        assert!(
            length <= self.max,
            "the engine asked for {length} bytes of external data, past its limit {}",
            self.max
        );
        if location != "w.bin" {
            return Err(format!("no file {location}"));
        }
        let end = offset.checked_add(length as u64).filter(|&e| e <= 1 << 16).ok_or("short")?;
        Ok((offset..end).map(|i| (i % 7) as u8 * 0x11).collect())
    }
}

/// Saves `bytes` to [`alloc::CURRENT_INPUT`] through one file kept open (rewriting it in
/// place: creating or truncating a file per case costs milliseconds on some disks).
fn save(bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    static FILE: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    let f = FILE.get_or_init(|| {
        std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(alloc::CURRENT_INPUT).ok()
    });
    if let Some(f) = f {
        let _ = f.write_all_at(bytes, 0).and_then(|()| f.set_len(bytes.len() as u64));
    }
}

/// How far an input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Refused at load (with the tight limits, with and without an external-data source).
    Refused,
    /// Loaded, but its declared inputs are too large to build under the tight limits.
    NotRun,
    /// Loaded, and the run failed with an error.
    RunFailed,
    /// Loaded and ran.
    Ran,
}

/// Checks one input; panics on any violation (see the crate docs).
pub fn check(bytes: &[u8]) -> Outcome {
    // Saved first, so that an abort (a refused allocation) can name it.
    save(bytes);
    let watch = alloc::start();
    let started = std::time::Instant::now();
    let outcome = match std::panic::catch_unwind(|| check_inner(bytes)) {
        Ok(o) => o,
        Err(e) => {
            // Kept apart from the input under test, so that shrinking (which runs more
            // inputs) leaves the smallest failing one here.
            let _ = std::fs::write(alloc::FAILING_INPUT, bytes);
            eprintln!("fuzz: the failing input is saved as {}", alloc::FAILING_INPUT);
            std::panic::resume_unwind(e)
        }
    };
    let (largest, live) = watch.finish();
    let us = started.elapsed().as_micros() as usize;
    if us > SLOWEST_US.fetch_max(us, Relaxed) {
        let _ = std::fs::write(alloc::SLOWEST_INPUT, bytes);
    }
    assert!(largest <= alloc::SINGLE_MAX, "one allocation of {largest} bytes (at most {} allowed)", alloc::SINGLE_MAX);
    assert!(live <= alloc::LIVE_MAX, "the live heap grew by {live} bytes (at most {} allowed)", alloc::LIVE_MAX);
    outcome
}

fn check_inner(bytes: &[u8]) -> Outcome {
    // Dynamic input dims: mostly 2, sometimes 1 (broadcasting) or 3, fixed by the input.
    let dyn_dim = [2, 2, 1, 3][bytes.len() % 4];
    STATS[0].fetch_add(1, Relaxed);
    let full = Model::load(bytes);
    STATS[1].fetch_add(full.is_ok() as usize, Relaxed);
    if let Err(e) = &full {
        assert!(!e.to_string().is_empty());
    }
    let limits = tight();
    let tight_model = Model::load_with(bytes, &limits);
    STATS[2].fetch_add(tight_model.is_ok() as usize, Relaxed);
    match (&tight_model, &full) {
        (Ok(_), Err(e)) => panic!("loads under tight limits but not under the default ones: {e}"),
        (Ok(a), Ok(b)) => {
            assert_eq!(format!("{:?}", a.inputs()), format!("{:?}", b.inputs()));
            assert_eq!(format!("{:?}", a.outputs()), format!("{:?}", b.outputs()));
        }
        _ => {}
    }
    drop(full);
    let ext = Model::load_external(bytes, &limits, &OneFile { max: limits.initializer_bytes_max });
    if let Ok(m) = &tight_model {
        let e = ext.as_ref().err().map(ToString::to_string);
        assert!(e.is_none(), "loads without an external-data source but not with one: {e:?}");
        run(m, dyn_dim)
    } else if let Ok(m) = &ext {
        run(m, dyn_dim)
    } else {
        Outcome::Refused
    }
}

/// Inputs from the declared ones: dynamic dims `dyn_dim`, small values (valid as indices).
fn inputs(m: &Model, dyn_dim: usize) -> Option<TensorSet> {
    let mut set = TensorSet::default();
    for info in m.inputs() {
        let shape: Vec<usize> = info.shape.iter().map(|d| d.unwrap_or(dyn_dim)).collect();
        let n = deed_types::tensor::element_count(&shape).filter(|&n| n <= tight().input_elements_max)?;
        let v = |k: usize| ((k * 2654435761) % 17) as i64 - 8;
        let ix = |k: usize| ((k * 40503) % 3) as i64;
        let data = match info.dtype {
            DType::F32 => TensorData::F32((0..n).map(|k| v(k) as f32 / 4.0).collect()),
            DType::F64 => TensorData::F64((0..n).map(|k| v(k) as f64 / 4.0).collect()),
            DType::I64 => TensorData::I64((0..n).map(ix).collect()),
            DType::I32 => TensorData::I32((0..n).map(|k| ix(k) as i32).collect()),
            DType::I16 => TensorData::I16((0..n).map(|k| v(k) as i16).collect()),
            DType::I8 => TensorData::I8((0..n).map(|k| v(k) as i8).collect()),
            DType::U8 => TensorData::U8((0..n).map(|k| ix(k) as u8).collect()),
            DType::U16 => TensorData::U16((0..n).map(|k| ix(k) as u16).collect()),
            DType::U32 => TensorData::U32((0..n).map(|k| ix(k) as u32).collect()),
            DType::U64 => TensorData::U64((0..n).map(|k| ix(k) as u64).collect()),
            DType::Bool => TensorData::Bool((0..n).map(|k| k % 3 == 1).collect()),
        };
        set.0.insert(info.name.clone(), Tensor::new(shape, data).expect("consistent"));
    }
    Some(set)
}

/// Runs `m` with the reference kernels on one thread and the default kernels on two:
/// both fail, or both give the same output hash and trace (NaNs are hashed canonically),
/// and so does the node-by-node run (`run_keep_all`). When the traces differ, every
/// node's outputs are compared modulo NaN bits to name the node.
fn run(m: &Model, dyn_dim: usize) -> Outcome {
    let Some(x) = inputs(m, dyn_dim) else { return Outcome::NotRun };
    let a = m.run_with_kernels(&x, &RunOptions { threads: 1, trace: true }, KernelPath::Reference);
    let b = m.run(&x, &RunOptions { threads: 2, trace: true });
    match (a, b) {
        (Ok(a), Ok(b)) => {
            STATS[3].fetch_add(1, Relaxed);
            // The node-by-node run (what fraud proofs replay: no buffer lent in place,
            // nothing freed) commits to the same trace and outputs as the run loop.
            let (kept, _) = m.run_keep_all(&x, &RunOptions { threads: 2, trace: true }).expect("ran once already");
            assert!(
                kept.trace == b.trace && kept.output_hash() == b.output_hash(),
                "the node-by-node run differs from the run loop"
            );
            if a.trace != b.trace || a.output_hash() != b.output_hash() {
                STATS[4].fetch_add(1, Relaxed);
                let path = KernelPath::from_env().expect("ran on it");
                let (va, vb) = (all_values(m, &x, KernelPath::Reference, 1), all_values(m, &x, path, 2));
                for (pos, (a, b)) in va.iter().zip(&vb).enumerate() {
                    let same = a.len() == b.len()
                        && a.iter().zip(b).all(|(a, b)| a.as_ref().map(nan_blind) == b.as_ref().map(nan_blind));
                    assert!(
                        same,
                        "node {}: outputs differ (beyond NaN bits) between reference/1 thread and {}/2 threads",
                        m.node_label(pos),
                        path.name()
                    );
                }
            }
            Outcome::Ran
        }
        (Err(a), Err(b)) => {
            assert!(!a.to_string().is_empty() && !b.to_string().is_empty());
            Outcome::RunFailed
        }
        (a, b) => panic!(
            "one run failed and the other did not: reference/1 thread {:?}, default/2 threads {:?}",
            a.map(|o| o.output_hash()),
            b.map(|o| o.output_hash())
        ),
    }
}

/// A tensor's canonical encoding with every NaN replaced by one quiet NaN.
fn nan_blind(t: &Tensor) -> Vec<u8> {
    let mut t = t.clone();
    match &mut t.data {
        TensorData::F32(v) => v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = f32::NAN),
        TensorData::F64(v) => v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = f64::NAN),
        _ => {}
    }
    t.encode()
}

/// Every node's outputs, run on `path` (`Model::run_every_node` reads the kernel path from
/// the environment, so it is set for the call).
#[allow(unsafe_code)]
fn all_values(m: &Model, x: &TensorSet, path: KernelPath, threads: usize) -> Vec<Vec<Option<Tensor>>> {
    let env = deed_engine::kernels::KERNELS_ENV;
    let old = std::env::var_os(env);
    // SAFETY: the fuzz tests run one at a time (`crate::serial`), and nothing else in the
    // process reads or writes the environment while this test thread runs the model.
    unsafe { std::env::set_var(env, path.name()) };
    let r = m.run_every_node(x, threads);
    match old {
        // SAFETY: as above.
        Some(v) => unsafe { std::env::set_var(env, v) },
        None => unsafe { std::env::remove_var(env) },
    }
    r.expect("the model ran on this path before")
}

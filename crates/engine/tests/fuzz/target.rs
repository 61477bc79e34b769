//! The fuzz target's body: load any bytes, run whatever loads (see the crate docs).

use crate::alloc;
use deed_engine::kernels::KernelPath;
use deed_engine::{ExternalData, Limits, Model, RunOptions};
use deed_types::{DType, Tensor, TensorData, TensorSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// How many inputs were checked, loaded (default limits), loaded (tight limits), ran
/// without error: a measure of how deep the cases get.
pub static STATS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

/// [`STATS`] as text, and reset.
pub fn stats() -> String {
    let [a, b, c, d] = STATS.each_ref().map(|s| s.swap(0, Relaxed));
    format!("{a} inputs: {b} loaded, {c} loaded under tight limits, {d} ran without error")
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

/// Checks one input; panics on any violation (see the crate docs).
pub fn check(bytes: &[u8]) {
    // Saved first, so that an abort (a refused allocation) can name it.
    save(bytes);
    let watch = alloc::start();
    check_inner(bytes);
    let (largest, live) = watch.finish();
    assert!(largest <= alloc::SINGLE_MAX, "one allocation of {largest} bytes (at most {} allowed)", alloc::SINGLE_MAX);
    assert!(live <= alloc::LIVE_MAX, "the live heap grew by {live} bytes (at most {} allowed)", alloc::LIVE_MAX);
}

fn check_inner(bytes: &[u8]) {
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
        run(m);
    } else if let Ok(m) = &ext {
        run(m);
    }
}

/// Inputs from the declared ones: dynamic dims 2, small values (valid as indices).
fn inputs(m: &Model) -> Option<TensorSet> {
    let mut set = TensorSet::default();
    for info in m.inputs() {
        let shape: Vec<usize> = info.shape.iter().map(|d| d.unwrap_or(2)).collect();
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
/// both fail, or both give the same bits.
fn run(m: &Model) {
    let Some(x) = inputs(m) else { return };
    let a = m.run_with_kernels(&x, &RunOptions { threads: 1, trace: true }, KernelPath::Reference);
    let b = m.run(&x, &RunOptions { threads: 2, trace: true });
    match (a, b) {
        (Ok(a), Ok(b)) => {
            STATS[3].fetch_add(1, Relaxed);
            assert_eq!(a.output_hash(), b.output_hash(), "outputs differ between kernel paths or thread counts");
            assert_eq!(a.trace, b.trace, "traces differ between kernel paths or thread counts");
        }
        (Err(a), Err(b)) => {
            assert!(!a.to_string().is_empty() && !b.to_string().is_empty());
        }
        (a, b) => panic!(
            "one run failed and the other did not: reference/1 thread {:?}, default/2 threads {:?}",
            a.map(|o| o.output_hash()),
            b.map(|o| o.output_hash())
        ),
    }
}

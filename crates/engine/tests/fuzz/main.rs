//! Fuzzing the model loader (and whatever it lets through to the kernels), with bolero.
//!
//! The target, [`target::check`], takes any bytes and asserts that
//! - [`Model::load`](deed_engine::Model::load) and `load_with` under tight [`Limits`]
//!   return `Ok` or `Err` (never a panic), and an error renders as text;
//! - what loads under the tight limits also loads under the default ones, declaring the
//!   same inputs and outputs, and also loads through `load_external` (whose file source
//!   asserts that it is never asked for more than the initializer limit);
//! - what loads runs, on inputs built from its declared inputs (dynamic dims 1 to 3, small
//!   values), or fails with a clean error; the reference kernels on one thread and the
//!   default kernels on two give the same outputs and trace bits, except for NaN signs and
//!   payloads (only MatMul, Gemm and Conv canonicalize NaN so far: when the traces differ,
//!   every node's outputs are compared with NaN bits ignored);
//! - no allocation while doing so is larger than [`alloc::SINGLE_MAX`] and the live heap
//!   grows by less than [`alloc::LIVE_MAX`] (a counting global allocator; an allocation
//!   past [`alloc::REFUSE`] is refused, which aborts with a message naming the saved
//!   input).
//!
//! Three tests run it under plain `cargo test -p deed-engine --test fuzz` (about 9 s):
//! - `every_seed` replays every file in `__fuzz__/loader/corpus/` (the seed corpus, see
//!   [`seeds`]), naming each that fails;
//! - the bolero target `loader` feeds it raw bytes: the corpus again (and `crashes/` when
//!   present), then random byte strings, for 1 s in all;
//! - the bolero target `mutations` feeds it seed files edited by a generated list of
//!   [`mutate::Mutation`]s (byte flips, truncation, splicing, protobuf length inflation,
//!   extreme integers and floats, rewired inputs, switched operators and dtypes), for 8 s.
//!
//! The random cases differ from run to run. A failure prints the case, a
//! `BOLERO_RANDOM_SEED=...` that replays it, and saves the failing model file to
//! `<target>/tmp/fuzz-failing-input.onnx`. To run longer (the dev profile keeps overflow
//! checks, which find more than a release build):
//!
//! ```text
//! BOLERO_RANDOM_TEST_TIME_MS=600000 cargo test -p deed-engine --test fuzz mutations -- --nocapture
//! ```
//!
//! (`BOLERO_RANDOM_ITERATIONS=N` counts cases instead; `--nocapture` shows how many
//! loaded and ran.) For coverage-guided fuzzing, `cargo bolero test -p deed-engine --test
//! fuzz loader` runs the same target under libFuzzer (needs `cargo install cargo-bolero`
//! and, for its sanitizers, a nightly toolchain; not part of CI) and writes what it finds
//! to `__fuzz__/loader/corpus` and `crashes` (files there not named like the generated
//! seeds are replayed and kept as they are). Keep a crash, once fixed, as a seed built in
//! [`seeds`], or as a file `regression_*.onnx` in the corpus folder.

mod alloc;
#[path = "../it/build.rs"]
#[allow(dead_code)]
mod build;
mod mutate;
mod seeds;
mod target;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// The tests share the allocation counters: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/__fuzz__/loader/corpus")
}

/// The corpus files, sorted by name.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .expect("the seed corpus")
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Whether a corpus file is one [`seeds::all`] builds (others, such as `regression_*`
/// files or what `cargo bolero` adds, are kept as they are).
fn generated(name: &str) -> bool {
    ["fixture_", "edge_", "op_", "hostile_"].iter().any(|p| name.starts_with(p))
}

/// The committed corpus holds exactly the files [`seeds::all`] builds (and maybe others,
/// see [`generated`]); with `DEED_FUZZ_WRITE_CORPUS=1` they are rewritten instead.
#[test]
fn corpus_is_current() {
    let _g = serial();
    let mut want = seeds::all();
    want.sort();
    assert!(want.iter().all(|(n, _)| generated(n)));
    let dir = corpus_dir();
    if std::env::var_os("DEED_FUZZ_WRITE_CORPUS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, _) in corpus().into_iter().filter(|(n, _)| generated(n)) {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        for (name, bytes) in &want {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let all = corpus();
    let total: usize = all.iter().map(|(_, b)| b.len()).sum();
    assert!(total < 1 << 20, "the seed corpus should stay small: {total} bytes");
    let have: Vec<(String, Vec<u8>)> = all.into_iter().filter(|(n, _)| generated(n)).collect();
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&have), names(&want), "run with DEED_FUZZ_WRITE_CORPUS=1 to rewrite the corpus");
    for ((name, a), (_, b)) in have.iter().zip(&want) {
        assert!(a == b, "{name} differs from what tests/fuzz/seeds.rs builds; DEED_FUZZ_WRITE_CORPUS=1 rewrites it");
    }
}

/// Every corpus file, each named if it fails. (bolero's own replay in [`loader`] stops
/// when its time is up, so it cannot promise this on a slow machine.)
#[test]
fn every_seed() {
    let _g = serial();
    let mut failed = vec![];
    for (name, bytes) in corpus() {
        let t = std::time::Instant::now();
        match std::panic::catch_unwind(|| target::check(&bytes)) {
            Err(e) => {
                let msg =
                    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                failed.push(format!("{name}: {}", msg.unwrap_or_default()));
            }
            // The fixtures are where mutations start from: they must load; the edge-value
            // models must run.
            Ok(target::Outcome::Refused) if name.starts_with("fixture_") || name.starts_with("op_") => {
                failed.push(format!("{name}: a fixture or operator seed does not load under the tight limits"));
            }
            Ok(o) if name.starts_with("edge_") && o != target::Outcome::Ran => {
                failed.push(format!("{name}: an edge-value seed did not run ({o:?})"));
            }
            Ok(o) => {
                if std::env::var_os("DEED_FUZZ_TIMES").is_some() && o != target::Outcome::Ran {
                    eprintln!("{name}: {o:?}");
                }
            }
        }
        if std::env::var_os("DEED_FUZZ_TIMES").is_some() {
            eprintln!("{:>8.2} ms  {name}", t.elapsed().as_secs_f64() * 1e3);
        }
    }
    assert!(failed.is_empty(), "corpus files failed:\n{}", failed.join("\n"));
    eprintln!("every_seed: {}", target::stats());
}

/// Raw bytes: the corpus files, then random byte strings.
#[test]
fn loader() {
    let _g = serial();
    bolero::check!(name = "loader").with_test_time(Duration::from_secs(1)).for_each(|bytes: &[u8]| {
        target::check(bytes);
    });
    eprintln!("loader: {}", target::stats());
}

/// A seed file and the mutations applied to it, in order.
#[derive(Clone, Debug, bolero::TypeGenerator)]
struct Case {
    seed: u16,
    /// How many of `mutations` to apply, less one (modulo 4): mostly few, since each
    /// edit makes a loadable model less likely.
    count: u8,
    mutations: Vec<mutate::Mutation>,
}

/// Mutated seeds.
#[test]
fn mutations() {
    let _g = serial();
    let (names, seeds): (Vec<String>, Vec<Vec<u8>>) = corpus().into_iter().unzip();
    assert!(!seeds.is_empty());
    bolero::check!(name = "mutations").with_type::<Case>().with_test_time(Duration::from_secs(8)).for_each(
        |case: &Case| {
            let mut bytes = seeds[case.seed as usize % seeds.len()].clone();
            let applied = &case.mutations[..case.mutations.len().min(1 + case.count as usize % 4)];
            for m in applied {
                mutate::apply(m, &mut bytes, &seeds);
            }
            let t = std::time::Instant::now();
            target::check(&bytes);
            if std::env::var_os("DEED_FUZZ_TIMES").is_some() && t.elapsed().as_millis() > 20 {
                eprintln!("{:?} {} {:?}", t.elapsed(), names[case.seed as usize % seeds.len()], applied);
            }
        },
    );
    eprintln!("mutations: {}", target::stats());
}

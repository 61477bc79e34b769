//! Fuzzing the model loader (and whatever it lets through to the kernels), with bolero.
//!
//! The target, [`target::check`], takes any bytes and asserts that
//! - [`Model::load`](deed_engine::Model::load) and `load_with` under tight [`Limits`]
//!   return `Ok` or `Err` (never a panic), and an error renders as text;
//! - what loads under the tight limits also loads under the default ones, declaring the
//!   same inputs and outputs, and also loads through `load_external` (whose file source
//!   asserts that it is never asked for more than the initializer limit);
//! - what loads runs, on inputs built from its declared inputs (dynamic dims 2, small
//!   values), or fails with a clean error; the reference kernels on one thread and the
//!   default kernels on two give the same outputs and trace bits;
//! - no allocation while doing so is larger than [`alloc::SINGLE_MAX`] and the live heap
//!   grows by less than [`alloc::LIVE_MAX`] (a counting global allocator; an allocation
//!   past [`alloc::REFUSE`] is refused, which aborts with a message naming the saved
//!   input).
//!
//! Two bolero targets run it, both under plain `cargo test -p deed-engine --test fuzz`:
//! - `loader` feeds it raw bytes: every file in `__fuzz__/loader/corpus/` (the seed
//!   corpus, see [`seeds`]) and `crashes/` when present, then random byte strings;
//! - `mutations` feeds it seed files edited by a generated list of [`mutate::Mutation`]s
//!   (byte flips, truncation, splicing, protobuf length inflation, extreme integers and
//!   floats, rewired inputs, switched operators and dtypes).
//!
//! Random cases run for a fixed time (`loader` 1 s, `mutations` 8 s in CI; the corpus
//! replay comes first and is not timed). A failure prints the input and a
//! `BOLERO_RANDOM_SEED=...` that replays it. To run longer:
//!
//! ```text
//! BOLERO_RANDOM_TEST_TIME_MS=600000 cargo test --release -p deed-engine --test fuzz mutations
//! ```
//!
//! (`BOLERO_RANDOM_ITERATIONS=N` counts cases instead.) For coverage-guided fuzzing,
//! `cargo bolero test -p deed-engine --test fuzz loader` (needs `cargo install
//! cargo-bolero` and a nightly toolchain for libFuzzer) runs the same targets and writes
//! what it finds to `__fuzz__/<target>/corpus` and `crashes`. A crash found there is kept
//! by adding it to `__fuzz__/loader/corpus/` as `regression_<what>.onnx`.

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

/// The committed corpus is exactly what [`seeds::all`] builds (plus `regression_*`
/// files); with `DEED_FUZZ_WRITE_CORPUS=1` it is rewritten instead.
#[test]
fn corpus_is_current() {
    let _g = serial();
    let want = seeds::all();
    let dir = corpus_dir();
    if std::env::var_os("DEED_FUZZ_WRITE_CORPUS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, _) in corpus() {
            if !name.starts_with("regression_") {
                std::fs::remove_file(dir.join(name)).unwrap();
            }
        }
        for (name, bytes) in &want {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let have: Vec<(String, Vec<u8>)> = corpus().into_iter().filter(|(n, _)| !n.starts_with("regression_")).collect();
    let mut want = want;
    want.sort();
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&have), names(&want), "run with DEED_FUZZ_WRITE_CORPUS=1 to rewrite the corpus");
    for ((name, a), (_, b)) in have.iter().zip(&want) {
        assert!(a == b, "{name} differs from what tests/fuzz/seeds.rs builds; DEED_FUZZ_WRITE_CORPUS=1 rewrites it");
    }
    let total: usize = have.iter().map(|(_, b)| b.len()).sum();
    assert!(total < 1 << 20, "the seed corpus should stay small: {total} bytes");
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
            Ok(target::Outcome::Refused) if name.starts_with("fixture_") => {
                failed.push(format!("{name}: a fixture seed does not load under the tight limits"));
            }
            Ok(o) if name.starts_with("edge_") && o != target::Outcome::Ran => {
                failed.push(format!("{name}: an edge-value seed did not run ({o:?})"));
            }
            Ok(_) => {}
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

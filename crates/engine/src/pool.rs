//! A persistent worker pool for the engine's parallel loops.
//!
//! Every parallel loop in the engine splits its output into a fixed list of parts
//! *before* any thread runs (which rows, columns or positions each part computes depends
//! only on the shapes and the thread count), and each part does all of its own
//! arithmetic in its own fixed order. [`map`] runs such a list: part `i` is `f(items[i])`
//! and its result lands at index `i`, whichever thread ran it. Threads never split a
//! part, never steal half of one and never combine results, so the bits are those of
//! running the parts one after another on one thread (DESIGN.md §3).
//!
//! Spawning fresh OS threads for every operator (what `std::thread::scope` does) costs
//! tens of microseconds per op per thread, more than a small op's whole work. The pool
//! keeps its workers alive instead: they poll briefly after a part, then sleep on a
//! condition variable until the next list is published.
//!
//! - **Who runs what.** The caller publishes the list, runs part 0 itself, then keeps
//!   claiming unclaimed parts (one shared counter) until none are left, and waits for
//!   the parts workers claimed. So a list always finishes even if every worker is busy
//!   with another model's run: concurrent runs share the workers and never wait on one
//!   another, at worst a run computes its parts itself.
//! - **Nesting.** A [`map`] called from a pool worker runs its parts inline, in order,
//!   on that worker: no worker ever waits for another worker.
//! - **Panics.** A panic in a part is caught where it happens; the caller waits for every
//!   part to finish (so nothing still borrows its data), then resumes the first panic in
//!   part order.
//! - **Size.** Workers are started lazily: enough for the parts of all lists in flight
//!   at once, but no more than `max(threads − 1, cores − 1)` for the largest `threads`
//!   asked for. They live until the process exits.
//!
//! The one piece of `unsafe` here lets a worker call a closure that borrows the caller's
//! stack (as `std::thread::scope` does): the caller never returns, nor unwinds, before
//! every part of its list is done, so the borrow outlives every call.

#![allow(unsafe_code)]

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker polls for a new list (yielding its core between polls) before
/// it sleeps. Operators follow one another within microseconds during a run, and waking a
/// sleeping thread costs about as much as the smallest parallel op.
const WORKER_SPIN: Duration = Duration::from_micros(200);
/// How long the caller polls (yielding) for workers' parts before it parks.
const CALLER_SPIN: Duration = Duration::from_micros(50);
/// Upper bound on the pool's size, whatever `threads` asks for.
const MAX_WORKERS: usize = 256;

/// One published list of parts.
struct Batch {
    /// Runs part `i` (catching its panic). Type-erased and lifetime-erased pointer to a
    /// closure on the publishing caller's stack: valid while `done < n`, and only
    /// dereferenced by a thread that has claimed an index `< n` and not yet counted it
    /// done (see [`run_claimed`]).
    run: *const (dyn Fn(usize) + Sync),
    /// Number of parts.
    n: usize,
    /// Next unclaimed part.
    next: AtomicUsize,
    /// Parts finished.
    done: AtomicUsize,
    /// The caller, unparked when the last part finishes.
    owner: Thread,
}

// SAFETY: `run` points to a `Sync` closure (so calling it from any thread is fine), and it
// is only dereferenced while the caller keeps it alive (see `Batch::run`). Everything else
// in `Batch` is `Send + Sync`.
unsafe impl Send for Batch {}
// SAFETY: as above.
unsafe impl Sync for Batch {}

/// The process-wide pool.
struct Pool {
    /// Published lists that may still have unclaimed parts, oldest first.
    queue: Mutex<VecDeque<Arc<Batch>>>,
    /// Signalled when a list is published.
    wake: Condvar,
    /// `queue.len()`, readable without the lock (idle workers poll it).
    queued: AtomicUsize,
    /// Workers asleep on `wake` (changed only with `queue` locked).
    sleeping: AtomicUsize,
    /// Workers started so far.
    workers: Mutex<usize>,
    /// Sum of `n − 1` over the lists in flight: the parts workers could take right now.
    demand: AtomicUsize,
}

static POOL: Pool = Pool {
    queue: Mutex::new(VecDeque::new()),
    wake: Condvar::new(),
    queued: AtomicUsize::new(0),
    sleeping: AtomicUsize::new(0),
    workers: Mutex::new(0),
    demand: AtomicUsize::new(0),
};

thread_local! {
    /// Whether this thread is one of the pool's workers.
    static IS_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Locks `m`, ignoring poisoning: no code holding these locks can panic midway through
/// an update (parts' panics are caught outside every lock).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returns `[f(items[0]), f(items[1]), …]`, computing the parts on the calling thread
/// and the pool's workers (module docs). Which thread runs a part never changes what it
/// computes; a panic in any part is resumed here after all parts have finished.
pub(crate) fn map<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync) -> Vec<R> {
    let n = items.len();
    if n <= 1 || IS_WORKER.with(|w| w.get()) {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let results: Vec<Mutex<Option<thread::Result<R>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let runner = |i: usize| {
        let item = lock(&slots[i]).take().expect("each part is claimed once");
        let r = catch_unwind(AssertUnwindSafe(|| f(item)));
        *lock(&results[i]) = Some(r);
    };
    let runner: &(dyn Fn(usize) + Sync + '_) = &runner;
    // SAFETY: only the lifetime is erased. The pointer is dereferenced only by
    // `run_claimed` for a claimed part that is not yet done, and this function does not
    // return or unwind before all `n` parts are done (the `Finish` guard below blocks
    // until then, and `runner` itself never unwinds), so `runner`, `slots`, `results` and `f`
    // outlive every use.
    let run: *const (dyn Fn(usize) + Sync) = unsafe {
        std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static (dyn Fn(usize) + Sync + 'static)>(runner)
    };
    let batch =
        Arc::new(Batch { run, n, next: AtomicUsize::new(1), done: AtomicUsize::new(0), owner: thread::current() });
    publish(&batch);
    {
        let _finish = Finish(&batch);
        // Part 0 is ours (it was never claimable: `next` starts at 1).
        // SAFETY: part 0 is claimed by this thread and not done.
        unsafe { run_claimed(&batch, 0) };
    }
    let mut first_panic: Option<Box<dyn Any + Send>> = None;
    let mut out = Vec::with_capacity(n);
    for r in results {
        match r.into_inner().unwrap_or_else(PoisonError::into_inner).expect("every part ran") {
            Ok(v) => out.push(v),
            Err(p) => {
                first_panic.get_or_insert(p);
            }
        }
    }
    if let Some(p) = first_panic {
        resume_unwind(p);
    }
    out
}

/// On drop (also when unwinding, so no part can outlive the data it borrows): runs every
/// part no worker has claimed, withdraws the batch, and blocks until every part is done.
struct Finish<'a>(&'a Arc<Batch>);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let b = self.0;
        while claim_and_run(b) {}
        unpublish(b);
        let start = Instant::now();
        while b.done.load(Ordering::Acquire) < b.n {
            if start.elapsed() < CALLER_SPIN {
                thread::yield_now();
            } else {
                // Spurious wake-ups (and unparks left over from an earlier batch) only
                // cost another check.
                thread::park();
            }
        }
    }
}

/// Claims the next unclaimed part of `b` and runs it; false when none was left.
fn claim_and_run(b: &Batch) -> bool {
    let i = b.next.fetch_add(1, Ordering::AcqRel);
    if i >= b.n {
        return false;
    }
    // SAFETY: `i < n` was claimed by this thread alone and is not done yet.
    unsafe { run_claimed(b, i) };
    true
}

/// Runs part `i` of `b` and counts it done, waking the caller after the last part.
///
/// # Safety
/// The calling thread must have claimed part `i < b.n` (no other thread runs it) and not
/// yet counted it done: then the caller that published `b` is still waiting in [`map`],
/// so `b.run` points to a live closure.
unsafe fn run_claimed(b: &Batch, i: usize) {
    // SAFETY: the caller guarantees `b.run` is live (see above); the closure catches its
    // part's panic, so it returns normally.
    unsafe { (*b.run)(i) };
    // Nothing of the closure is touched after this: once `done` reaches `n` the caller may
    // return and free it. `b` itself is kept alive by the `Arc` the thread holds.
    if b.done.fetch_add(1, Ordering::AcqRel) + 1 == b.n {
        b.owner.unpark();
    }
}

/// Makes `b`'s parts claimable by the workers, starting workers if the lists in flight
/// need more, and wakes sleeping ones.
fn publish(b: &Arc<Batch>) {
    let extra = b.n - 1;
    let demand = POOL.demand.fetch_add(extra, Ordering::AcqRel) + extra;
    grow(demand.min(cap(b.n)));
    let mut q = lock(&POOL.queue);
    q.push_back(Arc::clone(b));
    POOL.queued.store(q.len(), Ordering::Release);
    let sleeping = POOL.sleeping.load(Ordering::Relaxed);
    drop(q);
    for _ in 0..sleeping.min(extra) {
        POOL.wake.notify_one();
    }
}

/// Removes `b` from the queue (all its parts are claimed) and its demand.
fn unpublish(b: &Arc<Batch>) {
    remove(b);
    POOL.demand.fetch_sub(b.n - 1, Ordering::AcqRel);
}

/// Removes `b` from the queue if it is still there.
fn remove(b: &Arc<Batch>) {
    let mut q = lock(&POOL.queue);
    if let Some(pos) = q.iter().position(|x| Arc::ptr_eq(x, b)) {
        q.remove(pos);
        POOL.queued.store(q.len(), Ordering::Release);
    }
}

/// Most workers the pool may have when a list of `n` parts asks: `max(n − 1, cores − 1)`.
fn cap(n: usize) -> usize {
    (n - 1).max(cores() - 1).min(MAX_WORKERS)
}

/// The number of cores this process may use (`available_parallelism`, 1 if unknown), asked
/// once: on Linux the answer reads cgroup files, far slower than a small op or model run.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| thread::available_parallelism().map_or(1, |c| c.get()))
}

/// Starts workers until there are `want` (a failure to start one is not an error: the
/// callers run unclaimed parts themselves).
fn grow(want: usize) {
    let mut count = lock(&POOL.workers);
    while *count < want {
        let spawned = thread::Builder::new().name(format!("deed-engine-{}", *count)).spawn(worker);
        if spawned.is_err() {
            return;
        }
        *count += 1;
    }
}

/// A worker's life: take the oldest published list, run parts of it until none are left
/// unclaimed, repeat.
fn worker() {
    IS_WORKER.with(|w| w.set(true));
    loop {
        let b = next_batch();
        if !claim_and_run(&b) {
            remove(&b);
        }
    }
}

/// The oldest published list: polls for [`WORKER_SPIN`], then sleeps until one is
/// published.
fn next_batch() -> Arc<Batch> {
    let start = Instant::now();
    loop {
        if POOL.queued.load(Ordering::Acquire) > 0
            && let Some(b) = lock(&POOL.queue).front()
        {
            return Arc::clone(b);
        }
        if start.elapsed() >= WORKER_SPIN {
            break;
        }
        // Yielding rather than spinning: on an idle machine it returns at once, on a busy
        // one it hands the core to whoever has work (pure spinning measured slower there).
        thread::yield_now();
    }
    let mut q = lock(&POOL.queue);
    loop {
        if let Some(b) = q.front() {
            return Arc::clone(b);
        }
        POOL.sleeping.fetch_add(1, Ordering::Relaxed);
        q = POOL.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
        POOL.sleeping.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_part_order_and_borrows() {
        let data: Vec<u64> = (0..1000).collect();
        let mut out = vec![0u64; 1000];
        let parts: Vec<(usize, &mut [u64])> = out.chunks_mut(97).enumerate().map(|(i, c)| (i * 97, c)).collect();
        let sums = map(parts, |(o, c)| {
            for (j, y) in c.iter_mut().enumerate() {
                *y = data[o + j] * 3;
            }
            c.iter().sum::<u64>()
        });
        assert_eq!(sums.len(), 1000usize.div_ceil(97));
        assert_eq!(sums.iter().sum::<u64>(), 3 * 999 * 1000 / 2);
        assert!(out.iter().enumerate().all(|(i, &y)| y == 3 * i as u64));
    }

    #[test]
    fn empty_and_single() {
        assert!(map(Vec::<u8>::new(), |x| x).is_empty());
        assert_eq!(map(vec![7], |x| x + 1), vec![8]);
    }

    #[test]
    fn panic_propagates_after_all_parts_finish() {
        let finished = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            map((0..6).collect(), |i: usize| {
                if i == 2 || i == 4 {
                    panic!("part {i} failed");
                }
                std::thread::sleep(Duration::from_millis(5));
                finished.fetch_add(1, Ordering::SeqCst);
            })
        }));
        let payload = r.expect_err("the panic is resumed");
        // The first panic in part order, with its own payload.
        assert_eq!(payload.downcast_ref::<String>().map(String::as_str), Some("part 2 failed"));
        assert_eq!(finished.load(Ordering::SeqCst), 4, "the other parts all ran before the resume");
        // The pool still works afterwards.
        assert_eq!(map((0..4).collect(), |i: usize| i * 2), vec![0, 2, 4, 6]);
    }

    #[test]
    fn nested_calls_do_not_deadlock() {
        let out = map((0..4).collect(), |i: usize| {
            map((0..5).collect(), |j: usize| {
                map((0..3).collect(), |k: usize| i * 100 + j * 10 + k).iter().sum::<usize>()
            })
            .iter()
            .sum::<usize>()
        });
        let want: Vec<usize> =
            (0..4).map(|i| (0..5).map(|j| (0..3).map(|k| i * 100 + j * 10 + k).sum::<usize>()).sum()).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn many_concurrent_callers() {
        // More callers than workers: every list still finishes with its own results.
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|c| {
                    s.spawn(move || {
                        for round in 0..200 {
                            let got = map((0..3).collect(), |i: usize| c * 1_000_000 + round * 10 + i);
                            assert_eq!(got, (0..3).map(|i| c * 1_000_000 + round * 10 + i).collect::<Vec<_>>());
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().expect("caller");
            }
        });
    }
}

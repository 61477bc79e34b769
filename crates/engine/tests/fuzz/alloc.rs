//! A counting global allocator: how big the largest single allocation was and how far
//! the live heap grew, so the fuzz target can assert that a hostile model never makes
//! the engine allocate without bound.
#![allow(unsafe_code)] // A `GlobalAlloc` implementation is unsafe by definition.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Largest single allocation a case may make (the tight limits allow tensors of 2^16
/// elements; the default-limit load of a corpus file should need far less).
pub const SINGLE_MAX: usize = 64 << 20;
/// Most the live heap may grow during one case.
pub const LIVE_MAX: usize = 256 << 20;
/// Requests this large are refused outright (which aborts the process, after a message):
/// they would otherwise exhaust the machine before the case ends.
pub const REFUSE: usize = 1 << 30;

/// Where the input under test is saved, so that an abort can name it.
pub const CURRENT_INPUT: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/fuzz-current-input.onnx");

/// Where the last input that failed a check is saved.
pub const FAILING_INPUT: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/fuzz-failing-input.onnx");

/// Where the slowest input of a test is saved.
pub const SLOWEST_INPUT: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/fuzz-slowest-input.onnx");

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The allocator: [`System`] plus counters.
pub struct Counting;

fn admit(size: usize) -> bool {
    LARGEST.fetch_max(size, Relaxed);
    if size >= REFUSE {
        let msg = concat!(
            "\nfuzz: refusing an allocation of 1 GiB or more; the input under test is ",
            env!("CARGO_TARGET_TMPDIR"),
            "/fuzz-current-input.onnx\n"
        );
        // SAFETY: writing a static buffer to stderr; no allocation.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        return false;
    }
    true
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call forwards to `System` with the caller's layout; the counters are
// atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !admit(new_size) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

/// Counters of one case, from [`start`] to [`finish`].
pub struct Watch {
    live_before: usize,
}

/// Starts watching: resets the peak and the largest allocation.
pub fn start() -> Watch {
    let live_before = LIVE.load(Relaxed);
    PEAK.store(live_before, Relaxed);
    LARGEST.store(0, Relaxed);
    Watch { live_before }
}

impl Watch {
    /// `(largest single allocation, growth of the live heap at its peak)` since [`start`].
    pub fn finish(self) -> (usize, usize) {
        (LARGEST.load(Relaxed), PEAK.load(Relaxed).saturating_sub(self.live_before))
    }
}

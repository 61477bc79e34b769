//! A zeroed `f32` buffer for packed constant weights: for a matrix that a matrix-vector
//! product streams, from 2 MiB on, 2 MiB-aligned and advised onto transparent huge pages
//! (on Linux).
//!
//! A matrix-vector product streams its packed weight matrix once per run. With 4 KiB
//! pages, every 4 KiB is a TLB miss and a point where the hardware prefetcher's stream
//! stops. A `Vec` starts anywhere, so the first and last up to 2 MiB of each matrix stayed
//! on 4 KiB pages — 37% of mlp_b1's 784 × 2048 matrix. Aligned, mlp_b1 runs in 0.23–0.24
//! ms instead of 0.25–0.30 (interleaved A/B on this machine).
//!
//! The buffer comes from the global allocator, which recycles heap memory: on such
//! memory the advice takes effect only once the kernel's background `khugepaged` collapses
//! it. Two alternatives were measured on BERT-base and dropped:
//! - a private `mmap` per buffer always gets huge pages (BERT-base 2–3% faster), but
//!   faulting 340 MB of fresh huge pages made the load 1.7–2.7 times slower and noisy on
//!   this VM (direct compaction), and the freed unpacked weights stayed on the heap (peak
//!   memory +300 MB) unless trimmed with glibc's `malloc_trim` after each;
//! - an over-allocated `Vec` aligned by hand: zeroing its slack touches it (+110 MB).
//!
//! The price of alignment here is heap fragmentation: up to 2 MiB of slack per matrix
//! that other allocations may reuse (BERT-base's peak memory 714 → 800 MB when all its
//! matrices were aligned). Products of many rows reuse each part of B from the cache, and
//! measured no faster aligned (BERT-base, mlp_b64), so only the streamed matrices are.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, handle_alloc_error};
use std::ptr::NonNull;

/// Huge page size on x86-64 and aarch64 Linux.
const HUGE: usize = 2 << 20;

/// An owned, zero-initialized `[f32]` (see the module docs).
pub(crate) struct HugeBuf {
    ptr: NonNull<f32>,
    len: usize,
    /// Asked for huge pages (part of the layout).
    huge: bool,
}

// SAFETY: a HugeBuf owns its elements exclusively, like a Vec<f32>; shared references give
// only shared access to them.
unsafe impl Send for HugeBuf {}
// SAFETY: as above; `&HugeBuf` gives only `&[f32]`.
unsafe impl Sync for HugeBuf {}

impl HugeBuf {
    /// `len` zeros: with `huge`, aligned to 2 MiB and advised onto huge pages when they
    /// span at least that; otherwise aligned to 16 bytes.
    pub(crate) fn zeroed(len: usize, huge: bool) -> HugeBuf {
        let Some(layout) = layout(len, huge) else {
            return HugeBuf { ptr: NonNull::dangling(), len: 0, huge };
        };
        if layout.align() < HUGE {
            // SAFETY: the layout's size is not zero (`layout` is None for len 0). Zeroed by
            // the allocator: fresh pages from the kernel are not written twice.
            let raw = unsafe { alloc_zeroed(layout) };
            let Some(ptr) = NonNull::new(raw.cast::<f32>()) else { handle_alloc_error(layout) };
            return HugeBuf { ptr, len, huge };
        }
        // SAFETY: as above.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<f32>()) else { handle_alloc_error(layout) };
        advise_huge(raw, layout.size());
        // SAFETY: `raw` is a fresh allocation of `len` f32s; all-zero bytes are +0.0. The
        // pages are touched only now, after the advice.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, len) };
        HugeBuf { ptr, len, huge }
    }
}

/// The layout of a buffer of `len` f32s; `None` when nothing is allocated.
fn layout(len: usize, huge: bool) -> Option<Layout> {
    let bytes = len.checked_mul(std::mem::size_of::<f32>()).expect("buffer size overflows");
    // 16 bytes, what the system allocator gives anyway: it then zeroes with `calloc`.
    let align = if huge && bytes >= HUGE { HUGE } else { 16 };
    (bytes > 0).then(|| Layout::from_size_align(bytes, align).expect("buffer layout"))
}

/// Asks Linux to back the whole 2 MiB pages of `[p, p + bytes)` (`p` 2 MiB-aligned) with
/// huge pages. Advice only: refused, it leaves 4 KiB pages and changes nothing else; a
/// no-op elsewhere than Linux.
fn advise_huge(p: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    if bytes >= HUGE {
        // SAFETY: the range lies inside the caller's fresh allocation; MADV_HUGEPAGE
        // changes how pages are backed, never their contents. Its result is ignored (see
        // above).
        let _ = unsafe { libc::madvise(p.cast(), bytes / HUGE * HUGE, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, bytes);
}

impl Drop for HugeBuf {
    fn drop(&mut self) {
        if let Some(layout) = layout(self.len, self.huge) {
            // SAFETY: `ptr` was allocated by `zeroed` with this very layout.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

impl std::ops::Deref for HugeBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `ptr` holds `len` initialized f32s (or is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for HugeBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Clone for HugeBuf {
    fn clone(&self) -> HugeBuf {
        let mut c = HugeBuf::zeroed(self.len, self.huge);
        c.copy_from_slice(self);
        c
    }
}

impl PartialEq for HugeBuf {
    fn eq(&self, other: &HugeBuf) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_aligned_and_owned() {
        for (len, huge) in [0, 1, 17, HUGE / 4 - 1, HUGE / 4, 3 * HUGE / 4 + 5, 5 * HUGE / 4 + 1024]
            .into_iter()
            .flat_map(|len| [(len, false), (len, true)])
        {
            let mut b = HugeBuf::zeroed(len, huge);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x.to_bits() == 0));
            let align = if huge && len * 4 >= HUGE { HUGE } else { 16 };
            assert!(len == 0 || (b.as_ptr() as usize).is_multiple_of(align), "len {len}");
            if len > 0 {
                b[0] = -2.0;
                b[len - 1] = 1.5;
            }
            let c = b.clone();
            assert!(c == b);
            assert!(len == 0 || c.as_ptr() != b.as_ptr());
            drop(b);
            assert!(c.len() == len && (len == 0 || c[len - 1] == 1.5));
        }
    }
}

//! The process allocator: mimalloc, told to keep freed memory for reuse.
//!
//! A training or decoding step frees and re-allocates the same large buffers every
//! step (OPT-125m's logits alone are [512, 50272] floats, 103 MB, at batch 8 × 64).
//! glibc's malloc returns blocks that large to the OS on free, and mimalloc does after
//! its purge delay (1 s), so every step paid again for zeroed pages from the kernel
//! (page faults were ~15 % of a CPU training step). Measured on the OPT-125m training
//! step (2 threads, BENCHMARKS.md): glibc 11.3 s, mimalloc 9.9 s, mimalloc without
//! purging 8.1 s, at +6 % peak RSS (still below PyTorch's).
//!
//! Declared in the library, so the `xp` binary, the benchmarks and the tests all run
//! on it. The option is set at the first allocation: no binary has to remember a
//! start-up call.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

use mimalloc::MiMalloc;

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// mimalloc's `mi_option_purge_delay` (milliseconds before freed memory goes back to
/// the OS; -1 = never). Its index in the `mi_option_e` enum of the bundled mimalloc v3
/// header (`libmimalloc-sys` names only the options whose index v2 and v3 share);
/// a test checks the neighbouring options' defaults.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

static CONFIGURED: AtomicBool = AtomicBool::new(false);

struct Allocator;

impl Allocator {
    #[inline]
    fn configure_once(&self) {
        if !CONFIGURED.load(Ordering::Relaxed) {
            CONFIGURED.store(true, Ordering::Relaxed);
            // SAFETY: sets an option value; allocates nothing, callable at any time.
            unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
        }
    }
}

// SAFETY: every call forwards to mimalloc's allocator unchanged.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.configure_once();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.configure_once();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_index_is_mimallocs() {
        let _ = vec![0u8; 64]; // the first allocation sets the option
        // Options 14..=20 of mimalloc v3's table (src/options.c): deprecated
        // eager_commit_delay 1, purge_delay (ours: -1), use_numa_nodes 0,
        // disallow_os_alloc 0, os_tag 100, max_errors 32, max_warnings 32. A shifted
        // enum would not read this sequence.
        let read: Vec<i64> = (MI_OPTION_PURGE_DELAY - 1..=MI_OPTION_PURGE_DELAY + 5)
            // SAFETY: reads option values.
            .map(|option| unsafe { libmimalloc_sys::mi_option_get(option) } as i64)
            .collect();
        assert_eq!(read, [1, -1, 0, 0, 100, 32, 32]);
    }
}

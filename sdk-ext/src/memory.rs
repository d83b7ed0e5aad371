//! Heap accounting: how many bytes the module holds, and the most it held since a mark. For a
//! filter that runs code of bounded but unknown appetite (a policy interpreter, a template
//! engine) and must refuse a request whose work allocated more than a cap:
//!
//! ```
//! use sdk_ext::memory;
//! let mark = memory::mark();
//! let work: Vec<u8> = vec![0; 1 << 16];
//! drop(work);
//! // With a counting allocator installed (always on wasm), the peak saw the 64 KiB.
//! if memory::is_counting() {
//!     assert!(mark.peak_above() >= 1 << 16);
//! }
//! ```
//!
//! On wasm, sdk-ext's global allocator (talc) counts. Natively nothing is counted unless
//! the binary installs [`Counting`] as its global allocator (a filter's emulator tests do:
//! `#[global_allocator] static A: Counting<std::alloc::System> = Counting(std::alloc::System);`).
//! The counters are per thread, so parallel tests do not see each other's allocations; on
//! wasm there is one thread. A count costs two additions and a comparison per allocation.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

thread_local! {
    static IN_USE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// A global allocator wrapper that counts what `A` hands out and takes back.
#[derive(Debug, Default)]
pub struct Counting<A>(pub A);

fn grew(by: usize) {
    let _ = IN_USE.try_with(|n| {
        let now = n.get().saturating_add(by);
        n.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now);
            }
        });
    });
    let _ = COUNTING.try_with(|c| c.set(true));
}

fn shrank(by: usize) {
    let _ = IN_USE.try_with(|n| n.set(n.get().saturating_sub(by)));
}

// SAFETY: every call is forwarded to `A` unchanged; the wrapper only counts sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { self.0.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// Whether this thread's allocations are counted (a [`Counting`] allocator is installed and
/// has seen one).
pub fn is_counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

/// Bytes allocated and not yet freed (this thread; 0 when not counting).
pub fn in_use() -> usize {
    IN_USE.try_with(Cell::get).unwrap_or(0)
}

/// A point to measure from: [`Mark::peak_above`] is the most the heap grew past it.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    base: usize,
}

/// Starts a measurement: the peak is reset to what is in use now.
pub fn mark() -> Mark {
    let base = in_use();
    let _ = PEAK.try_with(|p| p.set(base));
    Mark { base }
}

impl Mark {
    /// The most bytes held above the mark at any moment since it was taken (0 when not
    /// counting). Nested marks reset the peak: measure one thing at a time.
    pub fn peak_above(&self) -> usize {
        PEAK.try_with(Cell::get)
            .unwrap_or(0)
            .saturating_sub(self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn counts_what_the_inner_allocator_hands_out() {
        let a = Counting(System);
        let layout = Layout::from_size_align(4096, 8).unwrap();
        let before = in_use();
        let m = mark();
        // SAFETY: a valid layout; freed below with the same layout.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        assert!(is_counting());
        assert_eq!(in_use(), before + 4096);
        // SAFETY: `p` came from `a.alloc(layout)`.
        let q = unsafe { a.realloc(p, layout, 8192) };
        assert!(!q.is_null());
        assert_eq!(in_use(), before + 8192);
        // SAFETY: `q` came from `realloc` to 8192 bytes.
        unsafe { a.dealloc(q, Layout::from_size_align(8192, 8).unwrap()) };
        assert_eq!(in_use(), before);
        assert_eq!(m.peak_above(), 8192);
        assert_eq!(mark().peak_above(), 0);
    }
}

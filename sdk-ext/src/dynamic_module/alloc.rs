//! The global allocator of a dynamic module (`.so`): the system allocator (in Envoy,
//! tcmalloc through its `malloc`/`free` entry points, ~100 instructions each per call), with
//! small blocks cached per thread in front of it. A request's small allocations (the header
//! values a filter reads, its stream state) then reuse the blocks the thread's previous
//! request freed, as Envoy's own filters get theirs from tcmalloc's inlined per-thread fast
//! path.
//!
//! Per thread and size class (16, 32, 64, 128, 256 and 512 bytes, 16-aligned) a list of free
//! blocks, at most [`SMALL_KEPT`](crate::memory::SMALL_KEPT) each (≤ 63 KiB a thread); every other layout goes straight to
//! the system allocator. A block is always taken from the system allocator with its class's
//! layout and returned with it, so a block freed on another thread than the one that
//! allocated it joins that thread's list like any other. The lists live in a `const`
//! thread-local without a destructor, so the allocator never allocates itself and works
//! at any point of a thread's life; what a thread's lists hold when it ends is returned by
//! [`Flush`], which the dispatch arms on each thread that runs hooks (a thread where it was
//! not armed keeps its ≤ 63 KiB).

use crate::memory::{realloc_in_classes, small_class, small_layout, FreeLists};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// One thread's free lists.
struct Lists {
    lists: FreeLists,
    /// The thread is ending ([`Flush`] ran): blocks go straight back.
    closed: Cell<bool>,
}

thread_local! {
    static LISTS: Lists = const {
        Lists {
            lists: FreeLists::new(),
            closed: Cell::new(false),
        }
    };
}

/// The dynamic module's global allocator (see the module docs).
#[derive(Debug, Default)]
pub struct ThreadBlocks;

// SAFETY: a block of a class is allocated from `System` with that class's layout and
// returned to `System` with the same layout; while on a list it is owned by that thread's
// list, which hands it to one caller at a time. Every other layout is passed to `System`
// unchanged.
unsafe impl GlobalAlloc for ThreadBlocks {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = small_class(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.alloc(layout) };
        };
        if let Some(block) = LISTS.try_with(|l| l.lists.pop(class)).ok().flatten() {
            return block;
        }
        match small_layout(class) {
            // SAFETY: a non-zero size and a valid alignment.
            Some(l) => unsafe { System.alloc(l) },
            None => std::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = small_class(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.dealloc(ptr, layout) };
        };
        let kept = LISTS
            .try_with(|l| {
                // SAFETY: a block of this class (allocated with its class's layout) that the
                // caller gives up.
                !l.closed.get() && unsafe { l.lists.push(class, ptr) }
            })
            .unwrap_or(false);
        if !kept {
            if let Some(l) = small_layout(class) {
                // SAFETY: allocated from `System` with this class's layout.
                unsafe { System.dealloc(ptr, l) };
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on (to `System` when neither layout is a
        // small block's).
        unsafe {
            realloc_in_classes(self, ptr, layout, new_size, || {
                System.realloc(ptr, layout, new_size)
            })
        }
    }
}

/// Returns the calling thread's cached blocks to the system allocator; `close`: and every
/// block it frees from now on.
fn flush(close: bool) {
    let _ = LISTS.try_with(|l| {
        l.closed.set(close);
        l.lists.drain(|block, class| {
            if let Some(layout) = small_layout(class) {
                // SAFETY: a free block of this class, allocated from `System` with its layout.
                unsafe { System.dealloc(block, layout) };
            }
        });
    });
}

/// Flushes the thread's lists when the thread ends (see the module docs).
struct Flush;

impl Drop for Flush {
    fn drop(&mut self) {
        flush(true);
    }
}

thread_local! {
    static FLUSH: Flush = const { Flush };
}

/// Arms [`Flush`] on the calling thread (from hook code, never from inside the allocator:
/// registering a thread-local destructor may allocate).
pub(crate) fn arm_flush() {
    let _ = FLUSH.try_with(|_| ());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_blocks_are_reused_per_thread_and_large_ones_pass_through() {
        use crate::memory::SMALL_KEPT as KEPT;
        let a = ThreadBlocks;
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        // The size classes are memory.rs's (`small_class`, tested there).
        // SAFETY (the whole test): valid layouts; every block is freed with the layout it
        // was allocated with (or reallocated to), and written only within its size.
        unsafe {
            let p = a.alloc(l(24, 8));
            assert!(!p.is_null());
            p.write_bytes(7, 24);
            a.dealloc(p, l(24, 8));
            // The same class (17..=32 bytes) takes the freed block back.
            let q = a.alloc(l(32, 4));
            assert_eq!(q, p);
            q.write_bytes(9, 32);
            assert_eq!(a.realloc(q, l(32, 4), 20), q);
            let r = a.realloc(q, l(20, 4), 100);
            assert_ne!(r, q);
            assert_eq!(std::slice::from_raw_parts(r, 20), &[9u8; 20][..]);
            // A block freed on another thread joins that thread's list, not this one's.
            let moved = r as usize;
            std::thread::spawn(move || {
                let r = moved as *mut u8;
                ThreadBlocks.dealloc(r, Layout::from_size_align(100, 4).unwrap());
                assert_eq!(
                    ThreadBlocks.alloc(Layout::from_size_align(128, 1).unwrap()),
                    r
                );
                ThreadBlocks.dealloc(r, Layout::from_size_align(128, 1).unwrap());
                flush(true);
                // Closed: a freed block is not kept.
                let b = ThreadBlocks.alloc(Layout::from_size_align(16, 1).unwrap());
                ThreadBlocks.dealloc(b, Layout::from_size_align(16, 1).unwrap());
                LISTS.with(|lists| assert_eq!(lists.lists.kept(0), 0));
            })
            .join()
            .unwrap();
            // A list keeps at most KEPT blocks; the rest go back.
            let many: Vec<*mut u8> = (0..KEPT + 10).map(|_| a.alloc(l(16, 1))).collect();
            for &b in &many {
                a.dealloc(b, l(16, 1));
            }
            LISTS.with(|lists| assert_eq!(lists.lists.kept(0), KEPT));
            let big = a.alloc(l(4096, 8));
            let bigger = a.realloc(big, l(4096, 8), 8192);
            assert!(!bigger.is_null());
            a.dealloc(bigger, l(8192, 8));
        }
        flush(false);
        LISTS.with(|lists| assert!((0..5).all(|c| lists.lists.kept(c) == 0)));
    }
}

//! The global allocator of a dynamic module (`.so`): the system allocator (in Envoy,
//! tcmalloc through its `malloc`/`free` entry points, ~100 instructions each per call), with
//! small blocks cached per thread in front of it. A request's small allocations (the header
//! values a filter reads, its stream state) then reuse the blocks the thread's previous
//! request freed, as Envoy's own filters get theirs from tcmalloc's inlined per-thread fast
//! path.
//!
//! Per thread and size class (16, 32, 64, 128 and 256 bytes, 16-aligned) a list of free
//! blocks, at most [`KEPT`] each (≤ 31 KiB a thread); every other layout goes straight to
//! the system allocator. A block is always taken from the system allocator with its class's
//! layout and returned with it, so a block freed on another thread than the one that
//! allocated it joins that thread's list like any other. The lists live in a `const`
//! thread-local without a destructor, so the allocator never allocates itself and works
//! at any point of a thread's life; what a thread's lists hold when it ends is returned by
//! [`Flush`], which the dispatch arms on each thread that runs hooks (a thread where it was
//! not armed keeps its ≤ 31 KiB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Size classes: 16 << 0 ..= 16 << 4 bytes.
const CLASSES: usize = 5;
/// The smallest block, and the alignment of every block.
const BLOCK: usize = 16;
/// Freed blocks a thread keeps per size class.
pub(crate) const KEPT: u32 = 64;

/// One thread's free lists: per class, the first free block (each free block's first word
/// is the next) and how many the list holds.
struct Lists {
    free: [Cell<*mut u8>; CLASSES],
    kept: [Cell<u32>; CLASSES],
    /// The thread is ending ([`Flush`] ran): blocks go straight back.
    closed: Cell<bool>,
}

thread_local! {
    static LISTS: Lists = const {
        Lists {
            free: [const { Cell::new(std::ptr::null_mut()) }; CLASSES],
            kept: [const { Cell::new(0) }; CLASSES],
            closed: Cell::new(false),
        }
    };
}

/// The size class serving `layout`, if any.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > BLOCK || layout.size() > BLOCK << (CLASSES - 1) {
        return None;
    }
    // The class of the next power of two: 16 -> 0, 17..=32 -> 1, ..., 129..=256 -> 4.
    let size = layout.size().max(BLOCK);
    let bits = usize::BITS - (size - 1).leading_zeros();
    usize::try_from(bits).ok()?.checked_sub(4)
}

/// The layout of a block of `class`, as the system allocator sees it.
fn block_layout(class: usize) -> Option<Layout> {
    Layout::from_size_align(BLOCK << class, BLOCK).ok()
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
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.alloc(layout) };
        };
        let reused = LISTS
            .try_with(|l| {
                let (head, kept) = (l.free.get(class)?, l.kept.get(class)?);
                let block = head.get();
                if block.is_null() {
                    return None;
                }
                // SAFETY: a free block of this class, at least 16 bytes and 16-aligned; its
                // first word is the next free block (written by `dealloc`).
                head.set(unsafe { block.cast::<*mut u8>().read() });
                kept.set(kept.get().saturating_sub(1));
                Some(block)
            })
            .ok()
            .flatten();
        if let Some(block) = reused {
            return block;
        }
        match block_layout(class) {
            // SAFETY: a non-zero size and a valid alignment.
            Some(l) => unsafe { System.alloc(l) },
            None => std::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.dealloc(ptr, layout) };
        };
        let kept = LISTS
            .try_with(|l| {
                let (head, kept) = (l.free.get(class)?, l.kept.get(class)?);
                if kept.get() >= KEPT || l.closed.get() {
                    return None;
                }
                // SAFETY: a block of this class (16-aligned, at least 16 bytes) that the
                // caller gives up: its first word now links the list.
                unsafe { ptr.cast::<*mut u8>().write(head.get()) };
                head.set(ptr);
                kept.set(kept.get() + 1);
                Some(())
            })
            .ok()
            .flatten();
        if kept.is_none() {
            if let Some(l) = block_layout(class) {
                // SAFETY: allocated from `System` with this class's layout.
                unsafe { System.dealloc(ptr, l) };
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class_of(layout);
        let new = Layout::from_size_align(new_size, layout.align())
            .ok()
            .and_then(class_of);
        match (old, new) {
            // Neither is a small block: the system allocator's own realloc.
            // SAFETY: the caller's contract, passed on.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            // Within its class a block already has the room.
            (Some(a), Some(b)) if a == b => ptr,
            _ => {
                let Ok(to) = Layout::from_size_align(new_size, layout.align()) else {
                    return std::ptr::null_mut();
                };
                // SAFETY: a valid layout; the old block holds `layout.size()` bytes and the
                // new one at least `new_size`; the old block is freed with its layout.
                unsafe {
                    let p = self.alloc(to);
                    if !p.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    p
                }
            }
        }
    }
}

/// Returns the calling thread's cached blocks to the system allocator; `close`: and every
/// block it frees from now on.
fn flush(close: bool) {
    let _ = LISTS.try_with(|l| {
        l.closed.set(close);
        for (class, (head, kept)) in l.free.iter().zip(&l.kept).enumerate() {
            let Some(layout) = block_layout(class) else {
                continue;
            };
            let mut block = head.replace(std::ptr::null_mut());
            kept.set(0);
            while !block.is_null() {
                // SAFETY: a free block of this class; its first word is the next one.
                let next = unsafe { block.cast::<*mut u8>().read() };
                // SAFETY: allocated from `System` with this class's layout.
                unsafe { System.dealloc(block, layout) };
                block = next;
            }
        }
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
        let a = ThreadBlocks;
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class_of(l(1, 1)), Some(0));
        assert_eq!(class_of(l(16, 8)), Some(0));
        assert_eq!(class_of(l(17, 1)), Some(1));
        assert_eq!(class_of(l(256, 16)), Some(4));
        assert_eq!(class_of(l(257, 1)), None);
        assert_eq!(class_of(l(8, 32)), None);
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
                LISTS.with(|lists| assert_eq!(lists.kept[0].get(), 0));
            })
            .join()
            .unwrap();
            // A list keeps at most KEPT blocks; the rest go back.
            let many: Vec<*mut u8> = (0..KEPT + 10).map(|_| a.alloc(l(16, 1))).collect();
            for &b in &many {
                a.dealloc(b, l(16, 1));
            }
            LISTS.with(|lists| assert_eq!(lists.kept[0].get(), KEPT));
            let big = a.alloc(l(4096, 8));
            let bigger = a.realloc(big, l(4096, 8), 8192);
            assert!(!bigger.is_null());
            a.dealloc(bigger, l(8192, 8));
        }
        flush(false);
        LISTS.with(|lists| assert!(lists.kept.iter().all(|k| k.get() == 0)));
    }
}

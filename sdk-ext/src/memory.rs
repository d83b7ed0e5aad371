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

#[inline(always)] // on every allocation: see `SmallBlocks`
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

#[inline(always)]
fn shrank(by: usize) {
    let _ = IN_USE.try_with(|n| n.set(n.get().saturating_sub(by)));
}

// SAFETY: every call is forwarded to `A` unchanged; the wrapper only counts sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline(always)]
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

    #[inline(always)]
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

/// A cache of small freed blocks in front of another allocator: what a filter allocates
/// per request (a header value the host hands over, a stream's state, a short list) is
/// mostly small and freed within the request, and an allocation of a size freed before
/// then costs a pop from a list instead of the inner allocator's search and bookkeeping
/// (talc's is several hundred wasm instructions for an allocation and its free).
///
/// Sizes up to 512 bytes with alignment up to 16 are served as blocks of 16, 32, 64, 128,
/// 256 or 512 bytes (512: a request's whole header map as the host hands it over is often
/// a little over 256); a freed block goes on its size's list (up to [`SMALL_KEPT`] per size, the
/// rest back to the inner allocator), and the next allocation of that size takes it. Larger
/// or more aligned layouts go straight to the inner allocator. Single-threaded: the global
/// allocator of single-threaded wasm only.
#[derive(Debug)]
pub struct SmallBlocks<A> {
    inner: A,
    lists: FreeLists,
}

/// Per size class, a list of free blocks and how many it holds: the cache of
/// [`SmallBlocks`], and per thread of the dynamic module's allocator
/// (`dynamic_module::alloc`). Blocks are taken from and returned to an inner allocator
/// with [`small_layout`]; a layout is served by the class [`small_class`] names.
#[derive(Debug)]
pub(crate) struct FreeLists {
    /// Per size class, the first free block; each free block's first word is the next.
    free: [Cell<*mut u8>; SMALL_CLASSES],
    /// Per size class, how many blocks its list holds.
    kept: [Cell<u32>; SMALL_CLASSES],
}

impl FreeLists {
    /// Empty lists.
    pub(crate) const fn new() -> Self {
        FreeLists {
            free: [const { Cell::new(std::ptr::null_mut()) }; SMALL_CLASSES],
            kept: [const { Cell::new(0) }; SMALL_CLASSES],
        }
    }

    /// A free block of `class`, off its list.
    #[inline(always)]
    pub(crate) fn pop(&self, class: usize) -> Option<*mut u8> {
        let (head, kept) = (self.free.get(class)?, self.kept.get(class)?);
        let block = head.get();
        if block.is_null() {
            return None;
        }
        // SAFETY: a block on a list came through `push`: a block of this class, at least 16
        // bytes and 16-aligned, whose first word is the next free block.
        head.set(unsafe { block.cast::<*mut u8>().read() });
        kept.set(kept.get().saturating_sub(1));
        Some(block)
    }

    /// Puts `ptr` on `class`'s list; `false` when the list holds [`SMALL_KEPT`] already
    /// (the caller returns the block to the inner allocator).
    ///
    /// # Safety
    ///
    /// `ptr` is a block of `class` (allocated with `small_layout(class)`) that the caller
    /// gives up.
    #[inline(always)]
    pub(crate) unsafe fn push(&self, class: usize, ptr: *mut u8) -> bool {
        let (Some(head), Some(kept)) = (self.free.get(class), self.kept.get(class)) else {
            return false;
        };
        if kept.get() >= SMALL_KEPT {
            return false;
        }
        // SAFETY: the caller's block of this class (16-aligned, at least 16 bytes): its first
        // word now links the list.
        unsafe { ptr.cast::<*mut u8>().write(head.get()) };
        head.set(ptr);
        kept.set(kept.get() + 1);
        true
    }

    /// Empties every list, handing each block and its class to `free` (the dynamic module's
    /// thread-exit flush; a wasm VM never ends its lists).
    #[cfg(any(feature = "dynamic-module", test))]
    pub(crate) fn drain(&self, mut free: impl FnMut(*mut u8, usize)) {
        for class in 0..SMALL_CLASSES {
            while let Some(block) = self.pop(class) {
                free(block, class);
            }
        }
    }

    /// How many blocks `class`'s list holds.
    #[cfg(test)]
    pub(crate) fn kept(&self, class: usize) -> u32 {
        self.kept.get(class).map_or(0, Cell::get)
    }
}

/// Size classes of [`SmallBlocks`]: 16 << 0 ..= 16 << 5 bytes.
const SMALL_CLASSES: usize = 6;
/// The smallest block, and the alignment of every block.
const SMALL_BLOCK: usize = 16;
/// Freed blocks [`SmallBlocks`] keeps per size class (at most 63 KiB in all).
pub const SMALL_KEPT: u32 = 64;

/// `GlobalAlloc::realloc` for an allocator serving the small classes as blocks: a block
/// already holding `new_size` stays; a move into, out of or between classes goes through
/// `this`'s `alloc` and `dealloc`; with neither layout small, `inner` (the inner allocator's
/// own realloc) does it.
///
/// # Safety
///
/// `GlobalAlloc::realloc`'s contract, for `this`.
#[inline]
pub(crate) unsafe fn realloc_in_classes<G: GlobalAlloc + ?Sized>(
    this: &G,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    inner: impl FnOnce() -> *mut u8,
) -> *mut u8 {
    let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
        return std::ptr::null_mut();
    };
    match (small_class(layout), small_class(new_layout)) {
        (None, None) => inner(),
        // The block already holds the new size.
        (Some(a), Some(b)) if a == b => ptr,
        _ => {
            // SAFETY: as `this.alloc`; then both blocks are live and hold the bytes copied.
            unsafe {
                let new = this.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    this.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

// SAFETY: the cells are only touched by the one thread of a single-threaded wasm module.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SmallBlocks<A> {}

impl<A> SmallBlocks<A> {
    /// `inner` with an empty cache.
    pub const fn new(inner: A) -> Self {
        SmallBlocks {
            inner,
            lists: FreeLists::new(),
        }
    }
}

/// The size class serving `layout`, if any.
#[inline(always)]
pub(crate) fn small_class(layout: Layout) -> Option<usize> {
    if layout.align() > SMALL_BLOCK || layout.size() > SMALL_BLOCK << (SMALL_CLASSES - 1) {
        return None;
    }
    // The class of the next power of two: 16 -> 0, 17..=32 -> 1, ..., 257..=512 -> 5.
    let size = layout.size().max(SMALL_BLOCK);
    let bits = usize::BITS - (size - 1).leading_zeros();
    usize::try_from(bits).ok()?.checked_sub(4)
}

/// The layout of a block of `class`, as the inner allocator sees it.
#[inline(always)]
pub(crate) fn small_layout(class: usize) -> Option<Layout> {
    Layout::from_size_align(SMALL_BLOCK << class, SMALL_BLOCK).ok()
}

// SAFETY: a block of a class is allocated from `A` with that class's layout and returned to
// `A` with the same layout; while on a list it is owned by the cache, which hands it out to
// one caller at a time. Every other layout is passed to `A` unchanged.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SmallBlocks<A> {
    // The fast paths (a block off a list, a block onto one) are inlined into the
    // allocator's entry points: out of line at the size-optimised level sdk-ext is built
    // at, each allocation and free was ~100 wasm operators of calls and spills.
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = small_class(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.inner.alloc(layout) };
        };
        if let Some(block) = self.lists.pop(class) {
            return block;
        }
        match small_layout(class) {
            // SAFETY: a non-zero size and a valid alignment.
            Some(l) => unsafe { self.inner.alloc(l) },
            None => std::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if small_class(layout).is_none() {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.inner.alloc_zeroed(layout) };
        }
        // SAFETY: as `alloc`.
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            // SAFETY: the block holds at least `layout.size()` bytes.
            unsafe { p.write_bytes(0, layout.size()) };
        }
        p
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = small_class(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.inner.dealloc(ptr, layout) };
        };
        // SAFETY: `ptr` is a block of this class (it was allocated with this layout's class)
        // that the caller gives up.
        if unsafe { self.lists.push(class, ptr) } {
            return;
        }
        if let Some(l) = small_layout(class) {
            // SAFETY: the block came from `A` with this layout.
            unsafe { self.inner.dealloc(ptr, l) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on (to the inner allocator when neither
        // layout is a small block's).
        unsafe {
            realloc_in_classes(self, ptr, layout, new_size, || {
                self.inner.realloc(ptr, layout, new_size)
            })
        }
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
    fn small_blocks_are_reused_and_large_ones_pass_through() {
        let a = SmallBlocks::new(System);
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(small_class(l(1, 1)), Some(0));
        assert_eq!(small_class(l(16, 8)), Some(0));
        assert_eq!(small_class(l(17, 1)), Some(1));
        assert_eq!(small_class(l(256, 16)), Some(4));
        assert_eq!(small_class(l(257, 1)), Some(5));
        assert_eq!(small_class(l(512, 16)), Some(5));
        assert_eq!(small_class(l(513, 1)), None);
        assert_eq!(small_class(l(8, 32)), None);
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
            // Within its class a block grows in place; across classes it moves, bytes kept.
            q.write_bytes(9, 32);
            assert_eq!(a.realloc(q, l(32, 4), 20), q);
            let r = a.realloc(q, l(20, 4), 100);
            assert_ne!(r, q);
            assert_eq!(std::slice::from_raw_parts(r, 20), &[9u8; 20][..]);
            let z = a.alloc_zeroed(l(100, 4));
            assert_eq!(std::slice::from_raw_parts(z, 100), &[0u8; 100][..]);
            a.dealloc(z, l(100, 4));
            a.dealloc(r, l(100, 4));
            // A list keeps at most SMALL_KEPT blocks; the rest go back.
            let many: Vec<*mut u8> = (0..SMALL_KEPT + 10).map(|_| a.alloc(l(16, 1))).collect();
            for &b in &many {
                a.dealloc(b, l(16, 1));
            }
            assert_eq!(a.lists.kept(0), SMALL_KEPT);
            let big = a.alloc(l(4096, 8));
            let bigger = a.realloc(big, l(4096, 8), 8192);
            assert!(!bigger.is_null());
            a.dealloc(bigger, l(8192, 8));
            // Drain the cache so the test leaks nothing.
            a.lists
                .drain(|b, c| System.dealloc(b, small_layout(c).unwrap()));
            assert!((0..SMALL_CLASSES).all(|c| a.lists.kept(c) == 0));
        }
    }

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

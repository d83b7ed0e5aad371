//! The guest's memory as a host function sees it: the one thing the two engines do not
//! share. Natively the guest's pointers are this process's addresses; in the wasm engine
//! they are offsets into the instance's linear memory. Every host function
//! (`super::calls`) is written once over [`Memory`], so both engines run the same host
//! semantics.
//!
//! Pointers and sizes cross the ABI as guest words (`usize` natively, `u32` in wasm32) and
//! reach the host functions as `usize`.

/// Reads and writes of guest memory, and allocations the guest makes for values the host
/// returns (Envoy allocates them by calling the module's `proxy_on_memory_allocate`).
pub(crate) trait Memory {
    /// A copy of `size` bytes at `ptr`; `None` when they are not all guest memory.
    fn read(&self, ptr: usize, size: usize) -> Option<Vec<u8>>;

    /// Writes `bytes` at `ptr`; `false` when that is not guest memory.
    fn write(&mut self, ptr: usize, bytes: &[u8]) -> bool;

    /// Writes a guest word (a pointer or a size: 8 bytes natively, 4 in wasm32); `false`
    /// when `ptr` is not guest memory or `value` does not fit a guest word.
    fn write_word(&mut self, ptr: usize, value: usize) -> bool;

    /// Copies `data` (never empty) into a fresh guest allocation the guest then owns;
    /// answers the guest pointer, `None` when the guest could not allocate.
    fn allocate(&mut self, data: &[u8]) -> Option<usize>;
}

/// The native engine's memory: the guest is linked into this process.
///
/// Constructing it is the promise that every pointer the guest passes to a host function is
/// valid for the access the ABI describes (what each `unsafe extern "C"` host function
/// requires of its caller). Null is refused for any non-empty access.
pub(crate) struct NativeMemory {
    _private: (),
}

impl NativeMemory {
    /// # Safety
    /// Every non-null pointer later passed to [`Memory::read`] must be valid for reads of
    /// `size` bytes, and every non-null pointer passed to `write` / `write_word` valid for
    /// writes of that many bytes (the ABI contract of the calling host function).
    pub(crate) unsafe fn assume_valid() -> Self {
        NativeMemory { _private: () }
    }
}

impl Memory for NativeMemory {
    fn read(&self, ptr: usize, size: usize) -> Option<Vec<u8>> {
        if size == 0 {
            return Some(Vec::new());
        }
        if ptr == 0 {
            return None;
        }
        // SAFETY: non-null, and the constructor's contract makes it valid for `size` reads.
        Some(unsafe { std::slice::from_raw_parts(ptr as *const u8, size) }.to_vec())
    }

    fn write(&mut self, ptr: usize, bytes: &[u8]) -> bool {
        if ptr == 0 {
            return false;
        }
        // SAFETY: non-null, and the constructor's contract makes it valid for the write; an
        // unaligned copy makes no assumption about the guest's alignment.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr as *mut u8, bytes.len()) };
        true
    }

    fn write_word(&mut self, ptr: usize, value: usize) -> bool {
        self.write(ptr, &value.to_ne_bytes())
    }

    fn allocate(&mut self, data: &[u8]) -> Option<usize> {
        // A boxed slice (capacity == length), which the guest takes back with
        // `Vec::from_raw_parts(ptr, len, len)`: what `proxy_on_memory_allocate` gives natively.
        Some(Box::into_raw(data.to_vec().into_boxed_slice()).cast::<u8>() as usize)
    }
}

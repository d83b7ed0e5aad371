//! The benchmark's floor for header-rules: the same four edits header-rules makes in the
//! benchmark (request: set `x-bench-a`, append `x-bench-b`, remove `x-remove-me`; response:
//! set `x-bench-resp`), as bare ABI calls with no SDK, no allocator, no configuration and no
//! per-stream state. `header-rules` minus `raw-edits` is what the SDK, sdk-ext and
//! header-rules' own logic and counters cost; `raw-edits` minus `raw` is what Envoy charges
//! for the edits themselves (and the response-headers callback).
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

use core::cell::UnsafeCell;

/// The ABI version Envoy checks for.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Header map types of the ABI.
const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_len: usize) -> u32;
}

/// Memory Envoy asks for (only the empty configuration here): one static area, reused.
struct Scratch(UnsafeCell<[u8; 4096]>);
// SAFETY: a wasm module instance is single-threaded.
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; 4096]));

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    if size <= 4096 {
        SCRATCH.0.get().cast()
    } else {
        core::ptr::null_mut()
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context: u32, _parent: u32) {}

fn replace(map: u32, key: &[u8], value: &[u8]) {
    // SAFETY: both slices are valid for their lengths during the call.
    unsafe {
        proxy_replace_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    };
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    replace(REQUEST_HEADERS, b"x-bench-a", b"1");
    let (key, value) = (b"x-bench-b", b"2");
    // SAFETY: as in `replace`.
    unsafe {
        proxy_add_header_map_value(
            REQUEST_HEADERS,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    let key = b"x-remove-me";
    // SAFETY: as in `replace`.
    unsafe { proxy_remove_header_map_value(REQUEST_HEADERS, key.as_ptr(), key.len()) };
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    replace(RESPONSE_HEADERS, b"x-bench-resp", b"3");
    0
}

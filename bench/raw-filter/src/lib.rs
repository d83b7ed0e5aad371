//! The benchmark's floor: the proxy-wasm ABI spoken directly, with no SDK, no allocator and
//! no per-stream state. It exports only what Envoy needs to run an HTTP filter and, on each
//! request, makes the one hostcall the `bare` SDK filter makes (`x-bench-a: 1`). What it costs
//! in `make bench` is what Envoy's V8 integration charges any proxy-wasm filter per stream
//! (filter and context creation, two VM entries, one hostcall); `bare` minus `raw` is what the
//! SDK's dispatcher adds.
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

use core::cell::UnsafeCell;

/// The ABI version Envoy checks for.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
}

/// Memory Envoy asks for (configuration bytes, header values): one static area, reused.
/// Envoy only asks when it hands the VM data (the empty configuration, never on this
/// filter's request path), so it does not need to be more than a scratch buffer.
struct Scratch(UnsafeCell<[u8; 64 * 1024]>);
// SAFETY: a wasm module instance is single-threaded.
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; 64 * 1024]));

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    if size <= 64 * 1024 {
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

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    const KEY: &[u8] = b"x-bench-a";
    const VALUE: &[u8] = b"1";
    // SAFETY: both pointers are to static data of the given lengths; 0 is the request map.
    unsafe {
        proxy_replace_header_map_value(0, KEY.as_ptr(), KEY.len(), VALUE.as_ptr(), VALUE.len())
    };
    0
}

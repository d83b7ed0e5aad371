//! What both floor modules (`raw-filter`, `raw-edits`) need to be loaded as an HTTP filter,
//! and nothing more: the ABI version, memory for what Envoy hands over (only the empty
//! configuration: these modules read no header), the lifecycle answers, and the header calls.
//! `raw-edits` includes this file with `#[path]`, so the two stay byte-for-byte alike.

use core::cell::UnsafeCell;

/// Header map types of the ABI.
pub const REQUEST_HEADERS: u32 = 0;
#[allow(dead_code)] // raw-filter edits the request only
pub const RESPONSE_HEADERS: u32 = 2;

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

/// Sets `key` to `value` in `map`.
pub fn replace(map: u32, key: &[u8], value: &[u8]) {
    // SAFETY: both slices are valid for their lengths during the call.
    unsafe {
        proxy_replace_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    };
}

/// Appends `value` to `key` in `map`.
#[allow(dead_code)] // raw-filter only replaces
pub fn add(map: u32, key: &[u8], value: &[u8]) {
    // SAFETY: as in `replace`.
    unsafe {
        proxy_add_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    };
}

/// Removes `key` from `map`.
#[allow(dead_code)] // raw-filter only replaces
pub fn remove(map: u32, key: &[u8]) {
    // SAFETY: as in `replace`.
    unsafe { proxy_remove_header_map_value(map, key.as_ptr(), key.len()) };
}

/// The ABI version Envoy checks for.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// One static scratch area, reused for every request Envoy makes.
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

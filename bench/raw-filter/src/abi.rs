//! What the floor modules (`raw-filter`, `raw-edits`, `raw-template`) need to be loaded as an
//! HTTP filter, and nothing more: the ABI version, memory for what Envoy hands over (one static
//! scratch area: a header value read, the empty configuration), the lifecycle answers, the
//! header and metric calls.
//!
//! **Exports**: the same set an sdk-ext filter exports (sdk-ext's macros export only the stream
//! phases a filter implements, plus this fixed set): `memory`, `_initialize` (an sdk-ext
//! module's is the WASI reactor's, which Envoy calls once at VM start; here an empty one),
//! `proxy_abi_version_0_2_1`, `proxy_on_memory_allocate`, `proxy_on_context_create`,
//! `proxy_on_vm_start`, `proxy_on_configure`, `proxy_on_delete` (Envoy calls it for every
//! stream: a per-request cost the floor must pay too), and the root-only callbacks that cost
//! nothing per request (`proxy_on_tick`, `proxy_on_http_call_response`). Each module adds its stream phases. `xtask bench` compares
//! each floor module's export list with its sdk-ext counterpart's and reports any difference.
//!
//! The other modules include this file with `#[path]`, so they stay byte-for-byte alike.

#![allow(dead_code)] // each module uses its own subset of the calls

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

/// Header map types of the ABI.
pub const REQUEST_HEADERS: u32 = 0;
pub const RESPONSE_HEADERS: u32 = 2;

/// `MetricType::Counter`.
const COUNTER: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        value: *mut *mut u8,
        value_len: *mut usize,
    ) -> u32;
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
    fn proxy_define_metric(kind: u32, name: *const u8, name_len: usize, id: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_len: usize,
        value: *mut *mut u8,
        value_len: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_len: usize,
        value: *mut *mut u8,
        value_len: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
        cas: u32,
    ) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_get_header_map_pairs(map: u32, value: *mut *mut u8, value_len: *mut usize) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_len: usize,
        body: *const u8,
        body_len: usize,
        headers: *const u8,
        headers_len: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Sets `key` to `value` in `map`.
pub fn replace(map: u32, key: &[u8], value: &[u8]) {
    // SAFETY: both slices are valid for their lengths during the call.
    unsafe {
        proxy_replace_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    };
}

/// Appends `value` to `key` in `map`.
pub fn add(map: u32, key: &[u8], value: &[u8]) {
    // SAFETY: as in `replace`.
    unsafe {
        proxy_add_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    };
}

/// Removes `key` from `map`.
pub fn remove(map: u32, key: &[u8]) {
    // SAFETY: as in `replace`.
    unsafe { proxy_remove_header_map_value(map, key.as_ptr(), key.len()) };
}

/// The first value of `key` in `map`. Envoy copies it into memory it asks for through
/// `proxy_on_memory_allocate` (the scratch area below), exactly as for any SDK's getter; the
/// slice is valid until the next host call that hands over memory.
pub fn get(map: u32, key: &[u8]) -> Option<&'static [u8]> {
    let mut data: *mut u8 = core::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: `key` is valid for its length; the out-pointers are live locals.
    let status =
        unsafe { proxy_get_header_map_value(map, key.as_ptr(), key.len(), &mut data, &mut len) };
    if status != 0 || data.is_null() || len > SCRATCH_SIZE {
        return None;
    }
    // SAFETY: the host wrote `len` bytes at `data`, which is the scratch area it was given.
    Some(unsafe { core::slice::from_raw_parts(data, len) })
}

/// The whole header map, serialised by the host (the pair count, the lengths, then the
/// NUL-terminated names and values), copied into the scratch area like `get`.
pub fn pairs(map: u32) -> Option<&'static [u8]> {
    let mut data: *mut u8 = core::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: the out-pointers are live locals.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut len) };
    if status != 0 || data.is_null() || len > SCRATCH_SIZE {
        return None;
    }
    // SAFETY: as in `get`.
    Some(unsafe { core::slice::from_raw_parts(data, len) })
}

/// The host clock in ns (`proxy_get_current_time_nanoseconds`); 0 on failure.
pub fn now_nanos() -> u64 {
    let mut t = 0u64;
    // SAFETY: `t` is a live local.
    unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    t
}

/// A property (`path`: segments joined by NUL), copied into the scratch area like `get`.
pub fn property(path: &[u8]) -> Option<&'static [u8]> {
    let mut data: *mut u8 = core::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: `path` is valid for its length; the out-pointers are live locals.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut len) };
    if status != 0 || data.is_null() || len > SCRATCH_SIZE {
        return None;
    }
    // SAFETY: as in `get`.
    Some(unsafe { core::slice::from_raw_parts(data, len) })
}

/// Shared data under `key` and its CAS, copied into the scratch area like `get`.
pub fn shared_get(key: &[u8]) -> Option<(&'static [u8], u32)> {
    let mut data: *mut u8 = core::ptr::null_mut();
    let mut len: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: `key` is valid for its length; the out-pointers are live locals.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut len, &mut cas) };
    if status != 0 || data.is_null() || len > SCRATCH_SIZE {
        return None;
    }
    // SAFETY: as in `get`.
    Some((unsafe { core::slice::from_raw_parts(data, len) }, cas))
}

/// Writes shared data if its CAS still is `cas` (0: unconditionally); the host's status.
pub fn shared_set(key: &[u8], value: &[u8], cas: u32) -> u32 {
    // SAFETY: both slices are valid for their lengths during the call.
    unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
}

/// A counter defined once at configure time (`proxy_define_metric`), incremented per request.
pub struct Counter(AtomicU32);

/// No metric id yet (Envoy's ids are never `u32::MAX`).
const UNDEFINED: u32 = u32::MAX;

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU32::new(UNDEFINED))
    }

    /// Defines the counter `name` (as sdk-ext's `Counter::new` does at configure time).
    pub fn define(&self, name: &[u8]) {
        let mut id = UNDEFINED;
        // SAFETY: `name` is valid for its length; `id` is a live local.
        let status = unsafe { proxy_define_metric(COUNTER, name.as_ptr(), name.len(), &mut id) };
        if status == 0 {
            self.0.store(id, Ordering::Relaxed);
        }
    }

    /// Adds one (`proxy_increment_metric`, as sdk-ext's `Counter::inc`).
    pub fn inc(&self) {
        let id = self.0.load(Ordering::Relaxed);
        if id != UNDEFINED {
            // SAFETY: no pointers.
            unsafe { proxy_increment_metric(id, 1) };
        }
    }
}

/// Answers the request locally with `status` and a fixed JSON body, no extra headers.
pub fn send_local_response(status: u32, details: &[u8], body: &[u8]) {
    // An encoded header map with no pairs: the pair count, 0.
    send_local_response_encoded(status, details, body, &[0u8; 4]);
}

/// Answers the request locally with `status`, `body` and the header map `headers` already
/// in the ABI's serialised form (see [`encode_pairs`]).
pub fn send_local_response_encoded(status: u32, details: &[u8], body: &[u8], headers: &[u8]) {
    // SAFETY: every slice is valid for its length during the call.
    unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    };
}

/// Serialises `pairs` as the ABI's header map into `out`: the pair count and each name's
/// and value's length (u32 little endian), then each name and value followed by a NUL. The
/// bytes written, or `None` when `out` is too small.
pub fn encode_pairs(pairs: &[(&[u8], &[u8])], out: &mut [u8]) -> Option<usize> {
    let mut at = 0;
    let mut put = |bytes: &[u8], at: &mut usize| -> Option<()> {
        out.get_mut(*at..*at + bytes.len())?.copy_from_slice(bytes);
        *at += bytes.len();
        Some(())
    };
    put(&(pairs.len() as u32).to_le_bytes(), &mut at)?;
    for (k, v) in pairs {
        put(&(k.len() as u32).to_le_bytes(), &mut at)?;
        put(&(v.len() as u32).to_le_bytes(), &mut at)?;
    }
    for (k, v) in pairs {
        put(k, &mut at)?;
        put(&[0], &mut at)?;
        put(v, &mut at)?;
        put(&[0], &mut at)?;
    }
    Some(at)
}

/// Called once by the host when the module is instantiated (a Rust module's comes from the
/// WASI reactor start-up code; this one has nothing to initialise).
#[no_mangle]
pub extern "C" fn _initialize() {}

/// The ABI version Envoy checks for.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

const SCRATCH_SIZE: usize = 4096;

/// One static scratch area, reused for every request Envoy makes.
struct Scratch(UnsafeCell<[u8; SCRATCH_SIZE]>);
// SAFETY: a wasm module instance is single-threaded.
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; SCRATCH_SIZE]));

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    if size <= SCRATCH_SIZE {
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
pub extern "C" fn proxy_on_context_create(_context: u32, _parent: u32) {}

/// Envoy calls it for every stream (and root) context that ends; sdk-ext frees state here.
#[no_mangle]
pub extern "C" fn proxy_on_delete(_context: u32) {}

/// Root-only callbacks sdk-ext exports; Envoy never enters them per request.
#[no_mangle]
pub extern "C" fn proxy_on_tick(_root: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _context: u32,
    _token: u32,
    _headers: usize,
    _body_size: usize,
    _trailers: usize,
) {
}

//! The benchmark's floor for the cors filter: **the host calls cors makes** with the bench
//! configuration (one policy for every request: origin `https://app.example.com`, methods,
//! headers, `expose_headers`, `max_age`, credentials), as bare ABI calls with no SDK, no
//! allocator and no per-stream state:
//!
//! - configure: the four counters cors defines (`preflight`, `rejected`, `origin_valid`,
//!   `origin_invalid`);
//! - request headers: `origin` and `:method` read (`proxy_get_header_map_value`; Envoy hands
//!   each value over through `proxy_on_memory_allocate`), `origin_valid` incremented. A
//!   preflight (`OPTIONS` with `access-control-request-method`) also reads that header and
//!   `access-control-request-headers`, and is answered here: `200`, no body, the CORS headers
//!   and `vary: origin`, `preflight` incremented;
//! - response headers of an actual request: `access-control-allow-origin` (the origin),
//!   `-allow-credentials` and `-expose-headers` written, the response's `vary` read and
//!   `vary: origin` written (cors adds it to every response of a CORS request).
//!
//! The origin is kept from the request to the response in one static buffer (no per-stream
//! state; every bench request carries the same origin). Its exports are cors': the lifecycle
//! set of `abi.rs`, `proxy_on_request_headers` and `proxy_on_response_headers`. `cors` minus
//! `raw-cors` is what sdk-ext and the CORS logic cost; the target is cors' added CPU ≤ 1.10 ×
//! this module's.
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

#[path = "../../raw-filter/src/abi.rs"]
mod abi;

use abi::{
    encode_pairs, get, replace, send_local_response_encoded, Counter, REQUEST_HEADERS,
    RESPONSE_HEADERS,
};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static PREFLIGHT: Counter = Counter::new();
static REJECTED: Counter = Counter::new();
static ORIGIN_VALID: Counter = Counter::new();
static ORIGIN_INVALID: Counter = Counter::new();

const ALLOW_METHODS: &[u8] = b"GET, POST, PUT";
const ALLOW_HEADERS: &[u8] = b"content-type, x-request-id";
const EXPOSE_HEADERS: &[u8] = b"x-request-id";
const MAX_AGE: &[u8] = b"600";

/// The origin of the last actual request, for its response.
struct Origin(UnsafeCell<[u8; 256]>);
// SAFETY: a wasm module instance is single-threaded.
unsafe impl Sync for Origin {}
static ORIGIN: Origin = Origin(UnsafeCell::new([0; 256]));
static ORIGIN_LEN: AtomicUsize = AtomicUsize::new(0);
static PENDING: AtomicBool = AtomicBool::new(false);

fn origin() -> &'static [u8] {
    // SAFETY: single-threaded; written only in `proxy_on_request_headers`.
    let buf = unsafe { &*ORIGIN.0.get() };
    buf.get(..ORIGIN_LEN.load(Ordering::Relaxed)).unwrap_or(&[])
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    PREFLIGHT.define(b"raw_cors.preflight");
    REJECTED.define(b"raw_cors.rejected");
    ORIGIN_VALID.define(b"raw_cors.origin_valid");
    ORIGIN_INVALID.define(b"raw_cors.origin_invalid");
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    // Copied out of the scratch area, which the next host call reuses.
    let Some(o) = get(REQUEST_HEADERS, b"origin").filter(|o| !o.is_empty() && o.len() <= 256)
    else {
        return 0;
    };
    // SAFETY: single-threaded; no other reference to the buffer is live.
    let buf = unsafe { &mut *ORIGIN.0.get() };
    if let Some(b) = buf.get_mut(..o.len()) {
        b.copy_from_slice(o);
    }
    ORIGIN_LEN.store(o.len(), Ordering::Relaxed);
    let options = get(REQUEST_HEADERS, b":method") == Some(b"OPTIONS");
    let preflight = options
        && get(REQUEST_HEADERS, b"access-control-request-method").is_some_and(|m| !m.is_empty());
    ORIGIN_VALID.inc();
    if !preflight {
        PENDING.store(true, Ordering::Relaxed);
        return 0;
    }
    let _ = get(REQUEST_HEADERS, b"access-control-request-headers");
    let mut encoded = [0u8; 512];
    let pairs: [(&[u8], &[u8]); 6] = [
        (b"access-control-allow-origin", origin()),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-allow-methods", ALLOW_METHODS),
        (b"access-control-allow-headers", ALLOW_HEADERS),
        (b"access-control-max-age", MAX_AGE),
        (b"vary", b"origin"),
    ];
    let n = encode_pairs(&pairs, &mut encoded).unwrap_or(0);
    PREFLIGHT.inc();
    send_local_response_encoded(
        200,
        b"cors_response",
        b"",
        encoded.get(..n).unwrap_or(&[0; 4]),
    );
    1 // Pause: the stream ends with the local response
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    if !PENDING.swap(false, Ordering::Relaxed) {
        return 0;
    }
    replace(RESPONSE_HEADERS, b"access-control-allow-origin", origin());
    replace(
        RESPONSE_HEADERS,
        b"access-control-allow-credentials",
        b"true",
    );
    replace(
        RESPONSE_HEADERS,
        b"access-control-expose-headers",
        EXPOSE_HEADERS,
    );
    let _ = get(RESPONSE_HEADERS, b"vary");
    replace(RESPONSE_HEADERS, b"vary", b"origin");
    0
}

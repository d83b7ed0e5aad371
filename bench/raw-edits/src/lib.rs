//! The benchmark's floor for header-rules: the same four edits header-rules makes in the
//! benchmark (request: set `x-bench-a`, append `x-bench-b`, remove `x-remove-me`; response:
//! set `x-bench-resp`), as bare ABI calls with no SDK, no allocator, no configuration and no
//! per-stream state. `header-rules` minus `raw-edits` is what the SDK, sdk-ext and
//! header-rules' own logic and counters cost; `raw-edits` minus `raw` is what Envoy charges
//! for the edits themselves (and the response-headers callback).
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

#[path = "../../raw-filter/src/abi.rs"]
mod abi;

use abi::{add, remove, replace, REQUEST_HEADERS, RESPONSE_HEADERS};

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    replace(REQUEST_HEADERS, b"x-bench-a", b"1");
    add(REQUEST_HEADERS, b"x-bench-b", b"2");
    remove(REQUEST_HEADERS, b"x-remove-me");
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    replace(RESPONSE_HEADERS, b"x-bench-resp", b"3");
    0
}

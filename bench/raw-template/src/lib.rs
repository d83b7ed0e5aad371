//! The benchmark's floor for the template filter: **exactly the host calls the template
//! makes** with the bench configuration (`{"deny":{"prefix":"/admin"}}`), as bare ABI calls
//! with no SDK, no allocator and no per-stream state:
//!
//! - configure: the two counters the template defines (`denied`, `allowed`);
//! - request headers: `:path` read with `proxy_get_header_map_value` (Envoy calls back
//!   `proxy_on_memory_allocate` to hand the value over), compared with `/admin`; a pass
//!   increments `allowed` (the bench's load), a match increments `denied` and sends a 403
//!   local response (checked before the run, as for the template).
//!
//! Its exports are an sdk-ext filter's with the template's one stream phase (`abi.rs`).
//! `template` minus `raw-template` is what sdk-ext and the template's own logic cost; the
//! bench's target is the template's added CPU ≤ 1.10 × this module's.
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

#[path = "../../raw-filter/src/abi.rs"]
mod abi;

use abi::{get, send_local_response, Counter, REQUEST_HEADERS};

static DENIED: Counter = Counter::new();
static ALLOWED: Counter = Counter::new();

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    DENIED.define(b"raw_template.denied");
    ALLOWED.define(b"raw_template.allowed");
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    let denied = get(REQUEST_HEADERS, b":path").is_some_and(|p| p.starts_with(b"/admin"));
    if denied {
        DENIED.inc();
        send_local_response(403, b"raw_template_denied", br#"{"status":403}"#);
        return 1; // Pause: the stream ends with the local response
    }
    ALLOWED.inc();
    0
}

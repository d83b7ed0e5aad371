//! The benchmark's floor for the request-block filter: **the host calls request-block makes**
//! with the bench configuration (50 patterns on the path, the query and three headers; no body
//! rule), as bare ABI calls with no SDK, no allocator and no per-stream state:
//!
//! - configure: the counters request-block defines (`blocked`, `refused_path`, `allowed`,
//!   `body_truncated`, one `blocked.rule.<name>` per rule);
//! - request headers: `:path` read (`proxy_get_header_map_value`), the whole header map read
//!   once (`proxy_get_header_map_pairs`: request-block looks at every value of each named
//!   header), `allowed` incremented. A path starting `/admin` (the check's blocked request)
//!   is answered 403. No normalisation and no matching: those are request-block's own logic,
//!   what `request-block` minus `raw-requestblock` measures with sdk-ext.
//!
//! Its exports are request-block's: the lifecycle set of `abi.rs`, `proxy_on_request_headers`
//! and `proxy_on_request_body` (Envoy does not enter it for a request without a body). The
//! target is request-block's added CPU ≤ 1.10 × this module's.
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

#[path = "../../raw-filter/src/abi.rs"]
mod abi;

use abi::{get, pairs, send_local_response, Counter, REQUEST_HEADERS};

/// The bench configuration's rule count (one counter each).
const RULES: usize = 50;

static BLOCKED: Counter = Counter::new();
static REFUSED: Counter = Counter::new();
static ALLOWED: Counter = Counter::new();
static TRUNCATED: Counter = Counter::new();
static RULE_BLOCKED: [Counter; RULES] = [const { Counter::new() }; RULES];

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    BLOCKED.define(b"raw_requestblock.blocked");
    REFUSED.define(b"raw_requestblock.refused_path");
    ALLOWED.define(b"raw_requestblock.allowed");
    TRUNCATED.define(b"raw_requestblock.body_truncated");
    let mut name = *b"raw_requestblock.blocked.rule.r00";
    let at = name.len() - 2;
    for (i, c) in RULE_BLOCKED.iter().enumerate() {
        if let Some(d) = name.get_mut(at..) {
            d.copy_from_slice(&[b'0' + (i / 10) as u8, b'0' + (i % 10) as u8]);
        }
        c.define(&name);
    }
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    if get(REQUEST_HEADERS, b":path").is_some_and(|p| p.starts_with(b"/admin")) {
        if let Some(c) = RULE_BLOCKED.first() {
            c.inc();
        }
        BLOCKED.inc();
        send_local_response(403, b"request_blocked", br#"{"status":403}"#);
        return 1; // Pause: the stream ends with the local response
    }
    let _ = pairs(REQUEST_HEADERS);
    ALLOWED.inc();
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(_context: u32, _size: usize, _eos: u32) -> u32 {
    0
}

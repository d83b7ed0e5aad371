//! The benchmark's floor for header-rules: **exactly the host calls header-rules makes** with
//! the bench configuration (one rule `bench`, no match conditions, static values), in the same
//! order, as bare ABI calls with no SDK, no allocator and no per-stream state:
//!
//! - configure: the five counters header-rules defines (`requests_matched`,
//!   `requests_unmatched`, `edit_failures`, `rule.<name>.matched`, `denied_remove_failed`);
//! - request headers: `requests_matched` and `rule.bench.matched` incremented, then
//!   remove `x-remove-me`, set `x-bench-a: 1`, append `x-bench-b: 2` (header-rules applies a
//!   rule's removes, then sets, then appends; its matcher matches everything without reading
//!   a header);
//! - response headers: set `x-bench-resp: 3`.
//!
//! Its exports are an sdk-ext filter's with header-rules' two stream phases (`abi.rs`).
//! `header-rules` minus `raw-edits` is what sdk-ext and header-rules' own logic cost; the
//! bench's target is header-rules' added CPU ≤ 1.10 × this module's.
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

#[path = "../../raw-filter/src/abi.rs"]
mod abi;

use abi::{add, remove, replace, Counter, REQUEST_HEADERS, RESPONSE_HEADERS};

static MATCHED: Counter = Counter::new();
static UNMATCHED: Counter = Counter::new();
static EDIT_FAILURES: Counter = Counter::new();
static RULE_MATCHED: Counter = Counter::new();
static REMOVE_FAILED: Counter = Counter::new();

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    RULE_MATCHED.define(b"raw_edits.rule.bench.matched");
    MATCHED.define(b"raw_edits.requests_matched");
    UNMATCHED.define(b"raw_edits.requests_unmatched");
    EDIT_FAILURES.define(b"raw_edits.edit_failures");
    REMOVE_FAILED.define(b"raw_edits.denied_remove_failed");
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    MATCHED.inc();
    RULE_MATCHED.inc();
    remove(REQUEST_HEADERS, b"x-remove-me");
    replace(REQUEST_HEADERS, b"x-bench-a", b"1");
    add(REQUEST_HEADERS, b"x-bench-b", b"2");
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    replace(RESPONSE_HEADERS, b"x-bench-resp", b"3");
    0
}

//! The benchmark's floor for the ip-filter filter: **the host calls ip-filter makes** with the
//! bench configuration (10 000 CIDRs, the client allowed; no rules, no `X-Forwarded-For`), as
//! bare ABI calls with no SDK, no allocator and no per-stream state:
//!
//! - configure: the counters ip-filter defines (`allowed`, `denied`, `invalid_address`, the
//!   top level's `rule.default.denied`);
//! - HTTP request headers, and an L4 connection's `proxy_on_new_connection`: the
//!   `source.address` property read (`proxy_get_property`, handed over through
//!   `proxy_on_memory_allocate`) and `allowed` incremented. No lookup: the 10 000 ranges are
//!   ip-filter's own logic, what `ip-filter` minus `raw-ipfilter` measures with sdk-ext.
//!
//! Its exports are ip-filter's: the lifecycle set of `abi.rs`, `proxy_on_request_headers`
//! and `proxy_on_new_connection` (no data phases: allowed connections stream without the VM).
//! The target is ip-filter's added CPU (per request, per connection) ≤ 1.10 × this module's.
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

#[path = "../../raw-filter/src/abi.rs"]
mod abi;

use abi::{property, Counter};

static ALLOWED: Counter = Counter::new();
static DENIED: Counter = Counter::new();
static INVALID_ADDRESS: Counter = Counter::new();
static DEFAULT_DENIED: Counter = Counter::new();

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    ALLOWED.define(b"raw_ipfilter.allowed");
    DENIED.define(b"raw_ipfilter.denied");
    INVALID_ADDRESS.define(b"raw_ipfilter.invalid_address");
    DEFAULT_DENIED.define(b"raw_ipfilter.rule.default.denied");
    1
}

fn judge() {
    if property(b"source\0address").is_some() {
        ALLOWED.inc();
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    judge();
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_new_connection(_context: u32) -> u32 {
    judge();
    0
}

//! The benchmark's floor for the rate-limit filter: **the host calls rate-limit makes** with
//! the bench configurations, as bare ABI calls with no SDK, no allocator and no per-stream
//! state:
//!
//! - configure: the counters rate-limit defines for one bucket (6 filter-wide, 3 for the
//!   bucket) and the bucket's slot created in shared data (read, written if missing);
//! - request headers: the host clock; with a non-empty plugin configuration (the
//!   `-client` rows), the `source.address` property; one shared-data read of the bucket's
//!   slot (`proxy_get_shared_data`, the value handed over through
//!   `proxy_on_memory_allocate`), one 32-byte CAS write (`proxy_set_shared_data`) and two
//!   counter increments (the bucket's `allowed` and the filter's).
//!
//! Keys have the lengths of rate-limit's keys in the bench's configurations, because the host
//! copies every key into a `std::string` and libc++ allocates for one longer than 22 bytes:
//! 17 bytes for the one bucket (`raw-ratelimit/0/0`, as rate-limit's `rl:<hash>0/0`), 19 for
//! a client (`raw-ratelimit/` and the last 5 bytes of the address without its port, as
//! rate-limit's `rl:<hash>0/<slot>` for 127.0.0.1). Until 2026-12-03 the floor's one-bucket
//! key was 22 bytes and its client key 31 (the address with its port: a new key per
//! connection), while rate-limit's were 37 and 39.
//!
//! Its exports are rate-limit's: the lifecycle set of `abi.rs`, `proxy_on_request_headers`,
//! `proxy_on_response_headers` (rate-limit adds `RateLimit` headers there when configured),
//! and the L4 callbacks it serves (`proxy_on_new_connection`,
//! `proxy_on_downstream_connection_close`), which Envoy never enters on an HTTP listener.
//! `rate-limit` minus `raw-ratelimit` is what sdk-ext and the limiter's logic cost; the target
//! is rate-limit's added CPU ≤ 1.10 × this module's.
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

#[path = "../../raw-filter/src/abi.rs"]
mod abi;

use abi::{now_nanos, property, shared_get, shared_set, Counter};
use core::sync::atomic::{AtomicBool, Ordering};

static COUNTERS: [Counter; 9] = [
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
];
const NAMES: [&[u8]; 9] = [
    b"raw_ratelimit.allowed",
    b"raw_ratelimit.limited",
    b"raw_ratelimit.shadow_limited",
    b"raw_ratelimit.errors",
    b"raw_ratelimit.evicted",
    b"raw_ratelimit.contention",
    b"raw_ratelimit.bucket.allowed",
    b"raw_ratelimit.bucket.limited",
    b"raw_ratelimit.bucket.shadow_limited",
];

/// `-client` rows: a key per client address.
static PER_CLIENT: AtomicBool = AtomicBool::new(false);

const SLOT: &[u8] = b"raw-ratelimit/0/0";
/// The client keys' prefix (the first 14 bytes of [`SLOT`]) and how many of the address's
/// last bytes follow it.
const CLIENT_PREFIX: usize = 14;
const CLIENT_BYTES: usize = 5;

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, size: usize) -> u32 {
    for (c, name) in COUNTERS.iter().zip(NAMES) {
        c.define(name);
    }
    PER_CLIENT.store(size > 0, Ordering::Relaxed);
    if shared_get(SLOT).is_none() {
        shared_set(SLOT, &[0u8; 32], 0);
    }
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    let now = now_nanos();
    // The key: the fixed slot, or one per client address (copied out of the scratch area,
    // which the next host call reuses).
    let mut key = [0u8; 32];
    let mut key_len = SLOT.len();
    if let Some(k) = key.get_mut(..key_len) {
        k.copy_from_slice(SLOT);
    }
    if PER_CLIENT.load(Ordering::Relaxed) {
        if let Some(addr) = property(b"source\0address") {
            let host = match addr.iter().rposition(|&b| b == b':') {
                Some(i) => addr.get(..i).unwrap_or(addr),
                None => addr,
            };
            let tail = host
                .get(host.len().saturating_sub(CLIENT_BYTES)..)
                .unwrap_or(host);
            let end = CLIENT_PREFIX + tail.len();
            if let Some(k) = key.get_mut(CLIENT_PREFIX..end) {
                k.copy_from_slice(tail);
                key_len = end;
            }
        }
    }
    let key = key.get(..key_len).unwrap_or(SLOT);
    let (level, cas) = match shared_get(key) {
        Some((v, cas)) => (
            v.get(..16)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map_or(0, u128::from_le_bytes),
            cas,
        ),
        None => (0, 0),
    };
    let mut value = [0u8; 32];
    let next = level.max(u128::from(now)).wrapping_add(1);
    if let Some(v) = value.get_mut(..16) {
        v.copy_from_slice(&next.to_le_bytes());
    }
    shared_set(key, &value, cas);
    if let (Some(bucket), Some(all)) = (COUNTERS.get(6), COUNTERS.first()) {
        bucket.inc();
        all.inc();
    }
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_new_connection(_context: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_downstream_connection_close(_context: u32, _peer: u32) {}

//! The benchmark's floors for the dynamic-module rows: **exactly the Envoy calls a filter makes
//! as a dynamic module** on the bench request, in the same order, as bare dynamic-module ABI
//! calls: no sdk-ext dispatch, no allocation, no per-stream state. The filter configuration
//! (a `StringValue`) selects the floor:
//!
//! - `""` (`raw-dynmod`, header-rules' calls with the bench rule `bench`, no match
//!   conditions, static values): config defines the seven counters header-rules defines
//!   (`rule.bench.matched`, `requests_matched`, `requests_unmatched`, `edit_failures`,
//!   `invalid_value`, `value_too_large`, `denied_remove_failed`); request headers increment
//!   `requests_matched` and `rule.bench.matched`, then remove `x-remove-me`, set
//!   `x-bench-a: 1`, add `x-bench-b: 2`; response headers set `x-bench-resp: 3`.
//! - `"empty"` (`raw-dynmod-empty`): a registered filter whose every hook returns continue
//!   and calls nothing: what Envoy itself costs per stream for a dynamic-module filter (the
//!   filter object, `on_http_filter_new` / `_destroy` and one crossing per hook).
//! - `"ratelimit"` / `"ratelimit-client"` (`raw-dynmod-ratelimit[-client]`, rate-limit's
//!   calls with the bench budgets): config defines rate-limit's nine counters (six
//!   filter-wide, three for the bucket); request headers (the client floor first reads
//!   `source.address`, `get_attribute_string`) read the clock, take one token from an atomic
//!   bucket (one compare-and-swap; per client: the address hashed to a slot of a fixed
//!   table), and increment the bucket's `allowed` and the filter's `allowed`. rate-limit's
//!   shared data is in-process in this build (`sdk_ext::dynamic_module::shim`), so the
//!   bucket is the floor's only state.
//! - `"cors"` (`raw-dynmod-cors`, cors' calls with the bench policy and an allowed
//!   `Origin` on a GET): request headers read `origin` and `:method` (`get_header`) and
//!   increment `origin_valid`; response headers set `access-control-allow-origin` (the
//!   origin), `-allow-credentials: true`, `-expose-headers: x-request-id`, read `vary` and
//!   set `vary: origin`. A preflight (the bench's check sends one; its load does not) is
//!   answered `200` with the policy's headers (`send_response`). The origin goes from the request to the response through a
//!   thread-local buffer (a bench shortcut: one stream at a time per worker).
//!
//! A row minus its floor is what sdk-ext's dynamic-module adapter and the filter's own logic
//! cost; `raw-dynmod-empty` minus no-filter is Envoy's price of any dynamic-module filter.
//! Not a product filter: `xtask bench` builds it.

use sdk_ext::dynamic_module::abi::{
    self, EnvoyBuffer, EnvoyHttpHeader, EnvoyPtr, ModuleBuffer, ModuleHttpHeader,
};
use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::ptr::null;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Which calls the hooks make (the filter configuration).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    HeaderRules,
    Empty,
    RateLimit,
    RateLimitClient,
    Cors,
}

/// The in-module config and filter pointers: one static per mode (the floors keep no
/// state of their own per configuration or stream).
static MODES: [Mode; 5] = [
    Mode::HeaderRules,
    Mode::Empty,
    Mode::RateLimit,
    Mode::RateLimitClient,
    Mode::Cors,
];

/// Counter ids defined at config time, by slot (see each mode's list).
static IDS: [AtomicUsize; 9] = [const { AtomicUsize::new(0) }; 9];

fn buf(b: &[u8]) -> ModuleBuffer {
    ModuleBuffer::of(b)
}

fn id(slot: usize) -> usize {
    IDS.get(slot).map_or(0, |i| i.load(Ordering::Relaxed))
}

/// The mode behind an in-module pointer (`filter_new` hands the config's pointer on).
///
/// # Safety
/// `ptr` is null or one of `MODES`' addresses.
unsafe fn mode(ptr: *const c_void) -> Mode {
    if ptr.is_null() {
        return Mode::Empty;
    }
    // SAFETY: the caller's contract.
    unsafe { *ptr.cast::<Mode>() }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr().cast()
}

/// # Safety
/// Envoy's contract: `envoy` is its config object, `config` a buffer valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: EnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's contract.
    let selected = match unsafe { config.bytes() } {
        b"" => Mode::HeaderRules,
        b"empty" => Mode::Empty,
        b"ratelimit" => Mode::RateLimit,
        b"ratelimit-client" => Mode::RateLimitClient,
        b"cors" => Mode::Cors,
        _ => return null(),
    };
    let names: &[&[u8]] = match selected {
        Mode::HeaderRules => &[
            b"raw_dynmod.requests_matched",
            b"raw_dynmod.rule.bench.matched",
            b"raw_dynmod.requests_unmatched",
            b"raw_dynmod.edit_failures",
            b"raw_dynmod.invalid_value",
            b"raw_dynmod.value_too_large",
            b"raw_dynmod.denied_remove_failed",
        ],
        Mode::Empty => &[],
        Mode::RateLimit | Mode::RateLimitClient => &[
            b"raw_dynmod.bucket.allowed",
            b"raw_dynmod.allowed",
            b"raw_dynmod.limited",
            b"raw_dynmod.shadow_limited",
            b"raw_dynmod.errors",
            b"raw_dynmod.evicted",
            b"raw_dynmod.contention",
            b"raw_dynmod.bucket.limited",
            b"raw_dynmod.bucket.shadow_limited",
        ],
        Mode::Cors => &[
            b"raw_dynmod.cors.origin_valid",
            b"raw_dynmod.cors.preflight",
            b"raw_dynmod.cors.rejected",
            b"raw_dynmod.cors.origin_invalid",
        ],
    };
    for (slot, name) in IDS.iter().zip(names) {
        let mut id = 0usize;
        // SAFETY: live buffers; `envoy` is the config Envoy is creating.
        let _ = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                envoy,
                buf(name),
                null(),
                0,
                &mut id,
            )
        };
        slot.store(id, Ordering::Relaxed);
    }
    let index = MODES.iter().position(|m| *m == selected).unwrap_or(1);
    MODES
        .get(index)
        .map_or(null(), |m| (m as *const Mode).cast())
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_: *const c_void) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _envoy: EnvoyPtr,
) -> *const c_void {
    config
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_: *const c_void) {}

// ----- the token bucket of the rate-limit floors ------------------------------------------

/// The bench budget: 10^9 tokens per second, 10^9 at most (it never limits).
const MAX_TOKENS: u64 = 1_000_000_000;
/// Client slots of the per-client floor.
const SLOTS: usize = 1024;

/// A bucket: its tokens and when it was last refilled, the token taken by one
/// compare-and-swap (the floor's only write per request).
struct Bucket {
    tokens: AtomicU64,
    refilled_ms: AtomicU64,
}

static BUCKET: Bucket = Bucket {
    tokens: AtomicU64::new(MAX_TOKENS),
    refilled_ms: AtomicU64::new(0),
};
static CLIENTS: [Bucket; SLOTS] = [const {
    Bucket {
        tokens: AtomicU64::new(MAX_TOKENS),
        refilled_ms: AtomicU64::new(0),
    }
}; SLOTS];

fn epoch() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Takes one token (refilling a whole second's worth once a second has passed).
fn take(b: &Bucket) -> bool {
    let now = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
    let last = b.refilled_ms.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 1000 {
        b.refilled_ms.store(now, Ordering::Relaxed);
        b.tokens.store(MAX_TOKENS, Ordering::Relaxed);
    }
    let t = b.tokens.load(Ordering::Relaxed);
    t > 0
        && b.tokens
            .compare_exchange(t, t - 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}

/// FNV-1a of the client address, to a slot.
fn slot_of(bytes: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % SLOTS as u64) as usize
}

// ----- cors' origin, request to response ------------------------------------------------------

thread_local! {
    static ORIGIN: Cell<([u8; 128], usize)> = const { Cell::new(([0; 128], 0)) };
}

/// # Safety
/// `envoy` is the stream of the current hook.
unsafe fn request_header(envoy: EnvoyPtr, header: u32, name: &[u8]) -> EnvoyBuffer {
    let mut value = EnvoyBuffer::NULL;
    let mut count = 0usize;
    // SAFETY: the caller's contract; live buffers.
    let _ = unsafe {
        abi::envoy_dynamic_module_callback_http_get_header(
            envoy,
            header,
            buf(name),
            &mut value,
            0,
            &mut count,
        )
    };
    value
}

/// Answers a preflight from the bench's allowed origin: 200, no body, the policy's headers.
///
/// # Safety
/// `envoy` is the stream of the current hook.
unsafe fn preflight(envoy: EnvoyPtr, origin: &[u8]) -> u32 {
    let pairs: [(&[u8], &[u8]); 6] = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-allow-methods", b"GET, POST, PUT"),
        (
            b"access-control-allow-headers",
            b"content-type, x-request-id",
        ),
        (b"access-control-max-age", b"600"),
        (b"vary", b"origin"),
    ];
    let headers = pairs.map(|(k, v)| ModuleHttpHeader {
        key_ptr: k.as_ptr(),
        key_length: k.len(),
        value_ptr: v.as_ptr(),
        value_length: v.len(),
    });
    // SAFETY: the caller's contract; live buffers for the call.
    unsafe {
        abi::envoy_dynamic_module_callback_http_send_response(
            envoy,
            200,
            headers.as_ptr(),
            headers.len(),
            ModuleBuffer::NULL,
            buf(b"cors_response"),
        )
    };
    abi::STATUS_STOP
}

// ----- hooks -------------------------------------------------------------------------------------

/// # Safety
/// Envoy's contract: `envoy` is the stream, `filter` what `filter_new` returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: EnvoyPtr,
    filter: *const c_void,
    _: bool,
) -> u32 {
    let h = abi::HEADER_REQUEST;
    // SAFETY: live buffers; `envoy` is the stream of this hook; `filter` is a mode.
    unsafe {
        match mode(filter) {
            Mode::Empty => {}
            Mode::HeaderRules => {
                for slot in [0, 1] {
                    abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                        envoy,
                        id(slot),
                        null(),
                        0,
                        1,
                    );
                }
                abi::envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    h,
                    buf(b"x-remove-me"),
                    ModuleBuffer::NULL,
                );
                abi::envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    h,
                    buf(b"x-bench-a"),
                    buf(b"1"),
                );
                abi::envoy_dynamic_module_callback_http_add_header(
                    envoy,
                    h,
                    buf(b"x-bench-b"),
                    buf(b"2"),
                );
            }
            m @ (Mode::RateLimit | Mode::RateLimitClient) => {
                let bucket = if m == Mode::RateLimitClient {
                    let mut address = EnvoyBuffer::NULL;
                    abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                        envoy,
                        abi::ATTR_SOURCE_ADDRESS,
                        &mut address,
                    );
                    CLIENTS.get(slot_of(address.bytes())).unwrap_or(&BUCKET)
                } else {
                    &BUCKET
                };
                if take(bucket) {
                    for slot in [0, 1] {
                        abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                            envoy,
                            id(slot),
                            null(),
                            0,
                            1,
                        );
                    }
                }
            }
            Mode::Cors => {
                let origin = request_header(envoy, h, b"origin");
                let method = request_header(envoy, h, b":method");
                let o = origin.bytes();
                if method.bytes() == b"OPTIONS"
                    && !request_header(envoy, h, b"access-control-request-method")
                        .bytes()
                        .is_empty()
                {
                    // A preflight (never on the bench load; the bench's check sends one).
                    abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                        envoy,
                        id(1),
                        null(),
                        0,
                        1,
                    );
                    return preflight(envoy, o);
                }
                let _ = ORIGIN.try_with(|c| {
                    let mut kept = ([0u8; 128], 0);
                    if let Some(dst) = kept.0.get_mut(..o.len()) {
                        dst.copy_from_slice(o);
                        kept.1 = o.len();
                    }
                    c.set(kept);
                });
                abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    envoy,
                    id(0),
                    null(),
                    0,
                    1,
                );
            }
        }
    }
    abi::STATUS_CONTINUE
}

/// # Safety
/// Envoy's contract: `envoy` is the stream, `filter` what `filter_new` returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: EnvoyPtr,
    filter: *const c_void,
    _: bool,
) -> u32 {
    let h = abi::HEADER_RESPONSE;
    // SAFETY: live buffers; `envoy` is the stream of this hook; `filter` is a mode.
    unsafe {
        match mode(filter) {
            Mode::HeaderRules => {
                abi::envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    h,
                    buf(b"x-bench-resp"),
                    buf(b"3"),
                );
            }
            Mode::Cors => {
                let (bytes, len) = ORIGIN.try_with(Cell::get).unwrap_or(([0; 128], 0));
                let origin = bytes.get(..len).unwrap_or_default();
                abi::envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    h,
                    buf(b"access-control-allow-origin"),
                    buf(origin),
                );
                abi::envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    h,
                    buf(b"access-control-allow-credentials"),
                    buf(b"true"),
                );
                abi::envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    h,
                    buf(b"access-control-expose-headers"),
                    buf(b"x-request-id"),
                );
                let _vary = request_header(envoy, h, b"vary");
                abi::envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    h,
                    buf(b"vary"),
                    buf(b"origin"),
                );
            }
            Mode::Empty | Mode::RateLimit | Mode::RateLimitClient => {}
        }
    }
    abi::STATUS_CONTINUE
}

macro_rules! continue_hooks {
    ($($name:ident($($arg:ty),*);)*) => {
        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($(_: $arg),*) -> u32 {
                abi::STATUS_CONTINUE
            }
        )*
    };
}
macro_rules! unit_hooks {
    ($($name:ident($($arg:ty),*);)*) => {
        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($(_: $arg),*) {}
        )*
    };
}

continue_hooks! {
    envoy_dynamic_module_on_http_filter_request_body(EnvoyPtr, *const c_void, bool);
    envoy_dynamic_module_on_http_filter_request_trailers(EnvoyPtr, *const c_void);
    envoy_dynamic_module_on_http_filter_response_body(EnvoyPtr, *const c_void, bool);
    envoy_dynamic_module_on_http_filter_response_trailers(EnvoyPtr, *const c_void);
}
unit_hooks! {
    envoy_dynamic_module_on_http_filter_stream_complete(EnvoyPtr, *const c_void);
    envoy_dynamic_module_on_http_filter_http_callout_done(EnvoyPtr, *const c_void, u64, u32, *const EnvoyHttpHeader, usize, *const EnvoyBuffer, usize);
    envoy_dynamic_module_on_http_filter_http_stream_headers(EnvoyPtr, *const c_void, u64, *const EnvoyHttpHeader, usize, bool);
    envoy_dynamic_module_on_http_filter_http_stream_data(EnvoyPtr, *const c_void, u64, *const EnvoyBuffer, usize, bool);
    envoy_dynamic_module_on_http_filter_http_stream_trailers(EnvoyPtr, *const c_void, u64, *const EnvoyHttpHeader, usize);
    envoy_dynamic_module_on_http_filter_http_stream_complete(EnvoyPtr, *const c_void, u64);
    envoy_dynamic_module_on_http_filter_http_stream_reset(EnvoyPtr, *const c_void, u64, u32);
    envoy_dynamic_module_on_http_filter_scheduled(EnvoyPtr, *const c_void, u64);
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(EnvoyPtr, *const c_void);
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(EnvoyPtr, *const c_void);
}

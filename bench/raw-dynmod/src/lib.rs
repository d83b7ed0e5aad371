//! The benchmark's floor for `header-rules-dynmod`: **exactly the Envoy calls header-rules
//! makes as a dynamic module** with the bench configuration (one rule `bench`, no match
//! conditions, static values), in the same order, as bare dynamic-module ABI calls: no
//! sdk-ext dispatch, no allocation, no per-stream state.
//!
//! - config: the seven counters header-rules defines (`rule.bench.matched`,
//!   `requests_matched`, `requests_unmatched`, `edit_failures`, `invalid_value`,
//!   `value_too_large`, `denied_remove_failed`);
//! - request headers: `requests_matched` and `rule.bench.matched` incremented, then remove
//!   `x-remove-me`, set `x-bench-a: 1`, add `x-bench-b: 2`;
//! - response headers: set `x-bench-resp: 3`.
//!
//! `header-rules-dynmod` minus `raw-dynmod` is what sdk-ext's dynamic-module adapter and
//! header-rules' own logic cost; what both add over no filter includes Envoy's own cost of a
//! dynamic-module filter per stream. Not a product filter: `xtask bench` builds it.

use sdk_ext::dynamic_module::abi::{self, EnvoyBuffer, EnvoyHttpHeader, EnvoyPtr, ModuleBuffer};
use std::ffi::{c_char, c_void};
use std::ptr::null;
use std::sync::atomic::{AtomicUsize, Ordering};

static MATCHED: AtomicUsize = AtomicUsize::new(0);
static RULE_MATCHED: AtomicUsize = AtomicUsize::new(0);

/// A non-null in-module pointer for Envoy (the floor has no state to point to).
static TOKEN: u8 = 0;

fn buf(b: &[u8]) -> ModuleBuffer {
    ModuleBuffer::of(b)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr().cast()
}

/// # Safety
/// Envoy's contract: `envoy` is its config object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: EnvoyPtr,
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    let names: [(&[u8], Option<&AtomicUsize>); 7] = [
        (b"raw_dynmod.rule.bench.matched", Some(&RULE_MATCHED)),
        (b"raw_dynmod.requests_matched", Some(&MATCHED)),
        (b"raw_dynmod.requests_unmatched", None),
        (b"raw_dynmod.edit_failures", None),
        (b"raw_dynmod.invalid_value", None),
        (b"raw_dynmod.value_too_large", None),
        (b"raw_dynmod.denied_remove_failed", None),
    ];
    for (name, slot) in names {
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
        if let Some(slot) = slot {
            slot.store(id, Ordering::Relaxed);
        }
    }
    (&TOKEN as *const u8).cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_: *const c_void) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    _config: *const c_void,
    _envoy: EnvoyPtr,
) -> *const c_void {
    (&TOKEN as *const u8).cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_: *const c_void) {}

/// # Safety
/// Envoy's contract: `envoy` is the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: EnvoyPtr,
    _: *const c_void,
    _: bool,
) -> u32 {
    // SAFETY: live buffers; `envoy` is the stream of this hook.
    unsafe {
        for id in [&MATCHED, &RULE_MATCHED] {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                envoy,
                id.load(Ordering::Relaxed),
                null(),
                0,
                1,
            );
        }
        let h = abi::HEADER_REQUEST;
        abi::envoy_dynamic_module_callback_http_set_header(
            envoy,
            h,
            buf(b"x-remove-me"),
            ModuleBuffer::NULL,
        );
        abi::envoy_dynamic_module_callback_http_set_header(envoy, h, buf(b"x-bench-a"), buf(b"1"));
        abi::envoy_dynamic_module_callback_http_add_header(envoy, h, buf(b"x-bench-b"), buf(b"2"));
    }
    abi::STATUS_CONTINUE
}

/// # Safety
/// Envoy's contract: `envoy` is the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: EnvoyPtr,
    _: *const c_void,
    _: bool,
) -> u32 {
    // SAFETY: live buffers; `envoy` is the stream of this hook.
    unsafe {
        abi::envoy_dynamic_module_callback_http_set_header(
            envoy,
            abi::HEADER_RESPONSE,
            buf(b"x-bench-resp"),
            buf(b"3"),
        );
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

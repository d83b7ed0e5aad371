//! Envoy's dynamic-module C ABI: the part sdk-ext uses, declared in Rust.
//!
//! Declared from Envoy's published ABI header (`source/extensions/dynamic_modules/abi/abi.h`,
//! the `v0.1.x` line). Envoy 1.40.0 (commit `9e55809`) reports ABI `v0.2.0`; Envoy's policy is
//! that `v0.2.x` stays compatible with `v0.1.y`, and every callback below is one the 1.40
//! binary exports (`nm -D`), checked by the real-Envoy integration tests, which load each
//! filter's `.so` and drive it. Type names drop the `envoy_dynamic_module_type_` prefix;
//! callbacks keep their C names (they are resolved against Envoy's own symbols when Envoy
//! `dlopen`s the module).

#![allow(missing_docs)]

use std::ffi::c_void;

/// The ABI version this module reports from `envoy_dynamic_module_on_program_init`: what
/// Envoy 1.40.0 expects (it logs "Dynamic module ABI version v0.2.0 matched."; another
/// value loads with a "deprecated" warning).
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

/// A buffer owned by Envoy, valid for the duration of the current hook.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes (empty for a null buffer).
    ///
    /// # Safety
    /// Envoy's contract: `ptr` points to `length` readable bytes for the current hook.
    pub unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.length == 0 {
            &[]
        } else {
            // SAFETY: the caller's contract.
            unsafe { std::slice::from_raw_parts(self.ptr, self.length) }
        }
    }
}

/// A buffer owned by the module, read by Envoy during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> Self {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// A header the module passes to Envoy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

/// A header Envoy passes to the module.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl EnvoyHttpHeader {
    pub const NULL: EnvoyHttpHeader = EnvoyHttpHeader {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };
}

// `envoy_dynamic_module_type_http_header_type`.
pub const HEADER_REQUEST: u32 = 0;
pub const HEADER_REQUEST_TRAILER: u32 = 1;
pub const HEADER_RESPONSE: u32 = 2;
pub const HEADER_RESPONSE_TRAILER: u32 = 3;

// `envoy_dynamic_module_type_http_body_type`.
pub const BODY_RECEIVED_REQUEST: u32 = 0;
pub const BODY_BUFFERED_REQUEST: u32 = 1;
pub const BODY_RECEIVED_RESPONSE: u32 = 2;
pub const BODY_BUFFERED_RESPONSE: u32 = 3;

// `envoy_dynamic_module_type_network_connection_event`.
pub const EVENT_REMOTE_CLOSE: u32 = 0;
pub const EVENT_LOCAL_CLOSE: u32 = 1;

// `envoy_dynamic_module_type_network_connection_close_type`.
pub const CLOSE_FLUSH_WRITE: u32 = 0;

// `envoy_dynamic_module_type_log_level`.
pub const LOG_TRACE: u32 = 0;
pub const LOG_CRITICAL: u32 = 5;

// `envoy_dynamic_module_type_metrics_result`.
pub const METRICS_SUCCESS: u32 = 0;

// `envoy_dynamic_module_type_http_callout_init_result`.
pub const CALLOUT_INIT_SUCCESS: u32 = 0;
pub const CALLOUT_INIT_MISSING_REQUIRED_HEADERS: u32 = 1;
pub const CALLOUT_INIT_CLUSTER_NOT_FOUND: u32 = 2;

// `envoy_dynamic_module_type_http_callout_result`.
pub const CALLOUT_SUCCESS: u32 = 0;

// The `on_http_filter_*` statuses: 0 continues; 1 is `StopIteration` for headers and
// trailers and `StopIterationAndBuffer` for bodies (proxy-wasm's `Pause` in each phase).
pub const STATUS_CONTINUE: u32 = 0;
pub const STATUS_STOP: u32 = 1;

// `envoy_dynamic_module_type_attribute_id` (the ones sdk-ext maps host properties to).
pub const ATTR_REQUEST_PATH: u32 = 0;
pub const ATTR_REQUEST_URL_PATH: u32 = 1;
pub const ATTR_REQUEST_HOST: u32 = 2;
pub const ATTR_REQUEST_SCHEME: u32 = 3;
pub const ATTR_REQUEST_METHOD: u32 = 4;
pub const ATTR_REQUEST_REFERER: u32 = 6;
pub const ATTR_REQUEST_USER_AGENT: u32 = 7;
pub const ATTR_REQUEST_ID: u32 = 9;
pub const ATTR_REQUEST_PROTOCOL: u32 = 10;
pub const ATTR_REQUEST_QUERY: u32 = 11;
pub const ATTR_RESPONSE_CODE: u32 = 15;
pub const ATTR_RESPONSE_CODE_DETAILS: u32 = 16;
pub const ATTR_SOURCE_ADDRESS: u32 = 24;
pub const ATTR_SOURCE_PORT: u32 = 25;
pub const ATTR_DESTINATION_ADDRESS: u32 = 26;
pub const ATTR_DESTINATION_PORT: u32 = 27;
pub const ATTR_CONNECTION_ID: u32 = 28;
pub const ATTR_CONNECTION_MTLS: u32 = 29;
pub const ATTR_CONNECTION_REQUESTED_SERVER_NAME: u32 = 30;
pub const ATTR_UPSTREAM_ADDRESS: u32 = 41;
pub const ATTR_XDS_CLUSTER_NAME: u32 = 57;
pub const ATTR_XDS_ROUTE_NAME: u32 = 61;
pub const ATTR_XDS_VIRTUAL_HOST_NAME: u32 = 63;

pub type EnvoyPtr = *mut c_void;

unsafe extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    pub fn envoy_dynamic_module_callback_log_enabled(level: u32) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_increment_gauge(
        filter: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_decrement_gauge(
        filter: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_set_gauge(
        filter: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_gauge(
        config: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_decrement_gauge(
        config: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
        config: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: EnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: EnvoyPtr,
        header_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: EnvoyPtr,
        header_type: u32,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_add_header(
        filter: EnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: EnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: EnvoyPtr,
        status_code: u32,
        headers: *const ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: EnvoyPtr,
        body_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: EnvoyPtr,
        body_type: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_body_size(
        filter: EnvoyPtr,
        body_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter: EnvoyPtr,
        body_type: u32,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter: EnvoyPtr,
        body_type: u32,
        number_of_bytes: usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: EnvoyPtr,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        filter: EnvoyPtr,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: EnvoyPtr,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: EnvoyPtr,
        attribute_id: u32,
        result: *mut u64,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_bool(
        filter: EnvoyPtr,
        attribute_id: u32,
        result: *mut bool,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: EnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *const ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: EnvoyPtr);

    // Config-level (root-context) work, on Envoy's main thread: a callout made by the filter
    // configuration (answered by `envoy_dynamic_module_on_http_filter_config_http_callout_done`),
    // and a scheduler, callable from any thread, whose `commit` posts `event_id` to the main
    // thread (`envoy_dynamic_module_on_http_filter_config_scheduled`). Envoy's scheduler holds
    // the config weakly: an event committed after the config is gone is dropped.
    pub fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: EnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *const ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: EnvoyPtr,
    ) -> *mut c_void;
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: *mut c_void,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: *mut c_void,
    );
    pub fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: EnvoyPtr);

    pub fn envoy_dynamic_module_callback_network_filter_config_define_counter(
        config: EnvoyPtr,
        name: ModuleBuffer,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_config_define_gauge(
        config: EnvoyPtr,
        name: ModuleBuffer,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_config_define_histogram(
        config: EnvoyPtr,
        name: ModuleBuffer,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_increment_counter(
        filter: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_increment_gauge(
        filter: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_decrement_gauge(
        filter: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_set_gauge(
        filter: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_record_histogram_value(
        filter: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_config_increment_counter(
        config: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_config_increment_gauge(
        config: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_config_decrement_gauge(
        config: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_config_set_gauge(
        config: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_network_filter_config_record_histogram_value(
        config: EnvoyPtr,
        id: usize,
        value: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(
        filter: EnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(
        filter: EnvoyPtr,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_get_read_buffer_size(
        filter: EnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(
        filter: EnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(
        filter: EnvoyPtr,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_get_write_buffer_size(
        filter: EnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_network_filter_drain_read_buffer(
        filter: EnvoyPtr,
        length: usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_drain_write_buffer(
        filter: EnvoyPtr,
        length: usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_append_read_buffer(
        filter: EnvoyPtr,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_append_write_buffer(
        filter: EnvoyPtr,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_continue_reading(filter: EnvoyPtr);
    pub fn envoy_dynamic_module_callback_network_filter_close(filter: EnvoyPtr, close_type: u32);
    pub fn envoy_dynamic_module_callback_network_filter_get_remote_address(
        filter: EnvoyPtr,
        address_out: *mut EnvoyBuffer,
        port_out: *mut u32,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_http_callout(
        filter: EnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *const ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
}

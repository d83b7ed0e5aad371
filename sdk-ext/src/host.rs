//! The proxy-wasm host ABI (0.2.1), in one module, wrapped so that nothing panics.
//!
//! Every import sdk-ext makes is declared here and nowhere else. Each returns the host's
//! status as a raw `u32`, converted with [`Status::from_raw`] (an unexpected value from the
//! host is a [`Status::Unknown`], never undefined behaviour), and every wrapper answers
//! `Result<_, Status>` for every status the host may answer. Values stay bytes.
//!
//! The upstream `proxy-wasm` crate's `hostcalls` module `panic!`s on any status it did not
//! expect and `unwrap`s UTF-8 when decoding header maps; a panic kills the VM for that
//! worker. These functions are usable from any filter, including one written on the bare
//! `proxy-wasm` traits: they act on the host's current context, whichever SDK dispatched it.
//!
//! On wasm the imports bind to the host; natively (under `cargo test`) to the emulator in
//! `sdk_ext::testing`.

use std::ops::Range;
use std::ptr::{null, null_mut};
use std::time::Duration;

macro_rules! abi_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }
        impl $name {
            /// The ABI value.
            pub const fn raw(self) -> u32 {
                self as u32
            }
        }
    };
}

abi_enum! {
    /// Log levels.
    LogLevel {
        /// Trace.
        Trace = 0,
        /// Debug.
        Debug = 1,
        /// Info.
        Info = 2,
        /// Warn.
        Warn = 3,
        /// Error.
        Error = 4,
        /// Critical.
        Critical = 5,
    }
}

impl LogLevel {
    /// The level of an ABI value (unknown values are `Critical`: never silenced).
    pub const fn from_raw(v: u32) -> Self {
        match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => LogLevel::Critical,
        }
    }
}

abi_enum! {
    /// What a phase answers: go on with the stream, or hold it (the filter resumes it, or
    /// it already answered the client).
    Action {
        /// Continue processing.
        Continue = 0,
        /// Stop iteration (hold the stream).
        Pause = 1,
    }
}

abi_enum! {
    /// Host call results.
    Status {
        /// Success.
        Ok = 0,
        /// No such item.
        NotFound = 1,
        /// An argument the host refused.
        BadArgument = 2,
        /// Serialization failed.
        SerializationFailure = 3,
        /// Parsing failed.
        ParseFailure = 4,
        /// A pointer the host could not read or write, or a value the guest could not
        /// allocate.
        InvalidMemoryAccess = 6,
        /// Nothing there.
        Empty = 7,
        /// Compare-and-swap mismatch (shared data).
        CasMismatch = 8,
        /// The host failed.
        InternalFailure = 10,
        /// The host does not implement the call.
        Unimplemented = 12,
        /// A value the ABI does not define.
        Unknown = 0xffff_ffff,
    }
}

impl Status {
    /// The status of an ABI value.
    pub const fn from_raw(v: u32) -> Self {
        match v {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::BadArgument,
            3 => Status::SerializationFailure,
            4 => Status::ParseFailure,
            6 => Status::InvalidMemoryAccess,
            7 => Status::Empty,
            8 => Status::CasMismatch,
            10 => Status::InternalFailure,
            12 => Status::Unimplemented,
            _ => Status::Unknown,
        }
    }
}

abi_enum! {
    /// Header maps.
    MapType {
        /// Request headers (incl. pseudo-headers).
        HttpRequestHeaders = 0,
        /// Request trailers.
        HttpRequestTrailers = 1,
        /// Response headers (incl. `:status`).
        HttpResponseHeaders = 2,
        /// Response trailers.
        HttpResponseTrailers = 3,
        /// gRPC initial metadata.
        GrpcReceiveInitialMetadata = 4,
        /// gRPC trailing metadata.
        GrpcReceiveTrailingMetadata = 5,
        /// Headers of an HTTP callout's answer.
        HttpCallResponseHeaders = 6,
        /// Trailers of an HTTP callout's answer.
        HttpCallResponseTrailers = 7,
    }
}

abi_enum! {
    /// Buffers.
    BufferType {
        /// Request body.
        HttpRequestBody = 0,
        /// Response body.
        HttpResponseBody = 1,
        /// Data from the downstream peer (L4).
        DownstreamData = 2,
        /// Data from the upstream peer (L4).
        UpstreamData = 3,
        /// Body of an HTTP callout's answer.
        HttpCallResponseBody = 4,
        /// A gRPC message received.
        GrpcReceiveBuffer = 5,
        /// `vm_config.configuration`.
        VmConfiguration = 6,
        /// The plugin's `configuration`.
        PluginConfiguration = 7,
        /// Foreign-function call data.
        CallData = 8,
    }
}

abi_enum! {
    /// Metric kinds.
    MetricType {
        /// A counter.
        Counter = 0,
        /// A gauge.
        Gauge = 1,
        /// A histogram.
        Histogram = 2,
    }
}

abi_enum! {
    /// Who closed a connection.
    PeerType {
        /// Unknown.
        Unknown = 0,
        /// This side.
        Local = 1,
        /// The peer.
        Remote = 2,
    }
}

impl PeerType {
    /// The peer of an ABI value.
    pub const fn from_raw(v: u32) -> Self {
        match v {
            1 => PeerType::Local,
            2 => PeerType::Remote,
            _ => PeerType::Unknown,
        }
    }
}

abi_enum! {
    /// Streams a filter may resume or close.
    StreamType {
        /// The HTTP request.
        HttpRequest = 0,
        /// The HTTP response.
        HttpResponse = 1,
        /// The downstream connection (L4).
        Downstream = 2,
        /// The upstream connection (L4).
        Upstream = 3,
    }
}

// With the feature `dynamic-module` (and not under the emulator, `testing`, which is then the
// host), the same calls are implemented over Envoy's dynamic-module callbacks instead.
#[cfg(all(feature = "dynamic-module", not(feature = "testing")))]
use crate::dynamic_module::shim::*;

#[cfg(any(not(feature = "dynamic-module"), feature = "testing"))]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

/// A header name and value, as bytes.
pub type HeaderPair = (Vec<u8>, Vec<u8>);

#[inline(always)] // after every host call
fn ok(raw: u32) -> Result<(), Status> {
    if raw == 0 {
        Ok(())
    } else {
        Err(Status::from_raw(raw))
    }
}

/// Takes ownership of a host-allocated return value (allocated through this module's
/// `proxy_on_memory_allocate`, i.e. a boxed slice of exactly `size` bytes).
///
/// # Safety
/// `data` must be null or point to `size` bytes allocated by `proxy_on_memory_allocate`.
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: per the ABI contract the host allocated exactly `size` bytes for us.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// What `proxy_on_memory_allocate` answers: `size` bytes the guest takes back with
/// `Vec::from_raw_parts(p, size, size)`. Null when `size` is 0 or memory is exhausted
/// (the host then fails the call instead of the VM trapping).
pub fn allocate(size: usize) -> *mut u8 {
    if size == 0 {
        return std::ptr::NonNull::<u8>::dangling().as_ptr();
    }
    // The layout `Vec<u8>` uses for `size` bytes (`take` rebuilds it with that capacity).
    // Straight to the allocator: this runs for every value the host hands over.
    match std::alloc::Layout::array::<u8>(size) {
        // SAFETY: a non-zero size. The host writes every byte before the guest reads any
        // (the ABI contract); null (out of memory) makes the host fail the call.
        Ok(layout) => unsafe { std::alloc::alloc(layout) },
        Err(_) => null_mut(),
    }
}

fn nullable(bytes: &[u8]) -> *const u8 {
    if bytes.is_empty() {
        null()
    } else {
        bytes.as_ptr()
    }
}

/// Writes a message to the host's log.
pub fn log(level: LogLevel, message: &str) -> Result<(), Status> {
    // SAFETY: pointer and length describe a live &str.
    ok(unsafe { proxy_log(level.raw(), message.as_ptr(), message.len()) })
}

/// The host's current log level.
pub fn log_level() -> Result<LogLevel, Status> {
    let mut level = LogLevel::Info.raw();
    // SAFETY: the host writes one u32 through the pointer.
    ok(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(LogLevel::from_raw(level))
}

/// The host's wall clock, in nanoseconds since the Unix epoch.
pub fn now_nanos() -> Result<u64, Status> {
    let mut t = 0u64;
    // SAFETY: the host writes one u64 through the pointer.
    ok(unsafe { proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

/// Milliseconds as the ABI's `u32`, or `BadArgument` when `d` does not fit (about 49 days):
/// durations are never truncated on their way to the host.
pub fn millis_u32(d: Duration) -> Result<u32, Status> {
    u32::try_from(d.as_millis()).map_err(|_| Status::BadArgument)
}

/// Sets the root context's tick period (`Duration::ZERO` stops the ticks); periods under
/// a millisecond round up to one.
pub fn set_tick_period(period: Duration) -> Result<(), Status> {
    let millis = if period.is_zero() {
        0
    } else {
        millis_u32(period)?.max(1)
    };
    // SAFETY: a plain value.
    ok(unsafe { proxy_set_tick_period_milliseconds(millis) })
}

/// Reads up to `max_size` bytes of a buffer from `start`. `Ok(None)`: no such buffer.
pub fn get_buffer(
    buffer_type: BufferType,
    start: usize,
    max_size: usize,
) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    let raw =
        unsafe { proxy_get_buffer_bytes(buffer_type.raw(), start, max_size, &mut data, &mut size) };
    match Status::from_raw(raw) {
        // SAFETY: see `take`.
        Status::Ok => Ok(Some(unsafe { take(data, size) })),
        Status::NotFound | Status::Empty => Ok(None),
        other => Err(other),
    }
}

/// Replaces `size` bytes of a buffer from `start` with `value` (host semantics: `0, 0`
/// prepends, `0, len` replaces everything, `len, _` appends).
pub fn set_buffer(
    buffer_type: BufferType,
    start: usize,
    size: usize,
    value: &[u8],
) -> Result<(), Status> {
    // SAFETY: pointer and length describe a live slice.
    ok(unsafe {
        proxy_set_buffer_bytes(buffer_type.raw(), start, size, value.as_ptr(), value.len())
    })
}

/// The first value of header `name`, as bytes. `Ok(None)`: the header is absent.
#[inline]
pub fn get_header(map: MapType, name: &str) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    let raw = unsafe {
        proxy_get_header_map_value(map.raw(), name.as_ptr(), name.len(), &mut data, &mut size)
    };
    match Status::from_raw(raw) {
        // SAFETY: see `take`.
        Status::Ok => Ok(Some(unsafe { take(data, size) })),
        Status::NotFound => Ok(None),
        other => Err(other),
    }
}

/// Every header of a map, names and values as bytes, in order.
pub fn get_header_pairs(map: MapType) -> Result<Vec<HeaderPair>, Status> {
    let bytes = get_header_pairs_encoded(map)?;
    decode_pairs(&bytes).ok_or(Status::SerializationFailure)
}

/// Every header of a map in the map format ([`encode_pairs`]), as the host hands it over,
/// checked well-formed: read it with [`walk_pairs`], without a copy of each name and value.
pub fn get_header_pairs_encoded(map: MapType) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    ok(unsafe { proxy_get_header_map_pairs(map.raw(), &mut data, &mut size) })?;
    // SAFETY: see `take`.
    let bytes = unsafe { take(data, size) };
    if walk_pairs(&bytes, |_, _| {}) {
        Ok(bytes)
    } else {
        Err(Status::SerializationFailure)
    }
}

/// Every header of a map, indexed for lookups by name ([`PairIndex`]): one pass over the
/// host's encoding, which also checks it.
#[inline]
pub fn get_header_pair_index(map: MapType) -> Result<PairIndex, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    ok(unsafe { proxy_get_header_map_pairs(map.raw(), &mut data, &mut size) })?;
    // SAFETY: see `take`.
    let bytes = unsafe { take(data, size) };
    PairIndex::new(bytes).ok_or(Status::SerializationFailure)
}

/// Replaces every value of header `name` with `value` (adds it when absent).
#[inline(always)] // a host call on every request
pub fn set_header(map: MapType, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: pointers and lengths describe live slices.
    ok(unsafe {
        proxy_replace_header_map_value(
            map.raw(),
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Adds one more value for header `name`.
#[inline(always)] // a host call on every request
pub fn add_header(map: MapType, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: pointers and lengths describe live slices.
    ok(unsafe {
        proxy_add_header_map_value(
            map.raw(),
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Removes every value of header `name` (absent is fine).
#[inline(always)] // a host call on every request
pub fn remove_header(map: MapType, name: &str) -> Result<(), Status> {
    // SAFETY: pointer and length describe a live &str.
    let raw = unsafe { proxy_remove_header_map_value(map.raw(), name.as_ptr(), name.len()) };
    match Status::from_raw(raw) {
        Status::Ok | Status::NotFound => Ok(()),
        other => Err(other),
    }
}

fn property_path(path: &[&str]) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            encoded.push(0);
        }
        encoded.extend_from_slice(part.as_bytes());
    }
    encoded
}

/// [`property_path`] into `out`; `None` when it does not fit.
fn property_path_into(path: &[&str], out: &mut [u8]) -> Option<usize> {
    let mut at = 0;
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            *out.get_mut(at)? = 0;
            at += 1;
        }
        let end = at.checked_add(part.len())?;
        out.get_mut(at..end)?.copy_from_slice(part.as_bytes());
        at = end;
    }
    Some(at)
}

/// A host property (e.g. `["source", "address"]`). `Ok(None)`: not available.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    // A usual path (`source.address`, `xds.route_name`) is encoded on the stack: no
    // allocation per request for the name.
    let mut stack = [0u8; 64];
    let heap;
    let encoded: &[u8] = match property_path_into(path, &mut stack) {
        Some(n) => stack.get(..n).unwrap_or(&[]),
        None => {
            heap = property_path(path);
            &heap
        }
    };
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    let raw = unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    match Status::from_raw(raw) {
        // SAFETY: see `take`.
        Status::Ok => Ok(Some(unsafe { take(data, size) })),
        Status::NotFound | Status::Empty => Ok(None),
        other => Err(other),
    }
}

/// Sets a host property (Envoy: filter state readable as `wasm.<name>`).
pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), Status> {
    let encoded = property_path(path);
    // SAFETY: pointers and lengths describe live slices.
    ok(unsafe {
        proxy_set_property(
            encoded.as_ptr(),
            encoded.len(),
            nullable(value),
            value.len(),
        )
    })
}

/// Sends a local response and stops the stream. `details` shows up in Envoy's
/// `%RESPONSE_CODE_DETAILS%`; `grpc_status` < 0 means "not gRPC".
pub fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[(&str, &[u8])],
    grpc_status: i32,
) -> Result<(), Status> {
    let encoded = encode_pairs(headers)?;
    // SAFETY: pointers and lengths describe live slices.
    ok(unsafe {
        proxy_send_local_response(
            status,
            nullable(details.as_bytes()),
            details.len(),
            nullable(body),
            body.len(),
            encoded.as_ptr(),
            encoded.len(),
            grpc_status,
        )
    })
}

/// Resumes a stream the filter paused.
pub fn continue_stream(stream: StreamType) -> Result<(), Status> {
    // SAFETY: a plain value.
    ok(unsafe { proxy_continue_stream(stream.raw()) })
}

/// Closes a stream (L4: the connection; HTTP: resets it).
pub fn close_stream(stream: StreamType) -> Result<(), Status> {
    // SAFETY: a plain value.
    ok(unsafe { proxy_close_stream(stream.raw()) })
}

/// Shared data under `key` (shared by every VM of this Envoy with the same `vm_id`) and its
/// CAS. `Ok(None)`: no such key.
pub fn get_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: the host writes an owned allocation, its size and the CAS through the pointers.
    let raw =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match Status::from_raw(raw) {
        // SAFETY: see `take`.
        Status::Ok => Ok(Some((unsafe { take(data, size) }, cas))),
        Status::NotFound => Ok(None),
        other => Err(other),
    }
}

/// Writes shared data if its CAS still is `cas` (0: unconditionally).
/// `Err(CasMismatch)`: another worker wrote it first.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    // SAFETY: pointers and lengths describe live slices.
    ok(
        unsafe {
            proxy_set_shared_data(key.as_ptr(), key.len(), nullable(value), value.len(), cas)
        },
    )
}

/// Dispatches an HTTP call to `cluster`; the answer arrives in the calling context's
/// callout callback. `Err(BadArgument)`: the host refused it (e.g. an unknown cluster, or
/// no `:authority`). The timeout must fit the ABI's `u32` milliseconds (else `BadArgument`).
pub fn http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    trailers: &[(&str, &[u8])],
    timeout: Duration,
) -> Result<u32, Status> {
    let headers = encode_pairs(headers)?;
    let trailers = encode_pairs(trailers)?;
    let timeout = millis_u32(timeout)?;
    let mut token = 0u32;
    // SAFETY: pointers and lengths describe live slices; the host writes one u32.
    ok(unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            nullable(body),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout,
            &mut token,
        )
    })?;
    // The host answers every callout at the root context (Envoy: the call belongs to the
    // root); the dispatch routes a stream's answers back to it.
    crate::exports::callout_dispatched(token);
    Ok(token)
}

/// Makes `context_id` the context later host calls act on (`proxy_set_effective_context`):
/// the dispatch uses it to hand a stream its callout's answer, which the host delivers to
/// the root context.
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    ok(unsafe { proxy_set_effective_context(context_id) })
}

/// Defines (or finds) a metric by name.
pub fn define_metric(metric_type: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: pointer and length describe a live &str; the host writes one u32.
    ok(unsafe { proxy_define_metric(metric_type.raw(), name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// A metric's current value.
pub fn get_metric(id: u32) -> Result<u64, Status> {
    let mut v = 0u64;
    // SAFETY: the host writes one u64.
    ok(unsafe { proxy_get_metric(id, &mut v) })?;
    Ok(v)
}

/// Sets a gauge or records a histogram value.
pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    // SAFETY: plain values.
    ok(unsafe { proxy_record_metric(id, value) })
}

/// Adds `offset` to a counter or gauge.
#[inline(always)] // a host call on every request
pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: plain values.
    ok(unsafe { proxy_increment_metric(id, offset) })
}

/// Calls the host's foreign function `name` with `arguments`; answers its result bytes
/// (empty when it returned none). `Err(NotFound)`: the host has no such function.
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: pointers and lengths describe live slices; the host writes one pointer and
    // one length, the pointer allocated through proxy_on_memory_allocate (or null).
    let raw = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            nullable(arguments),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    ok(raw)?;
    // SAFETY: see `take`.
    Ok(unsafe { take(data, size) })
}

/// Encodes header pairs in the proxy-wasm map format: a u32 count, then a (u32 name length,
/// u32 value length) per pair, then each name and value followed by a NUL byte. The one
/// encoder in sdk-ext; a count or length over `u32::MAX` is `BadArgument`, never truncated.
pub fn encode_pairs(pairs: &[(&str, &[u8])]) -> Result<Vec<u8>, Status> {
    let len32 = |n: usize| u32::try_from(n).map_err(|_| Status::BadArgument);
    let mut size: usize = 4;
    for (n, v) in pairs {
        size = size
            .checked_add(n.len())
            .and_then(|s| s.checked_add(v.len()))
            .and_then(|s| s.checked_add(10))
            .ok_or(Status::BadArgument)?;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len32(pairs.len())?.to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&len32(name.len())?.to_le_bytes());
        out.extend_from_slice(&len32(value.len())?.to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    Ok(out)
}

/// Decodes the proxy-wasm map format. `None` when the bytes are malformed (never panics).
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<HeaderPair>> {
    let mut out = Vec::new();
    walk_pairs(bytes, |name, value| {
        out.push((name.to_vec(), value.to_vec()))
    })
    .then_some(out)
}

/// Calls `f` with each (name, value) of the map format, in order, borrowing from `bytes`;
/// `false` when the bytes are malformed (`f` may have seen the pairs before the fault).
/// Empty bytes are an empty map.
pub fn walk_pairs<'a>(bytes: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8])) -> bool {
    walk_spans(bytes, |name, value| {
        if let (Some(n), Some(v)) = (bytes.get(name), bytes.get(value)) {
            f(n, v);
        }
    })
}

/// Calls `f` with where each (name, value) of the map format is in `bytes`, in order: ranges
/// that are in bounds (checked here); `false` when the bytes are malformed (`f` may have
/// seen the pairs before the fault). Empty bytes are an empty map.
pub fn walk_spans(bytes: &[u8], mut f: impl FnMut(Range<usize>, Range<usize>)) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let walk = |f: &mut dyn FnMut(Range<usize>, Range<usize>)| -> Option<()> {
        let count = read_u32(0)?;
        let mut data_at = count.checked_mul(8)?.checked_add(4)?;
        if data_at > bytes.len() {
            return None;
        }
        for i in 0..count {
            let name_len = read_u32(4 + i * 8)?;
            let value_len = read_u32(8 + i * 8)?;
            let name = data_at..data_at.checked_add(name_len)?;
            data_at = name.end.checked_add(1)?;
            let value = data_at..data_at.checked_add(value_len)?;
            data_at = value.end.checked_add(1)?;
            if name.end > bytes.len() || value.end > bytes.len() {
                return None;
            }
            f(name, value);
        }
        Some(())
    };
    walk(&mut f).is_some()
}

/// Calls `f` with each (name, value) of the map format in `bytes`, in order, while it answers
/// `true`; `true` when every pair was read and `f` never stopped, `false` at the first pair
/// that is not in bounds (so a malformed map is refused as [`walk_spans`] refuses it). Tight
/// and inlined: it runs on every request of a filter that reads the header map.
#[inline]
fn walk_map<'a>(bytes: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8]) -> bool) -> bool {
    let Some((count, rest)) = bytes.split_first_chunk::<4>() else {
        return false;
    };
    let count = u32::from_le_bytes(*count) as usize;
    let Some((sizes, mut data)) = count.checked_mul(8).and_then(|n| rest.split_at_checked(n))
    else {
        return false;
    };
    for size in sizes.chunks_exact(8) {
        let (Some(n), Some(v)) = (size.first_chunk::<4>(), size.last_chunk::<4>()) else {
            return false;
        };
        let (n, v) = (
            u32::from_le_bytes(*n) as usize,
            u32::from_le_bytes(*v) as usize,
        );
        // name NUL value NUL (the last NUL may be missing).
        let (Some(name), Some(value)) = (
            data.get(..n),
            n.checked_add(1)
                .and_then(|at| data.get(at..at.checked_add(v)?)),
        ) else {
            return false;
        };
        if !f(name, value) {
            return false;
        }
        data = data
            .get(n.saturating_add(v).saturating_add(2)..)
            .unwrap_or_default();
    }
    true
}

/// A header map as the host encodes it, checked well-formed once: every lookup then walks
/// the encoding in place, with no copy of a name or value and no index to build (a request's
/// handful of headers is walked faster than a list of ranges is allocated and filled).
#[derive(Debug, Default)]
pub struct PairIndex {
    /// Well-formed (checked by [`PairIndex::new`]), or empty.
    bytes: Vec<u8>,
}

impl PairIndex {
    /// Checks `bytes` (the map format); `None` when they are malformed: exactly the
    /// encodings [`walk_spans`] refuses (the test below checks every truncation), found from
    /// the sizes alone. Each pair ends past the one before it, so every name and value is in
    /// bounds when the last value is.
    #[inline]
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        if bytes.is_empty() {
            return Some(Self { bytes });
        }
        let (count, rest) = bytes.split_first_chunk::<4>()?;
        let count = u32::from_le_bytes(*count) as usize;
        let sizes = rest.get(..count.checked_mul(8)?)?;
        // Where the next pair would start (after the last one's value and its NUL); u64: at
        // most 2^29 pairs of two u32 sizes, no overflow.
        let mut next = 4 + sizes.len() as u64;
        for size in sizes.chunks_exact(4) {
            let n = size
                .first_chunk::<4>()
                .map_or(0, |b| u32::from_le_bytes(*b));
            next += u64::from(n) + 1;
        }
        // `next - 1`: the last value's end (every NUL but the last one is required).
        (count == 0 || next - 1 <= bytes.len() as u64).then_some(Self { bytes })
    }

    /// Calls `f` with each (name, value), in order, while it answers `true`.
    #[inline]
    pub fn each<'a>(&'a self, f: impl FnMut(&'a [u8], &'a [u8]) -> bool) {
        let _ = walk_map(&self.bytes, f);
    }

    /// The values of header `name` (as the host spells names: lower case), in order.
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        let name = name.as_bytes();
        let mut out = Vec::new();
        self.each(|n, v| {
            if n == name {
                out.push(v);
            }
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_index_finds_every_value_of_a_name_and_refuses_what_walk_refuses() {
        let pairs: Vec<(&str, &[u8])> = vec![
            ("a", b"1"),
            ("x-bin", &[0xff, 0xfe]),
            ("a", b""),
            ("ab", b"2"),
            ("a", b"3"),
        ];
        let bytes = encode_pairs(&pairs).unwrap();
        let index = PairIndex::new(bytes.clone()).unwrap();
        assert_eq!(index.values("a"), vec![&b"1"[..], b"", b"3"]);
        assert_eq!(index.values("x-bin"), vec![&[0xff, 0xfe][..]]);
        assert_eq!(index.values("ab"), vec![&b"2"[..]]);
        assert!(index.values("b").is_empty());
        assert!(PairIndex::new(Vec::new()).unwrap().values("a").is_empty());
        // Every truncation: indexed exactly when the walk accepts it.
        for end in 0..bytes.len() {
            let cut = bytes.get(..end).unwrap().to_vec();
            assert_eq!(
                PairIndex::new(cut.clone()).is_some(),
                walk_pairs(&cut, |_, _| {}),
                "{end}"
            );
        }
    }

    /// Random and corrupted encodings: the index takes exactly what the walk takes, and
    /// lists the same pairs.
    #[test]
    fn pair_index_agrees_with_the_walk_on_corrupted_maps() {
        let good = encode_pairs(&[("a", b"1"), ("bb", b""), ("", b"xyz"), ("c", b"4")]).unwrap();
        let mut next = crate::test_rng::xorshift(0x9e37_79b9);
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..next() % 3 + 1 {
                let at = next() % bytes.len();
                bytes[at] = match next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => bytes[at].wrapping_add(1),
                    _ => bytes[at].wrapping_sub(1),
                };
            }
            bytes.truncate(next() % (bytes.len() + 1));
            let mut walked = Vec::new();
            let ok = walk_pairs(&bytes, |n, v| walked.push((n.to_vec(), v.to_vec())));
            let index = PairIndex::new(bytes.clone());
            assert_eq!(index.is_some(), ok, "{bytes:?}");
            if let Some(index) = index {
                let mut listed = Vec::new();
                index.each(|n, v| {
                    listed.push((n.to_vec(), v.to_vec()));
                    true
                });
                assert_eq!(listed, walked, "{bytes:?}");
            }
        }
    }

    #[test]
    fn pairs_round_trip_with_non_utf8_values() {
        let pairs: Vec<(&str, &[u8])> = vec![("a", b"1"), ("x-bin", &[0xff, 0xfe]), ("e", b"")];
        let decoded = decode_pairs(&encode_pairs(&pairs).unwrap()).unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[1], (b"x-bin".to_vec(), vec![0xff, 0xfe]));
        assert_eq!(decoded[2], (b"e".to_vec(), vec![]));
    }

    #[test]
    fn malformed_pairs_are_refused_not_panicked_on() {
        let good = encode_pairs(&[("name", b"value")]).unwrap();
        for cut in 1..good.len() - 1 {
            // Truncations either fail cleanly or decode a prefix; they never panic.
            let _ = decode_pairs(&good[..cut]);
        }
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode_pairs(&[1, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn property_paths_on_the_stack_or_the_heap() {
        let mut buf = [0u8; 64];
        for path in [
            &["source", "address"][..],
            &["a"],
            &[],
            &["", ""],
            &["xds", "route_name"],
        ] {
            let n = property_path_into(path, &mut buf).unwrap();
            assert_eq!(&buf[..n], &property_path(path)[..], "{path:?}");
        }
        let long = "x".repeat(64);
        assert_eq!(property_path_into(&[&long], &mut buf), Some(64));
        assert_eq!(property_path_into(&[&long, "y"], &mut buf), None);
    }

    #[test]
    fn durations_are_never_truncated() {
        assert_eq!(millis_u32(Duration::from_millis(1500)), Ok(1500));
        assert_eq!(
            millis_u32(Duration::from_millis(u64::from(u32::MAX))),
            Ok(u32::MAX)
        );
        // 4294968 s = 2^32 ms + 704 ms: the old `as u32` made it 704 ms.
        assert_eq!(
            millis_u32(Duration::from_secs(4_294_968)),
            Err(Status::BadArgument)
        );
    }

    #[test]
    fn unknown_statuses_are_values_not_ub() {
        assert_eq!(Status::from_raw(0), Status::Ok);
        assert_eq!(Status::from_raw(8), Status::CasMismatch);
        assert_eq!(Status::from_raw(999), Status::Unknown);
        assert_eq!(LogLevel::from_raw(77), LogLevel::Critical);
    }
}

//! The host side of the proxy-wasm 0.2.1 ABI: every `proxy_*` function the `proxy-wasm`
//! crate (0.2.5) imports, defined natively so a filter links into a test binary.
//!
//! Signatures match `proxy_wasm::hostcalls` exactly. None of these functions panics: bad
//! pointers or malformed input answer a `Status`, and an unavailable host state answers
//! `InternalFailure`. Data handed to the guest is a boxed slice (capacity == length), which
//! the SDK takes back with `Vec::from_raw_parts(ptr, len, len)`.
//!
//! Statuses follow Envoy where the SDK tolerates them; note that the SDK's own wrappers
//! `panic!` on statuses they do not expect (as they would trap in Envoy).

use super::records::{GrpcCallout, HttpCallout, LocalResponse};
use super::state::{next_token, with_host, ContextKind, HeaderMap, HostState, Metric, SharedQueue};
use super::wire::{decode_pairs, encode_pairs};
use crate::host::{BufferType, LogLevel, MapType, MetricType, Status, StreamType};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Memory helpers.

/// The guest's `(ptr, len)` as a slice; `None` for a null pointer with a non-zero length.
///
/// # Safety
/// A non-null `data` must point to `size` readable bytes that outlive the returned slice.
unsafe fn guest_bytes<'a>(data: *const u8, size: usize) -> Option<&'a [u8]> {
    if size == 0 {
        return Some(&[]);
    }
    if data.is_null() {
        return None;
    }
    // SAFETY: non-null, and the caller guarantees `size` readable bytes.
    Some(unsafe { std::slice::from_raw_parts(data, size) })
}

/// Writes `value` through a guest out-pointer; `false` if it is null.
///
/// # Safety
/// A non-null `out` must be valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: T) -> bool {
    if out.is_null() {
        return false;
    }
    // SAFETY: non-null, and the caller guarantees it is writable.
    unsafe { out.write(value) };
    true
}

/// Hands `data` to the guest as a fresh allocation it owns (`Vec::from_raw_parts(p, n, n)`).
///
/// # Safety
/// Non-null out-pointers must be valid for writes.
unsafe fn hand_over(data: Vec<u8>, ptr_out: *mut *mut u8, size_out: *mut usize) -> Status {
    if ptr_out.is_null() || size_out.is_null() {
        return Status::BadArgument;
    }
    let size = data.len();
    let ptr = Box::into_raw(data.into_boxed_slice()).cast::<u8>();
    // SAFETY: both checked non-null above; the caller guarantees they are writable.
    unsafe {
        ptr_out.write(ptr);
        size_out.write(size);
    }
    Status::Ok
}

/// Answers "no data" to the guest: a null pointer and a zero size.
///
/// # Safety
/// Non-null out-pointers must be valid for writes.
unsafe fn hand_over_nothing(ptr_out: *mut *mut u8, size_out: *mut usize) -> Status {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        put(ptr_out, null_mut());
        put(size_out, 0);
    }
    Status::Ok
}

/// Runs `f` on the host state; `InternalFailure` when it is unavailable.
fn host(f: impl FnOnce(&mut HostState) -> Status) -> Status {
    with_host(f).unwrap_or(Status::InternalFailure)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// Logging, time, ticks.

/// Records a log line (and echoes it to stderr, which `cargo test` shows for failing tests).
///
/// # Safety
/// `message_data` must point to `message_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_log(
    level: LogLevel,
    message_data: *const u8,
    message_size: usize,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(message) = (unsafe { guest_bytes(message_data, message_size) }) else {
        return Status::BadArgument;
    };
    let message = text(message);
    let recorded = with_host(|host| host.record_log(level, &message)).unwrap_or(false);
    // SDK panics reach the host as Critical logs (its panic hook): always show those.
    if recorded || level == LogLevel::Critical {
        eprintln!("[proxy-wasm {level:?}] {message}");
    }
    Status::Ok
}

/// Answers the host's log level (see `Emulator::set_log_level`).
///
/// # Safety
/// `return_level` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_log_level(return_level: *mut LogLevel) -> Status {
    let level = with_host(|host| host.log_level).unwrap_or(LogLevel::Trace);
    // SAFETY: caller guarantee.
    if unsafe { put(return_level, level) } {
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// Answers the emulated wall-clock time.
///
/// # Safety
/// `return_time` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> Status {
    let Some(now) = with_host(|host| host.now_nanos) else {
        return Status::InternalFailure;
    };
    // SAFETY: caller guarantee.
    if unsafe { put(return_time, now) } {
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// Stores the tick period (0 disables ticks).
#[no_mangle]
pub extern "C" fn proxy_set_tick_period_milliseconds(period: u32) -> Status {
    host(|host| {
        host.tick_period_ms = period;
        Status::Ok
    })
}

// ---------------------------------------------------------------------------------------
// Buffers.

fn buffer(host: &HostState, buffer_type: BufferType) -> Option<&Vec<u8>> {
    let stream = host.current_stream();
    match buffer_type {
        BufferType::HttpRequestBody => stream.map(|s| &s.request_body.data),
        BufferType::HttpResponseBody => stream.map(|s| &s.response_body.data),
        BufferType::DownstreamData => stream.map(|s| &s.downstream.data),
        BufferType::UpstreamData => stream.map(|s| &s.upstream.data),
        BufferType::HttpCallResponseBody => host.call_response.as_ref().map(|r| &r.body),
        BufferType::GrpcReceiveBuffer => host.grpc_receive.as_ref(),
        BufferType::VmConfiguration => Some(&host.vm_config),
        BufferType::PluginConfiguration => Some(&host.plugin_config),
        _ => None,
    }
}

fn buffer_mut(host: &mut HostState, buffer_type: BufferType) -> Option<&mut Vec<u8>> {
    let stream = host.current_stream_mut()?;
    match buffer_type {
        BufferType::HttpRequestBody => Some(&mut stream.request_body.data),
        BufferType::HttpResponseBody => Some(&mut stream.response_body.data),
        BufferType::DownstreamData => Some(&mut stream.downstream.data),
        BufferType::UpstreamData => Some(&mut stream.upstream.data),
        _ => None,
    }
}

/// Envoy's buffer edit: `start == 0` replaces the first `size` bytes (so `size == 0`
/// prepends and `size >= len` replaces everything), `start >= len` appends, and (beyond
/// Envoy, which refuses it) a range in the middle is replaced.
pub(crate) fn splice_buffer(buffer: &mut Vec<u8>, start: usize, size: usize, data: &[u8]) {
    let len = buffer.len();
    if start >= len {
        buffer.extend_from_slice(data);
        return;
    }
    let end = start.saturating_add(size).min(len);
    buffer.splice(start..end, data.iter().copied());
}

/// Reads `max_size` bytes from `start` of a buffer; a null pointer when nothing is left.
///
/// # Safety
/// Out-pointers must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_buffer_bytes(
    buffer_type: BufferType,
    start: usize,
    max_size: usize,
    return_buffer_data: *mut *mut u8,
    return_buffer_size: *mut usize,
) -> Status {
    let window = with_host(|host| {
        buffer(host, buffer_type).map(|data| {
            let start = start.min(data.len());
            let end = start.saturating_add(max_size).min(data.len());
            data.get(start..end).map(<[u8]>::to_vec).unwrap_or_default()
        })
    });
    match window {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        // SAFETY: caller guarantee.
        Some(Some(data)) if data.is_empty() => unsafe {
            hand_over_nothing(return_buffer_data, return_buffer_size)
        },
        // SAFETY: caller guarantee.
        Some(Some(data)) => unsafe { hand_over(data, return_buffer_data, return_buffer_size) },
    }
}

/// Edits a body or connection-data buffer (see [`splice_buffer`]).
///
/// # Safety
/// `buffer_data` must point to `buffer_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_set_buffer_bytes(
    buffer_type: BufferType,
    start: usize,
    size: usize,
    buffer_data: *const u8,
    buffer_size: usize,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(data) = (unsafe { guest_bytes(buffer_data, buffer_size) }) else {
        return Status::BadArgument;
    };
    host(|host| {
        if let Some(buffer) = buffer_mut(host, buffer_type) {
            splice_buffer(buffer, start, size, data);
            return Status::Ok;
        }
        if buffer(host, buffer_type).is_some() {
            Status::BadArgument // exists but immutable, like Envoy
        } else {
            Status::NotFound
        }
    })
}

// ---------------------------------------------------------------------------------------
// Header maps.

fn map(host: &HostState, map_type: MapType) -> Option<&HeaderMap> {
    let stream = host.current_stream();
    match map_type {
        MapType::HttpRequestHeaders => stream.map(|s| &s.request_headers),
        MapType::HttpRequestTrailers => stream.map(|s| &s.request_trailers),
        MapType::HttpResponseHeaders => stream.map(|s| &s.response_headers),
        MapType::HttpResponseTrailers => stream.map(|s| &s.response_trailers),
        MapType::HttpCallResponseHeaders => host.call_response.as_ref().map(|r| &r.headers),
        MapType::HttpCallResponseTrailers => host.call_response.as_ref().map(|r| &r.trailers),
        _ => None,
    }
}

fn map_mut(host: &mut HostState, map_type: MapType) -> Option<&mut HeaderMap> {
    if matches!(
        map_type,
        MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers
    ) {
        let response = host.call_response.as_mut()?;
        return Some(if map_type == MapType::HttpCallResponseHeaders {
            &mut response.headers
        } else {
            &mut response.trailers
        });
    }
    let stream = host.current_stream_mut()?;
    match map_type {
        MapType::HttpRequestHeaders => Some(&mut stream.request_headers),
        MapType::HttpRequestTrailers => Some(&mut stream.request_trailers),
        MapType::HttpResponseHeaders => Some(&mut stream.response_headers),
        MapType::HttpResponseTrailers => Some(&mut stream.response_trailers),
        _ => None,
    }
}

/// Serializes a whole map (an absent map reads as empty).
///
/// # Safety
/// Out-pointers must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_header_map_pairs(
    map_type: MapType,
    return_map_data: *mut *mut u8,
    return_map_size: *mut usize,
) -> Status {
    let encoded = with_host(|host| {
        map(host, map_type)
            .map(|map| encode_pairs(map.pairs()))
            .unwrap_or_else(|| encode_pairs(&[]))
    });
    match encoded {
        // SAFETY: caller guarantee.
        Some(bytes) => unsafe { hand_over(bytes, return_map_data, return_map_size) },
        None => Status::InternalFailure,
    }
}

/// Replaces a whole map with the serialized pairs.
///
/// # Safety
/// `map_data` must point to `map_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_set_header_map_pairs(
    map_type: MapType,
    map_data: *const u8,
    map_size: usize,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(bytes) = (unsafe { guest_bytes(map_data, map_size) }) else {
        return Status::BadArgument;
    };
    let Some(pairs) = decode_pairs(bytes) else {
        return Status::BadArgument;
    };
    host(|host| match map_mut(host, map_type) {
        Some(map) => {
            *map = HeaderMap::from_pairs(&pairs);
            Status::Ok
        }
        None => Status::BadArgument,
    })
}

/// The first value of a header, or `NotFound`.
///
/// # Safety
/// `key_data` must point to `key_size` readable bytes; out-pointers valid for writes.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_header_map_value(
    map_type: MapType,
    key_data: *const u8,
    key_size: usize,
    return_value_data: *mut *mut u8,
    return_value_size: *mut usize,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(key) = (unsafe { guest_bytes(key_data, key_size) }) else {
        return Status::BadArgument;
    };
    let value =
        with_host(|host| map(host, map_type).and_then(|map| map.get(key).map(<[u8]>::to_vec)));
    match value {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        // SAFETY: caller guarantee.
        Some(Some(value)) => unsafe { hand_over(value, return_value_data, return_value_size) },
    }
}

/// Removes every value of a header.
///
/// # Safety
/// `key_data` must point to `key_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_remove_header_map_value(
    map_type: MapType,
    key_data: *const u8,
    key_size: usize,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(key) = (unsafe { guest_bytes(key_data, key_size) }) else {
        return Status::BadArgument;
    };
    host(|host| match map_mut(host, map_type) {
        Some(map) => {
            map.remove(key);
            Status::Ok
        }
        None => Status::BadArgument,
    })
}

/// Sets a header to one value (adds it when absent).
///
/// # Safety
/// Key and value pointers must point to that many readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_replace_header_map_value(
    map_type: MapType,
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(key), Some(value)) = (unsafe {
        (
            guest_bytes(key_data, key_size),
            guest_bytes(value_data, value_size),
        )
    }) else {
        return Status::BadArgument;
    };
    host(|host| match map_mut(host, map_type) {
        Some(map) => {
            map.replace(key, value);
            Status::Ok
        }
        None => Status::BadArgument,
    })
}

/// Appends a header value.
///
/// # Safety
/// Key and value pointers must point to that many readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_add_header_map_value(
    map_type: MapType,
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(key), Some(value)) = (unsafe {
        (
            guest_bytes(key_data, key_size),
            guest_bytes(value_data, value_size),
        )
    }) else {
        return Status::BadArgument;
    };
    host(|host| match map_mut(host, map_type) {
        Some(map) => {
            map.add(key, value);
            Status::Ok
        }
        None => Status::BadArgument,
    })
}

// ---------------------------------------------------------------------------------------
// Properties.

/// A property of the current context (`\0`-joined path), or `NotFound`.
///
/// # Safety
/// `path_data` must point to `path_size` readable bytes; out-pointers valid for writes.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_property(
    path_data: *const u8,
    path_size: usize,
    return_value_data: *mut *mut u8,
    return_value_size: *mut usize,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { guest_bytes(path_data, path_size) }) else {
        return Status::BadArgument;
    };
    match with_host(|host| host.property(host.current, path)) {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        // SAFETY: caller guarantee.
        Some(Some(value)) => unsafe { hand_over(value, return_value_data, return_value_size) },
    }
}

/// Sets a property on the current stream (or globally from a root context).
///
/// # Safety
/// Path and value pointers must point to that many readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_set_property(
    path_data: *const u8,
    path_size: usize,
    value_data: *const u8,
    value_size: usize,
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(path), Some(value)) = (unsafe {
        (
            guest_bytes(path_data, path_size),
            guest_bytes(value_data, value_size),
        )
    }) else {
        return Status::BadArgument;
    };
    host(|host| {
        let properties = match host.streams.get_mut(&host.current) {
            Some(stream) => &mut stream.properties,
            None => &mut host.properties,
        };
        properties.insert(path.to_vec(), value.to_vec());
        Status::Ok
    })
}

// ---------------------------------------------------------------------------------------
// Shared data and queues.

/// Reads shared data and its CAS.
///
/// # Safety
/// `key_data` must point to `key_size` readable bytes; out-pointers valid for writes.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_shared_data(
    key_data: *const u8,
    key_size: usize,
    return_value_data: *mut *mut u8,
    return_value_size: *mut usize,
    return_cas: *mut u32,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(key) = (unsafe { guest_bytes(key_data, key_size) }) else {
        return Status::BadArgument;
    };
    match with_host(|host| host.shared_data.get(key).cloned()) {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some((value, cas))) => {
            // SAFETY: caller guarantee.
            unsafe {
                if !put(return_cas, cas) {
                    return Status::BadArgument;
                }
                hand_over(value, return_value_data, return_value_size)
            }
        }
    }
}

/// Writes shared data; a non-zero `cas` that is stale answers `CasMismatch`.
///
/// # Safety
/// Key and value pointers must point to that many readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_set_shared_data(
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
    cas: u32,
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(key), Some(value)) = (unsafe {
        (
            guest_bytes(key_data, key_size),
            guest_bytes(value_data, value_size),
        )
    }) else {
        return Status::BadArgument;
    };
    host(|host| host.set_shared_data(key, value, cas))
}

/// Registers (or re-registers) a queue owned by the calling root context.
///
/// # Safety
/// `name_data` must point to `name_size` readable bytes; `return_id` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn proxy_register_shared_queue(
    name_data: *const u8,
    name_size: usize,
    return_id: *mut u32,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(name) = (unsafe { guest_bytes(name_data, name_size) }) else {
        return Status::BadArgument;
    };
    let name = text(name);
    let id = with_host(|host| {
        let owner = match host.current_kind() {
            Some(ContextKind::Root) => host.current,
            _ => host.root.unwrap_or(host.current),
        };
        if let Some(id) = host.queue_id(&name) {
            if let Some(queue) = host.queue_mut(id) {
                queue.owner = owner;
            }
            return Some(id);
        }
        host.queues.push(SharedQueue {
            name: name.clone(),
            owner,
            items: Default::default(),
        });
        host.queue_id(&name)
    });
    match id.flatten() {
        // SAFETY: caller guarantee.
        Some(id) if unsafe { put(return_id, id) } => Status::Ok,
        Some(_) => Status::BadArgument,
        None => Status::InternalFailure,
    }
}

/// Finds a queue by name (the VM id is ignored: the emulator is a single VM).
///
/// # Safety
/// Pointers must point to that many readable bytes; `return_id` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn proxy_resolve_shared_queue(
    vm_id_data: *const u8,
    vm_id_size: usize,
    name_data: *const u8,
    name_size: usize,
    return_id: *mut u32,
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(_vm_id), Some(name)) = (unsafe {
        (
            guest_bytes(vm_id_data, vm_id_size),
            guest_bytes(name_data, name_size),
        )
    }) else {
        return Status::BadArgument;
    };
    let name = text(name);
    match with_host(|host| host.queue_id(&name)) {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        // SAFETY: caller guarantee.
        Some(Some(id)) if unsafe { put(return_id, id) } => Status::Ok,
        Some(Some(_)) => Status::BadArgument,
    }
}

/// Takes the oldest item of a queue: `Empty` when there is none, `NotFound` for an unknown id.
///
/// # Safety
/// Out-pointers must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn proxy_dequeue_shared_queue(
    queue_id: u32,
    return_value_data: *mut *mut u8,
    return_value_size: *mut usize,
) -> Status {
    let item = with_host(|host| {
        host.queue_mut(queue_id)
            .map(|queue| queue.items.pop_front())
    });
    match item {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some(None)) => Status::Empty,
        // SAFETY: caller guarantee.
        Some(Some(Some(item))) => unsafe { hand_over(item, return_value_data, return_value_size) },
    }
}

/// Appends to a queue; its owner's `on_queue_ready` runs after the current guest call.
///
/// # Safety
/// `value_data` must point to `value_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_enqueue_shared_queue(
    queue_id: u32,
    value_data: *const u8,
    value_size: usize,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(value) = (unsafe { guest_bytes(value_data, value_size) }) else {
        return Status::BadArgument;
    };
    host(|host| {
        let Some(queue) = host.queue_mut(queue_id) else {
            return Status::NotFound;
        };
        queue.items.push_back(value.to_vec());
        let owner = queue.owner;
        host.queue_ready.push((owner, queue_id));
        Status::Ok
    })
}

// ---------------------------------------------------------------------------------------
// Stream control and local responses.

/// Records that the filter resumed a stream; held body/data is released.
#[no_mangle]
pub extern "C" fn proxy_continue_stream(stream_type: StreamType) -> Status {
    host(|host| {
        if let Some(stream) = host.current_stream_mut() {
            match stream_type {
                StreamType::HttpRequest => {
                    stream.request_resumed = true;
                    stream.request_body.release();
                }
                StreamType::HttpResponse => {
                    stream.response_resumed = true;
                    stream.response_body.release();
                }
                StreamType::Downstream => {
                    stream.downstream_resumed = true;
                    stream.downstream.release();
                }
                StreamType::Upstream => {
                    stream.upstream_resumed = true;
                    stream.upstream.release();
                }
            }
        }
        Status::Ok
    })
}

/// Records that the filter reset (HTTP) or closed (TCP) a stream.
#[no_mangle]
pub extern "C" fn proxy_close_stream(stream_type: StreamType) -> Status {
    host(|host| {
        if let Some(stream) = host.current_stream_mut() {
            match stream_type {
                StreamType::HttpRequest => stream.request_reset = true,
                StreamType::HttpResponse => stream.response_reset = true,
                StreamType::Downstream => stream.downstream_closed = true,
                StreamType::Upstream => stream.upstream_closed = true,
            }
        }
        Status::Ok
    })
}

/// Records a local response on the current HTTP stream (the first one wins, as in Envoy).
///
/// # Safety
/// Each pointer must point to its size in readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn proxy_send_local_response(
    status_code: u32,
    status_code_details_data: *const u8,
    status_code_details_size: usize,
    body_data: *const u8,
    body_size: usize,
    headers_data: *const u8,
    headers_size: usize,
    grpc_status: i32,
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(details), Some(body), Some(headers)) = (unsafe {
        (
            guest_bytes(status_code_details_data, status_code_details_size),
            guest_bytes(body_data, body_size),
            guest_bytes(headers_data, headers_size),
        )
    }) else {
        return Status::BadArgument;
    };
    let Some(headers) = decode_pairs(headers) else {
        return Status::BadArgument;
    };
    let response = LocalResponse {
        status_code,
        headers: HeaderMap::from_pairs(&headers).pairs().clone(),
        body: body.to_vec(),
        details: text(details),
        grpc_status: (grpc_status >= 0).then_some(grpc_status),
    };
    host(|host| {
        if host.current_kind() == Some(ContextKind::Http) {
            if let Some(stream) = host.current_stream_mut() {
                stream.local_response.get_or_insert(response);
            }
        }
        Status::Ok
    })
}

// ---------------------------------------------------------------------------------------
// Callouts.

fn cluster_known(host: &HostState, upstream: &str) -> bool {
    host.known_clusters
        .as_ref()
        .is_none_or(|known| known.iter().any(|name| name == upstream))
}

/// Records an HTTP callout; `BadArgument` for an unknown cluster (when clusters are set) or
/// when `:method`, `:path` or `:authority` is missing, as Envoy answers.
///
/// # Safety
/// Each pointer must point to its size in readable bytes; `return_token` valid for a write.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn proxy_http_call(
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
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(upstream), Some(headers), Some(body), Some(trailers)) = (unsafe {
        (
            guest_bytes(upstream_data, upstream_size),
            guest_bytes(headers_data, headers_size),
            guest_bytes(body_data, body_size),
            guest_bytes(trailers_data, trailers_size),
        )
    }) else {
        return Status::BadArgument;
    };
    let (Some(headers), Some(trailers)) = (decode_pairs(headers), decode_pairs(trailers)) else {
        return Status::BadArgument;
    };
    if return_token.is_null() {
        return Status::BadArgument;
    }
    let upstream = text(upstream);
    let headers = HeaderMap::from_pairs(&headers);
    let trailers = HeaderMap::from_pairs(&trailers);
    host(|host| {
        if !cluster_known(host, &upstream) {
            return Status::BadArgument;
        }
        if [":method", ":path", ":authority"]
            .iter()
            .any(|name| headers.get(name.as_bytes()).is_none())
        {
            return Status::BadArgument;
        }
        let token = next_token();
        host.http_calls.insert(
            token,
            HttpCallout {
                token,
                context_id: host.current,
                upstream,
                headers: headers.pairs().clone(),
                body: body.to_vec(),
                trailers: trailers.pairs().clone(),
                timeout: Duration::from_millis(u64::from(timeout)),
            },
        );
        // SAFETY: checked non-null above; caller guarantees it is writable.
        unsafe { put(return_token, token) };
        Status::Ok
    })
}

/// Shared by `proxy_grpc_call` and `proxy_grpc_stream`.
///
/// # Safety
/// Each pointer must point to its size in readable bytes; `return_token` valid for a write.
#[allow(clippy::too_many_arguments)]
unsafe fn open_grpc(
    upstream: (*const u8, usize),
    service: (*const u8, usize),
    method: (*const u8, usize),
    metadata: (*const u8, usize),
    message: Option<(*const u8, usize)>,
    timeout: Option<u32>,
    return_token: *mut u32,
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(upstream), Some(service), Some(method), Some(metadata), Some(message)) = (unsafe {
        (
            guest_bytes(upstream.0, upstream.1),
            guest_bytes(service.0, service.1),
            guest_bytes(method.0, method.1),
            guest_bytes(metadata.0, metadata.1),
            message.map_or(Some(&[][..]), |(data, size)| guest_bytes(data, size)),
        )
    }) else {
        return Status::BadArgument;
    };
    let Some(metadata) = decode_pairs(metadata) else {
        return Status::BadArgument;
    };
    if return_token.is_null() {
        return Status::BadArgument;
    }
    let upstream = text(upstream);
    host(|host| {
        if !cluster_known(host, &upstream) {
            return Status::ParseFailure; // Envoy's answer for an unknown cluster
        }
        let token = next_token();
        host.grpc_calls.insert(
            token,
            GrpcCallout {
                token,
                context_id: host.current,
                upstream,
                service: text(service),
                method: text(method),
                initial_metadata: HeaderMap::from_pairs(&metadata).pairs().clone(),
                message: message.to_vec(),
                stream_messages: Vec::new(),
                streaming: timeout.is_none(),
                timeout: timeout.map(|ms| Duration::from_millis(u64::from(ms))),
            },
        );
        // SAFETY: checked non-null above; caller guarantees it is writable.
        unsafe { put(return_token, token) };
        Status::Ok
    })
}

/// Records a unary gRPC call.
///
/// # Safety
/// Each pointer must point to its size in readable bytes; `return_callout_id` valid for a
/// write.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn proxy_grpc_call(
    upstream_data: *const u8,
    upstream_size: usize,
    service_name_data: *const u8,
    service_name_size: usize,
    method_name_data: *const u8,
    method_name_size: usize,
    initial_metadata_data: *const u8,
    initial_metadata_size: usize,
    message_data_data: *const u8,
    message_data_size: usize,
    timeout: u32,
    return_callout_id: *mut u32,
) -> Status {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        open_grpc(
            (upstream_data, upstream_size),
            (service_name_data, service_name_size),
            (method_name_data, method_name_size),
            (initial_metadata_data, initial_metadata_size),
            Some((message_data_data, message_data_size)),
            Some(timeout),
            return_callout_id,
        )
    }
}

/// Records an opened gRPC stream.
///
/// # Safety
/// Each pointer must point to its size in readable bytes; `return_stream_id` valid for a
/// write.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn proxy_grpc_stream(
    upstream_data: *const u8,
    upstream_size: usize,
    service_name_data: *const u8,
    service_name_size: usize,
    method_name_data: *const u8,
    method_name_size: usize,
    initial_metadata_data: *const u8,
    initial_metadata_size: usize,
    return_stream_id: *mut u32,
) -> Status {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        open_grpc(
            (upstream_data, upstream_size),
            (service_name_data, service_name_size),
            (method_name_data, method_name_size),
            (initial_metadata_data, initial_metadata_size),
            None,
            None,
            return_stream_id,
        )
    }
}

/// Records a message sent on an open gRPC stream.
///
/// # Safety
/// `message_ptr` must point to `message_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn proxy_grpc_send(
    token: u32,
    message_ptr: *const u8,
    message_len: usize,
    _end_stream: bool,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(message) = (unsafe { guest_bytes(message_ptr, message_len) }) else {
        return Status::BadArgument;
    };
    host(|host| match host.grpc_calls.get_mut(&token) {
        Some(call) if call.streaming => {
            call.stream_messages.push(message.to_vec());
            Status::Ok
        }
        Some(_) => Status::BadArgument,
        None => Status::NotFound,
    })
}

/// Cancels a pending gRPC call or stream.
#[no_mangle]
pub extern "C" fn proxy_grpc_cancel(token_id: u32) -> Status {
    host(|host| match host.grpc_calls.remove(&token_id) {
        Some(_) => Status::Ok,
        None => Status::NotFound,
    })
}

/// Closes a pending gRPC call or stream.
#[no_mangle]
pub extern "C" fn proxy_grpc_close(token_id: u32) -> Status {
    proxy_grpc_cancel(token_id)
}

/// The status of the last callout answer (gRPC status, or Envoy's "reset" for a failed HTTP
/// callout).
///
/// # Safety
/// Out-pointers must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_status(
    return_code: *mut u32,
    return_message_data: *mut *mut u8,
    return_message_size: *mut usize,
) -> Status {
    let Some((code, message)) = with_host(|host| host.status.clone()) else {
        return Status::InternalFailure;
    };
    // SAFETY: caller guarantee.
    unsafe {
        if !put(return_code, code) {
            return Status::BadArgument;
        }
        if message.is_empty() {
            hand_over_nothing(return_message_data, return_message_size)
        } else {
            hand_over(message, return_message_data, return_message_size)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Contexts, foreign functions.

/// Makes `context_id` the context later host calls act on.
#[no_mangle]
pub extern "C" fn proxy_set_effective_context(context_id: u32) -> Status {
    host(|host| {
        if host.contexts.contains_key(&context_id) {
            host.current = context_id;
            Status::Ok
        } else {
            Status::BadArgument
        }
    })
}

/// Calls a function registered with `Emulator::register_foreign_function`.
///
/// # Safety
/// Name and argument pointers must point to that many readable bytes; out-pointers valid
/// for writes.
#[no_mangle]
pub unsafe extern "C" fn proxy_call_foreign_function(
    function_name_data: *const u8,
    function_name_size: usize,
    arguments_data: *const u8,
    arguments_size: usize,
    results_data: *mut *mut u8,
    results_size: *mut usize,
) -> Status {
    // SAFETY: caller guarantee.
    let (Some(name), Some(arguments)) = (unsafe {
        (
            guest_bytes(function_name_data, function_name_size),
            guest_bytes(arguments_data, arguments_size),
        )
    }) else {
        return Status::BadArgument;
    };
    let name = text(name);
    let Some(function) = with_host(|host| host.foreign_functions.get(&name).cloned()) else {
        return Status::InternalFailure;
    };
    let Some(function) = function else {
        return Status::NotFound;
    };
    // Called outside the state borrow; a panicking test closure must not unwind into the guest.
    match catch_unwind(AssertUnwindSafe(|| function(arguments))) {
        // SAFETY: caller guarantee.
        Ok(Ok(result)) if result.is_empty() => unsafe {
            hand_over_nothing(results_data, results_size)
        },
        // SAFETY: caller guarantee.
        Ok(Ok(result)) => unsafe { hand_over(result, results_data, results_size) },
        Ok(Err(status)) => status,
        Err(_) => Status::InternalFailure,
    }
}

/// Acknowledged; the emulator deletes contexts when the test completes them.
#[no_mangle]
pub extern "C" fn proxy_done() -> Status {
    Status::Ok
}

// ---------------------------------------------------------------------------------------
// Metrics.

/// Defines a metric; the same name and type answer the same id.
///
/// # Safety
/// `name_data` must point to `name_size` readable bytes; `return_id` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn proxy_define_metric(
    metric_type: MetricType,
    name_data: *const u8,
    name_size: usize,
    return_id: *mut u32,
) -> Status {
    // SAFETY: caller guarantee.
    let Some(name) = (unsafe { guest_bytes(name_data, name_size) }) else {
        return Status::BadArgument;
    };
    if !matches!(
        metric_type,
        MetricType::Counter | MetricType::Gauge | MetricType::Histogram
    ) {
        return Status::BadArgument;
    }
    let name = text(name);
    let id = with_host(|host| {
        let index = match host
            .metrics
            .iter()
            .position(|metric| metric.name == name && metric.kind == metric_type)
        {
            Some(index) => index,
            None => {
                host.metrics.push(Metric {
                    name,
                    kind: metric_type,
                    value: 0,
                    recorded: Vec::new(),
                });
                host.metrics.len().saturating_sub(1)
            }
        };
        u32::try_from(index.saturating_add(1)).ok()
    });
    match id.flatten() {
        // SAFETY: caller guarantee.
        Some(id) if unsafe { put(return_id, id) } => Status::Ok,
        Some(_) => Status::BadArgument,
        None => Status::InternalFailure,
    }
}

/// A counter's or gauge's value (`BadArgument` for a histogram, as Envoy).
///
/// # Safety
/// `return_value` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> Status {
    let value = with_host(|host| {
        host.metric(metric_id).map(|metric| match metric.kind {
            MetricType::Counter | MetricType::Gauge => Ok(metric.value),
            _ => Err(Status::BadArgument),
        })
    });
    match value {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some(Err(status))) => status,
        // SAFETY: caller guarantee.
        Some(Some(Ok(value))) if unsafe { put(return_value, value) } => Status::Ok,
        Some(Some(Ok(_))) => Status::BadArgument,
    }
}

/// Counter: adds `value`; gauge: sets it; histogram: records it (Envoy's semantics).
#[no_mangle]
pub extern "C" fn proxy_record_metric(metric_id: u32, value: u64) -> Status {
    host(|host| {
        let Some(metric) = host.metric_mut(metric_id) else {
            return Status::NotFound;
        };
        match metric.kind {
            MetricType::Counter => metric.value = metric.value.saturating_add(value),
            MetricType::Gauge => metric.value = value,
            _ => metric.recorded.push(value),
        }
        Status::Ok
    })
}

/// Counter: adds a positive offset (`BadArgument` otherwise, as Envoy); gauge: adds or
/// subtracts (saturating at 0); histogram: `BadArgument`.
#[no_mangle]
pub extern "C" fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status {
    host(|host| {
        let Some(metric) = host.metric_mut(metric_id) else {
            return Status::NotFound;
        };
        let magnitude = offset.unsigned_abs();
        match metric.kind {
            MetricType::Counter if offset > 0 => {
                metric.value = metric.value.saturating_add(magnitude);
                Status::Ok
            }
            MetricType::Gauge => {
                metric.value = if offset >= 0 {
                    metric.value.saturating_add(magnitude)
                } else {
                    metric.value.saturating_sub(magnitude)
                };
                Status::Ok
            }
            _ => Status::BadArgument,
        }
    })
}

/// Takes the address of every host function, so whichever object file references this
/// also pulls all of them into the link (linkers that resolve archives in order, like GNU
/// ld, would otherwise drop them: `proxy-wasm`, which needs them, links after this crate).
pub(crate) fn link_all() -> usize {
    let all = [
        proxy_log as *const () as usize,
        proxy_get_log_level as *const () as usize,
        proxy_get_current_time_nanoseconds as *const () as usize,
        proxy_set_tick_period_milliseconds as *const () as usize,
        proxy_get_buffer_bytes as *const () as usize,
        proxy_set_buffer_bytes as *const () as usize,
        proxy_get_header_map_pairs as *const () as usize,
        proxy_set_header_map_pairs as *const () as usize,
        proxy_get_header_map_value as *const () as usize,
        proxy_remove_header_map_value as *const () as usize,
        proxy_replace_header_map_value as *const () as usize,
        proxy_add_header_map_value as *const () as usize,
        proxy_get_property as *const () as usize,
        proxy_set_property as *const () as usize,
        proxy_get_shared_data as *const () as usize,
        proxy_set_shared_data as *const () as usize,
        proxy_register_shared_queue as *const () as usize,
        proxy_resolve_shared_queue as *const () as usize,
        proxy_dequeue_shared_queue as *const () as usize,
        proxy_enqueue_shared_queue as *const () as usize,
        proxy_continue_stream as *const () as usize,
        proxy_close_stream as *const () as usize,
        proxy_send_local_response as *const () as usize,
        proxy_http_call as *const () as usize,
        proxy_grpc_call as *const () as usize,
        proxy_grpc_stream as *const () as usize,
        proxy_grpc_send as *const () as usize,
        proxy_grpc_cancel as *const () as usize,
        proxy_grpc_close as *const () as usize,
        proxy_get_status as *const () as usize,
        proxy_set_effective_context as *const () as usize,
        proxy_call_foreign_function as *const () as usize,
        proxy_done as *const () as usize,
        proxy_define_metric as *const () as usize,
        proxy_get_metric as *const () as usize,
        proxy_record_metric as *const () as usize,
        proxy_increment_metric as *const () as usize,
    ];
    std::hint::black_box(all)
        .iter()
        .fold(0, |acc, address| acc ^ address)
}

#[cfg(test)]
mod tests {
    use super::splice_buffer;

    #[test]
    fn splice_like_envoy() {
        let edit = |start, size, data: &[u8]| {
            let mut buffer = b"hello".to_vec();
            splice_buffer(&mut buffer, start, size, data);
            buffer
        };
        assert_eq!(edit(0, 0, b">"), b">hello");
        assert_eq!(edit(0, 5, b"bye"), b"bye");
        assert_eq!(edit(0, 99, b"bye"), b"bye");
        assert_eq!(edit(5, 0, b"!"), b"hello!");
        assert_eq!(edit(9, 3, b"!"), b"hello!");
        assert_eq!(edit(1, 3, b"ipp"), b"hippo");
    }
}

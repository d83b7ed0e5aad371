//! The host side of the proxy-wasm 0.2.1 ABI, written once for both engines: every
//! `proxy_*` function, over the guest's [`Memory`] and this thread's host state.
//!
//! `super::abi` binds these to the guest: as native `extern "C"` functions (the native
//! engine) and as wasmtime `Linker` functions (the wasm engine). Arguments arrive as the ABI
//! passes them (enums as `u32`, pointers and sizes as `usize`); nothing here panics: a bad
//! pointer or malformed input answers a `Status`, and an unavailable host state answers
//! `InternalFailure`.
//!
//! Values returned to the guest follow Envoy (`copyToPointerSize`): an empty value is a
//! null pointer with size 0; anything else is written into memory the guest allocated
//! (natively a boxed slice, in wasm through the module's `proxy_on_memory_allocate`), which
//! the guest owns. A value the guest cannot allocate answers `InvalidMemoryAccess`.
//!
//! Statuses follow Envoy where the SDK tolerates them; note that the bare SDK's own
//! wrappers `panic!` on statuses they do not expect (as they would trap in Envoy).

use super::memory::Memory;
use super::records::{GrpcCallout, HttpCallout, LocalResponse};
use super::state::{next_token, with_host, ContextKind, HeaderMap, HostState, Metric, SharedQueue};
use super::wire::{decode_pairs, encode_pairs};
use crate::host::{BufferType, LogLevel, MapType, MetricType, Status, StreamType};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// ABI values.

fn map_type(raw: u32) -> Option<MapType> {
    Some(match raw {
        0 => MapType::HttpRequestHeaders,
        1 => MapType::HttpRequestTrailers,
        2 => MapType::HttpResponseHeaders,
        3 => MapType::HttpResponseTrailers,
        4 => MapType::GrpcReceiveInitialMetadata,
        5 => MapType::GrpcReceiveTrailingMetadata,
        6 => MapType::HttpCallResponseHeaders,
        7 => MapType::HttpCallResponseTrailers,
        _ => return None,
    })
}

fn buffer_type(raw: u32) -> Option<BufferType> {
    Some(match raw {
        0 => BufferType::HttpRequestBody,
        1 => BufferType::HttpResponseBody,
        2 => BufferType::DownstreamData,
        3 => BufferType::UpstreamData,
        4 => BufferType::HttpCallResponseBody,
        5 => BufferType::GrpcReceiveBuffer,
        6 => BufferType::VmConfiguration,
        7 => BufferType::PluginConfiguration,
        8 => BufferType::CallData,
        _ => return None,
    })
}

fn metric_type(raw: u32) -> Option<MetricType> {
    Some(match raw {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        2 => MetricType::Histogram,
        _ => return None,
    })
}

fn stream_type(raw: u32) -> Option<StreamType> {
    Some(match raw {
        0 => StreamType::HttpRequest,
        1 => StreamType::HttpResponse,
        2 => StreamType::Downstream,
        3 => StreamType::Upstream,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Memory helpers.

/// Writes a `u32` through a guest out-pointer.
fn put_u32(m: &mut impl Memory, ptr: usize, value: u32) -> bool {
    m.write(ptr, &value.to_le_bytes())
}

/// Writes a `u64` through a guest out-pointer.
fn put_u64(m: &mut impl Memory, ptr: usize, value: u64) -> bool {
    m.write(ptr, &value.to_le_bytes())
}

/// Hands `data` to the guest through `(ptr_out, size_out)`, as Envoy does: empty is a null
/// pointer and size 0, anything else a guest allocation the guest owns.
pub(crate) fn hand_over(
    m: &mut impl Memory,
    data: &[u8],
    ptr_out: usize,
    size_out: usize,
) -> Status {
    let ptr = if data.is_empty() {
        0
    } else {
        match m.allocate(data) {
            Some(ptr) => ptr,
            None => return Status::InvalidMemoryAccess,
        }
    };
    if m.write_word(ptr_out, ptr) && m.write_word(size_out, data.len()) {
        Status::Ok
    } else {
        Status::BadArgument
    }
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
pub(crate) fn log(m: &mut impl Memory, level: u32, data: usize, size: usize) -> Status {
    let Some(message) = m.read(data, size) else {
        return Status::BadArgument;
    };
    record_log(LogLevel::from_raw(level), &text(&message));
    Status::Ok
}

/// Records `message` at `level` if it passes the host's level, and echoes it to stderr.
pub(crate) fn record_log(level: LogLevel, message: &str) {
    let recorded = with_host(|host| host.record_log(level, message)).unwrap_or(false);
    // SDK panics reach the host as Critical logs (its panic hook): always show those.
    if recorded || level == LogLevel::Critical {
        eprintln!("[proxy-wasm {level:?}] {message}");
    }
}

/// Answers the host's log level (see `Emulator::set_log_level`).
pub(crate) fn get_log_level(m: &mut impl Memory, return_level: usize) -> Status {
    let level = with_host(|host| host.log_level).unwrap_or(LogLevel::Trace);
    if put_u32(m, return_level, level.raw()) {
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// Answers the emulated wall-clock time.
pub(crate) fn get_current_time_nanoseconds(m: &mut impl Memory, return_time: usize) -> Status {
    let Some(now) = with_host(|host| host.now_nanos) else {
        return Status::InternalFailure;
    };
    if put_u64(m, return_time, now) {
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// Stores the tick period (0 disables ticks).
pub(crate) fn set_tick_period_milliseconds(_m: &mut impl Memory, period: u32) -> Status {
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
pub(crate) fn get_buffer_bytes(
    m: &mut impl Memory,
    buffer_kind: u32,
    start: usize,
    max_size: usize,
    return_data: usize,
    return_size: usize,
) -> Status {
    let Some(kind) = buffer_type(buffer_kind) else {
        return Status::BadArgument;
    };
    let window = with_host(|host| {
        buffer(host, kind).map(|data| {
            let start = start.min(data.len());
            let end = start.saturating_add(max_size).min(data.len());
            data.get(start..end).map(<[u8]>::to_vec).unwrap_or_default()
        })
    });
    match window {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some(data)) => hand_over(m, &data, return_data, return_size),
    }
}

/// Edits a body or connection-data buffer (see [`splice_buffer`]).
pub(crate) fn set_buffer_bytes(
    m: &mut impl Memory,
    buffer_kind: u32,
    start: usize,
    size: usize,
    data: usize,
    data_size: usize,
) -> Status {
    let Some(kind) = buffer_type(buffer_kind) else {
        return Status::BadArgument;
    };
    let Some(data) = m.read(data, data_size) else {
        return Status::BadArgument;
    };
    host(|host| {
        if let Some(buffer) = buffer_mut(host, kind) {
            splice_buffer(buffer, start, size, &data);
            return Status::Ok;
        }
        if buffer(host, kind).is_some() {
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

/// Edits a header map of the current context: `BadArgument` when there is no such map.
fn edit_map(map_kind: u32, edit: impl FnOnce(&mut HeaderMap)) -> Status {
    let Some(kind) = map_type(map_kind) else {
        return Status::BadArgument;
    };
    host(|host| match map_mut(host, kind) {
        Some(map) => {
            edit(map);
            Status::Ok
        }
        None => Status::BadArgument,
    })
}

/// Serializes a whole map (an absent map reads as empty).
pub(crate) fn get_header_map_pairs(
    m: &mut impl Memory,
    map_kind: u32,
    return_data: usize,
    return_size: usize,
) -> Status {
    let kind = map_type(map_kind);
    let encoded = with_host(|host| {
        kind.and_then(|kind| map(host, kind))
            .map(|map| encode_pairs(map.pairs()))
            .unwrap_or_else(|| encode_pairs(&[]))
    });
    match encoded {
        Some(bytes) => hand_over(m, &bytes, return_data, return_size),
        None => Status::InternalFailure,
    }
}

/// Replaces a whole map with the serialized pairs.
pub(crate) fn set_header_map_pairs(
    m: &mut impl Memory,
    map_kind: u32,
    data: usize,
    size: usize,
) -> Status {
    let Some(bytes) = m.read(data, size) else {
        return Status::BadArgument;
    };
    let Some(pairs) = decode_pairs(&bytes) else {
        return Status::BadArgument;
    };
    edit_map(map_kind, |map| *map = HeaderMap::from_pairs(&pairs))
}

/// The first value of a header, or `NotFound`.
pub(crate) fn get_header_map_value(
    m: &mut impl Memory,
    map_kind: u32,
    key_data: usize,
    key_size: usize,
    return_data: usize,
    return_size: usize,
) -> Status {
    let Some(key) = m.read(key_data, key_size) else {
        return Status::BadArgument;
    };
    let kind = map_type(map_kind);
    let value = with_host(|host| {
        kind.and_then(|kind| map(host, kind))
            .and_then(|map| map.get(&key).map(<[u8]>::to_vec))
    });
    match value {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some(value)) => hand_over(m, &value, return_data, return_size),
    }
}

/// Removes every value of a header.
pub(crate) fn remove_header_map_value(
    m: &mut impl Memory,
    map_kind: u32,
    key_data: usize,
    key_size: usize,
) -> Status {
    let Some(key) = m.read(key_data, key_size) else {
        return Status::BadArgument;
    };
    edit_map(map_kind, |map| map.remove(&key))
}

/// Sets a header to one value (adds it when absent).
pub(crate) fn replace_header_map_value(
    m: &mut impl Memory,
    map_kind: u32,
    key_data: usize,
    key_size: usize,
    value_data: usize,
    value_size: usize,
) -> Status {
    let (Some(key), Some(value)) = (m.read(key_data, key_size), m.read(value_data, value_size))
    else {
        return Status::BadArgument;
    };
    edit_map(map_kind, |map| map.replace(&key, &value))
}

/// Appends a header value.
pub(crate) fn add_header_map_value(
    m: &mut impl Memory,
    map_kind: u32,
    key_data: usize,
    key_size: usize,
    value_data: usize,
    value_size: usize,
) -> Status {
    let (Some(key), Some(value)) = (m.read(key_data, key_size), m.read(value_data, value_size))
    else {
        return Status::BadArgument;
    };
    edit_map(map_kind, |map| map.add(&key, &value))
}

// ---------------------------------------------------------------------------------------
// Properties.

/// A property of the current context (`\0`-joined path), or `NotFound`.
pub(crate) fn get_property(
    m: &mut impl Memory,
    path_data: usize,
    path_size: usize,
    return_data: usize,
    return_size: usize,
) -> Status {
    let Some(path) = m.read(path_data, path_size) else {
        return Status::BadArgument;
    };
    match with_host(|host| host.property(host.current, &path)) {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some(value)) => hand_over(m, &value, return_data, return_size),
    }
}

/// Sets a property on the current stream (or globally from a root context).
pub(crate) fn set_property(
    m: &mut impl Memory,
    path_data: usize,
    path_size: usize,
    value_data: usize,
    value_size: usize,
) -> Status {
    let (Some(path), Some(value)) = (m.read(path_data, path_size), m.read(value_data, value_size))
    else {
        return Status::BadArgument;
    };
    host(|host| {
        let properties = match host.streams.get_mut(&host.current) {
            Some(stream) => &mut stream.properties,
            None => &mut host.properties,
        };
        properties.insert(path, value);
        Status::Ok
    })
}

// ---------------------------------------------------------------------------------------
// Shared data and queues.

/// Reads shared data and its CAS.
pub(crate) fn get_shared_data(
    m: &mut impl Memory,
    key_data: usize,
    key_size: usize,
    return_data: usize,
    return_size: usize,
    return_cas: usize,
) -> Status {
    let Some(key) = m.read(key_data, key_size) else {
        return Status::BadArgument;
    };
    match with_host(|host| host.shared_data.get(&key).cloned()) {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some((value, cas))) => {
            if !put_u32(m, return_cas, cas) {
                return Status::BadArgument;
            }
            hand_over(m, &value, return_data, return_size)
        }
    }
}

/// Writes shared data; a non-zero `cas` that is stale answers `CasMismatch`.
pub(crate) fn set_shared_data(
    m: &mut impl Memory,
    key_data: usize,
    key_size: usize,
    value_data: usize,
    value_size: usize,
    cas: u32,
) -> Status {
    let (Some(key), Some(value)) = (m.read(key_data, key_size), m.read(value_data, value_size))
    else {
        return Status::BadArgument;
    };
    host(|host| host.set_shared_data(&key, &value, cas))
}

/// Registers (or re-registers) a queue owned by the calling root context.
pub(crate) fn register_shared_queue(
    m: &mut impl Memory,
    name_data: usize,
    name_size: usize,
    return_id: usize,
) -> Status {
    let Some(name) = m.read(name_data, name_size) else {
        return Status::BadArgument;
    };
    let name = text(&name);
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
        Some(id) if put_u32(m, return_id, id) => Status::Ok,
        Some(_) => Status::BadArgument,
        None => Status::InternalFailure,
    }
}

/// Finds a queue by name (the VM id is ignored: the emulator is a single VM).
pub(crate) fn resolve_shared_queue(
    m: &mut impl Memory,
    vm_id_data: usize,
    vm_id_size: usize,
    name_data: usize,
    name_size: usize,
    return_id: usize,
) -> Status {
    let (Some(_vm_id), Some(name)) = (m.read(vm_id_data, vm_id_size), m.read(name_data, name_size))
    else {
        return Status::BadArgument;
    };
    let name = text(&name);
    match with_host(|host| host.queue_id(&name)) {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some(id)) if put_u32(m, return_id, id) => Status::Ok,
        Some(Some(_)) => Status::BadArgument,
    }
}

/// Takes the oldest item of a queue: `Empty` when there is none, `NotFound` for an unknown id.
pub(crate) fn dequeue_shared_queue(
    m: &mut impl Memory,
    queue_id: u32,
    return_data: usize,
    return_size: usize,
) -> Status {
    let item = with_host(|host| {
        host.queue_mut(queue_id)
            .map(|queue| queue.items.pop_front())
    });
    match item {
        None => Status::InternalFailure,
        Some(None) => Status::NotFound,
        Some(Some(None)) => Status::Empty,
        Some(Some(Some(item))) => hand_over(m, &item, return_data, return_size),
    }
}

/// Appends to a queue; its owner's `on_queue_ready` runs after the current guest call.
pub(crate) fn enqueue_shared_queue(
    m: &mut impl Memory,
    queue_id: u32,
    value_data: usize,
    value_size: usize,
) -> Status {
    let Some(value) = m.read(value_data, value_size) else {
        return Status::BadArgument;
    };
    host(|host| {
        let Some(queue) = host.queue_mut(queue_id) else {
            return Status::NotFound;
        };
        queue.items.push_back(value);
        let owner = queue.owner;
        host.queue_ready.push((owner, queue_id));
        Status::Ok
    })
}

// ---------------------------------------------------------------------------------------
// Stream control and local responses.

/// Records that the filter resumed a stream; held body/data is released.
pub(crate) fn continue_stream(_m: &mut impl Memory, stream_kind: u32) -> Status {
    let Some(kind) = stream_type(stream_kind) else {
        return Status::BadArgument;
    };
    host(|host| {
        if let Some(stream) = host.current_stream_mut() {
            match kind {
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
pub(crate) fn close_stream(_m: &mut impl Memory, stream_kind: u32) -> Status {
    let Some(kind) = stream_type(stream_kind) else {
        return Status::BadArgument;
    };
    host(|host| {
        if let Some(stream) = host.current_stream_mut() {
            match kind {
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
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_local_response(
    m: &mut impl Memory,
    status_code: u32,
    details_data: usize,
    details_size: usize,
    body_data: usize,
    body_size: usize,
    headers_data: usize,
    headers_size: usize,
    grpc_status: i32,
) -> Status {
    let (Some(details), Some(body), Some(headers)) = (
        m.read(details_data, details_size),
        m.read(body_data, body_size),
        m.read(headers_data, headers_size),
    ) else {
        return Status::BadArgument;
    };
    let Some(headers) = decode_pairs(&headers) else {
        return Status::BadArgument;
    };
    let response = LocalResponse {
        status_code,
        headers: HeaderMap::from_pairs(&headers).pairs().clone(),
        body,
        details: text(&details),
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
#[allow(clippy::too_many_arguments)]
pub(crate) fn http_call(
    m: &mut impl Memory,
    upstream_data: usize,
    upstream_size: usize,
    headers_data: usize,
    headers_size: usize,
    body_data: usize,
    body_size: usize,
    trailers_data: usize,
    trailers_size: usize,
    timeout: u32,
    return_token: usize,
) -> Status {
    let (Some(upstream), Some(headers), Some(body), Some(trailers)) = (
        m.read(upstream_data, upstream_size),
        m.read(headers_data, headers_size),
        m.read(body_data, body_size),
        m.read(trailers_data, trailers_size),
    ) else {
        return Status::BadArgument;
    };
    let (Some(headers), Some(trailers)) = (decode_pairs(&headers), decode_pairs(&trailers)) else {
        return Status::BadArgument;
    };
    let upstream = text(&upstream);
    let headers = HeaderMap::from_pairs(&headers);
    let trailers = HeaderMap::from_pairs(&trailers);
    let token = with_host(|host| {
        if !cluster_known(host, &upstream) {
            return Err(Status::BadArgument);
        }
        if [":method", ":path", ":authority"]
            .iter()
            .any(|name| headers.get(name.as_bytes()).is_none())
        {
            return Err(Status::BadArgument);
        }
        let token = next_token();
        host.http_calls.insert(
            token,
            HttpCallout {
                token,
                context_id: host.current,
                upstream,
                headers: headers.pairs().clone(),
                body,
                trailers: trailers.pairs().clone(),
                timeout: Duration::from_millis(u64::from(timeout)),
            },
        );
        Ok(token)
    });
    answer_token(m, token, return_token)
}

/// Writes a new callout's token; a token the guest cannot receive withdraws the callout.
fn answer_token(
    m: &mut impl Memory,
    token: Option<Result<u32, Status>>,
    return_token: usize,
) -> Status {
    match token {
        None => Status::InternalFailure,
        Some(Err(status)) => status,
        Some(Ok(token)) if put_u32(m, return_token, token) => Status::Ok,
        Some(Ok(token)) => {
            let _ = with_host(|host| {
                host.http_calls.remove(&token);
                host.grpc_calls.remove(&token);
            });
            Status::BadArgument
        }
    }
}

/// A gRPC call's or stream's names and data, as the guest passed them.
struct GrpcOpen {
    upstream: (usize, usize),
    service: (usize, usize),
    method: (usize, usize),
    metadata: (usize, usize),
    message: Option<(usize, usize)>,
    timeout: Option<u32>,
}

/// Shared by `proxy_grpc_call` and `proxy_grpc_stream`.
fn open_grpc(m: &mut impl Memory, open: GrpcOpen, return_token: usize) -> Status {
    let read = |at: (usize, usize)| m.read(at.0, at.1);
    let (Some(upstream), Some(service), Some(method), Some(metadata), Some(message)) = (
        read(open.upstream),
        read(open.service),
        read(open.method),
        read(open.metadata),
        open.message.map_or(Some(Vec::new()), read),
    ) else {
        return Status::BadArgument;
    };
    let Some(metadata) = decode_pairs(&metadata) else {
        return Status::BadArgument;
    };
    let upstream = text(&upstream);
    let timeout = open.timeout;
    let token = with_host(|host| {
        if !cluster_known(host, &upstream) {
            return Err(Status::ParseFailure); // Envoy's answer for an unknown cluster
        }
        let token = next_token();
        host.grpc_calls.insert(
            token,
            GrpcCallout {
                token,
                context_id: host.current,
                upstream,
                service: text(&service),
                method: text(&method),
                initial_metadata: HeaderMap::from_pairs(&metadata).pairs().clone(),
                message,
                stream_messages: Vec::new(),
                streaming: timeout.is_none(),
                timeout: timeout.map(|ms| Duration::from_millis(u64::from(ms))),
            },
        );
        Ok(token)
    });
    answer_token(m, token, return_token)
}

/// Records a unary gRPC call.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grpc_call(
    m: &mut impl Memory,
    upstream_data: usize,
    upstream_size: usize,
    service_data: usize,
    service_size: usize,
    method_data: usize,
    method_size: usize,
    metadata_data: usize,
    metadata_size: usize,
    message_data: usize,
    message_size: usize,
    timeout: u32,
    return_token: usize,
) -> Status {
    let open = GrpcOpen {
        upstream: (upstream_data, upstream_size),
        service: (service_data, service_size),
        method: (method_data, method_size),
        metadata: (metadata_data, metadata_size),
        message: Some((message_data, message_size)),
        timeout: Some(timeout),
    };
    open_grpc(m, open, return_token)
}

/// Records an opened gRPC stream.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grpc_stream(
    m: &mut impl Memory,
    upstream_data: usize,
    upstream_size: usize,
    service_data: usize,
    service_size: usize,
    method_data: usize,
    method_size: usize,
    metadata_data: usize,
    metadata_size: usize,
    return_token: usize,
) -> Status {
    let open = GrpcOpen {
        upstream: (upstream_data, upstream_size),
        service: (service_data, service_size),
        method: (method_data, method_size),
        metadata: (metadata_data, metadata_size),
        message: None,
        timeout: None,
    };
    open_grpc(m, open, return_token)
}

/// Records a message sent on an open gRPC stream.
pub(crate) fn grpc_send(
    m: &mut impl Memory,
    token: u32,
    message_data: usize,
    message_size: usize,
    _end_stream: u32,
) -> Status {
    let Some(message) = m.read(message_data, message_size) else {
        return Status::BadArgument;
    };
    host(|host| match host.grpc_calls.get_mut(&token) {
        Some(call) if call.streaming => {
            call.stream_messages.push(message);
            Status::Ok
        }
        Some(_) => Status::BadArgument,
        None => Status::NotFound,
    })
}

/// Cancels a pending gRPC call or stream.
pub(crate) fn grpc_cancel(_m: &mut impl Memory, token: u32) -> Status {
    host(|host| match host.grpc_calls.remove(&token) {
        Some(_) => Status::Ok,
        None => Status::NotFound,
    })
}

/// Closes a pending gRPC call or stream.
pub(crate) fn grpc_close(m: &mut impl Memory, token: u32) -> Status {
    grpc_cancel(m, token)
}

/// The status of the last callout answer (gRPC status, or Envoy's "reset" for a failed HTTP
/// callout).
pub(crate) fn get_status(
    m: &mut impl Memory,
    return_code: usize,
    return_message_data: usize,
    return_message_size: usize,
) -> Status {
    let Some((code, message)) = with_host(|host| host.status.clone()) else {
        return Status::InternalFailure;
    };
    if !put_u32(m, return_code, code) {
        return Status::BadArgument;
    }
    hand_over(m, &message, return_message_data, return_message_size)
}

// ---------------------------------------------------------------------------------------
// Contexts, foreign functions.

/// Makes `context_id` the context later host calls act on.
pub(crate) fn set_effective_context(_m: &mut impl Memory, context_id: u32) -> Status {
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
pub(crate) fn call_foreign_function(
    m: &mut impl Memory,
    name_data: usize,
    name_size: usize,
    arguments_data: usize,
    arguments_size: usize,
    return_data: usize,
    return_size: usize,
) -> Status {
    let (Some(name), Some(arguments)) = (
        m.read(name_data, name_size),
        m.read(arguments_data, arguments_size),
    ) else {
        return Status::BadArgument;
    };
    let name = text(&name);
    let Some(function) = with_host(|host| host.foreign_functions.get(&name).cloned()) else {
        return Status::InternalFailure;
    };
    let Some(function) = function else {
        return Status::NotFound;
    };
    // Called outside the state borrow; a panicking test closure must not unwind into the guest.
    match catch_unwind(AssertUnwindSafe(|| function(&arguments))) {
        Ok(Ok(result)) => hand_over(m, &result, return_data, return_size),
        Ok(Err(status)) => status,
        Err(_) => Status::InternalFailure,
    }
}

/// Acknowledged; the emulator deletes contexts when the test completes them.
pub(crate) fn done(_m: &mut impl Memory) -> Status {
    Status::Ok
}

// ---------------------------------------------------------------------------------------
// Metrics.

/// Defines a metric; the same name and type answer the same id.
pub(crate) fn define_metric(
    m: &mut impl Memory,
    metric_kind: u32,
    name_data: usize,
    name_size: usize,
    return_id: usize,
) -> Status {
    let Some(name) = m.read(name_data, name_size) else {
        return Status::BadArgument;
    };
    let Some(kind) = metric_type(metric_kind) else {
        return Status::BadArgument;
    };
    let name = text(&name);
    let id = with_host(|host| {
        let index = match host
            .metrics
            .iter()
            .position(|metric| metric.name == name && metric.kind == kind)
        {
            Some(index) => index,
            None => {
                host.metrics.push(Metric {
                    name,
                    kind,
                    value: 0,
                    recorded: Vec::new(),
                });
                host.metrics.len().saturating_sub(1)
            }
        };
        u32::try_from(index.saturating_add(1)).ok()
    });
    match id.flatten() {
        Some(id) if put_u32(m, return_id, id) => Status::Ok,
        Some(_) => Status::BadArgument,
        None => Status::InternalFailure,
    }
}

/// A counter's or gauge's value (`BadArgument` for a histogram, as Envoy).
pub(crate) fn get_metric(m: &mut impl Memory, metric_id: u32, return_value: usize) -> Status {
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
        Some(Some(Ok(value))) if put_u64(m, return_value, value) => Status::Ok,
        Some(Some(Ok(_))) => Status::BadArgument,
    }
}

/// Counter: adds `value`; gauge: sets it; histogram: records it (Envoy's semantics).
pub(crate) fn record_metric(_m: &mut impl Memory, metric_id: u32, value: u64) -> Status {
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
pub(crate) fn increment_metric(_m: &mut impl Memory, metric_id: u32, offset: i64) -> Status {
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

//! The proxy-wasm host calls `sdk_ext::host` makes, implemented over Envoy's dynamic-module
//! callbacks for the current context (see the parent module). Same names and signatures as
//! the imports they replace, so `host.rs` is unchanged above them: each answers a proxy-wasm
//! status (`0` Ok, `1` NotFound, `2` BadArgument, `10` InternalFailure, `12` Unimplemented)
//! and hands back values as the proxy-wasm host does (through `host::allocate`).

#![allow(clippy::too_many_arguments)]

use super::abi::{self, EnvoyBuffer, EnvoyHttpHeader, EnvoyPtr, ModuleBuffer, ModuleHttpHeader};
use super::{current, Answer, AnswerRef, Body, Current, MetricDef, ModuleConfig};
use crate::host::{self, BufferType, MapType, MetricType, Status, StreamType};
use std::ptr::null;

const OK: u32 = Status::Ok as u32;
const NOT_FOUND: u32 = Status::NotFound as u32;
const BAD_ARGUMENT: u32 = Status::BadArgument as u32;
const INTERNAL: u32 = Status::InternalFailure as u32;
const UNIMPLEMENTED: u32 = Status::Unimplemented as u32;

/// # Safety
/// `data` is null or points to `size` readable bytes.
unsafe fn slice<'a>(data: *const u8, size: usize) -> &'a [u8] {
    if data.is_null() || size == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(data, size) }
    }
}

/// Hands `bytes` to the caller as the proxy-wasm host does (an allocation the guest owns).
///
/// # Safety
/// The out pointers are writable (they come from `host.rs`'s wrappers).
unsafe fn give(bytes: &[u8], data: *mut *mut u8, size: *mut usize) -> u32 {
    let p = host::allocate(bytes.len());
    if p.is_null() {
        return INTERNAL;
    }
    if !bytes.is_empty() {
        // SAFETY: `p` has room for `bytes.len()` bytes (allocate's contract).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    }
    // SAFETY: the caller's contract.
    unsafe {
        *data = p;
        *size = bytes.len();
    }
    OK
}

/// The stream of the current context.
fn stream() -> Option<(EnvoyPtr, &'static ModuleConfig, Body, Option<Answer>)> {
    match current() {
        Current::Stream {
            envoy,
            config,
            body,
            answer,
        } => {
            // SAFETY: the stream holds its config alive for the whole hook.
            let config = unsafe { &*config };
            Some((envoy, config, body, answer.get()))
        }
        _ => None,
    }
}

/// The connection of the current context (network filter).
fn connection() -> Option<(EnvoyPtr, Option<Answer>)> {
    match current() {
        Current::Connection { envoy, answer, .. } => Some((envoy, answer.get())),
        _ => None,
    }
}

/// The callout answer of the current context, if it is one's.
fn answer() -> Option<Answer> {
    match current() {
        Current::Stream { answer, .. }
        | Current::Connection { answer, .. }
        | Current::Root { answer, .. } => answer.get(),
        _ => None,
    }
}

/// The configuration of the current context (any kind).
fn config() -> Option<&'static ModuleConfig> {
    match current() {
        Current::None => None,
        // SAFETY: every context keeps its config alive for the whole hook.
        Current::Config { config, .. }
        | Current::Plugin { config }
        | Current::Root { config, .. }
        | Current::Stream { config, .. }
        | Current::Connection { config, .. } => Some(unsafe { &*config }),
    }
}

fn header_type(map: u32) -> Option<u32> {
    match map {
        m if m == MapType::HttpRequestHeaders as u32 => Some(abi::HEADER_REQUEST),
        m if m == MapType::HttpRequestTrailers as u32 => Some(abi::HEADER_REQUEST_TRAILER),
        m if m == MapType::HttpResponseHeaders as u32 => Some(abi::HEADER_RESPONSE),
        m if m == MapType::HttpResponseTrailers as u32 => Some(abi::HEADER_RESPONSE_TRAILER),
        _ => None,
    }
}

// ----- logging, clock, ticks -----------------------------------------------------------

pub(crate) unsafe fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32 {
    // SAFETY: host.rs passes a live &str.
    let message = unsafe { slice(message_data, message_size) };
    // proxy-wasm and Envoy's dynamic-module log levels are the same 0..=5 scale.
    // SAFETY: a live buffer for the call.
    unsafe {
        abi::envoy_dynamic_module_callback_log(
            level.min(abi::LOG_CRITICAL),
            ModuleBuffer::of(message),
        )
    };
    OK
}

pub(crate) unsafe fn proxy_get_log_level(return_level: *mut u32) -> u32 {
    let level = (abi::LOG_TRACE..=abi::LOG_CRITICAL)
        // SAFETY: a plain call.
        .find(|&l| unsafe { abi::envoy_dynamic_module_callback_log_enabled(l) })
        .unwrap_or(abi::LOG_CRITICAL);
    // SAFETY: host.rs passes a writable u32.
    unsafe { *return_level = level };
    OK
}

pub(crate) unsafe fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    // SAFETY: host.rs passes a writable u64.
    unsafe { *return_time = now };
    OK
}

pub(crate) unsafe fn proxy_set_tick_period_milliseconds(_period: u32) -> u32 {
    // The dispatch asks `Plugin::tick_period` itself (see the parent module).
    UNIMPLEMENTED
}

// ----- buffers ------------------------------------------------------------------------------

fn chunks(envoy: EnvoyPtr, body_type: u32) -> Vec<EnvoyBuffer> {
    // SAFETY: plain calls on the current stream; the array is sized by the first.
    unsafe {
        let n = abi::envoy_dynamic_module_callback_http_get_body_chunks_size(envoy, body_type);
        if n == 0 {
            return Vec::new();
        }
        let mut out = vec![EnvoyBuffer::NULL; n];
        if abi::envoy_dynamic_module_callback_http_get_body_chunks(
            envoy,
            body_type,
            out.as_mut_ptr(),
        ) {
            out
        } else {
            Vec::new()
        }
    }
}

/// The body the filter sees in `body_type`'s direction: what is buffered, then the chunk in
/// flight during that direction's body phase (unless the chunk is the buffer itself).
fn body_view(envoy: EnvoyPtr, phase: Body, request: bool) -> Vec<EnvoyBuffer> {
    let (buffered, received, in_phase) = if request {
        (
            abi::BODY_BUFFERED_REQUEST,
            abi::BODY_RECEIVED_REQUEST,
            phase == Body::Request,
        )
    } else {
        (
            abi::BODY_BUFFERED_RESPONSE,
            abi::BODY_RECEIVED_RESPONSE,
            phase == Body::Response,
        )
    };
    let mut all = Vec::new();
    // SAFETY: plain calls on the current stream.
    let same = unsafe {
        if request {
            abi::envoy_dynamic_module_callback_http_received_buffered_request_body(envoy)
        } else {
            abi::envoy_dynamic_module_callback_http_received_buffered_response_body(envoy)
        }
    };
    if !(in_phase && same) {
        all.extend(chunks(envoy, buffered));
    }
    if in_phase {
        all.extend(chunks(envoy, received));
    }
    all
}

fn concat(parts: &[EnvoyBuffer], start: usize, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut skip = start;
    for part in parts {
        if out.len() >= max {
            break;
        }
        // SAFETY: Envoy's buffers, valid for the current hook.
        let bytes = unsafe { part.bytes() };
        let from = skip.min(bytes.len());
        skip -= from;
        let rest = bytes.get(from..).unwrap_or_default();
        let take = rest.len().min(max - out.len());
        out.extend_from_slice(rest.get(..take).unwrap_or_default());
    }
    out
}

pub(crate) unsafe fn proxy_get_buffer_bytes(
    buffer_type: u32,
    start: usize,
    max_size: usize,
    return_buffer_data: *mut *mut u8,
    return_buffer_size: *mut usize,
) -> u32 {
    let bytes = match buffer_type {
        t if t == BufferType::HttpRequestBody as u32
            || t == BufferType::HttpResponseBody as u32 =>
        {
            let Some((envoy, _, phase, _)) = stream() else {
                return NOT_FOUND;
            };
            let parts = body_view(envoy, phase, t == BufferType::HttpRequestBody as u32);
            concat(&parts, start, max_size)
        }
        t if t == BufferType::HttpCallResponseBody as u32 => {
            let Some(answer) = answer() else {
                return NOT_FOUND;
            };
            concat(super::answer_chunks(&answer), start, max_size)
        }
        t if t == BufferType::DownstreamData as u32 || t == BufferType::UpstreamData as u32 => {
            let Some((envoy, _)) = connection() else {
                return NOT_FOUND;
            };
            concat(
                &net_chunks(envoy, t == BufferType::DownstreamData as u32),
                start,
                max_size,
            )
        }
        t if t == BufferType::PluginConfiguration as u32 => {
            let Some(config) = config() else {
                return NOT_FOUND;
            };
            let all = config.bytes();
            let from = start.min(all.len());
            let rest = all.get(from..).unwrap_or_default();
            rest.get(..max_size.min(rest.len()))
                .unwrap_or_default()
                .to_vec()
        }
        _ => return NOT_FOUND,
    };
    // SAFETY: forwarded out pointers.
    unsafe { give(&bytes, return_buffer_data, return_buffer_size) }
}

/// The connection's read (from the client) or write (towards it) buffer.
fn net_chunks(envoy: EnvoyPtr, read: bool) -> Vec<EnvoyBuffer> {
    // SAFETY: plain calls on the current connection; the array is sized by the first.
    unsafe {
        let n = if read {
            abi::envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(envoy)
        } else {
            abi::envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(envoy)
        };
        if n == 0 {
            return Vec::new();
        }
        let mut out = vec![EnvoyBuffer::NULL; n];
        let ok = if read {
            abi::envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(
                envoy,
                out.as_mut_ptr(),
            )
        } else {
            abi::envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(
                envoy,
                out.as_mut_ptr(),
            )
        };
        if ok {
            out
        } else {
            Vec::new()
        }
    }
}

/// `set_buffer` on a connection buffer: the buffer becomes `old[..start] + value + old[end..]`.
fn set_net_buffer(envoy: EnvoyPtr, read: bool, start: usize, size: usize, value: &[u8]) -> u32 {
    let old = concat(&net_chunks(envoy, read), 0, usize::MAX);
    if start > old.len() {
        return BAD_ARGUMENT;
    }
    let end = start.saturating_add(size).min(old.len());
    let mut new = Vec::with_capacity(old.len() - (end - start) + value.len());
    new.extend_from_slice(old.get(..start).unwrap_or_default());
    new.extend_from_slice(value);
    new.extend_from_slice(old.get(end..).unwrap_or_default());
    // SAFETY: plain calls on the current connection with live buffers.
    let ok = unsafe {
        if read {
            abi::envoy_dynamic_module_callback_network_filter_drain_read_buffer(envoy, old.len())
                && abi::envoy_dynamic_module_callback_network_filter_append_read_buffer(
                    envoy,
                    ModuleBuffer::of(&new),
                )
        } else {
            abi::envoy_dynamic_module_callback_network_filter_drain_write_buffer(envoy, old.len())
                && abi::envoy_dynamic_module_callback_network_filter_append_write_buffer(
                    envoy,
                    ModuleBuffer::of(&new),
                )
        }
    };
    if ok {
        OK
    } else {
        INTERNAL
    }
}

pub(crate) unsafe fn proxy_set_buffer_bytes(
    buffer_type: u32,
    start: usize,
    size: usize,
    buffer_data: *const u8,
    buffer_size: usize,
) -> u32 {
    // SAFETY: host.rs passes a live slice.
    let value = unsafe { slice(buffer_data, buffer_size) };
    let request = match buffer_type {
        t if t == BufferType::HttpRequestBody as u32 => true,
        t if t == BufferType::HttpResponseBody as u32 => false,
        t if t == BufferType::DownstreamData as u32 || t == BufferType::UpstreamData as u32 => {
            let Some((envoy, _)) = connection() else {
                return NOT_FOUND;
            };
            return set_net_buffer(
                envoy,
                t == BufferType::DownstreamData as u32,
                start,
                size,
                value,
            );
        }
        _ => return UNIMPLEMENTED,
    };
    let Some((envoy, _, phase, _)) = stream() else {
        return NOT_FOUND;
    };
    let parts = body_view(envoy, phase, request);
    let old = concat(&parts, 0, usize::MAX);
    if start > old.len() {
        return BAD_ARGUMENT;
    }
    let end = start.saturating_add(size).min(old.len());
    let mut new = Vec::with_capacity(old.len() - (end - start) + value.len());
    new.extend_from_slice(old.get(..start).unwrap_or_default());
    new.extend_from_slice(value);
    new.extend_from_slice(old.get(end..).unwrap_or_default());
    let (buffered, received, in_phase) = if request {
        (
            abi::BODY_BUFFERED_REQUEST,
            abi::BODY_RECEIVED_REQUEST,
            phase == Body::Request,
        )
    } else {
        (
            abi::BODY_BUFFERED_RESPONSE,
            abi::BODY_RECEIVED_RESPONSE,
            phase == Body::Response,
        )
    };
    let target = if in_phase { received } else { buffered };
    // SAFETY: plain calls on the current stream with live buffers.
    let ok = unsafe {
        let mut ok = true;
        for t in [buffered, received] {
            let n = abi::envoy_dynamic_module_callback_http_get_body_size(envoy, t);
            if n > 0 {
                ok &= abi::envoy_dynamic_module_callback_http_drain_body(envoy, t, n);
            }
        }
        ok && abi::envoy_dynamic_module_callback_http_append_body(
            envoy,
            target,
            ModuleBuffer::of(&new),
        )
    };
    if ok {
        OK
    } else {
        INTERNAL
    }
}

// ----- headers -------------------------------------------------------------------------------

pub(crate) unsafe fn proxy_get_header_map_pairs(
    map_type: u32,
    return_map_data: *mut *mut u8,
    return_map_size: *mut usize,
) -> u32 {
    if let (Some(a), None) = (answer(), stream()) {
        if map_type != MapType::HttpCallResponseHeaders as u32 {
            return NOT_FOUND;
        }
        // SAFETY: Envoy's headers for the callout hook; forwarded out pointers.
        return unsafe { give_pairs(super::answer_headers(&a), return_map_data, return_map_size) };
    }
    let Some((envoy, _, _, answer)) = stream() else {
        return NOT_FOUND;
    };
    let headers: Vec<EnvoyHttpHeader> = match (header_type(map_type), answer) {
        (Some(t), _) => {
            // SAFETY: plain calls on the current stream; the array is sized by the first.
            unsafe {
                let n = abi::envoy_dynamic_module_callback_http_get_headers_size(envoy, t);
                let mut out = vec![EnvoyHttpHeader::NULL; n];
                if n > 0
                    && !abi::envoy_dynamic_module_callback_http_get_headers(
                        envoy,
                        t,
                        out.as_mut_ptr(),
                    )
                {
                    return NOT_FOUND;
                }
                out
            }
        }
        (None, Some(a)) if map_type == MapType::HttpCallResponseHeaders as u32 => {
            super::answer_headers(&a).to_vec()
        }
        _ => return NOT_FOUND,
    };
    // SAFETY: forwarded out pointers.
    unsafe { give_pairs(&headers, return_map_data, return_map_size) }
}

/// Encodes Envoy's headers in the proxy-wasm map format and hands them out.
///
/// # Safety
/// The headers are Envoy's, valid for the current hook; the out pointers are writable.
unsafe fn give_pairs(headers: &[EnvoyHttpHeader], data: *mut *mut u8, size: *mut usize) -> u32 {
    let pairs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|h| {
            // SAFETY: Envoy's header buffers, valid for the current hook.
            let (k, v) = unsafe {
                (
                    slice(h.key_ptr, h.key_length),
                    slice(h.value_ptr, h.value_length),
                )
            };
            (std::str::from_utf8(k).unwrap_or_default(), v)
        })
        .collect();
    let Ok(encoded) = host::encode_pairs(&pairs) else {
        return BAD_ARGUMENT;
    };
    // SAFETY: forwarded out pointers.
    unsafe { give(&encoded, data, size) }
}

pub(crate) unsafe fn proxy_get_header_map_value(
    map_type: u32,
    key_data: *const u8,
    key_size: usize,
    return_value_data: *mut *mut u8,
    return_value_size: *mut usize,
) -> u32 {
    // SAFETY: host.rs passes a live &str.
    let key = unsafe { slice(key_data, key_size) };
    // One read of the current context (a stream's header is the common case).
    let now = current();
    let answer = match now {
        Current::Stream { answer, .. }
        | Current::Connection { answer, .. }
        | Current::Root { answer, .. } => answer,
        _ => AnswerRef::NONE,
    };
    let on_stream = match now {
        Current::Stream { envoy, .. } => Some(envoy),
        _ => None,
    };
    if let (Some(t), Some(envoy)) = (header_type(map_type), on_stream) {
        let mut value = EnvoyBuffer::NULL;
        let mut count = 0usize;
        // SAFETY: a plain call on the current stream with live buffers.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_header(
                envoy,
                t,
                ModuleBuffer::of(key),
                &mut value,
                0,
                &mut count,
            )
        };
        if !ok || count == 0 {
            return NOT_FOUND;
        }
        // SAFETY: Envoy's buffer, valid for the current hook; then forwarded out pointers.
        return unsafe { give(value.bytes(), return_value_data, return_value_size) };
    }
    if let (Some(a), true) = (
        answer.get(),
        map_type == MapType::HttpCallResponseHeaders as u32,
    ) {
        for h in super::answer_headers(&a) {
            // SAFETY: Envoy's header buffers, valid for the callout hook.
            let k = unsafe { slice(h.key_ptr, h.key_length) };
            if k.eq_ignore_ascii_case(key) {
                // SAFETY: as above; then forwarded out pointers.
                return unsafe {
                    give(
                        slice(h.value_ptr, h.value_length),
                        return_value_data,
                        return_value_size,
                    )
                };
            }
        }
    }
    NOT_FOUND
}

fn edit_header(map_type: u32, key: &[u8], value: Option<&[u8]>, add: bool) -> u32 {
    let Some((envoy, _, _, _)) = stream() else {
        return NOT_FOUND;
    };
    let Some(t) = header_type(map_type) else {
        return BAD_ARGUMENT;
    };
    let value = value.map_or(ModuleBuffer::NULL, ModuleBuffer::of);
    // SAFETY: plain calls on the current stream with live buffers.
    let ok = unsafe {
        if add {
            abi::envoy_dynamic_module_callback_http_add_header(
                envoy,
                t,
                ModuleBuffer::of(key),
                value,
            )
        } else {
            abi::envoy_dynamic_module_callback_http_set_header(
                envoy,
                t,
                ModuleBuffer::of(key),
                value,
            )
        }
    };
    if ok {
        OK
    } else {
        NOT_FOUND
    }
}

pub(crate) unsafe fn proxy_replace_header_map_value(
    map_type: u32,
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
) -> u32 {
    // SAFETY: host.rs passes live slices. A null value would remove: never null here.
    let (key, value) = unsafe { (slice(key_data, key_size), slice(value_data, value_size)) };
    let value: &[u8] = if value.is_empty() { b"" } else { value };
    edit_header(map_type, key, Some(value), false)
}

pub(crate) unsafe fn proxy_add_header_map_value(
    map_type: u32,
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
) -> u32 {
    // SAFETY: host.rs passes live slices.
    let (key, value) = unsafe { (slice(key_data, key_size), slice(value_data, value_size)) };
    let value: &[u8] = if value.is_empty() { b"" } else { value };
    edit_header(map_type, key, Some(value), true)
}

pub(crate) unsafe fn proxy_remove_header_map_value(
    map_type: u32,
    key_data: *const u8,
    key_size: usize,
) -> u32 {
    // SAFETY: host.rs passes a live &str.
    let key = unsafe { slice(key_data, key_size) };
    edit_header(map_type, key, None, false)
}

// ----- properties -------------------------------------------------------------------------------

enum Attr {
    Str(u32),
    Int(u32),
    Bool(u32),
}

/// proxy-wasm property paths → Envoy attributes (strings as bytes, integers as 8-byte
/// little-endian, booleans as one byte, as Envoy's wasm host encodes them).
fn attribute(path: &[u8]) -> Option<Attr> {
    Some(match path {
        b"source\0address" => Attr::Str(abi::ATTR_SOURCE_ADDRESS),
        b"source\0port" => Attr::Int(abi::ATTR_SOURCE_PORT),
        b"destination\0address" => Attr::Str(abi::ATTR_DESTINATION_ADDRESS),
        b"destination\0port" => Attr::Int(abi::ATTR_DESTINATION_PORT),
        b"upstream\0address" => Attr::Str(abi::ATTR_UPSTREAM_ADDRESS),
        b"request\0path" => Attr::Str(abi::ATTR_REQUEST_PATH),
        b"request\0url_path" => Attr::Str(abi::ATTR_REQUEST_URL_PATH),
        b"request\0host" => Attr::Str(abi::ATTR_REQUEST_HOST),
        b"request\0scheme" => Attr::Str(abi::ATTR_REQUEST_SCHEME),
        b"request\0method" => Attr::Str(abi::ATTR_REQUEST_METHOD),
        b"request\0referer" => Attr::Str(abi::ATTR_REQUEST_REFERER),
        b"request\0useragent" => Attr::Str(abi::ATTR_REQUEST_USER_AGENT),
        b"request\0id" => Attr::Str(abi::ATTR_REQUEST_ID),
        b"request\0protocol" => Attr::Str(abi::ATTR_REQUEST_PROTOCOL),
        b"request\0query" => Attr::Str(abi::ATTR_REQUEST_QUERY),
        b"response\0code" => Attr::Int(abi::ATTR_RESPONSE_CODE),
        b"response\0code_details" => Attr::Str(abi::ATTR_RESPONSE_CODE_DETAILS),
        b"connection\0id" => Attr::Int(abi::ATTR_CONNECTION_ID),
        b"connection\0mtls" => Attr::Bool(abi::ATTR_CONNECTION_MTLS),
        b"connection\0requested_server_name" => {
            Attr::Str(abi::ATTR_CONNECTION_REQUESTED_SERVER_NAME)
        }
        b"xds\0cluster_name" => Attr::Str(abi::ATTR_XDS_CLUSTER_NAME),
        b"xds\0route_name" => Attr::Str(abi::ATTR_XDS_ROUTE_NAME),
        b"xds\0virtual_host_name" => Attr::Str(abi::ATTR_XDS_VIRTUAL_HOST_NAME),
        _ => return None,
    })
}

pub(crate) unsafe fn proxy_get_property(
    path_data: *const u8,
    path_size: usize,
    return_value_data: *mut *mut u8,
    return_value_size: *mut usize,
) -> u32 {
    // SAFETY: host.rs passes a live slice.
    let path = unsafe { slice(path_data, path_size) };
    if let Some((envoy, _)) = connection() {
        // SAFETY: forwarded out pointers.
        return unsafe { connection_property(envoy, path, return_value_data, return_value_size) };
    }
    let Some((envoy, _, _, _)) = stream() else {
        return NOT_FOUND;
    };
    let Some(attr) = attribute(path) else {
        return NOT_FOUND;
    };
    // SAFETY: plain calls on the current stream; Envoy's buffer is valid for the hook; then
    // forwarded out pointers.
    unsafe {
        match attr {
            Attr::Str(id) => {
                let mut v = EnvoyBuffer::NULL;
                if !abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                    envoy, id, &mut v,
                ) {
                    return NOT_FOUND;
                }
                give(v.bytes(), return_value_data, return_value_size)
            }
            Attr::Int(id) => {
                let mut v = 0u64;
                if !abi::envoy_dynamic_module_callback_http_filter_get_attribute_int(
                    envoy, id, &mut v,
                ) {
                    return NOT_FOUND;
                }
                give(&v.to_le_bytes(), return_value_data, return_value_size)
            }
            Attr::Bool(id) => {
                let mut v = false;
                if !abi::envoy_dynamic_module_callback_http_filter_get_attribute_bool(
                    envoy, id, &mut v,
                ) {
                    return NOT_FOUND;
                }
                give(&[u8::from(v)], return_value_data, return_value_size)
            }
        }
    }
}

/// A connection's properties: the client's address (`source.address`, `ip:port` or
/// `[ip]:port`) and port; others are not available to a dynamic-module network filter.
///
/// # Safety
/// The out pointers are writable.
unsafe fn connection_property(
    envoy: EnvoyPtr,
    path: &[u8],
    data: *mut *mut u8,
    size: *mut usize,
) -> u32 {
    let mut address = EnvoyBuffer::NULL;
    let mut port = 0u32;
    // SAFETY: a plain call on the current connection.
    if !unsafe {
        abi::envoy_dynamic_module_callback_network_filter_get_remote_address(
            envoy,
            &mut address,
            &mut port,
        )
    } {
        return NOT_FOUND;
    }
    // SAFETY: Envoy's buffer, valid for the current hook.
    let ip = unsafe { address.bytes() };
    let value = match path {
        b"source\0address" => {
            let mut v = Vec::with_capacity(ip.len() + 8);
            let v6 = ip.contains(&b':');
            if v6 {
                v.push(b'[');
            }
            v.extend_from_slice(ip);
            if v6 {
                v.push(b']');
            }
            v.push(b':');
            v.extend_from_slice(port.to_string().as_bytes());
            v
        }
        b"source\0port" => u64::from(port).to_le_bytes().to_vec(),
        _ => return NOT_FOUND,
    };
    // SAFETY: forwarded out pointers.
    unsafe { give(&value, data, size) }
}

pub(crate) unsafe fn proxy_set_property(
    _path_data: *const u8,
    _path_size: usize,
    _value_data: *const u8,
    _value_size: usize,
) -> u32 {
    UNIMPLEMENTED
}

// ----- local responses, stream control ----------------------------------------------------

fn module_headers(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<ModuleHttpHeader> {
    pairs
        .iter()
        .map(|(k, v)| ModuleHttpHeader {
            key_ptr: k.as_ptr(),
            key_length: k.len(),
            value_ptr: v.as_ptr(),
            value_length: v.len(),
        })
        .collect()
}

pub(crate) unsafe fn proxy_send_local_response(
    status_code: u32,
    status_code_details_data: *const u8,
    status_code_details_size: usize,
    body_data: *const u8,
    body_size: usize,
    headers_data: *const u8,
    headers_size: usize,
    _grpc_status: i32,
) -> u32 {
    let Some((envoy, _, _, _)) = stream() else {
        return NOT_FOUND;
    };
    // SAFETY: host.rs passes live slices.
    let (details, body, encoded) = unsafe {
        (
            slice(status_code_details_data, status_code_details_size),
            slice(body_data, body_size),
            slice(headers_data, headers_size),
        )
    };
    let Some(pairs) = host::decode_pairs(encoded) else {
        return BAD_ARGUMENT;
    };
    let headers = module_headers(&pairs);
    let details = if details.is_empty() {
        ModuleBuffer::NULL
    } else {
        ModuleBuffer::of(details)
    };
    // SAFETY: live buffers for the call, on the current stream.
    unsafe {
        abi::envoy_dynamic_module_callback_http_send_response(
            envoy,
            status_code,
            headers.as_ptr(),
            headers.len(),
            ModuleBuffer::of(body),
            details,
        )
    };
    OK
}

pub(crate) unsafe fn proxy_continue_stream(stream_type: u32) -> u32 {
    if let Some((envoy, _)) = connection() {
        if stream_type != StreamType::Downstream as u32 {
            return UNIMPLEMENTED;
        }
        // SAFETY: a plain call on the current connection.
        unsafe { abi::envoy_dynamic_module_callback_network_filter_continue_reading(envoy) };
        return OK;
    }
    let Some((envoy, _, _, _)) = stream() else {
        return NOT_FOUND;
    };
    // SAFETY: plain calls on the current stream.
    unsafe {
        match stream_type {
            t if t == StreamType::HttpRequest as u32 => {
                abi::envoy_dynamic_module_callback_http_filter_continue_decoding(envoy)
            }
            t if t == StreamType::HttpResponse as u32 => {
                abi::envoy_dynamic_module_callback_http_filter_continue_encoding(envoy)
            }
            _ => return UNIMPLEMENTED,
        }
    }
    OK
}

pub(crate) unsafe fn proxy_close_stream(stream_type: u32) -> u32 {
    match connection() {
        Some((envoy, _)) if stream_type == StreamType::Downstream as u32 => {
            // SAFETY: a plain call on the current connection.
            unsafe {
                abi::envoy_dynamic_module_callback_network_filter_close(
                    envoy,
                    abi::CLOSE_FLUSH_WRITE,
                )
            };
            OK
        }
        _ => UNIMPLEMENTED,
    }
}

// ----- shared data -----------------------------------------------------------------------------

// One store for every worker and configuration of this module, as Envoy's wasm host keeps one
// per `vm_id`: atomic slots found through per-thread caches (`shared.rs`).

pub(crate) unsafe fn proxy_get_shared_data(
    key_data: *const u8,
    key_size: usize,
    return_value_data: *mut *mut u8,
    return_value_size: *mut usize,
    return_cas: *mut u32,
) -> u32 {
    // SAFETY: host.rs passes a live &str.
    let key = unsafe { slice(key_data, key_size) };
    let found = super::shared::get(key, |value| {
        let p = host::allocate(value.len());
        if !p.is_null() && !value.is_empty() {
            // SAFETY: `p` has room for `value.len()` bytes (allocate's contract). A full
            // inline value (a rate-limit slot) is a constant-size copy: no `memcpy` call.
            unsafe {
                if value.len() == super::shared::INLINE {
                    std::ptr::copy_nonoverlapping(value.as_ptr(), p, super::shared::INLINE);
                } else {
                    std::ptr::copy_nonoverlapping(value.as_ptr(), p, value.len());
                }
            }
        }
        (p, value.len())
    });
    let Some(((p, len), cas)) = found else {
        return NOT_FOUND;
    };
    if p.is_null() {
        return INTERNAL;
    }
    // SAFETY: host.rs passes writable out pointers.
    unsafe {
        *return_value_data = p;
        *return_value_size = len;
        *return_cas = cas;
    }
    OK
}

pub(crate) unsafe fn proxy_set_shared_data(
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
    cas: u32,
) -> u32 {
    // SAFETY: host.rs passes live slices.
    let (key, value) = unsafe { (slice(key_data, key_size), slice(value_data, value_size)) };
    match super::shared::set(key, value, cas) {
        Ok(()) => OK,
        Err(super::shared::SetError::CasMismatch) => Status::CasMismatch as u32,
        Err(super::shared::SetError::Poisoned) => INTERNAL,
    }
}

// ----- callouts ---------------------------------------------------------------------------------

/// Which Envoy object a callout is made on.
#[derive(Clone, Copy)]
enum CalloutVia {
    Stream,
    Connection,
    Config,
}

pub(crate) unsafe fn proxy_http_call(
    upstream_data: *const u8,
    upstream_size: usize,
    headers_data: *const u8,
    headers_size: usize,
    body_data: *const u8,
    body_size: usize,
    _trailers_data: *const u8,
    _trailers_size: usize,
    timeout: u32,
    return_token: *mut u32,
) -> u32 {
    // A stream's, a connection's, or an HTTP configuration's root plugin's (on the main
    // thread, through the config); see the parent module.
    let (envoy, via) = match (stream(), connection(), current()) {
        (Some((envoy, _, _, _)), _, _) => (envoy, CalloutVia::Stream),
        (None, Some((envoy, _)), _) => (envoy, CalloutVia::Connection),
        // SAFETY: the root plugin's config is alive for the whole hook.
        (None, None, Current::Root { config, .. }) => match unsafe { &*config } {
            c if c.root_on_main() => (c.envoy(), CalloutVia::Config),
            _ => return UNIMPLEMENTED,
        },
        _ => {
            if let Some(config) = config() {
                config.root_callout_attempted();
            }
            return UNIMPLEMENTED;
        }
    };
    // SAFETY: host.rs passes live slices.
    let (cluster, encoded, body) = unsafe {
        (
            slice(upstream_data, upstream_size),
            slice(headers_data, headers_size),
            slice(body_data, body_size),
        )
    };
    let Some(pairs) = host::decode_pairs(encoded) else {
        return BAD_ARGUMENT;
    };
    // Envoy's dynamic-module callouts want `host`; proxy-wasm callers give `:authority`.
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs
        .into_iter()
        .map(|(k, v)| {
            if k == b":authority" {
                (b"host".to_vec(), v)
            } else {
                (k, v)
            }
        })
        .collect();
    let headers = module_headers(&pairs);
    let mut id = 0u64;
    // SAFETY: live buffers for the call, on the current stream.
    let result = unsafe {
        let callout = match via {
            CalloutVia::Stream => abi::envoy_dynamic_module_callback_http_filter_http_callout,
            CalloutVia::Connection => {
                abi::envoy_dynamic_module_callback_network_filter_http_callout
            }
            CalloutVia::Config => {
                abi::envoy_dynamic_module_callback_http_filter_config_http_callout
            }
        };
        callout(
            envoy,
            &mut id,
            ModuleBuffer::of(cluster),
            headers.as_ptr(),
            headers.len(),
            ModuleBuffer::of(body),
            u64::from(timeout),
        )
    };
    match result {
        abi::CALLOUT_INIT_SUCCESS => match u32::try_from(id) {
            Ok(token) => {
                // SAFETY: host.rs passes a writable u32.
                unsafe { *return_token = token };
                OK
            }
            Err(_) => INTERNAL,
        },
        abi::CALLOUT_INIT_CLUSTER_NOT_FOUND | abi::CALLOUT_INIT_MISSING_REQUIRED_HEADERS => {
            BAD_ARGUMENT
        }
        _ => INTERNAL,
    }
}

// ----- metrics ----------------------------------------------------------------------------------

/// Metric ids handed to the filter: Envoy's per-kind id, shifted, with the kind in the low
/// two bits (proxy-wasm has one id space, Envoy's dynamic modules one per kind).
fn encode_id(kind: u32, id: usize) -> Option<u32> {
    u32::try_from(id)
        .ok()
        .filter(|&i| i < (1 << 30))
        .map(|i| (i << 2) | kind)
}

pub(crate) unsafe fn proxy_define_metric(
    metric_type: u32,
    name_data: *const u8,
    name_size: usize,
    return_id: *mut u32,
) -> u32 {
    // SAFETY: host.rs passes a live &str.
    let name = unsafe { slice(name_data, name_size) };
    let Ok(name) = std::str::from_utf8(name) else {
        return BAD_ARGUMENT;
    };
    let found = match current() {
        Current::Config { envoy, config } => {
            // SAFETY: the config is alive for the whole config hook.
            let config = unsafe { &*config };
            if let Some(id) = config.find_metric(metric_type, name) {
                Some(id)
            } else {
                let mut id = 0usize;
                let buf = ModuleBuffer::of(name.as_bytes());
                // SAFETY: live buffers for the call on the config Envoy is creating.
                let result = unsafe {
                    match metric_type {
                        t if config.is_network() => {
                            let define = match t {
                                t if t == MetricType::Counter as u32 => {
                                    abi::envoy_dynamic_module_callback_network_filter_config_define_counter
                                }
                                t if t == MetricType::Gauge as u32 => {
                                    abi::envoy_dynamic_module_callback_network_filter_config_define_gauge
                                }
                                t if t == MetricType::Histogram as u32 => {
                                    abi::envoy_dynamic_module_callback_network_filter_config_define_histogram
                                }
                                _ => return BAD_ARGUMENT,
                            };
                            define(envoy, buf, &mut id)
                        }
                        t if t == MetricType::Counter as u32 => {
                            abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                                envoy,
                                buf,
                                null(),
                                0,
                                &mut id,
                            )
                        }
                        t if t == MetricType::Gauge as u32 => {
                            abi::envoy_dynamic_module_callback_http_filter_config_define_gauge(
                                envoy,
                                buf,
                                null(),
                                0,
                                &mut id,
                            )
                        }
                        t if t == MetricType::Histogram as u32 => {
                            abi::envoy_dynamic_module_callback_http_filter_config_define_histogram(
                                envoy,
                                buf,
                                null(),
                                0,
                                &mut id,
                            )
                        }
                        _ => return BAD_ARGUMENT,
                    }
                };
                if result != abi::METRICS_SUCCESS {
                    return INTERNAL;
                }
                let encoded = encode_id(metric_type, id);
                if let Some(encoded) = encoded {
                    config.record_metric(MetricDef {
                        kind: metric_type,
                        name: name.to_string(),
                        id: encoded,
                    });
                }
                encoded
            }
        }
        // After config time Envoy creates no metrics: a name resolves to the id it got then.
        _ => match config() {
            Some(config) => config.find_metric(metric_type, name),
            None => return UNIMPLEMENTED,
        },
    };
    match found {
        Some(id) => {
            // SAFETY: host.rs passes a writable u32.
            unsafe { *return_id = id };
            OK
        }
        None => NOT_FOUND,
    }
}

pub(crate) unsafe fn proxy_get_metric(_metric_id: u32, _return_value: *mut u64) -> u32 {
    UNIMPLEMENTED
}

/// Which Envoy object a metric update goes through: the stream (or connection), or the
/// configuration; `bool`: a network filter's.
enum Via {
    Stream(EnvoyPtr),
    Config(EnvoyPtr, bool),
    Connection(EnvoyPtr),
}

fn via() -> Option<Via> {
    match current() {
        Current::None => None,
        Current::Stream { envoy, .. } => Some(Via::Stream(envoy)),
        Current::Connection { envoy, .. } => Some(Via::Connection(envoy)),
        // SAFETY: alive for the whole hook.
        Current::Config { envoy, config } => {
            Some(Via::Config(envoy, unsafe { &*config }.is_network()))
        }
        Current::Plugin { config } | Current::Root { config, .. } => {
            // SAFETY: alive for the whole hook.
            let config = unsafe { &*config };
            Some(Via::Config(config.envoy(), config.is_network()))
        }
    }
}

type NetUpdate = unsafe extern "C" fn(EnvoyPtr, usize, u64) -> u32;

/// The network filter's metric updates (no labels), for the connection and the config.
fn net_update(kind: u32, op: Op) -> Option<(NetUpdate, NetUpdate)> {
    Some(match (kind, op) {
        (k, Op::Add) if k == MetricType::Counter as u32 => (
            abi::envoy_dynamic_module_callback_network_filter_increment_counter,
            abi::envoy_dynamic_module_callback_network_filter_config_increment_counter,
        ),
        (k, Op::Add) if k == MetricType::Gauge as u32 => (
            abi::envoy_dynamic_module_callback_network_filter_increment_gauge,
            abi::envoy_dynamic_module_callback_network_filter_config_increment_gauge,
        ),
        (k, Op::Sub) if k == MetricType::Gauge as u32 => (
            abi::envoy_dynamic_module_callback_network_filter_decrement_gauge,
            abi::envoy_dynamic_module_callback_network_filter_config_decrement_gauge,
        ),
        (k, Op::Set) if k == MetricType::Gauge as u32 => (
            abi::envoy_dynamic_module_callback_network_filter_set_gauge,
            abi::envoy_dynamic_module_callback_network_filter_config_set_gauge,
        ),
        (k, Op::Set) if k == MetricType::Histogram as u32 => (
            abi::envoy_dynamic_module_callback_network_filter_record_histogram_value,
            abi::envoy_dynamic_module_callback_network_filter_config_record_histogram_value,
        ),
        _ => return None,
    })
}

fn update(id: u32, op: Op, value: u64) -> u32 {
    // The common case first: a counter incremented during a stream hook.
    if let (Current::Stream { envoy, .. }, Op::Add) = (current(), op) {
        if id & 3 == MetricType::Counter as u32 {
            // SAFETY: the stream of the current hook; no labels.
            let result = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    envoy,
                    (id >> 2) as usize,
                    null(),
                    0,
                    value,
                )
            };
            return if result == abi::METRICS_SUCCESS {
                OK
            } else {
                NOT_FOUND
            };
        }
    }
    let Some(via) = via() else {
        return UNIMPLEMENTED;
    };
    let kind = id & 3;
    let dm_id = (id >> 2) as usize;
    let network = match via {
        Via::Connection(e) => Some((e, true)),
        Via::Config(e, true) => Some((e, false)),
        _ => None,
    };
    if let Some((envoy, on_connection)) = network {
        let Some((conn_fn, config_fn)) = net_update(kind, op) else {
            return BAD_ARGUMENT;
        };
        let f = if on_connection { conn_fn } else { config_fn };
        // SAFETY: the Envoy object of the current hook.
        return if unsafe { f(envoy, dm_id, value) } == abi::METRICS_SUCCESS {
            OK
        } else {
            NOT_FOUND
        };
    }
    type Update = unsafe extern "C" fn(EnvoyPtr, usize, *const ModuleBuffer, usize, u64) -> u32;
    let (stream_fn, config_fn): (Update, Update) = match (kind, op) {
        (k, Op::Add) if k == MetricType::Counter as u32 => (
            abi::envoy_dynamic_module_callback_http_filter_increment_counter,
            abi::envoy_dynamic_module_callback_http_filter_config_increment_counter,
        ),
        (k, Op::Add) if k == MetricType::Gauge as u32 => (
            abi::envoy_dynamic_module_callback_http_filter_increment_gauge,
            abi::envoy_dynamic_module_callback_http_filter_config_increment_gauge,
        ),
        (k, Op::Sub) if k == MetricType::Gauge as u32 => (
            abi::envoy_dynamic_module_callback_http_filter_decrement_gauge,
            abi::envoy_dynamic_module_callback_http_filter_config_decrement_gauge,
        ),
        (k, Op::Set) if k == MetricType::Gauge as u32 => (
            abi::envoy_dynamic_module_callback_http_filter_set_gauge,
            abi::envoy_dynamic_module_callback_http_filter_config_set_gauge,
        ),
        (k, Op::Set) if k == MetricType::Histogram as u32 => (
            abi::envoy_dynamic_module_callback_http_filter_record_histogram_value,
            abi::envoy_dynamic_module_callback_http_filter_config_record_histogram_value,
        ),
        _ => return BAD_ARGUMENT,
    };
    // SAFETY: the Envoy object of the current hook; no labels.
    let result = unsafe {
        match via {
            Via::Stream(envoy) => stream_fn(envoy, dm_id, null(), 0, value),
            Via::Config(envoy, _) | Via::Connection(envoy) => {
                config_fn(envoy, dm_id, null(), 0, value)
            }
        }
    };
    if result == abi::METRICS_SUCCESS {
        OK
    } else {
        NOT_FOUND
    }
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Set,
}

pub(crate) unsafe fn proxy_record_metric(metric_id: u32, value: u64) -> u32 {
    update(metric_id, Op::Set, value)
}

pub(crate) unsafe fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32 {
    if offset >= 0 {
        update(metric_id, Op::Add, offset.unsigned_abs())
    } else {
        update(metric_id, Op::Sub, offset.unsigned_abs())
    }
}

// ----- foreign functions ------------------------------------------------------------------

pub(crate) unsafe fn proxy_call_foreign_function(
    function_name_data: *const u8,
    function_name_size: usize,
    arguments_data: *const u8,
    arguments_size: usize,
    results_data: *mut *mut u8,
    results_size: *mut usize,
) -> u32 {
    // SAFETY: host.rs passes live slices.
    let (name, args) = unsafe {
        (
            slice(function_name_data, function_name_size),
            slice(arguments_data, arguments_size),
        )
    };
    match name {
        b"verify_signature" => match super::crypto::verify_signature(args) {
            Ok(result) => {
                // SAFETY: forwarded out pointers.
                unsafe { give(&result, results_data, results_size) }
            }
            Err(status) => status as u32,
        },
        _ => NOT_FOUND,
    }
}

/// `proxy_set_effective_context` has no dynamic-module counterpart: this adapter's dispatch
/// enters each stream itself (callout answers included), so the proxy-wasm dispatch path that
/// uses it never runs in this build.
pub(crate) unsafe fn proxy_set_effective_context(_context_id: u32) -> u32 {
    UNIMPLEMENTED
}

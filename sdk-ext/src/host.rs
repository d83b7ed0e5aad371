//! The proxy-wasm host ABI, wrapped so that nothing panics.
//!
//! The upstream SDK's `hostcalls` module `panic!`s on any status it did not expect and
//! `unwrap`s UTF-8 when decoding header maps; a panic kills the VM for that worker. Every
//! function here returns `Result<_, Status>` for every status the host may answer, and
//! values stay bytes. The imports are the same symbols the SDK imports, so on wasm they bind
//! to the host and natively (under `cargo test`) to the emulator in [`crate::testing`].

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
use std::ptr::{null, null_mut};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: LogLevel, message_data: *const u8, message_size: usize) -> Status;
    fn proxy_get_log_level(return_level: *mut LogLevel) -> Status;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> Status;
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> Status;
    fn proxy_set_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> Status;
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> Status;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
    fn proxy_define_metric(
        metric_type: MetricType,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> Status;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> Status;
    fn proxy_record_metric(metric_id: u32, value: u64) -> Status;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status;
}

/// A header name and value, as bytes.
pub type HeaderPair = (Vec<u8>, Vec<u8>);

fn ok(status: Status) -> Result<(), Status> {
    match status {
        Status::Ok => Ok(()),
        other => Err(other),
    }
}

/// Takes ownership of a host-allocated return value (allocated through the SDK's
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

/// Writes a message to the host's log.
pub fn log(level: LogLevel, message: &str) -> Result<(), Status> {
    // SAFETY: pointer and length describe a live &str.
    ok(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}

/// The host's current log level.
pub fn log_level() -> Result<LogLevel, Status> {
    let mut level = LogLevel::Info;
    // SAFETY: the host writes one LogLevel through the pointer.
    ok(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(level)
}

/// The host's wall clock, in nanoseconds since the Unix epoch.
pub fn now_nanos() -> Result<u64, Status> {
    let mut t = 0u64;
    // SAFETY: the host writes one u64 through the pointer.
    ok(unsafe { proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

/// Reads up to `max_size` bytes of a buffer from `start`. `Ok(None)`: no such buffer.
pub fn get_buffer(
    buffer_type: BufferType,
    start: usize,
    max_size: usize,
) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    match unsafe { proxy_get_buffer_bytes(buffer_type, start, max_size, &mut data, &mut size) } {
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
    ok(unsafe { proxy_set_buffer_bytes(buffer_type, start, size, value.as_ptr(), value.len()) })
}

/// The first value of header `name`, as bytes. `Ok(None)`: the header is absent.
pub fn get_header(map: MapType, name: &str) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    match unsafe {
        proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size)
    } {
        // SAFETY: see `take`.
        Status::Ok => Ok(Some(unsafe { take(data, size) })),
        Status::NotFound => Ok(None),
        other => Err(other),
    }
}

/// Every header of a map, names and values as bytes, in order.
pub fn get_header_pairs(map: MapType) -> Result<Vec<HeaderPair>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    ok(unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) })?;
    // SAFETY: see `take`.
    let bytes = unsafe { take(data, size) };
    decode_pairs(&bytes).ok_or(Status::SerializationFailure)
}

/// Replaces every value of header `name` with `value` (adds it when absent).
pub fn set_header(map: MapType, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: pointers and lengths describe live slices.
    ok(unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

/// Adds one more value for header `name`.
pub fn add_header(map: MapType, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: pointers and lengths describe live slices.
    ok(unsafe {
        proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

/// Removes every value of header `name` (absent is fine).
pub fn remove_header(map: MapType, name: &str) -> Result<(), Status> {
    // SAFETY: pointer and length describe a live &str.
    match unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) } {
        Status::Ok | Status::NotFound => Ok(()),
        other => Err(other),
    }
}

/// A host property (e.g. `["source", "address"]`). `Ok(None)`: not available.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let mut encoded = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            encoded.push(0);
        }
        encoded.extend_from_slice(part.as_bytes());
    }
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an owned allocation and its size through the pointers.
    match unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) } {
        // SAFETY: see `take`.
        Status::Ok => Ok(Some(unsafe { take(data, size) })),
        Status::NotFound | Status::Empty => Ok(None),
        other => Err(other),
    }
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
    let encoded = encode_pairs(headers);
    // SAFETY: pointers and lengths describe live slices.
    ok(unsafe {
        proxy_send_local_response(
            status,
            if details.is_empty() {
                null()
            } else {
                details.as_ptr()
            },
            details.len(),
            if body.is_empty() {
                null()
            } else {
                body.as_ptr()
            },
            body.len(),
            encoded.as_ptr(),
            encoded.len(),
            grpc_status,
        )
    })
}

/// Defines (or finds) a metric by name.
pub fn define_metric(metric_type: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: pointer and length describe a live &str; the host writes one u32.
    ok(unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) })?;
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
pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: plain values.
    ok(unsafe { proxy_increment_metric(id, offset) })
}

/// Encodes header pairs in the proxy-wasm map format: a u32 count, then a (u32 name length,
/// u32 value length) per pair, then each name and value followed by a NUL byte.
pub fn encode_pairs(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(n, v)| n.len() + v.len() + 10)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Decodes the proxy-wasm map format. `None` when the bytes are malformed (never panics).
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<HeaderPair>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = read_u32(0)?;
    let mut data_at = count.checked_mul(8)?.checked_add(4)?;
    if data_at > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let name_len = read_u32(4 + i * 8)?;
        let value_len = read_u32(8 + i * 8)?;
        let name = bytes.get(data_at..data_at.checked_add(name_len)?)?.to_vec();
        data_at = data_at.checked_add(name_len + 1)?;
        let value = bytes
            .get(data_at..data_at.checked_add(value_len)?)?
            .to_vec();
        data_at = data_at.checked_add(value_len + 1)?;
        out.push((name, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_with_non_utf8_values() {
        let pairs: Vec<(&str, &[u8])> = vec![("a", b"1"), ("x-bin", &[0xff, 0xfe]), ("e", b"")];
        let decoded = decode_pairs(&encode_pairs(&pairs)).unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[1], (b"x-bin".to_vec(), vec![0xff, 0xfe]));
        assert_eq!(decoded[2], (b"e".to_vec(), vec![]));
    }

    #[test]
    fn malformed_pairs_are_refused_not_panicked_on() {
        let good = encode_pairs(&[("name", b"value")]);
        for cut in 1..good.len() - 1 {
            // Truncations either fail cleanly or decode a prefix; they never panic.
            let _ = decode_pairs(&good[..cut]);
        }
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode_pairs(&[1, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}

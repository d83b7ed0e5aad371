//! Header access that never panics: values are bytes, absent is `None`, host errors are
//! logged once here and surface as `None` / `Err` for the caller to decide on.
//!
//! The host does not check what a filter writes: a value with CR, LF, NUL or another control
//! byte is stored as is, and Envoy's router then refuses the whole request (503,
//! `invalid_header_value_for: <name>`) after the filter already let it through. Check every
//! value a filter builds from untrusted data with [`is_valid_value`] (Envoy's own rule) and
//! decide what an invalid one means before writing it:
//!
//! ```
//! use sdk_ext::headers::{is_valid_value, invalid_value_byte};
//! assert!(is_valid_value(b"alice"));
//! assert!(is_valid_value(b"caf\xc3\xa9\ttab")); // obs-text and HTAB are fine
//! assert!(!is_valid_value(b"alice\r\nx-admin: 1"));
//! assert_eq!(invalid_value_byte(b"a\x00b"), Some((1, 0x00)));
//! ```
//!
//! Reading and writing the live maps (inside a phase; from an sdk-ext filter, `HttpHost`
//! offers the same with per-phase caching):
//!
//! ```no_run
//! use sdk_ext::headers::Headers;
//! fn in_a_phase() -> Result<(), sdk_ext::host::Status> {
//!     if let Some(tenant) = Headers::REQUEST.get("x-tenant") {
//!         let _bytes: Vec<u8> = tenant; // maybe not UTF-8: an ordinary case
//!     }
//!     Headers::RESPONSE.set("x-served-by", b"edge-1")
//! }
//! ```

use crate::host;
use crate::host::{MapType, Status};

/// One of the stream's header maps. Names are case-insensitive (the host lowercases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers(MapType);

impl Headers {
    /// Request headers (incl. pseudo-headers `:path`, `:method`, `:authority`, `:scheme`).
    pub const REQUEST: Headers = Headers(MapType::HttpRequestHeaders);
    /// Request trailers.
    pub const REQUEST_TRAILERS: Headers = Headers(MapType::HttpRequestTrailers);
    /// Response headers (incl. `:status`).
    pub const RESPONSE: Headers = Headers(MapType::HttpResponseHeaders);
    /// Response trailers.
    pub const RESPONSE_TRAILERS: Headers = Headers(MapType::HttpResponseTrailers);
    /// Headers of the response to an outgoing HTTP callout (inside `on_http_call_response`).
    pub const CALLOUT_RESPONSE: Headers = Headers(MapType::HttpCallResponseHeaders);

    /// The first value of `name`, as bytes.
    #[inline]
    pub fn get(self, name: &str) -> Option<Vec<u8>> {
        match host::get_header(self.0, name) {
            Ok(v) => v,
            Err(status) => {
                log::debug!("get header {name}: host answered {status:?}");
                None
            }
        }
    }

    /// The first value of `name` if present and valid UTF-8 (`None` otherwise: a non-UTF-8
    /// value is treated like an unusable one, never a crash).
    pub fn get_utf8(self, name: &str) -> Option<String> {
        self.get(name).and_then(|v| String::from_utf8(v).ok())
    }

    /// Whether `name` is present.
    pub fn contains(self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every header, in order. Copies the whole map: keep it off hot paths.
    pub fn all(self) -> Vec<host::HeaderPair> {
        host::get_header_pairs(self.0).unwrap_or_else(|status| {
            log::debug!("get header map: host answered {status:?}");
            Vec::new()
        })
    }

    /// Replaces every value of `name` with `value` (adds it when absent).
    #[inline(always)]
    pub fn set(self, name: &str, value: &[u8]) -> Result<(), Status> {
        host::set_header(self.0, name, value).map_err(|s| logged("set", name, s))
    }

    /// Appends one more value for `name`.
    #[inline(always)]
    pub fn add(self, name: &str, value: &[u8]) -> Result<(), Status> {
        host::add_header(self.0, name, value).map_err(|s| logged("add", name, s))
    }

    /// Removes every value of `name`.
    #[inline(always)]
    pub fn remove(self, name: &str) -> Result<(), Status> {
        host::remove_header(self.0, name).map_err(|s| logged("remove", name, s))
    }
}

fn logged(op: &str, name: &str, status: Status) -> Status {
    log::warn!("{op} header {name}: host answered {status:?}");
    status
}

/// A header map that edits can be applied to: the live host map ([`Headers`]) or plain data
/// ([`HeaderList`]) in tests. Names are lowercase.
pub trait HeaderMapMut {
    /// Whether `name` is present.
    fn contains(&mut self, name: &str) -> bool;
    /// Replaces every value of `name` (adds when absent).
    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), Status>;
    /// Appends one more value.
    fn add(&mut self, name: &str, value: &[u8]) -> Result<(), Status>;
    /// Removes every value.
    fn remove(&mut self, name: &str) -> Result<(), Status>;
}

impl HeaderMapMut for Headers {
    fn contains(&mut self, name: &str) -> bool {
        Headers::contains(*self, name)
    }
    #[inline(always)]
    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
        Headers::set(*self, name, value)
    }
    #[inline(always)]
    fn add(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
        Headers::add(*self, name, value)
    }
    #[inline(always)]
    fn remove(&mut self, name: &str) -> Result<(), Status> {
        Headers::remove(*self, name)
    }
}

/// Headers as plain data, in order, names lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, Vec<u8>)>);

impl HeaderList {
    /// Every value of `name`, in order.
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

impl HeaderMapMut for HeaderList {
    fn contains(&mut self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_string(), value.to_vec()));
        Ok(())
    }
    fn add(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
        self.0.push((name.to_string(), value.to_vec()));
        Ok(())
    }
    fn remove(&mut self, name: &str) -> Result<(), Status> {
        self.0.retain(|(n, _)| n != name);
        Ok(())
    }
}

/// Checks a header name a filter is configured to modify: a lowercase-able HTTP token, not
/// a pseudo-header and not `host` (Envoy refuses to let filters rewrite those this way).
pub fn check_mutable_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("header name is empty".into());
    }
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err(crate::json::quoted(
            "",
            name,
            " cannot be modified (pseudo-headers and host are off limits)",
        ));
    }
    if !is_token(name) {
        return Err(crate::json::quoted("", name, " is not a valid header name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// Whether `name` is a non-empty HTTP token (RFC 9110 `tchar`s), i.e. a valid header name.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` is a header value Envoy accepts: RFC 9110 `field-value` bytes, i.e. HTAB,
/// SP, visible ASCII (0x21-0x7E) and obs-text (0x80-0xFF); never NUL, CR, LF, another
/// control byte or DEL. This is Envoy's `HeaderUtility::headerValueIsValid`
/// (`http2::adapter::HeaderValidator::IsValidHeaderValue` with obs-text allowed; before that,
/// nghttp2's `nghttp2_check_header_value`, the same set). Leading or trailing whitespace and
/// the empty value are accepted, as Envoy accepts them.
pub fn is_valid_value(value: &[u8]) -> bool {
    invalid_value_byte(value).is_none()
}

/// The first byte that makes `value` an invalid header value, with its offset (for a log
/// line that says why); `None` when [`is_valid_value`] holds.
pub fn invalid_value_byte(value: &[u8]) -> Option<(usize, u8)> {
    value
        .iter()
        .position(|&b| !is_value_byte(b))
        .and_then(|i| value.get(i).map(|&b| (i, b)))
}

const fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_bytes_are_envoys_set() {
        // quiche's kHttp2HeaderValueAllowedChars plus obs-text, as Envoy's
        // HeaderUtility::headerValueIsValid checks them.
        for b in 0u8..=255 {
            let want = b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80;
            assert_eq!(is_valid_value(&[b]), want, "byte {b:#04x}");
            assert_eq!(
                is_valid_value(&[b'a', b, b'z']),
                want,
                "byte {b:#04x} inside"
            );
        }
        assert!(is_valid_value(b""));
        assert!(is_valid_value(b" padded\t"));
        assert!(is_valid_value(&[0xff, 0x80, b'x']));
        for bad in [
            &b"a\r\nb: c"[..],
            b"a\nb",
            b"a\rb",
            b"nul\0",
            b"\x01",
            b"del\x7f",
            b"\x1b[0m",
        ] {
            assert!(!is_valid_value(bad), "{bad:?}");
        }
        assert_eq!(invalid_value_byte(b"ok"), None);
        assert_eq!(invalid_value_byte(b"ab\r\n"), Some((2, b'\r')));
    }

    #[test]
    fn mutable_names() {
        assert_eq!(check_mutable_name("X-Jwt-Sub").unwrap(), "x-jwt-sub");
        for bad in ["", ":path", "Host", "a b", "x\r\n"] {
            assert!(check_mutable_name(bad).is_err(), "{bad:?}");
        }
    }
}

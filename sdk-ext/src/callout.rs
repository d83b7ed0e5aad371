//! Outgoing HTTP calls to an Envoy cluster (`proxy_http_call`), e.g. to fetch a JWKS.
//!
//! Envoy answers every callout at the root context (the call belongs to the root, whichever
//! context made it); sdk-ext's dispatch remembers which stream dispatched a callout and hands
//! the answer to that stream's `on_http_call_response`, with the stream as the host's current
//! context (so it can read its request, edit headers and resume).
//!
//! [`HttpUri`] mirrors Envoy's `config.core.v3.HttpUri` (`uri`, `cluster`, `timeout`) and
//! is validated at config time; errors name the field (`uri`, `cluster`, `timeout`) for the
//! caller to place with [`ConfigError::within`]. The timeout must be between 1 ms and
//! [`MAX_HOST_MILLIS`] ms (about 49.7 days: the host takes it as a `u32` of milliseconds;
//! see [`host_millis`]), so it never wraps. [`get`] dispatches through the SDK so that the answer
//! reaches the dispatching context's `on_http_call_response`; [`Response::read`] then
//! collects the status and body inside that callback.

use crate::config::ConfigError;
use crate::duration::host_millis;
use crate::host;
use crate::host::{BufferType, MapType, Status};
use crate::json::quoted;
use std::time::Duration;

/// Where to send a callout: Envoy's `HttpUri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUri {
    /// The full URI, as configured (for logs).
    pub uri: String,
    /// The cluster that serves it.
    pub cluster: String,
    /// `:authority` of the request (the URI's host\[:port\]).
    pub authority: String,
    /// `:path` of the request (path and query; `/` when the URI has none).
    pub path: String,
    /// How long to wait for the answer (whole milliseconds, 1 ms to [`MAX_HOST_MILLIS`] ms
    /// when built by [`HttpUri::new`]).
    pub timeout: Duration,
}

impl HttpUri {
    /// Validates `uri` (`http://` or `https://`, a host) for `cluster`, and `timeout`
    /// (1 ms to [`MAX_HOST_MILLIS`] ms). The error's field is `uri`, `cluster` or `timeout`.
    pub fn new(uri: &str, cluster: &str, timeout: Duration) -> Result<Self, ConfigError> {
        let bad_uri = |reason: String| ConfigError::new("uri", reason);
        let rest = uri
            .strip_prefix("http://")
            .or_else(|| uri.strip_prefix("https://"))
            .ok_or_else(|| bad_uri(quoted("", uri, " is not an http:// or https:// URI")))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains(['@', ' ', '#']) {
            return Err(bad_uri(quoted("", uri, " has no valid host")));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path.contains([' ', '#']) {
            return Err(bad_uri(quoted("", uri, " has an invalid path")));
        }
        if cluster.is_empty() {
            return Err(ConfigError::new(
                "cluster",
                "cluster must name an Envoy cluster",
            ));
        }
        if timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than 0s"));
        }
        let millis = host_millis(timeout).map_err(|e| ConfigError::new("timeout", e))?;
        Ok(Self {
            uri: uri.to_string(),
            cluster: cluster.to_string(),
            authority: authority.to_string(),
            path,
            timeout: Duration::from_millis(u64::from(millis)),
        })
    }
}

/// Sends `GET target` with `accept` as the Accept header; answers the callout token. The
/// answer reaches the dispatching context: `Plugin::on_http_call_response` from the root,
/// `HttpFilter::on_http_call_response` from a stream.
/// `Err(BadArgument)`: Envoy does not know the cluster (or the timeout does not fit).
pub fn get(target: &HttpUri, accept: &str) -> Result<u32, Status> {
    host::http_call(
        &target.cluster,
        &[
            (":method", b"GET"),
            (":path", target.path.as_bytes()),
            (":authority", target.authority.as_bytes()),
            ("accept", accept.as_bytes()),
        ],
        b"",
        &[],
        target.timeout,
    )
}

/// A callout's answer, read inside `on_http_call_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `:status`; `None` when the call failed (reset, timeout, no healthy upstream).
    pub status: Option<u16>,
    /// The body, up to the limit given to [`Response::read`].
    pub body: Vec<u8>,
    /// The body was longer than that limit.
    pub truncated: bool,
}

impl Response {
    /// Reads the current callout answer; `body_size` is what the host announced and
    /// `max_body` the most this caller will hold.
    pub fn read(body_size: usize, max_body: usize) -> Self {
        let status = host::get_header(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok());
        let take = body_size.min(max_body);
        let body = if take == 0 {
            Vec::new()
        } else {
            host::get_buffer(BufferType::HttpCallResponseBody, 0, take)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        Self {
            status,
            body,
            truncated: body_size > max_body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_split_into_authority_and_path() {
        let t = Duration::from_secs(1);
        let u = HttpUri::new(
            "https://idp.example.com:8443/.well-known/jwks.json?x=1",
            "idp",
            t,
        )
        .unwrap();
        assert_eq!(u.authority, "idp.example.com:8443");
        assert_eq!(u.path, "/.well-known/jwks.json?x=1");
        assert_eq!(HttpUri::new("http://h", "c", t).unwrap().path, "/");
        assert_eq!(HttpUri::new("http://h?a", "c", t).unwrap().path, "/?a");
        assert!(HttpUri::new("ftp://h/x", "c", t).is_err());
        assert!(HttpUri::new("http:///x", "c", t).is_err());
        assert!(HttpUri::new("http://u@h/x", "c", t).is_err());
        assert_eq!(
            HttpUri::new("http://h/x", "", t).unwrap_err().field,
            "cluster"
        );
        assert_eq!(HttpUri::new("ftp://h/x", "c", t).unwrap_err().field, "uri");
        assert_eq!(
            HttpUri::new("http://h/x", "c", Duration::ZERO)
                .unwrap_err()
                .field,
            "timeout"
        );
    }

    #[test]
    fn timeouts_fit_the_host_millisecond_u32() {
        let at = |t: Duration| HttpUri::new("http://h/x", "c", t);
        assert_eq!(
            at(Duration::from_millis(u64::from(u32::MAX)))
                .unwrap()
                .timeout,
            Duration::from_millis(u64::from(u32::MAX))
        );
        assert_eq!(
            at(Duration::from_micros(2500)).unwrap().timeout,
            Duration::from_millis(2),
            "whole milliseconds, as the host sees it"
        );
        // 4294968s is 2^32 ms + 704 ms: it used to reach the host as 704 ms.
        for t in [
            Duration::from_secs(4_294_968),
            Duration::from_millis(u64::from(u32::MAX) + 1),
            Duration::from_secs(315_576_000_000),
            Duration::from_micros(500),
        ] {
            let e = at(t).unwrap_err();
            assert_eq!(e.field, "timeout", "{t:?}");
        }
    }
}

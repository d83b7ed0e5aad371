//! Outgoing HTTP calls to an Envoy cluster (`proxy_http_call`), e.g. to fetch a JWKS.
//!
//! [`HttpUri`] mirrors Envoy's `config.core.v3.HttpUri` (`uri`, `cluster`, `timeout`) and
//! is validated at config time. [`get`] dispatches through the SDK so that the answer
//! reaches the dispatching context's `on_http_call_response`; [`Response::read`] then
//! collects the status and body inside that callback.

use crate::host;
use crate::host::{BufferType, MapType, Status};
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
    /// How long to wait for the answer.
    pub timeout: Duration,
}

impl HttpUri {
    /// Validates `uri` (`http://` or `https://`, a host) for `cluster`.
    pub fn new(uri: &str, cluster: &str, timeout: Duration) -> Result<Self, String> {
        let rest = uri
            .strip_prefix("http://")
            .or_else(|| uri.strip_prefix("https://"))
            .ok_or_else(|| format!("{uri:?} is not an http:// or https:// URI"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains(['@', ' ', '#']) {
            return Err(format!("{uri:?} has no valid host"));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path.contains([' ', '#']) {
            return Err(format!("{uri:?} has an invalid path"));
        }
        if cluster.is_empty() {
            return Err("cluster must name an Envoy cluster".to_string());
        }
        if timeout.is_zero() {
            return Err("timeout must be greater than 0s".to_string());
        }
        Ok(Self {
            uri: uri.to_string(),
            cluster: cluster.to_string(),
            authority: authority.to_string(),
            path,
            timeout,
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
        assert!(HttpUri::new("http://h/x", "", t).is_err());
        assert!(HttpUri::new("http://h/x", "c", Duration::ZERO).is_err());
    }
}

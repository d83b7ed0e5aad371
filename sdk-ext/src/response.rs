//! The one way to answer the client locally.
//!
//! Every filter's 4xx/5xx goes through [`LocalResponse`]: a consistent JSON body
//! (`{"status":403,"error":"forbidden","message":"..."}`), `content-type: application/json`,
//! any extra headers (`WWW-Authenticate`, `Retry-After`, `RateLimit-*`), response-code
//! details for Envoy's access log (`%RESPONSE_CODE_DETAILS%`), and a counter.
//! Build fixed responses once at config time; sending is then a single host call.
//!
//! A response that is not an error (a CORS preflight's `200`, a `204`) has no body and no
//! `content-type`: [`LocalResponse::empty`].

use crate::host;
use crate::host::{Action, Status};
use crate::metrics::Counter;

/// A prepared local response.
#[derive(Debug, Clone)]
pub struct LocalResponse {
    status: u16,
    details: String,
    headers: Vec<(String, Vec<u8>)>,
    content_type: Vec<u8>,
    body: Vec<u8>,
    counter: Option<Counter>,
}

/// A short machine-readable name for a status, used as the body's `error` field.
pub fn error_name(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "too_many_requests",
        500 => "internal_error",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "gateway_timeout",
        _ => "error",
    }
}

impl LocalResponse {
    /// A response with `status` and a human-readable `message`; `details` names the reason
    /// for Envoy's access log (e.g. `header_rules_denied`; anything but `[A-Za-z0-9_.-]`
    /// becomes `_`, as Envoy requires no whitespace there).
    pub fn new(status: u16, details: &str, message: &str) -> Self {
        let mut body = format!(
            "{{\"status\":{status},\"error\":\"{}\",\"message\":",
            error_name(status)
        );
        crate::json::write_string(&mut body, message);
        body.push('}');
        let body = body.into_bytes();
        // A loop over bytes pushed as bytes (all ASCII), not chars mapped and collected.
        let mut safe = Vec::with_capacity(details.len());
        for c in details.chars() {
            safe.push(match u8::try_from(c) {
                Ok(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') => b,
                _ => b'_',
            });
        }
        let details = String::from_utf8(safe).unwrap_or_default();
        Self {
            status,
            details,
            headers: Vec::new(),
            content_type: b"application/json".to_vec(),
            body,
            counter: None,
        }
    }

    /// A response with `status` and no body (no `content-type` either): a CORS preflight
    /// answer, a `204`. `details` as in [`new`](Self::new).
    pub fn empty(status: u16, details: &str) -> Self {
        let mut r = Self::new(status, details, "");
        r.body.clear();
        r
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Replaces the JSON body with `body` as is, sent with `content-type: <content_type>`: for
    /// a body someone else wrote (a policy's decision, an upstream service's answer). Status,
    /// details, headers and counter stay.
    #[must_use]
    pub fn with_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = content_type.as_bytes().to_vec();
        self.body = body.into();
        self
    }

    /// Counts each time this response is sent.
    #[must_use]
    pub fn counted(mut self, counter: Counter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The JSON body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Sends the response (plus `extra` headers computed per request, e.g. `Retry-After`)
    /// and returns the action the phase must return (`Pause`: the stream ends here).
    pub fn send_with(&self, extra: &[(&str, &[u8])]) -> Action {
        let mut headers: Vec<(&str, &[u8])> =
            Vec::with_capacity(self.headers.len() + extra.len() + 1);
        if !self.body.is_empty() {
            headers.push(("content-type", &self.content_type));
        }
        for (n, v) in &self.headers {
            headers.push((n.as_str(), v.as_slice()));
        }
        headers.extend_from_slice(extra);
        if let Some(c) = &self.counter {
            c.inc();
        }
        if let Err(status) = host::send_local_response(
            u32::from(self.status),
            &self.details,
            &self.body,
            &headers,
            -1,
        ) {
            log_send_failure(self.status, status);
        }
        Action::Pause
    }

    /// Sends the response; returns the action the phase must return.
    pub fn send(&self) -> Action {
        self.send_with(&[])
    }
}

fn log_send_failure(code: u16, status: Status) {
    log::error!("sending local response {code}: host answered {status:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_is_escaped_and_consistent() {
        let r = LocalResponse::new(403, "x denied", "no \"quotes\" here");
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["status"], 403);
        assert_eq!(v["error"], "forbidden");
        assert_eq!(v["message"], "no \"quotes\" here");
        assert_eq!(r.details, "x_denied");
    }

    #[test]
    fn empty_has_no_body() {
        let r = LocalResponse::empty(200, "cors_response");
        assert_eq!(r.status(), 200);
        assert!(r.body().is_empty());
        assert_eq!(r.details, "cors_response");
    }

    #[test]
    fn a_body_as_is_replaces_the_json_one() {
        let r = LocalResponse::new(401, "d", "m").with_body("text/plain", "who are you?");
        assert_eq!(r.body(), b"who are you?");
        assert_eq!(r.content_type, b"text/plain");
        assert_eq!(r.status(), 401);
    }
}

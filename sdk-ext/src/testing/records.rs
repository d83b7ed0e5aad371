//! What a filter asked the host to do, as the test sees it: local responses and callouts.

use std::time::Duration;

/// First value of `name` (ASCII case-insensitive) among `pairs`.
fn first_value<'a>(pairs: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_slice())
}

/// A response the filter sent with `proxy_send_local_response` instead of forwarding the
/// request (Envoy would stop the filter chain and answer the client with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status code.
    pub status_code: u32,
    /// Additional headers, names lowercased as Envoy stores them, in the order given.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Response body.
    pub body: Vec<u8>,
    /// Response code details (Envoy's `%RESPONSE_CODE_DETAILS%`); empty when not given.
    pub details: String,
    /// gRPC status, or `None` when the filter passed `-1` (plain HTTP response).
    pub grpc_status: Option<i32>,
}

impl LocalResponse {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        first_value(&self.headers, name)
    }

    /// First value of header `name` as text (lossy UTF-8).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }

    /// The body as text (lossy UTF-8).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An outgoing HTTP callout (`proxy_http_call`) still waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCallout {
    /// The token the filter got back; pass it to [`Emulator::respond_http_call`].
    ///
    /// [`Emulator::respond_http_call`]: super::Emulator::respond_http_call
    pub token: u32,
    /// The context that dispatched it (it receives `on_http_call_response`).
    pub context_id: u32,
    /// The upstream cluster name.
    pub upstream: String,
    /// Request headers, names lowercased, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers, names lowercased, in order.
    pub trailers: Vec<(String, Vec<u8>)>,
    /// Timeout the filter asked for.
    pub timeout: Duration,
}

impl HttpCallout {
    /// First value of request header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        first_value(&self.headers, name)
    }

    /// First value of request header `name` as text (lossy UTF-8).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }
}

/// An outgoing gRPC call (`proxy_grpc_call`) or stream (`proxy_grpc_stream`) still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCallout {
    /// The token the filter got back; pass it to [`Emulator::respond_grpc_call`].
    ///
    /// [`Emulator::respond_grpc_call`]: super::Emulator::respond_grpc_call
    pub token: u32,
    /// The context that dispatched it.
    pub context_id: u32,
    /// The upstream cluster name.
    pub upstream: String,
    /// Fully qualified service name.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Initial metadata, names lowercased, in order.
    pub initial_metadata: Vec<(String, Vec<u8>)>,
    /// The request message of a unary call (empty for a stream).
    pub message: Vec<u8>,
    /// Messages sent on a stream with `proxy_grpc_send`, in order.
    pub stream_messages: Vec<Vec<u8>>,
    /// `true` for `proxy_grpc_stream`, `false` for a unary `proxy_grpc_call`.
    pub streaming: bool,
    /// Timeout of a unary call (`None` for a stream).
    pub timeout: Option<Duration>,
}

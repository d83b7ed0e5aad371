//! [`HttpStream`]: one HTTP request/response through the filter.

use super::guest;
use super::handle::StreamHandle;
use super::records::LocalResponse;
use super::state::{ContextKind, HeaderMap, StreamState};
use crate::host::Action;

/// One HTTP stream (an HTTP context of the filter), created by [`Emulator::http`].
///
/// Drive the phases in Envoy's order; each returns the filter's [`Action`]. Between phases,
/// inspect what the filter did: headers as modified, bodies, a local response, whether it
/// resumed or reset the stream. Finish with [`complete`](Self::complete).
///
/// Header names are case-insensitive (stored lowercased); several values per name are kept
/// in order. Driving a stream after [`complete`](Self::complete) or after its [`Emulator`]
/// is dropped fails the test (a panic naming the stream).
///
/// [`Emulator::http`]: super::Emulator::http
/// [`Emulator`]: super::Emulator
pub struct HttpStream {
    handle: StreamHandle,
}

/// Which header map of the stream.
#[derive(Clone, Copy)]
enum Map {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
}

impl Map {
    fn of(self, stream: &StreamState) -> &HeaderMap {
        match self {
            Map::RequestHeaders => &stream.request_headers,
            Map::RequestTrailers => &stream.request_trailers,
            Map::ResponseHeaders => &stream.response_headers,
            Map::ResponseTrailers => &stream.response_trailers,
        }
    }

    fn of_mut(self, stream: &mut StreamState) -> &mut HeaderMap {
        match self {
            Map::RequestHeaders => &mut stream.request_headers,
            Map::RequestTrailers => &mut stream.request_trailers,
            Map::ResponseHeaders => &mut stream.response_headers,
            Map::ResponseTrailers => &mut stream.response_trailers,
        }
    }
}

impl HttpStream {
    pub(crate) fn new(id: u32) -> Self {
        HttpStream {
            handle: StreamHandle::new(id, ContextKind::Http),
        }
    }

    /// The stream's context id.
    pub fn id(&self) -> u32 {
        self.handle.id()
    }

    /// Installs a header map, answering its size.
    fn install<N: AsRef<[u8]>, V: AsRef<[u8]>>(&self, map: Map, pairs: &[(N, V)]) -> usize {
        let new = HeaderMap::from_pairs(pairs);
        let count = new.len();
        let _ = self
            .handle
            .with_stream_mut(|stream| *map.of_mut(stream) = new);
        count
    }

    // ----- driving ---------------------------------------------------------------------

    /// Request headers arrive (`on_http_request_headers`); include pseudo-headers such as
    /// `:method`, `:path`, `:authority`, `:scheme` as Envoy would.
    pub fn request_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Action {
        self.handle.ensure_live();
        let count = self.install(Map::RequestHeaders, headers);
        guest::request_headers(self.handle.id(), count, end_of_stream)
    }

    /// [`request_headers`](Self::request_headers) with byte values (non-UTF-8 values are a
    /// normal case on the wire).
    pub fn request_headers_bytes(
        &mut self,
        headers: &[(&str, &[u8])],
        end_of_stream: bool,
    ) -> Action {
        self.handle.ensure_live();
        let count = self.install(Map::RequestHeaders, headers);
        guest::request_headers(self.handle.id(), count, end_of_stream)
    }

    /// A request body chunk arrives (`on_http_request_body`). If the previous body call
    /// answered `Pause`, Envoy kept buffering: the filter sees everything held so far plus
    /// this chunk. After `Continue` the buffer starts afresh.
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Action {
        self.handle.ensure_live();
        let size = self
            .handle
            .with_stream_mut(|stream| {
                stream.request_body.receive(chunk);
                stream.request_body.data.len()
            })
            .unwrap_or(0);
        let action = guest::request_body(self.handle.id(), size, end_of_stream);
        let _ = self
            .handle
            .with_stream_mut(|stream| stream.request_body.settle(action));
        action
    }

    /// Request trailers arrive (`on_http_request_trailers`).
    pub fn request_trailers(&mut self, trailers: &[(&str, &str)]) -> Action {
        self.handle.ensure_live();
        let count = self.install(Map::RequestTrailers, trailers);
        guest::request_trailers(self.handle.id(), count)
    }

    /// [`request_trailers`](Self::request_trailers) with byte values.
    pub fn request_trailers_bytes(&mut self, trailers: &[(&str, &[u8])]) -> Action {
        self.handle.ensure_live();
        let count = self.install(Map::RequestTrailers, trailers);
        guest::request_trailers(self.handle.id(), count)
    }

    /// Response headers arrive (`on_http_response_headers`); include `:status`.
    pub fn response_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Action {
        self.handle.ensure_live();
        let count = self.install(Map::ResponseHeaders, headers);
        guest::response_headers(self.handle.id(), count, end_of_stream)
    }

    /// [`response_headers`](Self::response_headers) with byte values.
    pub fn response_headers_bytes(
        &mut self,
        headers: &[(&str, &[u8])],
        end_of_stream: bool,
    ) -> Action {
        self.handle.ensure_live();
        let count = self.install(Map::ResponseHeaders, headers);
        guest::response_headers(self.handle.id(), count, end_of_stream)
    }

    /// A response body chunk arrives (`on_http_response_body`); buffering as for
    /// [`request_body`](Self::request_body).
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Action {
        self.handle.ensure_live();
        let size = self
            .handle
            .with_stream_mut(|stream| {
                stream.response_body.receive(chunk);
                stream.response_body.data.len()
            })
            .unwrap_or(0);
        let action = guest::response_body(self.handle.id(), size, end_of_stream);
        let _ = self
            .handle
            .with_stream_mut(|stream| stream.response_body.settle(action));
        action
    }

    /// Response trailers arrive (`on_http_response_trailers`).
    pub fn response_trailers(&mut self, trailers: &[(&str, &str)]) -> Action {
        self.handle.ensure_live();
        let count = self.install(Map::ResponseTrailers, trailers);
        guest::response_trailers(self.handle.id(), count)
    }

    /// [`response_trailers`](Self::response_trailers) with byte values.
    pub fn response_trailers_bytes(&mut self, trailers: &[(&str, &[u8])]) -> Action {
        self.handle.ensure_live();
        let count = self.install(Map::ResponseTrailers, trailers);
        guest::response_trailers(self.handle.id(), count)
    }

    /// Ends the stream as Envoy does: `on_log` (access log), `on_done`, then `on_delete`.
    /// Host-side records of the stream are gone afterwards; read them before.
    pub fn complete(self) {
        self.handle.ensure_live();
        guest::finish_http(self.handle.id());
    }

    /// Sets a property for this stream only (overrides [`Emulator::set_property`]).
    ///
    /// [`Emulator::set_property`]: super::Emulator::set_property
    pub fn set_property(&mut self, path: &[&str], value: impl AsRef<[u8]>) {
        self.handle.set_property(path, value);
    }

    // ----- inspecting ------------------------------------------------------------------

    /// A property as this stream sees it: set on the stream (by the test or the filter),
    /// else host-wide, else derived from the request headers (`request.path`,
    /// `request.url_path`, `request.method`, `request.host`, `request.scheme`, ...) or a host
    /// default (`source.address`).
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.handle.property(path)
    }

    fn first(&self, map: Map, name: &str) -> Option<Vec<u8>> {
        self.handle
            .with_stream(|stream| map.of(stream).get(name.as_bytes()).map(<[u8]>::to_vec))
            .flatten()
    }

    fn all(&self, map: Map, name: &str) -> Vec<Vec<u8>> {
        self.handle
            .with_stream(|stream| map.of(stream).values(name.as_bytes()))
            .unwrap_or_default()
    }

    fn pairs(&self, map: Map) -> Vec<(String, Vec<u8>)> {
        self.handle
            .with_stream(|stream| map.of(stream).pairs().clone())
            .unwrap_or_default()
    }

    /// First value of request header `name` (case-insensitive), as the filter left it.
    pub fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.first(Map::RequestHeaders, name)
    }

    /// [`request_header`](Self::request_header) as text (lossy UTF-8).
    pub fn request_header_str(&self, name: &str) -> Option<String> {
        self.request_header(name).map(lossy)
    }

    /// Every value of request header `name`, in order.
    pub fn request_header_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.all(Map::RequestHeaders, name)
    }

    /// All request headers, in order (names lowercased).
    pub fn request_header_pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.pairs(Map::RequestHeaders)
    }

    /// First value of request trailer `name`.
    pub fn request_trailer(&self, name: &str) -> Option<Vec<u8>> {
        self.first(Map::RequestTrailers, name)
    }

    /// All request trailers, in order.
    pub fn request_trailer_pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.pairs(Map::RequestTrailers)
    }

    /// First value of response header `name` (case-insensitive), as the filter left it.
    pub fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.first(Map::ResponseHeaders, name)
    }

    /// [`response_header`](Self::response_header) as text (lossy UTF-8).
    pub fn response_header_str(&self, name: &str) -> Option<String> {
        self.response_header(name).map(lossy)
    }

    /// Every value of response header `name`, in order.
    pub fn response_header_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.all(Map::ResponseHeaders, name)
    }

    /// All response headers, in order (names lowercased).
    pub fn response_header_pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.pairs(Map::ResponseHeaders)
    }

    /// First value of response trailer `name`.
    pub fn response_trailer(&self, name: &str) -> Option<Vec<u8>> {
        self.first(Map::ResponseTrailers, name)
    }

    /// All response trailers, in order.
    pub fn response_trailer_pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.pairs(Map::ResponseTrailers)
    }

    /// The request body buffer the last body call saw, as the filter left it.
    pub fn request_body_buffer(&self) -> Vec<u8> {
        self.handle
            .with_stream(|stream| stream.request_body.data.clone())
            .unwrap_or_default()
    }

    /// The response body buffer the last body call saw, as the filter left it.
    pub fn response_body_buffer(&self) -> Vec<u8> {
        self.handle
            .with_stream(|stream| stream.response_body.data.clone())
            .unwrap_or_default()
    }

    /// Request body released upstream so far (after `Continue` or a resume), in order.
    pub fn forwarded_request_body(&self) -> Vec<u8> {
        self.handle
            .with_stream(|stream| stream.request_body.forwarded.clone())
            .unwrap_or_default()
    }

    /// Response body released downstream so far (after `Continue` or a resume), in order.
    pub fn forwarded_response_body(&self) -> Vec<u8> {
        self.handle
            .with_stream(|stream| stream.response_body.forwarded.clone())
            .unwrap_or_default()
    }

    /// The local response the filter sent, if any (the first one; Envoy sends only that).
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.handle
            .with_stream(|stream| stream.local_response.clone())
            .flatten()
    }

    /// Whether the filter resumed the request or the response (`proxy_continue_stream`).
    pub fn resumed(&self) -> bool {
        self.request_resumed() || self.response_resumed()
    }

    /// Whether the filter resumed the request (`resume_http_request`).
    pub fn request_resumed(&self) -> bool {
        self.handle
            .with_stream(|stream| stream.request_resumed)
            .unwrap_or(false)
    }

    /// Whether the filter resumed the response (`resume_http_response`).
    pub fn response_resumed(&self) -> bool {
        self.handle
            .with_stream(|stream| stream.response_resumed)
            .unwrap_or(false)
    }

    /// Whether the filter reset the stream (`reset_http_request` / `reset_http_response`).
    pub fn was_reset(&self) -> bool {
        self.handle
            .with_stream(|stream| stream.request_reset || stream.response_reset)
            .unwrap_or(false)
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

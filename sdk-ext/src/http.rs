//! HTTP filters: [`HttpFilter`], the per-stream trait a filter implements, and [`HttpHost`],
//! the stream as the filter sees it in each phase.
//!
//! ```
//! use sdk_ext::config::ConfigError;
//! use sdk_ext::host::Action;
//! use sdk_ext::http::{HttpFilter, HttpHost};
//! use sdk_ext::plugin::Plugin;
//!
//! pub struct Stamp;
//! impl Plugin for Stamp {
//!     const NAME: &'static str = "stamp";
//!     fn configure(_: &[u8]) -> Result<Self, ConfigError> {
//!         Ok(Stamp)
//!     }
//! }
//!
//! pub struct Stream;
//! #[sdk_ext::filter]
//! impl HttpFilter for Stream {
//!     type Plugin = Stamp;
//!     fn create(_: &Stamp) -> Self {
//!         Stream
//!     }
//!     fn on_response_headers(&mut self, _: &Stamp, host: &mut HttpHost, _: bool) -> Action {
//!         let _ = host.set_response_header("x-stamped", b"1");
//!         Action::Continue
//!     }
//! }
//! ```
//!
//! `#[sdk_ext::filter]` records which phases the `impl` defines (the module exports exactly
//! those, so the host enters the VM for nothing else) and is required on every
//! `impl HttpFilter`.

use crate::exports::Phases;
use crate::headers::Headers;
use crate::host::{self, Action, BufferType, Status, StreamType};
use crate::plugin::Plugin;
use crate::request::{HostRequest, Request};
use crate::response::LocalResponse;

/// One HTTP stream's filter: created at the stream's first phase, dropped when the host
/// deletes the stream. Every phase gets the plugin (the configuration shared by all
/// streams) and the [`HttpHost`]; the defaults continue.
pub trait HttpFilter: Sized + 'static {
    /// The shared configuration.
    type Plugin: Plugin;

    /// The phases this `impl` defines: written by `#[sdk_ext::filter]`.
    #[doc(hidden)]
    const PHASES: Phases;

    /// The filter value for a new stream.
    fn create(plugin: &Self::Plugin) -> Self;

    /// Request headers arrived (`end_of_stream`: no body follows).
    fn on_request_headers(
        &mut self,
        _plugin: &Self::Plugin,
        _host: &mut HttpHost,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }

    /// A request body chunk arrived; `body_size` is the buffered size (the host buffers
    /// while this answers `Pause`).
    fn on_request_body(
        &mut self,
        _plugin: &Self::Plugin,
        _host: &mut HttpHost,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }

    /// Request trailers arrived.
    fn on_request_trailers(&mut self, _plugin: &Self::Plugin, _host: &mut HttpHost) -> Action {
        Action::Continue
    }

    /// Response headers arrived.
    fn on_response_headers(
        &mut self,
        _plugin: &Self::Plugin,
        _host: &mut HttpHost,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }

    /// A response body chunk arrived (see [`on_request_body`](Self::on_request_body)).
    fn on_response_body(
        &mut self,
        _plugin: &Self::Plugin,
        _host: &mut HttpHost,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }

    /// Response trailers arrived.
    fn on_response_trailers(&mut self, _plugin: &Self::Plugin, _host: &mut HttpHost) -> Action {
        Action::Continue
    }

    /// The stream is done (Envoy's access-log phase).
    fn on_log(&mut self, _plugin: &Self::Plugin, _host: &mut HttpHost) {}

    /// The answer to a callout this stream dispatched ([`HttpHost::http_call`]); read it
    /// with [`crate::callout::Response::read`], then usually resume the request.
    fn on_http_call_response(
        &mut self,
        _plugin: &Self::Plugin,
        _host: &mut HttpHost,
        _token: u32,
        _body_size: usize,
    ) {
    }
}

/// The stream, as the filter sees it during one phase: request and response headers,
/// bodies, properties, local responses, resuming. Request reads are cached for the phase
/// (each header is fetched from the host at most once) and it is a [`Request`], so
/// matching and templates read through it. Nothing here panics; host refusals are `Err`
/// or `None`.
#[derive(Debug, Default)]
pub struct HttpHost {
    request: HostRequest,
}

impl HttpHost {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The request as a [`Request`] (what matchers and templates read).
    pub fn request(&mut self) -> &mut HostRequest {
        &mut self.request
    }

    /// The first value of request header `name` (lowercase), cached for this phase.
    pub fn request_header(&mut self, name: &str) -> Option<&[u8]> {
        self.request.header(name)
    }

    /// Replaces every value of request header `name` (adds it when absent).
    pub fn set_request_header(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
        self.request.forget(name);
        Headers::REQUEST.set(name, value)
    }

    /// Appends one more value of request header `name`.
    pub fn add_request_header(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
        self.request.forget(name);
        Headers::REQUEST.add(name, value)
    }

    /// Removes every value of request header `name`.
    pub fn remove_request_header(&mut self, name: &str) -> Result<(), Status> {
        self.request.forget(name);
        Headers::REQUEST.remove(name)
    }

    /// The first value of response header `name` (response phases).
    pub fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        Headers::RESPONSE.get(name)
    }

    /// Replaces every value of response header `name`.
    pub fn set_response_header(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
        Headers::RESPONSE.set(name, value)
    }

    /// Appends one more value of response header `name`.
    pub fn add_response_header(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
        Headers::RESPONSE.add(name, value)
    }

    /// Removes every value of response header `name`.
    pub fn remove_response_header(&mut self, name: &str) -> Result<(), Status> {
        Headers::RESPONSE.remove(name)
    }

    /// Up to `max` bytes of the buffered request body from `start` (body phases).
    pub fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        host::get_buffer(BufferType::HttpRequestBody, start, max)
            .ok()
            .flatten()
    }

    /// Replaces `size` bytes of the buffered request body at `start` with `value`.
    pub fn set_request_body(
        &mut self,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), Status> {
        host::set_buffer(BufferType::HttpRequestBody, start, size, value)
    }

    /// Up to `max` bytes of the buffered response body from `start`.
    pub fn response_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        host::get_buffer(BufferType::HttpResponseBody, start, max)
            .ok()
            .flatten()
    }

    /// Replaces `size` bytes of the buffered response body at `start` with `value`.
    pub fn set_response_body(
        &mut self,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), Status> {
        host::set_buffer(BufferType::HttpResponseBody, start, size, value)
    }

    /// Answers the client with `response` (the stream ends there); returns the action the
    /// phase must return.
    pub fn respond(&mut self, response: &LocalResponse) -> Action {
        response.send()
    }

    /// [`respond`](Self::respond) with extra headers computed per request
    /// (`Retry-After`, `WWW-Authenticate`).
    pub fn respond_with(&mut self, response: &LocalResponse, extra: &[(&str, &[u8])]) -> Action {
        response.send_with(extra)
    }

    /// Resumes the request after a phase answered `Pause`.
    pub fn resume_request(&mut self) -> Result<(), Status> {
        host::continue_stream(StreamType::HttpRequest)
    }

    /// Resumes the response after a phase answered `Pause`.
    pub fn resume_response(&mut self) -> Result<(), Status> {
        host::continue_stream(StreamType::HttpResponse)
    }

    /// Resets the stream.
    pub fn reset(&mut self) -> Result<(), Status> {
        host::close_stream(StreamType::HttpRequest)
    }

    /// A host property (e.g. `&["connection", "mtls"]`); `None` when unavailable.
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        crate::request::property(path)
    }

    /// Dispatches an HTTP callout to `cluster` (`headers` include `:method`, `:path`,
    /// `:authority`); the answer arrives in [`HttpFilter::on_http_call_response`] with the
    /// returned token. `Err(BadArgument)`: unknown cluster, or a timeout over `u32::MAX` ms.
    pub fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout: std::time::Duration,
    ) -> Result<u32, Status> {
        host::http_call(cluster, headers, body, &[], timeout)
    }
}

impl Request for HttpHost {
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.request.header(name)
    }
    fn source_address(&mut self) -> Option<&[u8]> {
        self.request.source_address()
    }
    fn header_values(&mut self, name: &str) -> Vec<&[u8]> {
        self.request.header_values(name)
    }
    fn each_header(&mut self, f: impl FnMut(&[u8], &[u8]) -> bool) {
        self.request.each_header(f);
    }
    fn route_name(&mut self) -> Option<&[u8]> {
        self.request.route_name()
    }
    fn virtual_host_name(&mut self) -> Option<&[u8]> {
        self.request.virtual_host_name()
    }
    fn cluster_name(&mut self) -> Option<&[u8]> {
        self.request.cluster_name()
    }
}

//! Network (L4) filters: [`NetworkFilter`], the per-connection trait a filter implements
//! (loaded as `envoy.filters.network.wasm`, before `tcp_proxy`), and [`NetworkHost`].
//!
//! A crate may implement both [`crate::http::HttpFilter`] and [`NetworkFilter`] over one
//! [`Plugin`]: the first phase of a context decides which one it is.

use crate::exports::Phases;
use crate::host::{self, Action, BufferType, PeerType, Status, StreamType};
use crate::plugin::Plugin;

/// One connection's filter: created at its first callback, dropped when the host deletes
/// the connection's context. The defaults continue.
pub trait NetworkFilter: Sized + 'static {
    /// The shared configuration.
    type Plugin: Plugin;

    /// The phases this `impl` defines: written by `#[sdk_ext::filter]`.
    #[doc(hidden)]
    const PHASES: Phases;

    /// The filter value for a new connection.
    fn create(plugin: &Self::Plugin) -> Self;

    /// A client connected (before any byte is proxied).
    fn on_new_connection(&mut self, _plugin: &Self::Plugin, _host: &mut NetworkHost) -> Action {
        Action::Continue
    }

    /// Bytes from the client; `data_size` is the buffered size.
    fn on_downstream_data(
        &mut self,
        _plugin: &Self::Plugin,
        _host: &mut NetworkHost,
        _data_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }

    /// Bytes from the upstream.
    fn on_upstream_data(
        &mut self,
        _plugin: &Self::Plugin,
        _host: &mut NetworkHost,
        _data_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }

    /// The client side closed.
    fn on_downstream_close(&mut self, _plugin: &Self::Plugin, _host: &mut NetworkHost, _peer: PeerType) {
    }

    /// The upstream side closed.
    fn on_upstream_close(&mut self, _plugin: &Self::Plugin, _host: &mut NetworkHost, _peer: PeerType) {
    }

    /// The answer to a callout this connection dispatched.
    fn on_http_call_response(
        &mut self,
        _plugin: &Self::Plugin,
        _host: &mut NetworkHost,
        _token: u32,
        _body_size: usize,
    ) {
    }
}

/// The connection, as the filter sees it during one callback.
#[derive(Debug, Default)]
pub struct NetworkHost {
    source: Option<Option<Vec<u8>>>,
}

impl NetworkHost {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The client's address with port (`source.address`), fetched once.
    pub fn source_address(&mut self) -> Option<&[u8]> {
        self.source
            .get_or_insert_with(crate::request::source_address)
            .as_deref()
    }

    /// A host property; `None` when unavailable.
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        crate::request::property(path)
    }

    /// Up to `max` buffered bytes from the client, from `start`.
    pub fn downstream_data(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        host::get_buffer(BufferType::DownstreamData, start, max)
            .ok()
            .flatten()
    }

    /// Up to `max` buffered bytes from the upstream, from `start`.
    pub fn upstream_data(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        host::get_buffer(BufferType::UpstreamData, start, max)
            .ok()
            .flatten()
    }

    /// Replaces `size` buffered client bytes at `start` with `value`.
    pub fn set_downstream_data(&mut self, start: usize, size: usize, value: &[u8]) -> Result<(), Status> {
        host::set_buffer(BufferType::DownstreamData, start, size, value)
    }

    /// Replaces `size` buffered upstream bytes at `start` with `value`.
    pub fn set_upstream_data(&mut self, start: usize, size: usize, value: &[u8]) -> Result<(), Status> {
        host::set_buffer(BufferType::UpstreamData, start, size, value)
    }

    /// Closes the client connection (nothing more is proxied).
    pub fn close_downstream(&mut self) -> Result<(), Status> {
        host::close_stream(StreamType::Downstream)
    }

    /// Closes the upstream connection.
    pub fn close_upstream(&mut self) -> Result<(), Status> {
        host::close_stream(StreamType::Upstream)
    }

    /// Resumes the connection after `on_new_connection` or a data callback paused it.
    pub fn resume(&mut self) -> Result<(), Status> {
        host::continue_stream(StreamType::Downstream)
    }
}

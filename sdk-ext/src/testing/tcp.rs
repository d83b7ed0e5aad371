//! [`TcpStream`]: one TCP connection through a network (L4) filter.

use super::guest;
use super::handle::StreamHandle;
use super::state::{ContextKind, DataBuffer, StreamState};
use crate::host::{Action, PeerType};

/// One TCP connection (a stream context of the filter), created by [`Emulator::tcp`], which
/// already ran `on_new_connection`.
///
/// Data calls buffer like Envoy's connection buffers: after `Pause` the next call sees the
/// held data plus the new chunk. Finish with [`complete`](Self::complete).
///
/// [`Emulator::tcp`]: super::Emulator::tcp
pub struct TcpStream {
    handle: StreamHandle,
}

impl TcpStream {
    pub(crate) fn new(id: u32) -> Self {
        TcpStream {
            handle: StreamHandle::new(id, ContextKind::Tcp),
        }
    }

    /// The connection's context id.
    pub fn id(&self) -> u32 {
        self.handle.id()
    }

    fn feed(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
        buffer: fn(&mut StreamState) -> &mut DataBuffer,
        call: fn(u32, usize, bool) -> Action,
    ) -> Action {
        self.handle.ensure_live();
        let size = self
            .handle
            .with_stream_mut(|stream| {
                let buffer = buffer(stream);
                buffer.receive(chunk);
                buffer.data.len()
            })
            .unwrap_or(0);
        let action = call(self.handle.id(), size, end_of_stream);
        let _ = self
            .handle
            .with_stream_mut(|stream| buffer(stream).settle(action));
        action
    }

    /// What `on_new_connection` answered.
    pub fn new_connection_action(&self) -> Action {
        self.handle
            .with_stream(|stream| stream.new_connection_action)
            .flatten()
            .unwrap_or(Action::Continue)
    }

    /// Data from the client arrives (`on_downstream_data`).
    pub fn downstream_data(&mut self, data: &[u8], end_of_stream: bool) -> Action {
        self.feed(
            data,
            end_of_stream,
            |stream| &mut stream.downstream,
            guest::downstream_data,
        )
    }

    /// Data from the upstream arrives (`on_upstream_data`).
    pub fn upstream_data(&mut self, data: &[u8], end_of_stream: bool) -> Action {
        self.feed(
            data,
            end_of_stream,
            |stream| &mut stream.upstream,
            guest::upstream_data,
        )
    }

    /// The client side closed (`on_downstream_connection_close`).
    pub fn downstream_close(&mut self, peer: PeerType) {
        self.handle.ensure_live();
        guest::downstream_close(self.handle.id(), peer);
    }

    /// The upstream side closed (`on_upstream_connection_close`).
    pub fn upstream_close(&mut self, peer: PeerType) {
        self.handle.ensure_live();
        guest::upstream_close(self.handle.id(), peer);
    }

    /// Ends the connection as Envoy does: `on_done`, `on_log`, then `on_delete`.
    pub fn complete(self) {
        self.handle.ensure_live();
        guest::finish_tcp(self.handle.id());
    }

    /// Sets a property for this connection only.
    pub fn set_property(&mut self, path: &[&str], value: impl AsRef<[u8]>) {
        self.handle.set_property(path, value);
    }

    /// A property as this connection sees it (own, host-wide, or host default).
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.handle.property(path)
    }

    /// The downstream data the last call saw, as the filter left it.
    pub fn downstream_buffer(&self) -> Vec<u8> {
        self.handle
            .with_stream(|stream| stream.downstream.data.clone())
            .unwrap_or_default()
    }

    /// The upstream data the last call saw, as the filter left it.
    pub fn upstream_buffer(&self) -> Vec<u8> {
        self.handle
            .with_stream(|stream| stream.upstream.data.clone())
            .unwrap_or_default()
    }

    /// Downstream data passed on to the upstream so far, in order.
    pub fn forwarded_downstream(&self) -> Vec<u8> {
        self.handle
            .with_stream(|stream| stream.downstream.forwarded.clone())
            .unwrap_or_default()
    }

    /// Upstream data passed on to the client so far, in order.
    pub fn forwarded_upstream(&self) -> Vec<u8> {
        self.handle
            .with_stream(|stream| stream.upstream.forwarded.clone())
            .unwrap_or_default()
    }

    /// Whether the filter closed the client connection (`close_downstream`).
    pub fn closed_downstream(&self) -> bool {
        self.handle
            .with_stream(|stream| stream.downstream_closed)
            .unwrap_or(false)
    }

    /// Whether the filter closed the upstream connection (`close_upstream`).
    pub fn closed_upstream(&self) -> bool {
        self.handle
            .with_stream(|stream| stream.upstream_closed)
            .unwrap_or(false)
    }

    /// Whether the filter resumed reading from the client (`resume_downstream`).
    pub fn resumed_downstream(&self) -> bool {
        self.handle
            .with_stream(|stream| stream.downstream_resumed)
            .unwrap_or(false)
    }

    /// Whether the filter resumed the upstream direction (`resume_upstream`).
    pub fn resumed_upstream(&self) -> bool {
        self.handle
            .with_stream(|stream| stream.upstream_resumed)
            .unwrap_or(false)
    }
}

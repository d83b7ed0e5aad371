//! [`StreamHandle`]: what [`HttpStream`] and [`TcpStream`] share: the context id, the
//! liveness check, access to the host's record of the stream, and its properties.
//!
//! [`HttpStream`]: super::HttpStream
//! [`TcpStream`]: super::TcpStream

use super::guest;
use super::state::{with_host, ContextKind, StreamState};
use super::wire::property_key;
use std::marker::PhantomData;

/// A stream context of the filter, as the test holds it. Bound to its thread (the
/// emulator's host state is thread-local).
pub(crate) struct StreamHandle {
    id: u32,
    kind: ContextKind,
    _thread_bound: PhantomData<*const ()>,
}

impl StreamHandle {
    pub(crate) fn new(id: u32, kind: ContextKind) -> Self {
        StreamHandle {
            id,
            kind,
            _thread_bound: PhantomData,
        }
    }

    /// The context id.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Fails the test when the context no longer exists: a test driving a stream that was
    /// completed, or whose emulator is gone, has a bug that a quiet `Continue` would hide.
    ///
    /// # Panics
    /// If the stream is gone.
    pub(crate) fn ensure_live(&self) {
        if guest::is_live(self.id, self.kind) {
            return;
        }
        let what = match self.kind {
            ContextKind::Tcp => "TCP stream",
            _ => "HTTP stream",
        };
        #[allow(clippy::panic)]
        {
            panic!(
                "emulator: {what} {} no longer exists (it was completed, or its Emulator was \
                 dropped): the test drives a stream that Envoy would not deliver anything to",
                self.id
            );
        }
    }

    /// Reads the host's record of the stream.
    pub(crate) fn with_stream<R>(&self, f: impl FnOnce(&StreamState) -> R) -> Option<R> {
        with_host(|host| host.streams.get(&self.id).map(f)).flatten()
    }

    /// Changes the host's record of the stream.
    pub(crate) fn with_stream_mut<R>(&self, f: impl FnOnce(&mut StreamState) -> R) -> Option<R> {
        with_host(|host| host.streams.get_mut(&self.id).map(f)).flatten()
    }

    /// Sets a property for this stream only.
    pub(crate) fn set_property(&self, path: &[&str], value: impl AsRef<[u8]>) {
        let key = property_key(path);
        let value = value.as_ref().to_vec();
        let _ = self.with_stream_mut(|stream| stream.properties.insert(key, value));
    }

    /// A property as this stream sees it (own, host-wide, derived, or host default).
    pub(crate) fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let key = property_key(path);
        with_host(|host| host.property(self.id, &key)).flatten()
    }
}

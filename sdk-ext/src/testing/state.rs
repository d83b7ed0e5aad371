//! The emulated host's state. There is one per thread, like the SDK's dispatcher, so each
//! test thread is its own VM.
//!
//! Borrow discipline: state is only ever borrowed inside [`with_host`] closures, and no
//! closure calls into the guest, so a host function called by the guest always finds the
//! state free. Every access degrades gracefully (`None`) instead of panicking.

use super::records::{GrpcCallout, HttpCallout, LocalResponse};
use super::wire::Pairs;
use crate::host::{Action, LogLevel, MetricType, Status};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// 2024-01-01T00:00:00Z: what `proxy_get_current_time_nanoseconds` answers by default.
pub(crate) const DEFAULT_TIME_NANOS: u64 = 1_704_067_200 * 1_000_000_000;

/// A host-provided foreign function (`proxy_call_foreign_function`).
pub(crate) type ForeignFunction = Rc<dyn Fn(&[u8]) -> Result<Vec<u8>, Status>>;

thread_local! {
    static HOST: RefCell<HostState> = RefCell::new(HostState::default());
    /// Context ids and callout tokens are never reused on a thread, even across emulators:
    /// the SDK's thread-local dispatcher outlives each `Emulator` and refuses duplicates.
    static NEXT_ID: Cell<u32> = const { Cell::new(1) };
    static NEXT_TOKEN: Cell<u32> = const { Cell::new(1) };
    /// Set while the guest's `_initialize` runs: Envoy refuses every host call then
    /// (`restricted_callback`), so the emulator does too and counts the attempts.
    static RESTRICTED: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Runs `f` with host calls refused, as Envoy does while the guest's `_initialize` or its
/// allocator runs (`restricted_callback`); answers `f`'s result and how many host calls the
/// guest attempted meanwhile.
pub(crate) fn restricted<R>(f: impl FnOnce() -> R) -> (R, u32) {
    let outer = RESTRICTED.try_with(|r| r.replace(Some(0))).ok().flatten();
    let result = f();
    let attempts = RESTRICTED
        .try_with(|r| r.replace(outer))
        .ok()
        .flatten()
        .unwrap_or(0);
    (result, attempts)
}

#[cfg(feature = "wasm-engine")]
/// The emulated clock, read even while host calls are refused (WASI's clock is no host
/// call).
pub(crate) fn now_nanos() -> Option<u64> {
    HOST.try_with(|cell| cell.try_borrow().ok().map(|host| host.now_nanos))
        .ok()
        .flatten()
}

/// Runs `f` on this thread's host state; `None` if the state is unavailable (thread
/// teardown, or a re-entrant borrow, which the design rules out).
pub(crate) fn with_host<R>(f: impl FnOnce(&mut HostState) -> R) -> Option<R> {
    if let Ok(Some(n)) = RESTRICTED.try_with(Cell::get) {
        let _ = RESTRICTED.try_with(|r| r.set(Some(n.saturating_add(1))));
        return None;
    }
    HOST.try_with(|cell| cell.try_borrow_mut().ok().map(|mut host| f(&mut host)))
        .ok()
        .flatten()
}

/// Replaces this thread's host state with a fresh one.
pub(crate) fn reset_host() {
    let _ = with_host(|host| *host = HostState::default());
}

/// A fresh context id, unique on this thread.
pub(crate) fn next_context_id() -> u32 {
    next_from(&NEXT_ID)
}

/// A fresh callout token, unique on this thread.
pub(crate) fn next_token() -> u32 {
    next_from(&NEXT_TOKEN)
}

fn next_from(key: &'static std::thread::LocalKey<Cell<u32>>) -> u32 {
    key.try_with(|cell| {
        let id = cell.get();
        cell.set(id.checked_add(1).unwrap_or(1));
        id
    })
    .unwrap_or(u32::MAX)
}

/// An HTTP header map with Envoy's semantics: names lowercased, several values per name kept
/// in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeaderMap {
    entries: Pairs,
}

impl HeaderMap {
    /// A map from `(name, value)` pairs; names are lowercased.
    pub(crate) fn from_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Self {
        let mut map = HeaderMap::default();
        for (name, value) in pairs {
            map.add(name.as_ref(), value.as_ref());
        }
        map
    }

    /// All entries in order.
    pub(crate) fn pairs(&self) -> &Pairs {
        &self.entries
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let name = lower(name);
        self.entries
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_slice())
    }

    /// Every value of `name`, in order.
    pub(crate) fn values(&self, name: &[u8]) -> Vec<Vec<u8>> {
        let name = lower(name);
        self.entries
            .iter()
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// Appends a value (keeps existing values of the same name).
    pub(crate) fn add(&mut self, name: &[u8], value: &[u8]) {
        self.entries.push((lower(name), value.to_vec()));
    }

    /// Sets `name` to exactly one value: the first entry keeps its position, later entries of
    /// the same name are removed; adds the header if absent.
    pub(crate) fn replace(&mut self, name: &[u8], value: &[u8]) {
        let name = lower(name);
        let mut replaced = false;
        self.entries.retain_mut(|(key, existing)| {
            if *key != name {
                return true;
            }
            if replaced {
                return false;
            }
            replaced = true;
            *existing = value.to_vec();
            true
        });
        if !replaced {
            self.entries.push((name, value.to_vec()));
        }
    }

    /// Removes every value of `name`.
    pub(crate) fn remove(&mut self, name: &[u8]) {
        let name = lower(name);
        self.entries.retain(|(key, _)| *key != name);
    }

    /// Number of entries (what the host passes as `num_headers`).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn lower(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_ascii_lowercase()
}

/// A body or connection-data buffer as the filter sees it across calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct DataBuffer {
    /// What the current (or last) callback sees, as the filter left it.
    pub(crate) data: Vec<u8>,
    /// The last callback paused: Envoy keeps buffering, the next chunk is appended.
    pub(crate) held: bool,
    /// Everything released downstream of this filter so far, in order.
    pub(crate) forwarded: Vec<u8>,
}

impl DataBuffer {
    /// A new chunk arrives: appended to held data, or replacing released data.
    pub(crate) fn receive(&mut self, chunk: &[u8]) {
        if self.held {
            self.data.extend_from_slice(chunk);
        } else {
            self.data = chunk.to_vec();
        }
    }

    /// The callback answered `action`: `Continue` releases the data, anything else holds it.
    pub(crate) fn settle(&mut self, action: Action) {
        if action == Action::Continue {
            self.forwarded.extend_from_slice(&self.data);
            self.held = false;
        } else {
            self.held = true;
        }
    }

    /// Releases held data (the filter resumed the stream with `proxy_continue_stream`).
    pub(crate) fn release(&mut self) {
        if self.held {
            self.forwarded.extend_from_slice(&self.data);
            self.held = false;
        }
    }
}

/// What kind of context an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextKind {
    /// The root (plugin) context.
    Root,
    /// An HTTP stream context.
    Http,
    /// A TCP (network) stream context.
    Tcp,
}

/// Per-stream state: headers, bodies, flags, properties.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamState {
    pub(crate) request_headers: HeaderMap,
    pub(crate) request_trailers: HeaderMap,
    pub(crate) response_headers: HeaderMap,
    pub(crate) response_trailers: HeaderMap,
    pub(crate) request_body: DataBuffer,
    pub(crate) response_body: DataBuffer,
    pub(crate) downstream: DataBuffer,
    pub(crate) upstream: DataBuffer,
    /// Properties set on this stream (by the test or the filter), keyed by `\0`-joined path.
    pub(crate) properties: HashMap<Vec<u8>, Vec<u8>>,
    pub(crate) local_response: Option<LocalResponse>,
    pub(crate) request_resumed: bool,
    pub(crate) response_resumed: bool,
    pub(crate) downstream_resumed: bool,
    pub(crate) upstream_resumed: bool,
    pub(crate) request_reset: bool,
    pub(crate) response_reset: bool,
    pub(crate) downstream_closed: bool,
    pub(crate) upstream_closed: bool,
    pub(crate) new_connection_action: Option<Action>,
}

/// A metric defined with `proxy_define_metric`.
#[derive(Debug, Clone)]
pub(crate) struct Metric {
    pub(crate) name: String,
    pub(crate) kind: MetricType,
    pub(crate) value: u64,
    pub(crate) recorded: Vec<u64>,
}

/// A shared queue registered with `proxy_register_shared_queue`.
#[derive(Debug, Clone)]
pub(crate) struct SharedQueue {
    pub(crate) name: String,
    /// The root context that registered it (receives `on_queue_ready`).
    pub(crate) owner: u32,
    pub(crate) items: std::collections::VecDeque<Vec<u8>>,
}

/// The answer to an HTTP callout, visible only during `on_http_call_response`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallResponse {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: HeaderMap,
}

/// Everything the emulated host knows on this thread.
pub(crate) struct HostState {
    /// The context host calls act on (set before each guest call, and by
    /// `proxy_set_effective_context`).
    pub(crate) current: u32,
    pub(crate) root: Option<u32>,
    pub(crate) contexts: BTreeMap<u32, ContextKind>,
    pub(crate) streams: HashMap<u32, StreamState>,
    pub(crate) log_level: LogLevel,
    pub(crate) logs: Vec<(LogLevel, String)>,
    pub(crate) now_nanos: u64,
    pub(crate) tick_period_ms: u32,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) properties: HashMap<Vec<u8>, Vec<u8>>,
    /// Metric id `n` is `metrics[n - 1]`.
    pub(crate) metrics: Vec<Metric>,
    pub(crate) shared_data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    pub(crate) next_cas: u32,
    /// Queue id `n` is `queues[n - 1]`.
    pub(crate) queues: Vec<SharedQueue>,
    /// Queues a guest enqueued to, whose owner is told after the current guest call.
    pub(crate) queue_ready: Vec<(u32, u32)>,
    pub(crate) http_calls: BTreeMap<u32, HttpCallout>,
    pub(crate) grpc_calls: BTreeMap<u32, GrpcCallout>,
    pub(crate) known_clusters: Option<Vec<String>>,
    pub(crate) call_response: Option<CallResponse>,
    pub(crate) grpc_receive: Option<Vec<u8>>,
    /// What `proxy_get_status` answers: code and message.
    pub(crate) status: (u32, Vec<u8>),
    pub(crate) foreign_functions: HashMap<String, ForeignFunction>,
}

impl Default for HostState {
    fn default() -> Self {
        HostState {
            current: 0,
            root: None,
            contexts: BTreeMap::new(),
            streams: HashMap::new(),
            log_level: LogLevel::Trace,
            logs: Vec::new(),
            now_nanos: DEFAULT_TIME_NANOS,
            tick_period_ms: 0,
            vm_config: Vec::new(),
            plugin_config: Vec::new(),
            properties: HashMap::new(),
            metrics: Vec::new(),
            shared_data: HashMap::new(),
            next_cas: 1,
            queues: Vec::new(),
            queue_ready: Vec::new(),
            http_calls: BTreeMap::new(),
            grpc_calls: BTreeMap::new(),
            known_clusters: None,
            call_response: None,
            grpc_receive: None,
            status: (0, Vec::new()),
            foreign_functions: HashMap::new(),
        }
    }
}

impl HostState {
    /// The stream the current context names, if it is one.
    pub(crate) fn current_stream(&self) -> Option<&StreamState> {
        self.streams.get(&self.current)
    }

    /// The stream the current context names, if it is one.
    pub(crate) fn current_stream_mut(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.current)
    }

    /// The kind of the current context.
    pub(crate) fn current_kind(&self) -> Option<ContextKind> {
        self.contexts.get(&self.current).copied()
    }

    /// A property as `context` sees it: the stream's own value, else the global one, else a
    /// value derived from the stream (request headers) or a host default.
    pub(crate) fn property(&self, context: u32, key: &[u8]) -> Option<Vec<u8>> {
        let stream = self.streams.get(&context);
        if let Some(value) = stream.and_then(|stream| stream.properties.get(key)) {
            return Some(value.clone());
        }
        if let Some(value) = self.properties.get(key) {
            return Some(value.clone());
        }
        derived_property(stream, key)
    }

    /// The next CAS value (never 0, which means "no CAS").
    pub(crate) fn bump_cas(&mut self) -> u32 {
        let cas = self.next_cas;
        self.next_cas = self.next_cas.checked_add(1).unwrap_or(1);
        cas
    }

    /// Writes shared data like Envoy: a non-zero `cas` must match the stored one.
    pub(crate) fn set_shared_data(&mut self, key: &[u8], value: &[u8], cas: u32) -> Status {
        if let Some((_, stored_cas)) = self.shared_data.get(key) {
            if cas != 0 && cas != *stored_cas {
                return Status::CasMismatch;
            }
        }
        let new_cas = self.bump_cas();
        self.shared_data
            .insert(key.to_vec(), (value.to_vec(), new_cas));
        Status::Ok
    }

    /// Index into `metrics` for a metric id.
    pub(crate) fn metric_mut(&mut self, id: u32) -> Option<&mut Metric> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.metrics.get_mut(index)
    }

    /// A metric by id.
    pub(crate) fn metric(&self, id: u32) -> Option<&Metric> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.metrics.get(index)
    }

    /// A shared queue by id.
    pub(crate) fn queue_mut(&mut self, id: u32) -> Option<&mut SharedQueue> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.queues.get_mut(index)
    }

    /// A shared queue's id by name.
    pub(crate) fn queue_id(&self, name: &str) -> Option<u32> {
        let index = self.queues.iter().position(|queue| queue.name == name)?;
        u32::try_from(index.checked_add(1)?).ok()
    }

    /// Records a log line if it passes the host's level. Answers whether it was recorded.
    pub(crate) fn record_log(&mut self, level: LogLevel, message: &str) -> bool {
        if (level as u32) < (self.log_level as u32) {
            return false;
        }
        self.logs.push((level, message.to_string()));
        true
    }
}

/// Properties Envoy derives from the stream, and host defaults.
fn derived_property(stream: Option<&StreamState>, key: &[u8]) -> Option<Vec<u8>> {
    let header = |name: &str| {
        stream
            .and_then(|stream| stream.request_headers.get(name.as_bytes()))
            .map(<[u8]>::to_vec)
    };
    match key {
        b"source\0address" => Some(b"127.0.0.1:45678".to_vec()),
        b"source\0port" => Some(45678i64.to_le_bytes().to_vec()),
        b"destination\0address" => Some(b"127.0.0.1:10000".to_vec()),
        b"destination\0port" => Some(10000i64.to_le_bytes().to_vec()),
        b"request\0path" => header(":path"),
        b"request\0url_path" => header(":path").map(|path| {
            let end = path.iter().position(|b| *b == b'?').unwrap_or(path.len());
            path.get(..end).map(<[u8]>::to_vec).unwrap_or_default()
        }),
        b"request\0query" => {
            header(":path").map(|path| match path.iter().position(|b| *b == b'?') {
                Some(at) => path
                    .get(at.saturating_add(1)..)
                    .unwrap_or_default()
                    .to_vec(),
                None => Vec::new(),
            })
        }
        b"request\0method" => header(":method"),
        b"request\0host" => header(":authority"),
        b"request\0scheme" => header(":scheme"),
        b"request\0id" => header("x-request-id"),
        b"request\0useragent" => header("user-agent"),
        b"request\0referer" => header("referer"),
        b"request\0protocol" => stream
            .filter(|stream| stream.request_headers.len() > 0)
            .map(|_| b"HTTP/1.1".to_vec()),
        b"response\0code" => stream
            .and_then(|stream| stream.response_headers.get(b":status"))
            .and_then(|status| std::str::from_utf8(status).ok()?.parse::<i64>().ok())
            .map(|code| code.to_le_bytes().to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_map_semantics() {
        let mut map = HeaderMap::from_pairs(&[("A", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(map.get(b"a"), Some(&b"1"[..]));
        assert_eq!(map.values(b"A"), vec![b"1".to_vec(), b"3".to_vec()]);
        map.replace(b"A", b"9");
        assert_eq!(map.values(b"a"), vec![b"9".to_vec()]);
        assert_eq!(map.pairs().first().map(|(k, _)| k.as_str()), Some("a"));
        map.replace(b"c", b"x");
        assert_eq!(map.get(b"C"), Some(&b"x"[..]));
        map.remove(b"B");
        assert_eq!(map.get(b"b"), None);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn buffer_accumulates_while_held() {
        let mut buffer = DataBuffer::default();
        buffer.receive(b"ab");
        buffer.settle(Action::Pause);
        buffer.receive(b"cd");
        assert_eq!(buffer.data, b"abcd");
        buffer.settle(Action::Continue);
        assert_eq!(buffer.forwarded, b"abcd");
        buffer.receive(b"ef");
        assert_eq!(buffer.data, b"ef");
    }
}

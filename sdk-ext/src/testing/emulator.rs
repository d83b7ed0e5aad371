//! [`Emulator`]: the test's handle on the emulated host and the filter's root context.

use super::guest;
use super::http::HttpStream;
use super::records::{GrpcCallout, HttpCallout};
use super::state::{
    next_context_id, reset_host, with_host, CallResponse, ContextKind, HeaderMap, HostState,
};
use super::tcp::TcpStream;
use super::wire::property_key;
use crate::exports::Exports;
use crate::host::{LogLevel, MetricType, Status};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `proxy_get_status` code Envoy reports for a failed (reset / timed out) HTTP callout.
const BROKEN_CONNECTION: u32 = 11;

/// The emulated host for one test: an Envoy-like VM running the filter natively.
///
/// Create one per test with the filter module's exports ([`native`](Self::native) with the
/// `EXPORTS` that `sdk_ext::main!` defines), configure the host, [`start`](Self::start) the
/// plugin, then drive streams with [`http`](Self::http) / [`tcp`](Self::tcp) and inspect
/// what the filter did.
///
/// State is thread-local (the SDK's dispatcher is), so use one `Emulator` at a time per
/// thread; `cargo test` runs each test on its own thread. The type is neither `Send` nor
/// `Sync`. Dropping it deletes the contexts still alive (without `on_done`/`on_log`).
///
/// ```no_run
/// # use sdk_ext::testing::{Action, Emulator};
/// # static EXPORTS: sdk_ext::exports::Exports = sdk_ext::exports::Exports::NONE;
/// // my_filter::EXPORTS in a filter's tests
/// let mut emu = Emulator::native(&EXPORTS);
/// emu.start(r#"{"header": "x-hello"}"#).unwrap();
/// let mut stream = emu.http();
/// assert_eq!(stream.request_headers(&[(":path", "/")], true), Action::Continue);
/// assert_eq!(stream.request_header_str("x-hello").as_deref(), Some("world"));
/// ```
pub struct Emulator {
    _thread_bound: PhantomData<*const ()>,
}

impl Emulator {
    /// Loads a module natively: `exports` is the `EXPORTS` table `sdk_ext::main!` defines
    /// in the filter crate (or [`proxy_wasm_sdk_exports!`](crate::proxy_wasm_sdk_exports)
    /// for a filter on the bare proxy-wasm SDK). Resets this thread's host state and runs the
    /// module's `_initialize`; nothing else runs until [`start`](Self::start). Only the
    /// callbacks the module exports are ever delivered, as in Envoy.
    ///
    /// # Panics
    /// If `_initialize` makes a host call: Envoy refuses those there and fails to load the
    /// module, so the test fails here instead.
    pub fn native(exports: &'static Exports) -> Self {
        std::hint::black_box(super::abi::link_all());
        reset_host();
        guest::load_native(exports);
        // The SDK's `set_log_level` installs the process-wide logger with check-then-set and
        // `unwrap`s the result: two test threads initializing at once would abort. Serialize.
        static INIT: Mutex<()> = Mutex::new(());
        let _serialized = INIT.lock().unwrap_or_else(PoisonError::into_inner);
        Self::initialized()
    }

    /// Loads a built `.wasm` in the wasm engine (feature `wasm-engine`): the same host, the
    /// same test API, the module's own code as Envoy runs it. `path` is absolute, or
    /// relative to the current directory or any of its ancestors (so `"dist/x.wasm"` finds
    /// the repository's `dist/` from a crate's tests). Resets this thread's host state and
    /// runs the module's `_initialize`.
    ///
    /// # Panics
    /// When Envoy would refuse the module (see [`try_wasm`](Self::try_wasm)), or
    /// `_initialize` makes a host call.
    #[cfg(feature = "wasm-engine")]
    pub fn wasm(path: &str) -> Self {
        match Self::try_wasm(path) {
            Ok(emulator) => emulator,
            #[allow(clippy::panic)]
            Err(refusal) => panic!("emulator: {refusal}"),
        }
    }

    /// [`wasm`](Self::wasm), answering why the module was refused instead of failing the
    /// test: no such file, not a module, an import the host does not provide (Envoy:
    /// "missing import"), no ABI version export, no `memory` or `proxy_on_memory_allocate`.
    #[cfg(feature = "wasm-engine")]
    pub fn try_wasm(path: &str) -> Result<Self, String> {
        let module = super::wasm::WasmModule::load(path)?;
        reset_host();
        guest::load_wasm(module);
        Ok(Self::initialized())
    }

    /// Runs the loaded module's `_initialize` with host calls refused, as Envoy does.
    fn initialized() -> Self {
        let ((), attempts) = super::state::restricted(guest::initialize);
        #[allow(clippy::panic)]
        if attempts != 0 {
            panic!(
                "the filter made {attempts} host call(s) during _initialize; Envoy refuses \
                 them there (restricted_callback) and fails to load the module: move them \
                 to on_vm_start / on_configure"
            );
        }
        Emulator {
            _thread_bound: PhantomData,
        }
    }

    /// The size of the module's linear memory in bytes, on the wasm engine (`None` on the
    /// native engine, where the filter shares the test's heap). It only grows: compare it
    /// before and after a run to see that a filter's memory stays bounded.
    pub fn memory_bytes(&self) -> Option<usize> {
        guest::memory_bytes()
    }

    /// The fuel (wasm operators, as wasmtime meters them) the module's code has consumed
    /// since it was loaded, on the wasm engine with fuel metering on (the environment
    /// variable `SDK_EXT_WASM_FUEL=1` before the first `Emulator::wasm` of the process);
    /// `None` otherwise. Host functions cost nothing: this is the guest's own CPU, and it is
    /// deterministic (the difference over a run of requests is a per-request cost).
    pub fn guest_fuel(&self) -> Option<u64> {
        guest::fuel_consumed()
    }

    /// [`guest_fuel`](Self::guest_fuel) by export since the module was loaded: (export
    /// name, calls, fuel), sorted by name; empty when unmetered or native.
    pub fn guest_fuel_by_export(&self) -> Vec<(String, u64, u64)> {
        guest::fuel_by_export()
    }

    /// [`guest_fuel`](Self::guest_fuel) by segment of guest code between host calls, since
    /// the module was loaded: (from, to, times, fuel), sorted. `from` is an export's name
    /// (its entry) or a host import's (its return), or `in` (inside a host call: the
    /// guest's allocator); `to` is the next host import called, or `return`. A
    /// deterministic profile: which stretch of a phase costs what. Empty unmetered.
    pub fn guest_fuel_segments(&self) -> Vec<(String, String, u64, u64)> {
        guest::fuel_segments()
    }

    /// Which engine runs the module: `"native engine"` or `"wasm engine, <path>"`.
    pub fn engine(&self) -> String {
        guest::describe()
    }

    // ----- configuration --------------------------------------------------------------

    /// Sets the VM configuration (`vm_config.configuration`), read in `on_vm_start`.
    pub fn set_vm_config(&mut self, config: impl AsRef<[u8]>) {
        let config = config.as_ref().to_vec();
        let _ = with_host(|host| host.vm_config = config);
    }

    /// Sets a host property for every context (`path` parts as the filter passes them to
    /// `get_property`, e.g. `&["plugin_name"]`). Stream values override it.
    pub fn set_property(&mut self, path: &[&str], value: impl AsRef<[u8]>) {
        let key = property_key(path);
        let value = value.as_ref().to_vec();
        let _ = with_host(|host| host.properties.insert(key, value));
    }

    /// A property as a root context sees it (set by the test, or by the filter from a root
    /// context), including host defaults such as `source.address`.
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let key = property_key(path);
        with_host(|host| host.property(0, &key)).flatten()
    }

    /// Sets what `proxy_get_log_level` answers (default `Trace`); lower-level logs are dropped.
    pub fn set_log_level(&mut self, level: LogLevel) {
        let _ = with_host(|host| host.log_level = level);
    }

    /// Restricts `proxy_http_call` (and gRPC calls) to these cluster names: another upstream
    /// answers `BadArgument` (gRPC: `ParseFailure`), as Envoy does for an unknown cluster.
    /// By default every cluster is known.
    pub fn set_known_clusters(&mut self, names: &[&str]) {
        let names = names.iter().map(|name| name.to_string()).collect();
        let _ = with_host(|host| host.known_clusters = Some(names));
    }

    /// Provides a foreign function for `proxy_call_foreign_function`; names not registered
    /// answer `NotFound` (as Envoy does). A panic in `function` answers `InternalFailure`.
    pub fn register_foreign_function(
        &mut self,
        name: &str,
        function: impl Fn(&[u8]) -> Result<Vec<u8>, Status> + 'static,
    ) {
        let name = name.to_string();
        let function: super::state::ForeignFunction = Rc::new(function);
        let _ = with_host(|host| host.foreign_functions.insert(name, function));
    }

    // ----- lifecycle ------------------------------------------------------------------

    /// Creates the root context, then calls `on_vm_start` and `on_configure` with
    /// `plugin_config`. `Err` when Envoy would refuse the configuration (`on_vm_start` or
    /// `on_configure` answered false), with the error lines the filter logged meanwhile
    /// (sdk-ext filters log `"<name>: invalid config at <field>: <reason>"`).
    ///
    /// Calling it again re-runs only `on_configure` with the new configuration.
    pub fn start(&mut self, plugin_config: impl AsRef<[u8]>) -> Result<(), String> {
        let config = plugin_config.as_ref().to_vec();
        let size = config.len();
        let logged_before = with_host(|host| {
            host.plugin_config = config;
            host.logs.len()
        })
        .unwrap_or(0);
        let accepted = if let Some(root) = self.root_context_id() {
            guest::configure(root, size)
        } else {
            let root = next_context_id();
            let vm_config_size = with_host(|host| {
                host.root = Some(root);
                host.vm_config.len()
            })
            .unwrap_or(0);
            guest::create_context(root, 0, ContextKind::Root);
            guest::vm_start(root, vm_config_size) && guest::configure(root, size)
        };
        if accepted {
            return Ok(());
        }
        let errors: Vec<String> = with_host(|host| {
            host.logs
                .iter()
                .skip(logged_before)
                .filter(|(level, _)| matches!(level, LogLevel::Error | LogLevel::Critical))
                .map(|(_, message)| message.clone())
                .collect()
        })
        .unwrap_or_default();
        Err(if errors.is_empty() {
            "the filter refused its configuration without logging why".to_string()
        } else {
            errors.join("\n")
        })
    }

    /// The root context's id, once [`start`](Self::start) ran.
    pub fn root_context_id(&self) -> Option<u32> {
        with_host(|host| host.root).flatten()
    }

    /// The root id for a new stream, starting the plugin with an empty configuration if the
    /// test did not.
    fn root_for_stream(&mut self) -> u32 {
        if let Some(root) = self.root_context_id() {
            return root;
        }
        let _ = with_host(|host| {
            host.record_log(
                LogLevel::Warn,
                "emulator: stream created before start(); started with an empty plugin configuration",
            )
        });
        let _ = self.start(b"");
        self.root_context_id().unwrap_or(0)
    }

    /// Opens an HTTP stream: a new context (`on_context_create`). Drive it with the
    /// returned [`HttpStream`].
    pub fn http(&mut self) -> HttpStream {
        let root = self.root_for_stream();
        let id = next_context_id();
        guest::create_context(id, root, ContextKind::Http);
        HttpStream::new(id)
    }

    /// Opens a TCP connection: a new context, then `on_new_connection` (its answer is
    /// [`TcpStream::new_connection_action`]).
    pub fn tcp(&mut self) -> TcpStream {
        let root = self.root_for_stream();
        let id = next_context_id();
        guest::create_context(id, root, ContextKind::Tcp);
        let action = guest::new_connection(id);
        let _ = with_host(|host| {
            if let Some(stream) = host.streams.get_mut(&id) {
                stream.new_connection_action = Some(action);
            }
        });
        TcpStream::new(id)
    }

    /// Calls the root context's `on_tick` (whatever the tick period; time does not move).
    pub fn tick(&mut self) {
        if let Some(root) = self.root_context_id() {
            guest::tick(root);
        }
    }

    /// The tick period the filter set, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        with_host(|host| host.tick_period_ms)
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms)))
    }

    // ----- time -----------------------------------------------------------------------

    /// What `proxy_get_current_time_nanoseconds` answers (default 2024-01-01T00:00:00Z).
    pub fn now(&self) -> SystemTime {
        let nanos = with_host(|host| host.now_nanos).unwrap_or(super::state::DEFAULT_TIME_NANOS);
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }

    /// Sets the emulated clock (instants before 1970 clamp to the epoch).
    pub fn set_time(&mut self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let _ = with_host(|host| host.now_nanos = nanos);
    }

    /// Moves the emulated clock forward.
    pub fn advance_time(&mut self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = with_host(|host| host.now_nanos = host.now_nanos.saturating_add(by));
    }

    // ----- logs -----------------------------------------------------------------------

    /// Every log line recorded so far, oldest first.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        with_host(|host| host.logs.clone()).unwrap_or_default()
    }

    /// Messages logged at exactly `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<String> {
        self.logs()
            .into_iter()
            .filter(|(logged, _)| *logged == level)
            .map(|(_, message)| message)
            .collect()
    }

    /// Whether any log message contains `needle`.
    pub fn has_log(&self, needle: &str) -> bool {
        with_host(|host| {
            host.logs
                .iter()
                .any(|(_, message)| message.contains(needle))
        })
        .unwrap_or(false)
    }

    /// Forgets the recorded logs.
    pub fn clear_logs(&mut self) {
        let _ = with_host(|host| host.logs.clear());
    }

    // ----- metrics --------------------------------------------------------------------

    /// A counter's or gauge's value by name.
    pub fn metric(&self, name: &str) -> Option<u64> {
        with_host(|host| {
            host.metrics
                .iter()
                .find(|metric| {
                    metric.name == name
                        && matches!(metric.kind, MetricType::Counter | MetricType::Gauge)
                })
                .map(|metric| metric.value)
        })
        .flatten()
    }

    /// The values recorded in a histogram, in order.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        with_host(|host| {
            host.metrics
                .iter()
                .find(|metric| metric.name == name && metric.kind == MetricType::Histogram)
                .map(|metric| metric.recorded.clone())
        })
        .flatten()
    }

    /// Names of every defined metric, in definition order.
    pub fn metric_names(&self) -> Vec<String> {
        with_host(|host| {
            host.metrics
                .iter()
                .map(|metric| metric.name.clone())
                .collect()
        })
        .unwrap_or_default()
    }

    // ----- shared data and queues -----------------------------------------------------

    /// Shared data under `key`.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        with_host(|host| {
            host.shared_data
                .get(key.as_bytes())
                .map(|(value, _)| value.clone())
        })
        .flatten()
    }

    /// The CAS of shared data under `key`.
    pub fn shared_data_cas(&self, key: &str) -> Option<u32> {
        with_host(|host| host.shared_data.get(key.as_bytes()).map(|(_, cas)| *cas)).flatten()
    }

    /// Writes shared data (as another worker would); bumps its CAS.
    pub fn set_shared_data(&mut self, key: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let _ = with_host(|host| host.set_shared_data(key.as_bytes(), value, 0));
    }

    /// The id of a queue the filter registered.
    pub fn queue_id(&self, name: &str) -> Option<u32> {
        with_host(|host| host.queue_id(name)).flatten()
    }

    /// Items waiting in a queue, oldest first.
    pub fn queue_items(&self, name: &str) -> Vec<Vec<u8>> {
        with_host(|host| {
            let id = host.queue_id(name)?;
            host.queue_mut(id)
                .map(|queue| queue.items.iter().cloned().collect())
        })
        .flatten()
        .unwrap_or_default()
    }

    /// Enqueues to a queue the filter registered (as another VM would) and calls its
    /// owner's `on_queue_ready`. `false` if no such queue. (When the filter itself
    /// enqueues, `on_queue_ready` runs after the callback that enqueued.)
    pub fn enqueue(&mut self, queue_name: &str, data: impl AsRef<[u8]>) -> bool {
        let data = data.as_ref().to_vec();
        let target = with_host(|host| {
            let id = host.queue_id(queue_name)?;
            let queue = host.queue_mut(id)?;
            queue.items.push_back(data);
            Some((queue.owner, id))
        })
        .flatten();
        match target {
            Some((owner, id)) => {
                if guest::is_live(owner, ContextKind::Root) {
                    guest::queue_ready(owner, id);
                }
                true
            }
            None => false,
        }
    }

    // ----- HTTP callouts --------------------------------------------------------------

    /// Outgoing HTTP callouts not answered yet, by token.
    pub fn http_calls(&self) -> Vec<HttpCallout> {
        with_host(|host| host.http_calls.values().cloned().collect()).unwrap_or_default()
    }

    /// Answers callout `token` (headers such as `(":status", "200")`, body; no trailers):
    /// the dispatching context's `on_http_call_response` runs with them readable. `false`
    /// if `token` is not pending.
    pub fn respond_http_call(&mut self, token: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
        let response = CallResponse {
            headers: HeaderMap::from_pairs(headers),
            body: body.to_vec(),
            trailers: HeaderMap::default(),
        };
        self.deliver_http_call(token, Some(response))
    }

    /// Like [`respond_http_call`](Self::respond_http_call) with byte values and trailers.
    pub fn respond_http_call_bytes(
        &mut self,
        token: u32,
        headers: &[(&str, &[u8])],
        body: &[u8],
        trailers: &[(&str, &[u8])],
    ) -> bool {
        let response = CallResponse {
            headers: HeaderMap::from_pairs(headers),
            body: body.to_vec(),
            trailers: HeaderMap::from_pairs(trailers),
        };
        self.deliver_http_call(token, Some(response))
    }

    /// Fails callout `token` as Envoy does on reset or timeout: `on_http_call_response`
    /// with no headers, body or trailers, and `proxy_get_status` answering code 11
    /// (`BrokenConnection`) with message "reset". `false` if `token` is not pending.
    pub fn fail_http_call(&mut self, token: u32) -> bool {
        self.deliver_http_call(token, None)
    }

    fn deliver_http_call(&mut self, token: u32, response: Option<CallResponse>) -> bool {
        let failed = response.is_none();
        let pending = with_host(|host| {
            let call = host.http_calls.remove(&token)?;
            let response = response.unwrap_or_default();
            let sizes = (
                response.headers.len(),
                response.body.len(),
                response.trailers.len(),
            );
            host.call_response = Some(response);
            host.status = if failed {
                (BROKEN_CONNECTION, b"reset".to_vec())
            } else {
                (0, Vec::new())
            };
            Some((call.context_id, sizes))
        })
        .flatten();
        let Some((context, (headers, body, trailers))) = pending else {
            return false;
        };
        guest::http_call_response(context, token, headers, body, trailers);
        let _ = with_host(clear_callout_answer);
        true
    }

    // ----- gRPC callouts --------------------------------------------------------------

    /// Outgoing gRPC calls and streams still open, by token.
    pub fn grpc_calls(&self) -> Vec<GrpcCallout> {
        with_host(|host| host.grpc_calls.values().cloned().collect()).unwrap_or_default()
    }

    /// Delivers a response message for gRPC call `token` (`on_grpc_call_response` with
    /// status 0, the message readable as the gRPC receive buffer). A unary call is then
    /// done; a stream stays open. `false` if `token` is not open.
    pub fn respond_grpc_call(&mut self, token: u32, message: &[u8]) -> bool {
        let message = message.to_vec();
        let pending = with_host(|host| {
            let call = host.grpc_calls.get(&token)?;
            let context = call.context_id;
            if !call.streaming {
                host.grpc_calls.remove(&token);
            }
            let size = message.len();
            host.grpc_receive = Some(message);
            host.status = (0, Vec::new());
            Some((context, size))
        })
        .flatten();
        let Some((context, size)) = pending else {
            return false;
        };
        guest::grpc_receive(context, token, size);
        let _ = with_host(clear_callout_answer);
        true
    }

    /// Closes gRPC call/stream `token` with a gRPC `status` (non-zero for a failure) and
    /// message (readable through `proxy_get_status`). `false` if `token` is not open.
    pub fn fail_grpc_call(&mut self, token: u32, status: u32, message: &str) -> bool {
        let message = message.as_bytes().to_vec();
        let pending = with_host(|host| {
            let call = host.grpc_calls.remove(&token)?;
            host.status = (status, message);
            Some(call.context_id)
        })
        .flatten();
        let Some(context) = pending else {
            return false;
        };
        guest::grpc_close(context, token, status);
        let _ = with_host(clear_callout_answer);
        true
    }
}

fn clear_callout_answer(host: &mut HostState) {
    host.call_response = None;
    host.grpc_receive = None;
    host.status = (0, Vec::new());
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // During a failing test's unwind, calling into the filter could panic again (abort).
        if std::thread::panicking() {
            return;
        }
        let contexts = with_host(|host| {
            let mut ids: Vec<(u32, ContextKind)> = host
                .contexts
                .iter()
                .map(|(id, kind)| (*id, *kind))
                .collect();
            // Streams first, root last.
            ids.sort_by_key(|(id, kind)| (*kind == ContextKind::Root, *id));
            ids
        })
        .unwrap_or_default();
        for (id, _) in contexts {
            guest::delete(id);
        }
    }
}

//! Calls into the filter, on either engine: exactly the callbacks the module exports, as
//! Envoy calls them (a phase it does not export continues; no `on_done` means done).
//!
//! The module is this thread's: a table of native functions ([`Exports`], the native
//! engine) or an instantiated `.wasm` (the wasm engine). Every call first makes the target
//! context current, so host calls made by the filter act on it; afterwards the host
//! delivers `on_queue_ready` for queues the filter enqueued to (Envoy posts these to the
//! worker, so they run after the current callback).
//!
//! A trap in the module (a wasm trap; natively, a panic) fails the test with the export,
//! the context and the trap's message; it never aborts the test binary.

use super::state::{with_host, ContextKind};
use crate::exports::Exports;
use crate::host::{Action, PeerType};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The module under test on this thread.
enum Loaded {
    /// Nothing loaded on this thread (e.g. a wasmtime compilation thread).
    Nothing,
    Native(&'static Exports),
    #[cfg(feature = "wasm-engine")]
    Wasm(Box<super::wasm::WasmModule>),
}

thread_local! {
    /// Set by `Emulator::native` / `Emulator::wasm`.
    static MODULE: RefCell<Loaded> = const { RefCell::new(Loaded::Nothing) };
}

/// Loads `exports` as this thread's module (the native engine).
pub(crate) fn load_native(exports: &'static Exports) {
    let _ = MODULE.try_with(|m| m.replace(Loaded::Native(exports)));
}

/// Loads an instantiated `.wasm` as this thread's module (the wasm engine).
#[cfg(feature = "wasm-engine")]
pub(crate) fn load_wasm(module: super::wasm::WasmModule) {
    let _ = MODULE.try_with(|m| m.replace(Loaded::Wasm(Box::new(module))));
}

/// Whether this thread runs a native module. Elsewhere (a wasm-engine thread, a thread of
/// wasmtime's compiler) the native host functions belong to no guest: what calls them is
/// native code in the test binary (e.g. a filter's logger, installed process-wide by the
/// `log` crate, relaying wasmtime's own log lines), and they refuse it.
pub fn native_guest() -> bool {
    MODULE
        .try_with(|m| matches!(m.try_borrow().as_deref(), Ok(Loaded::Native(_))))
        .unwrap_or(false)
}

/// The size of the wasm module's linear memory in bytes (`None` on the native engine).
pub(crate) fn memory_bytes() -> Option<usize> {
    MODULE
        .try_with(|m| match &*m.try_borrow().ok()? {
            Loaded::Nothing | Loaded::Native(_) => None,
            #[cfg(feature = "wasm-engine")]
            Loaded::Wasm(module) => Some(module.memory_bytes()),
        })
        .ok()
        .flatten()
}

/// The fuel the wasm module's code consumed so far (`None` on the native engine or
/// unmetered; see `wasm::FUEL_VAR`).
pub(crate) fn fuel_consumed() -> Option<u64> {
    MODULE
        .try_with(|m| match &*m.try_borrow().ok()? {
            Loaded::Nothing | Loaded::Native(_) => None,
            #[cfg(feature = "wasm-engine")]
            Loaded::Wasm(module) => module.fuel_consumed(),
        })
        .ok()
        .flatten()
}

/// By export: calls and fuel consumed (empty on the native engine or unmetered).
pub(crate) fn fuel_by_export() -> Vec<(String, u64, u64)> {
    MODULE
        .try_with(|m| match &*m.try_borrow().ok()? {
            Loaded::Nothing | Loaded::Native(_) => None,
            #[cfg(feature = "wasm-engine")]
            Loaded::Wasm(module) => Some(module.fuel_by_export()),
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Fuel between host calls (see `wasm::fuel_segments`; empty natively or unmetered).
pub(crate) fn fuel_segments() -> Vec<(String, String, u64, u64)> {
    #[cfg(feature = "wasm-engine")]
    {
        super::wasm::fuel_segments()
    }
    #[cfg(not(feature = "wasm-engine"))]
    {
        Vec::new()
    }
}

/// Which engine runs this thread's module, and for wasm its file.
pub(crate) fn describe() -> String {
    MODULE
        .try_with(|m| match m.try_borrow().as_deref() {
            Ok(Loaded::Native(_)) => "native engine".to_string(),
            Ok(Loaded::Nothing) | Err(_) => "no module".to_string(),
            #[cfg(feature = "wasm-engine")]
            Ok(Loaded::Wasm(module)) => format!("wasm engine, {}", module.path().display()),
        })
        .unwrap_or_default()
}

/// One callback of the module, with its arguments as the ABI passes them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    Initialize,
    ContextCreate(u32, u32),
    VmStart(u32, usize),
    Configure(u32, usize),
    Tick(u32),
    QueueReady(u32, u32),
    Done(u32),
    Log(u32),
    Delete(u32),
    RequestHeaders(u32, usize, bool),
    RequestBody(u32, usize, bool),
    RequestTrailers(u32, usize),
    ResponseHeaders(u32, usize, bool),
    ResponseBody(u32, usize, bool),
    ResponseTrailers(u32, usize),
    NewConnection(u32),
    DownstreamData(u32, usize, bool),
    UpstreamData(u32, usize, bool),
    DownstreamClose(u32, u32),
    UpstreamClose(u32, u32),
    HttpCallResponse(u32, u32, usize, usize, usize),
    GrpcReceive(u32, u32, usize),
    GrpcClose(u32, u32, u32),
}

fn w(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Call {
    /// The export's ABI name.
    pub(crate) fn export(self) -> &'static str {
        match self {
            Call::Initialize => "_initialize",
            Call::ContextCreate(..) => "proxy_on_context_create",
            Call::VmStart(..) => "proxy_on_vm_start",
            Call::Configure(..) => "proxy_on_configure",
            Call::Tick(..) => "proxy_on_tick",
            Call::QueueReady(..) => "proxy_on_queue_ready",
            Call::Done(..) => "proxy_on_done",
            Call::Log(..) => "proxy_on_log",
            Call::Delete(..) => "proxy_on_delete",
            Call::RequestHeaders(..) => "proxy_on_request_headers",
            Call::RequestBody(..) => "proxy_on_request_body",
            Call::RequestTrailers(..) => "proxy_on_request_trailers",
            Call::ResponseHeaders(..) => "proxy_on_response_headers",
            Call::ResponseBody(..) => "proxy_on_response_body",
            Call::ResponseTrailers(..) => "proxy_on_response_trailers",
            Call::NewConnection(..) => "proxy_on_new_connection",
            Call::DownstreamData(..) => "proxy_on_downstream_data",
            Call::UpstreamData(..) => "proxy_on_upstream_data",
            Call::DownstreamClose(..) => "proxy_on_downstream_connection_close",
            Call::UpstreamClose(..) => "proxy_on_upstream_connection_close",
            Call::HttpCallResponse(..) => "proxy_on_http_call_response",
            Call::GrpcReceive(..) => "proxy_on_grpc_receive",
            Call::GrpcClose(..) => "proxy_on_grpc_close",
        }
    }

    /// The arguments as ABI values (wasm: `i32` each).
    fn args(self) -> Vec<u64> {
        let f = |b: bool| u64::from(b);
        match self {
            Call::Initialize => vec![],
            Call::Tick(c) | Call::Done(c) | Call::Log(c) | Call::Delete(c) => {
                vec![c.into()]
            }
            Call::NewConnection(c) => vec![c.into()],
            Call::ContextCreate(a, b)
            | Call::QueueReady(a, b)
            | Call::DownstreamClose(a, b)
            | Call::UpstreamClose(a, b) => vec![a.into(), b.into()],
            Call::VmStart(c, n)
            | Call::Configure(c, n)
            | Call::RequestTrailers(c, n)
            | Call::ResponseTrailers(c, n) => vec![c.into(), w(n)],
            Call::RequestHeaders(c, n, e)
            | Call::RequestBody(c, n, e)
            | Call::ResponseHeaders(c, n, e)
            | Call::ResponseBody(c, n, e)
            | Call::DownstreamData(c, n, e)
            | Call::UpstreamData(c, n, e) => vec![c.into(), w(n), f(e)],
            Call::HttpCallResponse(c, t, h, b, tr) => vec![c.into(), t.into(), w(h), w(b), w(tr)],
            Call::GrpcReceive(c, t, n) => vec![c.into(), t.into(), w(n)],
            Call::GrpcClose(c, t, s) => vec![c.into(), t.into(), s.into()],
        }
    }

    /// The context the call is for.
    fn context(self) -> Option<u32> {
        match self {
            Call::Initialize => None,
            Call::ContextCreate(c, _)
            | Call::VmStart(c, _)
            | Call::Configure(c, _)
            | Call::Tick(c)
            | Call::QueueReady(c, _)
            | Call::Done(c)
            | Call::Log(c)
            | Call::Delete(c)
            | Call::RequestHeaders(c, ..)
            | Call::RequestBody(c, ..)
            | Call::RequestTrailers(c, _)
            | Call::ResponseHeaders(c, ..)
            | Call::ResponseBody(c, ..)
            | Call::ResponseTrailers(c, _)
            | Call::NewConnection(c)
            | Call::DownstreamData(c, ..)
            | Call::UpstreamData(c, ..)
            | Call::DownstreamClose(c, _)
            | Call::UpstreamClose(c, _)
            | Call::HttpCallResponse(c, ..)
            | Call::GrpcReceive(c, ..)
            | Call::GrpcClose(c, ..) => Some(c),
        }
    }

    /// Calls the native export; `None` when the module does not export it.
    fn native(self, m: &Exports) -> Option<u32> {
        let e = u32::from;
        match self {
            Call::Initialize => m.initialize.map(|f| {
                f();
                0
            }),
            Call::ContextCreate(c, r) => m.on_context_create.map(|f| {
                f(c, r);
                0
            }),
            Call::VmStart(c, n) => m.on_vm_start.map(|f| f(c, n)),
            Call::Configure(c, n) => m.on_configure.map(|f| f(c, n)),
            Call::Tick(c) => m.on_tick.map(|f| {
                f(c);
                0
            }),
            Call::QueueReady(c, q) => m.on_queue_ready.map(|f| {
                f(c, q);
                0
            }),
            Call::Done(c) => m.on_done.map(|f| f(c)),
            Call::Log(c) => m.on_log.map(|f| {
                f(c);
                0
            }),
            Call::Delete(c) => m.on_delete.map(|f| {
                f(c);
                0
            }),
            Call::RequestHeaders(c, n, x) => m.on_request_headers.map(|f| f(c, n, e(x))),
            Call::RequestBody(c, n, x) => m.on_request_body.map(|f| f(c, n, e(x))),
            Call::RequestTrailers(c, n) => m.on_request_trailers.map(|f| f(c, n)),
            Call::ResponseHeaders(c, n, x) => m.on_response_headers.map(|f| f(c, n, e(x))),
            Call::ResponseBody(c, n, x) => m.on_response_body.map(|f| f(c, n, e(x))),
            Call::ResponseTrailers(c, n) => m.on_response_trailers.map(|f| f(c, n)),
            Call::NewConnection(c) => m.on_new_connection.map(|f| f(c)),
            Call::DownstreamData(c, n, x) => m.on_downstream_data.map(|f| f(c, n, e(x))),
            Call::UpstreamData(c, n, x) => m.on_upstream_data.map(|f| f(c, n, e(x))),
            Call::DownstreamClose(c, p) => m.on_downstream_connection_close.map(|f| {
                f(c, p);
                0
            }),
            Call::UpstreamClose(c, p) => m.on_upstream_connection_close.map(|f| {
                f(c, p);
                0
            }),
            Call::HttpCallResponse(c, t, h, b, tr) => m.on_http_call_response.map(|f| {
                f(c, t, h, b, tr);
                0
            }),
            Call::GrpcReceive(c, t, n) => m.on_grpc_receive.map(|f| {
                f(c, t, n);
                0
            }),
            Call::GrpcClose(c, t, s) => m.on_grpc_close.map(|f| {
                f(c, t, s);
                0
            }),
        }
    }
}

/// What a call came to.
enum Outcome {
    /// The module does not export the callback.
    NotExported,
    /// Its answer (0 for a callback without one).
    Answered(u32),
    /// The module trapped (wasm) or panicked (native).
    Trapped(String),
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

fn run(call: Call) -> Outcome {
    let native = MODULE.try_with(|m| match &*m.borrow() {
        Loaded::Native(exports) => Some(*exports),
        Loaded::Nothing => Some(&Exports::NONE),
        #[cfg(feature = "wasm-engine")]
        Loaded::Wasm(_) => None,
    });
    match native {
        Ok(Some(exports)) => {
            return match catch_unwind(AssertUnwindSafe(|| call.native(exports))) {
                Ok(None) => Outcome::NotExported,
                Ok(Some(answer)) => Outcome::Answered(answer),
                Err(payload) => Outcome::Trapped(format!("panicked: {}", panic_message(&*payload))),
            }
        }
        Ok(None) => {}
        Err(_) => return Outcome::NotExported,
    }
    #[cfg(feature = "wasm-engine")]
    {
        let result = MODULE.try_with(|m| match &mut *m.borrow_mut() {
            Loaded::Wasm(module) => module.call(call.export(), &call.args()),
            Loaded::Nothing | Loaded::Native(_) => Ok(None),
        });
        match result {
            Ok(Ok(Some(answer))) => Outcome::Answered(answer),
            Ok(Ok(None)) | Err(_) => Outcome::NotExported,
            Ok(Err(trap)) => Outcome::Trapped(trap),
        }
    }
    #[cfg(not(feature = "wasm-engine"))]
    {
        let _ = call.args();
        Outcome::NotExported
    }
}

/// Calls the module; `None` when it does not export the callback.
///
/// # Panics
/// When the module traps: the test fails with the export, the context and the trap.
fn invoke(call: Call) -> Option<u32> {
    match run(call) {
        Outcome::NotExported => None,
        Outcome::Answered(answer) => Some(answer),
        Outcome::Trapped(trap) => {
            let context = call
                .context()
                .map(|c| format!(" (context {c})"))
                .unwrap_or_default();
            #[allow(clippy::panic)]
            {
                panic!(
                    "emulator: the module trapped in {}{context} [{}]: {trap}",
                    call.export(),
                    describe()
                );
            }
        }
    }
}

fn action(raw: u32) -> Action {
    if raw == Action::Pause.raw() {
        Action::Pause
    } else {
        Action::Continue
    }
}

/// Upper bound on `on_queue_ready` deliveries after one callback (guards against a filter
/// that re-enqueues forever).
const MAX_QUEUE_DELIVERIES: usize = 1024;

/// Whether `context` exists and has the given kind.
pub(crate) fn is_live(context: u32, kind: ContextKind) -> bool {
    with_host(|host| host.contexts.get(&context) == Some(&kind)).unwrap_or(false)
}

/// Makes `call`'s context current, calls it, then delivers pending queue notifications.
fn enter(call: Call) -> Option<u32> {
    if let Some(context) = call.context() {
        let _ = with_host(|host| host.current = context);
    }
    let result = invoke(call);
    deliver_queue_ready();
    result
}

fn deliver_queue_ready() {
    for _ in 0..MAX_QUEUE_DELIVERIES {
        let next = with_host(|host| {
            if host.queue_ready.is_empty() {
                None
            } else {
                Some(host.queue_ready.remove(0))
            }
        })
        .flatten();
        let Some((owner, queue_id)) = next else {
            return;
        };
        if !is_live(owner, ContextKind::Root) {
            continue;
        }
        let _ = with_host(|host| host.current = owner);
        let _ = invoke(Call::QueueReady(owner, queue_id));
    }
}

/// Registers the context with the host, then creates it in the filter.
pub(crate) fn create_context(context: u32, root: u32, kind: ContextKind) {
    let _ = with_host(|host| {
        host.contexts.insert(context, kind);
        if kind != ContextKind::Root {
            host.streams.insert(context, Default::default());
        }
    });
    let _ = enter(Call::ContextCreate(context, root));
}

/// Runs the module's `_initialize` (if it exports one).
pub(crate) fn initialize() {
    let _ = invoke(Call::Initialize);
}

pub(crate) fn vm_start(root: u32, size: usize) -> bool {
    enter(Call::VmStart(root, size)).is_none_or(|answer| answer != 0)
}

pub(crate) fn configure(root: u32, size: usize) -> bool {
    enter(Call::Configure(root, size)).is_none_or(|answer| answer != 0)
}

pub(crate) fn tick(root: u32) {
    let _ = enter(Call::Tick(root));
}

pub(crate) fn queue_ready(root: u32, queue_id: u32) {
    let _ = enter(Call::QueueReady(root, queue_id));
}

/// Envoy's end of an HTTP stream: `on_log` (access log), then `on_done`, `on_delete`, each
/// only if the module exports it (as Envoy calls only exported callbacks).
pub(crate) fn finish_http(context: u32) {
    let _ = enter(Call::Log(context));
    let _ = enter(Call::Done(context));
    let _ = enter(Call::Delete(context));
    forget(context);
}

/// Envoy's end of a TCP connection: `on_done`, `on_log`, then `on_delete`.
pub(crate) fn finish_tcp(context: u32) {
    let _ = enter(Call::Done(context));
    let _ = enter(Call::Log(context));
    let _ = enter(Call::Delete(context));
    forget(context);
}

/// Deletes a context without the end-of-stream callbacks (emulator teardown).
pub(crate) fn delete(context: u32) {
    let _ = enter(Call::Delete(context));
    forget(context);
}

fn forget(context: u32) {
    let _ = with_host(|host| {
        host.contexts.remove(&context);
        host.streams.remove(&context);
    });
}

fn phase(call: Call) -> Action {
    enter(call).map_or(Action::Continue, action)
}

pub(crate) fn request_headers(context: u32, count: usize, end_of_stream: bool) -> Action {
    phase(Call::RequestHeaders(context, count, end_of_stream))
}

pub(crate) fn request_body(context: u32, size: usize, end_of_stream: bool) -> Action {
    phase(Call::RequestBody(context, size, end_of_stream))
}

pub(crate) fn request_trailers(context: u32, count: usize) -> Action {
    phase(Call::RequestTrailers(context, count))
}

pub(crate) fn response_headers(context: u32, count: usize, end_of_stream: bool) -> Action {
    phase(Call::ResponseHeaders(context, count, end_of_stream))
}

pub(crate) fn response_body(context: u32, size: usize, end_of_stream: bool) -> Action {
    phase(Call::ResponseBody(context, size, end_of_stream))
}

pub(crate) fn response_trailers(context: u32, count: usize) -> Action {
    phase(Call::ResponseTrailers(context, count))
}

pub(crate) fn new_connection(context: u32) -> Action {
    phase(Call::NewConnection(context))
}

pub(crate) fn downstream_data(context: u32, size: usize, end_of_stream: bool) -> Action {
    phase(Call::DownstreamData(context, size, end_of_stream))
}

pub(crate) fn upstream_data(context: u32, size: usize, end_of_stream: bool) -> Action {
    phase(Call::UpstreamData(context, size, end_of_stream))
}

pub(crate) fn downstream_close(context: u32, peer: PeerType) {
    let _ = enter(Call::DownstreamClose(context, peer.raw()));
}

pub(crate) fn upstream_close(context: u32, peer: PeerType) {
    let _ = enter(Call::UpstreamClose(context, peer.raw()));
}

/// Delivers an HTTP callout answer to the context that dispatched `token`.
pub(crate) fn http_call_response(
    context: u32,
    token: u32,
    headers: usize,
    body: usize,
    trailers: usize,
) {
    let _ = enter(Call::HttpCallResponse(
        context, token, headers, body, trailers,
    ));
}

/// Delivers a gRPC message for `token`.
pub(crate) fn grpc_receive(context: u32, token: u32, size: usize) {
    let _ = enter(Call::GrpcReceive(context, token, size));
}

/// Delivers the close of gRPC call/stream `token`.
pub(crate) fn grpc_close(context: u32, token: u32, status: u32) {
    let _ = enter(Call::GrpcClose(context, token, status));
}

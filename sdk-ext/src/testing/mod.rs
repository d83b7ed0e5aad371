//! A host emulator: runs a filter natively under `cargo test`, in milliseconds.
//!
//! This module defines every proxy-wasm host function (`proxy_log`,
//! `proxy_get_header_map_value`, `proxy_http_call`, ... all 37 of ABI 0.2.1) as native
//! `extern "C"` functions, so a filter crate (`crate-type = ["cdylib", "rlib"]`) links into a
//! test binary and its host calls land here. The test loads the module's exports with
//! [`Emulator::native`] and drives it, in the spirit of proxy-wasm-go-sdk's `proxytest`;
//! only the callbacks the module exports are delivered, exactly as Envoy delivers them.
//!
//! ```no_run
//! // filters/my-filter/tests/filter.rs ([dev-dependencies] sdk-ext = { features = ["testing"] })
//! use sdk_ext::testing::{Action, Emulator};
//! # mod my_filter { pub static EXPORTS: sdk_ext::exports::Exports = sdk_ext::exports::Exports::NONE; }
//!
//! #[test]
//! fn adds_the_header() {
//!     let mut emu = Emulator::native(&my_filter::EXPORTS);
//!     emu.start(r#"{"name": "x-hello", "value": "world"}"#).unwrap();
//!     let mut stream = emu.http();
//!     let action = stream.request_headers(&[(":method", "GET"), (":path", "/")], true);
//!     assert_eq!(action, Action::Continue);
//!     assert_eq!(stream.request_header_str("x-hello").as_deref(), Some("world"));
//!     stream.complete();
//! }
//! ```
//!
//! What a filter author should know:
//!
//! - **One emulator per test thread.** The SDK's dispatcher and this host are thread-local;
//!   `cargo test` runs each test on its own thread. `Emulator::native` resets the host state.
//! - **Only exported callbacks are delivered.** An sdk-ext filter exports the phases its
//!   `#[sdk_ext::filter]` impl defines, and nothing else; a phase the filter forgot to
//!   implement is not called here either, as in Envoy.
//! - **A filter on the bare proxy-wasm SDK** is loaded with
//!   [`proxy_wasm_sdk_exports!`](crate::proxy_wasm_sdk_exports) (one such filter per test
//!   binary: its dispatcher's exports are global symbols).
//! - **A panic in the filter aborts the test binary** (it unwinds into an `extern "C"`
//!   entry point), just as it would trap the VM in Envoy. The SDK's panic hook logs the
//!   message as a Critical log, which the emulator echoes to stderr.
//! - **The SDK's own hostcall wrappers `panic!` on statuses they do not expect.** The
//!   emulator answers Envoy's statuses (e.g. `BadArgument` for an HTTP callout without
//!   `:authority`), so a filter that would trap in Envoy also fails here.
//! - Log lines are echoed to stderr as they are recorded; `cargo test` shows them for
//!   failing tests only.
//! - Host calls made outside any callback have no context; everything the filter does
//!   happens inside the callbacks the emulator drives.
//!
//! Envoy behaviour emulated: header maps (case-insensitive names, multiple values, replace
//! keeps the first position), body buffering across `Pause`, Envoy's buffer-edit rules,
//! properties (set, per-stream, derived from request headers), metrics (counter, gauge,
//! histogram semantics), shared data with CAS, shared queues, HTTP and gRPC callouts,
//! foreign functions, the tick, the clock, and the end-of-stream callback order.

#[cfg(target_arch = "wasm32")]
compile_error!(
    "sdk-ext's `testing` feature is a native host emulator; enable it only in [dev-dependencies]"
);

mod abi;
mod calls;
mod emulator;
mod engine;
mod guest;
mod handle;
mod http;
mod memory;
mod records;
mod state;
mod tcp;
#[cfg(feature = "wasm-engine")]
mod wasm;
mod wire;

pub use crate::host::{Action, LogLevel, MetricType, PeerType, Status};
pub use emulator::Emulator;
pub use engine::{Engine, EngineKind, Module, REQUIRE_WASM_VAR};
pub use http::HttpStream;
/// Runs a test `fn name(engine: Engine)` on both engines: see [`Engine`].
pub use sdk_ext_macros::engines;
#[cfg(feature = "wasm-engine")]
pub use wasm::MEMORY_LIMIT;

/// The exports of a filter written on the bare `proxy-wasm` SDK (its dispatcher's
/// `proxy_on_*` functions and the `_initialize` of `proxy_wasm::main!`), for
/// [`Emulator::native`]:
///
/// ```text
/// static EXPORTS: sdk_ext::exports::Exports = sdk_ext::proxy_wasm_sdk_exports!();
/// let mut emu = Emulator::native(&EXPORTS);
/// ```
#[macro_export]
macro_rules! proxy_wasm_sdk_exports {
    () => {{
        #[allow(improper_ctypes)]
        unsafe extern "C" {
            fn _initialize();
            fn proxy_on_context_create(context: u32, root: u32);
            fn proxy_on_vm_start(root: u32, size: usize) -> bool;
            fn proxy_on_configure(root: u32, size: usize) -> bool;
            fn proxy_on_tick(root: u32);
            fn proxy_on_queue_ready(root: u32, queue: u32);
            fn proxy_on_done(context: u32) -> bool;
            fn proxy_on_log(context: u32);
            fn proxy_on_delete(context: u32);
            fn proxy_on_request_headers(context: u32, n: usize, eos: bool) -> u32;
            fn proxy_on_request_body(context: u32, n: usize, eos: bool) -> u32;
            fn proxy_on_request_trailers(context: u32, n: usize) -> u32;
            fn proxy_on_response_headers(context: u32, n: usize, eos: bool) -> u32;
            fn proxy_on_response_body(context: u32, n: usize, eos: bool) -> u32;
            fn proxy_on_response_trailers(context: u32, n: usize) -> u32;
            fn proxy_on_new_connection(context: u32) -> u32;
            fn proxy_on_downstream_data(context: u32, n: usize, eos: bool) -> u32;
            fn proxy_on_upstream_data(context: u32, n: usize, eos: bool) -> u32;
            fn proxy_on_downstream_connection_close(context: u32, peer: u32);
            fn proxy_on_upstream_connection_close(context: u32, peer: u32);
            fn proxy_on_http_call_response(c: u32, t: u32, h: usize, b: usize, tr: usize);
            fn proxy_on_grpc_receive_initial_metadata(c: u32, t: u32, n: usize);
            fn proxy_on_grpc_receive(c: u32, t: u32, n: usize);
            fn proxy_on_grpc_receive_trailing_metadata(c: u32, t: u32, n: usize);
            fn proxy_on_grpc_close(c: u32, t: u32, status: u32);
        }
        // SAFETY (every shim): the SDK's dispatcher defines these with these C signatures.
        $crate::exports::Exports {
            initialize: Some(|| unsafe { _initialize() }),
            on_context_create: Some(|c, r| unsafe { proxy_on_context_create(c, r) }),
            on_vm_start: Some(|r, s| u32::from(unsafe { proxy_on_vm_start(r, s) })),
            on_configure: Some(|r, s| u32::from(unsafe { proxy_on_configure(r, s) })),
            on_tick: Some(|r| unsafe { proxy_on_tick(r) }),
            on_queue_ready: Some(|r, q| unsafe { proxy_on_queue_ready(r, q) }),
            on_done: Some(|c| u32::from(unsafe { proxy_on_done(c) })),
            on_log: Some(|c| unsafe { proxy_on_log(c) }),
            on_delete: Some(|c| unsafe { proxy_on_delete(c) }),
            on_request_headers: Some(|c, n, e| unsafe { proxy_on_request_headers(c, n, e != 0) }),
            on_request_body: Some(|c, n, e| unsafe { proxy_on_request_body(c, n, e != 0) }),
            on_request_trailers: Some(|c, n| unsafe { proxy_on_request_trailers(c, n) }),
            on_response_headers: Some(|c, n, e| unsafe { proxy_on_response_headers(c, n, e != 0) }),
            on_response_body: Some(|c, n, e| unsafe { proxy_on_response_body(c, n, e != 0) }),
            on_response_trailers: Some(|c, n| unsafe { proxy_on_response_trailers(c, n) }),
            on_new_connection: Some(|c| unsafe { proxy_on_new_connection(c) }),
            on_downstream_data: Some(|c, n, e| unsafe { proxy_on_downstream_data(c, n, e != 0) }),
            on_upstream_data: Some(|c, n, e| unsafe { proxy_on_upstream_data(c, n, e != 0) }),
            on_downstream_connection_close: Some(|c, p| unsafe {
                proxy_on_downstream_connection_close(c, p)
            }),
            on_upstream_connection_close: Some(|c, p| unsafe {
                proxy_on_upstream_connection_close(c, p)
            }),
            on_http_call_response: Some(|c, t, h, b, tr| unsafe {
                proxy_on_http_call_response(c, t, h, b, tr)
            }),
            on_grpc_receive_initial_metadata: Some(|c, t, n| unsafe {
                proxy_on_grpc_receive_initial_metadata(c, t, n)
            }),
            on_grpc_receive: Some(|c, t, n| unsafe { proxy_on_grpc_receive(c, t, n) }),
            on_grpc_receive_trailing_metadata: Some(|c, t, n| unsafe {
                proxy_on_grpc_receive_trailing_metadata(c, t, n)
            }),
            on_grpc_close: Some(|c, t, s| unsafe { proxy_on_grpc_close(c, t, s) }),
        }
    }};
}
pub use records::{GrpcCallout, HttpCallout, LocalResponse};
pub use tcp::TcpStream;

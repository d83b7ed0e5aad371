//! A host emulator: runs a filter under `cargo test`, in milliseconds, on two engines.
//!
//! - **Native** ([`Emulator::native`]): the filter crate (`crate-type = ["cdylib", "rlib"]`)
//!   links into the test binary; this module defines every proxy-wasm host function
//!   (`proxy_log`, `proxy_get_header_map_value`, `proxy_http_call`, ... all 37 of ABI 0.2.1)
//!   as native `extern "C"` functions, and the test drives the module's export table
//!   (`EXPORTS`, from `sdk_ext::main!`).
//! - **Wasm** ([`Emulator::wasm`], feature `wasm-engine`): the built `.wasm` runs in
//!   wasmtime, exactly the bytes Envoy loads. The same host functions are bound in a wasmtime
//!   `Linker` over the instance's memory (one implementation, `calls.rs`, for both engines);
//!   values returned to the guest go into memory it allocates with
//!   `proxy_on_memory_allocate`, as Envoy does; the WASI calls Envoy provides are there and
//!   any other import refuses the module, as Envoy refuses it.
//!
//! Both engines share the host state and the whole test API, so one suite runs on both:
//!
//! ```no_run
//! // filters/my-filter/tests/filter.rs
//! // [dev-dependencies] sdk-ext = { features = ["testing", "wasm-engine"] }
//! use sdk_ext::testing::{engines, Action, Emulator, Engine, Module};
//! # mod my_filter { pub static EXPORTS: sdk_ext::exports::Exports = sdk_ext::exports::Exports::NONE; }
//!
//! static MODULE: Module = Module::new(&my_filter::EXPORTS, "dist/my-filter.wasm");
//!
//! #[engines] // two tests: adds_the_header::native and adds_the_header::wasm
//! fn adds_the_header(engine: Engine) {
//!     let mut emu = engine.emulator(); // Emulator::native(&EXPORTS) / Emulator::wasm(path)
//!     emu.start(r#"{"name": "x-hello", "value": "world"}"#).unwrap();
//!     let mut stream = emu.http();
//!     let action = stream.request_headers(&[(":method", "GET"), (":path", "/")], true);
//!     assert_eq!(action, Action::Continue);
//!     assert_eq!(stream.request_header_str("x-hello").as_deref(), Some("world"));
//!     stream.complete();
//! }
//! ```
//!
//! Choosing one engine directly is one call: `Emulator::native(&my_filter::EXPORTS)` or
//! `Emulator::wasm("dist/my-filter.wasm")` (a path relative to the repository root is found
//! from any crate directory). A wasm test whose module is not built is skipped with a note,
//! unless `SDK_EXT_REQUIRE_WASM=1` (set by `make test`, right after `make build`).
//!
//! What a filter author should know:
//!
//! - **One emulator per test thread.** The SDK's dispatcher and this host are thread-local;
//!   `cargo test` runs each test on its own thread. A new emulator resets the host state.
//! - **Only exported callbacks are delivered.** An sdk-ext filter exports the phases its
//!   `#[sdk_ext::filter]` impl defines, and nothing else; a phase the filter forgot to
//!   implement is not called here either, as in Envoy.
//! - **A trap fails the test, naming the phase.** On the wasm engine a trap (a panic, which
//!   the filters build as an immediate abort, an out-of-bounds access, running out of
//!   memory) fails the test with the export, the context and wasmtime's message and guest
//!   backtrace; the instance is not used again. Natively a panic in an sdk-ext filter fails
//!   the test the same way. (A filter on the bare proxy-wasm SDK, loaded with
//!   [`proxy_wasm_sdk_exports!`](crate::proxy_wasm_sdk_exports), still aborts the native
//!   test binary: its exports are `extern "C"`, which cannot unwind.)
//! - **The SDK's own hostcall wrappers `panic!` on statuses they do not expect.** The
//!   emulator answers Envoy's statuses (e.g. `BadArgument` for an HTTP callout without
//!   `:authority`), so a filter that would trap in Envoy also fails here.
//! - **Memory**: [`Emulator::memory_bytes`] is the wasm module's linear memory (it only
//!   grows, as in Envoy); a run can check it stays bounded. The store caps it at
//!   [`MEMORY_LIMIT`] (1 GiB).
//! - **Hostile traffic**: [`hostile`] generates reproducible hostile requests and runs them
//!   through a module, recording answers and linear memory (each filter's
//!   `tests/hostile.rs`: 100 000 requests on its `.wasm`).
//! - Log lines are echoed to stderr as they are recorded; `cargo test` shows them for
//!   failing tests only. On the wasm engine, writes to stdout / stderr (`fd_write`) are logs
//!   at Info / Error, as Envoy records them.
//! - Host calls made outside any callback have no context; everything the filter does
//!   happens inside the callbacks the emulator drives.
//!
//! Envoy behaviour emulated: header maps (case-insensitive names, multiple values, replace
//! keeps the first position), body buffering across `Pause`, Envoy's buffer-edit rules,
//! properties (set, per-stream, derived from request headers), metrics (counter, gauge,
//! histogram semantics), shared data with CAS, shared queues, HTTP and gRPC callouts,
//! foreign functions, the tick, the clock, the end-of-stream callback order, host calls
//! refused during `_initialize` and during the guest's allocator, empty values returned as a
//! null pointer with size 0.
//!
//! Where the engines differ, or the emulator differs from Envoy (documented, not bugs):
//!
//! - **Features**: natively Cargo unifies sdk-ext's features across the test binary (a
//!   filter built without `regex` may see it on); each `.wasm` has exactly its own.
//!   [`Engine::is_wasm`] lets a test tell.
//! - **WASI**: `random_get` is a fixed-seed generator and `clock_time_get` answers the
//!   emulated clock for realtime and the real monotonic clock (what `Instant` reads, as
//!   natively) for monotonic (Envoy: real randomness and time); no arguments, environment or
//!   preopened files (as Envoy); `proc_exit` traps.
//! - **Pointers**: a pointer the host cannot read answers `BadArgument` (natively) or,
//!   for a value the guest cannot allocate, `InvalidMemoryAccess` (both), as Envoy.
//! - **Time**: nothing runs by itself: ticks, callout answers and queue deliveries happen
//!   when the test asks.

#[cfg(target_arch = "wasm32")]
compile_error!(
    "sdk-ext's `testing` feature is a native host emulator; enable it only in [dev-dependencies]"
);

mod abi;
mod calls;
mod emulator;
mod engine;
mod guest;
pub use crate::test_rng::{xorshift, xorshift64};
#[doc(hidden)]
pub use guest::native_guest;
mod handle;
pub mod hostile;
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
pub use wasm::{FUEL_VAR, MEMORY_LIMIT};

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

//! A host emulator: runs an unmodified proxy-wasm filter natively under `cargo test`.
//!
//! This module defines every host function the `proxy-wasm` crate (0.2.5) imports
//! (`proxy_log`, `proxy_get_header_map_value`, `proxy_http_call`, ... all 37) as native
//! `extern "C"` functions, so a filter crate (`crate-type = ["cdylib", "rlib"]`) links into a
//! test binary and its calls land here. The test drives the filter through the SDK's
//! exported entry points with an [`Emulator`], in the spirit of proxy-wasm-go-sdk's
//! `proxytest`.
//!
//! ```ignore
//! // filters/my-filter/tests/filter.rs ([dev-dependencies] sdk-ext = { features = ["testing"] })
//! use sdk_ext::testing::{Action, Emulator};
//!
//! #[test]
//! fn adds_the_header() {
//!     let mut emu = Emulator::new(my_filter::_initialize);
//!     assert!(emu.start(r#"{"name": "x-hello", "value": "world"}"#));
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
//!   `cargo test` runs each test on its own thread. `Emulator::new` resets the host state.
//! - **One filter per test binary.** `proxy_wasm::main!` defines a `#[no_mangle]
//!   _initialize`; two filter crates in one test binary would clash.
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
mod emulator;
mod guest;
mod handle;
mod http;
mod records;
mod state;
mod tcp;
mod wire;

pub use emulator::Emulator;
pub use http::HttpStream;
pub use proxy_wasm::types::{Action, LogLevel, MetricType, PeerType, Status};
pub use records::{GrpcCallout, HttpCallout, LocalResponse};
pub use tcp::TcpStream;

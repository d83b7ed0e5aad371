//! Real-Envoy integration harness.
//!
//! Runs the built `.wasm` filters (and the same filters as dynamic modules, `dist/lib*.so`:
//! [`Loading`], [`each_loading!`]) inside a real Envoy (the binary `make setup` installs into
//! `.venv/bin/envoy`), next to an in-process upstream, and speaks raw HTTP/1.1 or TCP to it.
//!
//! A filter test is about ten lines:
//!
//! ```no_run
//! use integration::{EchoUpstream, EnvoyConfig};
//!
//! let echo = EchoUpstream::start();
//! let envoy = EnvoyConfig::http(echo.port())
//!     .wasm("header_rules", r#"{"request_headers_to_add": {"x-a": "1"}}"#)
//!     .start()
//!     .unwrap();
//! let resp = envoy.get("/hello", &[("x-in", b"\xff")]);
//! assert_eq!(resp.status, 200);
//! assert_eq!(resp.echoed().header("x-a"), Some("1"));
//! ```
//!
//! Everything binds to 127.0.0.1. Envoy's admin and listener ports are `0` in generated
//! configs and discovered after start, so parallel tests never race for a port.

mod bootstrap;
mod client;
mod envoy;
mod http1;
mod locations;
mod process;
mod registry;
mod upstream;

pub use bootstrap::{EnvoyConfig, Filter, Loading, RemoteCode, WasmFilter};
pub use client::{http_get, http_request, send_raw, tcp_exchange, try_send_raw, Echoed, Response};
pub use envoy::{
    referenced_wasm, rewrite_ports, validate_config, validate_yaml, Envoy, StartError,
};
pub use locations::{envoy_bin, free_port, native_path, repo_root, wasm_path};
pub use registry::{registry_bin, Registry};
pub use upstream::{EchoUpstream, FixedUpstream, RecordedRequest, TcpEchoUpstream};

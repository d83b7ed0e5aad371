//! `sdk-ext`: safe, typed helpers over [`proxy_wasm`] for writing Envoy filters.
//!
//! What the bare SDK leaves to every filter, done once and without panics:
//!
//! - [`config`]: parse a filter's JSON configuration once into a validated value (read by
//!   [`json`], a small strict reader that names the field of every error); a bad
//!   config is refused with `"<filter>: invalid config at <field path>: <reason>"`.
//! - [`headers`]: header access as bytes; non-UTF-8 and missing values are ordinary cases.
//! - [`request`]: request properties (path, method, host, scheme, client address, route).
//! - [`matching`]: request matching with Envoy's `RouteMatch` semantics (path, headers,
//!   query parameters, regex) plus host, method and route/virtual host/cluster names.
//! - [`rules`]: `Rules<T>`, the one per-route configuration shape (`{match, ...}` lists).
//! - [`template`]: header values that reference request attributes (`%REQ(x-id)%`).
//! - [`response`]: the one way to answer the client locally (JSON body, headers, metric).
//! - [`metrics`]: counters, gauges and histograms defined once at config time.
//! - [`callout`]: HTTP calls to an Envoy cluster; [`foreign`]: host foreign functions
//!   (`verify_signature`); [`duration`]: proto-JSON durations (`"300s"`).
//! - [`testing`] (feature `testing`): a host emulator that runs a filter natively in
//!   `cargo test`.
//!
//! - [`root`]: a root context that configures once and shares the result with every stream.
//! - [`host`]: the host ABI without panics; [`logging`]: the `log` crate routed to the host.

/// Every filter's allocator: talc, a binned free-list allocator that grows the wasm memory as
/// needed. It replaces wasi-libc's dlmalloc, which cost each module ~11 KB; single-threaded
/// wasm (no `atomics`) is what Envoy runs.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

pub mod callout;
pub mod config;
pub mod duration;
pub mod foreign;
pub mod headers;
pub mod host;
pub mod json;
pub mod logging;
pub mod matching;
pub mod metrics;
pub mod request;
pub mod response;
pub mod root;
pub mod rules;
pub mod template;

#[cfg(feature = "schema")]
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use proxy_wasm;

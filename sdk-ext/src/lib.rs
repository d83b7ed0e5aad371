//! `sdk-ext`: write Envoy filters in Rust as plain traits; sdk-ext owns the proxy-wasm ABI.
//!
//! A filter implements [`plugin::Plugin`] (its configuration, parsed once) and
//! [`http::HttpFilter`] and/or [`network::NetworkFilter`] (per stream, one method per phase),
//! marks each filter `impl` with [`filter`], and registers them with [`main!`]. sdk-ext
//! dispatches the host's calls to them; the module exports exactly the phases the code
//! implements. See the crate README for a guide.
//!
//! The helpers work on their own too, from a filter written on the bare `proxy-wasm` traits:
//!
//! - [`config`]: parse a filter's JSON configuration once into a validated value (read by
//!   [`json`], a small strict reader that names the field of every error); a bad
//!   config is refused with `"<filter>: invalid config at <field path>: <reason>"`.
//! - [`headers`]: header access as bytes; non-UTF-8 and missing values are ordinary cases;
//!   [`headers::is_valid_value`] checks a value before a filter writes it (Envoy's rule).
//! - [`request`]: request properties and the [`request::Request`] view matching reads.
//! - [`matching`]: request matching with Envoy's `RouteMatch` semantics (path, headers,
//!   query parameters, regex) plus host, method and route/virtual host/cluster names.
//! - [`rules`]: `Rules<T>`, the one per-route configuration shape (`{match, ...}` lists).
//! - [`template`]: header values that reference request attributes (`%REQ(x-id)%`), bounded
//!   (64 operators, 60 KiB rendered; rendering stops at the limit).
//! - [`response`]: the one way to answer the client locally (JSON body, headers, metric).
//! - [`metrics`]: counters, gauges and histograms defined once at config time.
//! - [`net`]: IP addresses and CIDR ranges from bytes; [`net::CidrTable`], longest-prefix
//!   lookup in `O(log n)`; [`path`]: one normal form of a request path to match rules on.
//! - [`callout`]: HTTP calls to an Envoy cluster; [`foreign`]: host foreign functions
//!   (`verify_signature`); [`duration`]: proto-JSON durations (`"300s"`), bounded, and
//!   [`duration::host_millis`] for every duration handed to the host (never `as u32`).
//! - [`host`]: the host ABI, in one module, without panics; [`logging`]: the `log` crate
//!   routed to the host.
//! - [`memory`]: heap accounting (bytes held, the peak since a mark), for caps on work of
//!   unknown appetite.
//! - `testing` (feature `testing`): a host emulator that runs a filter natively in
//!   `cargo test`.

/// Every filter's allocator: talc, a binned free-list allocator that grows the wasm memory as
/// needed. It replaces wasi-libc's dlmalloc, which cost each module ~11 KB; single-threaded
/// wasm (no `atomics`) is what Envoy runs. Small blocks are cached in front of it
/// ([`memory::SmallBlocks`]: a request's small allocations reuse the last request's), and
/// everything is counted ([`memory`]): what the module holds.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: memory::Counting<memory::SmallBlocks<talc::wasm::WasmDynamicTalc>> =
    memory::Counting(memory::SmallBlocks::new(
        talc::wasm::new_wasm_dynamic_allocator(),
    ));

// `::sdk_ext::...` paths (written by `#[derive(FromJson)]`) resolve inside sdk-ext too.
extern crate self as sdk_ext;

pub mod callout;
pub mod config;
pub mod duration;
pub mod exports;
pub mod foreign;
pub mod headers;
pub mod higress;
pub mod host;
pub mod http;
pub mod json;
pub mod logging;
pub mod matching;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod network;
pub mod path;
pub mod plugin;
pub mod request;
pub mod response;
pub mod rules;
pub mod template;

#[cfg(feature = "dynamic-module")]
pub mod dynamic_module;
#[cfg(feature = "schema")]
pub mod schema;
#[cfg(any(test, feature = "testing"))]
mod test_rng;
#[cfg(feature = "testing")]
pub mod testing;

/// Whether this build of sdk-ext compiles `safe_regex` patterns (feature `regex`); without
/// it a config using one is refused at that field. Cargo unifies features across a
/// workspace, so a test that depends on it asks this rather than assuming.
pub const REGEX_ENABLED: bool = cfg!(feature = "regex");

/// The README's examples, compiled (and run where they can be) as doc tests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use host::Action;
pub use http::{HttpFilter, HttpHost};
pub use network::{NetworkFilter, NetworkHost};
pub use plugin::Plugin;
/// Marks a filter's `impl HttpFilter for T` / `impl NetworkFilter for T`: records the
/// phases the block defines and, on wasm, exports exactly those.
pub use sdk_ext_macros::filter;
/// Derives [`json::FromJson`] from a config type's `#[serde(...)]` attributes.
pub use sdk_ext_macros::FromJson;

/// Registers a filter module: its [`Plugin`] and its HTTP and/or network filter. Write it
/// once, in the crate root:
///
/// ```text
/// sdk_ext::main!(plugin: Shared, http: Stream);
/// sdk_ext::main!(plugin: Shared, network: Connection);
/// sdk_ext::main!(plugin: Shared, http: Stream, network: Connection);
/// ```
///
/// It defines `pub static EXPORTS` (the module's exports as a table, which
/// `sdk_ext::testing::Emulator::native` drives) and, on wasm, the lifecycle exports
/// (`_initialize`, `proxy_abi_version_0_2_1`, `proxy_on_memory_allocate`,
/// `proxy_on_context_create`, `proxy_on_vm_start`, `proxy_on_configure`, `proxy_on_tick`,
/// `proxy_on_http_call_response`, `proxy_on_delete`). The per-stream phases are exported by
/// `#[sdk_ext::filter]`. A crate using this must not also link the `proxy-wasm` crate's
/// dispatcher (both would define the same exports).
/// Without the feature `dynamic-module`, a crate built with `--cfg sdk_ext_dynamic_module`
/// is told what is missing.
#[cfg(not(feature = "dynamic-module"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __dynamic_module_exports {
    ($($t:tt)*) => {
        compile_error!("--cfg sdk_ext_dynamic_module needs sdk-ext's feature `dynamic-module`");
    };
}

#[macro_export]
macro_rules! main {
    (plugin: $p:ty, http: $h:ty $(,)?) => {
        $crate::main!(@module $p, $h, $crate::exports::NoFilter<$p>);
    };
    (plugin: $p:ty, network: $n:ty $(,)?) => {
        $crate::main!(@module $p, $crate::exports::NoFilter<$p>, $n);
    };
    (plugin: $p:ty, http: $h:ty, network: $n:ty $(,)?) => {
        $crate::main!(@module $p, $h, $n);
    };
    (@module $p:ty, $h:ty, $n:ty) => {
        /// This module's exports as a table of functions (what the emulator drives).
        pub static EXPORTS: $crate::exports::Exports = $crate::exports::Exports::of::<$p, $h, $n>();

        // The Envoy dynamic-module hooks, only in the crate being linked into a `.so`
        // (see `sdk_ext::dynamic_module`).
        #[cfg(sdk_ext_dynamic_module)]
        $crate::__dynamic_module_exports!($p, $h, $n);

        #[cfg(target_family = "wasm")]
        const _: () = {
            #[cfg(target_os = "wasi")]
            unsafe extern "C" {
                fn __wasm_call_ctors();
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn _initialize() {
                // SAFETY: the WASI reactor's constructors, run once before anything else.
                #[cfg(target_os = "wasi")]
                unsafe {
                    __wasm_call_ctors();
                }
                $crate::exports::initialize();
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_abi_version_0_2_1() {}
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
                $crate::exports::memory_allocate(size)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_context_create(context: u32, root: u32) {
                $crate::exports::context_create(context, root)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_vm_start(root: u32, size: usize) -> u32 {
                $crate::exports::vm_start(root, size)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_configure(root: u32, size: usize) -> u32 {
                $crate::exports::configure::<$p>(root, size)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_tick(root: u32) {
                $crate::exports::tick::<$p>(root)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_http_call_response(
                context: u32,
                token: u32,
                headers: usize,
                body_size: usize,
                trailers: usize,
            ) {
                $crate::exports::http_call_response::<$p, $h, $n>(
                    context, token, headers, body_size, trailers,
                )
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_delete(context: u32) {
                $crate::exports::delete(context)
            }
        };
    };
}

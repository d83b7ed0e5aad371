//! rate-limit: token buckets shared by every Envoy worker through proxy-wasm shared data
//! (compare-and-swap), per route and per request key, for HTTP (429 with `Retry-After` and
//! the IETF `RateLimit-Policy` / `RateLimit` headers) and L4 (new and concurrent connections
//! per client address, closed before any byte is proxied).
//!
//! Registration only; see `config.rs` (configuration), `bucket.rs` (the token-bucket
//! arithmetic of one stored value), `store.rs` (slots in shared data, CAS updates),
//! `keys.rs` (descriptor keys), `headers.rs` (the header values) and `filter.rs` (the glue).

pub mod bucket;
pub mod config;
pub mod filter;
pub mod headers;
pub mod keys;
pub mod store;

/// The root id Envoy's `root_id` must name, and the prefix of log lines.
pub const NAME: &str = "rate-limit";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream, network: filter::Connection);

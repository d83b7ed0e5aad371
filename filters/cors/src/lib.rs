//! cors: Envoy-compatible CORS (preflights answered locally, response headers on actual
//! requests, per route through `Rules`).
//! Registration only; see `config.rs` (configuration), `policy.rs` (the decision) and
//! `filter.rs` (the glue between the host and the decision).

pub mod config;
pub mod filter;
pub mod policy;

/// The root id Envoy's `root_id` must name, and the prefix of log lines.
pub const NAME: &str = "cors";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream);

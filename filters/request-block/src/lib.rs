//! request-block: blocks known-bad requests by path (normalised), query, header and body
//! patterns, one compiled set per location.
//! Registration only; see `config.rs` (configuration), `policy.rs` (the decision) and
//! `filter.rs` (the glue between the host and the decision).

pub mod config;
pub mod filter;
pub mod policy;

/// The root id Envoy's `root_id` must name, and the prefix of log lines.
pub const NAME: &str = "request-block";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream);

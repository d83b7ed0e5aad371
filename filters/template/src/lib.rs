//! filter-template: denies requests that match a rule, with a JSON local response.
//! Registration only; see `config.rs` (configuration), `policy.rs` (the decision) and
//! `filter.rs` (the glue between the host and the decision).

pub mod config;
pub mod filter;
pub mod policy;

/// The root id Envoy's `root_id` must name, and the prefix of log lines.
pub const NAME: &str = "filter-template";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream);

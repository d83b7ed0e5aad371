//! header-rules: add / set / append / remove request and response headers, conditioned on
//! request matching rules, with values that may reference request attributes.
//! Registration only; see `config.rs`, `edits.rs` (the logic) and `filter.rs` (the glue).

pub mod config;
pub mod edits;
pub mod filter;

/// The root id Envoy's `root_id` must name, and the prefix of log lines.
pub const NAME: &str = "header-rules";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream);

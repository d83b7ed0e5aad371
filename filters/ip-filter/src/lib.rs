//! ip-filter: allow/deny by CIDR lists, for HTTP requests (403) and L4 connections (closed
//! before a byte is proxied), from one crate and one config shape.
//! Registration only; see `config.rs` (configuration), `policy.rs` (the decision) and
//! `filter.rs` (the glue for both contexts).

pub mod config;
pub mod filter;
pub mod policy;

/// The root id Envoy's `root_id` must name, and the prefix of log lines.
pub const NAME: &str = "ip-filter";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream, network: filter::Connection);

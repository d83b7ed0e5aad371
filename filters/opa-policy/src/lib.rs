//! opa-policy: Rego policies decide on each request, evaluated inside Envoy (regorus) or
//! asked of an OPA server, with opa-envoy-plugin's input document and decision shape.
//! Registration only; see `config.rs` (configuration), `evaluate.rs` (compiling and
//! evaluating Rego under limits), `builtins.rs` (`io.jwt.decode`, `time.now_ns`, and `glob.*` from `glob.rs`),
//! `input.rs` (the input document), `reads.rs` (what of it a compiled policy can read), `decision.rs` (reading a decision), `remote.rs` (the
//! OPA Data API) and `filter.rs` (the glue between the host and those).

pub mod builtins;
pub mod config;
pub mod decision;
pub mod evaluate;
pub mod filter;
pub mod glob;
pub mod input;
pub mod reads;
pub mod remote;

/// The root id Envoy's `root_id` must name, and the prefix of log lines.
pub const NAME: &str = "opa-policy";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream);

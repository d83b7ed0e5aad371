//! template: denies requests that match a rule, with a JSON local response.
//! Registration only; see `config.rs` (configuration), `policy.rs` (the decision) and
//! `filter.rs` (the glue between the host and the decision).

pub mod config;
pub mod filter;
pub mod policy;

/// The one name of this filter: crate, root id (Envoy `root_id`, Istio `pluginName`), `.wasm`,
/// image and metric prefix (`template.*`). Log lines do not repeat it: Envoy prefixes every
/// wasm log line with the plugin's name and root id itself (`wasm log template template: `).
pub const NAME: &str = "template";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream);

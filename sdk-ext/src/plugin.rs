//! [`Plugin`]: what a filter builds once per configuration and shares with every stream.

use crate::config::ConfigError;
use std::time::Duration;

/// A filter's configured state: parsed and validated once, in the root context, from the
/// plugin configuration, then shared (read-only, or with interior mutability for caches)
/// by every stream of that configuration.
///
/// A configuration `configure` refuses is logged as `"<NAME>: invalid config at <field>:
/// <reason>"` and Envoy refuses it. The other methods are the root context's background
/// work; each has a no-op default.
///
/// ```
/// use sdk_ext::config::{self, ConfigError};
/// use sdk_ext::plugin::Plugin;
///
/// #[derive(sdk_ext::FromJson)]
/// #[serde(deny_unknown_fields)]
/// pub struct Greeting {
///     header: String,
/// }
///
/// impl Plugin for Greeting {
///     const NAME: &'static str = "greeting";
///     fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
///         config::parse(bytes)
///     }
/// }
/// ```
pub trait Plugin: Sized + 'static {
    /// The filter's name: the root id Envoy's `root_id` names, and the prefix of its logs.
    const NAME: &'static str;

    /// Parses and validates the plugin configuration (JSON bytes; empty when none was
    /// given). Host calls (defining metrics) are allowed.
    fn configure(config: &[u8]) -> Result<Self, ConfigError>;

    /// How often [`on_tick`](Self::on_tick) runs; `None`: never. Asked once, after a
    /// successful configuration. A period over `u32::MAX` ms refuses the configuration.
    fn tick_period(&self) -> Option<Duration> {
        None
    }

    /// Runs once after a successful configuration (callouts allowed: e.g. a first fetch).
    fn on_start(&self) {}

    /// Runs every [`tick_period`](Self::tick_period).
    fn on_tick(&self) {}

    /// The answer to callout `token` dispatched from the root context (`on_start`,
    /// `on_tick`); read it with [`crate::callout::Response::read`] (`body_size` is the body
    /// length).
    fn on_http_call_response(&self, _token: u32, _body_size: usize) {}
}

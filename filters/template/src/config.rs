//! Configuration: the JSON shape, its defaults and its validation.

use sdk_ext::config::{self, ConfigError};
use sdk_ext::matching::RequestMatchSpec;
use sdk_ext::rules::{RawRule, Rules};
use sdk_ext::FromJson;

/// The JSON configuration.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Requests to deny (default: none).
    pub deny: Option<RequestMatchSpec>,
    /// Status of the local response (default 403).
    #[serde(default = "default_status")]
    #[cfg_attr(feature = "schema", schemars(range(min = 400, max = 599)))]
    pub status: u16,
    /// Message in the JSON body (default "request denied").
    #[serde(default = "default_message")]
    pub message: String,
}

fn default_status() -> u16 {
    403
}
fn default_message() -> String {
    "request denied".to_string()
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Requests to deny: one rule built from `deny` (none: nothing is denied). More rules
    /// go here, picked with `first` (per-route behaviour, `sdk_ext::rules`).
    pub deny: Rules<()>,
    /// Status of the local response (400..=599).
    pub status: u16,
    /// Message in the JSON body.
    pub message: String,
}

impl Config {
    /// Parses and validates JSON configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = config::parse(bytes)?;
        if !(400..=599).contains(&raw.status) {
            return Err(ConfigError::new(
                "status",
                format!("{} is not a 4xx or 5xx status", raw.status),
            ));
        }
        let raw_rules: Vec<RawRule<()>> = raw
            .deny
            .iter()
            .map(|m| RawRule {
                matcher: Some(m.clone()),
                value: (),
            })
            .collect();
        // Rule paths are `deny[0].match...`; the operator wrote `deny...`.
        let deny = Rules::compile(&raw_rules, "deny", |(), _| Ok(())).map_err(|e| {
            let field = e.field.replacen("deny[0].match", "deny", 1);
            ConfigError::new(field, &e.reason)
        })?;
        Ok(Self {
            deny,
            status: raw.status,
            message: raw.message,
        })
    }
}

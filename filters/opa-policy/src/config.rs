//! Configuration: the JSON shape, its defaults and its validation. Every Rego module is
//! parsed and compiled here, once; a syntax or compile error refuses the configuration,
//! naming the module and the line.

use crate::evaluate::{Limits, Policy};
use sdk_ext::callout::HttpUri;
use sdk_ext::config::{self, ConfigError};
use sdk_ext::duration::ProtoDuration;
use sdk_ext::rules::{RawRule, Rules};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Default evaluation time limit per request.
pub const DEFAULT_EVAL_TIMEOUT: Duration = Duration::from_millis(20);
/// Default cap on the input document (header names and values, path, body), bytes.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 64 * 1024;
/// Default cap on the memory an evaluation may allocate, bytes.
pub const DEFAULT_MAX_EVAL_MEMORY_BYTES: usize = 16 * 1024 * 1024;
/// The most a remote OPA's answer may be, bytes (larger answers fail closed).
pub const MAX_REMOTE_ANSWER_BYTES: usize = 256 * 1024;

/// The JSON configuration.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Policies evaluated inside Envoy, by name.
    #[serde(default)]
    pub policies: BTreeMap<String, RawPolicy>,
    /// OPA servers asked over their REST API, by name.
    #[serde(default)]
    pub remotes: BTreeMap<String, RawRemote>,
    /// Which policy decides which request: the first rule whose `match` holds. Absent: every
    /// request goes to the one policy or remote configured. A request no rule matches passes
    /// unchecked (add a last rule without `match` to check everything).
    #[serde(default)]
    pub rules: Option<Vec<RawRule<RawDecider>>>,
    /// Give policies the request body (`input.parsed_body`, `input.attributes.request.http.body`),
    /// as Envoy ext_authz's `with_request_body`.
    #[serde(default)]
    pub with_request_body: Option<RawWithBody>,
    /// Bounds on each request's evaluation.
    #[serde(default)]
    pub limits: RawLimits,
    /// Status when the policy cannot decide: evaluation error, limit, remote failure (default 403,
    /// as ext_authz's `status_on_error`).
    #[serde(default = "default_status")]
    #[cfg_attr(feature = "schema", schemars(range(min = 400, max = 599)))]
    pub status_on_error: u16,
}

fn default_status() -> u16 {
    403
}

/// One embedded policy: Rego modules, optional data, the rule to query.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// The Rego modules (v1 syntax), each with a name used in error messages.
    pub modules: Vec<RawModule>,
    /// The `data` document (a JSON object), e.g. role bindings.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// The rule whose value is the decision, e.g. `data.envoy.authz.allow`.
    pub query: String,
}

/// One Rego module.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawModule {
    /// A name for messages (`authz.rego`).
    pub name: String,
    /// The module's source.
    pub rego: String,
}

/// One OPA server, asked `POST <uri>` with `{"input": ...}` (its Data API,
/// `/v1/data/<package path>/<rule>`).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRemote {
    /// Envoy's `HttpUri`: `uri` (`http://opa:8181/v1/data/envoy/authz/allow`), `cluster`,
    /// `timeout`.
    pub http_uri: RawHttpUri,
}

/// `config.core.v3.HttpUri`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawHttpUri {
    /// The Data API URI of the rule.
    pub uri: String,
    /// The Envoy cluster of the OPA server.
    pub cluster: String,
    /// How long to wait for the answer (a timeout fails closed).
    pub timeout: ProtoDuration,
}

/// A rule's decider: exactly one of `policy`, `remote`, `skip`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawDecider {
    /// An embedded policy by name.
    #[serde(default)]
    pub policy: Option<String>,
    /// Another rule of that policy than its `query` (e.g. `data.envoy.authz.admin`).
    #[serde(default)]
    pub query: Option<String>,
    /// A remote OPA by name.
    #[serde(default)]
    pub remote: Option<String>,
    /// Let the request through unchecked (e.g. `/health`).
    #[serde(default)]
    pub skip: bool,
}

/// `with_request_body`, as Envoy ext_authz's `BufferSettings`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawWithBody {
    /// The most body bytes buffered for the policy.
    pub max_request_bytes: u32,
    /// Over `max_request_bytes`: false answers 413; true gives the policy the first bytes
    /// (`input.truncated_body` true, no `parsed_body`).
    #[serde(default)]
    pub allow_partial_message: bool,
}

/// Bounds on one evaluation.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Evaluation time limit (default `0.005s`); past it the request is denied.
    #[serde(default)]
    pub eval_timeout: Option<ProtoDuration>,
    /// Cap on the input document: header names and values, path, body (default 65536).
    #[serde(default)]
    pub max_input_bytes: Option<usize>,
    /// Cap on what one evaluation allocates (default 16 MiB).
    #[serde(default)]
    pub max_eval_memory_bytes: Option<usize>,
}

/// Where a request's decision comes from.
#[derive(Debug, Clone)]
pub enum Decider {
    /// An embedded policy and the rule to evaluate.
    Embedded {
        /// The compiled policy.
        policy: Rc<Policy>,
        /// The rule path.
        query: Rc<str>,
    },
    /// An OPA server.
    Remote(Rc<HttpUri>),
    /// No check.
    Skip,
}

/// The request body settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WithBody {
    /// The most body bytes the policy sees.
    pub max_bytes: usize,
    /// Over `max_bytes`: pass the first bytes (true) or answer 413 (false).
    pub allow_partial: bool,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The rules, each with its decider.
    pub rules: Rules<Decider>,
    /// Body settings; `None`: the body is not read.
    pub with_body: Option<WithBody>,
    /// Bounds on each evaluation.
    pub limits: Limits,
    /// Status when no decision could be made.
    pub status_on_error: u16,
}

impl Config {
    /// Parses and validates JSON configuration bytes; compiles every policy.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = config::parse_serde(bytes)?;
        if !(400..=599).contains(&raw.status_on_error) {
            return Err(ConfigError::new(
                "status_on_error",
                format!("{} is not a 4xx or 5xx status", raw.status_on_error),
            ));
        }
        let limits = limits(&raw.limits)?;
        let mut policies = BTreeMap::new();
        for (name, p) in &raw.policies {
            let field = format!("policies.{name}");
            let policy = Policy::compile(p, &limits).map_err(|e| e.within(&field))?;
            policies.insert(name.clone(), Rc::new(policy));
        }
        let mut remotes = BTreeMap::new();
        for (name, r) in &raw.remotes {
            let u = &r.http_uri;
            let uri = HttpUri::new(&u.uri, &u.cluster, u.timeout.get())
                .map_err(|e| e.within(&format!("remotes.{name}.http_uri")))?;
            remotes.insert(name.clone(), Rc::new(uri));
        }
        let rules = match &raw.rules {
            Some(rules) => Rules::compile(rules, "rules", |d: &RawDecider, field| {
                decider(d, field, &policies, &remotes)
            })?,
            None => {
                let only = match (policies.values().next(), remotes.values().next()) {
                    (Some(p), None) if policies.len() == 1 => Decider::Embedded {
                        policy: Rc::clone(p),
                        query: Rc::from(p.query()),
                    },
                    (None, Some(u)) if remotes.len() == 1 => Decider::Remote(Rc::clone(u)),
                    _ => {
                        return Err(ConfigError::new(
                            "rules",
                            "without rules, exactly one policy or remote must be configured",
                        ))
                    }
                };
                let all = [RawRule {
                    matcher: None,
                    value: (),
                }];
                Rules::compile(&all, "rules", |(), _| Ok(only.clone()))?
            }
        };
        let with_body = match &raw.with_request_body {
            Some(b) if b.max_request_bytes == 0 => {
                return Err(ConfigError::new(
                    "with_request_body.max_request_bytes",
                    "must be greater than 0",
                ))
            }
            Some(b) => {
                let max_bytes = usize::try_from(b.max_request_bytes).unwrap_or(usize::MAX);
                if max_bytes > limits.max_input_bytes {
                    return Err(ConfigError::new(
                        "with_request_body.max_request_bytes",
                        format!(
                            "{max_bytes} is over limits.max_input_bytes ({})",
                            limits.max_input_bytes
                        ),
                    ));
                }
                Some(WithBody {
                    max_bytes,
                    allow_partial: b.allow_partial_message,
                })
            }
            None => None,
        };
        Ok(Self {
            rules,
            with_body,
            limits,
            status_on_error: raw.status_on_error,
        })
    }
}

fn limits(raw: &RawLimits) -> Result<Limits, ConfigError> {
    let eval_timeout = raw
        .eval_timeout
        .map_or(DEFAULT_EVAL_TIMEOUT, ProtoDuration::get);
    if eval_timeout.is_zero() || eval_timeout > Duration::from_secs(10) {
        return Err(ConfigError::new(
            "limits.eval_timeout",
            "must be greater than 0s and at most 10s",
        ));
    }
    let max_input_bytes = raw.max_input_bytes.unwrap_or(DEFAULT_MAX_INPUT_BYTES);
    if max_input_bytes < 1024 {
        return Err(ConfigError::new(
            "limits.max_input_bytes",
            "must be at least 1024",
        ));
    }
    let max_eval_memory_bytes = raw
        .max_eval_memory_bytes
        .unwrap_or(DEFAULT_MAX_EVAL_MEMORY_BYTES);
    if max_eval_memory_bytes < 64 * 1024 {
        return Err(ConfigError::new(
            "limits.max_eval_memory_bytes",
            "must be at least 65536",
        ));
    }
    Ok(Limits {
        eval_timeout,
        max_input_bytes,
        max_eval_memory_bytes,
    })
}

fn decider(
    d: &RawDecider,
    field: &str,
    policies: &BTreeMap<String, Rc<Policy>>,
    remotes: &BTreeMap<String, Rc<HttpUri>>,
) -> Result<Decider, ConfigError> {
    let at = |key: &str| format!("{field}.{key}");
    match (&d.policy, &d.remote, d.skip) {
        (Some(name), None, false) => {
            let policy = policies
                .get(name)
                .ok_or_else(|| ConfigError::new(at("policy"), format!("no policy {name:?}")))?;
            let query: Rc<str> = match &d.query {
                Some(q) => {
                    policy
                        .check_query(q)
                        .map_err(|e| ConfigError::new(at("query"), e))?;
                    Rc::from(q.as_str())
                }
                None => Rc::from(policy.query()),
            };
            Ok(Decider::Embedded {
                policy: Rc::clone(policy),
                query,
            })
        }
        (None, Some(name), false) => {
            if d.query.is_some() {
                return Err(ConfigError::new(
                    at("query"),
                    "a remote's rule is in its http_uri.uri",
                ));
            }
            let uri = remotes
                .get(name)
                .ok_or_else(|| ConfigError::new(at("remote"), format!("no remote {name:?}")))?;
            Ok(Decider::Remote(Rc::clone(uri)))
        }
        (None, None, true) if d.query.is_none() => Ok(Decider::Skip),
        _ => Err(ConfigError::new(
            field,
            "a rule names exactly one of policy (with an optional query), remote, or skip: true",
        )),
    }
}

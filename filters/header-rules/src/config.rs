//! Configuration: the JSON shape and its validation.

use sdk_ext::config::{self, join_path, ConfigError};
use sdk_ext::headers::check_mutable_name;
use sdk_ext::metrics::check_name_part;
use sdk_ext::rules::{RawRule, Rules};
use sdk_ext::template::Template;
use sdk_ext::FromJson;

/// The JSON configuration.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Rules, applied in order; every matching rule applies. Each is `{name, match,
    /// request, response}`; `match` (sdk-ext `Rules`) absent: every request.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub rules: Vec<RawRule<RawRuleEdits>>,
}

/// One rule's own keys (its `match` is taken out by sdk-ext `Rules`).
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRuleEdits {
    /// Names the rule in metrics (`header_rules.matched.rule.<name>`); default: its index.
    pub name: Option<String>,
    /// Edits to the request headers, before the request goes upstream.
    #[serde(default)]
    pub request: RawEdits,
    /// Edits to the response headers of the requests the rule matched.
    #[serde(default)]
    pub response: RawEdits,
}

/// Edits of one header map, applied in the order remove, set, append, add.
#[derive(Debug, Default, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawEdits {
    /// Remove every value of these headers.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Replace every value (add when absent). Envoy: `OVERWRITE_IF_EXISTS_OR_ADD`.
    #[serde(default)]
    pub set: Vec<RawHeader>,
    /// Add one more value. Envoy: `APPEND_IF_EXISTS_OR_ADD`.
    #[serde(default)]
    pub append: Vec<RawHeader>,
    /// Add only when the header is absent. Envoy: `ADD_IF_ABSENT`.
    #[serde(default)]
    pub add: Vec<RawHeader>,
}

/// A header and its value template.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    /// Header name (case-insensitive).
    pub name: String,
    /// Value; may reference request attributes (`%REQ(x-id)%`, see sdk-ext `template`).
    pub value: String,
    /// Apply the edit even when the value renders empty (default false, as Envoy).
    #[serde(default)]
    pub keep_empty_value: bool,
}

/// What an [`Edit`] does to a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Remove every value.
    Remove,
    /// Replace every value (add when absent).
    Set,
    /// Add one more value.
    Append,
    /// Add only when absent.
    Add,
}

/// The value an [`Edit`] writes.
#[derive(Debug)]
pub enum Value {
    /// None: a remove.
    None,
    /// Written as is (an empty fixed value without `keep_empty_value` is never written, so
    /// its edit is dropped at config time).
    Fixed(Vec<u8>),
    /// References request attributes: rendered at request headers; written only when it
    /// renders non-empty, or with `keep_empty_value`.
    Rendered {
        /// The value template.
        template: Template,
        /// `keep_empty_value`.
        keep_empty: bool,
    },
}

/// One validated header edit.
#[derive(Debug)]
pub struct Edit {
    /// What it does.
    pub op: Op,
    /// Lowercase header name.
    pub name: String,
    /// What it writes.
    pub value: Value,
}

/// Validated edits of one header map, in the order they apply: removes, sets, appends, adds.
#[derive(Debug, Default)]
pub struct Edits(pub Vec<Edit>);

/// A validated rule (its match lives in [`Config::rules`]).
#[derive(Debug)]
pub struct Rule {
    /// Metric name part.
    pub name: String,
    /// Request edits.
    pub request: Edits,
    /// Response edits.
    pub response: Edits,
    /// Whether any value references request attributes (rendered per request); a rule with
    /// fixed values only is applied straight from the config.
    pub renders: bool,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Rules in order; every matching one applies.
    pub rules: Rules<Rule>,
}

fn valued(list: &[RawHeader], op: Op, field: &str, out: &mut Vec<Edit>) -> Result<(), ConfigError> {
    for (i, h) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let name =
            check_mutable_name(&h.name).map_err(|r| ConfigError::new(join_path(&at, "name"), r))?;
        let template = Template::parse(&h.value, &join_path(&at, "value"))?;
        let value = match template.as_static() {
            Some(v) if v.is_empty() && !h.keep_empty_value => continue,
            Some(v) => Value::Fixed(v.to_vec()),
            None => Value::Rendered {
                template,
                keep_empty: h.keep_empty_value,
            },
        };
        out.push(Edit { op, name, value });
    }
    Ok(())
}

/// Validates one map's edits; `None` when the raw lists are all empty.
fn edits(raw: &RawEdits, field: &str) -> Result<Option<Edits>, ConfigError> {
    let mut out = Vec::new();
    for (i, n) in raw.remove.iter().enumerate() {
        let name = check_mutable_name(n)
            .map_err(|r| ConfigError::new(format!("{field}.remove[{i}]"), r))?;
        out.push(Edit {
            op: Op::Remove,
            name,
            value: Value::None,
        });
    }
    valued(&raw.set, Op::Set, &format!("{field}.set"), &mut out)?;
    valued(
        &raw.append,
        Op::Append,
        &format!("{field}.append"),
        &mut out,
    )?;
    valued(&raw.add, Op::Add, &format!("{field}.add"), &mut out)?;
    let written = raw.remove.len() + raw.set.len() + raw.append.len() + raw.add.len();
    Ok((written > 0).then_some(Edits(out)))
}

/// Most rules a config may hold (a bound on per-request work).
pub const MAX_RULES: usize = 256;

impl Config {
    /// Parses and validates JSON configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = config::parse(bytes)?;
        if raw.rules.is_empty() {
            return Err(ConfigError::new("rules", "needs at least one rule"));
        }
        if raw.rules.len() > MAX_RULES {
            return Err(ConfigError::new(
                "rules",
                format!("at most {MAX_RULES} rules"),
            ));
        }
        let mut names: Vec<String> = Vec::with_capacity(raw.rules.len());
        let rules = Rules::compile(&raw.rules, "rules", |r: &RawRuleEdits, at| {
            let name = match &r.name {
                Some(n) => {
                    check_name_part(n, &format!("{at}.name"))?;
                    n.clone()
                }
                None => names.len().to_string(),
            };
            if names.contains(&name) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    sdk_ext::json::quoted("duplicate rule name ", &name, ""),
                ));
            }
            let request = edits(&r.request, &format!("{at}.request"))?;
            let response = edits(&r.response, &format!("{at}.response"))?;
            if request.is_none() && response.is_none() {
                return Err(ConfigError::new(at, "has no request or response edits"));
            }
            let (request, response) = (request.unwrap_or_default(), response.unwrap_or_default());
            names.push(name.clone());
            let renders = request
                .0
                .iter()
                .chain(&response.0)
                .any(|e| matches!(e.value, Value::Rendered { .. }));
            Ok(Rule {
                name,
                request,
                response,
                renders,
            })
        })?;
        Ok(Self { rules })
    }
}

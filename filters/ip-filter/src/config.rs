//! Configuration: the JSON shape (one for HTTP and L4), its defaults and its validation.
//! Every CIDR list is built once, here, into `CidrTable`s.

use sdk_ext::config::{self, ConfigError};
use sdk_ext::metrics::check_name_part;
use sdk_ext::net::{Cidr, CidrTable};
use sdk_ext::rules::{RawRule, Rules};
use sdk_ext::FromJson;

/// Which list wins when an address is in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Precedence {
    /// A deny match always wins (the default).
    #[default]
    Deny,
    /// The longest matching prefix across both lists wins; at equal length, deny.
    MostSpecific,
}

/// What an address in neither list gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse it.
    Deny,
}

/// The JSON configuration.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The policy for L4 connections and for HTTP requests no rule matches. Addresses allowed: CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Addresses denied, same form.
    #[serde(default)]
    pub deny: Vec<String>,
    /// `deny` (default): a deny match always wins; `most_specific`: the longest prefix wins,
    /// deny at equal length.
    #[serde(default)]
    pub precedence: Precedence,
    /// An address in neither list: default `deny` when `allow` is non-empty, else `allow`.
    pub default: Option<Verdict>,
    /// HTTP only: per-route policies, first match wins (sdk-ext `Rules`); each replaces the
    /// top-level lists for the requests it matches.
    #[serde(default)]
    pub rules: Vec<RawRule<RawRuleLists>>,
    /// HTTP only: 0 (default) judges the connection's address (`source.address`); N ≥ 1
    /// judges the Nth address from the right of `X-Forwarded-For` (Envoy's
    /// `xff_num_trusted_hops`: N trusted proxies in front of this Envoy).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 64)))]
    pub xff_num_trusted_hops: u32,
    /// Status of the HTTP refusal (default 403).
    #[serde(default = "default_status")]
    #[cfg_attr(feature = "schema", schemars(range(min = 400, max = 599)))]
    pub status: u16,
    /// Message of the HTTP refusal's JSON body.
    #[serde(default = "default_message")]
    pub message: String,
}

/// A rule's own keys: a name and its lists.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRuleLists {
    /// Names the rule in logs and metrics (`ip_filter.rule.<name>.denied`); default: its index.
    pub name: Option<String>,
    /// Addresses allowed: CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Addresses denied, same form.
    #[serde(default)]
    pub deny: Vec<String>,
    /// `deny` (default): a deny match always wins; `most_specific`: the longest prefix wins,
    /// deny at equal length.
    #[serde(default)]
    pub precedence: Precedence,
    /// An address in neither list: default `deny` when `allow` is non-empty, else `allow`.
    pub default: Option<Verdict>,
}

fn default_status() -> u16 {
    403
}
fn default_message() -> String {
    "client address not allowed".to_string()
}

/// Validated lists.
#[derive(Debug)]
pub struct Lists {
    /// Name for logs and metrics (`default` for the top level).
    pub name: String,
    /// Allowed ranges.
    pub allow: CidrTable<()>,
    /// Denied ranges.
    pub deny: CidrTable<()>,
    /// How they combine.
    pub precedence: Precedence,
    /// Neither list.
    pub default: Verdict,
}

/// Most CIDR entries in one config (all lists together).
pub const MAX_ENTRIES: usize = 1_000_000;
/// Most rules.
pub const MAX_RULES: usize = 256;
/// Most trusted hops.
pub const MAX_TRUSTED_HOPS: u32 = 64;

fn table(list: &[String], field: &str) -> Result<CidrTable<()>, ConfigError> {
    let mut entries = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        match Cidr::parse(s) {
            Ok(c) => entries.push((c, ())),
            Err(r) => return Err(ConfigError::new(format!("{field}[{i}]"), r)),
        }
    }
    Ok(CidrTable::new(entries))
}

/// The four list fields, borrowed from the top level or a rule.
struct RawLists<'a> {
    allow: &'a [String],
    deny: &'a [String],
    precedence: Precedence,
    default: Option<Verdict>,
}

fn lists(raw: RawLists<'_>, at: &str, name: String) -> Result<Lists, ConfigError> {
    let field = |f: &str| {
        if at.is_empty() {
            f.to_string()
        } else {
            format!("{at}.{f}")
        }
    };
    let allow = table(raw.allow, &field("allow"))?;
    let deny = table(raw.deny, &field("deny"))?;
    let default = raw.default.unwrap_or(if raw.allow.is_empty() {
        Verdict::Allow
    } else {
        Verdict::Deny
    });
    Ok(Lists {
        name,
        allow,
        deny,
        precedence: raw.precedence,
        default,
    })
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// L4, and HTTP requests no rule matches.
    pub top: Lists,
    /// HTTP per-route lists, first match wins.
    pub rules: Rules<Lists>,
    /// `X-Forwarded-For` hops (0: the connection's address).
    pub xff_num_trusted_hops: u32,
    /// HTTP refusal status.
    pub status: u16,
    /// HTTP refusal message.
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
        if raw.xff_num_trusted_hops > MAX_TRUSTED_HOPS {
            return Err(ConfigError::new(
                "xff_num_trusted_hops",
                format!("at most {MAX_TRUSTED_HOPS}"),
            ));
        }
        if raw.rules.len() > MAX_RULES {
            return Err(ConfigError::new(
                "rules",
                format!("at most {MAX_RULES} rules"),
            ));
        }
        let entries = raw.allow.len()
            + raw.deny.len()
            + raw
                .rules
                .iter()
                .map(|r| r.value.allow.len() + r.value.deny.len())
                .sum::<usize>();
        if entries > MAX_ENTRIES {
            return Err(ConfigError::new(
                "allow",
                format!("{entries} CIDR entries in all; at most {MAX_ENTRIES}"),
            ));
        }
        let top = lists(
            RawLists {
                allow: &raw.allow,
                deny: &raw.deny,
                precedence: raw.precedence,
                default: raw.default,
            },
            "",
            "default".to_string(),
        )?;
        let mut names: Vec<String> = Vec::new();
        let rules = Rules::compile(&raw.rules, "rules", |r: &RawRuleLists, at| {
            let name = match &r.name {
                Some(n) => {
                    check_name_part(n, &format!("{at}.name"))?;
                    n.clone()
                }
                None => names.len().to_string(),
            };
            if names.contains(&name) || name == "default" {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    sdk_ext::json::quoted("duplicate rule name ", &name, ""),
                ));
            }
            names.push(name.clone());
            lists(
                RawLists {
                    allow: &r.allow,
                    deny: &r.deny,
                    precedence: r.precedence,
                    default: r.default,
                },
                at,
                name,
            )
        })?;
        Ok(Self {
            top,
            rules,
            xff_num_trusted_hops: raw.xff_num_trusted_hops,
            status: raw.status,
            message: raw.message,
        })
    }
}

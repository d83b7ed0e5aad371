//! Configuration: the rules, grouped at config time into one compiled set per location.

use sdk_ext::config::{self, ConfigError};
use sdk_ext::matching::{RegexMode, StringMatchSpec, StringMatcherSet};
use sdk_ext::metrics::check_name_part;
use sdk_ext::path::{EscapedSlashes, PathOptions};
use sdk_ext::FromJson;
use std::cell::RefCell;

/// Where a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// The normalised path (see `path`).
    Path,
    /// The query string, percent-decoded once (`+` is a space).
    Query,
    /// Every value of the header named by `header`.
    Header,
    /// The first `body.max_bytes` of the request body, as bytes.
    Body,
}

impl Location {
    /// The name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Body => "body",
        }
    }
}

/// One rule as written.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Names the rule in logs and metrics (`request_block.blocked.rule.<name>`).
    pub name: String,
    /// Where to look.
    #[serde(rename = "in")]
    pub location: Location,
    /// The header (with `in: header`), any case.
    pub header: Option<String>,
    /// The pattern: `exact`, `prefix`, `suffix`, `contains` (no regex), or `safe_regex`
    /// (RE2 syntax, matched **anywhere** in the value; anchor with `^`/`$`); `ignore_case`.
    pub pattern: StringMatchSpec,
}

/// `escaped_slashes` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RawEscapedSlashes {
    /// `%2F` / `%5C` are separators (default).
    #[default]
    Unescape,
    /// Kept as text, part of a segment.
    Keep,
    /// The request is refused (400).
    Reject,
}

/// How the path is normalised before path rules see it.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawPath {
    /// Encoded slashes and backslashes (default `unescape`).
    #[serde(default)]
    pub escaped_slashes: RawEscapedSlashes,
    /// Drop `;` parameters from segments (default true).
    #[serde(default = "yes")]
    pub strip_parameters: bool,
    /// Path rules compare case-sensitively (default false: `/ADMIN` is `/admin`).
    #[serde(default)]
    pub case_sensitive: bool,
}

impl Default for RawPath {
    fn default() -> Self {
        Self {
            escaped_slashes: RawEscapedSlashes::Unescape,
            strip_parameters: true,
            case_sensitive: false,
        }
    }
}

/// Body inspection.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawBody {
    /// Bytes inspected from the start of the body (default 8192, at most 1 MiB).
    #[serde(default = "default_max_bytes")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1048576)))]
    pub max_bytes: u32,
}

impl Default for RawBody {
    fn default() -> Self {
        Self {
            max_bytes: default_max_bytes(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_max_bytes() -> u32 {
    8192
}
fn default_status() -> u16 {
    403
}
fn default_message() -> String {
    "request blocked".to_string()
}

/// The JSON configuration.
#[derive(Debug, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The rules (1–1024).
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 1024)))]
    pub rules: Vec<RawRule>,
    /// Path normalisation.
    #[serde(default)]
    pub path: RawPath,
    /// Body inspection (used when a rule has `in: body`).
    #[serde(default)]
    pub body: RawBody,
    /// Status of the block response (default 403).
    #[serde(default = "default_status")]
    #[cfg_attr(feature = "schema", schemars(range(min = 400, max = 599)))]
    pub status: u16,
    /// Message of the block response's JSON body.
    #[serde(default = "default_message")]
    pub message: String,
}

/// One location's compiled set and the rule behind each of its entries.
#[derive(Debug, Default)]
pub struct LocationSet {
    /// The compiled matchers.
    pub set: StringMatcherSet,
    /// Set index → rule index.
    pub rules: Vec<usize>,
}

impl LocationSet {
    /// The rule index of the first pattern matching `value`.
    pub fn first_rule(&self, value: &[u8]) -> Option<usize> {
        self.set
            .first_match(value)
            .and_then(|i| self.rules.get(i).copied())
    }
}

/// A validated rule.
#[derive(Debug)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Its location.
    pub location: Location,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Every rule, in order.
    pub rules: Vec<Rule>,
    /// Path rules.
    pub path: LocationSet,
    /// Query rules.
    pub query: LocationSet,
    /// Header rules, one set per header name (lowercase).
    pub headers: Vec<(String, LocationSet)>,
    /// Those names as bits ([`name_bit`]): a header whose name's bit is not set has no
    /// rules, found without comparing its name with each (most of a request's headers).
    pub header_bits: u64,
    /// Body rules.
    pub body: LocationSet,
    /// Path normalisation.
    pub path_options: PathOptions,
    /// Body bytes inspected.
    pub body_max_bytes: usize,
    /// Block status.
    pub status: u16,
    /// Block message.
    pub message: String,
    /// The buffer the path's normal form and the decoded query are written into, kept
    /// between requests so that checking one allocates nothing.
    pub scratch: RefCell<Vec<u8>>,
}

/// The scratch buffer's largest capacity kept between requests (a longer path's buffer is
/// freed after its request, as every buffer was before there was one to keep).
pub const SCRATCH_KEPT: usize = 4096;

/// A header name's bit in [`Config::header_bits`], from its length and last byte (names of
/// one length often share their start, `x-`): a 64-bit Bloom filter with one hash.
#[inline]
pub fn name_bit(name: &[u8]) -> u64 {
    let last = usize::from(name.last().copied().unwrap_or(0));
    // `min`: the hash reads the whole length, so the walk loads each size once (from its
    // low byte alone, the compiler loaded the size a byte at a time, ~10 operators a header).
    1 << (((name.len().min(255) << 3) ^ last) & 63)
}

/// Most rules.
pub const MAX_RULES: usize = 1024;
/// Most body bytes inspected.
pub const MAX_BODY_BYTES: u32 = 1 << 20;

fn build(picked: &[(usize, StringMatchSpec)], field: &str) -> Result<LocationSet, ConfigError> {
    let specs: Vec<StringMatchSpec> = picked.iter().map(|(_, s)| s.clone()).collect();
    let set = StringMatcherSet::compile(&specs, "", RegexMode::Search).map_err(|e| {
        // `[k].x` → `rules[i].pattern.x`
        let k: usize = e
            .field
            .trim_start_matches('[')
            .split(']')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let rule = picked.get(k).map_or(0, |(i, _)| *i);
        let rest = e.field.split_once(']').map_or("", |(_, r)| r);
        ConfigError::new(format!("{field}[{rule}].pattern{rest}"), &e.reason)
    })?;
    Ok(LocationSet {
        set,
        rules: picked.iter().map(|(i, _)| *i).collect(),
    })
}

impl Config {
    /// Parses and validates JSON configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = config::parse(bytes)?;
        if raw.rules.is_empty() || raw.rules.len() > MAX_RULES {
            return Err(ConfigError::new(
                "rules",
                format!("needs 1 to {MAX_RULES} rules"),
            ));
        }
        if !(400..=599).contains(&raw.status) {
            return Err(ConfigError::new(
                "status",
                format!("{} is not a 4xx or 5xx status", raw.status),
            ));
        }
        if raw.body.max_bytes == 0 || raw.body.max_bytes > MAX_BODY_BYTES {
            return Err(ConfigError::new(
                "body.max_bytes",
                format!("must be 1..={MAX_BODY_BYTES}"),
            ));
        }
        let case_insensitive_path = !raw.path.case_sensitive;
        let mut rules = Vec::with_capacity(raw.rules.len());
        let (mut path, mut query, mut body) = (Vec::new(), Vec::new(), Vec::new());
        let mut headers: Vec<(String, Vec<(usize, StringMatchSpec)>)> = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            check_name_part(&r.name, &format!("{at}.name"))?;
            if rules.iter().any(|x: &Rule| x.name == r.name) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    sdk_ext::json::quoted("duplicate rule name ", &r.name, ""),
                ));
            }
            let mut spec = r.pattern.clone();
            match (r.location, &r.header) {
                (Location::Header, None) => {
                    return Err(ConfigError::new(
                        format!("{at}.header"),
                        "`in: header` needs the header's name",
                    ))
                }
                (Location::Header, Some(h)) => {
                    let name = h.to_ascii_lowercase();
                    if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
                        return Err(ConfigError::new(
                            format!("{at}.header"),
                            sdk_ext::json::quoted("", h, " is not a header name"),
                        ));
                    }
                    match headers.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, list)) => list.push((i, spec)),
                        None => headers.push((name, vec![(i, spec)])),
                    }
                }
                (_, Some(_)) => {
                    return Err(ConfigError::new(
                        format!("{at}.header"),
                        "only with `in: header`",
                    ))
                }
                (Location::Path, None) => {
                    if case_insensitive_path {
                        // The path is lowercased; so is every path pattern. A leading flag,
                        // not a `(?i:...)` group around it: wrapped, an unbalanced pattern
                        // (`x)|(.*`) would balance and be accepted, matching every path.
                        if let Some(re) = &mut spec.safe_regex {
                            re.regex = format!("(?i){}", re.regex);
                        } else {
                            spec.ignore_case = true;
                        }
                    }
                    path.push((i, spec));
                }
                (Location::Query, None) => query.push((i, spec)),
                (Location::Body, None) => body.push((i, spec)),
            }
            rules.push(Rule {
                name: r.name.clone(),
                location: r.location,
            });
        }
        let headers = headers
            .iter()
            .map(|(n, list)| Ok((n.clone(), build(list, "rules")?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Self {
            rules,
            path: build(&path, "rules")?,
            query: build(&query, "rules")?,
            header_bits: headers
                .iter()
                .fold(0, |bits, (n, _)| bits | name_bit(n.as_bytes())),
            headers,
            body: build(&body, "rules")?,
            path_options: PathOptions {
                escaped_slashes: match raw.path.escaped_slashes {
                    RawEscapedSlashes::Unescape => EscapedSlashes::Unescape,
                    RawEscapedSlashes::Keep => EscapedSlashes::Keep,
                    RawEscapedSlashes::Reject => EscapedSlashes::Reject,
                },
                strip_parameters: raw.path.strip_parameters,
                lowercase: case_insensitive_path,
            },
            body_max_bytes: raw.body.max_bytes as usize,
            status: raw.status,
            message: raw.message,
            scratch: RefCell::default(),
        })
    }
}

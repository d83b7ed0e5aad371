//! Configuration: the JSON shape (Envoy's `CorsPolicy` fields, per rule), its defaults and
//! its validation.

use sdk_ext::config::{self, index_path, join_path, ConfigError};
use sdk_ext::headers::is_valid_value;
use sdk_ext::matching::{StringMatchSpec, StringMatcher};
use sdk_ext::rules::{RawRule, Rules};
use sdk_ext::FromJson;

/// The JSON configuration.
#[derive(Debug, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Policies, first match wins; each is `{match, <CorsPolicy fields>}` (sdk-ext `Rules`;
    /// `match` absent: every request). A request no rule matches is not touched.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub rules: Vec<RawRule<RawPolicy>>,
}

/// One rule's CORS policy: the fields of Envoy's `envoy.config.route.v3.CorsPolicy`, plus
/// `enabled` and `reject_disallowed_origins`.
#[derive(Debug, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Names the rule in logs; default its index.
    pub name: Option<String>,
    /// `false`: requests this rule matches get no CORS handling at all (a carve-out).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Origins allowed (any matcher holds). A matcher that matches the text `*` allows
    /// every origin (Envoy's rule) except `null`.
    #[serde(default)]
    pub allow_origin_string_match: Vec<StringMatchSpec>,
    /// `access-control-allow-methods` of preflight answers; `*`: echo the requested method.
    #[serde(default)]
    pub allow_methods: String,
    /// `access-control-allow-headers` of preflight answers; `*`: echo the requested headers.
    #[serde(default)]
    pub allow_headers: String,
    /// `access-control-expose-headers` of actual responses.
    #[serde(default)]
    pub expose_headers: String,
    /// `access-control-max-age` of preflight answers (seconds, digits).
    #[serde(default)]
    pub max_age: String,
    /// Send `access-control-allow-credentials: true`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Answer `access-control-request-private-network: true` with
    /// `access-control-allow-private-network: true`.
    #[serde(default)]
    pub allow_private_network_access: bool,
    /// A preflight from a disallowed origin goes upstream (default `true`, as Envoy);
    /// `false`: it is answered here, without `access-control-allow-origin`.
    #[serde(default = "yes")]
    pub forward_not_matching_preflights: bool,
    /// A request with an `Origin` this rule does not allow is answered 403 (default `false`:
    /// it passes without CORS headers, and the browser enforces).
    #[serde(default)]
    pub reject_disallowed_origins: bool,
}

fn yes() -> bool {
    true
}

/// A validated policy.
#[derive(Debug)]
pub struct Policy {
    /// Name for logs.
    pub name: String,
    /// Whether CORS applies.
    pub enabled: bool,
    /// Origin matchers.
    pub origins: Vec<StringMatcher>,
    /// Every matcher is an `exact` origin other than `*`: each is well formed (or `null`,
    /// which never gets that far), and so is an origin one matches, even ignoring case
    /// (case folding keeps the shape): no shape check per request.
    pub exact_only: bool,
    /// Some matcher matches the text `*`: every well-formed origin is allowed.
    pub any_origin: bool,
    /// Some matcher is `{"exact": "null"}`: the opaque origin `null` is allowed.
    pub allows_null: bool,
    /// Preflight `access-control-allow-methods` (empty: not sent).
    pub allow_methods: Vec<u8>,
    /// Preflight `access-control-allow-headers` (empty: not sent).
    pub allow_headers: Vec<u8>,
    /// `access-control-expose-headers` (empty: not sent).
    pub expose_headers: Vec<u8>,
    /// `access-control-max-age` (empty: not sent).
    pub max_age: Vec<u8>,
    /// `access-control-allow-credentials: true`.
    pub allow_credentials: bool,
    /// Private network access.
    pub allow_private_network_access: bool,
    /// Disallowed preflights go upstream.
    pub forward_not_matching_preflights: bool,
    /// Disallowed origins get 403.
    pub reject_disallowed_origins: bool,
    /// The last origin checked and its verdict (dynamic-module build only; see
    /// [`OriginMemo`](crate::policy::OriginMemo)).
    #[cfg(sdk_ext_dynamic_module)]
    pub memo: crate::policy::OriginMemo,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Policies, first match wins.
    pub rules: Rules<Policy>,
}

/// Most rules a config may hold.
pub const MAX_RULES: usize = 256;

/// `v` as a header value; `at.name` is its field.
fn header_value(v: &str, at: &str, name: &str) -> Result<Vec<u8>, ConfigError> {
    if !is_valid_value(v.as_bytes()) {
        return Err(ConfigError::new(
            join_path(at, name),
            "is not a valid header value (control characters)",
        ));
    }
    Ok(v.as_bytes().to_vec())
}

/// Whether an `exact` origin could ever equal what a browser sends: `null`, or
/// `scheme://host[:port]`, lowercase, no path, no trailing slash.
fn exact_origin_problem(origin: &str, ignore_case: bool) -> Option<&'static str> {
    if origin == "null" || origin == "*" {
        return None;
    }
    if !crate::policy::is_well_formed_origin(origin.as_bytes()) {
        return Some("is not an origin as browsers send it (scheme://host[:port], no path, no trailing slash)");
    }
    if !ignore_case && origin.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some("has uppercase letters; browsers send scheme and host in lowercase (or set ignore_case)");
    }
    None
}

fn policy(raw: &RawPolicy, at: &str, index: usize) -> Result<Policy, ConfigError> {
    let mut origins = Vec::with_capacity(raw.allow_origin_string_match.len());
    let mut exact_only = true;
    let mut allows_null = false;
    for (i, spec) in raw.allow_origin_string_match.iter().enumerate() {
        let field = index_path(at, "allow_origin_string_match", i);
        if let Some(exact) = &spec.exact {
            if let Some(problem) = exact_origin_problem(exact, spec.ignore_case) {
                // Pushed, not `[" ", problem].concat()` (its generic join is ~0.9 KB of .wasm).
                let mut reason = sdk_ext::json::quoted("", exact, " ");
                reason.push_str(problem);
                return Err(ConfigError::new(join_path(&field, "exact"), reason));
            }
            allows_null |= exact == "null";
        }
        // (`null` ignoring case would match `NULL`, which is no origin.)
        exact_only &= spec
            .exact
            .as_ref()
            .is_some_and(|e| e != "*" && !(spec.ignore_case && e.eq_ignore_ascii_case("null")));
        origins.push(StringMatcher::compile(spec, &field)?);
    }
    let any_origin = origins.iter().any(|m| m.matches(b"*"));
    let expose_headers = header_value(&raw.expose_headers, at, "expose_headers")?;
    if raw.allow_credentials {
        if any_origin {
            return Err(ConfigError::new(
                join_path(at, "allow_credentials"),
                "with an origin matcher that allows every origin, any site could make credentialed requests: list the origins",
            ));
        }
        if expose_headers == b"*" {
            return Err(ConfigError::new(
                join_path(at, "expose_headers"),
                "`*` is a literal header name for credentialed requests (browsers do not expand it): list the headers",
            ));
        }
    }
    let max_age = header_value(&raw.max_age, at, "max_age")?;
    if !max_age.iter().all(u8::is_ascii_digit) {
        return Err(ConfigError::new(
            join_path(at, "max_age"),
            sdk_ext::json::quoted("", &raw.max_age, " is not a number of seconds"),
        ));
    }
    let name = match &raw.name {
        Some(n) if !n.is_empty() => n.clone(),
        Some(_) => return Err(ConfigError::new(join_path(at, "name"), "must not be empty")),
        None => {
            let mut n = String::new();
            sdk_ext::json::push_decimal(&mut n, index as u64);
            n
        }
    };
    Ok(Policy {
        name,
        enabled: raw.enabled,
        origins,
        exact_only,
        any_origin,
        allows_null,
        allow_methods: header_value(&raw.allow_methods, at, "allow_methods")?,
        allow_headers: header_value(&raw.allow_headers, at, "allow_headers")?,
        expose_headers,
        max_age,
        allow_credentials: raw.allow_credentials,
        allow_private_network_access: raw.allow_private_network_access,
        forward_not_matching_preflights: raw.forward_not_matching_preflights,
        reject_disallowed_origins: raw.reject_disallowed_origins,
        #[cfg(sdk_ext_dynamic_module)]
        memo: crate::policy::OriginMemo::default(),
    })
}

impl Config {
    /// Parses and validates JSON configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = config::parse(bytes)?;
        if raw.rules.is_empty() {
            return Err(ConfigError::new("rules", "needs at least one rule"));
        }
        if raw.rules.len() > MAX_RULES {
            return Err(ConfigError::new("rules", {
                let mut m = String::from("at most ");
                sdk_ext::json::push_decimal(&mut m, MAX_RULES as u64);
                m.push_str(" rules");
                m
            }));
        }
        let mut index = 0;
        let rules = Rules::compile(&raw.rules, "rules", |r: &RawPolicy, at| {
            index += 1;
            policy(r, at, index - 1)
        })?;
        Ok(Self { rules })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_count_and_default_names() {
        let rule = r#"{"allow_origin_string_match":[{"exact":"https://a.example"}]}"#;
        let many = vec![rule; MAX_RULES + 1].join(",");
        let e = Config::parse(format!(r#"{{"rules":[{many}]}}"#).as_bytes()).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("rules", "at most 256 rules")
        );
        let twelve = [rule; 12].join(",");
        let c = Config::parse(format!(r#"{{"rules":[{twelve}]}}"#).as_bytes()).unwrap();
        let names: Vec<&str> = c.rules.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"0"));
        assert_eq!(names.last(), Some(&"11"));
    }
}

//! Higress's per-route configuration keys, accepted by every sdk-ext filter.
//!
//! Higress (`extensions.higress.io` `WasmPlugin`) hands a plugin one configuration: its
//! `defaultConfig` fields, plus `_rules_`, a list of rules each naming what it covers with
//! exactly one of `_match_route_` (route names), `_match_route_prefix_` (route name
//! prefixes), `_match_domain_` (hosts: `*.example.com` a suffix, `example.*` a prefix,
//! otherwise exact; the port is ignored) or `_match_service_` (upstream services: `fqdn` or
//! `fqdn:port`, compared with the `outbound|port||fqdn` cluster name), and otherwise the
//! same fields as the global configuration:
//!
//! ```json
//! { "deny": {"prefix": "/admin"},
//!   "_rules_": [ { "_match_route_": ["internal-api"], "deny": {"prefix": "/"} },
//!                { "_match_domain_": ["*.example.com"], "status": 404 } ] }
//! ```
//!
//! sdk-ext reads this shape before the filter sees anything: the global fields and each
//! rule's fields are configured as separate plugin instances (each validated as a whole
//! configuration; a refusal names the rule, `_rules_[1].status`), and each stream gets the
//! instance of the first rule that matches it, else the global one. As in Higress, a
//! configuration with rules and no global fields applies the filter only where a rule
//! matches; a configuration without `_rules_` is read exactly as before. Higress resolves
//! rules the same way (first match in order, then global); this module follows its SDKs'
//! semantics for each key.

use crate::config::{index_path, join_path, ConfigError};
use crate::json::{self, Value};
use crate::request::{without_port, Request};

/// The key Higress puts its rules under.
pub const RULES_KEY: &str = "_rules_";

/// What one Higress rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleMatch {
    /// `_match_route_`: the route's name is one of these.
    Routes(Vec<String>),
    /// `_match_route_prefix_`: the route's name starts with one of these.
    RoutePrefixes(Vec<String>),
    /// `_match_domain_`: the host (without port) matches one of these patterns.
    Domains(Vec<Domain>),
    /// `_match_service_`: the upstream service (`fqdn`, or `fqdn` and port) is one of these.
    Services(Vec<(String, Option<String>)>),
}

/// A `_match_domain_` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    /// `example.com`.
    Exact(String),
    /// `*.example.com` → ends with `.example.com`.
    Suffix(String),
    /// `example.*` → starts with `example.`.
    Prefix(String),
}

/// A configuration split into its Higress parts: the global configuration (JSON, `None`
/// when it has no fields of its own) and each rule's match and configuration.
#[derive(Debug)]
pub struct Split {
    /// The global configuration.
    pub global: Option<Vec<u8>>,
    /// The rules, in order.
    pub rules: Vec<(RuleMatch, Vec<u8>)>,
}

const MATCH_KEYS: [&str; 4] = [
    "_match_route_",
    "_match_route_prefix_",
    "_match_domain_",
    "_match_service_",
];

/// Splits a configuration that uses `_rules_`; `Ok(None)` when it does not (or is not a
/// JSON object: the filter's own parser then reports what is wrong, as always).
pub fn split(bytes: &[u8]) -> Result<Option<Split>, ConfigError> {
    let Ok(Value::Object(members)) = json::parse(bytes) else {
        return Ok(None);
    };
    if !members.iter().any(|(k, _)| k == RULES_KEY) {
        return Ok(None);
    }
    // Read through references, the parts written straight back to JSON: moving the members
    // out of the tree cost the module a drop of every container kind at every exit (~2 KB).
    let mut global = String::new();
    let mut rules = Vec::new();
    for (key, value) in &members {
        if key != RULES_KEY {
            push_member(&mut global, key, value);
            continue;
        }
        let Value::Array(items) = value else {
            return Err(ConfigError::new(RULES_KEY, "must be a list of rules"));
        };
        for (i, item) in items.iter().enumerate() {
            let at = index_path(RULES_KEY, "", i);
            rules.push(rule(item, &at)?);
        }
    }
    let global = (!global.is_empty()).then(|| object(global));
    Ok(Some(Split { global, rules }))
}

/// Appends `"key":value` to the members written so far (`{` before the first).
fn push_member(out: &mut String, key: &str, value: &Value) {
    out.push(if out.is_empty() { '{' } else { ',' });
    json::write_string(out, key);
    out.push(':');
    value.write_json(out);
}

/// The object of the members [`push_member`] wrote (`{}` for none).
fn object(mut members: String) -> Vec<u8> {
    if members.is_empty() {
        members.push('{');
    }
    members.push('}');
    members.into_bytes()
}

fn rule(item: &Value, at: &str) -> Result<(RuleMatch, Vec<u8>), ConfigError> {
    let Value::Object(members) = item else {
        return Err(ConfigError::new(at, "a rule must be an object"));
    };
    let mut matcher = None;
    let mut rest = String::new();
    for (key, value) in members {
        if !MATCH_KEYS.contains(&key.as_str()) {
            push_member(&mut rest, key, value);
            continue;
        }
        let field = join_path(at, key);
        if matcher.is_some() {
            return Err(ConfigError::new(
                field,
                "only one of _match_route_, _match_route_prefix_, _match_domain_, _match_service_ may be set",
            ));
        }
        let names = strings(value, &field)?;
        matcher = Some(match key.as_str() {
            "_match_route_" => RuleMatch::Routes(names),
            "_match_route_prefix_" => RuleMatch::RoutePrefixes(names),
            // Loops, not `map(..).collect()` (an adapter stack each in the module).
            "_match_domain_" => {
                let mut domains = Vec::with_capacity(names.len());
                for n in names {
                    domains.push(domain(n));
                }
                RuleMatch::Domains(domains)
            }
            _ => {
                let mut services = Vec::with_capacity(names.len());
                for n in names {
                    services.push(service(n));
                }
                RuleMatch::Services(services)
            }
        });
    }
    let matcher = matcher.ok_or_else(|| {
        ConfigError::new(
            at,
            "needs one of _match_route_, _match_route_prefix_, _match_domain_, _match_service_",
        )
    })?;
    Ok((matcher, object(rest)))
}

fn strings(value: &Value, field: &str) -> Result<Vec<String>, ConfigError> {
    let Value::Array(items) = value else {
        return Err(ConfigError::new(field, "must be a list of names"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if !s.is_empty() => out.push(s.clone()),
            _ => {
                return Err(ConfigError::new(
                    index_path(field, "", i),
                    "must be a non-empty string",
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(ConfigError::new(field, "must name at least one"));
    }
    Ok(out)
}

fn domain(pattern: String) -> Domain {
    if let Some(suffix) = pattern.strip_prefix('*') {
        Domain::Suffix(suffix.to_string())
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        Domain::Prefix(prefix.to_string())
    } else {
        Domain::Exact(pattern)
    }
}

fn service(name: String) -> (String, Option<String>) {
    match name.bytes().rposition(|b| b == b':') {
        Some(i) => (
            name.get(..i).unwrap_or_default().to_string(),
            Some(name.get(i + 1..).unwrap_or_default().to_string()),
        ),
        None => (name, None),
    }
}

impl RuleMatch {
    /// Whether the request (or connection) is covered.
    pub fn matches(&self, req: &mut impl Request) -> bool {
        match self {
            RuleMatch::Routes(names) => req
                .route_name()
                .is_some_and(|r| names.iter().any(|n| n.as_bytes() == r)),
            RuleMatch::RoutePrefixes(prefixes) => req
                .route_name()
                .is_some_and(|r| prefixes.iter().any(|p| r.starts_with(p.as_bytes()))),
            RuleMatch::Domains(domains) => {
                let Some(authority) = req.header(":authority") else {
                    return false;
                };
                let host = without_port(authority);
                domains.iter().any(|d| match d {
                    Domain::Exact(h) => host == h.as_bytes(),
                    Domain::Suffix(s) => host.ends_with(s.as_bytes()),
                    Domain::Prefix(p) => host.starts_with(p.as_bytes()),
                })
            }
            RuleMatch::Services(services) => {
                let Some(cluster) = req.cluster_name() else {
                    return false;
                };
                // Higress/Istio cluster names: `outbound|<port>|<subset>|<fqdn>`.
                let mut parts = cluster.split(|&b| b == b'|');
                let (Some(_), Some(port), Some(_), Some(fqdn), None) = (
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                ) else {
                    return false;
                };
                services.iter().any(|(name, want_port)| {
                    name.as_bytes() == fqdn
                        && want_port.as_ref().is_none_or(|p| p.as_bytes() == port)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::request::RequestData;

    #[test]
    fn configs_without_rules_are_left_alone() {
        assert!(split(br#"{"deny": {"prefix": "/a"}}"#).unwrap().is_none());
        assert!(split(b"").unwrap().is_none());
        assert!(split(b"{not json").unwrap().is_none());
    }

    #[test]
    fn splits_global_and_rules() {
        let s = split(
            br#"{"status": 403, "_rules_": [
                {"_match_route_": ["a", "b"], "status": 401},
                {"_match_domain_": ["*.example.com", "api.*", "x.org"], "message": "m"},
                {"_match_service_": ["svc.ns.svc.cluster.local:8080"]},
                {"_match_route_prefix_": ["v1-"]}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.global.as_deref(), Some(&br#"{"status":403}"#[..]));
        assert_eq!(s.rules.len(), 4);
        assert_eq!(
            s.rules[0].0,
            RuleMatch::Routes(vec!["a".into(), "b".into()])
        );
        assert_eq!(s.rules[0].1, br#"{"status":401}"#);
        assert_eq!(s.rules[2].1, b"{}");
        let mut req = RequestData::new("GET", "/", "www.example.com:8443");
        assert!(s.rules[1].0.matches(&mut req));
        req.route_name = Some(b"b".to_vec());
        assert!(s.rules[0].0.matches(&mut req));
        req.route_name = Some(b"v1-users".to_vec());
        assert!(s.rules[3].0.matches(&mut req));
        assert!(!s.rules[0].0.matches(&mut req));
        let mut req = RequestData::new("GET", "/", "api.internal");
        assert!(s.rules[1].0.matches(&mut req));
        req.cluster_name = Some(b"outbound|8080||svc.ns.svc.cluster.local".to_vec());
        assert!(s.rules[2].0.matches(&mut req));
        req.cluster_name = Some(b"outbound|9090||svc.ns.svc.cluster.local".to_vec());
        assert!(!s.rules[2].0.matches(&mut req));
        // Only rules, no global fields: no global configuration.
        let s = split(br#"{"_rules_": [{"_match_route_": ["a"]}]}"#)
            .unwrap()
            .unwrap();
        assert!(s.global.is_none());
    }

    #[test]
    fn bad_rules_name_the_field() {
        for (bad, field) in [
            (r#"{"_rules_": {}}"#, "_rules_"),
            (r#"{"_rules_": [1]}"#, "_rules_[0]"),
            (r#"{"_rules_": [{"status": 1}]}"#, "_rules_[0]"),
            (
                r#"{"_rules_": [{"_match_route_": ["a"], "_match_domain_": ["b"]}]}"#,
                "_rules_[0]._match_domain_",
            ),
            (
                r#"{"_rules_": [{"_match_route_": []}]}"#,
                "_rules_[0]._match_route_",
            ),
            (
                r#"{"_rules_": [{"_match_route_": [""]}]}"#,
                "_rules_[0]._match_route_[0]",
            ),
            (
                r#"{"_rules_": [{"_match_route_": "a"}]}"#,
                "_rules_[0]._match_route_",
            ),
        ] {
            assert_eq!(split(bad.as_bytes()).unwrap_err().field, field, "{bad}");
        }
    }
}

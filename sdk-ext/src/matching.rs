//! Request matching rules, usable by any filter for per-route behaviour.
//!
//! The JSON shape follows Envoy's `RouteMatch` and `HeaderMatcher` so operators' knowledge
//! carries over, plus two conveniences Envoy expresses elsewhere (`hosts`, `methods`):
//!
//! ```json
//! { "prefix": "/api/",                      // or "path": "/exact", or "safe_regex": {"regex": "^/v[0-9]+/"}
//!   "case_sensitive": true,
//!   "hosts": ["api.example.com", "*.example.org"],
//!   "methods": ["GET", "HEAD"],
//!   "headers": [ {"name": "x-debug", "present_match": true},
//!                {"name": "x-env", "string_match": {"exact": "prod"}, "invert_match": true} ] }
//! ```
//! All listed conditions must hold; an empty match matches every request. Regexes compile
//! at config time (regex-lite: linear-time matching, no catastrophic backtracking). Header
//! values that are not UTF-8 never match a regex, and match byte-wise otherwise.

use crate::config::{join_path, ConfigError};
use crate::request::{without_port, Request};
use serde::Deserialize;

#[cfg(feature = "regex")]
use regex_lite::Regex;

/// Without the `regex` feature no pattern can be compiled, so no matcher holds one.
#[cfg(not(feature = "regex"))]
#[derive(Debug, Clone)]
enum Regex {}

#[cfg(not(feature = "regex"))]
impl Regex {
    fn is_match(&self, _: &str) -> bool {
        match *self {}
    }
}

/// `{"regex": "..."}`, as Envoy's `RegexMatcher`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RegexSpec {
    /// The pattern (RE2-like syntax).
    pub regex: String,
}

/// Envoy's `StringMatcher`: exactly one of the kinds, optionally ignoring ASCII case.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StringMatchSpec {
    /// Equal to.
    pub exact: Option<String>,
    /// Starts with.
    pub prefix: Option<String>,
    /// Ends with.
    pub suffix: Option<String>,
    /// Contains.
    pub contains: Option<String>,
    /// Matches the whole value.
    pub safe_regex: Option<RegexSpec>,
    /// Compare ignoring ASCII case (not for `safe_regex`; use `(?i)` there).
    #[serde(default)]
    pub ignore_case: bool,
}

/// Envoy's `HeaderMatcher`: `present_match` or `string_match`, optionally inverted.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchSpec {
    /// Header name (case-insensitive; pseudo-headers like `:method` allowed).
    pub name: String,
    /// Match on the value.
    pub string_match: Option<StringMatchSpec>,
    /// `true`: the header is present; `false`: it is absent.
    pub present_match: Option<bool>,
    /// Invert the result.
    #[serde(default)]
    pub invert_match: bool,
}

/// The JSON form of a request match (see the module docs).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestMatchSpec {
    /// Path starts with (query included, as Envoy).
    pub prefix: Option<String>,
    /// Path (query excluded) equals.
    pub path: Option<String>,
    /// Path (query excluded) fully matches.
    pub safe_regex: Option<RegexSpec>,
    /// Path comparisons are case-sensitive (default true, as Envoy).
    pub case_sensitive: Option<bool>,
    /// Host (`:authority` without port) equals one of these, ASCII case-insensitive;
    /// `*.example.com` and `example.*` wildcards as Envoy's virtual host domains.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Method is one of these (exact, upper case as sent).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Every header matcher must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatchSpec>,
}

#[derive(Debug, Clone)]
enum Text {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Contains(Vec<u8>),
    Regex(Regex),
}

/// A compiled string matcher.
#[derive(Debug, Clone)]
pub struct StringMatcher {
    kind: Text,
    ignore_case: bool,
}

#[cfg(feature = "regex")]
fn compile_regex(spec: &RegexSpec, field: &str) -> Result<Regex, ConfigError> {
    // Anchor: Envoy's safe_regex must match the whole value.
    Regex::new(&format!("^(?:{})$", spec.regex))
        .map_err(|e| ConfigError::new(join_path(field, "regex"), format!("invalid regex: {e}")))
}

/// A filter built without the `regex` feature refuses `safe_regex` by name, at config time.
#[cfg(not(feature = "regex"))]
fn compile_regex(_: &RegexSpec, field: &str) -> Result<Regex, ConfigError> {
    Err(ConfigError::new(
        field,
        "regular expressions are not built into this filter (sdk-ext feature `regex`)",
    ))
}

impl StringMatcher {
    /// Compiles a spec; `field` is its path for error messages.
    pub fn compile(spec: &StringMatchSpec, field: &str) -> Result<Self, ConfigError> {
        let lower = |s: &str| {
            if spec.ignore_case {
                s.to_ascii_lowercase().into_bytes()
            } else {
                s.as_bytes().to_vec()
            }
        };
        let mut kinds = Vec::new();
        if let Some(s) = &spec.exact {
            kinds.push(Text::Exact(lower(s)));
        }
        if let Some(s) = &spec.prefix {
            kinds.push(Text::Prefix(lower(s)));
        }
        if let Some(s) = &spec.suffix {
            kinds.push(Text::Suffix(lower(s)));
        }
        if let Some(s) = &spec.contains {
            kinds.push(Text::Contains(lower(s)));
        }
        if let Some(r) = &spec.safe_regex {
            if spec.ignore_case {
                return Err(ConfigError::new(
                    join_path(field, "ignore_case"),
                    "not supported with safe_regex; use (?i) in the pattern",
                ));
            }
            kinds.push(Text::Regex(compile_regex(
                r,
                &join_path(field, "safe_regex"),
            )?));
        }
        let mut kinds = kinds.into_iter();
        match (kinds.next(), kinds.next()) {
            (Some(kind), None) => Ok(Self {
                kind,
                ignore_case: spec.ignore_case,
            }),
            (None, _) => Err(ConfigError::new(
                field,
                "needs exactly one of exact, prefix, suffix, contains, safe_regex",
            )),
            (Some(_), Some(_)) => Err(ConfigError::new(
                field,
                "only one of exact, prefix, suffix, contains, safe_regex may be set",
            )),
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &[u8]) -> bool {
        let folded;
        let v = if self.ignore_case {
            folded = value.to_ascii_lowercase();
            folded.as_slice()
        } else {
            value
        };
        match &self.kind {
            Text::Exact(s) => v == s.as_slice(),
            Text::Prefix(s) => v.starts_with(s),
            Text::Suffix(s) => v.ends_with(s),
            Text::Contains(s) => s.is_empty() || v.windows(s.len()).any(|w| w == s.as_slice()),
            Text::Regex(r) => std::str::from_utf8(v)
                .map(|s| r.is_match(s))
                .unwrap_or(false),
        }
    }
}

#[derive(Debug, Clone)]
enum PathMatch {
    Any,
    Prefix(Vec<u8>),
    Exact(Vec<u8>),
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum HostPattern {
    Exact(Vec<u8>),
    Suffix(Vec<u8>), // "*.example.com" → ".example.com"
    Prefix(Vec<u8>), // "example.*" → "example."
}

#[derive(Debug, Clone)]
struct HeaderMatcher {
    name: String,
    value: Option<StringMatcher>,
    present: bool,
    invert: bool,
}

/// A compiled request match.
#[derive(Debug, Clone)]
pub struct RequestMatcher {
    path: PathMatch,
    case_sensitive: bool,
    hosts: Vec<HostPattern>,
    methods: Vec<Vec<u8>>,
    headers: Vec<HeaderMatcher>,
}

impl Default for RequestMatcher {
    fn default() -> Self {
        Self {
            path: PathMatch::Any,
            case_sensitive: true,
            hosts: Vec::new(),
            methods: Vec::new(),
            headers: Vec::new(),
        }
    }
}

fn valid_header_name(name: &str) -> bool {
    crate::headers::is_token(name.strip_prefix(':').unwrap_or(name))
}

impl RequestMatcher {
    /// Compiles a spec; `field` is its path for error messages (e.g. `rules[0].match`).
    pub fn compile(spec: &RequestMatchSpec, field: &str) -> Result<Self, ConfigError> {
        let case_sensitive = spec.case_sensitive.unwrap_or(true);
        let fold = |s: &str| {
            if case_sensitive {
                s.as_bytes().to_vec()
            } else {
                s.to_ascii_lowercase().into_bytes()
            }
        };
        let set = [
            spec.prefix.is_some(),
            spec.path.is_some(),
            spec.safe_regex.is_some(),
        ];
        if set.iter().filter(|b| **b).count() > 1 {
            return Err(ConfigError::new(
                field,
                "only one of prefix, path, safe_regex may be set",
            ));
        }
        let path = if let Some(p) = &spec.prefix {
            PathMatch::Prefix(fold(p))
        } else if let Some(p) = &spec.path {
            if !p.starts_with('/') {
                return Err(ConfigError::new(
                    join_path(field, "path"),
                    "must start with '/'",
                ));
            }
            PathMatch::Exact(fold(p))
        } else if let Some(r) = &spec.safe_regex {
            let mut r = r.clone();
            if !case_sensitive {
                r.regex = format!("(?i){}", r.regex);
            }
            PathMatch::Regex(compile_regex(&r, &join_path(field, "safe_regex"))?)
        } else {
            PathMatch::Any
        };
        let mut hosts = Vec::with_capacity(spec.hosts.len());
        for (i, h) in spec.hosts.iter().enumerate() {
            let h = h.to_ascii_lowercase();
            let at = join_path(field, &format!("hosts[{i}]"));
            let pattern = if let Some(rest) = h.strip_prefix('*') {
                HostPattern::Suffix(rest.as_bytes().to_vec())
            } else if let Some(rest) = h.strip_suffix('*') {
                HostPattern::Prefix(rest.as_bytes().to_vec())
            } else {
                HostPattern::Exact(h.as_bytes().to_vec())
            };
            if h.is_empty() || h.matches('*').count() > 1 {
                return Err(ConfigError::new(
                    at,
                    "must be a host name with at most one leading or trailing '*'",
                ));
            }
            hosts.push(pattern);
        }
        let mut methods = Vec::with_capacity(spec.methods.len());
        for (i, m) in spec.methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(ConfigError::new(
                    join_path(field, &format!("methods[{i}]")),
                    format!("{m:?} is not an HTTP method"),
                ));
            }
            methods.push(m.as_bytes().to_vec());
        }
        let mut headers = Vec::with_capacity(spec.headers.len());
        for (i, h) in spec.headers.iter().enumerate() {
            let at = join_path(field, &format!("headers[{i}]"));
            if !valid_header_name(&h.name) {
                return Err(ConfigError::new(
                    join_path(&at, "name"),
                    format!("{:?} is not a valid header name", h.name),
                ));
            }
            let (value, present) = match (&h.string_match, h.present_match) {
                (Some(s), None) => (
                    Some(StringMatcher::compile(s, &join_path(&at, "string_match"))?),
                    true,
                ),
                (None, Some(p)) => (None, p),
                (None, None) => (None, true),
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        at,
                        "only one of string_match, present_match may be set",
                    ))
                }
            };
            headers.push(HeaderMatcher {
                name: h.name.to_ascii_lowercase(),
                value,
                present,
                invert: h.invert_match,
            });
        }
        Ok(Self {
            path,
            case_sensitive,
            hosts,
            methods,
            headers,
        })
    }

    /// Whether the request matches every condition. Reads only what the conditions need.
    pub fn matches(&self, req: &mut impl Request) -> bool {
        if !self.methods.is_empty() {
            match req.header(":method") {
                Some(m) if self.methods.iter().any(|x| x.as_slice() == m) => {}
                _ => return false,
            }
        }
        if !self.hosts.is_empty() {
            let Some(authority) = req.header(":authority") else {
                return false;
            };
            let host = without_port(authority).to_ascii_lowercase();
            let ok = self.hosts.iter().any(|p| match p {
                HostPattern::Exact(h) => host == *h,
                HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s),
                HostPattern::Prefix(s) => host.len() > s.len() && host.starts_with(s),
            });
            if !ok {
                return false;
            }
        }
        if !matches!(self.path, PathMatch::Any) {
            let Some(path) = req.header(":path") else {
                return false;
            };
            if !self.path_matches(path) {
                return false;
            }
        }
        self.headers.iter().all(|h| {
            let found = match (req.header(&h.name), &h.value) {
                (Some(v), Some(m)) => m.matches(v),
                (Some(_), None) => h.present,
                (None, Some(_)) => false,
                (None, None) => !h.present,
            };
            found != h.invert
        })
    }

    fn path_matches(&self, path: &[u8]) -> bool {
        let folded;
        let path = if self.case_sensitive {
            path
        } else {
            folded = path.to_ascii_lowercase();
            folded.as_slice()
        };
        let without_query = || {
            let end = path
                .iter()
                .position(|&b| b == b'?' || b == b'#')
                .unwrap_or(path.len());
            path.get(..end).unwrap_or(path)
        };
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(p) => path.starts_with(p),
            PathMatch::Exact(p) => without_query() == p.as_slice(),
            PathMatch::Regex(r) => std::str::from_utf8(without_query())
                .map(|s| r.is_match(s))
                .unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestData;

    fn m(json: &str) -> RequestMatcher {
        let spec: RequestMatchSpec = serde_json::from_str(json).unwrap();
        RequestMatcher::compile(&spec, "match").unwrap()
    }
    fn err(json: &str) -> ConfigError {
        let spec: RequestMatchSpec = serde_json::from_str(json).unwrap();
        RequestMatcher::compile(&spec, "rules[0].match").unwrap_err()
    }

    #[test]
    fn empty_match_matches_everything() {
        assert!(m("{}").matches(&mut RequestData::default()));
    }

    #[test]
    fn path_kinds() {
        let mut r = RequestData::new("GET", "/api/v1/users?x=1", "a");
        assert!(m(r#"{"prefix":"/api/"}"#).matches(&mut r));
        assert!(!m(r#"{"prefix":"/API/"}"#).matches(&mut r));
        assert!(m(r#"{"prefix":"/API/","case_sensitive":false}"#).matches(&mut r));
        assert!(m(r#"{"path":"/api/v1/users"}"#).matches(&mut r));
        assert!(!m(r#"{"path":"/api/v1"}"#).matches(&mut r));
        assert!(!m(r#"{"prefix":"/"}"#).matches(&mut RequestData::default()));
    }

    #[cfg(feature = "regex")]
    #[test]
    fn regexes_match_whole_utf8_values() {
        let mut r = RequestData::new("GET", "/api/v1/users?x=1", "a").with("x-bin", [0xff, 0x41]);
        assert!(m(r#"{"safe_regex":{"regex":"/api/v[0-9]+/.*"}}"#).matches(&mut r));
        // Anchored: a partial match is not a match.
        assert!(!m(r#"{"safe_regex":{"regex":"v[0-9]+"}}"#).matches(&mut r));
        // A non-UTF-8 value never matches a regex.
        assert!(!m(
            r#"{"headers":[{"name":"x-bin","string_match":{"safe_regex":{"regex":".*"}}}]}"#
        )
        .matches(&mut r));
        let e = err(r#"{"safe_regex":{"regex":"("}}"#);
        assert_eq!(e.field, "rules[0].match.safe_regex.regex");
        assert!(e.reason.starts_with("invalid regex"), "{}", e.reason);
    }

    #[cfg(not(feature = "regex"))]
    #[test]
    fn without_the_regex_feature_patterns_are_refused_by_field() {
        let e = err(r#"{"safe_regex":{"regex":".*"}}"#);
        assert_eq!(e.field, "rules[0].match.safe_regex");
        assert!(e.reason.contains("sdk-ext feature `regex`"), "{}", e.reason);
        let e = err(r#"{"headers":[{"name":"x","string_match":{"safe_regex":{"regex":"a"}}}]}"#);
        assert_eq!(e.field, "rules[0].match.headers[0].string_match.safe_regex");
    }

    #[test]
    fn host_and_method() {
        let mut r = RequestData::new("POST", "/", "API.example.com:8443");
        assert!(m(r#"{"hosts":["api.example.com"]}"#).matches(&mut r));
        assert!(m(r#"{"hosts":["*.example.com"]}"#).matches(&mut r));
        assert!(m(r#"{"hosts":["api.*"]}"#).matches(&mut r));
        assert!(!m(r#"{"hosts":["example.com"]}"#).matches(&mut r));
        assert!(m(r#"{"methods":["GET","POST"]}"#).matches(&mut r));
        assert!(!m(r#"{"methods":["GET"]}"#).matches(&mut r));
    }

    #[test]
    fn headers_present_value_invert_and_non_utf8() {
        let mut r = RequestData::new("GET", "/", "a")
            .with("x-env", "prod")
            .with("x-bin", [0xff, 0x41]);
        assert!(m(r#"{"headers":[{"name":"X-Env"}]}"#).matches(&mut r));
        assert!(m(r#"{"headers":[{"name":"x-none","present_match":false}]}"#).matches(&mut r));
        assert!(!m(r#"{"headers":[{"name":"x-none","present_match":true}]}"#).matches(&mut r));
        assert!(m(
            r#"{"headers":[{"name":"x-env","string_match":{"exact":"PROD","ignore_case":true}}]}"#
        )
        .matches(&mut r));
        assert!(!m(
            r#"{"headers":[{"name":"x-env","string_match":{"exact":"prod"},"invert_match":true}]}"#
        )
        .matches(&mut r));
        assert!(
            m(r#"{"headers":[{"name":"x-env","string_match":{"contains":"ro"}}]}"#).matches(&mut r)
        );
        assert!(
            m(r#"{"headers":[{"name":"x-bin","string_match":{"suffix":"A"}}]}"#).matches(&mut r)
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        assert_eq!(
            err(r#"{"prefix":"/a","path":"/b"}"#).field,
            "rules[0].match"
        );
        assert_eq!(err(r#"{"path":"nope"}"#).field, "rules[0].match.path");
        assert_eq!(
            err(r#"{"methods":["G T"]}"#).field,
            "rules[0].match.methods[0]"
        );
        assert_eq!(
            err(r#"{"headers":[{"name":"bad name"}]}"#).field,
            "rules[0].match.headers[0].name"
        );
        assert_eq!(
            err(r#"{"headers":[{"name":"x","string_match":{}}]}"#).field,
            "rules[0].match.headers[0].string_match"
        );
        assert_eq!(err(r#"{"hosts":["*a*"]}"#).field, "rules[0].match.hosts[0]");
    }
}

//! Request matching with Envoy's semantics: `RouteMatch`, `HeaderMatcher`,
//! `QueryParameterMatcher` and `StringMatcher` decide here exactly as Envoy 1.40's router
//! decides, checked differentially against a real Envoy on generated cases
//! (`integration/tests/matching.rs`).
//!
//! ```json
//! { "prefix": "/api/",
//!   "case_sensitive": true,
//!   "headers": [ {"name": "x-debug", "present_match": true},
//!                {"name": "x-env", "string_match": {"exact": "prod"}, "invert_match": true} ],
//!   "query_parameters": [ {"name": "debug", "present_match": false} ],
//!   "hosts": ["api.example.com", "*.example.org"],
//!   "methods": ["GET", "HEAD"] }
//! ```
//!
//! All listed conditions must hold; an empty match matches every request.
//!
//! # Path (`prefix`, `path`, `safe_regex`, `path_separated_prefix`: at most one)
//!
//! Every path specifier compares the `:path` **without its query and fragment** (everything
//! from the first `?` or `#` is cut off). So a `prefix` containing `?` never matches; use
//! `query_parameters` or a `headers` matcher on `:path` (which sees the whole `:path`).
//! Nothing is decoded or normalised: `%2F` is three characters, `/a/` is not `/a`.
//!
//! - `prefix`: the path starts with it (`""` matches every path).
//! - `path`: the path equals it.
//! - `safe_regex`: the pattern matches the whole path (see *Regular expressions*).
//! - `path_separated_prefix`: the path equals it or continues with `/` after it (`/api`
//!   matches `/api`, `/api/x`, `/api?q`, not `/apix`). It must be at least two characters,
//!   contain no `?` or `#`, and not end with `/` (Envoy's rule).
//! - `case_sensitive` (default `true`): `false` compares `prefix`, `path` and
//!   `path_separated_prefix` ignoring ASCII case. It has **no effect on `safe_regex`**
//!   (as in Envoy; write `(?i)` in the pattern).
//! - None of the four: every path matches (an extension: Envoy requires one).
//!
//! # Headers (`headers`: every matcher must hold)
//!
//! A `HeaderMatcher` has a `name` (any case; pseudo-headers like `:method` and `:path`
//! work), at most one of the match kinds below, and two modifiers:
//!
//! - `string_match`: a `StringMatcher` on the value; `present_match`: `true` the header is
//!   present, `false` it is absent; `range_match` `{"start": s, "end": e}`: the value is a
//!   decimal int64 (surrounding whitespace and a `+`/`-` sign allowed, as absl's
//!   `SimpleAtoi`) with `s <= v < e`; no kind at all: the header is present.
//! - Envoy's older direct fields are accepted with their old meaning: `exact_match`,
//!   `prefix_match`, `suffix_match`, `contains_match`, `safe_regex_match` (case-sensitive;
//!   an empty `exact_match` matches **any** value).
//! - **Several values** (a header sent more than once): the matcher holds if **any one
//!   value** matches (measured in Envoy 1.40; values are not joined). Headers Envoy's codec
//!   merges itself (such as `user-agent`) arrive as one `a,b` value.
//! - **Missing header**: no matcher holds, except `present_match: false`; `invert_match`
//!   turns that around only for `present_match` (`{"present_match": true, "invert_match":
//!   true}` holds, an inverted `string_match` or `range_match` does **not**).
//! - `treat_missing_header_as_empty: true`: a missing header is matched as one empty value
//!   (so `{"exact": ""}` and `present_match: true` hold, `present_match: false` does not),
//!   then `invert_match` applies as usual.
//! - `invert_match: true` negates the result for a header that is present.
//!
//! # Query parameters (`query_parameters`: every matcher must hold)
//!
//! The query is the part of `:path` after the first `?` (up to a `#`), split at `&`; each
//! piece is `name=value` split at its first `=` (no `=`: the value is empty; empty pieces are
//! skipped). Names and values are compared **as sent, not percent-decoded** (`a%20b` is not
//! `a b`; `+` is not a space). Only the **first** occurrence of a name counts.
//! `{"name": n, "string_match": {...}}` needs the parameter present and its value to match;
//! `"present_match": true`/`false` needs it present/absent; a name alone needs it present.
//!
//! # `StringMatcher`
//!
//! Exactly one of `exact`, `prefix`, `suffix`, `contains` (the last three non-empty),
//! `safe_regex`; `ignore_case: true` compares ASCII letters without case (not other
//! letters: `é` is not `É`) and is refused with `safe_regex`, as Envoy refuses it.
//!
//! # Regular expressions (`safe_regex`, `{"regex": "..."}`)
//!
//! RE2 syntax, matched against the **whole** value (RE2 `FullMatch`), with Envoy's byte
//! semantics: every byte of the value is one character (so `.` matches a single `\xff`
//! byte and does not match the two bytes of `é`; `\w`, `\d`, `\s`, `\b` are ASCII; `(?i)`
//! folds ASCII and Latin-1 letters). Patterns are parsed by RE2's rules at config time and
//! refused where Envoy refuses them (unbalanced parentheses such as `a)|(b`, `a**`,
//! `x{1001}`, `\Z`, `(?x)`, lookaround, backreferences), naming the field
//! (`...safe_regex.regex`); matching is linear-time (sdk-ext's own lazily built DFA, no
//! backtracking, bounded memory; patterns whose program passes ~87 000 instructions, RE2's
//! default limit, are refused).
//! Known differences, both refusals on our side or acceptances Envoy refuses:
//! `\p{..}` Unicode classes are refused here (Envoy accepts them); Envoy also refuses a
//! pattern whose compiled RE2 program exceeds 100 instructions
//! (`re2.max_program_size.error_level`, e.g. `a{100}`), which is not counted here.
//! Without the `regex` feature every `safe_regex` is refused at config time.
//!
//! # Extensions (not in Envoy's `RouteMatch`)
//!
//! - `hosts`: `:authority` without its port equals one of these, ASCII case-insensitive;
//!   `*.example.com` (any non-empty label prefix) and `example.*` wildcards as in Envoy's
//!   virtual host `domains`.
//! - `methods`: `:method` is one of these (exact, as sent).
//! - `route_names`, `virtual_hosts`, `clusters`: the name of the route Envoy's router
//!   matched (`xds.route_name`), of its virtual host (`xds.virtual_host_name`), of the
//!   cluster the route selected (`xds.cluster_name`) is one of these (exact, case-sensitive;
//!   a request whose host does not provide the property does not match). Istio names its
//!   routes, so a rule can pick an Istio route by name.
//!
//! Compile once, match per request:
//!
//! ```
//! use sdk_ext::matching::{RequestMatchSpec, RequestMatcher};
//! use sdk_ext::request::RequestData;
//!
//! let spec: RequestMatchSpec = sdk_ext::config::parse(
//!     br#"{"path_separated_prefix": "/api", "headers": [{"name": "x-env", "string_match": {"exact": "prod"}}]}"#,
//! )
//! .unwrap();
//! let m = RequestMatcher::compile(&spec, "match").unwrap();
//! let mut req = RequestData::new("GET", "/api/users?page=2", "example.com").with("x-env", "prod");
//! assert!(m.matches(&mut req));
//! assert!(!m.matches(&mut RequestData::new("GET", "/apix", "example.com").with("x-env", "prod")));
//! ```

use crate::config::{index_path, join_path, ConfigError};
use crate::request::{without_port, Request};
use serde::Deserialize;

#[cfg(feature = "regex")]
mod re2;

#[cfg(feature = "regex")]
use re2::Re2 as Regex;

/// Without the `regex` feature no pattern can be compiled, so no matcher holds one.
#[cfg(not(feature = "regex"))]
#[derive(Debug, Clone)]
enum Regex {}

#[cfg(not(feature = "regex"))]
impl Regex {
    fn full_match(&self, _: &[u8]) -> bool {
        match *self {}
    }
    fn is_match(&self, _: &[u8]) -> bool {
        match *self {}
    }
}

/// `{"regex": "..."}`, as Envoy's `RegexMatcher`.
#[derive(Debug, Clone, Deserialize, crate::FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RegexSpec {
    /// The pattern (RE2 syntax), matched against the whole value.
    pub regex: String,
}

/// Envoy's `StringMatcher`: exactly one of the kinds, optionally ignoring ASCII case.
#[derive(Debug, Clone, Default, Deserialize, crate::FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StringMatchSpec {
    /// Equal to.
    pub exact: Option<String>,
    /// Starts with (non-empty).
    pub prefix: Option<String>,
    /// Ends with (non-empty).
    pub suffix: Option<String>,
    /// Contains (non-empty).
    pub contains: Option<String>,
    /// Matches the whole value.
    pub safe_regex: Option<RegexSpec>,
    /// Compare ignoring ASCII case (refused with `safe_regex`; use `(?i)` there).
    #[serde(default)]
    pub ignore_case: bool,
}

/// An int64 as proto-JSON writes it: a number or a decimal string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Int64(pub i64);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Int64;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an int64 (a number or a decimal string)")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Int64, E> {
                Ok(Int64(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Int64, E> {
                i64::try_from(v)
                    .map(Int64)
                    .map_err(|_| E::custom(format!("{v} is out of the int64 range")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Int64, E> {
                v.parse()
                    .map(Int64)
                    .map_err(|_| E::custom(crate::json::quoted("", v, " is not an int64")))
            }
        }
        // Not deserialize_any: that would link float parsing into every filter (~17 KB).
        d.deserialize_i64(V)
    }
}

impl crate::json::FromJson for Int64 {
    fn from_json(
        value: &crate::json::Value,
        at: &crate::json::Path<'_>,
    ) -> Result<Self, crate::json::Error> {
        use crate::json::{Error, Value};
        const EXPECTED: &str = "an int64 (a number or a decimal string)";
        match value {
            Value::String(v) => crate::json::parse_decimal(v)
                .and_then(|(neg, n)| crate::json::parse_signed(neg, n))
                .map(Int64)
                .ok_or_else(|| Error::located(at, crate::json::quoted("", v, " is not an int64"))),
            Value::Number(_) => match crate::json::integer(value, at, EXPECTED)? {
                crate::json::Integer::Signed(n) => Ok(Int64(n)),
                crate::json::Integer::Unsigned(n) => i64::try_from(n).map(Int64).map_err(|_| {
                    let mut m = String::new();
                    crate::json::push_decimal(&mut m, n);
                    m.push_str(" is out of the int64 range");
                    Error::located(at, m)
                }),
            },
            _ => Err(crate::json::invalid_type(value, at, EXPECTED)),
        }
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Int64 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Int64".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["integer", "string"],
            "description": "An int64: a number or, as proto-JSON writes it, a decimal string."
        })
    }
}

/// Envoy's `Int64Range`: half-open `[start, end)`.
#[derive(Debug, Clone, Copy, Default, Deserialize, crate::FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    /// Inclusive start (default 0).
    #[serde(default)]
    pub start: Int64,
    /// Exclusive end (default 0).
    #[serde(default)]
    pub end: Int64,
}

/// Envoy's `HeaderMatcher` (see the module docs).
#[derive(Debug, Clone, Default, Deserialize, crate::FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchSpec {
    /// Header name (any case; pseudo-headers like `:method` allowed).
    pub name: String,
    /// Match on the value.
    pub string_match: Option<StringMatchSpec>,
    /// `true`: the header is present; `false`: it is absent.
    pub present_match: Option<bool>,
    /// The value is an integer in `[start, end)`.
    pub range_match: Option<RangeSpec>,
    /// Older form: equal to (an empty string matches any value).
    pub exact_match: Option<String>,
    /// Older form: starts with.
    pub prefix_match: Option<String>,
    /// Older form: ends with.
    pub suffix_match: Option<String>,
    /// Older form: contains.
    pub contains_match: Option<String>,
    /// Older form: the pattern matches the whole value.
    pub safe_regex_match: Option<RegexSpec>,
    /// Invert the result (see the module docs for missing headers).
    #[serde(default)]
    pub invert_match: bool,
    /// Match a missing header as one empty value.
    #[serde(default)]
    pub treat_missing_header_as_empty: bool,
}

/// Envoy's `QueryParameterMatcher`.
#[derive(Debug, Clone, Default, Deserialize, crate::FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryParameterMatchSpec {
    /// Parameter name, compared as sent (case-sensitive, not decoded).
    pub name: String,
    /// The first value of the parameter matches.
    pub string_match: Option<StringMatchSpec>,
    /// `true`: the parameter is present; `false`: it is absent.
    pub present_match: Option<bool>,
}

/// The JSON form of a request match: Envoy's `RouteMatch` plus `hosts` and `methods`
/// (see the module docs).
#[derive(Debug, Clone, Default, Deserialize, crate::FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestMatchSpec {
    /// Path (query excluded) starts with.
    pub prefix: Option<String>,
    /// Path (query excluded) equals.
    pub path: Option<String>,
    /// Path (query excluded) fully matches.
    pub safe_regex: Option<RegexSpec>,
    /// Path (query excluded) equals this or continues with `/` after it.
    pub path_separated_prefix: Option<String>,
    /// `prefix`/`path`/`path_separated_prefix` are case-sensitive (default true, as Envoy;
    /// no effect on `safe_regex`).
    pub case_sensitive: Option<bool>,
    /// Extension: host (`:authority` without port) equals one of these, ASCII
    /// case-insensitive; `*.example.com` and `example.*` wildcards.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Extension: method is one of these (exact, as sent).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Every header matcher must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatchSpec>,
    /// Every query parameter matcher must hold.
    #[serde(default)]
    pub query_parameters: Vec<QueryParameterMatchSpec>,
    /// Extension: the route Envoy matched (`xds.route_name`) is one of these (exact).
    #[serde(default)]
    pub route_names: Vec<String>,
    /// Extension: the virtual host Envoy matched (`xds.virtual_host_name`) is one of these.
    #[serde(default)]
    pub virtual_hosts: Vec<String>,
    /// Extension: the cluster the route selected (`xds.cluster_name`) is one of these.
    #[serde(default)]
    pub clusters: Vec<String>,
}

/// Envoy's name for the same shape.
pub type RouteMatchSpec = RequestMatchSpec;

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
    let at = join_path(field, "regex");
    if spec.regex.is_empty() {
        return Err(ConfigError::new(at, "must not be empty"));
    }
    // Parsed on its own by RE2's rules first; anchored only once it is known to be whole.
    Regex::new(&spec.regex).map_err(|e| ConfigError::new(at, re2::msg("invalid regex: ", &e)))
}

/// A filter built without the `regex` feature refuses `safe_regex` by name, at config time.
#[cfg(not(feature = "regex"))]
fn compile_regex(_: &RegexSpec, field: &str) -> Result<Regex, ConfigError> {
    Err(ConfigError::new(
        field,
        "regular expressions are not built into this filter (sdk-ext feature `regex`)",
    ))
}

/// Whether `a` and `b` are the same bytes: what `a == b` answers, compared 8 bytes at a
/// time. On wasm `a == b` calls `memcmp`, a loop of ~17 operators per byte; a filter that
/// compares a header name per request (10-20 bytes) saves ~200 operators here.
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8; 8]| u64::from_ne_bytes(*c);
    if let (Some(x), Some(y)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        // 8 bytes or more: whole words from the start, then the last 8 (overlapping).
        let (mut p, mut q) = (a, b);
        while let (Some((x, p2)), Some((y, q2))) =
            (p.split_first_chunk::<8>(), q.split_first_chunk::<8>())
        {
            if word(x) != word(y) {
                return false;
            }
            (p, q) = (p2, q2);
        }
        return word(x) == word(y);
    }
    let half = |c: &[u8; 4]| u32::from_ne_bytes(*c);
    if let (Some(x), Some(y), Some(u), Some(v)) = (
        a.first_chunk::<4>(),
        b.first_chunk::<4>(),
        a.last_chunk::<4>(),
        b.last_chunk::<4>(),
    ) {
        // 4 to 7 bytes: the first 4 and the last 4 (overlapping).
        return half(x) == half(y) && half(u) == half(v);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline]
fn eq_ci(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

#[inline]
fn starts_with(v: &[u8], p: &[u8], ignore_case: bool) -> bool {
    v.get(..p.len()).is_some_and(|h| eq_ci(h, p, ignore_case))
}

#[inline]
fn ends_with(v: &[u8], s: &[u8], ignore_case: bool) -> bool {
    v.len() >= s.len()
        && v.get(v.len() - s.len()..)
            .is_some_and(|t| eq_ci(t, s, ignore_case))
}

#[inline]
fn contains(v: &[u8], s: &[u8], ignore_case: bool) -> bool {
    s.is_empty() || v.windows(s.len()).any(|w| eq_ci(w, s, ignore_case))
}

impl StringMatcher {
    /// Compiles a spec; `field` is its path for error messages.
    pub fn compile(spec: &StringMatchSpec, field: &str) -> Result<Self, ConfigError> {
        let non_empty = |s: &String, name: &str| {
            if s.is_empty() {
                Err(ConfigError::new(
                    join_path(field, name),
                    "must not be empty",
                ))
            } else {
                Ok(s.as_bytes().to_vec())
            }
        };
        // Each kind validated in order, the last kept; only the count decides.
        let mut kind = None;
        let mut kinds = 0;
        if let Some(s) = &spec.exact {
            kind = Some(Text::Exact(s.as_bytes().to_vec()));
            kinds += 1;
        }
        if let Some(s) = &spec.prefix {
            kind = Some(Text::Prefix(non_empty(s, "prefix")?));
            kinds += 1;
        }
        if let Some(s) = &spec.suffix {
            kind = Some(Text::Suffix(non_empty(s, "suffix")?));
            kinds += 1;
        }
        if let Some(s) = &spec.contains {
            kind = Some(Text::Contains(non_empty(s, "contains")?));
            kinds += 1;
        }
        if let Some(r) = &spec.safe_regex {
            if spec.ignore_case {
                return Err(ConfigError::new(
                    join_path(field, "ignore_case"),
                    "has no effect with safe_regex (Envoy refuses it); use (?i) in the pattern",
                ));
            }
            kind = Some(Text::Regex(compile_regex(
                r,
                &join_path(field, "safe_regex"),
            )?));
            kinds += 1;
        }
        match kind {
            Some(kind) if kinds == 1 => Ok(Self {
                kind,
                ignore_case: spec.ignore_case,
            }),
            None => Err(ConfigError::new(
                field,
                "needs exactly one of exact, prefix, suffix, contains, safe_regex",
            )),
            Some(_) => Err(ConfigError::new(
                field,
                "only one of exact, prefix, suffix, contains, safe_regex may be set",
            )),
        }
    }

    /// Whether `value` matches.
    #[inline]
    pub fn matches(&self, value: &[u8]) -> bool {
        let ic = self.ignore_case;
        match &self.kind {
            Text::Exact(s) => eq_ci(value, s, ic),
            Text::Prefix(s) => starts_with(value, s, ic),
            Text::Suffix(s) => ends_with(value, s, ic),
            Text::Contains(s) => contains(value, s, ic),
            Text::Regex(r) => r.full_match(value),
        }
    }
}

/// How a [`StringMatcherSet`] runs its `safe_regex` patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegexMode {
    /// The pattern must match the whole value (Envoy's `StringMatcher`).
    FullMatch,
    /// The pattern may match anywhere in the value (RE2 `PartialMatch`): what a filter
    /// looking for known-bad content in a body or query wants.
    Search,
}

/// Many string matchers compiled into one set, for "does any of these match, and which
/// first" over a value. Each kind costs what it must and no more:
///
/// - `exact` matchers: one hash lookup for all of them (two with `ignore_case` ones);
/// - `prefix` / `suffix` / `contains`: byte comparisons, in order, never a regex;
/// - every `safe_regex`: **one** linear-time pass for all of them together (one combined
///   alternation, built at config time); only when it matches are the patterns tried one by
///   one to name the first, so the common no-match case is a single pass.
///
/// [`first_match`](Self::first_match) gives the lowest index that matches (list order).
///
/// ```
/// use sdk_ext::matching::{RegexMode, StringMatchSpec, StringMatcherSet};
/// let specs: Vec<StringMatchSpec> = sdk_ext::config::parse(
///     br#"[{"exact":"/admin"},{"prefix":"/internal/"},{"contains":"..","ignore_case":true}]"#,
/// ).unwrap();
/// let set = StringMatcherSet::compile(&specs, "patterns", RegexMode::FullMatch).unwrap();
/// assert_eq!(set.first_match(b"/admin"), Some(0));
/// assert_eq!(set.first_match(b"/internal/x/.."), Some(1));
/// assert_eq!(set.first_match(b"/a/../b"), Some(2));
/// assert_eq!(set.first_match(b"/public"), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StringMatcherSet {
    exact: std::collections::HashMap<Vec<u8>, usize>,
    exact_ci: std::collections::HashMap<Vec<u8>, usize>,
    scan: Vec<(usize, StringMatcher)>,
    regex: Option<Regex>,
    regexes: Vec<(usize, Regex)>,
    /// Every `prefix` / `suffix` / `contains` matcher and every `safe_regex` as one program:
    /// when it does not match a value (the common case), none of them does, found in one
    /// pass instead of one comparison per matcher and then the regex pass. Built when the
    /// value is scanned whole anyway (a regex, or `contains` matchers), not for a few
    /// `prefix` / `suffix` matchers, which look at the value's ends only.
    prefilter: Option<Regex>,
    len: usize,
}

impl StringMatcherSet {
    /// Compiles `specs` (each a [`StringMatchSpec`]; errors name `field[i]...`).
    pub fn compile(
        specs: &[StringMatchSpec],
        field: &str,
        mode: RegexMode,
    ) -> Result<Self, ConfigError> {
        let mut set = Self {
            len: specs.len(),
            ..Self::default()
        };
        let mut patterns: Vec<(usize, &str)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let at = index_path(field, "", i);
            // Validates the spec (exactly one kind, non-empty, a valid pattern).
            let m = StringMatcher::compile(spec, &at)?;
            match (&m.kind, &spec.safe_regex) {
                (Text::Exact(v), _) if m.ignore_case => {
                    set.exact_ci.entry(v.to_ascii_lowercase()).or_insert(i);
                }
                (Text::Exact(v), _) => {
                    set.exact.entry(v.clone()).or_insert(i);
                }
                (Text::Regex(_), Some(r)) => patterns.push((i, &r.regex)),
                _ => set.scan.push((i, m)),
            }
        }
        if !patterns.is_empty() {
            set.compile_regexes(&patterns, field, mode)?;
        }
        #[cfg(feature = "regex")]
        set.build_prefilter(&patterns, mode);
        Ok(set)
    }

    /// Builds [`prefilter`](Self::prefilter) when it saves work (see there).
    #[cfg(feature = "regex")]
    fn build_prefilter(&mut self, patterns: &[(usize, &str)], mode: RegexMode) {
        use re2::Literal;
        let contains = self
            .scan
            .iter()
            .filter(|(_, m)| matches!(m.kind, Text::Contains(_)))
            .count();
        if self.scan.is_empty() || (patterns.is_empty() && contains < 2) {
            return;
        }
        let literals: Vec<(Literal, &[u8], bool)> = self
            .scan
            .iter()
            .filter_map(|(_, m)| {
                let (kind, bytes) = match &m.kind {
                    Text::Exact(b) => (Literal::Exact, b),
                    Text::Prefix(b) => (Literal::Prefix, b),
                    Text::Suffix(b) => (Literal::Suffix, b),
                    Text::Contains(b) => (Literal::Contains, b),
                    Text::Regex(_) => return None,
                };
                Some((kind, bytes.as_slice(), m.ignore_case))
            })
            .collect();
        if literals.len() != self.scan.len() {
            return;
        }
        let texts: Vec<&str> = patterns.iter().map(|(_, p)| *p).collect();
        self.prefilter = Regex::new_union(&texts, &literals, mode == RegexMode::Search);
    }

    #[cfg(feature = "regex")]
    fn compile_regexes(
        &mut self,
        patterns: &[(usize, &str)],
        field: &str,
        mode: RegexMode,
    ) -> Result<(), ConfigError> {
        let search = mode == RegexMode::Search;
        let at = |i: usize| join_path(&index_path(field, "", i), "safe_regex.regex");
        let texts: Vec<&str> = patterns.iter().map(|(_, p)| *p).collect();
        self.regex = Some(Regex::new_set(&texts, search).map_err(
            |(k, e)| match patterns.get(k) {
                Some((i, _)) => ConfigError::new(at(*i), re2::msg("invalid regex: ", &e)),
                None => ConfigError::new(field, e),
            },
        )?);
        for (i, p) in patterns {
            let one = if search {
                Regex::new_search(p)
            } else {
                Regex::new(p)
            };
            let one = one.map_err(|e| ConfigError::new(at(*i), re2::msg("invalid regex: ", &e)))?;
            self.regexes.push((*i, one));
        }
        Ok(())
    }

    /// Without the `regex` feature `StringMatcher::compile` already refused every pattern.
    #[cfg(not(feature = "regex"))]
    fn compile_regexes(
        &mut self,
        _: &[(usize, &str)],
        field: &str,
        _: RegexMode,
    ) -> Result<(), ConfigError> {
        Err(ConfigError::new(
            field,
            "regular expressions are not built into this filter",
        ))
    }

    /// The lowest index whose matcher matches `value`.
    #[inline]
    pub fn first_match(&self, value: &[u8]) -> Option<usize> {
        // An empty map is not asked: a lookup hashes the value first (SipHash, hundreds of
        // wasm operators), and most sets have no `exact` matcher.
        let mut best = if self.exact.is_empty() {
            None
        } else {
            self.exact.get(value).copied()
        };
        if !self.exact_ci.is_empty() {
            // A value with no capital (a lowercased path, most header values) is looked up
            // as it is: no lowercased copy allocated per lookup.
            let hit = if value.iter().any(u8::is_ascii_uppercase) {
                self.exact_ci.get(&value.to_ascii_lowercase()).copied()
            } else {
                self.exact_ci.get(value).copied()
            };
            if let Some(i) = hit {
                best = Some(best.map_or(i, |b| b.min(i)));
            }
        }
        if self.prefilter.as_ref().is_some_and(|p| !p.is_match(value)) {
            return best;
        }
        let below = |i: usize, best: Option<usize>| best.is_none_or(|b| i < b);
        if let Some((i, _)) = self
            .scan
            .iter()
            .take_while(|(i, _)| below(*i, best))
            .find(|(_, m)| m.matches(value))
        {
            best = Some(*i);
        }
        if self.regex.as_ref().is_some_and(|r| r.is_match(value)) {
            if let Some((i, _)) = self
                .regexes
                .iter()
                .take_while(|(i, _)| below(*i, best))
                .find(|(_, r)| r.is_match(value))
            {
                best = Some(*i);
            }
        }
        best
    }

    /// Whether any matcher matches `value`.
    pub fn is_match(&self, value: &[u8]) -> bool {
        self.first_match(value).is_some()
    }

    /// How many matchers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// absl's `SimpleAtoi` for int64: optional surrounding ASCII whitespace, optional sign,
/// decimal digits, no overflow.
fn simple_atoi(v: &[u8]) -> Option<i64> {
    let t = v.trim_ascii();
    let (neg, digits) = match t {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: i64 = 0;
    for d in digits {
        let d = i64::from(d - b'0');
        n = n.checked_mul(10).and_then(|n| {
            if neg {
                n.checked_sub(d)
            } else {
                n.checked_add(d)
            }
        })?;
    }
    Some(n)
}

#[derive(Debug, Clone)]
enum ValueTest {
    Present(bool),
    String(StringMatcher),
    Range(i64, i64),
    /// The older `exact_match: ""`: any value.
    Any,
}

impl ValueTest {
    fn test(&self, v: &[u8]) -> bool {
        match self {
            ValueTest::Present(p) => *p,
            ValueTest::String(m) => m.matches(v),
            ValueTest::Range(start, end) => simple_atoi(v).is_some_and(|n| *start <= n && n < *end),
            ValueTest::Any => true,
        }
    }
}

#[derive(Debug, Clone)]
struct HeaderMatcher {
    name: String,
    test: ValueTest,
    invert: bool,
    treat_missing_as_empty: bool,
}

impl HeaderMatcher {
    fn compile(h: &HeaderMatchSpec, at: &str) -> Result<Self, ConfigError> {
        // Envoy's rule for the name: non-empty, no NUL, CR or LF.
        if h.name.is_empty() || h.name.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(ConfigError::new(
                join_path(at, "name"),
                crate::json::quoted("", &h.name, " is not a header name"),
            ));
        }
        let non_empty = |s: &String, name: &str| {
            if s.is_empty() {
                Err(ConfigError::new(join_path(at, name), "must not be empty"))
            } else {
                Ok(s.clone())
            }
        };
        let plain = |kind: fn(Vec<u8>) -> Text, s: String| {
            ValueTest::String(StringMatcher {
                kind: kind(s.into_bytes()),
                ignore_case: false,
            })
        };
        // Each kind validated in order (its own error first), the last one kept: only the
        // count decides, so no list of them is built.
        let mut test = ValueTest::Present(true);
        let mut kinds = 0;
        if let Some(s) = &h.string_match {
            test = ValueTest::String(StringMatcher::compile(s, &join_path(at, "string_match"))?);
            kinds += 1;
        }
        if let Some(p) = h.present_match {
            test = ValueTest::Present(p);
            kinds += 1;
        }
        if let Some(r) = h.range_match {
            test = ValueTest::Range(r.start.0, r.end.0);
            kinds += 1;
        }
        if let Some(s) = &h.exact_match {
            test = if s.is_empty() {
                ValueTest::Any
            } else {
                plain(Text::Exact, s.clone())
            };
            kinds += 1;
        }
        if let Some(s) = &h.prefix_match {
            test = plain(Text::Prefix, non_empty(s, "prefix_match")?);
            kinds += 1;
        }
        if let Some(s) = &h.suffix_match {
            test = plain(Text::Suffix, non_empty(s, "suffix_match")?);
            kinds += 1;
        }
        if let Some(s) = &h.contains_match {
            test = plain(Text::Contains, non_empty(s, "contains_match")?);
            kinds += 1;
        }
        if let Some(r) = &h.safe_regex_match {
            let re = compile_regex(r, &join_path(at, "safe_regex_match"))?;
            test = ValueTest::String(StringMatcher {
                kind: Text::Regex(re),
                ignore_case: false,
            });
            kinds += 1;
        }
        if kinds > 1 {
            return Err(ConfigError::new(
                at,
                "only one of string_match, present_match, range_match, exact_match, \
                 prefix_match, suffix_match, contains_match, safe_regex_match may be set",
            ));
        }
        Ok(Self {
            name: h.name.to_ascii_lowercase(),
            test,
            invert: h.invert_match,
            treat_missing_as_empty: h.treat_missing_header_as_empty,
        })
    }

    fn matches(&self, req: &mut impl Request) -> bool {
        let values = req.header_values(&self.name);
        if values.is_empty() {
            if !self.treat_missing_as_empty {
                // Only a presence test can hold for a missing header.
                return matches!(self.test, ValueTest::Present(p) if p == self.invert);
            }
            return self.test.test(b"") != self.invert;
        }
        values.iter().any(|v| self.test.test(v)) != self.invert
    }
}

#[derive(Debug, Clone)]
struct QueryMatcher {
    name: Vec<u8>,
    string: Option<StringMatcher>,
    present: Option<bool>,
}

/// The first value of query parameter `name` in `path` (see the module docs).
fn first_query_value<'a>(path: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let start = path.iter().position(|&b| b == b'?')? + 1;
    let query = path.get(start..)?;
    let query = query
        .iter()
        .position(|&b| b == b'#')
        .and_then(|end| query.get(..end))
        .unwrap_or(query);
    query.split(|&b| b == b'&').find_map(|piece| {
        let (k, v) = match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (piece.get(..eq)?, piece.get(eq + 1..)?),
            None => (piece, &b""[..]),
        };
        (!piece.is_empty() && k == name).then_some(v)
    })
}

impl QueryMatcher {
    fn compile(q: &QueryParameterMatchSpec, at: &str) -> Result<Self, ConfigError> {
        if q.name.is_empty() || q.name.len() > 1024 {
            return Err(ConfigError::new(
                join_path(at, "name"),
                "must be 1 to 1024 bytes",
            ));
        }
        let string = q
            .string_match
            .as_ref()
            .map(|s| StringMatcher::compile(s, &join_path(at, "string_match")))
            .transpose()?;
        if string.is_some() && q.present_match.is_some() {
            return Err(ConfigError::new(
                at,
                "only one of string_match, present_match may be set",
            ));
        }
        Ok(Self {
            name: q.name.as_bytes().to_vec(),
            string,
            present: q.present_match,
        })
    }

    fn matches(&self, path: &[u8]) -> bool {
        match (
            first_query_value(path, &self.name),
            self.present,
            &self.string,
        ) {
            (None, Some(p), _) => !p,
            (None, None, _) => false,
            (Some(_), Some(p), _) => p,
            (Some(v), None, Some(m)) => m.matches(v),
            (Some(_), None, None) => true,
        }
    }
}

#[derive(Debug, Clone)]
enum PathMatch {
    Any,
    Prefix(Vec<u8>),
    Exact(Vec<u8>),
    Regex(Regex),
    Separated(Vec<u8>),
}

#[derive(Debug, Clone)]
enum HostPattern {
    Exact(Vec<u8>),
    Suffix(Vec<u8>), // "*.example.com" → ".example.com"
    Prefix(Vec<u8>), // "example.*" → "example."
}

/// A compiled request match.
#[derive(Debug, Clone)]
pub struct RequestMatcher {
    path: PathMatch,
    case_sensitive: bool,
    hosts: Vec<HostPattern>,
    methods: Vec<Vec<u8>>,
    headers: Vec<HeaderMatcher>,
    query: Vec<QueryMatcher>,
    route_names: Vec<Vec<u8>>,
    virtual_hosts: Vec<Vec<u8>>,
    clusters: Vec<Vec<u8>>,
    /// No condition at all: every request matches (checked first, reading nothing).
    any: bool,
}

/// Whether `value` is one of `names`.
fn one_of(names: &[Vec<u8>], value: Option<&[u8]>) -> bool {
    value.is_some_and(|v| names.iter().any(|n| n.as_slice() == v))
}

fn name_list(list: &[String], field: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, n) in list.iter().enumerate() {
        if n.is_empty() {
            return Err(ConfigError::new(
                index_path(field, "", i),
                "must not be empty",
            ));
        }
        out.push(n.as_bytes().to_vec());
    }
    Ok(out)
}

impl Default for RequestMatcher {
    fn default() -> Self {
        Self {
            path: PathMatch::Any,
            case_sensitive: true,
            hosts: Vec::new(),
            methods: Vec::new(),
            headers: Vec::new(),
            query: Vec::new(),
            route_names: Vec::new(),
            virtual_hosts: Vec::new(),
            clusters: Vec::new(),
            any: true,
        }
    }
}

/// Envoy's rule for `path_separated_prefix`: `^[^?#]+[^?#/]$`.
fn valid_separated_prefix(p: &str) -> bool {
    // Bytes: '?', '#' and '/' are ASCII; a character is a byte that is no UTF-8 continuation.
    p.bytes().filter(|b| b & 0xC0 != 0x80).count() >= 2
        && !p.bytes().any(|b| b == b'?' || b == b'#')
        && !p.ends_with('/')
}

/// The path without query and fragment.
fn path_only(path: &[u8]) -> &[u8] {
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

impl RequestMatcher {
    /// Compiles a spec; `field` is its path for error messages (e.g. `rules[0].match`).
    pub fn compile(spec: &RequestMatchSpec, field: &str) -> Result<Self, ConfigError> {
        let case_sensitive = spec.case_sensitive.unwrap_or(true);
        let set = usize::from(spec.prefix.is_some())
            + usize::from(spec.path.is_some())
            + usize::from(spec.safe_regex.is_some())
            + usize::from(spec.path_separated_prefix.is_some());
        if set > 1 {
            return Err(ConfigError::new(
                field,
                "only one of prefix, path, safe_regex, path_separated_prefix may be set",
            ));
        }
        let path = if let Some(p) = &spec.prefix {
            PathMatch::Prefix(p.as_bytes().to_vec())
        } else if let Some(p) = &spec.path {
            PathMatch::Exact(p.as_bytes().to_vec())
        } else if let Some(r) = &spec.safe_regex {
            PathMatch::Regex(compile_regex(r, &join_path(field, "safe_regex"))?)
        } else if let Some(p) = &spec.path_separated_prefix {
            if !valid_separated_prefix(p) {
                return Err(ConfigError::new(
                    join_path(field, "path_separated_prefix"),
                    "must be at least two characters, without '?' or '#', not ending with '/'",
                ));
            }
            PathMatch::Separated(p.as_bytes().to_vec())
        } else {
            PathMatch::Any
        };
        // Built in place: an error then drops one value, not each list built so far.
        let mut m = Self {
            path,
            case_sensitive,
            any: false,
            ..Self::default()
        };
        for (i, h) in spec.hosts.iter().enumerate() {
            let h = h.to_ascii_lowercase();
            let at = index_path(field, "hosts", i);
            let pattern = if let Some(rest) = h.strip_prefix('*') {
                HostPattern::Suffix(rest.as_bytes().to_vec())
            } else if let Some(rest) = h.strip_suffix('*') {
                HostPattern::Prefix(rest.as_bytes().to_vec())
            } else {
                HostPattern::Exact(h.as_bytes().to_vec())
            };
            if h.is_empty() || h.bytes().filter(|&b| b == b'*').count() > 1 {
                return Err(ConfigError::new(
                    at,
                    "must be a host name with at most one leading or trailing '*'",
                ));
            }
            m.hosts.push(pattern);
        }
        for (i, name) in spec.methods.iter().enumerate() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(ConfigError::new(
                    index_path(field, "methods", i),
                    crate::json::quoted("", name, " is not an HTTP method"),
                ));
            }
            m.methods.push(name.as_bytes().to_vec());
        }
        // Loops, not `collect::<Result<Vec<_>, _>>()`: each such collect is its own
        // iterator adapter stack in the module (~0.7 KB apiece).
        for (i, h) in spec.headers.iter().enumerate() {
            let at = index_path(field, "headers", i);
            m.headers.push(HeaderMatcher::compile(h, &at)?);
        }
        for (i, q) in spec.query_parameters.iter().enumerate() {
            let at = index_path(field, "query_parameters", i);
            m.query.push(QueryMatcher::compile(q, &at)?);
        }
        m.route_names = name_list(&spec.route_names, &join_path(field, "route_names"))?;
        m.virtual_hosts = name_list(&spec.virtual_hosts, &join_path(field, "virtual_hosts"))?;
        m.clusters = name_list(&spec.clusters, &join_path(field, "clusters"))?;
        m.any = matches!(m.path, PathMatch::Any)
            && m.hosts.is_empty()
            && m.methods.is_empty()
            && m.headers.is_empty()
            && m.query.is_empty()
            && m.route_names.is_empty()
            && m.virtual_hosts.is_empty()
            && m.clusters.is_empty();
        Ok(m)
    }

    /// Whether the request matches every condition. Reads only what the conditions need.
    pub fn matches(&self, req: &mut impl Request) -> bool {
        if self.any {
            return true;
        }
        // Each name is a host property read: read only for a rule that has the condition.
        if (!self.route_names.is_empty() && !one_of(&self.route_names, req.route_name()))
            || (!self.virtual_hosts.is_empty()
                && !one_of(&self.virtual_hosts, req.virtual_host_name()))
            || (!self.clusters.is_empty() && !one_of(&self.clusters, req.cluster_name()))
        {
            return false;
        }
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
        if !matches!(self.path, PathMatch::Any) || !self.query.is_empty() {
            let Some(path) = req.header(":path") else {
                return false;
            };
            if !self.path_matches(path) || !self.query.iter().all(|q| q.matches(path)) {
                return false;
            }
        }
        self.headers.iter().all(|h| h.matches(req))
    }

    fn path_matches(&self, full: &[u8]) -> bool {
        let path = path_only(full);
        let ic = !self.case_sensitive;
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(p) => starts_with(path, p, ic),
            PathMatch::Exact(p) => eq_ci(path, p, ic),
            PathMatch::Regex(r) => r.full_match(path),
            PathMatch::Separated(p) => {
                starts_with(path, p, ic) && matches!(path.get(p.len()), None | Some(b'/'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestData;

    // Through sdk-ext's own config reader, as filters read configs.
    fn m(json: &str) -> RequestMatcher {
        let spec: RequestMatchSpec = crate::config::parse(json.as_bytes()).unwrap();
        RequestMatcher::compile(&spec, "match").unwrap()
    }
    fn err(json: &str) -> ConfigError {
        let spec: RequestMatchSpec = crate::config::parse(json.as_bytes()).unwrap();
        RequestMatcher::compile(&spec, "rules[0].match").unwrap_err()
    }
    fn hdr(matcher: &str) -> RequestMatcher {
        m(&format!(r#"{{"headers":[{matcher}]}}"#))
    }

    #[test]
    fn empty_match_matches_everything() {
        assert!(m("{}").matches(&mut RequestData::default()));
    }

    /// A request that records what the matcher read (each read is a host call in Envoy).
    struct Reads(RequestData, Vec<&'static str>);
    impl Request for Reads {
        fn header(&mut self, name: &str) -> Option<&[u8]> {
            self.1.push(match name {
                ":path" => ":path",
                ":method" => ":method",
                ":authority" => ":authority",
                _ => "header",
            });
            self.0.header(name)
        }
        fn header_values(&mut self, name: &str) -> Vec<&[u8]> {
            self.1.push("header_values");
            self.0.header_values(name)
        }
        fn each_header(&mut self, f: impl FnMut(&[u8], &[u8]) -> bool) {
            self.1.push("each_header");
            self.0.each_header(f);
        }
        fn source_address(&mut self) -> Option<&[u8]> {
            self.1.push("source_address");
            self.0.source_address()
        }
        fn route_name(&mut self) -> Option<&[u8]> {
            self.1.push("route_name");
            self.0.route_name()
        }
        fn virtual_host_name(&mut self) -> Option<&[u8]> {
            self.1.push("virtual_host_name");
            self.0.virtual_host_name()
        }
        fn cluster_name(&mut self) -> Option<&[u8]> {
            self.1.push("cluster_name");
            self.0.cluster_name()
        }
    }

    /// Fault: the route, virtual host and cluster names were read for every match, with or
    /// without a condition on them: three host property reads per request for nothing.
    #[test]
    fn reads_only_what_the_conditions_need() {
        let reads = |json: &str| {
            let mut r = Reads(
                RequestData::new("GET", "/admin/x", "h").with_route_name("r1"),
                Vec::new(),
            );
            m(json).matches(&mut r);
            r.1
        };
        assert_eq!(reads("{}"), Vec::<&str>::new());
        assert_eq!(reads(r#"{"prefix":"/admin"}"#), vec![":path"]);
        assert_eq!(reads(r#"{"route_names":["r1"]}"#), vec!["route_name"]);
        assert_eq!(
            reads(r#"{"clusters":["c"],"methods":["GET"]}"#),
            vec!["cluster_name"]
        );
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

    /// Fault: a prefix with `?` matched into the query; Envoy cuts the query off first.
    #[test]
    fn prefix_never_reaches_into_the_query() {
        let mut r = RequestData::new("GET", "/a?x=1", "h");
        assert!(!m(r#"{"prefix":"/a?x"}"#).matches(&mut r));
        assert!(!m(r#"{"prefix":"/a?"}"#).matches(&mut r));
        assert!(m(r#"{"prefix":"/a"}"#).matches(&mut r));
    }

    #[test]
    fn path_separated_prefix() {
        let p = m(r#"{"path_separated_prefix":"/api"}"#);
        for (path, want) in [
            ("/api", true),
            ("/api/", true),
            ("/api/x", true),
            ("/api?q=1", true),
            ("/apix", false),
            ("/ap", false),
            ("/API", false),
        ] {
            assert_eq!(
                p.matches(&mut RequestData::new("GET", path, "h")),
                want,
                "{path}"
            );
        }
        assert!(
            m(r#"{"path_separated_prefix":"/API","case_sensitive":false}"#)
                .matches(&mut RequestData::new("GET", "/api/x", "h"))
        );
        for bad in ["/api/", "/", "a", "", "/a?b", "/a#b"] {
            let e = err(&format!(r#"{{"path_separated_prefix":{bad:?}}}"#));
            assert_eq!(e.field, "rules[0].match.path_separated_prefix", "{bad}");
        }
        assert!(err(r#"{"prefix":"/","path_separated_prefix":"/a"}"#)
            .reason
            .contains("only one"));
    }

    /// Fault: an inverted string match held for a missing header; in Envoy it does not.
    #[test]
    fn inverted_matchers_on_a_missing_header() {
        let mut none = RequestData::new("GET", "/", "h");
        assert!(
            !hdr(r#"{"name":"x-a","string_match":{"exact":"v"},"invert_match":true}"#)
                .matches(&mut none)
        );
        assert!(
            !hdr(r#"{"name":"x-a","range_match":{"start":0,"end":9},"invert_match":true}"#)
                .matches(&mut none)
        );
        assert!(
            hdr(r#"{"name":"x-a","present_match":true,"invert_match":true}"#).matches(&mut none)
        );
        assert!(
            !hdr(r#"{"name":"x-a","present_match":false,"invert_match":true}"#).matches(&mut none)
        );
        assert!(hdr(r#"{"name":"x-a","present_match":false}"#).matches(&mut none));
        // Present: inverted as usual.
        let mut v = RequestData::new("GET", "/", "h").with("x-a", "w");
        assert!(
            hdr(r#"{"name":"x-a","string_match":{"exact":"v"},"invert_match":true}"#)
                .matches(&mut v)
        );
    }

    #[test]
    fn treat_missing_header_as_empty() {
        let mut none = RequestData::new("GET", "/", "h");
        let t = |j: &str| {
            hdr(&format!(
                r#"{{"name":"x-a","treat_missing_header_as_empty":true,{j}}}"#
            ))
            .matches(&mut none.clone())
        };
        assert!(t(r#""string_match":{"exact":""}"#));
        assert!(!t(r#""string_match":{"exact":""},"invert_match":true"#));
        assert!(t(r#""string_match":{"exact":"v"},"invert_match":true"#));
        assert!(t(r#""present_match":true"#));
        assert!(!t(r#""present_match":false"#));
        assert!(!t(r#""present_match":true,"invert_match":true"#));
        assert!(!t(r#""range_match":{"start":0,"end":10}"#));
        assert!(!hdr(r#"{"name":"x-a","string_match":{"exact":""}}"#).matches(&mut none));
    }

    /// Fault: only the first value was compared. Envoy 1.40 matches if any value matches.
    #[test]
    fn multi_valued_headers_match_if_any_value_matches() {
        let mut two = RequestData::new("GET", "/", "h")
            .with("x-a", "a")
            .with("x-a", "b");
        assert!(hdr(r#"{"name":"x-a","string_match":{"exact":"a"}}"#).matches(&mut two));
        assert!(hdr(r#"{"name":"x-a","string_match":{"exact":"b"}}"#).matches(&mut two));
        assert!(!hdr(r#"{"name":"x-a","string_match":{"exact":"a,b"}}"#).matches(&mut two));
        assert!(!hdr(r#"{"name":"x-a","string_match":{"contains":","}}"#).matches(&mut two));
        assert!(
            !hdr(r#"{"name":"x-a","string_match":{"exact":"a"},"invert_match":true}"#)
                .matches(&mut two)
        );
        let mut nums = RequestData::new("GET", "/", "h")
            .with("x-n", "x")
            .with("x-n", "5");
        assert!(hdr(r#"{"name":"x-n","range_match":{"start":1,"end":10}}"#).matches(&mut nums));
    }

    #[test]
    fn range_match_parses_like_simple_atoi() {
        let r = hdr(r#"{"name":"x-n","range_match":{"start":"-5","end":10}}"#);
        for (v, want) in [
            ("5", true),
            ("+5", true),
            ("05", true),
            ("-0", true),
            ("-5", true),
            ("-6", false),
            ("10", false),
            ("5 x", false),
            ("", false),
            ("+", false),
            ("0x5", false),
            ("99999999999999999999", false),
        ] {
            assert_eq!(
                r.matches(&mut RequestData::new("GET", "/", "h").with("x-n", v)),
                want,
                "{v:?}"
            );
        }
        assert_eq!(simple_atoi(b" 7\t"), Some(7));
        assert_eq!(simple_atoi(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn older_direct_fields() {
        let mut r = RequestData::new("GET", "/", "h").with("x-a", "zz");
        assert!(hdr(r#"{"name":"x-a","exact_match":""}"#).matches(&mut r));
        assert!(hdr(r#"{"name":"x-a","exact_match":"zz"}"#).matches(&mut r));
        assert!(hdr(r#"{"name":"x-a","prefix_match":"z"}"#).matches(&mut r));
        assert!(hdr(r#"{"name":"x-a","suffix_match":"z"}"#).matches(&mut r));
        assert!(hdr(r#"{"name":"x-a","contains_match":"z"}"#).matches(&mut r));
        assert!(!hdr(r#"{"name":"x-a","prefix_match":"Z"}"#).matches(&mut r));
        let e = err(r#"{"headers":[{"name":"x","prefix_match":""}]}"#);
        assert_eq!(e.field, "rules[0].match.headers[0].prefix_match");
        let e = err(r#"{"headers":[{"name":"x","exact_match":"a","present_match":true}]}"#);
        assert_eq!(e.field, "rules[0].match.headers[0]");
    }

    #[test]
    fn query_parameters() {
        let q = |j: &str, path: &str| {
            m(&format!(r#"{{"query_parameters":[{j}]}}"#))
                .matches(&mut RequestData::new("GET", path, "h"))
        };
        assert!(q(
            r#"{"name":"q","string_match":{"exact":"a%20b"}}"#,
            "/?q=a%20b"
        ));
        assert!(!q(
            r#"{"name":"q","string_match":{"exact":"a b"}}"#,
            "/?q=a%20b"
        ));
        assert!(q(
            r#"{"name":"q","string_match":{"exact":"1=2"}}"#,
            "/?q=1=2"
        ));
        assert!(q(
            r#"{"name":"q","string_match":{"exact":"1"}}"#,
            "/?x=0&&q=1&"
        ));
        assert!(!q(
            r#"{"name":"q","string_match":{"exact":"2"}}"#,
            "/?q=1&q=2"
        ));
        assert!(!q(
            r#"{"name":"q","string_match":{"exact":"2"}}"#,
            "/?q&q=2"
        ));
        assert!(q(r#"{"name":"q","string_match":{"exact":""}}"#, "/?q"));
        assert!(!q(r#"{"name":"q","string_match":{"exact":"1"}}"#, "/?Q=1"));
        assert!(!q(
            r#"{"name":"q","string_match":{"exact":"1"}}"#,
            "/x?y?q=1"
        ));
        assert!(q(r#"{"name":"q","present_match":false}"#, "/"));
        assert!(!q(r#"{"name":"q","present_match":false}"#, "/?q"));
        assert!(q(r#"{"name":"q","present_match":true}"#, "/?q="));
        assert!(!q(r#"{"name":"q","present_match":true}"#, "/?qq=1"));
        assert!(q(r#"{"name":"q"}"#, "/?q"));
        assert!(!q(r#"{"name":"q"}"#, "/"));
        assert_eq!(
            err(r#"{"query_parameters":[{"name":""}]}"#).field,
            "rules[0].match.query_parameters[0].name"
        );
    }

    #[test]
    fn string_matcher_ignore_case_is_ascii_only() {
        let mut r = RequestData::new("GET", "/", "h").with("x-a", "É");
        assert!(
            !hdr(r#"{"name":"x-a","string_match":{"exact":"é","ignore_case":true}}"#)
                .matches(&mut r)
        );
        let mut r = RequestData::new("GET", "/", "h").with("x-a", "Hello");
        for k in [
            "exact\":\"hELLO",
            "prefix\":\"HE",
            "suffix\":\"LO",
            "contains\":\"ELL",
        ] {
            assert!(
                hdr(&format!(
                    r#"{{"name":"x-a","string_match":{{"{k}","ignore_case":true}}}}"#
                ))
                .matches(&mut r),
                "{k}"
            );
        }
        for empty in ["prefix", "suffix", "contains"] {
            let e = err(&format!(
                r#"{{"headers":[{{"name":"x","string_match":{{"{empty}":""}}}}]}}"#
            ));
            assert_eq!(
                e.field,
                format!("rules[0].match.headers[0].string_match.{empty}")
            );
        }
    }

    #[cfg(feature = "regex")]
    #[test]
    fn regexes_match_whole_values_bytewise() {
        let mut r = RequestData::new("GET", "/api/v1/users?x=1", "a").with("x-bin", [0xff, 0x41]);
        assert!(m(r#"{"safe_regex":{"regex":"/api/v[0-9]+/.*"}}"#).matches(&mut r));
        // Anchored: a partial match is not a match.
        assert!(!m(r#"{"safe_regex":{"regex":"v[0-9]+"}}"#).matches(&mut r));
        // Fault: non-UTF-8 values never matched; Envoy matches them byte by byte.
        assert!(
            hdr(r#"{"name":"x-bin","string_match":{"safe_regex":{"regex":".A"}}}"#).matches(&mut r)
        );
        assert!(
            hdr(r#"{"name":"x-bin","string_match":{"safe_regex":{"regex":"\\xffA"}}}"#)
                .matches(&mut r)
        );
        // case_sensitive has no effect on safe_regex (as in Envoy).
        let mut lower = RequestData::new("GET", "/a", "h");
        assert!(!m(r#"{"safe_regex":{"regex":"/A"},"case_sensitive":false}"#).matches(&mut lower));
        let e = err(r#"{"safe_regex":{"regex":"("}}"#);
        assert_eq!(e.field, "rules[0].match.safe_regex.regex");
        assert!(e.reason.starts_with("invalid regex"), "{}", e.reason);
    }

    /// Security fault: `^(?:<pattern>)$` let an unbalanced pattern escape the anchors.
    #[cfg(feature = "regex")]
    #[test]
    fn unbalanced_patterns_are_refused_not_unanchored() {
        for bad in ["/health)|(/status", "x)|(.*", "a)(", ")"] {
            let e = err(&format!(r#"{{"safe_regex":{{"regex":{bad:?}}}}}"#));
            assert_eq!(e.field, "rules[0].match.safe_regex.regex", "{bad}");
            let e = err(&format!(
                r#"{{"headers":[{{"name":"x","string_match":{{"safe_regex":{{"regex":{bad:?}}}}}}}]}}"#
            ));
            assert_eq!(
                e.field, "rules[0].match.headers[0].string_match.safe_regex.regex",
                "{bad}"
            );
        }
        let ok = m(r#"{"safe_regex":{"regex":"/health|/status"}}"#);
        assert!(ok.matches(&mut RequestData::new("GET", "/status", "h")));
        assert!(!ok.matches(&mut RequestData::new(
            "GET",
            "/health-and-anything/admin",
            "h"
        )));
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
    fn route_virtual_host_and_cluster_names() {
        let m = m(r#"{"route_names":["r1","r2"],"virtual_hosts":["vh"],"clusters":["c"]}"#);
        let req = RequestData::new("GET", "/", "h")
            .with_route_name("r2")
            .with_virtual_host_name("vh")
            .with_cluster_name("c");
        assert!(m.matches(&mut req.clone()));
        assert!(!m.matches(&mut req.clone().with_route_name("R2")));
        assert!(!m.matches(&mut req.clone().with_cluster_name("d")));
        let mut unknown = req;
        unknown.virtual_host_name = None;
        assert!(!m.matches(&mut unknown));
        assert_eq!(
            err(r#"{"clusters":["a",""]}"#).field,
            "rules[0].match.clusters[1]"
        );
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
        assert_eq!(
            err(r#"{"methods":["G T"]}"#).field,
            "rules[0].match.methods[0]"
        );
        assert_eq!(
            err(r#"{"headers":[{"name":""}]}"#).field,
            "rules[0].match.headers[0].name"
        );
        assert_eq!(
            err(r#"{"headers":[{"name":"x","string_match":{}}]}"#).field,
            "rules[0].match.headers[0].string_match"
        );
        assert_eq!(err(r#"{"hosts":["*a*"]}"#).field, "rules[0].match.hosts[0]");
        // The int64 of a range: out of range as a number, or not one as a string.
        let parsed = crate::config::parse::<RequestMatchSpec>(
            br#"{"headers":[{"name":"x","range_match":{"end":9223372036854775808}}]}"#,
        );
        let e = parsed.unwrap_err();
        assert_eq!(e.field, "headers[0].range_match.end");
        assert_eq!(e.reason, "9223372036854775808 is out of the int64 range");
        let parsed = crate::config::parse::<RequestMatchSpec>(
            br#"{"headers":[{"name":"x","range_match":{"start":"1x"}}]}"#,
        );
        assert_eq!(parsed.unwrap_err().reason, r#""1x" is not an int64"#);
        // Envoy accepts any path string and any header name without NUL/CR/LF.
        assert!(RequestMatcher::compile(
            &crate::config::parse(br#"{"path":"nope","headers":[{"name":"bad name"}]}"#).unwrap(),
            "m"
        )
        .is_ok());
    }
}

#[cfg(all(test, feature = "regex"))]
mod set_tests {
    use super::*;

    fn specs(json: &str) -> Vec<StringMatchSpec> {
        let parsed = crate::config::parse(json.as_bytes());
        assert!(parsed.is_ok(), "{json}");
        parsed.unwrap_or_default()
    }

    /// `bytes_eq` answers `==` on every length around its word sizes, equal or differing
    /// in any one byte.
    #[test]
    fn bytes_eq_is_slice_equality() {
        let mut next = crate::test_rng::xorshift(0x5bd1_e995);
        let (mut equal, mut differ) = (0, 0);
        for _ in 0..20_000 {
            let n = next() % 40;
            let a: Vec<u8> = (0..n).map(|_| (next() % 4) as u8).collect();
            let mut b = a.clone();
            match next() % 4 {
                0 => {}
                1 if n > 0 => {
                    let at = next() % n;
                    b[at] ^= 1 << (next() % 8);
                }
                2 => b.push(0),
                _ => b = (0..next() % 40).map(|_| (next() % 4) as u8).collect(),
            }
            assert_eq!(bytes_eq(&a, &b), a == b, "{a:?} {b:?}");
            assert_eq!(bytes_eq(&b, &a), a == b, "{a:?} {b:?}");
            if a == b {
                equal += 1;
            } else {
                differ += 1;
            }
        }
        assert!(equal > 3000 && differ > 3000, "{equal} {differ}");
    }

    #[test]
    fn set_gives_the_first_match_in_list_order() {
        let s = StringMatcherSet::compile(
            &specs(r#"[{"safe_regex":{"regex":"/a.*"}},{"exact":"/abc"},{"prefix":"/ab"},
                {"exact":"/ABC","ignore_case":true},{"suffix":".php"},{"safe_regex":{"regex":".*\\.php"}},
                {"contains":"etc/passwd"}]"#),
            "p",
            RegexMode::FullMatch,
        )
        .unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(s.first_match(b"/abc"), Some(0));
        assert_eq!(s.first_match(b"/x/abc"), None);
        assert_eq!(s.first_match(b"/x.php"), Some(4));
        assert_eq!(s.first_match(b"/AbC"), Some(3));
        assert_eq!(s.first_match(b"/x/etc/passwd"), Some(6));
        assert_eq!(s.first_match(b"\xff/etc/passwd"), Some(6));
        assert!(!s.is_match(b"/b"));
    }

    #[test]
    fn search_mode_matches_anywhere_full_mode_whole() {
        let sp = specs(
            r#"[{"safe_regex":{"regex":"union\\s+select"}},{"safe_regex":{"regex":"<script"}}]"#,
        );
        let full = StringMatcherSet::compile(&sp, "p", RegexMode::FullMatch).unwrap();
        let search = StringMatcherSet::compile(&sp, "p", RegexMode::Search).unwrap();
        let v = b"id=1 union  select x";
        assert_eq!(full.first_match(v), None);
        assert_eq!(search.first_match(v), Some(0));
        assert_eq!(search.first_match(b"a\n<script>"), Some(1));
        assert_eq!(search.first_match(b"<script union select"), Some(0));
        assert_eq!(full.first_match(b"union select"), Some(0));
        // Linear time on a pathological input for backtracking engines.
        let evil = StringMatcherSet::compile(
            &specs(r#"[{"safe_regex":{"regex":"(a+)+$"}}]"#),
            "p",
            RegexMode::Search,
        )
        .unwrap();
        let input = format!("{}!", "a".repeat(50_000));
        let t = std::time::Instant::now();
        assert!(!evil.is_match(input.as_bytes()));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }

    /// The one-program prefilter changes no answer: random sets of every kind (folded or
    /// not, with regexes or not), both modes, on random values, against the same set without
    /// it.
    #[cfg(feature = "regex")]
    #[test]
    fn the_prefilter_changes_no_answer() {
        fn next(x: &mut u32) -> usize {
            *x ^= *x << 13;
            *x ^= *x >> 17;
            *x ^= *x << 5;
            *x as usize
        }
        fn text(x: &mut u32, n: usize) -> String {
            let alphabet = b"abAB/.";
            (0..n)
                .map(|_| char::from(alphabet[next(x) % alphabet.len()]))
                .collect()
        }
        let mut x: u32 = 0x1234_5678;
        let mut prefiltered = 0;
        for round in 0..400 {
            let mut list = Vec::new();
            for _ in 0..next(&mut x) % 6 + 1 {
                let n = next(&mut x) % 3 + 1;
                let lit = text(&mut x, n).replace('.', "x");
                let ic = next(&mut x) % 2 == 0;
                list.push(match next(&mut x) % 6 {
                    0 => format!(r#"{{"exact":"{lit}","ignore_case":{ic}}}"#),
                    1 => format!(r#"{{"prefix":"{lit}","ignore_case":{ic}}}"#),
                    2 => format!(r#"{{"suffix":"{lit}","ignore_case":{ic}}}"#),
                    3 | 4 => format!(r#"{{"contains":"{lit}","ignore_case":{ic}}}"#),
                    _ => format!(r#"{{"safe_regex":{{"regex":"{lit}(a|/)?\\b"}}}}"#),
                });
            }
            let sp = specs(&format!("[{}]", list.join(",")));
            for mode in [RegexMode::Search, RegexMode::FullMatch] {
                let with = StringMatcherSet::compile(&sp, "p", mode).unwrap();
                let mut without = with.clone();
                without.prefilter = None;
                prefiltered += usize::from(with.prefilter.is_some());
                for _ in 0..40 {
                    let n = next(&mut x) % 8;
                    let v = text(&mut x, n);
                    assert_eq!(
                        with.first_match(v.as_bytes()),
                        without.first_match(v.as_bytes()),
                        "round {round} {mode:?} {list:?} on {v:?}"
                    );
                    if mode == RegexMode::FullMatch {
                        // The set (its exact tables, either case of the value) answers what
                        // its matchers one by one answer.
                        let one_by_one = sp.iter().position(|spec| {
                            StringMatcher::compile(spec, "p")
                                .unwrap()
                                .matches(v.as_bytes())
                        });
                        assert_eq!(
                            with.first_match(v.as_bytes()),
                            one_by_one,
                            "round {round} {list:?} on {v:?}"
                        );
                    }
                }
            }
        }
        assert!(prefiltered > 200, "{prefiltered}");
    }

    #[test]
    fn set_errors_name_the_pattern() {
        let e = StringMatcherSet::compile(
            &specs(
                r#"[{"exact":"a"},{"safe_regex":{"regex":"ok"}},{"safe_regex":{"regex":"(bad"}}]"#,
            ),
            "rules",
            RegexMode::Search,
        )
        .unwrap_err();
        assert_eq!(e.field, "rules[2].safe_regex.regex");
        let e = StringMatcherSet::compile(&specs(r#"[{"prefix":""}]"#), "p", RegexMode::Search)
            .unwrap_err();
        assert_eq!(e.field, "p[0].prefix");
    }
}

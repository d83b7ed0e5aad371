//! Per-route configuration, one shape for every filter: `Rules<T>`.
//!
//! A filter's config holds an ordered list of rules; each rule is one JSON object with a
//! `match` key and the filter's own keys beside it:
//!
//! ```json
//! "rules": [
//!   { "match": { "prefix": "/admin/", "route_names": ["admin"] }, "deny": { "status": 403 } },
//!   { "match": { "headers": [ { "name": "x-debug", "present_match": true } ] }, "deny": { "status": 404 } },
//!   { "deny": { "status": 401 } }
//! ]
//! ```
//!
//! - `match` is a [`RequestMatchSpec`](crate::matching::RequestMatchSpec): Envoy's
//!   `RouteMatch` semantics plus the extensions `hosts`, `methods`, and `route_names`,
//!   `virtual_hosts`, `clusters` (exact names compared with the host properties
//!   `xds.route_name`, `xds.virtual_host_name`, `xds.cluster_name`; Istio users pick routes
//!   by route name). See [`crate::matching`] for the exact semantics. A rule without `match`
//!   matches every request.
//! - The other keys are the filter's value `T`, deserialized from the same object (the
//!   `match` key taken out first, so `T` may `deny_unknown_fields`) and validated once, at
//!   config time, by the filter's `compile` step.
//! - Errors name the exact field: `rules[2].request.set[0].name` for the filter's part,
//!   `rules[0].match.headers[1].string_match.safe_regex.regex` for the match, and an unknown
//!   key is reported at itself (`rules[1].typo`).
//!
//! Two ways to use the list: [`Rules::first`] picks the first rule that matches (Envoy's
//! route table and `jwt_authn` decide this way); [`Rules::matching`] yields every rule that
//! matches, in order (header-rules applies all of them).
//!
//! ```
//! use sdk_ext::config::{parse, ConfigError};
//! use sdk_ext::request::RequestData;
//! use sdk_ext::rules::{RawRule, Rules};
//! use sdk_ext::FromJson;
//!
//! #[derive(FromJson)]
//! #[serde(deny_unknown_fields)]
//! struct RawDeny {
//!     status: u16,
//! }
//! #[derive(FromJson)]
//! #[serde(deny_unknown_fields)]
//! struct RawConfig {
//!     rules: Vec<RawRule<RawDeny>>,
//! }
//!
//! let raw: RawConfig = parse(br#"{"rules": [
//!     {"match": {"prefix": "/admin"}, "status": 403},
//!     {"status": 404}]}"#).unwrap();
//! let rules = Rules::compile(&raw.rules, "rules", |r: &RawDeny, field| {
//!     if (400..600).contains(&r.status) {
//!         Ok(r.status)
//!     } else {
//!         Err(ConfigError::new(format!("{field}.status"), "must be 4xx or 5xx"))
//!     }
//! })
//! .unwrap();
//! let mut admin = RequestData::new("GET", "/admin/x", "example.com");
//! assert_eq!(rules.first(&mut admin), Some((0, &403)));
//! assert_eq!(rules.matching(&mut admin).count(), 2);
//! let mut other = RequestData::new("GET", "/", "example.com");
//! assert_eq!(rules.first(&mut other), Some((1, &404)));
//! ```

use crate::config::{index_path, join_path, ConfigError};
use crate::matching::{RequestMatchSpec, RequestMatcher};
use crate::request::Request;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// One rule as written: its `match` (absent: every request) and the filter's raw value.
#[derive(Debug, Clone)]
pub struct RawRule<R> {
    /// The `match` key.
    pub matcher: Option<RequestMatchSpec>,
    /// Every other key, as the filter's raw type.
    pub value: R,
}

/// A validated, ordered rule list.
#[derive(Debug, Clone)]
pub struct Rules<T> {
    rules: Vec<(RequestMatcher, T)>,
}

impl<T> Default for Rules<T> {
    fn default() -> Self {
        Self { rules: Vec::new() }
    }
}

impl<T> Rules<T> {
    /// Compiles every rule: its match, and its value with `compile(raw, field)`, where
    /// `field` is the rule's path (`rules[2]`) for the filter's own error messages.
    /// `field` is the list's path (`rules`).
    pub fn compile<R>(
        raw: &[RawRule<R>],
        field: &str,
        mut compile: impl FnMut(&R, &str) -> Result<T, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut rules = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let at = index_path(field, "", i);
            let value = compile(&r.value, &at)?;
            let matcher = match &r.matcher {
                Some(m) => RequestMatcher::compile(m, &join_path(&at, "match"))?,
                None => RequestMatcher::default(),
            };
            rules.push((matcher, value));
        }
        Ok(Self { rules })
    }

    /// The first rule whose match holds, with its index (first match wins).
    pub fn first(&self, req: &mut impl Request) -> Option<(usize, &T)> {
        for (i, (m, v)) in self.rules.iter().enumerate() {
            if m.matches(req) {
                return Some((i, v));
            }
        }
        None
    }

    /// Every rule whose match holds, in order, with its index.
    pub fn matching<'a, Q: Request>(
        &'a self,
        req: &'a mut Q,
    ) -> impl Iterator<Item = (usize, &'a T)> + 'a {
        Matching {
            rules: &self.rules,
            next: 0,
            req,
        }
    }

    /// The value of rule `i`.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.rules.get(i).map(|(_, v)| v)
    }

    /// Every value, in order (index `i` is rule `i`).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.rules.iter().map(|(_, v)| v)
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// [`Rules::matching`]: a plain loop (it runs on every request of a filter that applies
/// every matching rule).
struct Matching<'a, T, Q> {
    rules: &'a [(RequestMatcher, T)],
    next: usize,
    req: &'a mut Q,
}

impl<'a, T, Q: Request> Iterator for Matching<'a, T, Q> {
    type Item = (usize, &'a T);
    fn next(&mut self) -> Option<(usize, &'a T)> {
        while let Some((m, v)) = self.rules.get(self.next) {
            let i = self.next;
            self.next += 1;
            if m.matches(self.req) {
                return Some((i, v));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Deserializing: the rule object's `match` key is diverted, the rest goes to `R`.

/// A map key: `match`, or another key already handed to `R`'s key seed.
enum Key<V> {
    Match,
    Other(V),
}

/// Reads one key; `match` is kept here, any other key goes to the seed in `slot`. The seed
/// runs inside the underlying map's key call, so an unknown-key error gets the key's path.
struct KeySeed<'s, K>(&'s mut Option<K>);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V<'s, K>(&'s mut Option<K>);
        impl<'de, K: DeserializeSeed<'de>> V<'_, K> {
            fn key<E: de::Error>(
                self,
                name: &str,
                forward: impl FnOnce(K) -> Result<K::Value, E>,
            ) -> Result<Key<K::Value>, E> {
                if name == "match" {
                    return Ok(Key::Match);
                }
                let seed = self
                    .0
                    .take()
                    .ok_or_else(|| E::custom("map key requested twice"))?;
                forward(seed).map(Key::Other)
            }
        }
        impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for V<'_, K> {
            type Value = Key<K::Value>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                self.key(v, |seed| {
                    seed.deserialize(de::value::BorrowedStrDeserializer::new(v))
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let owned = v.to_string();
                self.key(v, |seed| {
                    seed.deserialize(de::value::StringDeserializer::new(owned))
                })
            }
        }
        d.deserialize_identifier(V(self.0))
    }
}

/// The rule object without its `match` key, as a map for `R`.
struct WithoutMatch<'m, A> {
    inner: A,
    matcher: &'m mut Option<RequestMatchSpec>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutMatch<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut slot = Some(seed);
        loop {
            match self.inner.next_key_seed(KeySeed(&mut slot))? {
                None => return Ok(None),
                Some(Key::Other(v)) => return Ok(Some(v)),
                Some(Key::Match) => {
                    *self.matcher = Some(self.inner.next_value()?);
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

impl<'de, R: Deserialize<'de>> Deserialize<'de> for RawRule<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<R>(PhantomData<R>);
        impl<'de, R: Deserialize<'de>> Visitor<'de> for V<R> {
            type Value = RawRule<R>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rule object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRule<R>, A::Error> {
                let mut matcher = None;
                let value = R::deserialize(de::value::MapAccessDeserializer::new(WithoutMatch {
                    inner: map,
                    matcher: &mut matcher,
                }))?;
                Ok(RawRule { matcher, value })
            }
        }
        // A struct to the reader: its keys may be lowerCamelCase, as every struct's.
        d.deserialize_struct("Rule", &["match"], V(PhantomData))
    }
}

/// The rule object's `match` member as the matcher, the other members as `R` (a struct, so
/// they may be lowerCamelCase and `R` may `deny_unknown_fields`).
impl<R: crate::json::FromJson> crate::json::FromJson for RawRule<R> {
    fn from_json(
        value: &crate::json::Value,
        at: &crate::json::Path<'_>,
    ) -> Result<Self, crate::json::Error> {
        use crate::json::{Path, Value};
        let Value::Object(members) = value else {
            return Err(crate::json::invalid_type(value, at, "a rule object"));
        };
        let matcher = match members.iter().find(|(k, _)| k == "match") {
            Some((key, m)) => Some(RequestMatchSpec::from_json(m, &Path::Key(at, key))?),
            None => None,
        };
        let value = R::from_json_without(value, at, Some("match"))?;
        Ok(RawRule { matcher, value })
    }
}

/// The schema of `R` (an object) with the `match` property added.
#[cfg(feature = "schema")]
fn rule_schema<R: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
    match_required: bool,
) -> schemars::Schema {
    let mut schema = R::json_schema(generator);
    let matcher = generator.subschema_for::<RequestMatchSpec>().to_value();
    let object = schema.ensure_object();
    let properties = object
        .entry("properties")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if let Some(p) = properties.as_object_mut() {
        let mut described = serde_json::Map::new();
        let absent = if match_required {
            "required"
        } else {
            "absent: every request"
        };
        described.insert(
            "description".into(),
            format!(
                "Which requests the rule applies to (Envoy's RouteMatch and the sdk-ext \
                 extensions); {absent}."
            )
            .into(),
        );
        described.insert("allOf".into(), serde_json::Value::Array(vec![matcher]));
        p.insert("match".into(), serde_json::Value::Object(described));
    }
    if match_required {
        let required = object
            .entry("required")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let Some(list) = required.as_array_mut() {
            list.insert(0, "match".into());
        }
    }
    schema
}

#[cfg(feature = "schema")]
impl<R: schemars::JsonSchema> schemars::JsonSchema for RawRule<R> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Rule_{}", R::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        rule_schema::<R>(generator, false)
    }
}

/// Schema only: a [`RawRule`] whose `match` is required (for a filter that refuses rules
/// without one, as jwt-auth does after Envoy's `RequirementRule`). Use it with
/// `#[schemars(with = "Vec<RawRuleWithMatch<R>>")]` on the rules field.
#[cfg(feature = "schema")]
pub struct RawRuleWithMatch<R>(PhantomData<R>);

#[cfg(feature = "schema")]
impl<R: schemars::JsonSchema> schemars::JsonSchema for RawRuleWithMatch<R> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("RuleWithMatch_{}", R::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        rule_schema::<R>(generator, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::request::RequestData;

    #[derive(Debug, crate::FromJson)]
    #[serde(deny_unknown_fields)]
    struct RawEdit {
        name: String,
        #[serde(default)]
        set: Vec<RawHeader>,
    }
    #[derive(Debug, crate::FromJson)]
    #[serde(deny_unknown_fields)]
    struct RawHeader {
        name: String,
    }
    #[derive(Debug, crate::FromJson)]
    #[serde(deny_unknown_fields)]
    struct RawConfig {
        rules: Vec<RawRule<RawEdit>>,
    }

    fn compile(json: &str) -> Result<Rules<String>, ConfigError> {
        let raw: RawConfig = parse(json.as_bytes())?;
        Rules::compile(&raw.rules, "rules", |r: &RawEdit, field| {
            for (i, h) in r.set.iter().enumerate() {
                if h.name.contains(' ') {
                    return Err(ConfigError::new(
                        format!("{field}.set[{i}].name"),
                        "not a header name",
                    ));
                }
            }
            Ok(r.name.clone())
        })
    }

    const THREE: &str = r#"{"rules":[
        {"match":{"prefix":"/api"},"name":"api"},
        {"name":"all"},
        {"name":"admin","match":{"prefix":"/api/admin","methods":["POST"]}}]}"#;

    #[test]
    fn first_match_wins() {
        let rules = compile(THREE).unwrap();
        let first = |path: &str, method: &str| {
            rules
                .first(&mut RequestData::new(method, path, "h"))
                .map(|(i, v)| (i, v.clone()))
        };
        assert_eq!(first("/api/admin", "POST"), Some((0, "api".into())));
        assert_eq!(first("/other", "GET"), Some((1, "all".into())));
        let only = compile(r#"{"rules":[{"match":{"prefix":"/x"},"name":"x"}]}"#).unwrap();
        assert_eq!(only.first(&mut RequestData::new("GET", "/y", "h")), None);
    }

    #[test]
    fn matching_yields_every_match_in_order() {
        let rules = compile(THREE).unwrap();
        let mut req = RequestData::new("POST", "/api/admin/x", "h");
        let all: Vec<(usize, &String)> = rules.matching(&mut req).collect();
        assert_eq!(
            all,
            vec![
                (0, &"api".to_string()),
                (1, &"all".into()),
                (2, &"admin".into())
            ]
        );
        let mut get = RequestData::new("GET", "/api/admin/x", "h");
        assert_eq!(
            rules.matching(&mut get).map(|(i, _)| i).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(rules.len(), 3);
        assert_eq!(rules.get(2).map(String::as_str), Some("admin"));
    }

    #[test]
    fn rules_pick_routes_by_name() {
        let rules = compile(
            r#"{"rules":[{"match":{"route_names":["checkout"]},"name":"c"},
                         {"match":{"virtual_hosts":["shop"],"clusters":["backend"]},"name":"s"}]}"#,
        )
        .unwrap();
        let req = RequestData::new("GET", "/", "h");
        assert_eq!(
            rules
                .first(&mut req.clone().with_route_name("checkout"))
                .map(|r| r.0),
            Some(0)
        );
        let shop = req
            .clone()
            .with_virtual_host_name("shop")
            .with_cluster_name("backend");
        assert_eq!(rules.first(&mut shop.clone()).map(|r| r.0), Some(1));
        assert_eq!(rules.first(&mut shop.with_cluster_name("other")), None);
        assert_eq!(rules.first(&mut req.clone()), None);
    }

    #[test]
    fn errors_name_the_exact_field() {
        let e = |j: &str| compile(j).unwrap_err();
        // Inside T: deserialization and validation.
        assert_eq!(
            e(r#"{"rules":[{"name":"a"},{"name":"b","set":[{"name":1}]}]}"#).field,
            "rules[1].set[0].name"
        );
        assert_eq!(
            e(r#"{"rules":[{"name":"a"},{"name":"b"},{"name":"c","set":[{"name":"x y"}]}]}"#).field,
            "rules[2].set[0].name"
        );
        // Unknown keys, in T and in match, are reported at themselves.
        let u = e(r#"{"rules":[{"name":"a","typo":1}]}"#);
        assert_eq!(u.field, "rules[0].typo");
        assert!(u.reason.contains("unknown field `typo`"), "{}", u.reason);
        let u = e(r#"{"rules":[{"name":"a","match":{"prefx":"/"}}]}"#);
        assert_eq!(u.field, "rules[0].match.prefx");
        assert!(u.reason.contains("unknown field `prefx`"), "{}", u.reason);
        // Missing fields of T.
        let m = e(r#"{"rules":[{"match":{}}]}"#);
        assert_eq!(m.field, "rules[0].name");
        // The match: its type errors and its validation.
        assert_eq!(
            e(r#"{"rules":[{"name":"a","match":{"prefix":1}}]}"#).field,
            "rules[0].match.prefix"
        );
        assert_eq!(
            e(r#"{"rules":[{"name":"a"},{"name":"b","match":{"headers":[{"name":"x"},{"name":"y","string_match":{"prefix":""}}]}}]}"#).field,
            "rules[1].match.headers[1].string_match.prefix"
        );
        assert_eq!(
            e(r#"{"rules":[{"name":"a","match":"x"}]}"#).field,
            "rules[0].match"
        );
        assert_eq!(e(r#"{"rules":[3]}"#).field, "rules[0]");
    }

    #[cfg(feature = "regex")]
    #[test]
    fn regex_errors_name_the_pattern_field() {
        let e = compile(
            r#"{"rules":[{"name":"a","match":{"headers":[{"name":"x"},{"name":"y","string_match":{"safe_regex":{"regex":"a)|(b"}}}]}}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.field,
            "rules[0].match.headers[1].string_match.safe_regex.regex"
        );
    }

    #[test]
    fn match_may_come_anywhere_in_the_object() {
        let rules =
            compile(r#"{"rules":[{"name":"a","match":{"prefix":"/a"},"set":[]}]}"#).unwrap();
        assert!(rules
            .first(&mut RequestData::new("GET", "/a", "h"))
            .is_some());
        assert!(rules
            .first(&mut RequestData::new("GET", "/b", "h"))
            .is_none());
    }
}

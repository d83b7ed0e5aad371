//! Typed filter configuration: parse once, validate, refuse clearly.
//!
//! A filter declares a `serde` struct for its JSON config and a validation step that turns
//! it into an immutable value. [`parse`] reports the exact field path of a type error
//! (`rules[0].match.path`); validation reports its own path with [`ConfigError::new`]. The
//! root context (see [`crate::root`]) logs `"<filter>: invalid config at <field>: <reason>"`
//! and answers `false`, so Envoy refuses the config and the operator sees why.

use crate::json::FromJson;
use serde::de::DeserializeOwned;
use std::fmt;

/// Why a configuration was refused, and where: its [`ConfigErrorDetail`] (read through
/// `Deref`: `e.field`, `e.reason`), boxed so that a validation step's `Result<T, ConfigError>`
/// is the size of `T` and a pointer (every `?` moved the two `String`s otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<ConfigErrorDetail>);

/// What a [`ConfigError`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrorDetail {
    /// Path of the offending field, e.g. `rules[2].request.set[0].name`; `.` for the root.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::ops::Deref for ConfigError {
    type Target = ConfigErrorDetail;
    fn deref(&self) -> &ConfigErrorDetail {
        &self.0
    }
}

impl std::ops::DerefMut for ConfigError {
    fn deref_mut(&mut self) -> &mut ConfigErrorDetail {
        &mut self.0
    }
}

impl ConfigError {
    /// An error at `field` (a path such as `rules[0].status`).
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::from_parts(field.into(), reason.to_string())
    }

    /// An error at `field`, both already strings.
    #[inline(never)]
    pub fn from_parts(field: String, reason: String) -> Self {
        Self(Box::new(ConfigErrorDetail { field, reason }))
    }

    /// The field and the reason.
    pub fn into_parts(self) -> (String, String) {
        let d = *self.0;
        (d.field, d.reason)
    }

    /// Prefixes the path with `parent` (for validating nested values independently).
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        self.0.field = join_path(parent, &self.0.field);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config at {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Joins a parent path and a child path (`rules[0]` + `status` → `rules[0].status`).
pub fn join_path(parent: &str, child: &str) -> String {
    match (parent, child) {
        ("" | ".", c) => c.to_string(),
        (p, "" | ".") => p.to_string(),
        (p, c) => {
            // Pushed, not `format!` (its argument setup and padding code).
            let mut out = String::with_capacity(p.len() + c.len() + 1);
            out.push_str(p);
            if !c.starts_with('[') {
                out.push('.');
            }
            out.push_str(c);
            out
        }
    }
}

/// `parent.name[i]` (`name` may be empty: `parent[i]`), as [`join_path`] joins. Written out
/// digit by digit: a `format!` at each of the many call sites was its own argument setup.
pub fn index_path(parent: &str, name: &str, i: usize) -> String {
    let mut out = join_path(parent, name);
    out.push('[');
    crate::json::push_decimal(&mut out, i as u64);
    out.push(']');
    out
}

/// Parses JSON into `T` (a `#[derive(sdk_ext::FromJson)]` type), naming the field path on
/// error. Empty input (no configuration given) parses as `{}`, so a filter whose fields all
/// have defaults needs no config.
pub fn parse<T: FromJson>(bytes: &[u8]) -> Result<T, ConfigError> {
    crate::json::from_json_slice(document(bytes)).map_err(located)
}

/// [`parse`] for a type with serde's `Deserialize` (through sdk-ext's serde deserializer:
/// the same paths and wording). For configs whose types come from a crate built on serde.
pub fn parse_serde<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    crate::json::from_slice(document(bytes)).map_err(located)
}

fn document(bytes: &[u8]) -> &[u8] {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    }
}

fn located(e: crate::json::Error) -> ConfigError {
    let (path, reason) = e.into_parts();
    // "missing field `x`" is reported at the parent; name the field itself.
    let missing = reason
        .strip_prefix("missing field `")
        .and_then(|r| r.get(..r.bytes().position(|b| b == b'`').unwrap_or(r.len())))
        .map(|f| join_path(&path, f));
    ConfigError::from_parts(missing.unwrap_or(path), reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FromJson;

    #[derive(FromJson, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        #[serde(default)]
        rules: Vec<Rule>,
    }
    #[derive(FromJson, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        status: u16,
    }

    #[test]
    fn names_the_field_path() {
        let e = parse::<Cfg>(br#"{"rules":[{"status":200},{"status":"x"}]}"#).unwrap_err();
        assert_eq!(e.field, "rules[1].status");
        assert!(e.reason.contains("invalid type"), "{}", e.reason);
        assert!(!e.reason.contains("line"), "{}", e.reason);
        let e = parse::<Cfg>(br#"{"rules":[{"status":200,"x":1}]}"#).unwrap_err();
        assert_eq!(e.field, "rules[0].x");
    }

    #[test]
    fn missing_field_is_named() {
        let e = parse::<Cfg>(br#"{"rules":[{}]}"#).unwrap_err();
        assert_eq!(e.field, "rules[0].status");
        assert_eq!(e.reason, "missing field `status`");
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = parse::<Cfg>(br#"{"rulez":[]}"#).unwrap_err();
        assert!(e.reason.contains("unknown field `rulez`"), "{}", e.reason);
    }

    #[test]
    fn syntax_error_and_empty_config() {
        let e = parse::<Cfg>(b"{not json").unwrap_err();
        assert!(e.reason.contains("key must be a string"), "{}", e.reason);
        assert!(parse::<Cfg>(b"").unwrap().rules.is_empty());
        assert!(parse::<Cfg>(b"  \n").unwrap().rules.is_empty());
    }

    #[test]
    fn paths_join() {
        assert_eq!(join_path("rules[0]", "status"), "rules[0].status");
        assert_eq!(join_path("rules", "[0]"), "rules[0]");
        assert_eq!(join_path("", "x"), "x");
        assert_eq!(index_path("rules[0]", "hosts", 12), "rules[0].hosts[12]");
        assert_eq!(index_path("rules", "", 0), "rules[0]");
        assert_eq!(index_path("", "", 7), "[7]");
        assert_eq!(index_path(".", "a", 1), "a[1]");
        assert_eq!(
            index_path("x", "", usize::MAX),
            format!("x[{}]", usize::MAX)
        );
        assert_eq!(
            ConfigError::new("x", "bad").within("a").to_string(),
            "invalid config at a.x: bad"
        );
    }
}

//! Durations written as Envoy writes them in proto-JSON: `"300s"`, `"1.5s"`, `"0.250s"`.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A duration in proto-JSON form (`"<seconds>[.<fraction>]s"`); deserializes from that
/// string, so a config field typed `ProtoDuration` reads exactly what Envoy's does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ProtoDuration(pub Duration);

impl ProtoDuration {
    /// Parses `"300s"`, `"1.5s"`, `"0.000000001s"`; no sign, no other unit.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a duration like \"300s\" or \"1.5s\"");
        let number = text.strip_suffix('s').ok_or_else(bad)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if number.ends_with('.') {
            return Err(bad());
        }
        let secs: u64 = whole.parse().map_err(|_| bad())?;
        let nanos: u32 = if fraction.is_empty() {
            0
        } else {
            let scaled = format!("{fraction:0<9}");
            scaled.parse().map_err(|_| bad())?
        };
        Ok(Self(Duration::new(secs, nanos)))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for ProtoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for ProtoDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProtoDuration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]{1,9})?s$",
            "description": "A duration in proto-JSON form: seconds with an optional fraction, then `s` (\"300s\", \"1.5s\")."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envoy_forms() {
        assert_eq!(
            ProtoDuration::parse("300s").unwrap().get(),
            Duration::from_secs(300)
        );
        assert_eq!(
            ProtoDuration::parse("1.5s").unwrap().get(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            ProtoDuration::parse("0.000000001s").unwrap().get(),
            Duration::from_nanos(1)
        );
        for bad in [
            "",
            "s",
            "5",
            "5m",
            "-1s",
            "1.s",
            ".5s",
            "1.0000000001s",
            "1,5s",
            " 1s",
        ] {
            assert!(ProtoDuration::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

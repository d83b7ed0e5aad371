//! Durations written as Envoy writes them in proto-JSON: `"300s"`, `"1.5s"`, `"0.250s"`.
//!
//! Bounded, so that no config value wraps or overflows later:
//!
//! - [`ProtoDuration`] accepts what protobuf's `Duration` can hold, at most [`MAX_SECONDS`]
//!   (about 10,000 years), as Envoy does; more is refused at parse time.
//! - A duration handed to the host in milliseconds (a callout timeout, a tick period) goes
//!   through [`host_millis`], which refuses what the ABI's `u32` cannot carry (over
//!   [`MAX_HOST_MILLIS`] ms, about 49.7 days) or what it would round to nothing (under
//!   1 ms), instead of letting `as u32` turn `"4294968s"` into 704 ms.
//!
//! ```
//! use sdk_ext::duration::{host_millis, ProtoDuration, MAX_HOST_MILLIS};
//! use std::time::Duration;
//!
//! assert_eq!(ProtoDuration::parse("1.5s").unwrap().get(), Duration::from_millis(1500));
//! assert!(ProtoDuration::parse("315576000001s").is_err());
//! assert_eq!(host_millis(Duration::from_secs(2)), Ok(2000));
//! assert!(host_millis(Duration::from_secs(4_294_968)).is_err()); // would wrap to 704 ms
//! assert!(host_millis(Duration::from_micros(500)).is_err()); // would be 0 ms
//! assert_eq!(MAX_HOST_MILLIS, u32::MAX);
//! ```

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The longest [`ProtoDuration`]: protobuf's `Duration` range (315,576,000,000 s, about
/// 10,000 years), which Envoy enforces on the same fields.
pub const MAX_SECONDS: u64 = 315_576_000_000;

/// The most milliseconds a host call takes (`proxy_http_call`'s timeout,
/// `proxy_set_tick_period_milliseconds`): a `u32`, about 49.7 days.
pub const MAX_HOST_MILLIS: u32 = u32::MAX;

/// `d` as the whole milliseconds the host ABI takes, refused (with a reason for a
/// [`ConfigError`](crate::config::ConfigError)) when it does not fit a `u32` or is under 1 ms
/// (which the host would see as 0). Sub-millisecond remainders are dropped.
pub fn host_millis(d: Duration) -> Result<u32, String> {
    if d < Duration::from_millis(1) {
        return Err(format!(
            "{} is under 1ms, the host's resolution",
            display(d)
        ));
    }
    u32::try_from(d.as_millis()).map_err(|_| {
        format!(
            "{} is over {}s, the longest the host takes ({MAX_HOST_MILLIS} ms)",
            display(d),
            u64::from(MAX_HOST_MILLIS) / 1000
        )
    })
}

/// `d` in proto-JSON form, for messages.
fn display(d: Duration) -> String {
    match d.subsec_nanos() {
        0 => format!("{}s", d.as_secs()),
        n => {
            let fraction = format!("{n:09}");
            format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
        }
    }
}

/// `"<seconds>[.<fraction>]s"` as whole seconds (any that fit a `u64`) and nanoseconds;
/// `None` for any other text. Byte by byte: `str`'s char searchers, std's integer parsers
/// and `format!` padding were ~1 KB of the module.
fn seconds_and_nanos(text: &str) -> Option<(u64, u32)> {
    let number = text.as_bytes().strip_suffix(b"s")?;
    let (whole, fraction) = match number.iter().position(|&b| b == b'.') {
        Some(i) => (number.get(..i)?, number.get(i + 1..)?),
        None => (number, &[][..]),
    };
    let digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    if whole.is_empty() || !digits(whole) || fraction.len() > 9 || !digits(fraction) {
        return None;
    }
    if number.last() == Some(&b'.') {
        return None;
    }
    let secs = whole.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    // At most 9 digits (checked above), scaled to nanoseconds: "5" is 500,000,000.
    let mut nanos = 0u32;
    for i in 0..9 {
        nanos = nanos * 10 + fraction.get(i).map_or(0, |d| u32::from(d - b'0'));
    }
    Some((secs, nanos))
}

/// A duration in proto-JSON form (`"<seconds>[.<fraction>]s"`); deserializes from that
/// string, so a config field typed `ProtoDuration` reads exactly what Envoy's does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ProtoDuration(pub Duration);

impl ProtoDuration {
    /// Parses `"300s"`, `"1.5s"`, `"0.000000001s"`; no sign, no other unit.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((secs, nanos)) = seconds_and_nanos(text) else {
            return Err(crate::json::quoted(
                "",
                text,
                " is not a duration like \"300s\" or \"1.5s\"",
            ));
        };
        if secs > MAX_SECONDS {
            // The number is MAX_SECONDS (a test checks the text).
            return Err(crate::json::quoted(
                "",
                text,
                " is over 315576000000s, the longest a protobuf Duration holds",
            ));
        }
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

impl crate::json::FromJson for ProtoDuration {
    fn from_json(
        value: &crate::json::Value,
        at: &crate::json::Path<'_>,
    ) -> Result<Self, crate::json::Error> {
        match value {
            crate::json::Value::String(text) => {
                Self::parse(text).map_err(|e| crate::json::Error::located(at, e))
            }
            _ => Err(crate::json::invalid_type(value, at, "a string")),
        }
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
            "315576000001s",
            "18446744073709551615s",
            "99999999999999999999999s",
        ] {
            assert!(ProtoDuration::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Past u64: not a duration at all; within u64 but past protobuf's range: too long.
        let e = ProtoDuration::parse("99999999999999999999999s").unwrap_err();
        assert!(
            e.ends_with("is not a duration like \"300s\" or \"1.5s\""),
            "{e}"
        );
        let e = ProtoDuration::parse("18446744073709551615s").unwrap_err();
        assert_eq!(
            e,
            format!(
                "{} is over {MAX_SECONDS}s, the longest a protobuf Duration holds",
                crate::json::quote("18446744073709551615s")
            )
        );
        assert_eq!(
            ProtoDuration::parse("2.05s").unwrap().get(),
            Duration::from_millis(2050)
        );
        assert_eq!(
            ProtoDuration::parse("315576000000.999999999s")
                .unwrap()
                .get(),
            Duration::new(MAX_SECONDS, 999_999_999)
        );
    }

    #[test]
    fn host_millis_never_truncates() {
        assert_eq!(host_millis(Duration::from_millis(1)), Ok(1));
        assert_eq!(host_millis(Duration::from_micros(1500)), Ok(1));
        assert_eq!(host_millis(Duration::from_secs(2)), Ok(2000));
        assert_eq!(
            host_millis(Duration::from_millis(u64::from(u32::MAX))),
            Ok(u32::MAX)
        );
        // 4,294,968 s is 2^32 ms + 704 ms: `as u32` made it 704 ms.
        for over in [
            Duration::from_millis(u64::from(u32::MAX) + 1),
            Duration::from_secs(4_294_968),
            Duration::new(MAX_SECONDS, 0),
            Duration::MAX,
        ] {
            let e = host_millis(over).unwrap_err();
            assert!(e.contains("over 4294967s"), "{e}");
        }
        for under in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(999),
        ] {
            let e = host_millis(under).unwrap_err();
            assert!(e.contains("under 1ms"), "{e}");
        }
        assert_eq!(
            host_millis(Duration::from_micros(500)).unwrap_err(),
            "0.0005s is under 1ms, the host's resolution"
        );
    }
}

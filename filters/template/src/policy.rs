//! The decision, as plain Rust over plain data: no host calls, tested directly.

use crate::config::Config;
use sdk_ext::request::Request;

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it through.
    Allow,
    /// Answer with the configured local response.
    Deny,
}

/// Decides on one request.
pub fn decide(config: &Config, req: &mut impl Request) -> Decision {
    match config.deny.first(req) {
        Some(_) => Decision::Deny,
        None => Decision::Allow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::request::RequestData;

    #[test]
    fn denies_only_matching_requests() {
        let c = Config::parse(br#"{"deny":{"prefix":"/admin"}}"#).unwrap();
        assert_eq!(
            decide(&c, &mut RequestData::new("GET", "/admin/x", "h")),
            Decision::Deny
        );
        assert_eq!(
            decide(&c, &mut RequestData::new("GET", "/public", "h")),
            Decision::Allow
        );
        let none = Config::parse(b"{}").unwrap();
        assert_eq!(
            decide(&none, &mut RequestData::new("GET", "/admin", "h")),
            Decision::Allow
        );
    }

    #[test]
    fn bad_config_names_the_field() {
        assert_eq!(
            Config::parse(br#"{"status":200}"#).unwrap_err().field,
            "status"
        );
        // This crate is built without sdk-ext's `regex` feature: a pattern is refused at
        // its field. (In a workspace build another crate may turn the feature on; then an
        // invalid pattern is refused at its `regex` field instead.)
        let e = Config::parse(br#"{"deny":{"safe_regex":{"regex":"["}}}"#).unwrap_err();
        if sdk_ext::REGEX_ENABLED {
            assert_eq!(e.field, "deny.safe_regex.regex");
        } else {
            assert_eq!(e.field, "deny.safe_regex");
            assert!(e.reason.contains("feature `regex`"), "{}", e.reason);
        }
        assert_eq!(
            Config::parse(br#"{"deny":{"headers":[{"name":"x","string_match":{"prefix":""}}]}}"#)
                .unwrap_err()
                .field,
            "deny.headers[0].string_match.prefix"
        );
        assert_eq!(
            Config::parse(br#"{"deny":{"prefix":1}}"#)
                .unwrap_err()
                .field,
            "deny.prefix"
        );
    }
}

//! The identity headers jwt-auth writes for the upstream (`forward_payload_header`,
//! `claim_to_headers`), as plain Rust over plain data: which names they are, removing a
//! client's copies of them, and the header value of a claim.
//!
//! Safe by construction: the set of names is computed once at config time
//! ([`written_headers`]) and [`strip`] removes every one of them from **every** request,
//! before any rule, CORS bypass or decision, so a client-sent `x-jwt-sub` never reaches an
//! upstream, whatever path the request takes through the filter. Only a verified token puts
//! them back.
//!
//! A claim value is copied only if it is a valid header value
//! ([`is_valid_value`](sdk_ext::headers::is_valid_value)); a signed token whose claim holds
//! CR, LF, NUL or another control byte is refused ([`Failure::BadClaimValue`]) rather than
//! handed to Envoy's router, which would answer 503 after the filter had let it through.

use crate::config::Provider;
use crate::outcome::Failure;
use sdk_ext::host::Status;
use sdk_ext::headers::{is_valid_value, HeaderMapMut};
use serde_json::{Map, Value};

/// Every header name the providers write, lowercase, sorted, each once.
pub fn written_headers(providers: &[Provider]) -> Vec<String> {
    let mut names: Vec<String> = providers
        .iter()
        .flat_map(|p| {
            p.forward_payload_header
                .iter()
                .chain(p.claim_to_headers.iter().map(|(name, _)| name))
        })
        .cloned()
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Removes every value of each of `names` from `headers`. Tries them all; answers the first
/// refusal, for the caller to fail closed on.
pub fn strip(headers: &mut impl HeaderMapMut, names: &[String]) -> Result<(), Status> {
    let mut result = Ok(());
    for name in names {
        if let Err(status) = headers.remove(name) {
            if result.is_ok() {
                result = Err(status);
            }
        }
    }
    result
}

/// The value of a claim at `path` as a header value: strings as they are, numbers and
/// booleans as JSON, lists of those joined with `,`; objects and nulls are skipped
/// (`Ok(None)`). A value that is not a valid header value is
/// [`Failure::BadClaimValue`].
pub fn claim_header_value(
    payload: &Map<String, Value>,
    path: &[String],
) -> Result<Option<String>, Failure> {
    match claim_value(payload, path) {
        Some(v) if !is_valid_value(v.as_bytes()) => Err(Failure::BadClaimValue),
        other => Ok(other),
    }
}

fn claim_value(payload: &Map<String, Value>, path: &[String]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut value = payload.get(first)?;
    for part in rest {
        value = value.get(part)?;
    }
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match value {
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(scalar).collect();
            parts.map(|p| p.join(","))
        }
        other => scalar(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::config::Config;
    use sdk_ext::headers::HeaderList;
    use serde_json::json;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    #[test]
    fn written_headers_are_every_configured_name_once() {
        let jwks = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        let c = Config::parse(
            json!({"providers": {
                "a": {"local_jwks": {"inline_string": jwks}, "forward_payload_header": "X-Jwt-Payload",
                      "claim_to_headers": [{"header_name": "x-sub", "claim_name": "sub"}]},
                "b": {"local_jwks": {"inline_string": jwks},
                      "claim_to_headers": [{"header_name": "X-Sub", "claim_name": "sub"},
                                           {"header_name": "x-role", "claim_name": "realm.role"}]},
                "c": {"local_jwks": {"inline_string": jwks}}
            }})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.written_headers, ["x-jwt-payload", "x-role", "x-sub"]);
        assert_eq!(written_headers(&c.providers), c.written_headers);
    }

    #[test]
    fn strip_removes_every_copy_and_reports_a_refusal() {
        let names = vec!["x-jwt-payload".to_string(), "x-sub".to_string()];
        let mut h = HeaderList(vec![
            ("x-sub".into(), b"mallory".to_vec()),
            ("x-keep".into(), b"1".to_vec()),
            ("x-sub".into(), b"again".to_vec()),
            ("x-jwt-payload".into(), b"e30".to_vec()),
        ]);
        strip(&mut h, &names).unwrap();
        assert_eq!(h.0, vec![("x-keep".to_string(), b"1".to_vec())]);

        /// A map whose host refuses removals of one name.
        struct Refusing(HeaderList, &'static str);
        impl HeaderMapMut for Refusing {
            fn contains(&mut self, name: &str) -> bool {
                self.0.contains(name)
            }
            fn set(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
                self.0.set(name, value)
            }
            fn add(&mut self, name: &str, value: &[u8]) -> Result<(), Status> {
                self.0.add(name, value)
            }
            fn remove(&mut self, name: &str) -> Result<(), Status> {
                if name == self.1 {
                    return Err(Status::InternalFailure);
                }
                self.0.remove(name)
            }
        }
        let mut r = Refusing(
            HeaderList(vec![
                ("x-jwt-payload".into(), b"e30".to_vec()),
                ("x-sub".into(), b"mallory".to_vec()),
            ]),
            "x-jwt-payload",
        );
        assert_eq!(strip(&mut r, &names), Err(Status::InternalFailure));
        assert!(
            r.0.values("x-sub").is_empty(),
            "the others are still removed"
        );
    }

    #[test]
    fn claim_values_as_header_values() {
        let p = json!({"sub": "alice", "n": 7, "ok": true, "realm": {"role": "admin"},
                       "groups": ["a", "b", 3], "obj": {"x": 1}, "nul": null, "utf8": "café"});
        let p = p.as_object().unwrap();
        let v = |c: &str| claim_header_value(p, &path(c));
        assert_eq!(v("sub"), Ok(Some("alice".into())));
        assert_eq!(v("n"), Ok(Some("7".into())));
        assert_eq!(v("ok"), Ok(Some("true".into())));
        assert_eq!(v("realm.role"), Ok(Some("admin".into())));
        assert_eq!(v("groups"), Ok(Some("a,b,3".into())));
        assert_eq!(
            v("utf8"),
            Ok(Some("café".into())),
            "obs-text is a valid value"
        );
        for skipped in ["obj", "nul", "absent", "realm.absent", "sub.deeper"] {
            assert_eq!(v(skipped), Ok(None), "{skipped}");
        }
    }

    #[test]
    fn claims_that_are_no_header_value_are_refused() {
        for bad in [
            json!({"sub": "alice\r\nx-admin: 1"}),
            json!({"sub": "lf\nonly"}),
            json!({"sub": "nul\u{0}"}),
            json!({"sub": "bell\u{7}"}),
            json!({"sub": "del\u{7f}"}),
            json!({"sub": ["ok", "bad\r\n"]}),
        ] {
            assert_eq!(
                claim_header_value(bad.as_object().unwrap(), &path("sub")),
                Err(Failure::BadClaimValue),
                "{bad}"
            );
        }
        let nested = json!({"realm": {"role": "a\u{1}"}});
        assert_eq!(
            claim_header_value(nested.as_object().unwrap(), &path("realm.role")),
            Err(Failure::BadClaimValue)
        );
        let tab = json!({"sub": "tab\tand space "});
        assert_eq!(
            claim_header_value(tab.as_object().unwrap(), &path("sub")),
            Ok(Some("tab\tand space ".into()))
        );
    }
}

//! OPA builtins that regorus leaves to its embedder, registered as extensions:
//!
//! - `io.jwt.decode(token)` → `[header, payload, signature_hex]`, as OPA. No signature check
//!   (as OPA's `io.jwt.decode`): verify tokens with the `jwt-auth` filter before this one.
//!   A malformed token makes the call undefined (OPA's non-strict builtin errors).
//! - `time.now_ns()` → the host's wall clock in nanoseconds (regorus's own needs its `time`
//!   feature, ~600 KB of time zone tables).
//! - `glob.match(pattern, delimiters, match)` and `glob.quote_meta(pattern)` (`glob.rs`):
//!   regorus's `glob` feature links globset and its regex-automata engines (206 KB of the
//!   optimised module).

use data_encoding::BASE64URL_NOPAD;
use regorus::{Engine, Value};
use std::fmt::Write as _;

/// Registers the builtins on `engine`.
pub fn register(engine: &mut Engine) -> Result<(), String> {
    engine
        .add_extension(
            "io.jwt.decode".into(),
            1,
            Box::new(|args: Vec<Value>| Ok(args.first().map_or(Value::Undefined, jwt_decode))),
        )
        .map_err(|e| format!("io.jwt.decode: {e}"))?;
    engine
        .add_extension(
            "time.now_ns".into(),
            0,
            Box::new(|_: Vec<Value>| Ok(now_ns())),
        )
        .map_err(|e| format!("time.now_ns: {e}"))?;
    engine
        .add_extension(
            "glob.match".into(),
            3,
            Box::new(|args: Vec<Value>| crate::glob::glob_match(&args).map_err(anyhow::Error::msg)),
        )
        .map_err(|e| format!("glob.match: {e}"))?;
    engine
        .add_extension(
            "glob.quote_meta".into(),
            1,
            Box::new(|args: Vec<Value>| crate::glob::quote_meta(&args).map_err(anyhow::Error::msg)),
        )
        .map_err(|e| format!("glob.quote_meta: {e}"))
}

#[cfg(not(test))]
fn now_ns() -> Value {
    match sdk_ext::host::now_nanos() {
        Ok(n) => Value::from(n),
        Err(_) => Value::Undefined,
    }
}

#[cfg(test)]
fn now_ns() -> Value {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Value::from(n)
}

/// OPA's `io.jwt.decode`: the token's three parts, header and payload as JSON objects, the
/// signature as lowercase hex. Undefined for anything that is not a compact JWS.
pub fn jwt_decode(token: &Value) -> Value {
    let Ok(token) = token.as_string() else {
        return Value::Undefined;
    };
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Value::Undefined;
    };
    let (Some(header), Some(payload)) = (json_part(h), json_part(p)) else {
        return Value::Undefined;
    };
    let Ok(signature) = BASE64URL_NOPAD.decode(s.trim_end_matches('=').as_bytes()) else {
        return Value::Undefined;
    };
    let mut hex = String::with_capacity(signature.len() * 2);
    for b in signature {
        let _ = write!(hex, "{b:02x}");
    }
    Value::from(vec![header, payload, Value::from(hex)])
}

fn json_part(part: &str) -> Option<Value> {
    let bytes = BASE64URL_NOPAD
        .decode(part.trim_end_matches('=').as_bytes())
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let v = Value::from_json_str(text).ok()?;
    v.as_object().is_ok().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_token_like_opa() {
        // {"alg":"HS256","typ":"JWT"} . {"sub":"alice","role":"admin"} . 0x01ff
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhZG1pbiJ9.Af8";
        let v = jwt_decode(&Value::from(t));
        let a = v.as_array().unwrap();
        assert_eq!(a[0]["alg"], Value::from("HS256"));
        assert_eq!(a[1]["role"], Value::from("admin"));
        assert_eq!(a[2], Value::from("01ff"));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.",
            "e30.bm90anNvbg.",
            "W10.e30.",
        ] {
            assert_eq!(jwt_decode(&Value::from(bad)), Value::Undefined, "{bad}");
        }
        assert_eq!(jwt_decode(&Value::from(1u64)), Value::Undefined);
    }
}

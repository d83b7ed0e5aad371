//! A JWT in compact form, parsed strictly, and its registered claims checked: plain Rust
//! over bytes, no host calls.

use crate::outcome::Failure;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The signature algorithms this filter verifies. `none` and anything else is refused.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    /// The `alg` header value → algorithm; `None` for `none` and unknown names.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }

    /// The `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A token split and decoded; the signature is not checked yet.
#[derive(Debug, Clone)]
pub struct Jwt<'a> {
    /// `alg`.
    pub alg: Alg,
    /// `kid`, if any.
    pub kid: Option<String>,
    /// `header.payload`: the signed text.
    pub signing_input: &'a str,
    /// The payload segment, base64url as received.
    pub payload_b64: &'a str,
    /// The signature segment, base64url as received.
    pub signature_b64: &'a str,
    /// The decoded signature.
    pub signature: Vec<u8>,
    /// The payload claims.
    pub payload: Map<String, Value>,
    /// The registered claims, type-checked.
    pub claims: Claims,
}

/// The registered claims the filter checks, with their types enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// `iss`.
    pub iss: Option<String>,
    /// `aud` (a string or a list of strings).
    pub aud: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<u64>,
    /// `nbf`, seconds since the epoch.
    pub nbf: Option<u64>,
    /// `iat`, seconds since the epoch.
    pub iat: Option<u64>,
}

/// A token that is not three base64url segments (or not even UTF-8).
pub const BAD_FORMAT: Failure = Failure::Malformed(
    "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
);

fn decode(segment: &str, what: &'static str) -> Result<Vec<u8>, Failure> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Failure::Malformed(what))
}

/// Parses a compact JWS. Refuses: not three non-empty base64url segments, a header or
/// payload that is not a JSON object, `alg` missing/`none`/unsupported, any `crit`
/// header, and registered claims of the wrong JSON type.
pub fn parse(token: &str) -> Result<Jwt<'_>, Failure> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_FORMAT);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(BAD_FORMAT);
    }
    let signing_input = token.get(..h.len() + 1 + p.len()).ok_or(BAD_FORMAT)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&decode(h, "Jwt header is an invalid Base64url encoded")?)
            .map_err(|_| Failure::Malformed("Jwt header is an invalid JSON"))?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Alg::from_name(name).ok_or(Failure::UnsupportedAlg)?,
        _ => {
            return Err(Failure::Malformed(
                "Jwt header [alg] field is required and must be a string",
            ))
        }
    };
    if header.contains_key("crit") {
        return Err(Failure::Malformed(
            "Jwt header [crit] names extensions this filter does not understand",
        ));
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Failure::Malformed("Jwt header [kid] field is not a string")),
    };
    let payload: Map<String, Value> =
        serde_json::from_slice(&decode(p, "Jwt payload is an invalid Base64url encoded")?)
            .map_err(|_| Failure::Malformed("Jwt payload is an invalid JSON"))?;
    let claims = Claims::from_payload(&payload)?;
    let signature = decode(s, "Jwt signature is an invalid Base64url encoded")?;
    Ok(Jwt {
        alg,
        kid,
        signing_input,
        payload_b64: p,
        signature_b64: s,
        signature,
        payload,
        claims,
    })
}

fn time_claim(
    payload: &Map<String, Value>,
    name: &str,
    err: &'static str,
) -> Result<Option<u64>, Failure> {
    match payload.get(name) {
        None => Ok(None),
        // An integer number of seconds; strings, floats, negatives, null are refused
        // (the type confusion of CVE-2026-25537 accepted e.g. "exp": "9999999999").
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(Failure::Malformed(err)),
        Some(_) => Err(Failure::Malformed(err)),
    }
}

impl Claims {
    fn from_payload(payload: &Map<String, Value>) -> Result<Self, Failure> {
        let iss = match payload.get("iss") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(Failure::Malformed(
                    "Jwt payload [iss] field is not a string",
                ))
            }
        };
        let aud = match payload.get("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(Failure::Malformed(
                    "Jwt payload [aud] field is not a string or string list",
                ))?,
            Some(_) => {
                return Err(Failure::Malformed(
                    "Jwt payload [aud] field is not a string or string list",
                ))
            }
        };
        Ok(Self {
            iss,
            aud,
            exp: time_claim(payload, "exp", "Jwt payload [exp] field is not an integer")?,
            nbf: time_claim(payload, "nbf", "Jwt payload [nbf] field is not an integer")?,
            iat: time_claim(payload, "iat", "Jwt payload [iat] field is not an integer")?,
        })
    }

    /// Checks issuer, audiences and time (with `skew` seconds of tolerance) at `now`.
    pub fn check(
        &self,
        issuer: Option<&str>,
        audiences: &[String],
        now: u64,
        skew: u64,
        require_expiration: bool,
    ) -> Result<(), Failure> {
        if let Some(want) = issuer {
            if self.iss.as_deref() != Some(want) {
                return Err(Failure::BadIssuer);
            }
        }
        if !audiences.is_empty() && !self.aud.iter().any(|a| audiences.contains(a)) {
            return Err(Failure::BadAudience);
        }
        match self.exp {
            Some(exp) if now > exp.saturating_add(skew) => return Err(Failure::Expired),
            None if require_expiration => return Err(Failure::MissingExpiration),
            _ => {}
        }
        if let Some(nbf) = self.nbf {
            if nbf > now.saturating_add(skew) {
                return Err(Failure::NotYetValid);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn parses_a_well_formed_token() {
        let t = token(
            r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            r#"{"iss":"i","aud":["a","b"],"exp":2000000000,"nbf":1,"iat":1,"sub":"x"}"#,
        );
        let jwt = parse(&t).unwrap();
        assert_eq!(jwt.alg, Alg::RS256);
        assert_eq!(jwt.kid.as_deref(), Some("k1"));
        assert_eq!(jwt.signature, b"sig");
        assert_eq!(jwt.claims.aud, ["a", "b"]);
        assert_eq!(jwt.claims.exp, Some(2_000_000_000));
        assert_eq!(jwt.payload["sub"], "x");
        assert!(t.starts_with(jwt.signing_input));
    }

    #[test]
    fn refuses_malformed_tokens() {
        let ok = token(r#"{"alg":"RS256"}"#, "{}");
        for bad in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "..",
            ".b.c",
            &ok[..ok.len() - 1].replace('.', "!"),
            &format!("{}==", ok),
            &token("not json", "{}"),
            &token("[1]", "{}"),
            &token(r#"{"alg":"RS256"}"#, "[]"),
            &token(r#"{"alg":"RS256"}"#, "nope"),
            &token(r#"{"alg":7}"#, "{}"),
            &token(r#"{}"#, "{}"),
            &token(r#"{"alg":"RS256","kid":1}"#, "{}"),
        ] {
            assert!(
                matches!(parse(bad), Err(Failure::Malformed(_))),
                "{bad:?}: {:?}",
                parse(bad).map(|j| j.alg)
            );
        }
    }

    #[test]
    fn refuses_alg_none_unknown_algs_and_crit() {
        for alg in ["none", "None", "HS1", "RS1", "ES512", ""] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(parse(&t).unwrap_err(), Failure::UnsupportedAlg, "{alg}");
        }
        let t = token(r#"{"alg":"RS256","crit":["exp"]}"#, "{}");
        assert!(matches!(parse(&t), Err(Failure::Malformed(m)) if m.contains("crit")));
    }

    #[test]
    fn registered_claims_of_the_wrong_type_are_refused() {
        for payload in [
            r#"{"exp":"2000000000"}"#,
            r#"{"exp":2000000000.5}"#,
            r#"{"exp":-1}"#,
            r#"{"exp":null}"#,
            r#"{"exp":true}"#,
            r#"{"nbf":"1"}"#,
            r#"{"nbf":[1]}"#,
            r#"{"iat":"1"}"#,
            r#"{"iat":{}}"#,
            r#"{"iss":1}"#,
            r#"{"aud":1}"#,
            r#"{"aud":["a",1]}"#,
        ] {
            let t = token(r#"{"alg":"RS256"}"#, payload);
            assert!(
                matches!(parse(&t), Err(Failure::Malformed(_))),
                "{payload} accepted"
            );
        }
    }

    #[test]
    fn claim_checks_follow_envoy() {
        let c = Claims {
            iss: Some("i".into()),
            aud: vec!["a".into()],
            exp: Some(1000),
            nbf: Some(500),
            iat: None,
        };
        let aud = vec!["a".to_string()];
        assert_eq!(c.check(Some("i"), &aud, 800, 60, false), Ok(()));
        assert_eq!(c.check(None, &[], 800, 60, false), Ok(()));
        assert_eq!(
            c.check(Some("j"), &aud, 800, 60, false),
            Err(Failure::BadIssuer)
        );
        assert_eq!(
            c.check(Some("i"), &["b".to_string()], 800, 60, false),
            Err(Failure::BadAudience)
        );
        // exp + skew is still valid; one second later is expired.
        assert_eq!(c.check(None, &[], 1060, 60, false), Ok(()));
        assert_eq!(c.check(None, &[], 1061, 60, false), Err(Failure::Expired));
        assert_eq!(c.check(None, &[], 1001, 0, false), Err(Failure::Expired));
        // nbf - skew is valid; earlier is not yet valid.
        assert_eq!(c.check(None, &[], 440, 60, false), Ok(()));
        assert_eq!(
            c.check(None, &[], 439, 60, false),
            Err(Failure::NotYetValid)
        );
        let no_exp = Claims::default();
        assert_eq!(no_exp.check(None, &[], 1, 60, false), Ok(()));
        assert_eq!(
            no_exp.check(None, &[], 1, 60, true),
            Err(Failure::MissingExpiration)
        );
        // A token without aud fails a provider that lists audiences.
        assert_eq!(
            no_exp.check(None, &aud, 1, 60, false),
            Err(Failure::BadAudience)
        );
        // Huge values do not overflow.
        let far = Claims {
            exp: Some(u64::MAX),
            nbf: Some(u64::MAX),
            ..Claims::default()
        };
        assert_eq!(far.check(None, &[], u64::MAX, u64::MAX, false), Ok(()));
    }
}

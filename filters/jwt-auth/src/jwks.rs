//! JSON Web Key Sets: parsed once (at config time, or when a remote fetch answers) into
//! keys ready for both verification paths: a parsed RustCrypto public key for pure Rust,
//! and a DER `SubjectPublicKeyInfo` for the host's `verify_signature` (RSA and EC keys).

use crate::token::Alg;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// The kind of a key, which decides the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `kty: RSA`: RS*, PS*.
    Rsa,
    /// `kty: EC, crv: P-256`: ES256.
    P256,
    /// `kty: EC, crv: P-384`: ES384.
    P384,
    /// `kty: OKP, crv: Ed25519`: EdDSA.
    Ed25519,
    /// `kty: oct`: HS*.
    Oct,
}

/// A key parsed for pure-Rust verification.
pub enum PublicKey {
    /// RSA (n, e).
    Rsa(rsa::RsaPublicKey),
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An HMAC secret.
    Oct(Vec<u8>),
}

/// One usable key.
pub struct Key {
    /// `kid`, if given.
    pub kid: Option<String>,
    /// `alg`, if given: the only algorithm this key may verify.
    pub alg: Option<Alg>,
    /// What the key is.
    pub kind: KeyKind,
    /// For pure-Rust verification.
    pub public: PublicKey,
    /// DER `SubjectPublicKeyInfo`, for the host (RSA and EC only).
    pub spki_der: Option<Vec<u8>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Whether this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Alg) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        matches!(
            (self.kind, alg),
            (
                KeyKind::Rsa,
                Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
            ) | (KeyKind::P256, Alg::ES256)
                | (KeyKind::P384, Alg::ES384)
                | (KeyKind::Ed25519, Alg::EdDSA)
                | (KeyKind::Oct, Alg::HS256 | Alg::HS384 | Alg::HS512)
        )
    }
}

/// A parsed key set.
#[derive(Debug, Default)]
pub struct Jwks {
    keys: Vec<Key>,
    skipped: Vec<String>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys":[...]}`) or a single JWK. Keys that cannot be
    /// used (unknown `kty`/`crv`, `use` other than `sig`, bad fields) are skipped with a
    /// reason (see [`skipped`](Self::skipped)); a set with no usable key is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let list: Vec<&Value> = match doc.get("keys") {
            Some(Value::Array(keys)) => keys.iter().collect(),
            Some(_) => return Err("JWKS `keys` is not an array".into()),
            None if doc.get("kty").is_some() => vec![&doc],
            None => return Err("JWKS has no `keys` array".into()),
        };
        let mut jwks = Self::default();
        for (i, k) in list.into_iter().enumerate() {
            match parse_key(k) {
                Ok(key) => jwks.keys.push(key),
                Err(reason) => jwks.skipped.push(format!("keys[{i}]: {reason}")),
            }
        }
        if jwks.keys.is_empty() {
            let why = jwks.skipped.join("; ");
            return Err(if why.is_empty() {
                "JWKS has no keys".to_string()
            } else {
                format!("JWKS has no usable key ({why})")
            });
        }
        Ok(jwks)
    }

    /// Why keys were skipped.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Keys that may verify a token with `alg` and `kid`: with a `kid`, only keys with the
    /// same `kid`; without one, every key of a matching kind.
    pub fn candidates<'a>(
        &'a self,
        alg: Alg,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none() || k.kid.as_deref() == kid)
            .filter(move |k| k.accepts(alg))
    }
}

fn text<'a>(k: &'a Value, field: &str) -> Result<Option<&'a str>, String> {
    match k.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{field}` is not a string")),
    }
}

fn required<'a>(k: &'a Value, field: &str) -> Result<&'a str, String> {
    text(k, field)?.ok_or_else(|| format!("`{field}` is missing"))
}

fn b64(k: &Value, field: &str) -> Result<Vec<u8>, String> {
    let s = required(k, field)?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| format!("`{field}` is not base64url"))
}

fn parse_key(k: &Value) -> Result<Key, String> {
    if !k.is_object() {
        return Err("not a JSON object".into());
    }
    let kty = required(k, "kty")?;
    if let Some(usage) = text(k, "use")? {
        if usage != "sig" {
            return Err(format!("`use` is {usage:?}, not \"sig\""));
        }
    }
    let alg = match text(k, "alg")? {
        None => None,
        Some(a) => Some(Alg::from_name(a).ok_or_else(|| format!("`alg` {a:?} is not supported"))?),
    };
    let kid = text(k, "kid")?.map(str::to_string);
    let (kind, public, spki_der) = match kty {
        "RSA" => {
            let n = strip_zeros(b64(k, "n")?);
            let e = strip_zeros(b64(k, "e")?);
            if n.len() < 128 {
                return Err("RSA modulus shorter than 1024 bits".into());
            }
            let public = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|e| format!("RSA key: {e}"))?;
            (KeyKind::Rsa, PublicKey::Rsa(public), Some(rsa_spki(&n, &e)))
        }
        "EC" => {
            let (kind, size, curve_oid) = match required(k, "crv")? {
                "P-256" => (KeyKind::P256, 32, OID_P256),
                "P-384" => (KeyKind::P384, 48, OID_P384),
                other => return Err(format!("EC curve {other:?} is not supported")),
            };
            let x = b64(k, "x")?;
            let y = b64(k, "y")?;
            if x.len() != size || y.len() != size {
                return Err(format!("EC `x`/`y` must be {size} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let not_on_curve = |_| "EC point is not on the curve".to_string();
            let public = match kind {
                KeyKind::P256 => PublicKey::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(not_on_curve)?,
                ),
                _ => PublicKey::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(not_on_curve)?,
                ),
            };
            (kind, public, Some(ec_spki(curve_oid, &point)))
        }
        "OKP" => {
            let crv = required(k, "crv")?;
            if crv != "Ed25519" {
                return Err(format!("OKP curve {crv:?} is not supported"));
            }
            let x: [u8; 32] = b64(k, "x")?
                .try_into()
                .map_err(|_| "Ed25519 `x` must be 32 bytes".to_string())?;
            let public = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| "Ed25519 `x` is not a valid point".to_string())?;
            (KeyKind::Ed25519, PublicKey::Ed25519(public), None)
        }
        "oct" => {
            let secret = b64(k, "k")?;
            if secret.is_empty() {
                return Err("`k` is empty".into());
            }
            (KeyKind::Oct, PublicKey::Oct(secret), None)
        }
        other => return Err(format!("`kty` {other:?} is not supported")),
    };
    let key = Key {
        kid,
        alg,
        kind,
        public,
        spki_der,
    };
    if let Some(a) = alg {
        if !key.accepts(a) {
            return Err(format!("`alg` {} does not fit a {kty} key", a.name()));
        }
    }
    Ok(key)
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let leading = v.iter().take_while(|&&b| b == 0).count();
    v.drain(..leading);
    v
}

// ----- DER SubjectPublicKeyInfo ---------------------------------------------------------

/// rsaEncryption (1.2.840.113549.1.1.1)
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey (1.2.840.10045.2.1)
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (1.2.840.10045.3.1.7)
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1 (1.3.132.0.34)
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// Appends a DER tag-length-value.
pub(crate) fn der(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(value);
}

/// A DER INTEGER from unsigned big-endian bytes (minimal, positive).
pub(crate) fn der_uint(out: &mut Vec<u8>, bytes: &[u8]) {
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let digits = bytes.get(skip..).unwrap_or(&[]);
    let mut value = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        value.push(0);
    }
    value.extend_from_slice(digits);
    der(out, 0x02, &value);
}

fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bit_string = Vec::with_capacity(key.len() + 1);
    bit_string.push(0); // no unused bits
    bit_string.extend_from_slice(key);
    let mut body = Vec::with_capacity(algorithm.len() + bit_string.len() + 16);
    der(&mut body, 0x30, algorithm);
    der(&mut body, 0x03, &bit_string);
    let mut out = Vec::with_capacity(body.len() + 4);
    der(&mut out, 0x30, &body);
    out
}

fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut algorithm = Vec::new();
    der(&mut algorithm, 0x06, OID_RSA);
    der(&mut algorithm, 0x05, &[]);
    let mut ints = Vec::with_capacity(n.len() + e.len() + 8);
    der_uint(&mut ints, n);
    der_uint(&mut ints, e);
    let mut public_key = Vec::with_capacity(ints.len() + 4);
    der(&mut public_key, 0x30, &ints);
    spki(&algorithm, &public_key)
}

fn ec_spki(curve: &[u8], point: &[u8]) -> Vec<u8> {
    let mut algorithm = Vec::new();
    der(&mut algorithm, 0x06, OID_EC);
    der(&mut algorithm, 0x06, curve);
    spki(&algorithm, point)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = include_str!("../testdata/jwks.json");

    #[test]
    fn test_jwks_has_every_kind() {
        let jwks = Jwks::parse(JWKS.as_bytes()).unwrap();
        let kinds: Vec<KeyKind> = jwks.keys().iter().map(|k| k.kind).collect();
        assert_eq!(
            kinds,
            [
                KeyKind::Rsa,
                KeyKind::P256,
                KeyKind::P384,
                KeyKind::Ed25519,
                KeyKind::Oct
            ]
        );
        assert!(jwks.skipped().is_empty());
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason_and_an_empty_set_is_an_error() {
        let doc = r#"{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"EC","crv":"P-521","x":"AA","y":"AA"},{"kty":"XYZ"},7,
            {"kty":"oct","k":"c2VjcmV0","alg":"RS256"},
            {"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        let err = Jwks::parse(doc.as_bytes()).unwrap_err();
        assert!(err.contains("keys[0]: `use` is \"enc\""), "{err}");
        assert!(err.contains("keys[1]: EC curve \"P-521\""), "{err}");
        assert!(err.contains("keys[2]: `kty` \"XYZ\""), "{err}");
        assert!(err.contains("keys[3]: not a JSON object"), "{err}");
        assert!(
            err.contains("keys[4]: `alg` RS256 does not fit a oct key"),
            "{err}"
        );
        assert!(Jwks::parse(b"not json").is_err());
        assert!(Jwks::parse(b"{\"keys\":{}}").is_err());
        assert!(Jwks::parse(b"{\"keys\":[]}").is_err());
        assert!(Jwks::parse(b"[]").is_err());
    }

    #[test]
    fn candidates_follow_kid_then_kind_and_alg() {
        let jwks = Jwks::parse(JWKS.as_bytes()).unwrap();
        let kids = |alg, kid| -> Vec<String> {
            jwks.candidates(alg, kid)
                .map(|k: &Key| k.kid.clone().unwrap())
                .collect()
        };
        assert_eq!(kids(Alg::RS256, None), ["rsa-1"]);
        assert_eq!(kids(Alg::PS384, None), ["rsa-1"]);
        assert_eq!(kids(Alg::ES256, None), ["ec256-1"]);
        assert_eq!(kids(Alg::ES384, None), ["ec384-1"]);
        assert_eq!(kids(Alg::HS256, None), ["hs-1"]);
        assert_eq!(kids(Alg::EdDSA, None), ["ed-1"]);
        assert_eq!(kids(Alg::RS256, Some("rsa-1")), ["rsa-1"]);
        // A kid that names a key of another kind yields nothing: no algorithm confusion.
        assert!(kids(Alg::HS256, Some("rsa-1")).is_empty());
        assert!(kids(Alg::ES384, Some("ec256-1")).is_empty());
        assert!(kids(Alg::RS256, Some("nope")).is_empty());
    }

    #[test]
    fn der_lengths_and_integers_are_minimal() {
        let mut out = Vec::new();
        der(&mut out, 0x04, &[0; 200]);
        assert_eq!(&out[..3], &[0x04, 0x81, 200]);
        let mut out = Vec::new();
        der(&mut out, 0x04, &[0; 300]);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut out = Vec::new();
        der_uint(&mut out, &[0, 0, 0x80, 1]);
        assert_eq!(out, [0x02, 0x03, 0x00, 0x80, 0x01]);
        let mut out = Vec::new();
        der_uint(&mut out, &[0, 0x7f]);
        assert_eq!(out, [0x02, 0x01, 0x7f]);
        let mut out = Vec::new();
        der_uint(&mut out, &[0, 0]);
        assert_eq!(out, [0x02, 0x01, 0x00]);
    }
}

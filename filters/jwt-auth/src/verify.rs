//! Signature verification: the host's BoringSSL (`verify_signature`) for RS* and ES* when
//! the host has it, pure Rust (RustCrypto) otherwise and for PS*, EdDSA and HS*. The host
//! is passed in as a function, so this stays plain Rust.

use crate::jwks::{der, der_uint, Key, PublicKey};
use crate::token::{Alg, Jwt};
use hmac::{Hmac, Mac};
use rsa::{Pkcs1v15Sign, Pss};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// What the host answered to one `verify_signature` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAnswer {
    /// Valid signature.
    Valid,
    /// Checked, not valid.
    Invalid,
    /// No verdict: the host lacks `verify_signature` or refused the call (e.g. a key it
    /// cannot import). Verify in pure Rust.
    Unusable,
}

/// The host's verifier: `(hash, spki_der, signature, text)`.
pub type HostVerify<'a> = &'a dyn Fn(&str, &[u8], &[u8], &[u8]) -> HostAnswer;

/// Which path decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The host's `verify_signature`.
    Host,
    /// Pure Rust.
    Rust,
}

/// The outcome of verifying one signature with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Whether the signature is valid.
    pub valid: bool,
    /// Who decided.
    pub path: Path,
}

fn host_hash(alg: Alg) -> Option<&'static str> {
    match alg {
        Alg::RS256 | Alg::ES256 => Some("sha256"),
        Alg::RS384 | Alg::ES384 => Some("sha384"),
        Alg::RS512 => Some("sha512"),
        _ => None,
    }
}

fn hmac_ok<M: Mac + hmac::digest::KeyInit>(secret: &[u8], text: &[u8], sig: &[u8]) -> bool {
    match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(text);
            mac.verify_slice(sig).is_ok()
        }
        Err(_) => false,
    }
}

/// Verifies in pure Rust; `false` for any mismatch of algorithm and key kind.
pub fn verify_rust(alg: Alg, key: &PublicKey, text: &[u8], sig: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    match (alg, key) {
        (Alg::RS256, PublicKey::Rsa(k)) => k
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(text), sig)
            .is_ok(),
        (Alg::RS384, PublicKey::Rsa(k)) => k
            .verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(text), sig)
            .is_ok(),
        (Alg::RS512, PublicKey::Rsa(k)) => k
            .verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(text), sig)
            .is_ok(),
        (Alg::PS256, PublicKey::Rsa(k)) => k
            .verify(Pss::new::<Sha256>(), &Sha256::digest(text), sig)
            .is_ok(),
        (Alg::PS384, PublicKey::Rsa(k)) => k
            .verify(Pss::new::<Sha384>(), &Sha384::digest(text), sig)
            .is_ok(),
        (Alg::PS512, PublicKey::Rsa(k)) => k
            .verify(Pss::new::<Sha512>(), &Sha512::digest(text), sig)
            .is_ok(),
        (Alg::ES256, PublicKey::P256(k)) => {
            p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(text, &s).is_ok())
        }
        (Alg::ES384, PublicKey::P384(k)) => {
            p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(text, &s).is_ok())
        }
        (Alg::EdDSA, PublicKey::Ed25519(k)) => ed25519_dalek::Signature::from_slice(sig)
            .is_ok_and(|s| k.verify_strict(text, &s).is_ok()),
        (Alg::HS256, PublicKey::Oct(secret)) => hmac_ok::<Hmac<Sha256>>(secret, text, sig),
        (Alg::HS384, PublicKey::Oct(secret)) => hmac_ok::<Hmac<Sha384>>(secret, text, sig),
        (Alg::HS512, PublicKey::Oct(secret)) => hmac_ok::<Hmac<Sha512>>(secret, text, sig),
        _ => false,
    }
}

/// The raw `r‖s` JWS form of an ECDSA signature → the DER `SEQUENCE { r, s }` BoringSSL
/// takes. `None` when the length does not fit the curve.
pub fn ecdsa_der(raw: &[u8], alg: Alg) -> Option<Vec<u8>> {
    let half = match alg {
        Alg::ES256 => 32,
        Alg::ES384 => 48,
        _ => return None,
    };
    if raw.len() != 2 * half {
        return None;
    }
    let (r, s) = raw.split_at(half);
    let mut ints = Vec::with_capacity(raw.len() + 6);
    der_uint(&mut ints, r);
    der_uint(&mut ints, s);
    let mut out = Vec::with_capacity(ints.len() + 3);
    der(&mut out, 0x30, &ints);
    Some(out)
}

/// Verifies `jwt`'s signature with `key` (which the caller chose with `Key::accepts`).
/// `host`: the host verifier, or `None` to use pure Rust only.
pub fn check(jwt: &Jwt<'_>, key: &Key, host: Option<HostVerify<'_>>) -> Checked {
    if let (Some(host), Some(hash), Some(spki)) = (host, host_hash(jwt.alg), &key.spki_der) {
        let signature = match jwt.alg {
            Alg::ES256 | Alg::ES384 => match ecdsa_der(&jwt.signature, jwt.alg) {
                Some(der) => der,
                None => {
                    return Checked {
                        valid: false,
                        path: Path::Host,
                    }
                }
            },
            _ => jwt.signature.clone(),
        };
        match host(hash, spki, &signature, jwt.signing_input.as_bytes()) {
            answer @ (HostAnswer::Valid | HostAnswer::Invalid) => {
                return Checked {
                    valid: answer == HostAnswer::Valid,
                    path: Path::Host,
                }
            }
            HostAnswer::Unusable => {}
        }
    }
    let valid = verify_rust(
        jwt.alg,
        &key.public,
        jwt.signing_input.as_bytes(),
        &jwt.signature,
    );
    Checked {
        valid,
        path: Path::Rust,
    }
}

//! `verify_signature` in-process: the foreign function Envoy's wasm host offers (BoringSSL
//! `EVP_DigestVerify`), which Envoy's dynamic-module ABI has no equivalent of. Same
//! arguments and answer (`VerifySignatureArguments` → `VerifySignatureResult`, protobuf),
//! so a filter calling `sdk_ext::foreign::verify_signature` behaves the same in both
//! builds. Verification is `ring` (BoringSSL's own assembly for RSA and the NIST curves).
//!
//! Keys are DER `SubjectPublicKeyInfo`: RSA (PKCS#1 v1.5, 2048 to 8192 bits) with SHA-256,
//! -384 or -512, ECDSA P-256 / SHA-256 and P-384 / SHA-384 with DER signatures. A key or
//! hash outside that set answers `BadArgument`, as Envoy's host does for a key it cannot
//! import, so the caller falls back to its own verifier.

use crate::host::Status;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// One DER TLV: `(tag, contents, rest)`.
fn tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (len_bytes, rest) = (rest.get(..n)?, rest.get(n..)?);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// A parsed `SubjectPublicKeyInfo`: algorithm OID, parameters OID if any, key bytes.
type Spki<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

/// `SubjectPublicKeyInfo` → its parts.
fn spki(der: &[u8]) -> Option<Spki<'_>> {
    let (0x30, body, _) = tlv(der)? else {
        return None;
    };
    let (0x30, alg, rest) = tlv(body)? else {
        return None;
    };
    let (0x06, oid, params) = tlv(alg)? else {
        return None;
    };
    let param = match tlv(params) {
        Some((0x06, p, _)) => Some(p),
        _ => None,
    };
    let (0x03, bits, _) = tlv(rest)? else {
        return None;
    };
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then_some((oid, param, key))
}

/// The bit length of an RSA modulus (`RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`).
fn rsa_bits(key: &[u8]) -> Option<usize> {
    let (0x30, body, _) = tlv(key)? else {
        return None;
    };
    let (0x02, n, _) = tlv(body)? else {
        return None;
    };
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => n.get(i..)?,
        None => return Some(0),
    };
    let top = n.first()?;
    Some((n.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

fn algorithm<'a>(
    hash: &[u8],
    der: &'a [u8],
) -> Option<(&'static dyn VerificationAlgorithm, &'a [u8])> {
    let (oid, param, key) = spki(der)?;
    let alg: &'static dyn VerificationAlgorithm = match (oid, param, hash) {
        (RSA_ENCRYPTION, _, _) if !(2048..=8192).contains(&rsa_bits(key)?) => return None,
        (RSA_ENCRYPTION, _, b"sha256") => &signature::RSA_PKCS1_2048_8192_SHA256,
        (RSA_ENCRYPTION, _, b"sha384") => &signature::RSA_PKCS1_2048_8192_SHA384,
        (RSA_ENCRYPTION, _, b"sha512") => &signature::RSA_PKCS1_2048_8192_SHA512,
        (EC_PUBLIC_KEY, Some(P256), b"sha256") => &signature::ECDSA_P256_SHA256_ASN1,
        (EC_PUBLIC_KEY, Some(P384), b"sha384") => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return None,
    };
    Some((alg, key))
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

/// `VerifySignatureArguments { hash_function = 1; public_key = 2; signature = 3; text = 4 }`.
fn arguments(mut bytes: &[u8]) -> Option<[&[u8]; 4]> {
    let mut fields: [&[u8]; 4] = [&[]; 4];
    while !bytes.is_empty() {
        let (key, rest) = varint(bytes)?;
        let (len, rest) = match key & 7 {
            2 => varint(rest)?,
            0 => {
                bytes = varint(rest)?.1;
                continue;
            }
            _ => return None,
        };
        let len = usize::try_from(len).ok()?;
        let value = rest.get(..len)?;
        bytes = rest.get(len..)?;
        if let Some(slot) = usize::try_from(key >> 3)
            .ok()
            .and_then(|f| f.checked_sub(1))
            .and_then(|i| fields.get_mut(i))
        {
            *slot = value;
        }
    }
    Some(fields)
}

/// `VerifySignatureResult { bool result = 1; string error = 2; }`.
fn answer(valid: bool, error: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(error.len() + 4);
    if valid {
        out.extend_from_slice(&[0x08, 0x01]);
    }
    if !error.is_empty() {
        out.push(0x12);
        out.push(u8::try_from(error.len()).unwrap_or(0x7f).min(0x7f));
        out.extend_from_slice(error.as_bytes().get(..0x7f).unwrap_or(error.as_bytes()));
    }
    out
}

/// Checks a signature; answers the encoded `VerifySignatureResult`.
pub(crate) fn verify_signature(args: &[u8]) -> Result<Vec<u8>, Status> {
    let [hash, der, sig, text] = arguments(args).ok_or(Status::BadArgument)?;
    let (alg, key) = algorithm(hash, der).ok_or(Status::BadArgument)?;
    Ok(match UnparsedPublicKey::new(alg, key).verify(text, sig) {
        Ok(()) => answer(true, ""),
        Err(_) => answer(false, "Failed to verify signature"),
    })
}

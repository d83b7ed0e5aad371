//! Host foreign functions (`proxy_call_foreign_function`), without panics.
//!
//! Envoy registers extra functions a filter may call by name: `verify_signature` (host
//! BoringSSL), `sign`, `compress`, `uncompress`, `clear_route_cache`,
//! `set_envoy_filter_state`. A name the host does not know answers
//! [`Status::NotFound`], so a filter can detect a capability once and fall back.
//! [`verify_signature`] encodes the argument message Envoy expects
//! (`envoy.source.extensions.common.wasm.VerifySignatureArguments`) and decodes its result.

use crate::host::{self, Status};

/// Calls the host's foreign function `name` with `arguments`; answers its result bytes
/// (empty when it returned none). `Err(NotFound)`: the host has no such function.
pub fn call(name: &str, arguments: &[u8]) -> Result<Vec<u8>, Status> {
    host::call_foreign_function(name, arguments)
}

/// What the host's `verify_signature` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The signature is valid for the key and text.
    Valid,
    /// The host checked and the signature is not valid (the host's reason).
    Invalid(String),
}

/// Verifies `signature` over `text` with a DER `SubjectPublicKeyInfo` public key in the
/// host (Envoy: BoringSSL `EVP_DigestVerify`, so RSA is PKCS#1 v1.5 and ECDSA signatures
/// are DER). `hash` is `"sha256"`, `"sha384"` or `"sha512"`.
/// `Err(NotFound)`: the host lacks the function; `Err(BadArgument)`: it refused the key.
pub fn verify_signature(
    hash: &str,
    public_key_der: &[u8],
    signature: &[u8],
    text: &[u8],
) -> Result<Verdict, Status> {
    let args = verify_signature_arguments(hash, public_key_der, signature, text);
    let result = call("verify_signature", &args)?;
    decode_verify_signature_result(&result).ok_or(Status::SerializationFailure)
}

/// Encodes `VerifySignatureArguments { hash_function = 1; public_key = 2; signature = 3;
/// text = 4 }` in the protobuf wire format.
pub fn verify_signature_arguments(
    hash: &str,
    public_key_der: &[u8],
    signature: &[u8],
    text: &[u8],
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(hash.len() + public_key_der.len() + signature.len() + text.len() + 24);
    proto_bytes(&mut out, 1, hash.as_bytes());
    proto_bytes(&mut out, 2, public_key_der);
    proto_bytes(&mut out, 3, signature);
    proto_bytes(&mut out, 4, text);
    out
}

/// Decodes `VerifySignatureResult { bool result = 1; string error = 2; }`.
pub fn decode_verify_signature_result(mut bytes: &[u8]) -> Option<Verdict> {
    let mut valid = false;
    let mut error = String::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        match (tag >> 3, tag & 7) {
            (1, 0) => {
                let (v, rest) = varint(bytes)?;
                valid = v != 0;
                bytes = rest;
            }
            (field, 2) => {
                let (len, rest) = varint(bytes)?;
                let len = usize::try_from(len).ok()?;
                let value = rest.get(..len)?;
                if field == 2 {
                    error = String::from_utf8_lossy(value).into_owned();
                }
                bytes = rest.get(len..)?;
            }
            (_, 0) => bytes = varint(bytes)?.1,
            _ => return None,
        }
    }
    Some(if valid {
        Verdict::Valid
    } else {
        Verdict::Invalid(error)
    })
}

fn proto_bytes(out: &mut Vec<u8>, field: u8, value: &[u8]) {
    if value.is_empty() {
        return; // proto3 omits empty scalars
    }
    out.push(field << 3 | 2);
    let mut n = value.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(value);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_protobuf_fields_in_order() {
        let long = vec![7u8; 300];
        let a = verify_signature_arguments("sha256", &long, b"sig", b"");
        assert_eq!(&a[..8], b"\x0a\x06sha256");
        // 300 = 0xac 0x02 as a varint
        assert_eq!(&a[8..11], &[0x12, 0xac, 0x02]);
        assert_eq!(&a[311..], b"\x1a\x03sig");
    }

    #[test]
    fn results_decode_and_garbage_is_refused() {
        assert_eq!(
            decode_verify_signature_result(b"\x08\x01"),
            Some(Verdict::Valid)
        );
        assert_eq!(
            decode_verify_signature_result(b"\x12\x03bad"),
            Some(Verdict::Invalid("bad".into()))
        );
        assert_eq!(
            decode_verify_signature_result(b""),
            Some(Verdict::Invalid(String::new()))
        );
        assert_eq!(decode_verify_signature_result(b"\x12\x09ab"), None);
        assert_eq!(decode_verify_signature_result(b"\x08"), None);
        assert_eq!(decode_verify_signature_result(b"\x0d\x00"), None);
    }
}

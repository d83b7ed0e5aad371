//! Shared by the emulator tests: test keys, token minting (jsonwebtoken, and raw for
//! tokens no library would make), an emulated host `verify_signature` with BoringSSL's
//! semantics (DER SubjectPublicKeyInfo keys, DER ECDSA signatures, PKCS#1 v1.5 RSA), and
//! config builders.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use sdk_ext::testing::{Emulator, Engine, Status};
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;

/// The emulator's default clock (2024-01-01T00:00:00Z), in seconds.
pub const NOW: u64 = 1_704_067_200;
pub const JWKS: &str = include_str!("../../testdata/jwks.json");
pub const ISSUER: &str = "https://issuer.example.com";
pub const AUDIENCE: &str = "api.example.com";

pub fn key_for(alg: Algorithm) -> EncodingKey {
    let pem = |name: &str| {
        std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(&pem("rsa.pem")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem("ec256.pem")).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&pem("ec384.pem")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem("ed25519.pem")).unwrap(),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            let k = std::fs::read_to_string(format!(
                "{}/testdata/hmac.key",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(k.trim()).unwrap())
        }
    }
}

pub fn kid_for(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ec256-1",
        Algorithm::ES384 => "ec384-1",
        Algorithm::EdDSA => "ed-1",
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "hs-1",
        _ => "rsa-1",
    }
}

pub const ALL_ALGS: [Algorithm; 12] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
];

pub fn alg_name(alg: Algorithm) -> String {
    serde_json::to_value(alg)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// Valid claims for the test issuer and audience, an hour left.
pub fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": NOW, "exp": NOW + 3600})
}

/// Signs `header.payload` as given (any JSON, any alg name) with `key` under `alg`.
pub fn sign_raw(header: &Value, payload: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

/// A token for `alg` with the fixture key and its kid.
pub fn mint(alg: Algorithm, payload: &Value) -> String {
    sign_raw(
        &json!({"alg": alg_name(alg), "typ": "JWT", "kid": kid_for(alg)}),
        payload,
        &key_for(alg),
        alg,
    )
}

// ----- the emulated host verify_signature -------------------------------------------

fn fields(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = b.split_first() {
        let (mut len, mut shift, mut i) = (0usize, 0, 0);
        loop {
            let byte = rest[i];
            len |= ((byte & 0x7f) as usize) << shift;
            shift += 7;
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        out.push((tag >> 3, rest[i..i + len].to_vec()));
        b = &rest[i + len..];
    }
    out
}

fn verify_with_rust_crypto(
    hash: &str,
    der: &[u8],
    sig: &[u8],
    text: &[u8],
) -> Result<bool, Status> {
    use p256::pkcs8::DecodePublicKey;
    if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
        use rsa::Pkcs1v15Sign;
        use sha2::Digest;
        let (scheme, digest) = match hash {
            "sha256" => (
                Pkcs1v15Sign::new::<sha2::Sha256>(),
                sha2::Sha256::digest(text).to_vec(),
            ),
            "sha384" => (
                Pkcs1v15Sign::new::<sha2::Sha384>(),
                sha2::Sha384::digest(text).to_vec(),
            ),
            "sha512" => (
                Pkcs1v15Sign::new::<sha2::Sha512>(),
                sha2::Sha512::digest(text).to_vec(),
            ),
            _ => return Err(Status::BadArgument),
        };
        return Ok(k.verify(scheme, &digest, sig).is_ok());
    }
    if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
        use p256::ecdsa::signature::Verifier;
        assert_eq!(hash, "sha256");
        let Ok(s) = p256::ecdsa::Signature::from_der(sig) else {
            return Ok(false);
        };
        return Ok(k.verify(text, &s).is_ok());
    }
    if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
        use p384::ecdsa::signature::Verifier;
        assert_eq!(hash, "sha384");
        let Ok(s) = p384::ecdsa::Signature::from_der(sig) else {
            return Ok(false);
        };
        return Ok(k.verify(text, &s).is_ok());
    }
    Err(Status::BadArgument)
}

/// Registers `verify_signature` in the emulator; the returned cell counts calls.
pub fn register_host_crypto(emu: &mut Emulator) -> Rc<Cell<u32>> {
    let calls = Rc::new(Cell::new(0));
    let counter = Rc::clone(&calls);
    emu.register_foreign_function("verify_signature", move |args| {
        counter.set(counter.get() + 1);
        let f = fields(args);
        let get = |n: u8| {
            f.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let hash = String::from_utf8(get(1)).unwrap();
        let ok = verify_with_rust_crypto(&hash, &get(2), &get(3), &get(4))?;
        // VerifySignatureResult { result = 1; error = 2 }
        Ok(if ok {
            vec![0x08, 0x01]
        } else {
            b"\x12\x03bad".to_vec()
        })
    });
    calls
}

// ----- configs and driving ------------------------------------------------------------

/// A provider over the fixture JWKS, for the test issuer and audience.
pub fn provider() -> Value {
    json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": JWKS},
    })
}

/// One provider `p` required for `/api`; other paths need nothing.
pub fn config_with(provider: Value) -> Value {
    json!({
        "providers": {"p": provider},
        "rules": [{"match": {"prefix": "/api"}, "requires": {"provider_name": "p"}}],
    })
}

/// An emulator on `engine` with `config` started (and the host's `verify_signature`).
pub fn start(engine: Engine, config: &Value, host_crypto: bool) -> Emulator {
    let mut emu = engine.emulator();
    if host_crypto {
        register_host_crypto(&mut emu);
    }
    assert_eq!(emu.start(config.to_string()), Ok(()));
    emu
}

/// What a request came to.
#[derive(Debug)]
pub struct Outcome {
    pub status: Option<u32>,
    pub details: String,
    pub www_authenticate: Option<String>,
    pub body: Value,
    pub upstream: Vec<(String, Vec<u8>)>,
}

impl Outcome {
    pub fn allowed(&self) -> bool {
        self.status.is_none()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.upstream
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

pub fn send_bytes(emu: &mut Emulator, path: &str, extra: &[(&str, &[u8])]) -> Outcome {
    let mut headers: Vec<(&str, &[u8])> = vec![
        (":method", b"GET"),
        (":scheme", b"https"),
        (":authority", b"api.example.com"),
        (":path", path.as_bytes()),
    ];
    headers.extend_from_slice(extra);
    let mut s = emu.http();
    s.request_headers_bytes(&headers, true);
    let local = s.local_response();
    Outcome {
        status: local.as_ref().map(|r| r.status_code),
        details: local
            .as_ref()
            .map(|r| r.details.clone())
            .unwrap_or_default(),
        www_authenticate: local
            .as_ref()
            .and_then(|r| r.header_str("www-authenticate")),
        body: local
            .as_ref()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .unwrap_or(Value::Null),
        upstream: s.request_header_pairs(),
    }
}

pub fn send(emu: &mut Emulator, token: Option<&str>) -> Outcome {
    let auth = token.map(|t| format!("Bearer {t}"));
    let extra: Vec<(&str, &[u8])> = auth
        .iter()
        .map(|a| ("authorization", a.as_bytes()))
        .collect();
    send_bytes(emu, "/api/items", &extra)
}

/// Asserts a refusal with `status` and `details` (e.g. "jwt_auth_expired").
#[track_caller]
pub fn assert_denied(o: &Outcome, status: u32, reason: &str) {
    assert_eq!(o.status, Some(status), "{o:?}");
    assert_eq!(o.details, format!("jwt_auth_{reason}"), "{o:?}");
}

//! No-trap proof: `hostile::requests()` (100 000, two halves with different seeds run side by
//! side) generated hostile requests through the built module in the wasm engine: garbage and
//! oversized tokens, JSON bombs in headers and payloads, alg confusion, and a stream of
//! distinct valid tokens (which fill the bounded verified-token cache). Zero traps, only the
//! statuses the README documents, and linear memory that stops growing once the cache is full.
#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sdk_ext::testing::hostile::{self, Hostile, Request};
use sdk_ext::testing::Module;
use serde_json::json;

static MODULE: Module = Module::new(&jwt_auth::EXPORTS, "dist/jwt-auth.wasm");

const NOW: u64 = 1_704_067_200;

fn hmac_key() -> EncodingKey {
    let k = std::fs::read_to_string(format!("{}/testdata/hmac.key", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(k.trim()).unwrap())
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token-shaped hostile value.
fn hostile_token(g: &mut Hostile, key: &EncodingKey) -> Vec<u8> {
    match g.below(9) {
        0 => g.bytes(200),
        1 => {
            // A JSON bomb in the payload (and sometimes the header), validly signed.
            let depth = 1 + g.below(2000);
            let bomb = g.json_bomb(depth);
            let header = if g.one_in(2) {
                r#"{"alg":"HS256","kid":"hs-1"}"#.to_string()
            } else {
                format!(r#"{{"alg":"HS256","kid":"hs-1","x":{bomb}}}"#)
            };
            let input = format!("{}.{}", b64(header), b64(format!(r#"{{"sub":{bomb}}}"#)));
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, Algorithm::HS256).unwrap();
            format!("{input}.{sig}").into_bytes()
        }
        2 => {
            // Oversized: a payload far beyond any sane token.
            let payload = b64("x".repeat(8_192 + g.below(70_000)));
            format!("{}.{payload}.c2ln", b64(r#"{"alg":"RS256"}"#)).into_bytes()
        }
        3 => {
            let alg = *g
                .pick(&["none", "None", "HS256", "RS256", "ES512", "", "\u{0}"])
                .unwrap_or(&"none");
            let header = format!(r#"{{"alg":"{alg}","kid":"rsa-1","crit":["x"]}}"#);
            format!(
                "{}.{}.{}",
                b64(header),
                b64(r#"{"exp":1e999}"#),
                b64(g.bytes(64))
            )
            .into_bytes()
        }
        4 => {
            let parts = 1 + g.below(6);
            let segs: Vec<String> = (0..parts).map(|_| b64(g.bytes(40))).collect();
            segs.join(".").into_bytes()
        }
        5 => {
            // Claims of every wrong type.
            let payload = json!({"iss": [1], "aud": {"a": 1}, "exp": "soon", "nbf": -1,
                                 "iat": 1.5, "sub": null});
            let input = format!(
                "{}.{}",
                b64(r#"{"alg":"HS256","kid":"hs-1"}"#),
                b64(payload.to_string())
            );
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, Algorithm::HS256).unwrap();
            format!("{input}.{sig}").into_bytes()
        }
        _ => {
            // A valid token flipped at one byte.
            let mut t = valid_token(g.next_u64(), key).into_bytes();
            let at = g.below(t.len());
            if let Some(b) = t.get_mut(at) {
                *b ^= 1 << g.below(8);
            }
            t
        }
    }
}

fn valid_token(n: u64, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs-1".to_string());
    let claims = json!({"iss": "https://issuer.example.com", "aud": "api.example.com",
                        "sub": format!("user-{n}"), "iat": NOW, "exp": NOW + 3600});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn config() -> String {
    json!({
        "providers": {"p": {
            "issuer": "https://issuer.example.com",
            "audiences": ["api.example.com"],
            "local_jwks": {"inline_string": include_str!("../testdata/jwks.json")},
            "forward_payload_header": "x-jwt-payload",
            "claim_to_headers": [{"header_name": "x-sub", "claim_name": "sub"}],
        }},
        "rules": [{"match": {"prefix": "/api"}, "requires": {"provider_name": "p"}},
                  {"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                      {"provider_name": "p"}, {"allow_missing": {}}]}}}],
    })
    .to_string()
}

sdk_ext::hostile_tests!(hostile_half);

fn hostile_half(half: hostile::Half) {
    let Some(mut emu) = MODULE.wasm_emulator() else {
        return;
    };
    emu.set_log_level(sdk_ext::testing::LogLevel::Warn);
    emu.start(config()).unwrap();
    let key = hmac_key();
    let run = hostile::run(&mut emu, half.seed(3), half.requests(), |g, n, _| {
        let mut r: Request = g.request();
        let token = if n % 5 == 0 {
            // Distinct valid tokens: every one verifies and goes into the bounded cache.
            valid_token(n as u64, &key).into_bytes()
        } else {
            hostile_token(g, &key)
        };
        match g.below(4) {
            0 => r.header("authorization", [b"Bearer ".as_slice(), &token].concat()),
            1 => r.header("authorization", token),
            2 => {
                let mut path = b"/api/x?access_token=".to_vec();
                path.extend_from_slice(&token);
                r.headers.retain(|(name, _)| name != ":path");
                r.header(":path", path);
            }
            _ => r.header("x-jwt-payload", token),
        }
        r
    });
    eprintln!("{}", run.summary(env!("CARGO_PKG_NAME")));
    // README: 401 (missing / invalid token), 403 (audience), 500 (fail closed on an
    // internal error); otherwise the request goes on.
    assert_eq!(
        run.undocumented(&[401, 403, 500]),
        Vec::<u32>::new(),
        "{run:?}"
    );
    assert!(run.statuses.contains_key(&None) && run.statuses.contains_key(&Some(401)));
    assert!(
        run.growth_after_warmup() <= 1024 * 1024,
        "{}",
        run.summary(env!("CARGO_PKG_NAME"))
    );
}

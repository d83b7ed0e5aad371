//! jwt-auth's token reader (`token::parse`, claims, `check`) and signature check
//! (`verify::check`, pure Rust and the host path) on arbitrary tokens: raw strings, and
//! tokens made of arbitrary header / payload JSON bytes and signatures, base64url-encoded.
//! Input: `.token` (raw), or `header \0 payload \0 signature` (each part encoded).
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_auth::jwks::Jwks;
use jwt_auth::verify::{self, HostAnswer};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;


fn keys() -> &'static Jwks {
    static JWKS: OnceLock<Jwks> = OnceLock::new();
    JWKS.get_or_init(|| {
        Jwks::parse(include_bytes!("../../filters/jwt-auth/testdata/jwks.json"))
            .expect("the fixture JWKS parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let token = match data {
        [b'.', raw @ ..] => match std::str::from_utf8(raw) {
            Ok(raw) => raw.to_string(),
            Err(_) => return,
        },
        _ => {
            let mut parts = data.splitn(3, |b| *b == 0);
            let mut part = || URL_SAFE_NO_PAD.encode(parts.next().unwrap_or_default());
            let (h, p, s) = (part(), part(), part());
            format!("{h}.{p}.{s}")
        }
    };
    let Ok(jwt) = jwt_auth::token::parse(&token) else {
        return;
    };
    let audiences = ["api.example.com".to_string()];
    let _ = jwt
        .claims
        .check(Some("https://issuer.example.com"), &audiences, 1_704_067_200, 60, true);
    let host = |_: &str, _: &[u8], _: &[u8], _: &[u8]| HostAnswer::Invalid;
    for key in keys().candidates(jwt.alg, jwt.kid.as_deref()) {
        assert!(!verify::check(&jwt, key, None).valid, "a forged token verified");
        let _ = verify::check(&jwt, key, Some(&host));
    }
});

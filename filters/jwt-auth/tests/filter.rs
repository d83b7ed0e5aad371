//! The whole filter in the host emulator: every algorithm, every attack, every
//! requirement, the cache, the remote JWKS, bad configs, hostile input.

// Test code: unwrap and indexing are allowed here (the lints guard filter code).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use sdk_ext::testing::{engines, Engine, LogLevel, Module};
use serde_json::{json, Value};
use std::time::Duration;
use support::*;

/// The filter in both builds: every test below runs natively and on `dist/jwt-auth.wasm`.
static MODULE: Module = Module::new(&jwt_auth::EXPORTS, "dist/jwt-auth.wasm");

#[engines]
fn every_algorithm_verifies_through_the_right_path(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    for alg in ALL_ALGS {
        let o = send(&mut emu, Some(&mint(alg, &claims())));
        assert!(o.allowed(), "{alg:?}: {o:?}");
    }
    // RS* and ES* went to the host; PS*, EdDSA, HS* to pure Rust.
    assert_eq!(emu.metric("jwt_auth.verify.host"), Some(5));
    assert_eq!(emu.metric("jwt_auth.verify.rust"), Some(7));
    assert_eq!(emu.metric("jwt_auth.requests_allowed"), Some(12));
}

#[engines]
fn without_host_crypto_everything_verifies_in_rust(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), false);
    for alg in ALL_ALGS {
        assert!(
            send(&mut emu, Some(&mint(alg, &claims()))).allowed(),
            "{alg:?}"
        );
    }
    assert_eq!(emu.metric("jwt_auth.verify.host"), Some(0));
    assert_eq!(emu.metric("jwt_auth.verify.rust"), Some(12));
    assert!(emu.has_log("host has no verify_signature"));
    // Detected once: logged once.
    let n = emu
        .logs()
        .iter()
        .filter(|(_, m)| m.contains("no verify_signature"))
        .count();
    assert_eq!(n, 1);
}

#[engines]
fn missing_token_is_401_with_a_realm_and_no_error(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let o = send(&mut emu, None);
    assert_denied(&o, 401, "missing");
    assert_eq!(
        o.www_authenticate.as_deref(),
        Some("Bearer realm=\"https://api.example.com/api/items\"")
    );
    assert_eq!(o.body["message"], "Jwt is missing");
    assert_eq!(o.body["error"], "unauthorized");
    assert_eq!(emu.metric("jwt_auth.denied.reason.missing"), Some(1));
    assert_eq!(emu.metric("jwt_auth.requests_denied"), Some(1));
    // Paths no rule covers pass untouched.
    assert!(send_bytes(&mut emu, "/public", &[]).allowed());
}

#[engines]
fn bad_token_is_401_invalid_token_and_bad_audience_is_403(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let mut c = claims();
    c["exp"] = json!(NOW - 3600);
    let o = send(&mut emu, Some(&mint(Algorithm::RS256, &c)));
    assert_denied(&o, 401, "expired");
    assert_eq!(
        o.www_authenticate.as_deref(),
        Some("Bearer realm=\"https://api.example.com/api/items\", error=\"invalid_token\"")
    );
    let mut c = claims();
    c["aud"] = json!(["other.example.com"]);
    let o = send(&mut emu, Some(&mint(Algorithm::RS256, &c)));
    assert_denied(&o, 403, "bad_audience");
    assert_eq!(o.body["message"], "Audiences in Jwt are not allowed");
    assert!(o.www_authenticate.unwrap().contains("invalid_token"));
}

#[engines]
fn alg_none_is_refused(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.e30"),
    ] {
        let o = send(&mut emu, Some(&token));
        assert!(!o.allowed(), "{token}");
    }
    let o = send(&mut emu, Some(&format!("{header}.{payload}.e30")));
    assert_denied(&o, 401, "unsupported_alg");
}

#[engines]
fn algorithm_confusion_hs256_keyed_with_the_rsa_public_key_is_refused(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let public_pem = std::fs::read(format!(
        "{}/testdata/rsa.pub.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let forged_key = EncodingKey::from_secret(&public_pem);
    // With the RSA key's kid: that key is RSA, so it cannot verify HS256.
    let t = sign_raw(
        &json!({"alg":"HS256","kid":"rsa-1"}),
        &claims(),
        &forged_key,
        Algorithm::HS256,
    );
    assert_denied(&send(&mut emu, Some(&t)), 401, "no_matching_key");
    // Without a kid: only oct keys are tried, and the forged secret is not one of them.
    let t = sign_raw(
        &json!({"alg":"HS256"}),
        &claims(),
        &forged_key,
        Algorithm::HS256,
    );
    assert_denied(&send(&mut emu, Some(&t)), 401, "bad_signature");
}

#[engines]
fn crit_headers_are_refused(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let key = key_for(Algorithm::RS256);
    let t = sign_raw(
        &json!({"alg":"RS256","kid":"rsa-1","crit":["b64"],"b64":false}),
        &claims(),
        &key,
        Algorithm::RS256,
    );
    let o = send(&mut emu, Some(&t));
    assert_denied(&o, 401, "malformed");
    assert!(o.body["message"].as_str().unwrap().contains("crit"));
}

#[engines]
fn oversized_tokens_are_refused_before_parsing(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let mut c = claims();
    c["pad"] = json!("x".repeat(9000));
    let o = send(&mut emu, Some(&mint(Algorithm::RS256, &c)));
    assert_denied(&o, 401, "too_large");
    // Nothing was verified: refused before parsing.
    assert_eq!(emu.metric("jwt_auth.verify.host"), Some(0));
    // Garbage over the cap is refused the same way, not parsed.
    assert_denied(&send(&mut emu, Some(&"A".repeat(8193))), 401, "too_large");
    // The cap is configurable.
    let mut cfg = config_with(provider());
    cfg["max_token_bytes"] = json!(100);
    let mut emu = start(engine, &cfg, true);
    assert_denied(
        &send(&mut emu, Some(&mint(Algorithm::RS256, &claims()))),
        401,
        "too_large",
    );
}

#[engines]
fn registered_claims_of_the_wrong_type_are_refused(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    for (claim, value) in [
        ("exp", json!((NOW + 3600).to_string())),
        ("exp", json!(1e20)),
        ("exp", json!(NOW as f64 + 0.5)),
        ("nbf", json!("0")),
        ("iat", json!("yesterday")),
        ("iat", json!(null)),
    ] {
        let mut c = claims();
        c[claim] = value.clone();
        let o = send(&mut emu, Some(&mint(Algorithm::RS256, &c)));
        assert_denied(&o, 401, "malformed");
        assert!(
            o.body["message"].as_str().unwrap().contains(claim),
            "{claim}={value}: {o:?}"
        );
    }
}

#[engines]
fn time_checks_honour_the_clock_skew(engine: Engine) {
    let mut cfg = provider();
    cfg["clock_skew_seconds"] = json!(30);
    let mut emu = start(engine, &config_with(cfg), true);
    let with = |k: &str, v: u64| {
        let mut c = claims();
        c[k] = json!(v);
        mint(Algorithm::ES256, &c)
    };
    assert!(send(&mut emu, Some(&with("exp", NOW - 30))).allowed());
    assert_denied(
        &send(&mut emu, Some(&with("exp", NOW - 31))),
        401,
        "expired",
    );
    assert!(send(&mut emu, Some(&with("nbf", NOW + 30))).allowed());
    assert_denied(
        &send(&mut emu, Some(&with("nbf", NOW + 31))),
        401,
        "not_yet_valid",
    );
    // Default skew is 60 s.
    let mut emu = start(engine, &config_with(provider()), true);
    assert!(send(&mut emu, Some(&with("exp", NOW - 60))).allowed());
    assert_denied(
        &send(&mut emu, Some(&with("exp", NOW - 61))),
        401,
        "expired",
    );
}

#[engines]
fn wrong_issuer_is_refused_and_require_expiration_works(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let mut c = claims();
    c["iss"] = json!("https://evil.example.com");
    assert_denied(
        &send(&mut emu, Some(&mint(Algorithm::RS256, &c))),
        401,
        "bad_issuer",
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_denied(
        &send(&mut emu, Some(&mint(Algorithm::RS256, &c))),
        401,
        "bad_issuer",
    );
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert!(send(&mut emu, Some(&mint(Algorithm::RS256, &no_exp))).allowed());
    let mut p = provider();
    p["require_expiration"] = json!(true);
    let mut emu = start(engine, &config_with(p), true);
    assert_denied(
        &send(&mut emu, Some(&mint(Algorithm::RS256, &no_exp))),
        401,
        "missing_expiration",
    );
}

/// Flips every bit of the signature: each must fail.
fn every_flipped_bit_fails(engine: Engine, alg: Algorithm, host: bool) {
    let mut emu = start(engine, &config_with(provider()), host);
    let token = mint(alg, &claims());
    assert!(send(&mut emu, Some(&token)).allowed());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    for bit in 0..sig.len() * 8 {
        let mut bad = sig.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bad));
        let o = send(&mut emu, Some(&t));
        assert_eq!(
            o.status,
            Some(401),
            "{alg:?}: bit {bit} flipped was accepted"
        );
        assert_eq!(o.details, "jwt_auth_bad_signature");
    }
}

#[engines]
fn every_flipped_signature_bit_fails_rs256_on_the_host(engine: Engine) {
    every_flipped_bit_fails(engine, Algorithm::RS256, true);
}

#[engines]
fn every_flipped_signature_bit_fails_es256_on_the_host(engine: Engine) {
    every_flipped_bit_fails(engine, Algorithm::ES256, true);
}

#[engines]
fn every_flipped_signature_bit_fails_es384_in_rust(engine: Engine) {
    every_flipped_bit_fails(engine, Algorithm::ES384, false);
}

#[engines]
fn every_flipped_signature_bit_fails_eddsa_and_hs256(engine: Engine) {
    every_flipped_bit_fails(engine, Algorithm::EdDSA, true);
    every_flipped_bit_fails(engine, Algorithm::HS256, true);
}

#[engines]
fn a_key_outside_the_jwks_fails(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let pem = std::fs::read(format!(
        "{}/testdata/rsa-other.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let other = EncodingKey::from_rsa_pem(&pem).unwrap();
    let t = sign_raw(
        &json!({"alg":"RS256","kid":"rsa-1"}),
        &claims(),
        &other,
        Algorithm::RS256,
    );
    assert_denied(&send(&mut emu, Some(&t)), 401, "bad_signature");
    let t = sign_raw(
        &json!({"alg":"RS256","kid":"unknown"}),
        &claims(),
        &other,
        Algorithm::RS256,
    );
    assert_denied(&send(&mut emu, Some(&t)), 401, "no_matching_key");
}

#[engines]
fn truncated_tokens_fail(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let token = mint(Algorithm::ES256, &claims());
    for len in (1..token.len()).step_by(7).chain([token.len() - 1]) {
        let o = send(&mut emu, Some(&token[..len]));
        assert_eq!(o.status, Some(401), "prefix of {len} accepted");
    }
    assert_eq!(emu.metric("jwt_auth.requests_allowed"), Some(0));
}

#[engines]
fn keys_whose_use_or_alg_do_not_match_are_not_used(engine: Engine) {
    let mut jwks: Value = serde_json::from_str(JWKS).unwrap();
    // The RSA key declares RS384 only; the P-256 key is for encryption.
    jwks["keys"][0]["alg"] = json!("RS384");
    jwks["keys"][1]["use"] = json!("enc");
    let mut p = provider();
    p["local_jwks"]["inline_string"] = json!(jwks.to_string());
    let mut emu = start(engine, &config_with(p), true);
    assert!(emu.has_log("key skipped: keys[1]: `use` is \"enc\""));
    assert_denied(
        &send(&mut emu, Some(&mint(Algorithm::RS256, &claims()))),
        401,
        "no_matching_key",
    );
    assert!(send(&mut emu, Some(&mint(Algorithm::RS384, &claims()))).allowed());
    assert_denied(
        &send(&mut emu, Some(&mint(Algorithm::ES256, &claims()))),
        401,
        "no_matching_key",
    );
}

#[engines]
fn token_is_stripped_payload_and_claims_forwarded_and_forgeries_removed(engine: Engine) {
    let mut p = provider();
    p["forward_payload_header"] = json!("x-jwt-payload");
    p["claim_to_headers"] = json!([
        {"header_name": "x-sub", "claim_name": "sub"},
        {"header_name": "x-role", "claim_name": "realm.role"},
        {"header_name": "x-groups", "claim_name": "groups"},
        {"header_name": "x-absent", "claim_name": "nope"}
    ]);
    let mut emu = start(engine, &config_with(p), true);
    let mut c = claims();
    c["realm"] = json!({"role": "admin"});
    c["groups"] = json!(["a", "b", 3]);
    let token = mint(Algorithm::RS256, &c);
    let auth = format!("Bearer {token}");
    let o = send_bytes(
        &mut emu,
        "/api/x",
        &[
            ("authorization", auth.as_bytes()),
            ("x-absent", b"forged"),
            ("x-sub", b"mallory"),
        ],
    );
    assert!(o.allowed(), "{o:?}");
    assert_eq!(
        o.header("authorization"),
        None,
        "token stripped (forward: false)"
    );
    assert_eq!(o.header("x-sub").as_deref(), Some("alice"));
    assert_eq!(o.header("x-role").as_deref(), Some("admin"));
    assert_eq!(o.header("x-groups").as_deref(), Some("a,b,3"));
    assert_eq!(
        o.header("x-absent"),
        None,
        "a forged claim header is removed"
    );
    let payload = o.header("x-jwt-payload").unwrap();
    assert_eq!(payload, token.split('.').nth(1).unwrap());
    let decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(decoded, c);
}

/// A config that writes `x-jwt-payload` and `x-jwt-sub`, with every path a request can take:
/// a rule without `requires`, `allow_missing`, a required token, no rule, the CORS bypass.
fn identity_config() -> Value {
    let mut p = provider();
    p["forward_payload_header"] = json!("x-jwt-payload");
    p["claim_to_headers"] = json!([{"header_name": "x-jwt-sub", "claim_name": "sub"}]);
    json!({
        "providers": {"p": p},
        "rules": [
            {"match": {"prefix": "/health"}},
            {"match": {"prefix": "/optional"}, "requires": {"allow_missing": {}}},
            {"match": {"prefix": "/api"}, "requires": {"provider_name": "p"}},
        ],
        "bypass_cors_preflight": true,
    })
}

const FORGED: [(&str, &[u8]); 3] = [
    ("x-jwt-payload", b"eyJzdWIiOiJhZG1pbiJ9"),
    ("x-jwt-sub", b"admin"),
    ("X-JWT-SUB", b"admin-again"),
];

#[track_caller]
fn assert_no_forgery(o: &support::Outcome, case: &str) {
    for name in ["x-jwt-payload", "x-jwt-sub"] {
        assert!(
            o.upstream.iter().all(|(n, v)| n != name
                || v != b"admin" && v != b"admin-again" && v != b"eyJzdWIiOiJhZG1pbiJ9"),
            "{case}: forged {name} kept: {:?}",
            o.upstream
        );
    }
}

#[engines]
fn a_forged_payload_or_claim_header_is_removed_on_every_path(engine: Engine) {
    let mut emu = start(engine, &identity_config(), true);
    // A rule without `requires`.
    let o = send_bytes(&mut emu, "/health", &FORGED);
    assert!(o.allowed(), "{o:?}");
    assert_eq!(o.header("x-jwt-sub"), None);
    assert_eq!(o.header("x-jwt-payload"), None);
    // No rule at all.
    let o = send_bytes(&mut emu, "/elsewhere", &FORGED);
    assert!(o.allowed());
    assert_no_forgery(&o, "no rule");
    assert_eq!(o.header("x-jwt-sub"), None);
    // `allow_missing` without a token.
    let o = send_bytes(&mut emu, "/optional/x", &FORGED);
    assert!(o.allowed(), "{o:?}");
    assert_eq!(o.header("x-jwt-sub"), None);
    assert_eq!(o.header("x-jwt-payload"), None);
    // A CORS preflight to a covered path.
    let mut preflight: Vec<(&str, &[u8])> = vec![
        (":method", b"OPTIONS"),
        (":scheme", b"https"),
        (":authority", b"api.example.com"),
        (":path", b"/api/items"),
        ("origin", b"https://app.example.com"),
        ("access-control-request-method", b"GET"),
    ];
    preflight.extend_from_slice(&FORGED);
    let mut s = emu.http();
    s.request_headers_bytes(&preflight, true);
    assert!(s.local_response().is_none(), "preflight bypassed");
    assert_eq!(s.request_header("x-jwt-sub"), None, "preflight");
    assert_eq!(s.request_header("x-jwt-payload"), None, "preflight");
    s.complete();
    assert_eq!(emu.metric("jwt_auth.cors_preflight_bypassed"), Some(1));
    // A denied request (no token): refused, and the forgery is gone from what it held.
    let o = send_bytes(&mut emu, "/api/items", &FORGED);
    assert_denied(&o, 401, "missing");
    assert_eq!(o.header("x-jwt-sub"), None);
    // A denied request (a bad token) on `allow_missing`.
    let auth = b"Bearer a.b.c".to_vec();
    let mut with_bad: Vec<(&str, &[u8])> = FORGED.to_vec();
    with_bad.push(("authorization", &auth));
    let o = send_bytes(&mut emu, "/optional/x", &with_bad);
    assert_denied(&o, 401, "malformed");
    assert_eq!(o.header("x-jwt-sub"), None);
    // A verified request: the token's values, once each.
    let token = mint(Algorithm::RS256, &claims());
    let auth = format!("Bearer {token}").into_bytes();
    for path in ["/api/items", "/optional/x"] {
        let mut with_token: Vec<(&str, &[u8])> = FORGED.to_vec();
        with_token.push(("authorization", &auth));
        let o = send_bytes(&mut emu, path, &with_token);
        assert!(o.allowed(), "{path}: {o:?}");
        assert_no_forgery(&o, path);
        let subs: Vec<_> = o
            .upstream
            .iter()
            .filter(|(n, _)| n == "x-jwt-sub")
            .collect();
        assert_eq!(subs.len(), 1, "{path}: {subs:?}");
        assert_eq!(o.header("x-jwt-sub").as_deref(), Some("alice"));
        assert_eq!(
            o.header("x-jwt-payload").as_deref(),
            token.split('.').nth(1),
            "{path}"
        );
    }
    assert_eq!(
        emu.metric("jwt_auth.requests_allowed"),
        Some(3),
        "two tokens and the allow_missing request without one"
    );
}

#[engines]
fn a_claim_that_is_no_header_value_is_refused_401(engine: Engine) {
    let mut p = provider();
    p["claim_to_headers"] = json!([
        {"header_name": "x-jwt-sub", "claim_name": "sub"},
        {"header_name": "x-jwt-role", "claim_name": "realm.role"}
    ]);
    p["forward_payload_header"] = json!("x-jwt-payload");
    let mut emu = start(engine, &config_with(p), true);
    let cases = [
        json!({"sub": "alice\r\nx-admin: 1"}),
        json!({"sub": "nul\u{0}"}),
        json!({"sub": "bell\u{7}"}),
        json!({"sub": "del\u{7f}"}),
        json!({"sub": "alice", "realm": {"role": "a\nb"}}),
        json!({"sub": ["ok", "bad\r"]}),
    ];
    for (i, extra) in cases.iter().enumerate() {
        let mut c = claims();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let o = send(&mut emu, Some(&mint(Algorithm::ES256, &c)));
        assert_denied(&o, 401, "bad_claim_value");
        assert_eq!(o.body["message"], "Jwt claim is not a valid header value");
        assert!(o
            .www_authenticate
            .as_deref()
            .unwrap()
            .ends_with("error=\"invalid_token\""));
        assert_eq!(o.header("x-jwt-sub"), None, "{extra}: nothing written");
        assert_eq!(o.header("x-jwt-payload"), None, "{extra}: nothing written");
        assert_eq!(
            emu.metric("jwt_auth.denied.reason.bad_claim_value"),
            Some(i as u64 + 1)
        );
    }
    assert_eq!(emu.metric("jwt_auth.requests_allowed"), Some(0));
    assert_eq!(
        emu.metric("jwt_auth.requests_denied"),
        Some(cases.len() as u64)
    );
    // Tabs, spaces and UTF-8 are header values.
    let mut c = claims();
    c["sub"] = json!("al\tice café ");
    let o = send(&mut emu, Some(&mint(Algorithm::RS256, &c)));
    assert!(o.allowed(), "{o:?}");
    assert_eq!(o.header("x-jwt-sub").as_deref(), Some("al\tice café "));
    assert_eq!(emu.metric("jwt_auth.requests_allowed"), Some(1));
}

#[engines]
fn forward_keeps_the_token_and_padding_is_optional(engine: Engine) {
    let mut p = provider();
    p["forward"] = json!(true);
    p["forward_payload_header"] = json!("x-jwt-payload");
    p["pad_forward_payload_header"] = json!(true);
    let mut emu = start(engine, &config_with(p), true);
    let token = mint(Algorithm::RS256, &claims());
    let o = send(&mut emu, Some(&token));
    assert_eq!(o.header("authorization"), Some(format!("Bearer {token}")));
    let payload = o.header("x-jwt-payload").unwrap();
    assert_eq!(payload.len() % 4, 0, "padded: {payload}");
}

#[engines]
fn tokens_from_custom_headers_params_and_cookies(engine: Engine) {
    let mut p = provider();
    p["from_headers"] = json!([{"name": "x-token", "value_prefix": "JWT "}]);
    p["from_params"] = json!(["jwt"]);
    p["from_cookies"] = json!(["session"]);
    let mut emu = start(engine, &config_with(p), true);
    let t = mint(Algorithm::ES256, &claims());
    let h = format!("JWT {t}");
    let o = send_bytes(&mut emu, "/api", &[("x-token", h.as_bytes())]);
    assert!(o.allowed() && o.header("x-token").is_none(), "{o:?}");
    assert!(send_bytes(&mut emu, &format!("/api?a=1&jwt={t}"), &[]).allowed());
    let cookie = format!("theme=dark; session={t}");
    let o = send_bytes(&mut emu, "/api", &[("cookie", cookie.as_bytes())]);
    assert!(o.allowed());
    assert_eq!(
        o.header("cookie"),
        Some(cookie),
        "cookies are never stripped"
    );
    // The default Authorization header is not a location once others are configured.
    assert_denied(&send(&mut emu, Some(&t)), 401, "missing");
}

#[engines]
fn default_locations_are_bearer_then_access_token(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let t = mint(Algorithm::ES256, &claims());
    assert!(send_bytes(&mut emu, &format!("/api?access_token={t}"), &[]).allowed());
}

fn two_providers(requires: Value) -> Value {
    let mut other = provider();
    other["issuer"] = json!("https://other.example.com");
    json!({
        "providers": {"a": provider(), "b": other},
        "rules": [
            {"match": {"prefix": "/open"}},
            {"match": {"prefix": "/"}, "requires": requires},
        ],
    })
}

#[engines]
fn rules_first_match_wins_and_rules_without_requires_pass(engine: Engine) {
    let mut emu = start(engine, &two_providers(json!({"provider_name": "a"})), true);
    assert!(send_bytes(&mut emu, "/open/x", &[]).allowed());
    assert_denied(&send_bytes(&mut emu, "/x", &[]), 401, "missing");
}

#[engines]
fn requires_any_all_and_allow_missing(engine: Engine) {
    let for_b = |c: &mut Value| c["iss"] = json!("https://other.example.com");
    let token_a = mint(Algorithm::RS256, &claims());
    let mut cb = claims();
    for_b(&mut cb);
    let token_b = mint(Algorithm::ES256, &cb);

    let any =
        json!({"requires_any": {"requirements": [{"provider_name": "a"}, {"provider_name": "b"}]}});
    let mut emu = start(engine, &two_providers(any), true);
    assert!(send_bytes(
        &mut emu,
        "/x",
        &[("authorization", format!("Bearer {token_a}").as_bytes())]
    )
    .allowed());
    assert!(send_bytes(
        &mut emu,
        "/x",
        &[("authorization", format!("Bearer {token_b}").as_bytes())]
    )
    .allowed());
    assert_denied(&send_bytes(&mut emu, "/x", &[]), 401, "missing");

    let mut all_cfg = two_providers(
        json!({"requires_all": {"requirements": [{"provider_name": "a"}, {"provider_name": "b"}]}}),
    );
    all_cfg["providers"]["b"]["from_headers"] = json!([{"name": "x-b-token"}]);
    let mut emu = start(engine, &all_cfg, true);
    let auth = format!("Bearer {token_a}");
    assert_denied(
        &send_bytes(&mut emu, "/x", &[("authorization", auth.as_bytes())]),
        401,
        "missing",
    );
    assert!(send_bytes(
        &mut emu,
        "/x",
        &[
            ("authorization", auth.as_bytes()),
            ("x-b-token", token_b.as_bytes())
        ]
    )
    .allowed());

    let mut emu = start(engine, &two_providers(json!({"allow_missing": {}})), true);
    assert!(send_bytes(&mut emu, "/x", &[]).allowed());
    assert!(send_bytes(&mut emu, "/x", &[("authorization", auth.as_bytes())]).allowed());
    let mut expired = claims();
    expired["exp"] = json!(NOW - 1000);
    let bad = format!("Bearer {}", mint(Algorithm::RS256, &expired));
    assert_denied(
        &send_bytes(&mut emu, "/x", &[("authorization", bad.as_bytes())]),
        401,
        "expired",
    );

    let mut cfg = two_providers(json!({"allow_missing_or_failed": {}}));
    cfg["providers"]["a"]["claim_to_headers"] =
        json!([{"header_name": "x-sub", "claim_name": "sub"}]);
    let mut emu = start(engine, &cfg, true);
    let o = send_bytes(
        &mut emu,
        "/x",
        &[("authorization", bad.as_bytes()), ("x-sub", b"forged")],
    );
    assert!(o.allowed());
    assert_eq!(
        o.header("x-sub"),
        None,
        "a failed token sets nothing, and forgeries go"
    );
    let o = send_bytes(&mut emu, "/x", &[("authorization", auth.as_bytes())]);
    assert_eq!(
        o.header("x-sub").as_deref(),
        Some("alice"),
        "a valid token still takes effect"
    );
}

#[engines]
fn provider_and_audiences_overrides_the_audience(engine: Engine) {
    let req = json!({"provider_and_audiences": {"provider_name": "a", "audiences": ["special"]}});
    let mut emu = start(engine, &two_providers(req), true);
    let t = mint(Algorithm::RS256, &claims());
    let auth = format!("Bearer {t}");
    assert_denied(
        &send_bytes(&mut emu, "/x", &[("authorization", auth.as_bytes())]),
        403,
        "bad_audience",
    );
    let mut c = claims();
    c["aud"] = json!(["special"]);
    let auth = format!("Bearer {}", mint(Algorithm::RS256, &c));
    assert!(send_bytes(&mut emu, "/x", &[("authorization", auth.as_bytes())]).allowed());
}

#[engines]
fn cors_preflight_bypass(engine: Engine) {
    let mut cfg = config_with(provider());
    cfg["bypass_cors_preflight"] = json!(true);
    let mut emu = start(engine, &cfg, true);
    let mut s = emu.http();
    s.request_headers(
        &[
            (":method", "OPTIONS"),
            (":path", "/api/x"),
            (":authority", "a"),
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
        true,
    );
    assert!(s.local_response().is_none());
    assert_eq!(emu.metric("jwt_auth.cors_preflight_bypassed"), Some(1));
}

#[engines]
fn the_cache_skips_verification_and_honours_exp(engine: Engine) {
    let mut p = provider();
    p["jwt_cache_config"] = json!({"jwt_cache_size": 2});
    let mut emu = start(engine, &config_with(p), true);
    let mut c = claims();
    c["exp"] = json!(NOW + 100);
    let t = mint(Algorithm::RS256, &c);
    for _ in 0..3 {
        assert!(send(&mut emu, Some(&t)).allowed());
    }
    assert_eq!(emu.metric("jwt_auth.verify.host"), Some(1));
    assert_eq!(emu.metric("jwt_auth.jwt_cache_hit"), Some(2));
    assert_eq!(emu.metric("jwt_auth.jwt_cache_miss"), Some(1));
    // Past exp + skew the cached token is refused.
    emu.advance_time(Duration::from_secs(161));
    assert_denied(&send(&mut emu, Some(&t)), 401, "expired");
    // Without jwt_cache_config there is no cache (as in Envoy).
    let mut emu = start(engine, &config_with(provider()), true);
    let t = mint(Algorithm::RS256, &claims());
    send(&mut emu, Some(&t));
    send(&mut emu, Some(&t));
    assert_eq!(emu.metric("jwt_auth.verify.host"), Some(2));
    assert_eq!(emu.metric("jwt_auth.jwt_cache_hit"), Some(0));
}

#[engines]
fn the_cache_is_bounded_and_a_tampered_token_never_hits(engine: Engine) {
    let mut p = provider();
    p["jwt_cache_config"] = json!({"jwt_cache_size": 2});
    let mut emu = start(engine, &config_with(p), true);
    let tokens: Vec<String> = (0..3)
        .map(|i| {
            let mut c = claims();
            c["n"] = json!(i);
            mint(Algorithm::ES256, &c)
        })
        .collect();
    for t in &tokens {
        assert!(send(&mut emu, Some(t)).allowed());
    }
    // tokens[0] was evicted: verified again.
    assert!(send(&mut emu, Some(&tokens[0])).allowed());
    assert_eq!(emu.metric("jwt_auth.verify.host"), Some(4));
    let mut bad = tokens[2].clone();
    bad.pop();
    bad.push('A');
    assert_eq!(send(&mut emu, Some(&bad)).status, Some(401));
}

fn remote_config(cache_duration: &str) -> Value {
    config_with(json!({
        "issuer": ISSUER,
        "remote_jwks": {
            "http_uri": {"uri": "https://idp.example.com/.well-known/jwks.json", "cluster": "idp", "timeout": "2s"},
            "cache_duration": cache_duration,
        },
    }))
}

#[engines]
fn remote_jwks_is_fetched_at_start_and_requests_wait_closed(engine: Engine) {
    let mut emu = start(engine, &remote_config("100s"), true);
    assert_eq!(emu.tick_period(), Some(Duration::from_secs(1)));
    let calls = emu.http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.upstream, "idp");
    let header = |n: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header(":path").as_deref(), Some("/.well-known/jwks.json"));
    assert_eq!(header(":authority").as_deref(), Some("idp.example.com"));
    assert_eq!(header(":method").as_deref(), Some("GET"));
    let t = mint(Algorithm::RS256, &claims());
    // Not fetched yet: fail closed, with one log line.
    assert_denied(&send(&mut emu, Some(&t)), 401, "jwks_unavailable");
    assert_denied(&send(&mut emu, Some(&t)), 401, "jwks_unavailable");
    let n = emu
        .logs_at(LogLevel::Warn)
        .iter()
        .filter(|m| m.contains("no JWKS fetched yet"))
        .count();
    assert_eq!(n, 1);
    assert!(emu.respond_http_call(call.token, &[(":status", "200")], JWKS.as_bytes()));
    assert_eq!(emu.metric("jwt_auth.jwks_fetch_success"), Some(1));
    assert!(send(&mut emu, Some(&t)).allowed());
    // No second fetch while fresh.
    emu.tick();
    assert!(emu.http_calls().is_empty());
}

#[engines]
fn remote_jwks_refreshes_before_expiry_and_failures_keep_the_good_set(engine: Engine) {
    let mut emu = start(engine, &remote_config("100s"), true);
    let token = emu.http_calls()[0].token;
    emu.respond_http_call(token, &[(":status", "200")], JWKS.as_bytes());
    let mut c = claims();
    c["exp"] = json!(NOW + 100_000);
    let t = mint(Algorithm::ES256, &c);
    emu.advance_time(Duration::from_secs(90));
    emu.tick();
    let refresh = emu.http_calls();
    assert_eq!(refresh.len(), 1, "refresh at 90% of cache_duration");
    // 5xx: keep the old set.
    emu.respond_http_call(refresh[0].token, &[(":status", "503")], b"down");
    assert!(emu.has_log("JWKS fetch failed: HTTP status 503; keeping the previous JWKS"));
    assert!(send(&mut emu, Some(&t)).allowed());
    // Garbage: keep it too.
    emu.advance_time(Duration::from_secs(1));
    emu.tick();
    let call = emu.http_calls()[0].token;
    emu.respond_http_call(call, &[(":status", "200")], b"<html>not json</html>");
    assert!(emu.has_log("JWKS is not JSON"));
    assert!(send(&mut emu, Some(&t)).allowed());
    // A 200 with a key set that has no usable key: kept.
    emu.advance_time(Duration::from_secs(2));
    emu.tick();
    let call = emu.http_calls()[0].token;
    emu.respond_http_call(
        call,
        &[(":status", "200")],
        br#"{"keys":[{"kty":"RSA","use":"enc"}]}"#,
    );
    assert!(send(&mut emu, Some(&t)).allowed());
    // Timeout / reset: kept.
    emu.advance_time(Duration::from_secs(4));
    emu.tick();
    let call = emu.http_calls()[0].token;
    emu.fail_http_call(call);
    assert!(emu.has_log("no response (timeout or connection failure)"));
    assert!(send(&mut emu, Some(&t)).allowed());
    assert_eq!(emu.metric("jwt_auth.jwks_fetch_failed"), Some(4));
    // Backoff: the next attempt is not before 8 s later.
    emu.advance_time(Duration::from_secs(7));
    emu.tick();
    assert!(emu.http_calls().is_empty());
    emu.advance_time(Duration::from_secs(1));
    emu.tick();
    let call = emu.http_calls()[0].token;
    // A new set replaces the old one: a set without the EC key now refuses ES256.
    let mut only_rsa: Value = serde_json::from_str(JWKS).unwrap();
    only_rsa["keys"] = json!([only_rsa["keys"][0].clone()]);
    emu.respond_http_call(call, &[(":status", "200")], only_rsa.to_string().as_bytes());
    assert_denied(&send(&mut emu, Some(&t)), 401, "no_matching_key");
}

#[engines]
fn remote_jwks_failing_from_the_start_stays_closed(engine: Engine) {
    let mut emu = start(engine, &remote_config("100s"), true);
    let call = emu.http_calls()[0].token;
    emu.respond_http_call(call, &[(":status", "500")], b"");
    assert!(emu.has_log("no JWKS yet: its tokens are refused"));
    let t = mint(Algorithm::RS256, &claims());
    assert_denied(&send(&mut emu, Some(&t)), 401, "jwks_unavailable");
}

#[engines]
fn an_unknown_cluster_is_logged_and_retried(engine: Engine) {
    let mut emu = engine.emulator();
    emu.set_known_clusters(&["other"]);
    emu.start(remote_config("100s").to_string()).unwrap();
    assert!(emu.has_log(
        "cannot fetch JWKS from https://idp.example.com/.well-known/jwks.json via cluster \"idp\""
    ));
    assert_eq!(emu.metric("jwt_auth.jwks_fetch_failed"), Some(1));
}

#[engines]
fn bad_configs_are_refused_naming_the_field(engine: Engine) {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"providers": {"p": {"issuer": "x"}}}),
            "providers.p.remote_jwks: one of local_jwks or remote_jwks is required",
        ),
        (
            json!({"providers": {"p": {"local_jwks": {"filename": "/etc/jwks.json"}}}}),
            "providers.p.local_jwks.filename: a Wasm filter cannot read files",
        ),
        (
            json!({"providers": {"p": {"local_jwks": {"inline_string": "{}"}}}}),
            "providers.p.local_jwks.inline_string: JWKS has no `keys` array",
        ),
        (
            json!({"providers": {"p": {"remote_jwks": {"http_uri": {"uri": "idp/jwks", "cluster": "c", "timeout": "1s"}}}}}),
            "providers.p.remote_jwks.http_uri.uri: \"idp/jwks\" is not an http:// or https:// URI",
        ),
        (
            json!({"providers": {"p": {"remote_jwks": {"http_uri": {"uri": "http://i/j", "cluster": "c", "timeout": "5m"}}}}}),
            "providers.p.remote_jwks.http_uri.timeout",
        ),
        (
            json!({"providers": {"p": provider()}, "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "q"}}]}),
            "rules[0].requires.provider_name: no provider named \"q\"",
        ),
        (
            json!({"providers": {"p": provider()}, "rules": [{"match": {"prefix": "/", "safe_regex": {"regex": "("}}}]}),
            "rules[0].match",
        ),
        (
            json!({"providers": {"p": provider()}, "rulez": []}),
            "unknown field `rulez`",
        ),
        (
            json!({"providers": {"p": {"local_jwks": {"inline_string": JWKS}, "claim_to_headers": [{"header_name": "bad name", "claim_name": "sub"}]}}}),
            "providers.p.claim_to_headers[0].header_name",
        ),
        (
            json!({"providers": {"p": {"local_jwks": {"inline_string": JWKS}, "clock_skew_seconds": "60"}}}),
            "providers.p.clock_skew_seconds",
        ),
        (
            json!({"max_token_bytes": 0}),
            "max_token_bytes: must be at least 1",
        ),
    ];
    for (cfg, expected) in cases {
        let mut emu = engine.emulator();
        let logs = emu.start(cfg.to_string()).expect_err(&cfg.to_string());
        assert!(logs.contains("invalid config at "), "{logs}");
        assert!(logs.contains(expected), "expected {expected:?} in {logs}");
    }
}

#[engines]
fn hostile_requests_get_401_and_never_trap(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    let cases: Vec<Vec<u8>> = vec![
        b"Bearer \xff\xfe\xfd".to_vec(),
        [b"Bearer ".as_slice(), &vec![0xff; 8192]].concat(),
        b"Bearer ...".to_vec(),
        b"Bearer a.b.c".to_vec(),
        b"Bearer eyJhbGciOiJSUzI1NiJ9.eyJ4Ijp7fX0.!!!!".to_vec(),
        format!(
            "Bearer {}.{}.AA",
            URL_SAFE_NO_PAD.encode("{\"alg\":\"RS256\"}"),
            URL_SAFE_NO_PAD.encode("[[[[[[[[[[")
        )
        .into_bytes(),
        format!(
            "Bearer {}.{}.AA",
            URL_SAFE_NO_PAD.encode("{\"alg\":\"RS256\"}"),
            URL_SAFE_NO_PAD.encode("[".repeat(5000))
        )
        .into_bytes(),
        format!(
            "Bearer {}.e30.AA",
            URL_SAFE_NO_PAD.encode("{\"alg\":\"ES256\",\"kid\":\"ec256-1\"}")
        )
        .into_bytes(),
    ];
    for value in cases {
        let o = send_bytes(&mut emu, "/api", &[("authorization", &value)]);
        assert_eq!(
            o.status,
            Some(401),
            "{:?}",
            String::from_utf8_lossy(&value[..value.len().min(60)])
        );
    }
    // Still serving.
    assert!(send(&mut emu, Some(&mint(Algorithm::RS256, &claims()))).allowed());
}

#[engines]
fn example_configs_start(engine: Engine) {
    for example in ["examples/jwt-auth.json", "examples/remote-jwks.json"] {
        let text =
            std::fs::read_to_string(format!("{}/{example}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut emu = engine.emulator();
        emu.start(&text)
            .unwrap_or_else(|e| panic!("{example}: {e}"));
    }
}

/// Random edits of a valid token (a character replaced, deleted or inserted, from the
/// base64url alphabet and `.`): every edited token must be refused, and nothing traps.
/// The signature covers the exact text, and base64url decoding is strict (no padding, no
/// stray trailing bits), so there is no harmless edit.
#[engines]
fn random_edits_of_a_valid_token_are_always_refused(engine: Engine) {
    let mut emu = start(engine, &config_with(provider()), true);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::HS256] {
        let token = mint(alg, &claims()).into_bytes();
        for _ in 0..400 {
            let mut t = token.clone();
            let at = next(t.len());
            match next(3) {
                0 => t[at] = ALPHABET[next(ALPHABET.len())],
                1 => {
                    t.remove(at);
                }
                _ => t.insert(at, ALPHABET[next(ALPHABET.len())]),
            }
            if t == token {
                continue;
            }
            let t = String::from_utf8(t).unwrap();
            let o = send(&mut emu, Some(&t));
            assert_eq!(o.status, Some(401), "{alg:?}: edited token accepted: {t}");
        }
    }
    assert!(send(&mut emu, Some(&mint(Algorithm::RS256, &claims()))).allowed());
}

#[engines]
fn a_host_that_refuses_the_call_falls_back_to_rust_every_time(engine: Engine) {
    let mut emu = engine.emulator();
    emu.register_foreign_function("verify_signature", |_| {
        Err(sdk_ext::testing::Status::BadArgument)
    });
    emu.start(config_with(provider()).to_string()).unwrap();
    for _ in 0..2 {
        assert!(send(&mut emu, Some(&mint(Algorithm::RS256, &claims()))).allowed());
    }
    // Unlike NotFound, a refusal is not remembered: the host is asked again next time.
    assert_eq!(emu.metric("jwt_auth.verify.rust"), Some(2));
    let refusals = emu
        .logs_at(LogLevel::Warn)
        .iter()
        .filter(|m| m.contains("refused the call"))
        .count();
    assert_eq!(refusals, 2);
    // A forged signature still fails on the fallback.
    let t = mint(Algorithm::RS256, &claims());
    let forged = format!("{}A", &t[..t.len() - 1]);
    assert_eq!(send(&mut emu, Some(&forged)).status, Some(401));
}

#[engines]
fn a_jwks_body_over_one_mib_never_replaces_the_set(engine: Engine) {
    let mut emu = start(engine, &remote_config("100s"), true);
    let call = emu.http_calls()[0].token;
    // A valid JWKS padded with whitespace past the 1 MiB cap.
    let mut body = JWKS.as_bytes().to_vec();
    body.resize((1 << 20) + 1, b' ');
    emu.respond_http_call(call, &[(":status", "200")], &body);
    assert!(emu.has_log("body over 1048576 bytes"));
    assert_denied(
        &send(&mut emu, Some(&mint(Algorithm::RS256, &claims()))),
        401,
        "jwks_unavailable",
    );
}

fn remote_with(timeout: &str, cache_duration: &str) -> Value {
    config_with(json!({
        "issuer": ISSUER,
        "remote_jwks": {
            "http_uri": {"uri": "https://idp.example.com/.well-known/jwks.json", "cluster": "idp", "timeout": timeout},
            "cache_duration": cache_duration,
        },
    }))
}

#[engines]
fn durations_the_host_cannot_carry_are_refused_naming_the_field(engine: Engine) {
    // The host takes the callout timeout as a u32 of milliseconds: 4294968s (2^32 ms +
    // 704 ms) used to reach it as 704 ms.
    for (timeout, cache, field) in [
        (
            "4294968s",
            "100s",
            "providers.p.remote_jwks.http_uri.timeout",
        ),
        (
            "4294967.296s",
            "100s",
            "providers.p.remote_jwks.http_uri.timeout",
        ),
        (
            "315576000000s",
            "100s",
            "providers.p.remote_jwks.http_uri.timeout",
        ),
        (
            "0.0005s",
            "100s",
            "providers.p.remote_jwks.http_uri.timeout",
        ),
        (
            "2s",
            "18446744073709551615s",
            "providers.p.remote_jwks.cache_duration",
        ),
        (
            "2s",
            "315576000001s",
            "providers.p.remote_jwks.cache_duration",
        ),
    ] {
        let mut emu = engine.emulator();
        let refusal = emu
            .start(remote_with(timeout, cache).to_string())
            .expect_err(&format!("{timeout} / {cache} accepted"));
        let want = format!("invalid config at {field}:");
        assert!(
            refusal.contains(&want),
            "{timeout} / {cache}: want {want:?} in {refusal:?}"
        );
    }
    // The longest timeout the host can carry reaches it unchanged.
    let mut emu = start(engine, &remote_with("4294967.295s", "315576000000s"), true);
    let calls = emu.http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].timeout, Duration::from_millis(u64::from(u32::MAX)));
    // And a huge cache_duration does not wrap the refresh schedule: fetched once, not again.
    let call = calls[0].token;
    emu.respond_http_call(call, &[(":status", "200")], JWKS.as_bytes());
    assert!(send(&mut emu, Some(&mint(Algorithm::RS256, &claims()))).allowed());
    for _ in 0..5 {
        emu.advance_time(Duration::from_secs(3600));
        emu.tick();
    }
    assert!(
        emu.http_calls().is_empty(),
        "no refetch: {:?}",
        emu.http_calls()
    );
}

/// Every field name in lowerCamelCase, as Envoy's proto-JSON accepts (`localJwks`,
/// `fromHeaders`, `claimToHeaders`, `pathSeparatedPrefix`...); provider names are map keys
/// and stay as written.
fn camel_case_fields(v: &Value, map_of_names: bool) -> Value {
    fn camel(k: &str) -> String {
        let mut out = String::new();
        let mut up = false;
        for c in k.chars() {
            if c == '_' {
                up = true;
            } else if up {
                out.push(c.to_ascii_uppercase());
                up = false;
            } else {
                out.push(c);
            }
        }
        out
    }
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = if map_of_names { k.clone() } else { camel(k) };
                    (key, camel_case_fields(v, !map_of_names && k == "providers"))
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| camel_case_fields(i, false)).collect())
        }
        other => other.clone(),
    }
}

#[engines]
fn proto_json_lower_camel_case_configs_load_and_behave_the_same(engine: Engine) {
    let snake = config_with(provider());
    let camel = camel_case_fields(&snake, false);
    let text = camel.to_string();
    assert!(
        text.contains("\"fromHeaders\"")
            || text.contains("\"claimToHeaders\"")
            || text.contains("\"localJwks\""),
        "{text}"
    );
    let mut emu = start(engine, &camel, true);
    assert!(send(&mut emu, Some(&mint(Algorithm::RS256, &claims()))).allowed());
    assert_denied(&send(&mut emu, None), 401, "missing");
}

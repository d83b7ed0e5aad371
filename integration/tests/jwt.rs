//! jwt-auth in a real Envoy: tokens minted by PyJWT (an independent implementation),
//! the host's BoringSSL fast path, responses, hostile input, and a remote JWKS served by
//! a test upstream, including its failures (5xx, timeout, garbage) and a key rotation. Every
//! test runs with both loadings (`each_loading!`: the `.wasm`, and the same crate as a
//! dynamic module, whose `verify_signature` is in-process and whose remote JWKS is fetched
//! by the configuration's root context on Envoy's main thread).

use integration::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const EXAMPLE: &str = include_str!("../../filters/jwt-auth/examples/jwt-auth.json");
const JWKS: &str = include_str!("../../filters/jwt-auth/testdata/jwks.json");
const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "api.example.com";

/// Tokens minted by PyJWT from the test keys: algorithm (or "expired", ...) → token.
fn peer_tokens(issuer: &str) -> Value {
    let python = repo_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(repo_root().join("integration/peer/mint_tokens.py"))
        .args([issuer, AUDIENCE])
        .output()
        .unwrap_or_else(|e| panic!("{} (run `make setup`): {e}", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn jwt_auth(config: &str) -> WasmFilter {
    WasmFilter::new("jwt-auth", config).root_id("jwt-auth")
}

/// Envoy serving the example config in front of an echo upstream.
fn start_example() -> (EchoUpstream, Envoy) {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(jwt_auth(EXAMPLE))
        .start()
        .unwrap();
    (echo, envoy)
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

each_loading! {
fn every_peer_minted_token_is_accepted_and_rs_es_use_host_crypto() {
    let (echo, envoy) = start_example();
    let tokens = peer_tokens(ISSUER);
    let algs = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
        "HS384", "HS512",
    ];
    for alg in algs {
        let token = tokens[alg].as_str().unwrap();
        let resp = envoy.get("/api/items", &[("authorization", &bearer(token))]);
        assert_eq!(resp.status, 200, "{alg}: {}", resp.text());
        let seen = echo.last_request().unwrap();
        assert_eq!(seen.header("authorization"), None, "{alg}: token stripped");
        assert_eq!(seen.header("x-jwt-sub"), Some(&b"peer-alice"[..]), "{alg}");
        assert!(seen.header("x-jwt-payload").is_some(), "{alg}");
    }
    // RS* and ES* were verified by Envoy's BoringSSL through verify_signature, the rest in
    // Wasm: this proves the DER keys and signatures we hand the host are right.
    assert_eq!(envoy.stat("wasmcustom.jwt_auth.verify.host"), Some(5));
    assert_eq!(envoy.stat("wasmcustom.jwt_auth.verify.rust"), Some(7));
    assert_eq!(envoy.stat("wasmcustom.jwt_auth.requests_allowed"), Some(12));
}
}

each_loading! {
fn refusals_are_401_or_403_with_www_authenticate() {
    let (echo, envoy) = start_example();
    let tokens = peer_tokens(ISSUER);

    let resp = envoy.get("/api/items", &[("host", b"api.example.com")]);
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"http://api.example.com/api/items\"")
    );
    assert_eq!(resp.json()["message"], "Jwt is missing");

    for (name, status, stat) in [
        ("expired", 401, "expired"),
        ("wrong_key", 401, "bad_signature"),
        ("wrong_audience", 403, "bad_audience"),
    ] {
        let token = tokens[name].as_str().unwrap();
        let resp = envoy.get("/api/items", &[("authorization", &bearer(token))]);
        assert_eq!(resp.status, status, "{name}: {}", resp.text());
        assert!(resp
            .header("www-authenticate")
            .unwrap()
            .ends_with("error=\"invalid_token\""));
        assert_eq!(
            envoy.stat(&format!("wasmcustom.jwt_auth.denied.reason.{stat}")),
            Some(1),
            "{name}"
        );
    }
    let other = peer_tokens("https://evil.example.com");
    let resp = envoy.get(
        "/api/items",
        &[("authorization", &bearer(other["RS256"].as_str().unwrap()))],
    );
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["message"], "Jwt issuer is not configured");
    // Paths without a requirement pass; nothing reached the upstream for the refusals.
    assert_eq!(envoy.get("/health", &[]).status, 200);
    assert_eq!(echo.request_count(), 1);
}
}

each_loading! {
fn hostile_tokens_get_401_and_the_vm_survives() {
    let (_echo, envoy) = start_example();
    let created = envoy.stat("wasm.envoy.wasm.runtime.v8.created");
    let huge = [b"Bearer ".as_slice(), &[0xffu8; 8192]].concat();
    let cases: Vec<Vec<u8>> = vec![
        b"Bearer \xff\xfe.\x80.\x81".to_vec(),
        huge,
        b"Bearer a.b.c".to_vec(),
        b"Bearer ....".to_vec(),
        format!("Bearer {}", "A".repeat(7000)).into_bytes(),
    ];
    for value in &cases {
        let resp = envoy.get("/api/items", &[("authorization", value)]);
        assert_eq!(resp.status, 401, "{}", resp.text());
    }
    let token = peer_tokens(ISSUER)["ES256"].as_str().unwrap().to_string();
    let resp = envoy.get("/api/items", &[("authorization", &bearer(&token))]);
    assert_eq!(resp.status, 200, "still serving");
    assert_eq!(envoy.stat("wasm.envoy.wasm.runtime.v8.created"), created);
    let reloads: u64 = envoy
        .stats()
        .lines()
        .filter(|l| l.contains("vm_reload"))
        .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(reloads, 0, "no VM was reloaded");
}
}

fn remote_config(cache_duration: &str, timeout: &str) -> String {
    json!({
        "providers": {"idp": {
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "remote_jwks": {
                "http_uri": {"uri": "http://idp.test/.well-known/jwks.json", "cluster": "idp", "timeout": timeout},
                "cache_duration": cache_duration,
            },
        }},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "idp"}}],
    })
    .to_string()
}

fn start_remote(idp: &FixedUpstream, cache_duration: &str, timeout: &str) -> (EchoUpstream, Envoy) {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .cluster("idp", idp.port())
        .filter(jwt_auth(&remote_config(cache_duration, timeout)))
        .start()
        .unwrap();
    (echo, envoy)
}

const WAIT: Duration = Duration::from_secs(10);

/// Polls stat `name` until it is at least `n` (a counter that may run past `n`).
fn wait_at_least(envoy: &Envoy, name: &str, n: u64) -> u64 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = envoy.stat(name).unwrap_or(0);
        if now >= n || std::time::Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// The remote-JWKS tests run with both loadings: as a dynamic module, the plugin's root
// context is the configuration's on Envoy's main thread (its callouts through the config,
// its ticks from the config scheduler), and the workers follow the set it publishes.

each_loading! {
fn remote_jwks_is_fetched_from_the_cluster_and_refreshed() {
    let idp = FixedUpstream::start(200, JWKS);
    let (_echo, envoy) = start_remote(&idp, "2s", "1s");
    assert!(wait_at_least(&envoy, "wasmcustom.jwt_auth.jwks_fetch_success", 1) >= 1);
    assert!(idp.paths().iter().all(|p| p == "/.well-known/jwks.json"));
    let tokens = peer_tokens(ISSUER);
    let resp = envoy.get(
        "/x",
        &[("authorization", &bearer(tokens["RS256"].as_str().unwrap()))],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The IdP starts failing: refreshes fail, the good set stays in use.
    idp.set_response(503, "down");
    assert!(wait_at_least(&envoy, "wasmcustom.jwt_auth.jwks_fetch_failed", 1) >= 1);
    assert!(envoy.wait_for_log("keeping the previous JWKS", WAIT));
    let resp = envoy.get(
        "/x",
        &[("authorization", &bearer(tokens["ES256"].as_str().unwrap()))],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Garbage does not replace it either.
    idp.set_response(200, "<html>");
    assert!(envoy.wait_for_log("JWKS is not JSON", WAIT));
    let resp = envoy.get(
        "/x",
        &[("authorization", &bearer(tokens["RS256"].as_str().unwrap()))],
    );
    assert_eq!(resp.status, 200);
}
}

each_loading! {
/// A key the IdP adds (rotation) is used after the next refresh: tokens it signed are
/// refused before, accepted after; the keys that were there stay usable throughout.
fn a_rotated_in_key_is_picked_up_on_refresh() {
    let full: Value = serde_json::from_str(JWKS).unwrap();
    let mut without_rsa = full.clone();
    without_rsa["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kty"] != "RSA");
    assert!(without_rsa["keys"].as_array().unwrap().len() < full["keys"].as_array().unwrap().len());
    let idp = FixedUpstream::start(200, without_rsa.to_string());
    let (echo, envoy) = start_remote(&idp, "2s", "1s");
    assert!(wait_at_least(&envoy, "wasmcustom.jwt_auth.jwks_fetch_success", 1) >= 1);
    let tokens = peer_tokens(ISSUER);
    let rs = bearer(tokens["RS256"].as_str().unwrap());
    let es = bearer(tokens["ES256"].as_str().unwrap());
    let resp = envoy.get("/x", &[("authorization", &es)]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = envoy.get("/x", &[("authorization", &rs)]);
    assert_eq!(resp.status, 401, "no RSA key yet: {}", resp.text());
    // The IdP rotates the RSA key in; the next refresh (at 90 % of 2 s) brings it.
    let before = envoy.stat("wasmcustom.jwt_auth.jwks_fetch_success").unwrap_or(0);
    idp.set_response(200, JWKS);
    assert!(
        wait_at_least(&envoy, "wasmcustom.jwt_auth.jwks_fetch_success", before + 1) > before,
        "a refresh: {}",
        envoy.log()
    );
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        let status = envoy.get("/x", &[("authorization", &rs)]).status;
        if status == 200 || std::time::Instant::now() >= deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "the rotated-in key: {}", envoy.log());
    assert_eq!(envoy.get("/x", &[("authorization", &es)]).status, 200);
    if Loading::current() == Loading::Native {
        // The worker used the sets the main thread's root context fetched.
        assert!(
            envoy.log().matches("using the JWKS its root context fetched").count() >= 2,
            "{}",
            envoy.log()
        );
    }
    assert_eq!(echo.request_count(), 3);
}
}

each_loading! {
fn remote_jwks_failures_keep_requests_closed() {
    for (status, body, delay, log) in [
        (500, JWKS, Duration::ZERO, "HTTP status 500"),
        (
            200,
            "{\"keys\": 7}",
            Duration::ZERO,
            "JWKS `keys` is not an array",
        ),
        // Envoy answers a callout that times out with its own 504.
        (200, JWKS, Duration::from_secs(3), "HTTP status 504"),
    ] {
        let idp = FixedUpstream::start(status, body);
        idp.set_delay(delay);
        let (echo, envoy) = start_remote(&idp, "60s", "0.5s");
        assert!(envoy.wait_for_log(log, WAIT), "{log}: {}", envoy.log());
        let token = peer_tokens(ISSUER)["RS256"].as_str().unwrap().to_string();
        let resp = envoy.get("/x", &[("authorization", &bearer(&token))]);
        assert_eq!(resp.status, 401, "{log}");
        assert_eq!(resp.json()["message"], "Jwks remote fetch is failed");
        assert!(
            envoy.log().contains("no JWKS fetched yet"),
            "a clear log line"
        );
        assert_eq!(echo.request_count(), 0);
    }
}
}

each_loading! {
fn a_bad_config_is_refused_naming_the_field() {
    let echo = EchoUpstream::start();
    let bad = r#"{"providers":{"p":{"local_jwks":{"filename":"/etc/jwks.json"}}}}"#;
    let err = EnvoyConfig::http(echo.port())
        .filter(jwt_auth(bad))
        .start()
        .err()
        .expect("Envoy must refuse the config");
    assert!(
        err.log
            .contains("jwt-auth: invalid config at providers.p.local_jwks.filename"),
        "{}",
        err.log
    );
    // 4294968s is 2^32 ms + 704 ms: refused, never handed to the host as 704 ms.
    let idp = FixedUpstream::start(200, JWKS);
    let err = EnvoyConfig::http(echo.port())
        .cluster("idp", idp.port())
        .filter(jwt_auth(&remote_config("60s", "4294968s")))
        .start()
        .err()
        .expect("Envoy must refuse a timeout the host cannot carry");
    assert!(
        err.log.contains(
            "jwt-auth: invalid config at providers.idp.remote_jwks.http_uri.timeout: 4294968s is over 4294967s"
        ),
        "{}",
        err.log
    );
}
}

each_loading! {
/// The example config writes `x-jwt-sub` and `x-jwt-payload`: a client's copies of them are
/// removed whatever rule matched, so a route without `requires` and a bypassed CORS preflight
/// cannot carry a forged identity to the upstream.
fn forged_identity_headers_never_reach_the_upstream() {
    let (echo, envoy) = start_example();
    let forged: [(&str, &[u8]); 2] = [
        ("x-jwt-sub", b"admin"),
        ("x-jwt-payload", b"eyJzdWIiOiJhZG1pbiJ9"),
    ];
    // `/health`: a rule with no `requires`.
    let resp = envoy.get("/health", &forged);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = echo.last_request().unwrap();
    assert_eq!(seen.path, "/health");
    assert_eq!(
        seen.header("x-jwt-sub"),
        None,
        "forged x-jwt-sub on /health"
    );
    assert_eq!(
        seen.header("x-jwt-payload"),
        None,
        "forged payload on /health"
    );
    // A path no rule covers.
    let resp = envoy.get("/elsewhere", &forged);
    assert_eq!(resp.status, 200);
    let seen = echo.last_request().unwrap();
    assert_eq!(seen.header("x-jwt-sub"), None, "forged x-jwt-sub, no rule");
    // A CORS preflight to a covered path, let through by `bypass_cors_preflight`.
    let mut preflight = forged.to_vec();
    preflight.push(("origin", b"https://app.example.com"));
    preflight.push(("access-control-request-method", b"GET"));
    let resp = http_request(
        envoy.listener_port(),
        "OPTIONS",
        "/api/items",
        &preflight,
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = echo.last_request().unwrap();
    assert_eq!(seen.method, "OPTIONS");
    assert_eq!(
        seen.header("x-jwt-sub"),
        None,
        "forged x-jwt-sub on a preflight"
    );
    assert_eq!(
        seen.header("x-jwt-payload"),
        None,
        "forged payload on a preflight"
    );
    assert_eq!(
        envoy.stat("wasmcustom.jwt_auth.cors_preflight_bypassed"),
        Some(1)
    );
    // A verified token replaces the forgery with the token's own claim.
    let token = peer_tokens(ISSUER)["RS256"].as_str().unwrap().to_string();
    let auth = bearer(&token);
    let mut with_token = forged.to_vec();
    with_token.push(("authorization", &auth));
    assert_eq!(envoy.get("/api/items", &with_token).status, 200);
    let seen = echo.last_request().unwrap();
    assert_eq!(seen.header("x-jwt-sub"), Some(&b"peer-alice"[..]));
    assert_eq!(seen.header_all("x-jwt-sub").len(), 1);
}
}

each_loading! {
/// A validly signed token whose `sub` holds CR LF (or other control bytes) would be copied
/// into `x-jwt-sub`, which Envoy's router refuses (503 `invalid_header_value_for`) after the
/// filter counted the request as allowed. jwt-auth refuses it itself: 401, counted.
fn a_claim_that_is_no_header_value_is_a_401_never_a_503() {
    let (echo, envoy) = start_example();
    let tokens = peer_tokens(ISSUER);
    for (n, name) in ["crlf_sub", "ctl_sub"].into_iter().enumerate() {
        let token = tokens[name].as_str().unwrap();
        let resp = envoy.get("/api/items", &[("authorization", &bearer(token))]);
        assert_eq!(resp.status, 401, "{name}: {}", resp.text());
        assert!(
            resp.header("www-authenticate")
                .unwrap()
                .ends_with("error=\"invalid_token\""),
            "{name}"
        );
        assert_eq!(
            envoy.stat("wasmcustom.jwt_auth.denied.reason.bad_claim_value"),
            Some(n as u64 + 1),
            "{name}"
        );
    }
    assert_eq!(
        envoy
            .stat("wasmcustom.jwt_auth.requests_allowed")
            .unwrap_or(0),
        0
    );
    assert_eq!(echo.request_count(), 0, "nothing reached the upstream");
    // The same claims, well formed, still pass.
    let resp = envoy.get(
        "/api/items",
        &[("authorization", &bearer(tokens["RS256"].as_str().unwrap()))],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(envoy.stat("wasmcustom.jwt_auth.requests_allowed"), Some(1));
}
}

//! opa-policy in a real Envoy: the built `dist/opa-policy.wasm` with real Rego (OPA's Envoy
//! tutorial policy with data lookups, JWT claims and a JSON body, decisions with headers and
//! statuses), refused configs naming module and line, the time limit, non-UTF-8 and huge
//! headers, the remote mode against an OPA-shaped upstream, and the shipped
//! `envoy-configs/opa-policy.yaml`.

use integration::*;
use std::time::Duration;

const AUTHZ: &str = include_str!("../../filters/opa-policy/examples/envoy-authz.json");
const JWT: &str = include_str!("../../filters/opa-policy/examples/jwt-claims.json");
const DECISIONS: &str = include_str!("../../filters/opa-policy/examples/decisions.json");
const REMOTE: &str = include_str!("../../filters/opa-policy/examples/remote.json");

fn this_filter(config: &str) -> WasmFilter {
    WasmFilter::new("opa-policy", config).root_id("opa-policy")
}

fn start(echo: &EchoUpstream, config: &str) -> Envoy {
    EnvoyConfig::http(echo.port())
        .filter(this_filter(config))
        .start()
        .unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn basic(user: &str) -> Vec<u8> {
    format!("Basic {}", b64url(format!("{user}:pw").as_bytes())).into_bytes()
}

#[test]
fn the_tutorial_policy_decides_with_its_data() {
    let echo = EchoUpstream::start();
    let envoy = start(&echo, AUTHZ);
    let alice = basic("alice");
    let bob = basic("bob");
    assert_eq!(
        envoy
            .get("/productpage", &[("authorization", &alice)])
            .status,
        200
    );
    let denied = envoy.get("/api/v1/products", &[("authorization", &alice)]);
    assert_eq!(denied.status, 403, "{}", denied.text());
    assert_eq!(denied.json()["error"], "forbidden");
    assert_eq!(
        envoy
            .get("/api/v1/products", &[("authorization", &bob)])
            .status,
        200
    );
    assert_eq!(envoy.get("/productpage", &[]).status, 403);
    assert_eq!(envoy.get("/ready", &[]).status, 200, "skipped");
    assert_eq!(
        echo.request_count(),
        3,
        "denied requests never reach the upstream"
    );
    assert_eq!(envoy.stat("wasmcustom.opa_policy.allowed"), Some(2));
    assert_eq!(envoy.stat("wasmcustom.opa_policy.denied"), Some(2));
    assert_eq!(envoy.stat("wasmcustom.opa_policy.skipped"), Some(1));
}

#[test]
fn jwt_claims_and_json_bodies() {
    let echo = EchoUpstream::start();
    // The body phase after a paused header phase needs Envoy's allow_on_headers_stop_iteration.
    let envoy = EnvoyConfig::http(echo.port())
        .filter(this_filter(JWT).stop_iteration_on_headers(true))
        .start()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |role: &str, sub: &str| {
        let payload = serde_json::json!({"role": role, "sub": b64url(sub.as_bytes()), "nbf": now - 60, "exp": now + 600});
        format!(
            "Bearer {}.{}.c2ln",
            b64url(br#"{"alg":"HS256"}"#),
            b64url(payload.to_string().as_bytes())
        )
    };
    let guest = token("guest", "alice");
    let admin = token("admin", "bob");
    assert_eq!(
        envoy
            .get("/people", &[("authorization", guest.as_bytes())])
            .status,
        200
    );
    assert_eq!(
        envoy
            .get("/other", &[("authorization", guest.as_bytes())])
            .status,
        403
    );
    let port = envoy.listener_port();
    let post = |auth: &str, body: &str| {
        http_request(
            port,
            "POST",
            "/people",
            &[
                ("authorization", auth.as_bytes()),
                ("content-type", b"application/json"),
            ],
            body.as_bytes(),
        )
    };
    let ok = post(&admin, r#"{"firstname": "Charlie"}"#);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        ok.echoed().body,
        r#"{"firstname": "Charlie"}"#,
        "the body went on"
    );
    assert_eq!(post(&admin, r#"{"firstname": "Bob"}"#).status, 403);
    assert_eq!(post(&guest, r#"{"firstname": "Charlie"}"#).status, 403);
    assert_eq!(envoy.stat("wasmcustom.opa_policy.allowed"), Some(2));
}

#[test]
fn decisions_set_headers_and_statuses() {
    let echo = EchoUpstream::start();
    let envoy = start(&echo, DECISIONS);
    let resp = envoy.get("/api/x", &[("x-api-key", b"k-bob"), ("x-user", b"forged")]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-checked-by").as_deref(), Some("opa-policy"));
    let seen = echo.last_request().unwrap();
    assert_eq!(seen.header_all("x-user"), vec![&b"bob"[..]]);
    assert_eq!(seen.header("x-policy-version"), Some(&b"7"[..]));
    assert_eq!(seen.header("x-api-key"), None);
    let resp = envoy.get("/api/x", &[]);
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("www-authenticate").as_deref(), Some("ApiKey"));
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(resp.text(), r#"{"reason":"api key required"}"#);
    assert_eq!(envoy.get("/api/x", &[("x-api-key", b"nope")]).status, 403);
}

#[test]
fn a_syntax_error_is_refused_with_its_module_and_line() {
    let echo = EchoUpstream::start();
    let config = serde_json::json!({
        "policies": {"p": {"modules": [{"name": "authz.rego", "rego": "package envoy.authz\n\nallow if {\n  input.x ==\n}\n"}], "query": "data.envoy.authz.allow"}}
    })
    .to_string();
    let err = EnvoyConfig::http(echo.port())
        .filter(this_filter(&config))
        .start()
        .err()
        .expect("Envoy must refuse the config");
    assert!(
        err.log.contains(
            "opa-policy: invalid config at policies.p.modules[0].rego: authz.rego:5:1: error:"
        ),
        "{err:?}"
    );
}

#[test]
fn a_runaway_policy_is_stopped_and_the_worker_lives_on() {
    let echo = EchoUpstream::start();
    let config = serde_json::json!({
        "policies": {"p": {"modules": [{"name": "loop.rego", "rego": "package x\ndefault allow := false\nallow if { input.parsed_path[0] == \"spin\"; count([y | some a in numbers.range(1, 4000); some b in numbers.range(1, 4000); y := a + b]) > 1 }\nallow if input.parsed_path[0] == \"ok\"\n"}], "query": "data.x.allow"}},
        "limits": {"eval_timeout": "0.01s"}
    })
    .to_string();
    let envoy = start(&echo, &config);
    let started = std::time::Instant::now();
    let resp = envoy.get("/spin", &[]);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(envoy.stat("wasmcustom.opa_policy.limit_exceeded"), Some(1));
    assert_eq!(envoy.get("/ok", &[]).status, 200, "the VM still serves");
}

#[test]
fn non_utf8_and_huge_headers() {
    let echo = EchoUpstream::start();
    let config = serde_json::json!({
        "policies": {"p": {"modules": [{"name": "h.rego", "rego": "package x\ndefault allow := false\nallow if startswith(input.attributes.request.http.headers[\"x-user\"], \"caf\")\n"}], "query": "data.x.allow"}},
        "limits": {"max_input_bytes": 16384}
    })
    .to_string();
    let envoy = start(&echo, &config);
    assert_eq!(envoy.get("/", &[("x-user", b"caf\xe9\xff")]).status, 200);
    let big = vec![b'a'; 20_000];
    let resp = envoy.get("/", &[("x-user", b"cafe"), ("x-big", &big)]);
    assert_eq!(resp.status, 403);
    assert_eq!(envoy.stat("wasmcustom.opa_policy.limit_exceeded"), Some(1));
}

#[test]
fn remote_mode_posts_the_documented_input_to_opa() {
    // An OPA-shaped upstream that records what it gets (its echo is no `{"result": ...}`:
    // the request fails closed, and the input is checked).
    let opa = EchoUpstream::start();
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .cluster("opa", opa.port())
        .filter(this_filter(REMOTE))
        .start()
        .unwrap();
    let resp = envoy.get("/api/people?lang=en&lang=fr", &[("x-tenant", b"t1")]);
    assert_eq!(resp.status, 403);
    assert_eq!(envoy.stat("wasmcustom.opa_policy.remote_failed"), Some(1));
    let asked = opa.last_request().expect("OPA was asked");
    assert_eq!(asked.method, "POST");
    assert_eq!(asked.path, "/v1/data/envoy/authz/allow");
    assert_eq!(asked.header("content-type"), Some(&b"application/json"[..]));
    let body: serde_json::Value = serde_json::from_slice(&asked.body).unwrap();
    let input = &body["input"];
    let http = &input["attributes"]["request"]["http"];
    assert_eq!(http["method"], "GET");
    assert_eq!(http["path"], "/api/people?lang=en&lang=fr");
    assert_eq!(http["headers"]["x-tenant"], "t1");
    assert_eq!(http["headers"][":path"], "/api/people?lang=en&lang=fr");
    assert_eq!(http["protocol"], "HTTP/1.1");
    assert!(http["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(
        http["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{http}"
    );
    let src = &input["attributes"]["source"]["address"]["socketAddress"];
    assert_eq!(src["address"], "127.0.0.1");
    assert!(src["portValue"].as_u64().is_some());
    assert_eq!(input["parsed_path"], serde_json::json!(["api", "people"]));
    assert_eq!(
        input["parsed_query"],
        serde_json::json!({"lang": ["en", "fr"]})
    );
    assert_eq!(input["truncated_body"], false);
    assert_eq!(input["version"]["ext_authz"], "v3");
    assert_eq!(echo.request_count(), 0);
}

#[test]
fn remote_mode_applies_the_result_and_fails_closed_on_timeout() {
    let opa = FixedUpstream::start(
        200,
        r#"{"result": {"allowed": true, "headers": {"x-opa": "yes"}}}"#,
    );
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .cluster("opa", opa.port())
        .filter(this_filter(REMOTE))
        .start()
        .unwrap();
    let resp = envoy.get("/api", &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        echo.last_request().unwrap().header("x-opa"),
        Some(&b"yes"[..])
    );
    opa.set_response(200, r#"{"result": false}"#);
    assert_eq!(envoy.get("/api", &[]).status, 403);
    opa.set_response(200, r#"{"result": true}"#);
    opa.set_delay(Duration::from_millis(600));
    let started = std::time::Instant::now();
    assert_eq!(envoy.get("/api", &[]).status, 403, "0.25s timeout");
    assert!(started.elapsed() < Duration::from_millis(590));
    assert_eq!(envoy.stat("wasmcustom.opa_policy.remote_failed"), Some(1));
    assert_eq!(envoy.get("/health", &[]).status, 200);
}

#[test]
fn the_shipped_envoy_config_serves_it() {
    let echo = EchoUpstream::start();
    let envoy = Envoy::start_file("envoy-configs/opa-policy.yaml", &[(8080, echo.port())]).unwrap();
    assert_eq!(
        envoy
            .get("/productpage", &[("authorization", &basic("alice"))])
            .status,
        200
    );
    assert_eq!(
        envoy
            .get("/api/v1/products", &[("authorization", &basic("alice"))])
            .status,
        403
    );
    assert_eq!(envoy.stat("wasmcustom.opa_policy.denied"), Some(1));
}

//! The whole cors filter in the host emulator: preflights, actual requests, rejections,
//! Vary, per-route rules, hostile input, metrics, refused configs.

use sdk_ext::testing::{engines, Action, Emulator, Engine, Module};

/// The filter in both builds: every test below runs natively and on `dist/cors.wasm`.
static MODULE: Module = Module::new(&cors::EXPORTS, "dist/cors.wasm");

const EXAMPLE: &str = include_str!("../examples/spa-api.json");

fn start(engine: Engine, config: &str) -> Emulator {
    let mut emu = engine.emulator();
    assert_eq!(emu.start(config), Ok(()));
    emu
}

fn preflight<'a>(path: &'a str, origin: &'a str, method: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (":method", "OPTIONS"),
        (":path", path),
        (":authority", "api.example.com"),
        ("origin", origin),
        ("access-control-request-method", method),
        ("access-control-request-headers", "content-type"),
    ]
}

#[engines]
fn preflight_is_answered_locally_with_200_and_no_body(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    let a = s.request_headers(
        &preflight("/api/users", "https://app.example.com", "PUT"),
        true,
    );
    assert_eq!(a, Action::Pause);
    let r = s.local_response().expect("answered locally");
    assert_eq!(r.status_code, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header_str("content-type"), None);
    assert_eq!(r.details, "cors_response");
    assert_eq!(
        r.header_str("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header_str("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        r.header_str("access-control-allow-methods").as_deref(),
        Some("GET, POST, PUT, DELETE")
    );
    assert_eq!(
        r.header_str("access-control-allow-headers").as_deref(),
        Some("authorization, content-type, x-request-id")
    );
    assert_eq!(
        r.header_str("access-control-max-age").as_deref(),
        Some("600")
    );
    assert_eq!(r.header_str("vary").as_deref(), Some("origin"));
    assert_eq!(emu.metric("cors.preflight"), Some(1));
    assert_eq!(emu.metric("cors.origin_valid"), Some(1));
}

#[engines]
fn regex_origins_match_whole_values(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    s.request_headers(
        &preflight("/api/x", "https://pr-42.preview.example.com", "GET"),
        true,
    );
    let r = s.local_response().unwrap();
    assert_eq!(
        r.header_str("access-control-allow-origin").as_deref(),
        Some("https://pr-42.preview.example.com")
    );
    // A suffix after the match is not a match (full match, as Envoy's safe_regex).
    let mut s = emu.http();
    s.request_headers(
        &preflight(
            "/api/x",
            "https://pr-42.preview.example.com.evil.net",
            "GET",
        ),
        true,
    );
    let r = s.local_response().unwrap();
    assert_eq!(r.header_str("access-control-allow-origin"), None);
}

#[engines]
fn disallowed_preflight_is_answered_without_allow_origin(engine: Engine) {
    // The example sets forward_not_matching_preflights: false on /api/.
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    s.request_headers(&preflight("/api/x", "https://evil.example", "DELETE"), true);
    let r = s.local_response().unwrap();
    assert_eq!(r.status_code, 200);
    assert_eq!(r.header_str("access-control-allow-origin"), None);
    assert_eq!(emu.metric("cors.origin_invalid"), Some(1));
}

#[engines]
fn disallowed_preflight_goes_upstream_by_default(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"rules":[{"allow_origin_string_match":[{"exact":"https://a.example"}]}]}"#,
    );
    let mut s = emu.http();
    let a = s.request_headers(&preflight("/", "https://b.example", "GET"), true);
    assert_eq!(a, Action::Continue);
    assert!(s.local_response().is_none());
    s.response_headers(&[(":status", "204")], true);
    assert_eq!(s.response_header_str("access-control-allow-origin"), None);
    assert_eq!(s.response_header_str("vary").as_deref(), Some("origin"));
}

#[engines]
fn actual_request_gets_cors_headers_on_the_response(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    let a = s.request_headers(
        &[
            (":method", "POST"),
            (":path", "/api/users"),
            (":authority", "api.example.com"),
            ("origin", "https://app.example.com"),
        ],
        false,
    );
    assert_eq!(a, Action::Continue);
    s.response_headers(
        &[
            (":status", "201"),
            ("vary", "accept-encoding"),
            ("access-control-allow-origin", "*"),
        ],
        true,
    );
    assert_eq!(
        s.response_header_values("access-control-allow-origin"),
        vec![b"https://app.example.com".to_vec()],
        "the upstream's `*` is replaced, never combined with credentials"
    );
    assert_eq!(
        s.response_header_str("access-control-allow-credentials")
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        s.response_header_str("access-control-expose-headers")
            .as_deref(),
        Some("x-request-id")
    );
    assert_eq!(
        s.response_header_str("vary").as_deref(),
        Some("accept-encoding, origin")
    );
}

#[engines]
fn disallowed_actual_request_gets_no_cors_headers(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    for origin in [
        "https://evil.example",
        "https://APP.example.com",
        "https://app.example.com/",
        "null",
        "https://app.example.com\t",
    ] {
        let mut s = emu.http();
        s.request_headers(
            &[(":method", "GET"), (":path", "/api/x"), ("origin", origin)],
            true,
        );
        s.response_headers(&[(":status", "200")], true);
        assert_eq!(
            s.response_header_str("access-control-allow-origin"),
            None,
            "{origin}"
        );
        assert_eq!(
            s.response_header_str("access-control-allow-credentials"),
            None
        );
        assert_eq!(s.response_header_str("vary").as_deref(), Some("origin"));
    }
}

#[engines]
fn wildcard_rule_echoes_the_origin_and_carve_outs_are_untouched(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    s.request_headers(
        &[
            (":method", "GET"),
            (":path", "/docs"),
            ("origin", "https://x.example"),
        ],
        true,
    );
    s.response_headers(&[(":status", "200")], true);
    assert_eq!(
        s.response_header_str("access-control-allow-origin")
            .as_deref(),
        Some("https://x.example")
    );
    assert_eq!(
        s.response_header_str("access-control-allow-credentials"),
        None
    );
    // /healthz: the disabled rule matches first.
    let mut s = emu.http();
    s.request_headers(
        &[
            (":method", "GET"),
            (":path", "/healthz"),
            ("origin", "https://x.example"),
        ],
        true,
    );
    s.response_headers(&[(":status", "200")], true);
    assert_eq!(s.response_header_str("access-control-allow-origin"), None);
    assert_eq!(s.response_header_str("vary"), None);
}

#[engines]
fn reject_disallowed_origins_answers_403_before_the_upstream(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"rules":[{"allow_origin_string_match":[{"exact":"https://a.example"}],"reject_disallowed_origins":true}]}"#,
    );
    let mut s = emu.http();
    let a = s.request_headers(
        &[
            (":method", "POST"),
            (":path", "/"),
            ("origin", "https://b.example"),
        ],
        false,
    );
    assert_eq!(a, Action::Pause);
    let r = s.local_response().unwrap();
    assert_eq!(r.status_code, 403);
    assert_eq!(r.header_str("access-control-allow-origin"), None);
    assert_eq!(emu.metric("cors.rejected"), Some(1));
    // No Origin (same-origin GET, curl): not a CORS request, passes.
    let mut s = emu.http();
    assert_eq!(
        s.request_headers(&[(":method", "GET"), (":path", "/")], true),
        Action::Continue
    );
}

#[engines]
fn hostile_input_never_traps(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let huge = format!("https://{}.example.com", "a".repeat(60_000));
    let cases: Vec<Vec<(&str, &[u8])>> = vec![
        vec![
            (":method", b"OPTIONS"),
            (":path", b"/api/x"),
            ("origin", b"https://\xff\xfe"),
            ("access-control-request-method", b"\xff"),
        ],
        vec![
            (":method", b"OPTIONS"),
            (":path", b"/api/x"),
            ("origin", huge.as_bytes()),
            ("access-control-request-method", b"GET"),
        ],
        vec![
            (":method", b"GET"),
            (":path", b"/api/x"),
            ("origin", b"https://app.example.com"),
            ("origin", b"https://evil.example"),
        ],
        vec![(":method", b"OPTIONS"), ("origin", b"://")],
        vec![("origin", b"\x00")],
        vec![],
    ];
    for headers in cases {
        let mut s = emu.http();
        let _ = s.request_headers_bytes(&headers, true);
        if s.local_response().is_none() {
            s.response_headers(&[(":status", "200")], true);
        }
        s.complete();
    }
}

#[engines]
fn bad_config_is_refused_naming_the_field(engine: Engine) {
    let mut emu = engine.emulator();
    let err = emu
        .start(
            r#"{"rules":[{"allow_origin_string_match":[{"exact":"*"}],"allow_credentials":true}]}"#,
        )
        .unwrap_err();
    assert!(
        err.starts_with("invalid config at rules[0].allow_credentials:"),
        "{err}"
    );
    let mut emu = engine.emulator();
    let err = emu
        .start(r#"{"rules":[{"allow_origin_string_match":[{"safe_regex":{"regex":"(a"}}]}]}"#)
        .unwrap_err();
    assert!(
        err.contains("rules[0].allow_origin_string_match[0].safe_regex.regex"),
        "{err}"
    );
}

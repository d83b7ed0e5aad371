//! The whole filter in the host emulator.

use sdk_ext::testing::{engines, Action, Emulator, Engine, Module};

/// The filter in both builds: every test below runs natively and on `dist/header-rules.wasm`.
static MODULE: Module = Module::new(&header_rules::EXPORTS, "dist/header-rules.wasm");

const EXAMPLE: &str = include_str!("../examples/api-gateway.json");

fn start(engine: Engine, config: &str) -> Emulator {
    let mut emu = engine.emulator();
    assert_eq!(emu.start(config), Ok(()));
    emu
}

#[engines]
fn example_config_edits_request_and_response(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    emu.set_property(&["source", "address"], "203.0.113.9:40000");
    let mut s = emu.http();
    let a = s.request_headers(
        &[
            (":method", "GET"),
            (":path", "/api/items?page=2"),
            (":authority", "api.example.com"),
            ("x-internal-user", "mallory"),
            ("x-debug-token", "t"),
            ("x-tags", "first"),
            ("x-request-source", "client-said"),
            ("x-request-id", "rid-1"),
        ],
        false,
    );
    assert_eq!(a, Action::Continue);
    assert_eq!(s.request_header("x-internal-user"), None);
    assert_eq!(s.request_header("x-debug-token"), None);
    assert_eq!(
        s.request_header_str("x-client-ip").as_deref(),
        Some("203.0.113.9")
    );
    assert_eq!(
        s.request_header_str("x-original-path").as_deref(),
        Some("/api/items?page=2")
    );
    assert_eq!(
        s.request_header_values("x-tags"),
        vec![b"first".to_vec(), b"api".to_vec()]
    );
    assert_eq!(
        s.request_header_str("x-request-source").as_deref(),
        Some("client-said"),
        "add keeps an existing value"
    );

    let a = s.response_headers(
        &[
            (":status", "200"),
            ("x-envoy-upstream-service-time", "3"),
            ("cache-control", "public"),
        ],
        false,
    );
    assert_eq!(a, Action::Continue);
    assert_eq!(
        s.response_header_str("cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(
        s.response_header_str("x-echo-request-id").as_deref(),
        Some("rid-1")
    );
    assert_eq!(s.response_header("x-envoy-upstream-service-time"), None);

    assert_eq!(emu.metric("header_rules.requests_matched"), Some(1));
    assert_eq!(
        emu.metric("header_rules.matched.rule.strip-internal"),
        Some(1)
    );
    assert_eq!(emu.metric("header_rules.matched.rule.api-get"), Some(1));
}

#[engines]
fn unmatched_rules_leave_the_response_alone(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    s.request_headers(
        &[
            (":method", "POST"),
            (":path", "/api/items"),
            (":authority", "api.example.com"),
        ],
        false,
    );
    s.response_headers(&[(":status", "200"), ("cache-control", "public")], false);
    assert_eq!(
        s.response_header_str("cache-control").as_deref(),
        Some("public")
    );
    assert_eq!(emu.metric("header_rules.matched.rule.api-get"), Some(0));
    // strip-internal has no match, so it matched every request.
    assert_eq!(
        emu.metric("header_rules.matched.rule.strip-internal"),
        Some(1)
    );
}

#[engines]
fn non_utf8_values_are_copied_and_matched_bytewise(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"rules":[{"match":{"headers":[{"name":"x-bin","string_match":{"prefix":"ab"}}]},
            "request":{"set":[{"name":"x-copy","value":"[%REQ(x-bin)%]"}]}}]}"#,
    );
    let mut s = emu.http();
    assert_eq!(
        s.request_headers_bytes(&[(":path", b"/"), ("x-bin", b"ab\xff\x80")], true),
        Action::Continue
    );
    assert_eq!(s.request_header("x-copy"), Some(b"[ab\xff\x80]".to_vec()));
    // Case-insensitive names: the emulator (like Envoy) lowercases; so does the config.
    let mut s = emu.http();
    s.request_headers(&[(":path", "/"), ("X-Bin", "abc")], true);
    assert_eq!(s.request_header_str("x-copy").as_deref(), Some("[abc]"));
}

#[engines]
fn bad_configs_are_refused_naming_the_field(engine: Engine) {
    for (config, expected) in [
        ("", "invalid config at rules: missing field `rules`"),
        (
            r#"{"rules":[]}"#,
            "invalid config at rules: needs at least one rule",
        ),
        (
            r#"{"rules":[{"request":{"set":[{"name":":path","value":"/"}]}}]}"#,
            "invalid config at rules[0].request.set[0].name",
        ),
        (
            r#"{"rules":[{"match":{"safe_regex":{"regex":"(("}},"request":{"remove":["a"]}}]}"#,
            "invalid config at rules[0].match.safe_regex.regex: invalid regex",
        ),
        (
            r#"{"rules":[{"response":{"set":[{"name":"a","value":"%NOPE%"}]}}]}"#,
            "invalid config at rules[0].response.set[0].value: unknown operator %NOPE%",
        ),
        ("{not json", "invalid config at"),
    ] {
        let mut emu = engine.emulator();
        let refusal = emu.start(config).expect_err(config);
        assert!(
            refusal.contains(expected),
            "{config}: expected {expected:?} in {refusal:?}"
        );
    }
}

#[engines]
fn streams_without_request_headers_phase_are_harmless(engine: Engine) {
    // Envoy may send response headers for a stream whose request never reached the filter
    // (e.g. a local reply from an earlier filter); nothing matched, nothing is edited.
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    assert_eq!(
        s.response_headers(&[(":status", "503")], true),
        Action::Continue
    );
    assert_eq!(s.response_header("cache-control"), None);
    s.complete();
}

#[engines]
fn oversized_and_invalid_values_are_skipped_and_counted(engine: Engine) {
    let many = "%REQ(:path)%".repeat(sdk_ext::template::MAX_OPERATORS);
    let mut emu = start(
        engine,
        &format!(
            r#"{{"rules":[{{"request":{{"set":[
            {{"name":"x-huge","value":"{many}"}},
            {{"name":"x-copy","value":"%REQ(x-in)%"}},
            {{"name":"x-fixed","value":"ok"}}]}}}}]}}"#
        ),
    );
    let path = format!("/{}", "a".repeat(50_000));
    let mut s = emu.http();
    s.request_headers_bytes(
        &[
            (":path", path.as_bytes()),
            // What an earlier filter in the chain may have set: Envoy's router would refuse it.
            ("x-in", b"a\r\nx-admin: 1"),
        ],
        true,
    );
    assert_eq!(s.request_header("x-huge"), None);
    assert_eq!(s.request_header("x-copy"), None);
    assert_eq!(s.request_header_str("x-fixed").as_deref(), Some("ok"));
    s.complete();
    assert_eq!(emu.metric("header_rules.value_too_large"), Some(1));
    assert_eq!(emu.metric("header_rules.invalid_value"), Some(1));
    assert_eq!(emu.metric("header_rules.edit_failures"), Some(0));
    // An ordinary request renders everything and counts nothing.
    let mut s = emu.http();
    s.request_headers(&[(":path", "/ab"), ("x-in", "fine")], true);
    assert_eq!(
        s.request_header_str("x-huge").as_deref(),
        Some("/ab".repeat(64).as_str())
    );
    assert_eq!(s.request_header_str("x-copy").as_deref(), Some("fine"));
    s.complete();
    assert_eq!(emu.metric("header_rules.value_too_large"), Some(1));
    assert_eq!(emu.metric("header_rules.invalid_value"), Some(1));
}

#[engines]
fn a_value_with_too_many_operators_is_refused(engine: Engine) {
    let mut emu = engine.emulator();
    let many = "%REQ(:path)%".repeat(2000);
    let refusal = emu
        .start(format!(
            r#"{{"rules":[{{"request":{{"set":[{{"name":"x-huge","value":"{many}"}}]}}}}]}}"#
        ))
        .unwrap_err();
    assert!(
        refusal.contains("invalid config at rules[0].request.set[0].value: more than 64 operators"),
        "{refusal}"
    );
}

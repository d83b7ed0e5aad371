//! The whole filter in the host emulator: config, request phase, local response, metrics.

use sdk_ext::testing::{engines, Action, Emulator, Engine, Module};

/// The filter in both builds: every test below runs natively and on `dist/template.wasm`.
static MODULE: Module = Module::new(&template::EXPORTS, "dist/template.wasm");

fn start(engine: Engine, config: &str) -> Emulator {
    let mut emu = engine.emulator();
    assert_eq!(emu.start(config), Ok(()));
    emu
}

#[engines]
fn example_config_denies_admin_with_json_403(engine: Engine) {
    let mut emu = start(engine, include_str!("../examples/deny-admin.json"));
    let mut s = emu.http();
    let action = s.request_headers(
        &[
            (":method", "GET"),
            (":path", "/admin/users"),
            (":authority", "x"),
        ],
        true,
    );
    assert_eq!(action, Action::Pause);
    let r = s.local_response().expect("a local response");
    assert_eq!(r.status_code, 403);
    assert_eq!(
        r.header_str("content-type").as_deref(),
        Some("application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["message"], "the admin area is not reachable from here");
    assert_eq!(r.details, "template_denied");
    assert_eq!(emu.metric("template.denied"), Some(1));
}

#[engines]
fn other_requests_pass_untouched(engine: Engine) {
    let mut emu = start(engine, include_str!("../examples/deny-admin.json"));
    let mut s = emu.http();
    assert_eq!(
        s.request_headers(
            &[
                (":method", "GET"),
                (":path", "/public"),
                (":authority", "x")
            ],
            true
        ),
        Action::Continue
    );
    assert!(s.local_response().is_none());
    // A method the rule does not list passes too.
    let mut s = emu.http();
    assert_eq!(
        s.request_headers(
            &[
                (":method", "HEAD"),
                (":path", "/admin"),
                (":authority", "x")
            ],
            true
        ),
        Action::Continue
    );
    assert_eq!(emu.metric("template.allowed"), Some(2));
    assert_eq!(emu.metric("template.denied"), Some(0));
}

#[engines]
fn bad_config_is_refused_naming_the_field(engine: Engine) {
    let mut emu = engine.emulator();
    assert_eq!(
        emu.start(r#"{"status": 200}"#).unwrap_err(),
        "invalid config at status: 200 is not a 4xx or 5xx status"
    );
    let mut emu = engine.emulator();
    let err = emu
        .start(r#"{"deny": {"prefix": "/a"}, "stauts": 403}"#)
        .unwrap_err();
    assert!(
        err.contains("invalid config at stauts: unknown field"),
        "{err}"
    );
}

#[engines]
fn non_utf8_and_missing_headers_are_ordinary(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"deny": {"headers": [{"name": "x-user", "string_match": {"prefix": "evil-"}}]}}"#,
    );
    let mut s = emu.http();
    let a = s.request_headers_bytes(&[(":path", b"/"), ("x-user", b"evil\xff\xfe")], true);
    assert_eq!(a, Action::Continue, "non-UTF-8 bytes are compared as bytes");
    let mut s = emu.http();
    let a = s.request_headers_bytes(&[(":path", b"/"), ("x-user", b"evil-\xff\xfe")], true);
    assert_eq!(a, Action::Pause, "a prefix match on a non-UTF-8 value");
    let mut s = emu.http();
    assert_eq!(s.request_headers(&[], true), Action::Continue);
    let mut s = emu.http();
    assert_eq!(
        s.request_headers(&[("x-user", "evil-bob")], true),
        Action::Pause
    );
}

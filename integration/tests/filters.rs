//! The built filters in a real Envoy, with real traffic: each test body runs twice
//! (`each_loading!`), with the `.wasm` and with the same crate as a dynamic module.

use integration::*;
use std::path::Path;
use std::time::Duration;

const HEADER_RULES_EXAMPLE: &str =
    include_str!("../../filters/header-rules/examples/api-gateway.json");
const TEMPLATE_EXAMPLE: &str = include_str!("../../filters/template/examples/deny-admin.json");
const JWT_AUTH_EXAMPLE: &str = include_str!("../../filters/jwt-auth/examples/jwt-auth.json");

fn header_rules(config: &str) -> WasmFilter {
    WasmFilter::new("header-rules", config).root_id("header-rules")
}

fn template(config: &str) -> WasmFilter {
    WasmFilter::new("template", config).root_id("template")
}

each_loading! {
fn header_rules_edits_what_reaches_the_upstream_and_the_client() {
    let echo = EchoUpstream::start();
    echo.add_response_header("cache-control", "public");
    let envoy = EnvoyConfig::http(echo.port())
        .filter(header_rules(HEADER_RULES_EXAMPLE))
        .start()
        .unwrap();
    let resp = envoy.get(
        "/api/items?page=2",
        &[
            ("host", b"api.example.com"),
            ("x-internal-user", b"mallory"),
            ("x-request-id", b"rid-7"),
            ("x-tags", b"first"),
        ],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = echo.last_request().unwrap();
    assert_eq!(seen.header("x-internal-user"), None);
    assert_eq!(seen.header("x-client-ip"), Some(&b"127.0.0.1"[..]));
    assert_eq!(
        seen.header("x-original-path"),
        Some(&b"/api/items?page=2"[..])
    );
    assert_eq!(seen.header_all("x-tags"), vec![&b"first"[..], b"api"]);
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(resp.header("x-echo-request-id").as_deref(), Some("rid-7"));
    assert_eq!(resp.header("x-envoy-upstream-service-time"), None);
    assert_eq!(
        envoy.stat("wasmcustom.header_rules.matched.rule.api-get"),
        Some(1)
    );

    // A request outside the rule's match only gets the unconditional edit.
    let resp = envoy.get(
        "/other",
        &[
            ("host", b"api.example.com"),
            ("x-internal-user", b"mallory"),
        ],
    );
    assert_eq!(resp.status, 200);
    let seen = echo.last_request().unwrap();
    assert_eq!(seen.header("x-internal-user"), None);
    assert_eq!(seen.header("x-client-ip"), None);
    assert_eq!(resp.header("cache-control").as_deref(), Some("public"));
}
}

// The template in real Envoy: tests/template.rs (the test `make new-filter` copies).

each_loading! {
fn a_bad_filter_config_is_refused_and_the_log_names_the_field() {
    let echo = EchoUpstream::start();
    let err = EnvoyConfig::http(echo.port())
        .filter(header_rules(r#"{"rules":[{"match":{"prefix":"/a"},"request":{"set":[{"name":"x-a","value":"%BOGUS%"}]}}]}"#))
        .start()
        .err()
        .expect("Envoy must refuse the config");
    assert!(err.exit_status.is_some_and(|s| !s.success()), "{err:?}");
    assert!(
        err.log.contains("header-rules: invalid config at rules[0].request.set[0].value: unknown operator %BOGUS%"),
        "{err:?}"
    );
    let err = EnvoyConfig::http(echo.port())
        .filter(template(r#"{"status": 99}"#))
        .start()
        .err()
        .expect("refused");
    assert!(
        err.log
            .contains("template: invalid config at status: 99 is not a 4xx or 5xx status"),
        "{err:?}"
    );
    // The template is built without sdk-ext's `regex` feature (the native tests link it, as
    // cargo unifies features across the workspace): only the real module can show the refusal.
    let err = EnvoyConfig::http(echo.port())
        .filter(template(
            r#"{"deny": {"safe_regex": {"regex": "/admin.*"}}}"#,
        ))
        .start()
        .err()
        .expect("refused");
    assert!(
        err.log.contains(
            "template: invalid config at deny.safe_regex: regular expressions are not built into this filter (sdk-ext feature `regex`)"
        ),
        "{err:?}"
    );
}
}

each_loading! {
fn hostile_header_values_do_not_crash_the_vm() {
    let echo = EchoUpstream::start();
    let config = r#"{"rules":[{"match":{"headers":[{"name":"x-user","string_match":{"safe_regex":{"regex":"adm.*"}}}]},
        "request":{"set":[{"name":"x-copy","value":"%REQ(x-user)%"}]}}, {"request":{"set":[{"name":"x-seen","value":"%REQ(x-user)%"}]}}]}"#;
    let envoy = EnvoyConfig::http(echo.port())
        .filter(template(
            r#"{"deny":{"headers":[{"name":"x-user","string_match":{"prefix":"evil"}}]}}"#,
        ))
        .filter(header_rules(config))
        .start()
        .unwrap();
    // The VM counters exist for the wasm loading only (a dynamic module has no VM to lose:
    // a panic there is caught at the hook, see sdk-ext/src/dynamic_module/mod.rs).
    let wasm = Loading::current() == Loading::Wasm;
    let vms_created = envoy.stat("wasm.envoy.wasm.runtime.v8.created");
    assert_eq!(vms_created.is_some(), wasm, "runtime stat");
    let long = vec![0xffu8; 8000];
    for value in [&b"adm\xff\xfe"[..], b"\x80", &long, b"caf\xe9 \xc3\x28"] {
        let resp = envoy.get("/", &[("x-user", value)]);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            echo.last_request().unwrap().header("x-seen"),
            Some(value),
            "copied byte for byte"
        );
        // Regexes match bytes, as Envoy's: `adm.*` holds for `adm\xff\xfe`.
        assert_eq!(
            echo.last_request().unwrap().header("x-copy"),
            value.starts_with(b"adm").then_some(value),
            "a regex matches non-UTF-8 values byte-wise"
        );
    }
    // Byte-wise prefix match on a non-UTF-8 value still denies.
    assert_eq!(envoy.get("/", &[("x-user", b"evil\xff")]).status, 403);
    // The VM is alive: a normal request still gets every edit.
    let resp = envoy.get("/", &[("x-user", b"admin")]);
    assert_eq!(resp.status, 200);
    assert_eq!(
        echo.last_request().unwrap().header("x-copy"),
        Some(&b"admin"[..])
    );
    // No VM was lost and re-created, and no plugin reload (what follows a crash) happened.
    assert_eq!(
        envoy.stat("wasm.envoy.wasm.runtime.v8.created"),
        vms_created
    );
    for plugin in ["header-rules", "template"].into_iter().filter(|_| wasm) {
        for stat in ["vm_reload", "vm_reload_failure"] {
            assert_eq!(
                envoy.stat(&format!("wasm.{plugin}.{stat}")),
                Some(0),
                "wasm.{plugin}.{stat}"
            );
        }
    }
    assert_eq!(envoy.stat("wasmcustom.header_rules.edit_failures"), Some(0));
}
}

each_loading! {
fn the_demo_config_serves_every_filter() {
    // demo.yaml brings its own Lua echo upstream on :8080; move it to a free port.
    let echo_port = free_port();
    let envoy = Envoy::start_file(
        repo_root().join(Loading::current().config("envoy-configs/demo.yaml")),
        &[(8080, echo_port)],
    )
    .unwrap();
    let resp = envoy.get(
        "/api/hello",
        &[("host", b"localhost"), ("x-internal-user", b"mallory")],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.text();
    assert!(body.contains("x-request-source: edge"), "{body}");
    assert!(!body.contains("mallory"), "{body}");
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(envoy.get("/admin/x", &[]).status, 403);
    // jwt-auth guards /secure (a valid token is covered by tests/jwt.rs).
    let resp = envoy.get("/secure/data", &[]);
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert!(resp.header("www-authenticate").is_some());
    assert!(envoy
        .wait_for_stat(
            "wasmcustom.header_rules.requests_matched",
            1,
            Duration::from_secs(5)
        )
        .is_some());
}
}

/// The JSON embedded in envoy-configs/<filter>.yaml is the filter's example file, so the
/// configs the emulator tests use and the ones Envoy serves cannot drift apart.
#[test]
fn envoy_configs_embed_the_example_configs() {
    for (yaml, example) in [
        ("envoy-configs/header-rules.yaml", HEADER_RULES_EXAMPLE),
        ("envoy-configs/template.yaml", TEMPLATE_EXAMPLE),
        ("envoy-configs/jwt-auth.yaml", JWT_AUTH_EXAMPLE),
        ("envoy-configs/demo.yaml", HEADER_RULES_EXAMPLE),
        ("envoy-configs/demo.yaml", TEMPLATE_EXAMPLE),
    ] {
        let text = std::fs::read_to_string(repo_root().join(yaml)).unwrap();
        let want: serde_json::Value = serde_json::from_str(example).unwrap();
        let found = text
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("value: '")
                    .and_then(|v| v.strip_suffix('\''))
            })
            .any(|v| serde_json::from_str::<serde_json::Value>(v).ok() == Some(want.clone()));
        assert!(found, "{yaml} does not embed {example}");
        assert!(Path::new(&repo_root().join(yaml)).exists());
    }
}

each_loading! {
/// `%REQ(:path)%` repeated 2,000 times once turned a 50 KB path into a 100 MB header (Envoy's
/// RSS 134 → 731 MB in 10 requests). Such a template is refused at load; the most operators a
/// value may hold, over a long path, render past the value limit and are not written.
fn header_rules_never_builds_a_huge_header() {
    let echo = EchoUpstream::start();
    let config = |n: usize| {
        serde_json::json!({"rules": [{"request": {"set": [
            {"name": "x-huge", "value": "%REQ(:path)%".repeat(n)},
            {"name": "x-small", "value": "ok"}
        ]}}]})
        .to_string()
    };
    let err = EnvoyConfig::http(echo.port())
        .filter(header_rules(&config(2000)))
        .start()
        .err()
        .expect("a 2,000-operator value must be refused");
    assert!(
        err.log
            .contains("header-rules: invalid config at rules[0].request.set[0].value"),
        "{}",
        err.log
    );
    let envoy = EnvoyConfig::http(echo.port())
        .filter(header_rules(&config(64)))
        .start()
        .unwrap();
    let path = format!("/{}", "a".repeat(50_000));
    let before = envoy.stat("server.memory_allocated").expect("memory stat");
    for _ in 0..10 {
        let resp = envoy.get(&path, &[]);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let seen = echo.last_request().unwrap();
        assert_eq!(
            seen.header("x-huge"),
            None,
            "a value over the limit is not written"
        );
        assert_eq!(
            seen.header("x-small"),
            Some(&b"ok"[..]),
            "the other edits apply"
        );
    }
    assert_eq!(
        envoy.stat("wasmcustom.header_rules.value_too_large"),
        Some(10)
    );
    let after = envoy.stat("server.memory_allocated").expect("memory stat");
    assert!(
        after < before + (32 << 20),
        "Envoy's heap grew from {before} to {after} bytes"
    );
    // Envoy keeps serving ordinary requests.
    assert_eq!(envoy.get("/short", &[]).status, 200);
    assert_eq!(
        echo.last_request()
            .unwrap()
            .header("x-huge")
            .map(<[u8]>::len),
        Some(64 * "/short".len())
    );
}
}

//! template in a real Envoy: the built `dist/template.wasm` and, from the same test
//! bodies, the same crate as a dynamic module (`dist/libtemplate.so`), configured as in
//! `filters/template/examples/deny-admin.json`; and the shipped `envoy-configs/template.yaml`
//! (`envoy-configs/native/template.yaml`).
//! `make new-filter` copies this file to `integration/tests/<name>.rs`, renamed, so a new
//! filter starts with a real-Envoy test that passes (`cargo test -p integration --test <name>`).

use integration::*;

const EXAMPLE: &str = include_str!("../../filters/template/examples/deny-admin.json");

fn this_filter(config: &str) -> WasmFilter {
    WasmFilter::new("template", config).root_id("template")
}

each_loading! {
fn denies_with_json_and_passes_the_rest() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(this_filter(EXAMPLE))
        .start()
        .unwrap();
    let resp = envoy.get("/admin/users", &[]);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = resp.json();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["message"], "the admin area is not reachable from here");
    assert_eq!(
        echo.request_count(),
        0,
        "a denied request must not reach the upstream"
    );
    let resp = envoy.get("/public", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(echo.request_count(), 1);
    assert_eq!(envoy.stat("wasmcustom.template.denied"), Some(1));
    assert_eq!(envoy.stat("wasmcustom.template.allowed"), Some(1));
}

fn a_bad_config_is_refused_naming_the_field() {
    let echo = EchoUpstream::start();
    let err = EnvoyConfig::http(echo.port())
        .filter(this_filter(r#"{"status": 99}"#))
        .start()
        .err()
        .expect("Envoy must refuse the config");
    assert!(
        err.log
            .contains("template: invalid config at status: 99 is not a 4xx or 5xx status"),
        "{err:?}"
    );
}

fn the_shipped_envoy_config_serves_it() {
    let echo = EchoUpstream::start();
    let config = Loading::current().config("envoy-configs/template.yaml");
    let envoy = Envoy::start_file(config, &[(8080, echo.port())]).unwrap();
    assert_eq!(envoy.get("/admin/x", &[]).status, 403);
    assert_eq!(envoy.get("/public", &[]).status, 200);
    assert_eq!(envoy.stat("wasmcustom.template.denied"), Some(1));
}
}

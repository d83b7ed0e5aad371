//! `envoy-configs/per-route.yaml`: filters disabled in the chain run only on the routes that
//! enable them with `typed_per_filter_config` (`FilterConfig`, `config: {}`); the same with
//! the filters as dynamic modules (`envoy-configs/native/per-route.yaml`).

use integration::*;

each_loading! {
fn filters_run_only_on_the_routes_that_enable_them() {
    let echo = EchoUpstream::start();
    let config = Loading::current().config("envoy-configs/per-route.yaml");
    let envoy = Envoy::start_file(config, &[(8080, echo.port())]).unwrap();

    // /api/: header-rules runs (its unconditional rule strips x-internal-user).
    let resp = envoy.get(
        "/api/items",
        &[
            ("host", b"api.example.com"),
            ("x-internal-user", b"mallory"),
        ],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echo.last_request().unwrap().header("x-internal-user"), None);
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));

    // Another route: header-rules does not run, the header reaches the upstream.
    let resp = envoy.get("/other", &[("x-internal-user", b"mallory")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        echo.last_request().unwrap().header("x-internal-user"),
        Some(&b"mallory"[..])
    );

    // /admin: the template denies; elsewhere it is not even entered.
    assert_eq!(envoy.get("/admin/users", &[]).status, 403);
    assert_eq!(envoy.get("/api/admin", &[]).status, 200);
    assert_eq!(envoy.stat("wasmcustom.template.denied"), Some(1));
    assert_eq!(envoy.stat("wasmcustom.template.allowed").unwrap_or(0), 0);
    assert_eq!(
        envoy.stat("wasmcustom.header_rules.matched.rule.strip-internal"),
        Some(2),
        "header-rules ran on the two /api/ requests only"
    );
}
}

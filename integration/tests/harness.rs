//! The harness itself, against a real Envoy with no wasm filters (so it runs before
//! `make build`): proxying, raw bytes, refused configs, raw YAML filters, TCP, cleanup.

use std::time::Duration;

use integration::{
    http_get, http_request, send_raw, tcp_exchange, EchoUpstream, Envoy, EnvoyConfig,
    TcpEchoUpstream,
};

#[test]
fn proxies_to_the_echo_upstream() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port()).start().unwrap();

    let resp = envoy.get("/some/path?q=1", &[("x-test", b"hello")]);

    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    let seen = resp.echoed();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/some/path?q=1");
    assert_eq!(seen.header("x-test"), Some("hello"));
    assert!(
        seen.header("x-request-id").is_some(),
        "Envoy adds x-request-id"
    );
    assert_eq!(echo.request_count(), 1);
    assert_eq!(
        envoy.wait_for_stat(
            "cluster.upstream.upstream_rq_200",
            1,
            Duration::from_secs(5)
        ),
        Some(1)
    );
}

#[test]
fn non_utf8_header_value_reaches_the_upstream_byte_for_byte() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port()).start().unwrap();
    let raw: &[u8] = b"caf\xe9 \x80\xff end";

    let resp = http_get(envoy.listener_port(), "/", &[("x-bin", raw)]);

    assert_eq!(resp.status, 200, "{}", resp.text());
    let upstream_saw = echo.last_request().unwrap();
    assert_eq!(upstream_saw.header("x-bin"), Some(raw));
    // The JSON echo is lossy-decoded.
    assert_eq!(
        resp.echoed().header("x-bin"),
        Some("caf\u{fffd} \u{fffd}\u{fffd} end")
    );
}

#[test]
fn request_bodies_content_length_and_chunked() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port()).start().unwrap();

    let resp = http_request(envoy.listener_port(), "POST", "/p", &[], b"{\"a\":1}");
    assert_eq!(resp.echoed().body, "{\"a\":1}");
    assert_eq!(resp.echoed().method, "POST");

    let resp = send_raw(
        envoy.listener_port(),
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed().body, "hello world");
    assert_eq!(echo.requests().len(), 2);
}

#[test]
fn upstream_status_and_response_headers_pass_through() {
    let echo = EchoUpstream::start();
    echo.set_status(201);
    echo.add_response_header("x-from-upstream", "yes");
    let envoy = EnvoyConfig::http(echo.port()).start().unwrap();

    let resp = envoy.get("/", &[]);

    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("x-from-upstream").as_deref(), Some("yes"));
}

#[test]
fn envoy_refuses_an_invalid_bootstrap_and_the_error_carries_the_log() {
    let err =
        Envoy::start("static_resources:\n  listeners:\n  - name: broken\n    no_such_field: 1\n")
            .err()
            .expect("Envoy must refuse an unknown field");

    assert!(err.exit_status.is_some_and(|s| !s.success()), "{err}");
    assert!(err.log.contains("no_such_field"), "{err}");
}

#[test]
fn raw_yaml_filter_native_header_mutation_adds_a_request_header() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .yaml_filter(
            r#"
            name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                request_mutations:
                - append:
                    header: {key: x-added, value: by-envoy}
                    append_action: OVERWRITE_IF_EXISTS_OR_ADD
                response_mutations:
                - append:
                    header: {key: x-resp-added, value: "1"}
            "#,
        )
        .start()
        .unwrap();

    let resp = envoy.get("/", &[]);

    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed().header("x-added"), Some("by-envoy"));
    assert_eq!(resp.header("x-resp-added").as_deref(), Some("1"));
}

#[test]
fn tcp_listener_proxies_to_the_tcp_echo_upstream() {
    let echo = TcpEchoUpstream::start();
    let envoy = EnvoyConfig::tcp(echo.port()).start().unwrap();

    let back = tcp_exchange(envoy.listener_port(), b"ping \xff\x00 pong");

    assert_eq!(back, b"ping \xff\x00 pong");
    assert_eq!(echo.connection_count(), 1);
}

#[test]
fn start_file_rewrites_the_checked_in_ports() {
    let echo = EchoUpstream::start();
    let dir = std::env::temp_dir().join(format!("integration-start-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fixed-ports.yaml");
    // The shape of a checked-in config: fixed ports, 0.0.0.0, upstream 127.0.0.1:8080.
    let yaml = EnvoyConfig::http(8080)
        .render()
        .replacen("port_value: 0", "port_value: 9901", 1)
        .replacen(
            "address: 127.0.0.1, port_value: 0",
            "address: 0.0.0.0, port_value: 10000",
            1,
        );
    std::fs::write(&file, yaml).unwrap();

    let envoy = Envoy::start_file(&file, &[(8080, echo.port())]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    assert_ne!(envoy.admin_port(), 9901);
    assert_ne!(envoy.listener_port(), 10000);
    assert_eq!(envoy.listener_port_named("listener"), envoy.listener_port());
    assert_eq!(envoy.get("/x", &[]).echoed().path, "/x");
}

#[test]
fn dropping_envoy_ends_the_process() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port()).start().unwrap();
    let pid = envoy.pid();
    assert!(envoy.is_running());
    assert!(
        envoy.log().contains("starting main dispatch loop"),
        "{}",
        envoy.log()
    );

    drop(envoy);

    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "envoy pid {pid} still exists after drop"
    );
}

#[test]
fn validate_mode_accepts_the_generated_config_and_rejects_a_broken_one() {
    let (ok, out) = EnvoyConfig::http(8080).validate();
    assert!(ok, "{out}");

    let (ok, out) = integration::validate_yaml("admin: {bogus: 1}\n");
    assert!(!ok, "{out}");
    assert!(out.contains("bogus"), "{out}");
}

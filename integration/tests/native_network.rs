//! sdk-ext's dynamic-module adapter where no product filter goes yet, in a real Envoy: the
//! fixture `integration/fixtures/l4-tag` (built here as a `.so` exactly as `make build` builds
//! the filters) as an L4 `NetworkFilter` before `tcp_proxy`, and as an HTTP filter reading
//! and replacing a buffered request body; and a panic in either, which the adapter catches
//! (the request answers 500, the connection is closed, Envoy keeps serving).

use integration::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// `target/native/libl4_tag.so`, built once per test process.
fn fixture() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(repo_root())
                .args([
                    "rustc",
                    "-q",
                    "-p",
                    "l4-tag",
                    "--lib",
                    "--crate-type",
                    "cdylib",
                ])
                .args([
                    "--profile",
                    "native",
                    "--features",
                    "sdk-ext/dynamic-module",
                ])
                .args(["--", "--cfg", "sdk_ext_dynamic_module"])
                .status()
                .expect("run cargo rustc for the l4-tag fixture");
            assert!(status.success(), "building the l4-tag fixture failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("native/libl4_tag.so")
        })
        .clone()
}

fn tag(config: &str) -> WasmFilter {
    WasmFilter::native_from_file("l4-tag", fixture(), config)
}

#[test]
fn a_network_filter_rewrites_counts_and_closes_through_the_dynamic_module() {
    let echo = TcpEchoUpstream::start();
    let envoy = EnvoyConfig::tcp(echo.port())
        .filter(tag(r#"{"prefix": "tag:", "with_source": true}"#))
        .start()
        .unwrap();
    let port = envoy.listener_port();

    // The first bytes get the prefix and the client's address; the echo brings it back.
    let got = tcp_exchange(port, b"hello");
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("tag:127.0.0.1:"), "{text:?}");
    assert!(text.ends_with(" hello"), "{text:?}");
    assert_eq!(envoy.stat("wasmcustom.l4_tag.downstream_bytes"), Some(5));
    assert_eq!(
        envoy.wait_for_stat(
            "wasmcustom.l4_tag.upstream_bytes",
            got.len() as u64,
            Duration::from_secs(5)
        ),
        Some(got.len() as u64)
    );

    // QUIT closes the connection before its bytes reach the upstream.
    let got = tcp_exchange(port, b"QUIT");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(envoy.stat("wasmcustom.l4_tag.quit"), Some(1));
    // Both closes reach on_downstream_close, the filter's own (from inside its callback) too.
    assert_eq!(
        envoy.wait_for_stat("wasmcustom.l4_tag.closed", 2, Duration::from_secs(5)),
        Some(2),
        "closes counted"
    );
}

#[test]
fn a_bad_network_config_is_refused_naming_the_field() {
    let echo = TcpEchoUpstream::start();
    let err = EnvoyConfig::tcp(echo.port())
        .filter(tag(r#"{"prefix": 1}"#))
        .start()
        .err()
        .expect("Envoy must refuse the config");
    assert!(
        err.log.contains("l4-tag: invalid config at prefix"),
        "{}",
        err.log
    );
}

#[test]
fn a_panic_in_a_connection_is_caught_and_envoy_keeps_serving() {
    let echo = TcpEchoUpstream::start();
    let envoy = EnvoyConfig::tcp(echo.port())
        .filter(tag(r#"{"prefix": "tag:"}"#))
        .start()
        .unwrap();
    let port = envoy.listener_port();
    let got = tcp_exchange(port, b"PANIC");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        envoy.wait_for_log("l4-tag: panic in network_read", Duration::from_secs(5)),
        "{}",
        envoy.log()
    );
    assert_eq!(tcp_exchange(port, b"again"), b"tag:again");
}

#[test]
fn request_bodies_are_read_and_replaced_and_a_panic_answers_500() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(tag(r#"{"prefix": ">"}"#))
        .start()
        .unwrap();
    let port = envoy.listener_port();
    let body = "hello body ".repeat(2000); // more than one chunk
    let resp = http_request(port, "POST", "/upload", &[], body.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = echo.last_request().unwrap();
    let want = format!(">{}", body.to_uppercase());
    let got = String::from_utf8_lossy(&seen.body).into_owned();
    assert!(
        got == want,
        "body: {} bytes, want {}; starts {:?}; {} '>' in it",
        got.len(),
        want.len(),
        got.get(..40),
        got.matches('>').count()
    );

    let resp = envoy.get("/panic", &[]);
    assert_eq!(resp.status, 500, "{}", resp.text());
    assert_eq!(resp.json()["error"], "internal_error");
    assert!(
        envoy.wait_for_log("l4-tag: panic in request_headers", Duration::from_secs(5)),
        "{}",
        envoy.log()
    );
    // The process and the worker are fine: the next request is served.
    let resp = http_request(port, "POST", "/upload", &[], b"x");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echo.last_request().unwrap().body, b">X");
}

#[test]
fn shared_data_is_shared_and_ticks_run() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(tag(r#"{"prefix": ">", "tick_ms": 50}"#))
        .start()
        .unwrap();
    for want in [&b"1"[..], b"2", b"3"] {
        assert_eq!(envoy.get("/", &[]).status, 200);
        assert_eq!(echo.last_request().unwrap().header("x-hits"), Some(want));
    }
    // A thread's plugin ticks when a stream starts and a tick is due.
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(envoy.get("/", &[]).status, 200);
    assert!(
        envoy
            .stat("wasmcustom.l4_tag.ticks")
            .is_some_and(|n| n >= 1),
        "{:?}",
        envoy.stat("wasmcustom.l4_tag.ticks")
    );
}

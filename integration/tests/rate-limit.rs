//! rate-limit in a real Envoy with two workers (`--concurrency 2`): the built
//! `dist/rate-limit.wasm`, concurrent keep-alive clients, exact budgets across workers per
//! key (HTTP) and per client address (L4), and the shipped `envoy-configs/rate-limit*.yaml`.
//! The cross-worker tests run twice (`each_loading!`): with the `.wasm` (Envoy's shared data)
//! and with `dist/librate-limit.so` (the dynamic-module adapter's in-process store).

use integration::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const API: &str = include_str!("../../filters/rate-limit/examples/api.json");

fn this_filter(config: &str) -> WasmFilter {
    WasmFilter::new("rate-limit", config)
        .root_id("rate-limit")
        .fail_open(true)
}

const TWO_WORKERS: &[&str] = &["--concurrency", "2"];

/// Connections each worker accepted (`listener.<addr>.worker_<n>.downstream_cx_total`).
fn per_worker_connections(envoy: &Envoy) -> Vec<u64> {
    let stats = envoy.stats();
    (0..2)
        .map(|w| {
            let suffix = format!(".worker_{w}.downstream_cx_total: ");
            stats
                .lines()
                .filter(|l| l.starts_with("listener.127.0.0.1_") && l.contains(&suffix))
                .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
                .sum()
        })
        .collect()
}

/// A keep-alive HTTP/1.1 client: sends `n` GETs on one connection, returns the statuses
/// (and the headers of the first 429).
fn keep_alive_gets(
    port: u16,
    path: &str,
    headers: &str,
    n: usize,
) -> (Vec<u16>, Option<Vec<(String, String)>>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut statuses = Vec::with_capacity(n);
    let mut limited_headers = None;
    for _ in 0..n {
        write!(writer, "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        let mut hs = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap();
            let (name, value) = (name.to_ascii_lowercase(), value.trim().to_string());
            if name == "content-length" {
                len = value.parse().unwrap();
            }
            hs.push((name, value));
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).unwrap();
        if status == 429 && limited_headers.is_none() {
            limited_headers = Some(hs);
        }
        statuses.push(status);
    }
    (statuses, limited_headers)
}

each_loading! {
    fn http_budget_is_exact_across_two_workers_per_key() {
        const BUDGET: usize = 40;
        let config = format!(
            r#"{{"stat_prefix":"it","descriptors":[{{"name":"per_client","max_keys":64,
                "entries":[{{"attribute":"header","header":"x-client"}}],
                "token_bucket":{{"max_tokens":{BUDGET},"tokens_per_fill":{BUDGET},"fill_interval":"3600s"}}}}]}}"#
        );
        let echo = EchoUpstream::start();
        let envoy = EnvoyConfig::http(echo.port())
            .filter(this_filter(&config))
            .start_with_args(TWO_WORKERS)
            .unwrap();
        let port = envoy.listener_port();
        // 3 keys × 6 connections × 20 requests = 120 per key, 3 × the budget, all at once.
        let keys = ["alice", "bob", "carol"];
        let barrier = Arc::new(Barrier::new(keys.len() * 6));
        let handles: Vec<_> = keys
            .iter()
            .flat_map(|k| (0..6).map(move |_| *k))
            .map(|key| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    let (s, h) = keep_alive_gets(port, "/", &format!("x-client: {key}\r\n"), 20);
                    (key, s, h)
                })
            })
            .collect();
        let mut admitted = std::collections::BTreeMap::new();
        let mut limited_headers = None;
        for h in handles {
            let (key, statuses, headers) = h.join().unwrap();
            *admitted.entry(key).or_insert(0) += statuses.iter().filter(|&&s| s == 200).count();
            assert!(
                statuses.iter().all(|&s| s == 200 || s == 429),
                "{statuses:?}"
            );
            limited_headers = limited_headers.or(headers);
        }
        for key in keys {
            assert_eq!(admitted[key], BUDGET, "key {key}: {admitted:?}");
        }
        let workers = per_worker_connections(&envoy);
        assert!(
            workers.iter().all(|&n| n > 0),
            "both workers must have served connections: {workers:?}"
        );
        assert_eq!(echo.request_count(), BUDGET * keys.len());
        let h = limited_headers.expect("a 429");
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get("ratelimit-policy").as_deref(),
            Some("\"per_client\";q=40;w=3600")
        );
        assert_eq!(get("ratelimit").as_deref(), Some("\"per_client\";r=0;t=90"));
        assert_eq!(get("retry-after").as_deref(), Some("90"));
        assert_eq!(get("x-envoy-ratelimited").as_deref(), Some("true"));
        assert_eq!(
            envoy.stat("wasmcustom.rate_limit.it.allowed"),
            Some((BUDGET * keys.len()) as u64)
        );
        assert_eq!(
            envoy.stat("wasmcustom.rate_limit.it.limited"),
            Some((120 * keys.len() - BUDGET * keys.len()) as u64)
        );
    }
}

#[test]
fn example_config_routes_and_headers() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(this_filter(API))
        .start()
        .unwrap();
    for _ in 0..20 {
        assert_eq!(envoy.get("/health", &[]).status, 200);
    }
    let statuses: Vec<u16> = (0..7).map(|_| envoy.get("/login", &[]).status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    let r = envoy.get("/login", &[]);
    assert_eq!(r.header("retry-after").as_deref(), Some("12"));
    assert_eq!(r.json()["error"], "too_many_requests");
    let ok = envoy.get("/other", &[]);
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("ratelimit").as_deref(),
        Some("\"per_client\";r=99;t=1")
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    let echo = EchoUpstream::start();
    let err = EnvoyConfig::http(echo.port())
        .filter(this_filter(
            r#"{"token_bucket":{"max_tokens":5,"fill_interval":"0s"}}"#,
        ))
        .start()
        .err()
        .expect("Envoy must refuse the config");
    assert!(
        err.log
            .contains("rate-limit: invalid config at token_bucket.fill_interval: must not be zero"),
        "{err:?}"
    );
}

/// Connects from 127.0.0.`host` (every 127/8 address is local on Linux).
fn connect_from(host: u8, port: u16) -> TcpStream {
    // SAFETY: plain socket calls on a fresh descriptor; the address structs are initialised.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        local.sin_family = libc::AF_INET as libc::sa_family_t;
        local.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, host]).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0
        );
        let mut remote = local;
        remote.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        remote.sin_port = port.to_be();
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0
        );
        TcpStream::from_raw_fd(fd)
    }
}

/// Sends `ping`, returns whether it came back (false: closed by the filter, nothing proxied).
fn echoes(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"ping");
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out == b"ping"
}

each_loading! {
    fn l4_new_connections_are_exact_across_two_workers_per_client() {
        const BUDGET: usize = 15;
        let config = format!(
            r#"{{"stat_prefix":"l4","connections":{{"token_bucket":{{"max_tokens":{BUDGET},"tokens_per_fill":{BUDGET},"fill_interval":"3600s"}}}}}}"#
        );
        let upstream = TcpEchoUpstream::start();
        let envoy = EnvoyConfig::tcp(upstream.port())
            .filter(this_filter(&config))
            .start_with_args(TWO_WORKERS)
            .unwrap();
        let port = envoy.listener_port();
        // Two clients (127.0.0.2 and .3), 45 connections each, 10 threads at once.
        let barrier = Arc::new(Barrier::new(10));
        let handles: Vec<_> = (0..10u8)
            .map(|t| {
                let barrier = barrier.clone();
                let client = 2 + t % 2;
                thread::spawn(move || {
                    barrier.wait();
                    let ok = (0..9)
                        .filter(|_| echoes(connect_from(client, port)))
                        .count();
                    (client, ok)
                })
            })
            .collect();
        let mut admitted = [0usize; 2];
        for h in handles {
            let (client, ok) = h.join().unwrap();
            admitted[usize::from(client - 2)] += ok;
        }
        assert_eq!(admitted, [BUDGET, BUDGET]);
        assert_eq!(
            upstream.connection_count(),
            2 * BUDGET,
            "a refused connection never reaches the upstream"
        );
        let workers = per_worker_connections(&envoy);
        assert!(workers.iter().all(|&n| n > 0), "{workers:?}");
        assert_eq!(envoy.stat("wasmcustom.rate_limit.l4.limited"), Some(60));
        // A third client is unaffected.
        assert!(echoes(connect_from(4, port)));
    }
}

each_loading! {
    fn l4_concurrent_connections_per_client_across_two_workers() {
        let upstream = TcpEchoUpstream::start();
        let envoy = EnvoyConfig::tcp(upstream.port())
            .filter(this_filter(
                r#"{"stat_prefix":"cc","connections":{"max_concurrent":4}}"#,
            ))
            .start_with_args(TWO_WORKERS)
            .unwrap();
        let port = envoy.listener_port();
        // Ten connections held open at once from 127.0.0.5: exactly four get through.
        let open: Vec<TcpStream> = (0..10).map(|_| connect_from(5, port)).collect();
        let mut alive = Vec::new();
        for mut s in open {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"x");
            let mut b = [0u8; 1];
            if matches!(s.read(&mut b), Ok(1)) {
                alive.push(s);
            }
        }
        assert_eq!(alive.len(), 4);
        assert!(
            echoes(connect_from(6, port)),
            "another client is unaffected"
        );
        // Closing them gives the slots back.
        drop(alive);
        thread::sleep(Duration::from_millis(500));
        let again = (0..4).filter(|_| echoes(connect_from(5, port))).count();
        assert_eq!(again, 4);
    }
}

#[test]
fn the_shipped_envoy_configs_serve_it() {
    let echo = EchoUpstream::start();
    let envoy = Envoy::start_file("envoy-configs/rate-limit.yaml", &[(8080, echo.port())]).unwrap();
    assert_eq!(envoy.get("/health", &[]).status, 200);
    let statuses: Vec<u16> = (0..6).map(|_| envoy.get("/login", &[]).status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    drop(envoy);
    let upstream = TcpEchoUpstream::start();
    let envoy = Envoy::start_file(
        "envoy-configs/rate-limit-tcp.yaml",
        &[(8080, upstream.port())],
    )
    .unwrap();
    assert!(echoes(connect_from(1, envoy.listener_port())));
    assert_eq!(envoy.stat("wasmcustom.rate_limit.tcp.allowed"), Some(1));
}

//! The host emulator driving a small filter written against bare proxy-wasm.

// The filter under test lives outside `#[test]` functions; like the tests, it may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{ContextType, MetricType};
use proxy_wasm::types::{Action as PwAction, PeerType as PwPeer};
use sdk_ext::testing::{Action, Emulator, LogLevel, PeerType};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// The filter under test. Plugin configuration is plain text: "refuse" makes on_configure
// fail, "tcp" makes the root create stream (L4) contexts, anything else HTTP contexts.

static EXPORTS: sdk_ext::exports::Exports = sdk_ext::proxy_wasm_sdk_exports!();

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(Root { tcp: false, queue: 0 }));
}}

struct Root {
    tcp: bool,
    queue: u32,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let vm = self.get_vm_configuration().unwrap_or_default();
        log::info!("vm config: {}", String::from_utf8_lossy(&vm));
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        if config == b"refuse" {
            log::error!("config refused");
            return false;
        }
        self.tcp = config == b"tcp";
        self.set_tick_period(Duration::from_secs(5));
        self.queue = self.register_shared_queue("jobs");
        true
    }

    fn on_tick(&mut self) {
        let id = hostcalls::define_metric(MetricType::Counter, "ticks").unwrap();
        hostcalls::increment_metric(id, 1).unwrap();
        let now = self.get_current_time().duration_since(UNIX_EPOCH).unwrap();
        log::info!("tick at {}", now.as_secs());
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(job)) = self.dequeue_shared_queue(queue_id) {
            log::info!("job: {}", String::from_utf8_lossy(&job));
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(if self.tcp {
            ContextType::StreamContext
        } else {
            ContextType::HttpContext
        })
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { queue: self.queue }))
    }

    fn create_stream_context(&self, _id: u32) -> Option<Box<dyn StreamContext>> {
        Some(Box::new(Tcp))
    }
}

struct Http {
    queue: u32,
}

impl Http {
    fn prop(&self, path: Vec<&str>) -> String {
        String::from_utf8_lossy(&self.get_property(path).unwrap_or_default()).into_owned()
    }
}

impl Context for Http {
    fn on_grpc_call_response(&mut self, _token: u32, status: u32, size: usize) {
        self.on_grpc(status, size);
    }

    fn on_http_call_response(&mut self, _token: u32, headers: usize, body_size: usize, _: usize) {
        if headers == 0 {
            let (code, message) = self.get_grpc_status();
            log::warn!("callout failed: {code} {}", message.unwrap_or_default());
            self.send_http_response(503, vec![("x-failure", "callout")], Some(b"unavailable"));
            return;
        }
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_default();
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        self.set_http_request_header("x-auth-status", Some(&status));
        self.set_http_request_header_bytes("x-auth-body", Some(&body));
        self.resume_http_request();
    }
}

impl Http {
    fn on_grpc(&mut self, status: u32, size: usize) {
        if status != 0 {
            let (code, message) = self.get_grpc_status();
            let message = format!("{code}: {}", message.unwrap_or_default());
            self.send_http_response(502, vec![], Some(message.as_bytes()));
            return;
        }
        let body = self
            .get_grpc_call_response_body(0, size)
            .unwrap_or_default();
        self.set_http_request_header_bytes("x-grpc-body", Some(&body));
        self.resume_http_request();
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num: usize, _eos: bool) -> PwAction {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        log::info!("request to {path}");

        let requests = hostcalls::define_metric(MetricType::Counter, "requests_total").unwrap();
        hostcalls::increment_metric(requests, 1).unwrap();
        let active = hostcalls::define_metric(MetricType::Gauge, "active").unwrap();
        hostcalls::increment_metric(active, 3).unwrap();
        hostcalls::increment_metric(active, -1).unwrap();
        let sizes = hostcalls::define_metric(MetricType::Histogram, "path_len").unwrap();
        hostcalls::record_metric(sizes, path.len() as u64).unwrap();

        // Case-insensitive lookup, multiple values, bytes.
        if self.get_http_request_header("x-upper").is_some() {
            self.set_http_request_header("x-upper-seen", Some("yes"));
        }
        let multi = self
            .get_http_request_headers_bytes()
            .into_iter()
            .filter(|(name, _)| name == "x-multi")
            .count();
        self.add_http_request_header("x-multi-count", &multi.to_string());
        if let Some(raw) = self.get_http_request_header_bytes("x-bin") {
            self.set_http_request_header_bytes("x-bin-echo", Some(&raw));
        }
        self.remove_http_request_header("x-remove-me");

        match path.split('?').next().unwrap_or_default() {
            "/deny" => {
                self.send_http_response(403, vec![("X-Reason", "denied")], Some(b"nope"));
                PwAction::Pause
            }
            "/props" => {
                for (header, path) in [
                    ("x-p-path", vec!["request", "path"]),
                    ("x-p-url-path", vec!["request", "url_path"]),
                    ("x-p-method", vec!["request", "method"]),
                    ("x-p-host", vec!["request", "host"]),
                    ("x-p-protocol", vec!["request", "protocol"]),
                    ("x-p-source", vec!["source", "address"]),
                    ("x-p-plugin", vec!["plugin_name"]),
                    ("x-p-tenant", vec!["tenant"]),
                ] {
                    let value = self.prop(path);
                    self.set_http_request_header(header, Some(&value));
                }
                let missing = self.get_property(vec!["no", "such"]).is_none();
                self.set_http_request_header("x-p-missing", Some(&missing.to_string()));
                self.set_property(vec!["filter", "seen"], Some(b"1"));
                PwAction::Continue
            }
            "/shared" => {
                let (value, cas) = self.get_shared_data("hits");
                let hits: u32 = value
                    .map(|v| String::from_utf8_lossy(&v).parse().unwrap())
                    .unwrap_or(0);
                let next = (hits + 1).to_string();
                self.set_shared_data("hits", Some(next.as_bytes()), cas)
                    .unwrap();
                // The CAS just used is stale now.
                let stale = self.set_shared_data("hits", Some(b"999"), cas);
                let stale = if cas.is_some() {
                    stale
                } else {
                    Err(proxy_wasm::types::Status::CasMismatch)
                };
                self.set_http_request_header("x-stale", Some(&format!("{stale:?}")));
                PwAction::Continue
            }
            "/callout" | "/callout-unknown" => {
                let upstream = if path == "/callout" {
                    "auth"
                } else {
                    "elsewhere"
                };
                match self.dispatch_http_call(
                    upstream,
                    vec![
                        (":method", "POST"),
                        (":path", "/check"),
                        (":authority", "auth"),
                    ],
                    Some(b"question"),
                    vec![],
                    Duration::from_millis(1500),
                ) {
                    Ok(_) => PwAction::Pause,
                    Err(status) => {
                        self.set_http_request_header(
                            "x-callout-error",
                            Some(&format!("{status:?}")),
                        );
                        PwAction::Continue
                    }
                }
            }
            "/callout-no-authority" => {
                let result = self.dispatch_http_call(
                    "auth",
                    vec![(":method", "GET"), (":path", "/check")],
                    None,
                    vec![],
                    Duration::from_secs(1),
                );
                self.set_http_request_header("x-callout-error", Some(&format!("{result:?}")));
                PwAction::Continue
            }
            "/foreign" => {
                let reversed = self.call_foreign_function("reverse", Some(b"abc")).unwrap();
                self.set_http_request_header_bytes("x-foreign", reversed.as_deref());
                let missing = self.call_foreign_function("nope", None);
                self.set_http_request_header("x-foreign-missing", Some(&format!("{missing:?}")));
                PwAction::Continue
            }
            "/time" => {
                let now = self.get_current_time().duration_since(UNIX_EPOCH).unwrap();
                self.set_http_request_header("x-now", Some(&now.as_secs().to_string()));
                PwAction::Continue
            }
            "/grpc" => {
                match self.dispatch_grpc_call(
                    "grpc-svc",
                    "pkg.Checker",
                    "Check",
                    vec![("x-tenant", b"acme")],
                    Some(b"request-bytes"),
                    Duration::from_secs(2),
                ) {
                    Ok(_) => PwAction::Pause,
                    Err(status) => {
                        self.set_http_request_header("x-grpc-error", Some(&format!("{status:?}")));
                        PwAction::Continue
                    }
                }
            }
            "/enqueue" => {
                self.enqueue_shared_queue(self.queue, Some(b"from-stream"))
                    .unwrap();
                PwAction::Continue
            }
            _ => PwAction::Continue,
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> PwAction {
        if !end_of_stream {
            return PwAction::Pause;
        }
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        self.set_http_request_body(0, size, &body.to_ascii_uppercase());
        PwAction::Continue
    }

    fn on_http_request_trailers(&mut self, _num: usize) -> PwAction {
        self.add_http_request_trailer("x-trailer-seen", "1");
        PwAction::Continue
    }

    fn on_http_response_headers(&mut self, _num: usize, _eos: bool) -> PwAction {
        self.set_http_response_header("x-served-by", Some("emulator"));
        self.remove_http_response_header("server");
        PwAction::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> PwAction {
        if end_of_stream {
            self.set_http_response_body(size, 0, b"<end>");
        }
        PwAction::Continue
    }

    fn on_log(&mut self) {
        let status = self.get_http_response_header(":status").unwrap_or_default();
        log::info!("access log: status={status}");
    }
}

struct Tcp;

impl Context for Tcp {}

impl StreamContext for Tcp {
    fn on_new_connection(&mut self) -> PwAction {
        log::info!("new connection");
        PwAction::Continue
    }

    fn on_downstream_data(&mut self, size: usize, end_of_stream: bool) -> PwAction {
        let data = self.get_downstream_data(0, size).unwrap_or_default();
        if !data.ends_with(b"\n") && !end_of_stream {
            return PwAction::Pause; // wait for a whole line
        }
        if data.starts_with(b"QUIT") {
            self.close_downstream();
        }
        self.set_downstream_data(0, 0, b"> ");
        PwAction::Continue
    }

    fn on_upstream_data(&mut self, size: usize, _end_of_stream: bool) -> PwAction {
        self.set_upstream_data(0, size, b"[redacted]");
        PwAction::Continue
    }

    fn on_downstream_close(&mut self, peer: PwPeer) {
        log::info!("downstream closed by {peer:?}");
    }

    fn on_log(&mut self) {
        log::info!("connection logged");
    }
}

// ---------------------------------------------------------------------------------------
// Tests.

fn started() -> Emulator {
    let mut emu = Emulator::native(&EXPORTS);
    emu.start(b"http").unwrap();
    emu
}

const GET: [(&str, &str); 3] = [
    (":method", "GET"),
    (":authority", "example.com"),
    (":scheme", "https"),
];

fn get(path: &str) -> Vec<(&str, &str)> {
    let mut headers = GET.to_vec();
    headers.push((":path", path));
    headers
}

#[test]
fn config_is_accepted_or_refused() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.set_vm_config("vm-cfg");
    assert!(emu.start("refuse").is_err());
    assert!(emu.has_log("config refused"));
    assert!(emu.has_log("vm config: vm-cfg"));
    assert_eq!(
        emu.logs_at(LogLevel::Error),
        vec!["config refused".to_string()]
    );

    let mut emu = Emulator::native(&EXPORTS);
    emu.start("http").unwrap();
    assert_eq!(emu.tick_period(), Some(Duration::from_secs(5)));
    assert!(emu.root_context_id().is_some());
}

#[test]
fn request_headers_are_read_and_modified() {
    let mut emu = started();
    let mut stream = emu.http();
    let mut headers = get("/plain");
    headers.extend([
        ("X-Upper", "1"),
        ("x-multi", "a"),
        ("X-Multi", "b"),
        ("x-remove-me", "gone"),
    ]);
    assert_eq!(stream.request_headers(&headers, true), Action::Continue);

    assert_eq!(
        stream.request_header_str("x-upper-seen").as_deref(),
        Some("yes")
    );
    assert_eq!(
        stream.request_header_str("X-MULTI-COUNT").as_deref(),
        Some("2")
    );
    assert_eq!(
        stream.request_header_values("x-multi"),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(stream.request_header("x-remove-me"), None);
    let names: Vec<String> = stream
        .request_header_pairs()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.iter().all(|name| *name == name.to_ascii_lowercase()));
    assert!(emu.has_log("request to /plain"));
    stream.complete();
    assert!(emu.has_log("access log: status="));
}

#[test]
fn non_utf8_values_round_trip() {
    let mut emu = started();
    let mut stream = emu.http();
    let raw: &[u8] = &[0xff, 0xfe, b'x', 0x80];
    let mut headers: Vec<(&str, &[u8])> = get("/bin")
        .into_iter()
        .map(|(n, v)| (n, v.as_bytes()))
        .collect();
    headers.push(("x-bin", raw));
    assert_eq!(
        stream.request_headers_bytes(&headers, true),
        Action::Continue
    );
    assert_eq!(stream.request_header("x-bin-echo").as_deref(), Some(raw));
}

#[test]
fn local_response_is_captured() {
    let mut emu = started();
    let mut stream = emu.http();
    assert_eq!(stream.request_headers(&get("/deny"), true), Action::Pause);
    let response = stream.local_response().expect("a local response");
    assert_eq!(response.status_code, 403);
    assert_eq!(response.header_str("x-reason").as_deref(), Some("denied"));
    assert_eq!(response.headers[0].0, "x-reason");
    assert_eq!(response.body_str(), "nope");
    assert_eq!(response.grpc_status, None);

    let mut other = emu.http();
    other.request_headers(&get("/ok"), true);
    assert_eq!(other.local_response(), None);
}

#[test]
fn metrics_follow_envoy_semantics() {
    let mut emu = started();
    for path in ["/a", "/abc"] {
        let mut stream = emu.http();
        stream.request_headers(&get(path), true);
        stream.complete();
    }
    assert_eq!(emu.metric("requests_total"), Some(2));
    assert_eq!(emu.metric("active"), Some(4));
    assert_eq!(emu.histogram("path_len"), Some(vec![2, 4]));
    assert_eq!(emu.metric("path_len"), None);
    assert_eq!(
        emu.metric_names(),
        vec!["requests_total", "active", "path_len"]
    );

    // Counters only go up: a non-positive increment is refused, as in Envoy.
    let mut stream = emu.http();
    stream.request_headers(&get("/x"), true);
    let id = emu_metric_id("requests_total");
    assert_eq!(
        hostcalls::increment_metric(id, -1),
        Err(proxy_wasm::types::Status::BadArgument)
    );
    assert_eq!(
        hostcalls::get_metric(emu_metric_id("path_len")),
        Err(proxy_wasm::types::Status::BadArgument)
    );
}

/// Defines (i.e. looks up) a metric id from the test itself, as the filter would.
fn emu_metric_id(name: &str) -> u32 {
    let kind = if name == "path_len" {
        MetricType::Histogram
    } else {
        MetricType::Counter
    };
    hostcalls::define_metric(kind, name).unwrap()
}

#[test]
fn properties_set_and_derived() {
    let mut emu = started();
    emu.set_property(&["plugin_name"], "my-plugin");
    emu.set_property(&["tenant"], "global");
    let mut stream = emu.http();
    stream.set_property(&["tenant"], "acme");
    stream.request_headers(
        &[
            (":method", "POST"),
            (":path", "/props?x=1"),
            (":authority", "api.example.com"),
            (":scheme", "https"),
        ],
        true,
    );
    let header = |name: &str| stream.request_header_str(name).unwrap();
    assert_eq!(header("x-p-path"), "/props?x=1");
    assert_eq!(header("x-p-url-path"), "/props");
    assert_eq!(header("x-p-method"), "POST");
    assert_eq!(header("x-p-host"), "api.example.com");
    assert_eq!(header("x-p-protocol"), "HTTP/1.1");
    assert_eq!(header("x-p-source"), "127.0.0.1:45678");
    assert_eq!(header("x-p-plugin"), "my-plugin");
    assert_eq!(header("x-p-tenant"), "acme");
    assert_eq!(header("x-p-missing"), "true");
    assert_eq!(stream.property(&["filter", "seen"]), Some(b"1".to_vec()));
    assert_eq!(
        stream.property(&["request", "scheme"]),
        Some(b"https".to_vec())
    );
    assert_eq!(emu.property(&["filter", "seen"]), None);
}

#[test]
fn shared_data_with_cas() {
    let mut emu = started();
    emu.set_shared_data("hits", "41");
    let cas = emu.shared_data_cas("hits").unwrap();
    let mut stream = emu.http();
    stream.request_headers(&get("/shared"), true);
    assert_eq!(emu.shared_data("hits"), Some(b"42".to_vec()));
    assert!(emu.shared_data_cas("hits").unwrap() > cas);
    assert_eq!(
        stream.request_header_str("x-stale").as_deref(),
        Some("Err(CasMismatch)")
    );
    assert_eq!(emu.shared_data("missing"), None);
}

#[test]
fn http_callout_answered() {
    let mut emu = started();
    emu.set_known_clusters(&["auth"]);
    let mut stream = emu.http();
    assert_eq!(
        stream.request_headers(&get("/callout"), true),
        Action::Pause
    );

    let calls = emu.http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.upstream, "auth");
    assert_eq!(call.header_str(":path").as_deref(), Some("/check"));
    assert_eq!(call.body, b"question");
    assert_eq!(call.timeout, Duration::from_millis(1500));
    assert_eq!(call.context_id, stream.id());
    assert!(!stream.resumed());

    assert!(emu.respond_http_call(call.token, &[(":status", "200")], b"allowed"));
    assert!(stream.resumed());
    assert_eq!(
        stream.request_header_str("x-auth-status").as_deref(),
        Some("200")
    );
    assert_eq!(
        stream.request_header_str("x-auth-body").as_deref(),
        Some("allowed")
    );
    assert!(emu.http_calls().is_empty());
    assert!(
        !emu.respond_http_call(call.token, &[], b""),
        "already answered"
    );
}

#[test]
fn http_callout_failed() {
    let mut emu = started();
    let mut stream = emu.http();
    assert_eq!(
        stream.request_headers(&get("/callout"), true),
        Action::Pause
    );
    let token = emu.http_calls()[0].token;
    assert!(emu.fail_http_call(token));
    assert!(emu.has_log("callout failed: 11 reset"));
    let response = stream.local_response().unwrap();
    assert_eq!(response.status_code, 503);
    assert!(!stream.resumed());
}

#[test]
fn http_callout_refused_like_envoy() {
    let mut emu = started();
    emu.set_known_clusters(&["auth"]);
    let mut stream = emu.http();
    assert_eq!(
        stream.request_headers(&get("/callout-unknown"), true),
        Action::Continue
    );
    assert_eq!(
        stream.request_header_str("x-callout-error").as_deref(),
        Some("BadArgument")
    );

    let mut stream = emu.http();
    stream.request_headers(&get("/callout-no-authority"), true);
    assert_eq!(
        stream.request_header_str("x-callout-error").as_deref(),
        Some("Err(BadArgument)")
    );
    assert!(emu.http_calls().is_empty());
}

#[test]
fn foreign_functions() {
    let mut emu = started();
    emu.register_foreign_function("reverse", |args| Ok(args.iter().rev().copied().collect()));
    let mut stream = emu.http();
    stream.request_headers(&get("/foreign"), true);
    assert_eq!(
        stream.request_header_str("x-foreign").as_deref(),
        Some("cba")
    );
    assert_eq!(
        stream.request_header_str("x-foreign-missing").as_deref(),
        Some("Err(NotFound)")
    );
}

#[test]
fn tick_and_time() {
    let mut emu = started();
    let start = emu.now();
    assert_eq!(start, UNIX_EPOCH + Duration::from_secs(1_704_067_200));
    emu.tick();
    emu.advance_time(Duration::from_secs(5));
    emu.tick();
    assert_eq!(emu.metric("ticks"), Some(2));
    assert!(emu.has_log("tick at 1704067200"));
    assert!(emu.has_log("tick at 1704067205"));

    emu.set_time(SystemTime::UNIX_EPOCH + Duration::from_secs(42));
    let mut stream = emu.http();
    stream.request_headers(&get("/time"), true);
    assert_eq!(stream.request_header_str("x-now").as_deref(), Some("42"));
}

#[test]
fn body_is_buffered_across_pause() {
    let mut emu = started();
    let mut stream = emu.http();
    stream.request_headers(&get("/upload"), false);
    assert_eq!(stream.request_body(b"hello ", false), Action::Pause);
    assert_eq!(stream.request_body(b"wor", false), Action::Pause);
    assert_eq!(stream.request_body_buffer(), b"hello wor");
    assert_eq!(stream.request_body(b"ld", true), Action::Continue);
    assert_eq!(stream.request_body_buffer(), b"HELLO WORLD");
    assert_eq!(stream.forwarded_request_body(), b"HELLO WORLD");

    assert_eq!(
        stream.request_trailers(&[("grpc-status", "0")]),
        Action::Continue
    );
    assert_eq!(
        stream.request_trailer("x-trailer-seen"),
        Some(b"1".to_vec())
    );

    let response = [
        (":status", "200"),
        ("server", "upstream"),
        ("Content-Type", "text/plain"),
    ];
    assert_eq!(stream.response_headers(&response, false), Action::Continue);
    assert_eq!(
        stream.response_header_str("x-served-by").as_deref(),
        Some("emulator")
    );
    assert_eq!(stream.response_header("server"), None);
    assert_eq!(
        stream.response_header_str("content-type").as_deref(),
        Some("text/plain")
    );
    assert_eq!(stream.response_body(b"abc", false), Action::Continue);
    assert_eq!(stream.response_body(b"def", true), Action::Continue);
    assert_eq!(stream.response_body_buffer(), b"def<end>");
    assert_eq!(stream.forwarded_response_body(), b"abcdef<end>");
    stream.complete();
    assert!(emu.has_log("access log: status=200"));
}

#[test]
fn shared_queue_delivers_to_root() {
    let mut emu = started();
    assert!(emu.queue_id("jobs").is_some());
    assert!(emu.enqueue("jobs", "from-test"));
    assert!(emu.has_log("job: from-test"));
    assert!(!emu.enqueue("no-such-queue", "x"));

    let mut stream = emu.http();
    stream.request_headers(&get("/enqueue"), true);
    assert!(emu.has_log("job: from-stream"));
    assert!(emu.queue_items("jobs").is_empty());
}

#[test]
fn tcp_data_modified_and_closed() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.start("tcp").unwrap();
    let mut conn = emu.tcp();
    assert_eq!(conn.new_connection_action(), Action::Continue);
    assert!(emu.has_log("new connection"));

    assert_eq!(conn.downstream_data(b"HEL", false), Action::Pause);
    assert_eq!(conn.downstream_data(b"LO\n", false), Action::Continue);
    assert_eq!(conn.downstream_buffer(), b"> HELLO\n");
    assert_eq!(conn.forwarded_downstream(), b"> HELLO\n");
    assert!(!conn.closed_downstream());

    assert_eq!(conn.upstream_data(b"secret", false), Action::Continue);
    assert_eq!(conn.upstream_buffer(), b"[redacted]");

    assert_eq!(conn.downstream_data(b"QUIT\n", false), Action::Continue);
    assert!(conn.closed_downstream());
    assert!(!conn.closed_upstream());

    conn.downstream_close(PeerType::Remote);
    assert!(emu.has_log("downstream closed by Remote"));
    conn.complete();
    assert!(emu.has_log("connection logged"));
}

#[test]
fn logs_respect_host_level_and_clear() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.set_log_level(LogLevel::Warn);
    emu.start("http").unwrap();
    assert!(!emu.has_log("vm config"), "info is below the host level");
    emu.set_log_level(LogLevel::Trace);
    let mut stream = emu.http();
    stream.request_headers(&get("/x"), true);
    assert!(emu.has_log("request to /x"));
    emu.clear_logs();
    assert!(emu.logs().is_empty());
}

#[test]
fn emulators_can_follow_each_other_on_one_thread() {
    for _ in 0..3 {
        let mut emu = started();
        let mut stream = emu.http();
        assert_eq!(
            stream.request_headers(&get("/callout"), true),
            Action::Pause
        );
        assert_eq!(emu.metric("requests_total"), Some(1));
        // Dropped with a pending callout and a live stream: the next emulator starts clean.
    }
}

#[test]
fn grpc_call_answered_and_failed() {
    let mut emu = started();
    emu.set_known_clusters(&["grpc-svc"]);
    let mut stream = emu.http();
    assert_eq!(stream.request_headers(&get("/grpc"), true), Action::Pause);
    let calls = emu.grpc_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(
        (call.service.as_str(), call.method.as_str()),
        ("pkg.Checker", "Check")
    );
    assert_eq!(call.message, b"request-bytes");
    assert_eq!(
        call.initial_metadata,
        vec![("x-tenant".to_string(), b"acme".to_vec())]
    );
    assert_eq!(call.timeout, Some(Duration::from_secs(2)));
    assert!(emu.respond_grpc_call(call.token, b"reply"));
    assert_eq!(
        stream.request_header("x-grpc-body"),
        Some(b"reply".to_vec())
    );
    assert!(stream.resumed());
    assert!(emu.grpc_calls().is_empty());

    let mut stream = emu.http();
    stream.request_headers(&get("/grpc"), true);
    let token = emu.grpc_calls()[0].token;
    assert!(emu.fail_grpc_call(token, 14, "unavailable"));
    let response = stream.local_response().unwrap();
    assert_eq!(
        (response.status_code, response.body_str()),
        (502, "14: unavailable".to_string())
    );

    emu.set_known_clusters(&[]);
    let mut stream = emu.http();
    assert_eq!(
        stream.request_headers(&get("/grpc"), true),
        Action::Continue
    );
    assert_eq!(
        stream.request_header_str("x-grpc-error").as_deref(),
        Some("ParseFailure")
    );
}

//! sdk-ext's own filter API, driven by the emulator: the phases a filter's code implements
//! are exactly the ones exported and delivered; one crate serves HTTP and L4 over one plugin;
//! callouts reach the context that made them; a refused config names its field.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sdk_ext::config::{self, ConfigError};
use sdk_ext::metrics::Counter;
use sdk_ext::response::LocalResponse;
use sdk_ext::testing::{Action, Emulator, PeerType};
use sdk_ext::{HttpFilter, HttpHost, NetworkFilter, NetworkHost, Plugin};
use std::time::Duration;

#[derive(sdk_ext::FromJson)]
#[serde(deny_unknown_fields)]
struct Raw {
    deny_prefix: String,
    #[serde(default)]
    tick_ms: u64,
}

struct Guard {
    deny_prefix: Vec<u8>,
    tick: Option<Duration>,
    denied: LocalResponse,
    ticks: Counter,
    closed: Counter,
}

impl Plugin for Guard {
    const NAME: &'static str = "guard";
    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: Raw = config::parse(bytes)?;
        if !raw.deny_prefix.starts_with('/') {
            return Err(ConfigError::new("deny_prefix", "must start with '/'"));
        }
        Ok(Guard {
            deny_prefix: raw.deny_prefix.into_bytes(),
            tick: (raw.tick_ms > 0).then(|| Duration::from_millis(raw.tick_ms)),
            denied: LocalResponse::new(403, "guard_denied", "no"),
            ticks: Counter::new("guard.ticks"),
            closed: Counter::new("guard.closed"),
        })
    }
    fn tick_period(&self) -> Option<Duration> {
        self.tick
    }
    fn on_tick(&self) {
        self.ticks.inc();
    }
}

struct Stream {
    seen_path: Vec<u8>,
    callout: Option<u32>,
}

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Guard;
    fn create(_: &Guard) -> Self {
        Stream {
            seen_path: Vec::new(),
            callout: None,
        }
    }
    fn on_request_headers(&mut self, g: &Guard, host: &mut HttpHost, _: bool) -> Action {
        let path = host.request_header(":path").unwrap_or_default().to_vec();
        if path.starts_with(&g.deny_prefix) {
            return host.respond(&g.denied);
        }
        if path == b"/ask" {
            let token = host
                .http_call(
                    "authz",
                    &[
                        (":method", b"GET"),
                        (":path", b"/check"),
                        (":authority", b"authz"),
                    ],
                    b"",
                    Duration::from_secs(1),
                )
                .unwrap();
            self.callout = Some(token);
            return Action::Pause;
        }
        self.seen_path = path;
        Action::Continue
    }
    fn on_response_headers(&mut self, _: &Guard, host: &mut HttpHost, _: bool) -> Action {
        // Per-stream state lives from one phase to the next.
        let _ = host.set_response_header("x-path", &self.seen_path);
        Action::Continue
    }
    fn on_http_call_response(&mut self, _: &Guard, host: &mut HttpHost, token: u32, size: usize) {
        assert_eq!(Some(token), self.callout);
        let answer = sdk_ext::callout::Response::read(size, 100);
        let _ = host.set_request_header("x-authz", &answer.body);
        let _ = host.resume_request();
    }
}

struct Conn;

#[sdk_ext::filter]
impl NetworkFilter for Conn {
    type Plugin = Guard;
    fn create(_: &Guard) -> Self {
        Conn
    }
    fn on_downstream_data(
        &mut self,
        _: &Guard,
        host: &mut NetworkHost,
        n: usize,
        _: bool,
    ) -> Action {
        if host
            .downstream_data(0, n)
            .unwrap_or_default()
            .starts_with(b"QUIT")
        {
            let _ = host.close_downstream();
        }
        Action::Continue
    }
    fn on_downstream_close(&mut self, g: &Guard, _: &mut NetworkHost, _: PeerType) {
        g.closed.inc();
    }
}

sdk_ext::main!(plugin: Guard, http: Stream, network: Conn);

#[test]
fn exports_are_exactly_the_implemented_phases() {
    assert!(EXPORTS.on_request_headers.is_some());
    assert!(EXPORTS.on_response_headers.is_some());
    assert!(EXPORTS.on_request_body.is_none());
    assert!(EXPORTS.on_response_body.is_none());
    assert!(EXPORTS.on_request_trailers.is_none());
    assert!(EXPORTS.on_log.is_none());
    assert!(EXPORTS.on_done.is_none());
    assert!(EXPORTS.on_downstream_data.is_some());
    assert!(EXPORTS.on_downstream_connection_close.is_some());
    assert!(EXPORTS.on_upstream_data.is_none());
    assert!(EXPORTS.on_new_connection.is_none());
    assert!(EXPORTS.on_delete.is_some());
    assert!(EXPORTS.on_http_call_response.is_some());
    assert_eq!(
        <Stream as HttpFilter>::PHASES.bits(),
        sdk_ext::exports::Phases::REQUEST_HEADERS
            | sdk_ext::exports::Phases::RESPONSE_HEADERS
            | sdk_ext::exports::Phases::HTTP_CALL_RESPONSE
    );
}

#[test]
fn http_streams_keep_state_between_phases_and_deny_locally() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.start(r#"{"deny_prefix": "/admin"}"#).unwrap();
    let mut s = emu.http();
    assert_eq!(
        s.request_headers(&[(":path", "/ok")], true),
        Action::Continue
    );
    // A body phase the filter does not implement is not delivered: Envoy would not call it.
    assert_eq!(s.request_body(b"ignored", true), Action::Continue);
    s.response_headers(&[(":status", "200")], true);
    assert_eq!(s.response_header_str("x-path").as_deref(), Some("/ok"));
    s.complete();

    let mut s = emu.http();
    assert_eq!(
        s.request_headers(&[(":path", "/admin/x")], true),
        Action::Pause
    );
    assert_eq!(s.local_response().unwrap().status_code, 403);
}

#[test]
fn a_stream_callout_answer_reaches_the_stream_that_paused() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.start(r#"{"deny_prefix": "/admin"}"#).unwrap();
    let mut s = emu.http();
    assert_eq!(s.request_headers(&[(":path", "/ask")], true), Action::Pause);
    let call = emu.http_calls().pop().unwrap();
    assert!(emu.respond_http_call(call.token, &[(":status", "200")], b"allow"));
    assert!(s.request_resumed());
    assert_eq!(s.request_header_str("x-authz").as_deref(), Some("allow"));
}

#[test]
fn one_crate_serves_l4_too() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.start(r#"{"deny_prefix": "/admin", "tick_ms": 250}"#)
        .unwrap();
    assert_eq!(emu.tick_period(), Some(Duration::from_millis(250)));
    emu.tick();
    assert_eq!(emu.metric("guard.ticks"), Some(1));
    let mut c = emu.tcp();
    c.downstream_data(b"hello", false);
    assert!(!c.closed_downstream());
    c.downstream_data(b"QUIT\r\n", false);
    assert!(c.closed_downstream());
    c.downstream_close(PeerType::Remote);
    assert_eq!(emu.metric("guard.closed"), Some(1));
}

#[test]
fn a_refused_config_names_its_field() {
    let mut emu = Emulator::native(&EXPORTS);
    assert_eq!(
        emu.start(r#"{"deny_prefix": "admin"}"#).unwrap_err(),
        "invalid config at deny_prefix: must start with '/'"
    );
    let mut emu = Emulator::native(&EXPORTS);
    let e = emu
        .start(r#"{"deny_prefix": "/a", "tick_ms": 9999999999999}"#)
        .unwrap_err();
    assert!(e.contains("cannot set tick period"), "{e}");
}

#[test]
#[should_panic(expected = "no longer exists")]
fn a_stream_used_after_its_emulator_is_gone_fails_the_test() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.start(r#"{"deny_prefix": "/admin"}"#).unwrap();
    let mut s = emu.http();
    drop(emu);
    s.request_headers(&[(":path", "/ok")], true);
}

#[test]
fn higress_rules_choose_a_plugin_instance_per_stream() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.start(
        r#"{"deny_prefix": "/admin",
            "_rules_": [
              {"_match_route_": ["internal"], "deny_prefix": "/"},
              {"_match_domain_": ["*.example.com"], "deny_prefix": "/ex"}]}"#,
    )
    .unwrap();
    let deny = |emu: &mut Emulator, route: Option<&str>, host: &str, path: &str| {
        let mut s = emu.http();
        if let Some(r) = route {
            s.set_property(&["xds", "route_name"], r);
        }
        s.request_headers(&[(":authority", host), (":path", path)], true) == Action::Pause
    };
    // Global: /admin only.
    assert!(deny(&mut emu, None, "a.org", "/admin"));
    assert!(!deny(&mut emu, None, "a.org", "/ex"));
    // Route "internal": everything.
    assert!(deny(&mut emu, Some("internal"), "a.org", "/anything"));
    // *.example.com (port ignored): /ex, and not /admin (the rule replaces the global config).
    assert!(deny(&mut emu, None, "api.example.com:8443", "/ex/1"));
    assert!(!deny(&mut emu, None, "api.example.com", "/admin"));
}

#[test]
fn higress_rules_without_global_fields_apply_only_where_they_match() {
    let mut emu = Emulator::native(&EXPORTS);
    emu.start(r#"{"_rules_": [{"_match_route_": ["r1"], "deny_prefix": "/"}]}"#)
        .unwrap();
    let mut s = emu.http();
    assert_eq!(
        s.request_headers(&[(":path", "/x")], true),
        Action::Continue
    );
    s.response_headers(&[(":status", "200")], true);
    // No instance serves this stream: not even the response phase ran.
    assert_eq!(s.response_header("x-path"), None);
    let mut s = emu.http();
    s.set_property(&["xds", "route_name"], "r1");
    assert_eq!(s.request_headers(&[(":path", "/x")], true), Action::Pause);
}

#[test]
fn a_bad_higress_rule_is_refused_naming_the_rule() {
    let mut emu = Emulator::native(&EXPORTS);
    assert_eq!(
        emu.start(
            r#"{"deny_prefix": "/a", "_rules_": [{"_match_route_": ["r"], "deny_prefix": "x"}]}"#
        )
        .unwrap_err(),
        "invalid config at _rules_[0].deny_prefix: must start with '/'"
    );
    let mut emu = Emulator::native(&EXPORTS);
    let e = emu
        .start(r#"{"deny_prefix": "/a", "_rules_": [{"deny_prefix": "/b"}]}"#)
        .unwrap_err();
    assert!(
        e.contains("invalid config at _rules_[0]: needs one of _match_route_"),
        "{e}"
    );
}

//! The whole filter in the host emulator: shared-data buckets, per-route and per-key limits,
//! refill arithmetic through the host clock, another worker's writes, eviction, shadow mode,
//! the 429 and its headers, L4 connection limits.

use rate_limit::bucket::Slot;
use sdk_ext::testing::{engines, Action, Emulator, Engine, Module};
use std::time::Duration;

/// The filter in both builds: every test below runs natively and on `dist/rate-limit.wasm`.
static MODULE: Module = Module::new(&rate_limit::EXPORTS, "dist/rate-limit.wasm");

const API: &str = include_str!("../examples/api.json");
const TCP: &str = include_str!("../examples/tcp.json");

fn start(engine: Engine, config: &str) -> Emulator {
    let mut emu = engine.emulator();
    assert_eq!(emu.start(config), Ok(()));
    emu
}

/// One request from `client` to `path`: its status (200 when it went upstream).
fn request(emu: &mut Emulator, client: &str, path: &str, extra: &[(&str, &str)]) -> u16 {
    emu.set_property(&["source", "address"], format!("{client}:40000"));
    let mut s = emu.http();
    let mut headers = vec![(":method", "GET"), (":path", path), (":authority", "x")];
    headers.extend_from_slice(extra);
    let status = match s.request_headers(&headers, true) {
        Action::Continue => 200,
        Action::Pause => s.local_response().map_or(0, |r| r.status_code as u16),
    };
    s.complete();
    status
}

fn count_ok(emu: &mut Emulator, client: &str, path: &str, n: usize) -> usize {
    (0..n)
        .filter(|_| request(emu, client, path, &[]) == 200)
        .count()
}

/// The shared-data key of slot `slot` of bucket `bucket` under `config`.
fn slot_key(config: &str, bucket: usize, slot: u32) -> String {
    let prefix = rate_limit::store::config_prefix(config.as_bytes());
    format!("{prefix}{bucket}/{slot}")
}

#[engines]
fn login_allows_five_per_client_then_429_with_headers(engine: Engine) {
    let mut emu = start(engine, API);
    assert_eq!(count_ok(&mut emu, "10.0.0.1", "/login", 5), 5);
    emu.set_property(&["source", "address"], "10.0.0.1:1");
    let mut s = emu.http();
    let action = s.request_headers(
        &[
            (":method", "POST"),
            (":path", "/login"),
            (":authority", "x"),
        ],
        true,
    );
    assert_eq!(action, Action::Pause);
    let r = s.local_response().expect("a 429");
    assert_eq!(r.status_code, 429);
    assert_eq!(r.details, "local_rate_limited");
    assert_eq!(r.header_str("x-envoy-ratelimited").as_deref(), Some("true"));
    // 5 tokens per 60 s: one every 12 s.
    assert_eq!(r.header_str("retry-after").as_deref(), Some("12"));
    assert_eq!(
        r.header_str("ratelimit-policy").as_deref(),
        Some("\"login_per_client\";q=5;w=60")
    );
    assert_eq!(
        r.header_str("ratelimit").as_deref(),
        Some("\"login_per_client\";r=0;t=12")
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"], "too_many_requests");
    s.complete();
    // Another client has its own bucket.
    assert_eq!(count_ok(&mut emu, "10.0.0.2", "/login", 10), 5);
    assert_eq!(emu.metric("rate_limit.api.allowed"), Some(10));
    assert_eq!(emu.metric("rate_limit.api.limited"), Some(6));
    assert_eq!(
        emu.metric("rate_limit.api.bucket.login_per_client.limited"),
        Some(6)
    );
    assert_eq!(
        emu.metric("rate_limit.api.bucket.login_per_client.allowed"),
        Some(10)
    );
}

#[engines]
fn health_is_never_limited_and_routes_have_their_own_buckets(engine: Engine) {
    let mut emu = start(engine, API);
    assert_eq!(count_ok(&mut emu, "10.0.0.1", "/health", 300), 300);
    assert_eq!(count_ok(&mut emu, "10.0.0.1", "/login", 8), 5);
    // The top-level per-client bucket (100) is not touched by /login or /health.
    assert_eq!(count_ok(&mut emu, "10.0.0.1", "/other", 150), 100);
    assert_eq!(
        emu.metric("rate_limit.api.bucket.per_client.allowed"),
        Some(100)
    );
    assert_eq!(
        emu.metric("rate_limit.api.bucket.default.allowed"),
        Some(100)
    );
}

#[engines]
fn per_api_key_per_route_and_missing_key(engine: Engine) {
    let mut emu = start(engine, API);
    emu.set_property(&["xds", "route_name"], "api");
    let with_key = |emu: &mut Emulator, key: &str| {
        (0..30)
            .filter(|_| request(emu, "10.0.0.9", "/api/x", &[("x-api-key", key)]) == 200)
            .count()
    };
    assert_eq!(with_key(&mut emu, "k1"), 20);
    assert_eq!(with_key(&mut emu, "k2"), 20);
    // No key: the descriptor does not apply; only the route's bucket (500) limits.
    assert_eq!(count_ok(&mut emu, "10.0.0.9", "/api/x", 30), 30);
}

#[engines]
fn allowed_responses_carry_ratelimit_headers_when_configured(engine: Engine) {
    let mut emu = start(engine, API);
    emu.set_property(&["source", "address"], "10.0.0.1:1");
    let mut s = emu.http();
    s.request_headers(&[(":method", "GET"), (":path", "/login")], true);
    s.response_headers(&[(":status", "200")], true);
    assert_eq!(
        s.response_header_str("ratelimit").as_deref(),
        Some("\"login_per_client\";r=4;t=12")
    );
    assert_eq!(
        s.response_header_str("ratelimit-policy").as_deref(),
        Some("\"login_per_client\";q=5;w=60")
    );
    s.complete();
    // LIMITED mode (the default): nothing on allowed responses.
    let mut emu = start(
        engine,
        r#"{"token_bucket":{"max_tokens":2,"fill_interval":"1s"}}"#,
    );
    let mut s = emu.http();
    s.request_headers(&[(":path", "/")], true);
    s.response_headers(&[(":status", "200")], true);
    assert_eq!(s.response_header("ratelimit"), None);
}

#[engines]
fn refill_follows_the_host_clock_including_backwards_and_long_gaps(engine: Engine) {
    let config = r#"{"token_bucket":{"max_tokens":4,"tokens_per_fill":2,"fill_interval":"1s"}}"#;
    let mut emu = start(engine, config);
    assert_eq!(count_ok(&mut emu, "1.1.1.1", "/", 10), 4);
    emu.advance_time(Duration::from_millis(500));
    assert_eq!(
        count_ok(&mut emu, "1.1.1.1", "/", 10),
        1,
        "2 per second, continuous"
    );
    // The clock steps back an hour: no tokens appear, none are lost; refill resumes.
    let t = emu.now();
    emu.set_time(t - Duration::from_secs(3600));
    assert_eq!(count_ok(&mut emu, "1.1.1.1", "/", 10), 0);
    emu.advance_time(Duration::from_secs(1));
    assert_eq!(count_ok(&mut emu, "1.1.1.1", "/", 10), 2);
    // A year idle: the bucket is full (4), not more.
    emu.advance_time(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(count_ok(&mut emu, "1.1.1.1", "/", 10), 4);
}

#[engines]
fn another_worker_sharing_the_bucket_is_seen(engine: Engine) {
    let config = r#"{"token_bucket":{"max_tokens":5,"tokens_per_fill":5,"fill_interval":"3600s"}}"#;
    let mut emu = start(engine, config);
    let key = slot_key(config, 0, 0);
    assert!(
        emu.shared_data(&key).is_some(),
        "slots exist after configure"
    );
    assert_eq!(count_ok(&mut emu, "1.1.1.1", "/", 1), 1);
    // Another worker takes 3 tokens: it writes the slot (and its CAS moves on).
    let cas_before = emu.shared_data_cas(&key);
    let bucket = rate_limit::bucket::TokenBucket {
        max_tokens: 5,
        tokens_per_fill: 5,
        fill_ns: 3600 * 1_000_000_000,
    };
    let now = emu
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut slot = Slot::decode(&emu.shared_data(&key).unwrap());
    for _ in 0..3 {
        slot = bucket.take(&slot, now, slot.owner).store.unwrap();
    }
    emu.set_shared_data(&key, slot.encode());
    assert_ne!(emu.shared_data_cas(&key), cas_before);
    assert_eq!(count_ok(&mut emu, "1.1.1.1", "/", 5), 1, "5 - 1 - 3");
}

#[engines]
fn dynamic_keys_are_bounded_and_evicted_least_recently_used(engine: Engine) {
    let config = r#"{"descriptors":[{"name":"c","max_keys":2,"entries":[{"attribute":"client_address"}],
        "token_bucket":{"max_tokens":1,"fill_interval":"3600s"}}]}"#;
    let mut emu = start(engine, config);
    for i in 0..50 {
        emu.advance_time(Duration::from_millis(1));
        assert_eq!(request(&mut emu, &format!("10.1.0.{i}"), "/", &[]), 200);
    }
    // Two slots, whatever the number of clients.
    assert!(emu.shared_data(&slot_key(config, 0, 1)).is_some());
    assert!(emu.shared_data(&slot_key(config, 0, 2)).is_none());
    assert!(emu.metric("rate_limit.local.evicted").unwrap() >= 47);
    // The most recent client still holds its (empty) bucket.
    assert_eq!(request(&mut emu, "10.1.0.49", "/", &[]), 429);
}

#[engines]
fn shadow_mode_counts_but_lets_through(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"token_bucket":{"max_tokens":2,"fill_interval":"60s"},
            "filter_enforced":{"default_value":{"numerator":0,"denominator":"HUNDRED"}}}"#,
    );
    assert_eq!(count_ok(&mut emu, "1.1.1.1", "/", 10), 10);
    assert_eq!(emu.metric("rate_limit.local.allowed"), Some(2));
    assert_eq!(emu.metric("rate_limit.local.shadow_limited"), Some(8));
    assert_eq!(emu.metric("rate_limit.local.limited"), Some(0));
    assert_eq!(
        emu.metric("rate_limit.local.bucket.default.shadow_limited"),
        Some(8)
    );
}

#[engines]
fn bad_config_is_refused_naming_the_field(engine: Engine) {
    for (config, expected) in [
        (
            r#"{"token_bucket":{"max_tokens":1,"fill_interval":"0s"}}"#,
            "invalid config at token_bucket.fill_interval: must not be zero",
        ),
        (
            r#"{"descriptors":[{"entries":[],"token_bucket":{"max_tokens":1,"fill_interval":"1s"}}]}"#,
            "invalid config at descriptors[0].entries: a descriptor needs at least one entry",
        ),
        (
            r#"{"descriptors":[{"entries":[{"attribute":"cookie"}],"token_bucket":{"max_tokens":1,"fill_interval":"1s"}}]}"#,
            "invalid config at descriptors[0].entries[0].attribute: unknown attribute \"cookie\"",
        ),
        (
            r#"{"token_bucket":{"max_tokens":99999999999,"fill_interval":"1s"}}"#,
            "invalid config at token_bucket.max_tokens: 99999999999 is larger than a bucket's stored value holds",
        ),
    ] {
        let err = engine.emulator()
            .start(config)
            .unwrap_err();
        assert!(err.starts_with(expected), "{err}");
    }
}

#[engines]
fn l4_new_connections_per_client_are_limited_before_any_byte(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"connections":{"token_bucket":{"max_tokens":3,"fill_interval":"60s"}}}"#,
    );
    emu.set_property(&["source", "address"], "10.0.0.1:5000");
    for _ in 0..3 {
        let c = emu.tcp();
        assert_eq!(c.new_connection_action(), Action::Continue);
        assert!(!c.closed_downstream());
        c.complete();
    }
    let c = emu.tcp();
    assert_eq!(c.new_connection_action(), Action::Pause);
    assert!(c.closed_downstream());
    assert!(c.forwarded_downstream().is_empty());
    c.complete();
    emu.set_property(&["source", "address"], "10.0.0.2:5000");
    let c = emu.tcp();
    assert_eq!(
        c.new_connection_action(),
        Action::Continue,
        "another client"
    );
    c.complete();
    assert_eq!(emu.metric("rate_limit.local.allowed"), Some(4));
    assert_eq!(emu.metric("rate_limit.local.limited"), Some(1));
    assert_eq!(
        emu.metric("rate_limit.local.bucket.connections.limited"),
        Some(1)
    );
}

#[engines]
fn l4_concurrent_connections_are_given_back_on_close(engine: Engine) {
    let mut emu = start(engine, TCP);
    emu.set_property(&["source", "address"], "10.0.0.1:5000");
    let open: Vec<_> = (0..10).map(|_| emu.tcp()).collect();
    assert!(open
        .iter()
        .all(|c| c.new_connection_action() == Action::Continue));
    let over = emu.tcp();
    assert!(over.closed_downstream());
    over.complete();
    let mut open = open.into_iter();
    let mut first = open.next().unwrap();
    first.downstream_close(sdk_ext::host::PeerType::Remote);
    first.complete();
    let again = emu.tcp();
    assert_eq!(again.new_connection_action(), Action::Continue);
    assert_eq!(emu.metric("rate_limit.tcp.concurrent.limited"), Some(1));
    again.complete();
    for c in open {
        c.complete();
    }
}

/// The export table itself (the wasm module's exports are checked against it by the
/// integration tests): native only.
#[test]
fn exports_no_data_phases() {
    let e = &rate_limit::EXPORTS;
    assert!(e.on_request_headers.is_some() && e.on_new_connection.is_some());
    assert!(e.on_downstream_connection_close.is_some());
    assert!(e.on_request_body.is_none() && e.on_response_body.is_none());
    assert!(e.on_downstream_data.is_none() && e.on_upstream_data.is_none());
}

/// The keys held in bucket `bucket`'s `slots` slots under `config`.
fn held(emu: &Emulator, config: &str, bucket: usize, slots: u32) -> usize {
    (0..slots)
        .filter(|&i| {
            emu.shared_data(&slot_key(config, bucket, i))
                .is_some_and(|v| Slot::decode(&v).owner != 0)
        })
        .count()
}

#[engines]
fn the_tick_empties_stale_slots_and_keeps_buckets_in_use(engine: Engine) {
    // 1 token per 10 s per client; a default bucket alongside, which the sweep never needs.
    let config = r#"{"max_dynamic_descriptors":64,
        "token_bucket":{"max_tokens":100,"fill_interval":"1s"},
        "always_consume_default_token_bucket":true,
        "descriptors":[{"name":"c","entries":[{"attribute":"client_address"}],
        "token_bucket":{"max_tokens":1,"fill_interval":"10s"}}]}"#;
    let mut emu = start(engine, config);
    assert_eq!(emu.tick_period(), Some(Duration::from_secs(10)));
    for i in 0..3 {
        assert_eq!(request(&mut emu, &format!("10.2.0.{i}"), "/", &[]), 200);
    }
    assert_eq!(held(&emu, config, 1, 64), 3);
    // Their buckets are not full again yet: the tick keeps them, and they stay limited.
    emu.advance_time(Duration::from_secs(5));
    emu.tick();
    assert_eq!(held(&emu, config, 1, 64), 3);
    assert_eq!(request(&mut emu, "10.2.0.0", "/", &[]), 429);
    // 10 s after their grants the three buckets are full again: stale, emptied by the tick.
    emu.advance_time(Duration::from_secs(5));
    emu.tick();
    assert_eq!(held(&emu, config, 1, 64), 0);
    // An emptied slot behaves as the full bucket it was.
    assert_eq!(request(&mut emu, "10.2.0.0", "/", &[]), 200);
    assert_eq!(request(&mut emu, "10.2.0.0", "/", &[]), 429);
    assert_eq!(held(&emu, config, 1, 64), 1);
    // The default bucket's one slot keeps its one key.
    assert_ne!(
        Slot::decode(&emu.shared_data(&slot_key(config, 0, 0)).unwrap()).owner,
        0
    );
}

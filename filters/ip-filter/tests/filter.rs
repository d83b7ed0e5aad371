//! The whole ip-filter in the host emulator: HTTP (connection address and X-Forwarded-For,
//! per-route rules, 403), L4 (closed in on_new_connection, no data phases), hostile input,
//! 10 000 ranges, metrics, refused configs.

use sdk_ext::testing::{engines, Action, Emulator, Engine, Module};

/// The filter in both builds: every test below runs natively and on `dist/ip-filter.wasm`.
static MODULE: Module = Module::new(&ip_filter::EXPORTS, "dist/ip-filter.wasm");

const EXAMPLE: &str = include_str!("../examples/office-and-blocklist.json");

fn start(engine: Engine, config: &str) -> Emulator {
    let mut emu = engine.emulator();
    assert_eq!(emu.start(config), Ok(()));
    emu
}

fn get(emu: &mut Emulator, path: &str, source: &str, extra: &[(&str, &[u8])]) -> Action {
    let mut s = emu.http();
    s.set_property(&["source", "address"], source);
    let mut h: Vec<(&str, &[u8])> = vec![(":method", b"GET"), (":path", path.as_bytes())];
    h.extend_from_slice(extra);
    let a = s.request_headers_bytes(&h, true);
    if a == Action::Pause {
        let status = s.local_response().map(|r| r.status_code);
        assert_eq!(status, Some(403), "a denial is a 403 local response");
    }
    s.complete();
    a
}

#[engines]
fn http_by_connection_address_and_per_route(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    assert_eq!(
        get(&mut emu, "/", "203.0.113.5:4000", &[]),
        Action::Continue
    );
    let mut s = emu.http();
    s.set_property(&["source", "address"], "198.51.100.1:1");
    s.request_headers(&[(":path", "/")], true);
    let body: serde_json::Value =
        serde_json::from_slice(&s.local_response().unwrap().body).unwrap();
    assert_eq!(body["message"], "your address may not use this service");
    assert_eq!(get(&mut emu, "/", "198.51.100.9:4000", &[]), Action::Pause);
    assert_eq!(
        get(&mut emu, "/", "[2001:db8:bad::1]:443", &[]),
        Action::Pause
    );
    assert_eq!(
        get(&mut emu, "/", "[2001:db8:bad1::1]:443", &[]),
        Action::Continue
    );
    // /admin: its own lists (allow list, so everything else is denied).
    assert_eq!(get(&mut emu, "/admin", "10.1.2.3:1", &[]), Action::Continue);
    assert_eq!(
        get(&mut emu, "/admin", "10.66.0.1:1", &[]),
        Action::Pause,
        "deny wins"
    );
    assert_eq!(get(&mut emu, "/admin", "203.0.113.5:1", &[]), Action::Pause);
    assert_eq!(
        get(&mut emu, "/admin", "[::ffff:10.1.2.3]:1", &[]),
        Action::Continue
    );
    assert_eq!(get(&mut emu, "/admin", "[::1]:1", &[]), Action::Continue);
    assert_eq!(emu.metric("ip_filter.allowed"), Some(5));
    assert_eq!(emu.metric("ip_filter.denied"), Some(5));
    assert_eq!(emu.metric("ip_filter.rule.admin.denied"), Some(2));
    assert_eq!(emu.metric("ip_filter.rule.default.denied"), Some(3));
}

#[engines]
fn http_by_x_forwarded_for_with_trusted_hops(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"deny":["198.51.100.0/24"],"xff_num_trusted_hops":2}"#,
    );
    let ok =
        |emu: &mut Emulator, xff: &[u8]| get(emu, "/", "10.0.0.1:1", &[("x-forwarded-for", xff)]);
    // The 2nd from the right is the client (the rightmost was added by our 1st proxy).
    assert_eq!(ok(&mut emu, b"198.51.100.7, 10.0.0.2"), Action::Pause);
    assert_eq!(
        ok(&mut emu, b"198.51.100.7, 203.0.113.1, 10.0.0.2"),
        Action::Continue
    );
    // A client cannot forge its way out by prepending entries.
    assert_eq!(
        ok(&mut emu, b"203.0.113.1, 198.51.100.7, 10.0.0.2"),
        Action::Pause
    );
    // Hostile XFF: too short, invalid entries, non-UTF-8, ports, huge: refused (fail closed).
    for bad in [
        &b"10.0.0.2"[..],
        b"",
        b"unknown, 10.0.0.2",
        b"198.51.100.7:80, 10.0.0.2",
        b"\xff\xfe, 10.0.0.2",
        b"1.2.3.4.5, 10.0.0.2",
        b" , 10.0.0.2",
    ] {
        assert_eq!(ok(&mut emu, bad), Action::Pause, "{bad:?}");
    }
    let huge = format!("{}203.0.113.1, 10.0.0.2", "1.1.1.1, ".repeat(6000));
    assert_eq!(ok(&mut emu, huge.as_bytes()), Action::Continue);
    assert_eq!(
        get(&mut emu, "/", "10.0.0.1:1", &[]),
        Action::Pause,
        "no XFF at all"
    );
    assert_eq!(emu.metric("ip_filter.invalid_address"), Some(8));
    // Two XFF headers are one list, in order.
    assert_eq!(
        get(
            &mut emu,
            "/",
            "10.0.0.1:1",
            &[
                ("x-forwarded-for", b"198.51.100.7"),
                ("x-forwarded-for", b"10.0.0.2")
            ]
        ),
        Action::Pause
    );
}

#[engines]
fn http_without_a_usable_source_address_fails_closed(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    s.set_property(&["source", "address"], "not-an-address");
    assert_eq!(s.request_headers(&[(":path", "/")], true), Action::Pause);
    assert_eq!(
        s.local_response().unwrap().details,
        "ip_filter_no_client_address"
    );
    assert_eq!(emu.metric("ip_filter.invalid_address"), Some(1));
}

#[engines]
fn l4_denied_connections_are_closed_before_any_byte(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    emu.set_property(&["source", "address"], "198.51.100.9:5555");
    let c = emu.tcp();
    assert_eq!(c.new_connection_action(), Action::Pause);
    assert!(c.closed_downstream());
    c.complete();
    emu.set_property(&["source", "address"], "203.0.113.5:5555");
    let mut c = emu.tcp();
    assert_eq!(c.new_connection_action(), Action::Continue);
    assert!(!c.closed_downstream());
    // No data phases: the module does not export them, so bytes pass untouched.
    assert!(ip_filter::EXPORTS.on_downstream_data.is_none());
    assert!(ip_filter::EXPORTS.on_upstream_data.is_none());
    assert_eq!(c.downstream_data(b"hello", false), Action::Continue);
    c.complete();
    // L4 uses the top-level lists: the /admin rule does not apply.
    emu.set_property(&["source", "address"], "10.66.0.1:1");
    assert_eq!(emu.tcp().new_connection_action(), Action::Continue);
    assert_eq!(emu.metric("ip_filter.denied"), Some(1));
    assert_eq!(emu.metric("ip_filter.allowed"), Some(2));
}

/// `examples/tcp.json`, the L4 config the Istio `WasmPlugin` of `type: NETWORK` carries
/// (hub manifest `network.example`): its blocklist closes connections, anyone else passes.
#[engines]
fn the_l4_example_blocks_its_ranges_and_passes_the_rest(engine: Engine) {
    let mut emu = start(engine, include_str!("../examples/tcp.json"));
    for (addr, denied) in [
        ("198.51.100.77:4000", true),
        ("[2001:db8:bad::1]:4000", true),
        ("203.0.113.5:4000", false),
        ("[2001:db8::1]:4000", false),
    ] {
        emu.set_property(&["source", "address"], addr);
        let c = emu.tcp();
        let want = if denied {
            Action::Pause
        } else {
            Action::Continue
        };
        assert_eq!(c.new_connection_action(), want, "{addr}");
        assert_eq!(c.closed_downstream(), denied, "{addr}");
        c.complete();
    }
    assert_eq!(emu.metric("ip_filter.denied"), Some(2));
    assert_eq!(emu.metric("ip_filter.allowed"), Some(2));
}

#[engines]
fn ten_thousand_ranges(engine: Engine) {
    let mut deny = Vec::new();
    for i in 0..10_000u32 {
        let a = 0x0b00_0000u32 + (i << 8);
        deny.push(format!(
            "\"{}.{}.{}.0/24\"",
            a >> 24,
            (a >> 16) & 255,
            (a >> 8) & 255
        ));
    }
    let config = format!(r#"{{"deny":[{}]}}"#, deny.join(","));
    let mut emu = start(engine, &config);
    let mut c = 0;
    for (addr, want) in [
        ("11.0.0.1:1", Action::Pause),
        ("11.39.15.200:1", Action::Pause),
        ("11.39.16.0:1", Action::Continue),
        ("10.255.255.255:1", Action::Continue),
    ] {
        let mut s = emu.http();
        s.set_property(&["source", "address"], addr);
        assert_eq!(s.request_headers(&[(":path", "/")], true), want, "{addr}");
        c += 1;
    }
    assert_eq!(c, 4);
}

#[engines]
fn bad_config_is_refused_naming_the_field(engine: Engine) {
    let mut emu = engine.emulator();
    assert_eq!(
        emu.start(r#"{"deny":["10.0.0.0/8","10.0.0.1/8"]}"#).unwrap_err(),
        "invalid config at deny[1]: \"10.0.0.1/8\" has bits set after the /8 prefix (did you mean 10.0.0.0/8, or the single address?)"
    );
}

//! The whole request-block filter in the host emulator: each location, normalised paths,
//! refusals, body buffering, metrics and log lines, hostile input, refused configs.

use sdk_ext::testing::{engines, Action, Emulator, Engine, Module};

/// The filter in both builds: every test below runs natively and on `dist/request-block.wasm`.
static MODULE: Module = Module::new(&request_block::EXPORTS, "dist/request-block.wasm");

const EXAMPLE: &str = include_str!("../examples/known-bad.json");

/// Request headers as the emulator takes them.
type Headers<'a> = &'a [(&'a str, &'a [u8])];

fn start(engine: Engine, config: &str) -> Emulator {
    let mut emu = engine.emulator();
    assert_eq!(emu.start(config), Ok(()));
    emu
}

fn status(emu: &mut Emulator, headers: &[(&str, &[u8])]) -> Option<u32> {
    let mut s = emu.http();
    let a = s.request_headers_bytes(headers, true);
    let st = s.local_response().map(|r| r.status_code);
    assert_eq!(a == Action::Pause, st.is_some());
    s.complete();
    st
}

#[engines]
fn every_location_blocks_with_a_metric_and_a_log_line(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let cases: &[(Headers, &str)] = &[
        (&[(":path", b"/ADMIN/users")], "admin"),
        (&[(":path", b"/%61dmin")], "admin"),
        (&[(":path", b"//admin")], "admin"),
        (&[(":path", b"/x/../admin")], "admin"),
        (&[(":path", b"/app/.git/HEAD")], "dotfiles"),
        (&[(":path", b"/wp-login.PHP")], "php-probe"),
        (&[(":path", b"/f?file=..%2f..%2fetc%2fpasswd")], "traversal"),
        (&[(":path", b"/s?q=1+UNION+ALL+SELECT+pw")], "sqli"),
        (&[(":path", b"/"), ("user-agent", b"sqlmap/1.7")], "scanner"),
        (
            &[(":path", b"/"), ("x-api-version", b"${jndi:ldap://x}")],
            "log4shell",
        ),
    ];
    for (headers, rule) in cases {
        emu.clear_logs();
        assert_eq!(status(&mut emu, headers), Some(403), "{rule}");
        assert!(
            emu.has_log(&format!("blocked by rule {rule}")),
            "{rule}: {:?}",
            emu.logs()
        );
    }
    assert_eq!(emu.metric("request_block.blocked.rule.admin"), Some(4));
    assert_eq!(emu.metric("request_block.blocked.rule.sqli"), Some(1));
    assert_eq!(emu.metric("request_block.blocked"), Some(10));
    assert_eq!(status(&mut emu, &[(":path", b"/public/index.html")]), None);
    assert_eq!(emu.metric("request_block.allowed"), Some(1));
}

#[engines]
fn the_block_response_is_configurable(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"rules":[{"name":"a","in":"path","pattern":{"exact":"/x"}}],"status":404,"message":"nothing here"}"#,
    );
    let mut s = emu.http();
    s.request_headers(&[(":path", "/X")], true);
    let r = s.local_response().unwrap();
    assert_eq!(r.status_code, 404);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["message"], "nothing here");
    assert_eq!(r.details, "request_blocked");
}

#[engines]
fn malformed_paths_are_refused_with_400(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    for p in [&b"/a%zz"[..], b"/%00", b"/a%2"] {
        assert_eq!(status(&mut emu, &[(":path", p)]), Some(400), "{p:?}");
    }
    assert_eq!(emu.metric("request_block.refused_path"), Some(3));
    let mut emu = start(
        engine,
        r#"{"rules":[{"name":"a","in":"path","pattern":{"prefix":"/admin"}}],"path":{"escaped_slashes":"reject"}}"#,
    );
    assert_eq!(status(&mut emu, &[(":path", b"/files/a%2Fb")]), Some(400));
    assert_eq!(status(&mut emu, &[(":path", b"/files/a/b")]), None);
}

#[engines]
fn body_is_held_until_inspected_then_blocked_or_passed(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let mut s = emu.http();
    assert_eq!(
        s.request_headers(&[(":method", "POST"), (":path", "/comment")], false),
        Action::Continue,
        "headers go on (Envoy delivers no body after a paused headers phase)"
    );
    assert_eq!(s.request_body(b"hello <scr", false), Action::Pause);
    assert_eq!(s.request_body(b"IPT>alert(1)", true), Action::Pause);
    assert_eq!(s.local_response().unwrap().status_code, 403);
    assert!(emu.has_log("blocked by rule script-body (body)"));
    // A clean body passes, headers and all.
    let mut s = emu.http();
    s.request_headers(&[(":method", "POST"), (":path", "/comment")], false);
    assert_eq!(s.request_body(b"just text", true), Action::Continue);
    assert!(s.local_response().is_none());
    // Past max_bytes: only the first bytes are inspected, the rest passes.
    let mut emu = start(
        engine,
        r#"{"rules":[{"name":"x","in":"body","pattern":{"contains":"EVIL"}}],"body":{"max_bytes":8}}"#,
    );
    let mut s = emu.http();
    s.request_headers(&[(":method", "POST"), (":path", "/")], false);
    assert_eq!(s.request_body(b"0123456789EVIL", false), Action::Continue);
    assert_eq!(s.request_body(b"EVIL", true), Action::Continue);
    assert_eq!(emu.metric("request_block.body_truncated"), Some(1));
    let mut s = emu.http();
    s.request_headers(&[(":method", "POST"), (":path", "/")], false);
    assert_eq!(s.request_body(b"EVIL and more", false), Action::Pause);
    assert_eq!(s.local_response().unwrap().status_code, 403);
}

#[engines]
fn no_body_rules_means_no_holding(engine: Engine) {
    let mut emu = start(
        engine,
        r#"{"rules":[{"name":"a","in":"path","pattern":{"prefix":"/admin"}}]}"#,
    );
    let mut s = emu.http();
    assert_eq!(
        s.request_headers(&[(":method", "POST"), (":path", "/x")], false),
        Action::Continue
    );
    assert_eq!(s.request_body(b"<script>", true), Action::Continue);
}

#[engines]
fn hostile_input_gets_the_documented_answer(engine: Engine) {
    let mut emu = start(engine, EXAMPLE);
    let huge_path = format!("/{}", "a/../".repeat(20_000));
    let huge_header = "x".repeat(60_000);
    let traversal = "/%2e%2e/".repeat(5000) + "admin";
    #[allow(clippy::type_complexity)]
    let cases: Vec<(Vec<(&str, &[u8])>, Option<u32>)> = vec![
        (vec![(":path", huge_path.as_bytes())], None),
        (vec![(":path", traversal.as_bytes())], Some(403)),
        (
            vec![(":path", b"/"), ("user-agent", huge_header.as_bytes())],
            None,
        ),
        (vec![(":path", b"/\xff\xfe/admin")], None),
        (vec![(":path", b"/\xff/../admin")], Some(403)),
        (vec![(":path", b"/s?q=\xff%zz%")], None),
        (vec![("user-agent", b"nikto")], Some(403)),
        (vec![], None),
    ];
    for (headers, want) in cases {
        assert_eq!(
            status(&mut emu, &headers),
            want,
            "{:?}",
            headers.first().map(|h| h.0)
        );
    }
}

#[engines]
fn bad_config_is_refused_naming_the_field(engine: Engine) {
    let mut emu = engine.emulator();
    let err = emu
        .start(
            r#"{"rules":[{"name":"a","in":"query","pattern":{"safe_regex":{"regex":"a)|(b"}}}]}"#,
        )
        .unwrap_err();
    assert!(
        err.starts_with("invalid config at rules[0].pattern.safe_regex.regex:"),
        "{err}"
    );
}

/// A path pattern (lowercased with the path by default) is checked as written: an unbalanced
/// one cannot balance inside the case-insensitive form and match every path.
#[engines]
fn unbalanced_path_pattern_is_refused(engine: Engine) {
    for regex in ["x)|(.*", "/health)|(/status"] {
        let mut emu = engine.emulator();
        let err = emu
            .start(format!(
                r#"{{"rules":[{{"name":"a","in":"path","pattern":{{"safe_regex":{{"regex":"{regex}"}}}}}}]}}"#
            ))
            .unwrap_err();
        assert!(
            err.starts_with("invalid config at rules[0].pattern.safe_regex.regex:"),
            "{regex}: {err}"
        );
    }
}

/// 50 patterns (the bench's shape): compiled once, a clean request costs one pass per set.
#[engines]
fn fifty_patterns(engine: Engine) {
    let mut rules = Vec::new();
    for i in 0..25 {
        rules.push(format!(
            r#"{{"name":"p{i}","in":"path","pattern":{{"prefix":"/blocked-{i}/"}}}}"#
        ));
        rules.push(format!(
            r#"{{"name":"r{i}","in":"query","pattern":{{"safe_regex":{{"regex":"attack{i}[0-9]+"}}}}}}"#
        ));
    }
    let mut emu = start(engine, &format!(r#"{{"rules":[{}]}}"#, rules.join(",")));
    assert_eq!(status(&mut emu, &[(":path", b"/blocked-7/x")]), Some(403));
    assert_eq!(
        status(&mut emu, &[(":path", b"/a?x=attack24123")]),
        Some(403)
    );
    // Patterns match anywhere: `attack2[0-9]+` (an earlier rule) already matches.
    assert!(emu.has_log("blocked by rule r2 (query)"));
    assert_eq!(status(&mut emu, &[(":path", b"/a?x=attack")]), None);
}

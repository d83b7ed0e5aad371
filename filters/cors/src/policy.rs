//! The decision, as plain Rust over plain data: is this a CORS request, a preflight, is the
//! origin allowed, and which headers answer it. No host calls; tested directly.
//!
//! Semantics follow Envoy 1.40's `cors` filter (`source/extensions/filters/http/cors/
//! cors_filter.cc`), checked against it differentially in `integration/tests/cors.rs`:
//!
//! - A request without an `Origin` (or with an empty one) is not a CORS request.
//! - A preflight is `OPTIONS` with an `Origin` and a non-empty
//!   `Access-Control-Request-Method`. From an allowed origin it is answered here, `200` with
//!   no body; from a disallowed one it goes upstream (`forward_not_matching_preflights`,
//!   default) or is answered here without `access-control-allow-origin`.
//! - Any other request from an allowed origin gets `access-control-allow-origin: <the
//!   origin>` (never `*`), `access-control-allow-credentials`, `access-control-expose-headers`
//!   on its response. A disallowed origin gets no CORS headers.
//!
//! Where this filter is stricter than Envoy (all documented in the README):
//!
//! - `Vary: Origin` is added to every response of a request an enabled rule matched (Envoy
//!   adds none), so a shared cache never serves one origin's answer to another.
//! - The origin is compared as the browser sends it, byte for byte; a value that is not an
//!   origin (`scheme://host[:port]`: a path, a trailing slash, userinfo, whitespace) is never
//!   allowed. `null` is allowed only by an explicit `{"exact": "null"}`, not by a wildcard.
//! - `reject_disallowed_origins` answers a disallowed origin 403.

use crate::config::{Config, Policy};
use sdk_ext::headers::is_valid_value;
use sdk_ext::request::Request;

/// Response headers to write: `(name, value)`.
pub type HeaderEdits = Vec<(&'static str, Vec<u8>)>;

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not ours: no rule, a disabled rule.
    Pass,
    /// An enabled rule matched: let the request through, then add these headers (maybe
    /// none: no origin, a disallowed one) and `Vary: Origin` to its response.
    Forward {
        /// The CORS response headers.
        headers: HeaderEdits,
        /// The origin was present but not allowed (for metrics).
        disallowed: bool,
    },
    /// A preflight answered here: `200`, these headers, no body.
    Preflight {
        /// The preflight response headers.
        headers: HeaderEdits,
        /// The origin was not allowed (answered without `access-control-allow-origin`).
        disallowed: bool,
    },
    /// A disallowed origin under `reject_disallowed_origins`: 403.
    Reject,
}

/// Whether `origin` is shaped as a browser serialises an origin: `scheme "://" host
/// [":" port]` (no path, query, fragment, userinfo, whitespace or control bytes). `null` is
/// not (it is handled on its own).
pub fn is_well_formed_origin(origin: &[u8]) -> bool {
    // Byte tests as `matches!` (range and set checks), not `windows(..) == ..` and
    // `b"...".contains(..)`, which were library calls per byte: this runs on every request
    // with an `Origin` (~2,000 wasm operators less for `https://app.example.com`).
    let Some(sep) = origin
        .windows(3)
        .position(|w| matches!(w, [b':', b'/', b'/']))
    else {
        return false;
    };
    let (scheme, rest) = origin.split_at(sep);
    let Some(authority) = rest.get(3..) else {
        return false;
    };
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || authority.is_empty() {
        return false;
    }
    // host: a bracketed IPv6 literal or reg-name/IPv4 characters; then an optional port.
    let (host, port) = if let Some(v6) = authority.strip_prefix(b"[") {
        let Some(end) = v6.iter().position(|&b| b == b']') else {
            return false;
        };
        let (inside, after) = v6.split_at(end);
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        (&b"v6"[..], after.get(1..).unwrap_or_default())
    } else {
        match authority.iter().position(|&b| b == b':') {
            Some(i) => authority.split_at(i),
            None => (authority, &b""[..]),
        }
    };
    let host_ok = !host.is_empty() && host.iter().all(|&b| is_host_byte(b));
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => {
            !digits.is_empty() && digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit)
        }
        Some(_) => false,
    };
    host_ok && port_ok
}

/// A byte of an origin's host: unreserved, `%` and sub-delims (RFC 3986), `-._~%!$&'()*+,;=`
/// besides letters and digits.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

impl Policy {
    /// Whether `origin` (as sent) is allowed.
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        #[cfg(sdk_ext_dynamic_module)]
        {
            self.memo.verdict(origin, || self.check_origin(origin))
        }
        #[cfg(not(sdk_ext_dynamic_module))]
        {
            self.check_origin(origin)
        }
    }

    /// [`origin_allowed`](Self::origin_allowed), always computed.
    fn check_origin(&self, origin: &[u8]) -> bool {
        if origin == b"null" {
            return self.allows_null;
        }
        is_well_formed_origin(origin)
            && (self.any_origin || self.origins.iter().any(|m| m.matches(origin)))
    }
}

/// The last origin a policy checked and its verdict, in the dynamic-module build: each
/// worker thread has its own plugin (so its own policies), and a browser sends the same
/// `Origin` on every request of a page, so the well-formedness check and the matchers
/// (~500 instructions a request for `https://app.example.com`) run once per change of
/// origin on a worker; a request from another origin pays one comparison and a copy more.
/// Not in the `.wasm` (whose instructions its own floor measures).
#[derive(Debug, Default)]
pub struct OriginMemo(std::cell::RefCell<Option<(Vec<u8>, bool)>>);

impl OriginMemo {
    /// `check()`'s verdict on `origin`, remembered for the next call with the same origin.
    pub fn verdict(&self, origin: &[u8], check: impl FnOnce() -> bool) -> bool {
        if let Ok(last) = self.0.try_borrow() {
            if let Some((o, v)) = last.as_ref() {
                if o.as_slice() == origin {
                    return *v;
                }
            }
        }
        let v = check();
        if let Ok(mut last) = self.0.try_borrow_mut() {
            match last.as_mut() {
                Some((o, kept)) => {
                    o.clear();
                    o.extend_from_slice(origin);
                    *kept = v;
                }
                None => *last = Some((origin.to_vec(), v)),
            }
        }
        v
    }
}

/// `echo` if it is a writable header value (it came from a request header, so it is,
/// unless the host let a control byte through); `None` otherwise.
fn echoable(v: &[u8]) -> Option<Vec<u8>> {
    is_valid_value(v).then(|| v.to_vec())
}

/// Decides on one request (headers read through `req`).
pub fn decide(config: &Config, req: &mut impl Request) -> Decision {
    let Some((_, policy)) = config.rules.first(req) else {
        return Decision::Pass;
    };
    decide_with(policy, req)
}

/// Decides with one policy (the rule already chosen).
pub fn decide_with(p: &Policy, req: &mut impl Request) -> Decision {
    if !p.enabled {
        return Decision::Pass;
    }
    let origin = match req.header("origin") {
        Some(o) if !o.is_empty() => o.to_vec(),
        _ => {
            return Decision::Forward {
                headers: Vec::new(),
                disallowed: false,
            }
        }
    };
    let allowed = p.origin_allowed(&origin);
    let preflight = req.header(":method") == Some(b"OPTIONS")
        && req
            .header("access-control-request-method")
            .is_some_and(|m| !m.is_empty());
    if !allowed && p.reject_disallowed_origins {
        return Decision::Reject;
    }
    // Moved, not copied again. An allowed origin is `null` or well formed, whose bytes are
    // all visible ASCII: a valid header value, so `echoable`'s byte check is not needed.
    let origin = allowed.then_some(origin);
    if !preflight {
        // At most three headers: one allocation.
        let mut headers = Vec::with_capacity(3);
        if let Some(o) = origin {
            headers.push(("access-control-allow-origin", o));
            if p.allow_credentials {
                headers.push(("access-control-allow-credentials", b"true".to_vec()));
            }
            if !p.expose_headers.is_empty() {
                headers.push(("access-control-expose-headers", p.expose_headers.clone()));
            }
        }
        return Decision::Forward {
            headers,
            disallowed: !allowed,
        };
    }
    if !allowed && p.forward_not_matching_preflights {
        return Decision::Forward {
            headers: Vec::new(),
            disallowed: true,
        };
    }
    // At most six headers, and the filter's `vary`: one allocation.
    let mut headers = Vec::with_capacity(7);
    if let Some(o) = origin {
        headers.push(("access-control-allow-origin", o));
    }
    if p.allow_credentials {
        headers.push(("access-control-allow-credentials", b"true".to_vec()));
    }
    // `*`: echo what the browser asked for (Envoy's rule); empty: not sent.
    let echo_or = |configured: &[u8], requested: Option<Vec<u8>>| match configured {
        b"*" => Some(requested.unwrap_or_default()),
        [] => None,
        c => Some(c.to_vec()),
    };
    let requested = req
        .header("access-control-request-method")
        .and_then(echoable);
    if let Some(v) = echo_or(&p.allow_methods, requested) {
        headers.push(("access-control-allow-methods", v));
    }
    let requested = req
        .header("access-control-request-headers")
        .and_then(echoable);
    if let Some(v) = echo_or(&p.allow_headers, requested) {
        headers.push(("access-control-allow-headers", v));
    }
    if !p.max_age.is_empty() {
        headers.push(("access-control-max-age", p.max_age.clone()));
    }
    if p.allow_private_network_access
        && req.header("access-control-request-private-network") == Some(b"true")
    {
        headers.push(("access-control-allow-private-network", b"true".to_vec()));
    }
    Decision::Preflight {
        headers,
        disallowed: !allowed,
    }
}

/// The `vary` value to write given the response's current first `vary` value: `None` when
/// it already varies on `Origin` (or on everything, `*`).
pub fn vary_with_origin(current: Option<&[u8]>) -> Option<Vec<u8>> {
    let Some(current) = current.filter(|c| !c.trim_ascii().is_empty()) else {
        return Some(b"origin".to_vec());
    };
    let has = current.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || t.eq_ignore_ascii_case(b"origin")
    });
    if has {
        return None;
    }
    let mut v = current.to_vec();
    v.extend_from_slice(b", origin");
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::request::RequestData;

    fn cfg(json: &str) -> Config {
        Config::parse(json.as_bytes()).unwrap()
    }

    /// The dynamic-module build's memo: the check runs again only when the origin changes,
    /// and the verdict is the check's, whichever origin came before.
    #[test]
    fn origin_memo_rechecks_only_a_changed_origin() {
        let memo = OriginMemo::default();
        let runs = std::cell::Cell::new(0);
        let check = |v: bool| {
            runs.set(runs.get() + 1);
            v
        };
        assert!(memo.verdict(b"https://a.example", || check(true)));
        assert!(memo.verdict(b"https://a.example", || check(false)));
        assert_eq!(runs.get(), 1);
        assert!(!memo.verdict(b"https://b.example", || check(false)));
        assert!(!memo.verdict(b"https://b.example", || check(true)));
        // A prefix of the last origin is another origin.
        assert!(memo.verdict(b"https://b.exampl", || check(true)));
        assert!(memo.verdict(b"https://a.example", || check(true)));
        assert_eq!(runs.get(), 4);
    }

    const BASIC: &str = r#"{"rules":[{"allow_origin_string_match":[{"exact":"https://app.example.com"},{"suffix":".example.org"}],
        "allow_methods":"GET, PUT","allow_headers":"x-a","expose_headers":"x-id","max_age":"600","allow_credentials":true}]}"#;

    fn preflight(origin: &str) -> RequestData {
        RequestData::new("OPTIONS", "/x", "h")
            .with("origin", origin)
            .with("access-control-request-method", "PUT")
    }

    fn names(h: &HeaderEdits) -> Vec<&str> {
        h.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn well_formed_origins() {
        for ok in [
            "https://a.example",
            "http://localhost:8080",
            "https://[::1]:443",
            "chrome-extension://abc",
        ] {
            assert!(is_well_formed_origin(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "https://a.example/",
            "https://a.example/path",
            "https://user@a.example",
            "https://a.example:",
            "https://a.example:99999x",
            "https:/a",
            "://a",
            "1http://a",
            "https://",
            "https://a b",
            "https://a\tb",
            "https://[zz]",
            "https://a.example?x",
            "null",
            "",
        ] {
            assert!(!is_well_formed_origin(bad.as_bytes()), "{bad}");
        }
        assert!(!is_well_formed_origin(b"https://a\xff"));
    }

    #[test]
    fn preflight_from_an_allowed_origin_is_answered() {
        let c = cfg(BASIC);
        let d = decide(&c, &mut preflight("https://app.example.com"));
        let Decision::Preflight {
            headers,
            disallowed,
        } = d
        else {
            panic!("{d:?}")
        };
        assert!(!disallowed);
        assert_eq!(
            headers,
            vec![
                (
                    "access-control-allow-origin",
                    b"https://app.example.com".to_vec()
                ),
                ("access-control-allow-credentials", b"true".to_vec()),
                ("access-control-allow-methods", b"GET, PUT".to_vec()),
                ("access-control-allow-headers", b"x-a".to_vec()),
                ("access-control-max-age", b"600".to_vec()),
            ]
        );
    }

    #[test]
    fn disallowed_preflight_is_forwarded_or_answered_bare() {
        let c = cfg(BASIC);
        assert_eq!(
            decide(&c, &mut preflight("https://evil.example")),
            Decision::Forward {
                headers: vec![],
                disallowed: true
            }
        );
        let c = cfg(
            r#"{"rules":[{"allow_origin_string_match":[{"exact":"https://a.example"}],"allow_methods":"GET","allow_credentials":true,"forward_not_matching_preflights":false}]}"#,
        );
        let d = decide(&c, &mut preflight("https://evil.example"));
        let Decision::Preflight {
            headers,
            disallowed,
        } = d
        else {
            panic!("{d:?}")
        };
        assert!(disallowed);
        assert_eq!(
            names(&headers),
            vec![
                "access-control-allow-credentials",
                "access-control-allow-methods"
            ]
        );
    }

    #[test]
    fn actual_requests_get_the_echoed_origin_never_a_star() {
        let c = cfg(BASIC);
        let mut req = RequestData::new("GET", "/", "h").with("origin", "https://x.example.org");
        assert_eq!(
            decide(&c, &mut req),
            Decision::Forward {
                headers: vec![
                    (
                        "access-control-allow-origin",
                        b"https://x.example.org".to_vec()
                    ),
                    ("access-control-allow-credentials", b"true".to_vec()),
                    ("access-control-expose-headers", b"x-id".to_vec()),
                ],
                disallowed: false
            }
        );
        let wild = cfg(r#"{"rules":[{"allow_origin_string_match":[{"exact":"*"}]}]}"#);
        let d = decide(
            &wild,
            &mut RequestData::new("GET", "/", "h").with("origin", "https://any.example"),
        );
        assert_eq!(
            d,
            Decision::Forward {
                headers: vec![(
                    "access-control-allow-origin",
                    b"https://any.example".to_vec()
                )],
                disallowed: false
            }
        );
    }

    #[test]
    fn origins_compare_as_sent() {
        let c = cfg(BASIC);
        for o in [
            "https://APP.example.com",
            "https://app.example.com/",
            "https://app.example.com.evil.com",
            "http://app.example.com",
            "https://app.example.com:443",
            "null",
            "https://evil.com/.example.org",
            "https://u@x.example.org",
        ] {
            let mut req = RequestData::new("GET", "/", "h").with("origin", o);
            assert_eq!(
                decide(&c, &mut req),
                Decision::Forward {
                    headers: vec![],
                    disallowed: true
                },
                "{o}"
            );
        }
        // `null` only by an explicit exact; a wildcard does not admit it.
        let wild = cfg(r#"{"rules":[{"allow_origin_string_match":[{"exact":"*"}]}]}"#);
        let mut null = RequestData::new("GET", "/", "h").with("origin", "null");
        assert!(matches!(
            decide(&wild, &mut null),
            Decision::Forward {
                disallowed: true,
                ..
            }
        ));
        let explicit = cfg(r#"{"rules":[{"allow_origin_string_match":[{"exact":"null"}]}]}"#);
        assert!(matches!(
            decide(&explicit, &mut null),
            Decision::Forward {
                disallowed: false,
                ..
            }
        ));
    }

    #[test]
    fn no_origin_is_not_cors_but_still_varies() {
        let c = cfg(BASIC);
        for mut req in [
            RequestData::new("GET", "/", "h"),
            RequestData::new("GET", "/", "h").with("origin", ""),
            RequestData::new("OPTIONS", "/", "h").with("access-control-request-method", "GET"),
        ] {
            assert_eq!(
                decide(&c, &mut req),
                Decision::Forward {
                    headers: vec![],
                    disallowed: false
                }
            );
        }
    }

    #[test]
    fn options_without_request_method_is_an_actual_request() {
        let c = cfg(BASIC);
        let mut req =
            RequestData::new("OPTIONS", "/", "h").with("origin", "https://app.example.com");
        assert!(
            matches!(decide(&c, &mut req), Decision::Forward { headers, .. } if headers.len() == 3)
        );
    }

    #[test]
    fn star_methods_and_headers_echo_the_request() {
        let c = cfg(
            r#"{"rules":[{"allow_origin_string_match":[{"prefix":"https://"}],"allow_methods":"*","allow_headers":"*","allow_private_network_access":true}]}"#,
        );
        let mut req = preflight("https://a.example")
            .with("access-control-request-headers", "x-a, x-b")
            .with("access-control-request-private-network", "true");
        let Decision::Preflight { headers, .. } = decide(&c, &mut req) else {
            panic!()
        };
        assert_eq!(
            headers,
            vec![
                ("access-control-allow-origin", b"https://a.example".to_vec()),
                ("access-control-allow-methods", b"PUT".to_vec()),
                ("access-control-allow-headers", b"x-a, x-b".to_vec()),
                ("access-control-allow-private-network", b"true".to_vec()),
            ]
        );
    }

    #[test]
    fn rules_pick_the_policy_first_match_wins() {
        let c = cfg(r#"{"rules":[{"match":{"prefix":"/public"},"enabled":false},
                {"match":{"prefix":"/api"},"allow_origin_string_match":[{"exact":"https://a.example"}],"reject_disallowed_origins":true}]}"#);
        let mut r =
            RequestData::new("GET", "/public/x", "h").with("origin", "https://evil.example");
        assert_eq!(decide(&c, &mut r), Decision::Pass);
        let mut r = RequestData::new("GET", "/api/x", "h").with("origin", "https://evil.example");
        assert_eq!(decide(&c, &mut r), Decision::Reject);
        let mut r = RequestData::new("GET", "/other", "h").with("origin", "https://evil.example");
        assert_eq!(decide(&c, &mut r), Decision::Pass);
    }

    #[test]
    fn vary_is_merged() {
        assert_eq!(vary_with_origin(None), Some(b"origin".to_vec()));
        assert_eq!(vary_with_origin(Some(b"")), Some(b"origin".to_vec()));
        assert_eq!(
            vary_with_origin(Some(b"accept-encoding")),
            Some(b"accept-encoding, origin".to_vec())
        );
        assert_eq!(vary_with_origin(Some(b"Accept, Origin")), None);
        assert_eq!(vary_with_origin(Some(b"*")), None);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = |j: &str| Config::parse(j.as_bytes()).unwrap_err();
        assert_eq!(e(r#"{"rules":[]}"#).field, "rules");
        let err =
            e(r#"{"rules":[{"allow_origin_string_match":[{"exact":"https://a.example/"}]}]}"#);
        assert_eq!(err.field, "rules[0].allow_origin_string_match[0].exact");
        assert!(err.reason.contains("trailing slash"), "{}", err.reason);
        assert_eq!(
            e(r#"{"rules":[{"allow_origin_string_match":[{"exact":"https://A.example"}]}]}"#).field,
            "rules[0].allow_origin_string_match[0].exact"
        );
        Config::parse(br#"{"rules":[{"allow_origin_string_match":[{"exact":"https://A.example","ignore_case":true}]}]}"#).unwrap();
        assert_eq!(
            e(r#"{"rules":[{"allow_origin_string_match":[{"exact":"*"}],"allow_credentials":true}]}"#).field,
            "rules[0].allow_credentials"
        );
        assert_eq!(
            e(r#"{"rules":[{"allow_origin_string_match":[{"safe_regex":{"regex":".*"}}],"allow_credentials":true}]}"#).field,
            "rules[0].allow_credentials"
        );
        assert_eq!(
            e(r#"{"rules":[{"allow_origin_string_match":[{"exact":"https://a.example"}],"allow_credentials":true,"expose_headers":"*"}]}"#).field,
            "rules[0].expose_headers"
        );
        assert_eq!(
            e(r#"{"rules":[{"max_age":"1h"}]}"#).field,
            "rules[0].max_age"
        );
        assert_eq!(
            e(r#"{"rules":[{"allow_methods":"GET\r\nx: y"}]}"#).field,
            "rules[0].allow_methods"
        );
        assert_eq!(
            e(r#"{"rules":[{"allow_origin_string_match":[{"prefix":""}]}]}"#).field,
            "rules[0].allow_origin_string_match[0].prefix"
        );
        assert_eq!(
            e(r#"{"rules":[{"allow_origin":[]}]}"#).field,
            "rules[0].allow_origin"
        );
        assert_eq!(
            e(r#"{"rules":[{"match":{"prefx":"/"}}]}"#).field,
            "rules[0].match.prefx"
        );
    }
}

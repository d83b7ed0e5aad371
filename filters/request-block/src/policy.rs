//! The decision, as plain Rust over plain data: does a request (its headers, then maybe its
//! body) match a rule. No host calls; tested directly.
//!
//! Locations are checked in the order path, query, headers (in config order of their
//! names), body; within a location the first rule (config order) whose pattern matches is
//! the one named.

use crate::config::{name_bit, Config, SCRATCH_KEPT};
use sdk_ext::matching::bytes_eq;
use sdk_ext::path::{decode_lenient_ref, normalize_split_ref, split, Refusal};
use sdk_ext::request::Request;

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No rule matched (so far).
    Allow,
    /// Rule `i` matched: block.
    Block(usize),
    /// The path cannot be read safely: refuse (400).
    Refuse(Refusal),
}

/// Checks the path, query and headers.
pub fn check_headers(config: &Config, req: &mut impl Request) -> Verdict {
    let path = req.header(":path").unwrap_or(b"/");
    let verdict = match config.scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            let verdict = check_path(config, path, &mut scratch);
            if scratch.capacity() > SCRATCH_KEPT {
                *scratch = Vec::new();
            }
            verdict
        }
        // Only reachable by re-entrance, which nothing does: a buffer of its own.
        Err(_) => check_path(config, path, &mut Vec::new()),
    };
    if verdict != Verdict::Allow || config.headers.is_empty() {
        return verdict;
    }
    first_header_rule(config, req).map_or(Verdict::Allow, Verdict::Block)
}

/// The rule a header value matches: of the names with rules (in config order) the first one
/// any of whose values matches, and of its values the first in request order. One pass over
/// the request's headers: each value is matched against its name's set only while no name
/// before it has matched.
fn first_header_rule(config: &Config, req: &mut impl Request) -> Option<usize> {
    let names = &config.headers;
    // (name index, rule) of the best match so far.
    let mut best: Option<(usize, usize)> = None;
    req.each_header(|name, value| {
        if config.header_bits & name_bit(name) == 0 {
            return true;
        }
        let before = best.map_or(names.len(), |(k, _)| k);
        let set = names
            .iter()
            .take(before)
            .enumerate()
            // Word-wise, not `==` (a byte loop on wasm).
            .find(|(_, (n, _))| bytes_eq(n.as_bytes(), name));
        if let Some((k, (_, set))) = set {
            if let Some(rule) = set.first_rule(value) {
                best = Some((k, rule));
            }
        }
        // A match of the first name cannot be bettered.
        best.is_none_or(|(k, _)| k > 0)
    });
    best.map(|(_, rule)| rule)
}

/// Checks the path and the query of `raw` (`:path`), read in place: an already-normal path
/// and a query with nothing to decode are matched as they are; otherwise `scratch` holds
/// the normal form and the decoded query in turn.
fn check_path(config: &Config, raw: &[u8], scratch: &mut Vec<u8>) -> Verdict {
    let query = if !config.path.set.is_empty()
        || config.path_options.escaped_slashes == sdk_ext::path::EscapedSlashes::Reject
    {
        // One pass over an already-normal path finds its query too.
        let (normal, query) = match normalize_split_ref(raw, &config.path_options, scratch) {
            Ok(found) => found,
            Err(r) => return Verdict::Refuse(r),
        };
        if let Some(i) = config.path.first_rule(normal) {
            return Verdict::Block(i);
        }
        query
    } else {
        split(raw).1
    };
    if let (false, Some(q)) = (config.query.set.is_empty(), query) {
        if let Some(i) = config
            .query
            .first_rule(decode_lenient_ref(q, true, scratch))
        {
            return Verdict::Block(i);
        }
    }
    Verdict::Allow
}

/// Checks the inspected start of the body.
pub fn check_body(config: &Config, body: &[u8]) -> Verdict {
    let inspected = body.get(..config.body_max_bytes).unwrap_or(body);
    match config.body.first_rule(inspected) {
        Some(i) => Verdict::Block(i),
        None => Verdict::Allow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::request::RequestData;

    fn cfg(json: &str) -> Config {
        Config::parse(json.as_bytes()).unwrap()
    }

    const ADMIN: &str = r#"{"rules":[{"name":"admin","in":"path","pattern":{"prefix":"/admin"}}]}"#;

    fn path(c: &Config, p: &[u8]) -> Verdict {
        let mut req = RequestData::default().with(":path", p);
        check_headers(c, &mut req)
    }

    #[test]
    fn normalised_paths_cannot_slip_past() {
        let c = cfg(ADMIN);
        for p in [
            &b"/admin"[..],
            b"/ADMIN",
            b"/Admin/x",
            b"/%61dmin",
            b"/%41DMIN",
            b"//admin",
            b"/./admin",
            b"/x/../admin",
            b"/x/%2e%2e/admin",
            b"/x%2f..%2fadmin",
            b"/admin;jsessionid=1",
            b"/..;/admin",
            b"\\admin",
            b"/x\\..\\admin",
            b"/admin?x=1",
        ] {
            assert_eq!(
                path(&c, p),
                Verdict::Block(0),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        for p in [
            &b"/public"[..],
            b"/x/admin",
            b"/%252e%252e/admin",
            b"/?q=/admin",
        ] {
            assert_eq!(
                path(&c, p),
                Verdict::Allow,
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        for p in [&b"/a%zz"[..], b"/%00admin", b"/a%"] {
            assert!(matches!(path(&c, p), Verdict::Refuse(_)), "{p:?}");
        }
    }

    #[test]
    fn case_sensitive_and_escaped_slash_options() {
        let c = cfg(
            r#"{"rules":[{"name":"a","in":"path","pattern":{"prefix":"/admin"}}],
            "path":{"case_sensitive":true,"escaped_slashes":"reject"}}"#,
        );
        assert_eq!(path(&c, b"/ADMIN"), Verdict::Allow);
        assert_eq!(path(&c, b"/admin"), Verdict::Block(0));
        assert_eq!(
            path(&c, b"/x%2Fadmin"),
            Verdict::Refuse(Refusal::EscapedSlash)
        );
        let keep = cfg(
            r#"{"rules":[{"name":"a","in":"path","pattern":{"prefix":"/admin"}}],
            "path":{"escaped_slashes":"keep"}}"#,
        );
        assert_eq!(path(&keep, b"/x%2f..%2fadmin"), Verdict::Allow);
    }

    #[test]
    fn regex_path_rules_fold_case_and_search() {
        let c = cfg(
            r#"{"rules":[{"name":"dot","in":"path","pattern":{"safe_regex":{"regex":"/\\.(git|env)(/|$)"}}}]}"#,
        );
        assert_eq!(path(&c, b"/app/.git/config"), Verdict::Block(0));
        assert_eq!(path(&c, b"/app/.GIT"), Verdict::Block(0));
        assert_eq!(path(&c, b"/app/%2eenv"), Verdict::Block(0));
        assert_eq!(path(&c, b"/app/.gitignore"), Verdict::Allow);
    }

    #[test]
    fn query_headers_and_body() {
        let c = cfg(r#"{"rules":[
            {"name":"sqli","in":"query","pattern":{"safe_regex":{"regex":"(?i)union\\s+select"}}},
            {"name":"ua","in":"header","header":"User-Agent","pattern":{"contains":"sqlmap","ignore_case":true}},
            {"name":"ua2","in":"header","header":"user-agent","pattern":{"exact":"nikto"}},
            {"name":"xss","in":"body","pattern":{"contains":"<script"}}],"body":{"max_bytes":16}}"#);
        let mut q = RequestData::new("GET", "/s?id=1%20UNION+select%201", "h");
        assert_eq!(check_headers(&c, &mut q), Verdict::Block(0));
        let mut q = RequestData::new("GET", "/s?id=1", "h").with("user-agent", "x SQLMap/1.0");
        assert_eq!(check_headers(&c, &mut q), Verdict::Block(1));
        let mut q = RequestData::new("GET", "/s", "h")
            .with("user-agent", "curl")
            .with("user-agent", "nikto");
        assert_eq!(check_headers(&c, &mut q), Verdict::Block(2));
        let mut q = RequestData::new("GET", "/s", "h").with("user-agent", b"\xff\xfe");
        assert_eq!(check_headers(&c, &mut q), Verdict::Allow);
        assert_eq!(check_body(&c, b"a<script>"), Verdict::Block(3));
        assert_eq!(
            check_body(&c, b"0123456789abcdef<script>"),
            Verdict::Allow,
            "past max_bytes"
        );
        assert_eq!(check_body(&c, b"\xff\x00<script"), Verdict::Block(3));
    }

    /// Header rules: the first name in config order with a matching value wins, whatever
    /// the order the request sends its headers in; of that name's values the first matching.
    #[test]
    fn header_names_in_config_order_values_in_request_order() {
        let c = cfg(r#"{"rules":[
            {"name":"a1","in":"header","header":"x-a","pattern":{"exact":"bad"}},
            {"name":"b1","in":"header","header":"x-b","pattern":{"contains":"bad"}},
            {"name":"a2","in":"header","header":"x-a","pattern":{"prefix":"ev"}}]}"#);
        let check = |headers: &[(&str, &str)]| {
            let mut q = RequestData::new("GET", "/", "h");
            for (n, v) in headers {
                q = q.with(n, v);
            }
            check_headers(&c, &mut q)
        };
        assert_eq!(
            check(&[("x-b", "so bad"), ("x-a", "bad")]),
            Verdict::Block(0)
        );
        assert_eq!(
            check(&[("x-b", "so bad"), ("x-a", "evil")]),
            Verdict::Block(2)
        );
        assert_eq!(check(&[("x-a", "evil"), ("x-a", "bad")]), Verdict::Block(2));
        assert_eq!(
            check(&[("x-a", "ok"), ("x-b", "bad"), ("x-a", "bad")]),
            Verdict::Block(0)
        );
        assert_eq!(check(&[("x-a", "ok"), ("x-b", "bad")]), Verdict::Block(1));
        // Other names: `y-a` shares `x-a`'s bit (length and last byte), so it is compared
        // and found another name; the others are passed over on their bits.
        assert_eq!(name_bit(b"y-a"), name_bit(b"x-a"));
        assert_eq!(
            check(&[("y-a", "bad"), ("x-c", "bad"), ("x-ab", "bad")]),
            Verdict::Allow
        );
    }

    /// The full steps, always: the path normalised into a new buffer, the query decoded
    /// into one, every header name compared with `==`. What [`check_headers`] must answer.
    fn reference(c: &Config, req: &RequestData) -> Verdict {
        let raw = req
            .headers
            .iter()
            .find(|(n, _)| n == ":path")
            .map_or(&b"/"[..], |(_, v)| v);
        let (_, query) = split(raw);
        match sdk_ext::path::normalize(raw, &c.path_options) {
            Err(r) => return Verdict::Refuse(r),
            Ok(normal) => {
                if let Some(i) = c.path.first_rule(&normal) {
                    return Verdict::Block(i);
                }
            }
        }
        if let Some(q) = query {
            if let Some(i) = c.query.first_rule(&sdk_ext::path::decode_lenient(q, true)) {
                return Verdict::Block(i);
            }
        }
        for (name, set) in &c.headers {
            for (n, v) in &req.headers {
                if n == name {
                    if let Some(i) = set.first_rule(v) {
                        return Verdict::Block(i);
                    }
                }
            }
        }
        Verdict::Allow
    }

    /// The in-place fast paths (a path already in its normal form and a query with nothing
    /// to decode matched where they are, header names compared word-wise) answer what the
    /// full steps answer, on random requests built from the bytes that matter: capitals
    /// (the path is lowercased; `(?-i:...)` sees the difference), escapes, dot segments,
    /// `;`, `+`, and header names that differ in one byte or in length.
    #[test]
    fn fast_paths_agree_with_the_full_steps() {
        let c = cfg(r#"{"rules":[
            {"name":"adm","in":"path","pattern":{"prefix":"/admin"}},
            {"name":"bak","in":"path","pattern":{"suffix":".bak"}},
            {"name":"git","in":"path","pattern":{"safe_regex":{"regex":"/\\.git(/|$)"}}},
            {"name":"cased","in":"path","pattern":{"safe_regex":{"regex":"(?-i:/Se)"}}},
            {"name":"sp","in":"query","pattern":{"contains":"a b"}},
            {"name":"pct","in":"query","pattern":{"exact":"x=%"}},
            {"name":"ua","in":"header","header":"user-agent","pattern":{"contains":"bad"}},
            {"name":"ub","in":"header","header":"user-agenu","pattern":{"exact":"ok"}},
            {"name":"xa","in":"header","header":"x-api-version-2","pattern":{"prefix":"b"}},
            {"name":"short","in":"header","header":"x-abcd","pattern":{"suffix":"d"}}]}"#);
        let path_parts: &[&[u8]] = &[
            b"/", b"/", b"a", b"A", b"Se", b"se", b"admin", b"ADMIN", b".git", b".bak", b".",
            b"..", b"%2e", b"%41", b"%2F", b"%", b";", b"\\", b"?", b"#", b"+", b" ", b"%20",
            b"x=", b"b",
        ];
        let names = [
            "user-agent",
            "user-agenu",
            "user-agen",
            "user-agentx",
            "x-api-version-2",
            "x-api-version-3",
            "y-api-version-2",
            "x-abcd",
            "x-abed",
            "y-abcd",
            "x",
        ];
        let values = ["bad", "ok", "b", "xbadx", "d", ""];
        let mut next = sdk_ext::testing::xorshift(0x0bad_5eed);
        let (mut blocked, mut refused, mut allowed) = (0, 0, 0);
        for _ in 0..20_000 {
            let mut p = Vec::new();
            for _ in 0..next() % 8 {
                p.extend_from_slice(path_parts[next() % path_parts.len()]);
            }
            let mut req = RequestData::default().with(":path", &p);
            for _ in 0..next() % 4 {
                req = req.with(names[next() % names.len()], values[next() % values.len()]);
            }
            let want = reference(&c, &req);
            assert_eq!(
                check_headers(&c, &mut req),
                want,
                "{:?} {:?}",
                String::from_utf8_lossy(&p),
                req.headers
            );
            match want {
                Verdict::Block(_) => blocked += 1,
                Verdict::Refuse(_) => refused += 1,
                Verdict::Allow => allowed += 1,
            }
        }
        assert!(
            blocked > 2000 && refused > 1000 && allowed > 2000,
            "{blocked} {refused} {allowed}"
        );
        // The cases the lowercasing decides: `/Se` is lowercased before `(?-i:/Se)` sees it,
        // whether the path is otherwise normal or not.
        assert_eq!(path(&c, b"/Se"), Verdict::Allow);
        assert_eq!(path(&c, b"//Se"), Verdict::Allow);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = |j: &str| Config::parse(j.as_bytes()).unwrap_err();
        assert_eq!(e(r#"{"rules":[]}"#).field, "rules");
        assert_eq!(
            e(r#"{"rules":[{"name":"a","in":"path","pattern":{"safe_regex":{"regex":"(x"}}}]}"#)
                .field,
            "rules[0].pattern.safe_regex.regex"
        );
        assert_eq!(
            e(r#"{"rules":[{"name":"a","in":"query","pattern":{"exact":"x"}},{"name":"b","in":"query","pattern":{"prefix":""}}]}"#).field,
            "rules[1].pattern.prefix"
        );
        assert_eq!(
            e(r#"{"rules":[{"name":"a","in":"header","pattern":{"exact":"x"}}]}"#).field,
            "rules[0].header"
        );
        assert_eq!(
            e(r#"{"rules":[{"name":"a","in":"path","header":"x","pattern":{"exact":"x"}}]}"#).field,
            "rules[0].header"
        );
        assert_eq!(
            e(r#"{"rules":[{"name":"a b","in":"path","pattern":{"exact":"x"}}]}"#).field,
            "rules[0].name"
        );
        assert_eq!(e(r#"{"rules":[{"name":"a","in":"path","pattern":{"exact":"x"}},{"name":"a","in":"path","pattern":{"exact":"y"}}]}"#).field, "rules[1].name");
        assert_eq!(
            e(r#"{"rules":[{"name":"a","in":"cookie","pattern":{"exact":"x"}}]}"#).field,
            "rules[0].in"
        );
        assert_eq!(e(r#"{"rules":[{"name":"a","in":"body","pattern":{"exact":"x"}}],"body":{"max_bytes":0}}"#).field, "body.max_bytes");
        assert_eq!(
            e(r#"{"rules":[{"name":"a","in":"body","pattern":{"exact":"x"}}],"status":200}"#).field,
            "status"
        );
        assert_eq!(e(r#"{"rules":[{"name":"a","in":"path","pattern":{"exact":"x"}}],"path":{"escaped_slashes":"drop"}}"#).field, "path.escaped_slashes");
    }
}

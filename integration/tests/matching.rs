//! Differential test: `sdk_ext::matching` decides exactly as Envoy 1.40's router.
//!
//! Generates (seeded, deterministic) matchers and requests: every path specifier, header
//! matcher kind (string kinds with `ignore_case`, presence, ranges, the older direct fields,
//! `invert_match`, `treat_missing_header_as_empty`), query parameter matchers, regexes
//! (non-UTF-8 values, patterns that look unanchored or unbalanced), missing, duplicate,
//! empty, upper-case and non-UTF-8 headers, `?` and `%` in paths and prefixes.
//!
//! One Envoy serves every case: virtual host `case-N` holds route 1 = the matcher
//! (direct response `match-N`) and route 2 = a catch-all (`miss-N`). Each request is sent
//! raw over HTTP/1.1 with `Host: case-N`; the same request, as Envoy's codec hands it to
//! filters, is given to `RequestMatcher::matches` as `RequestData`. Matchers our compile
//! refuses are each checked with `envoy --mode validate`: Envoy must refuse them too; and
//! Envoy must accept the serving config holding every matcher we accept. Zero
//! disagreements are allowed. `MATCHING_SEED` / `MATCHING_CASES` override the defaults.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use integration::{try_send_raw, validate_yaml, Envoy};
use sdk_ext::matching::{RequestMatchSpec, RequestMatcher};
use sdk_ext::request::RequestData;
use serde_json::{json, Value};

/// xorshift64*: small, seeded, enough for case generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

const STRINGS: &[&str] = &[
    "a", "b", "A", "ab", "aB", "a,b", "", "5", "prod", "PROD", "é", "É", "ÿ", " ", "%41", "a b",
    "a,", ",b", "x",
];

/// Header values as bytes (Envoy's codec trims surrounding whitespace; see `received`).
const VALUES: &[&[u8]] = &[
    b"a",
    b"b",
    b"A",
    b"ab",
    b"aB",
    b"a,b",
    b"",
    b"5",
    b"-3",
    b"+7",
    b"05",
    b"10",
    b"x5",
    b" 5 ",
    b"\xff",
    b"\xffA",
    b"\xc3\xa9",
    b"\xc3\x89",
    b"\xe9",
    b"\xc9",
    b"a b",
    b"%41",
    b"\xed\xa0\x80",
    b"\xe2\x82",
    b"\xf0\x9f\x98\x80",
    b"prod",
    b"PROD",
    b"a\tb",
    b"\x80",
    b"\x7f",
    b"9223372036854775807",
    b"-9223372036854775809",
];

const HEADER_REGEXES: &[&str] = &[
    ".*",
    ".",
    "..",
    "a.*",
    "[^a]",
    r"\xff",
    r"\xff.",
    "a|b",
    "(?i)a",
    "(?i)ab",
    r"(?i)\x{e9}",
    r"(?i)[\x{e0}-\x{ef}]",
    r"\w+",
    r"\W",
    "[[:alpha:]]+",
    "[[:^alpha:]]",
    "a,b",
    ".*,.*",
    r"\d+",
    r"-?\d+",
    r"\Qa,\E.*",
    r"\C\C",
    "[a&&b]",
    "a{2}",
    "a{,2}",
    r"\<",
    "(a)(?P<n>b)?",
    "é",
    ".é",
    r"\x{c3}\x{a9}",
    "^a$",
    "(?m)^a$",
    "(?s).",
    "(?U)a+",
    r"[\x{80}-\x{ff}]+",
    r"\s",
    r"a\b",
    "a*?",
    "[]a]",
    "[^]a]+",
    // Refused by RE2 (and so must be by us):
    "a)|(b",
    "x)|(.*",
    "(a",
    "a**",
    r"\Z",
    "(?x)a",
    "(?=a)",
    "a{1001}",
    "[z-a]",
    r"\1",
    r"\x{100}",
    "",
];

const PATH_REGEXES: &[&str] = &[
    "/a.*",
    "/a/?",
    "/[a-z]+",
    "(?i)/a",
    "/a|/b",
    "/.*b",
    ".*",
    r"/a\?x.*",
    "/a/(b|c)",
    r"/\w+",
    "/a/b$",
    "^/a",
    "/api(/.*)?",
    "/%41",
    "/health)|(/status",
    "/a)|(/b",
    "/.*)|(.*",
];

const PREFIXES: &[&str] = &[
    "", "/", "/a", "/a/", "/a?", "/a?x", "/A", "/ap", "/api", "/a%2F", "/%41", "/api/", "/é",
];
const PATHS: &[&str] = &["/", "/a", "/a/", "/A", "/api", "/a?x=1", "/a/b", "", "/API"];
const SEPARATED: &[&str] = &["/a", "/api", "/API", "/a/b", "ab", "/a", "/api", "/api/"];
const REQUEST_PATHS: &[&[u8]] = &[
    b"/",
    b"/a",
    b"/a/",
    b"/a/b",
    b"/a/c",
    b"/ab",
    b"/A/b",
    b"/a%2Fb",
    b"/api",
    b"/api/",
    b"/api/x",
    b"/apix",
    b"/API/x",
    b"/Api",
    b"/%41",
    b"/a//b",
    b"/a;b",
    b"/health-and-anything/admin",
    b"/status",
    b"/b",
    b"/x/b",
    b"/a/b",
    b"/a#frag",
    b"/a\xff",
    b"/api/v1",
    b"/a",
];
const QUERIES: &[&[u8]] = &[
    b"",
    b"",
    b"",
    b"?",
    b"?q",
    b"?q=",
    b"?q=a",
    b"?q=A",
    b"?q=a%20b",
    b"?q=a+b",
    b"?q=1&q=2",
    b"?q&q=a",
    b"?Q=a",
    b"?r",
    b"?r=1&q=a",
    b"?x=1=2",
    b"?&q=a&",
    b"?q=a?b",
    b"?q=%ff",
    b"?x",
    b"?q=5",
];

#[derive(Debug)]
struct Case {
    spec: Value,
    kinds: Vec<&'static str>,
    path: Vec<u8>,
    /// Headers as sent (name case as sent).
    headers: Vec<(String, Vec<u8>)>,
}

fn string_match(rng: &mut Rng, kinds: &mut Vec<&'static str>, regexes: &[&str]) -> Value {
    let s = |rng: &mut Rng| rng.pick(STRINGS).to_string();
    let mut m = match rng.below(5) {
        0 => {
            kinds.push("string.exact");
            json!({"exact": s(rng)})
        }
        1 => {
            kinds.push("string.prefix");
            json!({"prefix": s(rng)})
        }
        2 => {
            kinds.push("string.suffix");
            json!({"suffix": s(rng)})
        }
        3 => {
            kinds.push("string.contains");
            json!({"contains": s(rng)})
        }
        _ => {
            kinds.push("string.safe_regex");
            return json!({"safe_regex": {"regex": rng.pick(regexes)}});
        }
    };
    if rng.chance(35) {
        kinds.push("string.ignore_case");
        m["ignore_case"] = json!(true);
    }
    m
}

fn int64(rng: &mut Rng) -> Value {
    let n: i64 = *rng.pick(&[&-5i64, &0, &1, &5, &6, &10, &i64::MIN, &i64::MAX, &-3]);
    if rng.chance(30) {
        json!(n.to_string())
    } else {
        json!(n)
    }
}

fn header_matcher(rng: &mut Rng, kinds: &mut Vec<&'static str>) -> Value {
    let name = rng.pick(&["x-a", "x-b", "X-A", "x-a"]);
    let mut h = json!({ "name": name });
    match rng.below(10) {
        0..=3 => h["string_match"] = string_match(rng, kinds, HEADER_REGEXES),
        4 => {
            kinds.push("header.present_match");
            h["present_match"] = json!(rng.chance(50));
        }
        5 => {
            kinds.push("header.range_match");
            h["range_match"] = json!({"start": int64(rng), "end": int64(rng)});
        }
        6 | 7 => {
            kinds.push("header.older_field");
            let s = rng.pick(STRINGS).to_string();
            match rng.below(5) {
                0 => h["exact_match"] = json!(s),
                1 => h["prefix_match"] = json!(s),
                2 => h["suffix_match"] = json!(s),
                3 => h["contains_match"] = json!(s),
                _ => h["safe_regex_match"] = json!({"regex": rng.pick(HEADER_REGEXES)}),
            }
        }
        8 => kinds.push("header.name_only"),
        _ => {
            kinds.push("header.present_match");
            h["present_match"] = json!(true);
        }
    }
    if rng.chance(30) {
        kinds.push("header.invert_match");
        h["invert_match"] = json!(true);
    }
    if rng.chance(25) {
        kinds.push("header.treat_missing_header_as_empty");
        h["treat_missing_header_as_empty"] = json!(true);
    }
    h
}

fn generate(rng: &mut Rng) -> Case {
    let mut kinds = Vec::new();
    let mut spec = json!({});
    match rng.below(20) {
        0..=6 => {
            kinds.push("path.prefix");
            spec["prefix"] = json!(rng.pick(PREFIXES));
        }
        7..=9 => {
            kinds.push("path.path");
            spec["path"] = json!(rng.pick(PATHS));
        }
        10..=13 => {
            kinds.push("path.safe_regex");
            spec["safe_regex"] = json!({"regex": rng.pick(PATH_REGEXES)});
        }
        14..=16 => {
            kinds.push("path.path_separated_prefix");
            spec["path_separated_prefix"] = json!(rng.pick(SEPARATED));
        }
        _ => {
            kinds.push("path.any");
            spec["prefix"] = json!("");
        }
    }
    if rng.chance(30) {
        let cs = rng.chance(70);
        if !cs {
            kinds.push("path.case_insensitive");
        }
        spec["case_sensitive"] = json!(cs);
    }
    let n_headers = [0, 1, 1, 1, 2, 2][rng.below(6)];
    let headers: Vec<Value> = (0..n_headers)
        .map(|_| header_matcher(rng, &mut kinds))
        .collect();
    if !headers.is_empty() {
        spec["headers"] = Value::Array(headers);
    }
    if rng.chance(30) {
        let name = rng.pick(&["q", "q", "Q", "r"]);
        let mut q = json!({ "name": name });
        match rng.below(3) {
            0 => {
                kinds.push("query.string_match");
                let mut sub = Vec::new();
                q["string_match"] = string_match(rng, &mut sub, &["a", "(?i)a", "a.*", ".*"]);
            }
            1 => {
                kinds.push("query.present_match");
                q["present_match"] = json!(rng.chance(50));
            }
            _ => kinds.push("query.name_only"),
        }
        spec["query_parameters"] = json!([q]);
    }

    // The request: a path (sometimes built from the matcher's own prefix) and a query.
    let mut path = if rng.chance(50) {
        let base = spec["prefix"]
            .as_str()
            .or(spec["path_separated_prefix"].as_str())
            .or(spec["path"].as_str())
            .unwrap_or("/")
            .as_bytes()
            .to_vec();
        let tail: &[u8] = rng.pick(&[&b""[..], b"/", b"/x", b"x", b"=1"]);
        [base, tail.to_vec()].concat()
    } else {
        rng.pick(REQUEST_PATHS).to_vec()
    };
    if !path.starts_with(b"/") {
        path.insert(0, b'/');
    }
    let q = &spec["query_parameters"][0];
    match (q["name"].as_str(), q["string_match"].as_object()) {
        (Some(name), Some(m)) if rng.chance(60) => {
            // A request target cannot hold spaces or raw non-ASCII: such values are skipped.
            let v = ["exact", "prefix", "suffix", "contains"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_str))
                .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
                .unwrap_or("a");
            let extra = rng.pick(&["", "", "x", "&q=z"]);
            path.extend_from_slice(format!("?{name}={v}{extra}").as_bytes());
        }
        _ => path.extend_from_slice(rng.pick(QUERIES)),
    }
    let mut sent = Vec::new();
    for name in ["x-a", "x-b"] {
        let count = [0, 0, 1, 1, 1, 2, 2, 3][rng.below(8)];
        for _ in 0..count {
            let as_sent = if rng.chance(20) {
                name.to_ascii_uppercase()
            } else {
                name.to_string()
            };
            // Often a value the matcher itself names, so matches are common.
            let named: Vec<&str> = matcher_strings(&spec);
            let value = if !named.is_empty() && rng.chance(60) {
                let v = named[rng.below(named.len())].as_bytes().to_vec();
                let extra: &[u8] = rng.pick(&[&b""[..], b"", b"x", b",b"]);
                [v, extra.to_vec()].concat()
            } else {
                rng.pick(VALUES).to_vec()
            };
            sent.push((as_sent, value));
        }
    }
    // Interleave so repeated names are not always adjacent.
    if sent.len() > 2 && rng.chance(50) {
        let last = sent.len() - 1;
        sent.swap(0, last);
    }
    for (n, v) in &sent {
        let n = n.to_ascii_lowercase();
        if sent
            .iter()
            .filter(|(m, _)| m.eq_ignore_ascii_case(&n))
            .count()
            > 1
        {
            push_unique(&mut kinds, "request.multi_value");
        }
        if std::str::from_utf8(v).is_err() {
            push_unique(&mut kinds, "request.non_utf8_value");
        }
        if v.is_empty() {
            push_unique(&mut kinds, "request.empty_value");
        }
    }
    Case {
        spec,
        kinds,
        path,
        headers: sent,
    }
}

/// The literal strings a matcher's header conditions name.
fn matcher_strings(spec: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    for h in spec["headers"].as_array().into_iter().flatten() {
        for k in [
            "exact_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
        ] {
            out.extend(h[k].as_str());
        }
        for k in ["exact", "prefix", "suffix", "contains"] {
            out.extend(h["string_match"][k].as_str());
        }
    }
    out
}

fn push_unique(kinds: &mut Vec<&'static str>, k: &'static str) {
    if !kinds.contains(&k) {
        kinds.push(k);
    }
}

fn compile(spec: &Value) -> Result<RequestMatcher, String> {
    let bytes = serde_json::to_vec(spec).unwrap();
    let parsed: RequestMatchSpec = sdk_ext::config::parse(&bytes).map_err(|e| e.to_string())?;
    RequestMatcher::compile(&parsed, "match").map_err(|e| e.to_string())
}

/// One virtual host per case, in a bootstrap Envoy reads (JSON is YAML).
fn bootstrap(cases: &[(usize, &Value)]) -> String {
    let vhosts: Vec<Value> = cases
        .iter()
        .map(|(i, spec)| {
            json!({
                "name": format!("case-{i}"),
                "domains": [format!("case-{i}")],
                "routes": [
                    {"match": spec, "direct_response": {"status": 200, "body": {"inline_string": format!("match-{i}")}}},
                    {"match": {"prefix": ""}, "direct_response": {"status": 200, "body": {"inline_string": format!("miss-{i}")}}}
                ]
            })
        })
        .collect();
    let config = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "matching",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "matching",
                    "route_config": {"name": "matching", "virtual_hosts": vhosts},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
                }
            }]}]
        }]}
    });
    serde_json::to_string_pretty(&config).unwrap()
}

/// The request as Envoy's HTTP/1 codec hands it to the router and to filters: names
/// lowercased, surrounding whitespace of values trimmed, `Host` as `:authority`.
fn received(i: usize, case: &Case) -> RequestData {
    let mut r = RequestData::new("GET", "", &format!("case-{i}"));
    r.headers.retain(|(n, _)| n != ":path");
    r.headers.push((":path".into(), case.path.clone()));
    for (n, v) in &case.headers {
        r = r.with(n, v.trim_ascii());
    }
    r
}

/// What in a request Envoy's HTTP/1 codec probably refused (for the report only).
fn codec_reason(case: &Case) -> &'static str {
    let path = &case.path;
    if path.contains(&b'#') {
        "'#' in the path"
    } else if path.iter().any(|b| !b.is_ascii_graphic()) {
        "space or non-ASCII byte in the path"
    } else if case.headers.iter().any(|(_, v)| v.contains(&0x7f)) {
        "DEL (0x7f) in a header value"
    } else {
        "other"
    }
}

fn wire(i: usize, case: &Case) -> Vec<u8> {
    let mut out = b"GET ".to_vec();
    out.extend_from_slice(&case.path);
    out.extend_from_slice(format!(" HTTP/1.1\r\nHost: case-{i}\r\n").as_bytes());
    for (n, v) in &case.headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The smallest set of matchers Envoy refuses, found by bisecting validate runs.
fn refused_by_envoy(cases: &[(usize, &Value)]) -> Vec<usize> {
    if validate_yaml(&bootstrap(cases)).0 {
        return Vec::new();
    }
    if let [(i, _)] = cases {
        return vec![*i];
    }
    let (a, b) = cases.split_at(cases.len() / 2);
    let mut out = refused_by_envoy(a);
    out.extend(refused_by_envoy(b));
    out
}

#[derive(Default)]
struct Tally {
    cases: usize,
    matched: usize,
}

#[test]
fn sdk_ext_matching_agrees_with_envoy() {
    let seed = std::env::var("MATCHING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_2026_u64);
    let count = std::env::var("MATCHING_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500usize);
    // The harness itself: a valid matcher validates (so "Envoy refuses" below means it).
    assert!(
        validate_yaml(&bootstrap(&[(0, &json!({"prefix": "/"}))])).0,
        "a plain matcher must pass envoy --mode validate"
    );
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let cases: Vec<Case> = (0..count).map(|_| generate(&mut rng)).collect();

    // Our compile decides which matchers are valid.
    let mut ours = BTreeMap::new();
    let mut refused: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (i, c) in cases.iter().enumerate() {
        match compile(&c.spec) {
            Ok(m) => {
                ours.insert(i, m);
            }
            Err(e) => {
                refused
                    .entry(serde_json::to_string(&c.spec).unwrap())
                    .or_insert((e, i));
            }
        }
    }

    // Every matcher we refuse, Envoy refuses (each validated alone, two at a time).
    let refused_list: Vec<(&String, &(String, usize))> = refused.iter().collect();
    let next = AtomicUsize::new(0);
    let accepted_by_envoy = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some((json, (why, i))) = refused_list.get(k) else {
                    break;
                };
                let spec: Value = serde_json::from_str(json).unwrap();
                if validate_yaml(&bootstrap(&[(*i, &spec)])).0 {
                    accepted_by_envoy
                        .lock()
                        .unwrap()
                        .push(format!("{json}: we refuse ({why}), Envoy accepts"));
                }
            });
        }
    });

    // Envoy accepts every matcher we accept, in one serving config.
    let served: Vec<(usize, &Value)> = ours.keys().map(|&i| (i, &cases[i].spec)).collect();
    let envoy = match Envoy::start(&bootstrap(&served)) {
        Ok(e) => e,
        Err(e) => {
            let bad: Vec<String> = refused_by_envoy(&served)
                .into_iter()
                .map(|i| serde_json::to_string(&cases[i].spec).unwrap())
                .collect();
            panic!(
                "Envoy refuses matchers sdk-ext accepts: {bad:#?}\n{}",
                e.message
            );
        }
    };
    let port = envoy.listener_port();

    // Send every request; compare.
    let keys: Vec<usize> = ours.keys().copied().collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = keys.get(k) else { break };
                let outcome = match try_send_raw(port, &wire(i, &cases[i])) {
                    Ok(r) if r.status == 200 && r.body == format!("match-{i}").as_bytes() => {
                        Some(true)
                    }
                    Ok(r) if r.status == 200 && r.body == format!("miss-{i}").as_bytes() => {
                        Some(false)
                    }
                    Ok(r) if r.status == 400 => None,
                    Ok(r) => panic!(
                        "case {i}: unexpected answer {} {:?}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ),
                    // A codec that refuses may just close.
                    Err(_) => None,
                };
                results.lock().unwrap().push((i, outcome));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort();

    let mut per_kind: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut codec_refused = Vec::new();
    let mut disagreements = Vec::new();
    let mut compared = 0;
    for (i, outcome) in results {
        let case = &cases[i];
        let Some(envoy_matched) = outcome else {
            codec_refused.push(codec_reason(case));
            continue;
        };
        compared += 1;
        let matched = ours[&i].matches(&mut received(i, case));
        if matched != envoy_matched {
            disagreements.push(format!(
                "case {i}: envoy {} ours {}\n  match:   {}\n  path:    {:?}\n  headers: {:?}",
                envoy_matched,
                matched,
                case.spec,
                String::from_utf8_lossy(&case.path),
                case.headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.escape_ascii()))
                    .collect::<Vec<_>>()
            ));
        }
        for k in &case.kinds {
            let t = per_kind.entry(k).or_default();
            t.cases += 1;
            t.matched += usize::from(envoy_matched);
        }
    }
    drop(envoy);

    println!(
        "matching differential (seed {seed:#x}): {count} generated, {compared} compared, \
         {} refused at Envoy's HTTP/1 codec, {} distinct matchers refused at config load \
         (by both), {} disagreements",
        codec_refused.len(),
        refused.len(),
        disagreements.len() + accepted_by_envoy.lock().unwrap().len()
    );
    println!("{:<40} {:>6} {:>8}", "kind", "cases", "matched");
    for (k, t) in &per_kind {
        println!("{k:<40} {:>6} {:>8}", t.cases, t.matched);
    }
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &codec_refused {
        *reasons.entry(r).or_default() += 1;
    }
    println!("refused at the codec (HTTP 400), by the likely cause: {reasons:?}");
    let mut why: BTreeMap<String, usize> = BTreeMap::new();
    for (e, _) in refused.values() {
        let reason = e.split(": ").skip(1).collect::<Vec<_>>().join(": ");
        let short: String = reason.chars().take(60).collect();
        *why.entry(short).or_default() += 1;
    }
    println!("matchers refused at config load by both, by reason: {why:#?}");
    let accepted = accepted_by_envoy.into_inner().unwrap();
    assert!(
        accepted.is_empty(),
        "sdk-ext refuses matchers Envoy accepts:\n{}",
        accepted.join("\n")
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements with Envoy:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(compared >= 1000, "only {compared} cases compared");
}

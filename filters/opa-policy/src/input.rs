//! The input document policies see: the one opa-envoy-plugin builds from Envoy's ext_authz
//! `CheckRequest` (v3, protojson), so existing policies work unchanged. Plain Rust over plain
//! data; the filter collects the facts from the host.
//!
//! ```json
//! {
//!   "attributes": {
//!     "source":      {"address": {"socketAddress": {"address": "10.0.0.1", "portValue": 51234}}},
//!     "destination": {"address": {"socketAddress": {"address": "10.0.0.2", "portValue": 10000}}},
//!     "request": {"http": {
//!       "id": "<x-request-id>", "method": "GET", "path": "/people?lang=en",
//!       "host": "example.com", "scheme": "http", "protocol": "HTTP/1.1",
//!       "headers": {":authority": "example.com", ":method": "GET", ":path": "/people?lang=en",
//!                   "authorization": "Bearer ..."},
//!       "body": "<request body, when with_request_body is set>"
//!     }}
//!   },
//!   "parsed_path": ["people"],
//!   "parsed_query": {"lang": ["en"]},
//!   "parsed_body": null,
//!   "truncated_body": false,
//!   "version": {"encoding": "protojson", "ext_authz": "v3"}
//! }
//! ```
//!
//! Header names are lowercase (as the host gives them); a name sent several times has its
//! values joined with `,` (as ext_authz does). Bytes that are not UTF-8 (header values,
//! the body, percent-decoded path segments) become U+FFFD: the document is JSON.

use regorus::value::Object;
use regorus::Value;

/// Which optional parts of the document a policy can reach. The parts that cost host calls
/// or work per request (peer addresses, request id, protocol, parsed path and query,
/// headers...) are left out when no module could read them: a module that never names
/// `source` cannot read `input.attributes.source`. A module that uses `input` as a whole
/// (`walk(input, ...)`, `json.marshal(input)`, `input[k]`, `import input`) gets everything,
/// and so does the remote mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// `attributes.source`.
    pub source: bool,
    /// `attributes.destination`.
    pub destination: bool,
    /// `attributes.request.http.id`.
    pub id: bool,
    /// `attributes.request.http.protocol`.
    pub protocol: bool,
    /// `attributes.request.http.headers`.
    pub headers: bool,
    /// `parsed_path`.
    pub parsed_path: bool,
    /// `parsed_query`.
    pub parsed_query: bool,
}

impl Needs {
    /// Everything.
    pub const ALL: Needs = Needs {
        source: true,
        destination: true,
        id: true,
        protocol: true,
        headers: true,
        parsed_path: true,
        parsed_query: true,
    };

    /// What modules with these sources can reach.
    pub fn of<'a>(modules: impl IntoIterator<Item = &'a str> + Clone) -> Needs {
        let any = |word: &str| modules.clone().into_iter().any(|m| has_word(m, word));
        if modules.clone().into_iter().any(uses_whole_input) {
            return Needs::ALL;
        }
        Needs {
            source: any("source"),
            destination: any("destination"),
            id: any("id"),
            protocol: any("protocol"),
            headers: any("headers"),
            parsed_path: any("parsed_path"),
            parsed_query: any("parsed_query"),
        }
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where `word` occurs in `text` as a whole identifier.
fn word_at(text: &str, word: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    text.match_indices(word)
        .map(|(i, _)| i)
        .filter(|&i| {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j)).copied();
            let after = bytes.get(i + word.len()).copied();
            !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
        })
        .collect()
}

fn has_word(text: &str, word: &str) -> bool {
    !word_at(text, word).is_empty()
}

/// `input` used otherwise than as `input.<name>` or `input["<name>"]`.
fn uses_whole_input(text: &str) -> bool {
    word_at(text, "input").into_iter().any(|i| {
        let rest = text.get(i + "input".len()..).unwrap_or_default();
        let path = rest.starts_with('.') && rest.as_bytes().get(1).is_some_and(|&b| is_ident(b));
        let literal_key = rest.starts_with("[\"");
        !(path || literal_key)
    })
}

/// The request facts the document is built from.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// Every request header, names lowercase, pseudo-headers included, in order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The client address with port (`source.address`).
    pub source_address: Option<Vec<u8>>,
    /// The address the client connected to, with port (`destination.address`).
    pub destination_address: Option<Vec<u8>>,
    /// The request id (`x-request-id`, Envoy's `request.id`).
    pub request_id: Option<Vec<u8>>,
    /// `HTTP/1.1`, `HTTP/2`, ... (Envoy's `request.protocol`).
    pub protocol: Option<Vec<u8>>,
    /// The body, when the policy is given it.
    pub body: Option<Body>,
}

/// What the filter saw of the request body.
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// The bytes (at most `with_request_body.max_request_bytes`).
    pub bytes: Vec<u8>,
    /// The body was longer than what is here.
    pub truncated: bool,
}

/// The document could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Over `limits.max_input_bytes`.
    TooLarge(usize),
    /// A JSON body that is not JSON (opa-envoy-plugin refuses these too).
    BadJsonBody(String),
}

impl RequestFacts {
    /// The request bytes the document carries (header names and values, body).
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len().saturating_add(v.len()))
            .fold(0, usize::saturating_add);
        headers.saturating_add(self.body.as_ref().map_or(0, |b| b.bytes.len()))
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// Builds the whole input document, refusing one over `max_bytes` of request data.
    pub fn to_input(&self, max_bytes: usize) -> Result<Value, InputError> {
        self.to_input_for(max_bytes, Needs::ALL)
    }

    /// Builds the input document with the optional parts in `needs`.
    pub fn to_input_for(&self, max_bytes: usize, needs: Needs) -> Result<Value, InputError> {
        let size = self.size();
        if size > max_bytes {
            return Err(InputError::TooLarge(size));
        }
        let text = |v: Option<&[u8]>| lossy(v.unwrap_or_default());
        let path = self.header(":path").unwrap_or_default();

        let mut http = Object::new();
        if needs.headers {
            http.insert(key("headers"), self.headers_object());
        }
        http.insert(key("host"), text(self.header(":authority")));
        http.insert(key("method"), text(self.header(":method")));
        http.insert(key("path"), text(Some(path)));
        http.insert(key("scheme"), text(self.header(":scheme")));
        if let (true, Some(p)) = (needs.protocol, &self.protocol) {
            http.insert(key("protocol"), text(Some(p)));
        }
        if let (true, Some(id)) = (needs.id, &self.request_id) {
            http.insert(key("id"), text(Some(id)));
        }
        if let Some(body) = &self.body {
            http.insert(key("body"), text(Some(&body.bytes)));
        }
        let mut request = Object::new();
        request.insert(key("http"), Value::from(http));
        let mut attributes = Object::new();
        attributes.insert(key("request"), Value::from(request));
        if let (true, Some(a)) = (needs.source, &self.source_address) {
            attributes.insert(key("source"), peer(a));
        }
        if let (true, Some(a)) = (needs.destination, &self.destination_address) {
            attributes.insert(key("destination"), peer(a));
        }

        let (path_only, query) = match path.iter().position(|&b| b == b'?') {
            Some(i) => (
                path.get(..i).unwrap_or_default(),
                path.get(i.saturating_add(1)..).unwrap_or_default(),
            ),
            None => (path, &b""[..]),
        };
        let (parsed_body, truncated) = self.parsed_body()?;

        let mut input = Object::new();
        input.insert(key("attributes"), Value::from(attributes));
        if needs.parsed_path {
            input.insert(key("parsed_path"), parsed_path(path_only));
        }
        if needs.parsed_query {
            input.insert(key("parsed_query"), parsed_query(query));
        }
        input.insert(key("parsed_body"), parsed_body);
        input.insert(key("truncated_body"), Value::from(truncated));
        input.insert(key("version"), version());
        Ok(Value::from(input))
    }

    fn headers_object(&self) -> Value {
        let mut joined: Vec<(&[u8], Vec<u8>)> = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            match joined.iter_mut().find(|(n, _)| *n == name.as_slice()) {
                Some((_, v)) => {
                    v.push(b',');
                    v.extend_from_slice(value);
                }
                None => joined.push((name, value.clone())),
            }
        }
        let object: Object = joined
            .into_iter()
            .map(|(n, v)| (lossy(n), lossy(&v)))
            .collect();
        Value::from(object)
    }

    /// opa-envoy-plugin's `parsed_body`: a JSON body (content-type containing
    /// `application/json`) parsed; `null` otherwise; `truncated_body` when the body is
    /// shorter than its `content-length` (or was cut at `max_request_bytes`).
    fn parsed_body(&self) -> Result<(Value, bool), InputError> {
        let Some(body) = &self.body else {
            return Ok((Value::Null, false));
        };
        let json = self
            .header("content-type")
            .is_some_and(|ct| contains(ct, b"application/json"));
        if !json || body.bytes.is_empty() {
            return Ok((Value::Null, body.truncated));
        }
        let declared = self
            .header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
        if body.truncated || declared.is_some_and(|n| n > body.bytes.len()) {
            return Ok((Value::Null, true));
        }
        let text = std::str::from_utf8(&body.bytes)
            .map_err(|_| InputError::BadJsonBody("the body is not UTF-8".into()))?;
        Value::from_json_str(text)
            .map(|v| (v, false))
            .map_err(|e| InputError::BadJsonBody(crate::evaluate::one_line(&e.to_string())))
    }
}

/// Bytes as a JSON string (invalid UTF-8 as U+FFFD).
fn lossy(bytes: &[u8]) -> Value {
    Value::from(String::from_utf8_lossy(bytes).as_ref())
}

/// The document's fixed keys and its `version`, made once per VM (a key is a reference
/// count increment per request instead of an allocation).
struct Keys {
    names: Vec<(&'static str, Value)>,
    version: Value,
}

const KEY_NAMES: [&str; 23] = [
    "headers",
    "host",
    "method",
    "path",
    "scheme",
    "protocol",
    "id",
    "body",
    "http",
    "request",
    "source",
    "destination",
    "attributes",
    "parsed_path",
    "parsed_query",
    "parsed_body",
    "truncated_body",
    "version",
    "address",
    "portValue",
    "socketAddress",
    "encoding",
    "ext_authz",
];

thread_local! {
    static KEYS: Keys = {
        let names = KEY_NAMES.iter().map(|n| (*n, Value::from(*n))).collect();
        let version: Object = [
            (Value::from("encoding"), Value::from("protojson")),
            (Value::from("ext_authz"), Value::from("v3")),
        ]
        .into_iter()
        .collect();
        Keys { names, version: Value::from(version) }
    };
}

fn key(name: &'static str) -> Value {
    KEYS.try_with(|k| {
        k.names
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| Value::from(name))
}

fn version() -> Value {
    KEYS.try_with(|k| k.version.clone())
        .unwrap_or(Value::Undefined)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `{"address": {"socketAddress": {"address": "10.0.0.1", "portValue": 51234}}}`.
fn peer(address: &[u8]) -> Value {
    let (host, port) = split_host_port(address);
    let mut socket = Object::new();
    socket.insert(key("address"), lossy(host));
    if let Some(p) = port {
        socket.insert(key("portValue"), Value::from(p));
    }
    let mut addr = Object::new();
    addr.insert(key("socketAddress"), Value::from(socket));
    let mut outer = Object::new();
    outer.insert(key("address"), Value::from(addr));
    Value::from(outer)
}

/// `10.0.0.1:80` → (`10.0.0.1`, 80); `[::1]:80` → (`::1`, 80); `::1` → (`::1`, none).
fn split_host_port(a: &[u8]) -> (&[u8], Option<u64>) {
    let port = |p: &[u8]| std::str::from_utf8(p).ok()?.parse::<u64>().ok();
    if let Some(rest) = a.strip_prefix(b"[") {
        if let Some(end) = rest.iter().position(|&b| b == b']') {
            let host = rest.get(..end).unwrap_or_default();
            let tail = rest.get(end.saturating_add(1)..).unwrap_or_default();
            return (host, tail.strip_prefix(b":").and_then(port));
        }
        return (a, None);
    }
    match a.iter().position(|&b| b == b':') {
        Some(i) if a.iter().filter(|&&b| b == b':').count() == 1 => (
            a.get(..i).unwrap_or_default(),
            a.get(i.saturating_add(1)..).and_then(port),
        ),
        _ => (a, None),
    }
}

/// Go's `url.Parse(path).Path`, leading `/` trimmed, split on `/`: `/a/b%20c` → `["a", "b c"]`,
/// `/` → `[""]`.
pub fn parsed_path(path: &[u8]) -> Value {
    let start = path.iter().position(|&b| b != b'/').unwrap_or(path.len());
    let trimmed = path.get(start..).unwrap_or_default();
    let parts: Vec<Value> = trimmed
        .split(|&b| b == b'/')
        .map(|seg| lossy(&percent_decode(seg, false)))
        .collect();
    Value::from(parts)
}

/// Go's `url.ParseQuery`: `a=1&a=2&b` → `{"a": ["1", "2"], "b": [""]}` (`+` is a space, `%XX`
/// decoded, empty pairs skipped).
pub fn parsed_query(query: &[u8]) -> Value {
    let mut pairs: Vec<(String, Vec<Value>)> = Vec::new();
    for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (
                pair.get(..i).unwrap_or_default(),
                pair.get(i.saturating_add(1)..).unwrap_or_default(),
            ),
            None => (pair, &b""[..]),
        };
        let k = String::from_utf8_lossy(&percent_decode(k, true)).into_owned();
        let v = lossy(&percent_decode(v, true));
        match pairs.iter_mut().find(|(name, _)| *name == k) {
            Some((_, values)) => values.push(v),
            None => pairs.push((k, vec![v])),
        }
    }
    let object: Object = pairs
        .into_iter()
        .map(|(k, v)| (Value::from(k), Value::from(v)))
        .collect();
    Value::from(object)
}

/// `%XX` decoded (an invalid escape is kept as written); `+` → space in a query.
fn percent_decode(s: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        let hex = |at: usize| s.get(at).and_then(|c| char::from(*c).to_digit(16));
        match b {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(headers: &[(&str, &[u8])]) -> RequestFacts {
        RequestFacts {
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec()))
                .collect(),
            source_address: Some(b"10.0.0.1:51234".to_vec()),
            destination_address: Some(b"[::1]:10000".to_vec()),
            request_id: Some(b"req-1".to_vec()),
            protocol: Some(b"HTTP/1.1".to_vec()),
            body: None,
        }
    }

    #[test]
    fn the_document_has_opa_envoy_plugins_shape() {
        let f = facts(&[
            (":method", b"GET"),
            (":path", b"/people/a%20b?lang=en&lang=fr&x=1+2&flag"),
            (":authority", b"example.com"),
            (":scheme", b"http"),
            ("x-multi", b"1"),
            ("x-multi", b"2"),
            ("x-bin", b"ok\xff"),
        ]);
        let v = f.to_input(1 << 16).unwrap();
        let json: serde_json::Value = serde_json::from_str(&v.to_json_str().unwrap()).unwrap();
        let http = &json["attributes"]["request"]["http"];
        assert_eq!(http["method"], "GET");
        assert_eq!(http["path"], "/people/a%20b?lang=en&lang=fr&x=1+2&flag");
        assert_eq!(http["host"], "example.com");
        assert_eq!(http["scheme"], "http");
        assert_eq!(http["protocol"], "HTTP/1.1");
        assert_eq!(http["id"], "req-1");
        assert_eq!(http["headers"][":method"], "GET");
        assert_eq!(http["headers"]["x-multi"], "1,2");
        assert_eq!(http["headers"]["x-bin"], "ok\u{fffd}");
        assert!(http.get("body").is_none());
        let src = &json["attributes"]["source"]["address"]["socketAddress"];
        assert_eq!(src["address"], "10.0.0.1");
        assert_eq!(src["portValue"], 51234);
        let dst = &json["attributes"]["destination"]["address"]["socketAddress"];
        assert_eq!(dst["address"], "::1");
        assert_eq!(dst["portValue"], 10000);
        assert_eq!(json["parsed_path"], serde_json::json!(["people", "a b"]));
        assert_eq!(
            json["parsed_query"],
            serde_json::json!({"lang": ["en", "fr"], "x": ["1 2"], "flag": [""]})
        );
        assert_eq!(json["parsed_body"], serde_json::Value::Null);
        assert_eq!(json["truncated_body"], false);
        assert_eq!(
            json["version"],
            serde_json::json!({"encoding": "protojson", "ext_authz": "v3"})
        );
    }

    #[test]
    fn paths_split_like_go() {
        let p = |s: &str| {
            serde_json::from_str::<serde_json::Value>(
                &parsed_path(s.as_bytes()).to_json_str().unwrap(),
            )
            .unwrap()
        };
        assert_eq!(p("/"), serde_json::json!([""]));
        assert_eq!(p(""), serde_json::json!([""]));
        assert_eq!(p("//a/b/"), serde_json::json!(["a", "b", ""]));
        assert_eq!(p("/%zz/%41"), serde_json::json!(["%zz", "A"]));
    }

    #[test]
    fn json_bodies_are_parsed() {
        let mut f = facts(&[
            (":path", b"/"),
            ("content-type", b"application/json; charset=utf-8"),
        ]);
        f.body = Some(Body {
            bytes: br#"{"firstname":"Alice"}"#.to_vec(),
            truncated: false,
        });
        let v = f.to_input(1 << 16).unwrap();
        assert_eq!(v["parsed_body"]["firstname"], Value::from("Alice"));
        assert_eq!(
            v["attributes"]["request"]["http"]["body"],
            Value::from(r#"{"firstname":"Alice"}"#)
        );
        f.body = Some(Body {
            bytes: b"{nope".to_vec(),
            truncated: false,
        });
        assert!(matches!(
            f.to_input(1 << 16),
            Err(InputError::BadJsonBody(_))
        ));
        f.body = Some(Body {
            bytes: b"{\"a\":".to_vec(),
            truncated: true,
        });
        let v = f.to_input(1 << 16).unwrap();
        assert_eq!(v["parsed_body"], Value::Null);
        assert_eq!(v["truncated_body"], Value::from(true));
    }

    #[test]
    fn needs_follow_what_modules_can_name() {
        let rbac = "package x\nimport input.attributes.request.http as req\nallow if req.headers[\"x\"] == \"1\"\n";
        let n = Needs::of([rbac]);
        assert!(n.headers);
        assert!(!n.source && !n.destination && !n.id && !n.protocol);
        assert!(!n.parsed_path && !n.parsed_query);
        let n = Needs::of([rbac, "package y\nallow if input.parsed_path[0] == \"a\"\n"]);
        assert!(n.parsed_path && !n.parsed_query);
        assert!(Needs::of(["package x\nallow if input[\"parsed_query\"]\n"]).parsed_query);
        assert!(
            !Needs::of(["package x\nallow if valid_ids[1]\n"]).id,
            "whole words only"
        );
        for whole in [
            "package x\nallow if walk(input, [p, v])\n",
            "package x\nallow if json.marshal(input) != \"\"\n",
            "package x\nallow if input[k]\n",
            "package x\nimport input\nallow if input.a\n",
            "package x\nimport input as i\n",
        ] {
            assert_eq!(Needs::of([whole]), Needs::ALL, "{whole}");
        }
        let f = facts(&[(":path", b"/a?b=1"), ("x", b"1")]);
        let v = f.to_input_for(1 << 16, Needs::of([rbac])).unwrap();
        assert_eq!(
            v["attributes"]["request"]["http"]["headers"]["x"],
            Value::from("1")
        );
        assert_eq!(v["attributes"]["source"], Value::Undefined);
        assert_eq!(v["parsed_query"], Value::Undefined);
        assert_eq!(
            v["attributes"]["request"]["http"]["path"],
            Value::from("/a?b=1")
        );
    }

    #[test]
    fn huge_inputs_are_refused_before_building() {
        let big = vec![b'a'; 70_000];
        let f = facts(&[(":path", b"/"), ("x-big", &big)]);
        assert_eq!(f.to_input(65536), Err(InputError::TooLarge(70_011)));
    }
}

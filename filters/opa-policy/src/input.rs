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
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Which parts of the document a policy can reach; the others are left out (each costs work
/// or host calls per request). For a policy on the RVM, what its program reads
/// ([`crate::reads`]); for one on the interpreter, what its modules name ([`Needs::of`]: a
/// module that never names `source` cannot read `input.attributes.source` but through a
/// computed key; one that uses `input` as a whole gets everything). The remote mode gets
/// everything.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Which of its headers: `None`, every one; `Some(names)`, only those (sorted, the
    /// exact lowercase names the policy can look up: a header of another name could never
    /// be read, so it is left out of the document).
    pub header_names: Option<Arc<[Box<[u8]>]>>,
    /// `attributes.request.http.host`.
    pub host: bool,
    /// `attributes.request.http.method`.
    pub method: bool,
    /// `attributes.request.http.path`.
    pub path: bool,
    /// `attributes.request.http.scheme`.
    pub scheme: bool,
    /// `parsed_path`.
    pub parsed_path: bool,
    /// `parsed_query`.
    pub parsed_query: bool,
    /// `parsed_body`.
    pub parsed_body: bool,
    /// `truncated_body`.
    pub truncated_body: bool,
    /// `version`.
    pub version: bool,
}

impl Needs {
    /// Everything.
    pub const ALL: Needs = Needs {
        source: true,
        destination: true,
        id: true,
        protocol: true,
        headers: true,
        header_names: None,
        host: true,
        method: true,
        path: true,
        scheme: true,
        parsed_path: true,
        parsed_query: true,
        parsed_body: true,
        truncated_body: true,
        version: true,
    };

    /// What modules with these sources can reach, by the names they spell (for the
    /// interpreter; a policy on the RVM has its program read instead: `crate::reads`).
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
            header_names: None,
            host: any("host"),
            method: any("method"),
            path: any("path"),
            scheme: any("scheme"),
            parsed_path: any("parsed_path"),
            parsed_query: any("parsed_query"),
            parsed_body: any("parsed_body"),
            truncated_body: any("truncated_body"),
            version: any("version"),
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

/// The request facts the document is built from. Header names and values are borrowed (from
/// the host's encoded header map, in the filter: no copy of each).
#[derive(Debug, Clone, Default)]
pub struct RequestFacts<'a> {
    /// Every request header, names lowercase, pseudo-headers included, in order.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
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

impl RequestFacts<'_> {
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
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| *v)
    }

    /// Builds the whole input document, refusing one over `max_bytes` of request data.
    pub fn to_input(&self, max_bytes: usize) -> Result<Value, InputError> {
        self.to_input_for(max_bytes, &Needs::ALL)
    }

    /// Builds the input document with the optional parts in `needs`.
    pub fn to_input_for(&self, max_bytes: usize, needs: &Needs) -> Result<Value, InputError> {
        let size = self.size();
        if size > max_bytes {
            return Err(InputError::TooLarge(size));
        }
        KEYS.try_with(|k| self.build(k, needs))
            .unwrap_or_else(|_| Err(InputError::BadJsonBody("thread is exiting".into())))
    }

    fn build(&self, k: &Keys, needs: &Needs) -> Result<Value, InputError> {
        let path = self.header(":path").unwrap_or_default();
        // The headers object, and the values of the four pseudo-headers the document repeats
        // under their own names (the same strings: a reference count each, not a copy).
        let want = needs.headers.then_some(needs.header_names.as_deref());
        let used = [needs.host, needs.method, needs.path, needs.scheme];
        let (headers, pseudo) = self.headers_object(k, want, used);
        let text = |v: Option<Value>| v.unwrap_or_else(|| k.empty.clone());

        let mut http = Vec::with_capacity(8);
        if let Some(headers) = headers {
            http.push((k.headers.clone(), headers));
        }
        let [host, method, path_value, scheme] = pseudo;
        for (on, key, value) in [
            (needs.host, &k.host, host),
            (needs.method, &k.method, method),
            (needs.path, &k.path, path_value),
            (needs.scheme, &k.scheme, scheme),
        ] {
            if on {
                http.push((key.clone(), text(value)));
            }
        }
        if let (true, Some(p)) = (needs.protocol, &self.protocol) {
            http.push((k.protocol.clone(), lossy(p)));
        }
        if let (true, Some(id)) = (needs.id, &self.request_id) {
            http.push((k.id.clone(), lossy(id)));
        }
        if let Some(body) = &self.body {
            http.push((k.body.clone(), lossy(&body.bytes)));
        }
        let http = k.object(http);
        let request = k.object(vec![(k.http.clone(), http)]);
        let mut attributes = vec![(k.request.clone(), request)];
        if let (true, Some(a)) = (needs.source, &self.source_address) {
            attributes.push((k.source.clone(), peer(k, a)));
        }
        if let (true, Some(a)) = (needs.destination, &self.destination_address) {
            attributes.push((k.destination.clone(), peer(k, a)));
        }
        let attributes = k.object(attributes);

        let (path_only, query) = match path.iter().position(|&b| b == b'?') {
            Some(i) => (
                path.get(..i).unwrap_or_default(),
                path.get(i.saturating_add(1)..).unwrap_or_default(),
            ),
            None => (path, &b""[..]),
        };
        let (parsed_body, truncated) = self.parsed_body()?;

        let mut input = Vec::with_capacity(6);
        input.push((k.attributes.clone(), attributes));
        if needs.parsed_path {
            input.push((k.parsed_path.clone(), parsed_path(path_only)));
        }
        if needs.parsed_query {
            input.push((k.parsed_query.clone(), parsed_query(query)));
        }
        if needs.parsed_body {
            input.push((k.parsed_body.clone(), parsed_body));
        }
        if needs.truncated_body {
            input.push((k.truncated_body.clone(), Value::from(truncated)));
        }
        if needs.version {
            input.push((k.version.clone(), k.version_value.clone()));
        }
        Ok(k.object(input))
    }

    /// `headers` (when `want`) and the values of `:authority`, `:method`, `:path` and
    /// `:scheme` (the first of each, as ext_authz's `host`, `method`, `path` and `scheme`).
    /// A name sent several times has its values joined with `,`. Names come from a
    /// per-thread table (header names repeat from request to request): a name seen before
    /// is a reference-count increment, not an allocation.
    ///
    /// `want`: `None`, no `headers`; `Some(None)`, every header; `Some(Some(names))`, only
    /// the headers of those names (sorted). `used`: which of the four values are wanted (the
    /// others are `None`).
    fn headers_object(
        &self,
        k: &Keys,
        want: Option<Option<&[Box<[u8]>]>>,
        used: [bool; 4],
    ) -> (Option<Value>, [Option<Value>; 4]) {
        let mut pseudo: [Option<Value>; 4] = Default::default();
        let slot = |name: &[u8]| {
            let i = match name {
                b":authority" => 0,
                b":method" => 1,
                b":path" => 2,
                b":scheme" => 3,
                _ => return None,
            };
            used.get(i).copied().unwrap_or(false).then_some(i)
        };
        let Some(only) = want else {
            for (name, value) in &self.headers {
                if let Some(i) = slot(name) {
                    if let Some(p @ None) = pseudo.get_mut(i) {
                        *p = Some(lossy(value));
                    }
                }
            }
            return (None, pseudo);
        };
        // The headers the policy can read (all, or those of the names it looks up).
        let kept: Vec<(&[u8], &[u8])>;
        let headers: &[(&[u8], &[u8])] = match only {
            None => &self.headers,
            Some(names) => {
                kept = self
                    .headers
                    .iter()
                    .filter(|(n, _)| names.binary_search_by(|m| (**m).cmp(*n)).is_ok())
                    .copied()
                    .collect();
                &kept
            }
        };
        // Repeated names (rare) are joined first; the common case copies nothing.
        let repeated = headers.iter().enumerate().any(|(i, (n, _))| {
            headers
                .get(..i)
                .is_some_and(|before| before.iter().any(|(m, _)| m == n))
        });
        let mut entries: Vec<(Value, Value)> = Vec::with_capacity(headers.len());
        let mut stable = true;
        let mut names = k.names.borrow_mut();
        if repeated {
            let mut joined: Vec<(&[u8], Vec<u8>)> = Vec::with_capacity(headers.len());
            for (name, value) in headers {
                match joined.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => {
                        v.push(b',');
                        v.extend_from_slice(value);
                    }
                    None => joined.push((name, value.to_vec())),
                }
            }
            for (name, value) in joined {
                let (name, kept) = names.intern(name);
                stable &= kept;
                entries.push((name, lossy(&value)));
            }
        } else {
            for (name, value) in headers {
                let (name, kept) = names.intern(name);
                stable &= kept;
                entries.push((name, lossy(value)));
            }
        }
        drop(names);
        if !repeated {
            for ((name, _), (_, value)) in headers.iter().zip(&entries) {
                if let Some(i) = slot(name) {
                    if let Some(p @ None) = pseudo.get_mut(i) {
                        *p = Some(value.clone());
                    }
                }
            }
        }
        // When a pseudo-header is repeated, the document's `host` (...) is its first value
        // and `headers` has them joined: take the first value from the pairs. Those not
        // among the headers kept (`only`) are read from the pairs too.
        if repeated {
            pseudo = Default::default();
        }
        if pseudo.iter().zip(used).any(|(p, u)| u && p.is_none()) {
            for (name, value) in &self.headers {
                if let Some(i) = slot(name) {
                    if let Some(p @ None) = pseudo.get_mut(i) {
                        *p = Some(lossy(value));
                    }
                }
            }
        }
        (Some(k.object_of(entries, stable)), pseudo)
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

/// Objects of the same keys, built per request: a frozen template per key set (the keys
/// with `null` values), cloned and filled in place, instead of a `BTreeMap` built, then
/// copied into regorus's frozen storage, then freed, every time. Key sets are told apart
/// by the keys' identity (the per-thread [`Keys`] and [`Names`] strings): only objects whose
/// keys all come from there ("stable") get templates. At most [`MAX_SHAPES`] templates;
/// past that the oldest is replaced.
#[derive(Default)]
struct Shapes {
    templates: Vec<(Vec<usize>, Object)>,
    next: usize,
}

/// How many key sets [`Shapes`] keeps templates for.
const MAX_SHAPES: usize = 32;

/// A string's identity (its allocation), for [`Shapes`].
fn identity(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => Some(s.as_ptr() as usize),
        _ => None,
    }
}

impl Shapes {
    /// The object of `entries` (when two keys are equal strings, the last wins, as with
    /// inserts). `stable`: every key is a per-thread string (a template may be made).
    fn object(&mut self, entries: Vec<(Value, Value)>, stable: bool) -> Value {
        let entries = if stable {
            match self.fill(entries) {
                Ok(object) => return object,
                Err(entries) => entries,
            }
        } else {
            entries
        };
        Value::from(Object::from(
            entries.into_iter().collect::<BTreeMap<Value, Value>>(),
        ))
    }

    /// `entries` in a copy of their key set's template (made here when new); the entries
    /// back when no template fits (equal strings among the keys).
    fn fill(&mut self, mut entries: Vec<(Value, Value)>) -> Result<Value, Vec<(Value, Value)>> {
        let same = |ids: &[usize], entries: &[(Value, Value)]| {
            ids.len() == entries.len()
                && ids
                    .iter()
                    .zip(entries)
                    .all(|(id, (k, _))| identity(k) == Some(*id))
        };
        let at = match self
            .templates
            .iter()
            .position(|(ids, _)| same(ids, &entries))
        {
            Some(at) => at,
            None => {
                let Some(ids) = entries.iter().map(|(k, _)| identity(k)).collect() else {
                    return Err(entries);
                };
                let template = Value::from(Object::from(
                    entries
                        .iter()
                        .map(|(k, _)| (k.clone(), Value::Null))
                        .collect::<BTreeMap<Value, Value>>(),
                ));
                // Two names that became the same string (U+FFFD replacement) make fewer
                // slots than entries: no template for those.
                let Value::Object(template) = template else {
                    return Err(entries);
                };
                if template.len() != entries.len() {
                    return Err(entries);
                }
                let template = (ids, Object::clone(&template));
                if self.templates.len() < MAX_SHAPES {
                    self.templates.push(template);
                    self.templates.len() - 1
                } else {
                    let at = self.next % MAX_SHAPES;
                    self.next = (at + 1) % MAX_SHAPES;
                    match self.templates.get_mut(at) {
                        Some(slot) => *slot = template,
                        None => return Err(entries),
                    }
                    at
                }
            }
        };
        let Some((_, template)) = self.templates.get(at) else {
            return Err(entries);
        };
        let mut object = template.clone();
        for (k, v) in &mut entries {
            let v = std::mem::replace(v, Value::Null);
            match object.get_mut(k) {
                Some(slot) => *slot = v,
                // Not reached (the template was made from these very keys); an insert
                // keeps the object right if it were.
                None => {
                    object.insert(k.clone(), v);
                }
            }
        }
        Ok(Value::from(object))
    }
}

/// Bytes as a JSON string (invalid UTF-8 as U+FFFD).
fn lossy(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::from(s),
        Err(_) => Value::from(String::from_utf8_lossy(bytes).as_ref()),
    }
}

/// Header names seen on this thread, as document strings: header names repeat from request
/// to request, so each is allocated once. Bounded: at most [`MAX_NAMES`] names of at most
/// [`MAX_NAME_LEN`] bytes; past that a name is made per request, as any value is.
#[derive(Default)]
struct Names {
    table: HashMap<Box<[u8]>, Value, BuildHasherDefault<Fnv>>,
}

/// How many header names [`Names`] keeps.
const MAX_NAMES: usize = 256;
/// The longest header name [`Names`] keeps.
const MAX_NAME_LEN: usize = 64;

impl Names {
    /// The name as a string, and whether it is the table's (the same string every time).
    fn intern(&mut self, name: &[u8]) -> (Value, bool) {
        if let Some(v) = self.table.get(name) {
            return (v.clone(), true);
        }
        let v = lossy(name);
        if self.table.len() < MAX_NAMES && name.len() <= MAX_NAME_LEN {
            self.table.insert(name.into(), v.clone());
            return (v, true);
        }
        (v, false)
    }
}

/// FNV-1a: header names are short; SipHash's setup would cost more than the lookup.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The document's fixed keys, its `version` and the header-name table, made once per thread
/// (a key is a reference-count increment per request instead of an allocation).
struct Keys {
    headers: Value,
    host: Value,
    method: Value,
    path: Value,
    scheme: Value,
    protocol: Value,
    id: Value,
    body: Value,
    http: Value,
    request: Value,
    source: Value,
    destination: Value,
    attributes: Value,
    parsed_path: Value,
    parsed_query: Value,
    parsed_body: Value,
    truncated_body: Value,
    version: Value,
    address: Value,
    port_value: Value,
    socket_address: Value,
    version_value: Value,
    empty: Value,
    names: RefCell<Names>,
    shapes: RefCell<Shapes>,
}

impl Keys {
    /// An object of the document's own keys.
    fn object(&self, entries: Vec<(Value, Value)>) -> Value {
        self.object_of(entries, true)
    }

    /// An object (see [`Shapes::object`]).
    fn object_of(&self, entries: Vec<(Value, Value)>, stable: bool) -> Value {
        match self.shapes.try_borrow_mut() {
            Ok(mut shapes) => shapes.object(entries, stable),
            Err(_) => Value::from(Object::from(
                entries.into_iter().collect::<BTreeMap<Value, Value>>(),
            )),
        }
    }
}

thread_local! {
    static KEYS: Keys = {
        let version: Object = [
            (Value::from("encoding"), Value::from("protojson")),
            (Value::from("ext_authz"), Value::from("v3")),
        ]
        .into_iter()
        .collect();
        Keys {
            headers: Value::from("headers"),
            host: Value::from("host"),
            method: Value::from("method"),
            path: Value::from("path"),
            scheme: Value::from("scheme"),
            protocol: Value::from("protocol"),
            id: Value::from("id"),
            body: Value::from("body"),
            http: Value::from("http"),
            request: Value::from("request"),
            source: Value::from("source"),
            destination: Value::from("destination"),
            attributes: Value::from("attributes"),
            parsed_path: Value::from("parsed_path"),
            parsed_query: Value::from("parsed_query"),
            parsed_body: Value::from("parsed_body"),
            truncated_body: Value::from("truncated_body"),
            version: Value::from("version"),
            address: Value::from("address"),
            port_value: Value::from("portValue"),
            socket_address: Value::from("socketAddress"),
            version_value: Value::from(version),
            empty: Value::from(""),
            names: RefCell::new(Names::default()),
            shapes: RefCell::new(Shapes::default()),
        }
    };
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `{"address": {"socketAddress": {"address": "10.0.0.1", "portValue": 51234}}}`.
fn peer(k: &Keys, address: &[u8]) -> Value {
    let (host, port) = split_host_port(address);
    let mut socket = Object::new();
    socket.insert(k.address.clone(), lossy(host));
    if let Some(p) = port {
        socket.insert(k.port_value.clone(), Value::from(p));
    }
    let mut addr = Object::new();
    addr.insert(k.socket_address.clone(), Value::from(socket));
    let mut outer = Object::new();
    outer.insert(k.address.clone(), Value::from(addr));
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

    fn facts<'a>(headers: &[(&'a str, &'a [u8])]) -> RequestFacts<'a> {
        RequestFacts {
            headers: headers.iter().map(|(n, v)| (n.as_bytes(), *v)).collect(),
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
        let v = f.to_input_for(1 << 16, &Needs::of([rbac])).unwrap();
        assert_eq!(
            v["attributes"]["request"]["http"]["headers"]["x"],
            Value::from("1")
        );
        assert_eq!(v["attributes"]["source"], Value::Undefined);
        assert_eq!(v["parsed_query"], Value::Undefined);
        // Neither `path` nor `host` is spelled: left out.
        assert_eq!(v["attributes"]["request"]["http"]["path"], Value::Undefined);
        assert_eq!(v["attributes"]["request"]["http"]["host"], Value::Undefined);
        let n = Needs::of([
            rbac,
            "package y\nallow if input.attributes.request.http.path == \"/\"\n",
        ]);
        let v = f.to_input_for(1 << 16, &n).unwrap();
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

    /// The document as the filter built it before the per-thread names and templates: every
    /// object by inserts, every string allocated (the reference the fast paths must equal).
    fn reference(f: &RequestFacts, needs: &Needs) -> Value {
        let text =
            |v: Option<&[u8]>| Value::from(String::from_utf8_lossy(v.unwrap_or_default()).as_ref());
        let mut joined: Vec<(&[u8], Vec<u8>)> = Vec::new();
        for (name, value) in &f.headers {
            match joined.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => {
                    v.push(b',');
                    v.extend_from_slice(value);
                }
                None => joined.push((name, value.to_vec())),
            }
        }
        let mut headers = Object::new();
        for (n, v) in joined {
            let kept = needs
                .header_names
                .as_ref()
                .is_none_or(|names| names.iter().any(|m| **m == *n));
            if kept {
                headers.insert(text(Some(n)), text(Some(&v)));
            }
        }
        let mut http = Object::new();
        if needs.headers {
            http.insert(Value::from("headers"), Value::from(headers));
        }
        for (on, k, h) in [
            (needs.host, "host", ":authority"),
            (needs.method, "method", ":method"),
            (needs.path, "path", ":path"),
            (needs.scheme, "scheme", ":scheme"),
        ] {
            if on {
                http.insert(Value::from(k), text(f.header(h)));
            }
        }
        if let (true, Some(p)) = (needs.protocol, &f.protocol) {
            http.insert(Value::from("protocol"), text(Some(p)));
        }
        if let (true, Some(id)) = (needs.id, &f.request_id) {
            http.insert(Value::from("id"), text(Some(id)));
        }
        if let Some(body) = &f.body {
            http.insert(Value::from("body"), text(Some(&body.bytes)));
        }
        let mut request = Object::new();
        request.insert(Value::from("http"), Value::from(http));
        let mut attributes = Object::new();
        attributes.insert(Value::from("request"), Value::from(request));
        let k = KEYS.with(|k| {
            if let (true, Some(a)) = (needs.source, &f.source_address) {
                attributes.insert(Value::from("source"), peer(k, a));
            }
            if let (true, Some(a)) = (needs.destination, &f.destination_address) {
                attributes.insert(Value::from("destination"), peer(k, a));
            }
            k.version_value.clone()
        });
        let path = f.header(":path").unwrap_or_default();
        let (path_only, query) = match path.iter().position(|&b| b == b'?') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (path, &b""[..]),
        };
        let (parsed_body, truncated) = f.parsed_body().unwrap();
        let mut input = Object::new();
        input.insert(Value::from("attributes"), Value::from(attributes));
        if needs.parsed_path {
            input.insert(Value::from("parsed_path"), parsed_path(path_only));
        }
        if needs.parsed_query {
            input.insert(Value::from("parsed_query"), parsed_query(query));
        }
        if needs.parsed_body {
            input.insert(Value::from("parsed_body"), parsed_body);
        }
        if needs.truncated_body {
            input.insert(Value::from("truncated_body"), Value::from(truncated));
        }
        if needs.version {
            input.insert(Value::from("version"), k);
        }
        Value::from(input)
    }

    #[test]
    fn shared_names_and_templates_build_the_same_document() {
        let long = format!("x-{}", "n".repeat(MAX_NAME_LEN));
        let cases: Vec<Vec<(&[u8], &[u8])>> = vec![
            vec![
                (b":method", b"GET"),
                (b":path", b"/a?b=1"),
                (b"x-role", b"r"),
            ],
            // The same key set again (the template path), other values.
            vec![
                (b":method", b"PUT"),
                (b":path", b"/c"),
                (b"x-role", b"s\xff"),
            ],
            // Repeated names, a repeated pseudo-header (host is the first value).
            vec![
                (b":authority", b"a.example"),
                (b"x-m", b"1"),
                (b":authority", b"b.example"),
                (b"x-m", b"2"),
            ],
            // Two names that become the same string (U+FFFD): the last wins, as inserts.
            vec![
                (b":path", b"/"),
                (b"x-\xff", b"first"),
                (b"x-\xfe", b"second"),
            ],
            // A name too long for the table (a key set with no template).
            vec![(b":path", b"/"), (long.as_bytes(), b"v")],
            vec![],
        ];
        let dynamic =
            Needs::of(["package x\nallow if input.attributes.request.http.headers[data.h]\n"]);
        // Only some names (sorted; the pseudo-headers' own fields still come from them).
        let only = Needs {
            header_names: Some(
                [&b":path"[..], b"x-m", b"x-role", b"x-\xfe"]
                    .map(Box::from)
                    .into(),
            ),
            ..Needs::ALL
        };
        let none = Needs {
            header_names: Some(Arc::from([])),
            ..Needs::ALL
        };
        for needs in [Needs::ALL, dynamic, only, none] {
            for _ in 0..2 {
                for headers in &cases {
                    let f = RequestFacts {
                        headers: headers.clone(),
                        ..facts(&[])
                    };
                    let built = f.to_input_for(1 << 16, &needs).unwrap();
                    assert_eq!(built, reference(&f, &needs), "{headers:?}");
                }
            }
        }
        // A name given through bytes that are not UTF-8 still lands under its U+FFFD form,
        // and the document of the collision keeps the later value.
        let f = RequestFacts {
            headers: vec![(&b"x-\xff"[..], &b"first"[..]), (b"x-\xfe", b"second")],
            ..facts(&[])
        };
        let v = f.to_input(1 << 16).unwrap();
        assert_eq!(
            v["attributes"]["request"]["http"]["headers"]["x-\u{fffd}"],
            Value::from("second")
        );
    }

    #[test]
    fn more_key_sets_and_names_than_the_tables_keep_still_build_right() {
        // Past MAX_SHAPES key sets (templates replaced in turn) and MAX_NAMES names (names
        // made per request), every document is still the reference one.
        let names: Vec<String> = (0..MAX_NAMES + 40).map(|i| format!("x-h{i}")).collect();
        for round in 0..3 {
            for (i, name) in names.iter().enumerate() {
                let other = &names[(i * 13 + round) % names.len()];
                let headers: Vec<(&[u8], &[u8])> = vec![
                    (b":path", b"/p"),
                    (name.as_bytes(), b"1"),
                    (other.as_bytes(), b"2"),
                ];
                let f = RequestFacts {
                    headers,
                    ..facts(&[])
                };
                let built = f.to_input(1 << 16).unwrap();
                assert_eq!(built, reference(&f, &Needs::ALL), "{name} {other}");
            }
        }
        let shapes = KEYS.with(|k| k.shapes.borrow().templates.len());
        assert_eq!(shapes, MAX_SHAPES);
        let kept = KEYS.with(|k| k.names.borrow().table.len());
        assert_eq!(kept, MAX_NAMES);
    }

    #[test]
    fn a_header_read_through_a_data_key_is_in_the_document() {
        // The key is known only at evaluation (`data.h`): `headers` is built whole.
        let needs = Needs::of([
            "package x\nallow if input.attributes.request.http.headers[data.h] == \"1\"\n",
        ]);
        assert!(needs.headers);
        let f = facts(&[(":path", b"/"), ("x-dynamic", b"1")]);
        let v = f.to_input_for(1 << 16, &needs).unwrap();
        assert_eq!(
            v["attributes"]["request"]["http"]["headers"]["x-dynamic"],
            Value::from("1")
        );
    }
}

//! Request attributes as typed getters. Path, method, host and scheme come from the
//! request's pseudo-headers (cheap, available from the request-headers phase on); the
//! client address and route name come from host properties.

use crate::headers::Headers;
use crate::host;

/// The request path including the query (`:path`), as bytes.
pub fn path() -> Option<Vec<u8>> {
    Headers::REQUEST.get(":path")
}

/// The request method (`:method`).
pub fn method() -> Option<Vec<u8>> {
    Headers::REQUEST.get(":method")
}

/// The request host (`:authority`; HTTP/1 `Host`).
pub fn host() -> Option<Vec<u8>> {
    Headers::REQUEST.get(":authority")
}

/// The request scheme (`:scheme`).
pub fn scheme() -> Option<Vec<u8>> {
    Headers::REQUEST.get(":scheme")
}

/// The downstream client address with port (`source.address`, e.g. `10.0.0.1:51234`).
pub fn source_address() -> Option<Vec<u8>> {
    property(&["source", "address"])
}

/// The name of the route the request matched (`xds.route_name`).
pub fn route_name() -> Option<Vec<u8>> {
    property(&["xds", "route_name"])
}

/// Any host property by path, e.g. `&["connection", "mtls"]`. Values are the host's
/// encoding (strings as bytes, integers as 8-byte little-endian).
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    host::get_property(path).unwrap_or_else(|status| {
        log::debug!("property {}: host answered {status:?}", Dotted(path));
        None
    })
}

/// `path.join(".")` as a `Display` (the generic `join` was ~1 KB of every filter's `.wasm`).
struct Dotted<'a>(&'a [&'a str]);

impl std::fmt::Display for Dotted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

/// Strips the port from `host:port` / `[v6]:port`, leaving the address.
pub fn without_port(address: &[u8]) -> &[u8] {
    if let Some(rest) = address.strip_prefix(b"[") {
        // [v6]:port → v6
        return match rest.iter().position(|&b| b == b']') {
            Some(end) => rest.get(..end).unwrap_or(rest),
            None => address,
        };
    }
    match address.iter().rposition(|&b| b == b':') {
        // Exactly one colon: v4 or name with port. More than one: a bare v6 address.
        Some(i) if address.iter().filter(|&&b| b == b':').count() == 1 => {
            address.get(..i).unwrap_or(address)
        }
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::without_port;

    #[test]
    fn header_names_inline_or_not() {
        use super::Name;
        for name in [
            "",
            "x",
            "origin",
            &"a".repeat(30),
            &"b".repeat(31),
            &"c".repeat(300),
        ] {
            let n = Name::new(name);
            assert!(n.is(name), "{name}");
            assert!(!n.is(&format!("{name}x")));
            assert_eq!(matches!(n, Name::Inline { .. }), name.len() <= 30);
        }
        assert!(!Name::new("ab").is("a"));
    }

    #[test]
    fn strips_ports() {
        assert_eq!(without_port(b"10.0.0.1:5000"), b"10.0.0.1");
        assert_eq!(without_port(b"[::1]:80"), b"::1");
        assert_eq!(without_port(b"::1"), b"::1");
        assert_eq!(without_port(b"example.com"), b"example.com");
        assert_eq!(without_port(b"[broken"), b"[broken");
    }
}

/// What decision logic reads from a request. [`HostRequest`] fetches from the host lazily
/// and remembers each value for the rest of the request; [`RequestData`] is plain data for
/// tests and fuzzing. Header names are lowercase (`:path`, `x-user`).
pub trait Request {
    /// First value of header `name` (lowercase; pseudo-headers `:path`, `:method`,
    /// `:authority` included).
    fn header(&mut self, name: &str) -> Option<&[u8]>;
    /// Every value of header `name`, in order (empty: absent).
    fn header_values(&mut self, name: &str) -> Vec<&[u8]>;
    /// Calls `f` with every header's (name, value), in the request's order (a name sent
    /// twice: twice), while `f` answers `true`: one pass over the whole map, for a filter
    /// that looks at several names (no list of values is built per name).
    fn each_header(&mut self, f: impl FnMut(&[u8], &[u8]) -> bool)
    where
        Self: Sized;
    /// The client address with port.
    fn source_address(&mut self) -> Option<&[u8]>;
    /// The matched route's name (`xds.route_name`).
    fn route_name(&mut self) -> Option<&[u8]>;
    /// The matched virtual host's name (`xds.virtual_host_name`).
    fn virtual_host_name(&mut self) -> Option<&[u8]>;
    /// The upstream cluster the route selected (`xds.cluster_name`).
    fn cluster_name(&mut self) -> Option<&[u8]>;
}

/// The pseudo-headers matchers read most (`Rules` on a path prefix reads `:path` on every
/// request): [`HostRequest`] keeps them by index, without storing their names.
const PSEUDO_HEADERS: [&str; 4] = [":path", ":method", ":authority", ":scheme"];

/// Where `name` is in [`PSEUDO_HEADERS`].
fn pseudo_index(name: &str) -> Option<usize> {
    match name.as_bytes() {
        b":path" => Some(0),
        b":method" => Some(1),
        b":authority" => Some(2),
        b":scheme" => Some(3),
        _ => None,
    }
}

/// A header name a [`HostRequest`] remembers: a short one (most are) kept inline, so reading
/// a header allocates only its value.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(String),
}

/// The longest name kept inline.
const INLINE_NAME: usize = 30;

impl Name {
    fn new(name: &str) -> Self {
        let mut bytes = [0u8; INLINE_NAME];
        match (bytes.get_mut(..name.len()), u8::try_from(name.len())) {
            (Some(to), Ok(len)) => {
                to.copy_from_slice(name.as_bytes());
                Name::Inline { len, bytes }
            }
            _ => Name::Heap(name.to_string()),
        }
    }

    fn is(&self, name: &str) -> bool {
        match self {
            Name::Inline { len, bytes } => bytes.get(..usize::from(*len)) == Some(name.as_bytes()),
            Name::Heap(n) => n == name,
        }
    }
}

/// What a [`HostRequest`] value was read as.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    /// One of [`PSEUDO_HEADERS`], by index.
    Pseudo(usize),
    Header(Name),
    Source,
    Route,
    VirtualHost,
    Cluster,
}

impl Key {
    fn is_header(&self, name: &str) -> bool {
        match self {
            Key::Pseudo(i) => PSEUDO_HEADERS.get(*i) == Some(&name),
            Key::Header(n) => n.is(name),
            _ => false,
        }
    }
}

/// The live request, read through the host, each value fetched at most once.
///
/// A phase usually reads one or two values (a rule on the path, a token header) or none:
/// the first two read have their own places, the others go in a list, so such a phase
/// allocates nothing but the values and drops little more than them.
#[derive(Debug, Default)]
pub struct HostRequest {
    /// The first header or property read (`None` inside: absent on the request).
    first: Option<(Key, Option<Vec<u8>>)>,
    /// The second one.
    second: Option<(Key, Option<Vec<u8>>)>,
    /// The ones read after those, in order.
    more: Vec<(Key, Option<Vec<u8>>)>,
    /// The whole header map as the host encodes it (well-formed, or empty) and indexed,
    /// fetched on the first `header_values` call; values are read from it in place.
    all: Option<host::PairIndex>,
}

impl HostRequest {
    /// A view of the current request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets what was read of header `name` (after the filter edited it).
    pub fn forget(&mut self, name: &str) {
        if self.first.as_ref().is_some_and(|(k, _)| k.is_header(name)) {
            self.first = None;
        }
        if self.second.as_ref().is_some_and(|(k, _)| k.is_header(name)) {
            self.second = None;
        }
        self.more.retain(|(k, _)| !k.is_header(name));
        self.all = None;
    }

    /// The value read as the key `is` accepts; else fetched with `fetch`, kept as `key()`.
    fn cached(
        &mut self,
        is: impl Fn(&Key) -> bool,
        key: impl FnOnce() -> Key,
        fetch: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<&[u8]> {
        type Slot = Option<(Key, Option<Vec<u8>>)>;
        fn value(slot: &Slot) -> Option<&[u8]> {
            slot.as_ref().and_then(|(_, v)| v.as_deref())
        }
        let holds = |slot: &Slot| slot.as_ref().is_some_and(|(k, _)| is(k));
        if holds(&self.first) {
            return value(&self.first);
        }
        if holds(&self.second) {
            return value(&self.second);
        }
        let at = match self.more.iter().position(|(k, _)| is(k)) {
            Some(i) => i,
            None if self.first.is_none() => {
                self.first = Some((key(), fetch()));
                return value(&self.first);
            }
            None if self.second.is_none() => {
                self.second = Some((key(), fetch()));
                return value(&self.second);
            }
            None => {
                self.more.push((key(), fetch()));
                self.more.len() - 1
            }
        };
        self.more.get(at).and_then(|(_, v)| v.as_deref())
    }

    /// The whole header map, fetched (and checked) at the first call.
    #[inline]
    fn pairs(&mut self) -> &host::PairIndex {
        self.all.get_or_insert_with(|| {
            host::get_header_pair_index(host::MapType::HttpRequestHeaders).unwrap_or_else(
                |status| {
                    log::debug!("get header map: host answered {status:?}");
                    host::PairIndex::default()
                },
            )
        })
    }

    /// A host property, cached under `key` (a unit variant): one function for every
    /// property getter, where each was its own copy of [`cached`](Self::cached).
    #[inline(never)]
    fn cached_property(&mut self, key: Key, path: &[&str]) -> Option<&[u8]> {
        let probe = std::mem::discriminant(&key);
        self.cached(
            |k| std::mem::discriminant(k) == probe,
            move || key,
            || property(path),
        )
    }
}

impl Request for HostRequest {
    #[inline]
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        let fetch = || Headers::REQUEST.get(name);
        match pseudo_index(name) {
            Some(i) => self.cached(
                |k| matches!(k, Key::Pseudo(j) if *j == i),
                || Key::Pseudo(i),
                fetch,
            ),
            None => self.cached(
                |k| matches!(k, Key::Header(n) if n.is(name)),
                || Key::Header(Name::new(name)),
                fetch,
            ),
        }
    }
    fn header_values(&mut self, name: &str) -> Vec<&[u8]> {
        self.pairs().values(name)
    }
    #[inline]
    fn each_header(&mut self, f: impl FnMut(&[u8], &[u8]) -> bool) {
        self.pairs().each(f);
    }
    fn source_address(&mut self) -> Option<&[u8]> {
        self.cached_property(Key::Source, &["source", "address"])
    }
    fn route_name(&mut self) -> Option<&[u8]> {
        self.cached_property(Key::Route, &["xds", "route_name"])
    }
    fn virtual_host_name(&mut self) -> Option<&[u8]> {
        self.cached_property(Key::VirtualHost, &["xds", "virtual_host_name"])
    }
    fn cluster_name(&mut self) -> Option<&[u8]> {
        self.cached_property(Key::Cluster, &["xds", "cluster_name"])
    }
}

/// A request as plain data.
#[derive(Debug, Clone, Default)]
pub struct RequestData {
    /// Headers, names lowercase, in order; a name may repeat.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Client address with port.
    pub source_address: Option<Vec<u8>>,
    /// Route name (`xds.route_name`).
    pub route_name: Option<Vec<u8>>,
    /// Virtual host name (`xds.virtual_host_name`).
    pub virtual_host_name: Option<Vec<u8>>,
    /// Upstream cluster name (`xds.cluster_name`).
    pub cluster_name: Option<Vec<u8>>,
}

impl RequestData {
    /// A request with `method` and `path` on host `authority`.
    pub fn new(method: &str, path: &str, authority: &str) -> Self {
        Self::default()
            .with(":method", method)
            .with(":path", path)
            .with(":authority", authority)
    }
    /// Adds a header value (name lowercased); adding a name twice gives it two values.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }
    /// Sets the route name (`xds.route_name`).
    #[must_use]
    pub fn with_route_name(mut self, name: &str) -> Self {
        self.route_name = Some(name.as_bytes().to_vec());
        self
    }
    /// Sets the virtual host name (`xds.virtual_host_name`).
    #[must_use]
    pub fn with_virtual_host_name(mut self, name: &str) -> Self {
        self.virtual_host_name = Some(name.as_bytes().to_vec());
        self
    }
    /// Sets the cluster name (`xds.cluster_name`).
    #[must_use]
    pub fn with_cluster_name(mut self, name: &str) -> Self {
        self.cluster_name = Some(name.as_bytes().to_vec());
        self
    }
}

impl Request for RequestData {
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
    fn header_values(&mut self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn each_header(&mut self, mut f: impl FnMut(&[u8], &[u8]) -> bool) {
        for (n, v) in &self.headers {
            if !f(n.as_bytes(), v) {
                return;
            }
        }
    }
    fn source_address(&mut self) -> Option<&[u8]> {
        self.source_address.as_deref()
    }
    fn route_name(&mut self) -> Option<&[u8]> {
        self.route_name.as_deref()
    }
    fn virtual_host_name(&mut self) -> Option<&[u8]> {
        self.virtual_host_name.as_deref()
    }
    fn cluster_name(&mut self) -> Option<&[u8]> {
        self.cluster_name.as_deref()
    }
}

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
        log::debug!("property {}: host answered {status:?}", path.join("."));
        None
    })
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
/// request): [`HostRequest`] caches them in fixed slots, without storing their names.
const PSEUDO_HEADERS: [&str; 4] = [":path", ":method", ":authority", ":scheme"];

/// Where `name` is in [`PSEUDO_HEADERS`].
fn pseudo_index(name: &str) -> Option<usize> {
    if !name.starts_with(':') {
        return None;
    }
    PSEUDO_HEADERS.iter().position(|p| *p == name)
}

/// The live request, read through the host, each value fetched at most once.
#[derive(Debug, Default)]
pub struct HostRequest {
    /// Values of [`PSEUDO_HEADERS`], in that order (`None`: not read yet).
    pseudo: [Option<Option<Vec<u8>>>; 4],
    /// Other headers read, by name.
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// The whole header map, fetched on the first `header_values` call.
    all: Option<Vec<crate::host::HeaderPair>>,
    source: Option<Option<Vec<u8>>>,
    route: Option<Option<Vec<u8>>>,
    virtual_host: Option<Option<Vec<u8>>>,
    cluster: Option<Option<Vec<u8>>>,
}

impl HostRequest {
    /// A view of the current request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets what was read of header `name` (after the filter edited it).
    pub fn forget(&mut self, name: &str) {
        if let Some(slot) = pseudo_index(name).and_then(|i| self.pseudo.get_mut(i)) {
            *slot = None;
        }
        self.headers.retain(|(n, _)| n != name);
        self.all = None;
    }

}

impl Request for HostRequest {
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        if let Some(slot) = pseudo_index(name).and_then(|i| self.pseudo.get_mut(i)) {
            return slot
                .get_or_insert_with(|| Headers::REQUEST.get(name))
                .as_deref();
        }
        let at = match self.headers.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.headers
                    .push((name.to_string(), Headers::REQUEST.get(name)));
                self.headers.len() - 1
            }
        };
        self.headers.get(at).and_then(|(_, v)| v.as_deref())
    }
    fn header_values(&mut self, name: &str) -> Vec<&[u8]> {
        self.all
            .get_or_insert_with(|| Headers::REQUEST.all())
            .iter()
            .filter(|(n, _)| n.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn source_address(&mut self) -> Option<&[u8]> {
        self.source.get_or_insert_with(source_address).as_deref()
    }
    fn route_name(&mut self) -> Option<&[u8]> {
        self.route.get_or_insert_with(route_name).as_deref()
    }
    fn virtual_host_name(&mut self) -> Option<&[u8]> {
        self.virtual_host
            .get_or_insert_with(|| property(&["xds", "virtual_host_name"]))
            .as_deref()
    }
    fn cluster_name(&mut self) -> Option<&[u8]> {
        self.cluster
            .get_or_insert_with(|| property(&["xds", "cluster_name"]))
            .as_deref()
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

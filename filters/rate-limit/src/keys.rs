//! A descriptor's key for one request, as plain Rust over [`Request`] (no host calls).

use crate::config::{Attribute, Descriptor};
use sdk_ext::request::{without_port, Request};

/// The path without its query (`/a/b?x=1` → `/a/b`).
pub fn path_only(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?' || b == b'#') {
        Some(i) => path.get(..i).unwrap_or(path),
        None => path,
    }
}

/// The first `segments` segments of a path (`/api/v1/x`, 2 → `/api/v1`); a shorter path
/// is kept whole.
pub fn path_prefix(path: &[u8], segments: u32) -> &[u8] {
    let path = path_only(path);
    let mut seen = 0u32;
    for (i, &b) in path.iter().enumerate().skip(1) {
        if b == b'/' {
            seen += 1;
            if seen == segments {
                return path.get(..i).unwrap_or(path);
            }
        }
    }
    path
}

/// Writes the descriptor's key for `req` into `out` (each part length-prefixed, so parts
/// cannot run into each other). `false`: the descriptor does not apply (an attribute is
/// missing, or differs from the entry's `value`).
pub fn descriptor_key(d: &Descriptor, req: &mut impl Request, out: &mut Vec<u8>) -> bool {
    out.clear();
    for e in &d.entries {
        let value: Option<&[u8]> = match &e.attribute {
            Attribute::ClientAddress => req.source_address().map(without_port),
            Attribute::Header(h) => req.header(h),
            Attribute::Path => req.header(":path").map(path_only),
            Attribute::PathPrefix(n) => req.header(":path").map(|p| path_prefix(p, *n)),
            Attribute::Method => req.header(":method"),
            Attribute::RouteName => req.route_name(),
        };
        let Some(value) = value else {
            return false;
        };
        if e.value.as_deref().is_some_and(|want| want != value) {
            return false;
        }
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(value);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use sdk_ext::request::RequestData;

    #[test]
    fn paths_and_prefixes() {
        assert_eq!(path_only(b"/a/b?x=1"), b"/a/b");
        assert_eq!(path_prefix(b"/api/v1/users?q", 2), b"/api/v1");
        assert_eq!(path_prefix(b"/api/v1/users", 1), b"/api");
        assert_eq!(path_prefix(b"/api", 3), b"/api");
        assert_eq!(path_prefix(b"/", 1), b"/");
    }

    #[test]
    fn keys_combine_attributes_and_skip_when_absent() {
        let c = Config::parse(
            br#"{"descriptors":[{"entries":[
                {"attribute":"route_name"},{"attribute":"header","header":"x-api-key"},
                {"attribute":"client_address"},{"attribute":"method","value":"POST"},
                {"attribute":"path_prefix","segments":1}],
              "token_bucket":{"max_tokens":1,"fill_interval":"1s"}}]}"#,
        )
        .unwrap();
        let d = &c.limits.descriptors[0];
        let mut key = Vec::new();
        let mut req = RequestData::new("POST", "/api/x", "h")
            .with("x-api-key", "k1")
            .with_route_name("r1");
        req.source_address = Some(b"10.0.0.1:5555".to_vec());
        assert!(descriptor_key(d, &mut req, &mut key));
        let k1 = key.clone();
        assert!(k1.windows(8).any(|w| w == b"10.0.0.1"), "port stripped");
        let mut other = RequestData::new("POST", "/api/y", "h")
            .with("x-api-key", "k2")
            .with_route_name("r1");
        other.source_address = Some(b"10.0.0.1:1".to_vec());
        assert!(descriptor_key(d, &mut other, &mut key));
        assert_ne!(key, k1);
        let mut get = RequestData::new("GET", "/api/x", "h")
            .with("x-api-key", "k1")
            .with_route_name("r1");
        assert!(!descriptor_key(d, &mut get, &mut key), "value POST only");
        let mut no_key = RequestData::new("POST", "/api/x", "h").with_route_name("r1");
        assert!(!descriptor_key(d, &mut no_key, &mut key), "header absent");
    }
}

//! Finding a provider's token in a request: headers (after a prefix), query parameters,
//! cookies, tried in that order. Read through the request view; the token is borrowed from
//! the value it read, not copied.

use crate::config::Location;
use sdk_ext::request::Request;

/// A token found in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a, 'r> {
    /// The token bytes (not yet checked for size or UTF-8), borrowed from the request view.
    pub token: &'r [u8],
    /// The header it came from, when it came from a header (stripped unless `forward`);
    /// borrowed from the configured location, so finding a token allocates no name.
    pub header: Option<&'a str>,
}

/// Finds the first token in `locations`, reading `req` (a header, `:path` for query
/// parameters, `cookie`) only for the locations actually tried.
pub fn find<'a, 'r, R: Request + ?Sized>(
    locations: &'a [Location],
    req: &'r mut R,
) -> Option<Found<'a, 'r>> {
    // The location that has a token, then its token again: a value borrowed from `req`
    // cannot leave the search loop, and the view answers a second read from what it read.
    let location = locations.iter().find(|l| token_in(l, req).is_some())?;
    let token = token_in(location, req)?;
    let header = match location {
        Location::Header { name, .. } => Some(name.as_str()),
        Location::Param(_) | Location::Cookie(_) => None,
    };
    Some(Found { token, header })
}

/// The token at `location`, if the request has one there.
fn token_in<'r, R: Request + ?Sized>(location: &Location, req: &'r mut R) -> Option<&'r [u8]> {
    match location {
        Location::Header { name, prefix } => after_prefix(req.header(name)?, prefix.as_bytes()),
        Location::Param(name) => query_param(req.header(":path")?, name.as_bytes()),
        Location::Cookie(name) => cookie(req.header("cookie")?, name.as_bytes()),
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if !first.is_ascii_whitespace() {
            break;
        }
        v = rest;
    }
    while let [rest @ .., last] = v {
        if !last.is_ascii_whitespace() {
            break;
        }
        v = rest;
    }
    v
}

/// The value after `prefix` (ASCII case-insensitive, as auth schemes are), trimmed;
/// `None` when the prefix is absent or nothing follows it.
fn after_prefix<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let value = trim(value);
    let head = value.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = trim(value.get(prefix.len()..)?);
    (!rest.is_empty()).then_some(rest)
}

fn query_param<'a>(path: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let start = path.iter().position(|&b| b == b'?')?;
    let query = path.get(start + 1..)?;
    let query = match query.iter().position(|&b| b == b'#') {
        Some(end) => query.get(..end)?,
        None => query,
    };
    query.split(|&b| b == b'&').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (k, v) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        (k == name && !v.is_empty()).then_some(v)
    })
}

fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (k, v) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        (k == name && !v.is_empty()).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations() -> Vec<Location> {
        vec![
            Location::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            },
            Location::Header {
                name: "x-jwt".into(),
                prefix: String::new(),
            },
            Location::Param("access_token".into()),
            Location::Cookie("session".into()),
        ]
    }

    /// `(token, header)` found in a request with `headers` on `path`.
    fn run(headers: &[(&str, &[u8])], path: &str) -> Option<(Vec<u8>, Option<&'static str>)> {
        let mut req = sdk_ext::request::RequestData::default().with(":path", path);
        for (k, v) in headers {
            req = req.with(k, v);
        }
        static LOCATIONS: std::sync::LazyLock<Vec<Location>> = std::sync::LazyLock::new(locations);
        find(&LOCATIONS, &mut req).map(|f| (f.token.to_vec(), f.header))
    }

    #[test]
    fn header_prefix_param_cookie_in_order() {
        let f = run(&[("authorization", b"Bearer abc.def.ghi")], "/").unwrap();
        assert_eq!(f.0, b"abc.def.ghi");
        assert_eq!(f.1, Some("authorization"));
        assert_eq!(
            run(&[("authorization", b"bearer   t1  ")], "/").unwrap().0,
            b"t1"
        );
        // Basic credentials are not a bearer token: try the next location.
        let f = run(
            &[("authorization", b"Basic dXNlcg=="), ("x-jwt", b"t2")],
            "/",
        )
        .unwrap();
        assert_eq!((f.0.as_slice(), f.1), (&b"t2"[..], Some("x-jwt")));
        let f = run(&[], "/p?a=1&access_token=t3&b=2").unwrap();
        assert_eq!((f.0.as_slice(), f.1), (&b"t3"[..], None));
        let f = run(&[("cookie", b"a=b; session=\"t4\"; c=d")], "/").unwrap();
        assert_eq!(f.0, b"t4");
        assert!(run(&[("authorization", b"Bearer ")], "/p?access_token=").is_none());
        assert!(run(
            &[("cookie", b"sessionx=1; xsession=2")],
            "/?access_tokenx=1"
        )
        .is_none());
        // Non-UTF-8 bytes are carried as bytes (the caller refuses them).
        assert_eq!(
            run(&[("authorization", b"Bearer \xff\xfe")], "/")
                .unwrap()
                .0,
            b"\xff\xfe"
        );
    }
}

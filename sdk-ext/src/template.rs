//! Header values that reference request attributes, in Envoy's format-string syntax:
//!
//! | operator | value |
//! |---|---|
//! | `%REQ(name)%` | first value of request header `name` (`:path`, `:method`, `:authority` too) |
//! | `%DOWNSTREAM_REMOTE_ADDRESS%` | client address with port |
//! | `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%` | client address |
//! | `%ROUTE_NAME%` | matched route's name |
//! | `%%` | a literal `%` |
//!
//! Parsed at config time; a missing attribute renders as nothing. A value without
//! operators is stored once and costs nothing per request.

use crate::config::ConfigError;
use crate::request::{without_port, Request};
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Vec<u8>),
    Header(String),
    RemoteAddress,
    RemoteAddressWithoutPort,
    RouteName,
}

/// A parsed value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `s`; `field` names it in errors. Control characters (CR, LF, NUL) are refused:
    /// they would let a config inject headers.
    pub fn parse(s: &str, field: &str) -> Result<Self, ConfigError> {
        if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ConfigError::new(field, "contains CR, LF or NUL"));
        }
        let mut parts = Vec::new();
        let mut text = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find('%') {
            text.extend_from_slice(rest.get(..start).unwrap_or_default().as_bytes());
            let after = rest.get(start + 1..).unwrap_or_default();
            if let Some(tail) = after.strip_prefix('%') {
                text.push(b'%');
                rest = tail;
                continue;
            }
            let Some(end) = after.find('%') else {
                return Err(ConfigError::new(
                    field,
                    "unterminated '%' (write %% for a literal %)",
                ));
            };
            let op = after.get(..end).unwrap_or_default();
            let part = if let Some(name) = op.strip_prefix("REQ(").and_then(|r| r.strip_suffix(')'))
            {
                if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
                    return Err(ConfigError::new(
                        field,
                        format!("%REQ({name})% needs a header name"),
                    ));
                }
                Part::Header(name.to_ascii_lowercase())
            } else {
                match op {
                    "DOWNSTREAM_REMOTE_ADDRESS" => Part::RemoteAddress,
                    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Part::RemoteAddressWithoutPort,
                    "ROUTE_NAME" => Part::RouteName,
                    other => {
                        return Err(ConfigError::new(
                            field,
                            format!("unknown operator %{other}% (known: REQ(name), DOWNSTREAM_REMOTE_ADDRESS, DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, ROUTE_NAME)"),
                        ))
                    }
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
            rest = after.get(end + 1..).unwrap_or_default();
        }
        text.extend_from_slice(rest.as_bytes());
        if !text.is_empty() || parts.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self { parts })
    }

    /// The value when it has no operators (no per-request work).
    pub fn as_static(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Whether rendering reads request headers.
    pub fn reads_headers(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Header(_)))
    }

    /// Renders the value for a request.
    pub fn render<'a>(&'a self, req: &mut impl Request) -> Cow<'a, [u8]> {
        if let Some(s) = self.as_static() {
            return Cow::Borrowed(s);
        }
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t),
                Part::Header(name) => out.extend_from_slice(req.header(name).unwrap_or_default()),
                Part::RemoteAddress => {
                    out.extend_from_slice(req.source_address().unwrap_or_default())
                }
                Part::RemoteAddressWithoutPort => out
                    .extend_from_slice(req.source_address().map(without_port).unwrap_or_default()),
                Part::RouteName => out.extend_from_slice(req.route_name().unwrap_or_default()),
            }
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestData;

    #[test]
    fn renders_operators() {
        let mut r = RequestData::new("GET", "/p?q", "h").with("x-id", "42");
        r.source_address = Some(b"10.1.2.3:5555".to_vec());
        let t = Template::parse(
            "id=%REQ(X-Id)% path=%REQ(:path)% ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %%",
            "v",
        )
        .unwrap();
        assert_eq!(&*t.render(&mut r), b"id=42 path=/p?q ip=10.1.2.3 %");
        assert!(t.as_static().is_none());
        let t = Template::parse(
            "%DOWNSTREAM_REMOTE_ADDRESS%|%ROUTE_NAME%|%REQ(x-missing)%",
            "v",
        )
        .unwrap();
        assert_eq!(&*t.render(&mut r), b"10.1.2.3:5555||");
    }

    #[test]
    fn static_values_and_escapes() {
        assert_eq!(
            Template::parse("plain", "v").unwrap().as_static(),
            Some(&b"plain"[..])
        );
        assert_eq!(
            Template::parse("100%%", "v").unwrap().as_static(),
            Some(&b"100%"[..])
        );
        assert_eq!(
            Template::parse("", "v").unwrap().as_static(),
            Some(&b""[..])
        );
    }

    #[test]
    fn refuses_bad_templates() {
        for bad in ["%NOPE%", "50%", "%REQ()%", "a\r\nb", "%REQ(a b)%"] {
            let e = Template::parse(bad, "rules[0].value").unwrap_err();
            assert_eq!(e.field, "rules[0].value", "{bad}");
        }
    }
}

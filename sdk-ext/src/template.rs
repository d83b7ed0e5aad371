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
//!
//! Bounds, so that no config and no request can make a filter build a huge value:
//!
//! - a template holds at most [`MAX_OPERATORS`] operators, and its literal text is a valid
//!   header value (no CR, LF, NUL or other control byte: see
//!   [`is_valid_value`](crate::headers::is_valid_value)) of at most [`MAX_VALUE_BYTES`];
//!   anything else is refused at config time, naming the field;
//! - a rendered value is at most [`MAX_VALUE_BYTES`] (or a smaller limit given to
//!   [`Template::render_within`]). Rendering checks each piece before copying it and stops
//!   with [`TooLarge`] at the limit, so the oversized value is never built: the caller
//!   skips that edit (and counts it).
//!
//! A rendered value copies request attributes byte for byte; whether it is a valid header
//! value is the caller's check ([`is_valid_value`](crate::headers::is_valid_value)), since
//! what a host hands a filter is not always what Envoy's codec accepted.
//!
//! ```
//! use sdk_ext::request::RequestData;
//! use sdk_ext::template::{Template, TooLarge, MAX_OPERATORS};
//!
//! let t = Template::parse("%REQ(:path)%%REQ(:path)%", "value").unwrap();
//! let mut req = RequestData::new("GET", "/abc", "h");
//! assert_eq!(&*t.render(&mut req).unwrap(), b"/abc/abc");
//! assert_eq!(t.render_within(&mut req, 5), Err(TooLarge { limit: 5 }));
//! let many = "%ROUTE_NAME%".repeat(MAX_OPERATORS + 1);
//! assert!(Template::parse(&many, "value").is_err());
//! ```

use crate::config::ConfigError;
use crate::headers::invalid_value_byte;
use crate::request::{without_port, Request};
use std::borrow::Cow;

/// The longest value a template renders, and the longest literal text it may hold: 60 KiB,
/// Envoy's default `max_request_headers_kb`. That limit bounds a request's whole header
/// map, so one value longer than it can never usefully reach an upstream.
pub const MAX_VALUE_BYTES: usize = 60 * 1024;

/// The most operators (`%REQ(..)%`, `%ROUTE_NAME%`, ...; `%%` is text) one template holds.
pub const MAX_OPERATORS: usize = 64;

/// A value would render past its limit; nothing past the limit was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The limit it would have exceeded, in bytes.
    pub limit: usize,
}

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
    /// Parses `s`; `field` names it in errors. Refused: a byte that is not valid in a header
    /// value (CR, LF, NUL and other control bytes would let a config inject headers or have
    /// Envoy refuse every request), more than [`MAX_OPERATORS`] operators, literal text over
    /// [`MAX_VALUE_BYTES`].
    pub fn parse(s: &str, field: &str) -> Result<Self, ConfigError> {
        if let Some((at, byte)) = invalid_value_byte(s.as_bytes()) {
            return Err(ConfigError::new(
                field,
                format!("byte {byte:#04x} at offset {at} is not valid in a header value (no CR, LF, NUL or other control bytes)"),
            ));
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
            let operators = parts.iter().filter(|p| !matches!(p, Part::Text(_))).count();
            if operators > MAX_OPERATORS {
                return Err(ConfigError::new(
                    field,
                    format!("more than {MAX_OPERATORS} operators in one value"),
                ));
            }
            rest = after.get(end + 1..).unwrap_or_default();
        }
        text.extend_from_slice(rest.as_bytes());
        if !text.is_empty() || parts.is_empty() {
            parts.push(Part::Text(text));
        }
        let literal: usize = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        if literal > MAX_VALUE_BYTES {
            return Err(ConfigError::new(
                field,
                format!("{literal} bytes of text; a value is at most {MAX_VALUE_BYTES} bytes"),
            ));
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

    /// Renders the value for a request, at most [`MAX_VALUE_BYTES`].
    pub fn render<'a>(&'a self, req: &mut impl Request) -> Result<Cow<'a, [u8]>, TooLarge> {
        self.render_within(req, MAX_VALUE_BYTES)
    }

    /// Renders the value for a request, at most `limit` bytes (capped at
    /// [`MAX_VALUE_BYTES`]). Each piece is measured before it is copied: a value that would
    /// pass the limit stops there with [`TooLarge`], having allocated at most `limit` bytes.
    pub fn render_within<'a>(
        &'a self,
        req: &mut impl Request,
        limit: usize,
    ) -> Result<Cow<'a, [u8]>, TooLarge> {
        let limit = limit.min(MAX_VALUE_BYTES);
        let too_large = TooLarge { limit };
        if let Some(s) = self.as_static() {
            return if s.len() > limit {
                Err(too_large)
            } else {
                Ok(Cow::Borrowed(s))
            };
        }
        let mut out = Vec::new();
        for part in &self.parts {
            let piece: &[u8] = match part {
                Part::Text(t) => t,
                Part::Header(name) => req.header(name).unwrap_or_default(),
                Part::RemoteAddress => req.source_address().unwrap_or_default(),
                Part::RemoteAddressWithoutPort => {
                    req.source_address().map(without_port).unwrap_or_default()
                }
                Part::RouteName => req.route_name().unwrap_or_default(),
            };
            if piece.len() > limit.saturating_sub(out.len()) {
                return Err(too_large);
            }
            out.extend_from_slice(piece);
        }
        Ok(Cow::Owned(out))
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
        assert_eq!(
            &*t.render(&mut r).unwrap(),
            b"id=42 path=/p?q ip=10.1.2.3 %"
        );
        assert!(t.as_static().is_none());
        let t = Template::parse(
            "%DOWNSTREAM_REMOTE_ADDRESS%|%ROUTE_NAME%|%REQ(x-missing)%",
            "v",
        )
        .unwrap();
        assert_eq!(&*t.render(&mut r).unwrap(), b"10.1.2.3:5555||");
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
    fn rendering_stops_at_the_limit_without_building_the_value() {
        let path = format!("/{}", "a".repeat(50_000));
        let mut r = RequestData::new("GET", &path, "h");
        let t = Template::parse(&"%REQ(:path)%".repeat(MAX_OPERATORS), "v").unwrap();
        assert_eq!(
            t.render(&mut r),
            Err(TooLarge {
                limit: MAX_VALUE_BYTES
            })
        );
        // One copy fits; exactly at the limit fits, one byte more does not.
        let one = Template::parse("%REQ(:path)%", "v").unwrap();
        assert_eq!(one.render(&mut r).unwrap().len(), path.len());
        assert_eq!(
            one.render_within(&mut r, path.len()).unwrap().len(),
            path.len()
        );
        assert_eq!(
            one.render_within(&mut r, path.len() - 1),
            Err(TooLarge {
                limit: path.len() - 1
            })
        );
        // A limit above the cap is the cap; a static value obeys a smaller limit too.
        assert_eq!(
            t.render_within(&mut r, usize::MAX),
            Err(TooLarge {
                limit: MAX_VALUE_BYTES
            })
        );
        let fixed = Template::parse("fixed", "v").unwrap();
        assert_eq!(fixed.render_within(&mut r, 4), Err(TooLarge { limit: 4 }));
        assert_eq!(&*fixed.render_within(&mut r, 5).unwrap(), b"fixed");
    }

    #[test]
    fn operators_and_text_are_bounded_at_config_time() {
        let at_cap = "%REQ(:path)%".repeat(MAX_OPERATORS);
        assert!(Template::parse(&at_cap, "v").is_ok());
        for over in [
            "%REQ(:path)%".repeat(MAX_OPERATORS + 1),
            "%REQ(:path)%".repeat(2000),
            format!(
                "{}%ROUTE_NAME%",
                "%DOWNSTREAM_REMOTE_ADDRESS%".repeat(MAX_OPERATORS)
            ),
        ] {
            let e = Template::parse(&over, "rules[0].value").unwrap_err();
            assert_eq!(e.field, "rules[0].value");
            assert!(e.reason.contains("operators"), "{}", e.reason);
        }
        // `%%` is text, not an operator.
        assert!(Template::parse(&"%%".repeat(MAX_OPERATORS * 2), "v").is_ok());
        assert!(Template::parse(&"x".repeat(MAX_VALUE_BYTES), "v").is_ok());
        let e = Template::parse(&"x".repeat(MAX_VALUE_BYTES + 1), "v").unwrap_err();
        assert!(e.reason.contains("at most"), "{}", e.reason);
    }

    #[test]
    fn refuses_bad_templates() {
        for bad in [
            "%NOPE%",
            "50%",
            "%REQ()%",
            "a\r\nb",
            "%REQ(a b)%",
            "nul\0",
            "bell\x07",
            "del\x7f",
            "esc\x1b[0m",
        ] {
            let e = Template::parse(bad, "rules[0].value").unwrap_err();
            assert_eq!(e.field, "rules[0].value", "{bad}");
        }
    }
}

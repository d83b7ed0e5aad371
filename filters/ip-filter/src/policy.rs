//! The decision, as plain Rust over plain data: which address is the client, and is it
//! allowed. No host calls; tested directly.

use crate::config::{Config, Lists, Precedence, Verdict};
use sdk_ext::net::{parse_ip, parse_socket_address, Cidr, Ip};
use sdk_ext::request::Request;

/// The outcome for one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement<'a> {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The range that decided (`None`: the default decided), in the lists (a reference:
    /// the judgement is moved through a few calls per request).
    pub by: Option<&'a Cidr>,
}

/// Why no client address could be judged (each is a refusal: the filter fails closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// The host gave no `source.address` (or one that is not an IP address: a pipe).
    NoSourceAddress,
    /// `X-Forwarded-For` has fewer entries than the trusted hops (or is absent).
    XffTooShort,
    /// The chosen `X-Forwarded-For` entry is not an IP address.
    XffInvalid,
}

impl AddressError {
    /// A short name for logs and response details.
    pub fn name(self) -> &'static str {
        match self {
            AddressError::NoSourceAddress => "no_source_address",
            AddressError::XffTooShort => "xff_too_short",
            AddressError::XffInvalid => "xff_invalid",
        }
    }
}

/// Judges `ip` against one policy's lists.
pub fn judge(lists: &Lists, ip: Ip) -> Judgement<'_> {
    let deny = lists.deny.lookup(ip).map(|(c, _)| c);
    let allow = lists.allow.lookup(ip).map(|(c, _)| c);
    let (verdict, by) = match (allow, deny, lists.precedence) {
        (_, Some(d), Precedence::Deny) => (Verdict::Deny, Some(d)),
        (Some(a), Some(d), Precedence::MostSpecific) => {
            if a.prefix_len() > d.prefix_len() {
                (Verdict::Allow, Some(a))
            } else {
                (Verdict::Deny, Some(d))
            }
        }
        (None, Some(d), Precedence::MostSpecific) => (Verdict::Deny, Some(d)),
        (Some(a), None, _) => (Verdict::Allow, Some(a)),
        (None, None, _) => (lists.default, None),
    };
    Judgement { verdict, by }
}

/// The client address of an HTTP request: the connection's (`hops == 0`), or the `hops`th
/// entry from the right of `X-Forwarded-For` (all its values joined with `,`, as Envoy
/// joins repeated headers; each entry trimmed of spaces and tabs).
///
/// Envoy's `xff_num_trusted_hops` picks the same entry. Where Envoy falls back to the
/// connection's address (too few entries, an entry that is not an address), this refuses:
/// for an access decision the connection's address is the trusted proxy's, not the
/// client's.
pub fn client_ip(hops: u32, source: Option<&[u8]>, xff: &[&[u8]]) -> Result<Ip, AddressError> {
    if hops == 0 {
        return source
            .and_then(parse_socket_address)
            .ok_or(AddressError::NoSourceAddress);
    }
    let mut remaining = hops;
    // Walk the entries from the right without joining the values.
    for value in xff.iter().rev() {
        for entry in value.rsplit(|&b| b == b',') {
            remaining -= 1;
            if remaining == 0 {
                let entry = entry.trim_ascii();
                return parse_ip(entry).ok_or(AddressError::XffInvalid);
            }
        }
    }
    Err(AddressError::XffTooShort)
}

/// The policy for an HTTP request: the first matching rule's lists, else the top level.
pub fn lists_for<'a>(config: &'a Config, req: &mut impl Request) -> &'a Lists {
    config
        .rules
        .first(req)
        .map_or(&config.top, |(_, lists)| lists)
}

/// An HTTP request's decision: the client address (or why there is none) and its judgement.
pub fn decide_http<'a>(
    config: &'a Config,
    req: &mut impl Request,
) -> (&'a Lists, Result<(Ip, Judgement<'a>), AddressError>) {
    let lists = lists_for(config, req);
    let ip = if config.xff_num_trusted_hops == 0 {
        client_ip(0, req.source_address(), &[])
    } else {
        let xff = req.header_values("x-forwarded-for");
        client_ip(config.xff_num_trusted_hops, None, &xff)
    };
    (lists, ip.map(|ip| (ip, judge(lists, ip))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::request::RequestData;

    fn cfg(json: &str) -> Config {
        Config::parse(json.as_bytes()).unwrap()
    }

    fn verdict(c: &Config, addr: &str) -> Verdict {
        judge(&c.top, parse_ip(addr.as_bytes()).unwrap()).verdict
    }

    #[test]
    fn deny_wins_by_default_and_most_specific_on_request() {
        let lists = r#""allow":["10.0.0.0/8","192.0.2.7"],"deny":["10.1.0.0/16","10.1.2.3/32","2001:db8::/32"]"#;
        let c = cfg(&format!("{{{lists}}}"));
        assert_eq!(verdict(&c, "10.9.9.9"), Verdict::Allow);
        assert_eq!(verdict(&c, "10.1.0.1"), Verdict::Deny);
        assert_eq!(verdict(&c, "192.0.2.7"), Verdict::Allow);
        assert_eq!(
            verdict(&c, "192.0.2.8"),
            Verdict::Deny,
            "allow list: default deny"
        );
        assert_eq!(verdict(&c, "2001:db8::1"), Verdict::Deny);
        assert_eq!(verdict(&c, "::ffff:10.9.9.9"), Verdict::Allow);
        let c = cfg(
            r#"{"deny":["10.1.0.0/16","10.1.2.3/32"],"precedence":"most_specific","allow":["10.0.0.0/8","10.1.2.0/24","10.1.0.0/16"]}"#,
        );
        assert_eq!(
            verdict(&c, "10.1.2.4"),
            Verdict::Allow,
            "the /24 allow beats the /16 deny"
        );
        assert_eq!(
            verdict(&c, "10.1.2.3"),
            Verdict::Deny,
            "the /32 deny beats the /24"
        );
        assert_eq!(
            verdict(&c, "10.1.3.1"),
            Verdict::Deny,
            "same /16 in both: deny"
        );
        let j = judge(&c.top, parse_ip(b"10.1.2.4").unwrap());
        assert_eq!(j.by.map(|c| c.to_string()).as_deref(), Some("10.1.2.0/24"));
    }

    #[test]
    fn defaults() {
        let c = cfg(r#"{"deny":["192.0.2.0/24"]}"#);
        assert_eq!(
            verdict(&c, "198.51.100.1"),
            Verdict::Allow,
            "deny list only: default allow"
        );
        let c = cfg(r#"{"deny":["192.0.2.0/24"],"default":"deny"}"#);
        assert_eq!(verdict(&c, "198.51.100.1"), Verdict::Deny);
        let c = cfg(r#"{"allow":["192.0.2.0/24"],"default":"allow"}"#);
        assert_eq!(verdict(&c, "198.51.100.1"), Verdict::Allow);
        let c = cfg("{}");
        assert_eq!(verdict(&c, "198.51.100.1"), Verdict::Allow);
    }

    #[test]
    fn client_address_from_the_connection_or_xff() {
        let src = Some(&b"203.0.113.9:5123"[..]);
        assert_eq!(
            client_ip(0, src, &[]),
            Ok(parse_ip(b"203.0.113.9").unwrap())
        );
        assert_eq!(
            client_ip(0, Some(b"[2001:db8::5]:80"), &[]),
            Ok(parse_ip(b"2001:db8::5").unwrap())
        );
        assert_eq!(client_ip(0, None, &[]), Err(AddressError::NoSourceAddress));
        assert_eq!(
            client_ip(0, Some(b"pipe:/tmp/x"), &[]),
            Err(AddressError::NoSourceAddress)
        );
        let xff: &[&[u8]] = &[b"1.1.1.1, 2.2.2.2", b" 3.3.3.3 ,\t4.4.4.4"];
        for (hops, want) in [
            (1, "4.4.4.4"),
            (2, "3.3.3.3"),
            (3, "2.2.2.2"),
            (4, "1.1.1.1"),
        ] {
            assert_eq!(
                client_ip(hops, src, xff),
                Ok(parse_ip(want.as_bytes()).unwrap())
            );
        }
        assert_eq!(client_ip(5, src, xff), Err(AddressError::XffTooShort));
        assert_eq!(client_ip(1, src, &[]), Err(AddressError::XffTooShort));
        for bad in [
            &b"unknown"[..],
            b"",
            b"1.2.3.4:80",
            b"1.2.3",
            b"\xff",
            b"[::1]",
        ] {
            assert_eq!(
                client_ip(1, src, &[bad]),
                Err(AddressError::XffInvalid),
                "{bad:?}"
            );
        }
        assert_eq!(
            client_ip(1, src, &[b"1.1.1.1,"]),
            Err(AddressError::XffInvalid)
        );
        assert_eq!(
            client_ip(2, src, &[b"1.1.1.1,"]),
            Ok(parse_ip(b"1.1.1.1").unwrap())
        );
    }

    #[test]
    fn rules_pick_the_lists_per_route() {
        let c = cfg(
            r#"{"deny":["192.0.2.0/24"],"rules":[{"name":"admin","match":{"prefix":"/admin"},"allow":["10.0.0.0/8"]}]}"#,
        );
        let mut admin = RequestData::new("GET", "/admin/x", "h");
        admin.source_address = Some(b"198.51.100.1:1".to_vec());
        let (lists, r) = decide_http(&c, &mut admin);
        assert_eq!(lists.name, "admin");
        assert_eq!(r.unwrap().1.verdict, Verdict::Deny);
        let mut other = RequestData::new("GET", "/x", "h");
        other.source_address = Some(b"198.51.100.1:1".to_vec());
        let (lists, r) = decide_http(&c, &mut other);
        assert_eq!(lists.name, "default");
        assert_eq!(r.unwrap().1.verdict, Verdict::Allow);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = |j: &str| Config::parse(j.as_bytes()).unwrap_err();
        assert_eq!(
            e(r#"{"allow":["10.0.0.0/8","10.0.0.1/8"]}"#).field,
            "allow[1]"
        );
        assert_eq!(e(r#"{"deny":["nope"]}"#).field, "deny[0]");
        assert_eq!(
            e(r#"{"rules":[{"deny":["::1/200"]}]}"#).field,
            "rules[0].deny[0]"
        );
        assert_eq!(e(r#"{"precedence":"allow"}"#).field, "precedence");
        assert_eq!(e(r#"{"default":"maybe"}"#).field, "default");
        assert_eq!(
            e(r#"{"xff_num_trusted_hops":65}"#).field,
            "xff_num_trusted_hops"
        );
        assert_eq!(e(r#"{"status":200}"#).field, "status");
        assert_eq!(e(r#"{"alow":[]}"#).field, "alow");
        assert_eq!(e(r#"{"rules":[{"name":"a b"}]}"#).field, "rules[0].name");
        assert_eq!(
            e(r#"{"rules":[{"name":"a"},{"name":"a"}]}"#).field,
            "rules[1].name"
        );
        assert_eq!(
            e(r#"{"rules":[{"match":{"prefx":"/"}}]}"#).field,
            "rules[0].match.prefx"
        );
    }
}

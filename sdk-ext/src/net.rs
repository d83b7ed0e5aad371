//! IP addresses and CIDR ranges as filters meet them: parsed from bytes (a header value, a
//! host property), never panicking, and looked up in a [`CidrTable`] in `O(log n)`.
//!
//! - [`parse_ip`]: an IPv4 (`192.0.2.1`) or IPv6 (`2001:db8::1`, `::ffff:192.0.2.1`) address
//!   in its textual form, nothing around it (no port, no brackets, no zone, no whitespace).
//!   An **IPv4-mapped IPv6 address** (`::ffff:a.b.c.d`) *is* the IPv4 address: it parses to
//!   [`Ip::V4`], so it matches IPv4 ranges (a dual-stack listener reports IPv4 clients so).
//! - [`parse_socket_address`]: the same with an optional port (`192.0.2.1:443`,
//!   `[2001:db8::1]:443`), as Envoy's `source.address` property reads.
//! - [`Cidr::parse`]: `10.0.0.0/8`, `2001:db8::/32`, or a bare address (`/32`, `/128`). Host
//!   bits after the prefix are refused (`10.0.0.1/8` is a typo for `/32` or `10.0.0.0/8`, and
//!   as a deny/allow entry the difference matters). An IPv4-mapped range
//!   (`::ffff:10.0.0.0/104`, prefix at least 96) is the IPv4 range (`10.0.0.0/8`). Other
//!   IPv6 ranges never contain IPv4 clients: `::/0` is every IPv6 address, `0.0.0.0/0` every
//!   IPv4 one (as in Envoy's RBAC, families do not mix).
//! - [`CidrTable`]: ranges → values, built once (sorting and flattening the nested ranges
//!   into disjoint segments, `O(n log n)`), then [`CidrTable::lookup`] answers the **longest
//!   matching prefix** with one binary search, `O(log n)` whatever the number of ranges.
//!
//! ```
//! use sdk_ext::net::{parse_ip, Cidr, CidrTable};
//!
//! let table = CidrTable::new(vec![
//!     (Cidr::parse("10.0.0.0/8").unwrap(), "corp"),
//!     (Cidr::parse("10.1.2.0/24").unwrap(), "lab"),
//!     (Cidr::parse("2001:db8::/32").unwrap(), "v6"),
//! ]);
//! let at = |s: &str| table.lookup(parse_ip(s.as_bytes()).unwrap()).map(|(c, v)| (c.prefix_len(), *v));
//! assert_eq!(at("10.1.2.3"), Some((24, "lab")));
//! assert_eq!(at("10.9.9.9"), Some((8, "corp")));
//! assert_eq!(at("::ffff:10.9.9.9"), Some((8, "corp"))); // IPv4-mapped is IPv4
//! assert_eq!(at("2001:db8::1"), Some((32, "v6")));
//! assert_eq!(at("192.0.2.1"), None);
//! ```

use crate::json::{quote, quoted};
use std::fmt;
use std::net::IpAddr;

/// An IP address; IPv4-mapped IPv6 addresses are [`Ip::V4`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ip {
    /// IPv4, as a big-endian integer.
    V4(u32),
    /// IPv6 (never an IPv4-mapped one), as a big-endian integer.
    V6(u128),
}

impl Ip {
    fn from_std(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Ip::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Ip::V4(u32::from(v4)),
                None => Ip::V6(u128::from(v6)),
            },
        }
    }
}

/// std's `Display` of `Ipv4Addr` / `Ipv6Addr` (RFC 5952: lowercase hex, the first longest
/// run of two or more zero groups as `::`, `::ffff:a.b.c.d` for IPv4-mapped), written here:
/// std's (with its padding support and buffers) was ~2 KB of a filter's `.wasm`. Width and
/// precision are not applied (no caller formats an address padded).
impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Text::default();
        match *self {
            Ip::V4(v) => out.dotted(v),
            Ip::V6(v) if v >> 32 == 0xffff => {
                out.str(b"::ffff:");
                out.dotted(v as u32);
            }
            Ip::V6(v) => {
                let group = |i: usize| (v >> (112 - 16 * i)) as u16;
                // The first longest run of zero groups.
                let (mut best, mut best_len, mut start, mut len) = (0, 0, 0, 0);
                for i in 0..8 {
                    if group(i) == 0 {
                        if len == 0 {
                            start = i;
                        }
                        len += 1;
                        if len > best_len {
                            (best, best_len) = (start, len);
                        }
                    } else {
                        len = 0;
                    }
                }
                let groups = |out: &mut Text, from: usize, to: usize| {
                    for i in from..to {
                        if i > from {
                            out.str(b":");
                        }
                        out.hex(group(i));
                    }
                };
                if best_len > 1 {
                    groups(&mut out, 0, best);
                    out.str(b"::");
                    groups(&mut out, best + best_len, 8);
                } else {
                    groups(&mut out, 0, 8);
                }
            }
        }
        f.write_str(std::str::from_utf8(out.bytes()).unwrap_or_default())
    }
}

/// An address's text (at most 45 bytes: `::ffff:255.255.255.255` and full IPv6 fit).
struct Text {
    buf: [u8; 48],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Text {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl Text {
    fn str(&mut self, s: &[u8]) {
        for &b in s {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    /// `n` in lowercase hex without leading zeros.
    fn hex(&mut self, n: u16) {
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let d = ((n >> shift) & 0xf) as u8;
            if d != 0 || started || shift == 0 {
                started = true;
                self.str(&[if d < 10 { b'0' + d } else { b'a' + d - 10 }]);
            }
        }
    }

    fn dotted(&mut self, v: u32) {
        for (i, shift) in [24, 16, 8, 0].into_iter().enumerate() {
            if i > 0 {
                self.str(b".");
            }
            let o = (v >> shift) as u8;
            if o >= 100 {
                self.str(&[b'0' + o / 100]);
            }
            if o >= 10 {
                self.str(&[b'0' + o / 10 % 10]);
            }
            self.str(&[b'0' + o % 10]);
        }
    }

    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Longest textual address accepted (an IPv6 address with an embedded IPv4 is 45 bytes).
const MAX_ADDRESS_LEN: usize = 64;

/// An IP address in textual form, nothing around it; `None` for anything else (see the
/// module docs).
pub fn parse_ip(text: &[u8]) -> Option<Ip> {
    if let Some(v4) = parse_dotted_quad(text) {
        // The usual client address, without std's general parser (several thousand wasm
        // operators per request).
        return Some(Ip::V4(v4));
    }
    if text.len() > MAX_ADDRESS_LEN {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?;
    s.parse::<IpAddr>().ok().map(Ip::from_std)
}

/// `a.b.c.d` exactly as std's `Ipv4Addr` parser accepts it (four decimal octets of one to
/// three digits, at most 255, no leading zero); `None` for anything else, which then goes
/// to std's parser (so what is refused, and every IPv6 form, is std's answer).
fn parse_dotted_quad(text: &[u8]) -> Option<u32> {
    match dotted_quad_head(text)? {
        (v4, []) => Some(v4),
        _ => None,
    }
}

/// A dotted quad (as [`parse_dotted_quad`] accepts it) at the start of `text`, ended by the
/// end of `text` or a byte that is neither a digit nor `.`; the value and the rest.
///
/// Octet by octet with slice patterns, no iterator adaptors: at the filters' size-optimised
/// level the adaptor version (`take`, `take_while`, `count`, `fold`, per octet) was ~1,000
/// wasm operators for `127.0.0.1`, on every request ip-filter judges.
fn dotted_quad_head(text: &[u8]) -> Option<(u32, &[u8])> {
    // A digit's value; over 9 for any other byte.
    let digit = |b: u8| u32::from(b.wrapping_sub(b'0'));
    let mut out: u32 = 0;
    let mut rest = text;
    for octet in 0..4 {
        // One to three digits; more than one: no leading zero.
        let (value, after) = match *rest {
            [a, b, c, ref after @ ..]
                if a != b'0' && digit(a) <= 9 && digit(b) <= 9 && digit(c) <= 9 =>
            {
                (digit(a) * 100 + digit(b) * 10 + digit(c), after)
            }
            [a, b, ref after @ ..] if a != b'0' && digit(a) <= 9 && digit(b) <= 9 => {
                (digit(a) * 10 + digit(b), after)
            }
            [a, ref after @ ..] if digit(a) <= 9 => (digit(a), after),
            _ => return None,
        };
        if value > 255 {
            return None;
        }
        out = out << 8 | value;
        match *after {
            [b'.', ref tail @ ..] if octet < 3 => rest = tail,
            // A fourth digit (or a digit after a leading zero), a fifth octet.
            [b, ..] if digit(b) <= 9 || b == b'.' => return None,
            _ if octet < 3 => return None,
            _ => return Some((out, after)),
        }
    }
    None
}

/// An address with an optional port: `a.b.c.d[:port]`, `[v6]:port`, or a bare IPv6 address.
pub fn parse_socket_address(text: &[u8]) -> Option<Ip> {
    // The usual `source.address` (`a.b.c.d:port`) in one pass: the same answer as the
    // general path below (which strips a port after the only `:`), without its two scans.
    if let Some((v4, rest)) = dotted_quad_head(text) {
        match rest {
            [] => return Some(Ip::V4(v4)),
            [b':', port @ ..] if port.iter().all(|&b| b != b':') => return Some(Ip::V4(v4)),
            _ => {}
        }
    }
    parse_ip(crate::request::without_port(text))
}

/// A CIDR range: an address and a prefix length (at most 32 for IPv4, 128 for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    ip: Ip,
    len: u8,
}

impl Cidr {
    /// Parses `addr/len` or a bare address; the reason on failure is for a config error.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        // A byte search, not `split_once('/')` (str's char searcher, ~0.4 KB of the module).
        let (addr, len) = match text.bytes().position(|b| b == b'/') {
            Some(i) => (
                text.get(..i).unwrap_or_default(),
                Some(text.get(i + 1..).unwrap_or_default()),
            ),
            None => (text, None),
        };
        let Some(std) = (addr.len() <= MAX_ADDRESS_LEN)
            .then(|| addr.parse::<IpAddr>().ok())
            .flatten()
        else {
            return Err(quoted("", text, " is not an IP address or CIDR range"));
        };
        let max = match std {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max && !l.starts_with('+') && (l == "0" || !l.starts_with('0')) => n,
                _ => {
                    return Err(format!(
                        "{}: the prefix length must be 0..={max}",
                        quote(text)
                    ))
                }
            },
        };
        let (ip, len) = match Ip::from_std(std) {
            // An IPv4-mapped range of at least /96 is the IPv4 range.
            Ip::V4(v4) if max == 128 => {
                if len < 96 {
                    return Err(format!(
                        "{}: an IPv4-mapped range needs a prefix of at least 96 (write the IPv4 range)",
                        quote(text)
                    ));
                }
                (Ip::V4(v4), len - 96)
            }
            ip => (ip, len),
        };
        let cidr = Cidr { ip, len };
        if cidr.first() != ip {
            return Err(format!(
                "{} has bits set after the /{len} prefix (did you mean {}/{len}, or the single address?)",
                quote(text),
                cidr.first()
            ));
        }
        Ok(cidr)
    }

    /// The prefix length (for an IPv4-mapped range, of the IPv4 range).
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The range's first address (the network address).
    pub fn first(&self) -> Ip {
        match self.ip {
            Ip::V4(v) => Ip::V4(v & mask32(self.len)),
            Ip::V6(v) => Ip::V6(v & mask128(self.len)),
        }
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ip) -> bool {
        match (self.ip, ip) {
            (Ip::V4(n), Ip::V4(a)) => n & mask32(self.len) == a & mask32(self.len),
            (Ip::V6(n), Ip::V6(a)) => n & mask128(self.len) == a & mask128(self.len),
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.len)
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// No entry covers this segment.
const NONE: u32 = u32::MAX;

/// One address family: the segment starts, ascending, and the entry covering each segment
/// up to the next start (`NONE`: none).
#[derive(Debug, Clone, Default)]
struct Segments<K> {
    starts: Vec<K>,
    entries: Vec<u32>,
}

impl<K: Copy + Ord + Default> Segments<K> {
    fn push(&mut self, at: K, entry: u32) {
        if self.entries.last() == Some(&entry) {
            return;
        }
        if self.starts.last() == Some(&at) {
            if let Some(last) = self.entries.last_mut() {
                *last = entry;
            }
            // The replaced segment may now equal its predecessor.
            let n = self.entries.len();
            if n >= 2 && self.entries.get(n - 2) == Some(&entry) {
                self.starts.pop();
                self.entries.pop();
            }
            return;
        }
        if self.starts.is_empty() && entry == NONE {
            return;
        }
        self.starts.push(at);
        self.entries.push(entry);
    }

    /// `ranges`: `(first, last, entry)` sorted by first ascending, then larger ranges first;
    /// ranges nest or are disjoint (CIDRs always do). `next(k)`: `k + 1`, `None` at the top.
    fn build(ranges: &[(K, K, u32)], next: fn(K) -> Option<K>) -> Self {
        let mut s = Segments {
            starts: Vec::with_capacity(ranges.len() * 2),
            entries: Vec::with_capacity(ranges.len() * 2),
        };
        let mut stack: Vec<(K, u32)> = Vec::new();
        let close = |s: &mut Segments<K>, stack: &mut Vec<(K, u32)>| {
            if let Some((last, _)) = stack.pop() {
                if let Some(after) = next(last) {
                    s.push(after, stack.last().map_or(NONE, |&(_, e)| e));
                }
            }
        };
        for &(first, last, entry) in ranges {
            while stack.last().is_some_and(|&(end, _)| end < first) {
                close(&mut s, &mut stack);
            }
            stack.push((last, entry));
            s.push(first, entry);
        }
        while !stack.is_empty() {
            close(&mut s, &mut stack);
        }
        s.starts.shrink_to_fit();
        s.entries.shrink_to_fit();
        s
    }

    fn lookup(&self, key: K) -> Option<u32> {
        self.entry_of(self.starts.partition_point(|&s| s <= key))
    }

    /// The entry of the segment before the `i`th start (`i`: how many starts are `<=` the
    /// key).
    fn entry_of(&self, i: usize) -> Option<u32> {
        let entry = *self.entries.get(i.checked_sub(1)?)?;
        (entry != NONE).then_some(entry)
    }
}

/// IPv4 segment lists at least this long get a first-level index ([`v4_index`]).
const V4_INDEX_FROM: usize = 1024;

/// The first-level index of a long IPv4 segment list: entry `h` is how many starts lie
/// below `h << 16` (65,537 entries, 256 KiB), so a lookup searches only the starts of its
/// address's /16 (DIR-16 style). For 10,000 `/24`s: at most 256 starts, 8 steps of binary
/// search instead of 14, none for an address in a /16 holding no start. Empty below
/// [`V4_INDEX_FROM`] segments (the whole search is short there).
fn v4_index(starts: &[u32]) -> Vec<u32> {
    if starts.len() < V4_INDEX_FROM {
        return Vec::new();
    }
    let mut index = Vec::with_capacity(65_537);
    let mut below = 0usize;
    for high in 0..=65_536u32 {
        while starts.get(below).is_some_and(|&s| s >> 16 < high) {
            below += 1;
        }
        index.push(u32::try_from(below).unwrap_or(u32::MAX));
    }
    index
}

/// CIDR ranges mapped to values, answering the longest matching prefix in `O(log n)`.
#[derive(Debug, Clone)]
pub struct CidrTable<V> {
    v4: Segments<u32>,
    /// [`v4_index`] of `v4.starts` (empty: a short list).
    v4_index: Vec<u32>,
    v6: Segments<u128>,
    entries: Vec<(Cidr, V)>,
}

impl<V> Default for CidrTable<V> {
    fn default() -> Self {
        Self {
            v4: Segments::default(),
            v4_index: Vec::new(),
            v6: Segments::default(),
            entries: Vec::new(),
        }
    }
}

impl<V> CidrTable<V> {
    /// Builds the table. A range listed twice keeps its first value.
    pub fn new(mut entries: Vec<(Cidr, V)>) -> Self {
        // Identical ranges: the first listed wins (a stable sort keeps their order).
        entries.sort_by_key(|(c, _)| match c.first() {
            Ip::V4(v) => (0u8, u128::from(v), c.len),
            Ip::V6(v) => (1u8, v, c.len),
        });
        entries.dedup_by(|b, a| a.0.first() == b.0.first() && a.0.len == b.0.len);
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, (c, _)) in entries.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(NONE - 1);
            match c.first() {
                Ip::V4(first) => v4.push((first, first | !mask32(c.len), i)),
                Ip::V6(first) => v6.push((first, first | !mask128(c.len), i)),
            }
        }
        let v4 = Segments::build(&v4, |k| k.checked_add(1));
        Self {
            v4_index: v4_index(&v4.starts),
            v4,
            v6: Segments::build(&v6, |k| k.checked_add(1)),
            entries,
        }
    }

    /// The longest-prefix range containing `ip`, and its value.
    pub fn lookup(&self, ip: Ip) -> Option<(&Cidr, &V)> {
        // An empty list (often the deny or the allow list) costs no search.
        if self.entries.is_empty() {
            return None;
        }
        let i = match ip {
            Ip::V4(v) => self.lookup_v4(v)?,
            Ip::V6(v) => self.v6.lookup(v)?,
        };
        let (c, v) = self.entries.get(usize::try_from(i).ok()?)?;
        Some((c, v))
    }

    /// The IPv4 segment lookup, through the first-level index when there is one.
    fn lookup_v4(&self, key: u32) -> Option<u32> {
        let high = usize::try_from(key >> 16).unwrap_or(usize::MAX);
        let i = match (
            self.v4_index.get(high),
            high.checked_add(1).and_then(|h| self.v4_index.get(h)),
        ) {
            (Some(&lo), Some(&hi)) => {
                // Every start before `lo` is below the key's /16, every one from `hi` above.
                let (lo, hi) = (lo as usize, hi as usize);
                let within = self.v4.starts.get(lo..hi).unwrap_or_default();
                lo + within.partition_point(|&s| s <= key)
            }
            _ => self.v4.starts.partition_point(|&s| s <= key),
        };
        self.v4.entry_of(i)
    }

    /// How many distinct ranges.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many disjoint segments the lookup searches (at most `2 * len() + 1` per family).
    pub fn segments(&self) -> usize {
        self.v4.starts.len() + self.v6.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> Ip {
        parse_ip(s.as_bytes()).unwrap()
    }

    /// The dotted-quad shortcut accepts only what std accepts, with the same value.
    #[test]
    fn dotted_quads_as_std_parses_them() {
        let alphabet: &[&[u8]] = &[
            b"0", b"1", b"2", b"5", b"9", b"25", b"255", b"256", b"01", b"00", b".", b".", b".",
            b":", b"a", b" ", b"1234",
        ];
        let mut next = crate::test_rng::xorshift(0x9e37_79b9);
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut t = Vec::new();
            if next() % 2 == 0 {
                // Shaped like a quad: four octet-ish tokens.
                for i in 0..4 {
                    if i > 0 {
                        t.push(b'.');
                    }
                    t.extend_from_slice(alphabet[next() % 9]);
                }
            } else {
                for _ in 0..next() % 9 {
                    t.extend_from_slice(alphabet[next() % alphabet.len()]);
                }
            }
            let std = std::str::from_utf8(&t)
                .ok()
                .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
                .map(u32::from);
            if let Some(v) = parse_dotted_quad(&t) {
                accepted += 1;
                assert_eq!(Some(v), std, "{:?}", String::from_utf8_lossy(&t));
            } else {
                assert_eq!(std, None, "{:?}", String::from_utf8_lossy(&t));
            }
        }
        assert!(accepted > 100, "{accepted}");
        assert_eq!(parse_dotted_quad(b"255.255.255.255"), Some(u32::MAX));
        assert_eq!(parse_dotted_quad(b"127.0.0.1"), Some(0x7f00_0001));
    }

    /// The one-pass `a.b.c.d[:port]` path answers as the general one (strip the port after
    /// the only `:`, then parse), on socket-address-shaped random text.
    #[test]
    fn socket_addresses_as_the_general_path() {
        let pieces: &[&[u8]] = &[
            b"127",
            b"0",
            b"1",
            b"255",
            b"256",
            b"01",
            b".",
            b".",
            b":",
            b"80",
            b"",
            b"[",
            b"]",
            b"::1",
            b"x",
            b" ",
            b"1234",
            b"::ffff:",
            b"2001:db8::",
        ];
        let mut next = crate::test_rng::xorshift(0x1234_5679);
        let mut v4 = 0;
        for _ in 0..50_000 {
            let mut t = Vec::new();
            if next() % 2 == 0 {
                for i in 0..4 {
                    if i > 0 {
                        t.push(b'.');
                    }
                    t.extend_from_slice(pieces[next() % 6]);
                }
            }
            for _ in 0..next() % 4 {
                t.extend_from_slice(pieces[next() % pieces.len()]);
            }
            let want = parse_ip(crate::request::without_port(&t));
            v4 += usize::from(matches!(want, Some(Ip::V4(_))));
            assert_eq!(
                parse_socket_address(&t),
                want,
                "{:?}",
                String::from_utf8_lossy(&t)
            );
        }
        assert!(v4 > 1_000, "{v4}");
    }

    /// The address text is std's, for every shape of zero runs.
    #[test]
    fn displays_addresses_as_std_does() {
        let mut next = crate::test_rng::xorshift64(0x2545_f491_4f6c_dd1d);
        for _ in 0..50_000 {
            let mut v: u128 = 0;
            for _ in 0..8 {
                let r = next();
                // Mostly zero groups (runs of every length), some small and some full ones.
                let g = match r % 4 {
                    0 | 1 => 0,
                    2 => (r >> 8) % 16,
                    _ => (r >> 8) & 0xffff,
                };
                v = v << 16 | u128::from(g as u16);
            }
            if next() % 8 == 0 {
                v = 0xffff_0000_0000 | (v & 0xffff_ffff);
            }
            let v4 = v as u32;
            assert_eq!(
                Ip::V6(v).to_string(),
                Ipv6Addr::from(v).to_string(),
                "{v:#x}"
            );
            assert_eq!(Ip::V4(v4).to_string(), Ipv4Addr::from(v4).to_string());
        }
        for v in [0, 1, u128::MAX, 1 << 112, 0xffff_0000_0000] {
            assert_eq!(Ip::V6(v).to_string(), Ipv6Addr::from(v).to_string());
        }
    }

    #[test]
    fn parses_addresses_strictly() {
        assert_eq!(ip("192.0.2.1"), Ip::V4(0xc000_0201));
        assert_eq!(ip("::ffff:192.0.2.1"), Ip::V4(0xc000_0201));
        assert_eq!(ip("::FFFF:c000:201"), Ip::V4(0xc000_0201));
        assert!(matches!(ip("2001:db8::1"), Ip::V6(_)));
        assert!(matches!(ip("::1"), Ip::V6(1)));
        for bad in [
            &b""[..],
            b" 192.0.2.1",
            b"192.0.2.1 ",
            b"192.0.2",
            b"192.0.2.256",
            b"01.2.3.4",
            b"1.2.3.4.5",
            b"[::1]",
            b"fe80::1%eth0",
            b"unknown",
            b"\xff\xfe",
            b"::ffff:1.2.3.4:80",
        ] {
            assert_eq!(parse_ip(bad), None, "{bad:?}");
        }
        assert_eq!(parse_ip("1".repeat(100).as_bytes()), None);
        assert_eq!(
            parse_socket_address(b"192.0.2.1:443"),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            parse_socket_address(b"[2001:db8::1]:443"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            parse_socket_address(b"[::ffff:10.0.0.1]:1"),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            parse_socket_address(b"2001:db8::1"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(parse_socket_address(b"host:80"), None);
    }

    #[test]
    fn parses_cidrs_and_refuses_typos() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert_eq!((c.prefix_len(), c.to_string()), (8, "10.0.0.0/8".into()));
        assert_eq!(Cidr::parse("10.1.2.3").unwrap().prefix_len(), 32);
        assert_eq!(Cidr::parse("::1").unwrap().prefix_len(), 128);
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().prefix_len(), 0);
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped, Cidr::parse("10.0.0.0/8").unwrap());
        assert_eq!(
            Cidr::parse("::ffff:0:0/96").unwrap(),
            Cidr::parse("0.0.0.0/0").unwrap()
        );
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "2001:db8::/129",
            "2001:db8::1/32",
            "::ffff:10.0.0.0/64",
            "10.0.0.0/8/8",
            "host/8",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(Cidr::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
        assert!(Cidr::parse("10.0.0.0/8")
            .unwrap()
            .contains(ip("10.255.0.1")));
        assert!(!Cidr::parse("::/0").unwrap().contains(ip("10.0.0.1")));
    }

    #[test]
    fn longest_prefix_wins_and_families_do_not_mix() {
        let t = CidrTable::new(
            [
                ("0.0.0.0/0", 0),
                ("10.0.0.0/8", 1),
                ("10.1.0.0/16", 2),
                ("10.1.2.0/24", 3),
                ("10.1.2.3/32", 4),
                ("10.200.0.0/16", 5),
                ("255.255.255.255/32", 6),
                ("::/0", 7),
                ("2001:db8::/32", 8),
                ("10.0.0.0/8", 99), // duplicate: the first wins
            ]
            .iter()
            .map(|(c, v)| (Cidr::parse(c).unwrap(), *v))
            .collect(),
        );
        let at = |s: &str| t.lookup(ip(s)).map(|(_, v)| *v);
        assert_eq!(t.len(), 9);
        assert_eq!(at("9.255.255.255"), Some(0));
        assert_eq!(at("10.0.0.0"), Some(1));
        assert_eq!(at("10.1.0.0"), Some(2));
        assert_eq!(at("10.1.2.2"), Some(3));
        assert_eq!(at("10.1.2.3"), Some(4));
        assert_eq!(at("10.1.2.4"), Some(3));
        assert_eq!(at("10.1.3.0"), Some(2));
        assert_eq!(at("10.2.0.0"), Some(1));
        assert_eq!(at("10.200.255.255"), Some(5));
        assert_eq!(at("10.201.0.0"), Some(1));
        assert_eq!(at("11.0.0.0"), Some(0));
        assert_eq!(at("255.255.255.254"), Some(0));
        assert_eq!(at("255.255.255.255"), Some(6));
        assert_eq!(at("::ffff:10.1.2.3"), Some(4));
        assert_eq!(at("2001:db8:ffff::1"), Some(8));
        assert_eq!(at("2001:db9::"), Some(7));
        assert_eq!(at("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Some(7));
        let empty: CidrTable<()> = CidrTable::new(vec![]);
        assert!(empty.lookup(ip("1.2.3.4")).is_none());
    }

    /// The table agrees with a linear longest-prefix scan on random ranges and addresses.
    #[test]
    fn agrees_with_a_linear_scan() {
        let mut rnd = crate::test_rng::xorshift64(0x1234_5678_9abc_def1);
        for _ in 0..50 {
            let mut cidrs = Vec::new();
            for i in 0..200 {
                // Addresses in a small space so ranges nest often.
                let len = (rnd() % 33) as u8;
                let addr = (rnd() as u32) & 0x0f0f_00ff;
                let c = Cidr {
                    ip: Ip::V4(addr & mask32(len)),
                    len,
                };
                cidrs.push((c, i));
            }
            let t = CidrTable::new(cidrs.clone());
            assert!(t.segments() <= 2 * t.len() + 1);
            for _ in 0..500 {
                let a = Ip::V4((rnd() as u32) & 0x0f0f_00ff | (rnd() as u32 & 0x0101_0001));
                let want = cidrs
                    .iter()
                    .filter(|(c, _)| c.contains(a))
                    .max_by_key(|(c, i)| (c.len, std::cmp::Reverse(*i)))
                    .map(|(c, i)| (*c, *i));
                let got = t.lookup(a).map(|(c, i)| (*c, *i));
                assert_eq!(got, want, "{a}");
            }
        }
    }

    /// Long IPv4 lists (the first-level index) agree with a linear scan too, at /16
    /// boundaries and inside.
    #[test]
    fn indexed_lookups_agree_with_a_linear_scan() {
        let mut rnd = crate::test_rng::xorshift64(0x0bad_c0de_1234_5679);
        for _ in 0..3 {
            let mut cidrs = Vec::new();
            for i in 0..1500 {
                // Three /8s, lengths 8..=32, so /16 buckets hold many, few or no starts.
                let len = 8 + (rnd() % 25) as u8;
                let addr = (rnd() as u32 & 0x00ff_ffff) | ((10 + (rnd() % 3) as u32) << 24);
                let ip = Ip::V4(addr & mask32(len));
                cidrs.push((Cidr { ip, len }, i));
            }
            let t = CidrTable::new(cidrs.clone());
            assert!(!t.v4_index.is_empty(), "{} segments", t.segments());
            let (c0, _) = cidrs[0];
            let Ip::V4(base) = c0.ip else { unreachable!() };
            for k in 0..3000u32 {
                let a = match k % 4 {
                    0 => rnd() as u32,
                    1 => (rnd() as u32 & 0x00ff_ffff) | ((9 + (rnd() % 5) as u32) << 24),
                    // The edges of /16s.
                    2 => ((rnd() as u32) & 0xffff_0000).wrapping_sub(k & 1),
                    _ => base.wrapping_add(k).wrapping_sub(1500),
                };
                let a = Ip::V4(a);
                let want = cidrs
                    .iter()
                    .filter(|(c, _)| c.contains(a))
                    .max_by_key(|(c, i)| (c.len, std::cmp::Reverse(*i)))
                    .map(|(c, i)| (*c, *i));
                let got = t.lookup(a).map(|(c, i)| (*c, *i));
                assert_eq!(got, want, "{a}");
            }
        }
        for a in [0u32, u32::MAX, 0x0aff_ffff, 0x0b00_0000] {
            let t = CidrTable::new(vec![(
                Cidr {
                    ip: Ip::V4(0),
                    len: 0,
                },
                0,
            )]);
            assert!(t.lookup(Ip::V4(a)).is_some());
        }
    }

    #[test]
    fn ten_thousand_ranges_build_and_look_up() {
        let entries: Vec<(Cidr, u32)> = (0..10_000u32)
            .map(|i| {
                (
                    Cidr {
                        ip: Ip::V4(0x4000_0000 + (i << 12)),
                        len: 20,
                    },
                    i,
                )
            })
            .collect();
        let t = CidrTable::new(entries);
        assert_eq!(t.len(), 10_000);
        assert_eq!(
            t.lookup(Ip::V4(0x4000_0000 + (1234 << 12) + 7))
                .map(|(_, v)| *v),
            Some(1234)
        );
        assert_eq!(t.lookup(Ip::V4(0x4000_0000 + (10_000 << 12))), None);
        assert_eq!(t.lookup(Ip::V4(0x3fff_ffff)), None);
    }
}

//! Hostile traffic for no-trap runs: a reproducible generator of requests no well-behaved
//! client sends (random bytes in paths and header values, huge and many headers, missing
//! and repeated pseudo-headers, JSON bombs, odd bodies), and a driver that pushes one
//! through a whole HTTP stream and answers what the filter did.
//!
//! ```no_run
//! # use sdk_ext::testing::{hostile::{Hostile, send}, Emulator};
//! # static EXPORTS: sdk_ext::exports::Exports = sdk_ext::exports::Exports::NONE;
//! let mut emu = Emulator::native(&EXPORTS);
//! emu.start("{}").unwrap();
//! let mut gen = Hostile::new(7);
//! for _ in 0..1000 {
//!     let request = gen.request();
//!     let answer = send(&mut emu, &request);
//!     assert!(matches!(answer.status, None | Some(403)));
//! }
//! ```

use super::{Action, Emulator};

/// A reproducible source of hostile input (xorshift64*: fast, not for secrets).
#[derive(Debug, Clone)]
pub struct Hostile {
    state: u64,
}

/// One generated request: headers (pseudo-headers included, in any order or missing), an
/// optional body, and the response headers an upstream sends back.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Request headers as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Request body chunks (empty: headers only, end of stream).
    pub body: Vec<Vec<u8>>,
    /// Response headers from the upstream.
    pub response: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// Adds a request header.
    pub fn header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.headers.push((name.to_string(), value.into()));
    }
}

const NAMES: [&str; 16] = [
    "authorization",
    "cookie",
    "x-forwarded-for",
    "x-request-id",
    "content-type",
    "user-agent",
    "x-user",
    "x-jwt-payload",
    "host",
    "te",
    "x-envoy-original-path",
    "accept",
    "origin",
    "access-control-request-method",
    "x-api-key",
    "x-bin",
];

impl Hostile {
    /// A generator; the same seed gives the same traffic.
    pub fn new(seed: u64) -> Self {
        Hostile {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % n).unwrap_or(0)
    }

    /// `true` one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// Picks one of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let at = self.below(items.len());
        items.get(at)
    }

    /// Random bytes, up to `max` long: all 256 values, or printable, or a value with CR/LF
    /// and NUL in it (header injection attempts).
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max.saturating_add(1));
        let class = self.below(4);
        (0..len)
            .map(|_| {
                let b = (self.next_u64() >> 56) as u8;
                match class {
                    0 => b,
                    1 => b' ' + b % 95,
                    2 => *[b'\r', b'\n', 0, b'a', b':', b'%']
                        .get(usize::from(b % 6))
                        .unwrap_or(&0),
                    _ => 0x80 | b,
                }
            })
            .collect()
    }

    /// A path: random bytes, traversal, `%`-escapes, a huge one, or an ordinary one.
    pub fn path(&mut self) -> Vec<u8> {
        match self.below(8) {
            0 => self.bytes(512),
            1 => b"/../../etc/passwd?x=%00%ff".to_vec(),
            2 => {
                let mut p = b"/api/".to_vec();
                p.extend(self.bytes(64));
                p
            }
            3 if self.one_in(16) => {
                let mut p = b"/".to_vec();
                pad(&mut p, 65_536 + self.below(4096), b'a');
                p
            }
            4 => b"*".to_vec(),
            5 => Vec::new(),
            _ => {
                let path = *self
                    .pick(&[
                        "/",
                        "/api/items",
                        "/admin",
                        "/api",
                        "/public/x?y=1",
                        "/API/Items",
                    ])
                    .unwrap_or(&"/");
                path.as_bytes().to_vec()
            }
        }
    }

    /// A JSON value nested `depth` deep (arrays and objects), for JSON bombs.
    pub fn json_bomb(&mut self, depth: usize) -> String {
        let mut s = String::new();
        for i in 0..depth {
            s.push_str(if i % 2 == 0 { "[" } else { "{\"a\":" });
        }
        s.push('1');
        for i in (0..depth).rev() {
            s.push(if i % 2 == 0 { ']' } else { '}' });
        }
        s
    }

    /// A whole hostile request.
    pub fn request(&mut self) -> Request {
        let mut r = Request::default();
        let pseudo: [(&str, Vec<u8>); 4] = [
            (":method", self.method()),
            (":path", self.path()),
            (":authority", self.authority()),
            (
                ":scheme",
                if self.one_in(4) {
                    self.bytes(8)
                } else {
                    b"https".to_vec()
                },
            ),
        ];
        for (name, value) in pseudo {
            if !self.one_in(16) {
                r.header(name, value.clone());
            }
            if self.one_in(32) {
                r.header(name, value); // repeated pseudo-header
            }
        }
        let count = if self.one_in(20) {
            100 + self.below(400)
        } else {
            self.below(8)
        };
        for _ in 0..count {
            let name = if self.one_in(4) {
                String::from_utf8_lossy(&self.bytes(24)).to_ascii_lowercase()
            } else {
                (*self.pick(&NAMES).unwrap_or(&"x")).to_string()
            };
            let value = if self.one_in(50) {
                let mut v = self.bytes(64);
                pad(&mut v, 32_768 + self.below(65_536), b'A');
                v
            } else {
                self.bytes(96)
            };
            r.headers.push((name, value));
        }
        if self.one_in(4) {
            let chunks = 1 + self.below(3);
            for _ in 0..chunks {
                let size = if self.one_in(20) { 1 << 16 } else { 512 };
                r.body.push(self.bytes(size));
            }
        }
        r.response.push((":status".to_string(), self.status()));
        for _ in 0..self.below(4) {
            let name = (*self.pick(&NAMES).unwrap_or(&"x")).to_string();
            let value = self.bytes(64);
            r.response.push((name, value));
        }
        r
    }

    fn method(&mut self) -> Vec<u8> {
        if self.one_in(8) {
            return self.bytes(12);
        }
        let m = *self
            .pick(&["GET", "POST", "OPTIONS", "HEAD", "DELETE", "get", "CONNECT"])
            .unwrap_or(&"GET");
        m.as_bytes().to_vec()
    }

    fn authority(&mut self) -> Vec<u8> {
        if self.one_in(6) {
            return self.bytes(300);
        }
        let a = *self
            .pick(&[
                "api.example.com",
                "a.example.com:8443",
                "[::1]:80",
                "EXAMPLE.COM",
                "",
            ])
            .unwrap_or(&"x");
        a.as_bytes().to_vec()
    }

    fn status(&mut self) -> Vec<u8> {
        if self.one_in(8) {
            return self.bytes(6);
        }
        let s = *self
            .pick(&["200", "404", "503", "101", "999"])
            .unwrap_or(&"200");
        s.as_bytes().to_vec()
    }
}

/// What the filter did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The local response's status, if the filter answered the client itself.
    pub status: Option<u32>,
    /// The response code details of that local response.
    pub details: String,
    /// What the request-headers phase answered.
    pub action: Action,
}

/// Pushes `request` through a new stream: request headers, body chunks, response headers
/// (when the request went on), then the end of the stream (`on_log`, `on_done`,
/// `on_delete`).
pub fn send(emu: &mut Emulator, request: &Request) -> Answer {
    let headers: Vec<(&str, &[u8])> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let mut stream = emu.http();
    let action = stream.request_headers_bytes(&headers, request.body.is_empty());
    let mut answered = stream.local_response().is_some();
    let last = request.body.len().saturating_sub(1);
    for (i, chunk) in request.body.iter().enumerate() {
        if answered {
            break;
        }
        stream.request_body(chunk, i == last);
        answered = stream.local_response().is_some();
    }
    if !answered {
        let response: Vec<(&str, &[u8])> = request
            .response
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        stream.response_headers_bytes(&response, true);
    }
    let local = stream.local_response();
    stream.complete();
    Answer {
        status: local.as_ref().map(|r| r.status_code),
        details: local.map(|r| r.details).unwrap_or_default(),
        action,
    }
}

/// What a hostile run came to.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Requests sent.
    pub requests: usize,
    /// How many requests ended with each local-response status (`None`: passed on).
    pub statuses: std::collections::BTreeMap<Option<u32>, usize>,
    /// The module's linear memory after `start` (wasm engine only).
    pub memory_start: Option<usize>,
    /// ... after the first tenth of the requests (the warm-up: caches filled).
    pub memory_warm: Option<usize>,
    /// ... at the end.
    pub memory_end: Option<usize>,
    /// Wall time of the whole run.
    pub elapsed: std::time::Duration,
}

impl Run {
    /// Statuses seen that are not in `documented` (`None` always allowed: the request went on).
    pub fn undocumented(&self, documented: &[u32]) -> Vec<u32> {
        self.statuses
            .keys()
            .filter_map(|s| *s)
            .filter(|s| !documented.contains(s))
            .collect()
    }

    /// How much the linear memory grew after the warm-up, in bytes (0 natively).
    pub fn growth_after_warmup(&self) -> usize {
        match (self.memory_warm, self.memory_end) {
            (Some(warm), Some(end)) => end.saturating_sub(warm),
            _ => 0,
        }
    }

    /// One line for logs and the README.
    pub fn summary(&self, name: &str) -> String {
        let kib = |m: Option<usize>| m.map_or("-".to_string(), |b| format!("{} KiB", b / 1024));
        format!(
            "{name}: {} hostile requests in {:.1} s ({:.0}/s), answers {:?}, linear memory \
             {} at start, {} after warm-up, {} at the end",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.statuses,
            kib(self.memory_start),
            kib(self.memory_warm),
            kib(self.memory_end),
        )
    }
}

/// One of the two halves of a filter's hostile run ([`hostile_tests!`](crate::hostile_tests)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Half(pub u64);

impl Half {
    /// This half's generator seed, from the filter's own `base`: the first half keeps it.
    pub fn seed(self, base: u64) -> u64 {
        base + 100 * self.0
    }

    /// This half's share of [`requests`].
    pub fn requests(self) -> usize {
        requests() / 2
    }
}

/// A filter crate's hostile run as two `#[test]`s of half the requests each, with different
/// seeds, which libtest runs side by side: the same number of requests in half the wall
/// time. `body` takes the [`Half`] (its seed and count) and does the whole run and its
/// assertions (each half checks its own module's memory).
///
/// ```ignore
/// sdk_ext::hostile_tests!(hostile_half);
///
/// fn hostile_half(half: hostile::Half) {
///     // ... emulator started ...
///     let run = hostile::run(&mut emu, half.seed(1), half.requests(), |g, _, _| g.request());
/// }
/// ```
#[macro_export]
macro_rules! hostile_tests {
    ($body:ident) => {
        #[test]
        fn hostile_traffic_never_traps_and_memory_stays_bounded_1() {
            $body($crate::testing::hostile::Half(0));
        }

        #[test]
        fn hostile_traffic_never_traps_and_memory_stays_bounded_2() {
            $body($crate::testing::hostile::Half(1));
        }
    };
}

/// The number of requests a hostile run sends: `HOSTILE_REQUESTS`, default 100 000.
pub fn requests() -> usize {
    std::env::var("HOSTILE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// A hostile request from a varied client, for filters that decide by who asks: the client
/// address (`source.address`) from everywhere (IPv4 changing with `n`, IPv6, garbage bytes, one
/// fixed address), and sometimes an `x-forwarded-for` chain, an `x-api-key` of random bytes and
/// a CORS preflight's `origin` + `access-control-request-method`. A `make` for [`run`].
pub fn varied_client(g: &mut Hostile, n: usize, emu: &mut Emulator) -> Request {
    let mut r = g.request();
    let source = match g.below(4) {
        0 => format!(
            "10.{}.{}.{}:{}",
            n % 251,
            g.below(256),
            g.below(256),
            g.below(65536)
        ),
        1 => format!("[2001:db8::{:x}]:443", g.next_u64() & 0xffff),
        2 => String::from_utf8_lossy(&g.bytes(40)).into_owned(),
        _ => "203.0.113.7:5000".to_string(),
    };
    emu.set_property(&["source", "address"], source);
    if g.one_in(3) {
        let xff = format!("{}.{}.0.1, {}", g.below(256), g.below(256), g.below(1000));
        r.header("x-forwarded-for", xff);
    }
    if g.one_in(3) {
        let key = g.bytes(32);
        r.header("x-api-key", key);
    }
    if g.one_in(4) {
        let origin = *g
            .pick(&[
                "https://app.example.com",
                "null",
                "https://evil.example",
                "",
            ])
            .unwrap_or(&"null");
        r.header("origin", origin);
        r.header("access-control-request-method", "PUT");
    }
    r
}

/// Sends `count` requests made by `make(generator, n, emu)` through `emu` (started),
/// recording the answers and the module's memory; `make` may also set host state for the
/// request (e.g. the client's `source.address`). A trap fails the test inside (naming the
/// phase).
pub fn run(
    emu: &mut Emulator,
    seed: u64,
    count: usize,
    mut make: impl FnMut(&mut Hostile, usize, &mut Emulator) -> Request,
) -> Run {
    let started = std::time::Instant::now();
    let mut generator = Hostile::new(seed);
    let mut run = Run {
        requests: count,
        memory_start: emu.memory_bytes(),
        ..Run::default()
    };
    for n in 0..count {
        if n == count / 10 {
            run.memory_warm = emu.memory_bytes();
        }
        let request = make(&mut generator, n, emu);
        let answer = send(emu, &request);
        *run.statuses.entry(answer.status).or_insert(0) += 1;
    }
    run.memory_end = emu.memory_bytes();
    run.elapsed = started.elapsed();
    run
}

/// `v.resize(len, byte)`, but with one `memset`: unoptimised (`cargo test`), `resize` fills
/// byte by byte with overflow checks, and the huge values above were half of a hostile run.
fn pad(v: &mut Vec<u8>, len: usize, byte: u8) {
    if len > v.len() {
        let fill = vec![byte; len - v.len()];
        v.extend_from_slice(&fill);
    } else {
        v.truncate(len);
    }
}

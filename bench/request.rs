// The request headers of the bench's load (`GET /` with `x-remove-me` and an `Origin`), as
// the in-process measuring tools send them: `include!`d by bench/guest-cost and
// bench/opa-timing, so their numbers are for the same request.
pub const REQUEST: &[(&str, &str)] = &[
    (":authority", "localhost:10000"),
    (":path", "/"),
    (":method", "GET"),
    (":scheme", "http"),
    ("user-agent", "wrk"),
    ("x-remove-me", "1"),
    ("origin", "https://app.example.com"),
    ("x-forwarded-proto", "http"),
    ("x-request-id", "0b0c7f2e-5a48-4d1e-9d4e-3c2b1a0f9e8d"),
];

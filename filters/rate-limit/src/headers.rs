//! The response header values: `Retry-After` and draft-ietf-httpapi-ratelimit-headers
//! (draft 11, structured fields): `RateLimit-Policy: "<name>";q=<max_tokens>;w=<seconds>`
//! and `RateLimit: "<name>";r=<remaining>;t=<seconds>`.
//!
//! - `q` is the bucket's capacity (`max_tokens`), `w` the time to refill it from empty
//!   (`max_tokens × fill_interval / tokens_per_fill`, rounded up): `q/w` is the refill rate.
//! - `r` is the tokens left after this request; `t` the seconds until the bucket holds one
//!   more token (rounded up, at least 1): within `t` seconds no more than `r` requests pass.
//! - `Retry-After` on a limited response is that same `t` (the draft: it must not point
//!   before the end of the effective window).
//! - No `pk` (partition key): it would echo the client's key (an address, an API key).

use crate::bucket::TokenBucket;
use sdk_ext::json::push_decimal;

/// `"<name>";q=<max_tokens>;w=<window>`.
pub fn policy(name: &str, bucket: &TokenBucket) -> String {
    item(
        name,
        "\";q=",
        u64::from(bucket.max_tokens),
        ";w=",
        bucket.window_secs(),
    )
}

/// `"<name>";r=<remaining>;t=<seconds>`.
pub fn service_limit(name: &str, remaining: u64, reset_secs: u64) -> String {
    item(name, "\";r=", remaining, ";t=", reset_secs)
}

/// `"<name><a><x><b><y>`: pushed, not `format!`ed (its argument setup and integer code).
fn item(name: &str, a: &str, x: u64, b: &str, y: u64) -> String {
    let mut out = String::with_capacity(name.len() + 32);
    out.push('"');
    out.push_str(name);
    out.push_str(a);
    push_decimal(&mut out, x);
    out.push_str(b);
    push_decimal(&mut out, y);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_field_syntax() {
        let b = TokenBucket {
            max_tokens: 100,
            tokens_per_fill: 100,
            fill_ns: fill_interval_ns(),
        };
        assert_eq!(policy("default", &b), "\"default\";q=100;w=60");
        assert_eq!(service_limit("default", 0, 3), "\"default\";r=0;t=3");
    }

    fn fill_interval_ns() -> u128 {
        60_000_000_000
    }
}

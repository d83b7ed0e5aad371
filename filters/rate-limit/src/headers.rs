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

/// `"<name>";q=<max_tokens>;w=<window>`.
pub fn policy(name: &str, bucket: &TokenBucket) -> String {
    format!(
        "\"{name}\";q={};w={}",
        bucket.max_tokens,
        bucket.window_secs()
    )
}

/// `"<name>";r=<remaining>;t=<seconds>`.
pub fn service_limit(name: &str, remaining: u64, reset_secs: u64) -> String {
    format!("\"{name}\";r={remaining};t={reset_secs}")
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

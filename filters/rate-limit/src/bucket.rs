//! The arithmetic of one stored slot, as plain Rust over plain data (no host calls).
//!
//! A slot is one shared-data value of [`SLOT_BYTES`] bytes: `level` (u128), `seen` (u64, the
//! host clock in ns when the slot was last granted from) and `owner` (u64, the fingerprint of
//! the key the slot belongs to; 0: empty). All little-endian.
//!
//! **Token buckets** store one number, as Envoy's `AtomicTokenBucketImpl` does: a virtual
//! time `level` in scaled units (ns × `tokens_per_fill`). The bucket holds
//! `min(max_tokens, (now·tpf − level) / fill_ns)` tokens; taking one adds `fill_ns` to
//! `level`. The refill is therefore continuous at `tokens_per_fill / fill_interval` tokens per
//! second (not in steps), and exact: integers only, no rounding drift. A full bucket and an
//! empty slot behave the same, so a slot whose bucket is full again can be reused by another
//! key without losing anything.
//!
//! **Concurrency counters** (L4) store the count of open connections in `level`.

/// Bytes of one stored slot.
pub const SLOT_BYTES: usize = 32;

/// One slot's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slot {
    /// Token buckets: the virtual time (ns × tokens_per_fill). Counters: the count.
    pub level: u128,
    /// The host clock (ns) when the slot was last updated by a grant.
    pub seen: u64,
    /// Fingerprint of the key owning the slot; 0: empty.
    pub owner: u64,
}

impl Slot {
    /// The stored form.
    pub fn encode(&self) -> [u8; SLOT_BYTES] {
        let mut out = [0u8; SLOT_BYTES];
        let (level, rest) = out.split_at_mut(16);
        let (seen, owner) = rest.split_at_mut(8);
        level.copy_from_slice(&self.level.to_le_bytes());
        seen.copy_from_slice(&self.seen.to_le_bytes());
        owner.copy_from_slice(&self.owner.to_le_bytes());
        out
    }

    /// Reads a stored value; anything that is not exactly a slot reads as an empty slot
    /// (so a foreign or corrupt value is overwritten, never trusted).
    pub fn decode(bytes: &[u8]) -> Slot {
        let Ok(bytes) = <&[u8; SLOT_BYTES]>::try_from(bytes) else {
            return Slot::default();
        };
        let (level, rest) = bytes.split_at(16);
        let (seen, owner) = rest.split_at(8);
        let le16 = |b: &[u8]| {
            <[u8; 16]>::try_from(b)
                .map(u128::from_le_bytes)
                .unwrap_or(0)
        };
        let le8 = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_le_bytes).unwrap_or(0);
        Slot {
            level: le16(level),
            seen: le8(seen),
            owner: le8(owner),
        }
    }
}

/// A token bucket's parameters (validated: every field non-zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Capacity (Envoy's `max_tokens`).
    pub max_tokens: u32,
    /// Tokens added per `fill_ns` (Envoy's `tokens_per_fill`).
    pub tokens_per_fill: u32,
    /// The fill interval in ns.
    pub fill_ns: u128,
}

/// What taking a token answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// A token was taken.
    pub allowed: bool,
    /// Tokens left after this request.
    pub remaining: u64,
    /// ns until the bucket holds one more token than `remaining` (always > 0).
    pub next_token_ns: u128,
    /// The slot to store (`None`: nothing changed, nothing to write).
    pub store: Option<Slot>,
}

impl TokenBucket {
    /// Takes one token from `slot` at host time `now` (ns), for the key `owner`.
    ///
    /// - Idle time refills at most to `max_tokens` (the level is raised to
    ///   `now − max_tokens·cost` first), so a long idle gap never overflows or over-fills.
    /// - The clock going backwards (`now < seen`) counts as no time passing: the level moves
    ///   back by the same amount, so the tokens left stay what they were, and refill resumes
    ///   from the new clock (never a bucket stuck empty until the clock catches up).
    /// - All arithmetic is u128 and saturating; the largest values the config admits
    ///   (`u32` tokens, a 10,000-year interval, a u64 ns clock) stay far below u128's range.
    pub fn take(&self, slot: &Slot, now: u64, owner: u64) -> Taken {
        let tpf = u128::from(self.tokens_per_fill);
        let cost = self.fill_ns.max(1);
        let span = self.span();
        let scaled_now = self.scaled_with(now, span);
        let mut level = slot.level;
        let mut rebased = false;
        if slot.owner != owner {
            level = 0; // a fresh bucket: full
        } else if now < slot.seen {
            let back = mul(u128::from(slot.seen - now), tpf);
            level = level.saturating_sub(back);
            rebased = true;
        }
        level = level.max(scaled_now.saturating_sub(span));
        let after = level.saturating_add(cost);
        if after <= scaled_now {
            let remaining = div(scaled_now - after, cost);
            let next = after
                .saturating_add(mul(remaining.saturating_add(1), cost))
                .saturating_sub(scaled_now);
            Taken {
                allowed: true,
                remaining: u64::try_from(remaining).unwrap_or(u64::MAX),
                next_token_ns: div_ceil(next, tpf.max(1)).max(1),
                store: Some(Slot {
                    level: after,
                    seen: now,
                    owner,
                }),
            }
        } else {
            Taken {
                allowed: false,
                remaining: 0,
                next_token_ns: div_ceil(after - scaled_now, tpf.max(1)).max(1),
                // A refusal writes nothing, except the rebase after the clock went back:
                // from then on time counts from the new clock.
                store: rebased.then_some(Slot {
                    level,
                    seen: now,
                    owner,
                }),
            }
        }
    }

    /// Whether `slot` (of any owner) would be a full bucket at `now`: reusing it for another
    /// key loses nothing.
    pub fn is_idle(&self, slot: &Slot, now: u64) -> bool {
        let span = self.span();
        slot.owner == 0
            || now < slot.seen
            || slot.level.saturating_add(span) <= self.scaled_with(now, span)
    }

    /// One bucket's span in scaled units: `max_tokens · fill_ns`.
    fn span(&self) -> u128 {
        mul(u128::from(self.max_tokens), self.fill_ns.max(1))
    }

    /// The scaled clock: `now · tokens_per_fill + max_tokens · fill_ns`. The offset (one
    /// bucket's span, the same in every worker) keeps a full bucket representable at any
    /// clock value, 0 included, with no signed arithmetic.
    fn scaled_with(&self, now: u64, span: u128) -> u128 {
        mul(u128::from(now), u128::from(self.tokens_per_fill)).saturating_add(span)
    }

    /// Seconds to refill from empty (`max_tokens · fill_interval / tokens_per_fill`, rounded
    /// up, at least 1): the `w` of `RateLimit-Policy`.
    pub fn window_secs(&self) -> u64 {
        let ns = u128::from(self.max_tokens)
            .saturating_mul(self.fill_ns)
            .div_ceil(u128::from(self.tokens_per_fill.max(1)));
        ceil_secs(ns)
    }
}

/// ns → whole seconds, rounded up, at least 1 (`Retry-After`, `t`, `w`).
pub fn ceil_secs(ns: u128) -> u64 {
    u64::try_from(div_ceil(ns, 1_000_000_000).max(1)).unwrap_or(u64::MAX)
}

/// `a / b` (`b > 0`). Wasm has no 128-bit division: a `u128` one is a library call of
/// several hundred operators, so operands that fit (the usual case: a bucket's level
/// differences and intervals) divide as `u64`.
fn div(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) if b > 0 => u128::from(a / b),
        _ => a / b,
    }
}

/// `a.saturating_mul(b)`. Operands that fit in `u64` (the usual case: a clock, a count, an
/// interval) cannot overflow `u128`, so they multiply without the overflow check, which on
/// wasm is a library call of a few hundred operators.
fn mul(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) => u128::from(a) * u128::from(b),
        _ => a.saturating_mul(b),
    }
}

/// `a.div_ceil(b)` (`b > 0`), as [`div`].
fn div_ceil(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) if b > 0 => u128::from(a.div_ceil(b)),
        _ => a.div_ceil(b),
    }
}

/// A concurrency limit (open connections per key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// The most open at once.
    pub max: u32,
}

impl Concurrency {
    /// One more open, if under the limit: the slot to store, or `None` (limited).
    pub fn enter(&self, slot: &Slot, now: u64, owner: u64) -> Option<Slot> {
        let count = if slot.owner == owner { slot.level } else { 0 };
        (count < u128::from(self.max)).then(|| Slot {
            level: count + 1,
            seen: now,
            owner,
        })
    }

    /// One fewer open: the slot to store, or `None` when `slot` is no longer `owner`'s (it
    /// was evicted: nothing to give back) or already at 0.
    pub fn leave(&self, slot: &Slot, owner: u64) -> Option<Slot> {
        (slot.owner == owner && slot.level > 0).then(|| Slot {
            level: slot.level - 1,
            ..*slot
        })
    }

    /// No connection open: reusing the slot loses nothing.
    pub fn is_idle(&self, slot: &Slot) -> bool {
        slot.owner == 0 || slot.level == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn divisions_and_products_agree_with_u128() {
        let big = u128::from(u64::MAX);
        for a in [0, 1, 7, 999, big - 1, big, big + 1, big * 3 + 5, u128::MAX] {
            for b in [1, 2, 3, 1_000_000_000, big, big + 1, u128::MAX] {
                assert_eq!(div(a, b), a / b, "{a} / {b}");
                assert_eq!(div_ceil(a, b), a.div_ceil(b), "{a} / {b}");
                assert_eq!(mul(a, b), a.saturating_mul(b), "{a} * {b}");
            }
        }
    }

    fn bucket(max: u32, per_fill: u32, fill_secs: u64) -> TokenBucket {
        TokenBucket {
            max_tokens: max,
            tokens_per_fill: per_fill,
            fill_ns: u128::from(fill_secs) * u128::from(SEC),
        }
    }

    /// Takes `n` tokens at `now`, returning how many were granted and the final slot.
    fn drain(b: &TokenBucket, slot: &mut Slot, now: u64, n: u32) -> u32 {
        let mut granted = 0;
        for _ in 0..n {
            let t = b.take(slot, now, 7);
            if let Some(s) = t.store {
                *slot = s;
            }
            if t.allowed {
                granted += 1;
            }
        }
        granted
    }

    #[test]
    fn slot_round_trips_and_garbage_is_empty() {
        let s = Slot {
            level: u128::MAX - 3,
            seen: 42,
            owner: 9,
        };
        assert_eq!(Slot::decode(&s.encode()), s);
        assert_eq!(Slot::decode(b"short"), Slot::default());
        assert_eq!(Slot::decode(&[1u8; 33]), Slot::default());
    }

    #[test]
    fn a_fresh_bucket_grants_exactly_max_tokens() {
        let b = bucket(5, 5, 60);
        let mut slot = Slot::default();
        let now = 1_700_000_000 * SEC;
        assert_eq!(drain(&b, &mut slot, now, 20), 5);
        let t = b.take(&slot, now, 7);
        assert!(!t.allowed);
        // One token every 12 s.
        assert_eq!(t.next_token_ns, 12 * u128::from(SEC));
    }

    #[test]
    fn refill_is_continuous_and_capped() {
        let b = bucket(10, 10, 10); // 1 token/s
        let mut slot = Slot::default();
        let t0 = 1_000 * SEC;
        assert_eq!(drain(&b, &mut slot, t0, 10), 10);
        assert_eq!(drain(&b, &mut slot, t0 + SEC / 2, 5), 0);
        assert_eq!(drain(&b, &mut slot, t0 + 3 * SEC, 5), 3);
        // A long idle gap (a year) fills to max_tokens, not beyond.
        assert_eq!(drain(&b, &mut slot, t0 + 365 * 24 * 3600 * SEC, 50), 10);
    }

    #[test]
    fn remaining_and_next_token() {
        let b = bucket(3, 1, 2); // one token per 2 s
        let slot = Slot::default();
        let t = b.take(&slot, 100 * SEC, 7);
        assert!(t.allowed);
        assert_eq!(t.remaining, 2);
        assert_eq!(t.next_token_ns, 2 * u128::from(SEC));
        assert_eq!(b.window_secs(), 6);
    }

    #[test]
    fn the_clock_going_backwards_keeps_the_tokens_left() {
        let b = bucket(4, 4, 60);
        let mut slot = Slot::default();
        let t0 = 10_000 * SEC;
        assert_eq!(drain(&b, &mut slot, t0, 2), 2);
        // The clock jumps back an hour: two tokens are still there, not zero, not four.
        assert_eq!(drain(&b, &mut slot, t0 - 3600 * SEC, 10), 2);
        // Refill resumes from the new clock: 15 s later, one token.
        let t1 = t0 - 3600 * SEC + 15 * SEC;
        assert_eq!(drain(&b, &mut slot, t1, 10), 1);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let b = TokenBucket {
            max_tokens: u32::MAX,
            tokens_per_fill: u32::MAX,
            fill_ns: 315_576_000_000 * u128::from(SEC),
        };
        let mut slot = Slot::default();
        assert_eq!(drain(&b, &mut slot, u64::MAX, 3), 3);
        assert_eq!(drain(&b, &mut slot, 0, 3), 3);
        let tiny = bucket(1, 1, 1);
        let mut slot = Slot {
            level: u128::MAX,
            seen: u64::MAX,
            owner: 7,
        };
        let t = tiny.take(&slot, u64::MAX, 7);
        assert!(
            !t.allowed,
            "a level at u128::MAX is an empty bucket, not a wrap"
        );
        assert_eq!(drain(&tiny, &mut slot, 5, 1), 0);
        assert!(b.window_secs() > 0);
    }

    #[test]
    fn another_owner_gets_a_fresh_bucket_and_idle_slots_are_reusable() {
        let b = bucket(2, 2, 60);
        let mut slot = Slot::default();
        let now = 500 * SEC;
        assert_eq!(drain(&b, &mut slot, now, 2), 2);
        assert!(!b.is_idle(&slot, now));
        let t = b.take(&slot, now, 8);
        assert!(t.allowed, "key 8 does not inherit key 7's empty bucket");
        assert!(b.is_idle(&slot, now + 60 * SEC));
        assert!(b.is_idle(&Slot::default(), now));
    }

    #[test]
    fn concurrency_enter_and_leave() {
        let c = Concurrency { max: 2 };
        let s0 = Slot::default();
        let s1 = c.enter(&s0, 1, 5).unwrap();
        let s2 = c.enter(&s1, 2, 5).unwrap();
        assert_eq!(c.enter(&s2, 3, 5), None);
        assert_eq!(
            c.enter(&s2, 3, 6).unwrap().level,
            1,
            "another key starts at 0"
        );
        let s3 = c.leave(&s2, 5).unwrap();
        assert_eq!(s3.level, 1);
        assert_eq!(c.leave(&s3, 6), None, "an evicted slot is not decremented");
        assert!(c.is_idle(&c.leave(&s3, 5).unwrap()));
    }
}

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
    /// The stored form. (Fixed-size chunks: plain 8- and 16-byte stores, where
    /// `copy_from_slice` is a bounds-checked call at the crate's opt-level.)
    pub fn encode(&self) -> [u8; SLOT_BYTES] {
        let mut out = [0u8; SLOT_BYTES];
        if let Some((level, rest)) = out.split_first_chunk_mut::<16>() {
            *level = self.level.to_le_bytes();
            if let Some((seen, owner)) = rest.split_first_chunk_mut::<8>() {
                *seen = self.seen.to_le_bytes();
                if let Some(owner) = owner.first_chunk_mut::<8>() {
                    *owner = self.owner.to_le_bytes();
                }
            }
        }
        out
    }

    /// Reads a stored value; anything that is not exactly a slot reads as an empty slot
    /// (so a foreign or corrupt value is overwritten, never trusted).
    pub fn decode(bytes: &[u8]) -> Slot {
        if bytes.len() != SLOT_BYTES {
            return Slot::default();
        }
        let Some((level, rest)) = bytes.split_first_chunk::<16>() else {
            return Slot::default();
        };
        let Some((seen, owner)) = rest.split_first_chunk::<8>() else {
            return Slot::default();
        };
        let Some(owner) = owner.first_chunk::<8>() else {
            return Slot::default();
        };
        Slot {
            level: u128::from_le_bytes(*level),
            seen: u64::from_le_bytes(*seen),
            owner: u64::from_le_bytes(*owner),
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
    /// Takes one token from `slot` at host time `now` (ns), for the key `owner`
    /// ([`Rate::take`]).
    pub fn take(&self, slot: &Slot, now: u64, owner: u64) -> Taken {
        Rate::new(self).take(slot, now, owner)
    }

    /// Whether `slot` (of any owner) would be a full bucket at `now`: reusing it for another
    /// key loses nothing ([`Rate::is_idle`]).
    pub fn is_idle(&self, slot: &Slot, now: u64) -> bool {
        Rate::new(self).is_idle(slot, now)
    }

    /// One bucket's span in scaled units: `max_tokens · fill_ns`.
    fn span(&self) -> u128 {
        u128::from(self.max_tokens).saturating_mul(self.fill_ns.max(1))
    }

    /// Seconds to refill from empty (`max_tokens · fill_interval / tokens_per_fill`, rounded
    /// up, at least 1): the `w` of `RateLimit-Policy`.
    pub fn window_secs(&self) -> u64 {
        let ns = div_ceil(
            u128::from(self.max_tokens).saturating_mul(self.fill_ns),
            u128::from(self.tokens_per_fill.max(1)),
        );
        ceil_secs(ns)
    }
}

/// A bucket's constants, computed once per configuration (the request path's arithmetic
/// then starts from them): `tokens_per_fill`, the cost of one token in scaled units
/// (`fill_ns`) and one bucket's span (`max_tokens · fill_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    tpf: u64,
    cost: u128,
    span: u128,
}

impl Rate {
    /// `bucket`'s constants.
    pub fn new(bucket: &TokenBucket) -> Rate {
        Rate {
            tpf: u64::from(bucket.tokens_per_fill),
            cost: bucket.fill_ns.max(1),
            span: bucket.span(),
        }
    }

    /// The fill interval in ns (at least 1).
    pub fn fill_ns(&self) -> u128 {
        self.cost
    }

    /// The scaled clock: `now · tokens_per_fill + max_tokens · fill_ns`. The offset (one
    /// bucket's span, the same in every worker) keeps a full bucket representable at any
    /// clock value, 0 included, with no signed arithmetic.
    fn scaled(&self, now: u64) -> u128 {
        wide(now, self.tpf).saturating_add(self.span)
    }

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
        let cost = self.cost;
        let span = self.span;
        let scaled_now = self.scaled(now);
        let mut level = slot.level;
        let mut rebased = false;
        if slot.owner != owner {
            level = 0; // a fresh bucket: full
        } else if now < slot.seen {
            level = level.saturating_sub(wide(slot.seen - now, self.tpf));
            rebased = true;
        }
        level = level.max(scaled_now.saturating_sub(span));
        let after = level.saturating_add(cost);
        let tpf = u128::from(self.tpf.max(1));
        if after <= scaled_now {
            // remaining = ⌊d / cost⌋ tokens; the next one is `cost − d mod cost` away
            // (`after + (remaining + 1)·cost − scaled_now`, which stays far below u128::MAX).
            let (remaining, rest) = div_rem(scaled_now - after, cost);
            Taken {
                allowed: true,
                remaining: u64::try_from(remaining).unwrap_or(u64::MAX),
                next_token_ns: div_ceil(cost - rest, tpf).max(1),
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
                next_token_ns: div_ceil(after - scaled_now, tpf).max(1),
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
        slot.owner == 0
            || now < slot.seen
            || slot.level.saturating_add(self.span) <= self.scaled(now)
    }
}

/// `a · b` as u128 from 32-bit halves: the product of two u64 never overflows u128, and
/// this is a few inline operators where the u128 multiplication is a library call on wasm.
fn wide(a: u64, b: u64) -> u128 {
    const LOW: u64 = 0xffff_ffff;
    let (a0, a1, b0, b1) = (a & LOW, a >> 32, b & LOW, b >> 32);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let mid = (p00 >> 32) + (p01 & LOW) + (p10 & LOW);
    let low = (p00 & LOW) | (mid << 32);
    let high = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    (u128::from(high) << 64) | u128::from(low)
}

/// `(a / b, a % b)` (`b > 0`). Wasm has no 128-bit division: operands that fit (the usual
/// case: a bucket's level differences and intervals) divide as `u64`, the rest in
/// [`div_rem_wide`].
fn div_rem(a: u128, b: u128) -> (u128, u128) {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) if b > 0 => (u128::from(a / b), u128::from(a % b)),
        _ => div_rem_wide(a, b),
    }
}

/// `(a / b, a % b)` for operands past `u64`, by shift and subtract: one step per bit of the
/// quotient (≤ 33 for [`Rate::take`]'s token count, whose quotient is below `max_tokens`).
/// compiler_builtins' `u128` division (what `/` links) was ~1 KB of the module for a path
/// only buckets of more than 2^64 scaled units take. `b == 0` answers `(0, a)` (the callers
/// pass `b > 0`).
#[inline(never)]
fn div_rem_wide(a: u128, b: u128) -> (u128, u128) {
    if b == 0 || b > a {
        return (0, a);
    }
    let shift = b.leading_zeros() - a.leading_zeros();
    let mut d = b << shift;
    let (mut q, mut r) = (0u128, a);
    for _ in 0..=shift {
        q <<= 1;
        if r >= d {
            r -= d;
            q |= 1;
        }
        d >>= 1;
    }
    (q, r)
}

/// ns → whole seconds, rounded up, at least 1 (`Retry-After`, `t`, `w`).
pub fn ceil_secs(ns: u128) -> u64 {
    u64::try_from(div_ceil(ns, 1_000_000_000).max(1)).unwrap_or(u64::MAX)
}

/// `a.div_ceil(b)` (`b > 0`), as [`div_rem`].
fn div_ceil(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) if b > 0 => u128::from(a.div_ceil(b)),
        _ => match div_rem_wide(a, b) {
            (q, 0) => q,
            (q, _) => q + 1,
        },
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
                assert_eq!(div_rem(a, b), (a / b, a % b), "{a} / {b}");
                assert_eq!(div_ceil(a, b), a.div_ceil(b), "{a} / {b}");
            }
        }
    }

    #[test]
    fn wide_products_agree_with_u128() {
        let v = [
            0,
            1,
            2,
            0xffff_ffff,
            0x1_0000_0000,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        for a in v
            .iter()
            .copied()
            .chain([1_700_000_000_000_000_000, 12_345_678_901])
        {
            for b in v.iter().copied().chain([1_000_000_000, 4_294_967_295]) {
                assert_eq!(wide(a, b), u128::from(a) * u128::from(b), "{a} * {b}");
            }
        }
    }

    /// The bucket arithmetic as first written (u128 throughout, from the parameters on
    /// every call): [`Rate::take`] and [`Rate::is_idle`] must answer exactly as it does.
    fn reference_take(b: &TokenBucket, slot: &Slot, now: u64, owner: u64) -> Taken {
        let tpf = u128::from(b.tokens_per_fill);
        let cost = b.fill_ns.max(1);
        let span = u128::from(b.max_tokens).saturating_mul(cost);
        let scaled_now = u128::from(now).saturating_mul(tpf).saturating_add(span);
        let mut level = slot.level;
        let mut rebased = false;
        if slot.owner != owner {
            level = 0;
        } else if now < slot.seen {
            level = level.saturating_sub(u128::from(slot.seen - now).saturating_mul(tpf));
            rebased = true;
        }
        level = level.max(scaled_now.saturating_sub(span));
        let after = level.saturating_add(cost);
        if after <= scaled_now {
            let remaining = (scaled_now - after) / cost;
            let next = after
                .saturating_add(remaining.saturating_add(1).saturating_mul(cost))
                .saturating_sub(scaled_now);
            Taken {
                allowed: true,
                remaining: u64::try_from(remaining).unwrap_or(u64::MAX),
                next_token_ns: next.div_ceil(tpf.max(1)).max(1),
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
                next_token_ns: (after - scaled_now).div_ceil(tpf.max(1)).max(1),
                store: rebased.then_some(Slot {
                    level,
                    seen: now,
                    owner,
                }),
            }
        }
    }

    #[test]
    fn take_and_idle_agree_with_the_reference_arithmetic() {
        let buckets = [
            bucket(1, 1, 1),
            bucket(5, 5, 60),
            bucket(3, 1, 2),
            bucket(1_000_000_000, 1_000_000_000, 1),
            TokenBucket {
                max_tokens: 7,
                tokens_per_fill: 3,
                fill_ns: 1_234_567,
            },
            TokenBucket {
                max_tokens: u32::MAX,
                tokens_per_fill: u32::MAX,
                fill_ns: 315_576_000_000 * u128::from(SEC),
            },
            TokenBucket {
                max_tokens: u32::MAX,
                tokens_per_fill: 1,
                fill_ns: 1,
            },
        ];
        let clocks = [0, 1, 999, SEC, 1_700_000_000 * SEC, u64::MAX / 2, u64::MAX];
        for b in &buckets {
            let rate = Rate::new(b);
            for &now in &clocks {
                // Slots: empty, another key's, and this key's after a few takes at
                // assorted times (clock forwards and backwards).
                let mut slots = vec![
                    Slot::default(),
                    Slot {
                        level: 5,
                        seen: 3,
                        owner: 8,
                    },
                ];
                let mut slot = Slot::default();
                for &t in clocks.iter().chain(&[now, now, now]) {
                    if let Some(s) = reference_take(b, &slot, t, 7).store {
                        slot = s;
                    }
                    slots.push(slot);
                }
                slots.push(Slot {
                    level: u128::MAX,
                    seen: u64::MAX,
                    owner: 7,
                });
                for s in &slots {
                    assert_eq!(
                        rate.take(s, now, 7),
                        reference_take(b, s, now, 7),
                        "{b:?} {s:?} {now}"
                    );
                    let span = u128::from(b.max_tokens).saturating_mul(b.fill_ns.max(1));
                    let scaled = u128::from(now)
                        .saturating_mul(u128::from(b.tokens_per_fill))
                        .saturating_add(span);
                    let idle =
                        s.owner == 0 || now < s.seen || s.level.saturating_add(span) <= scaled;
                    assert_eq!(rate.is_idle(s, now), idle, "{b:?} {s:?} {now}");
                }
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

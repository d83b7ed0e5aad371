//! The deterministic generator of the randomised tests (sdk-ext's own and, through
//! `sdk_ext::testing::xorshift`, the filters'): the same seed gives the same cases.

/// A xorshift32 stream from `seed` (non-zero): each call steps the state and returns it.
pub fn xorshift(seed: u32) -> impl FnMut() -> usize {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as usize
    }
}

/// A xorshift64 stream from `seed` (non-zero), for cases that need 64-bit values.
pub fn xorshift64(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

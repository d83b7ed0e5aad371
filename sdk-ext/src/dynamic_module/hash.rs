//! The hasher of the in-process shared data (`shim.rs`).

/// The shared-data map's hasher: a per-process random seed and one folded 64×64→128-bit
/// multiply per 8 key bytes (the hot path reads and writes one slot per request; std's
/// SipHash-1-3 cost ~300 instructions per key of ~40 bytes, this ~40). Keys are chosen by
/// filter code (slot names, JWKS names), and the seed keeps their layout in the table
/// unpredictable from outside the process, as Envoy's seeded absl hash does for its wasm
/// host's shared data.
#[derive(Clone, Copy)]
pub(crate) struct SeededHash(u64);

impl SeededHash {
    pub(crate) fn new() -> Self {
        use std::hash::BuildHasher;
        // One SipHash with std's random keys, per process.
        SeededHash(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1)
    }
}

impl std::hash::BuildHasher for SeededHash {
    type Hasher = Folded;
    fn build_hasher(&self) -> Folded {
        Folded(self.0)
    }
}

const FOLD: u64 = 0x9e37_79b9_7f4a_7c15;

fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

/// See [`SeededHash`].
pub(crate) struct Folded(u64);

impl std::hash::Hasher for Folded {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = fold(h ^ u64::from_le_bytes(w), FOLD);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            if let Some(dst) = w.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            // The length is mixed in too (`[u8]`'s Hash writes it first), so zero padding
            // cannot make two keys equal.
            h = fold(h ^ u64::from_le_bytes(w), FOLD ^ rest.len() as u64);
        }
        self.0 = h;
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = fold(self.0 ^ n, FOLD);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn keys_hash_apart_and_the_same_key_alike() {
        let s = SeededHash::new();
        let h = |k: &[u8]| s.hash_one(k);
        assert_eq!(h(b"rate-limit/bench/0/17"), h(b"rate-limit/bench/0/17"));
        // Keys that differ in one byte, in the last partial word, or only by zero padding.
        let keys: [&[u8]; 7] = [
            b"",
            b"a",
            b"a\0",
            b"rate-limit/bench/0/17",
            b"rate-limit/bench/0/18",
            b"rate-limit/bench/0/170",
            b"rate-limit/bench/1/17",
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(h(a), h(b), "{a:?} / {b:?}");
            }
        }
        // A Vec<u8> key is found with a &[u8] probe (the map is keyed by Vec<u8>).
        assert_eq!(s.hash_one(b"jwks".to_vec()), s.hash_one(&b"jwks"[..]));
        // Another process (seed) lays keys out differently.
        let t = SeededHash::new();
        assert_ne!(s.hash_one(b"jwks"), t.hash_one(b"jwks"));
    }
}

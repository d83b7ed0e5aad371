//! The verified-token cache (Envoy's `jwt_cache_config`): tokens whose signature verified,
//! bounded, oldest entry evicted first. Keyed by the token's bytes in a `HashMap`, then full
//! equality: a crafted token can never alias a cached one. A hit skips UTF-8 validation,
//! parsing and the signature; issuer, audience and time are still checked on every use, so
//! an entry never outlives its `exp`.
//!
//! The hash ([`TailHash`]) is std's randomly keyed SipHash over the token's length and its
//! last [`TAIL`] bytes, not all of it: a hit costs a hash of 24 bytes and one comparison,
//! where hashing a whole RS256 token (~600 bytes) was most of a hit's work. The tail is the
//! signature, which differs between any two verified tokens; only verified tokens are ever
//! inserted and the map holds at most `capacity` of them, so tokens crafted to share a
//! cached token's tail cost one full comparison each and cannot build long probe chains.

use crate::token::Claims;
use serde_json::{Map, Value};
use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

/// How many trailing bytes of a token its hash covers (with its length).
pub const TAIL: usize = 16;

/// The cache's hasher: a [`RandomState`] key, each written slice hashed by its length and
/// its last [`TAIL`] bytes (as two words; a shorter slice zero-padded).
#[derive(Debug, Default, Clone)]
pub struct TailHash(RandomState);

impl BuildHasher for TailHash {
    type Hasher = Tail;
    fn build_hasher(&self) -> Tail {
        Tail(self.0.build_hasher())
    }
}

/// See [`TailHash`].
#[derive(Debug)]
pub struct Tail(DefaultHasher);

impl Hasher for Tail {
    fn write(&mut self, bytes: &[u8]) {
        let tail = bytes
            .get(bytes.len().saturating_sub(TAIL)..)
            .unwrap_or(bytes);
        let mut words = [0u8; TAIL];
        if let Some(to) = words.get_mut(..tail.len()) {
            to.copy_from_slice(tail);
        }
        let (a, b) = words.split_at(TAIL / 2);
        self.0.write_u64(bytes.len() as u64);
        self.0
            .write_u64(u64::from_le_bytes(a.try_into().unwrap_or_default()));
        self.0
            .write_u64(u64::from_le_bytes(b.try_into().unwrap_or_default()));
    }
    /// The length prefix a `[u8]` key writes before its bytes: [`write`](Self::write)
    /// hashes the length with them.
    fn write_usize(&mut self, _: usize) {}
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// What a verified token leaves behind for the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The registered claims.
    pub claims: Claims,
    /// All payload claims (for `claim_to_headers`).
    pub payload: Map<String, Value>,
    /// The payload segment (for `forward_payload_header`).
    pub payload_b64: String,
}

/// A bounded map from token to its verification.
#[derive(Debug, Default)]
pub struct TokenCache {
    capacity: usize,
    entries: HashMap<Rc<[u8]>, Rc<Verified>, TailHash>,
    order: VecDeque<Rc<[u8]>>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0: caches nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::with_capacity_and_hasher(capacity.min(1024), TailHash::default()),
            order: VecDeque::with_capacity(capacity.min(1024)),
        }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The verification of `token`, if cached (the bytes of a cached token are the ones
    /// that verified, so a hit is valid UTF-8).
    pub fn get(&self, token: &[u8]) -> Option<Rc<Verified>> {
        self.entries.get(token).cloned()
    }

    /// Caches a verification, evicting the oldest entry when full.
    pub fn insert(&mut self, token: &[u8], verified: Rc<Verified>) {
        if self.capacity == 0 {
            return;
        }
        if let Some(entry) = self.entries.get_mut(token) {
            *entry = verified;
            return;
        }
        let key: Rc<[u8]> = Rc::from(token);
        self.entries.insert(Rc::clone(&key), verified);
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Drops the entry for `token` (e.g. once it expired).
    pub fn remove(&mut self, token: &[u8]) {
        if self.entries.remove(token).is_some() {
            self.order.retain(|k| &**k != token);
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u64) -> Rc<Verified> {
        Rc::new(Verified {
            claims: Claims {
                exp: Some(n),
                ..Claims::default()
            },
            payload: Map::new(),
            payload_b64: String::new(),
        })
    }

    #[test]
    fn bounded_oldest_first() {
        let mut c = TokenCache::new(2);
        c.insert(b"a", v(1));
        c.insert(b"b", v(2));
        c.insert(b"a", v(1)); // already there: no reordering, no growth
        c.insert(b"c", v(3));
        assert_eq!(c.len(), 2);
        assert!(c.get(b"a").is_none());
        assert_eq!(c.get(b"c").unwrap().claims.exp, Some(3));
        c.remove(b"b");
        assert_eq!(c.len(), 1);
        let mut off = TokenCache::new(0);
        off.insert(b"a", v(1));
        assert!(off.is_empty() && !off.enabled());
    }

    #[test]
    fn only_the_exact_token_hits() {
        let mut c = TokenCache::new(4);
        c.insert(b"a.b.c", v(1));
        assert!(c.get(b"a.b.d").is_none());
        assert!(c.get(b"a.b.c ").is_none());
        assert!(c.get(b"a.b.c").is_some());
    }

    #[test]
    fn same_tail_different_head_never_hits() {
        // Tokens that share their last TAIL bytes and their length hash alike; equality
        // still tells them apart.
        let tail = "s".repeat(TAIL + 8);
        let (a, b) = (format!("aaaa.{tail}"), format!("bbbb.{tail}"));
        let mut c = TokenCache::new(8);
        c.insert(a.as_bytes(), v(1));
        assert!(c.get(b.as_bytes()).is_none());
        c.insert(b.as_bytes(), v(2));
        assert_eq!(c.get(a.as_bytes()).unwrap().claims.exp, Some(1));
        assert_eq!(c.get(b.as_bytes()).unwrap().claims.exp, Some(2));
        c.remove(a.as_bytes());
        assert!(c.get(a.as_bytes()).is_none());
        assert_eq!(c.get(b.as_bytes()).unwrap().claims.exp, Some(2));
        // Short tokens (under TAIL bytes) hash whole.
        c.insert(b"x", v(3));
        assert!(c.get(b"y").is_none());
        assert!(c.get(b"x").is_some());
    }
}

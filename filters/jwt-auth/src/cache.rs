//! The verified-token cache (Envoy's `jwt_cache_config`): tokens whose signature verified,
//! keyed by the SHA-256 of the token, bounded, oldest entry evicted first. A hit skips
//! parsing and the signature; issuer, audience and time are still checked on every use,
//! so an entry never outlives its `exp`.

use crate::token::Claims;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

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

/// A cache key: SHA-256 of the token.
pub type CacheKey = [u8; 32];

/// SHA-256 of `token`.
pub fn key(token: &[u8]) -> CacheKey {
    Sha256::digest(token).into()
}

/// A bounded map from token hash to its verification.
#[derive(Debug, Default)]
pub struct TokenCache {
    capacity: usize,
    entries: HashMap<CacheKey, Rc<Verified>>,
    order: VecDeque<CacheKey>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0: caches nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::with_capacity(capacity.min(1024)),
            order: VecDeque::with_capacity(capacity.min(1024)),
        }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The verification of the token with hash `key`, if cached.
    pub fn get(&self, key: &CacheKey) -> Option<Rc<Verified>> {
        self.entries.get(key).cloned()
    }

    /// Caches a verification, evicting the oldest entry when full.
    pub fn insert(&mut self, key: CacheKey, verified: Rc<Verified>) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.insert(key, verified).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Drops the entry for `key` (e.g. once its token expired).
    pub fn remove(&mut self, key: &CacheKey) {
        if self.entries.remove(key).is_some() {
            self.order.retain(|k| k != key);
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
        c.insert(key(b"a"), v(1));
        c.insert(key(b"b"), v(2));
        c.insert(key(b"a"), v(1)); // already there: no reordering, no growth
        c.insert(key(b"c"), v(3));
        assert_eq!(c.len(), 2);
        assert!(c.get(&key(b"a")).is_none());
        assert_eq!(c.get(&key(b"c")).unwrap().claims.exp, Some(3));
        c.remove(&key(b"b"));
        assert_eq!(c.len(), 1);
        let mut off = TokenCache::new(0);
        off.insert(key(b"a"), v(1));
        assert!(off.is_empty() && !off.enabled());
    }

    #[test]
    fn keys_differ_for_near_identical_tokens() {
        assert_ne!(key(b"a.b.c"), key(b"a.b.d"));
    }
}

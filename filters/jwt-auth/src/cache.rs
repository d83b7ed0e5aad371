//! The verified-token cache (Envoy's `jwt_cache_config`): tokens whose signature verified,
//! bounded, oldest entry evicted first. Keyed by the token itself in a `HashMap` (std's
//! randomly keyed SipHash, then full equality): a crafted token can never alias a cached
//! one, and a hit costs one hash of the token, not a SHA-256. A hit skips parsing and the
//! signature; issuer, audience and time are still checked on every use, so an entry never
//! outlives its `exp`.

use crate::token::Claims;
use serde_json::{Map, Value};
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

/// A bounded map from token hash to its verification.
#[derive(Debug, Default)]
pub struct TokenCache {
    capacity: usize,
    entries: HashMap<Rc<str>, Rc<Verified>>,
    order: VecDeque<Rc<str>>,
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

    /// The verification of `token`, if cached.
    pub fn get(&self, token: &str) -> Option<Rc<Verified>> {
        self.entries.get(token).cloned()
    }

    /// Caches a verification, evicting the oldest entry when full.
    pub fn insert(&mut self, token: &str, verified: Rc<Verified>) {
        if self.capacity == 0 {
            return;
        }
        if let Some(entry) = self.entries.get_mut(token) {
            *entry = verified;
            return;
        }
        let key: Rc<str> = Rc::from(token);
        self.entries.insert(Rc::clone(&key), verified);
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Drops the entry for `token` (e.g. once it expired).
    pub fn remove(&mut self, token: &str) {
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
        c.insert("a", v(1));
        c.insert("b", v(2));
        c.insert("a", v(1)); // already there: no reordering, no growth
        c.insert("c", v(3));
        assert_eq!(c.len(), 2);
        assert!(c.get("a").is_none());
        assert_eq!(c.get("c").unwrap().claims.exp, Some(3));
        c.remove("b");
        assert_eq!(c.len(), 1);
        let mut off = TokenCache::new(0);
        off.insert("a", v(1));
        assert!(off.is_empty() && !off.enabled());
    }

    #[test]
    fn only_the_exact_token_hits() {
        let mut c = TokenCache::new(4);
        c.insert("a.b.c", v(1));
        assert!(c.get("a.b.d").is_none());
        assert!(c.get("a.b.c ").is_none());
        assert!(c.get("a.b.c").is_some());
    }
}

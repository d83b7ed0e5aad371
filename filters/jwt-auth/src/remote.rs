//! When to fetch a remote JWKS, and what a fetch's answer does to the cached set: plain
//! Rust over the clock (seconds), no host calls.
//!
//! - A fresh set is used for `cache_duration`; a refresh starts at 90 % of it, so the
//!   set is normally replaced before it expires.
//! - A failed or garbage answer never replaces a good set: the old one stays in use and
//!   the fetch is retried with backoff (1 s, 2 s, 4 s … capped at 30 s).
//! - Until a first set arrives, requests that need it are refused (fail closed).
//! - A fetched set is also published in shared data ([`shared_key`]). A plugin that never
//!   fetches follows what is published there: a dynamic module's workers, whose root
//!   context (the fetcher) is the configuration's on Envoy's main thread. A fetcher (every
//!   Wasm VM's root context) uses its own answers only.

use crate::jwks::Jwks;
use std::rc::Rc;
use std::time::Duration;

const MAX_BACKOFF_SECS: u64 = 30;

/// One provider's remote JWKS.
#[derive(Debug)]
pub struct RemoteJwks {
    cache_duration: u64,
    jwks: Option<Rc<Jwks>>,
    fetched_at: u64,
    in_flight: Option<u32>,
    next_attempt: u64,
    failures: u32,
    warned_unavailable: bool,
    /// This plugin fetches (it dispatched, or tried to).
    fetcher: bool,
    /// The CAS of the published set this plugin follows (0: none yet).
    followed_cas: u32,
    /// Where fetched sets are published ([`shared_key`]) and their CAS.
    keys: (String, String),
}

/// The shared-data key a fetched set of `uri` via `cluster` is published under (its CAS is
/// published under the same key plus [`CAS_SUFFIX`], so followers read 4 bytes, not the
/// set, to see whether it changed).
pub fn shared_key(cluster: &str, uri: &str) -> String {
    format!("jwt-auth.jwks {cluster} {uri}")
}

/// See [`shared_key`].
pub const CAS_SUFFIX: &str = " cas";

/// The result of a fetch, as the filter saw it.
#[derive(Debug)]
pub enum FetchResult {
    /// A parsed set.
    Fetched(Jwks),
    /// Why it did not work (status, timeout, garbage).
    Failed(String),
}

impl RemoteJwks {
    /// Nothing fetched yet; fetched sets are published under `shared_key` ([`shared_key`]).
    pub fn new(cache_duration: Duration, shared_key: String) -> Self {
        let cas_key = format!("{shared_key}{CAS_SUFFIX}");
        Self {
            cache_duration: cache_duration.as_secs().max(1),
            jwks: None,
            fetched_at: 0,
            in_flight: None,
            next_attempt: 0,
            failures: 0,
            warned_unavailable: false,
            fetcher: false,
            followed_cas: 0,
            keys: (shared_key, cas_key),
        }
    }

    /// The shared-data keys of the published set and of its CAS.
    pub fn shared_keys(&self) -> (&str, &str) {
        (&self.keys.0, &self.keys.1)
    }

    /// Whether this plugin takes its sets from shared data (it never fetched).
    pub fn follows(&self) -> bool {
        !self.fetcher
    }

    /// Whether the published set with CAS `cas` is one this plugin has not adopted yet.
    pub fn is_new(&self, cas: u32) -> bool {
        cas != 0 && cas != self.followed_cas
    }

    /// Adopts the published set with CAS `cas` (`None`: it did not parse; not retried).
    pub fn adopt(&mut self, jwks: Option<Jwks>, cas: u32) {
        self.followed_cas = cas;
        if let Some(jwks) = jwks {
            self.jwks = Some(Rc::new(jwks));
            self.warned_unavailable = false;
        }
    }

    /// The current set (possibly past `cache_duration` while refreshes fail).
    pub fn jwks(&self) -> Option<&Rc<Jwks>> {
        self.jwks.as_ref()
    }

    /// Whether a fetch should start at `now`.
    pub fn due(&self, now: u64) -> bool {
        if self.in_flight.is_some() || now < self.next_attempt {
            return false;
        }
        match self.jwks {
            None => true,
            Some(_) => {
                // cache_duration is at most protobuf's Duration range (config time), but the
                // sum must not wrap whatever the clock says.
                let refresh_at = self
                    .fetched_at
                    .saturating_add(self.cache_duration - self.cache_duration / 10);
                now >= refresh_at
            }
        }
    }

    /// A fetch was dispatched with callout `token`.
    pub fn dispatched(&mut self, token: u32) {
        self.fetcher = true;
        self.in_flight = Some(token);
    }

    /// The dispatch itself failed (e.g. unknown cluster): retry later.
    pub fn dispatch_failed(&mut self, now: u64) {
        self.fetcher = true;
        self.back_off(now);
    }

    /// Whether `token` is this provider's fetch.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    /// Applies a fetch's answer at `now`; answers the set's key count on success.
    pub fn answered(&mut self, result: FetchResult, now: u64) -> Result<usize, String> {
        self.in_flight = None;
        match result {
            FetchResult::Fetched(jwks) => {
                let n = jwks.keys().len();
                self.jwks = Some(Rc::new(jwks));
                self.fetched_at = now;
                self.failures = 0;
                self.next_attempt = 0;
                self.warned_unavailable = false;
                Ok(n)
            }
            FetchResult::Failed(why) => {
                self.back_off(now);
                Err(why)
            }
        }
    }

    /// True the first time a request is refused for want of a set since the last change
    /// (so the log says it once, not per request).
    pub fn first_unavailable_refusal(&mut self) -> bool {
        !std::mem::replace(&mut self.warned_unavailable, true)
    }

    fn back_off(&mut self, now: u64) {
        let delay = 1u64
            .checked_shl(self.failures.min(5))
            .unwrap_or(MAX_BACKOFF_SECS)
            .min(MAX_BACKOFF_SECS);
        self.failures = self.failures.saturating_add(1);
        self.next_attempt = now.saturating_add(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks() -> Jwks {
        Jwks::parse(include_bytes!("../testdata/jwks.json")).unwrap()
    }

    #[test]
    fn fetches_at_start_then_refreshes_before_expiry() {
        let mut r = RemoteJwks::new(Duration::from_secs(100), "k".into());
        assert!(r.due(0));
        r.dispatched(7);
        assert!(!r.due(0), "one fetch at a time");
        assert!(r.owns(7) && !r.owns(8));
        assert_eq!(r.answered(FetchResult::Fetched(jwks()), 10), Ok(5));
        assert!(r.jwks().is_some());
        assert!(!r.due(99));
        assert!(r.due(100)); // 10 + 90
    }

    #[test]
    fn failures_keep_the_good_set_and_back_off() {
        let mut r = RemoteJwks::new(Duration::from_secs(100), "k".into());
        r.dispatched(1);
        r.answered(FetchResult::Fetched(jwks()), 0).unwrap();
        r.dispatched(2);
        assert!(r.answered(FetchResult::Failed("500".into()), 90).is_err());
        assert!(r.jwks().is_some(), "a failed refresh keeps the set");
        assert!(!r.due(90));
        assert!(r.due(91)); // 1 s
        r.dispatched(3);
        r.answered(FetchResult::Failed("garbage".into()), 91)
            .unwrap_err();
        assert!(!r.due(92));
        assert!(r.due(93)); // 2 s
        for i in 0..10 {
            r.dispatched(4 + i);
            r.answered(FetchResult::Failed("x".into()), 1000)
                .unwrap_err();
        }
        assert!(!r.due(1029));
        assert!(r.due(1030), "capped at 30 s");
    }

    #[test]
    fn a_plugin_that_never_fetches_follows_the_published_set() {
        let mut r = RemoteJwks::new(Duration::from_secs(100), shared_key("idp", "http://x/j"));
        assert_eq!(
            r.shared_keys(),
            (
                "jwt-auth.jwks idp http://x/j",
                "jwt-auth.jwks idp http://x/j cas"
            )
        );
        assert!(r.follows());
        assert!(!r.is_new(0), "nothing published");
        assert!(r.is_new(4));
        assert!(r.first_unavailable_refusal());
        r.adopt(Some(jwks()), 4);
        assert!(r.jwks().is_some() && !r.is_new(4) && r.is_new(5));
        assert!(
            r.first_unavailable_refusal(),
            "a new set resets the warning"
        );
        // A published set that does not parse is not retried, and keeps the previous one.
        r.adopt(None, 5);
        assert!(r.jwks().is_some() && !r.is_new(5));
        // A fetcher uses its own answers.
        let mut f = RemoteJwks::new(Duration::from_secs(100), "k".into());
        f.dispatched(1);
        assert!(!f.follows());
        let mut g = RemoteJwks::new(Duration::from_secs(100), "k".into());
        g.dispatch_failed(0);
        assert!(!g.follows());
    }

    #[test]
    fn unavailable_is_reported_once_per_change() {
        let mut r = RemoteJwks::new(Duration::from_secs(100), "k".into());
        assert!(r.first_unavailable_refusal());
        assert!(!r.first_unavailable_refusal());
        r.dispatched(1);
        r.answered(FetchResult::Fetched(jwks()), 0).unwrap();
        assert!(r.first_unavailable_refusal());
    }
}

//! The glue: read the request, run the requirement over the providers' tokens, apply the
//! outcome (forward payload and claims, strip the token) or answer 401/403. The root
//! context's hooks fetch and refresh remote JWKS.

use crate::cache::{TokenCache, Verified};
use crate::config::{Config, KeySource, Provider, MAX_JWKS_BYTES};
use crate::extract::{self, Found};
use crate::identity;
use crate::jwks::Jwks;
use crate::outcome::Failure;
use crate::remote::{self, FetchResult, RemoteJwks};
use crate::token;
use crate::verify::{self, HostAnswer, Path};
use crate::NAME;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sdk_ext::callout;
use sdk_ext::config::ConfigError;
use sdk_ext::foreign::{self, Verdict};
use sdk_ext::headers::Headers;
use sdk_ext::host::{self, Status};
use sdk_ext::metrics::Counter;
use sdk_ext::request::{HostRequest, Request};
use sdk_ext::response::LocalResponse;
use sdk_ext::{Action, HttpFilter, HttpHost, Plugin};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

struct Metrics {
    allowed: Counter,
    denied: Counter,
    cors_preflight_bypassed: Counter,
    jwks_fetch_success: Counter,
    jwks_fetch_failed: Counter,
    jwt_cache_hit: Counter,
    jwt_cache_miss: Counter,
    verify_host: Counter,
    verify_rust: Counter,
}

impl Metrics {
    fn define() -> Self {
        let c = |name: &str| Counter::new(&format!("jwt_auth.{name}"));
        Self {
            allowed: c("requests_allowed"),
            denied: c("requests_denied"),
            cors_preflight_bypassed: c("cors_preflight_bypassed"),
            jwks_fetch_success: c("jwks_fetch_success"),
            jwks_fetch_failed: c("jwks_fetch_failed"),
            jwt_cache_hit: c("jwt_cache_hit"),
            jwt_cache_miss: c("jwt_cache_miss"),
            verify_host: c("verify.host"),
            verify_rust: c("verify.rust"),
        }
    }
}

/// Per-provider state that changes while the plugin runs.
struct State {
    remote: Vec<Option<RemoteJwks>>,
    caches: Vec<TokenCache>,
}

/// State shared by every stream of one plugin configuration.
pub struct Shared {
    config: Config,
    metrics: Metrics,
    denials: Vec<LocalResponse>,
    malformed: Counter,
    state: RefCell<State>,
    /// The host answered NotFound to `verify_signature`: stop asking it.
    host_lacks_verify: Cell<bool>,
}

impl Shared {
    /// Parses the configuration, prepares the responses and defines the metrics.
    fn build(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let counters: Vec<Counter> = Failure::ALL
            .iter()
            .map(|f| Counter::new(&format!("jwt_auth.denied.reason.{}", f.name())))
            .collect();
        let denials = Failure::ALL
            .iter()
            .zip(&counters)
            .map(|(f, c)| {
                LocalResponse::new(f.status(), &format!("jwt_auth_{}", f.name()), f.message())
                    .counted(*c)
            })
            .collect();
        let malformed = counters
            .get(Failure::Malformed("").index())
            .copied()
            .unwrap_or_else(|| Counter::new("jwt_auth.denied.reason.malformed"));
        let remote = config
            .providers
            .iter()
            .map(|p| match &p.keys {
                KeySource::Remote {
                    cache_duration,
                    uri,
                } => Some(RemoteJwks::new(
                    *cache_duration,
                    remote::shared_key(&uri.cluster, &uri.uri),
                )),
                KeySource::Local(_) => None,
            })
            .collect();
        let caches = config
            .providers
            .iter()
            .map(|p| TokenCache::new(p.cache_size))
            .collect();
        Ok(Self {
            config,
            metrics: Metrics::define(),
            denials,
            malformed,
            state: RefCell::new(State { remote, caches }),
            host_lacks_verify: Cell::new(false),
        })
    }

    fn host_verify(&self, hash: &str, der: &[u8], signature: &[u8], text: &[u8]) -> HostAnswer {
        if self.host_lacks_verify.get() {
            return HostAnswer::Unusable;
        }
        match foreign::verify_signature(hash, der, signature, text) {
            Ok(Verdict::Valid) => HostAnswer::Valid,
            Ok(Verdict::Invalid(_)) => HostAnswer::Invalid,
            Err(Status::NotFound) => {
                log::info!("host has no verify_signature; verifying in Wasm");
                self.host_lacks_verify.set(true);
                HostAnswer::Unusable
            }
            Err(status) => {
                log::warn!(
                    "host verify_signature refused the call ({status:?}); verifying in Wasm"
                );
                HostAnswer::Unusable
            }
        }
    }

    /// Verifies provider `index`'s token in this request (everything but the audience).
    fn verify_provider(
        &self,
        index: usize,
        provider: &Provider,
        found: Option<&Found<'_, '_>>,
        now: u64,
    ) -> Result<Rc<Verified>, Failure> {
        let found = found.ok_or(Failure::Missing)?;
        let bytes = found.token;
        if bytes.len() > self.config.max_token_bytes {
            return Err(Failure::TooLarge);
        }
        let utf8 = || std::str::from_utf8(bytes).map_err(|_| token::BAD_FORMAT);
        let mut state = self.state.try_borrow_mut().map_err(|_| match utf8() {
            Err(malformed) => malformed,
            Ok(_) => Failure::JwksUnavailable,
        })?;
        let check = |v: &Verified| {
            v.claims.check(
                provider.issuer.as_deref(),
                &[],
                now,
                provider.clock_skew,
                provider.require_expiration,
            )
        };
        let cached = state.caches.get_mut(index).filter(|c| c.enabled());
        // A hit is a token that verified, byte for byte: valid UTF-8, not checked again.
        if let Some(c) = cached {
            if let Some(hit) = c.get(bytes) {
                self.metrics.jwt_cache_hit.inc();
                return match check(&hit) {
                    Ok(()) => Ok(hit),
                    Err(e) => {
                        c.remove(bytes);
                        Err(e)
                    }
                };
            }
            let raw = utf8()?;
            self.metrics.jwt_cache_miss.inc();
            return self.verify_new(index, provider, raw, &mut state, &check);
        }
        let raw = utf8()?;
        self.verify_new(index, provider, raw, &mut state, &check)
    }

    /// Parses and verifies a token the cache did not have; caches it once it verified.
    fn verify_new(
        &self,
        index: usize,
        provider: &Provider,
        raw: &str,
        state: &mut State,
        check: &dyn Fn(&Verified) -> Result<(), Failure>,
    ) -> Result<Rc<Verified>, Failure> {
        let mut jwt = token::parse(raw)?;
        // The signature check needs only the signed text: the payload moves, not copies.
        let verified = Verified {
            claims: jwt.claims.clone(),
            payload: std::mem::take(&mut jwt.payload),
            payload_b64: jwt.payload_b64.to_string(),
        };
        check(&verified)?;
        let jwks: Rc<Jwks>;
        let keys: &Jwks = match (&provider.keys, state.remote.get_mut(index)) {
            (KeySource::Local(jwks), _) => jwks,
            (KeySource::Remote { uri, .. }, Some(Some(remote))) => {
                match follow(provider, remote).jwks() {
                    Some(set) => {
                        jwks = Rc::clone(set);
                        &jwks
                    }
                    None => {
                        if remote.first_unavailable_refusal() {
                            log::warn!(
                            "provider {}: no JWKS fetched yet from {}; refusing its tokens (fail closed)",
                            provider.name, uri.uri
                        );
                        }
                        return Err(Failure::JwksUnavailable);
                    }
                }
            }
            (KeySource::Remote { .. }, _) => return Err(Failure::JwksUnavailable),
        };
        let host = |h: &str, d: &[u8], s: &[u8], t: &[u8]| self.host_verify(h, d, s, t);
        let mut any_key = false;
        let mut valid = false;
        for k in keys.candidates(jwt.alg, jwt.kid.as_deref()) {
            any_key = true;
            let checked = verify::check(&jwt, k, Some(&host));
            match checked.path {
                Path::Host => self.metrics.verify_host.inc(),
                Path::Rust => self.metrics.verify_rust.inc(),
            }
            if checked.valid {
                valid = true;
                break;
            }
        }
        if !any_key {
            return Err(Failure::NoMatchingKey);
        }
        if !valid {
            return Err(Failure::BadSignature);
        }
        let verified = Rc::new(verified);
        if let Some(c) = state.caches.get_mut(index) {
            c.insert(raw.as_bytes(), Rc::clone(&verified));
        }
        Ok(verified)
    }

    fn fetch(&self, index: usize, now: u64) {
        let Some(provider) = self.config.providers.get(index) else {
            return;
        };
        let KeySource::Remote { uri, .. } = &provider.keys else {
            return;
        };
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return;
        };
        let Some(Some(remote)) = state.remote.get_mut(index) else {
            return;
        };
        if !remote.due(now) {
            return;
        }
        match callout::get(uri, "application/json") {
            Ok(token) => remote.dispatched(token),
            Err(status) => {
                self.metrics.jwks_fetch_failed.inc();
                log::warn!(
                    "provider {}: cannot fetch JWKS from {} via cluster {:?}: {status:?}",
                    provider.name,
                    uri.uri,
                    uri.cluster
                );
                remote.dispatch_failed(now);
            }
        }
    }

    fn fetch_due(&self) {
        let now = now_secs();
        for i in 0..self.config.providers.len() {
            self.fetch(i, now);
        }
    }
}

/// A plugin that never fetches takes the set its root context published, when it changed
/// (see [`remote`]); a fetcher is answered as is.
fn follow<'a>(provider: &Provider, remote: &'a mut RemoteJwks) -> &'a mut RemoteJwks {
    if !remote.follows() {
        return remote;
    }
    let (key, cas_key) = remote.shared_keys();
    let published = match host::get_shared_data(cas_key) {
        Ok(Some((cas, _))) => <[u8; 4]>::try_from(cas.as_slice())
            .map(u32::from_le_bytes)
            .unwrap_or(0),
        _ => 0,
    };
    if !remote.is_new(published) {
        return remote;
    }
    if let Ok(Some((body, cas))) = host::get_shared_data(key) {
        match Jwks::parse(&body) {
            Ok(jwks) => {
                log::info!(
                    "provider {}: using the JWKS its root context fetched ({} keys)",
                    provider.name,
                    jwks.keys().len()
                );
                remote.adopt(Some(jwks), cas);
            }
            Err(e) => {
                log::warn!(
                    "provider {}: the published JWKS is unusable: {e}",
                    provider.name
                );
                remote.adopt(None, cas);
            }
        }
    }
    remote
}

/// Publishes a fetched set for the plugins that follow it (see [`remote`]): the set, then
/// its CAS, so a follower that sees the CAS change finds that set or a newer one.
fn publish(provider: &Provider, remote: &RemoteJwks, body: &[u8]) {
    let (key, cas_key) = remote.shared_keys();
    let written = host::set_shared_data(key, body, 0)
        .and_then(|()| host::get_shared_data(key))
        .and_then(|got| match got {
            Some((_, cas)) => host::set_shared_data(cas_key, &cas.to_le_bytes(), 0),
            None => Err(Status::NotFound),
        });
    if let Err(status) = written {
        log::warn!(
            "provider {}: cannot publish the fetched JWKS in shared data ({status:?})",
            provider.name
        );
    }
}

fn now_secs() -> u64 {
    host::now_nanos().map(|n| n / 1_000_000_000).unwrap_or(0)
}

impl Plugin for Shared {
    const NAME: &'static str = NAME;

    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::build(bytes)
    }

    fn tick_period(&self) -> Option<Duration> {
        self.config
            .providers
            .iter()
            .any(|p| matches!(p.keys, KeySource::Remote { .. }))
            .then_some(Duration::from_secs(1))
    }

    fn on_start(&self) {
        self.fetch_due();
    }

    fn on_tick(&self) {
        self.fetch_due();
    }

    fn on_http_call_response(&self, token: u32, body_size: usize) {
        let now = now_secs();
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return;
        };
        let owner = state
            .remote
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.owns(token)));
        let (Some(index), Some(provider)) =
            (owner, owner.and_then(|i| self.config.providers.get(i)))
        else {
            return;
        };
        let Some(Some(remote)) = state.remote.get_mut(index) else {
            return;
        };
        let response = callout::Response::read(body_size, MAX_JWKS_BYTES);
        let result = match response.status {
            None => FetchResult::Failed("no response (timeout or connection failure)".into()),
            Some(200) if response.truncated => {
                FetchResult::Failed(format!("body over {MAX_JWKS_BYTES} bytes"))
            }
            Some(200) => match Jwks::parse(&response.body) {
                Ok(jwks) => FetchResult::Fetched(jwks),
                Err(e) => FetchResult::Failed(e),
            },
            Some(status) => FetchResult::Failed(format!("HTTP status {status}")),
        };
        match remote.answered(result, now) {
            Ok(keys) => {
                publish(provider, remote, &response.body);
                self.metrics.jwks_fetch_success.inc();
                log::info!("provider {}: JWKS fetched ({keys} keys)", provider.name);
            }
            Err(why) => {
                self.metrics.jwks_fetch_failed.inc();
                let kept = if remote.jwks().is_some() {
                    "keeping the previous JWKS"
                } else {
                    "no JWKS yet: its tokens are refused"
                };
                log::warn!(
                    "provider {}: JWKS fetch failed: {why}; {kept}",
                    provider.name
                );
            }
        }
    }
}

/// One provider's verdict in one request, with the header its token came from.
type ProviderResult<'a> = Result<(Rc<Verified>, Option<&'a str>), Failure>;

/// Providers whose verdicts a request keeps without allocating (more: on the heap).
const INLINE_PROVIDERS: usize = 4;

/// One HTTP stream (no per-stream state: the decision is made at request headers).
pub struct Stream;

fn is_cors_preflight(req: &mut HostRequest) -> bool {
    req.header(":method") == Some(b"OPTIONS")
        && req.header("origin").is_some_and(|o| !o.is_empty())
        && req
            .header("access-control-request-method")
            .is_some_and(|m| !m.is_empty())
}

/// `Bearer realm="<scheme>://<host><path without query>"`, plus `error="invalid_token"`
/// when a token was presented (RFC 6750 §3, as Envoy answers).
fn www_authenticate(req: &mut HostRequest, failure: Failure) -> Vec<u8> {
    let clean = |v: Option<&[u8]>| -> Vec<u8> {
        v.unwrap_or_default()
            .iter()
            .copied()
            .filter(|b| (0x21..0x7f).contains(b) && *b != b'"' && *b != b'\\')
            .collect()
    };
    let scheme = clean(req.header(":scheme"));
    let host = clean(req.header(":authority"));
    let path = clean(req.header(":path"));
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let mut v = Vec::with_capacity(host.len() + path.len() + 48);
    v.extend_from_slice(b"Bearer realm=\"");
    v.extend_from_slice(if scheme.is_empty() { b"http" } else { &scheme });
    v.extend_from_slice(b"://");
    v.extend_from_slice(&host);
    v.extend_from_slice(path);
    v.push(b'"');
    if failure.token_presented() {
        v.extend_from_slice(b", error=\"invalid_token\"");
    }
    v
}

impl Shared {
    fn deny(&self, req: &mut HostRequest, failure: Failure) -> Action {
        self.metrics.denied.inc();
        log::debug!("denied: {}", failure.message());
        let challenge = www_authenticate(req, failure);
        let extra: [(&str, &[u8]); 1] = [("www-authenticate", &challenge)];
        if let Failure::Malformed(why) = failure {
            // The one reason whose message varies: built when it happens.
            return LocalResponse::new(401, "jwt_auth_malformed", why)
                .counted(self.malformed)
                .send_with(&extra);
        }
        match self.denials.get(failure.index()) {
            Some(response) => response.send_with(&extra),
            None => Action::Pause,
        }
    }

    /// Applies what verified tokens leave: payload and claim headers, token stripping.
    /// A failed header edit fails the request closed (500), as the upstream would
    /// otherwise see a token or identity the filter meant to replace; a claim that is no
    /// valid header value refuses the request (401) before any header is written.
    ///
    /// `results`: each provider's verdict, by index (those not asked are `None`).
    fn apply(&self, results: &[Option<ProviderResult<'_>>]) -> Result<(), Refusal> {
        let providers = &self.config.providers;
        let verified = || {
            results.iter().enumerate().filter_map(|(i, r)| match r {
                Some(Ok((v, h))) => Some((i, v, *h)),
                _ => None,
            })
        };
        // Every claim value is checked before any header is written (allocates only when
        // a provider has claim headers).
        let mut claims = Vec::new();
        for (index, v, _) in verified() {
            for (name, path) in providers
                .get(index)
                .map_or(&[][..], |p| &p.claim_to_headers)
            {
                if let Some(value) = identity::claim_header_value(&v.payload, path)? {
                    claims.push((index, name, value));
                }
            }
        }
        for (index, v, header) in verified() {
            let Some(p) = providers.get(index) else {
                continue;
            };
            if let Some(name) = &p.forward_payload_header {
                let padded;
                let value: &str = if p.pad_forward_payload_header {
                    padded =
                        URL_SAFE.encode(URL_SAFE_NO_PAD.decode(&v.payload_b64).unwrap_or_default());
                    &padded
                } else {
                    &v.payload_b64
                };
                Headers::REQUEST.set(name, value.as_bytes())?;
            }
            for (_, name, value) in claims.iter().filter(|(i, _, _)| *i == index) {
                Headers::REQUEST.set(name, value.as_bytes())?;
            }
            if let (false, Some(h)) = (p.forward, header) {
                Headers::REQUEST.remove(h)?;
            }
        }
        Ok(())
    }
}

/// Why a request whose tokens satisfied the rule still does not go on.
enum Refusal {
    /// The host refused a header edit: 500.
    Edit(Status),
    /// The token cannot be used as it is: 401.
    Deny(Failure),
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Self {
        Refusal::Edit(status)
    }
}

impl From<Failure> for Refusal {
    fn from(failure: Failure) -> Self {
        Refusal::Deny(failure)
    }
}

/// A header edit failed: fail closed, as the upstream could otherwise see a forged identity
/// or a token the filter meant to strip.
fn edit_failed(status: Status) -> Action {
    log::error!("cannot edit request headers ({status:?}); failing closed");
    LocalResponse::new(500, "jwt_auth_header_edit_failed", "internal error").send()
}

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Stream
    }

    fn on_request_headers(&mut self, shared: &Shared, host: &mut HttpHost, _: bool) -> Action {
        let config = &shared.config;
        // Before anything can return: a client's copy of a header this filter writes never
        // reaches the upstream, whatever rule (or none, or the CORS bypass) applies.
        if let Err(status) = identity::strip(&mut { Headers::REQUEST }, &config.written_headers) {
            return edit_failed(status);
        }
        let req = host.request();
        if config.bypass_cors_preflight && is_cors_preflight(req) {
            shared.metrics.cors_preflight_bypassed.inc();
            return Action::Continue;
        }
        let rule = config.rules.first(req).map(|(_, r)| r);
        let Some(requirement) = rule.and_then(|r| r.requires.as_ref()) else {
            return Action::Continue;
        };
        let now = now_secs();
        let n = config.providers.len();
        // Each provider's verdict, asked at most once; inline for the usual few providers.
        let mut inline: [Option<ProviderResult>; INLINE_PROVIDERS] = Default::default();
        let mut heap: Vec<Option<ProviderResult>>;
        let results: &mut [Option<ProviderResult>] = match inline.get_mut(..n) {
            Some(slots) => slots,
            None => {
                heap = vec![None; n];
                &mut heap
            }
        };
        let outcome = {
            let mut verify = |i: usize| -> Result<Rc<Verified>, Failure> {
                if let Some(Some(done)) = results.get(i) {
                    return done.clone().map(|(v, _)| v);
                }
                let provider = config.providers.get(i).ok_or(Failure::Missing)?;
                // Through the request view: each header (and :path, already read to match
                // the rule) costs at most one host call per request; the token is borrowed
                // from the value read.
                let found = extract::find(&provider.locations, &mut *req);
                let result = shared
                    .verify_provider(i, provider, found.as_ref(), now)
                    .map(|v| (v, found.and_then(|f| f.header)));
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(result.clone());
                }
                result.map(|(v, _)| v)
            };
            let audiences_ok = |i: usize, over: Option<&[String]>, v: &Verified| {
                let list = match (over, config.providers.get(i)) {
                    (Some(list), _) => list,
                    (None, Some(p)) => p.audiences.as_slice(),
                    (None, None) => return false,
                };
                list.is_empty() || v.claims.aud.iter().any(|a| list.contains(a))
            };
            requirement.evaluate(n, &mut verify, &audiences_ok)
        };
        if let Err(failure) = outcome {
            return shared.deny(req, failure);
        }
        match shared.apply(results) {
            Ok(()) => {}
            Err(Refusal::Deny(failure)) => return shared.deny(req, failure),
            Err(Refusal::Edit(status)) => return edit_failed(status),
        }
        shared.metrics.allowed.inc();
        Action::Continue
    }
}

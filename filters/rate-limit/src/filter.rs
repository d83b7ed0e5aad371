//! The glue: read the request or connection, update the buckets in shared data, apply the
//! decision (continue, 429, close), count it.

use crate::bucket::{ceil_secs, Rate};
use crate::config::{Config, Fraction, HeadersMode, RouteLimits};
use crate::headers;
use crate::keys::descriptor_key;
use crate::store::{config_prefix, fingerprint, Failure, HostStore, Table};
use crate::NAME;
use sdk_ext::config::ConfigError;
use sdk_ext::host::{self, PeerType};
use sdk_ext::json::{cat, push_decimal};
use sdk_ext::metrics::Counter;
use sdk_ext::request::without_port;
use sdk_ext::response::LocalResponse;
use sdk_ext::{Action, HttpFilter, HttpHost, NetworkFilter, NetworkHost, Plugin};
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// How often stale slots are swept, and how many marked slots (slots this worker gave to a
/// key: see store.rs) one tick looks at, at most, over all tables.
const SWEEP_PERIOD: Duration = Duration::from_secs(10);
const SWEEP_SLOTS: u32 = 256;

/// One bucket's runtime parts.
struct BucketRuntime {
    table: Table,
    /// The bucket's constants.
    rate: Rate,
    allowed: Counter,
    limited: Counter,
    shadow_limited: Counter,
    /// The 429 with this bucket's `RateLimit-Policy` (when headers are on).
    response: LocalResponse,
    /// `RateLimit-Policy` value.
    policy: String,
}

/// Metrics of the whole filter.
struct Metrics {
    allowed: Counter,
    limited: Counter,
    shadow_limited: Counter,
    errors: Counter,
    evicted: Counter,
    contention: Counter,
}

/// State shared by every stream and connection of one plugin configuration.
pub struct Shared {
    config: Config,
    buckets: Vec<BucketRuntime>,
    /// L4 concurrency table.
    concurrent: Option<(Table, Counter, Counter, Counter)>,
    metrics: Metrics,
    /// Scratch for descriptor keys (one request at a time per VM).
    descriptor_buf: RefCell<Vec<u8>>,
    /// Events seen by the `filter_enabled` / `filter_enforced` shares.
    enabled_seq: Cell<u64>,
    enforced_seq: Cell<u64>,
    /// The table the next sweep starts with (each table keeps its own position).
    sweep_at: Cell<usize>,
    /// `fingerprint(b"")`: the default bucket's key, hashed once.
    empty_key: u64,
}

fn sample(f: &Fraction, seq: &Cell<u64>) -> bool {
    if f.numerator == f.denominator {
        return true;
    }
    let n = seq.get();
    seq.set(n.wrapping_add(1));
    f.includes(n)
}

impl Plugin for Shared {
    const NAME: &'static str = NAME;

    /// Parses the configuration, defines the metrics, creates every shared-data slot.
    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let sp = config.stat_prefix.clone();
        let base = config_prefix(bytes);
        // Names pushed, not `format!`ed (each `format!` is its own argument setup).
        let m = |parts: &[&str]| {
            let mut name = cat(&["rate_limit.", &sp, "."]);
            for p in parts {
                name.push_str(p);
            }
            Counter::new(&name)
        };
        // Loops, not iterator adapters (each adapter stack is its own code in the module).
        let mut buckets = Vec::with_capacity(config.buckets.len());
        for (i, b) in config.buckets.iter().enumerate() {
            buckets.push({
                let policy = headers::policy(&b.name, &b.bucket);
                let mut response =
                    LocalResponse::new(config.status, "local_rate_limited", "rate limit exceeded")
                        .header("x-envoy-ratelimited", "true");
                if config.headers != HeadersMode::Off {
                    response = response.header("ratelimit-policy", policy.clone());
                }
                let mut prefix = base.clone();
                push_decimal(&mut prefix, i as u64);
                prefix.push('/');
                BucketRuntime {
                    table: Table::new(prefix, b.slots),
                    rate: Rate::new(&b.bucket),
                    allowed: m(&["bucket.", &b.name, ".allowed"]),
                    limited: m(&["bucket.", &b.name, ".limited"]),
                    shadow_limited: m(&["bucket.", &b.name, ".shadow_limited"]),
                    response,
                    policy,
                }
            });
        }
        let concurrent = config.connections.as_ref().and_then(|c| {
            c.concurrent.map(|_| {
                (
                    Table::new(cat(&[&base, "c/"]), c.slots),
                    m(&["concurrent.allowed"]),
                    m(&["concurrent.limited"]),
                    m(&["concurrent.shadow_limited"]),
                )
            })
        });
        let metrics = Metrics {
            allowed: m(&["allowed"]),
            limited: m(&["limited"]),
            shadow_limited: m(&["shadow_limited"]),
            errors: m(&["errors"]),
            evicted: m(&["evicted"]),
            contention: m(&["contention"]),
        };
        // Slots are created here, before any request can race to create them (see store.rs).
        let mut store = HostStore;
        let mut create = |t: &Table| {
            if let Err(status) = t.create(&mut store) {
                log::warn!("creating shared-data slots: host answered {status:?}");
                metrics.errors.inc();
            }
        };
        for b in &buckets {
            create(&b.table);
        }
        if let Some(c) = &concurrent {
            create(&c.0);
        }
        Ok(Self {
            config,
            buckets,
            concurrent,
            metrics,
            descriptor_buf: RefCell::new(Vec::with_capacity(64)),
            enabled_seq: Cell::new(0),
            enforced_seq: Cell::new(0),
            sweep_at: Cell::new(0),
            empty_key: fingerprint(b""),
        })
    }

    fn tick_period(&self) -> Option<Duration> {
        Some(SWEEP_PERIOD)
    }

    /// Empties stale slots (idle buckets still naming a key): up to [`SWEEP_SLOTS`] marked
    /// slots per tick, the tables in turn.
    fn on_tick(&self) {
        let Ok(now) = host::now_nanos() else {
            return;
        };
        let n = self.buckets.len();
        let first = self.sweep_at.get() % n.max(1);
        self.sweep_at.set(first + 1);
        let mut budget = SWEEP_SLOTS;
        for i in 0..n {
            let Some(b) = self.buckets.get((first + i) % n) else {
                break;
            };
            budget -= b.table.sweep(&mut HostStore, &b.rate, budget, now);
            if budget == 0 {
                break;
            }
        }
    }
}

/// What the buckets answered for one request or connection.
#[derive(Default)]
struct Verdict {
    /// The bucket that refused, and the ns until it holds a token.
    limited: Option<(usize, u128)>,
    /// The granting bucket with the fewest tokens left (for `RateLimit` on allowed
    /// responses): its index, the tokens left and the ns until the next one.
    tightest: Option<(usize, u64, u128)>,
}

impl Shared {
    /// Takes a token for `key` from bucket `index`, recording the answer in `verdict`.
    /// A host error lets the request through (fails open) and is counted; sustained CAS
    /// contention refuses it (see store.rs).
    fn take(&self, index: usize, key: &[u8], now: u64, verdict: &mut Verdict) {
        let Some(b) = self.buckets.get(index) else {
            return;
        };
        let owner = if key.is_empty() {
            self.empty_key
        } else {
            fingerprint(key)
        };
        // The default bucket has one key (the empty one), which never leaves a stale slot.
        let mark = !key.is_empty();
        match b
            .table
            .update_with(&mut HostStore, &b.rate, owner, now, mark)
        {
            Ok(u) => {
                if u.evicted {
                    self.metrics.evicted.inc();
                }
                if u.answer.allowed {
                    b.allowed.inc();
                    let t = u.answer;
                    if verdict.tightest.is_none_or(|(_, r, _)| t.remaining < r) {
                        verdict.tightest = Some((index, t.remaining, t.next_token_ns));
                    }
                } else {
                    verdict.limited = Some((index, u.answer.next_token_ns));
                }
            }
            Err(Failure::Contention) => {
                self.metrics.contention.inc();
                verdict.limited = Some((index, b.rate.fill_ns()));
            }
            Err(Failure::Host(status)) => {
                log::debug!("shared data: host answered {status:?}; letting through");
                self.metrics.errors.inc();
            }
        }
    }

    /// Counts a refusal in `bucket`; `true` when it is enforced (not shadow mode).
    fn refuse(&self, bucket: Option<&BucketRuntime>) -> bool {
        let enforce = sample(&self.config.enforced, &self.enforced_seq);
        if enforce {
            self.metrics.limited.inc();
            if let Some(b) = bucket {
                b.limited.inc();
            }
        } else {
            self.metrics.shadow_limited.inc();
            if let Some(b) = bucket {
                b.shadow_limited.inc();
            }
        }
        enforce
    }
}

/// One HTTP stream: the `RateLimit` values to add to the response, when configured.
pub struct Stream {
    pending: Option<(usize, u64, u64)>,
}

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Stream { pending: None }
    }

    fn on_request_headers(&mut self, shared: &Shared, host: &mut HttpHost, _: bool) -> Action {
        let cfg = &shared.config;
        let limits = match cfg.routes.first(host.request()) {
            Some((_, RouteLimits::Disabled)) => return Action::Continue,
            Some((_, RouteLimits::Limits(l))) => l,
            None => &cfg.limits,
        };
        if limits.is_empty() || !sample(&cfg.enabled, &shared.enabled_seq) {
            return Action::Continue;
        }
        let Ok(now) = host::now_nanos() else {
            shared.metrics.errors.inc();
            return Action::Continue;
        };
        let mut verdict = Verdict::default();
        let mut applied = false;
        {
            let mut key = shared.descriptor_buf.borrow_mut();
            for d in &limits.descriptors {
                if !descriptor_key(d, host.request(), &mut key) {
                    continue;
                }
                applied = true;
                shared.take(d.bucket, &key, now, &mut verdict);
                if verdict.limited.is_some() {
                    break;
                }
            }
        }
        if let Some(b) = limits.default_bucket {
            if verdict.limited.is_none() && (cfg.always_consume_default || !applied) {
                shared.take(b, b"", now, &mut verdict);
            }
        }
        match verdict.limited {
            None => {
                shared.metrics.allowed.inc();
                if cfg.headers == HeadersMode::Always {
                    self.pending = verdict
                        .tightest
                        .map(|(b, remaining, next)| (b, remaining, ceil_secs(next)));
                }
                Action::Continue
            }
            Some((index, next_token_ns)) => {
                let bucket = shared.buckets.get(index);
                let wait = ceil_secs(next_token_ns);
                if !shared.refuse(bucket) {
                    if cfg.headers == HeadersMode::Always {
                        self.pending = Some((index, 0, wait));
                    }
                    return Action::Continue;
                }
                let Some(b) = bucket else {
                    return Action::Continue;
                };
                log::debug!("limited by bucket {index}");
                let mut retry = String::new();
                push_decimal(&mut retry, wait);
                if cfg.headers == HeadersMode::Off {
                    return host.respond_with(&b.response, &[("retry-after", retry.as_bytes())]);
                }
                let name = cfg.buckets.get(index).map_or("", |s| s.name.as_str());
                let limit = headers::service_limit(name, 0, wait);
                host.respond_with(
                    &b.response,
                    &[
                        ("retry-after", retry.as_bytes()),
                        ("ratelimit", limit.as_bytes()),
                    ],
                )
            }
        }
    }

    fn on_response_headers(&mut self, shared: &Shared, host: &mut HttpHost, _: bool) -> Action {
        let Some((index, remaining, reset)) = self.pending.take() else {
            return Action::Continue;
        };
        let (Some(b), Some(spec)) = (shared.buckets.get(index), shared.config.buckets.get(index))
        else {
            return Action::Continue;
        };
        let limit = headers::service_limit(&spec.name, remaining, reset);
        let a = host.add_response_header("ratelimit-policy", b.policy.as_bytes());
        let c = host.add_response_header("ratelimit", limit.as_bytes());
        if a.is_err() || c.is_err() {
            shared.metrics.errors.inc();
        }
        Action::Continue
    }
}

/// One L4 connection: the concurrency slot it holds, to give back when it closes.
pub struct Connection {
    held: Option<(u32, u64)>,
}

impl Connection {
    fn release(&mut self, shared: &Shared) {
        let Some((index, owner)) = self.held.take() else {
            return;
        };
        let (Some((table, ..)), Some(limits)) = (
            shared.concurrent.as_ref(),
            shared.config.connections.as_ref(),
        ) else {
            return;
        };
        let Some(limit) = limits.concurrent else {
            return;
        };
        if table.release(&mut HostStore, &limit, index, owner).is_err() {
            shared.metrics.errors.inc();
        }
    }
}

#[sdk_ext::filter]
impl NetworkFilter for Connection {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Connection { held: None }
    }

    fn on_new_connection(&mut self, shared: &Shared, host: &mut NetworkHost) -> Action {
        let Some(limits) = shared.config.connections.as_ref() else {
            return Action::Continue;
        };
        if !sample(&shared.config.enabled, &shared.enabled_seq) {
            return Action::Continue;
        }
        let Some(address) = host.source_address().map(|a| without_port(a).to_vec()) else {
            shared.metrics.errors.inc();
            return Action::Continue;
        };
        let Ok(now) = host::now_nanos() else {
            shared.metrics.errors.inc();
            return Action::Continue;
        };
        let owner = fingerprint(&address);
        // Concurrency first: a connection refused for concurrency spends no token.
        let mut over_concurrency = false;
        if let (Some((table, allowed, ..)), Some(limit)) =
            (shared.concurrent.as_ref(), limits.concurrent)
        {
            match table.update(&mut HostStore, &limit, owner, now) {
                Ok(u) if u.answer => {
                    allowed.inc();
                    self.held = Some((u.index, owner));
                }
                Ok(_) => over_concurrency = true,
                Err(Failure::Contention) => {
                    shared.metrics.contention.inc();
                    over_concurrency = true;
                }
                Err(Failure::Host(_)) => shared.metrics.errors.inc(),
            }
        }
        let mut verdict = Verdict::default();
        if !over_concurrency {
            if let Some(b) = limits.rate {
                shared.take(b, &address, now, &mut verdict);
            }
        }
        let limited_bucket = match (over_concurrency, verdict.limited) {
            (true, _) => None,
            (false, Some((b, _))) => Some(b),
            (false, None) => {
                shared.metrics.allowed.inc();
                return Action::Continue;
            }
        };
        if over_concurrency {
            if let Some((_, _, limited, shadow)) = shared.concurrent.as_ref() {
                let enforce = shared.refuse(None);
                if enforce {
                    limited.inc()
                } else {
                    shadow.inc()
                }
                if !enforce {
                    return Action::Continue;
                }
            }
        } else if !shared.refuse(limited_bucket.and_then(|b| shared.buckets.get(b))) {
            return Action::Continue;
        }
        self.release(shared);
        log::debug!("connection limited; closing");
        if host.close_downstream().is_err() {
            shared.metrics.errors.inc();
            return Action::Continue;
        }
        Action::Pause
    }

    fn on_downstream_close(&mut self, shared: &Shared, _: &mut NetworkHost, _: PeerType) {
        self.release(shared);
    }
}

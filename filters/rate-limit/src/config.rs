//! Configuration: the JSON shape (named after Envoy's `local_ratelimit` where it has the
//! field), defaults and validation → an immutable [`Config`].

use crate::bucket::{Concurrency, TokenBucket};
use sdk_ext::config::{self, index_path, join_path, ConfigError};
use sdk_ext::duration::ProtoDuration;
use sdk_ext::json::{push_decimal, quoted};
use sdk_ext::rules::{RawRule, Rules};
use sdk_ext::FromJson;

/// Default slots per dynamic descriptor (`max_dynamic_descriptors`).
pub const DEFAULT_SLOTS: u32 = 1024;
/// The most slots one configuration may create in total (memory: 32 bytes + key per slot).
pub const MAX_TOTAL_SLOTS: u32 = 1 << 16;

/// The JSON configuration.
#[derive(Debug, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Names this limiter's metrics and shared-data keys (default `"local"`).
    #[serde(default)]
    pub stat_prefix: Option<String>,
    /// The default bucket (none: only descriptors limit).
    #[serde(default)]
    pub token_bucket: Option<RawTokenBucket>,
    /// Buckets keyed by request attributes.
    #[serde(default)]
    pub descriptors: Vec<RawDescriptor>,
    /// Per-route limits, first match wins; a request no rule matches uses the top level.
    #[serde(default)]
    pub routes: Vec<RawRule<RawRoute>>,
    /// Share of requests checked at all (default 100 %).
    #[serde(default)]
    pub filter_enabled: Option<RawRuntimeFraction>,
    /// Share of limited requests actually refused (default 100 %; 0 %: shadow mode).
    #[serde(default)]
    pub filter_enforced: Option<RawRuntimeFraction>,
    /// Take from the default bucket even when a descriptor applied (default true, as Envoy).
    #[serde(default = "yes")]
    pub always_consume_default_token_bucket: bool,
    /// Slots (distinct keys tracked at once) per dynamic descriptor (default 1024).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub max_dynamic_descriptors: Option<u32>,
    /// `RateLimit-Policy` / `RateLimit` headers: `OFF`, `LIMITED` (default), `ALWAYS`.
    #[serde(default)]
    pub ratelimit_headers: Option<HeadersMode>,
    /// Status of a limited response (default 429).
    #[serde(default)]
    pub status: Option<RawHttpStatus>,
    /// L4 limits, used when the filter runs as a network filter.
    #[serde(default)]
    pub connections: Option<RawConnections>,
}

fn yes() -> bool {
    true
}

/// Envoy's `TokenBucket`.
#[derive(Debug, Clone, Default, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawTokenBucket {
    /// Capacity (1 ..= 4294967295).
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 4294967295u64)))]
    pub max_tokens: u64,
    /// Tokens added per `fill_interval` (default 1).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 4294967295u64)))]
    pub tokens_per_fill: Option<u64>,
    /// `"1s"`, `"0.5s"`: at least 50 ms, as Envoy.
    pub fill_interval: ProtoDuration,
}

/// A bucket per value of some request attributes.
#[derive(Debug, Clone, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawDescriptor {
    /// Names the bucket in metrics and headers (`[A-Za-z0-9_-]`; default `descriptor_<i>`).
    #[serde(default)]
    pub name: Option<String>,
    /// What the bucket is keyed by; all must resolve for the descriptor to apply.
    pub entries: Vec<RawEntry>,
    /// The bucket every key gets.
    pub token_bucket: RawTokenBucket,
    /// Slots for this descriptor (default `max_dynamic_descriptors`).
    #[serde(default)]
    pub max_keys: Option<u32>,
}

/// One part of a descriptor's key.
#[derive(Debug, Clone, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    /// `client_address`, `header`, `path`, `path_prefix`, `method`, `route_name`.
    pub attribute: String,
    /// The header (`attribute: header`).
    #[serde(default)]
    pub header: Option<String>,
    /// Path segments kept (`attribute: path_prefix`; `/api/v1/x` with 2 → `/api/v1`).
    #[serde(default)]
    pub segments: Option<u32>,
    /// Only this exact value applies (Envoy's descriptor entry `value`); absent: every value
    /// gets its own bucket.
    #[serde(default)]
    pub value: Option<String>,
}

/// A per-route rule's limits (beside its `match`).
#[derive(Debug, Clone, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Names the route's default bucket (default `route_<i>`).
    #[serde(default)]
    pub name: Option<String>,
    /// No limit on these requests.
    #[serde(default)]
    pub disabled: bool,
    /// The route's default bucket.
    #[serde(default)]
    pub token_bucket: Option<RawTokenBucket>,
    /// The route's descriptors.
    #[serde(default)]
    pub descriptors: Vec<RawDescriptor>,
}

/// Envoy's `RuntimeFractionalPercent` (`runtime_key` accepted and ignored: no runtime here).
#[derive(Debug, Clone, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRuntimeFraction {
    /// The share.
    pub default_value: RawFractionalPercent,
    /// Accepted for compatibility; not read.
    #[serde(default)]
    pub runtime_key: Option<String>,
}

/// Envoy's `FractionalPercent`.
#[derive(Debug, Clone, Default, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawFractionalPercent {
    /// Parts of `denominator`.
    #[serde(default)]
    pub numerator: u32,
    /// `HUNDRED` (default), `TEN_THOUSAND`, `MILLION`.
    #[serde(default)]
    pub denominator: Option<Denominator>,
}

/// `FractionalPercent.denominator`.
#[derive(Debug, Clone, Copy, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Denominator {
    /// 100.
    #[serde(rename = "HUNDRED")]
    Hundred,
    /// 10,000.
    #[serde(rename = "TEN_THOUSAND")]
    TenThousand,
    /// 1,000,000.
    #[serde(rename = "MILLION")]
    Million,
}

/// Envoy's `HttpStatus`.
#[derive(Debug, Clone, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawHttpStatus {
    /// 400 ..= 599.
    pub code: u16,
}

/// Which responses carry the IETF headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromJson)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum HeadersMode {
    /// None.
    #[serde(rename = "OFF")]
    Off,
    /// Limited (429) responses only.
    #[serde(rename = "LIMITED")]
    Limited,
    /// Limited and allowed responses.
    #[serde(rename = "ALWAYS")]
    Always,
}

/// L4 limits per client address.
#[derive(Debug, Clone, FromJson)]
#[from_json(in_place)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConnections {
    /// New connections per client address.
    #[serde(default)]
    pub token_bucket: Option<RawTokenBucket>,
    /// Connections open at once per client address.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub max_concurrent: Option<u32>,
    /// Client addresses tracked at once (default `max_dynamic_descriptors`).
    #[serde(default)]
    pub max_clients: Option<u32>,
}

/// A request attribute a descriptor entry reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// The client address without port.
    ClientAddress,
    /// A request header's first value.
    Header(String),
    /// `:path` without the query.
    Path,
    /// The first n segments of the path.
    PathPrefix(u32),
    /// `:method`.
    Method,
    /// The matched route's name.
    RouteName,
}

/// A validated descriptor entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What it reads.
    pub attribute: Attribute,
    /// The only value that applies (`None`: any).
    pub value: Option<Vec<u8>>,
}

/// One bucket: its parameters, slots and name.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    /// Metric and header name.
    pub name: String,
    /// Its parameters.
    pub bucket: TokenBucket,
    /// Slots (1 for a bucket with one key).
    pub slots: u32,
}

/// A validated descriptor: the bucket index and the entries.
#[derive(Debug, Clone)]
pub struct Descriptor {
    /// Index into [`Config::buckets`].
    pub bucket: usize,
    /// The key's parts.
    pub entries: Vec<Entry>,
}

/// The limits applying to a request.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// The default bucket's index.
    pub default_bucket: Option<usize>,
    /// Descriptors, in order.
    pub descriptors: Vec<Descriptor>,
}

impl Limits {
    /// Nothing limits.
    pub fn is_empty(&self) -> bool {
        self.default_bucket.is_none() && self.descriptors.is_empty()
    }
}

/// A share as parts per `denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    /// Parts (≤ denominator).
    pub numerator: u32,
    /// 100, 10,000 or 1,000,000.
    pub denominator: u32,
}

impl Fraction {
    /// 100 %.
    pub const ALL: Fraction = Fraction {
        numerator: 1,
        denominator: 1,
    };

    /// Whether the `n`th event is in the share (spread evenly: of every `denominator`
    /// events, exactly `numerator` are).
    pub fn includes(&self, n: u64) -> bool {
        let d = u64::from(self.denominator.max(1));
        let k = u64::from(self.numerator);
        // Event n is in when floor((n+1)k/d) > floor(nk/d).
        let n = n % d;
        ((n + 1) * k) / d > (n * k) / d
    }
}

/// L4 limits.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// New connections per client (index into [`Config::buckets`]).
    pub rate: Option<usize>,
    /// Concurrent connections per client.
    pub concurrent: Option<Concurrency>,
    /// Slots of the concurrency table.
    pub slots: u32,
}

/// A route rule's decision.
#[derive(Debug, Clone)]
pub enum RouteLimits {
    /// No limit.
    Disabled,
    /// These limits.
    Limits(Limits),
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Metric and key prefix.
    pub stat_prefix: String,
    /// Every bucket, each its own table of slots.
    pub buckets: Vec<BucketSpec>,
    /// The top-level limits.
    pub limits: Limits,
    /// Per-route limits.
    pub routes: Rules<RouteLimits>,
    /// Share checked.
    pub enabled: Fraction,
    /// Share enforced.
    pub enforced: Fraction,
    /// Take from the default bucket even when a descriptor applied.
    pub always_consume_default: bool,
    /// Header mode.
    pub headers: HeadersMode,
    /// Limited status.
    pub status: u16,
    /// L4 limits.
    pub connections: Option<ConnectionLimits>,
}

/// `n` then `rest`: messages built without `format!` (each call site's argument setup).
fn number(n: u64, rest: &str) -> String {
    let mut out = String::new();
    push_decimal(&mut out, n);
    out.push_str(rest);
    out
}

/// A refusal at `field.child` (`child` empty: at `field`): one function for every message
/// below (a `ConfigError::new(join_path(..), ..)` at each site was its own string setup).
#[inline(never)]
fn refuse_with(field: &str, child: &str, reason: String) -> ConfigError {
    ConfigError::from_parts(join_path(field, child), reason)
}

/// [`refuse_with`] a fixed message.
#[inline(never)]
fn refuse(field: &str, child: &str, reason: &str) -> ConfigError {
    refuse_with(field, child, reason.to_owned())
}

/// `Some(0)` refused at `field.child` ("must be at least 1"); other values as they are.
fn positive(v: Option<u32>, field: &str, child: &str) -> Result<Option<u32>, ConfigError> {
    match v {
        Some(0) => Err(refuse(field, child, "must be at least 1")),
        v => Ok(v),
    }
}

/// `<start>` [`MAX_TOTAL_SLOTS`] ` shared-data slots`.
fn slots_message(start: &str) -> String {
    let mut out = String::from(start);
    push_decimal(&mut out, u64::from(MAX_TOTAL_SLOTS));
    out.push_str(" shared-data slots");
    out
}

fn check_name(name: &str, field: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(refuse_with(
            field,
            "",
            quoted("", name, " is not 1-64 characters of [A-Za-z0-9_-]"),
        ));
    }
    Ok(())
}

fn token_bucket(raw: &RawTokenBucket, field: &str) -> Result<TokenBucket, ConfigError> {
    // A count: 1 ..= u32::MAX (what a slot stores).
    let count = |v: u64, child: &str| match u32::try_from(v) {
        Ok(0) => Err(refuse(field, child, "must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(refuse_with(
            field,
            child,
            number(
                v,
                " is larger than a bucket's stored value holds (at most 4294967295)",
            ),
        )),
    };
    let max_tokens = count(raw.max_tokens, "max_tokens")?;
    let tokens_per_fill = count(raw.tokens_per_fill.unwrap_or(1), "tokens_per_fill")?;
    let fill = raw.fill_interval.get();
    if fill < std::time::Duration::from_millis(50) {
        return Err(refuse(
            field,
            "fill_interval",
            if fill.is_zero() {
                "must not be zero"
            } else {
                "must be at least 0.05s (as Envoy's local_ratelimit)"
            },
        ));
    }
    Ok(TokenBucket {
        max_tokens,
        tokens_per_fill,
        fill_ns: fill.as_nanos(),
    })
}

fn fraction(raw: &Option<RawRuntimeFraction>, field: &str) -> Result<Fraction, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Fraction::ALL);
    };
    let denominator = match raw
        .default_value
        .denominator
        .unwrap_or(Denominator::Hundred)
    {
        Denominator::Hundred => 100,
        Denominator::TenThousand => 10_000,
        Denominator::Million => 1_000_000,
    };
    let numerator = raw.default_value.numerator;
    if numerator > denominator {
        let mut m = number(u64::from(numerator), " is more than the denominator ");
        push_decimal(&mut m, u64::from(denominator));
        return Err(refuse_with(field, "default_value.numerator", m));
    }
    Ok(Fraction {
        numerator,
        denominator,
    })
}

/// Builds bucket tables while validating, counting slots.
struct Builder {
    buckets: Vec<BucketSpec>,
    default_slots: u32,
    total_slots: u32,
}

impl Builder {
    /// Counts `slots` more, refused at `field` past [`MAX_TOTAL_SLOTS`] with `message`.
    fn count(&mut self, slots: u32, field: &str, message: &str) -> Result<(), ConfigError> {
        self.total_slots = self.total_slots.saturating_add(slots);
        if self.total_slots > MAX_TOTAL_SLOTS {
            return Err(refuse_with(field, "", slots_message(message)));
        }
        Ok(())
    }

    /// Validates `raw` (at `field`) and adds its bucket, named `name`, with `slots` slots.
    fn add(
        &mut self,
        name: String,
        raw: &RawTokenBucket,
        slots: u32,
        field: &str,
        at: &str,
    ) -> Result<usize, ConfigError> {
        let bucket = token_bucket(raw, at)?;
        self.count(
            slots,
            field,
            "the configuration's buckets would need more than ",
        )?;
        if self.buckets.iter().any(|b| b.name == name) {
            return Err(refuse_with(
                field,
                "",
                quoted("bucket name ", &name, " is used twice"),
            ));
        }
        self.buckets.push(BucketSpec {
            name,
            bucket,
            slots,
        });
        Ok(self.buckets.len() - 1)
    }

    fn limits(
        &mut self,
        name: Option<&str>,
        default_name: &str,
        token: &Option<RawTokenBucket>,
        descriptors: &[RawDescriptor],
        field: &str,
    ) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        if let Some(raw) = token {
            let at = join_path(field, "token_bucket");
            let name = name.unwrap_or(default_name).to_owned();
            check_name(&name, &join_path(field, "name"))?;
            limits.default_bucket = Some(self.add(name, raw, 1, &at, &at)?);
        }
        for (i, d) in descriptors.iter().enumerate() {
            let at = index_path(field, "descriptors", i);
            limits
                .descriptors
                .push(self.descriptor(d, &at, default_name, i)?);
        }
        Ok(limits)
    }

    fn descriptor(
        &mut self,
        raw: &RawDescriptor,
        field: &str,
        scope: &str,
        i: usize,
    ) -> Result<Descriptor, ConfigError> {
        let name = match &raw.name {
            Some(n) => n.clone(),
            None => {
                let mut n = if scope == "default" {
                    String::from("descriptor_")
                } else {
                    sdk_ext::json::cat(&[scope, "_descriptor_"])
                };
                push_decimal(&mut n, i as u64);
                n
            }
        };
        check_name(&name, &join_path(field, "name"))?;
        if raw.entries.is_empty() {
            return Err(refuse(
                field,
                "entries",
                "a descriptor needs at least one entry",
            ));
        }
        let mut entries = Vec::with_capacity(raw.entries.len());
        for (j, e) in raw.entries.iter().enumerate() {
            entries.push(entry(e, &index_path(field, "entries", j))?);
        }
        let slots = if entries.iter().any(|e| e.value.is_none()) {
            positive(raw.max_keys, field, "max_keys")?.unwrap_or(self.default_slots)
        } else {
            1
        };
        let at = join_path(field, "token_bucket");
        let index = self.add(name, &raw.token_bucket, slots, field, &at)?;
        Ok(Descriptor {
            bucket: index,
            entries,
        })
    }
}

/// The attributes a descriptor entry reads, as the unknown-attribute message lists them.
const ATTRIBUTES: [&str; 6] = [
    "client_address",
    "header",
    "path",
    "path_prefix",
    "method",
    "route_name",
];

fn entry(raw: &RawEntry, field: &str) -> Result<Entry, ConfigError> {
    let name = raw.attribute.as_str();
    // `header` and `segments` belong to one attribute each; on any other, refused.
    for (child, owner, present) in [
        ("header", "header", raw.header.is_some()),
        ("segments", "path_prefix", raw.segments.is_some()),
    ] {
        if present && name != owner {
            return Err(refuse_with(
                field,
                child,
                quoted("not used by attribute ", name, ""),
            ));
        }
    }
    let attribute = match ATTRIBUTES.iter().position(|a| *a == name) {
        Some(0) => Attribute::ClientAddress,
        Some(1) => {
            let Some(h) = &raw.header else {
                return Err(refuse(
                    field,
                    "header",
                    "attribute \"header\" needs the header's name",
                ));
            };
            let h = h.to_ascii_lowercase();
            let token = |(i, b): (usize, u8)| {
                b.is_ascii_alphanumeric()
                    || b"-_!#$%&'*+.^`|~".contains(&b)
                    || (i == 0 && b == b':')
            };
            if h.len() < 2 && h.starts_with(':')
                || h.is_empty()
                || !h.bytes().enumerate().all(token)
            {
                return Err(refuse_with(
                    field,
                    "header",
                    quoted("", &h, " is not a header name"),
                ));
            }
            Attribute::Header(h)
        }
        Some(2) => Attribute::Path,
        Some(3) => match raw.segments {
            Some(n) if n > 0 => Attribute::PathPrefix(n),
            _ => {
                return Err(refuse(
                    field,
                    "segments",
                    "attribute \"path_prefix\" needs segments ≥ 1",
                ))
            }
        },
        Some(4) => Attribute::Method,
        Some(_) => Attribute::RouteName,
        None => {
            return Err(refuse_with(
                field,
                "attribute",
                quoted(
                    "unknown attribute ",
                    name,
                    " (known: client_address, header, path, path_prefix, method, route_name)",
                ),
            ))
        }
    };
    Ok(Entry {
        attribute,
        value: raw.value.as_ref().map(|v| v.as_bytes().to_vec()),
    })
}

impl Config {
    /// Parses and validates JSON configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = config::parse(bytes)?;
        let stat_prefix = raw.stat_prefix.clone().unwrap_or_else(|| "local".into());
        check_name(&stat_prefix, "stat_prefix")?;
        let default_slots = positive(raw.max_dynamic_descriptors, "max_dynamic_descriptors", "")?
            .unwrap_or(DEFAULT_SLOTS);
        let mut b = Builder {
            buckets: Vec::new(),
            default_slots,
            total_slots: 0,
        };
        let limits = b.limits(None, "default", &raw.token_bucket, &raw.descriptors, "")?;
        let mut route_index = 0usize;
        let routes = Rules::compile(&raw.routes, "routes", |r: &RawRoute, field| {
            let i = route_index;
            route_index += 1;
            let limited = r.token_bucket.is_some() || !r.descriptors.is_empty();
            if r.disabled || !limited {
                return match (r.disabled, limited) {
                    (true, false) => Ok(RouteLimits::Disabled),
                    (true, true) => Err(refuse(
                        field,
                        "disabled",
                        "a disabled route has no token_bucket or descriptors",
                    )),
                    _ => Err(refuse(
                        field,
                        "",
                        "a route needs token_bucket, descriptors, or disabled: true",
                    )),
                };
            }
            let scope = r.name.clone().unwrap_or_else(|| {
                let mut n = String::from("route_");
                push_decimal(&mut n, i as u64);
                n
            });
            b.limits(Some(&scope), &scope, &r.token_bucket, &r.descriptors, field)
                .map(RouteLimits::Limits)
        })?;
        let status = match &raw.status {
            None => 429,
            Some(s) if (400..=599).contains(&s.code) => s.code,
            Some(s) => {
                return Err(refuse_with(
                    "status.code",
                    "",
                    number(u64::from(s.code), " is not a 4xx or 5xx status"),
                ))
            }
        };
        let connections = match &raw.connections {
            None => None,
            Some(c) => {
                const AT: &str = "connections";
                let slots = positive(c.max_clients, AT, "max_clients")?.unwrap_or(default_slots);
                let rate = match &c.token_bucket {
                    Some(t) => {
                        const BUCKET: &str = "connections.token_bucket";
                        Some(b.add("connections".into(), t, slots, BUCKET, BUCKET)?)
                    }
                    None => None,
                };
                let concurrent = positive(c.max_concurrent, AT, "max_concurrent")?
                    .map(|max| Concurrency { max });
                if rate.is_none() && concurrent.is_none() {
                    return Err(refuse(AT, "", "needs token_bucket or max_concurrent"));
                }
                if concurrent.is_some() {
                    b.count(
                        slots,
                        "connections.max_clients",
                        "the configuration would need more than ",
                    )?;
                }
                Some(ConnectionLimits {
                    rate,
                    concurrent,
                    slots,
                })
            }
        };
        Ok(Self {
            stat_prefix,
            buckets: b.buckets,
            limits,
            routes,
            enabled: fraction(&raw.filter_enabled, "filter_enabled")?,
            enforced: fraction(&raw.filter_enforced, "filter_enforced")?,
            always_consume_default: raw.always_consume_default_token_bucket,
            headers: raw.ratelimit_headers.unwrap_or(HeadersMode::Limited),
            status,
            connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> ConfigError {
        Config::parse(json.as_bytes()).unwrap_err()
    }

    const TB: &str = r#"{"max_tokens":10,"tokens_per_fill":10,"fill_interval":"1s"}"#;

    /// The messages and default names that carry numbers, word for word.
    #[test]
    fn numbers_in_messages_and_names() {
        let e = err(r#"{"filter_enabled":{"default_value":{"numerator":101}}}"#);
        assert_eq!(e.field, "filter_enabled.default_value.numerator");
        assert_eq!(e.reason, "101 is more than the denominator 100");
        let e = err(r#"{"status":{"code":200}}"#);
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("status.code", "200 is not a 4xx or 5xx status")
        );
        let e = err(r#"{"token_bucket":{"max_tokens":4294967296,"fill_interval":"1s"}}"#);
        assert_eq!(
            e.reason,
            "4294967296 is larger than a bucket's stored value holds (at most 4294967295)"
        );
        let d = format!(
            r#"{{"entries":[{{"attribute":"path"}}],"token_bucket":{TB},"max_keys":40000}}"#
        );
        let e = err(&format!(r#"{{"descriptors":[{d},{d}]}}"#));
        assert_eq!(
            e.reason,
            "the configuration's buckets would need more than 65536 shared-data slots"
        );
        let e = err(&format!(
            r#"{{"max_dynamic_descriptors":65536,"connections":{{"max_concurrent":1}},"descriptors":[{{"entries":[{{"attribute":"path"}}],"token_bucket":{TB}}}]}}"#
        ));
        assert_eq!(e.field, "connections.max_clients");
        assert_eq!(
            e.reason,
            "the configuration would need more than 65536 shared-data slots"
        );
        let c = Config::parse(
            format!(
                r#"{{"descriptors":[{d},{d}],"routes":[{{"descriptors":[{d}]}},{{"name":"api","descriptors":[{d}]}}]}}"#,
                d = format!(r#"{{"entries":[{{"attribute":"path"}}],"token_bucket":{TB},"max_keys":2}}"#)
            )
            .as_bytes(),
        )
        .unwrap();
        let names: Vec<&str> = c.buckets.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "descriptor_0",
                "descriptor_1",
                "route_0_descriptor_0",
                "api_descriptor_0"
            ]
        );
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = err(r#"{"token_bucket":{"max_tokens":10,"fill_interval":"0s"}}"#);
        assert_eq!(e.field, "token_bucket.fill_interval");
        assert!(e.reason.contains("zero"), "{}", e.reason);
        let e = err(&format!(
            r#"{{"descriptors":[{{"entries":[],"token_bucket":{TB}}}]}}"#
        ));
        assert_eq!(e.field, "descriptors[0].entries");
        let e = err(&format!(
            r#"{{"descriptors":[{{"entries":[{{"attribute":"client_address"}},{{"attribute":"cookie"}}]," token_bucket":{TB}}}]}}"#
        ));
        assert!(e.field.starts_with("descriptors[0]"), "{e:?}");
        let e = err(&format!(
            r#"{{"descriptors":[{{"entries":[{{"attribute":"client_address"}},{{"attribute":"cookie"}}],"token_bucket":{TB}}}]}}"#
        ));
        assert_eq!(e.field, "descriptors[0].entries[1].attribute");
        assert!(e.reason.contains("unknown attribute \"cookie\""));
        let e = err(r#"{"token_bucket":{"max_tokens":4294967296,"fill_interval":"1s"}}"#);
        assert_eq!(e.field, "token_bucket.max_tokens");
        assert!(e.reason.contains("stored value"), "{}", e.reason);
        let e =
            err(r#"{"token_bucket":{"max_tokens":1,"tokens_per_fill":0,"fill_interval":"1s"}}"#);
        assert_eq!(e.field, "token_bucket.tokens_per_fill");
        let e = err(r#"{"token_bucket":{"max_tokens":1,"fill_interval":"0.01s"}}"#);
        assert_eq!(e.field, "token_bucket.fill_interval");
        let e = err(&format!(
            r#"{{"routes":[{{"match":{{"prefix":"/a"}},"descriptors":[{{"entries":[{{"attribute":"header"}}],"token_bucket":{TB}}}]}}]}}"#
        ));
        assert_eq!(e.field, "routes[0].descriptors[0].entries[0].header");
        let e = err(r#"{"routes":[{"match":{"prefix":"/a"}}]}"#);
        assert_eq!(e.field, "routes[0]");
        let e = err(r#"{"filter_enforced":{"default_value":{"numerator":101}}}"#);
        assert_eq!(e.field, "filter_enforced.default_value.numerator");
        let e = err(
            r#"{"max_dynamic_descriptors":100000,"descriptors":[{"entries":[{"attribute":"method"}],"token_bucket":{"max_tokens":1,"fill_interval":"1s"}}]}"#,
        );
        assert_eq!(e.field, "descriptors[0]");
        let e = err(r#"{"connections":{}}"#);
        assert_eq!(e.field, "connections");
        let e = err(r#"{"stat_prefix":"a b"}"#);
        assert_eq!(e.field, "stat_prefix");
        let e = err(r#"{"toekn_bucket":{}}"#);
        assert_eq!(e.field, "toekn_bucket");
    }

    #[test]
    fn buckets_routes_and_slots() {
        let c = Config::parse(
            format!(
                r#"{{"token_bucket":{TB},"max_dynamic_descriptors":16,
                "descriptors":[
                  {{"name":"per_key","entries":[{{"attribute":"header","header":"X-Api-Key"}}],"token_bucket":{TB}}},
                  {{"entries":[{{"attribute":"method","value":"POST"}}],"token_bucket":{TB}}}],
                "routes":[{{"match":{{"prefix":"/health"}},"disabled":true}},
                          {{"name":"login","match":{{"prefix":"/login"}},"token_bucket":{TB}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let names: Vec<_> = c
            .buckets
            .iter()
            .map(|b| (b.name.as_str(), b.slots))
            .collect();
        assert_eq!(
            names,
            [
                ("default", 1),
                ("per_key", 16),
                ("descriptor_1", 1),
                ("login", 1)
            ]
        );
        assert_eq!(
            c.limits.descriptors[0].entries[0].attribute,
            Attribute::Header("x-api-key".into())
        );
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.enforced, Fraction::ALL);
        assert_eq!(c.status, 429);
    }

    #[test]
    fn fractions_spread_evenly() {
        let f = Fraction {
            numerator: 25,
            denominator: 100,
        };
        assert_eq!((0..100).filter(|&n| f.includes(n)).count(), 25);
        let zero = Fraction {
            numerator: 0,
            denominator: 100,
        };
        assert!((0..1000).all(|n| !zero.includes(n)));
        assert!((0..1000).all(|n| Fraction::ALL.includes(n)));
    }
}

//! Metrics defined once (at config time) and cheap to update per request.
//!
//! Envoy exposes them with a `wasmcustom.` prefix (`wasmcustom.header_rules.requests_matched`).
//! A metric with a dimension is named `<filter>.<metric>.<dimension>.<value>`
//! (`jwt_auth.denied.reason.missing`): the `stats_tags` of
//! `envoy-configs/snippets/stats-tags.yaml` make the dimension a tag, so Prometheus shows
//! `jwt_auth_denied{reason="missing"}`.
//! A metric the host refused to define is logged once and then a no-op: metrics never fail
//! a request.

use crate::host;
use crate::host::MetricType;

#[derive(Debug, Clone, Copy)]
struct Id(Option<u32>);

impl Id {
    fn define(kind: MetricType, name: &str) -> Self {
        match host::define_metric(kind, name) {
            Ok(id) => Id(Some(id)),
            Err(status) => {
                log::warn!("metric {name}: host refused to define it ({status:?})");
                Id(None)
            }
        }
    }
}

/// Checks a name that becomes part of a metric name (a rule's `name`, in
/// `<filter>.matched.rule.<name>`): letters, digits, `_` and `-`, non-empty. `field` names it
/// in the error (`rules[2].name`).
pub fn check_name_part(name: &str, field: &str) -> Result<(), crate::config::ConfigError> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Ok(());
    }
    Err(crate::config::ConfigError::new(
        field,
        crate::json::quoted(
            "",
            name,
            ": use letters, digits, '_' and '-' (it names a metric)",
        ),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_name_parts() {
        assert!(super::check_name_part("api-get_2", "r").is_ok());
        for bad in ["", "a b", "a.b", "é"] {
            let e = super::check_name_part(bad, "rules[0].name").unwrap_err();
            assert_eq!(e.field, "rules[0].name");
            assert!(e.reason.contains("it names a metric"), "{}", e.reason);
        }
    }
}

/// A monotonically increasing count.
#[derive(Debug, Clone, Copy)]
pub struct Counter(Id);

impl Counter {
    /// Defines (or finds) the counter `name`.
    pub fn new(name: &str) -> Self {
        Counter(Id::define(MetricType::Counter, name))
    }
    /// Adds one.
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Adds `n`.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        if let Some(id) = self.0 .0 {
            let _ = host::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    /// The current value (0 if undefined or unreadable).
    pub fn value(&self) -> u64 {
        self.0
             .0
            .and_then(|id| host::get_metric(id).ok())
            .unwrap_or(0)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Copy)]
pub struct Gauge(Id);

impl Gauge {
    /// Defines (or finds) the gauge `name`.
    pub fn new(name: &str) -> Self {
        Gauge(Id::define(MetricType::Gauge, name))
    }
    /// Sets the value.
    pub fn set(&self, value: u64) {
        if let Some(id) = self.0 .0 {
            let _ = host::record_metric(id, value);
        }
    }
    /// Adds `delta` (may be negative).
    pub fn add(&self, delta: i64) {
        if let Some(id) = self.0 .0 {
            let _ = host::increment_metric(id, delta);
        }
    }
}

/// A distribution of recorded values.
#[derive(Debug, Clone, Copy)]
pub struct Histogram(Id);

impl Histogram {
    /// Defines (or finds) the histogram `name`.
    pub fn new(name: &str) -> Self {
        Histogram(Id::define(MetricType::Histogram, name))
    }
    /// Records one value.
    pub fn record(&self, value: u64) {
        if let Some(id) = self.0 .0 {
            let _ = host::record_metric(id, value);
        }
    }
}

//! The glue, for both contexts: an HTTP stream (403 through `LocalResponse`) and an L4
//! connection (closed in `on_new_connection`, before `tcp_proxy` connects upstream; no data
//! phases, so allowed connections stream without the VM being entered per chunk).

use crate::config::{Config, Lists, Verdict};
use crate::policy::{client_ip, decide_http, judge, AddressError, Judgement};
use crate::NAME;
use sdk_ext::config::ConfigError;
use sdk_ext::metrics::Counter;
use sdk_ext::net::Ip;
use sdk_ext::response::LocalResponse;
use sdk_ext::{Action, HttpFilter, HttpHost, NetworkFilter, NetworkHost, Plugin};

/// State shared by every stream and connection of one plugin configuration.
pub struct Shared {
    config: Config,
    denied: LocalResponse,
    no_address: LocalResponse,
    allowed: Counter,
    denied_count: Counter,
    invalid_address: Counter,
    /// Per rule (index = rule index), then the top level last.
    rule_denied: Vec<Counter>,
}

impl Plugin for Shared {
    const NAME: &'static str = NAME;

    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let denied = LocalResponse::new(config.status, "ip_filter_denied", &config.message);
        let no_address = LocalResponse::new(
            config.status,
            "ip_filter_no_client_address",
            &config.message,
        );
        let rule_denied = config
            .rules
            .iter()
            .chain(std::iter::once(&config.top))
            .map(|l| Counter::new(&format!("ip_filter.rule.{}.denied", l.name)))
            .collect();
        Ok(Self {
            config,
            denied,
            no_address,
            allowed: Counter::new("ip_filter.allowed"),
            denied_count: Counter::new("ip_filter.denied"),
            invalid_address: Counter::new("ip_filter.invalid_address"),
            rule_denied,
        })
    }
}

impl Shared {
    /// Counts and logs a judgement; whether the client may pass.
    fn record(&self, lists: &Lists, ip: Ip, j: Judgement<'_>) -> bool {
        match j.verdict {
            Verdict::Allow => {
                self.allowed.inc();
                true
            }
            Verdict::Deny => {
                self.denied_count.inc();
                let i = self
                    .config
                    .rules
                    .iter()
                    .position(|l| std::ptr::eq(l, lists))
                    .unwrap_or(self.config.rules.len());
                if let Some(c) = self.rule_denied.get(i) {
                    c.inc();
                }
                match j.by {
                    Some(c) => log::debug!("{ip} denied by {c} ({})", lists.name),
                    None => log::debug!("{ip} denied by default ({})", lists.name),
                }
                false
            }
        }
    }

    fn no_address(&self, e: AddressError) {
        self.invalid_address.inc();
        self.denied_count.inc();
        log::debug!("no client address ({}): denied", e.name());
    }
}

/// One HTTP stream.
pub struct Stream;

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Stream
    }

    fn on_request_headers(&mut self, shared: &Shared, host: &mut HttpHost, _: bool) -> Action {
        match decide_http(&shared.config, host.request()) {
            (lists, Ok((ip, j))) => {
                if shared.record(lists, ip, j) {
                    Action::Continue
                } else {
                    host.respond(&shared.denied)
                }
            }
            (_, Err(e)) => {
                shared.no_address(e);
                host.respond(&shared.no_address)
            }
        }
    }
}

/// One L4 connection.
pub struct Connection;

#[sdk_ext::filter]
impl NetworkFilter for Connection {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Connection
    }

    fn on_new_connection(&mut self, shared: &Shared, host: &mut NetworkHost) -> Action {
        let lists = &shared.config.top;
        let allowed = match client_ip(0, host.source_address(), &[]) {
            Ok(ip) => shared.record(lists, ip, judge(lists, ip)),
            Err(e) => {
                shared.no_address(e);
                false
            }
        };
        if allowed {
            return Action::Continue;
        }
        if host.close_downstream().is_err() {
            log::warn!("closing a denied connection failed; it stays paused");
        }
        // Paused: tcp_proxy never sees the connection, so nothing is proxied upstream.
        Action::Pause
    }
}

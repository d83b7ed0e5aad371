//! The glue: check path, query and headers at request headers; when body rules exist, hold
//! the body until its inspected part has arrived, then check it; block with the configured response, naming the rule in a log line and a metric.

use crate::config::Config;
use crate::policy::{check_body, check_headers, Verdict};
use crate::NAME;
use sdk_ext::config::ConfigError;
use sdk_ext::metrics::Counter;
use sdk_ext::response::LocalResponse;
use sdk_ext::{Action, HttpFilter, HttpHost, Plugin};

/// State shared by every stream of one plugin configuration.
pub struct Shared {
    config: Config,
    blocked: LocalResponse,
    refused: LocalResponse,
    allowed: Counter,
    body_truncated: Counter,
    /// Per rule, in config order.
    rule_blocked: Vec<Counter>,
}

impl Plugin for Shared {
    const NAME: &'static str = NAME;

    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let rule_blocked = config
            .rules
            .iter()
            .map(|r| Counter::new(&format!("request_block.blocked.rule.{}", r.name)))
            .collect();
        Ok(Self {
            blocked: LocalResponse::new(config.status, "request_blocked", &config.message)
                .counted(Counter::new("request_block.blocked")),
            refused: LocalResponse::new(400, "request_block_bad_path", "malformed request path")
                .counted(Counter::new("request_block.refused_path")),
            config,
            allowed: Counter::new("request_block.allowed"),
            body_truncated: Counter::new("request_block.body_truncated"),
            rule_blocked,
        })
    }
}

impl Shared {
    fn block(&self, host: &mut HttpHost, rule: usize) -> Action {
        if let Some(c) = self.rule_blocked.get(rule) {
            c.inc();
        }
        if let Some(r) = self.config.rules.get(rule) {
            log::info!("blocked by rule {} ({})", r.name, r.location.name());
        }
        host.respond(&self.blocked)
    }
}

/// Where a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing decided yet, or done: every later phase continues.
    Done,
    /// Headers passed; the body is being held for inspection.
    AwaitingBody,
}

/// One HTTP stream.
pub struct Stream {
    state: State,
}

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Self { state: State::Done }
    }

    fn on_request_headers(&mut self, shared: &Shared, host: &mut HttpHost, eos: bool) -> Action {
        match check_headers(&shared.config, host.request()) {
            Verdict::Block(rule) => shared.block(host, rule),
            Verdict::Refuse(why) => {
                log::info!("refused a path ({})", why.name());
                host.respond(&shared.refused)
            }
            Verdict::Allow if !eos && !shared.config.body.set.is_empty() => {
                // Envoy delivers no body to a module whose headers phase paused (it stops all
                // iteration), so the headers go on and the body is held in the body phase: a
                // blocked body never reaches the upstream, whose request Envoy then resets.
                self.state = State::AwaitingBody;
                Action::Continue
            }
            Verdict::Allow => {
                shared.allowed.inc();
                Action::Continue
            }
        }
    }

    fn on_request_body(
        &mut self,
        shared: &Shared,
        host: &mut HttpHost,
        body_size: usize,
        eos: bool,
    ) -> Action {
        if self.state != State::AwaitingBody {
            return Action::Continue;
        }
        let max = shared.config.body_max_bytes;
        if !eos && body_size < max {
            return Action::Pause; // buffer more
        }
        self.state = State::Done;
        if body_size > max {
            shared.body_truncated.inc();
        }
        let body = match host.request_body(0, max.min(body_size)) {
            Some(b) => b,
            None if body_size == 0 => Vec::new(),
            None => {
                // Fail closed: a body that cannot be inspected is not let through.
                log::warn!("request body unreadable; blocked");
                return host.respond(&shared.blocked);
            }
        };
        match check_body(&shared.config, &body) {
            Verdict::Block(rule) => shared.block(host, rule),
            _ => {
                shared.allowed.inc();
                Action::Continue
            }
        }
    }
}

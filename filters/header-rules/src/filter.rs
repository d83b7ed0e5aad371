//! The glue: plan at request headers, apply request edits, replay response edits.

use crate::config::Config;
use crate::edits::{apply, plan, Direction, Outcome, Plan};
use crate::NAME;
use sdk_ext::config::ConfigError;
use sdk_ext::headers::Headers;
use sdk_ext::metrics::Counter;
use sdk_ext::response::LocalResponse;
use sdk_ext::{Action, HttpFilter, HttpHost, Plugin};

/// State shared by every stream of one plugin configuration.
pub struct Shared {
    config: Config,
    matched: Counter,
    unmatched: Counter,
    edit_failures: Counter,
    invalid_value: Counter,
    value_too_large: Counter,
    rule_matched: Vec<Counter>,
    remove_failed: LocalResponse,
}

impl Plugin for Shared {
    const NAME: &'static str = NAME;

    /// Parses the configuration and defines the metrics.
    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let rule_matched = config
            .rules
            .iter()
            .map(|r| Counter::new(&format!("header_rules.matched.rule.{}", r.name)))
            .collect();
        Ok(Self {
            config,
            matched: Counter::new("header_rules.requests_matched"),
            unmatched: Counter::new("header_rules.requests_unmatched"),
            edit_failures: Counter::new("header_rules.edit_failures"),
            invalid_value: Counter::new("header_rules.invalid_value"),
            value_too_large: Counter::new("header_rules.value_too_large"),
            rule_matched,
            remove_failed: LocalResponse::new(500, "header_rules_remove_failed", "internal error")
                .counted(Counter::new("header_rules.denied_remove_failed")),
        })
    }
}

impl Shared {
    fn count(&self, outcome: Outcome) {
        if outcome.failed > 0 {
            self.edit_failures.add(u64::from(outcome.failed));
            log::warn!("{} header edit(s) failed", outcome.failed);
        }
    }
}

/// One HTTP stream: the plan made at request headers, replayed at response headers.
pub struct Stream {
    plan: Plan,
}

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Self {
            plan: Plan::default(),
        }
    }

    fn on_request_headers(&mut self, shared: &Shared, host: &mut HttpHost, _: bool) -> Action {
        self.plan = plan(&shared.config, host.request());
        if self.plan.rules.is_empty() {
            shared.unmatched.inc();
            return Action::Continue;
        }
        shared.matched.inc();
        if let Some(r) = &self.plan.rendered {
            if r.invalid_values > 0 {
                shared.invalid_value.add(u64::from(r.invalid_values));
            }
            if r.too_large_values > 0 {
                shared.value_too_large.add(u64::from(r.too_large_values));
            }
        }
        for i in self.plan.rules.iter() {
            if let Some(c) = shared.rule_matched.get(i) {
                c.inc();
            }
        }
        let outcome = apply(
            &shared.config,
            &self.plan.rules,
            Direction::Request,
            self.plan.values(Direction::Request),
            &mut { Headers::REQUEST },
        );
        shared.count(outcome);
        if outcome.remove_failed {
            // Fail closed: a header the operator wanted stripped might reach the upstream.
            return host.respond(&shared.remove_failed);
        }
        Action::Continue
    }

    fn on_response_headers(&mut self, shared: &Shared, _: &mut HttpHost, _: bool) -> Action {
        if !self.plan.rules.is_empty() {
            let outcome = apply(
                &shared.config,
                &self.plan.rules,
                Direction::Response,
                self.plan.values(Direction::Response),
                &mut { Headers::RESPONSE },
            );
            shared.count(outcome);
        }
        Action::Continue
    }
}

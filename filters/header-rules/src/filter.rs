//! The glue: plan at request headers, apply request edits, replay response edits.

use crate::config::Config;
use crate::edits::{apply, plan, Direction, Outcome, Plan};
use crate::NAME;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use sdk_ext::config::ConfigError;
use sdk_ext::headers::Headers;
use sdk_ext::metrics::Counter;
use sdk_ext::request::HostRequest;
use sdk_ext::response::LocalResponse;
use std::rc::Rc;

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

impl Shared {
    /// Parses the configuration and defines the metrics.
    pub fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let rule_matched = config
            .rules
            .iter()
            .map(|r| Counter::new(&format!("header_rules.rule.{}.matched", r.name)))
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

    fn count(&self, outcome: Outcome) {
        if outcome.failed > 0 {
            self.edit_failures.add(u64::from(outcome.failed));
            log::warn!("{NAME}: {} header edit(s) failed", outcome.failed);
        }
    }
}

/// One HTTP stream.
pub struct Stream {
    shared: Rc<Shared>,
    plan: Plan,
}

impl Stream {
    /// Creates the context for a new stream.
    pub fn create(shared: Rc<Shared>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(Self {
            shared,
            plan: Plan::default(),
        })
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let shared = Rc::clone(&self.shared);
        self.plan = plan(&shared.config, &mut HostRequest::new());
        if self.plan.rules.is_empty() {
            shared.unmatched.inc();
            return Action::Continue;
        }
        shared.matched.inc();
        for (counter, n) in [
            (shared.invalid_value, self.plan.invalid_values),
            (shared.value_too_large, self.plan.too_large_values),
        ] {
            if n > 0 {
                counter.add(u64::from(n));
            }
        }
        for &i in &self.plan.rules {
            if let Some(c) = shared.rule_matched.get(i) {
                c.inc();
            }
        }
        let outcome = apply(
            &shared.config,
            &self.plan.rules,
            Direction::Request,
            &self.plan.request_values,
            &mut { Headers::REQUEST },
        );
        shared.count(outcome);
        if outcome.remove_failed {
            // Fail closed: a header the operator wanted stripped might reach the upstream.
            return shared.remove_failed.send();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if !self.plan.rules.is_empty() {
            let shared = &self.shared;
            let outcome = apply(
                &shared.config,
                &self.plan.rules,
                Direction::Response,
                &self.plan.response_values,
                &mut { Headers::RESPONSE },
            );
            shared.count(outcome);
        }
        Action::Continue
    }
}

//! The glue: read the request, ask the policy, apply the decision.

use crate::config::Config;
use crate::policy::{decide, Decision};
use crate::NAME;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use sdk_ext::config::ConfigError;
use sdk_ext::metrics::Counter;
use sdk_ext::request::HostRequest;
use sdk_ext::response::LocalResponse;
use std::rc::Rc;

/// State shared by every stream of one plugin configuration (built once, in the root).
pub struct Shared {
    config: Config,
    denied: LocalResponse,
    allowed: Counter,
}

impl Shared {
    /// Parses the configuration and defines the metrics.
    pub fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let denied = LocalResponse::new(config.status, "filter_template_denied", &config.message)
            .counted(Counter::new("filter_template.denied"));
        let allowed = Counter::new("filter_template.allowed");
        Ok(Self {
            config,
            denied,
            allowed,
        })
    }
}

/// One HTTP stream.
pub struct Stream {
    shared: Rc<Shared>,
}

impl Stream {
    /// Creates the context for a new stream.
    pub fn create(shared: Rc<Shared>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(Self { shared })
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        match decide(&self.shared.config, &mut HostRequest::new()) {
            Decision::Allow => {
                self.shared.allowed.inc();
                Action::Continue
            }
            Decision::Deny => {
                log::debug!("{NAME}: denied");
                self.shared.denied.send()
            }
        }
    }
}

//! The glue: read the request, ask the policy, apply the decision.

use crate::config::Config;
use crate::policy::{decide, Decision};
use crate::NAME;
use sdk_ext::config::ConfigError;
use sdk_ext::metrics::Counter;
use sdk_ext::response::LocalResponse;
use sdk_ext::{Action, HttpFilter, HttpHost, Plugin};

/// State shared by every stream of one plugin configuration (built once, in the root).
pub struct Shared {
    config: Config,
    denied: LocalResponse,
    allowed: Counter,
}

impl Plugin for Shared {
    const NAME: &'static str = NAME;

    /// Parses the configuration and defines the metrics.
    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let denied = LocalResponse::new(config.status, "template_denied", &config.message)
            .counted(Counter::new("template.denied"));
        let allowed = Counter::new("template.allowed");
        Ok(Self {
            config,
            denied,
            allowed,
        })
    }
}

/// One HTTP stream (no per-stream state).
pub struct Stream;

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Stream
    }

    fn on_request_headers(&mut self, shared: &Shared, host: &mut HttpHost, _: bool) -> Action {
        match decide(&shared.config, host.request()) {
            Decision::Allow => {
                shared.allowed.inc();
                Action::Continue
            }
            Decision::Deny => {
                log::debug!("denied");
                host.respond(&shared.denied)
            }
        }
    }
}

//! The glue: decide at request headers, answer preflights and rejections locally, write
//! the CORS headers and `Vary: Origin` on the response.

use crate::config::Config;
use crate::policy::{decide, vary_with_origin, Decision, HeaderEdits};
use crate::NAME;
use sdk_ext::config::ConfigError;
use sdk_ext::metrics::Counter;
use sdk_ext::response::LocalResponse;
use sdk_ext::{Action, HttpFilter, HttpHost, Plugin};

/// State shared by every stream of one plugin configuration.
pub struct Shared {
    config: Config,
    preflight: LocalResponse,
    rejected: LocalResponse,
    origin_valid: Counter,
    origin_invalid: Counter,
}

impl Plugin for Shared {
    const NAME: &'static str = NAME;

    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        Ok(Self {
            config,
            // Envoy answers preflights 200 with no body (details `cors_response`).
            preflight: LocalResponse::empty(200, "cors_response")
                .counted(Counter::new("cors.preflight")),
            rejected: LocalResponse::new(403, "cors_origin_rejected", "origin not allowed")
                .counted(Counter::new("cors.rejected")),
            origin_valid: Counter::new("cors.origin_valid"),
            origin_invalid: Counter::new("cors.origin_invalid"),
        })
    }
}

/// One HTTP stream: what to write on its response.
pub struct Stream {
    /// Some: an enabled rule matched and the request went upstream.
    response: Option<HeaderEdits>,
}

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Self { response: None }
    }

    fn on_request_headers(&mut self, shared: &Shared, host: &mut HttpHost, _: bool) -> Action {
        match decide(&shared.config, host.request()) {
            Decision::Pass => Action::Continue,
            Decision::Forward {
                headers,
                disallowed,
            } => {
                if disallowed {
                    shared.origin_invalid.inc();
                } else if !headers.is_empty() {
                    shared.origin_valid.inc();
                }
                self.response = Some(headers);
                Action::Continue
            }
            Decision::Preflight {
                mut headers,
                disallowed,
            } => {
                if disallowed {
                    shared.origin_invalid.inc();
                } else {
                    shared.origin_valid.inc();
                }
                headers.push(("vary", b"origin".to_vec()));
                let mut extra: Vec<(&str, &[u8])> = Vec::with_capacity(headers.len());
                for (n, v) in &headers {
                    extra.push((*n, v.as_slice()));
                }
                host.respond_with(&shared.preflight, &extra)
            }
            Decision::Reject => {
                shared.origin_invalid.inc();
                log::debug!("origin rejected");
                host.respond(&shared.rejected)
            }
        }
    }

    fn on_response_headers(&mut self, _: &Shared, host: &mut HttpHost, _: bool) -> Action {
        let Some(headers) = self.response.take() else {
            return Action::Continue;
        };
        for (name, value) in &headers {
            // A failure is logged by sdk-ext; CORS fails open (the browser then refuses).
            let _ = host.set_response_header(name, value);
        }
        if let Some(vary) = vary_with_origin(host.response_header("vary").as_deref()) {
            let _ = host.set_response_header("vary", &vary);
        }
        Action::Continue
    }
}

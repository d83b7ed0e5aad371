//! The glue: decide at request headers, answer preflights and rejections locally, write
//! the CORS headers and `Vary: Origin` on the response.

use crate::config::Config;
use crate::policy::{actual_headers, decide, vary_with_origin, Decision, MAX_PREFLIGHT_HEADERS};
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

/// What a forwarded request's response gets: `Vary: Origin` and, from an allowed origin,
/// the CORS headers of rule `rule`'s policy (written from the policy, not copied per
/// request).
struct Pending {
    rule: usize,
    /// The allowed origin (`None`: absent or disallowed; only `vary` is written).
    origin: Option<Vec<u8>>,
}

/// One HTTP stream: what to write on its response.
pub struct Stream {
    /// Some: an enabled rule matched and the request went upstream.
    response: Option<Pending>,
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
                rule,
                origin,
                disallowed,
            } => {
                if disallowed {
                    shared.origin_invalid.inc();
                } else if origin.is_some() {
                    shared.origin_valid.inc();
                }
                self.response = Some(Pending { rule, origin });
                Action::Continue
            }
            Decision::Preflight {
                headers,
                disallowed,
            } => {
                if disallowed {
                    shared.origin_invalid.inc();
                } else {
                    shared.origin_valid.inc();
                }
                // The headers as borrowed pairs, on the stack (`decide` writes at most
                // MAX_PREFLIGHT_HEADERS), then `vary`.
                let mut extra: [(&str, &[u8]); MAX_PREFLIGHT_HEADERS + 1] =
                    [("", &[]); MAX_PREFLIGHT_HEADERS + 1];
                let mut n = 0;
                for (slot, (name, v)) in extra.iter_mut().zip(&headers) {
                    *slot = (*name, v);
                    n += 1;
                }
                if let Some(slot) = extra.get_mut(n) {
                    *slot = ("vary", b"origin");
                    n += 1;
                }
                host.respond_with(&shared.preflight, extra.get(..n).unwrap_or_default())
            }
            Decision::Reject => {
                shared.origin_invalid.inc();
                log::debug!("origin rejected");
                host.respond(&shared.rejected)
            }
        }
    }

    fn on_response_headers(&mut self, shared: &Shared, host: &mut HttpHost, _: bool) -> Action {
        let Some(Pending { rule, origin }) = self.response.take() else {
            return Action::Continue;
        };
        if let (Some(origin), Some(policy)) = (&origin, shared.config.rules.get(rule)) {
            actual_headers(policy, origin, |name, value| {
                // A failure is logged by sdk-ext; CORS fails open (the browser then refuses).
                let _ = host.set_response_header(name, value);
            });
        }
        if let Some(vary) = vary_with_origin(host.response_header("vary").as_deref()) {
            let _ = host.set_response_header("vary", &vary);
        }
        Action::Continue
    }
}

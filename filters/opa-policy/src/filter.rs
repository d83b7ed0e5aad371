//! The glue: pick the request's rule, collect the input document (after the body when the
//! policy needs it), evaluate the policy or ask the OPA server, apply the decision.

use crate::config::{Config, Decider, WithBody, MAX_REMOTE_ANSWER_BYTES};
use crate::decision::{self, Decision};
use crate::evaluate::EvalError;
use crate::input::{Body, InputError, Needs, RequestFacts};
use crate::remote;
use crate::NAME;
use regorus::Value;
use sdk_ext::callout;
use sdk_ext::config::ConfigError;
use sdk_ext::host;
use sdk_ext::metrics::{Counter, Histogram};
use sdk_ext::response::LocalResponse;
use sdk_ext::{Action, HttpFilter, HttpHost, Plugin};
use std::rc::Rc;

struct Metrics {
    allowed: Counter,
    denied: Counter,
    skipped: Counter,
    error: Counter,
    limit_exceeded: Counter,
    remote_failed: Counter,
    eval_us: Histogram,
}

/// State shared by every stream of one plugin configuration (built once, in the root).
pub struct Shared {
    config: Config,
    metrics: Metrics,
    /// A boolean or object denial without a status or body of its own.
    denied: LocalResponse,
    error: LocalResponse,
    limit: LocalResponse,
    remote_failed: LocalResponse,
    body_too_large: LocalResponse,
}

impl Plugin for Shared {
    const NAME: &'static str = NAME;

    /// Parses the configuration, compiles the policies and defines the metrics.
    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(bytes)?;
        let c = |name: &str| Counter::new(&format!("opa_policy.{name}"));
        let metrics = Metrics {
            allowed: c("allowed"),
            denied: c("denied"),
            skipped: c("skipped"),
            error: c("error"),
            limit_exceeded: c("limit_exceeded"),
            remote_failed: c("remote_failed"),
            eval_us: Histogram::new("opa_policy.eval_us"),
        };
        let status = config.status_on_error;
        Ok(Self {
            denied: LocalResponse::new(403, "opa_policy_denied", "denied by policy"),
            error: LocalResponse::new(status, "opa_policy_error", "policy evaluation failed")
                .counted(metrics.error),
            limit: LocalResponse::new(
                status,
                "opa_policy_limit",
                "policy evaluation limit reached",
            )
            .counted(metrics.limit_exceeded),
            remote_failed: LocalResponse::new(
                status,
                "opa_policy_remote_failed",
                "the policy server did not decide",
            )
            .counted(metrics.remote_failed),
            body_too_large: LocalResponse::new(
                413,
                "opa_policy_body_too_large",
                "request body too large",
            )
            .counted(metrics.limit_exceeded),
            config,
            metrics,
        })
    }
}

/// What a stream waits for.
enum Waiting {
    Nothing,
    /// The request body, for this decider.
    Body(Decider),
    /// The OPA server's answer to callout `token`.
    Answer(u32),
}

/// One HTTP stream.
pub struct Stream {
    waiting: Waiting,
    /// Headers the decision adds to the client's response.
    response_headers: Vec<(String, String)>,
}

fn now_ns() -> u64 {
    host::now_nanos().unwrap_or(0)
}

/// The request facts from the host (the properties only when the document has them), the
/// header names and values borrowed from `encoded` (the host's header map, as it gave it).
fn facts<'a>(
    host: &mut HttpHost,
    encoded: &'a [u8],
    body: Option<Body>,
    needs: &Needs,
) -> RequestFacts<'a> {
    let mut headers = Vec::with_capacity(16);
    if !host::walk_pairs(encoded, |n, v| headers.push((n, v))) {
        headers.clear();
    }
    let prop = |on: bool, path: &[&str]| if on { host.property(path) } else { None };
    RequestFacts {
        headers,
        source_address: prop(needs.source, &["source", "address"]),
        destination_address: prop(needs.destination, &["destination", "address"]),
        request_id: prop(needs.id, &["request", "id"]),
        protocol: prop(needs.protocol, &["request", "protocol"]),
        body,
    }
}

/// The request's header map in the host's encoding (empty when the host gives none).
fn request_header_map() -> Vec<u8> {
    host::get_header_pairs_encoded(host::MapType::HttpRequestHeaders).unwrap_or_else(|status| {
        log::debug!("get header map: host answered {status:?}");
        Vec::new()
    })
}

impl Shared {
    /// Decides with `decider` now; `Pause` while a remote answer is awaited.
    fn decide(
        &self,
        stream: &mut Stream,
        host: &mut HttpHost,
        decider: &Decider,
        body: Option<Body>,
        resume: bool,
    ) -> Action {
        let needs = match decider {
            Decider::Embedded { policy, .. } => policy.needs(),
            Decider::Remote(_) | Decider::Skip => Needs::ALL,
        };
        let encoded = request_header_map();
        let facts = facts(host, &encoded, body, &needs);
        let input = match facts.to_input_for(self.config.limits.max_input_bytes, &needs) {
            Ok(input) => input,
            Err(InputError::TooLarge(n)) => {
                log::debug!("input of {n} bytes over limits.max_input_bytes");
                return host.respond(&self.limit);
            }
            Err(InputError::BadJsonBody(why)) => {
                log::debug!("JSON body does not parse: {why}");
                return host.respond(&self.error);
            }
        };
        match decider {
            Decider::Skip => {
                self.metrics.skipped.inc();
                Action::Continue
            }
            Decider::Embedded { policy, query } => {
                let started = now_ns();
                let result = policy.eval(query, input);
                let took = now_ns().saturating_sub(started) / 1000;
                self.metrics.eval_us.record(took);
                match result {
                    Ok(value) => self.apply(stream, host, &value, resume),
                    Err(EvalError::TimeLimit) => {
                        log::warn!(
                            "{query}: evaluation stopped at the time limit ({:?}); denied",
                            self.config.limits.eval_timeout
                        );
                        host.respond(&self.limit)
                    }
                    Err(EvalError::MemoryLimit(n)) => {
                        log::warn!(
                            "{query}: evaluation allocated {n} bytes, over limits.max_eval_memory_bytes ({}); denied",
                            self.config.limits.max_eval_memory_bytes
                        );
                        host.respond(&self.limit)
                    }
                    Err(EvalError::Failed(why)) => {
                        log::warn!("{query}: evaluation failed: {why}; denied");
                        host.respond(&self.error)
                    }
                }
            }
            Decider::Remote(uri) => self.ask(stream, host, uri, input),
        }
    }

    fn ask(
        &self,
        stream: &mut Stream,
        host: &mut HttpHost,
        uri: &Rc<callout::HttpUri>,
        input: Value,
    ) -> Action {
        let body = match remote::request_body(input) {
            Ok(body) => body,
            Err(why) => {
                log::warn!("cannot encode the input: {why}; denied");
                return host.respond(&self.error);
            }
        };
        let headers = remote::request_headers(uri, body.len());
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        match host.http_call(&uri.cluster, &headers, &body, uri.timeout) {
            Ok(token) => {
                stream.waiting = Waiting::Answer(token);
                Action::Pause
            }
            Err(status) => {
                log::warn!(
                    "cannot call {} via cluster {:?}: {status:?}; denied",
                    uri.uri,
                    uri.cluster
                );
                host.respond(&self.remote_failed)
            }
        }
    }

    /// Applies a policy's value. `resume`: the request was paused (body or callout) and is
    /// resumed when allowed.
    fn apply(
        &self,
        stream: &mut Stream,
        host: &mut HttpHost,
        value: &Value,
        resume: bool,
    ) -> Action {
        let decision = match decision::read(value) {
            Ok(d) => d,
            Err(why) => {
                log::warn!("not a decision: {why}; denied");
                return host.respond(&self.error);
            }
        };
        if !decision.allowed {
            return self.deny(host, &decision);
        }
        if let Err(status) = edit_request(host, &decision) {
            log::error!("cannot edit request headers ({status:?}); failing closed");
            return host.respond(&self.error);
        }
        stream.response_headers = decision.response_headers_to_add;
        self.metrics.allowed.inc();
        if resume {
            if let Err(status) = host.resume_request() {
                log::warn!("cannot resume the request: {status:?}");
            }
        }
        Action::Continue
    }

    fn deny(&self, host: &mut HttpHost, d: &Decision) -> Action {
        self.metrics.denied.inc();
        if d.http_status.is_none() && d.body.is_none() && d.headers.is_empty() {
            return host.respond(&self.denied);
        }
        let status = d.http_status.unwrap_or(403);
        let mut response = LocalResponse::new(status, "opa_policy_denied", "denied by policy");
        let content_type = d
            .headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.as_str());
        if let Some(body) = &d.body {
            response = response.with_body(content_type.unwrap_or("text/plain"), body.as_bytes());
        }
        let extra: Vec<(&str, &[u8])> = d
            .headers
            .iter()
            .filter(|(n, _)| n != "content-type")
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        host.respond_with(&response, &extra)
    }
}

fn edit_request(host: &mut HttpHost, d: &Decision) -> Result<(), host::Status> {
    for name in &d.request_headers_to_remove {
        host.remove_request_header(name)?;
    }
    let mut set: Vec<&str> = Vec::new();
    for (name, value) in &d.headers {
        if set.contains(&name.as_str()) {
            host.add_request_header(name, value.as_bytes())?;
        } else {
            host.set_request_header(name, value.as_bytes())?;
            set.push(name);
        }
    }
    Ok(())
}

/// What the body phase does with `body_size` buffered bytes.
fn body_step(with: &WithBody, body_size: usize, end_of_stream: bool) -> BodyStep {
    if body_size > with.max_bytes {
        if with.allow_partial {
            BodyStep::Decide { truncated: true }
        } else {
            BodyStep::TooLarge
        }
    } else if end_of_stream {
        BodyStep::Decide { truncated: false }
    } else {
        BodyStep::Buffer
    }
}

enum BodyStep {
    Buffer,
    TooLarge,
    Decide { truncated: bool },
}

#[sdk_ext::filter]
impl HttpFilter for Stream {
    type Plugin = Shared;

    fn create(_: &Shared) -> Self {
        Stream {
            waiting: Waiting::Nothing,
            response_headers: Vec::new(),
        }
    }

    fn on_request_headers(&mut self, shared: &Shared, host: &mut HttpHost, eos: bool) -> Action {
        let decider = match shared.config.rules.first(host.request()) {
            None | Some((_, Decider::Skip)) => {
                shared.metrics.skipped.inc();
                return Action::Continue;
            }
            Some((_, d)) => d.clone(),
        };
        match &shared.config.with_body {
            Some(with) if !eos => {
                let declared = host
                    .request_header("content-length")
                    .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
                if declared.is_some_and(|n| n > with.max_bytes) && !with.allow_partial {
                    return host.respond(&shared.body_too_large);
                }
                self.waiting = Waiting::Body(decider);
                Action::Pause
            }
            Some(_) => shared.decide(self, host, &decider, Some(Body::default()), false),
            None => shared.decide(self, host, &decider, None, false),
        }
    }

    fn on_request_body(
        &mut self,
        shared: &Shared,
        host: &mut HttpHost,
        body_size: usize,
        eos: bool,
    ) -> Action {
        let (Waiting::Body(decider), Some(with)) = (&self.waiting, &shared.config.with_body) else {
            return Action::Continue;
        };
        let decider = decider.clone();
        let truncated = match body_step(with, body_size, eos) {
            BodyStep::Buffer => return Action::Pause,
            BodyStep::TooLarge => {
                self.waiting = Waiting::Nothing;
                return host.respond(&shared.body_too_large);
            }
            BodyStep::Decide { truncated } => truncated,
        };
        self.waiting = Waiting::Nothing;
        let bytes = host
            .request_body(0, body_size.min(with.max_bytes))
            .unwrap_or_default();
        // The headers were held (Pause) for the body: a decision to allow continues here.
        shared.decide(self, host, &decider, Some(Body { bytes, truncated }), false)
    }

    fn on_response_headers(&mut self, _: &Shared, host: &mut HttpHost, _: bool) -> Action {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            let _ = host.add_response_header(&name, value.as_bytes());
        }
        Action::Continue
    }

    fn on_http_call_response(
        &mut self,
        shared: &Shared,
        host: &mut HttpHost,
        token: u32,
        body_size: usize,
    ) {
        if !matches!(self.waiting, Waiting::Answer(t) if t == token) {
            return;
        }
        self.waiting = Waiting::Nothing;
        let answer = callout::Response::read(body_size, MAX_REMOTE_ANSWER_BYTES);
        match remote::read_answer(answer.status, &answer.body, answer.truncated) {
            Ok(value) => {
                shared.apply(self, host, &value, true);
            }
            Err(why) => {
                log::warn!("policy server: {why}; denied");
                host.respond(&shared.remote_failed);
            }
        }
    }
}

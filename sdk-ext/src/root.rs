//! A ready-made root context: parses and validates the plugin configuration once, shares
//! the result with every stream through an `Rc`, and refuses a bad config with a log line
//! that names the field. A filter's `lib.rs` is then registration only:
//!
//! ```ignore
//! proxy_wasm::main! {{
//!     sdk_ext::root::register_http("header-rules", filter::Shared::from_config, filter::HeaderRules::new);
//! }}
//! ```

use crate::config::ConfigError;
use crate::host;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{BufferType, ContextType, Status};
use std::rc::Rc;
use std::time::Duration;

/// Background work a plugin's shared state does in the root context: a timer and the
/// answers to callouts it dispatched (e.g. fetching and refreshing a JWKS). Every method
/// has a no-op default; register with [`register_http_with_hooks`].
pub trait RootHooks {
    /// How often [`on_tick`](Self::on_tick) runs; `None`: never. Asked once, after a
    /// successful configuration.
    fn tick_period(&self) -> Option<Duration> {
        None
    }
    /// Runs once after a successful configuration; host calls (callouts) are allowed.
    fn on_start(&self) {}
    /// Runs every [`tick_period`](Self::tick_period).
    fn on_tick(&self) {}
    /// The answer to callout `token`, dispatched from a hook; read it with
    /// [`crate::callout::Response::read`] (`body_size` is the body length).
    fn on_http_call_response(&self, _token: u32, _body_size: usize) {}
}

/// The hooks of `S`, as plain function pointers (so `Root<S>` needs no bound on `S`).
struct Hooks<S> {
    tick_period: fn(&S) -> Option<Duration>,
    start: fn(&S),
    tick: fn(&S),
    call_response: fn(&S, u32, usize),
}

impl<S: RootHooks> Hooks<S> {
    fn of() -> Self {
        Self {
            tick_period: S::tick_period,
            start: S::on_start,
            tick: S::on_tick,
            call_response: S::on_http_call_response,
        }
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
}

fn set_tick_period(period: Duration) -> Status {
    let millis = u32::try_from(period.as_millis()).unwrap_or(u32::MAX).max(1);
    // SAFETY: a plain value.
    unsafe { proxy_set_tick_period_milliseconds(millis) }
}

/// Builds the shared per-plugin state from the raw configuration bytes.
pub type Configure<S> = fn(&[u8]) -> Result<S, ConfigError>;

enum Streams<S> {
    Http(fn(Rc<S>, u32) -> Box<dyn HttpContext>),
    Tcp(fn(Rc<S>, u32) -> Box<dyn StreamContext>),
}

// Function pointers are Copy whatever `S` is (a derive would demand `S: Copy`).
impl<S> Clone for Streams<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for Streams<S> {}

/// The root context of a filter whose shared state is `S`.
pub struct Root<S> {
    name: &'static str,
    configure: Configure<S>,
    streams: Streams<S>,
    hooks: Option<Hooks<S>>,
    shared: Option<Rc<S>>,
}

impl<S> Root<S> {
    /// The shared state, once configured.
    pub fn shared(&self) -> Option<&Rc<S>> {
        self.shared.as_ref()
    }
}

impl<S> Context for Root<S> {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        if let (Some(hooks), Some(shared)) = (&self.hooks, &self.shared) {
            (hooks.call_response)(shared, token, body_size);
        }
    }
}

impl<S: 'static> RootContext for Root<S> {
    fn on_configure(&mut self, _size: usize) -> bool {
        crate::logging::follow_host_level();
        let bytes = match host::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(b) => b.unwrap_or_default(),
            Err(status) => {
                log::error!(
                    "{}: cannot read plugin configuration: host answered {status:?}",
                    self.name
                );
                return false;
            }
        };
        match (self.configure)(&bytes) {
            Ok(shared) => {
                let shared = Rc::new(shared);
                self.shared = Some(Rc::clone(&shared));
                log::info!("{}: configured", self.name);
                if let Some(hooks) = &self.hooks {
                    if let Some(period) = (hooks.tick_period)(&shared) {
                        let status = set_tick_period(period);
                        if status != Status::Ok {
                            log::error!("{}: cannot set tick period: {status:?}", self.name);
                            return false;
                        }
                    }
                    (hooks.start)(&shared);
                }
                true
            }
            Err(e) => {
                log::error!("{}: {e}", self.name);
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        match (&self.streams, &self.shared) {
            (Streams::Http(f), Some(s)) => Some(f(Rc::clone(s), context_id)),
            _ => None,
        }
    }

    fn create_stream_context(&self, context_id: u32) -> Option<Box<dyn StreamContext>> {
        match (&self.streams, &self.shared) {
            (Streams::Tcp(f), Some(s)) => Some(f(Rc::clone(s), context_id)),
            _ => None,
        }
    }

    fn on_tick(&mut self) {
        if let (Some(hooks), Some(shared)) = (&self.hooks, &self.shared) {
            (hooks.tick)(shared);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(match self.streams {
            Streams::Http(_) => ContextType::HttpContext,
            Streams::Tcp(_) => ContextType::StreamContext,
        })
    }
}

/// Registers an HTTP filter: routes logging to the host, and installs a [`Root`] that
/// configures with `configure` and creates each stream's context with `new_stream`.
pub fn register_http<S: 'static>(
    name: &'static str,
    configure: Configure<S>,
    new_stream: fn(Rc<S>, u32) -> Box<dyn HttpContext>,
) {
    install(name, configure, Streams::Http(new_stream), None);
}

/// Like [`register_http`], with the shared state's [`RootHooks`] (timer, callouts).
pub fn register_http_with_hooks<S: RootHooks + 'static>(
    name: &'static str,
    configure: Configure<S>,
    new_stream: fn(Rc<S>, u32) -> Box<dyn HttpContext>,
) {
    install(name, configure, Streams::Http(new_stream), Some(Hooks::of));
}

/// Registers a network (L4) filter; see [`register_http`].
pub fn register_tcp<S: 'static>(
    name: &'static str,
    configure: Configure<S>,
    new_stream: fn(Rc<S>, u32) -> Box<dyn StreamContext>,
) {
    install(name, configure, Streams::Tcp(new_stream), None);
}

fn install<S: 'static>(
    name: &'static str,
    configure: Configure<S>,
    streams: Streams<S>,
    hooks: Option<fn() -> Hooks<S>>,
) {
    crate::logging::init();
    let root = move || Root {
        name,
        configure,
        streams,
        hooks: hooks.map(|h| h()),
        shared: None,
    };
    register(Box::new(root));
}

type RootFactory = Box<dyn Fn() -> Box<dyn RootContext>>;

thread_local! {
    static FACTORY: std::cell::RefCell<Option<RootFactory>> =
        const { std::cell::RefCell::new(None) };
}

fn register<S: 'static>(make: Box<dyn Fn() -> Root<S>>) {
    FACTORY.with(|f| {
        *f.borrow_mut() = Some(Box::new(move || Box::new(make()) as Box<dyn RootContext>))
    });
    proxy_wasm::set_root_context(|_| {
        FACTORY
            .with(|f| f.borrow().as_ref().map(|make| make()))
            .unwrap_or_else(|| Box::new(Unconfigured))
    });
}

/// Stands in if no factory was registered (cannot happen through the public API).
struct Unconfigured;
impl Context for Unconfigured {}
impl RootContext for Unconfigured {
    fn on_configure(&mut self, _: usize) -> bool {
        false
    }
}

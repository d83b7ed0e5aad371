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
use proxy_wasm::types::{BufferType, ContextType};
use std::rc::Rc;

/// Builds the shared per-plugin state from the raw configuration bytes.
pub type Configure<S> = fn(&[u8]) -> Result<S, ConfigError>;

enum Streams<S> {
    Http(fn(Rc<S>, u32) -> Box<dyn HttpContext>),
    Tcp(fn(Rc<S>, u32) -> Box<dyn StreamContext>),
}

/// The root context of a filter whose shared state is `S`.
pub struct Root<S> {
    name: &'static str,
    configure: Configure<S>,
    streams: Streams<S>,
    shared: Option<Rc<S>>,
}

impl<S> Root<S> {
    /// The shared state, once configured.
    pub fn shared(&self) -> Option<&Rc<S>> {
        self.shared.as_ref()
    }
}

impl<S> Context for Root<S> {}

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
                self.shared = Some(Rc::new(shared));
                log::info!("{}: configured", self.name);
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
    crate::logging::init();
    let root = move || Root {
        name,
        configure,
        streams: Streams::Http(new_stream),
        shared: None,
    };
    register(Box::new(root));
}

/// Registers a network (L4) filter; see [`register_http`].
pub fn register_tcp<S: 'static>(
    name: &'static str,
    configure: Configure<S>,
    new_stream: fn(Rc<S>, u32) -> Box<dyn StreamContext>,
) {
    crate::logging::init();
    let root = move || Root {
        name,
        configure,
        streams: Streams::Tcp(new_stream),
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

//! The same filters as native Envoy dynamic modules (feature `dynamic-module`).
//!
//! Envoy (1.34+; this targets 1.40) loads *dynamic modules*: shared libraries that export
//! `envoy_dynamic_module_on_*` event hooks and call back into Envoy through
//! `envoy_dynamic_module_callback_*` functions ([`abi`]). This module is a second adapter
//! beside the proxy-wasm one: it drives an unmodified filter crate (its [`Plugin`],
//! [`HttpFilter`], [`NetworkFilter`]) through that ABI, with the same current-context model
//! as proxy-wasm: the dispatch records which Envoy object (filter config, stream,
//! connection) entered the module,
//! and `sdk_ext::host`'s functions act on it (`shim.rs` implements the proxy-wasm host calls
//! over the dynamic-module callbacks). Nothing in a filter crate changes.
//!
//! # Building a `.so`
//!
//! `sdk_ext::main!` writes the exports when the crate is compiled with
//! `--cfg sdk_ext_dynamic_module` and sdk-ext's feature `dynamic-module`:
//!
//! ```text
//! cargo rustc -p header-rules --lib --crate-type cdylib --profile native \
//!     --features sdk-ext/dynamic-module -- --cfg sdk_ext_dynamic_module
//! ```
//!
//! (`make build` does this for every filter and writes `dist/lib<filter>.so`.) The `--cfg`
//! marks the one crate being linked into the `.so`: the feature alone must stay additive
//! (`cargo test --all-features` links several filter crates into one test binary, and two
//! sets of the same `#[no_mangle]` hooks would not link).
//!
//! # The model
//!
//! - **Configuration**: `on_http_filter_config_new` (main thread) parses the filter config
//!   with `Plugin::configure` and defines the metrics it asks for; a refusal logs
//!   `"<NAME>: invalid config at <field>: <reason>"` and Envoy refuses the configuration.
//! - **One plugin per worker thread**: Envoy shares one configuration object between its
//!   workers, while a [`Plugin`] may hold `Rc`/`RefCell` state (caches). As Envoy's wasm
//!   gives each worker its own VM, each thread builds its own plugin from the same bytes at
//!   its first stream (metric names resolve to the ids defined at config time, as Envoy
//!   freezes metric creation after config).
//! - **The root context of an HTTP configuration is on the main thread**: the plugin
//!   `on_http_filter_config_new` built is kept there (`ROOTS`) as the configuration's root
//!   context. Its `on_start` runs at config time; its callouts go through
//!   `envoy_dynamic_module_callback_http_filter_config_http_callout` and are answered
//!   (`on_http_call_response`) by `envoy_dynamic_module_on_http_filter_config_http_callout_done`;
//!   with a `tick_period`, a thread per configuration commits a tick to the config's
//!   scheduler every period (Envoy's scheduler is the thread-safe way onto the main thread),
//!   and `envoy_dynamic_module_on_http_filter_config_scheduled` runs `on_tick` there. The
//!   thread is stopped and joined, and the root plugin dropped, at
//!   `on_http_filter_config_destroy`; an event committed after that is dropped by Envoy
//!   (its scheduler holds the config weakly). The workers' plugins serve streams only (no
//!   `on_start`, no ticks): what the root context learns reaches them through shared data
//!   (jwt-auth publishes each fetched JWKS; its workers follow it).
//! - **Streams**: `on_http_filter_new` creates the [`HttpFilter`]; each `on_http_filter_*`
//!   phase calls the filter's method only when it implements that phase (`PHASES`);
//!   `stream_complete` is `on_log`; `http_callout_done` is `on_http_call_response`. A body
//!   phase sees what Envoy buffered so far plus the chunk in flight, as in proxy-wasm.
//! - **Connections** (`envoy.filters.network.dynamic_modules`): `on_network_filter_new`
//!   creates the [`NetworkFilter`]; `new_connection`, `read` (bytes from the client:
//!   `on_downstream_data`), `write` (towards it: `on_upstream_data`) and the close events
//!   (`on_downstream_close`; a close reported while a callback runs is delivered when it
//!   returns). The ABI reports no upstream close.
//! - **Re-entry**: Envoy may enter the module again from inside a host call (a local reply
//!   runs the encoder path); the stream's filter is taken out while a phase runs, so a
//!   nested hook of the same stream passes through instead of aliasing it.
//! - **Panics**: the `.so` is built with `panic = "unwind"` (profile `native`) and every
//!   hook runs under `catch_unwind`: a panic never unwinds into Envoy. It is logged
//!   (critical), the stream's filter is dropped, and a request phase answers 500
//!   (`<NAME>_panic`), a connection is closed; later phases of that stream pass through.
//!   What `catch_unwind` cannot catch (an abort, a stack overflow) ends Envoy: unlike a wasm
//!   trap, which ends one VM.
//!
//! # Not available in this build (Envoy 1.40's dynamic-module ABI)
//!
//! - **Per-worker root contexts**: a filter whose root-context state must be per worker
//!   (rather than in shared data) sees one root context, the main thread's, where Wasm has
//!   one per worker VM. A root callout from a worker's plugin (outside `on_start` /
//!   `on_tick`) answers `Unimplemented`.
//! - **Network configurations** (`envoy.filters.network.dynamic_modules`): the network ABI
//!   has no config-level callout, so they keep the per-worker model: `on_start` is tried
//!   once at config time and a configuration whose plugin makes a callout there is refused,
//!   saying so; a thread's plugin ticks when a connection starts on that thread and a tick
//!   is due (an idle worker does not tick). Stream and connection callouts work.
//! - **Shared data** is in-process (`shared.rs`): one store with proxy-wasm's CAS semantics for
//!   every worker of the module (as one wasm `vm_id`). Shared queues, `set_property`, reading
//!   a metric's value and resetting an HTTP stream answer `Unimplemented`.
//! - **Foreign functions**: none, except `verify_signature`, which this build implements
//!   in-process (see `crypto.rs`) so jwt-auth keeps its fast path.

// Under the emulator (`testing`, e.g. `cargo test --all-features`) the emulator is the host and
// `shim.rs` is not compiled, so the context the dispatch records goes unread there.
#![cfg_attr(feature = "testing", allow(dead_code))]

pub mod abi;
pub mod alloc;
#[cfg(not(feature = "testing"))]
mod crypto;
mod hash;
mod shared;
#[cfg(not(feature = "testing"))]
pub(crate) mod shim;

use crate::exports::{NoFilter, Phases};
use crate::host::PeerType;
use crate::http::{HttpFilter, HttpHost};
use crate::network::{NetworkFilter, NetworkHost};
use crate::plugin::Plugin;
use abi::{EnvoyBuffer, EnvoyHttpHeader, EnvoyPtr, ModuleBuffer, ModuleHttpHeader};
use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

// ----- the current context ------------------------------------------------------------

/// Which body a phase has in flight (its received chunk is part of the body the filter
/// sees, as in proxy-wasm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    None,
    Request,
    Response,
}

/// A callout's answer, during `on_http_call_response`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub headers: *const EnvoyHttpHeader,
    pub headers_len: usize,
    pub chunks: *const EnvoyBuffer,
    pub chunks_len: usize,
}

/// The callout answer of the current hook, by reference (it lives on that hook's stack), so
/// [`Current`] stays small: it is copied in and out of its thread-local at every hook and
/// read by every host call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerRef(*const Answer);

impl AnswerRef {
    pub(crate) const NONE: AnswerRef = AnswerRef(null());

    fn of(answer: &Answer) -> AnswerRef {
        AnswerRef(answer)
    }

    /// The answer (valid during the hook whose context holds it).
    pub(crate) fn get(self) -> Option<Answer> {
        // SAFETY: a context holding a non-null answer is current only while the hook that
        // owns the answer runs (`enter`'s guard restores the previous one before it returns).
        unsafe { self.0.as_ref() }.copied()
    }
}

/// What entered the module: host calls act on it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Current {
    /// Outside any hook.
    None,
    /// `on_http_filter_config_new` (main thread): metrics are defined here.
    Config {
        envoy: EnvoyPtr,
        config: *const ModuleConfig,
    },
    /// A worker building its own plugin: metric names resolve to the ids defined at
    /// config time.
    Plugin { config: *const ModuleConfig },
    /// The root plugin of an HTTP configuration, on Envoy's main thread (`on_start`,
    /// `on_tick`, the answer to its callout): callouts go through the config.
    Root {
        config: *const ModuleConfig,
        answer: AnswerRef,
    },
    /// A stream hook.
    Stream {
        envoy: EnvoyPtr,
        config: *const ModuleConfig,
        body: Body,
        answer: AnswerRef,
    },
    /// A connection hook (network filter).
    Connection {
        envoy: EnvoyPtr,
        config: *const ModuleConfig,
        answer: AnswerRef,
    },
}

thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(Current::None) };
}

pub(crate) fn current() -> Current {
    CURRENT.try_with(Cell::get).unwrap_or(Current::None)
}

/// Sets the current context for the life of the guard (hooks nest: Envoy may re-enter the
/// module from inside a host call, e.g. a local reply running the response phases). The
/// guard keeps the thread's cell, so leaving costs no second thread-local lookup (in a
/// `.so` each lookup is a `__tls_get_addr` call).
struct Entered {
    /// This thread's `CURRENT` (null when the thread-local is gone: nothing to restore).
    cell: *const Cell<Current>,
    previous: Current,
}

fn enter(now: Current) -> Entered {
    match CURRENT.try_with(|c| (c.replace(now), c as *const Cell<Current>)) {
        Ok((previous, cell)) => Entered { cell, previous },
        Err(_) => Entered {
            cell: null(),
            previous: Current::None,
        },
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: the cell is this thread's `CURRENT` (the guard is neither `Send` nor kept
        // past the hook that made it), alive while the thread runs that hook.
        if let Some(cell) = unsafe { self.cell.as_ref() } {
            cell.set(self.previous);
        }
    }
}

// ----- configurations ------------------------------------------------------------------

/// A metric defined at config time.
#[derive(Debug, Clone)]
pub(crate) struct MetricDef {
    pub kind: u32,
    pub name: String,
    pub id: u32,
}

/// One Envoy filter configuration (HTTP or network): what Envoy holds as the in-module config
/// (shared by every worker, so only `Send + Sync` data; each thread builds its own plugin).
#[derive(Debug)]
pub struct ModuleConfig {
    id: u64,
    /// A network filter's (`envoy.filters.network.dynamic_modules`): its metric callbacks
    /// are the network ones.
    network: bool,
    /// Envoy's `DynamicModuleHttpFilterConfig` (valid while this config lives).
    envoy: usize,
    bytes: Vec<u8>,
    metrics: Mutex<Vec<MetricDef>>,
    /// The plugin asked for an HTTP callout from its own (root) context.
    root_callout: AtomicBool,
    /// An HTTP configuration's root plugin lives on the main thread (see [`ROOTS`]); its
    /// workers' plugins serve streams only.
    root_on_main: bool,
    /// The thread that commits the root plugin's ticks (HTTP configurations with a
    /// `tick_period`); stopped by `on_http_filter_config_destroy`.
    ticker: Mutex<Option<Ticker>>,
}

impl ModuleConfig {
    /// Records that the plugin asked for a callout from its own context (refused here).
    pub(crate) fn root_callout_attempted(&self) {
        self.root_callout.store(true, Ordering::Relaxed);
    }
    pub(crate) fn is_network(&self) -> bool {
        self.network
    }
    /// Whether this configuration's root plugin runs on the main thread (HTTP configs).
    pub(crate) fn root_on_main(&self) -> bool {
        self.root_on_main
    }
    pub(crate) fn envoy(&self) -> EnvoyPtr {
        self.envoy as EnvoyPtr
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub(crate) fn find_metric(&self, kind: u32, name: &str) -> Option<u32> {
        let defs = self.metrics.lock().ok()?;
        defs.iter()
            .find(|d| d.kind == kind && d.name == name)
            .map(|d| d.id)
    }
    pub(crate) fn record_metric(&self, def: MetricDef) {
        if let Ok(mut defs) = self.metrics.lock() {
            defs.push(def);
        }
    }
}

static NEXT_CONFIG: AtomicU64 = AtomicU64::new(1);

struct PluginSlot {
    id: u64,
    config: Weak<ModuleConfig>,
    plugin: Rc<dyn Any>,
    /// `tick_period` and when the next tick is due.
    tick: Option<(Duration, Cell<Instant>)>,
}

thread_local! {
    /// This thread's plugin of each live configuration.
    static PLUGINS: RefCell<Vec<PluginSlot>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// The plugin [`plugin_for`] last found or built on this thread: its configuration's id
    /// and `Rc::as_ptr` of the plugin its `PLUGINS` slot holds (type-checked then). Set only
    /// for a configuration without per-thread ticks (an HTTP one: its ticks are the root
    /// plugin's), so a stream of the same configuration skips the table and the downcast.
    static LAST_PLUGIN: Cell<(u64, *const ())> = const { Cell::new((0, null())) };
}

fn remember_plugin<P: Plugin>(config: &ModuleConfig, plugin: &Rc<P>) {
    if config.root_on_main {
        let _ = LAST_PLUGIN.try_with(|c| c.set((config.id, Rc::as_ptr(plugin).cast())));
    }
}

/// [`LAST_PLUGIN`]'s plugin, if it is `id`'s.
fn last_plugin<P: Plugin>(id: u64) -> Option<Rc<P>> {
    let (last, ptr) = LAST_PLUGIN.try_with(Cell::get).ok()?;
    if last != id || ptr.is_null() {
        return None;
    }
    let ptr = ptr.cast::<P>();
    // SAFETY: `ptr` is `Rc::as_ptr` of the `Rc<P>` (downcast checked) in this thread's
    // `PLUGINS` slot of configuration `id`. Ids are never reused, and that slot is removed
    // only once the configuration is gone, when no stream can ask for `id` again: the
    // caller holds the configuration alive, so the slot, and its count on the plugin, are.
    unsafe {
        Rc::increment_strong_count(ptr);
        Some(Rc::from_raw(ptr))
    }
}

/// Whether a tick is due now (and if so, schedules the next one).
fn tick_due(tick: &Option<(Duration, Cell<Instant>)>) -> bool {
    let Some((period, next)) = tick else {
        return false;
    };
    let now = Instant::now();
    if now < next.get() {
        return false;
    }
    next.set(now + *period);
    true
}

/// This thread's plugin for `config`, built at its first use. Its ticks run here too: the
/// ABI has no per-worker timer, so a thread's plugin ticks when a stream of that thread
/// starts and a tick is due (never more often than `tick_period`; an idle worker does not
/// tick, and has nothing to tick for).
fn plugin_for<P: Plugin>(config: &Arc<ModuleConfig>) -> Option<Rc<P>> {
    if let Some(p) = last_plugin::<P>(config.id) {
        return Some(p);
    }
    let found = PLUGINS
        .try_with(|t| {
            t.try_borrow().ok().and_then(|slots| {
                slots
                    .iter()
                    .find(|s| s.id == config.id)
                    .map(|s| (Rc::clone(&s.plugin), tick_due(&s.tick)))
            })
        })
        .ok()
        .flatten();
    if let Some((p, due)) = found {
        let p = p.downcast::<P>().ok()?;
        remember_plugin(config, &p);
        if due {
            let _in = enter(Current::Plugin {
                config: Arc::as_ptr(config),
            });
            p.on_tick();
        }
        return Some(p);
    }
    // A thread's first plugin: its small-block cache is flushed when it ends (every thread
    // that runs stream or connection hooks builds one first).
    alloc::arm_flush();
    let built = {
        let _in = enter(Current::Plugin {
            config: Arc::as_ptr(config),
        });
        P::configure(config.bytes())
    };
    let plugin = match built {
        Ok(p) => Rc::new(p),
        Err(e) => {
            log_line(
                abi::LOG_CRITICAL - 1,
                &format!("{}: worker configuration failed: {e}", P::NAME),
            );
            return None;
        }
    };
    let stored: Rc<dyn Any> = plugin.clone();
    let _ = PLUGINS.try_with(|t| {
        if let Ok(mut slots) = t.try_borrow_mut() {
            // Plugins of configurations Envoy has since destroyed go with this one's arrival.
            slots.retain(|s| s.config.strong_count() > 0);
            // An HTTP configuration's ticks are its root plugin's, on the main thread.
            let tick = plugin
                .tick_period()
                .filter(|p| !p.is_zero() && !config.root_on_main)
                .map(|p| (p, Cell::new(Instant::now() + p)));
            slots.push(PluginSlot {
                id: config.id,
                config: Arc::downgrade(config),
                plugin: stored,
                tick,
            });
        }
    });
    remember_plugin(config, &plugin);
    if !config.root_on_main {
        let _in = enter(Current::Plugin {
            config: Arc::as_ptr(config),
        });
        plugin.on_start();
    }
    Some(plugin)
}

// ----- the root plugin of an HTTP configuration (main thread) ----------------------------

/// The event a [`Ticker`] commits: run the root plugin's `on_tick`.
const EVENT_TICK: u64 = 1;

struct RootSlot {
    id: u64,
    config: Weak<ModuleConfig>,
    plugin: Rc<dyn Any>,
}

thread_local! {
    /// The root plugin of each live HTTP configuration. Envoy creates configurations, runs
    /// their scheduled events and answers their callouts on its main thread, so this is the
    /// main thread's table (other threads' stay empty).
    static ROOTS: RefCell<Vec<RootSlot>> = const { RefCell::new(Vec::new()) };
}

fn store_root(config: &Arc<ModuleConfig>, plugin: Rc<dyn Any>) {
    let _ = ROOTS.try_with(|t| {
        if let Ok(mut slots) = t.try_borrow_mut() {
            slots.retain(|s| s.config.strong_count() > 0);
            slots.push(RootSlot {
                id: config.id,
                config: Arc::downgrade(config),
                plugin,
            });
        }
    });
}

fn drop_root(id: u64) {
    let removed = ROOTS
        .try_with(|t| {
            t.try_borrow_mut()
                .ok()
                .map(|mut slots| {
                    let (gone, kept) = std::mem::take(&mut *slots)
                        .into_iter()
                        .partition::<Vec<_>, _>(|s| s.id == id);
                    *slots = kept;
                    gone
                })
                .unwrap_or_default()
        })
        .unwrap_or_default();
    // Dropped outside the borrow: a plugin's Drop may run host calls.
    drop(removed);
}

fn root_plugin<P: Plugin>(id: u64) -> Option<Rc<P>> {
    ROOTS
        .try_with(|t| {
            t.try_borrow().ok().and_then(|slots| {
                slots
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| Rc::clone(&s.plugin))
            })
        })
        .ok()
        .flatten()
        .and_then(|p| p.downcast::<P>().ok())
}

/// A thread that commits [`EVENT_TICK`] to the config's scheduler every `tick_period`
/// (Envoy's scheduler is the thread-safe way onto the main thread, where the root plugin
/// ticks). Dropping it stops and joins the thread, then deletes the scheduler.
#[derive(Debug)]
struct Ticker {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Envoy's `DynamicModuleHttpFilterConfigScheduler` (thread-safe, deleted once).
    scheduler: usize,
}

impl Ticker {
    fn start(name: &str, envoy: EnvoyPtr, period: Duration) -> Option<Ticker> {
        // SAFETY: `envoy` is the config Envoy is creating (main thread).
        let scheduler =
            unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(envoy) };
        if scheduler.is_null() {
            return None;
        }
        let scheduler = scheduler as usize;
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let signal = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-tick"))
            .spawn(move || tick_loop(&signal, scheduler, period));
        match spawned {
            Ok(thread) => Some(Ticker {
                stop,
                thread: Some(thread),
                scheduler,
            }),
            Err(e) => {
                log_line(
                    abi::LOG_CRITICAL - 1,
                    &format!("{name}: cannot start the tick thread ({e}): on_tick will not run"),
                );
                // SAFETY: created above, never shared.
                unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
                        scheduler as *mut c_void,
                    )
                };
                None
            }
        }
    }
}

fn tick_loop(stop: &(Mutex<bool>, std::sync::Condvar), scheduler: usize, period: Duration) {
    let (lock, wake) = stop;
    let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut next = Instant::now() + period;
    loop {
        if *stopped {
            return;
        }
        let now = Instant::now();
        if now >= next {
            // SAFETY: the scheduler lives until this thread is joined (`Ticker::drop`).
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
                    scheduler as *mut c_void,
                    EVENT_TICK,
                )
            };
            // A late wake-up (a loaded machine) skips ticks rather than bursting them.
            next = (next + period).max(now + period / 2);
            continue;
        }
        stopped = match wake.wait_timeout(stopped, next - now) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: the thread that used it has ended; deleted once.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
                self.scheduler as *mut c_void,
            )
        };
    }
}

// ----- hooks ------------------------------------------------------------------------------

/// Writes a line to Envoy's log (`[dynamic_modules]`), whatever the context.
pub(crate) fn log_line(level: u32, message: &str) {
    // SAFETY: the buffer describes a live &str for the duration of the call.
    unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Runs a hook's body; a panic is logged and answered with `on_panic`, never unwound into
/// Envoy.
fn shielded<R>(name: &str, hook: &str, on_panic: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            log_line(
                abi::LOG_CRITICAL,
                &format!(
                    "{name}: panic in {hook}: {} (the stream's filter is dropped)",
                    panic_message(&*payload)
                ),
            );
            on_panic
        }
    }
}

/// `envoy_dynamic_module_on_program_init`: routes the `log` crate to Envoy and reports the
/// ABI version.
pub fn program_init() -> *const c_char {
    crate::logging::init();
    abi::ABI_VERSION.as_ptr().cast()
}

/// `envoy_dynamic_module_on_http_filter_config_new`.
///
/// # Safety
/// Envoy's contract: `envoy` is its config object; `config` a valid buffer for the call.
pub unsafe fn http_filter_config_new<P: Plugin, H: HttpFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's contract for `config`.
    let bytes = unsafe { config.bytes() }.to_vec();
    shielded(P::NAME, "http_filter_config_new", null(), || {
        if TypeId::of::<H>() == TypeId::of::<NoFilter<P>>() {
            log_line(
                abi::LOG_CRITICAL - 1,
                &format!("{}: this module has no HTTP filter", P::NAME),
            );
            return null();
        }
        configure::<P>(envoy, bytes, false)
    })
}

/// Parses a configuration on the main thread (defining its metrics); answers the in-module
/// config for Envoy, or null after logging why it is refused.
fn configure<P: Plugin>(envoy: EnvoyPtr, bytes: Vec<u8>, network: bool) -> *const c_void {
    // The main thread's small-block cache, flushed when it ends (see `alloc`).
    alloc::arm_flush();
    {
        let shared = Arc::new(ModuleConfig {
            id: NEXT_CONFIG.fetch_add(1, Ordering::Relaxed),
            network,
            envoy: envoy as usize,
            bytes,
            metrics: Mutex::new(Vec::new()),
            root_callout: AtomicBool::new(false),
            root_on_main: !network,
            ticker: Mutex::new(None),
        });
        let plugin = {
            let _in = enter(Current::Config {
                envoy,
                config: Arc::as_ptr(&shared),
            });
            crate::logging::follow_host_level();
            P::configure(shared.bytes())
        };
        match plugin {
            Err(e) => {
                log_line(abi::LOG_CRITICAL - 1, &format!("{}: {e}", P::NAME));
                null()
            }
            Ok(p) if !network => {
                // An HTTP configuration: this plugin is its root context, kept on the main
                // thread, where Envoy runs config-level callouts and scheduled events.
                let plugin = Rc::new(p);
                let period = plugin.tick_period().filter(|p| !p.is_zero());
                if period.is_some_and(|p| p.as_millis() > u128::from(u32::MAX)) {
                    log_line(
                        abi::LOG_CRITICAL - 1,
                        &format!("{}: tick_period is over {} ms", P::NAME, u32::MAX),
                    );
                    return null();
                }
                let stored: Rc<dyn Any> = plugin.clone();
                store_root(&shared, stored);
                {
                    let _in = enter(Current::Root {
                        config: Arc::as_ptr(&shared),
                        answer: AnswerRef::NONE,
                    });
                    plugin.on_start();
                }
                if let Some(period) = period {
                    let ticker = Ticker::start(P::NAME, envoy, period);
                    if let Ok(mut slot) = shared.ticker.lock() {
                        *slot = ticker;
                    }
                }
                log::info!("{}: configured (dynamic module)", P::NAME);
                Arc::into_raw(shared).cast()
            }
            Ok(p) => {
                // A network configuration: what the plugin does at start, tried here once.
                // Envoy 1.40's network ABI has no config-level callout, so a configuration
                // whose plugin makes one (from its own context) is refused now, saying why,
                // rather than loaded to fail every connection.
                {
                    let _in = enter(Current::Config {
                        envoy,
                        config: Arc::as_ptr(&shared),
                    });
                    p.on_start();
                }
                if shared.root_callout.load(Ordering::Relaxed) {
                    log_line(
                        abi::LOG_CRITICAL - 1,
                        &format!(
                            "{}: this network configuration makes HTTP callouts from the \
                             plugin's own context, which Envoy 1.40's dynamic-module network \
                             ABI does not offer; use the .wasm build for it",
                            P::NAME
                        ),
                    );
                    return null();
                }
                log::info!("{}: configured (dynamic module)", P::NAME);
                Arc::into_raw(shared).cast()
            }
        }
    }
}

/// `envoy_dynamic_module_on_http_filter_config_destroy`.
///
/// # Safety
/// `config` was returned by [`http_filter_config_new`] and is not used again.
pub unsafe fn http_filter_config_destroy(config: *const c_void) {
    if config.is_null() {
        return;
    }
    // SAFETY: the caller's contract: one reference, handed back once.
    let config = unsafe { Arc::from_raw(config.cast::<ModuleConfig>()) };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // The tick thread stops (joined) before Envoy deletes what it commits to.
        let ticker = config.ticker.lock().ok().and_then(|mut t| t.take());
        drop(ticker);
        // The root plugin goes with its configuration (on the main thread, where it lives;
        // were Envoy to destroy it elsewhere, the main thread's next configuration drops it).
        drop_root(config.id);
    }));
    drop(config);
}

/// `envoy_dynamic_module_on_http_filter_config_scheduled` (main thread): a tick of the
/// root plugin.
///
/// # Safety
/// `config` was returned by [`http_filter_config_new`] and is alive for the call.
pub unsafe fn http_filter_config_scheduled<P: Plugin>(config: *const c_void, event_id: u64) {
    if config.is_null() || event_id != EVENT_TICK {
        return;
    }
    let ptr = config.cast::<ModuleConfig>();
    // SAFETY: the caller's contract.
    let id = unsafe { (*ptr).id };
    shielded(P::NAME, "http_filter_config_scheduled", (), || {
        if let Some(root) = root_plugin::<P>(id) {
            let _in = enter(Current::Root {
                config: ptr,
                answer: AnswerRef::NONE,
            });
            root.on_tick();
        }
    });
}

/// `envoy_dynamic_module_on_http_filter_config_http_callout_done` (main thread): the root
/// plugin's `on_http_call_response`.
///
/// # Safety
/// `config` was returned by [`http_filter_config_new`] and is alive for the call; the
/// header and chunk arrays are Envoy's, valid for the call.
pub unsafe fn http_filter_config_callout_done<P: Plugin>(
    config: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_len: usize,
    chunks: *const EnvoyBuffer,
    chunks_len: usize,
) {
    if config.is_null() {
        return;
    }
    let ptr = config.cast::<ModuleConfig>();
    // SAFETY: the caller's contract.
    let id = unsafe { (*ptr).id };
    let answer = answer_of(result, headers, headers_len, chunks, chunks_len);
    let body_size = answer_size(&answer);
    let token = u32::try_from(callout_id).unwrap_or(u32::MAX);
    shielded(P::NAME, "http_filter_config_callout_done", (), || {
        if let Some(root) = root_plugin::<P>(id) {
            let _in = enter(Current::Root {
                config: ptr,
                answer: AnswerRef::of(&answer),
            });
            root.on_http_call_response(token, body_size);
        }
    });
}

/// `envoy_dynamic_module_on_http_filter_per_route_config_new`: per-route behaviour comes
/// from the filter's own `rules` (or Envoy's `FilterConfig` with `disabled`), so a
/// dynamic-module per-route config is refused, saying so.
pub fn http_filter_per_route_config_new(name: &str) -> *const c_void {
    log_line(
        abi::LOG_CRITICAL - 1,
        &format!(
            "{name}: per-route DynamicModuleFilterPerRoute configs are not supported; use the \
             filter's rules, or envoy.config.route.v3.FilterConfig to enable it per route"
        ),
    );
    null()
}

/// One stream: its configuration, this thread's plugin and the filter value (`None` while a
/// phase runs, or after a panic).
struct Stream<P, H> {
    config: Arc<ModuleConfig>,
    plugin: Rc<P>,
    filter: Option<H>,
    /// A connection close Envoy reported while a callback of this connection ran (e.g. the
    /// filter closed it): delivered when that callback returns.
    closed_during: Option<PeerType>,
}

/// `envoy_dynamic_module_on_http_filter_new`.
///
/// # Safety
/// `config` was returned by [`http_filter_config_new`] and is alive; `envoy` is the stream.
pub unsafe fn http_filter_new<P: Plugin, H: HttpFilter<Plugin = P>>(
    config: *const c_void,
    envoy: EnvoyPtr,
) -> *const c_void {
    if config.is_null() {
        return null();
    }
    shielded(P::NAME, "http_filter_new", null(), || {
        let ptr = config.cast::<ModuleConfig>();
        // SAFETY: Envoy keeps the config alive while it creates streams; one more count for
        // the stream, released when the stream is destroyed.
        let config = unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        };
        let Some(plugin) = plugin_for::<P>(&config) else {
            return null();
        };
        let filter = {
            let _in = enter(Current::Stream {
                envoy,
                config: ptr,
                body: Body::None,
                answer: AnswerRef::NONE,
            });
            H::create(&plugin)
        };
        let stream = Box::new(Stream {
            config,
            plugin,
            filter: Some(filter),
            closed_during: None,
        });
        Box::into_raw(stream).cast_const().cast()
    })
}

/// `envoy_dynamic_module_on_http_filter_destroy`.
///
/// # Safety
/// `stream` was returned by [`http_filter_new`] for the same `P`, `H`, and is not used
/// again.
pub unsafe fn http_filter_destroy<P: Plugin, H: HttpFilter<Plugin = P>>(stream: *const c_void) {
    if stream.is_null() {
        return;
    }
    shielded(P::NAME, "http_filter_destroy", (), || {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(stream.cast_mut().cast::<Stream<P, H>>()) });
    });
}

fn act(action: crate::host::Action) -> u32 {
    match action {
        crate::host::Action::Continue => abi::STATUS_CONTINUE,
        crate::host::Action::Pause => abi::STATUS_STOP,
    }
}

/// Runs one phase of stream `stream` (no reference into the stream is held while filter
/// code runs, since Envoy may re-enter the module for the same stream).
///
/// # Safety
/// `stream` was returned by [`http_filter_new`] (or [`network_filter_new`]) for `P`, `F`.
unsafe fn run_as<P: Plugin, F: 'static, R>(
    stream: *const c_void,
    hook: &str,
    context: impl FnOnce(*const ModuleConfig) -> Current,
    on_panic: impl FnOnce() -> R,
    phase: impl FnOnce(&mut F, &P) -> R,
) -> Option<R> {
    if stream.is_null() {
        return None;
    }
    let state = stream.cast_mut().cast::<Stream<P, F>>();
    // SAFETY: the caller's contract; each access is one field, no reference kept.
    let (mut filter, plugin, config) = unsafe {
        (
            (*state).filter.take()?,
            Rc::clone(&(*state).plugin),
            Arc::as_ptr(&(*state).config),
        )
    };
    let _in = enter(context(config));
    match catch_unwind(AssertUnwindSafe(|| phase(&mut filter, &plugin))) {
        Ok(r) => {
            // SAFETY: as above.
            unsafe { (*state).filter = Some(filter) };
            Some(r)
        }
        Err(payload) => {
            log_line(
                abi::LOG_CRITICAL,
                &format!(
                    "{}: panic in {hook}: {} (the stream's filter is dropped)",
                    P::NAME,
                    panic_message(&*payload)
                ),
            );
            // Its state may be broken mid-update: never run it again (nor its Drop).
            std::mem::forget(filter);
            Some(on_panic())
        }
    }
}

/// One HTTP phase of stream `stream` ([`run_as`] with the stream as the current context).
///
/// # Safety
/// `stream` was returned by [`http_filter_new`] for `P`, `H`; `envoy` is its stream.
unsafe fn run<P: Plugin, H: HttpFilter<Plugin = P>, R>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    hook: &str,
    body: Body,
    answer: AnswerRef,
    on_panic: impl FnOnce() -> R,
    phase: impl FnOnce(&mut H, &P, &mut HttpHost) -> R,
) -> Option<R> {
    let context = |config| Current::Stream {
        envoy,
        config,
        body,
        answer,
    };
    // SAFETY: forwarded contract.
    unsafe {
        run_as::<P, H, R>(stream, hook, context, on_panic, |f, p| {
            phase(f, p, &mut HttpHost::new())
        })
    }
}

/// A panic in a request phase: answer 500 (the request may not have been checked).
fn fail_request(envoy: EnvoyPtr, name: &str) -> u32 {
    let details = format!("{}_panic", name.replace('-', "_"));
    let body = br#"{"status":500,"error":"internal_error","message":"internal error"}"#;
    let ct = b"application/json";
    let name_ct = b"content-type";
    let headers = [ModuleHttpHeader {
        key_ptr: name_ct.as_ptr(),
        key_length: name_ct.len(),
        value_ptr: ct.as_ptr(),
        value_length: ct.len(),
    }];
    // SAFETY: live buffers for the call; `envoy` is the stream the hook was given.
    unsafe {
        abi::envoy_dynamic_module_callback_http_send_response(
            envoy,
            500,
            headers.as_ptr(),
            headers.len(),
            ModuleBuffer::of(body),
            ModuleBuffer::of(details.as_bytes()),
        )
    };
    abi::STATUS_STOP
}

macro_rules! phase_fn {
    ($(#[$doc:meta])* $fn:ident, $bit:ident, $body:expr, request: $req:expr, |$f:ident, $p:ident, $h:ident $(, $eos:ident)?| $call:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `stream` was returned by [`http_filter_new`] for `P`, `H`; `envoy` is its stream.
        pub unsafe fn $fn<P: Plugin, H: HttpFilter<Plugin = P>>(
            envoy: EnvoyPtr,
            stream: *const c_void,
            $($eos: bool,)?
        ) -> u32 {
            if !H::PHASES.has(Phases::$bit) {
                return abi::STATUS_CONTINUE;
            }
            let on_panic = || if $req { fail_request(envoy, P::NAME) } else { abi::STATUS_CONTINUE };
            // SAFETY: forwarded contract.
            unsafe {
                run::<P, H, u32>(envoy, stream, stringify!($fn), $body, AnswerRef::NONE, on_panic, |$f, $p, $h| act($call))
            }
            .unwrap_or(abi::STATUS_CONTINUE)
        }
    };
}

fn body_size(envoy: EnvoyPtr, buffered: u32, received: u32, buffered_is_received: bool) -> usize {
    // SAFETY: plain calls on the stream the hook was given.
    unsafe {
        let got = abi::envoy_dynamic_module_callback_http_get_body_size(envoy, received);
        if buffered_is_received {
            got
        } else {
            got.saturating_add(abi::envoy_dynamic_module_callback_http_get_body_size(
                envoy, buffered,
            ))
        }
    }
}

phase_fn!(
    /// `envoy_dynamic_module_on_http_filter_request_headers`.
    request_headers, REQUEST_HEADERS, Body::None, request: true,
    |f, p, h, end_of_stream| f.on_request_headers(p, h, end_of_stream)
);
phase_fn!(
    /// `envoy_dynamic_module_on_http_filter_request_trailers`.
    request_trailers, REQUEST_TRAILERS, Body::None, request: true,
    |f, p, h| f.on_request_trailers(p, h)
);
phase_fn!(
    /// `envoy_dynamic_module_on_http_filter_response_headers`.
    response_headers, RESPONSE_HEADERS, Body::None, request: false,
    |f, p, h, end_of_stream| f.on_response_headers(p, h, end_of_stream)
);
phase_fn!(
    /// `envoy_dynamic_module_on_http_filter_response_trailers`.
    response_trailers, RESPONSE_TRAILERS, Body::None, request: false,
    |f, p, h| f.on_response_trailers(p, h)
);

/// `envoy_dynamic_module_on_http_filter_request_body`: `body_size` is what is buffered so
/// far plus the chunk that arrived (proxy-wasm's view).
///
/// # Safety
/// `stream` was returned by [`http_filter_new`] for `P`, `H`; `envoy` is its stream.
pub unsafe fn request_body<P: Plugin, H: HttpFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    end_of_stream: bool,
) -> u32 {
    if !H::PHASES.has(Phases::REQUEST_BODY) {
        return abi::STATUS_CONTINUE;
    }
    // SAFETY: a plain call on the stream.
    let same =
        unsafe { abi::envoy_dynamic_module_callback_http_received_buffered_request_body(envoy) };
    let size = body_size(
        envoy,
        abi::BODY_BUFFERED_REQUEST,
        abi::BODY_RECEIVED_REQUEST,
        same,
    );
    let on_panic = || fail_request(envoy, P::NAME);
    // SAFETY: forwarded contract.
    unsafe {
        run::<P, H, u32>(
            envoy,
            stream,
            "request_body",
            Body::Request,
            AnswerRef::NONE,
            on_panic,
            |f, p, h| act(f.on_request_body(p, h, size, end_of_stream)),
        )
    }
    .unwrap_or(abi::STATUS_CONTINUE)
}

/// `envoy_dynamic_module_on_http_filter_response_body` (see [`request_body`]).
///
/// # Safety
/// `stream` was returned by [`http_filter_new`] for `P`, `H`; `envoy` is its stream.
pub unsafe fn response_body<P: Plugin, H: HttpFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    end_of_stream: bool,
) -> u32 {
    if !H::PHASES.has(Phases::RESPONSE_BODY) {
        return abi::STATUS_CONTINUE;
    }
    // SAFETY: a plain call on the stream.
    let same =
        unsafe { abi::envoy_dynamic_module_callback_http_received_buffered_response_body(envoy) };
    let size = body_size(
        envoy,
        abi::BODY_BUFFERED_RESPONSE,
        abi::BODY_RECEIVED_RESPONSE,
        same,
    );
    // SAFETY: forwarded contract.
    unsafe {
        run::<P, H, u32>(
            envoy,
            stream,
            "response_body",
            Body::Response,
            AnswerRef::NONE,
            || abi::STATUS_CONTINUE,
            |f, p, h| act(f.on_response_body(p, h, size, end_of_stream)),
        )
    }
    .unwrap_or(abi::STATUS_CONTINUE)
}

/// `envoy_dynamic_module_on_http_filter_stream_complete`: the filter's `on_log`.
///
/// # Safety
/// `stream` was returned by [`http_filter_new`] for `P`, `H`; `envoy` is its stream.
pub unsafe fn stream_complete<P: Plugin, H: HttpFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
) {
    if !H::PHASES.has(Phases::LOG) {
        return;
    }
    // SAFETY: forwarded contract.
    let _ = unsafe {
        run::<P, H, ()>(
            envoy,
            stream,
            "stream_complete",
            Body::None,
            AnswerRef::NONE,
            || (),
            |f, p, h| f.on_log(p, h),
        )
    };
}

/// `envoy_dynamic_module_on_http_filter_http_callout_done`: the filter's
/// `on_http_call_response` (a failed callout has no headers, so its `:status` is absent).
///
/// # Safety
/// `stream` was returned by [`http_filter_new`] for `P`, `H`; `envoy` is its stream; the
/// header and chunk arrays are Envoy's, valid for the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn http_callout_done<P: Plugin, H: HttpFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_len: usize,
    chunks: *const EnvoyBuffer,
    chunks_len: usize,
) {
    if !H::PHASES.has(Phases::HTTP_CALL_RESPONSE) {
        return;
    }
    let answer = answer_of(result, headers, headers_len, chunks, chunks_len);
    let body_size = answer_size(&answer);
    let token = u32::try_from(callout_id).unwrap_or(u32::MAX);
    // SAFETY: forwarded contract.
    let _ = unsafe {
        run::<P, H, ()>(
            envoy,
            stream,
            "http_callout_done",
            Body::None,
            AnswerRef::of(&answer),
            || (),
            |f, p, h| f.on_http_call_response(p, h, token, body_size),
        )
    };
}

// ----- network filters ------------------------------------------------------------------

/// `envoy_dynamic_module_on_network_filter_config_new`.
///
/// # Safety
/// Envoy's contract: `envoy` is its config object; `config` a valid buffer for the call.
pub unsafe fn network_filter_config_new<P: Plugin, N: NetworkFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's contract for `config`.
    let bytes = unsafe { config.bytes() }.to_vec();
    shielded(P::NAME, "network_filter_config_new", null(), || {
        if TypeId::of::<N>() == TypeId::of::<NoFilter<P>>() {
            log_line(
                abi::LOG_CRITICAL - 1,
                &format!("{}: this module has no network filter", P::NAME),
            );
            return null();
        }
        configure::<P>(envoy, bytes, true)
    })
}

/// `envoy_dynamic_module_on_network_filter_new`.
///
/// # Safety
/// `config` was returned by [`network_filter_config_new`] and is alive; `envoy` is the
/// connection's filter.
pub unsafe fn network_filter_new<P: Plugin, N: NetworkFilter<Plugin = P>>(
    config: *const c_void,
    envoy: EnvoyPtr,
) -> *const c_void {
    if config.is_null() {
        return null();
    }
    shielded(P::NAME, "network_filter_new", null(), || {
        let ptr = config.cast::<ModuleConfig>();
        // SAFETY: as in `http_filter_new`.
        let config = unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        };
        let Some(plugin) = plugin_for::<P>(&config) else {
            return null();
        };
        let filter = {
            let _in = enter(Current::Connection {
                envoy,
                config: ptr,
                answer: AnswerRef::NONE,
            });
            N::create(&plugin)
        };
        let stream = Box::new(Stream {
            config,
            plugin,
            filter: Some(filter),
            closed_during: None,
        });
        Box::into_raw(stream).cast_const().cast()
    })
}

/// `envoy_dynamic_module_on_network_filter_destroy`.
///
/// # Safety
/// `stream` was returned by [`network_filter_new`] for the same `P`, `N`, and is not used
/// again.
pub unsafe fn network_filter_destroy<P: Plugin, N: NetworkFilter<Plugin = P>>(
    stream: *const c_void,
) {
    if stream.is_null() {
        return;
    }
    shielded(P::NAME, "network_filter_destroy", (), || {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(stream.cast_mut().cast::<Stream<P, N>>()) });
    });
}

/// One callback of connection `stream`, with it as the current context.
///
/// # Safety
/// `stream` was returned by [`network_filter_new`] for `P`, `N`; `envoy` is its filter.
unsafe fn run_net<P: Plugin, N: NetworkFilter<Plugin = P>, R>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    hook: &str,
    answer: AnswerRef,
    on_panic: impl FnOnce() -> R,
    phase: impl FnOnce(&mut N, &P, &mut NetworkHost) -> R,
) -> Option<R> {
    let context = |config| Current::Connection {
        envoy,
        config,
        answer,
    };
    // SAFETY: forwarded contract.
    let result = unsafe {
        run_as::<P, N, R>(stream, hook, context, on_panic, |f, p| {
            phase(f, p, &mut NetworkHost::new())
        })
    };
    // A close reported while that callback ran, now that the filter is back.
    let state = stream.cast_mut().cast::<Stream<P, N>>();
    // SAFETY: as in `run_as` (one field, no reference kept); `stream` is non-null when
    // `run_as` ran.
    let closed = (!stream.is_null())
        .then(|| unsafe { (*state).closed_during.take() })
        .flatten();
    if let Some(peer) = closed {
        // SAFETY: forwarded contract.
        let _ = unsafe {
            run_as::<P, N, ()>(
                stream,
                "network_event",
                context,
                || (),
                |f, p| f.on_downstream_close(p, &mut NetworkHost::new(), peer),
            )
        };
    }
    result
}

/// A panic in a connection callback: close the connection (it may not have been checked).
fn fail_connection(envoy: EnvoyPtr) -> u32 {
    // SAFETY: a plain call on the connection the hook was given.
    unsafe {
        abi::envoy_dynamic_module_callback_network_filter_close(envoy, abi::CLOSE_FLUSH_WRITE)
    };
    abi::STATUS_STOP
}

/// `envoy_dynamic_module_on_network_filter_new_connection`: `on_new_connection`.
///
/// # Safety
/// `stream` was returned by [`network_filter_new`] for `P`, `N`; `envoy` is its filter.
pub unsafe fn new_connection<P: Plugin, N: NetworkFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
) -> u32 {
    if !N::PHASES.has(Phases::NEW_CONNECTION) {
        return abi::STATUS_CONTINUE;
    }
    // SAFETY: forwarded contract.
    unsafe {
        run_net::<P, N, u32>(
            envoy,
            stream,
            "new_connection",
            AnswerRef::NONE,
            || fail_connection(envoy),
            |f, p, h| act(f.on_new_connection(p, h)),
        )
    }
    .unwrap_or(abi::STATUS_CONTINUE)
}

/// `envoy_dynamic_module_on_network_filter_read`: `on_downstream_data` (bytes from the
/// client, `DownstreamData`).
///
/// # Safety
/// `stream` was returned by [`network_filter_new`] for `P`, `N`; `envoy` is its filter.
pub unsafe fn network_read<P: Plugin, N: NetworkFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    data_length: usize,
    end_stream: bool,
) -> u32 {
    if !N::PHASES.has(Phases::DOWNSTREAM_DATA) {
        return abi::STATUS_CONTINUE;
    }
    // SAFETY: forwarded contract.
    unsafe {
        run_net::<P, N, u32>(
            envoy,
            stream,
            "network_read",
            AnswerRef::NONE,
            || fail_connection(envoy),
            |f, p, h| act(f.on_downstream_data(p, h, data_length, end_stream)),
        )
    }
    .unwrap_or(abi::STATUS_CONTINUE)
}

/// `envoy_dynamic_module_on_network_filter_write`: `on_upstream_data` (bytes from the
/// upstream towards the client, `UpstreamData`).
///
/// # Safety
/// `stream` was returned by [`network_filter_new`] for `P`, `N`; `envoy` is its filter.
pub unsafe fn network_write<P: Plugin, N: NetworkFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    data_length: usize,
    end_stream: bool,
) -> u32 {
    if !N::PHASES.has(Phases::UPSTREAM_DATA) {
        return abi::STATUS_CONTINUE;
    }
    // SAFETY: forwarded contract.
    unsafe {
        run_net::<P, N, u32>(
            envoy,
            stream,
            "network_write",
            AnswerRef::NONE,
            || abi::STATUS_CONTINUE,
            |f, p, h| act(f.on_upstream_data(p, h, data_length, end_stream)),
        )
    }
    .unwrap_or(abi::STATUS_CONTINUE)
}

/// `envoy_dynamic_module_on_network_filter_event`: the downstream connection closing is
/// `on_downstream_close` (remote or local). Envoy's dynamic-module network ABI reports no
/// upstream close: `on_upstream_close` is not called in this build.
///
/// # Safety
/// `stream` was returned by [`network_filter_new`] for `P`, `N`; `envoy` is its filter.
pub unsafe fn network_event<P: Plugin, N: NetworkFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    event: u32,
) {
    let peer = match event {
        abi::EVENT_REMOTE_CLOSE => PeerType::Remote,
        abi::EVENT_LOCAL_CLOSE => PeerType::Local,
        _ => return,
    };
    if !N::PHASES.has(Phases::DOWNSTREAM_CLOSE) || stream.is_null() {
        return;
    }
    let state = stream.cast_mut().cast::<Stream<P, N>>();
    // SAFETY: Envoy's contract; one field, no reference kept.
    if unsafe { (*state).filter.is_none() } {
        // Reported from inside another callback of this connection: delivered when it
        // returns (see `run_net`).
        // SAFETY: as above.
        unsafe { (*state).closed_during = Some(peer) };
        return;
    }
    // SAFETY: forwarded contract.
    let _ = unsafe {
        run_net::<P, N, ()>(
            envoy,
            stream,
            "network_event",
            AnswerRef::NONE,
            || (),
            |f, p, h| f.on_downstream_close(p, h, peer),
        )
    };
}

/// `envoy_dynamic_module_on_network_filter_http_callout_done`: `on_http_call_response`.
///
/// # Safety
/// As [`http_callout_done`], for a connection.
#[allow(clippy::too_many_arguments)]
pub unsafe fn network_callout_done<P: Plugin, N: NetworkFilter<Plugin = P>>(
    envoy: EnvoyPtr,
    stream: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_len: usize,
    chunks: *const EnvoyBuffer,
    chunks_len: usize,
) {
    if !N::PHASES.has(Phases::HTTP_CALL_RESPONSE) {
        return;
    }
    let answer = answer_of(result, headers, headers_len, chunks, chunks_len);
    let body_size = answer_size(&answer);
    let token = u32::try_from(callout_id).unwrap_or(u32::MAX);
    // SAFETY: forwarded contract.
    let _ = unsafe {
        run_net::<P, N, ()>(
            envoy,
            stream,
            "network_callout_done",
            AnswerRef::of(&answer),
            || (),
            |f, p, h| f.on_http_call_response(p, h, token, body_size),
        )
    };
}

fn answer_of(
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_len: usize,
    chunks: *const EnvoyBuffer,
    chunks_len: usize,
) -> Answer {
    let ok = result == abi::CALLOUT_SUCCESS;
    Answer {
        headers: if ok { headers } else { null() },
        headers_len: if ok { headers_len } else { 0 },
        chunks: if ok { chunks } else { null() },
        chunks_len: if ok { chunks_len } else { 0 },
    }
}

fn answer_size(answer: &Answer) -> usize {
    answer_chunks(answer)
        .iter()
        .map(|c| c.length)
        .fold(0usize, usize::saturating_add)
}

/// The chunks of a callout answer.
pub(crate) fn answer_chunks(answer: &Answer) -> &[EnvoyBuffer] {
    if answer.chunks.is_null() || answer.chunks_len == 0 {
        &[]
    } else {
        // SAFETY: Envoy's array, valid during the callout hook this answer belongs to.
        unsafe { std::slice::from_raw_parts(answer.chunks, answer.chunks_len) }
    }
}

/// The headers of a callout answer.
pub(crate) fn answer_headers(answer: &Answer) -> &[EnvoyHttpHeader] {
    if answer.headers.is_null() || answer.headers_len == 0 {
        &[]
    } else {
        // SAFETY: as in `answer_chunks`.
        unsafe { std::slice::from_raw_parts(answer.headers, answer.headers_len) }
    }
}

/// The dynamic-module exports of a module: written by `sdk_ext::main!` when the crate is
/// compiled with `--cfg sdk_ext_dynamic_module` (never by hand).
#[doc(hidden)]
#[macro_export]
macro_rules! __dynamic_module_exports {
    ($p:ty, $h:ty, $n:ty) => {
        /// Small blocks cached per thread in front of the system allocator
        /// (`sdk_ext::dynamic_module::alloc`).
        #[global_allocator]
        static SDK_EXT_DYNAMIC_MODULE_ALLOCATOR: $crate::dynamic_module::alloc::ThreadBlocks =
            $crate::dynamic_module::alloc::ThreadBlocks;

        const _: () = {
            use $crate::dynamic_module::abi::{EnvoyBuffer, EnvoyHttpHeader, EnvoyPtr};
            use $crate::dynamic_module as dm;
            use ::std::ffi::{c_char, c_void};

            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
                dm::program_init()
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
                envoy: EnvoyPtr,
                name: EnvoyBuffer,
                config: EnvoyBuffer,
            ) -> *const c_void {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::http_filter_config_new::<$p, $h>(envoy, name, config) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
                config: *const c_void,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::http_filter_config_destroy(config) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
                _envoy: EnvoyPtr,
                config: *const c_void,
                event_id: u64,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::http_filter_config_scheduled::<$p>(config, event_id) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
                _envoy: EnvoyPtr,
                config: *const c_void,
                callout_id: u64,
                result: u32,
                headers: *const EnvoyHttpHeader,
                headers_len: usize,
                chunks: *const EnvoyBuffer,
                chunks_len: usize,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe {
                    dm::http_filter_config_callout_done::<$p>(
                        config, callout_id, result, headers, headers_len, chunks, chunks_len,
                    )
                }
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
                _name: EnvoyBuffer,
                _config: EnvoyBuffer,
            ) -> *const c_void {
                dm::http_filter_per_route_config_new(<$p as $crate::Plugin>::NAME)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
                _config: *const c_void,
            ) {
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
                config: *const c_void,
                envoy: EnvoyPtr,
            ) -> *const c_void {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::http_filter_new::<$p, $h>(config, envoy) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(
                stream: *const c_void,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::http_filter_destroy::<$p, $h>(stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
                envoy: EnvoyPtr,
                stream: *const c_void,
                end_of_stream: bool,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::request_headers::<$p, $h>(envoy, stream, end_of_stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
                envoy: EnvoyPtr,
                stream: *const c_void,
                end_of_stream: bool,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::request_body::<$p, $h>(envoy, stream, end_of_stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
                envoy: EnvoyPtr,
                stream: *const c_void,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::request_trailers::<$p, $h>(envoy, stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
                envoy: EnvoyPtr,
                stream: *const c_void,
                end_of_stream: bool,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::response_headers::<$p, $h>(envoy, stream, end_of_stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
                envoy: EnvoyPtr,
                stream: *const c_void,
                end_of_stream: bool,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::response_body::<$p, $h>(envoy, stream, end_of_stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
                envoy: EnvoyPtr,
                stream: *const c_void,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::response_trailers::<$p, $h>(envoy, stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
                envoy: EnvoyPtr,
                stream: *const c_void,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::stream_complete::<$p, $h>(envoy, stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
                envoy: EnvoyPtr,
                stream: *const c_void,
                callout_id: u64,
                result: u32,
                headers: *const EnvoyHttpHeader,
                headers_len: usize,
                chunks: *const EnvoyBuffer,
                chunks_len: usize,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe {
                    dm::http_callout_done::<$p, $h>(
                        envoy, stream, callout_id, result, headers, headers_len, chunks, chunks_len,
                    )
                }
            }
            // Hooks Envoy requires that sdk-ext's filters have no use for.
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
                _: EnvoyPtr, _: *const c_void, _: u64, _: *const EnvoyHttpHeader, _: usize, _: bool,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
                _: EnvoyPtr, _: *const c_void, _: u64, _: *const EnvoyBuffer, _: usize, _: bool,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
                _: EnvoyPtr, _: *const c_void, _: u64, _: *const EnvoyHttpHeader, _: usize,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
                _: EnvoyPtr, _: *const c_void, _: u64,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
                _: EnvoyPtr, _: *const c_void, _: u64, _: u32,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
                _: EnvoyPtr, _: *const c_void, _: u64,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
                _: EnvoyPtr, _: *const c_void,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
                _: EnvoyPtr, _: *const c_void,
            ) {
            }
            // The network filter (`envoy.filters.network.dynamic_modules`).
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_config_new(
                envoy: EnvoyPtr,
                name: EnvoyBuffer,
                config: EnvoyBuffer,
            ) -> *const c_void {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::network_filter_config_new::<$p, $n>(envoy, name, config) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_config_destroy(
                config: *const c_void,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::http_filter_config_destroy(config) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_new(
                config: *const c_void,
                envoy: EnvoyPtr,
            ) -> *const c_void {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::network_filter_new::<$p, $n>(config, envoy) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_new_connection(
                envoy: EnvoyPtr,
                stream: *const c_void,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::new_connection::<$p, $n>(envoy, stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_read(
                envoy: EnvoyPtr,
                stream: *const c_void,
                data_length: usize,
                end_stream: bool,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::network_read::<$p, $n>(envoy, stream, data_length, end_stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_write(
                envoy: EnvoyPtr,
                stream: *const c_void,
                data_length: usize,
                end_stream: bool,
            ) -> u32 {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::network_write::<$p, $n>(envoy, stream, data_length, end_stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_event(
                envoy: EnvoyPtr,
                stream: *const c_void,
                event: u32,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::network_event::<$p, $n>(envoy, stream, event) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_destroy(
                stream: *const c_void,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe { dm::network_filter_destroy::<$p, $n>(stream) }
            }
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn envoy_dynamic_module_on_network_filter_http_callout_done(
                envoy: EnvoyPtr,
                stream: *const c_void,
                callout_id: u64,
                result: u32,
                headers: *const EnvoyHttpHeader,
                headers_len: usize,
                chunks: *const EnvoyBuffer,
                chunks_len: usize,
            ) {
                // SAFETY: Envoy's contract, forwarded.
                unsafe {
                    dm::network_callout_done::<$p, $n>(
                        envoy, stream, callout_id, result, headers, headers_len, chunks, chunks_len,
                    )
                }
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_network_filter_scheduled(
                _: EnvoyPtr, _: *const c_void, _: u64,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_network_filter_above_write_buffer_high_watermark(
                _: EnvoyPtr, _: *const c_void,
            ) {
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn envoy_dynamic_module_on_network_filter_below_write_buffer_low_watermark(
                _: EnvoyPtr, _: *const c_void,
            ) {
            }
        };
    };
}

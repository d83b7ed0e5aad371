//! What a filter module exports to its host, and sdk-ext's dispatch behind each export.
//!
//! A filter crate never writes an export. [`crate::main!`] writes the lifecycle exports
//! (`proxy_on_context_create`, `proxy_on_configure`, `proxy_on_delete`, ...) and
//! `#[sdk_ext::filter]` writes one export per phase the filter's `impl` block defines, so a
//! module exports exactly the phases its code implements: the host enters the VM for those
//! and no others, and no list can drift from the code. [`Exports`] is the same set as a
//! table of functions, which the emulator (`sdk_ext::testing`) drives natively, delivering
//! exactly the callbacks Envoy would.
//!
//! Dispatch: every context lives in one table keyed by its id. Root contexts hold the
//! configured plugin (`Rc`); a stream context is a slot (`slots.rs`: reused from stream to
//! stream, so a stream allocates nothing) holding its root's plugin and, inline, the filter's
//! per-stream value, created at the stream's first phase (an HTTP phase makes an
//! [`HttpFilter`], an L4 phase a [`NetworkFilter`]), so one crate can serve both contexts.
//! The table is never borrowed while filter code runs: a filter may call back into the host,
//! and a host may re-enter the VM for another context (or, doing nothing, for the same one).

use crate::config::ConfigError;
use crate::higress::{self, RuleMatch};
use crate::host::{self, Action, BufferType, LogLevel, PeerType};
use crate::http::{HttpFilter, HttpHost};
use crate::network::{NetworkFilter, NetworkHost};
use crate::plugin::Plugin;
use crate::request::{HostRequest, Request};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::rc::Rc;

mod id_map;
mod slots;
use id_map::IdMap;
use slots::{Running, SlotRef, Slots, State};

/// Which per-stream callbacks a filter implements: written by `#[sdk_ext::filter]` from the
/// methods of the `impl` block (never by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases(u32);

impl Phases {
    /// `on_request_headers`.
    pub const REQUEST_HEADERS: u32 = 1 << 0;
    /// `on_request_body`.
    pub const REQUEST_BODY: u32 = 1 << 1;
    /// `on_request_trailers`.
    pub const REQUEST_TRAILERS: u32 = 1 << 2;
    /// `on_response_headers`.
    pub const RESPONSE_HEADERS: u32 = 1 << 3;
    /// `on_response_body`.
    pub const RESPONSE_BODY: u32 = 1 << 4;
    /// `on_response_trailers`.
    pub const RESPONSE_TRAILERS: u32 = 1 << 5;
    /// `on_log`.
    pub const LOG: u32 = 1 << 6;
    /// `on_http_call_response` (a stream's own callouts).
    pub const HTTP_CALL_RESPONSE: u32 = 1 << 7;
    /// `on_new_connection`.
    pub const NEW_CONNECTION: u32 = 1 << 8;
    /// `on_downstream_data`.
    pub const DOWNSTREAM_DATA: u32 = 1 << 9;
    /// `on_upstream_data`.
    pub const UPSTREAM_DATA: u32 = 1 << 10;
    /// `on_downstream_close`.
    pub const DOWNSTREAM_CLOSE: u32 = 1 << 11;
    /// `on_upstream_close`.
    pub const UPSTREAM_CLOSE: u32 = 1 << 12;

    /// No phase.
    pub const NONE: Phases = Phases(0);

    #[doc(hidden)]
    pub const fn __from_bits(bits: u32) -> Self {
        Phases(bits)
    }

    /// Whether `phase` (one of the constants) is implemented.
    pub const fn has(self, phase: u32) -> bool {
        self.0 & phase != 0
    }

    /// The bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// `proxy_on_http_call_response(context, token, headers, body_size, trailers)`.
pub type CallResponseFn = fn(u32, u32, usize, usize, usize);

/// A module's exports as functions: what a host can call, by ABI name (`proxy_on_<field>`).
/// `None`: not exported; the host then applies the ABI's default (a phase continues,
/// `on_done` answers done). Booleans and actions are the ABI's `u32`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exports {
    /// `_initialize`.
    pub initialize: Option<fn()>,
    /// `proxy_on_context_create(context, root)`.
    pub on_context_create: Option<fn(u32, u32)>,
    /// `proxy_on_vm_start(root, vm_config_size) -> bool`.
    pub on_vm_start: Option<fn(u32, usize) -> u32>,
    /// `proxy_on_configure(root, plugin_config_size) -> bool`.
    pub on_configure: Option<fn(u32, usize) -> u32>,
    /// `proxy_on_tick(root)`.
    pub on_tick: Option<fn(u32)>,
    /// `proxy_on_queue_ready(root, queue)`.
    pub on_queue_ready: Option<fn(u32, u32)>,
    /// `proxy_on_done(context) -> bool`.
    pub on_done: Option<fn(u32) -> u32>,
    /// `proxy_on_log(context)`.
    pub on_log: Option<fn(u32)>,
    /// `proxy_on_delete(context)`.
    pub on_delete: Option<fn(u32)>,
    /// `proxy_on_request_headers(context, headers, end_of_stream) -> action`.
    pub on_request_headers: Option<fn(u32, usize, u32) -> u32>,
    /// `proxy_on_request_body(context, size, end_of_stream) -> action`.
    pub on_request_body: Option<fn(u32, usize, u32) -> u32>,
    /// `proxy_on_request_trailers(context, trailers) -> action`.
    pub on_request_trailers: Option<fn(u32, usize) -> u32>,
    /// `proxy_on_response_headers(context, headers, end_of_stream) -> action`.
    pub on_response_headers: Option<fn(u32, usize, u32) -> u32>,
    /// `proxy_on_response_body(context, size, end_of_stream) -> action`.
    pub on_response_body: Option<fn(u32, usize, u32) -> u32>,
    /// `proxy_on_response_trailers(context, trailers) -> action`.
    pub on_response_trailers: Option<fn(u32, usize) -> u32>,
    /// `proxy_on_new_connection(context) -> action`.
    pub on_new_connection: Option<fn(u32) -> u32>,
    /// `proxy_on_downstream_data(context, size, end_of_stream) -> action`.
    pub on_downstream_data: Option<fn(u32, usize, u32) -> u32>,
    /// `proxy_on_upstream_data(context, size, end_of_stream) -> action`.
    pub on_upstream_data: Option<fn(u32, usize, u32) -> u32>,
    /// `proxy_on_downstream_connection_close(context, peer)`.
    pub on_downstream_connection_close: Option<fn(u32, u32)>,
    /// `proxy_on_upstream_connection_close(context, peer)`.
    pub on_upstream_connection_close: Option<fn(u32, u32)>,
    /// `proxy_on_http_call_response(context, token, headers, body_size, trailers)`.
    pub on_http_call_response: Option<CallResponseFn>,
    /// `proxy_on_grpc_receive_initial_metadata(context, token, headers)`.
    pub on_grpc_receive_initial_metadata: Option<fn(u32, u32, usize)>,
    /// `proxy_on_grpc_receive(context, token, size)`.
    pub on_grpc_receive: Option<fn(u32, u32, usize)>,
    /// `proxy_on_grpc_receive_trailing_metadata(context, token, trailers)`.
    pub on_grpc_receive_trailing_metadata: Option<fn(u32, u32, usize)>,
    /// `proxy_on_grpc_close(context, token, status)`.
    pub on_grpc_close: Option<fn(u32, u32, u32)>,
}

const fn phase3<F: Copy>(on: bool, f: F) -> Option<F> {
    if on {
        Some(f)
    } else {
        None
    }
}

impl Exports {
    /// An empty table.
    pub const NONE: Exports = Exports {
        initialize: None,
        on_context_create: None,
        on_vm_start: None,
        on_configure: None,
        on_tick: None,
        on_queue_ready: None,
        on_done: None,
        on_log: None,
        on_delete: None,
        on_request_headers: None,
        on_request_body: None,
        on_request_trailers: None,
        on_response_headers: None,
        on_response_body: None,
        on_response_trailers: None,
        on_new_connection: None,
        on_downstream_data: None,
        on_upstream_data: None,
        on_downstream_connection_close: None,
        on_upstream_connection_close: None,
        on_http_call_response: None,
        on_grpc_receive_initial_metadata: None,
        on_grpc_receive: None,
        on_grpc_receive_trailing_metadata: None,
        on_grpc_close: None,
    };

    /// The exports of a module whose plugin is `P`, HTTP filter `H` and network filter `N`
    /// (either may be [`NoFilter`]): exactly what [`crate::main!`] and `#[sdk_ext::filter]`
    /// export on wasm.
    pub const fn of<P: Plugin, H: HttpFilter<Plugin = P>, N: NetworkFilter<Plugin = P>>() -> Self {
        let h = H::PHASES;
        let n = N::PHASES;
        Exports {
            initialize: Some(initialize),
            on_context_create: Some(context_create),
            on_vm_start: Some(vm_start),
            on_configure: Some(configure::<P>),
            on_tick: Some(tick::<P>),
            on_queue_ready: None,
            on_done: None,
            on_log: phase3(h.has(Phases::LOG), log::<H>),
            on_delete: Some(delete),
            on_request_headers: phase3(h.has(Phases::REQUEST_HEADERS), request_headers::<H>),
            on_request_body: phase3(h.has(Phases::REQUEST_BODY), request_body::<H>),
            on_request_trailers: phase3(h.has(Phases::REQUEST_TRAILERS), request_trailers::<H>),
            on_response_headers: phase3(h.has(Phases::RESPONSE_HEADERS), response_headers::<H>),
            on_response_body: phase3(h.has(Phases::RESPONSE_BODY), response_body::<H>),
            on_response_trailers: phase3(h.has(Phases::RESPONSE_TRAILERS), response_trailers::<H>),
            on_new_connection: phase3(n.has(Phases::NEW_CONNECTION), new_connection::<N>),
            on_downstream_data: phase3(n.has(Phases::DOWNSTREAM_DATA), downstream_data::<N>),
            on_upstream_data: phase3(n.has(Phases::UPSTREAM_DATA), upstream_data::<N>),
            on_downstream_connection_close: phase3(
                n.has(Phases::DOWNSTREAM_CLOSE),
                downstream_close::<N>,
            ),
            on_upstream_connection_close: phase3(
                n.has(Phases::UPSTREAM_CLOSE),
                upstream_close::<N>,
            ),
            on_http_call_response: Some(http_call_response::<P, H, N>),
            on_grpc_receive_initial_metadata: None,
            on_grpc_receive: None,
            on_grpc_receive_trailing_metadata: None,
            on_grpc_close: None,
        }
    }
}

/// Stands in for the context a module does not have (`main!(plugin: P, http: H)` has no
/// network filter): no phases, so never created.
pub struct NoFilter<P>(PhantomData<P>);

impl<P: Plugin> HttpFilter for NoFilter<P> {
    type Plugin = P;
    const PHASES: Phases = Phases::NONE;
    fn create(_: &P) -> Self {
        NoFilter(PhantomData)
    }
}

impl<P: Plugin> NetworkFilter for NoFilter<P> {
    type Plugin = P;
    const PHASES: Phases = Phases::NONE;
    fn create(_: &P) -> Self {
        NoFilter(PhantomData)
    }
}

// ----- the context table --------------------------------------------------------------

/// Context ids are small increasing integers: hashing them is wasted work.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Fibonacci multiplier: spreads sequential ids over the table's top bits.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

/// A root's configured plugins: the global configuration and one per Higress rule
/// (`crate::higress`); without `_rules_`, just the global one.
struct Instances {
    global: Option<Rc<dyn Any>>,
    rules: Vec<(RuleMatch, Rc<dyn Any>)>,
}

impl Instances {
    /// Calls `f` on every instance, the global one first. One non-generic loop (an
    /// iterator chain was an adapter stack per caller in the module).
    fn each(&self, f: &mut dyn FnMut(&dyn Any)) {
        if let Some(g) = &self.global {
            f(&**g);
        }
        for (_, p) in &self.rules {
            f(&**p);
        }
    }

    /// The instance for a request: the first rule that matches it, else the global one.
    fn select(&self, req: &mut impl Request) -> Option<Rc<dyn Any>> {
        self.rules
            .iter()
            .find(|(m, _)| m.matches(req))
            .map(|(_, p)| Rc::clone(p))
            .or_else(|| self.global.clone())
    }
}

struct Table {
    /// Root contexts: their configured plugin instances (`None` until `on_configure`
    /// succeeds).
    roots: IdMap<Option<Rc<Instances>>>,
    /// Stream contexts: their slots.
    streams: IdMap<SlotRef>,
    /// The slots of deleted streams, for the next ones.
    slots: Slots,
    /// Callouts dispatched from a stream, by token: Envoy answers them at the root context
    /// (`proxy_http_call` belongs to the root), so [`http_call_response`] hands them back.
    callouts: HashMap<u32, u32, BuildHasherDefault<IdHasher>>,
}

/// `host::http_call` succeeded with `token`: remember the stream it came from, if any.
pub(crate) fn callout_dispatched(token: u32) {
    let stream = CURRENT_STREAM.try_with(Cell::get).unwrap_or(0);
    if stream != 0 {
        let _ = with_table(|t| t.callouts.insert(token, stream));
    }
}

impl Table {
    const fn new() -> Self {
        Table {
            roots: IdMap::new(),
            streams: IdMap::new(),
            slots: Slots::new(),
            callouts: HashMap::with_hasher(BuildHasherDefault::new()),
        }
    }
}

/// Stream `slot`'s entry is out of the table: the slot is emptied and goes back to the pool,
/// or, while a phase runs on it, is left to that phase. Run with the table released.
fn forget_stream(slot: SlotRef) {
    if slot.state() == State::Running {
        slot.set_state(State::Deleted);
        return;
    }
    give_back(slot);
}

/// Empties `slot`, whose stream is gone and whose phase (if any) has returned, and puts it
/// back in the pool.
fn give_back(slot: SlotRef) {
    // SAFETY: the slot's entry is out of the table and no phase runs on it: nobody else
    // reaches it until the pool hands it out again.
    unsafe { slot.empty() };
    // SAFETY: emptied just now. (With the thread's table gone, the slot is leaked.)
    let _ = with_table(|t| unsafe { t.slots.put_back(slot) });
}

impl Drop for Table {
    fn drop(&mut self) {
        // The thread ends (native tests): every live stream's slot is emptied and freed.
        for slot in self.streams.take_all() {
            if slot.state() != State::Running {
                // SAFETY: out of the table, and no phase runs on it (the thread is ending).
                unsafe {
                    slot.empty();
                    self.slots.put_back(slot);
                }
            }
        }
    }
}

thread_local! {
    // Const-initialised: an access is a plain address, with no lazy-init check.
    static TABLE: RefCell<Table> = const { RefCell::new(Table::new()) };
    /// The stream context a filter phase is running for (0: none, e.g. the root).
    static CURRENT_STREAM: Cell<u32> = const { Cell::new(0) };
}

#[inline(always)] // a few instructions, on every export's path
fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> Option<R> {
    TABLE
        .try_with(|t| t.try_borrow_mut().ok().map(|mut t| f(&mut t)))
        .ok()
        .flatten()
}

fn root_instances(root: u32) -> Option<Rc<Instances>> {
    with_table(|t| t.roots.get(root).cloned().flatten()).flatten()
}

/// Runs `f` on every plugin instance of `root`.
fn each_plugin<P: Plugin>(root: u32, f: impl Fn(&P)) {
    if let Some(instances) = root_instances(root) {
        instances.each(&mut |p| {
            if let Some(p) = p.downcast_ref::<P>() {
                f(p);
            }
        });
    }
}

// ----- lifecycle exports --------------------------------------------------------------

/// `_initialize`: routes the `log` crate to the host. Makes no host call (Envoy refuses
/// them during `_initialize`).
pub fn initialize() {
    crate::logging::init();
}

/// `proxy_on_memory_allocate`.
pub fn memory_allocate(size: usize) -> *mut u8 {
    host::allocate(size)
}

/// `proxy_on_context_create`: a root (`root == 0`) or a stream of `root`. One table access
/// (this runs for every stream), and no allocation once a deleted stream's slot is spare.
pub fn context_create(context: u32, root: u32) {
    let replaced = with_table(|t| {
        if root == 0 {
            if let Some(Some(old)) = t.roots.insert(context, None) {
                return Replaced::Root(old);
            }
            return Replaced::Nothing;
        }
        let (plugin, select) = match t.roots.get(root) {
            // Higress rules: the instance is chosen from the request at the first phase.
            Some(Some(i)) if !i.rules.is_empty() => (None, Some(Rc::clone(i))),
            Some(Some(i)) => (i.global.as_ref().map(Rc::clone), None),
            _ => (None, None),
        };
        let slot = t.slots.take(plugin, select);
        match t.streams.insert(context, slot) {
            Some(old) => Replaced::Stream(old),
            None => Replaced::Nothing,
        }
    });
    match replaced {
        // A host reusing a live id (an emulator's next run): the old context is gone.
        Some(Replaced::Stream(old)) => forget_stream(old),
        Some(Replaced::Root(old)) => drop(old),
        _ => {}
    }
}

/// What a new context replaced (a host reusing a live id).
enum Replaced {
    Nothing,
    Root(Rc<Instances>),
    Stream(SlotRef),
}

/// How many stream slots are spare (kept for the next streams): for tests of the dispatch.
#[doc(hidden)]
pub fn __spare_stream_slots() -> usize {
    with_table(|t| t.slots.spare()).unwrap_or(0)
}

/// `proxy_on_vm_start`.
pub fn vm_start(_root: u32, _size: usize) -> u32 {
    1
}

/// `proxy_on_configure`: parses the plugin configuration once into `P`; a refusal is
/// logged as `"invalid config at <field>: <reason>"` (Envoy prefixes every line with the
/// plugin's name: `wasm log <root_id>: ...`) and answers false, so Envoy refuses the
/// configuration.
pub fn configure<P: Plugin>(root: u32, _size: usize) -> u32 {
    crate::logging::follow_host_level();
    let bytes = match host::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
        Ok(b) => b.unwrap_or_default(),
        Err(status) => {
            log_error(&format!(
                "cannot read plugin configuration: host answered {status:?}"
            ));
            return 0;
        }
    };
    let instances = match instances::<P>(&bytes) {
        Ok(i) => i,
        Err(e) => {
            log_error(&refusal(&e));
            return 0;
        }
    };
    let mut period: Option<std::time::Duration> = None;
    instances.each(&mut |p| {
        if let Some(t) = p.downcast_ref::<P>().and_then(P::tick_period) {
            period = Some(period.map_or(t, |min| min.min(t)));
        }
    });
    if let Some(period) = period {
        if let Err(status) = host::set_tick_period(period) {
            // Seconds and milliseconds as integers: `Duration`'s `Debug` is ~2 KB of
            // `.wasm` in every filter.
            log_error(&format!(
                "cannot set tick period {}.{:03}s: host answered {status:?}",
                period.as_secs(),
                period.subsec_millis()
            ));
            return 0;
        }
    }
    let instances = Rc::new(instances);
    let stored = Rc::clone(&instances);
    let replaced = with_table(|t| t.roots.insert(root, Some(stored)));
    drop(replaced);
    log::info!("configured");
    instances.each(&mut |p| {
        if let Some(p) = p.downcast_ref::<P>() {
            p.on_start();
        }
    });
    1
}

/// One plugin instance. Never inlined: a filter's whole config parser sits behind
/// `P::configure`, and three call sites must not make three copies of it in the module.
#[inline(never)]
fn configure_one<P: Plugin>(bytes: &[u8]) -> Result<Rc<dyn Any>, ConfigError> {
    let p: Rc<dyn Any> = Rc::new(P::configure(bytes)?);
    Ok(p)
}

/// Configures the plugin instances: one from `bytes`, or, with Higress `_rules_`, the
/// global one (if it has fields) and one per rule, each refusal naming its rule.
fn instances<P: Plugin>(bytes: &[u8]) -> Result<Instances, ConfigError> {
    let one = configure_one::<P>;
    let Some(split) = higress::split(bytes)? else {
        return Ok(Instances {
            global: Some(one(bytes)?),
            rules: Vec::new(),
        });
    };
    let global = split.global.as_deref().map(one).transpose()?;
    let mut rules = Vec::with_capacity(split.rules.len());
    for (i, (matcher, config)) in split.rules.into_iter().enumerate() {
        let plugin = one(&config).map_err(|e| e.within(&format!("{}[{i}]", higress::RULES_KEY)))?;
        rules.push((matcher, plugin));
    }
    Ok(Instances { global, rules })
}

fn refusal(e: &ConfigError) -> String {
    e.to_string()
}

fn log_error(message: &str) {
    // Straight to the host: the `log` crate's level may not be set up yet.
    let _ = host::log(LogLevel::Error, message);
}

/// `proxy_on_tick`.
pub fn tick<P: Plugin>(root: u32) {
    each_plugin::<P>(root, P::on_tick);
}

/// `proxy_on_delete`: forgets the context (a root's plugin is dropped with its last stream).
pub fn delete(context: u32) {
    let gone = with_table(|t| {
        // Its callouts' answers (still due at the root) have no one to go to.
        if !t.callouts.is_empty() {
            t.callouts.retain(|_, stream| *stream != context);
        }
        match t.streams.remove(context) {
            Some(slot) => Replaced::Stream(slot),
            None => match t.roots.remove(context).flatten() {
                Some(root) => Replaced::Root(root),
                None => Replaced::Nothing,
            },
        }
    });
    match gone {
        Some(Replaced::Stream(slot)) => forget_stream(slot),
        Some(Replaced::Root(root)) => drop(root),
        _ => {}
    }
}

/// `proxy_on_http_call_response`: to the plugin (a root's callout) or to the stream that
/// dispatched it.
pub fn http_call_response<P: Plugin, H: HttpFilter<Plugin = P>, N: NetworkFilter<Plugin = P>>(
    context: u32,
    token: u32,
    _headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    // A stream's callout, answered at the root (Envoy) or at the stream (an emulator that
    // delivers to the dispatching context): the stream gets it, as the host's current context.
    let owner = with_table(|t| t.callouts.remove(&token)).flatten();
    let context = match owner {
        Some(stream) if stream != context => match crate::host::set_effective_context(stream) {
            Ok(()) => stream,
            // The stream is gone: nobody waits for this answer.
            Err(_) => return,
        },
        _ => context,
    };
    let is_root = with_table(|t| t.roots.get(context).is_some()).unwrap_or(false);
    if is_root {
        // Every instance is offered the answer; each recognises its own tokens.
        each_plugin::<P>(context, |p| p.on_http_call_response(token, body_size));
        return;
    }
    // A filter type without the phase has nothing to run: its delivery code (the table
    // lookup, the downcast) is left out of the module (1-2 KB in filters without callouts).
    let handled = if H::PHASES.has(Phases::HTTP_CALL_RESPONSE) {
        with_filter_of::<Http<H>, _>(context, false, |w, p| {
            w.0.on_http_call_response(p, &mut HttpHost::new(), token, body_size);
        })
    } else {
        None
    };
    if handled.is_none() && N::PHASES.has(Phases::HTTP_CALL_RESPONSE) {
        let _ = with_filter_of::<Net<N>, _>(context, false, |w, p| {
            w.0.on_http_call_response(p, &mut NetworkHost::new(), token, body_size);
        });
    }
}

// ----- stream phases --------------------------------------------------------------------

/// A stream's filter value, created by one of the two filter traits.
trait Creates: Sized + 'static {
    type P: Plugin;
    fn create_for(plugin: &Self::P) -> Self;
}

impl<H: HttpFilter> Creates for Http<H> {
    type P = H::Plugin;
    fn create_for(plugin: &Self::P) -> Self {
        Http(H::create(plugin))
    }
}

impl<N: NetworkFilter> Creates for Net<N> {
    type P = N::Plugin;
    fn create_for(plugin: &Self::P) -> Self {
        Net(N::create(plugin))
    }
}

struct Http<H>(H);
struct Net<N>(N);

/// Runs `f` on stream `context`'s filter (creating it at its first phase when `create`),
/// with the table released during the call.
#[inline(always)] // one copy per phase the filter implements; the phases' whole path
fn with_filter_of<C: Creates, R>(
    context: u32,
    create: bool,
    f: impl FnOnce(&mut C, &C::P) -> R,
) -> Option<R> {
    // One table access on the way in; the slot's address is stable, and marked running it
    // is this phase's alone until it returns (see `slots`).
    let slot = with_table(|t| t.streams.get(context).copied()).flatten()?;
    let mut running = Running::start(slot)?;
    let outer = CURRENT_STREAM.try_with(|c| c.replace(context)).unwrap_or(0);
    let result = run(&mut running, create, f);
    let _ = CURRENT_STREAM.try_with(|c| c.set(outer));
    if let Some(deleted) = running.finish() {
        // The stream was deleted during the phase: its slot goes back now.
        give_back(deleted);
    }
    result
}

/// Chooses the stream's plugin instance from the request by Higress rules (`None`: no
/// instance applies to this stream, every phase continues).
#[inline(never)]
fn choose(running: &mut Running, rules: &Instances) {
    running.set_plugin(rules.select(&mut HostRequest::new()));
}

#[inline(always)]
fn run<C: Creates, R>(
    running: &mut Running,
    create: bool,
    f: impl FnOnce(&mut C, &C::P) -> R,
) -> Option<R> {
    if create {
        // Higress rules: the instance is chosen once, at the first phase.
        if let Some(rules) = running.rules_to_choose() {
            choose(running, &rules);
        }
    }
    let create: Option<fn(&C::P) -> C> = if create { Some(C::create_for) } else { None };
    let (value, plugin) = running.value::<C, C::P>(create)?;
    Some(f(value, plugin))
}

fn act(action: Option<Action>) -> u32 {
    action.unwrap_or(Action::Continue).raw()
}

/// `proxy_on_request_headers`.
pub fn request_headers<H: HttpFilter>(context: u32, _headers: usize, eos: u32) -> u32 {
    act(with_filter_of::<Http<H>, _>(context, true, |w, p| {
        w.0.on_request_headers(p, &mut HttpHost::new(), eos != 0)
    }))
}

/// `proxy_on_request_body`.
pub fn request_body<H: HttpFilter>(context: u32, size: usize, eos: u32) -> u32 {
    act(with_filter_of::<Http<H>, _>(context, true, |w, p| {
        w.0.on_request_body(p, &mut HttpHost::new(), size, eos != 0)
    }))
}

/// `proxy_on_request_trailers`.
pub fn request_trailers<H: HttpFilter>(context: u32, _trailers: usize) -> u32 {
    act(with_filter_of::<Http<H>, _>(context, true, |w, p| {
        w.0.on_request_trailers(p, &mut HttpHost::new())
    }))
}

/// `proxy_on_response_headers`.
pub fn response_headers<H: HttpFilter>(context: u32, _headers: usize, eos: u32) -> u32 {
    act(with_filter_of::<Http<H>, _>(context, true, |w, p| {
        w.0.on_response_headers(p, &mut HttpHost::new(), eos != 0)
    }))
}

/// `proxy_on_response_body`.
pub fn response_body<H: HttpFilter>(context: u32, size: usize, eos: u32) -> u32 {
    act(with_filter_of::<Http<H>, _>(context, true, |w, p| {
        w.0.on_response_body(p, &mut HttpHost::new(), size, eos != 0)
    }))
}

/// `proxy_on_response_trailers`.
pub fn response_trailers<H: HttpFilter>(context: u32, _trailers: usize) -> u32 {
    act(with_filter_of::<Http<H>, _>(context, true, |w, p| {
        w.0.on_response_trailers(p, &mut HttpHost::new())
    }))
}

/// `proxy_on_log`.
pub fn log<H: HttpFilter>(context: u32) {
    let _ =
        with_filter_of::<Http<H>, _>(context, false, |w, p| w.0.on_log(p, &mut HttpHost::new()));
}

/// `proxy_on_new_connection`.
pub fn new_connection<N: NetworkFilter>(context: u32) -> u32 {
    act(with_filter_of::<Net<N>, _>(context, true, |w, p| {
        w.0.on_new_connection(p, &mut NetworkHost::new())
    }))
}

/// `proxy_on_downstream_data`.
pub fn downstream_data<N: NetworkFilter>(context: u32, size: usize, eos: u32) -> u32 {
    act(with_filter_of::<Net<N>, _>(context, true, |w, p| {
        w.0.on_downstream_data(p, &mut NetworkHost::new(), size, eos != 0)
    }))
}

/// `proxy_on_upstream_data`.
pub fn upstream_data<N: NetworkFilter>(context: u32, size: usize, eos: u32) -> u32 {
    act(with_filter_of::<Net<N>, _>(context, true, |w, p| {
        w.0.on_upstream_data(p, &mut NetworkHost::new(), size, eos != 0)
    }))
}

/// `proxy_on_downstream_connection_close`.
pub fn downstream_close<N: NetworkFilter>(context: u32, peer: u32) {
    let _ = with_filter_of::<Net<N>, _>(context, false, |w, p| {
        w.0.on_downstream_close(p, &mut NetworkHost::new(), PeerType::from_raw(peer))
    });
}

/// `proxy_on_upstream_connection_close`.
pub fn upstream_close<N: NetworkFilter>(context: u32, peer: u32) {
    let _ = with_filter_of::<Net<N>, _>(context, false, |w, p| {
        w.0.on_upstream_close(p, &mut NetworkHost::new(), PeerType::from_raw(peer))
    });
}

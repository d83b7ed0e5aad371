//! Calls into the filter through the module's [`Exports`]: exactly the callbacks it
//! exports, as Envoy calls them (a phase it does not export continues; no `on_done` means
//! done).
//!
//! Every call first makes the target context current, so host calls made by the filter act
//! on it; afterwards the host delivers `on_queue_ready` for queues the filter enqueued to
//! (Envoy posts these to the worker, so they run after the current callback).

use super::state::{with_host, ContextKind};
use crate::exports::Exports;
use crate::host::{Action, PeerType};
use std::cell::Cell;

thread_local! {
    /// The module under test: what it exports. Set by `Emulator::native`.
    static MODULE: Cell<&'static Exports> = const { Cell::new(&Exports::NONE) };
}

/// Loads `exports` as this thread's module.
pub(crate) fn load(exports: &'static Exports) {
    let _ = MODULE.try_with(|m| m.set(exports));
}

/// The loaded module's exports.
pub(crate) fn module() -> &'static Exports {
    MODULE.try_with(Cell::get).unwrap_or(&Exports::NONE)
}

fn action(raw: u32) -> Action {
    if raw == Action::Pause.raw() {
        Action::Pause
    } else {
        Action::Continue
    }
}

fn flag(b: bool) -> u32 {
    u32::from(b)
}

/// Upper bound on `on_queue_ready` deliveries after one callback (guards against a filter
/// that re-enqueues forever).
const MAX_QUEUE_DELIVERIES: usize = 1024;

/// Whether `context` exists and has the given kind.
pub(crate) fn is_live(context: u32, kind: ContextKind) -> bool {
    with_host(|host| host.contexts.get(&context) == Some(&kind)).unwrap_or(false)
}

/// Makes `context` current, runs `call`, then delivers pending queue notifications.
fn enter<R>(context: u32, call: impl FnOnce() -> R) -> R {
    let _ = with_host(|host| host.current = context);
    let result = call();
    deliver_queue_ready();
    result
}

fn deliver_queue_ready() {
    for _ in 0..MAX_QUEUE_DELIVERIES {
        let next = with_host(|host| {
            if host.queue_ready.is_empty() {
                None
            } else {
                Some(host.queue_ready.remove(0))
            }
        })
        .flatten();
        let Some((owner, queue_id)) = next else {
            return;
        };
        if !is_live(owner, ContextKind::Root) {
            continue;
        }
        let _ = with_host(|host| host.current = owner);
        if let Some(f) = module().on_queue_ready {
            f(owner, queue_id);
        }
    }
}

/// Registers the context with the host, then creates it in the filter.
pub(crate) fn create_context(context: u32, root: u32, kind: ContextKind) {
    let _ = with_host(|host| {
        host.contexts.insert(context, kind);
        if kind != ContextKind::Root {
            host.streams.insert(context, Default::default());
        }
    });
    if let Some(f) = module().on_context_create {
        enter(context, || f(context, root));
    }
}

/// Runs the module's `_initialize` (if it exports one).
pub(crate) fn initialize() {
    if let Some(f) = module().initialize {
        f();
    }
}

pub(crate) fn vm_start(root: u32, size: usize) -> bool {
    match module().on_vm_start {
        Some(f) => enter(root, || f(root, size)) != 0,
        None => true,
    }
}

pub(crate) fn configure(root: u32, size: usize) -> bool {
    match module().on_configure {
        Some(f) => enter(root, || f(root, size)) != 0,
        None => true,
    }
}

pub(crate) fn tick(root: u32) {
    if let Some(f) = module().on_tick {
        enter(root, || f(root));
    }
}

pub(crate) fn queue_ready(root: u32, queue_id: u32) {
    if let Some(f) = module().on_queue_ready {
        enter(root, || f(root, queue_id));
    }
}

/// Envoy's end of an HTTP stream: `on_log` (access log), then `on_done`, `on_delete`, each
/// only if the module exports it (as Envoy calls only exported callbacks).
pub(crate) fn finish_http(context: u32) {
    let m = module();
    enter(context, || {
        if let Some(f) = m.on_log {
            f(context);
        }
        if let Some(f) = m.on_done {
            f(context);
        }
        if let Some(f) = m.on_delete {
            f(context);
        }
    });
    forget(context);
}

/// Envoy's end of a TCP connection: `on_done`, `on_log`, then `on_delete`.
pub(crate) fn finish_tcp(context: u32) {
    let m = module();
    enter(context, || {
        if let Some(f) = m.on_done {
            f(context);
        }
        if let Some(f) = m.on_log {
            f(context);
        }
        if let Some(f) = m.on_delete {
            f(context);
        }
    });
    forget(context);
}

/// Deletes a context without the end-of-stream callbacks (emulator teardown).
pub(crate) fn delete(context: u32) {
    if let Some(f) = module().on_delete {
        enter(context, || f(context));
    }
    forget(context);
}

fn forget(context: u32) {
    let _ = with_host(|host| {
        host.contexts.remove(&context);
        host.streams.remove(&context);
    });
}

fn phase3(f: Option<fn(u32, usize, u32) -> u32>, context: u32, n: usize, eos: bool) -> Action {
    match f {
        Some(f) => action(enter(context, || f(context, n, flag(eos)))),
        None => Action::Continue,
    }
}

fn phase2(f: Option<fn(u32, usize) -> u32>, context: u32, n: usize) -> Action {
    match f {
        Some(f) => action(enter(context, || f(context, n))),
        None => Action::Continue,
    }
}

pub(crate) fn request_headers(context: u32, count: usize, end_of_stream: bool) -> Action {
    phase3(module().on_request_headers, context, count, end_of_stream)
}

pub(crate) fn request_body(context: u32, size: usize, end_of_stream: bool) -> Action {
    phase3(module().on_request_body, context, size, end_of_stream)
}

pub(crate) fn request_trailers(context: u32, count: usize) -> Action {
    phase2(module().on_request_trailers, context, count)
}

pub(crate) fn response_headers(context: u32, count: usize, end_of_stream: bool) -> Action {
    phase3(module().on_response_headers, context, count, end_of_stream)
}

pub(crate) fn response_body(context: u32, size: usize, end_of_stream: bool) -> Action {
    phase3(module().on_response_body, context, size, end_of_stream)
}

pub(crate) fn response_trailers(context: u32, count: usize) -> Action {
    phase2(module().on_response_trailers, context, count)
}

pub(crate) fn new_connection(context: u32) -> Action {
    match module().on_new_connection {
        Some(f) => action(enter(context, || f(context))),
        None => Action::Continue,
    }
}

pub(crate) fn downstream_data(context: u32, size: usize, end_of_stream: bool) -> Action {
    phase3(module().on_downstream_data, context, size, end_of_stream)
}

pub(crate) fn upstream_data(context: u32, size: usize, end_of_stream: bool) -> Action {
    phase3(module().on_upstream_data, context, size, end_of_stream)
}

pub(crate) fn downstream_close(context: u32, peer: PeerType) {
    if let Some(f) = module().on_downstream_connection_close {
        enter(context, || f(context, peer.raw()));
    }
}

pub(crate) fn upstream_close(context: u32, peer: PeerType) {
    if let Some(f) = module().on_upstream_connection_close {
        enter(context, || f(context, peer.raw()));
    }
}

/// Delivers an HTTP callout answer to the context that dispatched `token`.
pub(crate) fn http_call_response(
    context: u32,
    token: u32,
    headers: usize,
    body: usize,
    trailers: usize,
) {
    if let Some(f) = module().on_http_call_response {
        enter(context, || f(context, token, headers, body, trailers));
    }
}

/// Delivers a gRPC message for `token`.
pub(crate) fn grpc_receive(context: u32, token: u32, size: usize) {
    if let Some(f) = module().on_grpc_receive {
        enter(context, || f(context, token, size));
    }
}

/// Delivers the close of gRPC call/stream `token`.
pub(crate) fn grpc_close(context: u32, token: u32, status: u32) {
    if let Some(f) = module().on_grpc_close {
        enter(context, || f(context, token, status));
    }
}

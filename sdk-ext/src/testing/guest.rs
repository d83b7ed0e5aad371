//! Calls into the filter: the entry points the `proxy-wasm` crate exports (its dispatcher
//! defines them `#[no_mangle] extern "C"`, so they resolve at link time in a test binary).
//!
//! Every call first makes the target context current, so host calls made by the filter act
//! on it; afterwards the host delivers `on_queue_ready` for queues the filter enqueued to
//! (Envoy posts these to the worker, so they run after the current callback).

use super::state::{with_host, ContextKind};
use proxy_wasm::types::{Action, PeerType};

extern "C" {
    fn proxy_on_context_create(context_id: u32, root_context_id: u32);
    fn proxy_on_done(context_id: u32) -> bool;
    fn proxy_on_log(context_id: u32);
    fn proxy_on_delete(context_id: u32);
    fn proxy_on_vm_start(context_id: u32, vm_configuration_size: usize) -> bool;
    fn proxy_on_configure(context_id: u32, plugin_configuration_size: usize) -> bool;
    fn proxy_on_tick(context_id: u32);
    fn proxy_on_queue_ready(context_id: u32, queue_id: u32);
    fn proxy_on_new_connection(context_id: u32) -> Action;
    fn proxy_on_downstream_data(context_id: u32, data_size: usize, end_of_stream: bool) -> Action;
    fn proxy_on_downstream_connection_close(context_id: u32, peer_type: PeerType);
    fn proxy_on_upstream_data(context_id: u32, data_size: usize, end_of_stream: bool) -> Action;
    fn proxy_on_upstream_connection_close(context_id: u32, peer_type: PeerType);
    fn proxy_on_request_headers(context_id: u32, num_headers: usize, end_of_stream: bool)
        -> Action;
    fn proxy_on_request_body(context_id: u32, body_size: usize, end_of_stream: bool) -> Action;
    fn proxy_on_request_trailers(context_id: u32, num_trailers: usize) -> Action;
    fn proxy_on_response_headers(
        context_id: u32,
        num_headers: usize,
        end_of_stream: bool,
    ) -> Action;
    fn proxy_on_response_body(context_id: u32, body_size: usize, end_of_stream: bool) -> Action;
    fn proxy_on_response_trailers(context_id: u32, num_trailers: usize) -> Action;
    fn proxy_on_http_call_response(
        context_id: u32,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        num_trailers: usize,
    );
    fn proxy_on_grpc_receive(context_id: u32, token_id: u32, response_size: usize);
    fn proxy_on_grpc_close(context_id: u32, token_id: u32, status_code: u32);
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
        // SAFETY: `owner` is a live root context in the SDK's dispatcher.
        unsafe { proxy_on_queue_ready(owner, queue_id) };
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
    // SAFETY: a fresh id; `root` is 0 or a live root context.
    enter(context, || unsafe {
        proxy_on_context_create(context, root)
    });
}

pub(crate) fn vm_start(root: u32, size: usize) -> bool {
    // SAFETY: `root` is a live root context.
    enter(root, || unsafe { proxy_on_vm_start(root, size) })
}

pub(crate) fn configure(root: u32, size: usize) -> bool {
    // SAFETY: `root` is a live root context.
    enter(root, || unsafe { proxy_on_configure(root, size) })
}

pub(crate) fn tick(root: u32) {
    // SAFETY: `root` is a live root context.
    enter(root, || unsafe { proxy_on_tick(root) });
}

pub(crate) fn queue_ready(root: u32, queue_id: u32) {
    // SAFETY: `root` is a live root context.
    enter(root, || unsafe { proxy_on_queue_ready(root, queue_id) });
}

/// Envoy's end of an HTTP stream: `on_log` (access log), then `on_done`, `on_delete`.
pub(crate) fn finish_http(context: u32) {
    // SAFETY: `context` is live (callers check); it is forgotten right after.
    enter(context, || unsafe {
        proxy_on_log(context);
        proxy_on_done(context);
        proxy_on_delete(context);
    });
    forget(context);
}

/// Envoy's end of a TCP connection: `on_done`, `on_log`, then `on_delete`.
pub(crate) fn finish_tcp(context: u32) {
    // SAFETY: `context` is live (callers check); it is forgotten right after.
    enter(context, || unsafe {
        proxy_on_done(context);
        proxy_on_log(context);
        proxy_on_delete(context);
    });
    forget(context);
}

/// Deletes a context without the end-of-stream callbacks (emulator teardown).
pub(crate) fn delete(context: u32) {
    // SAFETY: `context` is live (callers check); it is forgotten right after.
    enter(context, || unsafe { proxy_on_delete(context) });
    forget(context);
}

fn forget(context: u32) {
    let _ = with_host(|host| {
        host.contexts.remove(&context);
        host.streams.remove(&context);
    });
}

pub(crate) fn request_headers(context: u32, count: usize, end_of_stream: bool) -> Action {
    // SAFETY: `context` is a live HTTP context (callers check).
    enter(context, || unsafe {
        proxy_on_request_headers(context, count, end_of_stream)
    })
}

pub(crate) fn request_body(context: u32, size: usize, end_of_stream: bool) -> Action {
    // SAFETY: `context` is a live HTTP context (callers check).
    enter(context, || unsafe {
        proxy_on_request_body(context, size, end_of_stream)
    })
}

pub(crate) fn request_trailers(context: u32, count: usize) -> Action {
    // SAFETY: `context` is a live HTTP context (callers check).
    enter(context, || unsafe {
        proxy_on_request_trailers(context, count)
    })
}

pub(crate) fn response_headers(context: u32, count: usize, end_of_stream: bool) -> Action {
    // SAFETY: `context` is a live HTTP context (callers check).
    enter(context, || unsafe {
        proxy_on_response_headers(context, count, end_of_stream)
    })
}

pub(crate) fn response_body(context: u32, size: usize, end_of_stream: bool) -> Action {
    // SAFETY: `context` is a live HTTP context (callers check).
    enter(context, || unsafe {
        proxy_on_response_body(context, size, end_of_stream)
    })
}

pub(crate) fn response_trailers(context: u32, count: usize) -> Action {
    // SAFETY: `context` is a live HTTP context (callers check).
    enter(context, || unsafe {
        proxy_on_response_trailers(context, count)
    })
}

pub(crate) fn new_connection(context: u32) -> Action {
    // SAFETY: `context` is a live TCP context (callers check).
    enter(context, || unsafe { proxy_on_new_connection(context) })
}

pub(crate) fn downstream_data(context: u32, size: usize, end_of_stream: bool) -> Action {
    // SAFETY: `context` is a live TCP context (callers check).
    enter(context, || unsafe {
        proxy_on_downstream_data(context, size, end_of_stream)
    })
}

pub(crate) fn upstream_data(context: u32, size: usize, end_of_stream: bool) -> Action {
    // SAFETY: `context` is a live TCP context (callers check).
    enter(context, || unsafe {
        proxy_on_upstream_data(context, size, end_of_stream)
    })
}

pub(crate) fn downstream_close(context: u32, peer: PeerType) {
    // SAFETY: `context` is a live TCP context (callers check).
    enter(context, || unsafe {
        proxy_on_downstream_connection_close(context, peer)
    });
}

pub(crate) fn upstream_close(context: u32, peer: PeerType) {
    // SAFETY: `context` is a live TCP context (callers check).
    enter(context, || unsafe {
        proxy_on_upstream_connection_close(context, peer)
    });
}

/// Delivers an HTTP callout answer to the context that dispatched `token`.
pub(crate) fn http_call_response(
    context: u32,
    token: u32,
    headers: usize,
    body: usize,
    trailers: usize,
) {
    // SAFETY: the SDK registered `token` when the call was dispatched and routes it itself.
    enter(context, || unsafe {
        proxy_on_http_call_response(context, token, headers, body, trailers)
    });
}

/// Delivers a gRPC message for `token`.
pub(crate) fn grpc_receive(context: u32, token: u32, size: usize) {
    // SAFETY: unknown tokens are ignored by the SDK.
    enter(context, || unsafe {
        proxy_on_grpc_receive(context, token, size)
    });
}

/// Delivers the close of gRPC call/stream `token`.
pub(crate) fn grpc_close(context: u32, token: u32, status: u32) {
    // SAFETY: unknown tokens are ignored by the SDK.
    enter(context, || unsafe {
        proxy_on_grpc_close(context, token, status)
    });
}

//! The benchmark's reference point: a filter written with nothing but the `proxy-wasm` SDK
//! that sets one request header (`x-bench-a: 1`). Measured beside our filters it splits the
//! fixed cost of running any proxy-wasm filter in Envoy's V8 (context creation, phase
//! callbacks, the hostcall) from the cost of what our filters and `sdk-ext` add.
//!
//! Not a product filter: it lives outside `filters/`, so `make build` does not ship it;
//! `xtask bench` builds it with the same wasm toolchain and profile as the filters.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(BareRoot));
}}

struct BareRoot;

impl Context for BareRoot {}

impl RootContext for BareRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(BareStream))
    }
}

struct BareStream;

impl Context for BareStream {}

impl HttpContext for BareStream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.set_http_request_header("x-bench-a", Some("1"));
        Action::Continue
    }
}

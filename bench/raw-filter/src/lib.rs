//! The benchmark's floor: the proxy-wasm ABI spoken directly, with no SDK, no allocator and
//! no per-stream state. It exports what an sdk-ext filter exports (see `abi.rs`, including
//! `proxy_on_delete`) and, on each request, makes the one hostcall the `bare` SDK filter makes
//! (`x-bench-a: 1`). What it costs in `make bench` is what Envoy's V8 integration charges any
//! proxy-wasm filter per stream (filter and context creation, the VM entries, one hostcall);
//! `bare` minus `raw` is what the SDK's dispatcher adds.
//!
//! Not a product filter: `xtask bench` builds it, `make build` does not ship it.

mod abi;

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    abi::replace(abi::REQUEST_HEADERS, b"x-bench-a", b"1");
    0
}

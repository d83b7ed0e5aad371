//! Binds the host functions of `super::calls` to the guest, from one table, for both
//! engines:
//!
//! - **native**: every `proxy_*` function the `proxy-wasm` crate (0.2.5) and sdk-ext import,
//!   defined as a `#[no_mangle] extern "C"` function, so a filter linked into the test
//!   binary calls them directly (its pointers are this process's);
//! - **wasm** (feature `wasm-engine`): the same functions defined in a wasmtime `Linker`
//!   under module `env`, over the instance's linear memory.
//!
//! Each entry names the ABI function, the `calls` function that implements it, and its
//! parameters with their ABI kind: `word` (a pointer or a size: `usize` natively, `i32` in
//! wasm32), `flag` (a C `bool` natively, `i32` in wasm), or a plain integer type. Every
//! function answers the ABI's status as `u32`. There is no host logic here. (On a thread
//! running the wasm engine the native functions answer `InternalFailure`: no guest of that
//! thread can call them.)

use super::calls;
use super::memory::NativeMemory;

/// A parameter's type in the native `extern "C"` signature.
macro_rules! native_ty {
    (word) => {
        usize
    };
    (flag) => {
        bool
    };
    ($t:ty) => {
        $t
    };
}

/// A native parameter as `calls` takes it.
macro_rules! native_arg {
    (word, $v:ident) => {
        $v
    };
    (flag, $v:ident) => {
        u32::from($v)
    };
    ($t:ty, $v:ident) => {
        $v
    };
}

/// A parameter's type in the wasm signature.
#[cfg(feature = "wasm-engine")]
macro_rules! wasm_ty {
    (word) => {
        u32
    };
    (flag) => {
        u32
    };
    ($t:ty) => {
        $t
    };
}

/// A wasm parameter as `calls` takes it.
#[cfg(feature = "wasm-engine")]
macro_rules! wasm_arg {
    (word, $v:ident) => {
        usize::try_from($v).unwrap_or(usize::MAX)
    };
    (flag, $v:ident) => {
        $v
    };
    ($t:ty, $v:ident) => {
        $v
    };
}

macro_rules! host_functions {
    ($( fn $name:ident => $op:ident ( $($arg:ident : $kind:tt),* ); )*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: see `calls::", stringify!($op), "`.")]
            ///
            /// # Safety
            /// Every pointer argument must be valid for the access the proxy-wasm ABI
            /// describes for this function (what the guest's declaration promises).
            #[no_mangle]
            #[allow(clippy::too_many_arguments)]
            pub unsafe extern "C" fn $name($($arg: native_ty!($kind)),*) -> u32 {
                if !super::guest::native_guest() {
                    return crate::host::Status::InternalFailure.raw();
                }
                // SAFETY: this function's contract is exactly `assume_valid`'s.
                let mut memory = unsafe { NativeMemory::assume_valid() };
                calls::$op(&mut memory $(, native_arg!($kind, $arg))*).raw()
            }
        )*

        /// Takes the address of every host function, so whichever object file references
        /// this also pulls all of them into the link (linkers that resolve archives in
        /// order, like GNU ld, would otherwise drop them: `proxy-wasm`, which needs them,
        /// links after this crate).
        pub(crate) fn link_all() -> usize {
            let all = [$($name as *const () as usize,)*];
            std::hint::black_box(all)
                .iter()
                .fold(0, |acc, address| acc ^ address)
        }

        /// Defines every host function in `linker` (module `env`) for the wasm engine.
        #[cfg(feature = "wasm-engine")]
        pub(crate) fn define_wasm(
            linker: &mut wasmtime::Linker<super::wasm::Guest>,
        ) -> wasmtime::Result<()> {
            $(
                linker.func_wrap(
                    "env",
                    stringify!($name),
                    |mut caller: wasmtime::Caller<'_, super::wasm::Guest>,
                     $($arg: wasm_ty!($kind)),*|
                     -> wasmtime::Result<u32> {
                        let entered =
                            super::wasm::host_call_enter(&caller, stringify!($name));
                        let mut memory = super::wasm::GuestMemory::new(&mut caller);
                        let status = calls::$op(&mut memory $(, wasm_arg!($kind, $arg))*);
                        let answer = memory.finish(status.raw());
                        super::wasm::host_call_leave(&caller, stringify!($name), entered);
                        answer
                    },
                )?;
            )*
            Ok(())
        }
    };
}

host_functions! {
    fn proxy_log => log(level: u32, message_data: word, message_size: word);
    fn proxy_get_log_level => get_log_level(return_level: word);
    fn proxy_get_current_time_nanoseconds => get_current_time_nanoseconds(return_time: word);
    fn proxy_set_tick_period_milliseconds => set_tick_period_milliseconds(period: u32);
    fn proxy_get_buffer_bytes => get_buffer_bytes(
        buffer_type: u32, start: word, max_size: word, return_data: word, return_size: word);
    fn proxy_set_buffer_bytes => set_buffer_bytes(
        buffer_type: u32, start: word, size: word, data: word, data_size: word);
    fn proxy_get_header_map_pairs => get_header_map_pairs(
        map_type: u32, return_data: word, return_size: word);
    fn proxy_set_header_map_pairs => set_header_map_pairs(map_type: u32, data: word, size: word);
    fn proxy_get_header_map_value => get_header_map_value(
        map_type: u32, key_data: word, key_size: word, return_data: word, return_size: word);
    fn proxy_remove_header_map_value => remove_header_map_value(
        map_type: u32, key_data: word, key_size: word);
    fn proxy_replace_header_map_value => replace_header_map_value(
        map_type: u32, key_data: word, key_size: word, value_data: word, value_size: word);
    fn proxy_add_header_map_value => add_header_map_value(
        map_type: u32, key_data: word, key_size: word, value_data: word, value_size: word);
    fn proxy_get_property => get_property(
        path_data: word, path_size: word, return_data: word, return_size: word);
    fn proxy_set_property => set_property(
        path_data: word, path_size: word, value_data: word, value_size: word);
    fn proxy_get_shared_data => get_shared_data(
        key_data: word, key_size: word, return_data: word, return_size: word, return_cas: word);
    fn proxy_set_shared_data => set_shared_data(
        key_data: word, key_size: word, value_data: word, value_size: word, cas: u32);
    fn proxy_register_shared_queue => register_shared_queue(
        name_data: word, name_size: word, return_id: word);
    fn proxy_resolve_shared_queue => resolve_shared_queue(
        vm_id_data: word, vm_id_size: word, name_data: word, name_size: word, return_id: word);
    fn proxy_dequeue_shared_queue => dequeue_shared_queue(
        queue_id: u32, return_data: word, return_size: word);
    fn proxy_enqueue_shared_queue => enqueue_shared_queue(
        queue_id: u32, value_data: word, value_size: word);
    fn proxy_continue_stream => continue_stream(stream_type: u32);
    fn proxy_close_stream => close_stream(stream_type: u32);
    fn proxy_send_local_response => send_local_response(
        status_code: u32, details_data: word, details_size: word, body_data: word,
        body_size: word, headers_data: word, headers_size: word, grpc_status: i32);
    fn proxy_http_call => http_call(
        upstream_data: word, upstream_size: word, headers_data: word, headers_size: word,
        body_data: word, body_size: word, trailers_data: word, trailers_size: word,
        timeout: u32, return_token: word);
    fn proxy_grpc_call => grpc_call(
        upstream_data: word, upstream_size: word, service_data: word, service_size: word,
        method_data: word, method_size: word, metadata_data: word, metadata_size: word,
        message_data: word, message_size: word, timeout: u32, return_token: word);
    fn proxy_grpc_stream => grpc_stream(
        upstream_data: word, upstream_size: word, service_data: word, service_size: word,
        method_data: word, method_size: word, metadata_data: word, metadata_size: word,
        return_token: word);
    fn proxy_grpc_send => grpc_send(
        token: u32, message_data: word, message_size: word, end_stream: flag);
    fn proxy_grpc_cancel => grpc_cancel(token: u32);
    fn proxy_grpc_close => grpc_close(token: u32);
    fn proxy_get_status => get_status(
        return_code: word, return_message_data: word, return_message_size: word);
    fn proxy_set_effective_context => set_effective_context(context_id: u32);
    fn proxy_call_foreign_function => call_foreign_function(
        name_data: word, name_size: word, arguments_data: word, arguments_size: word,
        return_data: word, return_size: word);
    fn proxy_done => done();
    fn proxy_define_metric => define_metric(
        metric_type: u32, name_data: word, name_size: word, return_id: word);
    fn proxy_get_metric => get_metric(metric_id: u32, return_value: word);
    fn proxy_record_metric => record_metric(metric_id: u32, value: u64);
    fn proxy_increment_metric => increment_metric(metric_id: u32, offset: i64);
}

//! Envoy refuses host calls during `_initialize`; the emulator must too, so the mistake is
//! caught in `cargo test` rather than when Envoy fails to load the module.

static EXPORTS: sdk_ext::exports::Exports = sdk_ext::proxy_wasm_sdk_exports!();

proxy_wasm::main! {{
    // A host call here is the bug this test guards against.
    let _ = sdk_ext::host::log_level();
}}

#[test]
#[should_panic(expected = "host call(s) during _initialize")]
fn host_calls_during_initialize_are_refused() {
    let _emu = sdk_ext::testing::Emulator::native(&EXPORTS);
}

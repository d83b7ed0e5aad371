//! The filter's whole configuration path, as Envoy runs it: `on_vm_start`, then
//! `on_configure` with arbitrary bytes (`Plugin::configure`: `Config::parse`, validation,
//! metrics, anything started at configure time), in the native host emulator. Refusing is
//! fine; panicking is the bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdk_ext::testing::{Emulator, LogLevel};

fuzz_target!(|data: &[u8]| {
    let mut emu = Emulator::native(&opa_policy::EXPORTS);
    emu.set_log_level(LogLevel::Critical);
    let _ = emu.start(data);
});

//! The emulator's wasm engine on small hand-written modules: what Envoy refuses at load is
//! refused, values reach the guest through its own `proxy_on_memory_allocate` (empty ones
//! as a null pointer), and a trap fails the test naming the phase instead of aborting.

// Test helpers: a module that does not assemble is a bug in the test.
#![allow(clippy::unwrap_used)]

use sdk_ext::testing::{Action, Emulator};

/// Writes `wat` as a module file and answers its path.
fn module(name: &str, wat: &str) -> String {
    let bytes = wat::parse_str(wat).unwrap();
    let path = std::env::temp_dir().join(format!(
        "sdk-ext-wasm-engine-{name}-{}.wasm",
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

const PROLOGUE: &str = r#"
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
"#;

#[test]
fn values_reach_the_guest_through_its_allocator_and_empty_is_null() {
    let path = module(
        "values",
        &format!(
            r#"(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  {PROLOGUE}
  (data (i32.const 1024) ":path")
  (data (i32.const 1040) "x-empty")
  (data (i32.const 1056) "empty is null")
  (data (i32.const 1072) "allocated by the guest")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 2048) (i32.const 2052)))
    (drop (call $log (i32.const 2) (i32.load (i32.const 2048)) (i32.load (i32.const 2052))))
    (if (i32.ge_u (i32.load (i32.const 2048)) (i32.const 4096))
      (then (drop (call $log (i32.const 2) (i32.const 1072) (i32.const 22)))))
    (drop (call $get (i32.const 0) (i32.const 1040) (i32.const 7) (i32.const 2048) (i32.const 2052)))
    (if (i32.eqz (i32.load (i32.const 2048)))
      (then (drop (call $log (i32.const 2) (i32.const 1056) (i32.const 13)))))
    (i32.const 1))
)"#
        ),
    );
    let mut emu = Emulator::wasm(&path);
    emu.start("").unwrap();
    let mut s = emu.http();
    let action = s.request_headers(&[(":path", "/hello"), ("x-empty", "")], true);
    assert_eq!(action, Action::Pause);
    assert!(emu.has_log("/hello"), "{:?}", emu.logs());
    assert!(emu.has_log("allocated by the guest"), "{:?}", emu.logs());
    assert!(emu.has_log("empty is null"), "{:?}", emu.logs());
    assert_eq!(emu.memory_bytes(), Some(65_536));
    assert!(emu.engine().starts_with("wasm engine"));
}

#[test]
fn an_import_the_host_lacks_refuses_the_module() {
    let path = module(
        "import",
        &format!(
            r#"(module
  (import "env" "proxy_no_such_call" (func (param i32) (result i32)))
  {PROLOGUE})"#
        ),
    );
    let refusal = Emulator::try_wasm(&path).err().unwrap();
    assert!(
        refusal.contains("missing import: env.proxy_no_such_call"),
        "{refusal}"
    );
    let path = module(
        "wasi",
        &format!(
            r#"(module
  (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))
  {PROLOGUE})"#
        ),
    );
    let refusal = Emulator::try_wasm(&path).err().unwrap();
    assert!(refusal.contains("missing import"), "{refusal}");
}

#[test]
fn a_module_without_an_abi_version_is_refused() {
    let path = module("no-abi", r#"(module (memory (export "memory") 1))"#);
    let refusal = Emulator::try_wasm(&path).err().unwrap();
    assert!(refusal.contains("Proxy-Wasm ABI version"), "{refusal}");
    assert!(Emulator::try_wasm("dist/no-such-module.wasm")
        .err()
        .unwrap()
        .contains("no such module"));
}

#[test]
#[should_panic(expected = "trapped in proxy_on_request_headers (context")]
fn a_trap_fails_the_test_naming_the_phase() {
    let path = module(
        "trap",
        &format!(
            r#"(module {PROLOGUE}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable))"#
        ),
    );
    let mut emu = Emulator::wasm(&path);
    emu.start("").unwrap();
    emu.http().request_headers(&[(":path", "/")], true);
}

#[test]
#[should_panic(expected = "out of bounds memory access")]
fn an_out_of_bounds_access_is_a_trap_too() {
    let path = module(
        "oob",
        &format!(
            r#"(module {PROLOGUE}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.load (i32.const 0x7ffffff0))))"#
        ),
    );
    let mut emu = Emulator::wasm(&path);
    emu.start("").unwrap();
    emu.http().request_headers(&[(":path", "/")], true);
}

#[test]
fn host_calls_during_initialize_are_refused_on_the_wasm_engine_too() {
    let path = module(
        "init",
        &format!(
            r#"(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  {PROLOGUE}
  (func (export "_initialize") (drop (call $log (i32.const 2) (i32.const 0) (i32.const 1)))))"#
        ),
    );
    let refused = std::panic::catch_unwind(|| Emulator::wasm(&path))
        .err()
        .unwrap();
    let message = refused
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("during _initialize"), "{message}");
}

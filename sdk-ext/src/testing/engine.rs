//! One test suite, two engines: [`Module`] names a filter in both builds, and
//! `#[sdk_ext::testing::engines]` runs a test `fn name(engine: Engine)` once on each.

use super::Emulator;
use crate::exports::Exports;

/// A filter module in both builds: the export table `sdk_ext::main!` defines (native
/// engine) and the built `.wasm` (wasm engine), as a test file declares it once:
///
/// ```text
/// static MODULE: Module = Module::new(&my_filter::EXPORTS, "dist/my-filter.wasm");
/// ```
#[derive(Debug)]
pub struct Module {
    exports: &'static Exports,
    wasm: &'static str,
}

impl Module {
    /// `exports`: the crate's `EXPORTS`; `wasm`: the built module's path, relative to the
    /// repository root (found from any directory below it), e.g. `"dist/jwt-auth.wasm"`.
    pub const fn new(exports: &'static Exports, wasm: &'static str) -> Self {
        Module { exports, wasm }
    }

    /// An emulator on the built `.wasm`, or `None` (with a note on stderr) when it is not
    /// built and not required (see [`REQUIRE_WASM_VAR`]): for tests that only make sense on
    /// the wasm engine, such as a run that watches the module's linear memory.
    ///
    /// # Panics
    /// When the module is required but missing, or refused.
    pub fn wasm_emulator(&'static self) -> Option<Emulator> {
        if wasm_skipped(self) {
            return None;
        }
        let engine = Engine {
            kind: EngineKind::Wasm,
            module: self,
        };
        Some(engine.emulator())
    }

    /// The built module's path as given.
    pub fn wasm_path(&self) -> &'static str {
        self.wasm
    }
}

/// Which engine runs the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// The filter linked into the test binary, driven through its export table.
    Native,
    /// The built `.wasm` in wasmtime (feature `wasm-engine`).
    Wasm,
}

/// What a both-engines test receives: the engine and the module. Make emulators with
/// [`emulator`](Self::emulator), as many as the test needs.
#[derive(Debug, Clone, Copy)]
pub struct Engine {
    kind: EngineKind,
    module: &'static Module,
}

/// Set (to anything but `0`) by `make test`: a missing `.wasm` fails the wasm tests instead
/// of skipping them.
pub const REQUIRE_WASM_VAR: &str = "SDK_EXT_REQUIRE_WASM";

impl Engine {
    /// A fresh emulator running the module on this engine (`Emulator::native(exports)` or
    /// `Emulator::wasm(path)`).
    pub fn emulator(self) -> Emulator {
        match self.kind {
            EngineKind::Native => Emulator::native(self.module.exports),
            #[cfg(feature = "wasm-engine")]
            EngineKind::Wasm => Emulator::wasm(self.module.wasm),
            #[cfg(not(feature = "wasm-engine"))]
            #[allow(clippy::panic)]
            EngineKind::Wasm => panic!("the wasm engine needs sdk-ext's `wasm-engine` feature"),
        }
    }

    /// The engine.
    pub fn kind(self) -> EngineKind {
        self.kind
    }

    /// Whether this is the wasm engine (for the few assertions that differ: e.g. Cargo
    /// unifies sdk-ext's features in a test binary, while each `.wasm` has its own).
    pub fn is_wasm(self) -> bool {
        self.kind == EngineKind::Wasm
    }

    /// The module.
    pub fn module(self) -> &'static Module {
        self.module
    }

    /// Runs `test` on `kind` (what `#[engines]` writes). A wasm test whose module is not
    /// built is skipped with a note on stderr, unless [`REQUIRE_WASM_VAR`] is set, or the
    /// crate lacks the `wasm-engine` feature.
    ///
    /// # Panics
    /// When the module is required but missing.
    #[doc(hidden)]
    pub fn __run(kind: EngineKind, module: &'static Module, test: fn(Engine)) {
        if kind == EngineKind::Wasm && wasm_skipped(module) {
            return;
        }
        test(Engine { kind, module });
    }
}

/// Whether the wasm engine cannot run `module` (not built, or no `wasm-engine` feature):
/// a note on stderr, or a panic when [`REQUIRE_WASM_VAR`] is set.
fn wasm_skipped(module: &Module) -> bool {
    if wasm_available(module) {
        return false;
    }
    let required = std::env::var(REQUIRE_WASM_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
    #[allow(clippy::panic)]
    if required {
        panic!(
            "{}: not built, and {REQUIRE_WASM_VAR} is set: run `make build`",
            module.wasm
        );
    }
    eprintln!(
        "skipped on the wasm engine: {} is not built (run `make build`) or sdk-ext's \
         `wasm-engine` feature is off",
        module.wasm
    );
    true
}

#[cfg(feature = "wasm-engine")]
fn wasm_available(module: &Module) -> bool {
    super::wasm::locate(module.wasm).is_some()
}

#[cfg(not(feature = "wasm-engine"))]
fn wasm_available(_: &Module) -> bool {
    false
}

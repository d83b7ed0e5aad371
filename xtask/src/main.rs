//! Build orchestration for the workspace. Run through the Makefile:
//!
//! - `build [NAME...]`: every filter (or the named ones) → `dist/<name>.wasm`, optimised,
//!   and each as an Envoy dynamic module → `dist/lib<name>.so` (`native_build.rs`).
//! - `new-filter NAME [--out DIR]`: copies `filters/template` to `filters/NAME`, renamed (or,
//!   with `--out`, writes it as a standalone crate in DIR; see `standalone.rs`).
//! - `bench`: the side-by-side benchmark (see `bench.rs`).
//! - `package`: every filter → OCI image layouts in two variants (see `package.rs`).
//! - `publish REGISTRY [TAG]`: push them, write the Kubernetes manifests (Istio, Envoy
//!   Gateway, Higress; see `publish.rs`, `manifests.rs`) to `target/manifests/`.
//! - `wasmplugins REGISTRY [TAG]`: only the manifests (default `envoy-configs/`).
//! - `new-filter-check`: `new-filter` in a scratch copy, built and tested.
//! - `test-each`: every filter crate's and sdk-ext's tests, one cargo invocation each
//!   (no feature unification; see `test_each.rs`).

mod bench;
mod manifests;
mod native_build;
mod native_configs;
mod new_filter;
mod package;
mod publish;
mod standalone;
mod test_each;
mod wasm_build;

use std::path::PathBuf;
use std::process::ExitCode;

/// The workspace root (xtask lives one level below it), or `$XTASK_ROOT` when set (how
/// `new-filter-check` runs this binary against a scratch copy of the repository).
pub fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("XTASK_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// `xtask build [NAME...]`: the `.wasm` files and the `.so` files side by side. Each half is a
/// sequence of single-crate cargo invocations (one per filter, so that features never unify
/// across filters) on its own target dir, and each invocation ends in a single-threaded
/// fat-LTO link: run one after the other, a core sat idle for most of a clean build.
fn build(names: &[String]) -> Result<(), String> {
    wasm_build::check_names(names)?;
    std::thread::scope(|s| {
        let native = s.spawn(|| native_build::build(names));
        let wasm = wasm_build::build(names);
        let native = native
            .join()
            .unwrap_or_else(|_| Err("the dynamic-module build thread panicked".into()));
        wasm.and(native)
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "build" => build(rest),
        "native-configs" => native_configs::run(rest),
        "new-filter" => new_filter::run(rest),
        "new-filter-check" => new_filter::check(rest),
        "bench" => bench::run(rest),
        "bench-tcp-client" => bench::tcp_client(rest),
        "guest-cost" => bench::guest_cost(rest),
        "package" => package::run(rest),
        "publish" => publish::run(rest),
        "wasmplugins" => publish::run_wasmplugins(rest),
        "test-each" => test_each::run(rest),
        _ => {
            eprintln!("usage: cargo xtask <build [NAME...] | native-configs [--check] | new-filter NAME [--out DIR] | new-filter-check | bench | guest-cost [--no-build] [--by-export] [--by-segment] [FILTER...] | package | publish REGISTRY [TAG] | wasmplugins REGISTRY [TAG] | test-each>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

//! Builds every filter crate as an Envoy dynamic module: `dist/lib<dir>.so`.
//!
//! The same, unmodified filter crate, compiled for the host with sdk-ext's feature
//! `dynamic-module` and `--cfg sdk_ext_dynamic_module` (which makes `sdk_ext::main!` write
//! the `envoy_dynamic_module_on_*` hooks), as a `cdylib`, with the workspace profile
//! `native` (release, opt-level 3, panics unwind to sdk-ext's `catch_unwind` at every hook).
//! Envoy finds `lib<name>.so` for `dynamic_module_config.name: <name>` in
//! `$ENVOY_DYNAMIC_MODULES_SEARCH_PATH` (the configs point it at `dist/`).

use crate::repo_root;
use crate::wasm_build::filter_crates;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// The cargo profile of the `.so` files (root `Cargo.toml`).
pub const PROFILE: &str = "native";

/// Builds `package` as a dynamic module; answers the built `.so`.
pub fn compile(package: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "rustc",
            "-q",
            "-p",
            package,
            "--lib",
            "--crate-type",
            "cdylib",
        ])
        .args(["--profile", PROFILE, "--features", "sdk-ext/dynamic-module"])
        .args(["--", "--cfg", "sdk_ext_dynamic_module"])
        // Thread-locals through TLS descriptors (`-mtls-dialect=gnu2`): in a `.so` Envoy
        // loads with dlopen, every thread-local access (the adapter's current context, the
        // allocator's per-thread lists: ~25 a request) was a `__tls_get_addr` call; with a
        // descriptor, glibc puts the module's small TLS block (< 256 B) in static TLS and the
        // access is a two-instruction resolver. An LLVM option: a toolchain whose LLVM drops
        // it fails this build loudly, never silently.
        .args(["-C", "llvm-args=-enable-tlsdesc"])
        .status()
        .map_err(|e| format!("running cargo rustc for {package}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo rustc -p {package} (dynamic module) failed: {status}"
        ));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    Ok(target
        .join(PROFILE)
        .join(format!("lib{}.so", package.replace('-', "_"))))
}

/// `xtask build` (second half): every filter (or the named ones) → `dist/lib<dir>.so`.
pub fn build(names: &[String]) -> Result<(), String> {
    let mut crates = filter_crates()?;
    if !names.is_empty() {
        crates.retain(|c| names.contains(&c.dir));
    }
    let dist = repo_root().join("dist");
    fs::create_dir_all(&dist).map_err(|e| format!("creating {}: {e}", dist.display()))?;
    for c in &crates {
        // One invocation per filter, as for the .wasm: no feature unification across filters.
        let built = compile(&c.package)?;
        let dest = dist.join(format!("lib{}.so", c.dir));
        // Copy to a new file and rename: a running Envoy may have the old one mapped.
        let tmp = dest.with_extension("so.tmp");
        fs::copy(&built, &tmp).map_err(|e| format!("copying {}: {e}", built.display()))?;
        fs::rename(&tmp, &dest).map_err(|e| format!("rename to {}: {e}", dest.display()))?;
        let size = fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
        println!(
            "build: dist/lib{}.so  {:>7.1} KB  (Envoy dynamic module)",
            c.dir,
            size as f64 / 1024.0
        );
    }
    Ok(())
}

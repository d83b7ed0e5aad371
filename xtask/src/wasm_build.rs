//! Builds every filter crate to `dist/<dir>.wasm`.
//!
//! Toolchain: an installed rustup `wasm32-wasip1` target is used when present. Otherwise the
//! Debian fallback verified in ENVIRONMENT.md: Debian's rustc + its std sources build std
//! for the target with `-Zbuild-std` (packages installed by `scripts/setup.sh`), in its own
//! target dir so the two compilers never invalidate each other's artifacts.
//! Then `wasm-opt` with exactly the wasm features Rust emits, skipped when the output is
//! already newer than its input (a second build with nothing changed is quick).

use crate::repo_root;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip1";

/// wasm-opt's optimisation flags: for size (`-Oz`), repeated until a pass changes nothing
/// (`--converge`: 0.3-1.3 KB per filter, a few seconds of build time).
const WASM_OPT_FLAGS: &[&str] = &["-Oz", "--converge"];
/// Modules larger than this before wasm-opt get one `-Oz` pass, without `--converge`: on
/// opa-policy (1.7 MB) converging saved 1.1 KB (0.08 %) for 37 s more CPU (42 s -> 78 s user,
/// 2 cores), and jwt-auth (0.6 MB) is alike; neither has a size target.
const CONVERGE_BELOW: u64 = 512 * 1024;
const WASM_OPT_FLAGS_LARGE: &[&str] = &["-Oz"];

/// Passed with either set: the module's low 1 KB is never reached through an address that
/// wraps past 2^32, so wasm-opt may fold `ptr + C` (C < 1024) into the load or store offset.
/// Rust never forms such wrapped pointers, and with wasm-ld's stack-first layout the low
/// addresses are the stack's far end, reached without wrapping. -0.7 KB on every filter.
const WASM_OPT_ASSUME: &[&str] = &["--low-memory-unused"];

/// The features rustc (1.87+) enables by default for wasm32; wasm-opt must neither
/// reject them nor introduce others the host may not support.
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// A filter crate: its directory name (the `.wasm` name) and its package name.
pub struct FilterCrate {
    pub dir: String,
    pub package: String,
    pub manifest: PathBuf,
}

/// Every crate under `filters/`, sorted by directory name.
pub fn filter_crates() -> Result<Vec<FilterCrate>, String> {
    let mut out = Vec::new();
    let dir = repo_root().join("filters");
    let entries = fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        let package = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("name = ")
                    .map(|v| v.trim_matches('"').to_string())
            })
            .ok_or_else(|| format!("{}: no package name", manifest.display()))?;
        out.push(FilterCrate {
            dir: entry.file_name().to_string_lossy().into_owned(),
            package,
            manifest,
        });
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(out)
}

fn rustup_has_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Compiles the given packages for wasm; returns the directory holding the `.wasm` files.
fn compile(packages: &[&str]) -> Result<PathBuf, String> {
    let root = repo_root();
    let mut cmd;
    let target_dir;
    if rustup_has_target() {
        target_dir = root.join("target");
        cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--release", "--target", TARGET]);
    } else {
        // Debian fallback (scripts/setup.sh installs rustc-web, rust-web-src, lld, wasi-libc).
        if !Path::new("/usr/bin/cargo").exists() || !Path::new("/usr/bin/rust-lld").exists() {
            return Err(
                "no wasm32-wasip1 toolchain: run `make setup` (installs the Debian \
                        fallback) or `rustup target add wasm32-wasip1`"
                    .into(),
            );
        }
        println!(
            "build: rustup has no {TARGET} target; using the Debian toolchain with -Zbuild-std"
        );
        target_dir = root.join("target-wasm");
        cmd = Command::new("/usr/bin/cargo");
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("/usr/bin:{path}"))
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTC", "/usr/bin/rustc")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            // immediate-abort: a panic (a bug: filter code denies them) traps without the
            // formatting machinery, which is a third of a small filter's size.
            // location-detail=none: no file/line/column strings for `#[track_caller]`
            // sites (RUSTC_BOOTSTRAP above enables -Z flags on this toolchain).
            .env(
                "RUSTFLAGS",
                "-C link-self-contained=no -L /usr/lib/wasm32-wasi -Zunstable-options \
                 -Cpanic=immediate-abort -Zlocation-detail=none",
            )
            // optimize_for_size: std's own size-over-speed choices (smaller sort, fmt, ...).
            .args([
                "build",
                "--release",
                "--target",
                TARGET,
                "-Zbuild-std=std,panic_abort",
                "-Zbuild-std-features=optimize_for_size",
            ]);
    }
    cmd.current_dir(&root).arg("--target-dir").arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    run(&mut cmd)?;
    Ok(target_dir.join(TARGET).join("release"))
}

fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((m(a), m(b)), (Some(x), Some(y)) if x >= y)
}

/// Runs `wasm-opt` on a built module. Skipped when `output` is newer than both the module
/// and the crate manifest. Nothing is trimmed: an sdk-ext module exports exactly the phases
/// its code implements (`#[sdk_ext::filter]`), so there is nothing to remove.
fn optimise(input: &Path, manifest: &Path, output: &Path) -> Result<(), String> {
    if output.exists() && newer(output, input) && newer(output, manifest) {
        return Ok(());
    }
    let has_wasm_opt = Command::new("wasm-opt").arg("--version").output().is_ok();
    if !has_wasm_opt {
        println!("build: wasm-opt not found (run `make setup`); copying unoptimised");
        return fs::copy(input, output)
            .map(|_| ())
            .map_err(|e| format!("copy to {}: {e}", output.display()));
    }
    let tmp = output.with_extension("wasm.tmp");
    let size = fs::metadata(input)
        .map(|m| m.len())
        .map_err(|e| format!("reading {}: {e}", input.display()))?;
    let flags = if size < CONVERGE_BELOW {
        WASM_OPT_FLAGS
    } else {
        WASM_OPT_FLAGS_LARGE
    };
    run(Command::new("wasm-opt")
        .args(flags)
        .args(WASM_OPT_ASSUME)
        .args(WASM_FEATURES)
        .arg("--strip-debug")
        .arg("--strip-producers")
        .arg(input)
        .arg("-o")
        .arg(&tmp))?;
    fs::rename(&tmp, output).map_err(|e| format!("rename to {}: {e}", output.display()))
}

/// Builds one workspace package that is not a product filter (e.g. the benchmark's
/// `bare-filter`) with exactly the filters' toolchain, profile and `wasm-opt` step, to `dest`.
pub fn build_module(package: &str, manifest: &Path, dest: &Path) -> Result<u64, String> {
    let out_dir = compile(&[package])?;
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let built = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
    optimise(&built, manifest, dest)?;
    Ok(fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
}

/// Fails naming the first of `names` that is not a directory under `filters/`.
pub fn check_names(names: &[String]) -> Result<(), String> {
    let crates = filter_crates()?;
    match names.iter().find(|n| !crates.iter().any(|c| &c.dir == *n)) {
        Some(n) => Err(format!("no filter named {n:?} under filters/")),
        None => Ok(()),
    }
}

/// `xtask build [NAME...]`.
pub fn build(names: &[String]) -> Result<(), String> {
    check_names(names)?;
    let mut crates = filter_crates()?;
    if !names.is_empty() {
        crates.retain(|c| names.contains(&c.dir));
    }
    let dist = repo_root().join("dist");
    fs::create_dir_all(&dist).map_err(|e| format!("creating {}: {e}", dist.display()))?;
    for c in &crates {
        // One cargo invocation per filter: built together, cargo would unify the features of
        // shared dependencies, and a filter that leaves out an sdk-ext feature (`regex`) would
        // carry it anyway because another filter enables it.
        let out_dir = compile(&[c.package.as_str()])?;
        let built = out_dir.join(format!("{}.wasm", c.package.replace('-', "_")));
        let dest = dist.join(format!("{}.wasm", c.dir));
        optimise(&built, &c.manifest, &dest)?;
        let raw = fs::metadata(&built).map(|m| m.len()).unwrap_or(0);
        let size = fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
        println!(
            "build: dist/{}.wasm  {:>7.1} KB  (before wasm-opt {:.1} KB)",
            c.dir,
            size as f64 / 1024.0,
            raw as f64 / 1024.0
        );
    }
    Ok(())
}

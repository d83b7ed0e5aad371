//! `make new-filter NAME=x OUT=dir`: the template as a standalone crate in a repository of
//! one's own. Generated into a temp dir outside this workspace, it must inherit nothing from
//! a workspace, pass its own tests (`cargo test --all-features`: the emulator tests and the
//! hub-manifest / schema check), build to `.wasm` with its `build-wasm.sh`, and that module
//! must load and act in a real Envoy.
//!
//! Build artefacts go to this workspace's target directories (`CARGO_TARGET_DIR`), so sdk-ext's
//! dependencies and the wasm std are not rebuilt for every run.

use integration::{repo_root, EchoUpstream, EnvoyConfig, WasmFilter};
use std::fs;
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

fn rustup_has_wasm_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "wasm32-wasip1")
        })
        .unwrap_or(false)
}

#[test]
fn a_standalone_filter_builds_tests_and_runs_in_envoy() {
    let base = std::env::temp_dir().join(format!("standalone-filter-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let out = base.join("my-filter");
    assert!(
        !out.starts_with(repo_root()),
        "the test crate must be outside the workspace"
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(&cargo)
            .args([
                "run",
                "-q",
                "-p",
                "xtask",
                "--",
                "new-filter",
                "acme-deny",
                "--out",
            ])
            .arg(&out)
            .current_dir(repo_root()),
        "xtask new-filter acme-deny --out",
    );

    // Nothing inherited from a workspace; its own root.
    let manifest = fs::read_to_string(out.join("Cargo.toml")).unwrap();
    assert!(!manifest.contains("workspace = true"), "{manifest}");
    assert!(!manifest.contains(".workspace"), "{manifest}");
    assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
    assert!(manifest.contains("name = \"acme-deny\""), "{manifest}");
    assert!(manifest.contains("[lints.clippy]"), "{manifest}");
    assert!(out.join("hub-manifest/manifest.json").is_file());
    // The name is the new one everywhere.
    let lib = fs::read_to_string(out.join("src/lib.rs")).unwrap();
    assert!(lib.contains("NAME: &str = \"acme-deny\""), "{lib}");
    let filter = fs::read_to_string(out.join("src/filter.rs")).unwrap();
    assert!(filter.contains("\"acme_deny.denied\""), "{filter}");

    // Its wasm build.
    let target_dir = if rustup_has_wasm_target() {
        repo_root().join("target")
    } else {
        repo_root().join("target-wasm")
    };
    run(
        Command::new("bash")
            .arg(out.join("build-wasm.sh"))
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(&out),
        "build-wasm.sh (standalone)",
    );
    // Its tests, after its wasm build: the emulator suite runs natively and on that module
    // (SDK_EXT_REQUIRE_WASM from `make test` makes a missing module a failure).
    let tests = run(
        Command::new(&cargo)
            .args(["test", "--all-features"])
            .env("CARGO_TARGET_DIR", repo_root().join("target"))
            .current_dir(&out),
        "cargo test --all-features (standalone)",
    );
    assert!(tests.contains("test result: ok"), "{tests}");
    assert!(!tests.contains("test result: FAILED"), "{tests}");
    assert!(
        tests.contains("::wasm"),
        "the suite must run on the wasm engine too:\n{tests}"
    );

    let wasm = out.join("dist/acme-deny.wasm");
    let bytes = fs::read(&wasm).unwrap();
    assert!(bytes.starts_with(b"\0asm"));

    // The module in Envoy, with its own example config.
    let config = fs::read_to_string(out.join("examples/deny-admin.json")).unwrap();
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(WasmFilter::from_file("acme-deny", &wasm, config).root_id("acme-deny"))
        .start()
        .unwrap();
    assert_eq!(envoy.get("/admin/x", &[]).status, 403);
    assert_eq!(envoy.get("/public", &[]).status, 200);
    assert_eq!(
        envoy.wait_for_stat(
            "wasmcustom.acme_deny.denied",
            1,
            std::time::Duration::from_secs(5)
        ),
        Some(1)
    );
    drop(envoy);
    let _ = fs::remove_dir_all(&base);
}

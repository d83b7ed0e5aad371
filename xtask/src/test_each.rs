//! `test-each` (part of `make test`): every filter crate's tests, and sdk-ext's, each in a
//! cargo invocation of its own, so that Cargo's feature unification cannot hide a failure.
//!
//! `cargo test --workspace` builds sdk-ext once with the union of the features every member
//! asks for; a filter that leaves out `regex` is then tested with it, and a test that only
//! passes because another crate turned a feature on passes there and fails for anyone who runs
//! `cargo test -p <filter>`. Here each crate is built with its own features only
//! (`--all-features` of a single package enables that package's features, nothing of its
//! neighbours'); unit, integration and doc tests all run. sdk-ext runs with its test features
//! (`testing`, `schema-validate`, `wasm-engine`: with all three its heavy test dependencies
//! resolve as in the workspace, see scripts/test-dep-variants.py) and, in `make test`, also
//! without its default features.

use crate::wasm_build::filter_crates;
use std::process::Command;
use std::time::Instant;

/// Each filter's 100 000-request hostile run (tests/hostile.rs) is compiled here but not run
/// again: it drives the built `dist/<filter>.wasm`, which `xtask build` compiles filter by
/// filter (never unified), through the same emulator, so feature unification in the test
/// build cannot change its outcome, and `cargo test --workspace` has run it already. It was a
/// few minutes of `make test`.
/// The prefix of the two tests `sdk_ext::hostile_tests!` writes (`--skip` takes substrings).
const HOSTILE_RUN: &str = "hostile_traffic_never_traps_and_memory_stays_bounded";

/// The cargo test invocations: (label, arguments after `cargo test`).
fn plan() -> Result<Vec<(String, Vec<String>)>, String> {
    let mut runs = Vec::new();
    for c in filter_crates()? {
        runs.push((
            c.package.clone(),
            [
                "-p",
                &c.package,
                "--all-features",
                "--",
                "--skip",
                HOSTILE_RUN,
            ]
            .map(String::from)
            .to_vec(),
        ));
    }
    runs.push((
        "sdk-ext (test features)".into(),
        [
            "-p",
            "sdk-ext",
            "--features",
            "testing,schema-validate,wasm-engine",
        ]
        .map(String::from)
        .to_vec(),
    ));
    Ok(runs)
}

/// `xtask test-each`: runs every invocation (all of them, even after a failure), then fails
/// naming the crates that failed.
pub fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: test-each (no arguments)".into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut failed = Vec::new();
    let all = Instant::now();
    for (label, args) in plan()? {
        println!("test-each: cargo test {}", args.join(" "));
        let started = Instant::now();
        let status = Command::new(&cargo)
            .current_dir(crate::repo_root())
            .args(["test", "--no-fail-fast"])
            .args(&args)
            .status()
            .map_err(|e| format!("running {cargo}: {e}"))?;
        println!(
            "test-each: {label}: {} in {:.0} s",
            if status.success() { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if !status.success() {
            failed.push(label);
        }
    }
    println!("test-each: {:.0} s in all", all.elapsed().as_secs_f64());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tests failed when run crate by crate (features not unified with the rest of the \
             workspace): {}",
            failed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_filter_and_sdk_ext_is_tested_alone() {
        let plan = super::plan().unwrap();
        let labels: Vec<&str> = plan.iter().map(|(l, _)| l.as_str()).collect();
        for krate in ["template", "header-rules", "jwt-auth"] {
            assert!(labels.contains(&krate), "{labels:?}");
        }
        assert!(plan
            .iter()
            .all(|(_, a)| a.first().map(String::as_str) == Some("-p")));
        assert!(labels.iter().any(|l| l.starts_with("sdk-ext")));
    }
}

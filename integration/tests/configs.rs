//! Every checked-in Envoy config under `envoy-configs/` must pass `envoy --mode validate`
//! (cwd = repo root, as in the docs). Validate mode loads each wasm module and runs its
//! `on_configure`, so this needs `make build` first, and it catches plugin configs the
//! filter itself refuses, not only bootstrap schema errors.
//! Skipped: `docker-compose.yaml` (not an Envoy config), the Kubernetes manifests
//! (`istio/`, `envoy-gateway/`, `higress/`; see manifests.rs) and `snippets/` (blocks every
//! config carries a copy of, checked below).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use integration::{referenced_wasm, repo_root, validate_config};

/// Directories under `envoy-configs/` that hold no Envoy bootstrap.
const NOT_BOOTSTRAPS: &[&str] = &["istio", "envoy-gateway", "higress", "snippets"];

fn collect(dir: &Path, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if !skip.contains(&path) {
                collect(&path, skip, out);
            }
        } else if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().is_some_and(|n| n != "docker-compose.yaml")
        {
            out.push(path);
        }
    }
}

/// The Envoy configs to check. Panics when there are none: a validation that checks
/// nothing must not pass.
fn envoy_configs() -> Vec<PathBuf> {
    let root = repo_root().join("envoy-configs");
    let mut configs = Vec::new();
    let skip: Vec<PathBuf> = NOT_BOOTSTRAPS.iter().map(|d| root.join(d)).collect();
    collect(&root, &skip, &mut configs);
    configs.sort();
    assert!(
        !configs.is_empty(),
        "no Envoy configs (*.yaml) found under {}",
        root.display()
    );
    configs
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_envoy_config_passes_envoy_validate() {
    let configs = envoy_configs();
    for config in &configs {
        let yaml = std::fs::read_to_string(config).unwrap();
        for wasm in referenced_wasm(&yaml) {
            assert!(
                repo_root().join(&wasm).is_file(),
                "{} references {}, which does not exist: run `make build` first",
                relative(config),
                wasm.display()
            );
        }
    }

    // Two at a time (2-core machines); each run compiles its wasm modules in V8.
    let queue = Mutex::new(configs.iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(config) = queue.lock().unwrap().next() else {
                    break;
                };
                let (ok, output) = validate_config(config);
                if !ok {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("===== {} =====\n{output}", relative(config)));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} configs failed `envoy --mode validate`:\n{}",
        failures.len(),
        configs.len(),
        failures.join("\n")
    );
}

/// Design rule: every wasm filter in a config says how it fails (`failure_policy`), and
/// none uses the deprecated `fail_open` bool.
#[test]
fn every_wasm_filter_sets_failure_policy_explicitly() {
    let mut problems = Vec::new();
    for config in envoy_configs() {
        let yaml = std::fs::read_to_string(&config).unwrap();
        let plugins = yaml.matches("vm_config:").count();
        let policies = yaml.matches("failure_policy:").count();
        if policies < plugins {
            problems.push(format!(
                "{}: {plugins} wasm plugin(s) but {policies} failure_policy",
                relative(&config)
            ));
        }
        if yaml.contains("fail_open:") {
            problems.push(format!(
                "{}: uses the deprecated `fail_open`; use `failure_policy: FAIL_OPEN|FAIL_CLOSED`",
                relative(&config)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

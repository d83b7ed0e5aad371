//! One name per filter, everywhere: the directory `filters/<name>/` is also the crate, the
//! root id (Envoy `root_id`, Istio / Higress `pluginName`, Envoy Gateway `rootID`), the
//! `.wasm` (`dist/<name>.wasm`), the image (`<registry>/<name>:<tag>`), the hub manifest
//! (`hub-manifest/<name>/`) and, with `-` as `_`, the metric prefix (`<name_>.*`).
//!
//! Log lines: Envoy 1.40 prefixes a wasm log line with the plugin's identity itself, as
//! `wasm log <root_id> [<vm_id>]: ` for the root context (configuration, timers, callouts)
//! and `wasm log <plugin name> <root_id> [<vm_id>]: ` for a stream (checked below). So the
//! filters' messages carry no name, and the shipped configs set no `vm_id` (a third copy);
//! what remains, `wasm log template template: denied` on a stream, is Envoy's own format with
//! name = root id.

use integration::{free_port, repo_root, Envoy};
use std::fs;
use std::path::Path;
use std::time::Duration;

fn filters() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(repo_root().join("filters"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The string literals in `text` that follow `marker` (`Counter::new("` → the literal).
fn literals_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            let rest = rest.trim_start_matches("&format!(");
            let rest = rest.strip_prefix('"')?;
            rest.split('"').next()
        })
        .collect()
}

fn rust_sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "rs") {
            out.push((p.display().to_string(), read(&p)));
        }
    }
    out
}

#[test]
fn every_filter_has_one_name_everywhere() {
    let mut problems = Vec::new();
    for name in filters() {
        let snake = name.replace('-', "_");
        let dir = repo_root().join("filters").join(&name);
        let cargo = read(&dir.join("Cargo.toml"));
        if !cargo.contains(&format!("\nname = \"{name}\"\n")) {
            problems.push(format!(
                "filters/{name}/Cargo.toml: the crate is not named {name}"
            ));
        }
        let lib = read(&dir.join("src/lib.rs"));
        if !lib.contains(&format!("NAME: &str = \"{name}\"")) {
            problems.push(format!(
                "filters/{name}/src/lib.rs: NAME (the root id) is not {name:?}"
            ));
        }
        let hub: serde_json::Value = serde_json::from_str(&read(
            &repo_root()
                .join("hub-manifest")
                .join(&name)
                .join("manifest.json"),
        ))
        .unwrap();
        for key in ["name", "rootId"] {
            if hub[key] != name.as_str() {
                problems.push(format!(
                    "hub-manifest/{name}/manifest.json: {key} is {}",
                    hub[key]
                ));
            }
        }
        for (file, text) in rust_sources(&dir.join("src")) {
            for marker in ["Counter::new(", "Gauge::new(", "Histogram::new("] {
                for metric in literals_after(&text, marker) {
                    if !metric.starts_with(&format!("{snake}.")) {
                        problems.push(format!("{file}: metric {metric:?} is not under {snake}."));
                    }
                }
            }
            for level in ["trace", "debug", "info", "warn", "error"] {
                for msg in literals_after(&text, &format!("log::{level}!(")) {
                    if msg.starts_with("{NAME}") || msg.starts_with(&format!("{name}:")) {
                        problems.push(format!(
                            "{file}: log line {msg:?} repeats the name Envoy already prints"
                        ));
                    }
                }
            }
        }
    }
    // Every wasm filter of every shipped Envoy config: name = root id = the module's name,
    // and no vm_id (Envoy would print it after the root id on every log line).
    for e in fs::read_dir(repo_root().join("envoy-configs"))
        .unwrap()
        .flatten()
    {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = read(&path);
        if text.contains("vm_id:") {
            problems.push(format!("{}: sets a vm_id", path.display()));
        }
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(file) = l.strip_prefix("filename: dist/") else {
                continue;
            };
            let module = file.trim_end_matches(".wasm");
            let before = &lines[i.saturating_sub(16)..i];
            for key in ["name", "root_id"] {
                let want = format!("{key}: {module}");
                if !before.iter().any(|b| *b == want) {
                    problems.push(format!(
                        "{}: dist/{module}.wasm is configured without `{want}`",
                        path.display()
                    ));
                }
            }
        }
    }
    // The Kubernetes manifests name the plugin by its root id.
    for (dir, key) in [
        ("istio", "pluginName"),
        ("higress", "pluginName"),
        ("envoy-gateway", "rootID"),
    ] {
        for name in filters() {
            // The L4 WasmPlugin (`<name>-tcp.yaml`, where the filter has one) too.
            let l4 = repo_root()
                .join("envoy-configs")
                .join(dir)
                .join(format!("{name}-tcp.yaml"));
            let mut files = vec![format!("{name}.yaml")];
            if l4.is_file() {
                files.push(format!("{name}-tcp.yaml"));
            }
            for file in files {
                let text = read(&repo_root().join("envoy-configs").join(dir).join(&file));
                if !text.contains(&format!("{key}: \"{name}\"")) {
                    problems.push(format!("envoy-configs/{dir}/{file}: {key} is not {name:?}"));
                }
                if !text.contains(&format!("/{name}:")) {
                    problems.push(format!(
                        "envoy-configs/{dir}/{file}: the image is not {name}"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The `wasm log` lines of a demo Envoy at wasm debug level after a denied request, as
/// `(Envoy's prefix names, message)`.
fn demo_wasm_log_lines() -> Vec<(Vec<String>, String)> {
    let yaml = fs::read_to_string(repo_root().join("envoy-configs/demo.yaml")).unwrap();
    let yaml = integration::rewrite_ports(&yaml, &[(10000, 0), (9901, 0), (8080, free_port())])
        .replace("address: 0.0.0.0", "address: 127.0.0.1");
    let envoy = Envoy::start_with_args(&yaml, &["--component-log-level", "wasm:debug"]).unwrap();
    assert_eq!(envoy.get("/admin/x", &[]).status, 403);
    assert!(
        envoy.wait_for_log("wasm log template template: denied", Duration::from_secs(5)),
        "{}",
        envoy.log()
    );
    envoy
        .log()
        .lines()
        .filter_map(|l| l.split_once("wasm log ").map(|(_, rest)| rest.to_string()))
        .map(|l| {
            let (prefix, message) = l.split_once(": ").unwrap_or((&l, ""));
            (
                prefix.split_whitespace().map(str::to_string).collect(),
                message.to_string(),
            )
        })
        .collect()
}

/// Lines sdk-ext's dispatcher (`sdk-ext/src/exports.rs`) writes itself, still as
/// `<name>: configured` / `<name>: invalid config at ...` / `<name>: cannot ...`.
fn from_sdk_dispatch(names: &[String], message: &str) -> bool {
    names.first().is_some_and(|n| {
        ["configured", "invalid config", "cannot "]
            .iter()
            .any(|m| message.starts_with(&format!("{n}: {m}")))
    })
}

/// What Envoy 1.40 actually prints for the demo's filters: `wasm log <root_id>: ` (root
/// context) or `wasm log <name> <root_id>: ` (stream), both the filter's one name, no vm_id;
/// and the filters' own messages do not repeat it.
#[test]
fn envoy_log_lines_name_the_plugin_once() {
    let lines = demo_wasm_log_lines();
    assert!(
        lines.iter().any(|(n, m)| n.len() == 2 && m == "denied"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|(n, _)| n.len() == 1), "{lines:?}");
    for (names, message) in &lines {
        assert!(
            (1..=2).contains(&names.len()) && names.iter().all(|n| *n == names[0]),
            "Envoy's prefix is not the plugin's one name (a vm_id?): {names:?}: {message}"
        );
        if from_sdk_dispatch(names, message) {
            continue; // see the ignored test below
        }
        assert!(
            !message.starts_with(&format!("{}:", names[0])),
            "the message repeats the name: {names:?}: {message}"
        );
    }
}

/// The same for sdk-ext's own dispatcher lines (`configured`, `invalid config at ...`): Envoy
/// names the plugin, sdk-ext does not repeat it.
#[test]
fn sdk_dispatch_log_lines_name_the_plugin_once() {
    for (names, message) in demo_wasm_log_lines() {
        assert!(
            !message.starts_with(&format!("{}:", names[0])),
            "the message repeats the name: {names:?}: {message}"
        );
    }
}

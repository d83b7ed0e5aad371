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

fn read_yaml(path: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = yaml_rust2::YamlLoader::load_from_str(&s)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    yaml_to_json(&docs[0])
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> serde_json::Value {
    use serde_json::{json, Value};
    use yaml_rust2::Yaml;
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().expect("string key").to_string(), yaml_to_json(v)))
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::String(s) => json!(s),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
        Yaml::Boolean(b) => json!(b),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML node {other:?}"),
    }
}

/// Every `HttpConnectionManager` in a bootstrap (`typed_config` of an HCM network filter).
fn connection_managers(bootstrap: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for l in bootstrap["static_resources"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for chain in l["filter_chains"].as_array().into_iter().flatten() {
            for f in chain["filters"].as_array().into_iter().flatten() {
                if f["name"] == "envoy.filters.network.http_connection_manager" {
                    out.push(f["typed_config"].clone());
                }
            }
        }
    }
    out
}

/// Envoy's edge guidance ("Configuring Envoy as an edge proxy"): a path has one spelling
/// before any filter or route looks at it. Every HTTP connection manager of every shipped
/// config says so.
#[test]
fn every_http_connection_manager_normalises_paths() {
    use serde_json::json;
    let mut problems = Vec::new();
    for config in envoy_configs() {
        let b = read_yaml(&config);
        let hcms = connection_managers(&b);
        // An L4 config (tcp_proxy, no HTTP) has no paths to normalise.
        let l4 = serde_json::to_string(&b)
            .unwrap_or_default()
            .contains("tcp_proxy");
        if hcms.is_empty() && !l4 {
            problems.push(format!("{}: no HTTP connection manager", relative(&config)));
        }
        for h in hcms {
            for (key, want) in [
                ("normalize_path", json!(true)),
                ("merge_slashes", json!(true)),
                (
                    "path_with_escaped_slashes_action",
                    json!("UNESCAPE_AND_REDIRECT"),
                ),
                ("use_remote_address", json!(true)),
            ] {
                if h[key] != want {
                    problems.push(format!(
                        "{} ({}): {key} is {}, expected {want}",
                        relative(&config),
                        h["stat_prefix"],
                        h[key]
                    ));
                }
            }
            if h["common_http_protocol_options"]["headers_with_underscores_action"]
                != "REJECT_REQUEST"
            {
                problems.push(format!(
                    "{} ({}): common_http_protocol_options.headers_with_underscores_action is not REJECT_REQUEST",
                    relative(&config),
                    h["stat_prefix"]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Paths that spell a guarded prefix another way, as a client may send them. With the
/// shipped configs each must be refused (or redirected to its one spelling), never reach the
/// upstream.
const BYPASSES: &[&str] = &[
    "/{p}", "//{p}", "/.{p}", "/x/..{p}", "///{p}/x", "/%2e{p}", "/%2F{p}", "/%2f{p}",
];

/// Each path, spelled every way in [`BYPASSES`] and with the first letter after `/`
/// percent-encoded (`/%61dmin`).
fn spellings(guarded: &str) -> Vec<String> {
    let bare = guarded.trim_start_matches('/');
    let mut out: Vec<String> = BYPASSES.iter().map(|b| b.replace("{p}", guarded)).collect();
    if let Some(first) = bare.bytes().next() {
        out.push(format!("/%{first:02x}{}", &bare[1..]));
        out.push(format!("/%{first:02X}{}/x", &bare[1..]));
    }
    out.push(format!("{guarded}/./x"));
    out.push(format!("{guarded}/y/../x"));
    out
}

fn check_bypasses(
    envoy: &integration::Envoy,
    guarded: &str,
    denied: u16,
    problems: &mut Vec<String>,
) {
    for path in spellings(guarded) {
        let r = envoy.get(&path, &[("host", b"localhost")]);
        let ok = r.status == denied
            || (r.status == 307
                && r.header("location")
                    .is_some_and(|l| !l.contains('%') && l.contains(guarded)));
        if !ok {
            problems.push(format!(
                "GET {path}: {} (expected {denied}, or a redirect to the unescaped path), body {}",
                r.status,
                r.text().chars().take(120).collect::<String>()
            ));
        }
    }
}

/// The bypasses of a path rule that normalisation closes, against a real Envoy with the
/// shipped configs: the template's `/admin` deny (also `/ADMIN`: its example matches case
/// insensitively, which Envoy does not normalise) and jwt-auth's `/secure` and `/api`.
#[test]
fn shipped_configs_leave_no_path_spelling_around_a_rule() {
    use integration::{free_port, EchoUpstream, Envoy};
    let mut problems = Vec::new();

    let echo_port = free_port();
    let demo = Envoy::start_file("envoy-configs/demo.yaml", &[(8080, echo_port)]).unwrap();
    check_bypasses(&demo, "/admin", 403, &mut problems);
    check_bypasses(&demo, "/secure", 401, &mut problems);
    for path in ["/ADMIN", "/Admin/users", "/%41DMIN"] {
        let r = demo.get(path, &[]);
        if r.status != 403 {
            problems.push(format!("demo GET {path}: {} (expected 403)", r.status));
        }
    }
    // And the normalised path is what the upstream sees.
    let r = demo.get("//api/./hello", &[("host", b"localhost")]);
    if r.status != 200 || !r.text().contains("x-original-path: /api/hello") {
        problems.push(format!("demo GET //api/./hello: {} {}", r.status, r.text()));
    }
    drop(demo);

    let echo = EchoUpstream::start();
    let template =
        Envoy::start_file("envoy-configs/template.yaml", &[(8080, echo.port())]).unwrap();
    check_bypasses(&template, "/admin", 403, &mut problems);
    drop(template);
    let jwt = Envoy::start_file("envoy-configs/jwt-auth.yaml", &[(8080, echo.port())]).unwrap();
    check_bypasses(&jwt, "/api", 401, &mut problems);
    drop(jwt);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(echo.request_count(), 0, "a bypass reached the upstream");
}

/// The stats tags snippet, verbatim in every config, turns the filters' metric dimensions
/// into Prometheus labels.
#[test]
fn every_config_carries_the_stats_tags_snippet() {
    let snippet = read_yaml(&repo_root().join("envoy-configs/snippets/stats-tags.yaml"));
    assert!(snippet["stats_config"]["stats_tags"].is_array());
    for config in envoy_configs() {
        let b = read_yaml(&config);
        assert_eq!(
            b["stats_config"],
            snippet["stats_config"],
            "{}: stats_config differs from envoy-configs/snippets/stats-tags.yaml (copy it)",
            relative(&config)
        );
    }
}

/// `/stats/prometheus` of the demo: each dimension (reason, rule) is a label, none is left in
/// a metric name.
#[test]
fn filter_metric_dimensions_are_prometheus_labels() {
    use integration::{free_port, Envoy};
    use std::time::{Duration, Instant};
    let echo_port = free_port();
    let demo = Envoy::start_file("envoy-configs/demo.yaml", &[(8080, echo_port)]).unwrap();
    assert_eq!(demo.get("/secure/data", &[]).status, 401);
    assert_eq!(
        demo.get("/secure/data", &[("authorization", b"Bearer not.a.jwt")])
            .status,
        401
    );
    assert_eq!(
        demo.get("/api/hello", &[("host", b"localhost")]).status,
        200
    );
    let want = [
        r#"jwt_auth_denied{reason="missing"} 1"#,
        r#"jwt_auth_denied{reason="malformed"} 1"#,
        r#"header_rules_matched{rule="api-get"} 1"#,
        r#"header_rules_matched{rule="strip-internal"} 1"#,
        "jwt_auth_requests_denied{} 2",
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    let prometheus = loop {
        let text = demo.admin_get("/stats/prometheus").text();
        if want.iter().all(|w| text.lines().any(|l| l == *w)) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Envoy prints the filters' metrics (its `wasmcustom` stat namespace) without its own
    // `envoy_` prefix and without the namespace.
    let ours: Vec<&str> = prometheus
        .lines()
        .filter(|l| {
            ["jwt_auth_", "header_rules_", "template_"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    for w in want {
        assert!(
            ours.contains(&w),
            "{w} not in /stats/prometheus:\n{}",
            ours.join("\n")
        );
    }
    // No dimension left in a metric name.
    for l in &ours {
        let name = l.split(['{', ' ']).next().unwrap_or("");
        assert!(
            !name.contains("_reason_") && !name.contains("_rule_"),
            "a dimension baked into a metric name: {l}"
        );
    }
    // /stats keeps the full names.
    assert_eq!(
        demo.stat("wasmcustom.jwt_auth.denied.reason.missing"),
        Some(1)
    );
}

/// `docker compose -f envoy-configs/docker-compose.yaml up` as the README says it works: the
/// admin (and the demo listener) inside the container listen where the port mappings reach
/// them, and the host side of every mapping is loopback only.
#[test]
fn docker_compose_reaches_the_admin_through_its_mapping() {
    use integration::{free_port, Envoy};
    let compose = read_yaml(&repo_root().join("envoy-configs/docker-compose.yaml"));
    let envoy = &compose["services"]["envoy"];
    let args: Vec<String> = envoy["command"]
        .as_array()
        .expect("command is a list")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let arg_after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // host:container mappings, host side loopback.
    let mut mapped = Vec::new();
    for p in envoy["ports"].as_array().unwrap() {
        let p = p.as_str().unwrap();
        let parts: Vec<&str> = p.split(':').collect();
        assert!(
            parts.len() == 3 && parts[0] == "127.0.0.1",
            "port mapping {p:?} is not bound to the host's loopback (127.0.0.1:HOST:CONTAINER)"
        );
        mapped.push(parts[2].parse::<u16>().unwrap());
    }
    // The config the container runs: -c /work/envoy-configs/${ENVOY_CONFIG:-demo.yaml}, with
    // ../envoy-configs mounted there.
    let config_arg = arg_after("-c").expect("-c CONFIG");
    let mount = envoy["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .find_map(|v| {
            let (host, rest) = v.split_once(':')?;
            let container = rest.trim_end_matches(":ro");
            config_arg
                .strip_prefix(container)
                .map(|tail| (host.to_string(), tail.to_string()))
        })
        .expect("the config's directory is mounted");
    assert_eq!(mount.0, "../envoy-configs");
    let default = mount
        .1
        .trim_start_matches('/')
        .replace("${ENVOY_CONFIG:-", "")
        .replace('}', "");
    assert_eq!(default, "demo.yaml");
    let override_yaml = arg_after("--config-yaml").expect("--config-yaml admin override");
    let over = yaml_to_json(&yaml_rust2::YamlLoader::load_from_str(&override_yaml).unwrap()[0]);
    // Every config ENVOY_CONFIG can pick: the admin (file, then override: Envoy merges
    // --config-yaml into the bootstrap) and the first listener are reachable from a mapping.
    for config in envoy_configs() {
        let b = read_yaml(&config);
        let admin = if over["admin"].is_object() {
            &over["admin"]["address"]["socket_address"]
        } else {
            &b["admin"]["address"]["socket_address"]
        };
        let at = relative(&config);
        assert_eq!(
            admin["address"], "0.0.0.0",
            "{at}: inside the container the admin listens on {}, which the port mapping cannot reach",
            admin["address"]
        );
        let admin_port = admin["port_value"].as_u64().unwrap() as u16;
        assert!(
            mapped.contains(&admin_port),
            "{at}: admin port {admin_port} not mapped"
        );
        let main = &b["static_resources"]["listeners"][0]["address"]["socket_address"];
        assert_eq!(main["address"], "0.0.0.0", "{at}: the demo listener");
        let port = main["port_value"].as_u64().unwrap() as u16;
        assert!(
            mapped.contains(&port),
            "{at}: listener port {port} not mapped"
        );
    }

    // And Envoy does merge the override over the file's admin: the compose's override, moved
    // to loopback and a free port (tests only listen on loopback), is where the admin answers.
    let port = free_port();
    let moved = override_yaml
        .replace("0.0.0.0", "127.0.0.1")
        .replace("9901", &port.to_string());
    assert_ne!(moved, override_yaml);
    let yaml = std::fs::read_to_string(repo_root().join("envoy-configs/demo.yaml")).unwrap();
    let yaml = integration::rewrite_ports(&yaml, &[(10000, 0), (8080, free_port())])
        .replace("address: 0.0.0.0", "address: 127.0.0.1");
    let envoy = Envoy::start_with_args(&yaml, &["--config-yaml", &moved]).unwrap();
    assert_eq!(
        envoy.admin_port(),
        port,
        "the --config-yaml admin address was not used"
    );
    assert_eq!(envoy.admin_get("/ready").status, 200);
}

/// `make run` serves the demo on loopback unless LISTEN says otherwise.
#[test]
fn make_run_listens_on_loopback_by_default() {
    use std::process::Command;
    let print = |listen: Option<&str>| {
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("scripts/run-demo.sh"))
            .arg("--print-config")
            .env_remove("LISTEN");
        if let Some(l) = listen {
            cmd.env("LISTEN", l);
        }
        // Its own process group, ended after 20 s: a script without --print-config would
        // start Envoy and never return.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        let pgid = child.id();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let finished = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(20));
            if !finished.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Command::new("kill")
                    .args(["-TERM", "--", &format!("-{pgid}")])
                    .status();
            }
        });
        let out = child.wait_with_output().unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            out.status.success(),
            "scripts/run-demo.sh --print-config failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        yaml_to_json(&yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0])
    };
    let addresses = |b: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = b["static_resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                l["address"]["socket_address"]["address"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.push(
            b["admin"]["address"]["socket_address"]["address"]
                .as_str()
                .unwrap()
                .into(),
        );
        v
    };
    let default = print(None);
    assert!(
        addresses(&default).iter().all(|a| a == "127.0.0.1"),
        "make run listens beyond loopback: {:?}",
        addresses(&default)
    );
    let open = print(Some("0.0.0.0"));
    assert_eq!(addresses(&open)[0], "0.0.0.0");
    // The admin stays on loopback even then.
    assert_eq!(addresses(&open).last().unwrap(), "127.0.0.1");
    let makefile = std::fs::read_to_string(repo_root().join("Makefile")).unwrap();
    assert!(
        makefile.contains("LISTEN ?= 127.0.0.1"),
        "Makefile: LISTEN default"
    );
    assert!(makefile.contains("LISTEN=$(LISTEN) NATIVE=$(NATIVE) bash scripts/run-demo.sh"));
}

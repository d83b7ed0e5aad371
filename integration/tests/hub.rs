//! Hub publishing, end to end, through the user-facing commands: `xtask publish` pushes every
//! filter to a real OCI registry (Debian's `docker-registry` on loopback) with skopeo; the
//! images are pulled back over the distribution API and taken apart; then a real Envoy
//! loads each module straight from the registry (`vm_config.code.remote` at the blob URL,
//! with its sha256) and must behave exactly like the same filter loaded from `dist/`. A
//! tampered blob must be refused. Bad input must fail clearly and push nothing.

use integration::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MT_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
const MT_WASM_CONTENT: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
const MT_SPEC: &str = "application/vnd.module.wasm.spec.v1+json";
const MT_DOC: &str = "application/vnd.module.wasm.doc.v1+markdown";

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// `publish` writes its image layouts to the repository's `target/oci/`; tests that run it
/// take this lock so two publishes never rewrite the same layout at once.
static PUBLISHING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    PUBLISHING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `cargo run -q -p xtask -- <args>` from the repo root, as `make` runs it.
fn xtask(args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["run", "-q", "-p", "xtask", "--"])
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run xtask")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every published filter: the directories under `filters/` (found, not listed), with
/// their hub manifest.
fn filters() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in fs::read_dir(repo_root().join("filters")).unwrap().flatten() {
        if !e.path().join("Cargo.toml").is_file() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let manifest = repo_root()
            .join("hub-manifest")
            .join(&name)
            .join("manifest.json");
        let m: Value = serde_json::from_str(&fs::read_to_string(&manifest).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (every filter needs a hub manifest)",
                manifest.display()
            )
        }))
        .unwrap();
        out.push((name, m));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty());
    out
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hub-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
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

fn read_yaml(path: &Path) -> Value {
    let s = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = yaml_rust2::YamlLoader::load_from_str(&s)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    yaml_to_json(&docs[0])
}

/// The Istio `WasmPlugin`s a filter gets, as (file stem, `type`, the example file its
/// `pluginConfig` must be, relative to `filters/<name>/`, or `None` for the hub manifest's
/// `example`): one per context its manifest lists (`-tcp` for the L4 one beside an HTTP one).
fn expected_wasmplugins(
    name: &str,
    manifest: &Value,
) -> Vec<(String, &'static str, Option<String>)> {
    let contexts = manifest["contexts"].as_array().unwrap();
    let http = contexts.contains(&json!("http"));
    let network = contexts.contains(&json!("network"));
    let mut out = Vec::new();
    if http {
        let config = manifest["kubernetes"]["example"]
            .as_str()
            .map(str::to_string);
        out.push((name.to_string(), "HTTP", config));
    }
    if network {
        let config = manifest["network"]["example"].as_str().map(str::to_string);
        assert!(
            config.is_some(),
            "{name}: contexts has network but no network.example"
        );
        let stem = if http {
            format!("{name}-tcp")
        } else {
            name.to_string()
        };
        out.push((stem, "NETWORK", config));
    }
    out
}

/// Checks a `WasmPlugin` against the filter's hub manifest; returns (url, sha256).
fn check_wasmplugin(path: &Path, name: &str, manifest: &Value) -> (String, String) {
    let y = read_yaml(path);
    let at = path.display();
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    let (_, plugin_type, config_file) = expected_wasmplugins(name, manifest)
        .into_iter()
        .find(|(s, _, _)| *s == stem)
        .unwrap_or_else(|| panic!("{at}: filter {name} gets no WasmPlugin named {stem}"));
    assert_eq!(y["apiVersion"], "extensions.istio.io/v1alpha1", "{at}");
    assert_eq!(y["kind"], "WasmPlugin", "{at}");
    assert_eq!(y["metadata"]["name"], stem.as_str(), "{at}");
    let spec = &y["spec"];
    let url = spec["url"].as_str().unwrap_or_default().to_string();
    assert!(url.starts_with("oci://"), "{at}: url {url}");
    assert!(
        url.rsplit('/')
            .next()
            .unwrap()
            .starts_with(&format!("{name}:")),
        "{at}: url {url} does not name the image {name}:<tag>"
    );
    let sha = spec["sha256"].as_str().unwrap_or_default().to_string();
    assert!(
        sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{at}: sha256 {sha:?} is not 64 lowercase hex digits"
    );
    let phase = spec["phase"].as_str().unwrap_or_default();
    assert!(
        ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"].contains(&phase),
        "{at}: phase {phase}"
    );
    assert_eq!(spec["phase"], manifest["istio"]["phase"], "{at}");
    assert_eq!(spec["priority"], manifest["istio"]["priority"], "{at}");
    let fail = spec["failStrategy"].as_str().unwrap_or_default();
    let expected = match manifest["failurePolicy"].as_str() {
        Some("FAIL_OPEN") => "FAIL_OPEN",
        _ => "FAIL_CLOSE",
    };
    assert_eq!(fail, expected, "{at}: failStrategy");
    assert_eq!(
        spec["pluginName"], manifest["rootId"],
        "{at}: pluginName is the root id"
    );
    assert_eq!(spec["type"], plugin_type, "{at}: type");
    // Safe defaults: inbound traffic only, a selector that must be edited.
    assert_eq!(
        spec["match"],
        json!([{"mode": manifest["istio"]["mode"]}]),
        "{at}: match"
    );
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"app": "REPLACE-ME"}}),
        "{at}: selector"
    );
    // The config is the one fit to deploy (kubernetes.example, or for L4 network.example),
    // else the example.
    let expected = match config_file {
        Some(rel) => serde_json::from_slice::<Value>(
            &fs::read(repo_root().join("filters").join(name).join(rel)).unwrap(),
        )
        .unwrap(),
        None => manifest["example"].clone(),
    };
    assert_eq!(spec["pluginConfig"], expected, "{at}: pluginConfig");
    // And the example is one the filter's tests run.
    let examples_dir = repo_root().join("filters").join(name).join("examples");
    let found = fs::read_dir(&examples_dir).unwrap().flatten().any(|e| {
        serde_json::from_slice::<Value>(&fs::read(e.path()).unwrap()).ok()
            == Some(spec["pluginConfig"].clone())
    });
    assert!(
        found,
        "{at}: pluginConfig is not one of {}",
        examples_dir.display()
    );
    (url, sha)
}

/// The checked-in manifests (`envoy-configs/{istio,envoy-gateway,higress}/`) are exactly what
/// `make wasmplugins` writes from the current `dist/` and hub manifests: a digest that no
/// longer matches the build (Istio refuses such a module) fails here, not in a cluster.
#[test]
fn checked_in_manifests_are_current() {
    let _serial = serial();
    let out = scratch("manifests");
    let run = xtask(&[
        "wasmplugins",
        "registry.example.com/envoy-wasm-filters",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let mut problems = Vec::new();
    let mut compared = 0;
    for dir in ["istio", "envoy-gateway", "higress"] {
        let generated = out.join(dir);
        let checked_in = repo_root().join("envoy-configs").join(dir);
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d)
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".yaml"))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let (want, have) = (names(&generated), names(&checked_in));
        for n in &want {
            let fresh = fs::read(generated.join(n)).unwrap();
            match fs::read(checked_in.join(n)) {
                Ok(old) if old == fresh => compared += 1,
                Ok(_) => problems.push(format!("envoy-configs/{dir}/{n} is stale")),
                Err(_) => problems.push(format!("envoy-configs/{dir}/{n} is missing")),
            }
        }
        for n in have.iter().filter(|n| !want.contains(n)) {
            problems.push(format!(
                "envoy-configs/{dir}/{n} is not generated by any filter (remove it)"
            ));
        }
    }
    let _ = fs::remove_dir_all(&out);
    assert!(
        problems.is_empty(),
        "{}
the checked-in manifests differ from the current build: run `make wasmplugins` \
         (after `make build`) and commit envoy-configs/{{istio,envoy-gateway,higress}}/",
        problems.join("\n")
    );
    assert!(
        compared >= filters().len() * 4,
        "compared only {compared} files"
    );
}

#[test]
fn checked_in_wasmplugins_have_the_right_shape() {
    let manifests: BTreeMap<String, Value> = filters().into_iter().collect();
    let dir = repo_root().join("envoy-configs/istio");
    let mut seen = 0;
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let name = if manifests.contains_key(&stem) {
            stem.clone()
        } else {
            stem.strip_suffix("-tcp").unwrap_or(&stem).to_string()
        };
        let manifest = manifests
            .get(&name)
            .unwrap_or_else(|| panic!("{}: no filter named {name}", path.display()));
        check_wasmplugin(&path, &name, manifest);
        seen += 1;
    }
    // Every filter has one WasmPlugin per context (the L4 ones: `type: NETWORK`).
    let want: usize = manifests
        .iter()
        .map(|(n, m)| expected_wasmplugins(n, m).len())
        .sum();
    assert_eq!(seen, want, "WasmPlugins in {}", dir.display());
    assert!(
        manifests.values().any(|m| m["contexts"]
            .as_array()
            .unwrap()
            .contains(&json!("network"))),
        "no filter with an L4 context: the NETWORK manifests are untested"
    );
}

/// One pulled-back image: its manifest and digest.
fn pull(reg: &Registry, repo: &str, tag: &str) -> (Value, String) {
    let (m, digest) = reg.manifest(repo, tag);
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert!(
        digest.starts_with("sha256:"),
        "{repo}:{tag} digest {digest}"
    );
    (m, digest)
}

fn layer_types(m: &Value) -> Vec<String> {
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

fn untar_gz(tgz: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

/// Requests every filter sees, with a fixed request id so responses are comparable.
const PROBES: &[(&str, &str, &str)] = &[
    ("GET", "/", "localhost"),
    ("GET", "/admin/users", "localhost"),
    ("POST", "/admin", "api.example.com"),
    ("GET", "/api/items?page=2", "api.example.com"),
    ("GET", "/api/x", "localhost"),
];

/// What a probe's answer says about the filter: status, response headers, what the
/// upstream saw (or the local reply's body); volatile values left out.
fn observe(port: u16) -> Vec<Value> {
    // `ratelimit` counts remaining tokens, which refill with wall time between two runs.
    const VOLATILE: &[&str] = &[
        "date",
        "x-envoy-upstream-service-time",
        "content-length",
        "ratelimit",
    ];
    PROBES
        .iter()
        .map(|(method, path, host)| {
            let r = http_request(
                port,
                method,
                path,
                &[
                    ("host", host.as_bytes()),
                    ("x-request-id", b"hub-probe"),
                    ("x-internal-user", b"mallory"),
                ],
                b"",
            );
            let mut headers: Vec<(String, String)> = r
                .headers
                .iter()
                .filter(|(n, _)| !VOLATILE.contains(&n.as_str()))
                .map(|(n, v)| (n.clone(), text(v)))
                .collect();
            headers.sort();
            let body = serde_json::from_slice::<Value>(&r.body).unwrap_or(json!(r.text()));
            json!({"probe": format!("{method} {host}{path}"), "status": r.status, "headers": headers, "body": body})
        })
        .collect()
}

fn envoy_with(echo: &EchoUpstream, filter: Option<WasmFilter>, hub_port: u16) -> Envoy {
    let mut cfg = EnvoyConfig::http(echo.port()).cluster("hub", hub_port);
    if let Some(f) = filter {
        cfg = cfg.filter(f);
    }
    cfg.start().unwrap()
}

#[test]
fn publish_pull_back_and_serve_from_the_hub() {
    let _serial = serial();
    let reg = Registry::start();
    let istio = scratch("istio");
    let prefix = "hub-test";
    let registry = format!("{}/{prefix}", reg.host());
    let out = xtask(&["publish", &registry, "--out-dir", istio.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "publish failed: {}\n{stdout}",
        text(&out.stderr)
    );

    let echo = EchoUpstream::start();
    for (name, manifest) in filters() {
        let repo = format!("{prefix}/{name}");
        let version = manifest["version"].as_str().unwrap();
        let dist = fs::read(wasm_path(&name)).unwrap();

        // compat: spec, doc, then the tar+gzip layer Istio reads plugin.wasm from.
        let (m, compat_digest) = pull(&reg, &repo, version);
        assert_eq!(m["annotations"]["module.wasm.image/variant"], "compat");
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(
            layer_types(&m),
            [MT_SPEC, MT_DOC, MT_TAR_GZIP],
            "{name} compat layers"
        );
        let layer = |i: usize| reg.blob(&repo, m["layers"][i]["digest"].as_str().unwrap());
        let spec: Value = serde_json::from_slice(&layer(0)).unwrap();
        assert_eq!(spec["name"], name.as_str());
        assert_eq!(spec["rootId"], manifest["rootId"]);
        let schema: Value = serde_json::from_slice(
            &fs::read(
                repo_root()
                    .join("hub-manifest")
                    .join(&name)
                    .join("config.schema.json"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            spec["configSchema"], schema,
            "{name}: the schema travels inlined"
        );
        let readme = fs::read(repo_root().join("filters").join(&name).join("README.md")).unwrap();
        assert_eq!(layer(1), readme, "{name}: README layer");
        let files = untar_gz(&layer(2));
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["plugin.wasm", "runtime-config.json"]
        );
        assert!(
            files["plugin.wasm"] == dist,
            "{name}: compat plugin.wasm differs from dist/{name}.wasm"
        );
        let rc: Value = serde_json::from_slice(&files["runtime-config.json"]).unwrap();
        assert_eq!(rc["config"]["rootIds"], json!([manifest["rootId"]]));

        // oci: wasm config, exactly two layers, the raw module second.
        let (o, oci_digest) = pull(&reg, &repo, &format!("{version}-oci"));
        assert_eq!(o["config"]["mediaType"], MT_WASM_CONFIG);
        assert_eq!(
            layer_types(&o),
            [MT_WASM_CONFIG, MT_WASM_CONTENT],
            "{name} oci layers"
        );
        let rc: Value =
            serde_json::from_slice(&reg.blob(&repo, o["config"]["digest"].as_str().unwrap()))
                .unwrap();
        assert_eq!(rc["type"], "envoy_proxy");
        assert_eq!(
            rc["abiVersions"],
            json!([format!("v{}", manifest["abiVersion"].as_str().unwrap())])
        );
        assert_eq!(rc["config"]["rootIds"], json!([manifest["rootId"]]));
        let wasm_digest = o["layers"][1]["digest"].as_str().unwrap().to_string();
        assert!(
            reg.blob(&repo, &wasm_digest) == dist,
            "{name}: oci module differs from dist/{name}.wasm"
        );
        assert_eq!(wasm_digest, format!("sha256:{}", sha256_hex(&dist)));

        // What publish printed and wrote agrees with the registry.
        assert!(
            stdout.contains(&compat_digest) && stdout.contains(&oci_digest),
            "{stdout}"
        );
        for (stem, _, _) in expected_wasmplugins(&name, &manifest) {
            let (url, sha) =
                check_wasmplugin(&istio.join(format!("istio/{stem}.yaml")), &name, &manifest);
            assert_eq!(url, format!("oci://{registry}/{name}:{version}"));
            assert_eq!(
                format!("sha256:{sha}"),
                compat_digest,
                "{stem}: WasmPlugin sha256 = manifest digest"
            );
        }

        // Envoy loads the module from the registry blob URL and behaves exactly like the
        // same filter from dist/, and the filter visibly acts.
        let config = manifest["example"].to_string();
        let root_id = manifest["rootId"].as_str().unwrap();
        let remote = RemoteCode {
            uri: format!("http://{}/v2/{repo}/blobs/{wasm_digest}", reg.host()),
            cluster: "hub".into(),
            sha256: sha256_hex(&dist),
        };
        let from_hub = envoy_with(
            &echo,
            Some(WasmFilter::remote(&name, remote, config.clone()).root_id(root_id)),
            reg.port(),
        );
        let hub_seen = observe(from_hub.listener_port());
        let from_dist = envoy_with(
            &echo,
            Some(WasmFilter::new(&name, config).root_id(root_id)),
            reg.port(),
        );
        assert_eq!(
            hub_seen,
            observe(from_dist.listener_port()),
            "{name}: hub vs dist"
        );
        let bare = envoy_with(&echo, None, reg.port());
        assert_ne!(
            hub_seen,
            observe(bare.listener_port()),
            "{name}: with its example config the filter changed nothing on the probes"
        );
        drop((from_hub, from_dist, bare));
    }

    // Images are reproducible: packaging again gives the digests that were pushed.
    let out = xtask(&["package"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = text(&out.stdout);
    for line in stdout.lines().filter(|l| l.contains(" sha256:")) {
        let digest = line.split_whitespace().last().unwrap();
        assert!(
            again.contains(digest),
            "package gave other digests:\n{again}\npushed:\n{stdout}"
        );
    }

    // A tampered blob: the registry serves altered bytes; Envoy must refuse them.
    let (name, manifest) = filters().remove(0);
    let repo = format!("{prefix}/{name}");
    let dist = fs::read(wasm_path(&name)).unwrap();
    let digest = format!("sha256:{}", sha256_hex(&dist));
    let file = reg.blob_file(&digest);
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    assert_ne!(
        sha256_hex(&reg.blob(&repo, &digest)),
        sha256_hex(&dist),
        "registry serves the tampered bytes"
    );
    let uri = format!("http://{}/v2/{repo}/blobs/{digest}", reg.host());
    let remote = RemoteCode {
        uri: uri.clone(),
        cluster: "hub".into(),
        sha256: sha256_hex(&dist),
    };
    let before = echo.request_count();
    let filter = WasmFilter::remote(&name, remote, manifest["example"].to_string())
        .root_id(manifest["rootId"].as_str().unwrap());
    let envoy = EnvoyConfig::http(echo.port())
        .cluster("hub", reg.port())
        .filter(filter)
        .start_with_args(&["--component-log-level", "config:debug,wasm:debug"]);
    match envoy {
        // Refusing to start is a refusal too.
        Err(e) => assert!(
            e.log.contains(&format!("Plugin {name} failed to load")),
            "{e}"
        ),
        Ok(envoy) => {
            for (method, path, host) in PROBES {
                let r = http_request(
                    envoy.listener_port(),
                    method,
                    path,
                    &[("host", host.as_bytes())],
                    b"",
                );
                assert!(
                    r.status >= 500,
                    "{method} {path}: {} from a filter that must not have loaded",
                    r.status
                );
            }
            assert_eq!(
                echo.request_count(),
                before,
                "a request reached the upstream"
            );
            let log = envoy.log();
            assert!(
                log.contains(&format!("Plugin {name} failed to load")),
                "{log}"
            );
            // The download itself worked; the hash check refused the bytes.
            let fetch = format!("fetch remote data [uri = {uri}]");
            assert!(log.contains(&format!("{fetch}: success")), "{log}");
            assert!(log.contains(&format!("{fetch}: data is invalid")), "{log}");
        }
    }
    let _ = fs::remove_dir_all(&istio);
}

#[test]
fn publish_refuses_bad_input_and_pushes_nothing() {
    let _serial = serial();
    // No registry listening.
    let port = free_port();
    let out = xtask(&["publish", &format!("127.0.0.1:{port}/x")]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("not reachable") && err.contains(&port.to_string()),
        "{err}"
    );

    // Not a registry reference.
    let out = xtask(&["publish", "http://example.com"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("host[:port][/prefix]"),
        "{}",
        text(&out.stderr)
    );

    // A missing module: refused before anything is pushed, for every filter.
    let reg = Registry::start();
    let dist = scratch("dist");
    let all = filters();
    for (name, _) in &all {
        fs::copy(wasm_path(name), dist.join(format!("{name}.wasm"))).unwrap();
    }
    let missing = &all.last().unwrap().0;
    fs::remove_file(dist.join(format!("{missing}.wasm"))).unwrap();
    let istio = scratch("istio-bad");
    let out = xtask(&[
        "publish",
        &format!("{}/bad", reg.host()),
        "--dist",
        dist.to_str().unwrap(),
        "--out-dir",
        istio.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "publish with a missing module succeeded"
    );
    assert!(
        err.contains(&format!("{missing}.wasm is missing")) && err.contains("make build"),
        "{err}"
    );
    for (name, _) in &all {
        assert_eq!(
            reg.tags(&format!("bad/{name}")),
            Vec::<String>::new(),
            "{name} was pushed"
        );
    }
    assert_eq!(
        fs::read_dir(&istio).unwrap().count(),
        0,
        "manifests written after a failure"
    );
    let _ = fs::remove_dir_all(&dist);
    let _ = fs::remove_dir_all(&istio);
}

//! Every generated Kubernetes manifest (`envoy-configs/{istio,envoy-gateway,higress}/*.yaml`,
//! written by `make wasmplugins`; `hub.rs` checks they are current) is validated the way an API
//! server would, without a cluster:
//!
//! - against the OpenAPI v3 schema of its CRD, as published by the project that owns it
//!   (`integration/crds/*.yaml`, each naming its source repository, path and commit),
//!   converted to JSON Schema the way Kubernetes reads a structural schema (`nullable`,
//!   `x-kubernetes-preserve-unknown-fields`; an unknown field is an error, as with
//!   `kubectl apply --validate=strict`), with the `jsonschema` crate;
//! - against every CEL rule of that schema (`x-kubernetes-validations`), evaluated with the
//!   `cel` crate on the value each rule is attached to, Kubernetes' `isURL()` / `url()`
//!   library functions supplied here (see [`k8s_url`]);
//! - for the safe defaults the generator promises: inbound traffic only (`match: SERVER`), a
//!   target placeholder that selects nothing until edited, no trusted test keys.
//!
//! The validator itself is checked on manifests broken on purpose (a rule or keyword of each
//! kind must refuse them), so a validator that accepts everything cannot pass.

use integration::repo_root;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PLACEHOLDER: &str = "REPLACE-ME";

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => panic!("unexpected YAML key {other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
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
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    yaml_to_json(&docs[0])
}

/// One control plane: where its manifests are, its CRD, the object's apiVersion and kind.
struct Plane {
    dir: &'static str,
    crd_file: &'static str,
    api_version: &'static str,
    kind: &'static str,
}

const PLANES: [Plane; 3] = [
    Plane {
        dir: "istio",
        crd_file: "istio-wasmplugin.yaml",
        api_version: "extensions.istio.io/v1alpha1",
        kind: "WasmPlugin",
    },
    Plane {
        dir: "envoy-gateway",
        crd_file: "envoy-gateway-envoyextensionpolicy.yaml",
        api_version: "gateway.envoyproxy.io/v1alpha1",
        kind: "EnvoyExtensionPolicy",
    },
    Plane {
        dir: "higress",
        crd_file: "higress-wasmplugin.yaml",
        api_version: "extensions.higress.io/v1alpha1",
        kind: "WasmPlugin",
    },
];

/// The stored CRD schema; its `source` must name where it was copied from.
fn crd(plane: &Plane) -> Value {
    let path = repo_root().join("integration/crds").join(plane.crd_file);
    let doc = read_yaml(&path);
    for key in ["repo", "path", "commit", "crd", "version"] {
        assert!(
            doc["source"][key].as_str().is_some_and(|s| !s.is_empty()),
            "{}: source.{key} missing",
            path.display()
        );
    }
    assert!(
        doc["source"]["commit"]
            .as_str()
            .is_some_and(|c| c.len() == 40),
        "{}: source.commit is a full commit id",
        path.display()
    );
    doc["openAPIV3Schema"].clone()
}

/// A Kubernetes structural schema as JSON Schema: `nullable` becomes a `null` type, an
/// object with `properties` and no `x-kubernetes-preserve-unknown-fields` refuses unknown
/// fields, the `x-kubernetes-*` extensions (CEL is checked separately) and `format` go.
fn to_json_schema(s: &Value) -> Value {
    let Some(obj) = s.as_object() else {
        return s.clone();
    };
    let mut out = serde_json::Map::new();
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    for (k, v) in obj {
        match k.as_str() {
            "properties" => {
                let props = v
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(name, sub)| (name.clone(), to_json_schema(sub)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(k.clone(), to_json_schema(v));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let all = v.as_array().unwrap().iter().map(to_json_schema).collect();
                out.insert(k.clone(), Value::Array(all));
            }
            "nullable" | "format" | "description" | "default" => {}
            k if k.starts_with("x-kubernetes-") => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if obj.get("nullable") == Some(&json!(true)) {
        if let Some(t) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
    }
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") && !preserve {
        out.insert("additionalProperties".into(), json!(false));
    }
    Value::Object(out)
}

/// The whole object's schema: the CRD's, plus what every Kubernetes object has
/// (`apiVersion`, `kind` and `metadata`, which a CRD does not restate).
fn object_schema(plane: &Plane) -> Value {
    let mut root = crd(plane);
    let props = root["properties"].as_object_mut().unwrap();
    props.insert("apiVersion".into(), json!({"const": plane.api_version}));
    props.insert("kind".into(), json!({"const": plane.kind}));
    props.insert(
        "metadata".into(),
        json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 253,
                         "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"},
                "namespace": {"type": "string", "maxLength": 63,
                              "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        }),
    );
    let mut required: Vec<Value> = root["required"].as_array().cloned().unwrap_or_default();
    for k in ["apiVersion", "kind", "metadata", "spec"] {
        if !required.contains(&json!(k)) {
            required.push(json!(k));
        }
    }
    root["required"] = Value::Array(required);
    root
}

/// Kubernetes' CEL URL library: `isURL(s)` is true when Go's `url.ParseRequestURI(s)`
/// succeeds, `url(s).getScheme()` is its scheme. Reimplemented for what these rules ask:
/// an absolute path, or `scheme:` followed by an opaque part or `//authority[/path]`, with no
/// control characters or spaces anywhere; the scheme is returned lower-cased, as Go does.
fn k8s_url(s: &str) -> Option<String> {
    if s.is_empty() || s.bytes().any(|b| b < 0x21 || b == 0x7f) {
        return None;
    }
    if s.starts_with('/') {
        return Some(String::new());
    }
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.bytes();
    let valid_scheme = chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        && chars.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !valid_scheme {
        return None;
    }
    if let Some(after) = rest.strip_prefix("//") {
        let authority = after.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        let host_ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b));
        if !host_ok {
            return None;
        }
    } else if !rest.starts_with('/') && rest.is_empty() {
        return None;
    }
    Some(scheme.to_ascii_lowercase())
}

/// Evaluates one CEL rule with `self` bound to `value`.
fn eval_rule(rule: &str, value: &Value) -> Result<bool, String> {
    let program = cel::Program::compile(rule).map_err(|e| format!("rule does not parse: {e}"))?;
    let mut ctx = cel::Context::default();
    ctx.add_variable_from_value("self", cel::to_value(value).map_err(|e| e.to_string())?);
    ctx.add_function("isURL", |s: Arc<String>| k8s_url(&s).is_some())
        .map_err(|e| format!("{e:?}"))?;
    ctx.add_function("url", |s: Arc<String>| -> cel::ResolveResult {
        match k8s_url(&s) {
            Some(_) => Ok(cel::Value::String(s)),
            None => Err(cel::ExecutionError::function_error(
                "url",
                "not a valid URL",
            )),
        }
    })
    .map_err(|e| format!("{e:?}"))?;
    ctx.add_function(
        "getScheme",
        |cel::extractors::This(s): cel::extractors::This<Arc<String>>| -> String {
            k8s_url(&s).unwrap_or_default()
        },
    )
    .map_err(|e| format!("{e:?}"))?;
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("rule answered {other:?}, not a bool")),
        Err(e) => Err(format!("rule failed: {e}")),
    }
}

/// Walks `value` with its (Kubernetes) schema and evaluates every CEL rule attached on the
/// way; returns `"<path>: <message> (rule ...)"` for each rule that does not hold. Counts the
/// rules evaluated in `evaluated`.
fn cel_violations(schema: &Value, value: &Value, at: &str, evaluated: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        for r in rules {
            let rule = r["rule"].as_str().unwrap();
            *evaluated += 1;
            match eval_rule(rule, value) {
                Ok(true) => {}
                Ok(false) => out.push(format!("{at}: {} (rule {rule})", r["message"])),
                Err(e) => out.push(format!("{at}: {e} (rule {rule})")),
            }
        }
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = format!("{at}.{k}");
                if let Some(sub) = schema["properties"].get(k) {
                    out.extend(cel_violations(sub, v, &child, evaluated));
                } else if schema["additionalProperties"].is_object() {
                    out.extend(cel_violations(
                        &schema["additionalProperties"],
                        v,
                        &child,
                        evaluated,
                    ));
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, v) in items.iter().enumerate() {
                out.extend(cel_violations(
                    &schema["items"],
                    v,
                    &format!("{at}[{i}]"),
                    evaluated,
                ));
            }
        }
        _ => {}
    }
    out
}

/// Everything the API server would refuse in `manifest`: schema violations, then CEL rules.
fn violations(plane: &Plane, manifest: &Value) -> (Vec<String>, usize) {
    let k8s = object_schema(plane);
    let schema = to_json_schema(&k8s);
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{}: the converted schema is invalid: {e}", plane.crd_file));
    let mut out: Vec<String> = validator
        .iter_errors(manifest)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    let mut evaluated = 0;
    out.extend(cel_violations(&k8s, manifest, "", &mut evaluated));
    (out, evaluated)
}

fn manifests(plane: &Plane) -> Vec<PathBuf> {
    let dir = repo_root().join("envoy-configs").join(plane.dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

fn hub_manifest(name: &str) -> Value {
    let path = repo_root()
        .join("hub-manifest")
        .join(name)
        .join("manifest.json");
    serde_json::from_slice(&fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// The filter a manifest file belongs to (`<filter>.yaml`, `<filter>-http.yaml`, the L4
/// `<filter>-tcp.yaml`).
fn filter_of(path: &Path) -> String {
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    let filters = repo_root().join("filters");
    if filters.join(&stem).is_dir() {
        return stem;
    }
    let base = stem
        .strip_suffix("-http")
        .or_else(|| stem.strip_suffix("-tcp"))
        .unwrap_or(&stem)
        .to_string();
    assert!(
        filters.join(&base).is_dir(),
        "{}: no filter named {base}",
        path.display()
    );
    base
}

#[test]
fn every_generated_manifest_passes_its_crd_schema_and_cel_rules() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for plane in &PLANES {
        let mut rules = 0;
        for path in manifests(plane) {
            let m = read_yaml(&path);
            let (v, n) = violations(plane, &m);
            rules += n;
            checked += 1;
            for p in v {
                problems.push(format!(
                    "envoy-configs/{}/{}: {p}",
                    plane.dir,
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
        // Higress' CRD has no CEL rules; Istio's and Envoy Gateway's must have been run.
        if plane.dir != "higress" {
            assert!(rules > 0, "{}: no CEL rule evaluated", plane.dir);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 4 * 3, "only {checked} manifests");
}

#[test]
fn the_validator_refuses_what_the_api_server_would() {
    let istio = &PLANES[0];
    let eg = &PLANES[1];
    let higress = &PLANES[2];
    let base = |plane: &Plane| read_yaml(&manifests(plane)[0]);
    let refused = |plane: &Plane, m: Value, needle: &str| {
        let (v, _) = violations(plane, &m);
        assert!(
            v.iter().any(|p| p.contains(needle)),
            "{}: expected a violation containing {needle:?}, got {v:#?}",
            plane.dir
        );
    };
    // The unmodified manifests pass (so each refusal below is the mutation's).
    for plane in &PLANES {
        let (v, _) = violations(plane, &base(plane));
        assert!(v.is_empty(), "{}: {v:#?}", plane.dir);
    }

    // Istio's plugin type is an enum: NETWORK (the L4 manifests) passes, a misspelling not.
    let l4 = manifests(istio)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("-tcp.yaml"))
        .expect("an L4 (type: NETWORK) WasmPlugin");
    let m = read_yaml(&l4);
    assert_eq!(m["spec"]["type"], "NETWORK");
    let (v, _) = violations(istio, &m);
    assert!(v.is_empty(), "{}: {v:#?}", l4.display());
    let mut m = read_yaml(&l4);
    m["spec"]["type"] = json!("TCP");
    refused(istio, m, "/spec/type");

    // Istio: CEL on spec, on selector labels, on the URL; keywords: pattern, enum, unknown field.
    let mut m = base(istio);
    m["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "gw"}]);
    refused(istio, m, "only one of targetRefs or selector can be set");
    let mut m = base(istio);
    m["spec"]["selector"]["matchLabels"]["app"] = json!("web-*");
    refused(istio, m, "wildcard not allowed in label value match");
    let mut m = base(istio);
    m["spec"]["url"] = json!("ftp://registry.example.com/x:1");
    refused(istio, m, "url must have schema one of");
    let mut m = base(istio);
    m["spec"]["sha256"] = json!("ABC");
    refused(istio, m, "/spec/sha256");
    let mut m = base(istio);
    m["spec"]["match"] = json!([{"mode": "INBOUND"}]);
    refused(istio, m, "/spec/match/0/mode");
    let mut m = base(istio);
    m["spec"]["mach"] = json!([{"mode": "SERVER"}]);
    refused(istio, m, "mach");
    let mut m = base(istio);
    m["spec"]["vmConfig"] = json!({"env": [{"name": "K", "valueFrom": "HOST", "value": "v"}]});
    refused(istio, m, "value may only be set when valueFrom is INLINE");

    // Envoy Gateway: spec-level target rules, the code source rules, the kind of a pull secret.
    let mut m = base(eg);
    m["spec"]["targetRef"] = m["spec"]["targetRefs"][0].clone();
    refused(eg, m, "either targetRef or targetRefs must be used");
    let mut m = base(eg);
    m["spec"]["targetRefs"][0]["kind"] = json!("Service");
    refused(eg, m, "targetRefs[*].kind of Gateway/HTTPRoute");
    let mut m = base(eg);
    let code = &mut m["spec"]["wasm"][0]["code"];
    code["type"] = json!(if code["type"] == "Image" {
        "HTTP"
    } else {
        "Image"
    });
    refused(eg, m, "field needs to be set");
    let mut m = base(eg);
    m["spec"]["wasm"][0]["code"] = json!({"type": "Image", "image": {"url": "r/x:1", "pullSecretRef": {"name": "s", "kind": "ConfigMap"}}});
    refused(eg, m, "only support Secret kind");
    let mut m = base(eg);
    m["spec"]["wasm"][0]["failOpen"] = json!("no");
    refused(eg, m, "/spec/wasm/0/failOpen");

    // Higress: keywords only.
    let mut m = base(higress);
    m["spec"]["failStrategy"] = json!("FAIL_RELOAD");
    refused(higress, m, "/spec/failStrategy");
    let mut m = base(higress);
    m["spec"]["matchRules"][0]["ingres"] = json!(["default/x"]);
    refused(higress, m, "ingres");
    let mut m = base(higress);
    m["kind"] = json!("EnvoyFilter");
    refused(higress, m, "/kind");
}

#[test]
fn k8s_url_reads_urls_as_go_does_for_these_rules() {
    assert_eq!(
        k8s_url("oci://registry.example.com/f/x:0.1.0").as_deref(),
        Some("oci")
    );
    assert_eq!(k8s_url("HTTPS://a.example/x").as_deref(), Some("https"));
    assert_eq!(k8s_url("/local/path").as_deref(), Some(""));
    assert_eq!(k8s_url("file:///opt/x.wasm").as_deref(), Some("file"));
    for bad in [
        "",
        "registry.example.com/x:1",
        "1http://x",
        "http://a b",
        "oci://a\n",
    ] {
        assert_eq!(k8s_url(bad), None, "{bad:?}");
    }
}

/// Walks a JSON value; calls `f(key, value)` for every object member.
fn each_member(v: &Value, f: &mut dyn FnMut(&str, &Value)) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                f(k, x);
                each_member(x, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| each_member(x, f)),
        _ => {}
    }
}

/// What the generator promises, so a manifest applied unedited does no harm.
#[test]
fn generated_manifests_have_safe_defaults() {
    // The test keys' public halves (their private halves are in filters/jwt-auth/testdata/).
    let jwks: Value = serde_json::from_slice(
        &fs::read(repo_root().join("filters/jwt-auth/testdata/jwks.json")).unwrap(),
    )
    .unwrap();
    let key_material: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|k| ["n", "x", "k"].map(|f| k[f].as_str().map(str::to_string)))
        .flatten()
        .collect();
    assert!(!key_material.is_empty());

    let mut problems = Vec::new();
    for plane in &PLANES {
        for path in manifests(plane) {
            let at = format!(
                "envoy-configs/{}/{}",
                plane.dir,
                path.file_name().unwrap().to_string_lossy()
            );
            let text = fs::read_to_string(&path).unwrap();
            let m = read_yaml(&path);
            let spec = &m["spec"];
            let name = filter_of(&path);
            let hub = hub_manifest(&name);
            let mut problem = |p: String| problems.push(format!("{at}: {p}"));

            // No trusted test keys, anywhere.
            for k in &key_material {
                if text.contains(k.as_str()) {
                    problem(format!("carries the repository's test key {}…", &k[..12]));
                }
            }
            each_member(&m, &mut |k, _| {
                if k == "local_jwks" {
                    problem("trusts an inline JWKS (local_jwks)".into());
                }
            });
            // The header says what to edit.
            if !text.starts_with('#') || !text.contains(&format!("every {PLACEHOLDER}")) {
                problem("no header saying what to edit".into());
            }
            if hub.get("kubernetes").is_some() {
                let note = hub["kubernetes"]["note"].as_str().unwrap();
                let first = note
                    .split_whitespace()
                    .take(4)
                    .collect::<Vec<_>>()
                    .join(" ");
                if !text.contains(&first) {
                    problem(format!(
                        "the header lacks the manifest's note ({first} ...)"
                    ));
                }
            }
            match plane.dir {
                "istio" => {
                    let mode = hub["istio"]["mode"].as_str().unwrap();
                    if spec["match"] != json!([{"mode": mode}]) {
                        problem(format!(
                            "match is {}, expected [{{mode: {mode}}}]",
                            spec["match"]
                        ));
                    }
                    // Auth and policy filters run on inbound traffic only.
                    let category = hub["category"].as_str().unwrap();
                    if ["auth", "security"].contains(&category) && mode != "SERVER" {
                        problem(format!("a {category} filter with mode {mode}"));
                    }
                    if spec["selector"] != json!({"matchLabels": {"app": PLACEHOLDER}}) {
                        problem(format!(
                            "selector {} is not the placeholder",
                            spec["selector"]
                        ));
                    }
                    if spec["phase"] != hub["istio"]["phase"] {
                        problem(format!("phase {}", spec["phase"]));
                    }
                    if name == "jwt-auth" && spec["phase"] != "AUTHN" {
                        problem("jwt-auth must run in AUTHN".into());
                    }
                    if !spec["url"].as_str().unwrap().starts_with("oci://") {
                        problem("url is not an oci:// image".into());
                    }
                    // An L4 plugin is `type: NETWORK` and carries the L4 config.
                    let l4 = path.to_string_lossy().ends_with("-tcp.yaml");
                    let want = if l4 { "NETWORK" } else { "HTTP" };
                    if spec["type"] != want {
                        problem(format!("type {}, expected {want}", spec["type"]));
                    }
                    if l4 {
                        let rel = hub["network"]["example"].as_str().unwrap_or_default();
                        let file = repo_root().join("filters").join(&name).join(rel);
                        let config: Value = serde_json::from_slice(&fs::read(&file).unwrap())
                            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                        if spec["pluginConfig"] != config {
                            problem(format!("pluginConfig is not {name}'s network.example"));
                        }
                    }
                }
                "envoy-gateway" | "higress" if path.to_string_lossy().ends_with("-tcp.yaml") => {
                    problem("an L4 manifest for a control plane without network wasm".into());
                }
                "envoy-gateway" => {
                    let want = json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": PLACEHOLDER}]);
                    if spec["targetRefs"] != want {
                        problem(format!("targetRefs {}", spec["targetRefs"]));
                    }
                    let wasm = spec["wasm"].as_array().unwrap();
                    if wasm.len() != 1 {
                        problem(format!("{} wasm entries, expected 1", wasm.len()));
                    }
                    let code = &wasm[0]["code"];
                    let http = path.to_string_lossy().ends_with("-http.yaml");
                    let source = if http { "HTTP" } else { "Image" };
                    if code["type"] != source {
                        problem(format!("code.type {}, expected {source}", code["type"]));
                    }
                    let sha = if http {
                        &code["http"]["sha256"]
                    } else {
                        &code["image"]["sha256"]
                    };
                    if sha.as_str().is_none_or(|s| s.len() != 64) {
                        problem("code is not pinned by sha256".into());
                    }
                    if wasm[0]["rootID"] != hub["rootId"] {
                        problem("rootID is not the filter's root id".into());
                    }
                    if wasm[0]["failOpen"] != json!(hub["failurePolicy"] == "FAIL_OPEN") {
                        problem("failOpen disagrees with failurePolicy".into());
                    }
                }
                "higress" => {
                    if spec["defaultConfigDisable"] != json!(true) {
                        problem("defaultConfig applies to every route".into());
                    }
                    let rules = spec["matchRules"].as_array().cloned().unwrap_or_default();
                    if rules.is_empty()
                        || !rules.iter().all(|r| r.to_string().contains(PLACEHOLDER))
                    {
                        problem("matchRules do not name the placeholder".into());
                    }
                    if !spec["url"].as_str().unwrap().starts_with("oci://") {
                        problem("url is not an oci:// image".into());
                    }
                }
                _ => unreachable!(),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

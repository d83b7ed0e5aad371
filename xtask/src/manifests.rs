//! The Kubernetes manifests of every packaged filter, one generator for every control plane:
//!
//! - `istio/<filter>.yaml`: Istio `WasmPlugin` (`extensions.istio.io/v1alpha1`);
//! - `envoy-gateway/<filter>.yaml`: Envoy Gateway `EnvoyExtensionPolicy`
//!   (`gateway.envoyproxy.io/v1alpha1`) loading the OCI image, and
//!   `envoy-gateway/<filter>-http.yaml`: the same policy loading the `.wasm` over HTTPS (apply
//!   one of the two);
//! - `higress/<filter>.yaml`: Higress `WasmPlugin` (`extensions.higress.io/v1alpha1`).
//!
//! Safe by default, so applying one unedited does no harm:
//! - the plugin covers nothing until its placeholder target is edited (Istio
//!   `selector.matchLabels: {app: REPLACE-ME}`, an Envoy Gateway `targetRefs` to the HTTPRoute
//!   `REPLACE-ME`, Higress `defaultConfigDisable: true` with a `matchRules` entry for the
//!   ingress `REPLACE-ME`), never the whole namespace or mesh;
//! - Istio `match: [{mode: <istio.mode>}]` (`SERVER` for the auth and policy filters: inbound
//!   traffic only, so a workload's outbound calls keep their `Authorization`);
//! - the plugin config is the hub manifest's `kubernetes.example` when it names one (jwt-auth:
//!   a remote JWKS placeholder instead of the repository's test keys), and its `note` heads
//!   the file;
//! - images pinned by digest: `sha256` is the compat image's manifest digest (what Istio,
//!   Envoy Gateway and Higress compare for an OCI URL), or the module's own sha256 for the
//!   HTTP source.
//!
//! A filter whose module serves L4 (`network` in its manifest's contexts, checked against the
//! module's exports when it is packaged) also gets `istio/<filter>-tcp.yaml`: a `WasmPlugin` of
//! `type: NETWORK` (Istio puts it in the listener's network filter chain, before `tcp_proxy`
//! or the HTTP connection manager) carrying the manifest's L4 config (`network.example`). A
//! filter that serves only L4 gets that plugin as `istio/<filter>.yaml`. Envoy Gateway and
//! Higress load HTTP filters only (Envoy Gateway adds every `wasm` entry to the HTTP
//! connection manager; Higress' `WasmPlugin` has no `type`), so they get no L4 manifest. The output is a pure function of the inputs (no dates, sorted keys), so
//! `integration/tests/hub.rs` regenerates the checked-in copies and compares them byte for byte.

use crate::package::{FilterMeta, Packaged, Variant};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The placeholder an operator must replace before applying a manifest.
pub const PLACEHOLDER: &str = "REPLACE-ME";

/// The control planes, as the directories their manifests go to.
pub const DIRS: [&str; 3] = ["istio", "envoy-gateway", "higress"];

/// What the manifests of one filter point at.
pub struct Target<'a> {
    pub meta: &'a FilterMeta,
    /// `host[:port]/path/<filter>:<tag>`, without a scheme.
    pub image: String,
    /// The compat image's manifest digest, `sha256:<hex>`.
    pub image_digest: String,
    /// The module's own sha256 (hex).
    pub wasm_sha256: String,
    /// The tag (for the HTTP source's file name).
    pub tag: String,
}

impl Target<'_> {
    fn digest_hex(&self) -> &str {
        self.image_digest.trim_start_matches("sha256:")
    }

    fn fail_closed(&self) -> bool {
        self.meta.failure_policy != "FAIL_OPEN"
    }

    /// The first header lines every manifest shares.
    fn header(&self, what: &str, out: &mut String) {
        let m = self.meta;
        let _ = writeln!(out, "# {} {} for {what}.", m.name, m.version);
        let _ = writeln!(
            out,
            "# Generated from hub-manifest/{}/manifest.json and dist/{}.wasm by `make wasmplugins`",
            m.name, m.name
        );
        let _ = writeln!(
            out,
            "# (or `make publish`): do not edit; integration/tests/hub.rs fails when it is stale."
        );
        let _ = writeln!(out, "#");
        let _ = writeln!(
            out,
            "# Edit before applying (every {PLACEHOLDER} is a placeholder that selects nothing):"
        );
    }
}

/// The note of `kubernetes.note`, wrapped as comment lines.
fn note_lines(meta: &FilterMeta, out: &mut String) {
    let Some(note) = &meta.kubernetes_note else {
        return;
    };
    let mut line = String::from("#   - plugin config:");
    for word in note.split_whitespace() {
        if line.len() + 1 + word.len() > 96 {
            let _ = writeln!(out, "{line}");
            line = String::from("#     ");
            line.push_str(word);
        } else {
            line.push(' ');
            line.push_str(word);
        }
    }
    let _ = writeln!(out, "{line}");
}

/// Which of a filter's contexts an Istio `WasmPlugin` deploys.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PluginType {
    /// `type: HTTP`: `envoy.filters.http.wasm` in the HTTP connection manager.
    Http,
    /// `type: NETWORK`: `envoy.filters.network.wasm` in the listener's filter chain.
    Network,
}

/// Istio `WasmPlugin` of the given type; `name` is its `metadata.name`.
pub fn istio(t: &Target<'_>, kind: PluginType, name: &str) -> String {
    let m = t.meta;
    let mut y = String::new();
    let what = match kind {
        PluginType::Http => "Istio (WasmPlugin)",
        PluginType::Network => "Istio (WasmPlugin, type NETWORK: the L4 filter)",
    };
    t.header(what, &mut y);
    let _ = writeln!(
        y,
        "#   - spec.selector.matchLabels: the workloads to run it on (or use spec.targetRefs)."
    );
    let config = match kind {
        PluginType::Http => {
            note_lines(m, &mut y);
            m.kubernetes_config.clone()
        }
        PluginType::Network => {
            let _ = writeln!(
                y,
                "#   - match[].ports (optional): a NETWORK plugin runs on every inbound connection of
#     the selected workloads, HTTP ones too (before the HTTP connection manager); list your
#     TCP ports to keep it to them."
            );
            m.network_config
                .clone()
                .unwrap_or_else(|| m.kubernetes_config.clone())
        }
    };
    let _ = writeln!(
        y,
        "# sha256 is the image manifest digest (Istio compares it with the pulled image's).
# match: mode {mode} runs the plugin on {traffic} only.",
        mode = m.traffic_mode,
        traffic = match m.traffic_mode.as_str() {
            "SERVER" => "the workloads' inbound traffic",
            "CLIENT" => "the workloads' outbound traffic",
            _ => "inbound and outbound traffic",
        }
    );
    let spec = [
        ("selector", json!({"matchLabels": {"app": PLACEHOLDER}})),
        ("url", json!(format!("oci://{}", t.image))),
        ("sha256", json!(t.digest_hex())),
        ("imagePullPolicy", json!("IfNotPresent")),
        ("pluginName", json!(m.root_id)),
        (
            "type",
            json!(match kind {
                PluginType::Http => "HTTP",
                PluginType::Network => "NETWORK",
            }),
        ),
        ("phase", json!(m.phase)),
        ("priority", json!(m.priority)),
        ("failStrategy", json!(fail_strategy(t))),
        ("match", json!([{"mode": m.traffic_mode}])),
        ("pluginConfig", config),
    ];
    document(
        "extensions.istio.io/v1alpha1",
        "WasmPlugin",
        json!({"name": name}),
        &spec,
        &mut y,
    );
    y
}

/// Envoy Gateway `EnvoyExtensionPolicy`; `http` picks the HTTP source over the OCI image.
pub fn envoy_gateway(t: &Target<'_>, http: bool) -> String {
    let m = t.meta;
    let mut y = String::new();
    t.header("Envoy Gateway (EnvoyExtensionPolicy)", &mut y);
    let _ = writeln!(
        y,
        "#   - spec.targetRefs: the HTTPRoute (or Gateway) to attach it to."
    );
    if http {
        let _ = writeln!(
            y,
            "#   - code.http.url: where your Envoys can download {}.wasm (sha256 pins its content).",
            m.name
        );
    }
    note_lines(m, &mut y);
    let (other, how) = if http {
        (
            format!("{}.yaml", m.name),
            "the module over HTTPS; sha256 is the module's own",
        )
    } else {
        (
            format!("{}-http.yaml", m.name),
            "the OCI image; sha256 is the image manifest digest",
        )
    };
    let _ = writeln!(y, "# Loads {how}.");
    let _ = writeln!(y, "# Apply this file or {other}, not both.");
    let code = if http {
        json!({
            "type": "HTTP",
            "http": {
                "url": format!("https://{PLACEHOLDER}.example.com/envoy-wasm-filters/{}-{}.wasm", m.name, t.tag),
                "sha256": t.wasm_sha256,
            },
        })
    } else {
        json!({
            "type": "Image",
            "image": {"url": t.image, "sha256": t.digest_hex()},
        })
    };
    let spec = [
        (
            "targetRefs",
            json!([{
                "group": "gateway.networking.k8s.io",
                "kind": "HTTPRoute",
                "name": PLACEHOLDER,
            }]),
        ),
        ("wasm", Value::Null),
    ];
    let name = if http {
        format!("{}-http", m.name)
    } else {
        m.name.clone()
    };
    document(
        "gateway.envoyproxy.io/v1alpha1",
        "EnvoyExtensionPolicy",
        json!({"name": name}),
        spec.get(..1).unwrap_or(&[]),
        &mut y,
    );
    // spec.wasm: one entry, its config last.
    let _ = writeln!(y, "  wasm:");
    let _ = writeln!(y, "  - name: {}", json!(m.name));
    fields(
        &[
            ("rootID", json!(m.root_id)),
            ("code", code),
            ("failOpen", json!(!t.fail_closed())),
            ("config", m.kubernetes_config.clone()),
        ],
        4,
        &mut y,
    );
    y
}

/// Higress `WasmPlugin`.
pub fn higress(t: &Target<'_>) -> String {
    let m = t.meta;
    let mut y = String::new();
    t.header("Higress (WasmPlugin)", &mut y);
    let _ = writeln!(
        y,
        "#   - spec.matchRules: the ingresses (namespace/name) or domains to run it on; the config"
    );
    let _ = writeln!(
        y,
        "#     of a matching rule is what those routes get. defaultConfigDisable: true keeps it off"
    );
    let _ = writeln!(
        y,
        "#     every other route of the gateway (set false to apply defaultConfig everywhere)."
    );
    note_lines(m, &mut y);
    let _ = writeln!(
        y,
        "# Higress reads WasmPlugins in its own namespace (higress-system by default).
# sha256 is the image manifest digest."
    );
    let spec = [
        ("url", json!(format!("oci://{}", t.image))),
        ("sha256", json!(t.digest_hex())),
        ("imagePullPolicy", json!("IfNotPresent")),
        ("pluginName", json!(m.root_id)),
        ("phase", json!(m.phase)),
        ("priority", json!(m.priority)),
        ("failStrategy", json!(fail_strategy(t))),
        ("defaultConfigDisable", json!(true)),
        ("defaultConfig", m.kubernetes_config.clone()),
        (
            "matchRules",
            json!([{"ingress": [format!("default/{PLACEHOLDER}")], "config": m.kubernetes_config}]),
        ),
    ];
    document(
        "extensions.higress.io/v1alpha1",
        "WasmPlugin",
        json!({"name": m.name, "namespace": "higress-system"}),
        &spec,
        &mut y,
    );
    y
}

fn fail_strategy(t: &Target<'_>) -> &'static str {
    if t.fail_closed() {
        "FAIL_CLOSE"
    } else {
        "FAIL_OPEN"
    }
}

/// `apiVersion`, `kind`, `metadata`, then `spec` with its fields in the order given.
fn document(
    api_version: &str,
    kind: &str,
    metadata: Value,
    spec: &[(&str, Value)],
    out: &mut String,
) {
    let _ = writeln!(out, "apiVersion: {api_version}");
    let _ = writeln!(out, "kind: {kind}");
    let _ = writeln!(out, "metadata:");
    yaml_value(&metadata, 2, out);
    let _ = writeln!(out, "spec:");
    fields(spec, 2, out);
}

/// Named fields at `indent`, in the order given.
fn fields(fields: &[(&str, Value)], indent: usize, out: &mut String) {
    for (key, value) in fields {
        let mut one = serde_json::Map::new();
        one.insert((*key).to_string(), value.clone());
        yaml_value(&Value::Object(one), indent, out);
    }
}

/// A JSON value as block YAML at `indent`: keys sorted (serde_json's map), strings
/// JSON-quoted (YAML reads a JSON string as the same string), numbers and booleans bare.
pub fn yaml_value(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let key = |k: &str| {
        if !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        {
            k.to_string()
        } else {
            Value::from(k).to_string()
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                match val {
                    Value::Object(x) if !x.is_empty() => {
                        let _ = writeln!(out, "{pad}{}:", key(k));
                        yaml_value(val, indent + 2, out);
                    }
                    Value::Array(x) if !x.is_empty() => {
                        let _ = writeln!(out, "{pad}{}:", key(k));
                        yaml_value(val, indent, out);
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}{}: {}", key(k), scalar(val));
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                match item {
                    Value::Object(x) if !x.is_empty() => {
                        let mut inner = String::new();
                        yaml_value(item, indent + 2, &mut inner);
                        // "- " replaces the first line's indentation.
                        let first = inner.get(indent + 2..).unwrap_or("");
                        let _ = write!(out, "{pad}- {first}");
                    }
                    Value::Array(x) if !x.is_empty() => {
                        let _ = writeln!(out, "{pad}- {}", item);
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}- {}", scalar(item));
                    }
                }
            }
        }
        _ => {
            let _ = writeln!(out, "{pad}{}", scalar(v));
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

/// Writes every manifest of every packaged filter under `out_dir/{istio,envoy-gateway,higress}/`.
/// `image` maps a filter name and tag to its image reference (without a scheme).
pub fn write_all(
    packaged: &[Packaged],
    tags: &[String],
    image: &dyn Fn(&str, &str) -> String,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    for dir in DIRS {
        let d = out_dir.join(dir);
        fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let mut written = Vec::new();
    let mut write = |rel: String, text: String| -> Result<(), String> {
        let path = out_dir.join(rel);
        fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        written.push(path);
        Ok(())
    };
    for (p, tag) in packaged.iter().zip(tags) {
        let compat = p
            .images
            .iter()
            .find(|i| i.variant == Variant::Compat)
            .ok_or("no compat image")?;
        let t = Target {
            meta: &p.meta,
            image: image(&p.meta.name, tag),
            image_digest: compat.manifest_digest.clone(),
            wasm_sha256: p.wasm_sha256.clone(),
            tag: tag.clone(),
        };
        let name = &p.meta.name;
        if p.meta.http {
            write(
                format!("istio/{name}.yaml"),
                istio(&t, PluginType::Http, name),
            )?;
        }
        if p.meta.network {
            // Beside the HTTP plugin, or alone for an L4-only filter.
            let l4 = if p.meta.http {
                format!("{name}-tcp")
            } else {
                name.clone()
            };
            write(
                format!("istio/{l4}.yaml"),
                istio(&t, PluginType::Network, &l4),
            )?;
        }
        if p.meta.http {
            write(
                format!("envoy-gateway/{name}.yaml"),
                envoy_gateway(&t, false),
            )?;
            write(
                format!("envoy-gateway/{name}-http.yaml"),
                envoy_gateway(&t, true),
            )?;
            write(format!("higress/{name}.yaml"), higress(&t))?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_of_a_config() {
        let mut y = String::new();
        yaml_value(
            &json!({"rules": [{"name": "a", "match": {"prefix": "/x"}, "request": {"remove": ["x-a", "x-b"], "set": []}}], "n": 3, "odd key": true}),
            2,
            &mut y,
        );
        assert_eq!(
            y,
            "  n: 3\n  \"odd key\": true\n  rules:\n  - match:\n      prefix: \"/x\"\n    name: \"a\"\n    request:\n      remove:\n      - \"x-a\"\n      - \"x-b\"\n      set: []\n"
        );
    }
}

//! JSON Schema of a filter's configuration, generated from its serde types, and the checks
//! that keep a filter's hub manifest honest (feature `schema`; validation needs
//! `schema-validate`). Host-side only: never compiled into a `.wasm`.
//!
//! The config types derive [`schemars::JsonSchema`] next to [`crate::FromJson`]
//! (`#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]`); both derives read the
//! same `#[serde(...)]` attributes (`deny_unknown_fields`, `default`, `rename`, `Option`), so
//! they shape the schema exactly as they shape parsing. The checked-in `hub-manifest/<filter>/config.schema.json` is compared with
//! the generated schema by each filter's `tests/schema.rs`; set `UPDATE_SCHEMAS=1` to rewrite
//! it:
//!
//! ```text
//! UPDATE_SCHEMAS=1 cargo test -p my-filter --all-features --test schema
//! ```
//!
//! A filter's whole hub check is one call (see `filters/template/tests/schema.rs`):
//!
//! ```no_run
//! # #[derive(schemars::JsonSchema)] struct RawConfig {}
//! # fn parse(_: &[u8]) -> Result<(), sdk_ext::config::ConfigError> { Ok(()) }
//! let report = sdk_ext::schema::check_filter::<RawConfig>(&sdk_ext::package_info!(), "my-filter", parse);
//! assert!(report.is_ok(), "{report:?}");
//! ```
//!
//! Nothing here panics: every problem is returned as text for the test to report.

use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

pub use schemars::JsonSchema;

/// Environment variable that makes [`check_current`] rewrite a stale schema file.
pub const UPDATE_ENV: &str = "UPDATE_SCHEMAS";

/// File name of the generated schema inside `hub-manifest/<filter>/`.
pub const SCHEMA_FILE: &str = "config.schema.json";

/// File name of the hand-written manifest inside `hub-manifest/<filter>/`.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The JSON Schema (draft 2020-12) of `T`.
pub fn generate<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

/// `generate::<T>()` as the exact text of the checked-in file (pretty, sorted keys, `\n`).
pub fn render<T: JsonSchema>() -> String {
    let mut text = serde_json::to_string_pretty(&generate::<T>()).unwrap_or_default();
    text.push('\n');
    text
}

/// What [`check_current`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The file equals the generated schema.
    Current,
    /// The file was stale or missing and `UPDATE_SCHEMAS=1` rewrote it.
    Updated,
}

fn update_requested() -> bool {
    std::env::var(UPDATE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// First differing line of two texts, for a readable "stale" message.
fn first_difference(old: &str, new: &str) -> String {
    let mut old_lines = old.lines();
    let mut new_lines = new.lines();
    let mut n = 1;
    loop {
        match (old_lines.next(), new_lines.next()) {
            (Some(a), Some(b)) if a == b => n += 1,
            (None, None) => return "no line differs (whitespace at the end?)".into(),
            (a, b) => {
                return format!(
                    "first difference at line {n}:\n  checked in: {}\n  generated:  {}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                )
            }
        }
    }
}

/// Compares `path` with the schema generated from `T`. Stale or missing: an error that says
/// where it differs and how to regenerate, or, with `UPDATE_SCHEMAS=1`, rewrites the file.
pub fn check_current<T: JsonSchema>(path: &Path) -> Result<Freshness, String> {
    check_file::<T>(path, update_requested())
}

/// [`check_current`] with the rewrite decided by the caller.
pub fn check_file<T: JsonSchema>(path: &Path, update: bool) -> Result<Freshness, String> {
    let generated = render::<T>();
    let existing = fs::read_to_string(path).ok();
    if existing.as_deref() == Some(generated.as_str()) {
        return Ok(Freshness::Current);
    }
    if update {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        fs::write(path, &generated).map_err(|e| format!("writing {}: {e}", path.display()))?;
        return Ok(Freshness::Updated);
    }
    let why = match &existing {
        None => "is missing".to_string(),
        Some(old) => format!(
            "is stale (the config types changed): {}",
            first_difference(old, &generated)
        ),
    };
    Err(format!(
        "{} {why}\n  regenerate it with: {UPDATE_ENV}=1 cargo test --all-features --test schema -p <this filter>",
        path.display()
    ))
}

/// The calling crate's Cargo metadata; build it with [`package_info!`](crate::package_info).
#[derive(Debug, Clone)]
pub struct PackageInfo {
    /// `CARGO_MANIFEST_DIR` (`<repo>/filters/<dir>`).
    pub dir: &'static str,
    /// `CARGO_PKG_NAME`: the manifest's `name` in a standalone crate (which has its own
    /// `hub-manifest/`); in this repository's layout the name is the directory's.
    pub name: &'static str,
    /// `CARGO_PKG_VERSION`.
    pub version: &'static str,
    /// `CARGO_PKG_DESCRIPTION`.
    pub description: &'static str,
    /// `CARGO_PKG_LICENSE`.
    pub license: &'static str,
}

/// The calling crate's [`PackageInfo`] (expands `env!` in the caller, so the values are the
/// filter's own, not sdk-ext's).
#[macro_export]
macro_rules! package_info {
    () => {
        $crate::schema::PackageInfo {
            dir: env!("CARGO_MANIFEST_DIR"),
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            description: env!("CARGO_PKG_DESCRIPTION"),
            license: env!("CARGO_PKG_LICENSE"),
        }
    };
}

/// A filter crate's `tests/schema.rs`, whole: the hub manifest, the schema generated from
/// `RawConfig` and every example agree ([`check_filter`](crate::schema::check_filter)), and
/// each `refused` document is refused by both the schema and `Config::parse`
/// ([`check_refused`](crate::schema::check_refused)).
///
/// ```ignore
/// sdk_ext::schema_tests! {
///     config: my_filter::config,   // holds `Config` (with `parse`) and `RawConfig`
///     name: my_filter::NAME,       // the root id
///     refused: [r#"{"unknown": 1}"#, r#"{"status": "403"}"#],
/// }
/// ```
#[macro_export]
macro_rules! schema_tests {
    (config: $($config:ident)::+, name: $name:path, refused: [$($bad:expr),* $(,)?] $(,)?) => {
        fn parse(json: &[u8]) -> ::core::result::Result<(), $crate::config::ConfigError> {
            $($config)::+::Config::parse(json).map(drop)
        }

        #[test]
        fn manifest_schema_and_examples_agree() {
            match $crate::schema::check_filter::<$($config)::+::RawConfig>(
                &$crate::package_info!(),
                $name,
                parse,
            ) {
                Ok(report) => assert!(!report.examples.is_empty()),
                Err(e) => panic!("{e}"),
            }
        }

        #[test]
        fn invalid_configs_fail_the_schema_and_the_filter() {
            let schema = $crate::schema::generate::<$($config)::+::RawConfig>();
            for bad in [$($bad),*] {
                if let Err(e) = $crate::schema::check_refused(&schema, &parse, bad) {
                    panic!("{e}");
                }
            }
        }
    };
}

/// The filter's category on a hub (the Higress categories, plus `transformation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Authentication and authorisation.
    Auth,
    /// Blocking, allow/deny lists, WAF-like checks.
    Security,
    /// Header and body rewriting.
    Transformation,
    /// Rate limiting, routing decisions.
    FlowControl,
    /// Metrics, logs, traces.
    FlowMonitor,
    /// Protocol conversion.
    Protocol,
    /// Anything else.
    Custom,
}

/// Which proxy-wasm contexts the filter registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Context {
    /// An HTTP filter (`envoy.filters.http.wasm`; Istio `type: HTTP`).
    Http,
    /// A network (L4) filter (`envoy.filters.network.wasm`; Istio `type: NETWORK`).
    Network,
}

/// Istio's `WasmPlugin.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Before Istio's authentication filters.
    Authn,
    /// Before Istio's authorisation filters.
    Authz,
    /// Before Istio's stats filters.
    Stats,
    /// Just before the router.
    UnspecifiedPhase,
}

/// Where Istio places the filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IstioPlacement {
    /// `WasmPlugin.phase`.
    pub phase: Phase,
    /// `WasmPlugin.priority` (higher runs first within a phase).
    pub priority: i32,
    /// `WasmPlugin.match[].mode`: the traffic the plugin runs on. `SERVER` (inbound only) for
    /// auth and policy filters, so a workload's own outbound calls are left alone.
    pub mode: TrafficMode,
}

/// Istio's `WorkloadMode` (`WasmPlugin.match[].mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficMode {
    /// Inbound traffic of the selected workloads.
    Server,
    /// Their outbound traffic.
    Client,
    /// Both.
    ClientAndServer,
}

/// What the generated Kubernetes manifests (Istio, Envoy Gateway, Higress) carry when the
/// manifest's `example` is not fit to deploy (it trusts test keys, say).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesExample {
    /// The plugin config: a file under the crate's `examples/` (checked like the others).
    pub example: String,
    /// What an operator must edit before applying it (printed in each manifest's header).
    pub note: String,
}

/// The L4 side of a filter that registers a network context: the plugin config its
/// network filter (`envoy.filters.network.wasm`, Istio `type: NETWORK`) is deployed with.
/// An HTTP example seldom fits there (per-route rules need a request), so it is its own file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkExample {
    /// The L4 plugin config: a file under the crate's `examples/` (checked like the others).
    pub example: String,
}

/// What happens when the VM fails (Envoy's `failure_policy`; Istio's `failStrategy` is
/// `FAIL_CLOSE` / `FAIL_OPEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailurePolicy {
    /// Deny traffic when the filter cannot run.
    FailClosed,
    /// Let traffic through when the filter cannot run.
    FailOpen,
}

/// `hub-manifest/<filter>/manifest.json`: what a hub and a control plane need to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HubManifest {
    /// The image name: the filter's directory (`filters/<name>`, `dist/<name>.wasm`).
    pub name: String,
    /// The crate version (checked).
    pub version: String,
    /// The crate description (checked).
    pub description: String,
    /// Hub category.
    pub category: Category,
    /// Who maintains it.
    pub authors: Vec<String>,
    /// SPDX licence (the crate's, checked).
    pub license: String,
    /// The proxy-wasm ABI the module exports, e.g. `0.2.1` (`proxy_abi_version_0_2_1`).
    pub abi_version: String,
    /// The root id to configure (`root_id` in Envoy, `pluginName` in Istio).
    pub root_id: String,
    /// The contexts it registers.
    pub contexts: Vec<Context>,
    /// Istio placement.
    pub istio: IstioPlacement,
    /// The failure policy the shipped configs use.
    pub failure_policy: FailurePolicy,
    /// The generated config schema file, relative to the manifest (`config.schema.json`).
    pub config_schema: String,
    /// An example configuration (equal to one of `examples/*.json`).
    pub example: Value,
    /// The config for the Kubernetes manifests, when `example` is not fit to deploy.
    #[serde(default)]
    pub kubernetes: Option<KubernetesExample>,
    /// The L4 config (required when `contexts` has `network`): what the generated Istio
    /// `WasmPlugin` of `type: NETWORK` carries.
    #[serde(default)]
    pub network: Option<NetworkExample>,
}

/// The ABI versions the proxy-wasm Rust SDK can export.
pub const KNOWN_ABI_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.2.1"];

/// Where a filter's hub files are: `<repo>/hub-manifest/<dir name of the crate>/` in this
/// repository's layout, or `<crate>/hub-manifest/` for a standalone filter crate (what
/// `make new-filter NAME=x OUT=dir` writes) when that directory holds a `manifest.json`.
pub fn hub_dir(crate_dir: &Path) -> Result<PathBuf, String> {
    let own = crate_dir.join("hub-manifest");
    if own.join(MANIFEST_FILE).is_file() {
        return Ok(own);
    }
    let name = crate_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: no directory name", crate_dir.display()))?;
    let repo = crate_dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: not under <repo>/filters/", crate_dir.display()))?;
    Ok(repo.join("hub-manifest").join(name))
}

/// Reads and parses `manifest.json`, and checks it against the crate's own metadata.
pub fn load_manifest(pkg: &PackageInfo, root_id: &str) -> Result<HubManifest, String> {
    let crate_dir = Path::new(pkg.dir);
    let path = hub_dir(crate_dir)?.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let m: HubManifest =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let standalone = crate_dir.join("hub-manifest").join(MANIFEST_FILE).is_file();
    let dir_name = if standalone {
        pkg.name
    } else {
        crate_dir.file_name().and_then(|n| n.to_str()).unwrap_or("")
    };
    let mut problems = Vec::new();
    let mut expect = |what: &str, got: &str, want: &str| {
        if got != want {
            problems.push(format!("{what} is {got:?}, expected {want:?}"));
        }
    };
    expect("name", &m.name, dir_name);
    expect("version", &m.version, pkg.version);
    expect("description", &m.description, pkg.description);
    expect("license", &m.license, pkg.license);
    expect("rootId", &m.root_id, root_id);
    expect("configSchema", &m.config_schema, SCHEMA_FILE);
    if m.authors.is_empty() || m.authors.iter().any(|a| a.trim().is_empty()) {
        problems.push("authors must name at least one author".into());
    }
    if let Some(k) = &m.kubernetes {
        let file = crate_dir.join(&k.example);
        if !k.example.starts_with("examples/") || k.example.contains("..") || !file.is_file() {
            problems.push(format!(
                "kubernetes.example {:?} is not a file under examples/",
                k.example
            ));
        }
        if k.note.trim().is_empty() {
            problems.push("kubernetes.note must say what to edit".into());
        }
    }
    if m.contexts.is_empty() {
        problems.push("contexts must list http and/or network".into());
    }
    match (&m.network, m.contexts.contains(&Context::Network)) {
        (Some(n), true) => {
            let file = crate_dir.join(&n.example);
            if !n.example.starts_with("examples/") || n.example.contains("..") || !file.is_file() {
                problems.push(format!(
                    "network.example {:?} is not a file under examples/",
                    n.example
                ));
            }
        }
        (None, true) => problems.push(
            "contexts has network: name its L4 config in network.example (a file under examples/)"
                .into(),
        ),
        (Some(_), false) => {
            problems.push("network.example is set but contexts has no network".into())
        }
        (None, false) => {}
    }
    if !KNOWN_ABI_VERSIONS.contains(&m.abi_version.as_str()) {
        problems.push(format!(
            "abiVersion {:?} is not one of {KNOWN_ABI_VERSIONS:?}",
            m.abi_version
        ));
    }
    if problems.is_empty() {
        Ok(m)
    } else {
        Err(format!("{}: {}", path.display(), problems.join("; ")))
    }
}

#[cfg(feature = "schema-validate")]
pub use validate::*;

#[cfg(feature = "schema-validate")]
mod validate {
    use super::*;

    /// Every violation of `schema` by `instance`, as `"<json pointer>: <reason>"`.
    pub fn violations(schema: &Value, instance: &Value) -> Result<Vec<String>, String> {
        let validator =
            jsonschema::validator_for(schema).map_err(|e| format!("invalid schema: {e}"))?;
        Ok(validator
            .iter_errors(instance)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/" } else { &at })
            })
            .collect())
    }

    /// A config parser reduced to "accepted / refused with a reason".
    pub type Parser<'a> = &'a dyn Fn(&[u8]) -> Result<(), crate::config::ConfigError>;

    /// Checks one config against both the schema and the filter's own parser; they must
    /// agree that it is valid.
    pub fn check_valid(
        schema: &Value,
        parse: Parser<'_>,
        label: &str,
        json: &str,
    ) -> Result<Value, String> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("{label}: not JSON: {e}"))?;
        let v = violations(schema, &value)?;
        if !v.is_empty() {
            return Err(format!(
                "{label}: does not validate against the schema: {}",
                v.join("; ")
            ));
        }
        parse(json.as_bytes()).map_err(|e| format!("{label}: the filter refuses it: {e}"))?;
        Ok(value)
    }

    /// A config that must be refused by the schema *and* by the filter's parser.
    pub fn check_refused(schema: &Value, parse: Parser<'_>, json: &str) -> Result<(), String> {
        let value: Value = serde_json::from_str(json).map_err(|e| format!("{json}: {e}"))?;
        let by_schema = !violations(schema, &value)?.is_empty();
        let by_parser = parse(json.as_bytes()).is_err();
        match (by_schema, by_parser) {
            (true, true) => Ok(()),
            (false, true) => Err(format!(
                "{json}: the filter refuses it but the schema accepts it"
            )),
            (true, false) => Err(format!(
                "{json}: the schema refuses it but the filter accepts it"
            )),
            (false, false) => Err(format!("{json}: both the schema and the filter accept it")),
        }
    }

    /// What [`check_filter`] checked.
    #[derive(Debug, Clone)]
    pub struct FilterReport {
        /// The parsed manifest.
        pub manifest: HubManifest,
        /// Whether the schema file was current or has just been rewritten.
        pub schema: Freshness,
        /// The example files validated (`examples/*.json`), sorted.
        pub examples: Vec<String>,
    }

    /// A filter's whole hub check:
    /// - `hub-manifest/<dir>/config.schema.json` equals the schema generated from `T`;
    /// - `manifest.json` parses and agrees with the crate (name = dir, version, description,
    ///   licence, root id);
    /// - every `examples/*.json` (at least one) validates against the schema and is accepted
    ///   by `parse`, and so does the manifest's `example`, which equals one of them.
    pub fn check_filter<T: JsonSchema>(
        pkg: &PackageInfo,
        root_id: &str,
        parse: impl Fn(&[u8]) -> Result<(), crate::config::ConfigError>,
    ) -> Result<FilterReport, String> {
        let crate_dir = Path::new(pkg.dir);
        let hub = hub_dir(crate_dir)?;
        let mut problems = Vec::new();
        let schema_state = check_current::<T>(&hub.join(SCHEMA_FILE)).map_err(|e| problems.push(e));
        let manifest = load_manifest(pkg, root_id).map_err(|e| problems.push(e));

        let schema = generate::<T>();
        let mut examples = Vec::new();
        let mut example_values = Vec::new();
        let dir = crate_dir.join("examples");
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            problems.push(format!("{}: no example config (*.json)", dir.display()));
        }
        for file in &files {
            let label = file
                .strip_prefix(crate_dir)
                .unwrap_or(file)
                .display()
                .to_string();
            match fs::read_to_string(file) {
                Ok(text) => match check_valid(&schema, &parse, &label, &text) {
                    Ok(v) => example_values.push(v),
                    Err(e) => problems.push(e),
                },
                Err(e) => problems.push(format!("reading {label}: {e}")),
            }
            examples.push(label);
        }
        if let Ok(m) = &manifest {
            let text = m.example.to_string();
            if let Err(e) = check_valid(&schema, &parse, "manifest.json example", &text) {
                problems.push(e);
            }
            if !example_values.contains(&m.example) {
                problems.push(
                    "manifest.json example is not one of examples/*.json (copy one in)".into(),
                );
            }
        }
        match (schema_state, manifest) {
            (Ok(schema), Ok(manifest)) if problems.is_empty() => Ok(FilterReport {
                manifest,
                schema,
                examples,
            }),
            _ => {
                let mut out = String::from("hub manifest check failed:");
                for p in problems {
                    let _ = write!(out, "\n- {p}");
                }
                Err(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_names_the_line() {
        let d = first_difference("a\nb\nc\n", "a\nx\nc\n");
        assert!(d.contains("line 2"), "{d}");
        assert!(
            d.contains("checked in: b") && d.contains("generated:  x"),
            "{d}"
        );
        assert!(first_difference("a\n", "a\nb\n").contains("<end of file>"));
    }

    #[test]
    fn hub_dir_is_beside_filters() {
        let d = hub_dir(Path::new("/r/filters/my-filter")).unwrap();
        assert_eq!(d, Path::new("/r/hub-manifest/my-filter"));
    }
}

//! Envoy bootstrap YAML for tests: admin and one listener on port 0 (discovered after start),
//! an ordered filter list, and a STATIC cluster `upstream` on 127.0.0.1:<port>.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::envoy::{validate_yaml, Envoy, StartError};
use crate::locations::{native_path, wasm_path};

/// How a filter is loaded into Envoy: the same crate, built two ways by `make build`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loading {
    /// `dist/<name>.wasm` in `envoy.filters.http.wasm` (V8).
    Wasm,
    /// `dist/lib<name>.so` in `envoy.filters.http.dynamic_modules` (native code; metrics in
    /// the same `wasmcustom.` namespace, so the same assertions hold).
    Native,
}

impl Loading {
    /// Both, in the order tests run them.
    pub const ALL: [Loading; 2] = [Loading::Wasm, Loading::Native];

    /// What [`WasmFilter::new`] uses on this thread: [`Loading::Wasm`] unless a test set
    /// another (the `each_loading!` tests do).
    pub fn current() -> Loading {
        LOADING.with(|l| l.get())
    }

    /// Makes `self` the loading of filters created on this thread from now on.
    pub fn set_current(self) {
        LOADING.with(|l| l.set(self));
    }

    /// The checked-in config at `path` for this loading: `envoy-configs/X.yaml` itself, or
    /// its dynamic-module variant `envoy-configs/native/X.yaml`.
    pub fn config(self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match (self, path.parent(), path.file_name()) {
            (Loading::Native, Some(dir), Some(file)) => dir.join("native").join(file),
            _ => path.to_path_buf(),
        }
    }
}

thread_local! {
    static LOADING: std::cell::Cell<Loading> = const { std::cell::Cell::new(Loading::Wasm) };
}

/// Writes a test once and runs it with each [`Loading`]: `each_loading! { fn name() { .. } }`
/// becomes the tests `name::wasm` and `name::native`, the body running after
/// [`Loading::set_current`] (read it with `Loading::current()`).
#[macro_export]
macro_rules! each_loading {
    ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                fn body() $body
                $(#[$meta])*
                #[test]
                fn wasm() {
                    $crate::Loading::Wasm.set_current();
                    body()
                }
                $(#[$meta])*
                #[test]
                fn native() {
                    $crate::Loading::Native.set_current();
                    body()
                }
            }
        )*
    };
}

/// A proxy-wasm filter entry (`envoy.filters.http.wasm` on an HTTP listener,
/// `envoy.filters.network.wasm` on a TCP one).
#[derive(Clone, Debug)]
pub struct WasmFilter {
    /// The plugin name (`config.name`; Envoy's logs and stats use it).
    pub name: String,
    /// The `.wasm` file.
    pub wasm: PathBuf,
    /// `config.root_id`.
    pub root_id: String,
    /// The plugin configuration (`config.configuration`, a `StringValue`).
    pub config_json: String,
    /// `failure_policy: FAIL_OPEN` instead of `FAIL_CLOSED`.
    pub fail_open: bool,
    /// Fetch the module over HTTP instead of reading `wasm` (`vm_config.code.remote`).
    pub remote: Option<RemoteCode>,
    /// `.wasm`, or the same filter as a dynamic module (`wasm` is then the `.so`).
    pub loading: Loading,
    /// `config.allow_on_headers_stop_iteration: true`: a header phase's `Pause` stops only
    /// the headers, so the body phases still run (a filter deciding on the body).
    pub stop_iteration_on_headers: bool,
}

/// `vm_config.code.remote`: Envoy fetches the module from `uri` through `cluster` (declare
/// it with [`EnvoyConfig::cluster`]) and refuses it unless its SHA-256 is `sha256`.
#[derive(Clone, Debug)]
pub struct RemoteCode {
    pub uri: String,
    pub cluster: String,
    /// Hex SHA-256 of the module.
    pub sha256: String,
}

impl WasmFilter {
    /// `dist/<name>.wasm` (panics "run `make build` first" if missing), root id = `name`,
    /// fail closed.
    /// With [`Loading::current`] `Native`, the same filter as `dist/lib<name>.so`.
    pub fn new(name: &str, config_json: impl Into<String>) -> WasmFilter {
        let loading = Loading::current();
        WasmFilter {
            name: name.to_string(),
            wasm: match loading {
                Loading::Wasm => wasm_path(name),
                Loading::Native => native_path(name),
            },
            root_id: name.to_string(),
            config_json: config_json.into(),
            fail_open: false,
            remote: None,
            loading,
            stop_iteration_on_headers: false,
        }
    }

    /// A module Envoy fetches over HTTP (e.g. a registry blob URL), checked against `sha256`.
    pub fn remote(name: &str, code: RemoteCode, config_json: impl Into<String>) -> Self {
        WasmFilter {
            name: name.to_string(),
            wasm: PathBuf::new(),
            root_id: name.to_string(),
            config_json: config_json.into(),
            fail_open: false,
            remote: Some(code),
            loading: Loading::Wasm,
            stop_iteration_on_headers: false,
        }
    }

    /// A `.wasm` file outside `dist/`.
    pub fn from_file(name: &str, wasm: impl AsRef<Path>, config_json: impl Into<String>) -> Self {
        WasmFilter {
            name: name.to_string(),
            wasm: wasm.as_ref().to_path_buf(),
            root_id: name.to_string(),
            config_json: config_json.into(),
            fail_open: false,
            remote: None,
            loading: Loading::Wasm,
            stop_iteration_on_headers: false,
        }
    }

    /// A dynamic module (`.so`) outside `dist/`, e.g. a test fixture.
    pub fn native_from_file(
        name: &str,
        so: impl AsRef<Path>,
        config_json: impl Into<String>,
    ) -> Self {
        WasmFilter {
            name: name.to_string(),
            wasm: so.as_ref().to_path_buf(),
            root_id: name.to_string(),
            config_json: config_json.into(),
            fail_open: false,
            remote: None,
            loading: Loading::Native,
            stop_iteration_on_headers: false,
        }
    }

    pub fn root_id(mut self, root_id: &str) -> Self {
        self.root_id = root_id.to_string();
        self
    }

    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Sets `allow_on_headers_stop_iteration` (Envoy ≥ 1.35): without it Envoy turns a header
    /// phase's `Pause` into "stop everything", and the body phases never run until the filter
    /// resumes.
    pub fn stop_iteration_on_headers(mut self, on: bool) -> Self {
        self.stop_iteration_on_headers = on;
        self
    }

    /// The filter entry (unindented YAML mapping) for the given filter type.
    fn render(&self, filter_name: &str, proto: &str) -> String {
        if self.loading == Loading::Native {
            return self.render_native(filter_name);
        }
        let policy = if self.fail_open {
            "FAIL_OPEN"
        } else {
            "FAIL_CLOSED"
        };
        let code = match &self.remote {
            None => format!(
                "        local:\n          filename: {}\n",
                quote(&self.wasm.to_string_lossy())
            ),
            Some(r) => format!(
                "        remote:\n          http_uri:\n            uri: {}\n            cluster: {}\n            timeout: 10s\n          sha256: {}\n          retry_policy:\n            num_retries: 0\n",
                quote(&r.uri),
                quote(&r.cluster),
                quote(&r.sha256)
            ),
        };
        format!(
            "name: {filter_name}
typed_config:
  \"@type\": {proto}
  config:
    name: {name}
    root_id: {root_id}
    failure_policy: {policy}{stop}
    configuration:
      \"@type\": type.googleapis.com/google.protobuf.StringValue
      value: {value}
    vm_config:
      runtime: envoy.wasm.runtime.v8
      code:
{code}",
            name = quote(&self.name),
            root_id = quote(&self.root_id),
            value = quote(&self.config_json),
            stop = if self.stop_iteration_on_headers {
                "\n    allow_on_headers_stop_iteration: true"
            } else {
                ""
            },
        )
    }
}

impl WasmFilter {
    /// The same filter as a dynamic module: `envoy.filters.http.dynamic_modules` loading
    /// `dist/lib<name>.so` (or the file given to [`WasmFilter::native_from_file`]) by path.
    /// Its metrics go to the `wasmcustom` namespace, as the wasm filter's do. Envoy's dynamic modules have no failure policy: a refused config fails
    /// the listener, as FAIL_CLOSED does.
    fn render_native(&self, filter_name: &str) -> String {
        let (name, proto) = if filter_name.contains(".network.") {
            (
                "envoy.filters.network.dynamic_modules",
                "type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter",
            )
        } else {
            (
                "envoy.filters.http.dynamic_modules",
                "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            )
        };
        format!(
            "name: {name}
typed_config:
  \"@type\": {proto}
  dynamic_module_config:
    module:
      local:
        filename: {module}
    metrics_namespace: wasmcustom
  filter_name: {root_id}
  filter_config:
    \"@type\": type.googleapis.com/google.protobuf.StringValue
    value: {value}
",
            module = quote(&self.wasm.to_string_lossy()),
            root_id = quote(&self.root_id),
            value = quote(&self.config_json),
        )
    }
}

/// One entry of the listener's filter list (HTTP filters before the router on an HTTP
/// listener; network filters before `tcp_proxy` on a TCP one).
#[derive(Clone, Debug)]
pub enum Filter {
    Wasm(WasmFilter),
    /// A raw YAML mapping (`name: ...` / `typed_config: ...`); indentation is normalised.
    Yaml(String),
    /// The same as JSON (rendered as a YAML flow mapping).
    Json(serde_json::Value),
}

impl From<WasmFilter> for Filter {
    fn from(w: WasmFilter) -> Filter {
        Filter::Wasm(w)
    }
}

impl From<serde_json::Value> for Filter {
    fn from(v: serde_json::Value) -> Filter {
        Filter::Json(v)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ListenerKind {
    Http,
    Tcp,
}

/// Builds an Envoy bootstrap for a test.
///
/// ```no_run
/// # use integration::{EnvoyConfig, EchoUpstream};
/// let echo = EchoUpstream::start();
/// let envoy = EnvoyConfig::http(echo.port())
///     .wasm("header_rules", "{}")
///     .yaml_filter(r#"
///         name: envoy.filters.http.header_mutation
///         typed_config:
///           "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
///     "#)
///     .start()
///     .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct EnvoyConfig {
    kind: ListenerKind,
    upstream_port: u16,
    filters: Vec<Filter>,
    routes_yaml: Option<String>,
    clusters: Vec<(String, u16)>,
}

impl EnvoyConfig {
    /// An HTTP listener (HCM, route `/` → cluster `upstream` = 127.0.0.1:`upstream_port`).
    pub fn http(upstream_port: u16) -> EnvoyConfig {
        EnvoyConfig::new(ListenerKind::Http, upstream_port)
    }

    /// A TCP listener: the network filters, then `tcp_proxy` to 127.0.0.1:`upstream_port`.
    pub fn tcp(upstream_port: u16) -> EnvoyConfig {
        EnvoyConfig::new(ListenerKind::Tcp, upstream_port)
    }

    fn new(kind: ListenerKind, upstream_port: u16) -> EnvoyConfig {
        EnvoyConfig {
            kind,
            upstream_port,
            filters: Vec::new(),
            routes_yaml: None,
            clusters: Vec::new(),
        }
    }

    /// Appends a filter (order is kept; the router / tcp_proxy always comes last).
    pub fn filter(mut self, filter: impl Into<Filter>) -> Self {
        self.filters.push(filter.into());
        self
    }

    /// Appends `WasmFilter::new(name, config_json)`.
    pub fn wasm(self, name: &str, config_json: impl Into<String>) -> Self {
        self.filter(WasmFilter::new(name, config_json))
    }

    /// Appends a raw YAML filter entry.
    pub fn yaml_filter(self, yaml: &str) -> Self {
        self.filter(Filter::Yaml(yaml.to_string()))
    }

    /// Replaces the virtual host's `routes:` list (a YAML list, e.g. with per-route
    /// `typed_per_filter_config`). The default is one route: prefix `/` → `upstream`.
    pub fn routes_yaml(mut self, yaml: &str) -> Self {
        self.routes_yaml = Some(yaml.to_string());
        self
    }

    /// Adds a STATIC cluster `name` → 127.0.0.1:`port` (for filter callouts).
    pub fn cluster(mut self, name: &str, port: u16) -> Self {
        self.clusters.push((name.to_string(), port));
        self
    }

    /// The bootstrap YAML.
    pub fn render(&self) -> String {
        let mut y = String::new();
        y.push_str(
            "admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: 0}
static_resources:
  listeners:
  - name: listener
    address:
      socket_address: {address: 127.0.0.1, port_value: 0}
    filter_chains:
    - filters:
",
        );
        match self.kind {
            ListenerKind::Http => {
                y.push_str(
                    "      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local_route
            virtual_hosts:
            - name: backend
              domains: [\"*\"]
              routes:
",
                );
                let routes = self.routes_yaml.as_deref().unwrap_or(
                    "- match: {prefix: \"/\"}\n  route: {cluster: upstream, timeout: 15s}",
                );
                y.push_str(&indent(&dedent(routes), 14));
                y.push_str("          http_filters:\n");
                for f in &self.filters {
                    y.push_str(&list_item(
                        &self.render_filter(
                            f,
                            "envoy.filters.http.wasm",
                            "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                        ),
                        10,
                    ));
                }
                y.push_str(
                    "          - name: envoy.filters.http.router
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
",
                );
            }
            ListenerKind::Tcp => {
                for f in &self.filters {
                    y.push_str(&list_item(
                        &self.render_filter(
                            f,
                            "envoy.filters.network.wasm",
                            "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
                        ),
                        6,
                    ));
                }
                y.push_str(
                    "      - name: envoy.filters.network.tcp_proxy
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: upstream
",
                );
            }
        }
        y.push_str("  clusters:\n");
        let upstream = ("upstream".to_string(), self.upstream_port);
        for (name, port) in std::iter::once(&upstream).chain(&self.clusters) {
            let _ = write!(
                y,
                "  - name: {name}
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {port}}}
",
                name = quote(name),
            );
        }
        y
    }

    fn render_filter(&self, f: &Filter, wasm_filter_name: &str, wasm_proto: &str) -> String {
        match f {
            Filter::Wasm(w) => w.render(wasm_filter_name, wasm_proto),
            Filter::Yaml(s) => dedent(s),
            Filter::Json(v) => v.to_string(),
        }
    }

    /// Renders and starts Envoy on it.
    pub fn start(&self) -> Result<Envoy, StartError> {
        Envoy::start(&self.render())
    }

    /// Renders and starts Envoy with extra command-line arguments.
    pub fn start_with_args(&self, args: &[&str]) -> Result<Envoy, StartError> {
        Envoy::start_with_args(&self.render(), args)
    }

    /// Renders and runs `envoy --mode validate` on it.
    pub fn validate(&self) -> (bool, String) {
        validate_yaml(&self.render())
    }
}

/// A YAML double-quoted scalar (a JSON string is one).
fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Strips blank leading/trailing lines and the common indentation.
fn dedent(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let first = lines.iter().position(|l| !l.trim().is_empty());
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let (Some(first), Some(last)) = (first, last) else {
        return String::new();
    };
    let body = &lines[first..=last];
    let common = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|l| l.get(common..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Indents every line of a block by `n` spaces.
fn indent(block: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    block
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{pad}{l}\n")
            }
        })
        .collect()
}

/// Renders a mapping as a list item at indentation `n` (`- ` before the first line). A
/// block that already starts with `- ` is only indented.
fn list_item(block: &str, n: usize) -> String {
    let block = dedent(block);
    if block.starts_with("- ") {
        return indent(&block, n);
    }
    let pad = " ".repeat(n);
    let mut out = String::new();
    for (i, line) in block.lines().enumerate() {
        if i == 0 {
            let _ = writeln!(out, "{pad}- {line}");
        } else if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}  {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedent_and_list_item() {
        let s = "\n      name: a\n      typed_config:\n        x: 1\n    ";
        assert_eq!(dedent(s), "name: a\ntyped_config:\n  x: 1");
        assert_eq!(
            list_item(s, 4),
            "    - name: a\n      typed_config:\n        x: 1\n"
        );
        assert_eq!(list_item("- name: b\n  k: v", 2), "  - name: b\n    k: v\n");
    }

    #[test]
    fn quote_is_json() {
        assert_eq!(quote(r#"{"a":"b\n"}"#), r#""{\"a\":\"b\\n\"}""#);
    }
}

//! `cargo run -p xtask -- bench` (`make bench`): the side-by-side benchmark of header editing in a
//! real Envoy.
//!
//! Protocol (the project's standard for every later benchmark):
//!
//! - One upstream Envoy (`--concurrency 1`, a `direct_response` 200) lives for the whole run.
//! - For every round and every variant a **fresh** front Envoy (`--concurrency 1`) is started with
//!   that variant's HTTP filters in front of the router, checked (it must really do its edits),
//!   warmed up, measured with `wrk` over keep-alive connections, then stopped. Variants are
//!   interleaved (round 1: all variants, round 2: all variants, ...; the starting variant rotates).
//! - With two or more CPUs and `taskset`, the front Envoy runs on CPU 0 and the upstream Envoy and
//!   `wrk` on CPU 1.
//! - Measured per run: requests/s and completed requests (from `wrk`), and the front Envoy's CPU
//!   time (utime + stime from `/proc/<pid>/stat`) over the run, divided by the requests.
//! - Reported: medians over rounds, and ratios of medians to `no-filter` (always measured as the
//!   baseline). Results go to stdout and `target/bench/results.md`.
//! - Paired: every measured front runs beside a second, no-filter front on the same CPU, both
//!   loaded at the same time by their own `wrk`. Both see the same machine at the same moment
//!   (other jobs, steal time, frequency), so the ratio of their CPU per request cancels the noise
//!   that separates runs taken seconds apart (±10-20 % on a shared 2-vCPU VM, against ±1-3 % for
//!   the paired ratio). The paired ratios are the precise view and drive the target check.
//! - Every process runs at niceness -10 when run as root (`--nice`), ahead of other jobs.
//! - Also measured: the upstream Envoy's CPU per request (shared by both fronts), a control.
//!
//! This is a tool, not a test: the targets are printed beside the numbers, never asserted. It
//! exits non-zero only when the setup fails (missing tool, Envoy not starting, a variant not
//! doing its edits, failed requests).
//!
//! JWT rows (`native-jwt-*`, `jwt-auth-*`): Envoy's native `jwt_authn` and the `jwt-auth` filter
//! with the SAME provider (issuer `https://issuer.example.com`, audience `api.example.com`, the
//! JWKS of `filters/jwt-auth/testdata/jwks.json` inline, `jwt_cache_config.jwt_cache_size: 100`,
//! one rule `prefix: /` requiring it, token not forwarded), RS256 and ES256, each loaded with
//! either the same token on every request (`-same`: measures the verified-token cache) or a
//! round-robin over a pool of 1000 distinct tokens (`-pool`: 10 × the cache size, so every
//! request is a miss and a signature verification). The tokens are minted once per run by
//! PyJWT (`integration/peer/mint_tokens.py ISS AUD 1000 ALG`, the project venv's Python); the
//! load is `wrk -s target/bench/jwt-<alg>-<same|pool>.lua`, which sends the pre-formatted
//! requests in turn. The paired no-filter twin of a JWT row gets the SAME script (same request
//! bytes, same `wrk` work), so the paired ratio isolates the authentication itself. Before it is
//! measured, a JWT row must answer 200 to a valid token with `authorization` stripped before the
//! upstream, 401 without a token, and count the request (`jwt_authn.allowed`, or for jwt-auth
//! `jwt_auth.requests_allowed` and `jwt_auth.verify.host`: RS256/ES256 through Envoy's BoringSSL).
//!
//! Every Envoy runs in its own process group with `--disable-hot-restart` (no shared memory, so no
//! base-id clashes with other Envoys and nothing left in /dev/shm); the groups are stopped on
//! success, on error and (through a small watchdog per Envoy) when this process dies, e.g. on
//! Ctrl-C.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: cargo run -p xtask -- bench [--rounds N] [--duration SECS] [--warmup SECS] \
                     [--connections C] [--nice N] [--only a,b,...]
  --only takes variant names, groups and prefixes, comma-separated (no-filter is always run):
    headers     the header-editing rows (bare, raw, raw-edits, native-header_mutation, lua, header-rules, template)
    jwt         the JWT rows (native jwt_authn vs jwt-auth, RS256/ES256, same token/pool of 1000)
    PATTERN     `*` matches any characters: jwt-auth-*, native-jwt-*, *-pool, *-es256-*
                (quote it from a shell)
  default: every variant";

/// Header-rules configuration doing the benchmark's edits.
const HEADER_RULES_CONFIG: &str = r#"{"rules":[{"name":"bench","request":{"set":[{"name":"x-bench-a","value":"1"}],"append":[{"name":"x-bench-b","value":"2"}],"remove":["x-remove-me"]},"response":{"set":[{"name":"x-bench-resp","value":"3"}]}}]}"#;
/// Template configuration; benchmark requests go to `/`, so they pass.
const TEMPLATE_CONFIG: &str = r#"{"deny":{"prefix":"/admin"}}"#;

/// What a variant must visibly do before it is measured.
#[derive(Clone, Copy, PartialEq)]
enum Edits {
    /// No edits: the request arrives unchanged (`x-remove-me` still present).
    None,
    /// The benchmark's request and response edits.
    Bench,
    /// Only `x-bench-a: 1` is set on the request (the bare SDK filter, the raw ABI floor).
    One,
}

/// Where a variant's wasm module comes from.
#[derive(Clone, Copy)]
enum Module {
    /// A product filter, built by `make build` into `dist/`.
    Dist(&'static str),
    /// A benchmark-only workspace package, built by the bench into `target/bench/<package>.wasm`.
    Bench(&'static str),
}

/// Where the wasm modules are.
struct Modules {
    dist: PathBuf,
    bench: PathBuf,
}

/// What the filter configurations are built from.
struct Inputs {
    modules: Modules,
    /// The test JWKS (`filters/jwt-auth/testdata/jwks.json`), compact JSON.
    jwks: String,
}

impl Modules {
    fn path(&self, m: Module) -> PathBuf {
        match m {
            Module::Dist(file) => self.dist.join(file),
            Module::Bench(package) => self.bench.join(format!("{package}.wasm")),
        }
    }
}

struct Variant {
    name: &'static str,
    /// HTTP filters placed before the router (YAML list items, indented for the front config).
    filters: fn(&Inputs) -> String,
    edits: Edits,
    /// Counters (full Envoy stat names) that must be > 0 after the check request.
    stats: &'static [&'static str],
    /// The wasm module the variant runs.
    wasm: Option<Module>,
    /// Request path answered with a local response (status) by this variant, checked too.
    denied: Option<(&'static str, u16)>,
    /// A JWT row: requests carry tokens.
    jwt: Option<JwtLoad>,
}

/// The JWT algorithms benchmarked.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    const ALL: [Alg; 2] = [Alg::Rs256, Alg::Es256];

    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// The tokens a JWT row is loaded with.
#[derive(Clone, Copy, PartialEq, Debug)]
struct JwtLoad {
    alg: Alg,
    /// `false`: the same token on every request; `true`: round-robin over the whole pool.
    pool: bool,
}

impl JwtLoad {
    fn label(self) -> &'static str {
        if self.pool {
            "pool"
        } else {
            "same"
        }
    }

    /// The wrk script of this load, under `target/bench/`.
    fn script(self, out_dir: &Path) -> PathBuf {
        out_dir.join(format!(
            "jwt-{}-{}.lua",
            self.alg.name().to_ascii_lowercase(),
            self.label()
        ))
    }
}

/// Distinct tokens minted per algorithm for the `-pool` rows (10 × the cache size of 100).
const JWT_POOL_SIZE: usize = 1000;
const JWT_ISSUER: &str = "https://issuer.example.com";
const JWT_AUDIENCE: &str = "api.example.com";
/// The `--only` group of the JWT rows; `headers` is every other row.
const JWT_GROUP: &str = "jwt";
const HEADERS_GROUP: &str = "headers";

const NATIVE_JWT_STATS: &[&str] = &["http.front.jwt_authn.allowed"];
const JWT_AUTH_STATS: &[&str] = &[
    "wasmcustom.jwt_auth.requests_allowed",
    "wasmcustom.jwt_auth.verify.host",
];

/// Size target of `dist/jwt-auth.wasm` (600 KiB).
const JWT_AUTH_SIZE_TARGET: u64 = 600 * 1024;

/// The variant every other one is compared with (always measured).
const BASELINE: &str = "no-filter";

/// A native `jwt_authn` variant: `alg` tokens, one repeated (`pool` false) or 1000.
const fn native_jwt_variant(name: &'static str, alg: Alg, pool: bool) -> Variant {
    Variant {
        name,
        filters: native_jwt_filter,
        edits: Edits::None,
        stats: NATIVE_JWT_STATS,
        wasm: None,
        denied: Some(("/check", 401)),
        jwt: Some(JwtLoad { alg, pool }),
    }
}

/// A jwt-auth variant with the same provider and tokens as [`native_jwt_variant`].
const fn jwt_auth_variant(name: &'static str, alg: Alg, pool: bool) -> Variant {
    Variant {
        name,
        filters: jwt_auth_filter,
        edits: Edits::None,
        stats: JWT_AUTH_STATS,
        wasm: Some(Module::Dist("jwt-auth.wasm")),
        denied: Some(("/check", 401)),
        jwt: Some(JwtLoad { alg, pool }),
    }
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: BASELINE,
        filters: no_filters,
        edits: Edits::None,
        stats: &[],
        wasm: None,
        denied: None,
        jwt: None,
    },
    Variant {
        name: "bare",
        filters: bare_filter,
        edits: Edits::One,
        stats: &[],
        wasm: Some(Module::Bench("bare-filter")),
        denied: None,
        jwt: None,
    },
    Variant {
        name: "raw",
        filters: raw_filter,
        edits: Edits::One,
        stats: &[],
        wasm: Some(Module::Bench("raw-filter")),
        denied: None,
        jwt: None,
    },
    Variant {
        name: "raw-edits",
        filters: raw_edits_filter,
        edits: Edits::Bench,
        stats: &[],
        wasm: Some(Module::Bench("raw-edits")),
        denied: None,
        jwt: None,
    },
    Variant {
        name: "native-header_mutation",
        filters: header_mutation_filter,
        edits: Edits::Bench,
        stats: &[],
        wasm: None,
        denied: None,
        jwt: None,
    },
    Variant {
        name: "lua",
        filters: lua_filter,
        edits: Edits::Bench,
        stats: &[],
        wasm: None,
        denied: None,
        jwt: None,
    },
    Variant {
        name: "header-rules",
        filters: header_rules_filter,
        edits: Edits::Bench,
        stats: &["wasmcustom.header_rules.requests_matched"],
        wasm: Some(Module::Dist("header-rules.wasm")),
        denied: None,
        jwt: None,
    },
    Variant {
        name: "template",
        filters: template_filter,
        edits: Edits::None,
        stats: &["wasmcustom.template.allowed"],
        wasm: Some(Module::Dist("template.wasm")),
        denied: Some(("/admin", 403)),
        jwt: None,
    },
    native_jwt_variant("native-jwt-rs256-same", Alg::Rs256, false),
    jwt_auth_variant("jwt-auth-rs256-same", Alg::Rs256, false),
    native_jwt_variant("native-jwt-es256-same", Alg::Es256, false),
    jwt_auth_variant("jwt-auth-es256-same", Alg::Es256, false),
    native_jwt_variant("native-jwt-rs256-pool", Alg::Rs256, true),
    jwt_auth_variant("jwt-auth-rs256-pool", Alg::Rs256, true),
    native_jwt_variant("native-jwt-es256-pool", Alg::Es256, true),
    jwt_auth_variant("jwt-auth-es256-pool", Alg::Es256, true),
];

fn no_filters(_: &Inputs) -> String {
    String::new()
}

fn header_mutation_filter(_: &Inputs) -> String {
    r#"          - name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                request_mutations:
                - append:
                    header: { key: x-bench-a, value: "1" }
                    append_action: OVERWRITE_IF_EXISTS_OR_ADD
                - append:
                    header: { key: x-bench-b, value: "2" }
                    append_action: APPEND_IF_EXISTS_OR_ADD
                - remove: x-remove-me
                response_mutations:
                - append:
                    header: { key: x-bench-resp, value: "3" }
                    append_action: OVERWRITE_IF_EXISTS_OR_ADD
"#
    .to_string()
}

fn lua_filter(_: &Inputs) -> String {
    r#"          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
                  function envoy_on_request(handle)
                    local h = handle:headers()
                    h:replace("x-bench-a", "1")
                    h:add("x-bench-b", "2")
                    h:remove("x-remove-me")
                  end
                  function envoy_on_response(handle)
                    handle:headers():replace("x-bench-resp", "3")
                  end
"#
    .to_string()
}

fn wasm_filter(name: &str, root_id: &str, config: &str, module: &Path) -> String {
    format!(
        r#"          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {root_id}
                failure_policy: FAIL_CLOSED
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{config}'
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local:
                      filename: {module:?}
"#
    )
}

fn bare_filter(i: &Inputs) -> String {
    wasm_filter(
        "bare",
        "",
        "",
        &i.modules.path(Module::Bench("bare-filter")),
    )
}

/// The SDK-free floor (`bench/raw-filter`): what Envoy charges any proxy-wasm filter per stream.
fn raw_filter(i: &Inputs) -> String {
    wasm_filter("raw", "", "", &i.modules.path(Module::Bench("raw-filter")))
}

/// header-rules' four edits through the bare ABI (`bench/raw-edits`): its host-side floor.
fn raw_edits_filter(i: &Inputs) -> String {
    wasm_filter(
        "raw-edits",
        "",
        "",
        &i.modules.path(Module::Bench("raw-edits")),
    )
}

fn header_rules_filter(i: &Inputs) -> String {
    wasm_filter(
        "header-rules",
        "header-rules",
        HEADER_RULES_CONFIG,
        &i.modules.path(Module::Dist("header-rules.wasm")),
    )
}

fn template_filter(i: &Inputs) -> String {
    wasm_filter(
        "template",
        "template",
        TEMPLATE_CONFIG,
        &i.modules.path(Module::Dist("template.wasm")),
    )
}

/// Envoy's `jwt_authn` with the benchmark's provider (the same as [`jwt_auth_filter`]'s).
fn native_jwt_filter(i: &Inputs) -> String {
    format!(
        r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  issuer: {JWT_ISSUER}
                  audiences: [{JWT_AUDIENCE}]
                  local_jwks: {{ inline_string: '{jwks}' }}
                  forward: false
                  jwt_cache_config: {{ jwt_cache_size: 100 }}
              rules:
              - match: {{ prefix: / }}
                requires: {{ provider_name: bench }}
"#,
        jwks = i.jwks
    )
}

/// The jwt-auth configuration: the provider of [`native_jwt_filter`], as JSON.
fn jwt_auth_config(jwks: &str) -> String {
    serde_json::json!({
        "providers": {
            "bench": {
                "issuer": JWT_ISSUER,
                "audiences": [JWT_AUDIENCE],
                "local_jwks": {"inline_string": jwks},
                "forward": false,
                "jwt_cache_config": {"jwt_cache_size": 100}
            }
        },
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]
    })
    .to_string()
}

fn jwt_auth_filter(i: &Inputs) -> String {
    wasm_filter(
        "jwt-auth",
        "jwt-auth",
        &jwt_auth_config(&i.jwks),
        &i.modules.path(Module::Dist("jwt-auth.wasm")),
    )
}

/// The upstream: 200 with a small body on `/`; `/check` also echoes what the front Envoy sent.
fn upstream_config() -> String {
    let echo = |key: &str, header: &str| {
        format!("                - header: {{ key: {key}, value: \"%REQ({header})%\" }}\n")
    };
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: upstream
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/check" }}
                direct_response: {{ status: 200, body: {{ inline_string: "check\n" }} }}
                response_headers_to_add:
{a}{b}{r}{t}              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok\n" }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        a = echo("x-seen-a", "x-bench-a"),
        b = echo("x-seen-b", "x-bench-b"),
        r = echo("x-seen-remove", "x-remove-me"),
        t = echo("x-seen-authorization", "authorization"),
    )
}

/// The front Envoy: the variant's filters, then the router to the upstream.
fn front_config(filters: &str, upstream: SocketAddr) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: upstream }}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }}
"#,
        ip = upstream.ip(),
        port = upstream.port(),
    )
}

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    rounds: usize,
    duration: u64,
    warmup: u64,
    connections: u32,
    nice: i32,
    only: Option<Vec<String>>,
}

/// Default niceness: as root, well ahead of other work on a shared machine (compilers of
/// other jobs), so that it disturbs the measured processes less; otherwise unchanged.
fn default_nice() -> i32 {
    let root = command_output("id", &["-u"]).is_some_and(|u| u == "0");
    if root {
        -10
    } else {
        0
    }
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        rounds: 3,
        duration: 5,
        warmup: 1,
        connections: 16,
        nice: default_nice(),
        only: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if key == "--help" || key == "-h" {
            return Err(USAGE.into());
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("{key} needs a value\n{USAGE}"))
        };
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{key}: not a number: {v}"))
        };
        match key {
            "--rounds" => o.rounds = num(value()?)? as usize,
            "--duration" => o.duration = num(value()?)?,
            "--warmup" => o.warmup = num(value()?)?,
            "--connections" => o.connections = num(value()?)? as u32,
            "--nice" => {
                let v = value()?;
                o.nice = v
                    .parse::<i32>()
                    .map_err(|_| format!("--nice: not a number: {v}"))?;
            }
            "--only" => {
                let names: Vec<String> = value()?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for n in &names {
                    if !VARIANTS.iter().any(|v| selects(n, v)) {
                        let known: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
                        return Err(format!(
                            "--only: {n:?} names no variant (groups: {HEADERS_GROUP}, {JWT_GROUP}; \
                             `*` matches any characters; variants: {})",
                            known.join(", ")
                        ));
                    }
                }
                o.only = Some(names);
            }
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    if o.rounds == 0 || o.duration == 0 || o.connections == 0 {
        return Err("--rounds, --duration and --connections must be at least 1".into());
    }
    Ok(o)
}

/// Whether one `--only` item (a variant name, a group or a `*` pattern) selects `v`.
fn selects(item: &str, v: &Variant) -> bool {
    match item {
        JWT_GROUP => v.jwt.is_some(),
        HEADERS_GROUP => v.jwt.is_none() && v.name != BASELINE,
        _ if item.contains('*') => glob_match(item, v.name),
        _ => item == v.name,
    }
}

/// `pattern` with `*` matching any run of characters (possibly empty), the rest literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for middle in parts.iter().skip(1).take(parts.len().saturating_sub(2)) {
        match rest.find(middle) {
            Some(at) => rest = rest.get(at + middle.len()..).unwrap_or(""),
            None => return false,
        }
    }
    parts.len() > 1 && rest.ends_with(last)
}

/// The variants a run measures: the requested ones, always with the no-filter baseline first.
fn selected_variants(only: Option<&[String]>) -> Vec<&'static Variant> {
    VARIANTS
        .iter()
        .filter(|v| {
            v.name == BASELINE || only.is_none_or(|only| only.iter().any(|n| selects(n, v)))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Sends `sig` to every process of group `pgid` (best effort).
fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops a process group: TERM, then KILL after a grace period; reaps the leader.
fn stop_group(child: &mut Child) {
    let pgid = child.id();
    if matches!(child.try_wait(), Ok(Some(_))) {
        signal_group(pgid, "KILL"); // stray members, if any
        return;
    }
    signal_group(pgid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            signal_group(pgid, "KILL");
            return;
        }
        sleep(Duration::from_millis(20));
    }
    signal_group(pgid, "KILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// A running Envoy in its own process group, stopped on drop.
struct Envoy {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    admin: SocketAddr,
    listener: SocketAddr,
}

impl Envoy {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        stop_group(&mut self.child);
        if let Some(w) = self.watchdog.as_mut() {
            signal_group(w.id(), "KILL");
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// Everything the run needs to know about the machine and tools.
struct Env {
    envoy: PathBuf,
    inputs: Inputs,
    /// Niceness of every process of the run (negative: ahead of other work on the machine).
    nice: i32,
    work: PathBuf,
    /// (front CPU, upstream + wrk CPU) when pinning is possible.
    pin: Option<(u32, u32)>,
    clk_tck: f64,
}

impl Env {
    /// `program`, at the run's priority and pinned to `cpu` (`nice` and `taskset` exec it, so
    /// the child's pid is the program's own).
    fn pinned(&self, cpu: Option<u32>, program: &Path) -> Command {
        let mut cmd = Command::new("nice");
        cmd.arg("-n").arg(self.nice.to_string());
        if let Some(c) = cpu {
            cmd.arg("taskset").arg("-c").arg(c.to_string());
        }
        cmd.arg(program);
        cmd
    }
}

fn start_envoy(env: &Env, name: &str, config: &str, cpu: Option<u32>) -> Result<Envoy, String> {
    let cfg = env.work.join(format!("{name}.yaml"));
    let log = env.work.join(format!("{name}.log"));
    let admin_file = env.work.join(format!("{name}.admin"));
    fs::write(&cfg, config).map_err(|e| format!("writing {}: {e}", cfg.display()))?;
    let _ = fs::remove_file(&admin_file);
    let log_file =
        fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = env.pinned(cpu, &env.envoy);
    cmd.arg("-c")
        .arg(&cfg)
        .args([
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "warning",
        ])
        .arg("--admin-address-path")
        .arg(&admin_file)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(log_err))
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting Envoy {name} ({}): {e}", env.envoy.display()))?;
    let pgid = child.id();
    // If this process dies (Ctrl-C, panic abort), the watchdog stops the Envoy's group.
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -s TERM -- -{pgid} 2>/dev/null; \
             sleep 5; kill -s KILL -- -{pgid} 2>/dev/null",
            me = std::process::id()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok();
    let mut envoy = Envoy {
        name: name.to_string(),
        child,
        watchdog,
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        listener: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let fail = |envoy: &Envoy, what: String| -> String {
        let tail = log_tail(&log, 15);
        format!(
            "Envoy {} {what}; config {}, log {}:\n{tail}",
            envoy.name,
            cfg.display(),
            log.display()
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = envoy.child.try_wait() {
            return Err(fail(&envoy, format!("exited during startup ({status})")));
        }
        if Instant::now() > deadline {
            return Err(fail(&envoy, "not ready after 60 s".into()));
        }
        let admin = fs::read_to_string(&admin_file)
            .ok()
            .and_then(|s| s.trim().parse::<SocketAddr>().ok());
        if let Some(admin) = admin {
            if let Ok(r) = http_get(admin, "/ready", &[]) {
                if r.status == 200 && r.body.trim() == "LIVE" {
                    envoy.admin = admin;
                    break;
                }
            }
        }
        sleep(Duration::from_millis(50));
    }
    let listeners = http_get(envoy.admin, "/listeners", &[]).map_err(|e| fail(&envoy, e))?;
    let addr = listeners
        .body
        .lines()
        .find_map(|l| l.strip_prefix("main::"))
        .and_then(|a| a.trim().parse::<SocketAddr>().ok());
    match addr {
        Some(a) => envoy.listener = a,
        None => {
            return Err(fail(
                &envoy,
                format!("has no `main` listener: {:?}", listeners.body),
            ))
        }
    }
    // The pid measured must be Envoy itself (taskset execs it).
    let comm = fs::read_to_string(format!("/proc/{}/comm", envoy.pid())).unwrap_or_default();
    if !comm.trim().starts_with("envoy") {
        return Err(fail(
            &envoy,
            format!("pid {} is {:?}, not envoy", envoy.pid(), comm.trim()),
        ));
    }
    Ok(envoy)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    all.into_iter().skip(skip).collect::<Vec<_>>().join("\n")
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed /proc/pid/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(format!("/proc/{pid}/stat field {n}"))
    };
    Ok(field(14)? + field(15)?)
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client (one request per connection).

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    let err = |e: std::io::Error| format!("GET http://{addr}{path}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n");
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(err)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(err)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(format!("GET {path}: truncated response"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(format!("GET {path}: bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let (Some(chunk), Some(after)) = (rest.get(..n), rest.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        s = after.strip_prefix("\r\n").unwrap_or(after);
    }
    out
}

fn stat_value(admin: SocketAddr, name: &str) -> Result<Option<u64>, String> {
    // The filter is a regex; `.` matching any character only widens it, the line match is exact.
    let r = http_get(admin, &format!("/stats?filter={name}"), &[])?;
    Ok(r.body
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
        .and_then(|v| v.trim().parse().ok()))
}

/// Checks that a freshly started front Envoy does what its variant promises. `token`: a valid
/// token of a JWT row, sent as `Authorization: Bearer`.
fn verify(v: &Variant, front: &Envoy, token: Option<&str>) -> Result<(), String> {
    let ctx = |what: String| format!("variant {}: {what}", v.name);
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("x-remove-me", "1")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    let r = http_get(front.listener, "/check", &headers).map_err(ctx)?;
    if r.status != 200 {
        return Err(ctx(format!(
            "check request answered {} (body {:?})",
            r.status, r.body
        )));
    }
    let seen = |h: &str| r.header(h).unwrap_or("").to_string();
    if token.is_some() && !seen("x-seen-authorization").is_empty() {
        return Err(ctx(format!(
            "the upstream saw the token (authorization = {:?}); want it stripped (forward: false)",
            seen("x-seen-authorization")
        )));
    }
    match v.edits {
        Edits::None => {
            if seen("x-seen-remove") != "1" {
                return Err(ctx(format!(
                    "the upstream did not see x-remove-me: 1 (x-seen-remove = {:?}); the echo check is broken",
                    seen("x-seen-remove")
                )));
            }
        }
        Edits::One => {
            if seen("x-seen-a") != "1" || seen("x-seen-remove") != "1" {
                return Err(ctx(format!(
                    "upstream saw x-bench-a = {:?}, x-remove-me = {:?}; want \"1\" and \"1\"",
                    seen("x-seen-a"),
                    seen("x-seen-remove")
                )));
            }
        }
        Edits::Bench => {
            let mut wrong = Vec::new();
            if r.header("x-bench-resp") != Some("3") {
                wrong.push(format!(
                    "response x-bench-resp = {:?}, want \"3\"",
                    r.header("x-bench-resp")
                ));
            }
            if seen("x-seen-a") != "1" {
                wrong.push(format!(
                    "upstream saw x-bench-a = {:?}, want \"1\"",
                    seen("x-seen-a")
                ));
            }
            let b = seen("x-seen-b");
            if !b.split(',').any(|p| p.trim() == "2") {
                wrong.push(format!(
                    "upstream saw x-bench-b = {b:?}, want \"2\" appended"
                ));
            }
            if !seen("x-seen-remove").is_empty() {
                wrong.push(format!(
                    "upstream saw x-remove-me = {:?}, want it removed",
                    seen("x-seen-remove")
                ));
            }
            if !wrong.is_empty() {
                return Err(ctx(format!("does not do its edits: {}", wrong.join("; "))));
            }
        }
    }
    if let Some((path, want)) = v.denied {
        let r = http_get(front.listener, path, &[]).map_err(ctx)?;
        if r.status != want {
            return Err(ctx(format!(
                "GET {path} answered {}, want {want}",
                r.status
            )));
        }
    }
    for &stat in v.stats {
        match stat_value(front.admin, stat).map_err(ctx)? {
            Some(n) if n > 0 => {}
            other => {
                return Err(ctx(format!(
                    "stat {stat} = {other:?} after the check request, want > 0"
                )))
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Load

struct WrkResult {
    requests: u64,
    rps: f64,
    secs: f64,
    socket_errors: String,
}

/// `wrk` against `url`: GET / with `x-remove-me: 1`, or the requests of a `script`.
fn run_wrk(
    env: &Env,
    url: &str,
    script: Option<&Path>,
    secs: u64,
    connections: u32,
) -> Result<WrkResult, String> {
    let mut cmd = env.pinned(env.pin.map(|p| p.1), Path::new("wrk"));
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--timeout",
        "5s",
    ]);
    match script {
        Some(path) => cmd.arg("-s").arg(path),
        None => cmd.args(["-H", "x-remove-me: 1"]),
    };
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut requests = None;
    let mut rps = None;
    let mut secs_run = secs as f64;
    let mut socket_errors = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some((n, rest)) = line.split_once(" requests in ") {
            requests = n.trim().parse::<u64>().ok();
            // "123 requests in 5.00s, 1.2MB read"
            let t = rest.split(',').next().unwrap_or("").trim();
            secs_run = parse_wrk_duration(t).unwrap_or(secs_run);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            return Err(format!(
                "wrk got {} non-2xx/3xx responses from {url}:\n{text}",
                v.trim()
            ));
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            socket_errors = v.trim().to_string();
        }
    }
    match (requests, rps) {
        (Some(requests), Some(rps)) if requests > 0 => Ok(WrkResult {
            requests,
            rps,
            secs: secs_run,
            socket_errors,
        }),
        _ => Err(format!(
            "could not parse wrk output (or no request completed):\n{text}"
        )),
    }
}

/// Two `wrk` runs at the same time (the variant's front and its paired no-filter twin), with the
/// same requests.
fn run_wrk_pair(
    env: &Env,
    url: &str,
    twin_url: &str,
    script: Option<&Path>,
    secs: u64,
    connections: u32,
) -> Result<(WrkResult, WrkResult), String> {
    std::thread::scope(|s| {
        let twin = s.spawn(|| run_wrk(env, twin_url, script, secs, connections));
        let main = run_wrk(env, url, script, secs, connections);
        let twin = twin
            .join()
            .unwrap_or_else(|_| Err("wrk thread failed".into()));
        Ok((main?, twin?))
    })
}

/// A wrk script sending GET / with `x-remove-me: 1` and `Authorization: Bearer <token>`, the
/// tokens in turn (one `wrk` thread, so a strict round-robin over all connections). The requests
/// are formatted once, in `init`, so the per-request Lua work is an index increment.
fn wrk_script(tokens: &[String]) -> String {
    let mut lua = String::from("local tokens = {\n");
    for t in tokens {
        // Compact JWS: base64url and dots only, safe inside a Lua string.
        let _ = writeln!(lua, "  \"{t}\",");
    }
    lua.push_str(
        r#"}
local requests = {}
local i = 0
function init(args)
  for k, t in ipairs(tokens) do
    requests[k] = wrk.format("GET", "/", { ["x-remove-me"] = "1",
      ["Authorization"] = "Bearer " .. t })
  end
end
function request()
  i = i % #requests + 1
  return requests[i]
end
"#,
    );
    lua
}

/// Parses `mint_tokens.py`'s pool output, `{"pool": [...]}`: `n` distinct compact JWS.
fn parse_token_pool(json: &str, n: usize) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON ({e}): {json:.200}"))?;
    let pool: Vec<String> = v
        .get("pool")
        .and_then(|p| p.as_array())
        .ok_or("no \"pool\" list")?
        .iter()
        .map(|t| t.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or("a pool entry is not a string")?;
    let distinct: std::collections::HashSet<&String> = pool.iter().collect();
    if pool.len() != n || distinct.len() != n {
        return Err(format!(
            "want {n} distinct tokens, got {} ({} distinct)",
            pool.len(),
            distinct.len()
        ));
    }
    let shape = |t: &String| {
        t.split('.').count() == 3
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    if let Some(bad) = pool.iter().find(|t| !shape(t)) {
        return Err(format!("not a compact JWS: {bad:?}"));
    }
    Ok(pool)
}

/// Mints `JWT_POOL_SIZE` tokens of `alg` with PyJWT (the project venv's Python).
fn mint_pool(root: &Path, alg: Alg) -> Result<Vec<String>, String> {
    let python = std::env::var_os("BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let script = root.join("integration/peer/mint_tokens.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([
            JWT_ISSUER,
            JWT_AUDIENCE,
            &JWT_POOL_SIZE.to_string(),
            alg.name(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "running {} (set BENCH_PYTHON, or `make setup` to create .venv with PyJWT): {e}",
                python.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}): {}",
            python.display(),
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_token_pool(&String::from_utf8_lossy(&out.stdout), JWT_POOL_SIZE)
        .map_err(|e| format!("minting {} tokens: {e}", alg.name()))
}

fn parse_wrk_duration(t: &str) -> Option<f64> {
    if let Some(v) = t.strip_suffix("ms") {
        v.parse::<f64>().ok().map(|x| x / 1000.0)
    } else if let Some(v) = t.strip_suffix("us") {
        v.parse::<f64>().ok().map(|x| x / 1e6)
    } else if let Some(v) = t.strip_suffix('s') {
        v.parse().ok()
    } else if let Some(v) = t.strip_suffix('m') {
        v.parse::<f64>().ok().map(|x| x * 60.0)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct Sample {
    round: usize,
    variant: &'static Variant,
    rps: f64,
    requests: u64,
    cpu_secs: f64,
    wall_secs: f64,
    us_per_req: f64,
    /// The upstream's CPU per request: the same work for every variant, so a noise indicator.
    upstream_us_per_req: f64,
    /// CPU per request of the paired no-filter front, measured over the same seconds.
    twin_us_per_req: f64,
    socket_errors: String,
    /// JWT rows: the share of the front's token-cache lookups that hit, over its whole life
    /// (check request, warm-up and run).
    cache_hit_share: Option<f64>,
}

/// The token-cache counters (hits, misses) of a JWT row.
fn cache_stat_names(v: &Variant) -> Option<(&'static str, &'static str)> {
    match (v.jwt, v.wasm) {
        (None, _) => None,
        (Some(_), Some(_)) => Some((
            "wasmcustom.jwt_auth.jwt_cache_hit",
            "wasmcustom.jwt_auth.jwt_cache_miss",
        )),
        (Some(_), None) => Some((
            "http.front.jwt_authn.jwt_cache_hit",
            "http.front.jwt_authn.jwt_cache_miss",
        )),
    }
}

/// The share of cache lookups that hit, read from a front's admin after its run.
fn cache_hit_share(v: &Variant, front: &Envoy) -> Result<Option<f64>, String> {
    let Some((hit, miss)) = cache_stat_names(v) else {
        return Ok(None);
    };
    let read = |name: &str| {
        stat_value(front.admin, name)?
            .ok_or(format!("variant {}: no stat {name} after the run", v.name))
    };
    let (h, m) = (read(hit)?, read(miss)?);
    Ok((h + m > 0).then(|| h as f64 / (h + m) as f64))
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    let at = |i: usize| xs.get(i).copied().unwrap_or(f64::NAN);
    if n % 2 == 1 {
        at(n / 2)
    } else {
        (at((n / 2).wrapping_sub(1)) + at(n / 2)) / 2.0
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args)?;
    let root = crate::repo_root();

    let selected = selected_variants(opts.only.as_deref());

    // Tools and inputs.
    let envoy = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/envoy"));
    let envoy_version = command_output(envoy.to_str().unwrap_or("envoy"), &["--version"]).ok_or(format!(
        "Envoy not runnable at {} (set ENVOY_BIN, or install it: the project setup puts it in .venv)",
        envoy.display()
    ))?;
    let envoy_version = envoy_version
        .lines()
        .find(|l| l.contains("version"))
        .unwrap_or(&envoy_version)
        .trim()
        .to_string();
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk not found (Debian package `wrk`)".into());
    }
    let dist = root.join("dist");
    let out_dir = root.join("target/bench");
    let modules = Modules {
        dist: dist.clone(),
        bench: out_dir.clone(),
    };
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    for v in &selected {
        match v.wasm {
            Some(m @ Module::Dist(_)) if !modules.path(m).is_file() => {
                return Err(format!(
                    "{} missing (variant {}): build the filters first (`cargo run -p xtask -- build`)",
                    modules.path(m).display(),
                    v.name
                ));
            }
            Some(m @ Module::Bench(package)) => {
                let manifest = root.join("bench").join(package).join("Cargo.toml");
                let size = crate::wasm_build::build_module(package, &manifest, &modules.path(m))?;
                eprintln!(
                    "bench: built {} ({size} bytes) for variant {}",
                    modules.path(m).display(),
                    v.name
                );
            }
            _ => {}
        }
    }
    let clk_tck: f64 = command_output("getconf", &["CLK_TCK"])
        .and_then(|s| s.parse().ok())
        .ok_or("`getconf CLK_TCK` failed")?;
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let have_taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    let pin = (have_taskset && ncpu >= 2).then_some((0u32, 1u32));
    let pinning = match (pin, have_taskset) {
        (Some((f, o)), _) => {
            format!("front Envoy on CPU {f}; upstream Envoy and wrk on CPU {o} (taskset)")
        }
        (None, false) => "UNPINNED: `taskset` (util-linux) not found".to_string(),
        (None, true) => format!("UNPINNED: only {ncpu} CPU available"),
    };
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let loadavg = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg = loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");

    // JWT rows: the JWKS, one pool of tokens per algorithm, one wrk script per load.
    let jwt_loads: Vec<JwtLoad> = selected.iter().filter_map(|v| v.jwt).collect();
    let mut jwks = String::new();
    let mut first_tokens: Vec<(Alg, String)> = Vec::new();
    if !jwt_loads.is_empty() {
        let path = root.join("filters/jwt-auth/testdata/jwks.json");
        let text =
            fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        jwks = value.to_string();
        for alg in Alg::ALL {
            let loads: Vec<JwtLoad> = jwt_loads.iter().copied().filter(|l| l.alg == alg).collect();
            if loads.is_empty() {
                continue;
            }
            let pool = mint_pool(&root, alg)?;
            let Some(first) = pool.first().cloned() else {
                return Err(format!("minting {}: empty pool", alg.name()));
            };
            for load in loads {
                let tokens = if load.pool {
                    &pool[..]
                } else {
                    std::slice::from_ref(&first)
                };
                let script = load.script(&out_dir);
                fs::write(&script, wrk_script(tokens))
                    .map_err(|e| format!("writing {}: {e}", script.display()))?;
            }
            eprintln!(
                "bench: minted {} {} tokens (PyJWT); wrk scripts in {}",
                pool.len(),
                alg.name(),
                out_dir.display()
            );
            first_tokens.push((alg, first));
        }
    }

    let work = out_dir.join("run");
    fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let env = Env {
        envoy,
        inputs: Inputs { modules, jwks },
        nice: opts.nice,
        work,
        pin,
        clk_tck,
    };

    let per_run = opts.warmup + opts.duration + 2;
    eprintln!(
        "bench: {} variants × {} rounds × ~{per_run} s ≈ {} s; {pinning}; load average {loadavg}",
        selected.len(),
        opts.rounds,
        selected.len() as u64 * opts.rounds as u64 * per_run
    );

    // The upstream, alive for the whole run.
    let mut upstream = start_envoy(&env, "upstream", &upstream_config(), env.pin.map(|p| p.1))?;
    let check = http_get(upstream.listener, "/", &[])?;
    if check.status != 200 {
        return Err(format!("upstream answered {} on /", check.status));
    }
    // The echo the JWT rows rely on to see that the token is stripped.
    let check = http_get(
        upstream.listener,
        "/check",
        &[("authorization", "Bearer x")],
    )?;
    if check.header("x-seen-authorization") != Some("Bearer x") {
        return Err(format!(
            "the upstream does not echo authorization (x-seen-authorization = {:?})",
            check.header("x-seen-authorization")
        ));
    }

    let mut samples: Vec<Sample> = Vec::new();
    let mut started_pids: Vec<u32> = vec![upstream.pid()];
    for round in 1..=opts.rounds {
        for k in 0..selected.len() {
            // Interleaved, with the starting variant rotating from round to round.
            let Some(&v) = selected.get((k + round - 1) % selected.len()) else {
                continue;
            };
            let config = front_config(&(v.filters)(&env.inputs), upstream.listener);
            let front = start_envoy(
                &env,
                &format!("front-{}", v.name),
                &config,
                env.pin.map(|p| p.0),
            )?;
            started_pids.push(front.pid());
            let token = v.jwt.and_then(|l| {
                first_tokens
                    .iter()
                    .find(|(a, _)| *a == l.alg)
                    .map(|(_, t)| t.as_str())
            });
            if v.jwt.is_some() && token.is_none() {
                return Err(format!("variant {}: no token minted", v.name));
            }
            verify(v, &front, token)?;
            let script = v.jwt.map(|l| l.script(&out_dir));
            // The paired baseline: a no-filter front on the same CPU, loaded at the same time.
            let twin = start_envoy(
                &env,
                "front-paired-no-filter",
                &front_config("", upstream.listener),
                env.pin.map(|p| p.0),
            )?;
            started_pids.push(twin.pid());
            let url = format!("http://{}/", front.listener);
            let twin_url = format!("http://{}/", twin.listener);
            if opts.warmup > 0 {
                run_wrk_pair(
                    &env,
                    &url,
                    &twin_url,
                    script.as_deref(),
                    opts.warmup,
                    opts.connections,
                )?;
            }
            let before = cpu_ticks(front.pid())?;
            let twin_before = cpu_ticks(twin.pid())?;
            let up_before = cpu_ticks(upstream.pid())?;
            let (w, tw) = run_wrk_pair(
                &env,
                &url,
                &twin_url,
                script.as_deref(),
                opts.duration,
                opts.connections,
            )?;
            let after = cpu_ticks(front.pid())?;
            let twin_after = cpu_ticks(twin.pid())?;
            let up_after = cpu_ticks(upstream.pid())?;
            drop(twin);
            if let Ok(Some(status)) = upstream.child.try_wait() {
                return Err(format!(
                    "the upstream Envoy exited during the run ({status})"
                ));
            }
            let cpu_secs = (after - before) as f64 / env.clk_tck;
            let s = Sample {
                round,
                variant: v,
                rps: w.rps,
                requests: w.requests,
                cpu_secs,
                wall_secs: w.secs,
                us_per_req: cpu_secs * 1e6 / w.requests as f64,
                upstream_us_per_req: (up_after - up_before) as f64 / env.clk_tck * 1e6
                    / (w.requests + tw.requests) as f64,
                twin_us_per_req: (twin_after - twin_before) as f64 / env.clk_tck * 1e6
                    / tw.requests as f64,
                socket_errors: w.socket_errors,
                cache_hit_share: cache_hit_share(v, &front)?,
            };
            eprintln!(
                "  round {round}/{} {:<24} {:>9.0} req/s  {:>6.1} µs/req  front CPU {:>3.0}%  paired no-filter {:>6.1} µs/req  ratio {:.3}{}",
                opts.rounds,
                v.name,
                s.rps,
                s.us_per_req,
                100.0 * s.cpu_secs / s.wall_secs,
                s.twin_us_per_req,
                s.us_per_req / s.twin_us_per_req,
                if s.socket_errors.is_empty() { String::new() } else { format!("  socket errors: {}", s.socket_errors) }
            );
            samples.push(s);
            drop(front);
        }
    }
    drop(upstream);
    let leftovers: Vec<u32> = started_pids
        .iter()
        .copied()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();

    // Report.
    let report = render(&RunInfo {
        opts: &opts,
        selected: &selected,
        samples: &samples,
        ncpu,
        model: &model,
        envoy_version: &envoy_version,
        pinning: &pinning,
        loadavg: &loadavg,
        clk_tck: env.clk_tck,
        dist: &dist,
    });
    print!("{report}");
    let results = out_dir.join("results.md");
    fs::write(&results, &report).map_err(|e| format!("writing {}: {e}", results.display()))?;
    eprintln!("bench: written to {}", results.display());
    if !leftovers.is_empty() {
        return Err(format!(
            "Envoy processes still present after the run: {leftovers:?}"
        ));
    }
    Ok(())
}

struct RunInfo<'a> {
    opts: &'a Opts,
    selected: &'a [&'static Variant],
    samples: &'a [Sample],
    ncpu: usize,
    model: &'a str,
    envoy_version: &'a str,
    pinning: &'a str,
    loadavg: &'a str,
    clk_tck: f64,
    dist: &'a Path,
}

struct Summary {
    rps: f64,
    us: f64,
    /// Median of front µs/req ÷ paired no-filter front µs/req (same run).
    norm: f64,
    /// Median µs/req of the paired no-filter fronts of this variant's runs.
    twin_us: f64,
}

/// The JWT section: for each (algorithm, same/pool), native `jwt_authn` against jwt-auth.
fn render_jwt(md: &mut String, r: &RunInfo, summary: &dyn Fn(&Variant) -> Summary, base_norm: f64) {
    let jwt: Vec<&Variant> = r
        .selected
        .iter()
        .copied()
        .filter(|v| v.jwt.is_some())
        .collect();
    if jwt.is_empty() {
        return;
    }
    let yes = |b: bool| if b { "met" } else { "NOT met" };
    let _ = writeln!(md, "\n## jwt-auth vs native jwt_authn\n");
    let _ = writeln!(
        md,
        "Same provider for both (issuer {JWT_ISSUER}, audience {JWT_AUDIENCE}, inline JWKS of \
         filters/jwt-auth/testdata/jwks.json, jwt_cache_size 100, rule `prefix: /`, token stripped). \
         `same`: one token on every request (the verified-token cache); `pool`: round-robin over \
         {JWT_POOL_SIZE} distinct tokens minted by PyJWT (every request verifies a signature; the \
         token-cache hits column, read from each front's stats after its run, shows it). The \
         paired no-filter twin gets the same requests. Added µs = (paired ratio − no-filter's paired \
         ratio) × this row's median paired no-filter µs/req. Capacity ratio jwt-auth/native: from \
         req/s (unpaired), and CPU-bound from the paired ratios (native ratio ÷ jwt-auth ratio). \
         Targets: `pool` ≥ 0.8 × native capacity (CPU ≤ 1.25 ×), `same` ≥ 1.0 × native.\n"
    );
    let _ = writeln!(
        md,
        "| variant | req/s median | front CPU µs/req median | paired ratio | paired no-filter µs/req | added µs/req (paired est.) | token-cache hits |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for &v in &jwt {
        let s = summary(v);
        let hits = median(
            r.samples
                .iter()
                .filter(|x| x.variant.name == v.name)
                .filter_map(|x| x.cache_hit_share)
                .collect(),
        );
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.2} | {:.3} | {:.2} | {:+.2} | {:.1} % |",
            v.name,
            s.rps,
            s.us,
            s.norm,
            s.twin_us,
            (s.norm - base_norm) * s.twin_us,
            100.0 * hits
        );
    }
    let _ = writeln!(
        md,
        "\n| alg | tokens | native µs/req | jwt-auth µs/req | CPU ratio jwt-auth/native (unpaired) | CPU ratio (paired) | capacity ratio (req/s) | capacity ratio (CPU-bound, paired) | target | status (req/s) | status (paired) |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|");
    for alg in Alg::ALL {
        for pool in [false, true] {
            let load = Some(JwtLoad { alg, pool });
            let find = |native: bool| {
                jwt.iter()
                    .copied()
                    .find(|v| v.jwt == load && v.name.starts_with("native-") == native)
            };
            let (Some(nv), Some(jv)) = (find(true), find(false)) else {
                continue;
            };
            let (n, j) = (summary(nv), summary(jv));
            let target = if pool { 0.8 } else { 1.0 };
            let (cap_rps, cap_cpu) = (j.rps / n.rps, n.norm / j.norm);
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | ≥ {target:.1} × native | {} | {} |",
                alg.name(),
                if pool { "pool" } else { "same" },
                n.us,
                j.us,
                j.us / n.us,
                j.norm / n.norm,
                cap_rps,
                cap_cpu,
                yes(cap_rps >= target),
                yes(cap_cpu >= target)
            );
        }
    }
    let size = fs::metadata(r.dist.join("jwt-auth.wasm")).map(|m| m.len());
    match size {
        Ok(size) => {
            let _ = writeln!(
                md,
                "\n`dist/jwt-auth.wasm`: {size} bytes ({:.1} KiB), target ≤ 600 KiB ({JWT_AUTH_SIZE_TARGET} bytes): {}",
                size as f64 / 1024.0,
                yes(size <= JWT_AUTH_SIZE_TARGET)
            );
        }
        Err(e) => {
            let _ = writeln!(md, "\n`dist/jwt-auth.wasm`: not readable ({e})");
        }
    }
}

fn render(r: &RunInfo) -> String {
    let summary = |v: &Variant| {
        let of = |f: fn(&Sample) -> f64| {
            median(
                r.samples
                    .iter()
                    .filter(|s| s.variant.name == v.name)
                    .map(f)
                    .collect(),
            )
        };
        Summary {
            rps: of(|s| s.rps),
            us: of(|s| s.us_per_req),
            norm: of(|s| s.us_per_req / s.twin_us_per_req),
            twin_us: of(|s| s.twin_us_per_req),
        }
    };
    let base = match VARIANTS.iter().find(|v| v.name == BASELINE) {
        Some(b) => summary(b),
        None => return String::new(),
    };
    // The paired no-filter front's typical cost, to turn ratios back into µs.
    let twin_us = median(r.samples.iter().map(|s| s.twin_us_per_req).collect());
    let norm_delta = |s: &Summary| (s.norm - base.norm) * twin_us;
    let o = r.opts;
    let mut md = String::new();
    let _ = writeln!(md, "# Filter overhead benchmark\n");
    let _ = writeln!(md, "- machine: {} CPUs, {}", r.ncpu, r.model);
    let _ = writeln!(md, "- Envoy: {}", r.envoy_version);
    let _ = writeln!(
        md,
        "- load: `wrk -t1 -c{} -d{}s` keep-alive, GET / with `x-remove-me: 1`; {} rounds, variants interleaved, \
         {} s warm-up per run; a fresh front Envoy (`--concurrency 1`) per variant per round; upstream: one Envoy \
         (`--concurrency 1`, direct_response 200) for the whole run",
        o.connections, o.duration, o.rounds, o.warmup
    );
    let _ = writeln!(
        md,
        "- pinning: {}; every process at niceness {}",
        r.pinning, o.nice
    );
    let _ = writeln!(
        md,
        "- front CPU = utime+stime of the front Envoy over the measured run (/proc/PID/stat, CLK_TCK {}) ÷ requests",
        r.clk_tck
    );
    let _ = writeln!(md, "- load average at start: {}", r.loadavg);
    let busy = median(
        r.samples
            .iter()
            .map(|s| 100.0 * s.cpu_secs / s.wall_secs)
            .collect(),
    );
    let _ = writeln!(
        md,
        "- front Envoy busy {busy:.0}% of the run (median){}",
        if busy < 90.0 {
            ": not saturated, so req/s measures the whole loopback pipeline rather than the front's capacity"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "- medians over rounds; ratios and Δ are of medians, against `no-filter`\n"
    );

    let _ = writeln!(
        md,
        "| variant | req/s median | ratio to no-filter | front CPU µs/req median | Δ µs/req vs no-filter | CPU ratio |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for &v in r.selected {
        let s = summary(v);
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.3} | {:.2} | {:+.2} | {:.3} |",
            v.name,
            s.rps,
            s.rps / base.rps,
            s.us,
            s.us - base.us,
            s.us / base.us
        );
    }

    let _ = writeln!(
        md,
        "\n## Paired with a simultaneous no-filter front (the precise view)\n"
    );
    let _ = writeln!(
        md,
        "Every measured front runs beside a second, no-filter front on the same CPU, both loaded at the same \
         time, so both see the same machine (other jobs, steal time, frequency). The ratio of their CPU per \
         request is far steadier than absolute numbers taken seconds apart (the no-filter row, paired with \
         itself, shows the remaining noise). Δ est. = (ratio − ratio of no-filter) × median paired no-filter \
         µs/req ({twin_us:.2}); CPU-bound capacity est. = ratio of no-filter ÷ ratio.\n"
    );
    let _ = writeln!(md, "| variant | front ÷ paired no-filter CPU/req median | CPU ratio | Δ µs/req est. | CPU-bound capacity est. |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for &v in r.selected {
        let s = summary(v);
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.3} | {:+.2} | {:.3} |",
            v.name,
            s.norm,
            s.norm / base.norm,
            norm_delta(&s),
            base.norm / s.norm
        );
    }

    // Targets (informational).
    let idx = |name: &str| r.selected.iter().copied().find(|v| v.name == name);
    let yes = |b: bool| if b { "met" } else { "NOT met" };
    let _ = writeln!(md, "\n## Targets (informational, not asserted)\n");
    let _ = writeln!(
        md,
        "| target | unpaired medians | status | paired estimate | status |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    match idx("header-rules") {
        Some(hr) => {
            let h = summary(hr);
            let (hd, hn) = (h.us - base.us, norm_delta(&h));
            match idx("lua") {
                Some(l) => {
                    let lua = summary(l);
                    let (ld, ln) = (lua.us - base.us, norm_delta(&lua));
                    let _ = writeln!(
                        md,
                        "| header-rules Δ CPU ≤ 0.5 × Lua Δ | {hd:.2} vs 0.5 × {ld:.2} = {:.2} µs | {} | \
                         {hn:.2} vs 0.5 × {ln:.2} = {:.2} µs | {} |",
                        0.5 * ld,
                        yes(hd <= 0.5 * ld),
                        0.5 * ln,
                        yes(hn <= 0.5 * ln)
                    );
                }
                None => {
                    let _ = writeln!(
                        md,
                        "| header-rules Δ CPU ≤ 0.5 × Lua Δ | lua not measured | n/a | | n/a |"
                    );
                }
            }
            let _ = writeln!(
                md,
                "| header-rules Δ CPU ≤ 5 µs/req | {hd:.2} µs | {} | {hn:.2} µs | {} |",
                yes(hd <= 5.0),
                yes(hn <= 5.0)
            );
            let (ratio, cap) = (h.rps / base.rps, base.norm / h.norm);
            let _ = writeln!(
                md,
                "| header-rules capacity ≥ 0.95 × no-filter | {ratio:.3} × (req/s) | {} | {cap:.3} × (CPU-bound) | {} |",
                yes(ratio >= 0.95),
                yes(cap >= 0.95)
            );
        }
        None => {
            let _ = writeln!(
                md,
                "| header-rules targets | header-rules not measured | n/a | | n/a |"
            );
        }
    }

    render_jwt(&mut md, r, &summary, base.norm);

    let _ = writeln!(md, "\n## Wasm modules in dist/\n");
    let _ = writeln!(md, "| file | bytes |");
    let _ = writeln!(md, "|---|---:|");
    let mut wasm: Vec<(String, u64)> = fs::read_dir(r.dist)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().to_string(),
                        e.metadata().map(|m| m.len()).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    wasm.sort();
    for (name, size) in wasm {
        let _ = writeln!(md, "| {name} | {size} |");
    }

    let _ = writeln!(md, "\n## Samples\n");
    let _ = writeln!(md, "| round | variant | req/s | requests | front CPU s | front CPU % | µs/req | paired no-filter µs/req | upstream µs/req | socket errors |");
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for s in r.samples {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            s.round,
            s.variant.name,
            s.rps,
            s.requests,
            s.cpu_secs,
            100.0 * s.cpu_secs / s.wall_secs,
            s.us_per_req,
            s.twin_us_per_req,
            s.upstream_us_per_req,
            if s.socket_errors.is_empty() {
                "-"
            } else {
                &s.socket_errors
            }
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(only: &[&str]) -> Vec<&'static str> {
        let args: Vec<String> = ["--only".to_string(), only.join(",")].to_vec();
        let opts = parse_args(&args).unwrap_or_else(|e| panic!("{e}"));
        selected_variants(opts.only.as_deref())
            .iter()
            .map(|v| v.name)
            .collect()
    }

    #[test]
    fn only_selects_groups_patterns_and_names() {
        let jwt = names(&["jwt"]);
        assert_eq!(jwt.len(), 9, "{jwt:?}");
        assert_eq!(jwt.first(), Some(&BASELINE));
        assert!(jwt
            .iter()
            .skip(1)
            .all(|n| n.starts_with("native-jwt-") || n.starts_with("jwt-auth-")));
        assert_eq!(
            names(&["headers"]),
            [
                BASELINE,
                "bare",
                "raw",
                "raw-edits",
                "native-header_mutation",
                "lua",
                "header-rules",
                "template"
            ]
        );
        assert_eq!(
            names(&["jwt-auth-*"]),
            [
                BASELINE,
                "jwt-auth-rs256-same",
                "jwt-auth-es256-same",
                "jwt-auth-rs256-pool",
                "jwt-auth-es256-pool"
            ]
        );
        assert_eq!(
            names(&["*-es256-*"]),
            [
                BASELINE,
                "native-jwt-es256-same",
                "jwt-auth-es256-same",
                "native-jwt-es256-pool",
                "jwt-auth-es256-pool"
            ]
        );
        assert_eq!(names(&["*-pool"]).len(), 5);
        assert_eq!(
            names(&["lua", "header-rules"]),
            [BASELINE, "lua", "header-rules"]
        );
        assert!(parse_args(&["--only".into(), "nope".into()]).is_err());
        assert!(parse_args(&["--only".into(), "jwt-*-x".into()]).is_err());
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*", "a"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*a", "a"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(
            !glob_match("abc", "abc"),
            "no `*`: names are compared by selects()"
        );
    }

    #[test]
    fn every_jwt_load_has_both_filters() {
        for alg in Alg::ALL {
            for pool in [false, true] {
                let load = Some(JwtLoad { alg, pool });
                let rows: Vec<&str> = VARIANTS
                    .iter()
                    .filter(|v| v.jwt == load)
                    .map(|v| v.name)
                    .collect();
                let suffix = format!(
                    "{}-{}",
                    alg.name().to_ascii_lowercase(),
                    if pool { "pool" } else { "same" }
                );
                assert_eq!(
                    rows,
                    [format!("native-jwt-{suffix}"), format!("jwt-auth-{suffix}")]
                );
            }
        }
    }

    #[test]
    fn token_pool_parsing() {
        let ok = r#"{"pool": ["a.b.c", "a.b.d", "e-_.f.g"]}"#;
        assert_eq!(
            parse_token_pool(ok, 3),
            Ok(vec!["a.b.c".into(), "a.b.d".into(), "e-_.f.g".into()])
        );
        assert!(parse_token_pool(ok, 4).is_err(), "wrong count");
        assert!(parse_token_pool(r#"{"pool": ["a.b.c", "a.b.c"]}"#, 2).is_err());
        assert!(parse_token_pool(r#"{"pool": ["a.b"]}"#, 1).is_err());
        assert!(parse_token_pool(r#"{"pool": ["a.b.\"c"]}"#, 1).is_err());
        assert!(parse_token_pool(r#"{"pool": [1]}"#, 1).is_err());
        assert!(parse_token_pool(r#"{"RS256": "a.b.c"}"#, 1).is_err());
        assert!(parse_token_pool("not json", 1).is_err());
    }

    #[test]
    fn wrk_script_rotates_over_the_tokens() {
        let lua = wrk_script(&["t1.a.b".into(), "t2.a.b".into()]);
        assert!(lua.contains("  \"t1.a.b\",\n  \"t2.a.b\",\n"));
        assert!(lua.contains(r#"["Authorization"] = "Bearer " .. t"#));
        assert!(lua.contains("i = i % #requests + 1"));
    }

    #[test]
    fn both_jwt_filters_get_the_same_provider() {
        let inputs = Inputs {
            modules: Modules {
                dist: PathBuf::from("/d"),
                bench: PathBuf::from("/b"),
            },
            jwks: r#"{"keys":[]}"#.into(),
        };
        let native = native_jwt_filter(&inputs);
        assert!(native.contains("issuer: https://issuer.example.com"));
        assert!(native.contains(r#"inline_string: '{"keys":[]}'"#));
        assert!(native.contains("jwt_cache_size: 100"));
        let config: serde_json::Value =
            serde_json::from_str(&jwt_auth_config(&inputs.jwks)).unwrap_or_default();
        let p = &config["providers"]["bench"];
        assert_eq!(p["issuer"], JWT_ISSUER);
        assert_eq!(p["audiences"][0], JWT_AUDIENCE);
        assert_eq!(p["local_jwks"]["inline_string"], inputs.jwks);
        assert_eq!(p["jwt_cache_config"]["jwt_cache_size"], 100);
        assert_eq!(config["rules"][0]["requires"]["provider_name"], "bench");
        assert!(jwt_auth_filter(&inputs).contains("filename: \"/d/jwt-auth.wasm\""));
    }
}

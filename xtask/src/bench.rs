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
//! Dynamic-module rows (`*-dynmod*`, group `dynmod`): the same filter crates built as Envoy
//! dynamic modules (`dist/lib<filter>.so`, `envoy.filters.http.dynamic_modules`), with the
//! same configurations and checks as their wasm rows; compared with Envoy's native filters
//! doing the same work (`header-rules-dynmod` vs `native-header_mutation`: capacity ≥ 0.97 ×;
//! `jwt-auth-dynmod-*` vs `native-jwt-*`: capacity ≥ 1.0 ×, same token and pool of 1000).
//!
//! OPA rows (`--only opa`): the same 10-rule RBAC policy three ways. `native-rbac10`: Envoy's
//! `rbac` filter, policies `rule-0`..`rule-9` (a principal header and a permission of methods
//! and a path prefix each; Envoy checks them in name order, the load matches only the last).
//! `opa-policy-rbac10`: the opa-policy filter evaluating
//! `filters/opa-policy/examples/rbac-10.json` (the same ten bindings as `data`, one regorus
//! evaluation per request; its `limits.eval_timeout` is 0.1 s, so that a front the kernel
//! preempts mid-evaluation on a shared machine is not denied by the wall-clock budget).
//! `ext-authz-opa`: Envoy's `ext_authz` HTTP filter asking an
//! OPA-shaped service on every request: the upstream Envoy answers
//! `/v1/data/envoy/authz/allow/*` itself (`direct_response` 200 `{"result": true}`, well
//! under 1 ms), so the row is the ext_authz round trip with a near-free policy server.
//! `opa-policy-rbac10-dynmod`: the same config, the crate built as an Envoy dynamic module
//! (`dist/libopa-policy.so`; also in `dynmod`, held to issue 15's 1.10 × native-rbac10's
//! added CPU). Each must answer the load 200 and `GET /denied` 403. The report gives opa-policy's capacity
//! against both (targets: ≥ 0.7 × native rbac, ≥ 2 × ext_authz), the median of
//! `opa_policy.eval_us` (the filter's own evaluation-time histogram, P50, read from the front
//! after each run), and the `.wasm` size (target ≤ 1.5 MB).
//!
//! Every Envoy runs in its own process group with `--disable-hot-restart` (no shared memory, so no
//! base-id clashes with other Envoys and nothing left in /dev/shm); the groups are stopped on
//! success, on error and (through a small watchdog per Envoy) when this process dies, e.g. on
//! Ctrl-C.

#[path = "bench_instr.rs"]
mod instr;
#[path = "bench_tcp.rs"]
mod tcp;

/// `xtask bench-tcp-client`: the L4 rows' load generator (see `bench_tcp.rs`).
pub fn tcp_client(args: &[String]) -> Result<(), String> {
    tcp::client(args)
}

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
     [--connections C] [--rate R] [--clients K] [--max-other PCT] [--retakes N] [--nice N] \
     [--only a,b,...] [--instructions N]
  --instructions N count the front's instructions per request under callgrind (runs of N and
                   5N requests per variant) instead of timing: contention-free, slow (~1.5 min
                   per variant); writes target/bench/instructions.md
  --connections C  saturated samples: wrk keep-alive connections per front (default 16)
  --rate R         moderate samples: h2load requests/s per front (default 1000; 0: none)
  --clients K      moderate samples: h2load connections per front (default 4)
  --max-other PCT  drop a sample when other work took more than PCT % of the front core
                   (default 5), and re-take it up to --retakes times (default 2)
  --only takes variant names, groups and prefixes, comma-separated (no-filter is always run):
    headers     every non-JWT wasm row (bare, raw*, native-header_mutation, lua, header-rules,
                template, the per-route rows)
    floors      the sdk-ext filters and their raw-ABI floors (raw-edits, header-rules,
                raw-template, template)
    ratelimit   Envoy's native local_ratelimit vs rate-limit and its raw-ABI floor, with a
                budget that never limits: one bucket, and a per-client descriptor (-client)
    route       the per-route rows (filter disabled in the chain, enabled on one route)
    opa         the OPA rows (native rbac, opa-policy and ext_authz with the same 10 rules)
    policy      cors vs native cors (actual cross-origin request, preflight), ip-filter with
                10 000 CIDRs vs native rbac (HTTP) and, at L4, vs the network rbac before
                tcp_proxy (connections/s, bulk MB/s), request-block with 50 patterns; each
                with its raw-ABI floor
    jwt         the JWT rows (native jwt_authn vs jwt-auth, RS256/ES256, same token/pool of 1000)
    dynmod      the dynamic-module rows (*-dynmod*) and the native rows they are held to
                (native-header_mutation, native-jwt-*)
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
    /// A benchmark-only workspace package built as an Envoy dynamic module, into
    /// `target/bench/dynmod/lib<package>.so`.
    BenchNative(&'static str),
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
            Module::BenchNative(package) => {
                self.bench.join("dynmod").join(format!("lib{package}.so"))
            }
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
    /// A per-route row: the filter is `disabled: true` in the chain and enabled only on the
    /// front's `filtered` route (requests with `x-bench-route: on`).
    route: Option<PerRoute>,
    /// The raw-ABI row making the same host calls (the variant's floor), for the ÷ floor ratio.
    floor: Option<&'static str>,
}

/// A per-route row: which filter entry the `filtered` route enables, and where the load goes.
#[derive(Clone, Copy, PartialEq, Debug)]
struct PerRoute {
    /// The HTTP filter's name in the chain (the `typed_per_filter_config` key).
    filter: &'static str,
    /// `true`: the load goes to the `filtered` route (the filter runs); `false`: to the other
    /// route, which must pay nothing for the disabled filter.
    load_on: bool,
}

/// The request header that selects the front's `filtered` route in per-route rows.
const ROUTE_HEADER: (&str, &str) = ("x-bench-route", "on");

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
const FLOORS_GROUP: &str = "floors";
/// The `floors` group: the sdk-ext filters with the targets, and their raw-ABI floors.
const FLOOR_ROWS: &[&str] = &["raw-edits", "header-rules", "raw-template", "template"];
const ROUTE_GROUP: &str = "route";
/// The `ratelimit` group: native `local_ratelimit`, rate-limit and its floor, each with one
/// never-limiting bucket and with a per-client descriptor (`-client`).
const RATELIMIT_GROUP: &str = "ratelimit";
const RATELIMIT_ROWS: &[&str] = &[
    "native-ratelimit",
    "rate-limit",
    "raw-ratelimit",
    "native-ratelimit-client",
    "rate-limit-client",
    "raw-ratelimit-client",
];
/// rate-limit's bench configurations: budgets that never limit (10^9 tokens per second).
const RATE_LIMIT_CONFIG: &str = r#"{"stat_prefix":"bench","token_bucket":{"max_tokens":1000000000,"tokens_per_fill":1000000000,"fill_interval":"1s"}}"#;
const RATE_LIMIT_CLIENT_CONFIG: &str = r#"{"stat_prefix":"bench","descriptors":[{"name":"per_client","entries":[{"attribute":"client_address"}],"token_bucket":{"max_tokens":1000000000,"tokens_per_fill":1000000000,"fill_interval":"1s"}}]}"#;
const RATE_LIMIT_STATS: &[&str] = &["wasmcustom.rate_limit.bench.allowed"];
const DYNMOD_GROUP: &str = "dynmod";
/// The marker of a dynamic-module row's name.
const DYNMOD: &str = "-dynmod";
/// Issue 15's "within 1.10 × the added CPU of Envoy's native equivalent": each dynamic-module
/// row and the native row doing the same work.
const DYNMOD_VS_NATIVE: &[(&str, &str)] = &[
    ("rate-limit-dynmod", "native-ratelimit"),
    ("rate-limit-client-dynmod", "native-ratelimit-client"),
    ("cors-dynmod", "native-cors"),
    ("ip-filter-cidr10k-dynmod", "native-rbac-matcher-cidr10k"),
    ("opa-policy-rbac10-dynmod", "native-rbac10"),
];
/// The native rows of the `dynmod` group: what its modules are compared with (and the
/// `native-jwt-*` rows).
const DYNMOD_NATIVES: &[&str] = &[
    "native-header_mutation",
    "native-ratelimit",
    "native-ratelimit-client",
    "native-cors",
    "native-rbac-matcher-cidr10k",
    "native-rbac10",
];
const OPA_GROUP: &str = "opa";
/// The OPA rows.
const OPA_ROWS: &[&str] = &[
    "native-rbac10",
    "opa-policy-rbac10",
    "ext-authz-opa",
    "opa-policy-rbac10-dynmod",
];
/// The opa-policy bench config (`examples/rbac-10.json`), as shipped.
const OPA_RBAC_CONFIG: &str = include_str!("../../filters/opa-policy/examples/rbac-10.json");
/// Size target of `dist/opa-policy.wasm` (1.5 MB).
const OPA_POLICY_SIZE_TARGET: u64 = 1_500_000;
/// The path the OPA rows deny (no rule matches it: no `x-remove-me`).
const OPA_DENIED: (&str, u16) = ("/denied", 403);

/// The `policy` group (issue 13): cors, ip-filter and request-block against Envoy's native
/// equivalents and their raw-ABI floors; the L4 rows are in `bench_tcp.rs`.
const POLICY_GROUP: &str = "policy";
const POLICY_ROWS: &[&str] = &[
    "native-cors",
    "cors",
    "raw-cors",
    "native-cors-preflight",
    "cors-preflight",
    "raw-cors-preflight",
    "native-rbac-cidr10k",
    "native-rbac-matcher-cidr10k",
    "ip-filter-cidr10k",
    "raw-ipfilter",
    "request-block-50",
    "raw-requestblock",
];
/// The origin of every CORS request of the bench (allowed by every CORS row's policy).
const CORS_ORIGIN: &str = "https://app.example.com";
/// The CORS policy of the cors rows (Envoy's `CorsPolicy` fields, the same for native).
const CORS_CONFIG: &str = r#"{"rules":[{"name":"bench","allow_origin_string_match":[{"exact":"https://app.example.com"}],"allow_methods":"GET, POST, PUT","allow_headers":"content-type, x-request-id","expose_headers":"x-request-id","max_age":"600","allow_credentials":true}]}"#;
/// The CIDR count of the ip-filter rows.
const CIDRS: usize = 10_000;
/// The request-block rows' pattern count.
const REQUEST_BLOCK_PATTERNS: usize = 50;
/// Size targets of the policy filters' `.wasm` (bytes).
const POLICY_SIZE_TARGETS: &[(&str, u64)] = &[
    ("cors.wasm", 100_000),
    ("ip-filter.wasm", 100_000),
    ("request-block.wasm", 400_000),
];

/// How a policy row's requests look.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PolicyLoad {
    /// GET / (the other rows' load).
    Plain,
    /// GET / with `Origin` (an actual cross-origin request: the response gets CORS headers).
    Cors,
    /// A CORS preflight: OPTIONS with `Origin`, `Access-Control-Request-Method` and
    /// `-Headers` (wrk script; h2load sends only GET, so these rows have no moderate samples).
    Preflight,
}

fn policy_load(v: &Variant) -> PolicyLoad {
    match v.name {
        "native-cors" | "cors" | "raw-cors" | "cors-dynmod" | "raw-dynmod-cors" => PolicyLoad::Cors,
        "native-cors-preflight" | "cors-preflight" | "raw-cors-preflight" => PolicyLoad::Preflight,
        _ => PolicyLoad::Plain,
    }
}

/// The headers of a variant's load requests (the bench request, its token, route and origin).
fn request_headers(v: &Variant, token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("x-remove-me", "1".to_string())];
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    if v.route.is_some_and(|r| r.load_on) {
        headers.push((ROUTE_HEADER.0, ROUTE_HEADER.1.to_string()));
    }
    if policy_load(v) == PolicyLoad::Cors {
        headers.push(("origin", CORS_ORIGIN.to_string()));
    }
    headers
}

/// The preflight rows' wrk script, under `target/bench/`.
const PREFLIGHT_SCRIPT: &str = "cors-preflight.lua";

/// The wrk script of the preflight rows.
fn preflight_script() -> String {
    format!(
        "wrk.method = \"OPTIONS\"\nwrk.headers[\"Origin\"] = \"{CORS_ORIGIN}\"\n\
         wrk.headers[\"Access-Control-Request-Method\"] = \"POST\"\n\
         wrk.headers[\"Access-Control-Request-Headers\"] = \"content-type\"\n\
         wrk.headers[\"x-remove-me\"] = \"1\"\n"
    )
}

/// What the front's `plain` route carries for a row (native cors: its `CorsPolicy`, per
/// route, as Envoy's cors filter reads it).
fn route_extra(v: &Variant) -> String {
    if !v.name.starts_with("native-cors") {
        return String::new();
    }
    r#"                typed_per_filter_config:
                  envoy.filters.http.cors:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                    allow_origin_string_match: [{ exact: "https://app.example.com" }]
                    allow_methods: "GET, POST, PUT"
                    allow_headers: "content-type, x-request-id"
                    expose_headers: "x-request-id"
                    max_age: "600"
                    allow_credentials: true
"#
    .to_string()
}

/// The 10 000 ranges of the ip-filter rows, in address order: 9 999 `/24`s of 10.0.0.0/8
/// (10.0.0.0/24, 10.0.1.0/24, ...) and, last, 127.0.0.0/8: the bench client's. A list ordered
/// by address puts it there; a linear matcher (native rbac's policy principals) walks every
/// range before it, a trie (rbac's `matcher`, ip-filter's table) does not.
fn cidrs() -> Vec<(String, u8)> {
    let mut out: Vec<(String, u8)> = (0..CIDRS as u32 - 1)
        .map(|i| (format!("10.{}.{}.0", (i >> 8) & 255, i & 255), 24))
        .collect();
    out.push(("127.0.0.0".to_string(), 8));
    out
}

/// The ip-filter bench config: allow the 10 000 ranges, deny the rest.
fn ip_filter_config() -> String {
    let allow: Vec<String> = cidrs().iter().map(|(a, n)| format!("{a}/{n}")).collect();
    serde_json::json!({ "allow": allow }).to_string()
}

/// The address a policy check sends as `X-Forwarded-For` to be refused: with the front's
/// `use_remote_address: false` (Envoy's default) it is the downstream remote address, which
/// both ip-filter (`source.address`) and rbac's `remote_ip` judge.
const OUTSIDE_CLIENT: &str = "192.0.2.1";

/// request-block's 50 patterns: 20 on the path, 15 on the query, 15 on three headers; none
/// matches the load (GET / with `x-remove-me`), `/admin` is blocked (the check).
fn request_block_config() -> String {
    let mut rules =
        vec![serde_json::json!({"name": "r00", "in": "path", "pattern": {"prefix": "/admin"}})];
    let mut add = |location: &str, header: Option<&str>, pattern: serde_json::Value| {
        let mut r = serde_json::json!({"name": format!("r{:02}", rules.len()), "in": location, "pattern": pattern});
        if let Some(h) = header {
            r["header"] = serde_json::json!(h);
        }
        rules.push(r);
    };
    for i in 0..7 {
        add(
            "path",
            None,
            serde_json::json!({"prefix": format!("/internal-{i}/")}),
        );
        add(
            "path",
            None,
            serde_json::json!({"suffix": format!(".bak{i}")}),
        );
    }
    for i in 0..5 {
        add(
            "path",
            None,
            serde_json::json!({"safe_regex": {"regex": format!("/\\.(git|env|svn){i}(/|$)")}}),
        );
    }
    for i in 0..8 {
        add(
            "query",
            None,
            serde_json::json!({"contains": format!("../{i}")}),
        );
    }
    for i in 0..7 {
        add(
            "query",
            None,
            serde_json::json!({"safe_regex": {"regex": format!("(?i)union\\s+select{i}")}}),
        );
    }
    for i in 0..5 {
        add(
            "header",
            Some("user-agent"),
            serde_json::json!({"safe_regex": {"regex": format!("(?i)sqlmap{i}|nikto{i}")}}),
        );
        add(
            "header",
            Some("x-api-version"),
            serde_json::json!({"contains": format!("${{jndi:{i}")}),
        );
        add(
            "header",
            Some("referer"),
            serde_json::json!({"prefix": format!("http://evil-{i}.example")}),
        );
    }
    rules.truncate(REQUEST_BLOCK_PATTERNS);
    serde_json::json!({"rules": rules, "status": 403, "message": "request blocked"}).to_string()
}

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
        route: None,
        floor: None,
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
        route: None,
        floor: None,
    }
}

/// jwt-auth as a dynamic module, with the provider and tokens of [`native_jwt_variant`].
const fn jwt_auth_dynmod_variant(name: &'static str, alg: Alg, pool: bool) -> Variant {
    Variant {
        name,
        filters: jwt_auth_dynmod_filter,
        edits: Edits::None,
        stats: JWT_AUTH_STATS,
        wasm: Some(Module::Dist("libjwt-auth.so")),
        denied: Some(("/check", 401)),
        jwt: Some(JwtLoad { alg, pool }),
        route: None,
        floor: None,
    }
}

const HEADER_RULES_STATS: &[&str] = &["wasmcustom.header_rules.requests_matched"];
const TEMPLATE_STATS: &[&str] = &["wasmcustom.template.allowed"];
/// The names of the per-route rows' filter entries (distinct names: the route's
/// `typed_per_filter_config` enables one by name).
const HEADER_RULES_ENTRY: &str = "envoy.filters.http.wasm.header_rules";
const TEMPLATE_ENTRY: &str = "envoy.filters.http.wasm.template";

/// header-rules disabled in the chain and enabled on the `filtered` route; the load goes to
/// that route (`load_on`) or to the other one.
const fn header_rules_route_variant(name: &'static str, load_on: bool) -> Variant {
    Variant {
        name,
        filters: header_rules_route_filter,
        edits: Edits::Bench,
        stats: HEADER_RULES_STATS,
        wasm: Some(Module::Dist("header-rules.wasm")),
        denied: None,
        jwt: None,
        route: Some(PerRoute {
            filter: HEADER_RULES_ENTRY,
            load_on,
        }),
        floor: Some("raw-edits"),
    }
}

/// The template, per route, as [`header_rules_route_variant`].
const fn template_route_variant(name: &'static str, load_on: bool) -> Variant {
    Variant {
        name,
        filters: template_route_filter,
        edits: Edits::None,
        stats: TEMPLATE_STATS,
        wasm: Some(Module::Dist("template.wasm")),
        denied: Some(("/admin", 403)),
        jwt: None,
        route: Some(PerRoute {
            filter: TEMPLATE_ENTRY,
            load_on,
        }),
        floor: Some("raw-template"),
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
        route: None,
        floor: None,
    },
    Variant {
        name: "bare",
        filters: bare_filter,
        edits: Edits::One,
        stats: &[],
        wasm: Some(Module::Bench("bare-filter")),
        denied: None,
        jwt: None,
        route: None,
        floor: Some("raw"),
    },
    Variant {
        name: "raw",
        filters: raw_filter,
        edits: Edits::One,
        stats: &[],
        wasm: Some(Module::Bench("raw-filter")),
        denied: None,
        jwt: None,
        route: None,
        floor: None,
    },
    Variant {
        name: "raw-edits",
        filters: raw_edits_filter,
        edits: Edits::Bench,
        stats: &["wasmcustom.raw_edits.requests_matched"],
        wasm: Some(Module::Bench("raw-edits")),
        denied: None,
        jwt: None,
        route: None,
        floor: None,
    },
    Variant {
        name: "native-header_mutation",
        filters: header_mutation_filter,
        edits: Edits::Bench,
        stats: &[],
        wasm: None,
        denied: None,
        jwt: None,
        route: None,
        floor: None,
    },
    Variant {
        name: "lua",
        filters: lua_filter,
        edits: Edits::Bench,
        stats: &[],
        wasm: None,
        denied: None,
        jwt: None,
        route: None,
        floor: None,
    },
    Variant {
        name: "header-rules",
        filters: header_rules_filter,
        edits: Edits::Bench,
        stats: HEADER_RULES_STATS,
        wasm: Some(Module::Dist("header-rules.wasm")),
        denied: None,
        jwt: None,
        route: None,
        floor: Some("raw-edits"),
    },
    Variant {
        name: "template",
        filters: template_filter,
        edits: Edits::None,
        stats: TEMPLATE_STATS,
        wasm: Some(Module::Dist("template.wasm")),
        denied: Some(("/admin", 403)),
        jwt: None,
        route: None,
        floor: Some("raw-template"),
    },
    Variant {
        name: "raw-template",
        filters: raw_template_filter,
        edits: Edits::None,
        stats: &["wasmcustom.raw_template.allowed"],
        wasm: Some(Module::Bench("raw-template")),
        denied: Some(("/admin", 403)),
        jwt: None,
        route: None,
        floor: None,
    },
    ratelimit_variant("native-ratelimit", native_ratelimit_filter, None, None),
    ratelimit_variant(
        "rate-limit",
        rate_limit_filter,
        Some(Module::Dist("rate-limit.wasm")),
        Some("raw-ratelimit"),
    ),
    ratelimit_variant(
        "raw-ratelimit",
        raw_ratelimit_filter,
        Some(Module::Bench("raw-ratelimit")),
        None,
    ),
    ratelimit_variant(
        "native-ratelimit-client",
        native_ratelimit_client_filter,
        None,
        None,
    ),
    ratelimit_variant(
        "rate-limit-client",
        rate_limit_client_filter,
        Some(Module::Dist("rate-limit.wasm")),
        Some("raw-ratelimit-client"),
    ),
    ratelimit_variant(
        "raw-ratelimit-client",
        raw_ratelimit_client_filter,
        Some(Module::Bench("raw-ratelimit")),
        None,
    ),
    header_rules_route_variant("header-rules-route-off", false),
    header_rules_route_variant("header-rules-route-on", true),
    template_route_variant("template-route-off", false),
    template_route_variant("template-route-on", true),
    Variant {
        name: "header-rules-dynmod",
        filters: header_rules_dynmod_filter,
        edits: Edits::Bench,
        stats: HEADER_RULES_STATS,
        wasm: Some(Module::Dist("libheader-rules.so")),
        denied: None,
        jwt: None,
        route: None,
        floor: Some("raw-dynmod"),
    },
    Variant {
        name: "raw-dynmod",
        filters: raw_dynmod_filter,
        edits: Edits::Bench,
        stats: &["wasmcustom.raw_dynmod.requests_matched"],
        wasm: Some(Module::BenchNative("raw-dynmod")),
        denied: None,
        jwt: None,
        route: None,
        floor: None,
    },
    Variant {
        name: "template-dynmod",
        filters: template_dynmod_filter,
        edits: Edits::None,
        stats: TEMPLATE_STATS,
        wasm: Some(Module::Dist("libtemplate.so")),
        denied: Some(("/admin", 403)),
        jwt: None,
        route: None,
        floor: None,
    },
    // The floors of the dynamic-module rows (`bench/raw-dynmod`, one mode per floor): an
    // empty module (Envoy's own per-stream price of a dynamic-module filter) and each
    // filter's Envoy calls through the bare ABI.
    Variant {
        name: "raw-dynmod-empty",
        filters: raw_dynmod_empty_filter,
        edits: Edits::None,
        stats: &[],
        wasm: Some(Module::BenchNative("raw-dynmod")),
        denied: None,
        jwt: None,
        route: None,
        floor: None,
    },
    ratelimit_variant(
        "raw-dynmod-ratelimit",
        raw_dynmod_ratelimit_filter,
        Some(Module::BenchNative("raw-dynmod")),
        None,
    ),
    ratelimit_variant(
        "raw-dynmod-ratelimit-client",
        raw_dynmod_ratelimit_client_filter,
        Some(Module::BenchNative("raw-dynmod")),
        None,
    ),
    policy_variant(
        "raw-dynmod-cors",
        raw_dynmod_cors_filter,
        &["wasmcustom.raw_dynmod.cors.origin_valid"],
        Some(Module::BenchNative("raw-dynmod")),
        None,
        None,
    ),
    Variant {
        name: "native-rbac10",
        filters: native_rbac_filter,
        edits: Edits::None,
        stats: &["http.front.rbac.allowed"],
        wasm: None,
        denied: Some(OPA_DENIED),
        jwt: None,
        route: None,
        floor: None,
    },
    Variant {
        name: "opa-policy-rbac10",
        filters: opa_policy_filter,
        edits: Edits::None,
        stats: &["wasmcustom.opa_policy.allowed"],
        wasm: Some(Module::Dist("opa-policy.wasm")),
        denied: Some(OPA_DENIED),
        jwt: None,
        route: None,
        floor: None,
    },
    Variant {
        name: "opa-policy-rbac10-dynmod",
        filters: opa_policy_dynmod_filter,
        edits: Edits::None,
        stats: &["wasmcustom.opa_policy.allowed"],
        wasm: Some(Module::Dist("libopa-policy.so")),
        denied: Some(OPA_DENIED),
        jwt: None,
        route: None,
        floor: None,
    },
    Variant {
        name: "ext-authz-opa",
        filters: ext_authz_filter,
        edits: Edits::None,
        stats: &["http.front.ext_authz.ok"],
        wasm: None,
        denied: Some(OPA_DENIED),
        jwt: None,
        route: None,
        floor: None,
    },
    policy_variant("native-cors", native_cors_filter, &[], None, None, None),
    policy_variant(
        "cors",
        cors_filter,
        &["wasmcustom.cors.origin_valid"],
        Some(Module::Dist("cors.wasm")),
        None,
        Some("raw-cors"),
    ),
    policy_variant(
        "raw-cors",
        raw_cors_filter,
        &["wasmcustom.raw_cors.origin_valid"],
        Some(Module::Bench("raw-cors")),
        None,
        None,
    ),
    policy_variant(
        "native-cors-preflight",
        native_cors_filter,
        &[],
        None,
        None,
        None,
    ),
    policy_variant(
        "cors-preflight",
        cors_filter,
        &["wasmcustom.cors.preflight"],
        Some(Module::Dist("cors.wasm")),
        None,
        Some("raw-cors-preflight"),
    ),
    policy_variant(
        "raw-cors-preflight",
        raw_cors_filter,
        &["wasmcustom.raw_cors.preflight"],
        Some(Module::Bench("raw-cors")),
        None,
        None,
    ),
    policy_variant(
        "native-rbac-cidr10k",
        native_rbac_cidr_filter,
        &["http.front.rbac.allowed"],
        None,
        None,
        None,
    ),
    policy_variant(
        "native-rbac-matcher-cidr10k",
        native_rbac_matcher_filter,
        &["http.front.rbac.allowed"],
        None,
        None,
        None,
    ),
    policy_variant(
        "ip-filter-cidr10k",
        ip_filter_filter,
        &["wasmcustom.ip_filter.allowed"],
        Some(Module::Dist("ip-filter.wasm")),
        None,
        Some("raw-ipfilter"),
    ),
    policy_variant(
        "raw-ipfilter",
        raw_ipfilter_filter,
        &["wasmcustom.raw_ipfilter.allowed"],
        Some(Module::Bench("raw-ipfilter")),
        None,
        None,
    ),
    policy_variant(
        "request-block-50",
        request_block_filter,
        &["wasmcustom.request_block.allowed"],
        Some(Module::Dist("request-block.wasm")),
        Some(("/admin", 403)),
        Some("raw-requestblock"),
    ),
    policy_variant(
        "raw-requestblock",
        raw_requestblock_filter,
        &["wasmcustom.raw_requestblock.allowed"],
        Some(Module::Bench("raw-requestblock")),
        Some(("/admin", 403)),
        None,
    ),
    native_jwt_variant("native-jwt-rs256-same", Alg::Rs256, false),
    jwt_auth_variant("jwt-auth-rs256-same", Alg::Rs256, false),
    native_jwt_variant("native-jwt-es256-same", Alg::Es256, false),
    jwt_auth_variant("jwt-auth-es256-same", Alg::Es256, false),
    native_jwt_variant("native-jwt-rs256-pool", Alg::Rs256, true),
    jwt_auth_variant("jwt-auth-rs256-pool", Alg::Rs256, true),
    native_jwt_variant("native-jwt-es256-pool", Alg::Es256, true),
    jwt_auth_variant("jwt-auth-es256-pool", Alg::Es256, true),
    jwt_auth_dynmod_variant("jwt-auth-dynmod-rs256-same", Alg::Rs256, false),
    jwt_auth_dynmod_variant("jwt-auth-dynmod-es256-same", Alg::Es256, false),
    jwt_auth_dynmod_variant("jwt-auth-dynmod-rs256-pool", Alg::Rs256, true),
    jwt_auth_dynmod_variant("jwt-auth-dynmod-es256-pool", Alg::Es256, true),
    // The policy and rate-limit filters as dynamic modules (issue 15: within 1.10 × the
    // added CPU of Envoy's native equivalent): the same configs and loads as their wasm rows.
    ratelimit_variant(
        "rate-limit-dynmod",
        rate_limit_dynmod_filter,
        Some(Module::Dist("librate-limit.so")),
        Some("raw-dynmod-ratelimit"),
    ),
    ratelimit_variant(
        "rate-limit-client-dynmod",
        rate_limit_client_dynmod_filter,
        Some(Module::Dist("librate-limit.so")),
        Some("raw-dynmod-ratelimit-client"),
    ),
    policy_variant(
        "cors-dynmod",
        cors_dynmod_filter,
        &["wasmcustom.cors.origin_valid"],
        Some(Module::Dist("libcors.so")),
        None,
        Some("raw-dynmod-cors"),
    ),
    policy_variant(
        "ip-filter-cidr10k-dynmod",
        ip_filter_dynmod_filter,
        &["wasmcustom.ip_filter.allowed"],
        Some(Module::Dist("libip-filter.so")),
        None,
        None,
    ),
    policy_variant(
        "request-block-50-dynmod",
        request_block_dynmod_filter,
        &["wasmcustom.request_block.allowed"],
        Some(Module::Dist("librequest-block.so")),
        Some(("/admin", 403)),
        None,
    ),
];

/// A `ratelimit` row (see [`RATELIMIT_ROWS`]).
const fn ratelimit_variant(
    name: &'static str,
    filters: fn(&Inputs) -> String,
    wasm: Option<Module>,
    floor: Option<&'static str>,
) -> Variant {
    let stats: &'static [&'static str] = match (&wasm, &floor) {
        (Some(Module::Dist(_)), _) => RATE_LIMIT_STATS,
        (Some(Module::Bench(_)), _) => &["wasmcustom.raw_ratelimit.allowed"],
        (Some(Module::BenchNative(_)), _) => &["wasmcustom.raw_dynmod.allowed"],
        (None, _) => &[],
    };
    Variant {
        name,
        filters,
        edits: Edits::None,
        stats,
        wasm,
        denied: None,
        jwt: None,
        route: None,
        floor,
    }
}

/// Envoy's native `local_ratelimit`, 10^9 tokens per second (never limits); `per_client`:
/// plus a descriptor per client address (`remote_address`, a wildcard entry: a bucket per
/// address, at most `max_dynamic_descriptors`).
fn native_ratelimit(per_client: bool) -> String {
    let bucket = "{ max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s }";
    let descriptors = if per_client {
        format!(
            r#"
              rate_limits:
              - actions:
                - remote_address: {{}}
              descriptors:
              - entries:
                - key: remote_address
                token_bucket: {bucket}
              max_dynamic_descriptors: 1024
              always_consume_default_token_bucket: false"#
        )
    } else {
        String::new()
    };
    format!(
        r#"          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: bench
              token_bucket: {bucket}
              filter_enabled:
                default_value: {{ numerator: 100, denominator: HUNDRED }}
              filter_enforced:
                default_value: {{ numerator: 100, denominator: HUNDRED }}{descriptors}
"#
    )
}

fn native_ratelimit_filter(_: &Inputs) -> String {
    native_ratelimit(false)
}

fn native_ratelimit_client_filter(_: &Inputs) -> String {
    native_ratelimit(true)
}

fn rate_limit_filter(i: &Inputs) -> String {
    wasm_filter(
        "rate-limit",
        "rate-limit",
        RATE_LIMIT_CONFIG,
        &i.modules.path(Module::Dist("rate-limit.wasm")),
    )
}

fn rate_limit_client_filter(i: &Inputs) -> String {
    wasm_filter(
        "rate-limit",
        "rate-limit",
        RATE_LIMIT_CLIENT_CONFIG,
        &i.modules.path(Module::Dist("rate-limit.wasm")),
    )
}

/// rate-limit's host calls through the bare ABI (`bench/raw-ratelimit`), one fixed bucket.
fn raw_ratelimit_filter(i: &Inputs) -> String {
    wasm_filter(
        "raw-ratelimit",
        "",
        "",
        &i.modules.path(Module::Bench("raw-ratelimit")),
    )
}

/// The same with a key per client address (a non-empty configuration selects it).
fn raw_ratelimit_client_filter(i: &Inputs) -> String {
    wasm_filter(
        "raw-ratelimit",
        "",
        "per-client",
        &i.modules.path(Module::Bench("raw-ratelimit")),
    )
}

/// A `policy` row (see [`POLICY_ROWS`]).
const fn policy_variant(
    name: &'static str,
    filters: fn(&Inputs) -> String,
    stats: &'static [&'static str],
    wasm: Option<Module>,
    denied: Option<(&'static str, u16)>,
    floor: Option<&'static str>,
) -> Variant {
    Variant {
        name,
        filters,
        edits: Edits::None,
        stats,
        wasm,
        denied,
        jwt: None,
        route: None,
        floor,
    }
}

/// Envoy's `cors` filter; the policy is on the route ([`route_extra`]).
fn native_cors_filter(_: &Inputs) -> String {
    r#"          - name: envoy.filters.http.cors
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors
"#
    .to_string()
}

fn cors_filter(i: &Inputs) -> String {
    wasm_filter(
        "cors",
        "cors",
        CORS_CONFIG,
        &i.modules.path(Module::Dist("cors.wasm")),
    )
}

/// cors' host calls through the bare ABI (`bench/raw-cors`).
fn raw_cors_filter(i: &Inputs) -> String {
    wasm_filter(
        "raw-cors",
        "",
        "",
        &i.modules.path(Module::Bench("raw-cors")),
    )
}

/// Envoy's `rbac` (HTTP), ALLOW: one policy whose principals are the 10 000 ranges
/// (`remote_ip`, the downstream remote address, as ip-filter's `source.address`), any
/// permission. Envoy checks the principals in order.
fn native_rbac_cidr_filter(_: &Inputs) -> String {
    let mut ids = String::new();
    for (a, n) in cidrs() {
        let _ = write!(
            ids,
            "\n                        - remote_ip: {{ address_prefix: \"{a}\", prefix_len: {n} }}"
        );
    }
    format!(
        r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  cidrs:
                    permissions: [{{ any: true }}]
                    principals:
                    - or_ids:
                        ids:{ids}
"#
    )
}

/// The same ranges through rbac's `matcher` (the unified matcher API): one IP range matcher
/// (`xds.type.matcher.v3.IPMatcher`, a trie) on the downstream remote address.
fn native_rbac_matcher_filter(_: &Inputs) -> String {
    let mut ranges = String::new();
    for (a, n) in cidrs() {
        let _ = write!(
            ranges,
            "\n                        - {{ address_prefix: \"{a}\", prefix_len: {n} }}"
        );
    }
    format!(
        r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              matcher:
                matcher_tree:
                  input:
                    name: remote-ip
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.SourceIPInput
                  custom_match:
                    name: ip-ranges
                    typed_config:
                      "@type": type.googleapis.com/xds.type.matcher.v3.IPMatcher
                      range_matchers:
                      - ranges:{ranges}
                        on_match:
                          action:
                            name: allow
                            typed_config:
                              "@type": type.googleapis.com/envoy.config.rbac.v3.Action
                              name: allow
                              action: ALLOW
                on_no_match:
                  action:
                    name: deny
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.rbac.v3.Action
                      name: deny
                      action: DENY
"#
    )
}

fn ip_filter_filter(i: &Inputs) -> String {
    wasm_filter(
        "ip-filter",
        "ip-filter",
        &ip_filter_config(),
        &i.modules.path(Module::Dist("ip-filter.wasm")),
    )
}

/// ip-filter's host calls through the bare ABI (`bench/raw-ipfilter`).
fn raw_ipfilter_filter(i: &Inputs) -> String {
    wasm_filter(
        "raw-ipfilter",
        "",
        "",
        &i.modules.path(Module::Bench("raw-ipfilter")),
    )
}

fn request_block_filter(i: &Inputs) -> String {
    wasm_filter(
        "request-block",
        "request-block",
        &request_block_config(),
        &i.modules.path(Module::Dist("request-block.wasm")),
    )
}

/// request-block's host calls through the bare ABI (`bench/raw-requestblock`).
fn raw_requestblock_filter(i: &Inputs) -> String {
    wasm_filter(
        "raw-requestblock",
        "",
        "",
        &i.modules.path(Module::Bench("raw-requestblock")),
    )
}

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

/// The ten bindings of `examples/rbac-10.json` (`data.rules`), in order.
fn rbac10_rules() -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(OPA_RBAC_CONFIG)
        .ok()
        .and_then(|c| c["policies"]["rbac"]["data"]["rules"].as_array().cloned())
        .unwrap_or_default()
}

/// Envoy's `rbac` with the same ten bindings: policy `rule-<i>` per binding (Envoy checks the
/// policies in name order and stops at the first match, as the Rego's `some rule in`).
fn native_rbac_filter(_: &Inputs) -> String {
    let mut policies = String::new();
    for (i, r) in rbac10_rules().iter().enumerate() {
        let methods: Vec<String> = r["methods"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|x| x.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut or_rules = String::new();
        for m in &methods {
            let _ = write!(
                or_rules,
                "\n                            - header: {{ name: \":method\", string_match: {{ exact: \"{m}\" }} }}"
            );
        }
        let _ = write!(
            policies,
            r#"
                  rule-{i}:
                    permissions:
                    - and_rules:
                        rules:
                        - or_rules:
                            rules:{or_rules}
                        - url_path: {{ path: {{ prefix: "{prefix}" }} }}
                    principals:
                    - header: {{ name: "{header}", string_match: {{ exact: "{value}" }} }}"#,
            prefix = r["prefix"].as_str().unwrap_or("/"),
            header = r["header"].as_str().unwrap_or("x-role"),
            value = r["value"].as_str().unwrap_or(""),
        );
    }
    format!(
        r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:{policies}
"#
    )
}

/// opa-policy with `examples/rbac-10.json` (compact JSON: one line in the YAML, whose
/// single-quoted scalar doubles the `'` of the Rego's comments).
fn opa_policy_filter(i: &Inputs) -> String {
    let config = serde_json::from_str::<serde_json::Value>(OPA_RBAC_CONFIG)
        .map(|v| v.to_string().replace('\'', "''"))
        .unwrap_or_default();
    wasm_filter(
        "opa-policy",
        "opa-policy",
        &config,
        &i.modules.path(Module::Dist("opa-policy.wasm")),
    )
}

/// The same opa-policy config, the crate built as an Envoy dynamic module.
fn opa_policy_dynmod_filter(i: &Inputs) -> String {
    let config = serde_json::from_str::<serde_json::Value>(OPA_RBAC_CONFIG)
        .map(|v| v.to_string().replace('\'', "''"))
        .unwrap_or_default();
    dynmod_filter(
        &i.modules.path(Module::Dist("libopa-policy.so")),
        "opa-policy",
        &config,
    )
}

/// Envoy's `ext_authz` (HTTP) asking the OPA-shaped service the upstream Envoy serves.
fn ext_authz_filter(_: &Inputs) -> String {
    r#"          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              http_service:
                server_uri: { uri: "http://opa", cluster: upstream, timeout: 1s }
                path_prefix: /v1/data/envoy/authz/allow
"#
    .to_string()
}

fn wasm_filter(name: &str, root_id: &str, config: &str, module: &Path) -> String {
    wasm_filter_entry(
        "envoy.filters.http.wasm",
        false,
        name,
        root_id,
        config,
        module,
    )
}

/// A wasm filter entry named `entry`; `disabled`: off unless a route enables it.
fn wasm_filter_entry(
    entry: &str,
    disabled: bool,
    name: &str,
    root_id: &str,
    config: &str,
    module: &Path,
) -> String {
    format!(
        r#"          - name: {entry}{disabled}
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
"#,
        disabled = if disabled {
            "\n            disabled: true"
        } else {
            ""
        }
    )
}

/// The same filter crate as an Envoy dynamic module (`dist/lib<name>.so`, loaded by path),
/// metrics in the wasm filter's `wasmcustom` namespace.
fn dynmod_filter(module: &Path, root_id: &str, config: &str) -> String {
    format!(
        r#"          - name: envoy.filters.http.dynamic_modules
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config:
                module: {{ local: {{ filename: {module:?} }} }}
                metrics_namespace: wasmcustom
              filter_name: {root_id}
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{config}'
"#
    )
}

/// header-rules' Envoy calls through the bare dynamic-module ABI (`bench/raw-dynmod`): the
/// floor of header-rules-dynmod.
fn raw_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::BenchNative("raw-dynmod")),
        "raw-dynmod",
        "",
    )
}

/// The floors of the other dynamic-module rows: `bench/raw-dynmod` in one of its modes.
fn raw_dynmod_mode(i: &Inputs, mode: &str) -> String {
    dynmod_filter(
        &i.modules.path(Module::BenchNative("raw-dynmod")),
        "raw-dynmod",
        mode,
    )
}

fn raw_dynmod_empty_filter(i: &Inputs) -> String {
    raw_dynmod_mode(i, "empty")
}

fn raw_dynmod_ratelimit_filter(i: &Inputs) -> String {
    raw_dynmod_mode(i, "ratelimit")
}

fn raw_dynmod_ratelimit_client_filter(i: &Inputs) -> String {
    raw_dynmod_mode(i, "ratelimit-client")
}

fn raw_dynmod_cors_filter(i: &Inputs) -> String {
    raw_dynmod_mode(i, "cors")
}

fn header_rules_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::Dist("libheader-rules.so")),
        "header-rules",
        HEADER_RULES_CONFIG,
    )
}

fn template_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::Dist("libtemplate.so")),
        "filter-template",
        TEMPLATE_CONFIG,
    )
}

fn rate_limit_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::Dist("librate-limit.so")),
        "rate-limit",
        RATE_LIMIT_CONFIG,
    )
}

fn rate_limit_client_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::Dist("librate-limit.so")),
        "rate-limit",
        RATE_LIMIT_CLIENT_CONFIG,
    )
}

fn cors_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::Dist("libcors.so")),
        "cors",
        CORS_CONFIG,
    )
}

fn ip_filter_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::Dist("libip-filter.so")),
        "ip-filter",
        &ip_filter_config(),
    )
}

fn request_block_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::Dist("librequest-block.so")),
        "request-block",
        &request_block_config(),
    )
}

fn jwt_auth_dynmod_filter(i: &Inputs) -> String {
    dynmod_filter(
        &i.modules.path(Module::Dist("libjwt-auth.so")),
        "jwt-auth",
        &jwt_auth_config(&i.jwks),
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

/// The template's host calls through the bare ABI (`bench/raw-template`): its host-side floor.
fn raw_template_filter(i: &Inputs) -> String {
    wasm_filter(
        "raw-template",
        "",
        "",
        &i.modules.path(Module::Bench("raw-template")),
    )
}

fn header_rules_route_filter(i: &Inputs) -> String {
    wasm_filter_entry(
        HEADER_RULES_ENTRY,
        true,
        "header-rules",
        "header-rules",
        HEADER_RULES_CONFIG,
        &i.modules.path(Module::Dist("header-rules.wasm")),
    )
}

fn template_route_filter(i: &Inputs) -> String {
    wasm_filter_entry(
        TEMPLATE_ENTRY,
        true,
        "template",
        "template",
        TEMPLATE_CONFIG,
        &i.modules.path(Module::Dist("template.wasm")),
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
              - match: {{ prefix: "/v1/data/envoy/authz/allow/denied" }}
                direct_response: {{ status: 403, body: {{ inline_string: "{{\"result\": false}}" }} }}
              - match: {{ prefix: "/v1/data/envoy/authz/allow/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "{{\"result\": true}}" }} }}
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

/// The front Envoy: the variant's filters, then the router to the upstream. `enable_on_route`:
/// the name of a (disabled) filter entry that the `filtered` route, selected by
/// [`ROUTE_HEADER`], enables with `typed_per_filter_config` (`FilterConfig`, `config: {}`).
fn front_config(filters: &str, upstream: SocketAddr, enable_on_route: Option<&str>) -> String {
    front_config_with(filters, upstream, enable_on_route, "")
}

/// [`front_config`] with `plain_extra` (YAML at the `plain` route's field indentation) added
/// to the `plain` route.
fn front_config_with(
    filters: &str,
    upstream: SocketAddr,
    enable_on_route: Option<&str>,
    plain_extra: &str,
) -> String {
    let filtered = match enable_on_route {
        Some(entry) => format!(
            r#"              - name: filtered
                match:
                  prefix: "/"
                  headers:
                  - name: {header}
                    string_match: {{ exact: "{value}" }}
                route: {{ cluster: upstream }}
                typed_per_filter_config:
                  {entry}:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    config: {{}}
"#,
            header = ROUTE_HEADER.0,
            value = ROUTE_HEADER.1
        ),
        None => String::new(),
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
          stat_prefix: front
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{filtered}              - name: plain
                match: {{ prefix: "/" }}
                route: {{ cluster: upstream }}
{plain_extra}          http_filters:
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
    /// Moderate load: requests/s per front (0: no moderate samples).
    rate: u32,
    /// Moderate load: h2load connections per front.
    clients: u32,
    /// Drop rule: a sample is dropped when other work took more than this share of the front
    /// core (user + nice + system time not ours, plus steal).
    max_other: f64,
    /// Drop rule: re-takes of a dropped sample before it is kept (flagged).
    retakes: usize,
    nice: i32,
    only: Option<Vec<String>>,
    /// `--instructions N`: count instructions per request under callgrind instead of timing
    /// (0: the timed run).
    instructions: u64,
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
        rate: 1000,
        clients: 4,
        max_other: 0.05,
        retakes: 2,
        nice: default_nice(),
        only: None,
        instructions: 0,
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
            "--instructions" => o.instructions = num(value()?)?.max(1),
            "--duration" => o.duration = num(value()?)?,
            "--warmup" => o.warmup = num(value()?)?,
            "--connections" => o.connections = num(value()?)? as u32,
            "--rate" => o.rate = num(value()?)? as u32,
            "--clients" => o.clients = num(value()?)? as u32,
            "--retakes" => o.retakes = num(value()?)? as usize,
            "--max-other" => {
                let v = value()?;
                let pct = v
                    .trim_end_matches('%')
                    .parse::<f64>()
                    .map_err(|_| format!("--max-other: not a percentage: {v}"))?;
                if !(0.0..=100.0).contains(&pct) {
                    return Err(format!("--max-other: {v} is not within 0-100 %"));
                }
                o.max_other = pct / 100.0;
            }
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
                    if !VARIANTS.iter().any(|v| selects(n, v))
                        && !tcp::TCP_VARIANTS.iter().any(|v| tcp::selects(n, v))
                    {
                        let known: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
                        return Err(format!(
                            "--only: {n:?} names no variant (groups: {HEADERS_GROUP}, {FLOORS_GROUP}, \
                             {ROUTE_GROUP}, {OPA_GROUP}, {JWT_GROUP}, {RATELIMIT_GROUP}, {DYNMOD_GROUP}, {POLICY_GROUP}; \
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
    if o.rounds == 0 || o.duration == 0 || o.connections == 0 || o.clients == 0 {
        return Err("--rounds, --duration, --connections and --clients must be at least 1".into());
    }
    Ok(o)
}

/// Whether one `--only` item (a variant name, a group or a `*` pattern) selects `v`.
fn selects(item: &str, v: &Variant) -> bool {
    match item {
        JWT_GROUP => v.jwt.is_some(),
        HEADERS_GROUP => {
            v.jwt.is_none()
                && v.name != BASELINE
                && !RATELIMIT_ROWS.contains(&v.name)
                && !OPA_ROWS.contains(&v.name)
                && !POLICY_ROWS.contains(&v.name)
                && !is_dynmod(v)
        }
        RATELIMIT_GROUP => RATELIMIT_ROWS.contains(&v.name),
        FLOORS_GROUP => FLOOR_ROWS.contains(&v.name),
        ROUTE_GROUP => v.route.is_some(),
        DYNMOD_GROUP => {
            is_dynmod(v) || DYNMOD_NATIVES.contains(&v.name) || v.name.starts_with("native-jwt-")
        }
        OPA_GROUP => OPA_ROWS.contains(&v.name),
        POLICY_GROUP => POLICY_ROWS.contains(&v.name),
        _ if item.contains('*') => glob_match(item, v.name),
        _ => item == v.name,
    }
}

/// A dynamic-module row (or its floor): group `dynmod`, not `headers`.
fn is_dynmod(v: &Variant) -> bool {
    v.name.contains(DYNMOD) || v.name == "raw-dynmod"
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
    start_envoy_with(env, name, config, cpu, &[])
}

/// [`start_envoy`] with the Envoy executable run by `wrapper` (its last item is the Envoy
/// executable; e.g. valgrind): no pid check then, and a longer start-up allowance.
fn start_envoy_with(
    env: &Env,
    name: &str,
    config: &str,
    cpu: Option<u32>,
    wrapper: &[std::ffi::OsString],
) -> Result<Envoy, String> {
    let cfg = env.work.join(format!("{name}.yaml"));
    let log = env.work.join(format!("{name}.log"));
    let admin_file = env.work.join(format!("{name}.admin"));
    fs::write(&cfg, config).map_err(|e| format!("writing {}: {e}", cfg.display()))?;
    let _ = fs::remove_file(&admin_file);
    let log_file =
        fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = env.pinned(cpu, Path::new(program));
            c.args(rest);
            c
        }
        None => env.pinned(cpu, &env.envoy),
    };
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
    let allowance = if wrapper.is_empty() { 60 } else { 300 };
    let deadline = Instant::now() + Duration::from_secs(allowance);
    loop {
        if let Ok(Some(status)) = envoy.child.try_wait() {
            return Err(fail(&envoy, format!("exited during startup ({status})")));
        }
        if Instant::now() > deadline {
            return Err(fail(&envoy, format!("not ready after {allowance} s")));
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
    if wrapper.is_empty() && !comm.trim().starts_with("envoy") {
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

/// CPU time of a process, all its threads, in seconds: the sum of each thread's run time in
/// `/proc/PID/task/TID/schedstat` (nanoseconds; a 5 s moderate sample of a front is ~0.3 s of
/// CPU, which clock ticks would measure only to ±3 %), or utime + stime from `/proc/PID/stat`
/// (clock ticks) where schedstat is not available.
fn cpu_secs(pid: u32, clk_tck: f64) -> Result<f64, String> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task"));
    if let Ok(tasks) = tasks {
        let mut ns: u64 = 0;
        let mut any = false;
        for t in tasks.flatten() {
            let text = fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            if let Some(v) = text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                ns += v;
                any = true;
            }
        }
        if any {
            return Ok(ns as f64 / 1e9);
        }
    }
    Ok(cpu_ticks(pid)? as f64 / clk_tck)
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
    http_request(addr, "GET", path, headers)
}

fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let err = |e: std::io::Error| format!("{method} http://{addr}{path}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n");
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
/// Per-route rows are checked on both routes: the filter acts on the `filtered` route, and the
/// other route is untouched (no edits, nothing denied).
fn verify(v: &Variant, front: &Envoy, token: Option<&str>) -> Result<(), String> {
    let own = Expect {
        edits: v.edits,
        denied: v.denied,
        stats: v.stats,
    };
    match v.route {
        None => verify_as(v, front, token, false, &own),
        Some(r) => {
            verify_as(v, front, token, true, &own)?;
            if !r.load_on {
                let untouched = Expect {
                    edits: Edits::None,
                    denied: v.denied.map(|(path, _)| (path, 200)),
                    stats: &[],
                };
                verify_as(v, front, token, false, &untouched)?;
            }
            Ok(())
        }
    }
}

/// What a check request must show.
struct Expect {
    edits: Edits,
    /// A path and the status it must answer.
    denied: Option<(&'static str, u16)>,
    stats: &'static [&'static str],
}

/// One round of checks, with or without [`ROUTE_HEADER`] on the requests.
fn verify_as(
    v: &Variant,
    front: &Envoy,
    token: Option<&str>,
    on_route: bool,
    want: &Expect,
) -> Result<(), String> {
    let ctx = |what: String| {
        let route = if on_route { " (filtered route)" } else { "" };
        format!("variant {}{route}: {what}", v.name)
    };
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("x-remove-me", "1")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    if on_route {
        headers.push(ROUTE_HEADER);
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
    match want.edits {
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
    if let Some((path, want)) = want.denied {
        let route: &[(&str, &str)] = if on_route { &[ROUTE_HEADER] } else { &[] };
        let r = http_get(front.listener, path, route).map_err(ctx)?;
        if r.status != want {
            return Err(ctx(format!(
                "GET {path} answered {}, want {want}",
                r.status
            )));
        }
    }
    for &stat in want.stats {
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

/// The policy rows' own checks, before [`verify`] (whose counters they move): a cors row
/// answers an actual cross-origin request with its CORS headers and a preflight locally
/// (200, the CORS headers, not proxied: no upstream echo); an ip-filter / rbac row answers 200
/// to the bench client and 403 to a client outside its ranges.
fn verify_policy(v: &Variant, front: &Envoy) -> Result<(), String> {
    let ctx = |what: String| format!("variant {}: {what}", v.name);
    match policy_check(v) {
        PolicyCheck::Cors => {
            let r = http_get(front.listener, "/check", &[("origin", CORS_ORIGIN)]).map_err(ctx)?;
            let want = [
                ("access-control-allow-origin", CORS_ORIGIN),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-request-id"),
            ];
            for (h, value) in want {
                if r.status != 200 || r.header(h) != Some(value) {
                    return Err(ctx(format!(
                        "a cross-origin GET answered {} with {h} = {:?}, want 200 and {value:?}",
                        r.status,
                        r.header(h)
                    )));
                }
            }
            let r = http_request(
                front.listener,
                "OPTIONS",
                "/check",
                &[
                    ("origin", CORS_ORIGIN),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
            )
            .map_err(ctx)?;
            let methods = r.header("access-control-allow-methods").unwrap_or("");
            if r.status != 200
                || r.header("access-control-allow-origin") != Some(CORS_ORIGIN)
                || !methods.contains("POST")
                || r.header("x-seen-remove").is_some()
                || !r.body.is_empty()
            {
                return Err(ctx(format!(
                    "a preflight answered {} (allow-origin {:?}, allow-methods {methods:?}, \
                     body {:?}, upstream echo {:?}); want 200, the CORS headers, answered locally",
                    r.status,
                    r.header("access-control-allow-origin"),
                    r.body,
                    r.header("x-seen-remove")
                )));
            }
        }
        PolicyCheck::IpRanges => {
            let r = http_get(front.listener, "/", &[]).map_err(ctx)?;
            let outside = http_get(front.listener, "/", &[("x-forwarded-for", OUTSIDE_CLIENT)])
                .map_err(ctx)?;
            if r.status != 200 || outside.status != 403 {
                return Err(ctx(format!(
                    "the bench client got {}, a client at {OUTSIDE_CLIENT} got {}; want 200 and 403",
                    r.status, outside.status
                )));
            }
        }
        PolicyCheck::None => {}
    }
    Ok(())
}

/// Which of [`verify_policy`]'s checks a row gets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PolicyCheck {
    /// An actual cross-origin request and a preflight: every row with a CORS load, whatever
    /// builds it (wasm, raw, dynamic module, native).
    Cors,
    /// The bench client allowed, a client outside the 10 000 ranges denied.
    IpRanges,
    None,
}

fn policy_check(v: &Variant) -> PolicyCheck {
    match policy_load(v) {
        PolicyLoad::Cors | PolicyLoad::Preflight => PolicyCheck::Cors,
        PolicyLoad::Plain if v.name.contains("cidr10k") => PolicyCheck::IpRanges,
        PolicyLoad::Plain => PolicyCheck::None,
    }
}

// ---------------------------------------------------------------------------------------------
// Load

struct LoadResult {
    requests: u64,
    rps: f64,
    secs: f64,
    socket_errors: String,
}

/// What a front is loaded with: GET / with these headers, or the requests of a wrk `script`
/// (JWT rows).
struct Load<'a> {
    script: Option<&'a Path>,
    headers: Vec<(&'a str, String)>,
}

/// `wrk` against `url` (saturation: `connections` keep-alive connections as fast as they go).
fn run_wrk(
    env: &Env,
    url: &str,
    load: &Load,
    secs: u64,
    connections: u32,
) -> Result<LoadResult, String> {
    let mut cmd = env.pinned(env.pin.map(|p| p.1), Path::new("wrk"));
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--timeout",
        "5s",
    ]);
    match load.script {
        Some(path) => {
            cmd.arg("-s").arg(path);
        }
        None => {
            for (k, v) in &load.headers {
                cmd.arg("-H").arg(format!("{k}: {v}"));
            }
        }
    }
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
        (Some(requests), Some(rps)) if requests > 0 => Ok(LoadResult {
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

/// `h2load` against `url` at a fixed rate (moderate load): `clients` HTTP/1.1 keep-alive
/// connections, each sending `rate / clients` requests per second, for `secs` seconds.
fn run_h2load(
    env: &Env,
    url: &str,
    load: &Load,
    secs: u64,
    rate: u32,
    clients: u32,
) -> Result<LoadResult, String> {
    let mut cmd = env.pinned(env.pin.map(|p| p.1), Path::new("h2load"));
    cmd.args([
        "--h1",
        "-t1",
        &format!("-c{clients}"),
        &format!("--rps={}", rate.div_ceil(clients).max(1)),
        &format!("-D{secs}"),
    ]);
    for (k, v) in &load.headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.arg(url).stdin(Stdio::null()).output().map_err(|e| {
        format!("running h2load (Debian package nghttp2-client; `make setup`): {e}")
    })?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "h2load failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_h2load(&text).map_err(|e| format!("h2load against {url}: {e}"))
}

/// Parses h2load's summary: `finished in 5.00s, 999.80 req/s, ...`, `requests: N total, N
/// started, N done, N succeeded, 0 failed, 0 errored, 0 timeout`, `status codes: N 2xx, ...`.
/// Any failed, errored, timed-out or non-2xx request is an error.
fn parse_h2load(text: &str) -> Result<LoadResult, String> {
    let mut secs = None;
    let mut rps = None;
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut non_2xx = 0u64;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            let mut parts = rest.split(',').map(str::trim);
            secs = parts.next().and_then(parse_wrk_duration);
            rps = parts
                .next()
                .and_then(|p| p.strip_suffix(" req/s"))
                .and_then(|v| v.trim().parse::<f64>().ok());
        } else if let Some(rest) = line.strip_prefix("requests:") {
            for part in rest.split(',').map(str::trim) {
                if let Some((n, what)) = part.split_once(' ') {
                    if let Ok(n) = n.parse::<u64>() {
                        counts.push((what.trim().to_string(), n));
                    }
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            for part in rest.split(',').map(str::trim) {
                if let Some((n, class)) = part.split_once(' ') {
                    if class.trim() != "2xx" {
                        non_2xx += n.parse::<u64>().unwrap_or(0);
                    }
                }
            }
        }
    }
    let count = |what: &str| counts.iter().find(|(w, _)| w == what).map(|(_, n)| *n);
    let (Some(secs), Some(rps), Some(ok)) = (secs, rps, count("succeeded")) else {
        return Err(format!("could not parse the output:\n{text}"));
    };
    let bad: u64 = ["failed", "errored", "timeout"]
        .iter()
        .filter_map(|w| count(w))
        .sum();
    if bad > 0 || non_2xx > 0 || ok == 0 {
        return Err(format!(
            "{ok} succeeded, {bad} failed/errored/timed out, {non_2xx} not 2xx:\n{text}"
        ));
    }
    Ok(LoadResult {
        requests: ok,
        rps,
        secs,
        socket_errors: String::new(),
    })
}

/// The same load on the variant's front and its paired no-filter twin, at the same time.
fn run_pair(
    url: &str,
    twin_url: &str,
    run: impl Fn(&str) -> Result<LoadResult, String> + Sync,
) -> Result<(LoadResult, LoadResult), String> {
    std::thread::scope(|s| {
        let twin = s.spawn(|| run(twin_url));
        let main = run(url);
        let twin = twin
            .join()
            .unwrap_or_else(|_| Err("load thread failed".into()));
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

/// The two loads every variant is measured at, in one run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `wrk` as fast as it goes: the front's core is full (the variant and its twin share it),
    /// so the CPU per request is the capacity view.
    Saturated,
    /// `h2load` at a fixed rate well below capacity (`--rate`): the added CPU per request of a
    /// normally loaded proxy.
    Moderate,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Saturated => "saturated",
            Kind::Moderate => "moderate",
        }
    }
}

/// Whether a sample counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Used,
    /// Other jobs held the front's core: dropped and re-taken.
    Dropped,
    /// Contended, but the re-takes were used up: kept, and flagged in the report.
    UsedContended,
}

struct Sample {
    round: usize,
    variant: &'static Variant,
    kind: Kind,
    status: Status,
    rps: f64,
    /// Requests/s of the paired no-filter twin over the same seconds.
    twin_rps: f64,
    requests: u64,
    cpu_secs: f64,
    wall_secs: f64,
    us_per_req: f64,
    /// The upstream's CPU per request: the same work for every variant, so a noise indicator.
    upstream_us_per_req: f64,
    /// CPU per request of the paired no-filter front, measured over the same seconds.
    twin_us_per_req: f64,
    /// The front's core: busy with the front and its twin, and busy with anything else
    /// (other jobs, steal), as shares of the sample's wall time (`None`: not pinned).
    core: Option<CoreUse>,
    /// `/proc/loadavg` (1, 5, 15 min) before and after the sample.
    load_before: [f64; 3],
    load_after: [f64; 3],
    socket_errors: String,
    /// JWT rows: the share of the front's token-cache lookups that hit, over its whole life
    /// (check request, warm-up and run).
    cache_hit_share: Option<f64>,
    /// The opa-policy row: P50 of the front's `opa_policy.eval_us` histogram over its life.
    eval_p50_us: Option<f64>,
}

impl Sample {
    /// Front CPU µs/req minus the twin's: what the variant adds (the no-filter row shows the
    /// offset of two identical fronts, subtracted in the report).
    fn added_us(&self) -> f64 {
        self.us_per_req - self.twin_us_per_req
    }
}

/// How the pinned front core was used over a sample, as shares of its wall time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CoreUse {
    /// The front and its twin (utime + stime of the two processes).
    ours: f64,
    /// user + nice + system time of the core not spent in our two processes: other jobs.
    other: f64,
    /// Time the hypervisor ran something else instead (steal).
    steal: f64,
}

impl CoreUse {
    /// The drop rule's measure: the share of the core other work took.
    fn foreign(&self) -> f64 {
        self.other + self.steal
    }
}

/// `cpuN` of `/proc/stat`: (user + nice + system, steal), in clock ticks.
fn core_ticks(cpu: u32) -> Result<(u64, u64), String> {
    let stat = fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    parse_core_ticks(&stat, cpu).ok_or(format!("/proc/stat: no usable cpu{cpu} line"))
}

fn parse_core_ticks(stat: &str, cpu: u32) -> Option<(u64, u64)> {
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| f.get(i).copied();
    Some((at(0)? + at(1)? + at(2)?, at(7).unwrap_or(0)))
}

/// The three load averages of `/proc/loadavg`.
fn loadavg() -> [f64; 3] {
    parse_loadavg(&fs::read_to_string("/proc/loadavg").unwrap_or_default())
}

fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut out = [f64::NAN; 3];
    for (slot, v) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = v.parse().unwrap_or(f64::NAN);
    }
    out
}

fn fmt_load(l: &[f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
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

/// The P50 of opa-policy's evaluation-time histogram (µs), read from a front's admin.
fn eval_p50_us(v: &Variant, front: &Envoy) -> Result<Option<f64>, String> {
    if v.name != "opa-policy-rbac10" {
        return Ok(None);
    }
    let name = "wasmcustom.opa_policy.eval_us";
    let r = http_get(front.admin, &format!("/stats?filter={name}"), &[])?;
    Ok(r.body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(histogram_p50))
}

/// `P0(a,b) P25(a,b) P50(a,b) ...` (Envoy's histogram line): the cumulative P50.
fn histogram_p50(line: &str) -> Option<f64> {
    let at = line.find("P50(")?;
    let inner = line.get(at + 4..)?.split(')').next()?;
    inner.split(',').nth(1)?.trim().parse().ok()
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

/// A variant's front, its paired no-filter twin and the upstream, all running.
struct Fronts<'a> {
    front: &'a Envoy,
    twin: &'a Envoy,
    upstream: &'a Envoy,
}

/// One measured sample at `kind`'s load: both fronts loaded at once, their CPU, the front core's
/// use by anything else, the load average before and after.
fn take_sample(
    env: &Env,
    opts: &Opts,
    f: &Fronts,
    load: &Load,
    kind: Kind,
    (variant, round): (&'static Variant, usize),
) -> Result<Sample, String> {
    let url = format!("http://{}/", f.front.listener);
    let twin_url = format!("http://{}/", f.twin.listener);
    let load_before = loadavg();
    let core_before = env.pin.map(|p| core_ticks(p.0)).transpose()?;
    let before = cpu_secs(f.front.pid(), env.clk_tck)?;
    let twin_before = cpu_secs(f.twin.pid(), env.clk_tck)?;
    let up_before = cpu_secs(f.upstream.pid(), env.clk_tck)?;
    let started = Instant::now();
    let (w, tw) = match kind {
        Kind::Saturated => run_pair(&url, &twin_url, |u| {
            run_wrk(env, u, load, opts.duration, opts.connections)
        })?,
        Kind::Moderate => run_pair(&url, &twin_url, |u| {
            run_h2load(env, u, load, opts.duration, opts.rate, opts.clients)
        })?,
    };
    let wall = started.elapsed().as_secs_f64();
    let cpu_secs_front = cpu_secs(f.front.pid(), env.clk_tck)? - before;
    let cpu_secs_twin = cpu_secs(f.twin.pid(), env.clk_tck)? - twin_before;
    let cpu_secs_up = cpu_secs(f.upstream.pid(), env.clk_tck)? - up_before;
    let core_after = env.pin.map(|p| core_ticks(p.0)).transpose()?;
    let load_after = loadavg();
    let core = match (core_before, core_after) {
        (Some((busy0, steal0)), Some((busy1, steal1))) => {
            let ticks = wall * env.clk_tck;
            let busy = busy1.saturating_sub(busy0) as f64;
            let ours = (cpu_secs_front + cpu_secs_twin) * env.clk_tck;
            Some(CoreUse {
                ours: ours / ticks,
                other: (busy - ours).max(0.0) / ticks,
                steal: steal1.saturating_sub(steal0) as f64 / ticks,
            })
        }
        _ => None,
    };
    let cpu_secs = cpu_secs_front;
    Ok(Sample {
        round,
        variant,
        kind,
        status: Status::Used,
        rps: w.rps,
        twin_rps: tw.rps,
        requests: w.requests,
        cpu_secs,
        wall_secs: w.secs,
        us_per_req: cpu_secs * 1e6 / w.requests as f64,
        upstream_us_per_req: cpu_secs_up * 1e6 / (w.requests + tw.requests) as f64,
        twin_us_per_req: cpu_secs_twin * 1e6 / tw.requests as f64,
        core,
        load_before,
        load_after,
        socket_errors: w.socket_errors,
        cache_hit_share: None,
        eval_p50_us: None,
    })
}

/// The drop rule: a sample during which other work took more than `max_other` of the front's
/// core is dropped, unless it was already the `retakes`-th re-take (`tries` counts this one):
/// then it is kept and flagged. Unpinned runs cannot tell, and keep every sample.
fn drop_rule(core: Option<CoreUse>, max_other: f64, tries: usize, retakes: usize) -> Status {
    let contended = core.is_some_and(|c| c.foreign() > max_other);
    match (contended, tries > retakes) {
        (false, _) => Status::Used,
        (true, false) => Status::Dropped,
        (true, true) => Status::UsedContended,
    }
}

fn print_sample(s: &Sample, rounds: usize) {
    let core = match s.core {
        Some(c) => format!(
            "  core: ours {:.0}% other {:.0}%",
            100.0 * c.ours,
            100.0 * c.foreign()
        ),
        None => String::new(),
    };
    let status = match s.status {
        Status::Used => "",
        Status::Dropped => "  DROPPED (other jobs on the front core): re-taking",
        Status::UsedContended => "  contended, re-takes used up: kept, flagged",
    };
    eprintln!(
        "  round {}/{rounds} {:<24} {:<9} {:>7.0} req/s  {:>6.1} µs/req  paired no-filter {:>6.1} µs/req  ratio {:.3}  load {}{core}{}{status}",
        s.round,
        s.variant.name,
        s.kind.label(),
        s.rps,
        s.us_per_req,
        s.twin_us_per_req,
        s.us_per_req / s.twin_us_per_req,
        fmt_load(&s.load_after),
        if s.socket_errors.is_empty() { String::new() } else { format!("  socket errors: {}", s.socket_errors) }
    );
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args)?;
    let root = crate::repo_root();

    let selected = selected_variants(opts.only.as_deref());
    let tcp_rows = tcp::selected(opts.only.as_deref());

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
        return Err("wrk not found (Debian package `wrk`; `make setup`)".into());
    }
    if opts.rate > 0 && Command::new("h2load").arg("--version").output().is_err() {
        return Err(
            "h2load not found (Debian package `nghttp2-client`; `make setup`), or pass --rate 0"
                .into(),
        );
    }
    let dist = root.join("dist");
    let out_dir = root.join("target/bench");
    let modules = Modules {
        dist: dist.clone(),
        bench: out_dir.clone(),
    };
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let tcp_modules = tcp_rows.iter().filter_map(|v| v.wasm.map(|m| (v.name, m)));
    let http_modules = selected.iter().filter_map(|v| v.wasm.map(|m| (v.name, m)));
    let mut built: Vec<&str> = Vec::new();
    for (name, wasm) in http_modules.chain(tcp_modules) {
        // One build per bench package, whichever rows use it.
        if let Module::Bench(package) | Module::BenchNative(package) = wasm {
            if built.contains(&package) {
                continue;
            }
            built.push(package);
        }
        match Some(wasm) {
            Some(m @ Module::Dist(_)) if !modules.path(m).is_file() => {
                return Err(format!(
                    "{} missing (variant {}): build the filters first (`cargo run -p xtask -- build`)",
                    modules.path(m).display(),
                    name
                ));
            }
            Some(m @ Module::BenchNative(package)) => {
                let built = crate::native_build::compile(package)?;
                let dest = modules.path(m);
                if let Some(dir) = dest.parent() {
                    fs::create_dir_all(dir)
                        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                }
                fs::copy(&built, &dest).map_err(|e| format!("copying {}: {e}", built.display()))?;
                eprintln!("bench: built {} for variant {}", dest.display(), name);
            }
            Some(m @ Module::Bench(package)) => {
                let manifest = root.join("bench").join(package).join("Cargo.toml");
                let size = crate::wasm_build::build_module(package, &manifest, &modules.path(m))?;
                eprintln!(
                    "bench: built {} ({size} bytes) for variant {}",
                    modules.path(m).display(),
                    name
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

    if selected
        .iter()
        .any(|v| policy_load(v) == PolicyLoad::Preflight)
    {
        let script = out_dir.join(PREFLIGHT_SCRIPT);
        fs::write(&script, preflight_script())
            .map_err(|e| format!("writing {}: {e}", script.display()))?;
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

    if opts.instructions > 0 {
        return instr::run(
            &env,
            &selected,
            &upstream,
            &first_tokens,
            opts.instructions,
            &out_dir,
        );
    }

    let mut samples: Vec<Sample> = Vec::new();
    let mut started_pids: Vec<u32> = vec![upstream.pid()];
    for round in 1..=opts.rounds {
        for k in 0..selected.len() {
            // Interleaved, with the starting variant rotating from round to round.
            let Some(&v) = selected.get((k + round - 1) % selected.len()) else {
                continue;
            };
            let config = front_config_with(
                &(v.filters)(&env.inputs),
                upstream.listener,
                v.route.map(|r| r.filter),
                &route_extra(v),
            );
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
            verify_policy(v, &front)?;
            verify(v, &front, token)?;
            let preflight = policy_load(v) == PolicyLoad::Preflight;
            let script = v
                .jwt
                .map(|l| l.script(&out_dir))
                .or_else(|| preflight.then(|| out_dir.join(PREFLIGHT_SCRIPT)));
            // Per-route rows whose load avoids the filter: its counter must not move.
            let quiet_stat = match v.route {
                Some(r) if !r.load_on => v
                    .stats
                    .first()
                    .map(|&name| Ok::<_, String>((name, stat_value(front.admin, name)?)))
                    .transpose()?,
                _ => None,
            };
            // The paired baseline: a no-filter front on the same CPU, loaded at the same time.
            let twin = start_envoy(
                &env,
                "front-paired-no-filter",
                &front_config("", upstream.listener, None),
                env.pin.map(|p| p.0),
            )?;
            started_pids.push(twin.pid());
            let load = Load {
                script: script.as_deref(),
                headers: request_headers(v, token),
            };
            let fronts = Fronts {
                front: &front,
                twin: &twin,
                upstream: &upstream,
            };
            if opts.warmup > 0 {
                let url = format!("http://{}/", front.listener);
                let twin_url = format!("http://{}/", twin.listener);
                run_pair(&url, &twin_url, |u| {
                    run_wrk(&env, u, &load, opts.warmup, opts.connections)
                })?;
            }
            for kind in [Kind::Saturated, Kind::Moderate] {
                // h2load sends fixed headers: a pool of tokens cannot be paced this way.
                let pool = v.jwt.is_some_and(|l| l.pool) || preflight;
                if kind == Kind::Moderate && (opts.rate == 0 || pool) {
                    continue;
                }
                let mut tries = 0;
                loop {
                    let mut s = take_sample(&env, &opts, &fronts, &load, kind, (v, round))?;
                    tries += 1;
                    s.status = drop_rule(s.core, opts.max_other, tries, opts.retakes);
                    print_sample(&s, opts.rounds);
                    let retake = s.status == Status::Dropped;
                    samples.push(s);
                    if !retake {
                        break;
                    }
                }
            }
            if let Some((name, before)) = quiet_stat {
                let after = stat_value(front.admin, name)?;
                if after != before {
                    return Err(format!(
                        "variant {}: {name} went from {before:?} to {after:?} under load on the \
                         route without the filter: the filter ran there",
                        v.name
                    ));
                }
            }
            if let Some(last) = samples.last_mut() {
                last.cache_hit_share = cache_hit_share(v, &front)?;
                last.eval_p50_us = eval_p50_us(v, &front)?;
            }
            drop(twin);
            if let Ok(Some(status)) = upstream.child.try_wait() {
                return Err(format!(
                    "the upstream Envoy exited during the run ({status})"
                ));
            }
            drop(front);
        }
    }
    drop(upstream);
    let tcp_samples = tcp::run(&env, &opts, &tcp_rows)?;
    let leftovers: Vec<u32> = started_pids
        .iter()
        .copied()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();

    // Report.
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let host = format!(
        "`{}`, {model}, {ncpu} CPUs, Linux {}",
        hostname.trim(),
        kernel.trim()
    );
    // Each floor module against its sdk-ext filter, when both were measured.
    let mut exports = Vec::new();
    for &v in &selected {
        // Wasm modules only (a dynamic module's exports are Envoy's fixed hook set).
        let (Some(floor), Some(Module::Dist(file))) = (v.floor, v.wasm) else {
            continue;
        };
        if !file.ends_with(".wasm") {
            continue;
        }
        let Some(fv) = selected.iter().find(|f| f.name == floor) else {
            continue;
        };
        if v.route.is_some() || exports.iter().any(|e: &ExportCheck| e.filter == v.name) {
            continue;
        }
        let names = |m: Option<Module>| -> Result<Vec<String>, String> {
            let path = env.inputs.modules.path(m.ok_or("no module")?);
            let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            wasm_export_names(&bytes).map_err(|e| format!("{}: {e}", path.display()))
        };
        let diff = names(fv.wasm).and_then(|f| Ok(export_diff(&f, &names(v.wasm)?)));
        exports.push(ExportCheck {
            floor,
            filter: v.name,
            diff,
        });
    }
    let loadavg_end = fmt_load(&self::loadavg());
    let report = render(&RunInfo {
        opts: &opts,
        selected: &selected,
        samples: &samples,
        host: &host,
        envoy_version: &envoy_version,
        pinning: &pinning,
        loadavg: &loadavg,
        loadavg_end: &loadavg_end,
        clk_tck: env.clk_tck,
        dist: &dist,
        exports: &exports,
    });
    let mut report = report;
    tcp::render(&mut report, &tcp_samples, &tcp_rows);
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
    /// Where the numbers come from: host name, CPU model, CPU count, kernel.
    host: &'a str,
    envoy_version: &'a str,
    pinning: &'a str,
    loadavg: &'a str,
    loadavg_end: &'a str,
    clk_tck: f64,
    dist: &'a Path,
    /// Export lists of each (raw floor, sdk-ext filter) pair measured.
    exports: &'a [ExportCheck],
}

struct Summary {
    rps: f64,
    us: f64,
    /// Median of front µs/req ÷ paired no-filter front µs/req (same run).
    norm: f64,
    /// Median µs/req of the paired no-filter fronts of this variant's runs.
    twin_us: f64,
    /// Median of front req/s ÷ paired no-filter req/s.
    rps_norm: f64,
    /// Median of front µs/req − paired no-filter µs/req.
    added: f64,
    /// Samples used.
    n: usize,
}

/// The samples of `v` at `kind` that count (used, or kept after the re-takes ran out).
fn used<'a>(
    samples: &'a [Sample],
    v: &'a Variant,
    kind: Kind,
) -> impl Iterator<Item = &'a Sample> + 'a {
    samples
        .iter()
        .filter(move |s| s.variant.name == v.name && s.kind == kind && s.status != Status::Dropped)
}

fn summarize(samples: &[Sample], v: &Variant, kind: Kind) -> Summary {
    let of = |f: fn(&Sample) -> f64| median(used(samples, v, kind).map(f).collect());
    Summary {
        rps: of(|s| s.rps),
        us: of(|s| s.us_per_req),
        norm: of(|s| s.us_per_req / s.twin_us_per_req),
        twin_us: of(|s| s.twin_us_per_req),
        rps_norm: of(|s| s.rps / s.twin_rps),
        added: of(Sample::added_us),
        n: used(samples, v, kind).count(),
    }
}

/// The paired view of one variant at one load, against the no-filter row of the same run.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Paired {
    /// Added front CPU µs/req vs no filter.
    added_us: f64,
    /// Paired CPU ratio, normalised by no-filter's self-pair.
    cpu_ratio: f64,
    /// CPU-bound capacity vs no filter (1 / cpu_ratio).
    capacity: f64,
    /// Throughput of the front vs its twin, normalised by no-filter's self-pair.
    rps_ratio: f64,
}

/// `Saturated`: Δ = (ratio − no-filter's ratio) × the run's median twin µs/req, as before.
/// `Moderate`: Δ = median(front − twin µs/req) − no-filter's median(front − twin) (the rate
/// is fixed, so the difference is the added CPU directly).
fn paired(s: &Summary, base: &Summary, kind: Kind, twin_us: f64) -> Paired {
    let added_us = match kind {
        Kind::Saturated => (s.norm - base.norm) * twin_us,
        Kind::Moderate => s.added - base.added,
    };
    Paired {
        added_us,
        cpu_ratio: s.norm / base.norm,
        capacity: base.norm / s.norm,
        rps_ratio: s.rps_norm / base.rps_norm,
    }
}

/// A variant's added CPU ÷ its floor's; `None` when the floor's added CPU is not above
/// [`MIN_FLOOR_ADDED_US`] (contended samples can make it ≤ 0: no ratio is meaningful then).
fn floor_ratio(added_us: f64, floor_added_us: f64) -> Option<f64> {
    (floor_added_us > MIN_FLOOR_ADDED_US && added_us.is_finite()).then(|| added_us / floor_added_us)
}

/// The smallest floor cost a ÷ floor ratio is computed against (µs/req).
const MIN_FLOOR_ADDED_US: f64 = 0.5;

/// One (raw floor, sdk-ext filter) pair's exports.
struct ExportCheck {
    floor: &'static str,
    filter: &'static str,
    /// Exported by the filter only / by the floor only (`Err`: a module was unreadable).
    diff: Result<(Vec<String>, Vec<String>), String>,
}

/// The names a wasm module exports (the export section, id 7).
fn wasm_export_names(module: &[u8]) -> Result<Vec<String>, String> {
    fn leb(b: &[u8], at: &mut usize) -> Result<usize, String> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            let byte = *b.get(*at).ok_or("truncated LEB128")?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return usize::try_from(v).map_err(|_| "LEB128 overflow".to_string());
            }
        }
        Err("LEB128 too long".into())
    }
    if module.get(..4) != Some(b"\0asm") {
        return Err("not a wasm module".into());
    }
    let mut at = 8;
    while at < module.len() {
        let id = *module.get(at).ok_or("truncated section")?;
        at += 1;
        let size = leb(module, &mut at)?;
        let body = module
            .get(at..at.saturating_add(size))
            .ok_or("section runs past the end")?;
        at += size;
        if id != 7 {
            continue;
        }
        let mut p = 0;
        let count = leb(body, &mut p)?;
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            let len = leb(body, &mut p)?;
            let name = body
                .get(p..p.saturating_add(len))
                .ok_or("truncated export name")?;
            names.push(String::from_utf8_lossy(name).into_owned());
            p += len + 1; // name, kind
            leb(body, &mut p)?; // index
        }
        names.sort();
        return Ok(names);
    }
    Ok(Vec::new())
}

/// What `filter` exports that `floor` does not, and the reverse.
fn export_diff(floor: &[String], filter: &[String]) -> (Vec<String>, Vec<String>) {
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|n| !b.contains(n)).cloned().collect()
    };
    (only(filter, floor), only(floor, filter))
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
                jwt.iter().copied().find(|v| {
                    v.jwt == load
                        && v.name.starts_with("native-") == native
                        && !v.name.contains(DYNMOD)
                })
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
    // The dynamic-module build against native jwt_authn: ≥ 1.0 × capacity, both loads.
    let dynmod: Vec<&Variant> = jwt
        .iter()
        .copied()
        .filter(|v| v.name.contains(DYNMOD))
        .collect();
    if !dynmod.is_empty() {
        let _ = writeln!(
            md,
            "\n| alg | tokens | native µs/req | jwt-auth dynmod µs/req | capacity ratio (req/s) | capacity ratio (CPU-bound, paired) | target | status (req/s) | status (paired) |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---|---|---|");
        for v in dynmod {
            let Some(nv) = jwt
                .iter()
                .copied()
                .find(|n| n.jwt == v.jwt && n.name.starts_with("native-"))
            else {
                continue;
            };
            let (n, j) = (summary(nv), summary(v));
            let (cap_rps, cap_cpu) = (j.rps / n.rps, n.norm / j.norm);
            let load = v.jwt.map_or("", JwtLoad::label);
            let alg = v.jwt.map_or("", |l| l.alg.name());
            let _ = writeln!(
                md,
                "| {alg} | {load} | {:.2} | {:.2} | {cap_rps:.3} | {cap_cpu:.3} | ≥ 1.0 × native | {} | {} |",
                n.us,
                j.us,
                yes(cap_rps >= 1.0),
                yes(cap_cpu >= 1.0)
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

/// The OPA section: opa-policy's capacity against native rbac and ext_authz (same rules).
fn render_opa(md: &mut String, r: &RunInfo, summary: &dyn Fn(&Variant) -> Summary) {
    let find = |name: &str| r.selected.iter().copied().find(|v| v.name == name);
    let Some(opa) = find("opa-policy-rbac10") else {
        return;
    };
    let yes = |b: bool| if b { "met" } else { "NOT met" };
    let o = summary(opa);
    let eval = median(
        r.samples
            .iter()
            .filter(|x| x.variant.name == opa.name)
            .filter_map(|x| x.eval_p50_us)
            .collect(),
    );
    let _ = writeln!(md, "\n## opa-policy vs native rbac and ext_authz\n");
    let _ = writeln!(
        md,
        "The same 10 RBAC bindings (filters/opa-policy/examples/rbac-10.json); every load request \
         matches only the tenth. ext_authz asks an OPA-shaped service (the upstream Envoy's \
         direct_response `{{\"result\": true}}`). Capacity ratio = the other row's paired ratio ÷ \
         opa-policy's (CPU-bound), and req/s ÷ req/s. opa-policy's evaluation time: the median over \
         runs of its `opa_policy.eval_us` P50: {} µs.\n",
        if eval.is_finite() { format!("{eval:.1}") } else { "—".into() }
    );
    let _ = writeln!(
        md,
        "| against | its µs/req | opa-policy µs/req | capacity ratio (CPU-bound, paired) | capacity ratio (req/s) | target | status (paired) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|---|");
    for (name, target) in [("native-rbac10", 0.7), ("ext-authz-opa", 2.0)] {
        let Some(v) = find(name) else { continue };
        let s = summary(v);
        let cap = s.norm / o.norm;
        let _ = writeln!(
            md,
            "| {name} | {:.2} | {:.2} | {cap:.3} | {:.3} | ≥ {target:.1} × | {} |",
            s.us,
            o.us,
            o.rps / s.rps,
            yes(cap >= target)
        );
    }
    match fs::metadata(r.dist.join("opa-policy.wasm")).map(|m| m.len()) {
        Ok(size) => {
            let _ = writeln!(
                md,
                "\n`dist/opa-policy.wasm`: {size} bytes ({:.2} MB), target ≤ 1.5 MB ({OPA_POLICY_SIZE_TARGET} bytes): {}",
                size as f64 / 1e6,
                yes(size <= OPA_POLICY_SIZE_TARGET)
            );
        }
        Err(e) => {
            let _ = writeln!(md, "\n`dist/opa-policy.wasm`: not readable ({e})");
        }
    }
}

fn render(r: &RunInfo) -> String {
    let Some(base_v) = VARIANTS.iter().find(|v| v.name == BASELINE) else {
        return String::new();
    };
    let sat = |v: &Variant| summarize(r.samples, v, Kind::Saturated);
    let base = sat(base_v);
    let base_mod = summarize(r.samples, base_v, Kind::Moderate);
    // The paired no-filter front's typical cost, to turn ratios back into µs.
    let twin_us = median(
        r.samples
            .iter()
            .filter(|s| s.kind == Kind::Saturated && s.status != Status::Dropped)
            .map(|s| s.twin_us_per_req)
            .collect(),
    );
    let view = |v: &Variant, kind: Kind| -> Option<Paired> {
        let (s, b) = match kind {
            Kind::Saturated => (sat(v), &base),
            Kind::Moderate => (summarize(r.samples, v, kind), &base_mod),
        };
        (s.n > 0 && b.n > 0).then(|| paired(&s, b, kind, twin_us))
    };
    let find = |name: &str| r.selected.iter().copied().find(|v| v.name == name);
    // Added CPU of `v` ÷ added CPU of its floor row, at `kind`.
    let over_floor = |v: &Variant, kind: Kind| -> Option<f64> {
        let floor = find(v.floor?)?;
        let (a, f) = (view(v, kind)?, view(floor, kind)?);
        floor_ratio(a.added_us, f.added_us)
    };
    let num = |x: Option<f64>, prec: usize| match x {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => "—".to_string(),
    };
    let signed = |x: Option<f64>| match x {
        Some(x) if x.is_finite() => format!("{x:+.1}"),
        _ => "—".to_string(),
    };
    let o = r.opts;
    let dropped = r
        .samples
        .iter()
        .filter(|s| s.status == Status::Dropped)
        .count();
    let contended = r
        .samples
        .iter()
        .filter(|s| s.status == Status::UsedContended)
        .count();
    let mut md = String::new();
    let _ = writeln!(md, "# Filter overhead benchmark\n");
    let _ = writeln!(
        md,
        "- host: {} (absolute µs and req/s hold for this host and its load only; compare the ratios)",
        r.host
    );
    let _ = writeln!(md, "- Envoy: {}", r.envoy_version);
    let _ = writeln!(
        md,
        "- loads, both in every round for every variant: **saturated** `wrk -t1 -c{} -d{}s` (keep-alive, as fast as \
         it goes: the variant's front and its paired no-filter twin fill their shared core; capacity) and \
         **moderate** `h2load --h1 -c{} -D{}` at a fixed {} req/s per front (well below capacity){}; GET / with \
         `x-remove-me: 1`; {} rounds, variants interleaved, {} s warm-up per front; a fresh front Envoy \
         (`--concurrency 1`) per variant per round; upstream: one Envoy (`--concurrency 1`, direct_response 200)",
        o.connections,
        o.duration,
        o.clients,
        o.duration,
        o.rate,
        if o.rate == 0 { " — disabled (`--rate 0`)" } else { "" },
        o.rounds,
        o.warmup
    );
    let _ = writeln!(
        md,
        "- pinning: {}; every process at niceness {}",
        r.pinning, o.nice
    );
    let _ = writeln!(
        md,
        "- front CPU = the front Envoy's run time over the sample, all threads (/proc/PID/task/*/schedstat, ns; \
         utime+stime at CLK_TCK {} where schedstat is missing) ÷ requests; the paired twin is measured over \
         the same seconds",
        r.clk_tck
    );
    let _ = writeln!(
        md,
        "- drop rule: a sample is dropped and re-taken (at most {} times) when other work held the front's core \
         for more than {:.0} % of the sample: the core's user+nice+system ticks (/proc/stat) minus those of the \
         two fronts, plus its steal ticks. Dropped: {dropped}; kept although contended (re-takes used up, flagged \
         `contended` below): {contended}",
        o.retakes,
        100.0 * o.max_other
    );
    let _ = writeln!(
        md,
        "- load average (1/5/15 min) at start: {}; at end: {} (per sample: the samples table)\n",
        r.loadavg, r.loadavg_end
    );

    let _ = writeln!(md, "## Paired results\n");
    let _ = writeln!(
        md,
        "Every front runs beside a no-filter twin on the same core, loaded the same way at the same time. \
         **Added µs/req** is the front's CPU per request minus its twin's, less the same difference for \
         the no-filter row (two identical fronts); at saturation it is (paired ratio − no-filter's) × the \
         median twin µs/req ({twin_us:.1}). **Capacity** at saturation: CPU-bound, no-filter's paired ratio \
         ÷ the variant's; and from throughput, the front's req/s ÷ its twin's (normalised the same way). \
         **÷ floor**: the added CPU ÷ that of the raw-ABI module making the same host calls (`raw-edits` for \
         header-rules, `raw-template` for the template, `raw` for the bare SDK filter).\n"
    );
    let _ = writeln!(
        md,
        "| variant | floor | moderate: added µs/req | moderate: ÷ floor | saturated: CPU ratio | saturated: added µs/req | saturated: ÷ floor | capacity (CPU-bound) | capacity (req/s) |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for &v in r.selected {
        let m = view(v, Kind::Moderate);
        let s = view(v, Kind::Saturated);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.name,
            v.floor.unwrap_or(""),
            signed(m.map(|p| p.added_us)),
            num(over_floor(v, Kind::Moderate), 2),
            num(s.map(|p| p.cpu_ratio), 3),
            signed(s.map(|p| p.added_us)),
            num(over_floor(v, Kind::Saturated), 2),
            num(s.map(|p| p.capacity), 3),
            num(s.map(|p| p.rps_ratio), 3),
        );
    }

    // Targets (informational).
    let yes = |b: bool| if b { "met" } else { "NOT met" };
    let _ = writeln!(md, "\n## Targets (informational, not asserted)\n");
    let _ = writeln!(md, "| target | moderate | status | saturated | status |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (filter, floor) in [
        ("header-rules", "raw-edits"),
        ("template", "raw-template"),
        ("rate-limit", "raw-ratelimit"),
        ("rate-limit-client", "raw-ratelimit-client"),
        ("header-rules-dynmod", "raw-dynmod"),
        ("cors", "raw-cors"),
        ("ip-filter-cidr10k", "raw-ipfilter"),
        ("request-block-50", "raw-requestblock"),
    ] {
        let Some(v) = find(filter) else { continue };
        if find(floor).is_none() {
            let _ = writeln!(
                md,
                "| {filter} added CPU ≤ 1.10 × {floor}'s | {floor} not measured | n/a | | n/a |"
            );
            continue;
        }
        let cell = |kind| match over_floor(v, kind) {
            Some(x) if x.is_finite() => (format!("{x:.2} ×"), yes(x <= 1.10)),
            _ => ("—".to_string(), "n/a"),
        };
        let flagged = |kind| {
            let n = r
                .samples
                .iter()
                .filter(|x| x.kind == kind && x.status == Status::UsedContended)
                .filter(|x| x.variant.name == filter || x.variant.name == floor)
                .count();
            if n > 0 {
                format!(" ({n} contended samples)")
            } else {
                String::new()
            }
        };
        let (m, ms) = cell(Kind::Moderate);
        let (s, ss) = cell(Kind::Saturated);
        let _ = writeln!(
            md,
            "| {filter} added CPU ≤ 1.10 × {floor}'s (same host calls) | {m}{} | {ms} | {s}{} | {ss} |",
            flagged(Kind::Moderate),
            flagged(Kind::Saturated)
        );
    }
    // Per-route: the route without the filter pays nothing (within the self-pair's noise).
    let noise = |kind: Kind| {
        let ratios: Vec<f64> = used(r.samples, base_v, kind)
            .map(|s| s.us_per_req / s.twin_us_per_req)
            .collect();
        let m = median(ratios.clone());
        ratios
            .iter()
            .map(|x| (x / m - 1.0).abs())
            .fold(0.02, f64::max)
    };
    for &v in r
        .selected
        .iter()
        .filter(|v| v.route.is_some_and(|r| !r.load_on))
    {
        let cell = |kind| match view(v, kind) {
            Some(p) => {
                let band = noise(kind);
                (
                    format!("CPU ratio {:.3} (noise ±{:.3})", p.cpu_ratio, band),
                    if (p.cpu_ratio - 1.0).abs() <= band {
                        "met (pays nothing)"
                    } else {
                        "NOT met"
                    },
                )
            }
            None => ("—".to_string(), "n/a"),
        };
        let (m, ms) = cell(Kind::Moderate);
        let (s, ss) = cell(Kind::Saturated);
        let _ = writeln!(
            md,
            "| {}: a route without the filter ≈ no filter | {m} | {ms} | {s} | {ss} |",
            v.name
        );
    }
    let lua = (find("header-rules"), find("lua"));
    if let (Some(hr), Some(l)) = lua {
        if let (Some(h), Some(lu)) = (view(hr, Kind::Saturated), view(l, Kind::Saturated)) {
            let _ = writeln!(
                md,
                "| header-rules added CPU ≤ 0.5 × Lua's | | | {:.1} vs 0.5 × {:.1} µs | {} |",
                h.added_us,
                lu.added_us,
                yes(h.added_us <= 0.5 * lu.added_us)
            );
            let _ = writeln!(
                md,
                "| header-rules capacity ≥ 0.95 × no-filter | | | {:.3} × (CPU-bound) | {} |",
                h.capacity,
                yes(h.capacity >= 0.95)
            );
        }
    }

    // The dynamic-module build of header-rules against Envoy's native header_mutation doing
    // the same edits: capacity ≥ 0.97 ×.
    if let (Some(d), Some(n)) = (find("header-rules-dynmod"), find("native-header_mutation")) {
        for kind in [Kind::Moderate, Kind::Saturated] {
            if let (Some(dp), Some(np)) = (view(d, kind), view(n, kind)) {
                let ratio = dp.capacity / np.capacity;
                let _ = writeln!(
                    md,
                    "| header-rules-dynmod capacity ≥ 0.97 × native-header_mutation ({}) | | | {ratio:.3} × (CPU-bound; added {:.2} vs {:.2} µs) | {} |",
                    kind.label(),
                    dp.added_us,
                    np.added_us,
                    yes(ratio >= 0.97)
                );
            }
        }
    }

    // Issue 15: the other filters as dynamic modules, within 1.10 × the added CPU of Envoy's
    // native equivalent doing the same work.
    for (ours, native) in DYNMOD_VS_NATIVE {
        let (Some(o), Some(n)) = (find(ours), find(native)) else {
            continue;
        };
        for kind in [Kind::Moderate, Kind::Saturated] {
            if let (Some(op), Some(np)) = (view(o, kind), view(n, kind)) {
                let ratio = op.added_us / np.added_us;
                let _ = writeln!(
                    md,
                    "| {ours} added CPU ≤ 1.10 × {native}'s ({}) | | | {ratio:.2} × (added {:+.2} vs {:+.2} µs) | {} |",
                    kind.label(),
                    op.added_us,
                    np.added_us,
                    yes(np.added_us > 0.0 && ratio <= 1.10)
                );
            }
        }
    }

    // The policy rows: against Envoy's native filters, the preflights whole, the sizes.
    for (ours, native) in [
        ("cors", "native-cors"),
        ("ip-filter-cidr10k", "native-rbac-cidr10k"),
        ("ip-filter-cidr10k", "native-rbac-matcher-cidr10k"),
    ] {
        let (Some(o), Some(n)) = (find(ours), find(native)) else {
            continue;
        };
        for kind in [Kind::Moderate, Kind::Saturated] {
            if let (Some(op), Some(np)) = (view(o, kind), view(n, kind)) {
                let _ = writeln!(
                    md,
                    "| {ours} vs {native} ({}) | | | capacity {:.3} × native's (CPU-bound; added {:+.2} vs {:+.2} µs) | (reference) |",
                    kind.label(),
                    op.capacity / np.capacity,
                    op.added_us,
                    np.added_us
                );
            }
        }
    }
    // A preflight is answered locally by all three (the no-filter twin proxies it), so the
    // added CPU is negative: they are compared whole (paired CPU per request).
    if let Some(c) = find("cors-preflight") {
        for other in ["raw-cors-preflight", "native-cors-preflight"] {
            let (Some(f), Some(cp)) = (find(other), view(c, Kind::Saturated)) else {
                continue;
            };
            if let Some(fp) = view(f, Kind::Saturated) {
                let ratio = cp.cpu_ratio / fp.cpu_ratio;
                let (target, status) = if other.starts_with("raw") {
                    ("≤ 1.10 ×", yes(ratio <= 1.10))
                } else {
                    ("(reference)", "")
                };
                let _ = writeln!(
                    md,
                    "| cors-preflight whole-request CPU vs {other}'s (both answer locally) {target} | | | {ratio:.3} × | {status} |"
                );
            }
        }
    }
    if r.selected.iter().any(|v| POLICY_ROWS.contains(&v.name)) {
        for (file, limit) in POLICY_SIZE_TARGETS {
            let size = fs::metadata(r.dist.join(file)).map(|m| m.len()).ok();
            let _ = writeln!(
                md,
                "| dist/{file} ≤ {} KB | | | {} | {} |",
                limit / 1000,
                size.map_or("missing".to_string(), |b| format!("{b} bytes")),
                size.map_or("n/a", |b| yes(b <= *limit))
            );
        }
    }

    render_jwt(&mut md, r, &sat, base.norm);
    render_opa(&mut md, r, &sat);

    let _ = writeln!(md, "\n## Exports: floor modules vs sdk-ext filters\n");
    let _ = writeln!(
        md,
        "Each floor must export what its sdk-ext filter exports (Envoy enters the VM for every exported \
         stream callback, and calls `proxy_on_delete` for every stream), or the ratio compares different work.\n"
    );
    if r.exports.is_empty() {
        let _ = writeln!(md, "(no pair measured)");
    }
    for e in r.exports {
        let line = match &e.diff {
            Ok((a, b)) if a.is_empty() && b.is_empty() => "the same exports".to_string(),
            Ok((a, b)) => format!(
                "**differ**: only {} exports [{}]; only {} exports [{}]",
                e.filter,
                a.join(", "),
                e.floor,
                b.join(", ")
            ),
            Err(err) => format!("not compared: {err}"),
        };
        let _ = writeln!(md, "- `{}` vs `{}`: {line}", e.floor, e.filter);
    }

    let _ = writeln!(md, "\n## Unpaired medians (saturated)\n");
    let _ = writeln!(
        md,
        "Absolute numbers taken seconds apart on a shared host move by ±10-20 %: context only.\n"
    );
    let _ = writeln!(
        md,
        "| variant | req/s median | ratio to no-filter | front CPU µs/req median | Δ µs/req vs no-filter |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for &v in r.selected {
        let s = sat(v);
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.3} | {:.2} | {:+.2} |",
            v.name,
            s.rps,
            s.rps / base.rps,
            s.us,
            s.us - base.us
        );
    }

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
    let _ = writeln!(md, "| round | variant | load | status | req/s | twin req/s | requests | front CPU % | µs/req | paired no-filter µs/req | upstream µs/req | core: fronts % | core: other % | load avg before | load avg after | socket errors |");
    let _ = writeln!(
        md,
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
    );
    for s in r.samples {
        let (ours, other) = match s.core {
            Some(c) => (
                format!("{:.0}", 100.0 * c.ours),
                format!("{:.1}", 100.0 * c.foreign()),
            ),
            None => ("—".into(), "—".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {ours} | {other} | {} | {} | {} |",
            s.round,
            s.variant.name,
            s.kind.label(),
            match s.status {
                Status::Used => "used",
                Status::Dropped => "dropped",
                Status::UsedContended => "contended",
            },
            s.rps,
            s.twin_rps,
            s.requests,
            100.0 * s.cpu_secs / s.wall_secs,
            s.us_per_req,
            s.twin_us_per_req,
            s.upstream_us_per_req,
            fmt_load(&s.load_before),
            fmt_load(&s.load_after),
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
mod opa_tests {
    use super::*;

    #[test]
    fn histogram_lines_give_their_p50() {
        let line = " P0(nan,2) P25(nan,2.05) P50(nan,3.1) P75(nan,4) P90(nan,5)";
        assert_eq!(histogram_p50(line), Some(3.1));
        assert_eq!(histogram_p50(" No recorded values"), None);
    }

    #[test]
    fn the_native_rbac_row_has_the_ten_bindings() {
        let yaml = native_rbac_filter(&Inputs {
            modules: Modules {
                dist: PathBuf::new(),
                bench: PathBuf::new(),
            },
            jwks: String::new(),
        });
        assert_eq!(rbac10_rules().len(), 10);
        for i in 0..10 {
            assert!(yaml.contains(&format!("rule-{i}:")), "{yaml}");
        }
        assert!(
            yaml.contains(r#"name: "x-remove-me", string_match: { exact: "1" }"#),
            "{yaml}"
        );
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn the_policy_configs_have_the_sizes_the_rows_name() {
        let rb: serde_json::Value = serde_json::from_str(&request_block_config()).unwrap();
        let rules = rb["rules"].as_array().unwrap();
        assert_eq!(rules.len(), REQUEST_BLOCK_PATTERNS);
        let names: std::collections::BTreeSet<&str> =
            rules.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), rules.len(), "rule names are distinct");
        let ip: serde_json::Value = serde_json::from_str(&ip_filter_config()).unwrap();
        let allow = ip["allow"].as_array().unwrap();
        assert_eq!(allow.len(), CIDRS);
        assert_eq!(
            allow.last().unwrap(),
            "127.0.0.0/8",
            "the bench client's range"
        );
        // The native rows carry the same ranges.
        assert_eq!(native_rbac_cidr_filter_count(), CIDRS);
    }

    fn native_rbac_cidr_filter_count() -> usize {
        let inputs = Inputs {
            modules: Modules {
                dist: PathBuf::new(),
                bench: PathBuf::new(),
            },
            jwks: String::new(),
        };
        native_rbac_cidr_filter(&inputs)
            .matches("remote_ip:")
            .count()
    }

    #[test]
    fn dynmod_pairs_name_rows_of_the_dynmod_group() {
        let rows = selected_variants(Some(&["dynmod".to_string()]));
        for (ours, native) in DYNMOD_VS_NATIVE {
            assert!(rows.iter().any(|v| v.name == *ours), "{ours}");
            assert!(rows.iter().any(|v| v.name == *native), "{native}");
            assert!(is_dynmod(rows.iter().find(|v| v.name == *ours).unwrap()));
        }
        // The dynamic-module cors row gets the same Origin as its wasm twin.
        let cors = VARIANTS.iter().find(|v| v.name == "cors-dynmod").unwrap();
        assert_eq!(policy_load(cors), PolicyLoad::Cors);
    }

    /// A row is checked to do its policy work before it is measured, whichever way it is
    /// built: every row counting cors' or ip-filter's work gets that filter's check (the
    /// cors-dynmod row once went unchecked, its load carrying no Origin).
    #[test]
    fn every_cors_and_ip_range_row_is_checked() {
        for v in VARIANTS {
            let cors = v.stats.iter().any(|s| s.contains("cors."));
            let ip = v.name.contains("ip-filter-cidr10k") || v.name.contains("rbac-");
            if cors || v.name.contains("cors") {
                assert_eq!(policy_check(v), PolicyCheck::Cors, "{}", v.name);
            } else if ip && !v.name.contains("rbac10") {
                assert_eq!(policy_check(v), PolicyCheck::IpRanges, "{}", v.name);
            } else {
                assert_eq!(policy_check(v), PolicyCheck::None, "{}", v.name);
            }
        }
    }

    #[test]
    fn policy_rows_are_one_group_with_their_floors() {
        let rows = selected_variants(Some(&["policy".to_string()]));
        for name in POLICY_ROWS {
            assert!(rows.iter().any(|v| v.name == *name), "{name}");
        }
        for v in rows.iter().filter_map(|v| v.floor) {
            assert!(POLICY_ROWS.contains(&v), "{v} is measured with its filter");
        }
        let tcp = tcp::selected(Some(&["policy".to_string()]));
        assert_eq!(tcp.first().map(|v| v.name), Some(tcp::TCP_BASELINE));
        assert!(tcp.len() > 1);
        assert!(tcp::selected(Some(&["floors".to_string()])).is_empty());
        // The preflight rows are the only ones without a GET load.
        let preflights: Vec<&str> = rows
            .iter()
            .filter(|v| policy_load(v) == PolicyLoad::Preflight)
            .map(|v| v.name)
            .collect();
        assert_eq!(
            preflights,
            [
                "native-cors-preflight",
                "cors-preflight",
                "raw-cors-preflight"
            ]
        );
    }
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
        assert_eq!(jwt.len(), 13, "{jwt:?}");
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
                "template",
                "raw-template",
                "header-rules-route-off",
                "header-rules-route-on",
                "template-route-off",
                "template-route-on"
            ]
        );
        assert_eq!(
            names(&["floors"]),
            [
                BASELINE,
                "raw-edits",
                "header-rules",
                "template",
                "raw-template"
            ]
        );
        assert_eq!(
            names(&["route"]),
            [
                BASELINE,
                "header-rules-route-off",
                "header-rules-route-on",
                "template-route-off",
                "template-route-on"
            ]
        );
        assert_eq!(
            names(&["jwt-auth-*"]),
            [
                BASELINE,
                "jwt-auth-rs256-same",
                "jwt-auth-es256-same",
                "jwt-auth-rs256-pool",
                "jwt-auth-es256-pool",
                "jwt-auth-dynmod-rs256-same",
                "jwt-auth-dynmod-es256-same",
                "jwt-auth-dynmod-rs256-pool",
                "jwt-auth-dynmod-es256-pool"
            ]
        );
        assert_eq!(
            names(&["*-es256-*"]),
            [
                BASELINE,
                "native-jwt-es256-same",
                "jwt-auth-es256-same",
                "native-jwt-es256-pool",
                "jwt-auth-es256-pool",
                "jwt-auth-dynmod-es256-same",
                "jwt-auth-dynmod-es256-pool"
            ]
        );
        assert_eq!(
            names(&["dynmod"]),
            [
                BASELINE,
                "native-header_mutation",
                "native-ratelimit",
                "native-ratelimit-client",
                "header-rules-dynmod",
                "raw-dynmod",
                "template-dynmod",
                "raw-dynmod-empty",
                "raw-dynmod-ratelimit",
                "raw-dynmod-ratelimit-client",
                "raw-dynmod-cors",
                "native-rbac10",
                "opa-policy-rbac10-dynmod",
                "native-cors",
                "native-rbac-matcher-cidr10k",
                "native-jwt-rs256-same",
                "native-jwt-es256-same",
                "native-jwt-rs256-pool",
                "native-jwt-es256-pool",
                "jwt-auth-dynmod-rs256-same",
                "jwt-auth-dynmod-es256-same",
                "jwt-auth-dynmod-rs256-pool",
                "jwt-auth-dynmod-es256-pool",
                "rate-limit-dynmod",
                "rate-limit-client-dynmod",
                "cors-dynmod",
                "ip-filter-cidr10k-dynmod",
                "request-block-50-dynmod"
            ]
        );
        assert_eq!(names(&["*-pool"]).len(), 7);
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
                    [
                        format!("native-jwt-{suffix}"),
                        format!("jwt-auth-{suffix}"),
                        format!("jwt-auth-dynmod-{suffix}")
                    ]
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

    #[test]
    fn every_floor_names_a_measured_raw_row() {
        for v in VARIANTS {
            if let Some(floor) = v.floor {
                let f = VARIANTS.iter().find(|f| f.name == floor);
                assert!(
                    f.is_some_and(|f| matches!(
                        f.wasm,
                        Some(Module::Bench(_) | Module::BenchNative(_))
                    )),
                    "{}: floor {floor} is not a raw bench module",
                    v.name
                );
            }
        }
    }

    #[test]
    fn h2load_output_parsing() {
        let ok = "starting benchmark...
finished in 5.00s, 999.80 req/s, 96.66KB/s
requests: 5000 total, 5000 started, 5000 done, 4999 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 4999 2xx, 0 3xx, 0 4xx, 0 5xx
";
        let r = parse_h2load(ok).unwrap();
        assert_eq!(r.requests, 4999);
        assert!((r.rps - 999.8).abs() < 1e-9);
        assert!((r.secs - 5.0).abs() < 1e-9);
        let ms = ok.replace("finished in 5.00s", "finished in 900.5ms");
        assert!((parse_h2load(&ms).unwrap().secs - 0.9005).abs() < 1e-9);
        let failed = ok.replace("0 failed", "3 failed");
        assert!(parse_h2load(&failed).is_err());
        let non_2xx = ok.replace("0 4xx", "7 4xx");
        assert!(parse_h2load(&non_2xx).is_err());
        let timeout = ok.replace("0 timeout", "1 timeout");
        assert!(parse_h2load(&timeout).is_err());
        assert!(parse_h2load("garbage").is_err());
    }

    #[test]
    fn proc_parsing() {
        let stat = "cpu  26745 0 6272 71662 393 0 87 18 0 0
cpu0 12557 3 2713 37235 63 5 15 7 0 0
cpu1 14187 0 3559 34426 329 0 71 11 0 0
intr 1 2 3
";
        assert_eq!(parse_core_ticks(stat, 0), Some((12557 + 3 + 2713, 7)));
        assert_eq!(parse_core_ticks(stat, 1), Some((14187 + 3559, 11)));
        assert_eq!(parse_core_ticks(stat, 2), None);
        assert_eq!(
            parse_loadavg("0.56 0.64 0.32 1/86 12363\n"),
            [0.56, 0.64, 0.32]
        );
        assert!(parse_loadavg("").iter().all(|x| x.is_nan()));
    }

    #[test]
    fn the_drop_rule() {
        let core = |other: f64, steal: f64| {
            Some(CoreUse {
                ours: 0.9,
                other,
                steal,
            })
        };
        assert_eq!(drop_rule(core(0.01, 0.0), 0.05, 1, 2), Status::Used);
        assert_eq!(drop_rule(core(0.04, 0.02), 0.05, 1, 2), Status::Dropped);
        assert_eq!(drop_rule(core(0.30, 0.0), 0.05, 2, 2), Status::Dropped);
        assert_eq!(
            drop_rule(core(0.30, 0.0), 0.05, 3, 2),
            Status::UsedContended
        );
        assert_eq!(
            drop_rule(core(0.30, 0.0), 0.05, 1, 0),
            Status::UsedContended
        );
        assert_eq!(
            drop_rule(None, 0.05, 1, 2),
            Status::Used,
            "unpinned: no rule"
        );
    }

    #[test]
    fn max_other_is_a_percentage() {
        let parse = |v: &str| parse_args(&["--max-other".into(), v.into()]).map(|o| o.max_other);
        assert_eq!(parse("10"), Ok(0.10));
        assert_eq!(parse("2.5%"), Ok(0.025));
        assert!(parse("101").is_err());
        assert!(parse("x").is_err());
    }

    #[test]
    fn instructions_takes_a_request_count() {
        let parse = |a: &[&str]| {
            parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|o| o.instructions)
        };
        assert_eq!(parse(&[]), Ok(0));
        assert_eq!(parse(&["--instructions", "200"]), Ok(200));
        assert_eq!(parse(&["--instructions=0"]), Ok(1));
        assert!(parse(&["--instructions", "x"]).is_err());
        assert!(parse(&["--instructions"]).is_err());
    }

    fn summary(norm: f64, added: f64, rps_norm: f64) -> Summary {
        Summary {
            rps: 1000.0,
            us: 100.0,
            norm,
            twin_us: 100.0,
            rps_norm,
            added,
            n: 3,
        }
    }

    #[test]
    fn floor_ratios_need_a_floor_above_noise() {
        assert_eq!(floor_ratio(11.0, 10.0), Some(1.1));
        assert_eq!(floor_ratio(5.0, -3.5), None);
        assert_eq!(floor_ratio(5.0, 0.2), None);
        assert_eq!(floor_ratio(f64::NAN, 10.0), None);
    }

    #[test]
    fn paired_views() {
        let base = summary(1.01, 0.5, 0.99);
        let v = summary(1.21, 20.5, 0.825);
        let sat = paired(&v, &base, Kind::Saturated, 100.0);
        assert!((sat.added_us - 20.0).abs() < 1e-9);
        assert!((sat.cpu_ratio - 1.21 / 1.01).abs() < 1e-12);
        assert!((sat.capacity - 1.01 / 1.21).abs() < 1e-12);
        assert!((sat.rps_ratio - 0.825 / 0.99).abs() < 1e-12);
        let m = paired(&v, &base, Kind::Moderate, 100.0);
        assert!(
            (m.added_us - 20.0).abs() < 1e-9,
            "front − twin, less no-filter's offset"
        );
    }

    /// A module exporting `names`, all the same function.
    fn module(names: &[&str]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // type section: () -> ()
        m.extend_from_slice(&[3, 2, 1, 0]); // function section
        let mut exports = vec![names.len() as u8];
        for name in names {
            exports.push(name.len() as u8);
            exports.extend_from_slice(name.as_bytes());
            exports.extend_from_slice(&[0, 0]);
        }
        m.push(7);
        m.push(exports.len() as u8);
        m.extend_from_slice(&exports);
        m.extend_from_slice(&[10, 4, 1, 2, 0, 0x0b]); // code section
        m
    }

    #[test]
    fn export_lists_and_their_difference() {
        let floor = wasm_export_names(&module(&["proxy_on_request_headers", "memory"])).unwrap();
        assert_eq!(floor, ["memory", "proxy_on_request_headers"]);
        let filter = wasm_export_names(&module(&[
            "memory",
            "proxy_on_request_headers",
            "proxy_on_delete",
        ]))
        .unwrap();
        assert_eq!(
            export_diff(&floor, &filter),
            (vec!["proxy_on_delete".to_string()], vec![])
        );
        assert_eq!(export_diff(&floor, &floor), (vec![], vec![]));
        assert!(wasm_export_names(b"not wasm").is_err());
        let mut truncated = module(&["memory"]);
        truncated.truncate(truncated.len() - 8);
        assert!(wasm_export_names(&truncated).is_err());
    }

    #[test]
    fn per_route_fronts_enable_the_filter_on_one_route_only() {
        let inputs = Inputs {
            modules: Modules {
                dist: PathBuf::from("/d"),
                bench: PathBuf::from("/b"),
            },
            jwks: String::new(),
        };
        let upstream = SocketAddr::from(([127, 0, 0, 1], 9));
        let filters = header_rules_route_filter(&inputs);
        assert!(filters.contains(&format!(
            "- name: {HEADER_RULES_ENTRY}\n            disabled: true\n"
        )));
        let cfg = front_config(&filters, upstream, Some(HEADER_RULES_ENTRY));
        let filtered = cfg.find("- name: filtered").unwrap();
        let plain = cfg.find("- name: plain").unwrap();
        assert!(
            filtered < plain,
            "the header-selected route must come first"
        );
        assert!(cfg.contains("name: x-bench-route"));
        assert!(cfg.contains(&format!(
            "typed_per_filter_config:\n                  {HEADER_RULES_ENTRY}:\n                    \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig\n                    config: {{}}\n"
        )));
        assert_eq!(cfg.matches("typed_per_filter_config").count(), 1);
        let plain_cfg = front_config("", upstream, None);
        assert!(!plain_cfg.contains("filtered") && !plain_cfg.contains("disabled"));
        assert!(!wasm_filter("x", "x", "", Path::new("/x.wasm")).contains("disabled"));
    }
}

/// `xtask guest-cost [--no-build] [--by-export] [FILTER...]`: the deterministic guest-CPU counter of the
/// floors (issue 9). Builds each filter's `.wasm` (dist/, as `xtask build` without the
/// dynamic modules) and its raw-ABI floor (target/bench/, as the bench does), then runs
/// `bench/guest-cost`: the wasm operators (wasmtime fuel) each consumes per request in the
/// emulator, same request and the bench's configs, and the ratio over the floor. FILTER:
/// header-rules, template, rate-limit, cors, ip-filter, request-block (default: all).
pub fn guest_cost(args: &[String]) -> Result<(), String> {
    let pairs: [(&str, &str, String); 7] = [
        ("header-rules", "raw-edits", HEADER_RULES_CONFIG.to_string()),
        ("template", "raw-template", TEMPLATE_CONFIG.to_string()),
        ("rate-limit", "raw-ratelimit", RATE_LIMIT_CONFIG.to_string()),
        ("cors", "raw-cors", CORS_CONFIG.to_string()),
        ("ip-filter", "raw-ipfilter", ip_filter_config()),
        ("request-block", "raw-requestblock", request_block_config()),
        // The bench's 10-rule RBAC policy; guest-cost's request (GET / with `x-remove-me: 1`)
        // matches only its last binding, as the bench's load does. Its floor is the raw
        // module making the one hostcall.
        ("opa-policy", "raw-filter", OPA_RBAC_CONFIG.to_string()),
    ];
    let build = !args.iter().any(|a| a == "--no-build");
    let detail = args.iter().any(|a| a == "--by-export");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    for n in &names {
        if !pairs.iter().any(|(f, _, _)| f == n) {
            return Err(format!("guest-cost: no pair for {n:?}"));
        }
    }
    let chosen: Vec<&(&str, &str, String)> = pairs
        .iter()
        .filter(|(f, _, _)| names.is_empty() || names.iter().any(|n| n == f))
        .collect();
    let root = crate::repo_root();
    let modules = Modules {
        dist: root.join("dist"),
        bench: root.join("target").join("bench"),
    };
    let out = root.join("target").join("guest-cost");
    fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    if build {
        let filters: Vec<String> = chosen.iter().map(|(f, _, _)| f.to_string()).collect();
        crate::wasm_build::build(&filters)?;
        for (_, raw, _) in &chosen {
            let manifest = root.join("bench").join(raw).join("Cargo.toml");
            let dest = modules.path(Module::Bench(raw));
            let size = crate::wasm_build::build_module(raw, &manifest, &dest)?;
            eprintln!("guest-cost: built {} ({size} bytes)", dest.display());
        }
    }
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .args(["run", "-q", "-p", "guest-cost", "--"]);
    if detail {
        cmd.arg("--by-export");
    }
    if args.iter().any(|a| a == "--by-segment") {
        cmd.arg("--by-segment");
    }
    for (filter, raw, config) in &chosen {
        // Configs go in files: ip-filter's 10 000 ranges pass the kernel's limit for one
        // argument.
        let config_file = out.join(format!("{filter}.json"));
        fs::write(&config_file, config)
            .map_err(|e| format!("writing {}: {e}", config_file.display()))?;
        let raw_path = modules.path(Module::Bench(raw));
        let filter_path = modules.dist.join(format!("{filter}.wasm"));
        cmd.arg("--row").arg(raw).arg(&raw_path).arg("").arg("-");
        cmd.arg("--row")
            .arg(filter)
            .arg(&filter_path)
            .arg(format!("@{}", config_file.display()))
            .arg(raw);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("running guest-cost: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("guest-cost failed: {status}"))
    }
}

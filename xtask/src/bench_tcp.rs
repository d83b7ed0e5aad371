//! The L4 rows of the `policy` group (issue 13): ip-filter as a network filter before
//! `tcp_proxy` against Envoy's network `rbac` with the same 10 000 ranges, and the raw-ABI
//! floor, measured the same paired way as the HTTP rows.
//!
//! - The upstream is a second Envoy on the load CPU whose listener is Envoy's `echo` network
//!   filter: every byte sent comes back, so a connection or a transfer is proven end to end.
//! - Each front is a listener with the row's network filter, then `tcp_proxy` to the echo; its
//!   paired twin (same CPU, loaded at the same time) has `tcp_proxy` alone.
//! - Two loads, both in every round: **conn** (`--connections`-independent: 4 client threads,
//!   each connecting, sending 16 bytes, reading them back and closing, as fast as it goes: CPU
//!   per connection, connections/s) and **bulk** (2 connections streaming 64 KiB writes while
//!   reading the echo back: CPU per MB through the front, MB/s). The client is this binary
//!   (`xtask bench-tcp-client`), pinned to the load CPU like `wrk`.
//! - Checks before a row is measured: 16 bytes echoed through the front, and the row's counter
//!   moved (`ip_filter.allowed`, `raw_ipfilter.allowed`, the network rbac's `rbac.allowed`).
//! - The drop rule and the paired normalisation are the HTTP rows' (a `tcp-no-filter` row is
//!   the self-pair offset).

use super::{
    cidrs, core_ticks, cpu_secs, drop_rule, fmt_load, glob_match, loadavg, median, start_envoy,
    stat_value, CoreUse, Env, Envoy, Module, Modules, Opts, Status, POLICY_GROUP,
};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// One L4 row.
pub struct TcpVariant {
    pub name: &'static str,
    /// Network filters before `tcp_proxy` (YAML list items).
    filters: fn(&Modules) -> String,
    /// Counters that must be > 0 after the check connection.
    stats: &'static [&'static str],
    pub wasm: Option<Module>,
    /// The raw-ABI row making the same host calls.
    floor: Option<&'static str>,
}

pub const TCP_BASELINE: &str = "tcp-no-filter";

/// The load generator's file under the run directory (a copy of this binary).
const CLIENT_COPY: &str = "bench-tcp-client";

pub const TCP_VARIANTS: &[TcpVariant] = &[
    TcpVariant {
        name: TCP_BASELINE,
        filters: |_| String::new(),
        stats: &[],
        wasm: None,
        floor: None,
    },
    TcpVariant {
        name: "tcp-native-rbac-cidr10k",
        filters: |_| native_rbac(false),
        stats: &["bench.rbac.allowed"],
        wasm: None,
        floor: None,
    },
    TcpVariant {
        name: "tcp-native-rbac-matcher-cidr10k",
        filters: |_| native_rbac(true),
        stats: &["bench.rbac.allowed"],
        wasm: None,
        floor: None,
    },
    TcpVariant {
        name: "tcp-ip-filter-cidr10k",
        filters: |m| {
            wasm_network(
                "ip-filter",
                "ip-filter",
                &super::ip_filter_config(),
                &m.path(Module::Dist("ip-filter.wasm")),
            )
        },
        stats: &["wasmcustom.ip_filter.allowed"],
        wasm: Some(Module::Dist("ip-filter.wasm")),
        floor: Some("tcp-raw-ipfilter"),
    },
    TcpVariant {
        name: "tcp-raw-ipfilter",
        filters: |m| {
            wasm_network(
                "raw-ipfilter",
                "",
                "",
                &m.path(Module::Bench("raw-ipfilter")),
            )
        },
        stats: &["wasmcustom.raw_ipfilter.allowed"],
        wasm: Some(Module::Bench("raw-ipfilter")),
        floor: None,
    },
];

/// Whether `--only` selects an L4 row (`policy`, its name, a `*` pattern; `tcp` for all).
pub fn selects(item: &str, v: &TcpVariant) -> bool {
    match item {
        POLICY_GROUP | "tcp" => true,
        _ if item.contains('*') => glob_match(item, v.name),
        _ => item == v.name,
    }
}

/// The L4 rows a run measures: the selected ones with the baseline first, or none.
pub fn selected(only: Option<&[String]>) -> Vec<&'static TcpVariant> {
    let Some(only) = only else {
        return TCP_VARIANTS.iter().collect();
    };
    let chosen: Vec<&TcpVariant> = TCP_VARIANTS
        .iter()
        .filter(|v| v.name != TCP_BASELINE && only.iter().any(|n| selects(n, v)))
        .collect();
    if chosen.is_empty() {
        return chosen;
    }
    TCP_VARIANTS
        .iter()
        .filter(|v| v.name == TCP_BASELINE || chosen.iter().any(|c| c.name == v.name))
        .collect()
}

/// Envoy's network `rbac` with the 10 000 ranges (`direct_remote_ip`), before `tcp_proxy`:
/// the policy principals (checked in order) or, `matcher`, one IP range matcher (a trie).
/// It decides on the connection's first bytes (`ONE_TIME_ON_FIRST_BYTE`, the default).
fn native_rbac(matcher: bool) -> String {
    let list: Vec<(String, u8)> = cidrs();
    let rules = if matcher {
        let mut ranges = String::new();
        for (a, n) in &list {
            let _ = write!(
                ranges,
                "\n                      - {{ address_prefix: \"{a}\", prefix_len: {n} }}"
            );
        }
        format!(
            r#"          matcher:
            matcher_tree:
              input:
                name: source-ip
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
    } else {
        let mut ids = String::new();
        for (a, n) in &list {
            let _ = write!(
                ids,
                "\n                    - direct_remote_ip: {{ address_prefix: \"{a}\", prefix_len: {n} }}"
            );
        }
        format!(
            r#"          rules:
            action: ALLOW
            policies:
              cidrs:
                permissions: [{{ any: true }}]
                principals:
                - or_ids:
                    ids:{ids}
"#
        )
    };
    format!(
        r#"      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: bench.
{rules}"#
    )
}

/// A wasm network filter (`envoy.filters.network.wasm`).
fn wasm_network(name: &str, root_id: &str, config: &str, module: &Path) -> String {
    format!(
        r#"      - name: envoy.filters.network.wasm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
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

/// The echo upstream: Envoy's `echo` network filter.
fn echo_config() -> String {
    r#"admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.echo
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo
"#
    .to_string()
}

/// A TCP front: `filters`, then `tcp_proxy` to the echo upstream.
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
{filters}      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: upstream
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
        port = upstream.port()
    )
}

/// The two L4 loads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// New connections as fast as they go: CPU per connection.
    Conn,
    /// Bytes through long connections: CPU per MB.
    Bulk,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Conn => "conn",
            Mode::Bulk => "bulk",
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Mode::Conn => "conn",
            Mode::Bulk => "MB",
        }
    }
}

/// What one client run did.
#[derive(Clone, Copy, Debug, Default)]
struct ClientResult {
    /// Connections completed (conn) or MB echoed back (bulk).
    units: f64,
    secs: f64,
    errors: u64,
}

pub struct TcpSample {
    round: usize,
    variant: &'static TcpVariant,
    mode: Mode,
    status: Status,
    units: f64,
    twin_units: f64,
    secs: f64,
    cpu: f64,
    twin_cpu: f64,
    core: Option<CoreUse>,
    load_after: [f64; 3],
    errors: u64,
}

impl TcpSample {
    fn per_unit_us(&self) -> f64 {
        self.cpu * 1e6 / self.units
    }
    fn twin_per_unit_us(&self) -> f64 {
        self.twin_cpu * 1e6 / self.twin_units
    }
}

/// `xtask bench-tcp-client MODE ADDR SECS`: the L4 load (run pinned by the bench). Prints
/// `units=<connections or MB> secs=<s> errors=<n>`.
pub fn client(args: &[String]) -> Result<(), String> {
    let [mode, addr, secs] = args else {
        return Err("usage: xtask bench-tcp-client conn|bulk ADDR SECS".into());
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let secs: f64 = secs.parse().map_err(|e| format!("{secs}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let r = match mode.as_str() {
        "conn" => conn_load(addr, deadline, 4),
        "bulk" => bulk_load(addr, deadline, 2),
        other => return Err(format!("unknown mode {other}")),
    };
    println!(
        "units={} secs={} errors={}",
        r.units,
        started.elapsed().as_secs_f64(),
        r.errors
    );
    Ok(())
}

/// One connection: connect, 16 bytes out and back, close.
fn one_connection(addr: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let msg = *b"bench-l4-probe!\n";
    s.write_all(&msg)?;
    let mut back = [0u8; 16];
    s.read_exact(&mut back)?;
    if back != msg {
        return Err(std::io::Error::other("echo differs"));
    }
    Ok(())
}

fn conn_load(addr: SocketAddr, deadline: Instant, threads: usize) -> ClientResult {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let (mut ok, mut errors) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        match one_connection(addr) {
                            Ok(()) => ok += 1,
                            Err(_) => errors += 1,
                        }
                    }
                    (ok, errors)
                })
            })
            .collect();
        let mut r = ClientResult::default();
        for h in handles {
            let (ok, errors) = h.join().unwrap_or((0, 1));
            r.units += ok as f64;
            r.errors += errors;
        }
        r
    })
}

fn bulk_load(addr: SocketAddr, deadline: Instant, connections: usize) -> ClientResult {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                s.spawn(move || -> std::io::Result<u64> {
                    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                    let mut reader = stream.try_clone()?;
                    let writer = std::thread::spawn(move || -> std::io::Result<()> {
                        let mut w = stream;
                        let chunk = vec![0x5au8; 64 * 1024];
                        while Instant::now() < deadline {
                            w.write_all(&chunk)?;
                        }
                        w.shutdown(std::net::Shutdown::Write)
                    });
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut total = 0u64;
                    loop {
                        match reader.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => total += n as u64,
                            Err(e) => return Err(e),
                        }
                    }
                    writer
                        .join()
                        .map_err(|_| std::io::Error::other("writer panicked"))??;
                    Ok(total)
                })
            })
            .collect();
        let mut r = ClientResult::default();
        for h in handles {
            match h.join() {
                Ok(Ok(bytes)) => r.units += bytes as f64 / 1e6,
                _ => r.errors += 1,
            }
        }
        r
    })
}

/// Runs the client against `addr`, pinned to the load CPU.
fn run_client(env: &Env, mode: Mode, addr: SocketAddr, secs: u64) -> Result<ClientResult, String> {
    // A copy made when the L4 rows start (a `cargo build` during the run replaces the binary).
    let exe = env.work.join(CLIENT_COPY);
    let out = env
        .pinned(env.pin.map(|p| p.1), &exe)
        .args([
            "bench-tcp-client",
            mode.arg(),
            &addr.to_string(),
            &secs.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running the TCP client: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "TCP client failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let field = |k: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
    };
    match (field("units"), field("secs"), field("errors")) {
        (Some(units), Some(secs), Some(errors)) if units > 0.0 => Ok(ClientResult {
            units,
            secs,
            errors: errors as u64,
        }),
        _ => Err(format!(
            "TCP client ({}) against {addr}: no load completed: {text}",
            mode.arg()
        )),
    }
}

/// 16 bytes through `front` come back, and the row's counters moved.
fn verify(v: &TcpVariant, front: &Envoy) -> Result<(), String> {
    one_connection(front.listener)
        .map_err(|e| format!("variant {}: a connection through the front: {e}", v.name))?;
    for &stat in v.stats {
        match stat_value(front.admin, stat)? {
            Some(n) if n > 0 => {}
            other => {
                return Err(format!(
                    "variant {}: stat {stat} = {other:?} after the check connection, want > 0",
                    v.name
                ))
            }
        }
    }
    Ok(())
}

/// Measures the L4 rows: `rounds` × rows × both loads, paired, interleaved as the HTTP rows.
pub fn run(env: &Env, opts: &Opts, rows: &[&'static TcpVariant]) -> Result<Vec<TcpSample>, String> {
    let mut samples = Vec::new();
    if rows.is_empty() {
        return Ok(samples);
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    std::fs::copy(&exe, env.work.join(CLIENT_COPY))
        .map_err(|e| format!("copying {} for the TCP client: {e}", exe.display()))?;
    let echo = start_envoy(env, "tcp-echo", &echo_config(), env.pin.map(|p| p.1))?;
    let modules = &env.inputs.modules;
    for round in 1..=opts.rounds {
        for k in 0..rows.len() {
            let Some(&v) = rows.get((k + round - 1) % rows.len()) else {
                continue;
            };
            let front = start_envoy(
                env,
                &format!("tcp-front-{}", v.name),
                &front_config(&(v.filters)(modules), echo.listener),
                env.pin.map(|p| p.0),
            )?;
            verify(v, &front)?;
            let twin = start_envoy(
                env,
                "tcp-front-paired-no-filter",
                &front_config("", echo.listener),
                env.pin.map(|p| p.0),
            )?;
            if opts.warmup > 0 {
                pair(env, Mode::Conn, &front, &twin, opts.warmup)?;
            }
            for mode in [Mode::Conn, Mode::Bulk] {
                let mut tries = 0;
                loop {
                    let mut s = sample(env, opts, v, round, mode, &front, &twin)?;
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
            drop(twin);
            drop(front);
        }
    }
    drop(echo);
    Ok(samples)
}

fn pair(
    env: &Env,
    mode: Mode,
    front: &Envoy,
    twin: &Envoy,
    secs: u64,
) -> Result<(ClientResult, ClientResult), String> {
    std::thread::scope(|s| {
        let t = s.spawn(|| run_client(env, mode, twin.listener, secs));
        let f = run_client(env, mode, front.listener, secs);
        let t = t
            .join()
            .unwrap_or_else(|_| Err("client thread failed".into()));
        Ok((f?, t?))
    })
}

fn sample(
    env: &Env,
    opts: &Opts,
    v: &'static TcpVariant,
    round: usize,
    mode: Mode,
    front: &Envoy,
    twin: &Envoy,
) -> Result<TcpSample, String> {
    let core_before = env.pin.map(|p| core_ticks(p.0)).transpose()?;
    let cpu0 = cpu_secs(front.pid(), env.clk_tck)?;
    let twin0 = cpu_secs(twin.pid(), env.clk_tck)?;
    let started = Instant::now();
    let (f, t) = pair(env, mode, front, twin, opts.duration)?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(front.pid(), env.clk_tck)? - cpu0;
    let twin_cpu = cpu_secs(twin.pid(), env.clk_tck)? - twin0;
    let core_after = env.pin.map(|p| core_ticks(p.0)).transpose()?;
    let core = match (core_before, core_after) {
        (Some((b0, s0)), Some((b1, s1))) => {
            let ticks = wall * env.clk_tck;
            let ours = (cpu + twin_cpu) * env.clk_tck;
            Some(CoreUse {
                ours: ours / ticks,
                other: (b1.saturating_sub(b0) as f64 - ours).max(0.0) / ticks,
                steal: s1.saturating_sub(s0) as f64 / ticks,
            })
        }
        _ => None,
    };
    Ok(TcpSample {
        round,
        variant: v,
        mode,
        status: Status::Used,
        units: f.units,
        twin_units: t.units,
        secs: f.secs,
        cpu,
        twin_cpu,
        core,
        load_after: loadavg(),
        errors: f.errors + t.errors,
    })
}

fn print_sample(s: &TcpSample, rounds: usize) {
    let core = s.core.map_or(String::new(), |c| {
        format!(
            "  core: ours {:.0}% other {:.0}%",
            100.0 * c.ours,
            100.0 * c.foreign()
        )
    });
    let status = match s.status {
        Status::Used => "",
        Status::Dropped => "  DROPPED (other jobs on the front core): re-taking",
        Status::UsedContended => "  contended, re-takes used up: kept, flagged",
    };
    eprintln!(
        "  round {}/{rounds} {:<32} {:<4} {:>9.1} {}/s  {:>7.1} µs/{}  paired no-filter {:>7.1}  ratio {:.3}  errors {}  load {}{core}{status}",
        s.round,
        s.variant.name,
        s.mode.arg(),
        s.units / s.secs.max(1e-9),
        s.mode.unit(),
        s.per_unit_us(),
        s.mode.unit(),
        s.twin_per_unit_us(),
        s.per_unit_us() / s.twin_per_unit_us(),
        s.errors,
        fmt_load(&s.load_after)
    );
}

/// The paired view of one row at one load: (added µs per unit, CPU ratio, throughput ratio).
fn view(samples: &[TcpSample], name: &str, mode: Mode) -> Option<(f64, f64, f64)> {
    let of = |n: &str, f: fn(&TcpSample) -> f64| -> Vec<f64> {
        samples
            .iter()
            .filter(|s| s.variant.name == n && s.mode == mode && s.status != Status::Dropped)
            .map(f)
            .collect()
    };
    let norm = |n: &str| median(of(n, |s| s.per_unit_us() / s.twin_per_unit_us()));
    let rate = |n: &str| median(of(n, |s| s.units / s.twin_units));
    if of(name, |s| s.units).is_empty() || of(TCP_BASELINE, |s| s.units).is_empty() {
        return None;
    }
    let twin_us = median(
        samples
            .iter()
            .filter(|s| s.mode == mode && s.status != Status::Dropped)
            .map(TcpSample::twin_per_unit_us)
            .collect(),
    );
    let (n, b) = (norm(name), norm(TCP_BASELINE));
    Some(((n - b) * twin_us, n / b, rate(name) / rate(TCP_BASELINE)))
}

/// The L4 section of the report.
pub fn render(md: &mut String, samples: &[TcpSample], rows: &[&'static TcpVariant]) {
    if rows.is_empty() {
        return;
    }
    let dropped = samples
        .iter()
        .filter(|s| s.status == Status::Dropped)
        .count();
    let contended = samples
        .iter()
        .filter(|s| s.status == Status::UsedContended)
        .count();
    let _ = writeln!(md, "\n## L4 (TCP) rows\n");
    let _ = writeln!(
        md,
        "Listener → the row's network filter → `tcp_proxy` → an Envoy `echo` upstream; twin: \
         `tcp_proxy` alone, same core, same load at the same time. **conn**: 4 client threads \
         connecting, 16 bytes out and back, closing (CPU per connection, connections/s); \
         **bulk**: 2 connections streaming 64 KiB writes with the echo read back (CPU per MB \
         through the front, MB/s). Added CPU: (paired ratio − tcp-no-filter's) × the median twin \
         cost. Samples dropped: {dropped}; kept although contended: {contended}.\n"
    );
    let _ = writeln!(
        md,
        "| variant | floor | conn: added µs/conn | conn: ÷ floor | conn: CPU ratio | conn/s vs twin | bulk: added µs/MB | bulk: ÷ floor | bulk: CPU ratio | MB/s vs twin |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let num = |x: Option<f64>, p: usize| match x {
        Some(x) if x.is_finite() => format!("{x:.p$}"),
        _ => "—".to_string(),
    };
    let over = |v: &TcpVariant, mode| -> Option<f64> {
        let (a, _, _) = view(samples, v.name, mode)?;
        let (f, _, _) = view(samples, v.floor?, mode)?;
        super::floor_ratio(a, f)
    };
    for &v in rows {
        let c = view(samples, v.name, Mode::Conn);
        let b = view(samples, v.name, Mode::Bulk);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.name,
            v.floor.unwrap_or(""),
            num(c.map(|x| x.0), 2),
            num(over(v, Mode::Conn), 2),
            num(c.map(|x| x.1), 3),
            num(c.map(|x| x.2), 3),
            num(b.map(|x| x.0), 1),
            num(over(v, Mode::Bulk), 2),
            num(b.map(|x| x.1), 3),
            num(b.map(|x| x.2), 3),
        );
    }
    let _ = writeln!(md, "\nTargets (informational, not asserted):\n");
    for &v in rows.iter().filter(|v| v.floor.is_some()) {
        for mode in [Mode::Conn, Mode::Bulk] {
            let status = match over(v, mode) {
                Some(x) if x <= 1.10 => format!("{x:.2} × — met"),
                Some(x) => format!("{x:.2} × — NOT met"),
                None => "— (the floor's added CPU is within noise)".to_string(),
            };
            let _ = writeln!(
                md,
                "- {} added CPU per {} ≤ 1.10 × {}'s: {status}",
                v.name,
                mode.unit(),
                v.floor.unwrap_or("")
            );
        }
    }
    for native in ["tcp-native-rbac-cidr10k", "tcp-native-rbac-matcher-cidr10k"] {
        for mode in [Mode::Conn, Mode::Bulk] {
            if let (Some(o), Some(n)) = (
                view(samples, "tcp-ip-filter-cidr10k", mode),
                view(samples, native, mode),
            ) {
                let _ = writeln!(
                    md,
                    "- tcp-ip-filter-cidr10k vs {native} ({}): CPU {:.3} × native's (added {:+.2} vs {:+.2} µs/{})",
                    mode.arg(),
                    o.1 / n.1,
                    o.0,
                    n.0,
                    mode.unit()
                );
            }
        }
    }
    let _ = writeln!(md, "\n| round | variant | load | status | units/s | twin units/s | front µs/unit | twin µs/unit | core: other % | errors |");
    let _ = writeln!(md, "|---:|---|---|---|---:|---:|---:|---:|---:|---:|");
    for s in samples {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:?} | {:.1} | {:.1} | {:.2} | {:.2} | {} | {} |",
            s.round,
            s.variant.name,
            s.mode.arg(),
            s.status,
            s.units / s.secs.max(1e-9),
            s.twin_units / s.secs.max(1e-9),
            s.per_unit_us(),
            s.twin_per_unit_us(),
            s.core
                .map_or("—".to_string(), |c| format!("{:.1}", 100.0 * c.foreign())),
            s.errors
        );
    }
}

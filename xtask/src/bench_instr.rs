//! `xtask bench --instructions`: every selected variant's front Envoy run under valgrind's
//! callgrind, counting the **instructions** the front executes per request: a measure that
//! does not move with what else the machine (or the hypervisor) is doing, where the wall-clock
//! CPU samples of `make bench` do.
//!
//! Per variant: the same front configuration as the timed rows (same filters, same
//! upstream, the same `verify` checks), started under callgrind with instrumentation off. The
//! front serves [`WARMUP`] requests and idles 3 s (V8 compiles a wasm module lazily and tiers
//! hot functions up on background threads: that work is done before counting starts), then
//! `callgrind_control` switches counting on and the front serves three windows of `N`, `5 N`
//! and `5 N` requests over one keep-alive connection (`h2load --h1 -c 1`, the variant's request
//! headers), each ended by a dump that zeroes the counters. What a window pays once (the
//! connection, the dump) cancels in `(mean(I₂, I₃) − I₁) ÷ 4N`, the front's instructions per
//! request; the two equal windows' spread shows the count's repeatability (≤ 0.1 % seen, wasm
//! rows included). Envoy's stats flush is pushed out of the run (`stats_flush_interval: 299s`).
//! Threads are serialised under valgrind, so this is work done, not how it overlaps.
//!
//! What it is not: a time. Instructions weigh a cache miss like an add; the timed rows stay the
//! capacity measure, this one is their contention-free companion (the `÷ floor`, × native and
//! ÷ native's added ratios of the same variants). Rows whose load is a wrk script (a pool of
//! tokens, CORS preflights) are skipped: h2load sends fixed headers.

use super::{front_config_with, route_extra};
use super::{
    policy_load, start_envoy_with, verify, verify_policy, Env, Envoy, PolicyLoad, Variant,
};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The native rows each product row is compared with (capacity = native's instructions per
/// request ÷ the row's, the no-filter work included), with the target where one is set.
const VERSUS: &[(&str, &str, Option<f64>)] = &[
    ("header-rules-dynmod", "native-header_mutation", Some(0.97)),
    ("header-rules", "native-header_mutation", None),
    (
        "jwt-auth-dynmod-rs256-same",
        "native-jwt-rs256-same",
        Some(1.0),
    ),
    (
        "jwt-auth-dynmod-es256-same",
        "native-jwt-es256-same",
        Some(1.0),
    ),
    ("jwt-auth-rs256-same", "native-jwt-rs256-same", None),
    ("jwt-auth-es256-same", "native-jwt-es256-same", None),
    ("opa-policy-rbac10", "native-rbac10", Some(0.7)),
    ("opa-policy-rbac10", "ext-authz-opa", Some(2.0)),
    ("cors", "native-cors", None),
    ("ip-filter-cidr10k", "native-rbac-cidr10k", None),
    ("ip-filter-cidr10k", "native-rbac-matcher-cidr10k", None),
    ("rate-limit", "native-ratelimit", None),
    ("rate-limit-client", "native-ratelimit-client", None),
];

/// The Envoy executable itself: the PyPI package's `bin/envoy` is a Python launcher, which
/// valgrind would measure instead (it does not follow the exec).
fn real_envoy(envoy: &Path) -> Result<PathBuf, String> {
    let head = fs::read(envoy).map_err(|e| format!("reading {}: {e}", envoy.display()))?;
    if !head.starts_with(b"#!") {
        return Ok(envoy.to_path_buf());
    }
    let venv = envoy
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: no virtualenv around it", envoy.display()))?;
    let lib = venv.join("lib");
    for e in fs::read_dir(&lib)
        .map_err(|e| format!("reading {}: {e}", lib.display()))?
        .flatten()
    {
        let bin = e.path().join("site-packages/envoy/_bin/envoy");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    Err(format!(
        "{} is a launcher script and no site-packages/envoy/_bin/envoy is under {}",
        envoy.display(),
        lib.display()
    ))
}

/// `h2load --h1 -c 1 -n N` with `headers`; all must succeed.
fn load(url: &str, n: u64, headers: &[(&str, String)]) -> Result<(), String> {
    let mut cmd = Command::new("h2load");
    cmd.args(["--h1", "-c", "1", "-n", &n.to_string()]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running h2load: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("{n} succeeded");
    let line = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or("");
    if !out.status.success() || !line.contains(&want) {
        return Err(format!(
            "h2load {url}: not all {n} requests succeeded: {line}\n{text}"
        ));
    }
    Ok(())
}

/// Stops a front under valgrind and waits for callgrind to write its totals (TERM: Envoy shuts
/// down cleanly and valgrind dumps at exit; that takes seconds, more than `stop_group` waits).
fn stop_and_wait(mut front: Envoy) {
    super::signal_group(front.pid(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = front.child.try_wait() {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    drop(front);
}

/// The `summary:` (or `totals:`) instruction count of a callgrind output file.
fn total(path: &Path) -> Result<u64, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .ok_or_else(|| format!("{}: no instruction total", path.display()))
}

/// `callgrind_control <args> <pid>`: a request to the running callgrind (it answers once the
/// guest next runs, which a loaded Envoy does at once).
fn control(pid: u32, args: &[&str]) -> Result<(), String> {
    let out = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running callgrind_control: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {} {pid}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The instruction total of dump number `part` (`<out>.<part>`), waiting for callgrind to
/// write it.
fn next_dump(out: &Path, part: usize) -> Result<u64, String> {
    let path = PathBuf::from(format!("{}.{part}", out.display()));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(t) = total(&path) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(format!("callgrind wrote no dump {}", path.display()));
        }
        sleep(Duration::from_millis(200));
    }
}

/// Requests served before counting starts: V8 compiles a wasm module's functions lazily and
/// tiers the hot ones up on background threads; by then that work is done.
pub(super) const WARMUP: u64 = 3000;

/// One variant's front under callgrind with instrumentation off, warmed up with
/// [`WARMUP`] requests, then three counted windows of `n`, `5 n` and `5 n` requests (each
/// dump zeroes the counters). The windows' totals.
fn windows(
    env: &Env,
    v: &Variant,
    upstream: &Envoy,
    token: Option<&str>,
    headers: &[(&str, String)],
    n: u64,
) -> Result<[u64; 3], String> {
    let out = env.work.join(format!("callgrind.{}", v.name));
    let dir = out.parent().unwrap_or(Path::new("."));
    let stem = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&stem) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let mut config = front_config_with(
        &(v.filters)(&env.inputs),
        upstream.listener,
        v.route.map(|r| r.filter),
        &route_extra(v),
    );
    config.push_str("\nstats_flush_interval: 299s\n");
    let mut out_arg = OsString::from("--callgrind-out-file=");
    out_arg.push(&out);
    let wrapper: Vec<OsString> = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        // Counting starts after the warm-up (`callgrind_control -i on`).
        "--instr-atstart=no".into(),
        // V8 writes the code it runs (the wasm rows): valgrind must watch for it.
        "--smc-check=all-non-file".into(),
        out_arg,
        real_envoy(&env.envoy)?.into(),
    ];
    let front = start_envoy_with(env, &format!("instr-{}", v.name), &config, None, &wrapper)?;
    let url = format!("http://{}/", front.listener);
    let pid = front.pid();
    let counted = (|| {
        verify_policy(v, &front)?;
        verify(v, &front, token)?;
        load(&url, WARMUP, headers)?;
        // Background compile jobs started by the warm-up finish while the front idles.
        sleep(Duration::from_secs(3));
        control(pid, &["-i", "on"])?;
        control(pid, &["-z"])?;
        let mut totals = [0u64; 3];
        for (i, (slot, k)) in totals.iter_mut().zip([n, 5 * n, 5 * n]).enumerate() {
            load(&url, k, headers)?;
            control(pid, &["--dump"])?;
            *slot = next_dump(&out, i + 1)?;
        }
        Ok::<_, String>(totals)
    })();
    stop_and_wait(front);
    counted
}

/// One measured variant.
struct Row {
    per_request: f64,
    /// The three windows' totals (N, 5N, 5N requests).
    totals: [u64; 3],
}

impl Row {
    /// Instructions per request: the mean of the two 5N windows less the N window, over 4N
    /// (what every window pays once, the connection and the dump, cancels).
    fn of(totals: [u64; 3], n: u64) -> Row {
        let [a, b, c] = totals.map(|t| t as f64);
        Row {
            per_request: ((b + c) / 2.0 - a) / (4 * n) as f64,
            totals,
        }
    }

    /// How far the two equal windows differ, as a fraction of their mean.
    fn spread(&self) -> f64 {
        let [_, b, c] = self.totals.map(|t| t as f64);
        if b + c > 0.0 {
            (b - c).abs() / ((b + c) / 2.0)
        } else {
            0.0
        }
    }
}

pub(super) fn run(
    env: &Env,
    selected: &[&Variant],
    upstream: &Envoy,
    first_tokens: &[(super::Alg, String)],
    n: u64,
    out_dir: &Path,
) -> Result<(), String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Err("valgrind not found (Debian package `valgrind`)".into());
    }
    if Command::new("h2load").arg("--version").output().is_err() {
        return Err("h2load not found (Debian package `nghttp2-client`; `make setup`)".into());
    }
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut order: Vec<&Variant> = Vec::new();
    if let Some(none) = super::VARIANTS.iter().find(|v| v.name == "no-filter") {
        order.push(none);
    }
    order.extend(selected.iter().copied().filter(|v| v.name != "no-filter"));
    for v in order {
        if v.jwt.is_some_and(|l| l.pool) || policy_load(v) == PolicyLoad::Preflight {
            skipped.push(v.name);
            continue;
        }
        let token = v.jwt.and_then(|l| {
            first_tokens
                .iter()
                .find(|(a, _)| *a == l.alg)
                .map(|(_, t)| t.as_str())
        });
        let headers = super::request_headers(v, token);
        let started = Instant::now();
        let row = Row::of(windows(env, v, upstream, token, &headers, n)?, n);
        eprintln!(
            "bench --instructions: {:<28} {:>9.0} instructions/request, windows {:?} (spread {:.2} %, {:.0} s)",
            v.name,
            row.per_request,
            row.totals,
            100.0 * row.spread(),
            started.elapsed().as_secs_f64()
        );
        rows.insert(v.name, row);
    }
    let md = report(&rows, &skipped, n, env);
    let path = out_dir.join("instructions.md");
    fs::write(&path, &md).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("{md}");
    eprintln!("bench --instructions: written to {}", path.display());
    Ok(())
}

fn report(rows: &BTreeMap<&str, Row>, skipped: &[&str], n: u64, env: &Env) -> String {
    let n5 = 5 * n;
    let mut md = String::new();
    let version = super::command_output(env.envoy.to_str().unwrap_or("envoy"), &["--version"])
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "# Instructions per request (callgrind), `xtask bench --instructions {n}`\n\n\
         The front Envoy (`--concurrency 1`) under valgrind's callgrind, one keep-alive HTTP/1.1 \
         connection. Counting starts after {WARMUP} warm-up requests and a 3 s pause (V8's lazy \
         compilation and tier-up done), then three windows of {n}, {n5} and {n5} requests; \
         instructions per request = (mean of the {n5} windows − the {n} window) ÷ {}. \
         **Spread**: how far the two equal windows differ. Envoy: {}. A count, not a time: it \
         does not move with other load on the host. **Added** = the row's count − no-filter's. \
         **÷ floor** = added ÷ the floor's added (the raw-ABI module making the same host \
         calls). **Capacity × other** = the other row's count ÷ this row's (the whole \
         request's work, as the timed rows' CPU-bound capacity).\n",
        4 * n,
        version
            .lines()
            .find_map(|l| l.split_once("version: ").map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
    );
    let base = rows.get("no-filter").map(|r| r.per_request);
    let _ = writeln!(
        md,
        "| variant | instructions/request | added | floor | ÷ floor | spread | windows ({n}, {n5}, {n5}) |\n|---|---:|---:|---|---:|---:|---|"
    );
    for (name, r) in rows {
        let added = base.map(|b| r.per_request - b);
        let floor = super::VARIANTS
            .iter()
            .find(|v| v.name == *name)
            .and_then(|v| v.floor);
        let ratio = match (added, floor.and_then(|f| rows.get(f)), base) {
            (Some(a), Some(f), Some(b)) if f.per_request - b > 0.0 => {
                format!("{:.2}", a / (f.per_request - b))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "| {name} | {:.0} | {} | {} | {ratio} | {:.2} % | {}, {}, {} |",
            r.per_request,
            added.map(|a| format!("{a:+.0}")).unwrap_or_default(),
            floor.unwrap_or(""),
            100.0 * r.spread(),
            r.totals[0],
            r.totals[1],
            r.totals[2]
        );
    }
    let mut versus = String::new();
    for (row, other, target) in VERSUS {
        if let (Some(a), Some(b)) = (rows.get(row), rows.get(other)) {
            let cap = b.per_request / a.per_request;
            let status = match target {
                Some(t) if cap >= *t => format!("≥ {t} ×: met"),
                Some(t) => format!("≥ {t} ×: NOT met"),
                None => "(reference)".into(),
            };
            let _ = writeln!(versus, "| {row} | {other} | {cap:.3} × | {status} |");
        }
    }
    if !versus.is_empty() {
        let _ = writeln!(
            md,
            "\n| row | other | capacity × other (instructions) | target |\n|---|---|---:|---|\n{versus}"
        );
    }
    let mut added = String::new();
    let base = base.unwrap_or(0.0);
    for (row, other) in super::DYNMOD_VS_NATIVE {
        if let (Some(a), Some(b)) = (rows.get(row), rows.get(other)) {
            let (ours, native) = (a.per_request - base, b.per_request - base);
            let ratio = ours / native;
            let status = if native > 0.0 && ratio <= 1.10 {
                "met"
            } else {
                "NOT met"
            };
            let _ = writeln!(
                added,
                "| {row} | {other} | {ours:+.0} | {native:+.0} | {ratio:.2} × | ≤ 1.10 ×: {status} |"
            );
        }
    }
    if !added.is_empty() {
        let _ = writeln!(
            md,
            "\n| dynamic module | native | added | native's added | ÷ native's | target |\n|---|---|---:|---:|---:|---|\n{added}"
        );
    }
    if !skipped.is_empty() {
        let _ = writeln!(
            md,
            "\nSkipped (their load is a wrk script, h2load sends fixed headers): {}.",
            skipped.join(", ")
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_reads_callgrinds_summary_or_totals_line() {
        let dir = std::env::temp_dir().join(format!("bench-instr-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("out");
        fs::write(
            &file,
            "version: 1\ncmd: envoy\nevents: Ir\nsummary: 305883417\n",
        )
        .unwrap();
        assert_eq!(total(&file), Ok(305_883_417));
        fs::write(&file, "events: Ir\nfn=main\n1 2\ntotals: 42\n").unwrap();
        assert_eq!(total(&file), Ok(42));
        fs::write(&file, "events: Ir\n").unwrap();
        assert!(total(&file).unwrap_err().contains("no instruction total"));
        assert!(total(&dir.join("missing")).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_launcher_script_is_not_taken_for_envoy() {
        let dir = std::env::temp_dir().join(format!("bench-instr-venv-{}", std::process::id()));
        let bin = dir.join("bin/envoy");
        let real = dir.join("lib/python3.11/site-packages/envoy/_bin/envoy");
        fs::create_dir_all(bin.parent().unwrap()).unwrap();
        fs::create_dir_all(real.parent().unwrap()).unwrap();
        fs::write(&real, b"\x7fELF").unwrap();
        fs::write(&bin, "#!/usr/bin/python\n").unwrap();
        assert_eq!(real_envoy(&bin), Ok(real.clone()));
        assert_eq!(real_envoy(&real), Ok(real.clone()));
        fs::remove_file(&real).unwrap();
        assert!(real_envoy(&bin).unwrap_err().contains("launcher script"));
        let _ = fs::remove_dir_all(&dir);
    }
}

//! `guest-cost --row NAME PATH CONFIG FLOOR [--row ...] [--requests N] [--warmup N]
//! [--by-export] [--by-segment]`: runs
//! each module in the sdk-ext emulator's wasm engine with fuel metering on, and prints the
//! fuel (wasm operators, wasmtime's count) its own code consumes per request in steady state
//! (after the warm-up requests), and the ratio over its floor row (`FLOOR`: a row's NAME, or
//! `-`). Host functions cost no fuel: the number is the guest's own work for the same host
//! calls. Every row gets the same request: `GET /` with the headers the bench's load sends
//! (`x-remove-me`, an `Origin`), a 200 response, from 127.0.0.1. `xtask guest-cost` passes the
//! bench's filter configs (xtask/src/bench.rs). `--by-export`: the fuel per call of each
//! export called on every request (to stderr). `--by-segment`: the steady-state fuel per
//! request of each stretch of guest code between two host calls (`export>import`,
//! `import>import`, `import>return`; `in>import`: the guest's allocator inside a host call),
//! a deterministic profile (to stderr).

use sdk_ext::testing::{Emulator, FUEL_VAR};
use std::process::ExitCode;

struct Row {
    name: String,
    path: String,
    config: String,
    floor: Option<String>,
}

include!("../../request.rs");

const RESPONSE: &[(&str, &str)] = &[
    (":status", "200"),
    ("content-length", "2"),
    ("content-type", "text/plain"),
    ("date", "Tue, 01 Dec 2026 00:00:00 GMT"),
];

fn one_request(emu: &mut Emulator) {
    let mut stream = emu.http();
    stream.set_property(&["source", "address"], "127.0.0.1:40000");
    let _ = stream.request_headers(REQUEST, true);
    if stream.local_response().is_none() {
        let _ = stream.response_headers(RESPONSE, true);
    }
    stream.complete();
}

/// Fuel per request of `row` in steady state.
fn measure(
    row: &Row,
    warmup: u64,
    requests: u64,
    detail: bool,
    segments: bool,
) -> Result<u64, String> {
    let mut emu = Emulator::try_wasm(&row.path)?;
    emu.start(row.config.as_bytes())
        .map_err(|e| format!("{}: start refused: {e}", row.name))?;
    // The first request's outcome, so a refused or misrouted run is visible.
    {
        let mut stream = emu.http();
        stream.set_property(&["source", "address"], "127.0.0.1:40000");
        let action = stream.request_headers(REQUEST, true);
        let local = stream.local_response().map(|r| r.status_code);
        let set = stream.request_header_str("x-bench-a");
        eprintln!(
            "{}: first request {action:?}, local response {local:?}, x-bench-a {set:?}",
            row.name
        );
        if local.is_none() {
            let _ = stream.response_headers(RESPONSE, true);
        }
        stream.complete();
    }
    for _ in 0..warmup {
        one_request(&mut emu);
    }
    let before = emu
        .guest_fuel()
        .ok_or_else(|| format!("no fuel count: {FUEL_VAR} was not set at the engine's start"))?;
    let start = emu.guest_fuel_segments();
    for _ in 0..requests {
        one_request(&mut emu);
    }
    let after = emu.guest_fuel().unwrap_or(before);
    if segments {
        for (from, to, times, fuel) in emu.guest_fuel_segments() {
            let (t0, f0) = start
                .iter()
                .find(|(f, t, _, _)| *f == from && *t == to)
                .map_or((0, 0), |(_, _, n, f)| (*n, *f));
            let per = (fuel - f0) as f64 / requests.max(1) as f64;
            if per >= 0.5 {
                eprintln!(
                    "  {:<18} {:>8.0} fuel/req  {:>5.2} times/req  {from} > {to}",
                    row.name,
                    per,
                    (times - t0) as f64 / requests.max(1) as f64
                );
            }
        }
    }
    if detail {
        // Mostly the steady state: the warm-up and start are a small share of the calls.
        let total = warmup + requests + 1;
        for (export, calls, fuel) in emu.guest_fuel_by_export() {
            if calls >= total {
                eprintln!(
                    "  {:<18} {export:<34} {:>8.0} fuel/call  ({calls} calls)",
                    row.name,
                    fuel as f64 / calls as f64
                );
            }
        }
    }
    Ok((after - before) / requests.max(1))
}

fn parse(args: &[String]) -> Result<(Vec<Row>, u64, u64, bool, bool), String> {
    let mut rows = Vec::new();
    let (mut warmup, mut requests, mut detail, mut segments) = (100u64, 1000u64, false, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut next = || it.next().cloned().ok_or(format!("{arg}: missing value"));
        match arg.as_str() {
            "--row" => {
                let name = next()?;
                let path = next()?;
                let config = next()?;
                // `@FILE`: the config is in FILE (large configs pass the argument limit).
                let config = match config.strip_prefix('@') {
                    Some(file) => {
                        std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}"))?
                    }
                    None => config,
                };
                let floor = next()?;
                rows.push(Row {
                    name,
                    path,
                    config,
                    floor: (floor != "-").then_some(floor),
                });
            }
            "--warmup" => warmup = next()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--requests" => requests = next()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--by-export" => detail = true,
            "--by-segment" => segments = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((rows, warmup, requests, detail, segments))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (rows, warmup, requests, detail, segments) = parse(&args)?;
    // Before the engine exists (it reads the variable once); single-threaded here.
    std::env::set_var(FUEL_VAR, "1");
    let mut results: Vec<(String, u64)> = Vec::new();
    for row in &rows {
        let fuel = measure(row, warmup, requests, detail, segments)?;
        results.push((row.name.clone(), fuel));
    }
    println!(
        "guest cost: wasm operators (wasmtime fuel) per request, steady state \
         ({warmup} warm-up, mean of {requests})"
    );
    println!(
        "{:<22} {:>12} {:>10} {:>9}  floor",
        "module", "fuel/req", "over", "ratio"
    );
    for (row, (name, fuel)) in rows.iter().zip(&results) {
        let floor = row
            .floor
            .as_ref()
            .and_then(|f| results.iter().find(|(n, _)| n == f));
        match floor {
            Some((fname, ffuel)) => println!(
                "{name:<22} {fuel:>12} {:>+10} {:>8.2}x  {fname}",
                *fuel as i64 - *ffuel as i64,
                *fuel as f64 / (*ffuel).max(1) as f64
            ),
            None => println!("{name:<22} {fuel:>12} {:>10} {:>9}  -", "", ""),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guest-cost: {e}");
            ExitCode::FAILURE
        }
    }
}

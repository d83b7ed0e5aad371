//! Native timing of one opa-policy decision, split in its two parts: building the input
//! document from the request facts, and evaluating the policy. The policy is the bench's
//! 10-rule RBAC one (`examples/rbac-10.json`) and the request is guest-cost's (`GET /` with
//! `x-remove-me: 1`, which only the last binding allows), so the numbers line up with
//! `xtask guest-cost opa-policy` and the bench's `opa-policy-rbac10` row.
//!
//! `cargo run --release -p opa-timing -- [N] [CONFIG.json]`
//!
//! Prints µs per input build and per evaluation (best of 5 rounds of N, default 20 000), with
//! the engine the filter picked for the policy (regorus's RVM, or its interpreter), and the
//! same evaluation through regorus's interpreter (`Engine::eval_rule`, as opa-policy did
//! before the RVM) for comparison. A measuring tool, not a test: nothing is asserted about
//! the times.

use opa_policy::config::{Config, Decider, RawConfig};
use opa_policy::input::RequestFacts;
use sdk_ext::request::RequestData;
use std::hint::black_box;
use std::time::Instant;

const RBAC: &str = include_str!("../../../filters/opa-policy/examples/rbac-10.json");

include!("../../request.rs");

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let n: u32 = match args.next() {
        Some(a) => a.parse().map_err(|e| format!("N: {e}"))?,
        None => 20_000,
    };
    let config = match args.next() {
        Some(path) => std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?,
        None => RBAC.to_string(),
    };
    let raw: RawConfig = serde_json::from_str(&config).map_err(|e| e.to_string())?;
    let config = Config::parse(config.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = REQUEST
        .iter()
        .fold(RequestData::default(), |r, (n, v)| r.with(n, v));
    let (policy, query) = match config.rules.first(&mut request) {
        Some((_, Decider::Embedded { policy, query })) => (policy.clone(), query.clone()),
        _ => return Err("the config's first rule is not an embedded policy".into()),
    };
    let facts = RequestFacts {
        headers: REQUEST
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect(),
        source_address: Some(b"127.0.0.1:40000".to_vec()),
        ..RequestFacts::default()
    };
    let needs = policy.needs();
    let max = config.limits.max_input_bytes;
    let input = facts
        .to_input_for(max, &needs)
        .map_err(|e| format!("{e:?}"))?;
    let decision = policy.eval(&query, input.clone());
    println!("{query} = {decision:?} ({:?})", policy.engine_kind());

    let (mut build, mut eval) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..n {
            black_box(
                facts
                    .to_input_for(max, &needs)
                    .map_err(|e| format!("{e:?}"))?,
            );
        }
        build = build.min(started.elapsed().as_secs_f64() * 1e6 / f64::from(n));
        let started = Instant::now();
        for _ in 0..n {
            let _ = black_box(policy.eval(&query, input.clone()));
        }
        eval = eval.min(started.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    println!("input build: {build:.3} µs, evaluation: {eval:.3} µs (best of 5 rounds of {n})");

    // The interpreter, called as opa-policy called it before the RVM.
    let Some(raw) = raw.policies.values().next() else {
        return Ok(());
    };
    let mut engine = regorus::Engine::new();
    for m in &raw.modules {
        engine
            .add_policy(m.name.clone(), m.rego.clone())
            .map_err(|e| e.to_string())?;
    }
    if let Some(data) = &raw.data {
        engine
            .add_data(regorus::Value::from(data.clone()))
            .map_err(|e| e.to_string())?;
    }
    opa_policy::builtins::register(&mut engine)?;
    engine
        .compile_with_entrypoint(&regorus::Rc::from(raw.query.as_str()))
        .map_err(|e| e.to_string())?;
    let mut interp = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..n {
            engine.set_input(input.clone());
            let _ = black_box(engine.eval_rule(query.to_string()));
            engine.set_input(regorus::Value::Undefined);
        }
        interp = interp.min(started.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    println!("interpreter (Engine::eval_rule): {interp:.3} µs");
    Ok(())
}

//! Rego evaluation with regorus: policies compiled once at config time, evaluated per request
//! under a time limit. Plain Rust: no host calls (the clock regorus reads is std's monotonic
//! `Instant`, which on wasm is WASI's `clock_time_get`).

use crate::builtins;
use crate::config::RawPolicy;
use crate::input::Needs;
use regorus::utils::limits::{ExecutionTimerConfig, LimitError};
use regorus::{Engine, Value};
use sdk_ext::config::ConfigError;
use std::cell::RefCell;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// Bounds on each evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one evaluation.
    pub eval_timeout: Duration,
    /// Cap on the input document's request bytes (header names and values, path, body).
    pub max_input_bytes: usize,
    /// Cap on what one evaluation may allocate.
    pub max_eval_memory_bytes: usize,
}

/// Work units (rule, statement, loop iteration) between two clock reads: a read is a host
/// call on wasm (~0.1 µs); 16 keeps that under a few percent of an evaluation.
const CHECK_INTERVAL: u32 = 16;

/// Why an evaluation gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The time limit was reached (evaluation stopped there).
    TimeLimit,
    /// The evaluation allocated more than `max_eval_memory_bytes` (this many at its peak).
    MemoryLimit(usize),
    /// Anything else: a builtin error, a conflict (`complete rules must not produce
    /// multiple outputs`), a policy that is not re-entrant.
    Failed(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::TimeLimit => f.write_str("evaluation time limit reached"),
            EvalError::MemoryLimit(n) => write!(f, "evaluation allocated {n} bytes"),
            EvalError::Failed(why) => f.write_str(why),
        }
    }
}

/// A compiled policy: its modules, data and builtins, ready to evaluate.
pub struct Policy {
    engine: RefCell<Engine>,
    query: String,
    max_memory: usize,
    needs: Needs,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Parses every module, loads the data, registers the extra builtins and compiles the
    /// policy for its query. Errors name the field (`modules[1].rego`, `data`, `query`) and,
    /// for Rego, the module and line.
    pub fn compile(raw: &RawPolicy, limits: &Limits) -> Result<Self, ConfigError> {
        let mut engine = Engine::new();
        if raw.modules.is_empty() {
            return Err(ConfigError::new("modules", "at least one module is needed"));
        }
        for (i, m) in raw.modules.iter().enumerate() {
            if m.name.is_empty() {
                return Err(ConfigError::new(
                    format!("modules[{i}].name"),
                    "must not be empty",
                ));
            }
            if let Some((line, depth)) = too_deep(&m.rego) {
                return Err(ConfigError::new(
                    format!("modules[{i}].rego"),
                    format!(
                        "{}:{line}: brackets nested {depth} deep; at most {MAX_NESTING} \
                         (regorus's parser takes time exponential in the nesting)",
                        m.name
                    ),
                ));
            }
            engine
                .add_policy(m.name.clone(), m.rego.clone())
                .map_err(|e| ConfigError::new(format!("modules[{i}].rego"), rego_error(&e)))?;
        }
        if let Some(data) = &raw.data {
            if !data.is_object() {
                return Err(ConfigError::new("data", "must be a JSON object"));
            }
            engine
                .add_data(Value::from(data.clone()))
                .map_err(|e| ConfigError::new("data", rego_error(&e)))?;
        }
        builtins::register(&mut engine).map_err(|e| ConfigError::new("modules", e))?;
        engine.set_execution_timer_config(timer(limits.eval_timeout));
        // Compiles the modules (a compile error is reported here, not at the first request)
        // and checks that the query names a rule.
        engine
            .compile_with_entrypoint(&regorus::Rc::from(raw.query.as_str()))
            .map_err(|e| {
                let why = query_error(&raw.query, &e);
                // A compile error (unsafe variable, recursion...) names its module: report
                // it at that module.
                let module = raw
                    .modules
                    .iter()
                    .position(|m| why.starts_with(&format!("{}:", m.name)));
                match module {
                    Some(i) => ConfigError::new(format!("modules[{i}].rego"), why),
                    None => ConfigError::new("query", why),
                }
            })?;
        Ok(Self {
            engine: RefCell::new(engine),
            query: raw.query.clone(),
            max_memory: limits.max_eval_memory_bytes,
            needs: Needs::of(raw.modules.iter().map(|m| m.rego.as_str())),
        })
    }

    /// The parts of the input document its modules can reach.
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// The policy's configured query.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Checks that `query` names a rule of this policy (for a rule's `query` override).
    pub fn check_query(&self, query: &str) -> Result<(), String> {
        let mut engine = self
            .engine
            .try_borrow()
            .map_err(|_| "policy busy".to_string())?
            .clone();
        engine
            .compile_with_entrypoint(&regorus::Rc::from(query))
            .map(drop)
            .map_err(|e| query_error(query, &e))
    }

    /// Evaluates rule `query` with `input`. `Value::Undefined` when the rule has no value.
    /// What the evaluation allocated is measured ([`sdk_ext::memory`]): over
    /// `max_eval_memory_bytes` at its peak, the value is refused (`MemoryLimit`).
    pub fn eval(&self, query: &str, input: Value) -> Result<Value, EvalError> {
        let mut engine = self
            .engine
            .try_borrow_mut()
            .map_err(|_| EvalError::Failed("policy evaluation re-entered".into()))?;
        engine.set_input(input);
        let mark = sdk_ext::memory::mark();
        let result = engine.eval_rule(query.to_string());
        let peak = mark.peak_above();
        // Drop the input now: it may be large, and the engine lives on.
        engine.set_input(Value::Undefined);
        if peak > self.max_memory {
            return Err(EvalError::MemoryLimit(peak));
        }
        result.map_err(|e| match e.downcast_ref::<LimitError>() {
            Some(LimitError::TimeLimitExceeded { .. }) => EvalError::TimeLimit,
            _ if e.to_string().contains("time limit") => EvalError::TimeLimit,
            _ => EvalError::Failed(one_line(&e.to_string())),
        })
    }
}

/// How deep `[` and `{` may nest in a module. regorus (0.14) parses each `[`/`{` first as a
/// comprehension and, when that fails, again as an array, set or object: the time doubles with
/// every level (found by the `config_opa_policy` fuzz target: 70 nested `[` held `on_configure`
/// for minutes). Real policies nest a few levels; 12 levels parse in well under a millisecond.
pub const MAX_NESTING: usize = 12;

/// The first line where `[`/`{` nesting exceeds [`MAX_NESTING`], and that depth; brackets in
/// strings, raw strings and comments do not count.
fn too_deep(rego: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = rego.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            let _ = chars.next();
                        }
                        '"' | '\n' => {
                            if c == '\n' {
                                line += 1;
                            }
                            break;
                        }
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    match c {
                        '`' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some((line, depth));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::new(CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
    }
}

/// A regorus error as one line: `authz.rego:3:5: error: ...` (its source excerpt dropped).
fn rego_error(e: &anyhow::Error) -> String {
    one_line(&e.to_string())
}

fn query_error(query: &str, e: &anyhow::Error) -> String {
    let why = one_line(&e.to_string());
    if why.contains("not a valid rule path") {
        format!("{query:?} is not a rule of the policy's modules")
    } else {
        why
    }
}

/// Regorus messages are `--> file:line:col` blocks with a source excerpt; Envoy's log wants
/// one line: `file:line:col: message`.
pub fn one_line(message: &str) -> String {
    let mut location = None;
    let mut text = Vec::new();
    for line in message.lines() {
        let t = line.trim();
        if let Some(loc) = t.strip_prefix("--> ") {
            location = Some(loc.trim().to_string());
        } else if t.is_empty() || t == "|" || t.starts_with('|') || starts_with_gutter(t) {
            continue;
        } else {
            text.push(t.to_string());
        }
    }
    let text = text.join(" ");
    match location {
        Some(loc) => format!("{loc}: {text}"),
        None => text,
    }
}

/// `12 | source` or `^^^` lines of an excerpt.
fn starts_with_gutter(line: &str) -> bool {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0
        && line
            .get(digits..)
            .is_some_and(|r| r.trim_start().starts_with('|')))
        || line.starts_with('^')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawModule;

    fn limits() -> Limits {
        Limits {
            eval_timeout: Duration::from_millis(50),
            max_input_bytes: 65536,
            max_eval_memory_bytes: 1 << 24,
        }
    }

    fn policy(rego: &str, query: &str) -> Result<Policy, ConfigError> {
        Policy::compile(
            &RawPolicy {
                modules: vec![RawModule {
                    name: "authz.rego".into(),
                    rego: rego.into(),
                }],
                data: None,
                query: query.into(),
            },
            &limits(),
        )
    }

    #[test]
    fn evaluates_a_rule() {
        let p = policy(
            "package envoy.authz\ndefault allow := false\nallow if input.method == \"GET\"\n",
            "data.envoy.authz.allow",
        )
        .unwrap();
        let input = Value::from_json_str(r#"{"method":"GET"}"#).unwrap();
        assert_eq!(
            p.eval("data.envoy.authz.allow", input),
            Ok(Value::from(true))
        );
        let input = Value::from_json_str(r#"{"method":"POST"}"#).unwrap();
        assert_eq!(
            p.eval("data.envoy.authz.allow", input),
            Ok(Value::from(false))
        );
    }

    #[test]
    fn syntax_errors_name_the_module_and_line() {
        let e = policy(
            "package envoy.authz\n\nallow if {\n  input.method == \n}\n",
            "data.envoy.authz.allow",
        )
        .unwrap_err();
        assert_eq!(e.field, "modules[0].rego");
        assert!(e.reason.starts_with("authz.rego:"), "{}", e.reason);
        assert!(!e.reason.contains('\n'), "{}", e.reason);
        let e = policy("package x\nallow := 1\n", "data.x.nope").unwrap_err();
        assert_eq!(e.field, "query");
        assert!(e.reason.contains("not a rule"), "{}", e.reason);
    }

    #[test]
    fn deep_nesting_is_refused_before_regorus_parses_it() {
        let nested = |d: usize| {
            format!(
                "package x\n# [[[[[[[[[[[[[[[[[[[[ in a comment\ns := \"{{{{{{{{{{{{{{{{\"\nallow if {{\n  x := {}1{}\n  x != 2\n}}\n",
                "[".repeat(d),
                "]".repeat(d)
            )
        };
        // Up to the bound (the rule's braces count: 1 + 11), it compiles.
        assert!(policy(&nested(MAX_NESTING - 1), "data.x.allow").is_ok());
        let e = policy(&nested(MAX_NESTING), "data.x.allow").unwrap_err();
        assert_eq!(e.field, "modules[0].rego");
        assert!(
            e.reason
                .starts_with("authz.rego:5: brackets nested 13 deep"),
            "{}",
            e.reason
        );
        // The fuzz finding: 70 unclosed `[`, refused at once.
        let e = policy(
            &format!("package x\nallow if {{ t{} }}\n", "[".repeat(70)),
            "data.x.allow",
        )
        .unwrap_err();
        assert!(e.reason.contains("nested 13 deep"), "{}", e.reason);
    }

    #[test]
    fn a_runaway_policy_is_stopped() {
        let p = policy(
            "package x\nallow if { count([y | some a in numbers.range(1, 2000); some b in numbers.range(1, 2000); y := a * b]) > 0 }\n",
            "data.x.allow",
        )
        .unwrap();
        let started = std::time::Instant::now();
        let r = p.eval("data.x.allow", Value::new_object());
        assert_eq!(r, Err(EvalError::TimeLimit));
        // (Without a counting allocator in this unit-test binary, memory is not measured.)
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn one_line_keeps_location_and_message() {
        let m = "error: unexpected token\n  --> a.rego:4:3\n   |\n 4 |   x ==\n   |   ^\n";
        assert_eq!(one_line(m), "a.rego:4:3: error: unexpected token");
    }
}

//! Rego evaluation with regorus: policies compiled once at config time, evaluated per request
//! under a time limit. Plain Rust: no host calls (the clock regorus reads is std's monotonic
//! `Instant`, which on wasm is WASI's `clock_time_get`).

use crate::builtins;
use crate::config::RawPolicy;
use crate::input::Needs;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::{Program, RuleType};
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::{ExecutionTimerConfig, LimitError};
use regorus::{CompiledPolicy, Engine, Value};
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

/// The interpreter's work units (rule, statement, loop iteration) between two clock reads:
/// a read is a host call on wasm (~0.1 µs); 16 keeps that under a few percent of an
/// evaluation.
const CHECK_INTERVAL: u32 = 16;

/// The RVM's: its work unit is one instruction, far less work than the interpreter's (the
/// bench's 10-rule policy runs ~130 of them, ~0.3 µs each in Envoy's V8); 16 read the clock
/// 8 times per decision, each a host call. 128 reads it once or twice; a runaway policy
/// overshoots its time limit by ~50 µs of instructions at most (a builtin call in between
/// counts as one unit, as with any interval).
const VM_CHECK_INTERVAL: u32 = 128;

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

/// How a policy is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// regorus's RVM: the modules compiled to bytecode once, run by its virtual machine.
    Vm,
    /// regorus's tree-walking interpreter: for what the RVM compiler does not take (the
    /// extension builtins `io.jwt.decode` and `time.now_ns`, and any construct it refuses).
    Interpreter,
}

/// The RVM side of a policy: the program (every entry point a rule may query) and the VM
/// that runs it, kept between requests (its register windows are reused).
struct Vm {
    machine: RegoVM,
    compiled: CompiledPolicy,
    entry_points: Vec<String>,
    /// What the program can read of the input document.
    needs: Needs,
}

/// A compiled policy: its modules, data and builtins, ready to evaluate.
pub struct Policy {
    engine: RefCell<Engine>,
    /// `Some` while every queried rule compiles to RVM bytecode.
    vm: RefCell<Option<Vm>>,
    /// The data document, for the VM (the interpreter's engine has its own copy).
    data: Value,
    timer: ExecutionTimerConfig,
    query: String,
    max_memory: usize,
    /// What the modules can reach by the names they spell (the interpreter's).
    needs: Needs,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("query", &self.query)
            .field("engine", &self.engine_kind())
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
            if let Some((line, found, instead)) = regex_needing_unicode(&m.rego) {
                return Err(ConfigError::new(
                    format!("modules[{i}].rego"),
                    format!(
                        "{}:{line}: `{found}` in a string of a module that calls regex.*: this \
                         build's regex has no Unicode tables and cannot compile it (the call \
                         would be undefined, so a rule using it would never match); write \
                         {instead}, which is what OPA's RE2 means by it",
                        m.name
                    ),
                ));
            }
            engine
                .add_policy(m.name.clone(), m.rego.clone())
                .map_err(|e| ConfigError::new(format!("modules[{i}].rego"), rego_error(&e)))?;
        }
        let data = match &raw.data {
            Some(data) => {
                if !data.is_object() {
                    return Err(ConfigError::new("data", "must be a JSON object"));
                }
                let data = Value::from(data.clone());
                engine
                    .add_data(data.clone())
                    .map_err(|e| ConfigError::new("data", rego_error(&e)))?;
                data
            }
            None => Value::new_object(),
        };
        builtins::register(&mut engine).map_err(|e| ConfigError::new("modules", e))?;
        let timer = timer(limits.eval_timeout);
        engine.set_execution_timer_config(timer);
        // Compiles the modules (a compile error is reported here, not at the first request)
        // and checks that the query names a rule.
        let compiled = engine
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
        let entry_points = vec![raw.query.clone()];
        let vm = vm(compiled, entry_points, &data, timer);
        Ok(Self {
            engine: RefCell::new(engine),
            vm: RefCell::new(vm),
            data,
            timer,
            query: raw.query.clone(),
            max_memory: limits.max_eval_memory_bytes,
            needs: Needs::of(raw.modules.iter().map(|m| m.rego.as_str())),
        })
    }

    /// Which engine evaluates the policy.
    pub fn engine_kind(&self) -> EngineKind {
        match self.vm.try_borrow() {
            Ok(vm) if vm.is_some() => EngineKind::Vm,
            _ => EngineKind::Interpreter,
        }
    }

    /// The parts of the input document the policy can read: on the RVM, what its program
    /// reads (`crate::reads`); on the interpreter, what its modules name.
    pub fn needs(&self) -> Needs {
        match self.vm.try_borrow() {
            Ok(vm) => vm
                .as_ref()
                .map_or(self.needs.clone(), |vm| vm.needs.clone()),
            Err(_) => Needs::ALL,
        }
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
            .map_err(|e| query_error(query, &e))?;
        // The program gets the rule as one more entry point (or the policy falls back to
        // the interpreter, when the RVM compiler does not take it).
        let mut slot = self
            .vm
            .try_borrow_mut()
            .map_err(|_| "policy busy".to_string())?;
        if let Some(old) = slot.take() {
            if old.entry_points.iter().any(|e| e == query) {
                *slot = Some(old);
            } else {
                let mut entry_points = old.entry_points;
                entry_points.push(query.to_string());
                *slot = vm(old.compiled, entry_points, &self.data, self.timer);
            }
        }
        Ok(())
    }

    /// Evaluates rule `query` with `input`. `Value::Undefined` when the rule has no value.
    /// What the evaluation allocated is measured ([`sdk_ext::memory`]): over
    /// `max_eval_memory_bytes` at its peak, the value is refused (`MemoryLimit`).
    pub fn eval(&self, query: &str, input: Value) -> Result<Value, EvalError> {
        let mut vm = self
            .vm
            .try_borrow_mut()
            .map_err(|_| EvalError::Failed("policy evaluation re-entered".into()))?;
        if let Some(vm) = vm.as_mut() {
            return self.eval_vm(&mut vm.machine, query, input);
        }
        drop(vm);
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

impl Policy {
    fn eval_vm(&self, machine: &mut RegoVM, query: &str, input: Value) -> Result<Value, EvalError> {
        machine.set_input(input);
        let mark = sdk_ext::memory::mark();
        let result = machine.execute_entry_point_by_name(query);
        let peak = mark.peak_above();
        machine.set_input(Value::Undefined);
        if peak > self.max_memory {
            return Err(EvalError::MemoryLimit(peak));
        }
        result.map_err(|e| match e {
            VmError::TimeLimitExceeded { .. } => EvalError::TimeLimit,
            e => EvalError::Failed(one_line(&e.to_string())),
        })
    }
}

/// The RVM program for `entry_points` and a VM loaded with it and `data`; `None` (the
/// interpreter evaluates) when the RVM compiler does not take the policy.
fn vm(
    compiled: CompiledPolicy,
    entry_points: Vec<String>,
    data: &Value,
    timer: ExecutionTimerConfig,
) -> Option<Vm> {
    let names: Vec<&str> = entry_points.iter().map(String::as_str).collect();
    let program = match Compiler::compile_from_policy(&compiled, &names) {
        Ok(program) => program,
        Err(e) => {
            log::info!(
                "the RVM compiler does not take this policy ({}); the interpreter evaluates it",
                one_line(&e.to_string())
            );
            return None;
        }
    };
    if let Some(rule) = may_conflict(&program) {
        log::info!(
            "{rule} has definitions that may give different values; the interpreter evaluates \
             the policy (it fails such a conflict as an error, the RVM would leave the rule undefined)"
        );
        return None;
    }
    let needs = crate::reads::needs(&program, data);
    let mut machine = RegoVM::new();
    machine.load_program(program);
    if let Err(e) = machine.set_data(data.clone()) {
        log::info!(
            "the RVM refuses this policy's data ({}); the interpreter evaluates it",
            one_line(&e.to_string())
        );
        return None;
    }
    // The time limit (and the memory cap, measured around each evaluation) stop runaway
    // policies, as with the interpreter; no instruction budget on top.
    machine.set_max_instructions(usize::MAX);
    machine.set_execution_timer_config(Some(ExecutionTimerConfig {
        check_interval: NonZeroU32::new(VM_CHECK_INTERVAL).unwrap_or(timer.check_interval),
        ..timer
    }));
    Some(Vm {
        machine,
        compiled,
        entry_points,
        needs,
    })
}

/// A complete rule or function with several bodies (`else` aside) whose values are not all the
/// same constant: two of them may succeed with different values. The interpreter reports that
/// as an error (OPA's `eval_conflict_error`: the request fails closed); regorus's RVM makes the
/// rule undefined, which `not rule` would read as false, so such policies stay on the
/// interpreter. (`allow if ...` bodies all give `true`: they cannot conflict.)
fn may_conflict(program: &Program) -> Option<&str> {
    program
        .rule_infos
        .iter()
        .find(|r| {
            let bodies: usize = r
                .definitions
                .iter()
                .enumerate()
                .map(|(d, bodies)| {
                    let elses = r.else_bodies.get(d);
                    (0..bodies.len())
                        .filter(|&b| !elses.and_then(|e| e.get(b)).copied().unwrap_or(false))
                        .count()
                })
                .sum();
            matches!(r.rule_type, RuleType::Complete)
                && bodies > 1
                && !r.early_exit_on_first_success
        })
        .map(|r| r.name.as_str())
}

/// How deep `[` and `{` may nest in a module. regorus (0.14) parses each `[`/`{` first as a
/// comprehension and, when that fails, again as an array, set or object: the time doubles with
/// every level (found by the `config_opa_policy` fuzz target: 70 nested `[` held `on_configure`
/// for minutes). Real policies nest a few levels; 12 levels parse in well under a millisecond.
pub const MAX_NESTING: usize = 12;

/// The first line where `[`/`{` nesting exceeds [`MAX_NESTING`], and that depth; brackets in
/// strings, raw strings and comments do not count.
fn too_deep(rego: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    scan(
        rego,
        |c, line| {
            match c {
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some((line, depth));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            None
        },
        |_, _| None,
    )
}

/// Walks Rego source: `code(c, line)` for each character outside comments and strings, and
/// `string(text, line)` for each string literal with the line it starts on (a raw string
/// verbatim; a quoted one with `\\` read as one backslash and any other escape as a space;
/// a quoted string ends at a newline, as Rego's do). Stops at the first `Some`.
fn scan<T>(
    rego: &str,
    mut code: impl FnMut(char, usize) -> Option<T>,
    mut string: impl FnMut(&str, usize) -> Option<T>,
) -> Option<T> {
    let (mut line, mut chars) = (1usize, rego.chars());
    while let Some(c) = chars.next() {
        let (start, mut text) = (line, String::new());
        match c {
            '\n' => line += 1,
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
                continue;
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('\\') => text.push('\\'),
                            Some(_) | None => text.push(' '),
                        },
                        '"' => break,
                        '\n' => {
                            line += 1;
                            break;
                        }
                        c => text.push(c),
                    }
                }
                if let Some(found) = string(&text, start) {
                    return Some(found);
                }
                continue;
            }
            '`' => {
                for c in chars.by_ref() {
                    match c {
                        '`' => break,
                        '\n' => {
                            line += 1;
                            text.push(c);
                        }
                        c => text.push(c),
                    }
                }
                if let Some(found) = string(&text, start) {
                    return Some(found);
                }
                continue;
            }
            _ => {}
        }
        if let Some(found) = code(c, start) {
            return Some(found);
        }
    }
    None
}

/// The regex escapes the shipped module's `regex` crate refuses (it is linked without Unicode
/// tables, which its Perl classes need), each with OPA's meaning written out: Go's RE2
/// classes are ASCII-only.
const PERL_CLASSES: &[(char, &str)] = &[
    ('d', "`[0-9]`"),
    ('D', "`[^0-9]`"),
    ('w', "`[0-9A-Za-z_]`"),
    ('W', "`[^0-9A-Za-z_]`"),
    ('s', "`[\\t\\n\\f\\r ]`"),
    ('S', "`[^\\t\\n\\f\\r ]`"),
    ('b', "the boundary with explicit classes or anchors"),
    ('B', "the boundary with explicit classes or anchors"),
    ('p', "an explicit class"),
    ('P', "an explicit class"),
];

/// In a module that mentions `regex.`, the first string literal (raw or quoted, decoded)
/// holding a construct the regex crate cannot compile without Unicode tables: a Perl class
/// (`\d`, `\w`, `\s`, `\b`, `\p{..}` and their negations) or the case-insensitive flag
/// (`(?i)`). Answers its line, the construct and what to write instead. A pattern built at
/// run time (from `input` or `data`) is not seen here; it makes the call undefined.
fn regex_needing_unicode(rego: &str) -> Option<(usize, String, &'static str)> {
    if !rego.contains("regex.") {
        return None;
    }
    scan(
        rego,
        |_, _| None,
        |text, line| needs_unicode(text).map(|(found, instead)| (line, found, instead)),
    )
}

/// The first construct of `pattern` that needs Unicode tables, and what to write instead.
fn needs_unicode(pattern: &str) -> Option<(String, &'static str)> {
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else { break };
                if let Some((_, instead)) = PERL_CLASSES.iter().find(|(k, _)| *k == e) {
                    return Some((format!("\\{e}"), instead));
                }
            }
            '(' if chars.peek() == Some(&'?') => {
                let _ = chars.next();
                // Flags (`(?im)`, `(?i:..)`; not `(?-i)`, `(?P<id>..)`): an `i` among the
                // flags before any `-` turns case folding on.
                for f in chars.by_ref() {
                    match f {
                        'i' => return Some(("(?i)".into(), "both cases, e.g. `[Gg][Ee][Tt]`")),
                        'm' | 's' | 'u' | 'x' | 'U' => {}
                        _ => break,
                    }
                }
            }
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
    fn the_rvm_runs_what_it_compiles_and_the_interpreter_the_rest() {
        let rego = "package envoy.authz\ndefault allow := false\nallow if input.method == \"GET\"\nadmin if input.user == \"root\"\n";
        let p = policy(rego, "data.envoy.authz.allow").unwrap();
        assert_eq!(p.engine_kind(), EngineKind::Vm);
        // A rule's query override becomes one more entry point of the program.
        assert!(p.check_query("data.envoy.authz.nope").is_err());
        p.check_query("data.envoy.authz.admin").unwrap();
        assert_eq!(p.engine_kind(), EngineKind::Vm);
        let input = Value::from_json_str(r#"{"method":"GET","user":"root"}"#).unwrap();
        assert_eq!(
            p.eval("data.envoy.authz.allow", input.clone()),
            Ok(Value::from(true))
        );
        assert_eq!(
            p.eval("data.envoy.authz.admin", input),
            Ok(Value::from(true))
        );
        let input = Value::from_json_str(r#"{"method":"PUT"}"#).unwrap();
        assert_eq!(
            p.eval("data.envoy.authz.allow", input.clone()),
            Ok(Value::from(false))
        );
        assert_eq!(
            p.eval("data.envoy.authz.admin", input),
            Ok(Value::Undefined)
        );
        // The extension builtins are the interpreter's.
        let p = policy(
            "package x\nallow if io.jwt.decode(input.token)[1].sub == \"alice\"\n",
            "data.x.allow",
        )
        .unwrap();
        assert_eq!(p.engine_kind(), EngineKind::Interpreter);
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.Af8";
        let input = Value::from_json_str(&format!(r#"{{"token":"{token}"}}"#)).unwrap();
        assert_eq!(p.eval("data.x.allow", input), Ok(Value::from(true)));
    }

    #[test]
    fn the_rvm_and_the_interpreter_agree_on_data_lookups_and_conflicts() {
        let rego = "package r\ndefault allow := false\nallow if {\n some rule in data.rules\n input.headers[rule.header] == rule.value\n input.method in rule.methods\n startswith(input.path, rule.prefix)\n}\nconflict := true if input.method == \"GET\"\nconflict := false if input.path == \"/\"\n";
        let raw = RawPolicy {
            modules: vec![RawModule {
                name: "r.rego".into(),
                rego: rego.into(),
            }],
            data: Some(serde_json::json!({"rules": [
                {"header": "x-role", "value": "a", "methods": ["GET"], "prefix": "/a/"},
                {"header": "x-role", "value": "b", "methods": ["POST"], "prefix": "/"}
            ]})),
            query: "data.r.allow".into(),
        };
        let p = Policy::compile(&raw, &limits()).unwrap();
        assert_eq!(p.engine_kind(), EngineKind::Vm);
        let mut engine = p.engine.borrow().clone();
        for (json, want) in [
            (
                r#"{"headers":{"x-role":"a"},"method":"GET","path":"/a/x"}"#,
                true,
            ),
            (
                r#"{"headers":{"x-role":"a"},"method":"GET","path":"/b"}"#,
                false,
            ),
            (
                r#"{"headers":{"x-role":"b"},"method":"POST","path":"/z"}"#,
                true,
            ),
            (r#"{"headers":{},"method":"POST","path":"/z"}"#, false),
            (r#"{"method":1}"#, false),
        ] {
            let input = Value::from_json_str(json).unwrap();
            engine.set_input(input.clone());
            let interpreted = engine.eval_rule("data.r.allow".into()).unwrap();
            assert_eq!(interpreted, Value::from(want), "{json}");
            assert_eq!(p.eval("data.r.allow", input), Ok(interpreted), "{json}");
        }
        // Two `conflict` bodies with different values: the interpreter decides (an error).
        p.check_query("data.r.conflict").unwrap();
        assert_eq!(p.engine_kind(), EngineKind::Interpreter);
        let input = Value::from_json_str(r#"{"method":"GET","path":"/"}"#).unwrap();
        assert!(matches!(
            p.eval("data.r.conflict", input),
            Err(EvalError::Failed(_))
        ));
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
    fn regex_constructs_this_build_cannot_compile_are_refused_naming_the_line() {
        let refused = |rego: &str| policy(rego, "data.x.allow").unwrap_err();
        let e = refused("package x\n\nallow if {\n  regex.match(`^v\\d+$`, input.v)\n}\n");
        assert_eq!(e.field, "modules[0].rego");
        assert!(
            e.reason.starts_with("authz.rego:4: `\\d` in a string") && e.reason.contains("`[0-9]`"),
            "{}",
            e.reason
        );
        // In a quoted string the pattern's backslash is written `\\`.
        let e = refused("package x\np := \"^\\\\w+$\"\nallow if regex.match(p, input.v)\n");
        assert!(e.reason.starts_with("authz.rego:2: `\\w`"), "{}", e.reason);
        let e = refused("package x\nallow if regex.match(`(?i)^get$`, input.m)\n");
        assert!(e.reason.contains("`(?i)`"), "{}", e.reason);
        let e = refused("package x\nallow if regex.match(`(?mi:a)`, input.m)\n");
        assert!(e.reason.contains("`(?i)`"), "{}", e.reason);
        for class in [
            "\\s",
            "\\S",
            "\\D",
            "\\W",
            "\\b",
            "\\B",
            "\\pL",
            "\\p{Greek}",
            "\\P{L}",
        ] {
            let e = refused(&format!(
                "package x\nallow if regex.match(`a{class}`, input.m)\n"
            ));
            assert!(e.reason.contains("in a string"), "{class}: {}", e.reason);
        }
        // What the regex crate compiles without tables, and what is not a regex, loads.
        for ok in [
            "package x\nallow if regex.match(`^[0-9]+(?m:$)\\.\\x{e9}(?-i:a)(?P<id>x)`, input.v)\n",
            "package x\n# regex.match(`\\d`) in a comment\nallow if input.v == \"\\n\\t\\\"\"\n",
            "package x\nallow if startswith(`\\d`, input.v)\n",
        ] {
            assert!(policy(ok, "data.x.allow").is_ok(), "{ok}");
        }
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
        assert_eq!(p.engine_kind(), EngineKind::Vm);
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

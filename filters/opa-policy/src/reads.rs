//! Which parts of the input document a compiled policy can read, from its RVM program: a
//! flow-insensitive pass over the registers that hold parts of `input`. A literal index
//! (`input.attributes.request`, `x["host"]`) narrows the part a register holds; any other
//! use of such a register (a comparison, a builtin or function argument, a dynamic index,
//! iteration, a move, a rule's value, a collection built from it...) reads the part whole,
//! and everything under it is built. Conservative by construction: what the pass does not
//! model reads whole, and a register number stands for that register in every rule's frame.

use crate::input::Needs;
use regorus::rvm::instructions::LiteralOrRegister;
use regorus::rvm::program::Program;
use regorus::rvm::Instruction;
use regorus::Value;
use std::collections::BTreeSet;

/// A part of the document: its keys from the root.
type Path = Vec<String>;

/// Paths longer than this are cut here (and read whole): the parts gated by [`Needs`] are at
/// most four keys deep.
const MAX_DEPTH: usize = 5;

#[derive(Default)]
struct Reads {
    /// What each register may hold (parts of `input`).
    regs: Vec<BTreeSet<Path>>,
    /// Parts looked at by a literal index (their value, not necessarily all of it).
    touched: BTreeSet<Path>,
    /// Parts read whole.
    whole: BTreeSet<Path>,
}

impl Reads {
    fn holds(&self, r: u8) -> BTreeSet<Path> {
        self.regs.get(usize::from(r)).cloned().unwrap_or_default()
    }

    /// Register `r` is used otherwise than by a literal index: what it holds is read whole.
    fn use_whole(&mut self, r: u8) -> bool {
        let mut changed = false;
        for p in self.holds(r) {
            changed |= self.whole.insert(p);
        }
        changed
    }

    fn put(&mut self, r: u8, p: Path) -> bool {
        if p.len() > MAX_DEPTH {
            let mut cut = p;
            cut.truncate(MAX_DEPTH);
            return self.whole.insert(cut);
        }
        let changed = self.touched.insert(p.clone());
        match self.regs.get_mut(usize::from(r)) {
            Some(set) => set.insert(p) | changed,
            None => changed,
        }
    }

    /// `dest ← container[key]` for a literal `key`.
    fn index(&mut self, dest: u8, container: u8, key: Option<&Value>) -> bool {
        let mut changed = false;
        for p in self.holds(container) {
            match key {
                Some(Value::String(k)) => {
                    let mut q = p;
                    q.push(k.to_string());
                    changed |= self.put(dest, q);
                }
                // A number or other literal as a key: not a document key; read whole.
                _ => changed |= self.whole.insert(p),
            }
        }
        changed
    }
}

/// What the program can read of `input`, as [`Needs`].
pub fn needs(program: &Program) -> Needs {
    let mut r = Reads {
        regs: vec![BTreeSet::new(); 256],
        ..Reads::default()
    };
    let result_regs: Vec<u8> = program
        .instructions
        .iter()
        .filter_map(|i| match i {
            Instruction::RuleInit { result_reg, .. } => Some(*result_reg),
            _ => None,
        })
        .collect();
    let data = &program.instruction_data;
    // Until nothing changes (each pass only adds; paths are bounded).
    for _ in 0..64 {
        let mut changed = false;
        for i in &program.instructions {
            changed |= step(&mut r, program, data, i);
        }
        for &reg in &result_regs {
            changed |= r.use_whole(reg);
        }
        if !changed {
            return from_reads(&r);
        }
    }
    Needs::ALL
}

fn step(
    r: &mut Reads,
    program: &Program,
    data: &regorus::rvm::instructions::InstructionData,
    i: &Instruction,
) -> bool {
    use Instruction::*;
    let mut c = false;
    let whole = |r: &mut Reads, regs: &[u8]| regs.iter().fold(false, |c, &x| r.use_whole(x) | c);
    let args = |args: &[u8; 8], n: u8| -> Vec<u8> {
        args.get(..usize::from(n))
            .map_or_else(|| args.to_vec(), <[u8]>::to_vec)
    };
    match i {
        LoadInput { dest } => c |= r.put(*dest, Vec::new()),
        IndexLiteral {
            dest,
            container,
            literal_idx,
        } => {
            c |= r.index(
                *dest,
                *container,
                program.literals.get(usize::from(*literal_idx)),
            );
        }
        ChainedIndex { params_index } => {
            match data.chained_index_params.get(usize::from(*params_index)) {
                Some(p) => {
                    let mut at: BTreeSet<Path> = r.holds(p.root);
                    let mut dynamic = false;
                    for comp in &p.path_components {
                        match comp {
                            LiteralOrRegister::Literal(idx) => {
                                let key = program.literals.get(usize::from(*idx));
                                let mut next = BTreeSet::new();
                                for q in at {
                                    match key {
                                        Some(Value::String(k)) => {
                                            let mut q = q;
                                            q.push(k.to_string());
                                            if q.len() > MAX_DEPTH {
                                                q.truncate(MAX_DEPTH);
                                                c |= r.whole.insert(q);
                                            } else {
                                                c |= r.touched.insert(q.clone());
                                                next.insert(q);
                                            }
                                        }
                                        _ => c |= r.whole.insert(q),
                                    }
                                }
                                at = next;
                            }
                            LiteralOrRegister::Register(k) => {
                                c |= whole(r, &[*k]);
                                for q in std::mem::take(&mut at) {
                                    c |= r.whole.insert(q);
                                }
                                dynamic = true;
                            }
                        }
                    }
                    if !dynamic {
                        for q in at {
                            c |= r.put(p.dest, q);
                        }
                    }
                }
                // Unknown parameters: the root is read whole.
                None => c |= whole_all(r),
            }
        }
        Load { .. }
        | LoadTrue { .. }
        | LoadFalse { .. }
        | LoadNull { .. }
        | LoadBool { .. }
        | LoadData { .. }
        | LoadContext { .. }
        | LoadMetadata { .. }
        | ArrayNew { .. }
        | SetNew { .. }
        | CallRule { .. }
        | RuleInit { .. }
        | LoopNext { .. }
        | DestructuringSuccess {}
        | RuleReturn {}
        | Halt {}
        | ComprehensionEnd {} => {}
        Move { src, .. } => c |= whole(r, &[*src]),
        Add { left, right, .. }
        | Sub { left, right, .. }
        | Mul { left, right, .. }
        | Div { left, right, .. }
        | Mod { left, right, .. }
        | Eq { left, right, .. }
        | Ne { left, right, .. }
        | Lt { left, right, .. }
        | Le { left, right, .. }
        | Gt { left, right, .. }
        | Ge { left, right, .. }
        | And { left, right, .. }
        | Or { left, right, .. }
        | AssertEq { left, right }
        | PolicyCondition { left, right, .. } => c |= whole(r, &[*left, *right]),
        Not { operand, .. } => c |= whole(r, &[*operand]),
        HostAwait { arg, id, .. } => c |= whole(r, &[*arg, *id]),
        Return { value } => c |= whole(r, &[*value]),
        ObjectSet { obj, key, value } => c |= whole(r, &[*obj, *key, *value]),
        Index { container, key, .. } => c |= whole(r, &[*container, *key]),
        ArrayPush { arr, value } | ArrayPushDefined { arr, value } => {
            c |= whole(r, &[*arr, *value]);
        }
        SetAdd { set, value } => c |= whole(r, &[*set, *value]),
        Contains {
            collection, value, ..
        } => c |= whole(r, &[*collection, *value]),
        Count { collection, .. } => c |= whole(r, &[*collection]),
        Guard { register, .. } | CoalesceUndefinedToNull { register } => {
            c |= whole(r, &[*register]);
        }
        ReturnUndefinedIfNotTrue { condition } => c |= whole(r, &[*condition]),
        ComprehensionYield { value_reg, key_reg } => {
            c |= whole(r, &[*value_reg]);
            if let Some(k) = key_reg {
                c |= whole(r, &[*k]);
            }
        }
        LogicalBlockStart { result, .. } | LogicalBlockEnd { result, .. } => {
            c |= whole(r, &[*result]);
        }
        AllOfNext { check, result, .. } | AnyOfNext { check, result, .. } => {
            c |= whole(r, &[*check, *result]);
        }
        BuiltinCall { params_index } => {
            match data.builtin_call_params.get(usize::from(*params_index)) {
                Some(p) => c |= whole(r, &args(&p.args, p.num_args)),
                None => c |= whole_all(r),
            }
        }
        FunctionCall { params_index } => {
            match data.function_call_params.get(usize::from(*params_index)) {
                Some(p) => c |= whole(r, &args(&p.args, p.num_args)),
                None => c |= whole_all(r),
            }
        }
        ObjectCreate { params_index } => {
            match data.object_create_params.get(usize::from(*params_index)) {
                Some(p) => {
                    for (_, v) in &p.literal_key_fields {
                        c |= whole(r, &[*v]);
                    }
                    for (k, v) in &p.fields {
                        c |= whole(r, &[*k, *v]);
                    }
                }
                None => c |= whole_all(r),
            }
        }
        ArrayCreate { params_index } => {
            match data.array_create_params.get(usize::from(*params_index)) {
                Some(p) => c |= whole(r, &p.elements),
                None => c |= whole_all(r),
            }
        }
        SetCreate { params_index } => {
            match data.set_create_params.get(usize::from(*params_index)) {
                Some(p) => c |= whole(r, &p.elements),
                None => c |= whole_all(r),
            }
        }
        LoopStart { params_index } => match data.loop_params.get(usize::from(*params_index)) {
            Some(p) => c |= whole(r, &[p.collection]),
            None => c |= whole_all(r),
        },
        ComprehensionBegin { params_index } => {
            match data
                .comprehension_begin_params
                .get(usize::from(*params_index))
            {
                Some(p) => c |= whole(r, &[p.collection_reg]),
                None => c |= whole_all(r),
            }
        }
        VirtualDataDocumentLookup { params_index } => {
            match data
                .virtual_data_document_lookup_params
                .get(usize::from(*params_index))
            {
                Some(p) => {
                    for comp in &p.path_components {
                        if let LiteralOrRegister::Register(k) = comp {
                            c |= whole(r, &[*k]);
                        }
                    }
                }
                None => c |= whole_all(r),
            }
        }
        // An instruction this pass does not know (a newer regorus): the whole document.
        #[allow(unreachable_patterns)]
        _ => c |= whole_all(r),
    }
    c
}

/// Everything is read: the root whole.
fn whole_all(r: &mut Reads) -> bool {
    r.whole.insert(Vec::new())
}

fn from_reads(r: &Reads) -> Needs {
    // A part is needed when something reads it or inside it, or reads one of its ancestors
    // whole.
    let needed = |part: &[&str]| {
        let within = |p: &Path| p.len() >= part.len() && p.iter().zip(part).all(|(a, b)| a == b);
        let above = |p: &Path| p.len() <= part.len() && p.iter().zip(part).all(|(a, b)| a == b);
        r.whole.iter().any(|p| within(p) || above(p)) || r.touched.iter().any(within)
    };
    let http = |k: &'static str| ["attributes", "request", "http", k];
    Needs {
        source: needed(&["attributes", "source"]),
        destination: needed(&["attributes", "destination"]),
        id: needed(&http("id")),
        protocol: needed(&http("protocol")),
        headers: needed(&http("headers")),
        host: needed(&http("host")),
        method: needed(&http("method")),
        path: needed(&http("path")),
        scheme: needed(&http("scheme")),
        parsed_path: needed(&["parsed_path"]),
        parsed_query: needed(&["parsed_query"]),
        parsed_body: needed(&["parsed_body"]),
        truncated_body: needed(&["truncated_body"]),
        version: needed(&["version"]),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{RawModule, RawPolicy};
    use crate::evaluate::{EngineKind, Limits, Policy};
    use crate::input::{Needs, RequestFacts};
    use std::time::Duration;

    fn policy(rego: &str, data: serde_json::Value) -> Policy {
        policy_for(rego, data, "data.p.allow")
    }

    fn policy_for(rego: &str, data: serde_json::Value, query: &str) -> Policy {
        let raw = RawPolicy {
            modules: vec![RawModule {
                name: "p.rego".into(),
                rego: rego.into(),
            }],
            data: Some(data),
            query: query.into(),
        };
        let limits = Limits {
            eval_timeout: Duration::from_secs(1),
            max_input_bytes: 1 << 16,
            max_eval_memory_bytes: 1 << 24,
        };
        let p = Policy::compile(&raw, &limits).unwrap();
        assert_eq!(p.engine_kind(), EngineKind::Vm, "{rego}");
        p
    }

    /// Every request gives the same decision with the document built for the policy's
    /// needs as with the whole document.
    fn same_decisions(p: &Policy, query: &str) {
        let requests: [&[(&[u8], &[u8])]; 4] = [
            &[
                (b":method", b"GET"),
                (b":path", b"/svc0/a?x=1"),
                (b":authority", b"h"),
                (b"x-role", b"role-0"),
            ],
            &[
                (b":method", b"POST"),
                (b":path", b"/"),
                (b":scheme", b"https"),
                (b"x-k", b"POST"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/p"),
                (b"x-role", b"nope"),
            ],
            &[],
        ];
        let mut allowed = 0;
        for headers in requests {
            let f = RequestFacts {
                headers: headers.to_vec(),
                source_address: Some(b"10.0.0.1:5000".to_vec()),
                destination_address: Some(b"10.0.0.2:80".to_vec()),
                request_id: Some(b"id-1".to_vec()),
                protocol: Some(b"HTTP/1.1".to_vec()),
                body: None,
            };
            let part = f.to_input_for(1 << 16, p.needs()).unwrap();
            let whole = f.to_input(1 << 16).unwrap();
            let a = p.eval(query, part);
            assert_eq!(a, p.eval(query, whole), "{headers:?}");
            allowed += usize::from(a == Ok(regorus::Value::from(true)));
        }
        assert!(allowed > 0, "{p:?}: some request must be allowed");
    }

    #[test]
    fn the_bench_policy_reads_headers_method_and_path() {
        let config: serde_json::Value =
            serde_json::from_str(include_str!("../examples/rbac-10.json")).unwrap();
        let raw = &config["policies"]["rbac"];
        let query = raw["query"].as_str().unwrap();
        let p = policy_for(
            raw["modules"][0]["rego"].as_str().unwrap(),
            raw["data"].clone(),
            query,
        );
        let n = p.needs();
        assert!(n.headers && n.method && n.path, "{n:?}");
        assert_eq!(
            Needs {
                headers: false,
                method: false,
                path: false,
                ..n
            },
            Needs {
                source: false,
                destination: false,
                id: false,
                protocol: false,
                headers: false,
                host: false,
                method: false,
                path: false,
                scheme: false,
                parsed_path: false,
                parsed_query: false,
                parsed_body: false,
                truncated_body: false,
                version: false,
            }
        );
        same_decisions(&p, query);
    }

    #[test]
    fn parts_reached_without_their_names_are_built() {
        // Each policy reaches a part it never names (a key from data, iteration, a rule's
        // value, a builtin on an ancestor); the word scan would leave the part out.
        let cases = [
            // A key of `http` from data.
            ("package p\nallow if input.attributes.request.http[data.k] == \"GET\"\n", serde_json::json!({"k": "method"})),
            // Iterating `attributes`: `source` is one of its values.
            ("package p\nallow if {\n some k\n input.attributes[k].address.socketAddress.address == \"10.0.0.1\"\n}\n", serde_json::json!({})),
            // `http` as a rule's value, then a key from data.
            ("package p\nhttp := input.attributes.request.http\nallow if http[data.k] == \"h\"\n", serde_json::json!({"k": "host"})),
            // A builtin on an ancestor.
            ("package p\nallow if object.get(input.attributes.request, [\"http\", data.k], \"\") == \"https\"\n", serde_json::json!({"k": "scheme"})),
            ("package p\nallow if count(input.attributes.request.http) == 7\n", serde_json::json!({})),
            // A header by a literal name through an import alias.
            ("package p\nimport input.attributes.request.http as req\nallow if req.headers[\"x-k\"] == req.method\n", serde_json::json!({})),
            // The whole document.
            ("package p\nallow if json.marshal(input) != \"\"\n", serde_json::json!({})),
        ];
        for (rego, data) in &cases {
            let p = policy(rego, data.clone());
            same_decisions(&p, "data.p.allow");
        }
        let p = policy(cases[1].0, cases[1].1.clone());
        assert!(p.needs().source && p.needs().destination);
        assert!(!Needs::of([cases[1].0]).source, "the word scan misses it");
        let p = policy(cases[6].0, cases[6].1.clone());
        assert_eq!(p.needs(), Needs::ALL);
    }
}

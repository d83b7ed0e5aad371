//! Which parts of the input document a compiled policy can read, from its RVM program: a
//! flow-insensitive pass over the registers that hold parts of `input`. A literal index
//! (`input.attributes.request`, `x["host"]`) narrows the part a register holds; any other
//! use of such a register (a comparison, a builtin or function argument, a dynamic index,
//! iteration, a move, a rule's value, a collection built from it...) reads the part whole,
//! and everything under it is built. Conservative by construction: what the pass does not
//! model reads whole, and a register number stands for that register in every rule's frame.
//!
//! Headers: a lookup `headers[k]` with a key register `k` that can only hold values taken
//! from the policy's `data` (`some rule in data.rules; req.headers[rule.header]`) reads the
//! headers of those names only, and so does a literal `headers["x-role"]`: the document then
//! carries only those headers ([`Needs::header_names`]). What a key register may hold is a
//! second flow-insensitive pass ([`DataRegs`]): every write to it must be a load of `data`,
//! a literal index, an all-literal chained index, a move or a loop over such a value;
//! any other write makes it unknown, and the lookup reads `headers` whole. Registers are
//! told apart per frame (a rule's bodies run in their own register window): the pass
//! gives up (everything unknown) on a program whose frames it cannot draw (functions, whose
//! arguments reach registers no instruction names; a jump out of a rule's code).

use crate::input::Needs;
use regorus::rvm::instructions::LiteralOrRegister;
use regorus::rvm::program::Program;
use regorus::rvm::Instruction;
use regorus::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A part of the document: its keys from the root.
type Path = Vec<String>;

/// Paths longer than this are cut here (and read whole): the parts gated by [`Needs`] are at
/// most four keys deep.
const MAX_DEPTH: usize = 5;

/// `attributes.request.http.headers`.
const HEADERS: [&str; 4] = ["attributes", "request", "http", "headers"];

/// At most this many header names are kept apart; more read `headers` whole.
const MAX_HEADER_NAMES: usize = 64;

#[derive(Default)]
struct Reads {
    /// The values each register may hold, when they all come from `data`.
    data: DataRegs,
    /// What each register may hold (parts of `input`), per frame (see [`DataRegs`]; one
    /// frame for every rule when the frames could not be drawn).
    regs: BTreeMap<(usize, u8), BTreeSet<Path>>,
    /// Parts looked at by a literal index (their value, not necessarily all of it).
    touched: BTreeSet<Path>,
    /// Parts read whole.
    whole: BTreeSet<Path>,
}

impl Reads {
    fn key(&self, r: u8) -> (usize, u8) {
        (self.data.frame_key(), r)
    }

    fn holds(&self, r: u8) -> BTreeSet<Path> {
        self.regs.get(&self.key(r)).cloned().unwrap_or_default()
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
        let key = self.key(r);
        self.regs.entry(key).or_default().insert(p) | changed
    }

    /// `container[k]` where `container` holds only `headers` and `k` only strings from
    /// data: the headers of those names (`None`: not such a lookup, or `k` unknown).
    fn header_keys(&self, container: &BTreeSet<Path>, k: u8) -> Option<BTreeSet<Path>> {
        let headers: Path = HEADERS.iter().map(|s| (*s).to_string()).collect();
        if container.is_empty() || container.iter().any(|p| *p != headers) {
            return None;
        }
        let names = self.data.strings(k)?;
        Some(
            names
                .into_iter()
                .map(|n| {
                    let mut q = headers.clone();
                    q.push(n);
                    q
                })
                .collect(),
        )
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

/// What the program can read of `input`, as [`Needs`]; `data` is the document it runs with.
pub fn needs(program: &Program, data: &Value) -> Needs {
    let mut r = Reads {
        data: DataRegs::of(program, data),
        ..Reads::default()
    };
    // Each rule's value (its result register, in its frame) goes to its caller: read whole.
    let mut result_regs: Vec<(usize, u8)> = program
        .instructions
        .iter()
        .enumerate()
        .filter_map(|(pc, i)| match i {
            Instruction::RuleInit { result_reg, .. } => Some((pc, *result_reg)),
            _ => None,
        })
        .map(|(pc, reg)| {
            r.data.at(pc);
            (r.data.frame, reg)
        })
        .collect();
    result_regs.extend(
        program
            .rule_infos
            .iter()
            .enumerate()
            .map(|(i, info)| (i, info.result_reg)),
    );
    let data = &program.instruction_data;
    // Until nothing changes (each pass only adds; paths are bounded).
    for _ in 0..64 {
        let mut changed = false;
        for (pc, i) in program.instructions.iter().enumerate() {
            r.data.at(pc);
            changed |= step(&mut r, program, data, i);
        }
        for &(frame, reg) in &result_regs {
            r.data.frame = frame;
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
                                // `headers[k]` with `k` from data: those headers only.
                                if let Some(next) = r.header_keys(&at, *k) {
                                    for q in &next {
                                        c |= r.touched.insert(q.clone());
                                    }
                                    at = next;
                                    continue;
                                }
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
        Index {
            dest,
            container,
            key,
        } => {
            c |= whole(r, &[*key]);
            match r.header_keys(&r.holds(*container), *key) {
                Some(at) => {
                    for q in at {
                        c |= r.put(*dest, q);
                    }
                }
                None => c |= whole(r, &[*container]),
            }
        }
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
    // `headers` or an ancestor read whole: every header; else the names looked up.
    let prefix_of_headers =
        |p: &Path| p.len() <= HEADERS.len() && p.iter().zip(HEADERS).all(|(a, b)| a == b);
    let header_names = if r.whole.iter().any(prefix_of_headers) {
        None
    } else {
        let names: BTreeSet<&[u8]> = r
            .whole
            .iter()
            .chain(&r.touched)
            .filter(|p| p.len() > HEADERS.len() && p.iter().zip(HEADERS).all(|(a, b)| a == b))
            .filter_map(|p| p.get(HEADERS.len()).map(|n| n.as_bytes()))
            .collect();
        (names.len() <= MAX_HEADER_NAMES).then(|| {
            names
                .into_iter()
                .map(Box::from)
                .collect::<Arc<[Box<[u8]>]>>()
        })
    };
    Needs {
        source: needed(&["attributes", "source"]),
        destination: needed(&["attributes", "destination"]),
        id: needed(&http("id")),
        protocol: needed(&http("protocol")),
        headers: needed(&http("headers")),
        header_names,
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

/// One step of a path into `data`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// A literal key (or array index).
    Key(Value),
    /// Any element (array, set) or value (object): a loop's value.
    Any,
    /// Any key (object) or index (array): a loop's key.
    AnyKey,
}

/// What a register may hold: values at these paths of `data`, or anything.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Data(BTreeSet<Vec<Step>>),
    Unknown,
}

/// Paths into data longer than this, or more of them per register, make it unknown.
const MAX_DATA_DEPTH: usize = 8;
const MAX_DATA_PATHS: usize = 16;
/// Values visited resolving a register against `data`, at most.
const MAX_DATA_VALUES: usize = 4096;

/// The frame of the code outside every rule (the entry points').
const MAIN: usize = usize::MAX;

/// Per frame and register, what it may hold when every write to it takes a value from
/// `data`.
struct DataRegs {
    /// Absent: never written in that frame (holds nothing a lookup could use).
    held: BTreeMap<(usize, u8), Held>,
    /// The frame of each instruction (the index of the rule whose code it is, or [`MAIN`]).
    frames: Vec<usize>,
    /// The frame of the instruction being looked at.
    frame: usize,
    /// The frames could not be drawn, or an instruction's writes are not known.
    unknown: bool,
    data: Value,
}

impl Default for DataRegs {
    fn default() -> Self {
        DataRegs {
            held: BTreeMap::new(),
            frames: Vec::new(),
            frame: MAIN,
            unknown: true,
            data: Value::Undefined,
        }
    }
}

/// The frame of each instruction: a rule's bodies run from their entry to their
/// `RuleReturn` in the rule's register window; the rest is [`MAIN`]'s. `None` when that
/// does not describe the program: a function or destructuring block, a body that runs off
/// the end or into another rule's code, a jump into another frame.
fn frames(program: &Program) -> Option<Vec<usize>> {
    use Instruction::*;
    let n = program.instructions.len();
    let mut frame = vec![MAIN; n];
    for (rule, info) in program.rule_infos.iter().enumerate() {
        if info.function_info.is_some() || info.destructuring_blocks.iter().any(Option::is_some) {
            return None;
        }
        for &start in info.definitions.iter().flatten() {
            let mut pc = usize::try_from(start).ok()?;
            loop {
                let slot = frame.get_mut(pc)?;
                if *slot != MAIN && *slot != rule {
                    return None;
                }
                *slot = rule;
                if matches!(program.instructions.get(pc)?, RuleReturn {}) {
                    break;
                }
                pc += 1;
            }
        }
    }
    let params = &program.instruction_data;
    for (pc, i) in program.instructions.iter().enumerate() {
        let targets: Vec<u16> = match i {
            LoopStart { params_index } => {
                let p = params.loop_params.get(usize::from(*params_index))?;
                vec![p.body_start, p.loop_end]
            }
            LoopNext {
                body_start,
                loop_end,
            } => vec![*body_start, *loop_end],
            ComprehensionBegin { params_index } => {
                let p = params
                    .comprehension_begin_params
                    .get(usize::from(*params_index))?;
                vec![p.body_start, p.comprehension_end]
            }
            LogicalBlockStart { end_pc, .. }
            | AllOfNext { end_pc, .. }
            | AnyOfNext { end_pc, .. } => vec![*end_pc],
            _ => Vec::new(),
        };
        let here = frame.get(pc)?;
        if targets
            .iter()
            .any(|&t| frame.get(usize::from(t)) != Some(here))
        {
            return None;
        }
    }
    Some(frame)
}

impl DataRegs {
    fn of(program: &Program, data: &Value) -> DataRegs {
        let Some(frames) = frames(program) else {
            return DataRegs::default();
        };
        let mut d = DataRegs {
            frames,
            unknown: false,
            data: data.clone(),
            ..DataRegs::default()
        };
        let params = &program.instruction_data;
        for _ in 0..64 {
            let mut changed = false;
            for (pc, i) in program.instructions.iter().enumerate() {
                d.at(pc);
                match d.step(program, params, i) {
                    Some(c) => changed |= c,
                    // An instruction whose writes are not all known: nothing is known.
                    None => return DataRegs::default(),
                }
            }
            if !changed {
                return d;
            }
        }
        DataRegs::default()
    }

    /// Looks at the instruction at `pc` (its frame's registers).
    fn at(&mut self, pc: usize) {
        self.frame = self.frames.get(pc).copied().unwrap_or(MAIN);
    }

    /// The frame registers of the current instruction are kept under: its own, or one for
    /// all when the frames could not be drawn.
    fn frame_key(&self) -> usize {
        if self.frames.is_empty() {
            MAIN
        } else {
            self.frame
        }
    }

    fn get(&self, r: u8) -> Option<&Held> {
        if self.unknown {
            return Some(&Held::Unknown);
        }
        self.held.get(&(self.frame, r))
    }

    /// `r` may also hold `what`.
    fn add(&mut self, r: u8, what: Held) -> bool {
        let old = self.held.get(&(self.frame, r));
        let new = match (old, what) {
            (None, w) => w,
            (Some(Held::Unknown), _) | (_, Held::Unknown) => Held::Unknown,
            (Some(Held::Data(a)), Held::Data(b)) => {
                Held::Data(a.iter().cloned().chain(b).collect())
            }
        };
        let new = match new {
            Held::Data(a)
                if a.len() > MAX_DATA_PATHS || a.iter().any(|p| p.len() > MAX_DATA_DEPTH) =>
            {
                Held::Unknown
            }
            n => n,
        };
        if old == Some(&new) {
            return false;
        }
        self.held.insert((self.frame, r), new);
        true
    }

    fn unknown(&mut self, regs: &[u8]) -> bool {
        regs.iter()
            .fold(false, |c, &r| self.add(r, Held::Unknown) | c)
    }

    /// `dest ← src` followed by `steps`.
    fn derive(&mut self, dest: u8, src: u8, steps: &[Step]) -> bool {
        let what = match self.get(src) {
            None => Held::Data(BTreeSet::new()),
            Some(Held::Unknown) => Held::Unknown,
            Some(Held::Data(paths)) => Held::Data(
                paths
                    .iter()
                    .map(|p| p.iter().chain(steps).cloned().collect())
                    .collect(),
            ),
        };
        self.add(dest, what)
    }

    /// The writes of `i`; `None` when they are not all known.
    fn step(
        &mut self,
        program: &Program,
        params: &regorus::rvm::instructions::InstructionData,
        i: &Instruction,
    ) -> Option<bool> {
        use Instruction::*;
        Some(match i {
            LoadData { dest } => self.add(*dest, Held::Data([Vec::new()].into())),
            IndexLiteral {
                dest,
                container,
                literal_idx,
            } => match program.literals.get(usize::from(*literal_idx)) {
                Some(key) => self.derive(*dest, *container, &[Step::Key(key.clone())]),
                None => self.unknown(&[*dest]),
            },
            ChainedIndex { params_index } => {
                let p = params
                    .chained_index_params
                    .get(usize::from(*params_index))?;
                let steps: Option<Vec<Step>> = p
                    .path_components
                    .iter()
                    .map(|c| match c {
                        LiteralOrRegister::Literal(idx) => program
                            .literals
                            .get(usize::from(*idx))
                            .cloned()
                            .map(Step::Key),
                        LiteralOrRegister::Register(_) => None,
                    })
                    .collect();
                match steps {
                    Some(steps) => self.derive(p.dest, p.root, &steps),
                    None => self.unknown(&[p.dest]),
                }
            }
            Move { dest, src } => self.derive(*dest, *src, &[]),
            LoopStart { params_index } => {
                let p = params.loop_params.get(usize::from(*params_index))?;
                self.derive(p.value_reg, p.collection, &[Step::Any])
                    | self.derive(p.key_reg, p.collection, &[Step::AnyKey])
                    | self.unknown(&[p.result_reg])
            }
            Load { dest, .. }
            | LoadTrue { dest }
            | LoadFalse { dest }
            | LoadNull { dest }
            | LoadBool { dest, .. }
            | LoadInput { dest }
            | LoadContext { dest }
            | LoadMetadata { dest }
            | Add { dest, .. }
            | Sub { dest, .. }
            | Mul { dest, .. }
            | Div { dest, .. }
            | Mod { dest, .. }
            | Eq { dest, .. }
            | Ne { dest, .. }
            | Lt { dest, .. }
            | Le { dest, .. }
            | Gt { dest, .. }
            | Ge { dest, .. }
            | And { dest, .. }
            | Or { dest, .. }
            | Not { dest, .. }
            | Index { dest, .. }
            | ArrayNew { dest }
            | SetNew { dest }
            | Contains { dest, .. }
            | Count { dest, .. }
            | CallRule { dest, .. }
            | HostAwait { dest, .. }
            | PolicyCondition { dest, .. } => self.unknown(&[*dest]),
            RuleInit { result_reg, .. } => self.unknown(&[*result_reg]),
            ObjectSet { obj, .. } => self.unknown(&[*obj]),
            ArrayPush { arr, .. } | ArrayPushDefined { arr, .. } => self.unknown(&[*arr]),
            SetAdd { set, .. } => self.unknown(&[*set]),
            CoalesceUndefinedToNull { register } => self.unknown(&[*register]),
            LogicalBlockStart { result, .. }
            | LogicalBlockEnd { result, .. }
            | AllOfNext { result, .. }
            | AnyOfNext { result, .. } => self.unknown(&[*result]),
            BuiltinCall { params_index } => {
                let p = params.builtin_call_params.get(usize::from(*params_index))?;
                self.unknown(&[p.dest])
            }
            ObjectCreate { params_index } => {
                let p = params
                    .object_create_params
                    .get(usize::from(*params_index))?;
                self.unknown(&[p.dest])
            }
            ArrayCreate { params_index } => {
                let p = params.array_create_params.get(usize::from(*params_index))?;
                self.unknown(&[p.dest])
            }
            SetCreate { params_index } => {
                let p = params.set_create_params.get(usize::from(*params_index))?;
                self.unknown(&[p.dest])
            }
            VirtualDataDocumentLookup { params_index } => {
                let p = params
                    .virtual_data_document_lookup_params
                    .get(usize::from(*params_index))?;
                self.unknown(&[p.dest])
            }
            ComprehensionBegin { params_index } => {
                let p = params
                    .comprehension_begin_params
                    .get(usize::from(*params_index))?;
                self.unknown(&[p.result_reg, p.key_reg, p.value_reg])
            }
            Return { .. }
            | Guard { .. }
            | AssertEq { .. }
            | ReturnUndefinedIfNotTrue { .. }
            | LoopNext { .. }
            | DestructuringSuccess {}
            | RuleReturn {}
            | Halt {}
            | ComprehensionYield { .. }
            | ComprehensionEnd {} => false,
            // A function call fills the callee's argument registers, which no instruction
            // names; an instruction this pass does not know (a newer regorus) may write
            // anywhere.
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }

    /// Every string register `r` may hold (`None`: unknown, or too many values).
    fn strings(&self, r: u8) -> Option<BTreeSet<String>> {
        let paths = match self.get(r) {
            None => return Some(BTreeSet::new()),
            Some(Held::Unknown) => return None,
            Some(Held::Data(paths)) => paths,
        };
        let mut out = BTreeSet::new();
        let mut budget = MAX_DATA_VALUES;
        for p in paths {
            let mut at: Vec<Value> = vec![self.data.clone()];
            for step in p {
                let mut next = Vec::new();
                for v in &at {
                    budget = budget.checked_sub(1)?;
                    walk(v, step, &mut next);
                }
                at = next;
            }
            for v in at {
                if let Value::String(s) = v {
                    out.insert(s.to_string());
                }
            }
        }
        Some(out)
    }
}

/// The values one step below `v` (regorus's indexing: an object's key, an array's index, a
/// set's member; a loop's values or keys).
fn walk(v: &Value, step: &Step, out: &mut Vec<Value>) {
    match (v, step) {
        (Value::Object(o), Step::Key(k)) => out.extend(o.get(k).cloned()),
        (Value::Array(_) | Value::Set(_), Step::Key(k)) => {
            let got = &v[k];
            if *got != Value::Undefined {
                out.push(got.clone());
            }
        }
        (Value::Object(o), Step::Any) => out.extend(o.iter().map(|(_, v)| v.clone())),
        (Value::Object(o), Step::AnyKey) => out.extend(o.iter().map(|(k, _)| k.clone())),
        (Value::Array(a), Step::Any) => out.extend(a.iter().cloned()),
        (Value::Array(a), Step::AnyKey) => out.extend((0..a.len()).map(Value::from)),
        (Value::Set(s), Step::Any | Step::AnyKey) => out.extend(s.iter().cloned()),
        // A scalar: nothing below it (a loop over it yields no string either).
        _ => {}
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
        let requests: [&[(&[u8], &[u8])]; 5] = [
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
            // A header naming another.
            &[
                (b":method", b"GET"),
                (b":path", b"/"),
                (b"x-k", b"x-role"),
                (b"x-role", b"role-0"),
            ],
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
            let part = f.to_input_for(1 << 16, &p.needs()).unwrap();
            let whole = f.to_input(1 << 16).unwrap();
            let a = p.eval(query, part);
            assert_eq!(a, p.eval(query, whole), "{headers:?}");
            allowed += usize::from(a == Ok(regorus::Value::from(true)));
        }
        assert!(allowed > 0, "{p:?}: some request must be allowed");
    }

    fn names(n: &Needs) -> Option<Vec<&str>> {
        n.header_names.as_ref().map(|names| {
            names
                .iter()
                .map(|b| std::str::from_utf8(b).unwrap())
                .collect()
        })
    }

    #[test]
    fn headers_looked_up_by_literal_or_data_names_are_the_only_ones_built() {
        let h = "input.attributes.request.http.headers";
        let ok = [
            // Literal names, through an alias and bracketed.
            (
                format!("import input.attributes.request.http as req\nallow if {{\n req.headers[\"x-role\"] == \"role-0\"\n {h}[\"x-k\"] != \"role-0\"\n}}\n"),
                serde_json::json!({}),
                vec!["x-k", "x-role"],
            ),
            // A key from data: a plain value, an object's keys, an array's strings.
            (
                format!("allow if {h}[data.h] == \"role-0\"\n"),
                serde_json::json!({"h": "x-role"}),
                vec!["x-role"],
            ),
            (
                format!("allow if {{\n some name, want in data.required\n {h}[name] == want\n}}\n"),
                serde_json::json!({"required": {"x-role": "role-0", ":method": "GET"}}),
                vec![":method", "x-role"],
            ),
            (
                format!("allow if {{\n some name in data.names\n {h}[name]\n}}\n"),
                serde_json::json!({"names": ["x-k", 7, {"a": 1}, "x-role"]}),
                vec!["x-k", "x-role"],
            ),
            // Nested loops over data.
            (
                format!("allow if {{\n some g in data.groups\n some r in g.rules\n {h}[r.h] == r.v\n}}\n"),
                serde_json::json!({"groups": [{"rules": [{"h": "x-role", "v": "role-0"}]}, {"rules": [{"h": "x-k", "v": "POST"}]}]}),
                vec!["x-k", "x-role"],
            ),
        ];
        for (body, data, want) in &ok {
            let rego = format!("package p\n{body}");
            let p = policy(&rego, data.clone());
            assert_eq!(names(&p.needs()), Some(want.clone()), "{rego}");
            same_decisions(&p, "data.p.allow");
        }
        // Keys that do not come only from data, and `headers` used whole: every header.
        let whole = [
            // From the input itself.
            (format!("allow if {h}[{h}[\"x-k\"]] == \"role-0\"\n"), serde_json::json!({})),
            // Computed from data by a builtin.
            (format!("allow if {h}[lower(data.h)] == \"role-0\"\n"), serde_json::json!({"h": "X-Role"})),
            // A rule's value.
            (format!("name := data.h\nallow if {h}[name] == \"role-0\"\n"), serde_json::json!({"h": "x-role"})),
            // A function's argument.
            (format!("has(n) if {h}[n] == \"role-0\"\nallow if has(data.h)\n"), serde_json::json!({"h": "x-role"})),
            // A comprehension's value.
            (format!("allow if {{\n some n in [x | some x in data.hs]\n {h}[n] == \"role-0\"\n}}\n"), serde_json::json!({"hs": ["x-role"]})),
            // A literal collection.
            (format!("allow if {{\n some n in [\"x-role\"]\n {h}[n] == \"role-0\"\n}}\n"), serde_json::json!({})),
            // Iteration, the object counted, the object through a builtin.
            (format!("allow if {{\n some k, v in {h}\n k == \"x-role\"\n v == \"role-0\"\n}}\n"), serde_json::json!({})),
            (format!("allow if count({h}) == 4\n"), serde_json::json!({})),
            ("allow if object.get(input.attributes.request.http, \"headers\", {})[\"x-role\"] == \"role-0\"\n".to_string(), serde_json::json!({})),
        ];
        for (body, data) in &whole {
            let rego = format!("package p\n{body}");
            let p = policy(&rego, data.clone());
            assert!(p.needs().headers, "{rego}");
            assert_eq!(names(&p.needs()), None, "{rego}");
            same_decisions(&p, "data.p.allow");
        }
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
        // The two names `data.rules[_].header` holds: the other headers are left out.
        assert_eq!(names(&n), Some(vec!["x-remove-me", "x-role"]));
        assert_eq!(
            Needs {
                headers: false,
                header_names: None,
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
                header_names: None,
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

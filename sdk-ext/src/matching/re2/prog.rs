//! The parsed form of a pattern and its compiled NFA program (Thompson construction).
//!
//! Only whether a value matches is ever asked, never where or which group, so the program
//! has no capture slots and no preference order: greedy and lazy repetitions compile alike.

/// A set of bytes (code points U+0000..U+00FF in RE2's Latin-1 mode).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Set(pub(crate) [u64; 4]);

impl Set {
    pub(crate) fn add_range(&mut self, lo: u8, hi: u8) {
        for c in lo..=hi {
            if let Some(w) = self.0.get_mut(usize::from(c >> 6)) {
                *w |= 1 << (c & 63);
            }
        }
    }
    pub(crate) fn remove(&mut self, c: u8) {
        if let Some(w) = self.0.get_mut(usize::from(c >> 6)) {
            *w &= !(1 << (c & 63));
        }
    }
    pub(crate) fn contains(&self, c: u8) -> bool {
        self.0
            .get(usize::from(c >> 6))
            .is_some_and(|w| (w >> (c & 63)) & 1 == 1)
    }
    pub(crate) fn union(&mut self, other: &Set) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }
    pub(crate) fn negate(&mut self) {
        for a in self.0.iter_mut() {
            *a = !*a;
        }
    }
    /// Adds the case partner of every member (Unicode simple case folding within Latin-1).
    pub(crate) fn fold(&mut self) {
        let before = *self;
        for c in 0..=255u8 {
            if before.contains(c) {
                if let Some(p) = fold_partner(c) {
                    self.add_range(p, p);
                }
            }
        }
    }
}

/// The case partner of a Latin-1 code point under Unicode simple case folding, restricted
/// to Latin-1 (partners outside it, like `K` ↔ U+212A, cannot occur in a byte string).
pub(crate) fn fold_partner(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' | 0xC0..=0xDE if c != 0xD7 => Some(c + 0x20),
        b'a'..=b'z' | 0xE0..=0xFE if c != 0xF7 => Some(c - 0x20),
        _ => None,
    }
}

/// `\w` in RE2 (ASCII), which `\b` is defined on.
pub(crate) fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// An empty-width assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// `\A`, `^` without `(?m)`.
    BeginText,
    /// `\z`, `$` without `(?m)`.
    EndText,
    /// `^` with `(?m)`.
    BeginLine,
    /// `$` with `(?m)`.
    EndLine,
    /// `\b`.
    Word,
    /// `\B`.
    NotWord,
}

/// A parsed pattern.
#[derive(Clone)]
pub(crate) enum Node {
    /// Matches the empty string.
    Empty,
    /// One byte of the set.
    Byte(Set),
    Look(Look),
    Cat(Vec<Node>),
    Alt(Vec<Node>),
    /// `min` to `max` (`None`: unbounded) of `sub`.
    Rep(Box<Node>, u32, Option<u32>),
}

impl Node {
    /// The largest product of counted repetitions (`{n,m}`) nested along one path, as RE2's
    /// `RepetitionWalker` measures it (a count of 0 or an unbounded `{n,}` counts `n`).
    pub(crate) fn repeat_product(&self) -> u64 {
        match self {
            Node::Cat(v) | Node::Alt(v) => v.iter().map(Node::repeat_product).max().unwrap_or(1),
            Node::Rep(sub, min, max) => {
                let m = u64::from(max.unwrap_or(*min)).max(1);
                m.saturating_mul(sub.repeat_product())
            }
            _ => 1,
        }
    }
}

/// One NFA instruction; every operand is an index into the program.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Inst {
    /// A byte of `sets[set]`, then `next`.
    Byte {
        set: u32,
        next: u32,
    },
    Split(u32, u32),
    Jmp(u32),
    Look(Look, u32),
    Match,
}

/// RE2's default `max_mem` (8 MiB, two thirds of it for the program, a quarter of that in
/// 16-byte instructions) allows about this many instructions; a larger pattern is refused.
pub(crate) const MAX_INSTS: usize = 87_000;

/// A compiled program.
#[derive(Clone)]
pub(crate) struct Prog {
    pub(crate) insts: Vec<Inst>,
    pub(crate) sets: Vec<Set>,
    pub(crate) start: u32,
    /// Byte → equivalence class: bytes of one class are in exactly the same sets (and agree
    /// on `\w` and `\n` where an assertion needs them), so a DFA keeps one edge per class.
    pub(crate) classes: [u8; 256],
    pub(crate) nclasses: usize,
    /// Whether any assertion depends on the previous byte (else every DFA state has one
    /// context).
    pub(crate) looks: bool,
    /// Unanchored: a match may start anywhere and end anywhere.
    pub(crate) search: bool,
}

pub(crate) const TOO_LARGE: &str = "pattern too large - compile failed";

struct Compiler {
    insts: Vec<Inst>,
    sets: Vec<Set>,
    /// The set ids sorted by set, for lookups (a `BTreeMap` cost ~5 KB of `.wasm`).
    order: Vec<u32>,
    looks: bool,
}

impl Compiler {
    fn push(&mut self, inst: Inst) -> Result<u32, &'static str> {
        if self.insts.len() >= MAX_INSTS {
            return Err(TOO_LARGE);
        }
        let pc = u32::try_from(self.insts.len()).map_err(|_| TOO_LARGE)?;
        self.insts.push(inst);
        Ok(pc)
    }

    fn set(&mut self, pc: u32, inst: Inst) {
        if let Some(slot) = self.insts.get_mut(pc as usize) {
            *slot = inst;
        }
    }

    /// The alternation of `v` before `next` (a slice: the pattern list of a set is one too,
    /// without copying it into a `Node`).
    fn alt(&mut self, v: &[Node], next: u32) -> Result<u32, &'static str> {
        let mut pc: Option<u32> = None;
        for n in v.iter().rev() {
            let entry = self.emit(n, next)?;
            pc = Some(match pc {
                Some(rest) => self.push(Inst::Split(entry, rest))?,
                None => entry,
            });
        }
        Ok(pc.unwrap_or(next))
    }

    /// Compiles `node` to run before `next`; returns its entry. Built back to front, so every
    /// target is known when an instruction is written (only a loop's head is patched).
    fn emit(&mut self, node: &Node, next: u32) -> Result<u32, &'static str> {
        match node {
            Node::Empty => Ok(next),
            Node::Byte(s) => {
                let sets = &self.sets;
                let id = match self
                    .order
                    .binary_search_by(|&i| sets.get(i as usize).cmp(&Some(s)))
                {
                    Ok(pos) => self.order.get(pos).copied().unwrap_or(0),
                    Err(pos) => {
                        let id = u32::try_from(self.sets.len()).map_err(|_| TOO_LARGE)?;
                        self.sets.push(*s);
                        self.order.insert(pos, id);
                        id
                    }
                };
                self.push(Inst::Byte { set: id, next })
            }
            Node::Look(l) => {
                self.looks |= !matches!(l, Look::EndText);
                self.push(Inst::Look(*l, next))
            }
            Node::Cat(v) => {
                let mut pc = next;
                for n in v.iter().rev() {
                    pc = self.emit(n, pc)?;
                }
                Ok(pc)
            }
            Node::Alt(v) => self.alt(v, next),
            Node::Rep(sub, min, max) => {
                let mut pc = match max {
                    None => {
                        // The loop x*: head splits into the body (which returns to the
                        // head) or on.
                        let head = self.push(Inst::Jmp(next))?;
                        let body = self.emit(sub, head)?;
                        self.set(head, Inst::Split(body, next));
                        head
                    }
                    // (x(x(x)?)?)? for max - min optional copies: linear in size.
                    Some(max) => {
                        let mut pc = next;
                        for _ in *min..*max {
                            let body = self.emit(sub, pc)?;
                            pc = self.push(Inst::Split(body, next))?;
                        }
                        pc
                    }
                };
                for _ in 0..*min {
                    pc = self.emit(sub, pc)?;
                }
                Ok(pc)
            }
        }
    }
}

/// Compiles the alternation of `nodes` (one pattern, or a set in list order).
pub(crate) fn compile(nodes: &[Node], search: bool) -> Result<Prog, &'static str> {
    let mut c = Compiler {
        insts: Vec::new(),
        sets: Vec::new(),
        order: Vec::new(),
        looks: false,
    };
    let done = c.push(Inst::Match)?;
    let start = c.alt(nodes, done)?;
    let mut word = Set::default();
    let mut nl = Set::default();
    if c.looks {
        for b in 0..=255u8 {
            if is_word(b) {
                word.add_range(b, b);
            }
        }
        nl.add_range(b'\n', b'\n');
    }
    // The two extra splitters are empty without assertions: an empty set splits no class.
    let (classes, nclasses) = byte_classes(c.sets.iter().chain([&word, &nl]));
    Ok(Prog {
        insts: c.insts,
        sets: c.sets,
        start,
        classes,
        nclasses,
        looks: c.looks,
        search,
    })
}

/// Partitions the bytes so that each set is a union of classes.
fn byte_classes<'a>(sets: impl Iterator<Item = &'a Set>) -> ([u8; 256], usize) {
    let mut classes = [0u8; 256];
    let mut n = 1usize;
    for s in sets {
        // New class of (old class, in s): at most 2 * n, capped at 256 by construction.
        let mut remap = [u16::MAX; 512];
        let mut count = 0u16;
        for (b, class) in (0..=255u8).zip(classes.iter_mut()) {
            let key = usize::from(*class) * 2 + usize::from(s.contains(b));
            if let Some(slot) = remap.get_mut(key) {
                if *slot == u16::MAX {
                    *slot = count;
                    count += 1;
                }
                *class = u8::try_from(*slot).unwrap_or(u8::MAX);
            }
        }
        n = usize::from(count);
    }
    (classes, n)
}

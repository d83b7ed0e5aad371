//! RE2 patterns as Envoy 1.40 compiles them, on sdk-ext's own linear-time engine.
//!
//! Envoy's `safe_regex` is RE2 with its default (Perl-like) syntax, and it matches bytes: every
//! byte of the value is one character (code point = byte value, RE2's Latin-1 mode), and so is
//! every byte of the pattern. This was measured against Envoy 1.40: `.` matches `\xff` and
//! does not match the two-byte `é`; `\x{ff}` is accepted and `\x{100}` refused.
//!
//! The pattern is parsed here by RE2's rules and refused where RE2 refuses it ([`parse`]),
//! compiled to an NFA program ([`prog`]) and matched by a lazily built DFA ([`dfa`]): one
//! table lookup per byte, linear in the value whatever the pattern, with a bounded cache.
//! Case folding is done at parse time on byte sets (RE2 folds `À`..`Þ` too).

mod dfa;
mod prog;
#[cfg(test)]
mod tests;

use prog::{Look, Node, Set};
use std::cell::RefCell;

/// What a literal of [`Re2::new_union`] must be in a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Literal {
    /// All of it.
    Exact,
    /// Its start.
    Prefix,
    /// Its end.
    Suffix,
    /// Any part.
    Contains,
}

/// A compiled full-match (or search) pattern.
#[derive(Clone)]
pub(crate) struct Re2(Box<Inner>);

#[derive(Clone)]
struct Inner {
    prog: prog::Prog,
    cache: RefCell<dfa::Cache>,
}

impl std::fmt::Debug for Re2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Re2")
    }
}

impl Re2 {
    /// Parses `pattern` by RE2's rules and compiles it anchored at both ends.
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        Self::new_set(&[pattern], false).map_err(|(_, e)| e)
    }

    /// Parses `pattern` by RE2's rules and compiles it unanchored: it matches anywhere in a
    /// value (RE2 `PartialMatch`).
    pub(crate) fn new_search(pattern: &str) -> Result<Self, String> {
        Self::new_set(&[pattern], true).map_err(|(_, e)| e)
    }

    /// Every pattern in one alternation (one pass over a value, whatever the count), full
    /// match or (`search`) anywhere. `Err((i, reason))`: pattern `i` is refused
    /// (`i == patterns.len()`: the combination is too large).
    pub(crate) fn new_set(patterns: &[&str], search: bool) -> Result<Self, (usize, String)> {
        let mut nodes = Vec::with_capacity(patterns.len());
        for (i, p) in patterns.iter().enumerate() {
            nodes.push(parse(p.as_bytes()).map_err(|e| (i, e))?);
        }
        let prog = prog::compile(&nodes, search).map_err(|e| {
            // Name the pattern too large on its own, if one is.
            let alone = nodes
                .iter()
                .position(|n| prog::compile(std::slice::from_ref(n), search).is_err());
            match alone {
                Some(i) if nodes.len() > 1 => (i, e.to_string()),
                _ if nodes.len() > 1 => (
                    patterns.len(),
                    format!("patterns too large together for this filter ({e})"),
                ),
                _ => (0, e.to_string()),
            }
        })?;
        Ok(Self(Box::new(Inner {
            prog,
            cache: RefCell::default(),
        })))
    }

    /// One program for a whole set of matchers: the `patterns` (RE2 syntax) and the literal
    /// matchers, each `(kind, bytes, ignore_case)` (ASCII folding, as `StringMatcher`'s),
    /// matching whole values or (`search`) anywhere as the set's patterns do; a literal keeps
    /// its own meaning in either mode (a prefix is where the value starts). `None` when the
    /// combination is refused (too large): the caller then goes without it.
    pub(crate) fn new_union(
        patterns: &[&str],
        literals: &[(Literal, &[u8], bool)],
        search: bool,
    ) -> Option<Self> {
        let mut nodes = Vec::with_capacity(patterns.len() + literals.len());
        for p in patterns {
            nodes.push(parse(p.as_bytes()).ok()?);
        }
        let mut any = Set::default();
        any.add_range(0, 255);
        let any = || Node::Rep(Box::new(Node::Byte(any)), 0, None);
        for &(kind, bytes, ignore_case) in literals {
            let text = Node::Cat(
                bytes
                    .iter()
                    .map(|&b| {
                        let mut set = Set::default();
                        set.add_range(b, b);
                        if ignore_case {
                            set.add_range(b.to_ascii_lowercase(), b.to_ascii_lowercase());
                            set.add_range(b.to_ascii_uppercase(), b.to_ascii_uppercase());
                        }
                        Node::Byte(set)
                    })
                    .collect(),
            );
            let (begin, end) = (Node::Look(Look::BeginText), Node::Look(Look::EndText));
            nodes.push(Node::Cat(match (kind, search) {
                (Literal::Exact, true) => vec![begin, text, end],
                (Literal::Exact, false) => vec![text],
                (Literal::Prefix, true) => vec![begin, text],
                (Literal::Prefix, false) => vec![text, any()],
                (Literal::Suffix, true) => vec![text, end],
                (Literal::Suffix, false) => vec![any(), text],
                (Literal::Contains, true) => vec![text],
                (Literal::Contains, false) => vec![any(), text, any()],
            }));
        }
        let prog = prog::compile(&nodes, search).ok()?;
        Some(Self(Box::new(Inner {
            prog,
            cache: RefCell::default(),
        })))
    }

    /// Whether `value` matches: the whole of it (RE2 `FullMatch` on bytes) for a pattern
    /// built by [`new`](Self::new), anywhere in it for [`new_search`](Self::new_search).
    #[inline]
    pub(crate) fn is_match(&self, value: &[u8]) -> bool {
        let Inner { prog, cache } = &*self.0;
        match cache.try_borrow_mut() {
            Ok(mut cache) => prog.is_match(value, &mut cache),
            // Only reachable by re-entrance, which nothing does: a fresh cache.
            Err(_) => prog.is_match(value, &mut dfa::Cache::default()),
        }
    }

    /// Whether `value` matches (as [`is_match`](Self::is_match)).
    pub(crate) fn full_match(&self, value: &[u8]) -> bool {
        self.is_match(value)
    }
}

/// RE2's limit on `{n,m}` counts, and on their product when nested.
const MAX_REPEAT: u32 = 1000;

/// Deeper nesting of groups is refused (RE2's parser limits nesting to 1000 as well).
const MAX_DEPTH: usize = 1000;

/// A class name and its byte ranges.
type NamedClass = (&'static [u8], &'static [(u8, u8)]);

/// The named classes (`\d`, `[:alpha:]`), as RE2 defines them (ASCII only): a table, not
/// a `match` on byte strings (which compiled to a comparison chain of ~1 KB).
const NAMED_CLASSES: &[NamedClass] = &[
    (b"alnum", &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')]),
    (b"alpha", &[(b'A', b'Z'), (b'a', b'z')]),
    (b"ascii", &[(0, 0x7F)]),
    (b"blank", &[(b'\t', b'\t'), (b' ', b' ')]),
    (b"cntrl", &[(0, 0x1F), (0x7F, 0x7F)]),
    (b"digit", &[(b'0', b'9')]),
    (b"graph", &[(b'!', b'~')]),
    (b"lower", &[(b'a', b'z')]),
    (b"print", &[(b' ', b'~')]),
    (
        b"punct",
        &[(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
    ),
    (b"space", &[(b'\t', b'\r'), (b' ', b' ')]),
    (b"upper", &[(b'A', b'Z')]),
    (
        b"word",
        &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z'), (b'_', b'_')],
    ),
    (b"xdigit", &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')]),
    // Perl classes: note RE2's \s has no \v.
    (b"\\d", &[(b'0', b'9')]),
    (b"\\s", &[(b'\t', b'\n'), (0x0C, b'\r'), (b' ', b' ')]),
    (
        b"\\w",
        &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z'), (b'_', b'_')],
    ),
];

/// A named class by name (`alpha`, `\d`).
fn named_class(name: &[u8]) -> Option<Set> {
    let (_, ranges) = NAMED_CLASSES.iter().find(|(n, _)| *n == name)?;
    let mut s = Set::default();
    for &(lo, hi) in *ranges {
        s.add_range(lo, hi);
    }
    Some(s)
}

/// A class group as RE2 adds it: folded, then negated if asked.
fn group(mut set: Set, negated: bool, fold: bool) -> Set {
    if fold {
        set.fold();
    }
    if negated {
        set.negate();
    }
    set
}

/// The flags in effect (`U` changes only which match is preferred, never whether one exists).
#[derive(Clone, Copy, Default)]
struct Flags {
    /// `i`: case-insensitive.
    fold: bool,
    /// `s`: `.` matches `\n`.
    dot_nl: bool,
    /// `m`: `^` and `$` match at line breaks.
    multi_line: bool,
}

/// An open group: its finished alternatives and the concatenation being read.
#[derive(Default)]
struct Frame {
    alts: Vec<Node>,
    cat: Vec<Node>,
    flags: Flags,
}

fn concat(mut v: Vec<Node>) -> Node {
    match v.len() {
        0 => Node::Empty,
        1 => v.pop().unwrap_or(Node::Empty),
        _ => Node::Cat(v),
    }
}

impl Frame {
    fn finish(mut self) -> Node {
        let last = concat(std::mem::take(&mut self.cat));
        if self.alts.is_empty() {
            return last;
        }
        self.alts.push(last);
        Node::Alt(self.alts)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    /// The open groups; the last is current (the first is the whole pattern).
    frames: Vec<Frame>,
    /// The previous item was a repetition (RE2 refuses `a**`).
    repeated: bool,
    names: Vec<Vec<u8>>,
}

/// Parses `pattern` by RE2's rules (its `Regexp::Parse` with `LikePerl | Latin1`).
fn parse(pattern: &[u8]) -> Result<Node, String> {
    let mut p = Parser {
        s: pattern,
        pos: 0,
        frames: vec![Frame::default()],
        repeated: false,
        names: Vec::new(),
    };
    p.run()?;
    if p.frames.len() > 1 {
        return Err("missing )".into());
    }
    Ok(p.frames.pop().map(Frame::finish).unwrap_or(Node::Empty))
}

/// `what` followed by `text`: the parser's messages, concatenated (each `format!` was its own
/// argument setup).
pub(crate) fn msg(what: &str, text: &str) -> String {
    let mut out = String::with_capacity(what.len() + text.len());
    out.push_str(what);
    out.push_str(text);
    out
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.pos + n).copied()
    }
    fn flags(&self) -> Flags {
        self.frames.last().map(|f| f.flags).unwrap_or_default()
    }
    fn folding(&self) -> bool {
        self.flags().fold
    }
    /// The pattern's text from `from` to here, invalid UTF-8 (a character cut by the span)
    /// replaced as `String::from_utf8_lossy` does, by `from_utf8`'s error positions (the
    /// lossy decoder was ~0.8 KB of the module).
    fn rest_text(&self, from: usize) -> String {
        let mut rest = self.s.get(from..self.pos).unwrap_or_default();
        let mut out = String::new();
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    return out;
                }
                Err(e) => {
                    let valid = rest.get(..e.valid_up_to()).unwrap_or_default();
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    out.push('\u{FFFD}');
                    match e.error_len() {
                        Some(n) => rest = rest.get(e.valid_up_to() + n..).unwrap_or_default(),
                        None => return out,
                    }
                }
            }
        }
    }

    /// `what` then the text from `from` to here (a message without `format!`).
    fn error_at(&self, what: &str, from: usize) -> String {
        msg(what, &self.rest_text(from))
    }

    /// Adds a repeatable item to the current concatenation.
    fn item(&mut self, node: Node) {
        if let Some(f) = self.frames.last_mut() {
            f.cat.push(node);
        }
        self.repeated = false;
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek() {
            match c {
                b'(' => self.open_group()?,
                b')' => {
                    if self.frames.len() <= 1 {
                        return Err("unexpected )".into());
                    }
                    self.pos += 1;
                    let node = self.frames.pop().map(Frame::finish).unwrap_or(Node::Empty);
                    self.item(node);
                }
                b'|' => {
                    self.pos += 1;
                    if let Some(f) = self.frames.last_mut() {
                        let cat = concat(std::mem::take(&mut f.cat));
                        f.alts.push(cat);
                    }
                    self.repeated = false;
                }
                b'*' | b'+' | b'?' => {
                    self.pos += 1;
                    let (min, max) = match c {
                        b'*' => (0, None),
                        b'+' => (1, None),
                        _ => (0, Some(1)),
                    };
                    let op = char::from(c).to_string();
                    self.repeat(op, min, max)?;
                }
                b'{' => match self.counted()? {
                    Some((op, min, max)) => self.repeat(op, min, max)?,
                    None => {
                        self.pos += 1;
                        self.literal(b'{');
                    }
                },
                b'[' => {
                    let set = self.class()?;
                    self.item(Node::Byte(set));
                }
                b'.' => {
                    self.pos += 1;
                    let mut set = Set::default();
                    set.negate();
                    if !self.flags().dot_nl {
                        set.remove(b'\n');
                    }
                    self.item(Node::Byte(set));
                }
                b'^' | b'$' => {
                    self.pos += 1;
                    let look = match (c, self.flags().multi_line) {
                        (b'^', false) => Look::BeginText,
                        (b'^', true) => Look::BeginLine,
                        (_, false) => Look::EndText,
                        (_, true) => Look::EndLine,
                    };
                    self.item(Node::Look(look));
                }
                b'\\' => self.escape()?,
                _ => {
                    self.pos += 1;
                    self.literal(c);
                }
            }
        }
        Ok(())
    }

    fn literal(&mut self, c: u8) {
        let mut s = Set::default();
        s.add_range(c, c);
        if self.folding() {
            s.fold();
        }
        self.item(Node::Byte(s));
    }

    fn repeat(&mut self, mut op: String, min: u32, max: Option<u32>) -> Result<(), String> {
        if self.peek() == Some(b'?') {
            self.pos += 1;
            op.push('?');
        }
        let Some(sub) = self.frames.last_mut().and_then(|f| f.cat.pop()) else {
            return Err(msg("missing argument to repetition operator: ", &op));
        };
        if self.repeated {
            return Err(msg("bad repetition operator: ", &op));
        }
        let node = Node::Rep(Box::new(sub), min, max);
        // RE2 refuses nested counts whose product exceeds its limit (`(a{100}){11}`).
        if (min >= 2 || max.is_some_and(|m| m >= 2))
            && node.repeat_product() > u64::from(MAX_REPEAT)
        {
            return Err(msg("invalid repetition size: ", &op));
        }
        self.item(node);
        self.repeated = true;
        Ok(())
    }

    /// `{n}`, `{n,}`, `{n,m}` at the current position; `None`: not a repetition (a literal
    /// `{`, as RE2 reads `{`, `{,3}`, `{a}`, `{01}` or a count of ten digits or more).
    #[allow(clippy::type_complexity)]
    fn counted(&mut self) -> Result<Option<(String, u32, Option<u32>)>, String> {
        let start = self.pos;
        let mut i = start + 1;
        // RE2's ParseInteger: no leading zero, at most nine digits' worth.
        let number = |i: &mut usize| -> Option<u32> {
            let from = *i;
            let mut n: u32 = 0;
            while let Some(d) = self.s.get(*i).filter(|c| c.is_ascii_digit()) {
                if n >= 100_000_000 {
                    return None;
                }
                n = n * 10 + u32::from(d - b'0');
                *i += 1;
            }
            let digits = *i - from;
            if digits == 0 || (digits > 1 && self.s.get(from) == Some(&b'0')) {
                return None;
            }
            Some(n)
        };
        let Some(lo) = number(&mut i) else {
            return Ok(None);
        };
        let mut hi = Some(lo);
        if self.s.get(i) == Some(&b',') {
            i += 1;
            if self.s.get(i) == Some(&b'}') {
                hi = None;
            } else {
                let Some(h) = number(&mut i) else {
                    return Ok(None);
                };
                hi = Some(h);
            }
        }
        if self.s.get(i) != Some(&b'}') {
            return Ok(None);
        }
        self.pos = i + 1;
        let text = self.rest_text(start);
        if lo > MAX_REPEAT || hi.is_some_and(|h| h > MAX_REPEAT || h < lo) {
            return Err(msg("invalid repetition size: ", &text));
        }
        Ok(Some((text, lo, hi)))
    }

    fn open_group(&mut self) -> Result<(), String> {
        if self.frames.len() > MAX_DEPTH {
            return Err("expression nests too deeply".into());
        }
        let start = self.pos;
        self.pos += 1;
        let current = self.flags();
        let open = |p: &mut Self, flags: Flags| {
            p.frames.push(Frame {
                flags,
                ..Frame::default()
            });
            p.repeated = false;
        };
        if self.peek() != Some(b'?') {
            open(self, current);
            return Ok(());
        }
        self.pos += 1;
        let bad = |p: &Self| p.error_at("invalid perl operator: ", start);
        // Named groups: (?P<name>...) and (?<name>...).
        let named = match (self.peek(), self.peek_at(1)) {
            (Some(b'P'), Some(b'<')) => Some(2),
            (Some(b'<'), Some(c)) if c != b'=' && c != b'!' => Some(1),
            _ => None,
        };
        if let Some(skip) = named {
            self.pos += skip;
            let name_start = self.pos;
            while self.peek().is_some_and(|c| c != b'>') {
                self.pos += 1;
            }
            let name = self
                .s
                .get(name_start..self.pos)
                .unwrap_or_default()
                .to_vec();
            if self.peek() != Some(b'>') {
                return Err(self.error_at("invalid named capture group: ", start));
            }
            self.pos += 1;
            if name.is_empty() || !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                return Err(self.error_at("invalid named capture group: ", start));
            }
            if self.names.contains(&name) {
                return Err(self.error_at("duplicate capture group name: ", start));
            }
            self.names.push(name);
            open(self, current);
            return Ok(());
        }
        // Flags: (?flags) or (?flags:...), flags from imsU, optionally negated after '-'.
        let mut flags = current;
        let mut negated = false;
        let mut saw_flag = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(bad(self));
            };
            self.pos += 1;
            match c {
                b'-' => {
                    if negated {
                        return Err(bad(self));
                    }
                    negated = true;
                    saw_flag = false;
                }
                b'i' | b'm' | b's' | b'U' => {
                    saw_flag = true;
                    let on = !negated;
                    match c {
                        b'i' => flags.fold = on,
                        b'm' => flags.multi_line = on,
                        b's' => flags.dot_nl = on,
                        _ => {}
                    }
                }
                b':' | b')' => {
                    if negated && !saw_flag {
                        return Err(bad(self));
                    }
                    if c == b':' {
                        open(self, flags);
                    } else {
                        // Until the enclosing group closes; the previous item stays the
                        // argument of a following repetition, as in RE2.
                        if let Some(f) = self.frames.last_mut() {
                            f.flags = flags;
                        }
                        self.repeated = false;
                    }
                    return Ok(());
                }
                _ => return Err(bad(self)),
            }
        }
    }

    /// An escape outside a class.
    fn escape(&mut self) -> Result<(), String> {
        let Some(c) = self.peek_at(1) else {
            return Err("trailing \\".into());
        };
        let look = match c {
            b'b' => Some(Look::Word),
            b'B' => Some(Look::NotWord),
            b'A' => Some(Look::BeginText),
            b'z' => Some(Look::EndText),
            _ => None,
        };
        if let Some(look) = look {
            self.pos += 2;
            self.item(Node::Look(look));
            return Ok(());
        }
        match c {
            b'C' => {
                self.pos += 2;
                let mut any = Set::default();
                any.negate();
                self.item(Node::Byte(any));
            }
            b'Q' => {
                self.pos += 2;
                while let Some(l) = self.peek() {
                    if l == b'\\' && self.peek_at(1) == Some(b'E') {
                        self.pos += 2;
                        break;
                    }
                    self.pos += 1;
                    self.literal(l);
                }
                self.repeated = false;
            }
            b'd' | b'D' | b's' | b'S' | b'w' | b'W' => {
                self.pos += 2;
                let set = self.perl_class(c);
                self.item(Node::Byte(set));
            }
            b'p' | b'P' => {
                return Err(
                    "Unicode classes (\\p, \\P) are not supported by this filter".to_string(),
                );
            }
            _ => {
                let l = self.escaped_char()?;
                self.literal(l);
            }
        }
        Ok(())
    }

    fn perl_class(&self, c: u8) -> Set {
        let name: &[u8] = match c.to_ascii_lowercase() {
            b'd' => b"\\d",
            b's' => b"\\s",
            _ => b"\\w",
        };
        let set = named_class(name).unwrap_or_default();
        group(set, c.is_ascii_uppercase(), self.folding())
    }

    /// A single-character escape at `pos` (which is at the `\`): octal, hex, control letter
    /// or escaped punctuation, as RE2's `ParseEscape`.
    fn escaped_char(&mut self) -> Result<u8, String> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.peek() else {
            return Err("trailing \\".into());
        };
        self.pos += 1;
        let bad = |p: &Self| p.error_at("invalid escape sequence: ", start);
        let octal = |b: Option<u8>| b.filter(|d| (b'0'..=b'7').contains(d));
        match c {
            b'1'..=b'7' | b'0' => {
                if c != b'0' && octal(self.peek()).is_none() {
                    return Err(bad(self));
                }
                let mut code = u32::from(c - b'0');
                for _ in 0..2 {
                    match octal(self.peek()) {
                        Some(d) => {
                            code = code * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                u8::try_from(code).map_err(|_| bad(self))
            }
            b'x' => {
                let hex = |b: Option<u8>| b.and_then(|d| char::from(d).to_digit(16));
                if self.peek() == Some(b'{') {
                    self.pos += 1;
                    let mut code: u32 = 0;
                    let mut n = 0;
                    while let Some(d) = hex(self.peek()) {
                        code = code.saturating_mul(16).saturating_add(d);
                        n += 1;
                        self.pos += 1;
                    }
                    if n == 0 || self.peek() != Some(b'}') {
                        return Err(bad(self));
                    }
                    self.pos += 1;
                    u8::try_from(code).map_err(|_| bad(self))
                } else {
                    let (Some(h), Some(l)) = (hex(self.peek()), hex(self.peek_at(1))) else {
                        return Err(bad(self));
                    };
                    self.pos += 2;
                    u8::try_from(h * 16 + l).map_err(|_| bad(self))
                }
            }
            b'a' => Ok(0x07),
            b'f' => Ok(0x0C),
            b'n' => Ok(b'\n'),
            b'r' => Ok(b'\r'),
            b't' => Ok(b'\t'),
            b'v' => Ok(0x0B),
            _ if c < 0x80 && !c.is_ascii_alphanumeric() => Ok(c),
            _ => Err(bad(self)),
        }
    }

    /// A bracketed class at `pos`, as RE2's `ParseCharClass`.
    fn class(&mut self) -> Result<Set, String> {
        let start = self.pos;
        self.pos += 1;
        let fold = self.folding();
        let negated = self.peek() == Some(b'^');
        if negated {
            self.pos += 1;
        }
        let mut set = Set::default();
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(self.error_at("missing ]: ", start)),
                Some(b']') if !first => break,
                _ => {}
            }
            first = false;
            // [:name:] and [:^name:]
            if self.peek() == Some(b'[') && self.peek_at(1) == Some(b':') {
                let from = self.pos + 2;
                let end = self
                    .s
                    .get(from..)
                    .and_then(|rest| rest.windows(2).position(|w| w == b":]"));
                if let Some(len) = end {
                    let name = self.s.get(from..from + len).unwrap_or_default();
                    let (neg, name) = match name.strip_prefix(b"^") {
                        Some(n) => (true, n),
                        None => (false, name),
                    };
                    self.pos = from + len + 2;
                    let Some(g) = named_class(name) else {
                        return Err(self.error_at("invalid character class range: ", from - 2));
                    };
                    set.union(&group(g, neg, fold));
                    continue;
                }
            }
            if self.peek() == Some(b'\\') {
                match self.peek_at(1) {
                    Some(c @ (b'd' | b'D' | b's' | b'S' | b'w' | b'W')) => {
                        self.pos += 2;
                        set.union(&self.perl_class(c));
                        continue;
                    }
                    Some(b'p' | b'P') => {
                        return Err(
                            "Unicode classes (\\p, \\P) are not supported by this filter"
                                .to_string(),
                        );
                    }
                    _ => {}
                }
            }
            let range_start = self.pos;
            let lo = self.class_char(start)?;
            let mut hi = lo;
            if self.peek() == Some(b'-') && self.peek_at(1).is_some_and(|c| c != b']') {
                self.pos += 1;
                hi = self.class_char(start)?;
                if hi < lo {
                    return Err(self.error_at("invalid character class range: ", range_start));
                }
            }
            let mut r = Set::default();
            r.add_range(lo, hi);
            if fold {
                r.fold();
            }
            set.union(&r);
        }
        self.pos += 1; // ']'
        if negated {
            set.negate();
        }
        Ok(set)
    }

    fn class_char(&mut self, class_start: usize) -> Result<u8, String> {
        match self.peek() {
            None => Err(self.error_at("missing ]: ", class_start)),
            Some(b'\\') => self.escaped_char(),
            Some(c) => {
                self.pos += 1;
                Ok(c)
            }
        }
    }
}

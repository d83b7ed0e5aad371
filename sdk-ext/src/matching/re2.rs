//! RE2 patterns as Envoy 1.40 compiles them, run on regex-lite.
//!
//! Envoy's `safe_regex` is RE2 with its default (Perl-like) syntax, and it matches bytes: every
//! byte of the value is one character (code point = byte value, RE2's Latin-1 mode), and so is
//! every byte of the pattern. This was measured against Envoy 1.40: `.` matches `\xff` and
//! does not match the two-byte `é`; `\x{ff}` is accepted and `\x{100}` refused.
//!
//! regex-lite has a different syntax (verbose mode, `\<`, set operations in classes, no
//! `\Q...\E`, no `\C`) and works on `&str`. So the pattern is parsed here by RE2's rules,
//! refused where RE2 refuses it, and re-emitted in a form both engines read the same way:
//! every literal and class is spelled out as explicit code points `\x{..}`, case folding is
//! done here (regex-lite only folds ASCII; RE2 folds `À`..`Þ` too), and values are mapped
//! byte for byte to the code points U+0000..U+00FF before matching. The emitted pattern is
//! wrapped in `\A(?:...)\z` only after the whole pattern parsed on its own, so no pattern
//! can reach outside the anchors.

use std::fmt::Write as _;

/// A compiled full-match pattern.
#[derive(Debug, Clone)]
pub(crate) struct Re2 {
    re: regex_lite::Regex,
}

impl Re2 {
    /// Parses `pattern` by RE2's rules and compiles it anchored at both ends.
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        let body = translate(pattern.as_bytes())?;
        let re = regex_lite::Regex::new(&format!(r"\A(?:{body})\z"))
            .map_err(|e| format!("pattern too large or complex for this filter ({e})"))?;
        Ok(Self { re })
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
        let mut body = String::new();
        for (i, p) in patterns.iter().enumerate() {
            let one = translate(p.as_bytes()).map_err(|e| (i, e))?;
            // Each alone first, so an error names its pattern.
            regex_lite::Regex::new(&format!("(?:{one})")).map_err(|e| {
                (
                    i,
                    format!("pattern too large or complex for this filter ({e})"),
                )
            })?;
            if i > 0 {
                body.push('|');
            }
            body.push_str("(?:");
            body.push_str(&one);
            body.push(')');
        }
        let anchored = if search {
            format!("(?:{body})")
        } else {
            format!(r"\A(?:{body})\z")
        };
        let re = regex_lite::Regex::new(&anchored).map_err(|e| {
            (
                patterns.len(),
                format!("patterns too large or complex together for this filter ({e})"),
            )
        })?;
        Ok(Self { re })
    }

    /// Whether `value` matches: the whole of it (RE2 `FullMatch` on bytes) for a pattern
    /// built by [`new`](Self::new), anywhere in it for [`new_search`](Self::new_search).
    pub(crate) fn is_match(&self, value: &[u8]) -> bool {
        self.full_match(value)
    }

    /// Whether the whole of `value` matches (RE2 `FullMatch` on bytes).
    pub(crate) fn full_match(&self, value: &[u8]) -> bool {
        if value.is_ascii() {
            // ASCII bytes are their own code points: no copy.
            return std::str::from_utf8(value).is_ok_and(|s| self.re.is_match(s));
        }
        let latin1: String = value.iter().map(|&b| char::from(b)).collect();
        self.re.is_match(&latin1)
    }
}

/// RE2's limit on `{n,m}` counts.
const MAX_REPEAT: u32 = 1000;

/// The case partner of a Latin-1 code point under Unicode simple case folding, restricted
/// to Latin-1 (partners outside it, like `K` ↔ U+212A, cannot occur in a byte string).
fn fold_partner(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' | 0xC0..=0xDE if c != 0xD7 => Some(c + 0x20),
        b'a'..=b'z' | 0xE0..=0xFE if c != 0xF7 => Some(c - 0x20),
        _ => None,
    }
}

/// A set of Latin-1 code points.
#[derive(Clone, Copy)]
struct Set([bool; 256]);

impl Set {
    fn empty() -> Self {
        Set([false; 256])
    }
    fn add_range(&mut self, lo: u8, hi: u8) {
        for c in lo..=hi {
            if let Some(slot) = self.0.get_mut(usize::from(c)) {
                *slot = true;
            }
        }
    }
    fn union(&mut self, other: &Set) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }
    fn negate(&mut self) {
        for a in self.0.iter_mut() {
            *a = !*a;
        }
    }
    fn fold(&mut self) {
        let before = *self;
        for (c, on) in (0..=255u8).zip(before.0.iter()) {
            if *on {
                if let Some(p) = fold_partner(c) {
                    self.add_range(p, p);
                }
            }
        }
    }
    /// As a regex-lite class of explicit code points.
    fn emit(&self, out: &mut String) {
        let mut ranges = Vec::new();
        let mut start: Option<u8> = None;
        for (c, on) in (0..=255u8).zip(self.0.iter()) {
            match (*on, start) {
                (true, None) => start = Some(c),
                (false, Some(s)) => {
                    ranges.push((s, c - 1));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            ranges.push((s, 255));
        }
        if ranges.is_empty() {
            // Matches nothing (every code point in a value is below U+0100).
            out.push_str(r"[^\x{0}-\x{10FFFF}]");
            return;
        }
        out.push('[');
        for (lo, hi) in ranges {
            if lo == hi {
                let _ = write!(out, r"\x{{{lo:x}}}");
            } else {
                let _ = write!(out, r"\x{{{lo:x}}}-\x{{{hi:x}}}");
            }
        }
        out.push(']');
    }
}

/// A named class (`\d`, `[:alpha:]`), as RE2 defines them (ASCII only).
fn named_class(name: &[u8]) -> Option<Set> {
    let mut s = Set::empty();
    let ranges: &[(u8, u8)] = match name {
        b"alnum" => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
        b"alpha" => &[(b'A', b'Z'), (b'a', b'z')],
        b"ascii" => &[(0, 0x7F)],
        b"blank" => &[(b'\t', b'\t'), (b' ', b' ')],
        b"cntrl" => &[(0, 0x1F), (0x7F, 0x7F)],
        b"digit" => &[(b'0', b'9')],
        b"graph" => &[(b'!', b'~')],
        b"lower" => &[(b'a', b'z')],
        b"print" => &[(b' ', b'~')],
        b"punct" => &[(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
        b"space" => &[(b'\t', b'\r'), (b' ', b' ')],
        b"upper" => &[(b'A', b'Z')],
        b"word" => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z'), (b'_', b'_')],
        b"xdigit" => &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')],
        // Perl classes: note RE2's \s has no \v.
        b"\\d" => &[(b'0', b'9')],
        b"\\s" => &[(b'\t', b'\n'), (0x0C, b'\r'), (b' ', b' ')],
        b"\\w" => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z'), (b'_', b'_')],
        _ => return None,
    };
    for &(lo, hi) in ranges {
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

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    out: String,
    /// Case-insensitive flag, per open group (the last is current).
    fold: Vec<bool>,
    /// Where the last repeatable item starts in `out`.
    atom: Option<usize>,
    /// The previous item was a repetition (RE2 refuses `a**`).
    repeated: bool,
    names: Vec<Vec<u8>>,
}

fn translate(pattern: &[u8]) -> Result<String, String> {
    let mut p = Parser {
        s: pattern,
        pos: 0,
        out: String::with_capacity(pattern.len() * 2),
        fold: vec![false],
        atom: None,
        repeated: false,
        names: Vec::new(),
    };
    p.run()?;
    Ok(p.out)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.pos + n).copied()
    }
    fn folding(&self) -> bool {
        self.fold.last().copied().unwrap_or(false)
    }
    fn rest_text(&self, from: usize) -> String {
        String::from_utf8_lossy(self.s.get(from..self.pos).unwrap_or_default()).into_owned()
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek() {
            match c {
                b'(' => self.open_group()?,
                b')' => {
                    if self.fold.len() <= 1 {
                        return Err("unexpected )".into());
                    }
                    self.fold.pop();
                    self.out.push(')');
                    // The group as a whole is the atom: find its start by depth.
                    self.atom = Some(self.group_start()?);
                    self.repeated = false;
                    self.pos += 1;
                }
                b'|' => {
                    self.out.push('|');
                    self.atom = None;
                    self.repeated = false;
                    self.pos += 1;
                }
                b'*' | b'+' | b'?' => {
                    self.pos += 1;
                    let op = char::from(c).to_string();
                    self.repeat(&op)?;
                }
                b'{' => match self.counted()? {
                    Some(op) => self.repeat(&op)?,
                    None => {
                        self.pos += 1;
                        self.literal(b'{');
                    }
                },
                b'[' => {
                    let start = self.out.len();
                    let set = self.class()?;
                    set.emit(&mut self.out);
                    self.item(start);
                }
                b'.' => {
                    let start = self.out.len();
                    self.out.push('.');
                    self.pos += 1;
                    self.item(start);
                }
                b'^' | b'$' => {
                    let start = self.out.len();
                    self.out.push(char::from(c));
                    self.pos += 1;
                    self.item(start);
                }
                b'\\' => self.escape()?,
                _ => {
                    self.pos += 1;
                    self.literal(c);
                }
            }
        }
        if self.fold.len() > 1 {
            return Err("missing )".into());
        }
        Ok(())
    }

    /// Records a repeatable item emitted at `start`.
    fn item(&mut self, start: usize) {
        self.atom = Some(start);
        self.repeated = false;
    }

    fn literal(&mut self, c: u8) {
        let start = self.out.len();
        match fold_partner(c) {
            Some(p) if self.folding() => {
                let mut s = Set::empty();
                s.add_range(c, c);
                s.add_range(p, p);
                s.emit(&mut self.out);
            }
            _ if c.is_ascii_alphanumeric() => self.out.push(char::from(c)),
            _ => {
                let _ = write!(self.out, r"\x{{{c:x}}}");
            }
        }
        self.item(start);
    }

    /// The start in `out` of the group just closed (its matching `(`).
    fn group_start(&self) -> Result<usize, String> {
        // Every `(` and `)` this parser emits is structural (literals are `\x{..}`, classes
        // hold only `\x{..}` ranges), so counting them finds the match.
        let bytes = self.out.as_bytes();
        let mut depth = 0usize;
        for i in (0..bytes.len()).rev() {
            let escaped = i > 0 && bytes.get(i - 1) == Some(&b'\\');
            match bytes.get(i) {
                Some(b')') if !escaped => depth += 1,
                Some(b'(') if !escaped => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(i);
                    }
                }
                _ => {}
            }
        }
        Err("unbalanced group".into())
    }

    fn repeat(&mut self, op: &str) -> Result<(), String> {
        let mut op = op.to_string();
        if self.peek() == Some(b'?') {
            self.pos += 1;
            op.push('?');
        }
        let Some(start) = self.atom else {
            return Err(format!("missing argument to repetition operator: {op}"));
        };
        if self.repeated {
            return Err(format!("bad repetition operator: {op}"));
        }
        self.out.insert_str(start, "(?:");
        self.out.push(')');
        self.out.push_str(&op);
        self.repeated = true;
        Ok(())
    }

    /// `{n}`, `{n,}`, `{n,m}` at the current position; `None`: not a repetition (a literal
    /// `{`, as RE2 reads `{`, `{,3}` or `{a}`).
    fn counted(&mut self) -> Result<Option<String>, String> {
        let start = self.pos;
        let mut i = start + 1;
        let digits = |i: &mut usize| {
            let from = *i;
            while self.s.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            self.s.get(from..*i).unwrap_or_default()
        };
        let lo = digits(&mut i);
        if lo.is_empty() {
            return Ok(None);
        }
        let mut hi: Option<&[u8]> = Some(lo);
        if self.s.get(i) == Some(&b',') {
            i += 1;
            let h = digits(&mut i);
            hi = (!h.is_empty()).then_some(h);
        }
        if self.s.get(i) != Some(&b'}') {
            return Ok(None);
        }
        i += 1;
        self.pos = i;
        let text = self.rest_text(start);
        let num = |d: &[u8]| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|n| *n <= MAX_REPEAT)
        };
        let bad = || format!("invalid repetition size: {text}");
        let lo_n = num(lo).ok_or_else(bad)?;
        match hi {
            Some(h) => {
                let hi_n = num(h).ok_or_else(bad)?;
                if hi_n < lo_n {
                    return Err(bad());
                }
                Ok(Some(format!("{{{lo_n},{hi_n}}}")))
            }
            None => Ok(Some(format!("{{{lo_n},}}"))),
        }
    }

    fn open_group(&mut self) -> Result<(), String> {
        let start = self.pos;
        self.pos += 1;
        let current = self.folding();
        if self.peek() != Some(b'?') {
            self.fold.push(current);
            self.out.push('(');
            self.atom = None;
            self.repeated = false;
            return Ok(());
        }
        self.pos += 1;
        let bad = |p: &Self| format!("invalid perl operator: {}", p.rest_text(start));
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
                return Err(format!(
                    "invalid named capture group: {}",
                    self.rest_text(start)
                ));
            }
            self.pos += 1;
            if name.is_empty() || !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                return Err(format!(
                    "invalid named capture group: {}",
                    self.rest_text(start)
                ));
            }
            if self.names.contains(&name) {
                return Err(format!(
                    "duplicate capture group name: {}",
                    self.rest_text(start)
                ));
            }
            self.names.push(name);
            self.fold.push(current);
            self.out.push('(');
            self.atom = None;
            self.repeated = false;
            return Ok(());
        }
        // Flags: (?flags) or (?flags:...), flags from imsU, optionally negated after '-'.
        let mut fold = current;
        let mut pass_on = String::new();
        let mut pass_off = String::new();
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
                    if c == b'i' {
                        fold = !negated;
                    } else if negated {
                        pass_off.push(char::from(c));
                    } else {
                        pass_on.push(char::from(c));
                    }
                }
                b':' | b')' => {
                    if negated && !saw_flag {
                        return Err(bad(self));
                    }
                    let flags = if pass_off.is_empty() {
                        pass_on.clone()
                    } else {
                        format!("{pass_on}-{pass_off}")
                    };
                    if c == b':' {
                        self.fold.push(fold);
                        if flags.is_empty() {
                            self.out.push_str("(?:");
                        } else {
                            let _ = write!(self.out, "(?{flags}:");
                        }
                    } else {
                        if let Some(f) = self.fold.last_mut() {
                            *f = fold;
                        }
                        if !flags.is_empty() {
                            let _ = write!(self.out, "(?{flags})");
                        }
                    }
                    self.atom = None;
                    self.repeated = false;
                    return Ok(());
                }
                _ => return Err(bad(self)),
            }
        }
    }

    /// An escape outside a class.
    fn escape(&mut self) -> Result<(), String> {
        let start = self.out.len();
        let Some(c) = self.peek_at(1) else {
            return Err("trailing \\".into());
        };
        match c {
            b'b' | b'B' | b'A' | b'z' => {
                self.pos += 2;
                let _ = write!(self.out, "\\{}", char::from(c));
                self.item(start);
            }
            b'C' => {
                self.pos += 2;
                self.out.push_str("(?s:.)");
                self.item(start);
            }
            b'Q' => {
                self.pos += 2;
                while self.peek().is_some() {
                    if self.peek() == Some(b'\\') && self.peek_at(1) == Some(b'E') {
                        self.pos += 2;
                        break;
                    }
                    let Some(l) = self.peek() else { break };
                    self.pos += 1;
                    self.literal(l);
                }
            }
            b'd' | b'D' | b's' | b'S' | b'w' | b'W' => {
                self.pos += 2;
                let set = self.perl_class(c);
                set.emit(&mut self.out);
                self.item(start);
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
        let set = named_class(name).unwrap_or_else(Set::empty);
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
        let bad = |p: &Self| format!("invalid escape sequence: {}", p.rest_text(start));
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
        let mut set = Set::empty();
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(format!("missing ]: {}", self.rest_text(start))),
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
                        return Err(format!(
                            "invalid character class range: {}",
                            self.rest_text(from - 2)
                        ));
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
                    return Err(format!(
                        "invalid character class range: {}",
                        self.rest_text(range_start)
                    ));
                }
            }
            let mut r = Set::empty();
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
            None => Err(format!("missing ]: {}", self.rest_text(class_start))),
            Some(b'\\') => self.escaped_char(),
            Some(c) => {
                self.pos += 1;
                Ok(c)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Re2;

    fn m(p: &str, v: &[u8]) -> bool {
        Re2::new(p).unwrap().full_match(v)
    }

    #[test]
    fn bytes_are_latin1_characters() {
        assert!(m(".", b"\xff"));
        assert!(!m(".", "é".as_bytes()));
        assert!(m("..", "é".as_bytes()));
        assert!(m(r"\xff", b"\xff"));
        assert!(m(r"[^a]", b"\xff"));
        assert!(Re2::new(r"\x{100}").is_err());
        assert!(m(r"(?i)\x{e9}", b"\xc9"));
        assert!(!m(r"\w", "é".as_bytes()));
    }

    #[test]
    fn refuses_what_re2_refuses() {
        for bad in [
            "a)|(b",
            "(a",
            "a**",
            "a*??",
            "x{2}{3}",
            "a{1001}",
            "a{2,1}",
            r"\Z",
            r"\e",
            r"\1",
            r"\8",
            "(?x)a",
            "(?=a)",
            "(?P=n)",
            "(?#c)",
            "(?-)a",
            "(?i-)a",
            "[a--b]",
            "[z-a]",
            r"[a-\d]",
            r"[\b]",
            "[:foo:]x[[:foo:]]",
            "*a",
            "a|*",
            r"\",
            "[a",
            r"\x{}",
            r"\xg",
            r"\777",
            "(?P<n>a)(?P<n>b)",
            "(?P<>a)",
        ] {
            assert!(Re2::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn accepts_what_re2_accepts() {
        for (p, v) in [
            (r"\Qa.b\E", &b"a.b"[..]),
            ("x{,3}", b"x{,3}"),
            ("x{", b"x{"),
            ("a{,}", b"a{,}"),
            ("[]a]", b"]"),
            ("[^]a]", b"b"),
            ("[a&&b]", b"&"),
            ("[[a]]", b"a]"),
            ("[[a]]", b"[]"),
            (r"\<", b"<"),
            (r"\C", b"\x80"),
            ("(?P<n>a)(?<m>b)", b"ab"),
            ("|", b""),
            ("()", b""),
            (r"[\w-z]", b"-"),
            ("(?i)[^a]", b"b"),
            (r"\101", b"A"),
            ("a*?", b"aaa"),
            ("(?U)a*", b"aa"),
        ] {
            assert!(m(p, v), "{p:?} should match {v:?}");
        }
        assert!(!m("(?i)[^a]", b"A"));
        assert!(!m("[[a]]", b"a"));
    }
}

//! OPA's `glob.match` and `glob.quote_meta`, registered as extensions (regorus's `glob`
//! feature links `globset`, whose regex-automata features (lazy DFA, literal prefilters,
//! aho-corasick) were 206 KB of the optimised module).
//!
//! `glob.match(pattern, delimiters, match)`, as OPA's (Go's gobwas/glob):
//!
//! - `*`: any run of characters without a delimiter; `**`: any run of characters;
//! - `?`: one character that is not a delimiter;
//! - `[abc]`, `[a-z]`, `[!abc]`, `[!a-z]`: one character in (not in) the class;
//! - `{a,b,c}`: any of the alternatives (each a pattern, nesting allowed);
//! - `\c`: the character `c` itself; anything else matches itself.
//!
//! `delimiters`: an array of one-character strings; empty means `["."]`, `null` means none
//! (`*` then matches anything). The whole `match` string must match. An invalid pattern
//! (unclosed `[` or `{`, an empty class, a trailing `\`) or an argument of the wrong type is
//! an evaluation error, as with regorus's builtin.
//!
//! The matcher is a Thompson NFA run over the string (every live state advanced together):
//! time is at most pattern length × string length, however many `*` and alternatives, and
//! nothing recurses (patterns may come from the request).

use regorus::Value;

/// Brace nesting deeper than this is refused as an invalid pattern (bounds the compiler's
/// frame stack; OPA policies nest one or two).
const MAX_NESTING: usize = 64;

/// One NFA instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    /// This character.
    Char(char),
    /// `?`: one character that is not a delimiter.
    Single,
    /// `*` (`any == false`) or `**`: loops on itself, or moves on without consuming.
    Star { any: bool },
    /// A class: `ranges[start..end]`.
    Class {
        negated: bool,
        start: usize,
        end: usize,
    },
    /// Go on at both targets.
    Split(usize, usize),
    /// Go on at the target.
    Jmp(usize),
    /// The pattern matched.
    Match,
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Glob {
    prog: Vec<Inst>,
    ranges: Vec<(char, char)>,
}

/// An open `{`: its last `Split` (whose second target is the next alternative) and the `Jmp`s
/// ending its alternatives.
struct Frame {
    split: usize,
    jmps: Vec<usize>,
}

impl Glob {
    /// Compiles `pattern`; `None` when it is not a valid glob.
    pub fn new(pattern: &str) -> Option<Glob> {
        let mut prog = Vec::new();
        let mut ranges = Vec::new();
        let mut frames: Vec<Frame> = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => prog.push(Inst::Char(chars.next()?)),
                '*' => {
                    let any = chars.next_if_eq(&'*').is_some();
                    prog.push(Inst::Star { any });
                }
                '?' => prog.push(Inst::Single),
                '[' => {
                    let negated = chars.next_if_eq(&'!').is_some();
                    let start = ranges.len();
                    loop {
                        let lo = match chars.next()? {
                            ']' => break,
                            '\\' => chars.next()?,
                            c => c,
                        };
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            match chars.next()? {
                                '\\' => chars.next()?,
                                ']' => return None,
                                c => c,
                            }
                        } else {
                            lo
                        };
                        if hi < lo {
                            return None;
                        }
                        ranges.push((lo, hi));
                    }
                    let end = ranges.len();
                    if start == end {
                        return None;
                    }
                    prog.push(Inst::Class {
                        negated,
                        start,
                        end,
                    });
                }
                '{' => {
                    if frames.len() >= MAX_NESTING {
                        return None;
                    }
                    frames.push(Frame {
                        split: prog.len(),
                        jmps: Vec::new(),
                    });
                    let next = prog.len() + 1;
                    prog.push(Inst::Split(next, next));
                }
                ',' if !frames.is_empty() => {
                    let here = prog.len();
                    let frame = frames.last_mut()?;
                    frame.jmps.push(here);
                    prog.push(Inst::Jmp(here));
                    // The previous alternative's split now also leads here, to a new split.
                    let split = here + 1;
                    if let Some(Inst::Split(_, second)) = prog.get_mut(frame.split) {
                        *second = split;
                    }
                    frame.split = split;
                    prog.push(Inst::Split(split + 1, split + 1));
                }
                '}' if !frames.is_empty() => {
                    let frame = frames.pop()?;
                    let end = prog.len();
                    for j in frame.jmps {
                        if let Some(Inst::Jmp(t)) = prog.get_mut(j) {
                            *t = end;
                        }
                    }
                }
                c => prog.push(Inst::Char(c)),
            }
        }
        if !frames.is_empty() {
            return None;
        }
        prog.push(Inst::Match);
        Some(Glob { prog, ranges })
    }

    /// Whether the whole of `text` matches, with `delimiters` as the separators.
    pub fn is_match(&self, text: &str, delimiters: &[char]) -> bool {
        let n = self.prog.len();
        let mut current = Vec::with_capacity(n);
        let mut next = Vec::with_capacity(n);
        // `seen[pc] == step`: pc is already in the set being built for this step.
        let mut seen = vec![usize::MAX; n];
        let mut stack = Vec::new();
        self.add(0, 0, &mut current, &mut seen, &mut stack);
        for (i, c) in text.chars().enumerate() {
            let step = i + 1;
            let sep = delimiters.contains(&c);
            next.clear();
            for &pc in &current {
                let to = match self.prog.get(pc) {
                    Some(Inst::Char(x)) if *x == c => pc + 1,
                    Some(Inst::Single) if !sep => pc + 1,
                    Some(Inst::Star { any }) if *any || !sep => pc,
                    Some(&Inst::Class {
                        negated,
                        start,
                        end,
                    }) => {
                        let within = self
                            .ranges
                            .get(start..end)
                            .is_some_and(|r| r.iter().any(|&(lo, hi)| lo <= c && c <= hi));
                        if within == negated {
                            continue;
                        }
                        pc + 1
                    }
                    _ => continue,
                };
                self.add(to, step, &mut next, &mut seen, &mut stack);
            }
            if next.is_empty() {
                return false;
            }
            std::mem::swap(&mut current, &mut next);
        }
        current
            .iter()
            .any(|&pc| matches!(self.prog.get(pc), Some(Inst::Match)))
    }

    /// Adds `pc` and what it reaches without consuming to `set`.
    fn add(
        &self,
        pc: usize,
        step: usize,
        set: &mut Vec<usize>,
        seen: &mut [usize],
        stack: &mut Vec<usize>,
    ) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            match seen.get_mut(pc) {
                Some(s) if *s != step => *s = step,
                _ => continue,
            }
            match self.prog.get(pc) {
                Some(Inst::Jmp(t)) => stack.push(*t),
                Some(Inst::Split(a, b)) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Some(Inst::Star { .. }) => {
                    set.push(pc);
                    stack.push(pc + 1);
                }
                Some(_) => set.push(pc),
                None => {}
            }
        }
    }
}

/// `glob.match(pattern, delimiters, match)`.
pub fn glob_match(args: &[Value]) -> Result<Value, String> {
    let (Some(pattern), Some(delimiters), Some(text)) = (args.first(), args.get(1), args.get(2))
    else {
        return Err("glob.match: expects 3 arguments".into());
    };
    let string = |v: &Value, which: &str| match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("glob.match: {which} must be a string")),
    };
    let pattern = string(pattern, "pattern")?;
    let text = string(text, "match")?;
    let delimiters = match delimiters {
        Value::Null => Vec::new(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len().max(1));
            for item in items.iter() {
                let mut chars = match item {
                    Value::String(s) => s.chars(),
                    _ => return Err("glob.match: delimiters must be strings".into()),
                };
                match (chars.next(), chars.next()) {
                    (Some(c), None) => out.push(c),
                    _ => return Err("glob.match: delimiters must be single characters".into()),
                }
            }
            if out.is_empty() {
                out.push('.');
            }
            out
        }
        _ => return Err("glob.match: delimiters must be an array of strings or null".into()),
    };
    let glob = Glob::new(&pattern).ok_or_else(|| "glob.match: invalid glob".to_string())?;
    Ok(Value::Bool(glob.is_match(&text, &delimiters)))
}

/// `glob.quote_meta(pattern)`: the pattern with every `*` escaped (as regorus's builtin,
/// after checking that it is a valid glob).
pub fn quote_meta(args: &[Value]) -> Result<Value, String> {
    let Some(Value::String(pattern)) = args.first() else {
        return Err("glob.quote_meta: pattern must be a string".into());
    };
    if Glob::new(pattern).is_none() {
        return Err("glob.quote_meta: invalid glob".into());
    }
    Ok(Value::from(pattern.replace('*', "\\*")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, delimiters: Option<&[&str]>, text: &str) -> bool {
        let d = match delimiters {
            None => Value::Null,
            Some(d) => Value::from(d.iter().map(|s| Value::from(*s)).collect::<Vec<_>>()),
        };
        match glob_match(&[Value::from(pattern), d, Value::from(text)]) {
            Ok(Value::Bool(b)) => b,
            other => panic!("{pattern} {text}: {other:?}"),
        }
    }

    /// OPA's documented examples (policy reference, `glob.match`), with OPA's answers.
    #[test]
    fn opas_documented_examples() {
        assert!(m("*.github.com", Some(&[]), "api.github.com"));
        assert!(!m("*.github.com", Some(&[]), "api.cdn.github.com"));
        assert!(m("*hub.com", None, "api.cdn.github.com"));
        assert!(m("*:github:com", Some(&[":"]), "api:github:com"));
        assert!(m("api.**.com", Some(&[]), "api.github.com"));
        assert!(m("api.**.com", Some(&[]), "api.cdn.github.com"));
        assert!(m("?at", Some(&[]), "cat"));
        assert!(!m("?at", Some(&[]), "at"));
        assert!(m("[abc]at", Some(&[]), "bat"));
        assert!(m("[abc]at", Some(&[]), "cat"));
        assert!(!m("[abc]at", Some(&[]), "lat"));
        assert!(!m("[!abc]at", Some(&[]), "cat"));
        assert!(m("[!a-c]at", Some(&[]), "lat"));
        assert!(m("{cat,bat,[fr]at}", Some(&[]), "cat"));
        assert!(m("{cat,bat,[fr]at}", Some(&[]), "bat"));
        assert!(m("{cat,bat,[fr]at}", Some(&[]), "rat"));
        assert!(!m("{cat,bat,[fr]at}", Some(&[]), "at"));
        // MS Graph's (regorus's conformance case): no delimiters, `*` crosses `/` and `.`.
        assert!(m("api://*/appId", None, "api://foo.com/appId"));
    }

    #[test]
    fn delimiters_stars_and_escapes() {
        assert!(m("/people*", Some(&["/"]), "/people"));
        assert!(m("/people*", Some(&["/"]), "/people-x"));
        assert!(!m("/people*", Some(&["/"]), "/people/1"));
        assert!(m("/people/**", Some(&["/"]), "/people/1/2"));
        assert!(m("/api/**", Some(&[]), "/api/v1/items"));
        assert!(!m("*.example.com", Some(&["."]), "a.b.example.com"));
        assert!(m("*.example.com", Some(&["."]), ".example.com"));
        assert!(m("a.*.c", Some(&[".", ":"]), "a.b.c"));
        assert!(!m("a.*.c", Some(&[".", ":"]), "a.b:x.c"));
        assert!(m("\\*.com", None, "*.com"));
        assert!(!m("\\*.com", None, "x.com"));
        assert!(m("a?c", None, "a.c"), "no delimiters: ? matches `.`");
        assert!(!m("a?c", Some(&[]), "a.c"));
        assert!(m("", None, ""));
        assert!(!m("", None, "a"));
        assert!(m("**", Some(&[]), ""));
        assert!(m("{a,}b", None, "b"));
        assert!(m("{a,{b,c}d}e", None, "cde"));
        assert!(!m("{a,{b,c}d}e", None, "ce"));
        assert!(
            m("x,y}", None, "x,y}"),
            "`,` and `}}` outside braces are literal"
        );
        assert!(m("[a\\-]", None, "-"));
        assert!(m("caf[\u{e0}-\u{ea}]", None, "caf\u{e9}"));
        assert!(!m("*b*b*b*b*b*b*b*b*c", None, &"b".repeat(40)));
    }

    #[test]
    fn invalid_patterns_and_arguments_are_errors() {
        for bad in ["[abc", "[]", "{a,b", "a\\", "[z-a]", "[a-]"] {
            assert!(Glob::new(bad).is_none(), "{bad}");
        }
        assert!(Glob::new(&"{".repeat(MAX_NESTING + 1)).is_none());
        let s = Value::from("a");
        for args in [
            vec![Value::from(1u64), Value::Null, s.clone()],
            vec![s.clone(), Value::from("."), s.clone()],
            vec![s.clone(), Value::from(vec![Value::from("ab")]), s.clone()],
            vec![s.clone(), Value::from(vec![Value::from(1u64)]), s.clone()],
            vec![s.clone(), Value::Null],
        ] {
            assert!(glob_match(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn quote_meta_escapes_stars() {
        assert_eq!(
            quote_meta(&[Value::from("*.github.com")]),
            Ok(Value::from("\\*.github.com"))
        );
        let quoted = quote_meta(&[Value::from("*.github.com")]).unwrap();
        assert_eq!(
            glob_match(&[
                quoted,
                Value::from(vec![Value::from(".")]),
                Value::from("*.github.com")
            ]),
            Ok(Value::Bool(true))
        );
        assert!(quote_meta(&[Value::from("[a")]).is_err());
        assert!(quote_meta(&[Value::from(1u64)]).is_err());
    }
}

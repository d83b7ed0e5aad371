//! Matching: a DFA built lazily from the NFA program, one state per set of NFA threads.
//!
//! A state is the set of program counters reached right after a byte (before following
//! empty transitions) plus what the assertions need to know of that byte (start of text,
//! newline, word byte, other). Its transition on the next byte follows the empty
//! transitions, now that the next byte is known (`\b`, `$` with `(?m)` look at it), then
//! steps over the byte. Each byte of a value costs one table lookup once its edge is built,
//! and building an edge costs one pass over the program: matching is linear in the value
//! whatever the pattern, never backtracking. The cache is bounded ([`CACHE_BYTES`]): when it
//! is full it is emptied and rebuilt from the current state, as RE2's DFA does.

use super::prog::{is_word, Inst, Look, Prog};

/// An edge not built yet.
const UNKNOWN: u32 = u32::MAX;
/// Search mode: a match ended here.
const MATCHED: u32 = u32::MAX - 1;
/// No thread left: no match can follow.
const DEAD: u32 = u32::MAX - 2;

/// [`Cache::eot`]'s values.
const EOT_UNKNOWN: u8 = 0;
const EOT_MATCH: u8 = 1;
const EOT_NO_MATCH: u8 = 2;

/// Contexts: what the previous byte was.
const AT_START: u32 = 0;
const AFTER_NL: u32 = 1;
const AFTER_WORD: u32 = 2;
const AFTER_OTHER: u32 = 3;

/// The most memory one pattern's DFA states and edges take before the cache is emptied.
const CACHE_BYTES: usize = 256 * 1024;

/// The lazily built states and edges of one program.
#[derive(Clone, Default)]
pub(crate) struct Cache {
    /// Each state's key: context, then its sorted program counters.
    keys: Vec<Box<[u32]>>,
    /// The state ids sorted by key, for lookups (a `BTreeMap` cost ~5 KB of `.wasm`).
    order: Vec<u32>,
    /// `state * nclasses + class` → next state (or a sentinel).
    edges: Vec<u32>,
    /// Per state, whether the end of the value after it is a match: [`EOT_UNKNOWN`] until
    /// first needed, then [`EOT_MATCH`] or [`EOT_NO_MATCH`] (every value ends, so without
    /// this each match would follow the program once more).
    eot: Vec<u8>,
    bytes: usize,
    /// How many times the cache was emptied.
    clears: u32,
    /// The start state, once built.
    start: Option<u32>,
    /// Scratch for following empty transitions.
    stack: Vec<u32>,
    seen: Vec<u64>,
    out: Vec<u32>,
}

impl Prog {
    /// Follows the empty transitions from `key`'s threads (and the start, searching) with the
    /// previous byte's context `key[0]` and the next byte `next` (`None`: the end). Returns
    /// whether a match is reached, and leaves in `cache.out` the threads after `next`.
    fn step(&self, key: &[u32], next: Option<u8>, cache: &mut Cache) -> bool {
        let (ctx, threads) = match key.split_first() {
            Some((c, t)) => (*c, t),
            None => (AT_START, &[][..]),
        };
        let words = self.insts.len().div_ceil(64);
        cache.seen.clear();
        cache.seen.resize(words, 0);
        cache.out.clear();
        cache.stack.clear();
        cache.stack.extend(threads.iter().rev());
        if self.search {
            cache.stack.push(self.start);
        }
        let next_word = next.is_some_and(is_word);
        let mut matched = false;
        while let Some(pc) = cache.stack.pop() {
            let Some(seen) = cache.seen.get_mut(pc as usize / 64) else {
                continue;
            };
            let bit = 1u64 << (pc % 64);
            if *seen & bit != 0 {
                continue;
            }
            *seen |= bit;
            match self.insts.get(pc as usize) {
                Some(Inst::Byte { set, next: to }) => {
                    if let (Some(b), Some(s)) = (next, self.sets.get(*set as usize)) {
                        if s.contains(b) {
                            cache.out.push(*to);
                        }
                    }
                }
                Some(Inst::Split(a, b)) => {
                    cache.stack.push(*b);
                    cache.stack.push(*a);
                }
                Some(Inst::Jmp(a)) => cache.stack.push(*a),
                Some(Inst::Look(look, to)) => {
                    let holds = match look {
                        Look::BeginText => ctx == AT_START,
                        Look::BeginLine => ctx == AT_START || ctx == AFTER_NL,
                        Look::EndText => next.is_none(),
                        Look::EndLine => next.is_none() || next == Some(b'\n'),
                        Look::Word => (ctx == AFTER_WORD) != next_word,
                        Look::NotWord => (ctx == AFTER_WORD) == next_word,
                    };
                    if holds {
                        cache.stack.push(*to);
                    }
                }
                Some(Inst::Match) => matched = true,
                None => {}
            }
        }
        cache.out.sort_unstable();
        cache.out.dedup();
        matched
    }

    fn start_key(&self) -> Vec<u32> {
        if self.search {
            vec![AT_START]
        } else {
            vec![AT_START, self.start]
        }
    }

    /// Whether `value` matches: entirely, or anywhere in it for a search program.
    #[inline]
    pub(crate) fn is_match(&self, value: &[u8], cache: &mut Cache) -> bool {
        let mut state = match cache.start {
            Some(s) => s,
            None => {
                let s = cache.intern(&self.start_key(), self.nclasses);
                cache.start = Some(s);
                s
            }
        };
        for &b in value {
            let class = usize::from(self.classes.get(usize::from(b)).copied().unwrap_or(0));
            let at = state as usize * self.nclasses + class;
            let mut to = cache.edges.get(at).copied().unwrap_or(UNKNOWN);
            if to == UNKNOWN {
                to = self.build_edge(state, b, cache);
            }
            match to {
                MATCHED => return true,
                DEAD => return false,
                _ => state = to,
            }
        }
        match cache.eot.get(state as usize).copied() {
            Some(EOT_MATCH) => true,
            Some(EOT_NO_MATCH) => false,
            _ => {
                let key = cache.keys.get(state as usize).cloned().unwrap_or_default();
                let matched = self.step(&key, None, cache);
                if let Some(slot) = cache.eot.get_mut(state as usize) {
                    *slot = if matched { EOT_MATCH } else { EOT_NO_MATCH };
                }
                matched
            }
        }
    }

    /// The edge from `state` on `b` (and every byte of its class).
    fn build_edge(&self, state: u32, b: u8, cache: &mut Cache) -> u32 {
        let key = cache.keys.get(state as usize).cloned().unwrap_or_default();
        let matched = self.step(&key, Some(b), cache);
        let to = if matched && self.search {
            MATCHED
        } else if cache.out.is_empty() && !self.search {
            DEAD
        } else {
            let ctx = if !self.looks {
                AT_START
            } else if b == b'\n' {
                AFTER_NL
            } else if is_word(b) {
                AFTER_WORD
            } else {
                AFTER_OTHER
            };
            let mut next = Vec::with_capacity(cache.out.len() + 1);
            next.push(ctx);
            next.extend_from_slice(&cache.out);
            let before = cache.clears;
            let to = cache.intern(&next, self.nclasses);
            if cache.clears != before {
                // The cache was emptied: `state` is gone, record nothing.
                return to;
            }
            to
        };
        let class = usize::from(self.classes.get(usize::from(b)).copied().unwrap_or(0));
        if let Some(slot) = cache.edges.get_mut(state as usize * self.nclasses + class) {
            *slot = to;
        }
        to
    }
}

impl Cache {
    /// The state of `key`, added if new (emptying the cache first when it is full).
    fn intern(&mut self, key: &[u32], nclasses: usize) -> u32 {
        let keys = &self.keys;
        let mut at = match self
            .order
            .binary_search_by(|&i| keys.get(i as usize).map_or(&[][..], |k| &k[..]).cmp(key))
        {
            Ok(pos) => return self.order.get(pos).copied().unwrap_or(0),
            Err(pos) => pos,
        };
        let cost = key.len() * 8 + nclasses * 4 + 65;
        if self.bytes + cost > CACHE_BYTES && !self.keys.is_empty() {
            self.keys.clear();
            self.order.clear();
            self.edges.clear();
            self.eot.clear();
            self.bytes = 0;
            self.start = None;
            self.clears = self.clears.wrapping_add(1);
            at = 0;
        }
        self.bytes += cost;
        let id = u32::try_from(self.keys.len()).unwrap_or(0);
        self.keys.push(key.into());
        self.order.insert(at, id);
        self.edges.resize(self.edges.len() + nclasses, UNKNOWN);
        self.eot.push(EOT_UNKNOWN);
        id
    }
}

//! The logic, as plain Rust over plain data: which rules match, what values they render,
//! and applying edits to a header map (the live one, or a `HeaderList` in tests).
//!
//! Every value renders against the request as it arrived, before any edit of this filter,
//! so the result never depends on the order of edits. Only values that reference request
//! attributes are rendered and kept per request; fixed values are borrowed from the config.
//!
//! A rendered value is written only if it is a valid header value
//! ([`is_valid_value`]: Envoy's router would otherwise refuse the whole request) and fits:
//! each value at most [`MAX_VALUE_BYTES`], and all the dynamic values of one direction of
//! one request together at most [`RENDER_BUDGET_BYTES`]. Rendering stops at the limit, so an
//! oversized value is never built. A skipped value skips its edit (even with
//! `keep_empty_value`) and is counted in the [`Plan`].

use crate::config::{Config, Edits, Op, Value, MAX_RULES};
use sdk_ext::headers::{is_valid_value, HeaderMapMut};
use sdk_ext::request::Request;
use sdk_ext::template::TooLarge;
pub use sdk_ext::template::MAX_VALUE_BYTES;

/// The most bytes of dynamic values one request renders per direction (request edits,
/// response edits): Envoy's default header map limit (`max_request_headers_kb`, 60 KiB).
/// With it, a config with many large values (256 rules of them) still cannot make one
/// request hold more than this.
pub const RENDER_BUDGET_BYTES: usize = MAX_VALUE_BYTES;

/// Which header map a set of edits targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Request headers.
    Request,
    /// Response headers.
    Response,
}

/// A set of rule indices (each below [`MAX_RULES`]), as bits: a request's plan allocates
/// nothing for the rules it matched, and reading it touches only the words in use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RuleSet {
    words: [u64; MAX_RULES / 64],
    /// Words up to the last non-zero one.
    used: usize,
}

impl RuleSet {
    /// Adds rule `i` (an index past [`MAX_RULES`] is not a rule and is ignored).
    pub fn insert(&mut self, i: usize) {
        let at = i / 64;
        if let Some(word) = self.words.get_mut(at) {
            *word |= 1 << (i % 64);
            self.used = self.used.max(at + 1);
        }
    }

    /// Whether no rule is in the set.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// The rules, in ascending order (config order).
    pub fn iter(&self) -> RuleSetIter<'_> {
        RuleSetIter {
            words: self.words.get(..self.used).unwrap_or(&[]),
            at: 0,
            word: self.words.first().copied().unwrap_or(0),
        }
    }
}

/// The rules of a [`RuleSet`], in ascending order.
#[derive(Debug)]
pub struct RuleSetIter<'a> {
    words: &'a [u64],
    /// The word being read; `word` holds its bits not yet yielded.
    at: usize,
    word: u64,
}

impl Iterator for RuleSetIter<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.word != 0 {
                let bit = self.word.trailing_zeros() as usize;
                self.word &= self.word - 1;
                return Some(self.at * 64 + bit);
            }
            self.at += 1;
            self.word = *self.words.get(self.at)?;
        }
    }
}

/// What a request's rules will do: the matched rules and their rendered dynamic values.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The matching rules (applied in config order).
    pub rules: RuleSet,
    /// What was rendered; `None` when no matching rule renders a value (a config of fixed
    /// values: the plan then holds nothing to drop).
    pub rendered: Option<Box<Rendered>>,
}

/// The values a request's matching rules rendered.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Rendered values of dynamic request edits, in application order (`None`: skipped).
    pub request_values: Vec<Option<Vec<u8>>>,
    /// Rendered values of dynamic response edits, in application order (`None`: skipped).
    pub response_values: Vec<Option<Vec<u8>>>,
    /// Values skipped because they rendered into an invalid header value.
    pub invalid_values: u32,
    /// Values skipped because they would pass [`MAX_VALUE_BYTES`] or the request's
    /// [`RENDER_BUDGET_BYTES`].
    pub too_large_values: u32,
}

impl Plan {
    /// The rendered values of `dir`'s dynamic edits, in application order.
    pub fn values(&self, dir: Direction) -> &[Option<Vec<u8>>] {
        match (&self.rendered, dir) {
            (Some(r), Direction::Request) => &r.request_values,
            (Some(r), Direction::Response) => &r.response_values,
            (None, _) => &[],
        }
    }

    /// Values skipped as invalid header values.
    pub fn invalid_values(&self) -> u32 {
        self.rendered.as_ref().map_or(0, |r| r.invalid_values)
    }

    /// Values skipped as too large.
    pub fn too_large_values(&self) -> u32 {
        self.rendered.as_ref().map_or(0, |r| r.too_large_values)
    }
}

/// The outcome of applying edits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Edits the host refused.
    pub failed: u32,
    /// A `remove` failed: a header the operator wanted gone may still be there.
    pub remove_failed: bool,
}

fn edits_of(rule: &crate::config::Rule, dir: Direction) -> &Edits {
    match dir {
        Direction::Request => &rule.request,
        Direction::Response => &rule.response,
    }
}

/// Finds the matching rules and renders their dynamic values.
pub fn plan(config: &Config, req: &mut impl Request) -> Plan {
    let mut matched = RuleSet::default();
    for (i, _) in config.rules.matching(req) {
        matched.insert(i);
    }
    let mut rendered: Option<Box<Rendered>> = None;
    let mut request_budget = RENDER_BUDGET_BYTES;
    let mut response_budget = RENDER_BUDGET_BYTES;
    // Only rules with values to render (set at config time): fixed values cost nothing here.
    for rule in matched
        .iter()
        .filter_map(|i| config.rules.get(i))
        .filter(|r| r.renders)
    {
        let plan = rendered.get_or_insert_with(Box::default);
        for (dir, budget) in [
            (Direction::Request, &mut request_budget),
            (Direction::Response, &mut response_budget),
        ] {
            for e in &edits_of(rule, dir).0 {
                let Value::Rendered { template, .. } = &e.value else {
                    continue;
                };
                let value = match template.render_within(req, *budget) {
                    Ok(v) if is_valid_value(&v) => {
                        *budget = budget.saturating_sub(v.len());
                        Some(v.into_owned())
                    }
                    Ok(_) => {
                        log::debug!(
                            "header-rules: rule {}: {} renders an invalid header value; edit skipped",
                            rule.name,
                            e.name
                        );
                        plan.invalid_values += 1;
                        None
                    }
                    Err(TooLarge { limit }) => {
                        log::debug!(
                            "header-rules: rule {}: {} would render over {limit} bytes; edit skipped",
                            rule.name,
                            e.name
                        );
                        plan.too_large_values += 1;
                        None
                    }
                };
                match dir {
                    Direction::Request => plan.request_values.push(value),
                    Direction::Response => plan.response_values.push(value),
                }
            }
        }
    }
    Plan {
        rules: matched,
        rendered,
    }
}

/// Applies one direction's edits of the planned rules to `headers`; `dynamic` holds the
/// rendered values of its [`Value::Rendered`] edits, in order.
pub fn apply(
    config: &Config,
    plan_rules: &RuleSet,
    dir: Direction,
    dynamic: &[Option<Vec<u8>>],
    headers: &mut impl HeaderMapMut,
) -> Outcome {
    let mut out = Outcome::default();
    let mut rendered = dynamic.iter();
    for i in plan_rules.iter() {
        let Some(rule) = config.rules.get(i) else {
            continue;
        };
        for e in &edits_of(rule, dir).0 {
            let value: &[u8] = match &e.value {
                Value::None => &[],
                Value::Fixed(v) => v,
                // Taken in order whether or not it is written (an `add` of a present
                // header is not).
                Value::Rendered { keep_empty, .. } => match rendered.next() {
                    Some(Some(v)) if *keep_empty || !v.is_empty() => v,
                    // Skipped at render time (invalid, too large) or empty.
                    _ => continue,
                },
            };
            let failed = match e.op {
                Op::Remove => {
                    let failed = headers.remove(&e.name).is_err();
                    out.remove_failed |= failed;
                    failed
                }
                Op::Set => headers.set(&e.name, value).is_err(),
                Op::Append => headers.add(&e.name, value).is_err(),
                Op::Add => !headers.contains(&e.name) && headers.add(&e.name, value).is_err(),
            };
            out.failed += u32::from(failed);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::headers::HeaderList;
    use sdk_ext::request::RequestData;

    fn cfg(json: &str) -> Config {
        Config::parse(json.as_bytes()).unwrap()
    }

    fn run(c: &Config, req: &mut RequestData) -> (HeaderList, Plan) {
        let p = plan(c, req);
        let mut h = HeaderList(req.headers.clone());
        assert_eq!(
            apply(
                c,
                &p.rules,
                Direction::Request,
                p.values(Direction::Request),
                &mut h
            ),
            Outcome::default()
        );
        (h, p)
    }

    #[test]
    fn rule_sets_keep_config_order_across_words() {
        let mut set = RuleSet::default();
        assert!(set.is_empty());
        assert_eq!(set.iter().next(), None);
        for i in [255, 0, 64, 63, 130, 64, MAX_RULES, usize::MAX] {
            set.insert(i);
        }
        assert!(!set.is_empty());
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 63, 64, 130, 255]);
    }

    #[test]
    fn set_append_add_remove_semantics() {
        let c = cfg(r#"{"rules":[{"request":{
            "remove":["x-internal"],
            "set":[{"name":"x-set","value":"new"}],
            "append":[{"name":"x-multi","value":"b"}],
            "add":[{"name":"x-present","value":"ignored"},{"name":"x-absent","value":"added"}]}}]}"#);
        let mut req = RequestData::new("GET", "/", "h")
            .with("x-internal", "secret")
            .with("x-set", "old")
            .with("x-set", "old2")
            .with("x-multi", "a")
            .with("x-present", "kept");
        let (h, _) = run(&c, &mut req);
        assert!(h.values("x-internal").is_empty());
        assert_eq!(h.values("x-set"), vec![b"new"]);
        assert_eq!(h.values("x-multi"), vec![&b"a"[..], b"b"]);
        assert_eq!(h.values("x-present"), vec![b"kept"]);
        assert_eq!(h.values("x-absent"), vec![b"added"]);
    }

    #[test]
    fn rules_apply_only_when_matched_and_in_order() {
        let c = cfg(r#"{"rules":[
            {"match":{"prefix":"/api/","methods":["GET"]},"request":{"set":[{"name":"x-api","value":"1"}]}},
            {"match":{"hosts":["admin.example.com"]},"request":{"set":[{"name":"x-api","value":"admin"}]}}]}"#);
        let (h, p) = run(
            &c,
            &mut RequestData::new("GET", "/api/x", "admin.example.com"),
        );
        assert_eq!(p.rules.iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(h.values("x-api"), vec![b"admin"]);
        let (h, p) = run(&c, &mut RequestData::new("POST", "/api/x", "other"));
        assert!(p.rules.is_empty());
        assert!(h.values("x-api").is_empty());
    }

    #[test]
    fn values_render_against_the_original_request() {
        let c = cfg(r#"{"rules":[{"request":{
            "set":[{"name":"x-id","value":"changed"},{"name":"x-copy","value":"was %REQ(x-id)% on %REQ(:path)% from %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}]},
            "response":{"set":[{"name":"x-echo-id","value":"%REQ(x-id)%"}]}}]}"#);
        let mut req = RequestData::new("GET", "/p", "h").with("x-id", "orig");
        req.source_address = Some(b"192.0.2.7:1234".to_vec());
        let (h, p) = run(&c, &mut req);
        assert_eq!(
            h.values("x-copy"),
            vec![&b"was orig on /p from 192.0.2.7"[..]]
        );
        assert_eq!(p.values(Direction::Response), &[Some(b"orig".to_vec())][..]);
        let mut resp = HeaderList::default();
        apply(
            &c,
            &p.rules,
            Direction::Response,
            p.values(Direction::Response),
            &mut resp,
        );
        assert_eq!(resp.values("x-echo-id"), vec![b"orig"]);
    }

    #[test]
    fn empty_values_are_skipped_unless_kept() {
        let c = cfg(r#"{"rules":[{"request":{"set":[
            {"name":"x-a","value":"%REQ(x-missing)%"},
            {"name":"x-b","value":"%REQ(x-missing)%","keep_empty_value":true}]}}]}"#);
        let (h, _) = run(&c, &mut RequestData::new("GET", "/", "h"));
        assert!(h.values("x-a").is_empty());
        assert_eq!(h.values("x-b"), vec![b""]);
    }

    #[test]
    fn non_utf8_values_are_copied_byte_for_byte() {
        let c =
            cfg(r#"{"rules":[{"request":{"set":[{"name":"x-copy","value":"<%REQ(x-bin)%>"}]}}]}"#);
        let (h, _) = run(
            &c,
            &mut RequestData::new("GET", "/", "h").with("x-bin", [0xff, 0x80]),
        );
        assert_eq!(h.values("x-copy"), vec![&[b'<', 0xff, 0x80, b'>'][..]]);
    }

    #[test]
    fn oversized_values_are_skipped_and_counted_never_built() {
        let many = "%REQ(:path)%".repeat(sdk_ext::template::MAX_OPERATORS);
        let c = cfg(&format!(
            r#"{{"rules":[{{"request":{{"set":[
                {{"name":"x-huge","value":"{many}"}},
                {{"name":"x-path","value":"%REQ(:path)%"}},
                {{"name":"x-fixed","value":"ok"}}]}},
              "response":{{"set":[{{"name":"x-huge","value":"{many}","keep_empty_value":true}}]}}}}]}}"#
        ));
        let path = format!("/{}", "a".repeat(50_000));
        let (h, p) = run(&c, &mut RequestData::new("GET", &path, "h"));
        assert!(h.values("x-huge").is_empty());
        assert_eq!(h.values("x-path"), vec![path.as_bytes()]);
        assert_eq!(h.values("x-fixed"), vec![b"ok"]);
        assert_eq!(p.too_large_values(), 2);
        assert_eq!(p.values(Direction::Request).first(), Some(&None));
        assert_eq!(p.values(Direction::Response), &[None][..]);
        let mut resp = HeaderList::default();
        apply(
            &c,
            &p.rules,
            Direction::Response,
            p.values(Direction::Response),
            &mut resp,
        );
        assert!(
            resp.values("x-huge").is_empty(),
            "skipped even with keep_empty_value"
        );
        // A short path renders every copy.
        let (h, p) = run(&c, &mut RequestData::new("GET", "/ab", "h"));
        assert_eq!(h.values("x-huge"), vec!["/ab".repeat(64).as_bytes()]);
        assert_eq!(p.too_large_values(), 0);
    }

    #[test]
    fn the_request_budget_bounds_many_values() {
        // Two values that fit alone but not together: the second is skipped.
        let c = cfg(r#"{"rules":[{"request":{"set":[
            {"name":"x-a","value":"%REQ(:path)%"},
            {"name":"x-b","value":"%REQ(:path)%"}]}},
            {"request":{"set":[{"name":"x-c","value":"%REQ(x-short)%"}]}}]}"#);
        let path = format!("/{}", "p".repeat(RENDER_BUDGET_BYTES / 2 + 10));
        let mut req = RequestData::new("GET", &path, "h").with("x-short", "s");
        let (h, p) = run(&c, &mut req);
        assert_eq!(h.values("x-a"), vec![path.as_bytes()]);
        assert!(h.values("x-b").is_empty());
        assert_eq!(h.values("x-c"), vec![b"s"], "small values still fit");
        assert_eq!(p.too_large_values(), 1);
    }

    #[test]
    fn invalid_rendered_values_are_skipped_and_counted() {
        let c = cfg(r#"{"rules":[{"request":{"set":[
            {"name":"x-copy","value":"<%REQ(x-in)%>"},
            {"name":"x-other","value":"%REQ(x-ok)%"}]}}]}"#);
        for bad in [
            &b"a\r\nx-admin: 1"[..],
            b"nul\0",
            b"\x01",
            b"del\x7f",
            b"lf\n",
        ] {
            let mut req = RequestData::new("GET", "/", "h")
                .with("x-in", bad)
                .with("x-ok", "fine\there");
            let (h, p) = run(&c, &mut req);
            assert!(h.values("x-copy").is_empty(), "{bad:?}");
            assert_eq!(h.values("x-other"), vec![&b"fine\there"[..]]);
            assert_eq!(p.invalid_values(), 1, "{bad:?}");
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = |j: &str| Config::parse(j.as_bytes()).unwrap_err();
        assert_eq!(e(r#"{"rules":[]}"#).field, "rules");
        assert_eq!(e(r#"{"rules":[{"request":{}}]}"#).field, "rules[0]");
        assert_eq!(
            e(r#"{"rules":[{"request":{"set":[{"name":":path","value":"/x"}]}}]}"#).field,
            "rules[0].request.set[0].name"
        );
        assert_eq!(
            e(r#"{"rules":[{"request":{"remove":["host"]}}]}"#).field,
            "rules[0].request.remove[0]"
        );
        assert_eq!(
            e(r#"{"rules":[{"response":{"add":[{"name":"x","value":"%BOGUS%"}]}}]}"#).field,
            "rules[0].response.add[0].value"
        );
        assert_eq!(
            e(r#"{"rules":[{"request":{"set":[{"name":"x","value":1}]}}]}"#).field,
            "rules[0].request.set[0].value"
        );
        let many = "%REQ(:path)%".repeat(2000);
        assert_eq!(
            e(&format!(
                r#"{{"rules":[{{"request":{{"append":[{{"name":"x","value":"{many}"}}]}}}}]}}"#
            ))
            .field,
            "rules[0].request.append[0].value"
        );
        assert_eq!(
            e(r#"{"rules":[{"request":{"set":[{"name":"x","value":"a\u0001b"}]}}]}"#).field,
            "rules[0].request.set[0].value"
        );
        assert_eq!(
            e(r#"{"rules":[{"match":{"prefix":"/a","path":"/b"},"request":{"remove":["x"]}}]}"#)
                .field,
            "rules[0].match"
        );
        assert_eq!(
            e(r#"{"rules":[{"name":"a b","request":{"remove":["x"]}}]}"#).field,
            "rules[0].name"
        );
        assert_eq!(e(r#"{"rules":[{"name":"a","request":{"remove":["x"]}},{"name":"a","request":{"remove":["y"]}}]}"#).field, "rules[1].name");
        let unknown = e(r#"{"rules":[{"request":{"remove":["x"]}}],"extra":1}"#);
        assert_eq!(unknown.field, "extra");
        assert!(
            unknown.reason.contains("unknown field"),
            "{}",
            unknown.reason
        );
    }
}

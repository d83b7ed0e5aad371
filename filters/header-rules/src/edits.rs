//! The logic, as plain Rust over plain data: which rules match, what values they render,
//! and applying edits to a header map (the live one, or a `HeaderList` in tests).
//!
//! Every value renders against the request as it arrived, before any edit of this filter,
//! so the result never depends on the order of edits. Only values that reference request
//! attributes are rendered and kept per request; fixed values are borrowed from the config.

use crate::config::{Config, Edits, HeaderValue};
use sdk_ext::headers::HeaderMapMut;
use sdk_ext::request::Request;

/// Which header map a set of edits targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Request headers.
    Request,
    /// Response headers.
    Response,
}

/// What a request's rules will do: the matched rules and their rendered dynamic values.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indices of matching rules, in config order.
    pub rules: Vec<usize>,
    /// Rendered values of dynamic request edits, in application order.
    pub request_values: Vec<Vec<u8>>,
    /// Rendered values of dynamic response edits, in application order.
    pub response_values: Vec<Vec<u8>>,
}

/// The outcome of applying edits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Edits the host refused.
    pub failed: u32,
    /// A `remove` failed: a header the operator wanted gone may still be there.
    pub remove_failed: bool,
}

fn valued(edits: &Edits) -> impl Iterator<Item = &HeaderValue> {
    edits
        .set
        .iter()
        .chain(edits.append.iter())
        .chain(edits.add.iter())
}

fn edits_of(rule: &crate::config::Rule, dir: Direction) -> &Edits {
    match dir {
        Direction::Request => &rule.request,
        Direction::Response => &rule.response,
    }
}

/// Finds the matching rules and renders their dynamic values.
pub fn plan(config: &Config, req: &mut impl Request) -> Plan {
    let mut plan = Plan {
        rules: config.rules.matching(req).map(|(i, _)| i).collect(),
        ..Plan::default()
    };
    for rule in plan.rules.iter().filter_map(|&i| config.rules.get(i)) {
        for (dir, out) in [
            (Direction::Request, &mut plan.request_values),
            (Direction::Response, &mut plan.response_values),
        ] {
            for hv in valued(edits_of(rule, dir)) {
                if hv.value.as_static().is_none() {
                    out.push(hv.value.render(req).into_owned());
                }
            }
        }
    }
    plan
}

/// The value to write for `hv` (`None`: skip, it rendered empty).
fn value_of<'a>(
    hv: &'a HeaderValue,
    dynamic: &mut impl Iterator<Item = &'a Vec<u8>>,
) -> Option<&'a [u8]> {
    let v = match hv.value.as_static() {
        Some(s) => s,
        None => dynamic.next().map(Vec::as_slice).unwrap_or_default(),
    };
    (hv.keep_empty_value || !v.is_empty()).then_some(v)
}

/// Applies one direction's edits of the planned rules to `headers`.
pub fn apply(
    config: &Config,
    plan_rules: &[usize],
    dir: Direction,
    dynamic: &[Vec<u8>],
    headers: &mut impl HeaderMapMut,
) -> Outcome {
    let mut out = Outcome::default();
    let mut dynamic = dynamic.iter();
    for rule in plan_rules.iter().filter_map(|&i| config.rules.get(i)) {
        let edits = edits_of(rule, dir);
        for name in &edits.remove {
            if headers.remove(name).is_err() {
                out.failed += 1;
                out.remove_failed = true;
            }
        }
        for hv in &edits.set {
            if let Some(v) = value_of(hv, &mut dynamic) {
                out.failed += u32::from(headers.set(&hv.name, v).is_err());
            }
        }
        for hv in &edits.append {
            if let Some(v) = value_of(hv, &mut dynamic) {
                out.failed += u32::from(headers.add(&hv.name, v).is_err());
            }
        }
        for hv in &edits.add {
            // Render first: the dynamic value is consumed whether or not it is used.
            if let Some(v) = value_of(hv, &mut dynamic) {
                if !headers.contains(&hv.name) {
                    out.failed += u32::from(headers.add(&hv.name, v).is_err());
                }
            }
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
            apply(c, &p.rules, Direction::Request, &p.request_values, &mut h),
            Outcome::default()
        );
        (h, p)
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
        assert_eq!(p.rules, vec![0, 1]);
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
        assert_eq!(p.response_values, vec![b"orig".to_vec()]);
        let mut resp = HeaderList::default();
        apply(
            &c,
            &p.rules,
            Direction::Response,
            &p.response_values,
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

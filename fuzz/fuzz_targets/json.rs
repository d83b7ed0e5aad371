//! sdk_ext::json against serde_json: the same documents accepted, the same values read,
//! except where sdk-ext is stricter on purpose (duplicate keys, nesting deeper than
//! `MAX_DEPTH`) or serde_json is (numbers beyond f64, which sdk-ext keeps as written).
//! Every string read is also written back with `json::quote` and must read back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdk_ext::json::{self, Value};

fn same_number(text: &str, theirs: &serde_json::Number) -> bool {
    // serde_json keeps integers that fit u64 / i64 exactly, everything else as f64.
    if let Some(u) = theirs.as_u64() {
        return text.parse::<u64>() == Ok(u);
    }
    if let Some(i) = theirs.as_i64() {
        return text.parse::<i64>() == Ok(i);
    }
    match (text.parse::<f64>(), theirs.as_f64()) {
        (Ok(a), Some(b)) => a == b,
        _ => false,
    }
}

fn same(ours: &Value, theirs: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (ours, theirs) {
        (Value::Null, J::Null) => true,
        (Value::Bool(a), J::Bool(b)) => a == b,
        (Value::Number(text), J::Number(n)) => same_number(text, n),
        (Value::String(a), J::String(b)) => a == b,
        (Value::Array(a), J::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), J::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

fn strings_round_trip(value: &Value) {
    let check = |s: &str| {
        let quoted = json::quote(s);
        let back: String = serde_json::from_str(&quoted).expect("quote wrote invalid JSON");
        assert_eq!(back, s, "json::quote does not round-trip");
    };
    match value {
        Value::String(s) => check(s),
        Value::Array(items) => items.iter().for_each(strings_round_trip),
        Value::Object(members) => members.iter().for_each(|(k, v)| {
            check(k);
            strings_round_trip(v);
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = json::parse(data);
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => {
            assert!(same(a, b), "values differ:\n ours   {a:?}\n serde  {b:?}");
            strings_round_trip(a);
        }
        (Err(e), Ok(_)) => {
            let stricter = e.reason.contains("duplicate") || e.reason.contains("nested deeper");
            assert!(stricter, "sdk-ext refused what serde_json reads: {e}");
        }
        (Ok(a), Err(e)) => {
            let wider = e.to_string().contains("number out of range")
                || e.to_string().contains("recursion limit");
            assert!(wider, "sdk-ext read what serde_json refuses ({e}): {a:?}");
        }
        (Err(_), Err(_)) => {}
    }
});

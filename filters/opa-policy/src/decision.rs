//! The decision a policy returns, read as opa-envoy-plugin reads it: a boolean, or an object
//!
//! ```json
//! {"allowed": false, "http_status": 401, "body": "who are you?",
//!  "headers": {"www-authenticate": "Bearer"}}
//! {"allowed": true, "headers": {"x-user": "alice"}, "request_headers_to_remove": ["authorization"],
//!  "response_headers_to_add": {"x-policy": "v2"}}
//! ```
//!
//! - `allowed` (required in an object): the verdict.
//! - `headers`: allowed, set on the request before it goes upstream (an existing header is
//!   replaced; a list of values sets the first and appends the rest); denied, sent with the
//!   local response. An object `name → string | [string]`, or a list of such objects.
//! - `response_headers_to_add`: allowed, appended to the response the client gets.
//! - `request_headers_to_remove`: allowed, removed from the request (a list of names).
//! - `http_status`: denied, the status (default 403).
//! - `body`: denied, the response body as is (default: the filter's JSON error body).
//!
//! Anything else in the object is ignored (as opa-envoy-plugin does for keys it does not
//! know); a known key of the wrong type, an invalid header name or value, or a status that
//! is not one is an error, and the request fails closed.

use regorus::Value;
use sdk_ext::headers::{check_mutable_name, is_valid_value};

/// A decision, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The verdict.
    pub allowed: bool,
    /// Allowed: set on the request; denied: sent with the local response.
    pub headers: Vec<(String, String)>,
    /// Allowed: appended to the client's response.
    pub response_headers_to_add: Vec<(String, String)>,
    /// Allowed: removed from the request.
    pub request_headers_to_remove: Vec<String>,
    /// Denied: the status.
    pub http_status: Option<u16>,
    /// Denied: the body.
    pub body: Option<String>,
}

/// Reads a policy's value as a decision. `Err` says why it is not one.
pub fn read(value: &Value) -> Result<Decision, String> {
    match value {
        Value::Bool(allowed) => Ok(Decision {
            allowed: *allowed,
            ..Decision::default()
        }),
        Value::Object(o) => {
            let get = |k: &str| o.get(&Value::from(k));
            let allowed = match get("allowed") {
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err("\"allowed\" is not a boolean".into()),
                None => return Err("the decision has no \"allowed\" key".into()),
            };
            let http_status = match get("http_status") {
                None => None,
                Some(v) => Some(status(v)?),
            };
            let body = match get("body") {
                None => None,
                Some(Value::String(s)) => Some(s.to_string()),
                Some(_) => return Err("\"body\" is not a string".into()),
            };
            let request_headers_to_remove = match get("request_headers_to_remove") {
                None => Vec::new(),
                Some(v) => names(v)?,
            };
            Ok(Decision {
                allowed,
                headers: headers(get("headers"), "headers")?,
                response_headers_to_add: headers(
                    get("response_headers_to_add"),
                    "response_headers_to_add",
                )?,
                request_headers_to_remove,
                http_status,
                body,
            })
        }
        Value::Undefined => Err("the query is undefined (no default value?)".into()),
        _ => Err("the decision is neither a boolean nor an object".into()),
    }
}

fn status(v: &Value) -> Result<u16, String> {
    match v.as_u16() {
        Ok(code) if (200..=599).contains(&code) => Ok(code),
        _ => Err("\"http_status\" is not an HTTP status (200-599)".into()),
    }
}

fn names(v: &Value) -> Result<Vec<String>, String> {
    let list = v
        .as_array()
        .map_err(|_| "\"request_headers_to_remove\" is not a list".to_string())?;
    list.iter()
        .map(|n| match n {
            Value::String(s) => {
                check_mutable_name(s).map_err(|e| format!("\"request_headers_to_remove\": {e}"))
            }
            _ => Err("\"request_headers_to_remove\" holds a non-string".into()),
        })
        .collect()
}

fn headers(v: Option<&Value>, field: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    match v {
        None => {}
        Some(Value::Object(_)) => header_object(v, field, &mut out)?,
        Some(Value::Array(list)) => {
            for item in list.iter() {
                header_object(Some(item), field, &mut out)?;
            }
        }
        Some(_) => return Err(format!("{field:?} is not an object")),
    }
    Ok(out)
}

fn header_object(
    v: Option<&Value>,
    field: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let Some(Value::Object(o)) = v else {
        return Err(format!("{field:?} holds a non-object"));
    };
    for (name, value) in o.iter() {
        let Value::String(name) = name else {
            return Err(format!("{field:?}: a header name is not a string"));
        };
        let name = check_mutable_name(name).map_err(|e| format!("{field:?}: {e}"))?;
        let mut push = |value: &Value| match value {
            Value::String(s) if is_valid_value(s.as_bytes()) => {
                out.push((name.clone(), s.to_string()));
                Ok(())
            }
            Value::String(_) => Err(format!("{field:?}: {name}'s value has a control byte")),
            _ => Err(format!("{field:?}: {name}'s value is not a string")),
        };
        match value {
            Value::Array(values) => {
                for v in values.iter() {
                    push(v)?;
                }
            }
            v => push(v)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_json(json: &str) -> Result<Decision, String> {
        read(&Value::from_json_str(json).unwrap())
    }

    #[test]
    fn booleans_and_objects() {
        assert!(read(&Value::from(true)).unwrap().allowed);
        assert!(!read(&Value::from(false)).unwrap().allowed);
        let d = read_json(
            r#"{"allowed": true, "headers": {"X-User": "alice", "x-g": ["a", "b"]},
                "request_headers_to_remove": ["authorization"],
                "response_headers_to_add": [{"x-policy": "v2"}], "other": 1}"#,
        )
        .unwrap();
        assert!(d.allowed);
        assert!(d.headers.contains(&("x-user".into(), "alice".into())));
        assert!(d.headers.contains(&("x-g".into(), "a".into())));
        assert!(d.headers.contains(&("x-g".into(), "b".into())));
        assert_eq!(
            d.request_headers_to_remove,
            vec!["authorization".to_string()]
        );
        assert_eq!(
            d.response_headers_to_add,
            vec![("x-policy".to_string(), "v2".to_string())]
        );
        let d = read_json(r#"{"allowed": false, "http_status": 401, "body": "no"}"#).unwrap();
        assert_eq!(
            (d.allowed, d.http_status, d.body.as_deref()),
            (false, Some(401), Some("no"))
        );
    }

    #[test]
    fn malformed_decisions_are_errors() {
        for bad in [
            r#"{"headers": {}}"#,
            r#"{"allowed": "yes"}"#,
            r#"{"allowed": false, "http_status": 99}"#,
            r#"{"allowed": false, "http_status": "401"}"#,
            r#"{"allowed": false, "body": 1}"#,
            r#"{"allowed": true, "headers": {"x": 1}}"#,
            r#"{"allowed": true, "headers": {"x": "a\r\nb"}}"#,
            r#"{"allowed": true, "headers": {":path": "/x"}}"#,
            r#"{"allowed": true, "headers": "x"}"#,
            r#"{"allowed": true, "request_headers_to_remove": "x"}"#,
            r#""allow""#,
        ] {
            assert!(read_json(bad).is_err(), "{bad}");
        }
        assert!(read(&Value::Undefined).is_err());
    }
}

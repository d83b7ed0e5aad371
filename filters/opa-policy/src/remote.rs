//! Asking an OPA server: its Data API (`POST /v1/data/<path>` with `{"input": ...}`, answered
//! `{"result": ...}`). Plain Rust over the request and the answer; the filter dispatches the
//! call and reads the answer.

use regorus::value::Object;
use regorus::Value;
use sdk_ext::callout::HttpUri;

/// Why a remote answer gave no decision (each fails closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteError {
    /// No answer: timeout, reset, no healthy upstream.
    NoAnswer,
    /// An HTTP status other than 200.
    Status(u16),
    /// Over the size the filter reads.
    TooLarge,
    /// Not JSON, or JSON without `result` (OPA answers `{}` for an undefined rule).
    Malformed(String),
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::NoAnswer => f.write_str("no answer (timeout or connection failure)"),
            RemoteError::Status(s) => write!(f, "HTTP status {s}"),
            RemoteError::TooLarge => f.write_str("the answer is too large"),
            RemoteError::Malformed(why) => write!(f, "bad answer: {why}"),
        }
    }
}

/// The request body: `{"input": <input>}`.
pub fn request_body(input: Value) -> Result<Vec<u8>, String> {
    let mut wrapper = Object::new();
    wrapper.insert(Value::from("input"), input);
    serde_json::to_vec(&Value::from(wrapper)).map_err(|e| e.to_string())
}

/// The callout's headers.
pub fn request_headers(uri: &HttpUri, body_len: usize) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (":method", b"POST".to_vec()),
        (":path", uri.path.as_bytes().to_vec()),
        (":authority", uri.authority.as_bytes().to_vec()),
        ("content-type", b"application/json".to_vec()),
        ("accept", b"application/json".to_vec()),
        ("content-length", body_len.to_string().into_bytes()),
    ]
}

/// The decision value in an answer.
pub fn read_answer(
    status: Option<u16>,
    body: &[u8],
    truncated: bool,
) -> Result<Value, RemoteError> {
    match status {
        None => return Err(RemoteError::NoAnswer),
        Some(200) => {}
        Some(s) => return Err(RemoteError::Status(s)),
    }
    if truncated {
        return Err(RemoteError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| RemoteError::Malformed("not UTF-8".into()))?;
    let answer = Value::from_json_str(text)
        .map_err(|e| RemoteError::Malformed(crate::evaluate::one_line(&e.to_string())))?;
    let Ok(object) = answer.as_object() else {
        return Err(RemoteError::Malformed("not a JSON object".into()));
    };
    object
        .get(&Value::from("result"))
        .cloned()
        .ok_or_else(|| RemoteError::Malformed("no \"result\" (the rule is undefined)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn request_and_answer() {
        let uri = HttpUri::new(
            "http://opa:8181/v1/data/envoy/authz/allow",
            "opa",
            Duration::from_millis(200),
        )
        .unwrap();
        let body = request_body(Value::from_json_str(r#"{"a":1}"#).unwrap()).unwrap();
        assert_eq!(body, br#"{"input":{"a":1}}"#);
        let h = request_headers(&uri, body.len());
        assert!(h.contains(&(":path", b"/v1/data/envoy/authz/allow".to_vec())));
        assert!(h.contains(&(":method", b"POST".to_vec())));
        assert_eq!(
            read_answer(Some(200), br#"{"result": true, "decision_id": "x"}"#, false),
            Ok(Value::from(true))
        );
        assert_eq!(read_answer(None, b"", false), Err(RemoteError::NoAnswer));
        assert_eq!(
            read_answer(Some(500), b"{}", false),
            Err(RemoteError::Status(500))
        );
        assert!(matches!(
            read_answer(Some(200), b"{}", false),
            Err(RemoteError::Malformed(_))
        ));
        assert!(matches!(
            read_answer(Some(200), b"nope", false),
            Err(RemoteError::Malformed(_))
        ));
        assert_eq!(
            read_answer(Some(200), b"{", true),
            Err(RemoteError::TooLarge)
        );
    }
}

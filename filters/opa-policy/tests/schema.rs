//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

sdk_ext::schema_tests! {
    config: opa_policy::config,
    name: opa_policy::NAME,
    refused: [
        r#"{"unknown": 1}"#,                                   // deny_unknown_fields
        r#"{"status_on_error": 200}"#,                         // not 4xx/5xx
        r#"{"status_on_error": "403"}"#,                       // wrong type
        r#"{"policies": {"p": {"modules": [], "query": 1}}}"#, // wrong type, nested
        r#"{"policies": {"p": {"modules": [{"name": "a"}], "query": "q"}}}"#, // missing rego
        r#"{"remotes": {"r": {"http_uri": {"uri": "http://o/v1/data/x", "cluster": "o"}}}}"#, // no timeout
        r#"{"with_request_body": {"max_request_bytes": -1}}"#, // negative
        r#"{"limits": {"eval_timeout": 5}}"#,                  // not a duration string
        r#"{"rules": [{"match": {"prefixx": "/"}, "skip": true}]}"#, // typo, nested
    ],
}

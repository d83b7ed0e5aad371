//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

sdk_ext::schema_tests! {
    config: jwt_auth::config,
    name: jwt_auth::NAME,
    refused: [
        r#"{"unknown": 1}"#,                      // deny_unknown_fields
        r#"{"providers": {"p": {"issuer": 1}}}"#, // wrong type
        r#"{"providers": {"p": {"local_jwks": {"inline_string": "{}"}, "clock_skew_seconds": -1}}}"#,
        r#"{"providers": {"p": {"remote_jwks": {"http_uri": {"uri": "http://i/j", "cluster": "c", "timeout": "5m"}}}}}"#,
        r#"{"providers": {"p": {"remote_jwks": {"http_uri": {"uri": "http://i/j", "cluster": "c"}}}}}"#,
        r#"{"rules": [{"requires": {"provider_name": "p"}}]}"#, // rule without match
        r#"{"rules": [{"match": {"prefixx": "/"}}]}"#,          // typo, nested
        r#"{"max_token_bytes": "8k"}"#,
    ],
}

//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

sdk_ext::schema_tests! {
    config: rate_limit::config,
    name: rate_limit::NAME,
    refused: [
        r#"{"unknown": 1}"#,                      // deny_unknown_fields
        r#"{"status": {"code": "429"}}"#,         // wrong type
        r#"{"token_bucket": {"max_tokens": 1}}"#, // missing fill_interval
        r#"{"token_bucket": {"max_tokens": 1, "fill_interval": "1m"}}"#, // not a proto duration
        r#"{"token_bucket": {"max_tokens": 4294967296, "fill_interval": "1s"}}"#, // over u32
        r#"{"descriptors": [{"entries": [{"atribute": "path"}], "token_bucket": {"max_tokens": 1, "fill_interval": "1s"}}]}"#,
        r#"{"ratelimit_headers": "SOMETIMES"}"#, // unknown enum value
        r#"{"routes": [{"match": {"prefx": "/"}, "disabled": true}]}"#, // typo in a match
    ],
}

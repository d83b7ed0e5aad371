//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

sdk_ext::schema_tests! {
    config: cors::config,
    name: cors::NAME,
    refused: [
        r#"{"unknown": 1}"#,                            // deny_unknown_fields
        r#"{"rules": [{"allow_methods": 1}]}"#,         // wrong type
        r#"{"rules": [{"allow_origin": []}]}"#,         // typo
        r#"{"rules": [{"allow_credentials": "yes"}]}"#, // wrong type
        r#"{"rules": [{"match": {"pathh": "/x"}}]}"#,   // typo in the match
        r#"{"rules": [{"allow_origin_string_match": [{"exactt": "x"}]}]}"#, // typo in a matcher
        r#"{"rules": null}"#,                           // not optional
    ],
}

//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

sdk_ext::schema_tests! {
    config: request_block::config,
    name: request_block::NAME,
    refused: [
        r#"{"unknown": 1}"#, // unknown field
        r#"{"rules": []}"#,  // empty
        r#"{"rules": [{"name": "a", "in": "cookie", "pattern": {"exact": "x"}}]}"#, // not a location
        r#"{"rules": [{"name": "a", "in": "path"}]}"#,                              // no pattern
        r#"{"rules": [{"name": "a", "in": "path", "pattern": {"exactt": "x"}}]}"#, // typo in a pattern
        r#"{"rules": [{"name": "a", "in": "path", "pattern": {"exact": "x"}}], "status": 200}"#,
        r#"{"rules": [{"name": "a", "in": "path", "pattern": {"exact": "x"}}], "body": {"max_bytes": 0}}"#,
    ],
}

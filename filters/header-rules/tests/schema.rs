//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

sdk_ext::schema_tests! {
    config: header_rules::config,
    name: header_rules::NAME,
    refused: [
        r#"{}"#,                                                 // rules required
        r#"{"rules": []}"#,                                      // at least one rule
        r#"{"rules": [{"request": {"set": [{"name": "x"}]}}]}"#, // value missing
        r#"{"rules": [{"request": {"sett": []}}]}"#,             // unknown field
        r#"{"rules": [{"match": {"methods": "GET"}, "request": {"remove": ["x"]}}]}"#, // not a list
        r#"{"rules": [{"request": {"remove": ["x"]}, "response": {"add": [{"name": "a", "value": "b", "keep_empty_value": "yes"}]}}]}"#,
    ],
}

//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

sdk_ext::schema_tests! {
    config: template::config,
    name: template::NAME,
    refused: [
        r#"{"unknown": 1}"#,                                   // deny_unknown_fields
        r#"{"status": 200}"#,                                  // not 4xx/5xx
        r#"{"status": "403"}"#,                                // wrong type
        r#"{"deny": {"prefix": 1}}"#,                          // wrong type, nested
        r#"{"deny": {"pathh": "/x"}}"#,                        // typo in a nested field
        r#"{"deny": {"headers": [{"present_match": true}]}}"#, // missing header name
        r#"{"message": null}"#,                                // not optional
    ],
}

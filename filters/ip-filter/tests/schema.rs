//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

sdk_ext::schema_tests! {
    config: ip_filter::config,
    name: ip_filter::NAME,
    refused: [
        r#"{"unknown": 1}"#,                          // deny_unknown_fields
        r#"{"allow": "10.0.0.0/8"}"#,                 // not a list
        r#"{"deny": [1]}"#,                           // wrong item type
        r#"{"precedence": "allow"}"#,                 // not an enum value
        r#"{"default": "maybe"}"#,                    // not an enum value
        r#"{"status": 200}"#,                         // not 4xx/5xx
        r#"{"xff_num_trusted_hops": 65}"#,            // out of range
        r#"{"rules": [{"match": {"pathh": "/x"}}]}"#, // typo in a match
        r#"{"rules": [{"alow": []}]}"#,               // typo in a rule
    ],
}

//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

use cors::config::{Config, RawConfig};
use sdk_ext::schema::{check_filter, check_refused, generate};

fn parse(json: &[u8]) -> Result<(), sdk_ext::config::ConfigError> {
    Config::parse(json).map(drop)
}

#[test]
fn manifest_schema_and_examples_agree() {
    match check_filter::<RawConfig>(&sdk_ext::package_info!(), cors::NAME, parse) {
        Ok(report) => assert!(!report.examples.is_empty()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn invalid_configs_fail_the_schema_and_the_filter() {
    let schema = generate::<RawConfig>();
    for bad in [
        r#"{"unknown": 1}"#,                            // deny_unknown_fields
        r#"{"rules": [{"allow_methods": 1}]}"#,         // wrong type
        r#"{"rules": [{"allow_origin": []}]}"#,         // typo
        r#"{"rules": [{"allow_credentials": "yes"}]}"#, // wrong type
        r#"{"rules": [{"match": {"pathh": "/x"}}]}"#,   // typo in the match
        r#"{"rules": [{"allow_origin_string_match": [{"exactt": "x"}]}]}"#, // typo in a matcher
        r#"{"rules": null}"#,                           // not optional
    ] {
        if let Err(e) = check_refused(&schema, &parse, bad) {
            panic!("{e}");
        }
    }
}

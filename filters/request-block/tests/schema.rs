//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

use request_block::config::{Config, RawConfig};
use sdk_ext::schema::{check_filter, check_refused, generate};

fn parse(json: &[u8]) -> Result<(), sdk_ext::config::ConfigError> {
    Config::parse(json).map(drop)
}

#[test]
fn manifest_schema_and_examples_agree() {
    match check_filter::<RawConfig>(&sdk_ext::package_info!(), request_block::NAME, parse) {
        Ok(report) => assert!(!report.examples.is_empty()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn invalid_configs_fail_the_schema_and_the_filter() {
    let schema = generate::<RawConfig>();
    for bad in [
        r#"{"unknown": 1}"#, // unknown field
        r#"{"rules": []}"#,  // empty
        r#"{"rules": [{"name": "a", "in": "cookie", "pattern": {"exact": "x"}}]}"#, // not a location
        r#"{"rules": [{"name": "a", "in": "path"}]}"#,                              // no pattern
        r#"{"rules": [{"name": "a", "in": "path", "pattern": {"exactt": "x"}}]}"#, // typo in a pattern
        r#"{"rules": [{"name": "a", "in": "path", "pattern": {"exact": "x"}}], "status": 200}"#,
        r#"{"rules": [{"name": "a", "in": "path", "pattern": {"exact": "x"}}], "body": {"max_bytes": 0}}"#,
    ] {
        if let Err(e) = check_refused(&schema, &parse, bad) {
            panic!("{e}");
        }
    }
}

//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

use header_rules::config::{Config, RawConfig};
use sdk_ext::schema::{check_filter, check_refused, generate};

fn parse(json: &[u8]) -> Result<(), sdk_ext::config::ConfigError> {
    Config::parse(json).map(drop)
}

#[test]
fn manifest_schema_and_examples_agree() {
    match check_filter::<RawConfig>(&sdk_ext::package_info!(), header_rules::NAME, parse) {
        Ok(report) => assert!(!report.examples.is_empty()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn invalid_configs_fail_the_schema_and_the_filter() {
    let schema = generate::<RawConfig>();
    for bad in [
        r#"{}"#,                                                 // rules required
        r#"{"rules": []}"#,                                      // at least one rule
        r#"{"rules": [{"request": {"set": [{"name": "x"}]}}]}"#, // value missing
        r#"{"rules": [{"request": {"sett": []}}]}"#,             // unknown field
        r#"{"rules": [{"match": {"methods": "GET"}, "request": {"remove": ["x"]}}]}"#, // not a list
        r#"{"rules": [{"request": {"remove": ["x"]}, "response": {"add": [{"name": "a", "value": "b", "keep_empty_value": "yes"}]}}]}"#,
    ] {
        if let Err(e) = check_refused(&schema, &parse, bad) {
            panic!("{e}");
        }
    }
}

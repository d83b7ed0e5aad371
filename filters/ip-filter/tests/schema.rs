//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

use ip_filter::config::{Config, RawConfig};
use sdk_ext::schema::{check_filter, check_refused, generate};

fn parse(json: &[u8]) -> Result<(), sdk_ext::config::ConfigError> {
    Config::parse(json).map(drop)
}

#[test]
fn manifest_schema_and_examples_agree() {
    match check_filter::<RawConfig>(&sdk_ext::package_info!(), ip_filter::NAME, parse) {
        Ok(report) => assert!(!report.examples.is_empty()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn invalid_configs_fail_the_schema_and_the_filter() {
    let schema = generate::<RawConfig>();
    for bad in [
        r#"{"unknown": 1}"#,                          // deny_unknown_fields
        r#"{"allow": "10.0.0.0/8"}"#,                 // not a list
        r#"{"deny": [1]}"#,                           // wrong item type
        r#"{"precedence": "allow"}"#,                 // not an enum value
        r#"{"default": "maybe"}"#,                    // not an enum value
        r#"{"status": 200}"#,                         // not 4xx/5xx
        r#"{"xff_num_trusted_hops": 65}"#,            // out of range
        r#"{"rules": [{"match": {"pathh": "/x"}}]}"#, // typo in a match
        r#"{"rules": [{"alow": []}]}"#,               // typo in a rule
    ] {
        if let Err(e) = check_refused(&schema, &parse, bad) {
            panic!("{e}");
        }
    }
}

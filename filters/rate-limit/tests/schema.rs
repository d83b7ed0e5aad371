//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

use rate_limit::config::{Config, RawConfig};
use sdk_ext::schema::{check_filter, check_refused, generate};

fn parse(json: &[u8]) -> Result<(), sdk_ext::config::ConfigError> {
    Config::parse(json).map(drop)
}

#[test]
fn manifest_schema_and_examples_agree() {
    match check_filter::<RawConfig>(&sdk_ext::package_info!(), rate_limit::NAME, parse) {
        Ok(report) => assert!(!report.examples.is_empty()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn invalid_configs_fail_the_schema_and_the_filter() {
    let schema = generate::<RawConfig>();
    for bad in [
        r#"{"unknown": 1}"#,                      // deny_unknown_fields
        r#"{"status": {"code": "429"}}"#,         // wrong type
        r#"{"token_bucket": {"max_tokens": 1}}"#, // missing fill_interval
        r#"{"token_bucket": {"max_tokens": 1, "fill_interval": "1m"}}"#, // not a proto duration
        r#"{"token_bucket": {"max_tokens": 4294967296, "fill_interval": "1s"}}"#, // over u32
        r#"{"descriptors": [{"entries": [{"atribute": "path"}], "token_bucket": {"max_tokens": 1, "fill_interval": "1s"}}]}"#,
        r#"{"ratelimit_headers": "SOMETIMES"}"#, // unknown enum value
        r#"{"routes": [{"match": {"prefx": "/"}, "disabled": true}]}"#, // typo in a match
    ] {
        if let Err(e) = check_refused(&schema, &parse, bad) {
            panic!("{e}");
        }
    }
}

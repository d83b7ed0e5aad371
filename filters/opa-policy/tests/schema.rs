//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

use opa_policy::config::{Config, RawConfig};
use sdk_ext::schema::{check_filter, check_refused, generate};

fn parse(json: &[u8]) -> Result<(), sdk_ext::config::ConfigError> {
    Config::parse(json).map(drop)
}

#[test]
fn manifest_schema_and_examples_agree() {
    match check_filter::<RawConfig>(&sdk_ext::package_info!(), opa_policy::NAME, parse) {
        Ok(report) => assert!(!report.examples.is_empty()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn invalid_configs_fail_the_schema_and_the_filter() {
    let schema = generate::<RawConfig>();
    for bad in [
        r#"{"unknown": 1}"#,                                   // deny_unknown_fields
        r#"{"status_on_error": 200}"#,                         // not 4xx/5xx
        r#"{"status_on_error": "403"}"#,                       // wrong type
        r#"{"policies": {"p": {"modules": [], "query": 1}}}"#, // wrong type, nested
        r#"{"policies": {"p": {"modules": [{"name": "a"}], "query": "q"}}}"#, // missing rego
        r#"{"remotes": {"r": {"http_uri": {"uri": "http://o/v1/data/x", "cluster": "o"}}}}"#, // no timeout
        r#"{"with_request_body": {"max_request_bytes": -1}}"#, // negative
        r#"{"limits": {"eval_timeout": 5}}"#,                  // not a duration string
        r#"{"rules": [{"match": {"prefixx": "/"}, "skip": true}]}"#, // typo, nested
    ] {
        if let Err(e) = check_refused(&schema, &parse, bad) {
            panic!("{e}");
        }
    }
}

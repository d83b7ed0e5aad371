//! The hub manifest, the config schema generated from `RawConfig`, and every example config
//! agree (see `sdk_ext::schema::check_filter`). A stale `config.schema.json` fails here;
//! `UPDATE_SCHEMAS=1 cargo test --all-features --test schema -p <crate>` rewrites it.

use jwt_auth::config::{Config, RawConfig};
use sdk_ext::schema::{check_filter, check_refused, generate};

fn parse(json: &[u8]) -> Result<(), sdk_ext::config::ConfigError> {
    Config::parse(json).map(drop)
}

#[test]
fn manifest_schema_and_examples_agree() {
    match check_filter::<RawConfig>(&sdk_ext::package_info!(), jwt_auth::NAME, parse) {
        Ok(report) => assert!(!report.examples.is_empty()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn invalid_configs_fail_the_schema_and_the_filter() {
    let schema = generate::<RawConfig>();
    for bad in [
        r#"{"unknown": 1}"#,                      // deny_unknown_fields
        r#"{"providers": {"p": {"issuer": 1}}}"#, // wrong type
        r#"{"providers": {"p": {"local_jwks": {"inline_string": "{}"}, "clock_skew_seconds": -1}}}"#,
        r#"{"providers": {"p": {"remote_jwks": {"http_uri": {"uri": "http://i/j", "cluster": "c", "timeout": "5m"}}}}}"#,
        r#"{"providers": {"p": {"remote_jwks": {"http_uri": {"uri": "http://i/j", "cluster": "c"}}}}}"#,
        r#"{"rules": [{"requires": {"provider_name": "p"}}]}"#, // rule without match
        r#"{"rules": [{"match": {"prefixx": "/"}}]}"#,          // typo, nested
        r#"{"max_token_bytes": "8k"}"#,
    ] {
        if let Err(e) = check_refused(&schema, &parse, bad) {
            panic!("{e}");
        }
    }
}

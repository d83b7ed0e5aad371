//! The schema generated for the shared matching types agrees with their parser: what the
//! schema accepts, `RequestMatcher::compile` accepts (for these cases), and what it refuses
//! the parser refuses too.

use sdk_ext::config::{parse, ConfigError};
use sdk_ext::matching::{RequestMatchSpec, RequestMatcher};
use sdk_ext::schema::{check_file, check_refused, check_valid, generate, render, Freshness};

fn compile(json: &[u8]) -> Result<(), ConfigError> {
    let spec: RequestMatchSpec = parse(json)?;
    RequestMatcher::compile(&spec, "match").map(drop)
}

#[test]
fn valid_matches_pass_both() {
    let schema = generate::<RequestMatchSpec>();
    for good in [
        "{}",
        r#"{"prefix": "/api/", "hosts": ["*.example.com"], "methods": ["GET"]}"#,
        r#"{"path": "/x", "case_sensitive": false}"#,
        r#"{"safe_regex": {"regex": "^/v[0-9]+/"}}"#,
        r#"{"headers": [{"name": "x-env", "string_match": {"exact": "prod", "ignore_case": true}, "invert_match": true},
                        {"name": ":method", "present_match": true}]}"#,
        r#"{"prefix": null}"#,
    ] {
        if let Err(e) = check_valid(&schema, &compile, good, good) {
            panic!("{e}");
        }
    }
}

#[test]
fn invalid_matches_fail_both() {
    let schema = generate::<RequestMatchSpec>();
    for bad in [
        r#"{"prefx": "/"}"#,
        r#"{"prefix": 3}"#,
        r#"{"hosts": "a.com"}"#,
        r#"{"safe_regex": "^/x"}"#,
        r#"{"safe_regex": {"regex": "x", "flags": "i"}}"#,
        r#"{"headers": [{"string_match": {"exact": "a"}}]}"#,
        r#"{"headers": [{"name": "a", "string_match": {"exactly": "a"}}]}"#,
        r#"{"case_sensitive": "yes"}"#,
    ] {
        if let Err(e) = check_refused(&schema, &compile, bad) {
            panic!("{e}");
        }
    }
}

#[test]
fn stale_schema_file_is_reported_with_a_hint() {
    let dir = std::env::temp_dir().join(format!("sdk-ext-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.schema.json");
    std::fs::write(&path, "{}\n").unwrap();
    let err = check_file::<RequestMatchSpec>(&path, false).unwrap_err();
    assert!(
        err.contains("is stale") && err.contains("UPDATE_SCHEMAS=1"),
        "{err}"
    );
    std::fs::write(&path, render::<RequestMatchSpec>()).unwrap();
    assert_eq!(
        check_file::<RequestMatchSpec>(&path, false),
        Ok(Freshness::Current)
    );
    std::fs::write(&path, "{}\n").unwrap();
    assert_eq!(
        check_file::<RequestMatchSpec>(&path, true),
        Ok(Freshness::Updated)
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        render::<RequestMatchSpec>()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

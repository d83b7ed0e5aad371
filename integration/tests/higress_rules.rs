//! A configuration written for Higress (`_rules_` with `_match_route_` / `_match_domain_`)
//! loads unchanged in any sdk-ext filter and picks its per-route instance in a real Envoy,
//! from the route's name (`xds.route_name`) and the request's host.

use integration::*;

const CONFIG: &str = r#"{
  "rules": [{"request": {"set": [{"name": "x-edge", "value": "global"}]}}],
  "_rules_": [
    {"_match_route_": ["special"],
     "rules": [{"request": {"set": [{"name": "x-edge", "value": "special-route"}]}}]},
    {"_match_domain_": ["*.example.com"],
     "rules": [{"request": {"set": [{"name": "x-edge", "value": "example-domain"}]}}]}
  ]
}"#;

const ROUTES: &str = "- name: special
  match: {prefix: \"/special\"}
  route: {cluster: upstream, timeout: 15s}
- name: other
  match: {prefix: \"/\"}
  route: {cluster: upstream, timeout: 15s}";

#[test]
fn higress_rules_pick_the_instance_by_route_name_and_domain() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .routes_yaml(ROUTES)
        .filter(WasmFilter::new("header-rules", CONFIG).root_id("header-rules"))
        .start()
        .unwrap();
    for (path, host, want) in [
        ("/special/x", "localhost", "special-route"),
        ("/other", "api.example.com", "example-domain"),
        ("/other", "localhost", "global"),
        // The first matching rule wins: the route rule comes before the domain rule.
        ("/special", "api.example.com", "special-route"),
    ] {
        let resp = envoy.get(path, &[("host", host.as_bytes())]);
        assert_eq!(resp.status, 200, "{path} {host}: {}", resp.text());
        let seen = echo.last_request().unwrap();
        assert_eq!(
            seen.header("x-edge"),
            Some(want.as_bytes()),
            "{path} on {host}"
        );
    }
}

#[test]
fn a_bad_higress_rule_is_refused_by_envoy_naming_it() {
    let echo = EchoUpstream::start();
    let bad = r#"{"_rules_": [{"_match_route_": ["r"], "rules": [{"request": {"set": [{"name": ":path", "value": "x"}]}}]}]}"#;
    let err = EnvoyConfig::http(echo.port())
        .filter(WasmFilter::new("header-rules", bad).root_id("header-rules"))
        .start()
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.log
            .contains("invalid config at _rules_[0].rules[0].request.set[0].name"),
        "{}",
        err.log
    );
}

//! cors in a real Envoy: the built `dist/cors.wasm`, from a browser's point of view
//! (preflight, then the actual request, as a browser sends them), the shipped
//! `envoy-configs/cors.yaml`, and a differential check against Envoy's native `cors` filter
//! on the same generated requests (same status, same `access-control-*` headers out).

use integration::*;

const EXAMPLE: &str = include_str!("../../filters/cors/examples/spa-api.json");

fn this_filter(config: &str) -> WasmFilter {
    WasmFilter::new("cors", config).fail_open(true)
}

fn cors_headers(r: &Response) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-"))
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    h.sort();
    h
}

fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let h: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    http_request(port, method, path, &h, b"")
}

#[test]
fn a_browser_preflight_then_actual_request() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(this_filter(EXAMPLE))
        .start()
        .unwrap();
    let port = envoy.listener_port();
    let origin = "https://app.example.com";
    // 1. The browser's preflight for a credentialed PUT with a JSON body.
    let pre = request(
        port,
        "OPTIONS",
        "/api/users/7",
        &[
            ("origin", origin),
            ("access-control-request-method", "PUT"),
            (
                "access-control-request-headers",
                "content-type,authorization",
            ),
            ("sec-fetch-mode", "cors"),
        ],
    );
    assert_eq!(pre.status, 200, "{}", pre.text());
    assert!(pre.body.is_empty());
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some(origin)
    );
    assert_eq!(
        pre.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let methods = pre.header("access-control-allow-methods").unwrap();
    assert!(methods.split(", ").any(|m| m == "PUT"), "{methods}");
    let allowed = pre.header("access-control-allow-headers").unwrap();
    for h in ["content-type", "authorization"] {
        assert!(allowed.split(", ").any(|a| a == h), "{allowed}");
    }
    assert_eq!(pre.header("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(pre.header("vary").as_deref(), Some("origin"));
    assert_eq!(
        echo.request_count(),
        0,
        "a preflight never reaches the upstream"
    );
    // 2. The actual request the browser then sends.
    let put = http_request(
        port,
        "PUT",
        "/api/users/7",
        &[
            ("origin", origin.as_bytes()),
            ("content-type", b"application/json"),
            ("authorization", b"Bearer x"),
        ],
        b"{}",
    );
    assert_eq!(put.status, 200);
    assert_eq!(echo.request_count(), 1);
    assert_eq!(
        put.header("access-control-allow-origin").as_deref(),
        Some(origin)
    );
    assert_eq!(
        put.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        put.header("access-control-expose-headers").as_deref(),
        Some("x-request-id")
    );
    assert!(put.header_all("vary").iter().any(|v| v.contains("origin")));
    // 3. Another site: its preflight is answered without allow-origin (the example sets
    // forward_not_matching_preflights: false), so the browser stops there; a simple GET it
    // sends anyway gets no CORS headers, so the browser hides the response from the page.
    let evil = "https://evil.example";
    let pre = request(
        port,
        "OPTIONS",
        "/api/users/7",
        &[("origin", evil), ("access-control-request-method", "PUT")],
    );
    assert_eq!(pre.status, 200);
    assert_eq!(pre.header("access-control-allow-origin"), None);
    let get = request(port, "GET", "/api/users/7", &[("origin", evil)]);
    assert_eq!(get.status, 200);
    assert!(cors_headers(&get).is_empty(), "{:?}", get.headers);
    assert_eq!(echo.request_count(), 2);
    assert_eq!(envoy.stat("wasmcustom.cors.preflight"), Some(2));
    assert_eq!(envoy.stat("wasmcustom.cors.origin_valid"), Some(2));
    assert_eq!(envoy.stat("wasmcustom.cors.origin_invalid"), Some(2));
}

#[test]
fn rejecting_disallowed_origins_and_hostile_origins() {
    let echo = EchoUpstream::start();
    let envoy = EnvoyConfig::http(echo.port())
        .filter(this_filter(
            r#"{"rules":[{"allow_origin_string_match":[{"exact":"https://a.example"}],"reject_disallowed_origins":true}]}"#,
        ))
        .start()
        .unwrap();
    let port = envoy.listener_port();
    let r = request(port, "POST", "/", &[("origin", "https://b.example")]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");
    assert_eq!(echo.request_count(), 0);
    for hostile in [
        &b"https://a.example/"[..],
        b"https://A.EXAMPLE",
        b"null",
        b"https://a.example\xff",
        b"https://a.example.evil",
    ] {
        let r = http_request(port, "GET", "/", &[("origin", hostile)], b"");
        assert_eq!(r.status, 403, "{hostile:?}");
    }
    let huge = format!("https://{}.example", "a".repeat(50_000));
    let r = request(port, "GET", "/", &[("origin", &huge)]);
    assert_eq!(r.status, 403);
    assert_eq!(
        request(port, "GET", "/", &[("origin", "https://a.example")]).status,
        200
    );
    assert_eq!(
        request(port, "GET", "/", &[]).status,
        200,
        "no Origin: not CORS"
    );
    assert!(envoy.is_running());
}

#[test]
fn the_shipped_envoy_config_serves_it() {
    let echo = EchoUpstream::start();
    let envoy = Envoy::start_file("envoy-configs/cors.yaml", &[(8080, echo.port())]).unwrap();
    let port = envoy.listener_port();
    let r = request(
        port,
        "OPTIONS",
        "/api/x",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(echo.request_count(), 0);
}

/// A seeded generator (xorshift), so a failure names a reproducible case.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The policies both filters get: (our JSON rule body, native CorsPolicy YAML).
const POLICIES: &[(&str, &str)] = &[
    (
        r#""allow_origin_string_match":[{"exact":"https://a.example"},{"suffix":".b.example"}],"allow_methods":"GET, PUT","allow_headers":"x-a, content-type","expose_headers":"x-id","max_age":"60","allow_credentials":true"#,
        r#"{allow_origin_string_match: [{exact: "https://a.example"}, {suffix: ".b.example"}], allow_methods: "GET, PUT", allow_headers: "x-a, content-type", expose_headers: "x-id", max_age: "60", allow_credentials: true}"#,
    ),
    (
        r#""allow_origin_string_match":[{"prefix":"https://","ignore_case":true}],"allow_methods":"*","allow_headers":"*","allow_private_network_access":true,"forward_not_matching_preflights":false"#,
        r#"{allow_origin_string_match: [{prefix: "https://", ignore_case: true}], allow_methods: "*", allow_headers: "*", allow_private_network_access: true, forward_not_matching_preflights: false}"#,
    ),
    (
        r#""allow_origin_string_match":[{"safe_regex":{"regex":"https://[a-z]+\\.c\\.example(:[0-9]+)?"}},{"exact":"*"}],"max_age":"5""#,
        r#"{allow_origin_string_match: [{safe_regex: {regex: "https://[a-z]+\\.c\\.example(:[0-9]+)?"}}, {exact: "*"}], max_age: "5"}"#,
    ),
];

#[test]
fn agrees_with_envoys_native_cors_filter() {
    let echo = EchoUpstream::start();
    // One route per policy (`/p<i>/`), the same in both Envoys.
    let mut ours = String::from(r#"{"rules":["#);
    let mut native_routes = String::new();
    for (i, (json, yaml)) in POLICIES.iter().enumerate() {
        if i > 0 {
            ours.push(',');
        }
        ours.push_str(&format!(r#"{{"match":{{"prefix":"/p{i}/"}},{json}}}"#));
        let inner = yaml.trim_start_matches('{').trim_end_matches('}');
        native_routes.push_str(&format!(
            "- match: {{prefix: \"/p{i}/\"}}\n  route: {{cluster: upstream, timeout: 15s}}\n  typed_per_filter_config:\n    envoy.filters.http.cors: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, {inner}}}\n"
        ));
    }
    ours.push_str("]}");
    let wasm = EnvoyConfig::http(echo.port())
        .filter(this_filter(&ours))
        .start()
        .unwrap();
    let native = EnvoyConfig::http(echo.port())
        .routes_yaml(&native_routes)
        .yaml_filter(
            r#"
            name: envoy.filters.http.cors
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors
            "#,
        )
        .start()
        .unwrap_or_else(|e| panic!("{e}\n{native_routes}"));
    let origins = [
        "https://a.example",
        "https://A.example",
        "https://a.example:8443",
        "http://a.example",
        "https://x.b.example",
        "https://b.example",
        "https://evil.example",
        "HTTPS://Upper.example",
        "https://q.c.example",
        "https://q.c.example:81",
        "https://q.c.example.evil",
        "",
    ];
    let methods = [
        "GET", "POST", "PUT", "OPTIONS", "OPTIONS", "OPTIONS", "DELETE",
    ];
    let requested = ["GET", "PUT", "DELETE", "PATCH", ""];
    let mut rng = Rng(0x5eed_c0de);
    let mut compared = 0;
    let mut preflights = 0;
    let mut with_origin = 0;
    for n in 0..300 {
        let path = format!("/p{}/r{n}", rng.next() % POLICIES.len() as u64);
        let method = rng.pick(&methods);
        let mut headers: Vec<(&str, String)> = Vec::new();
        let origin = rng.pick(&origins);
        if !origin.is_empty() || rng.chance(50) {
            headers.push(("origin", origin.to_string()));
        }
        if method == "OPTIONS" && rng.chance(85) {
            headers.push(("access-control-request-method", rng.pick(&requested).into()));
        }
        if rng.chance(50) {
            headers.push((
                "access-control-request-headers",
                rng.pick(&["x-a", "x-a, x-b", "content-type"]).into(),
            ));
        }
        if rng.chance(30) {
            headers.push((
                "access-control-request-private-network",
                rng.pick(&["true", "false"]).into(),
            ));
        }
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let a = request(wasm.listener_port(), method, &path, &h);
        let b = request(native.listener_port(), method, &path, &h);
        assert_eq!(
            (a.status, cors_headers(&a)),
            (b.status, cors_headers(&b)),
            "case {n}: {method} {path} {headers:?}"
        );
        compared += 1;
        if a.body.is_empty() && a.status == 200 {
            preflights += 1;
        }
        if a.header("access-control-allow-origin").is_some() {
            with_origin += 1;
        }
    }
    assert_eq!(compared, 300);
    assert!(
        with_origin > 60,
        "allowed origins must occur ({with_origin})"
    );
    assert!(
        preflights > 30,
        "the generator must produce answered preflights ({preflights})"
    );
}

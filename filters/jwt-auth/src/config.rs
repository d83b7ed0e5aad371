//! Configuration: the JSON mirrors Envoy's
//! `envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication` (proto-JSON names,
//! durations as `"300s"`), so a native `jwt_authn` config translates field for field.

use crate::jwks::Jwks;
use crate::requirement::Requirement;
use sdk_ext::callout::HttpUri;
use sdk_ext::config::{self, ConfigError};
use sdk_ext::duration::ProtoDuration;
use sdk_ext::headers::check_mutable_name;
use sdk_ext::rules::{RawRule, Rules};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Default cap on a token's size, checked before any parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// Envoy's default `clock_skew_seconds`.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// Envoy's default remote JWKS `cache_duration` (10 minutes).
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);
/// Envoy's default `jwt_cache_size`.
pub const DEFAULT_JWT_CACHE_SIZE: usize = 100;
/// Largest JWKS body accepted from a remote fetch.
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// `JwtAuthentication`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Provider name → provider.
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    /// Ordered rules `{match, requires}`; the first whose `match` matches decides.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<sdk_ext::rules::RawRuleWithMatch<RawRequirementRule>>")
    )]
    pub rules: Vec<RawRule<RawRequirementRule>>,
    /// Let CORS preflight requests (OPTIONS with Origin and
    /// Access-Control-Request-Method) through without a token.
    #[serde(default)]
    pub bypass_cors_preflight: bool,
    /// Not in Envoy: tokens longer than this are refused before any parsing.
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
}

/// `JwtProvider`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Required `iss`; empty: any issuer.
    #[serde(default)]
    pub issuer: String,
    /// Accepted `aud` values; empty: the audience is not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// A JWKS given inline.
    pub local_jwks: Option<RawLocalJwks>,
    /// A JWKS fetched from a cluster.
    pub remote_jwks: Option<RawRemoteJwks>,
    /// Headers to read the token from.
    #[serde(default)]
    pub from_headers: Vec<RawJwtHeader>,
    /// Query parameters to read the token from.
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Cookies to read the token from.
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Keep the token in the request sent upstream (default: strip it).
    #[serde(default)]
    pub forward: bool,
    /// Header to carry the verified payload upstream (base64url JSON).
    #[serde(default)]
    pub forward_payload_header: String,
    /// Pad that base64url value with `=`.
    #[serde(default)]
    pub pad_forward_payload_header: bool,
    /// Claims copied into request headers.
    #[serde(default)]
    pub claim_to_headers: Vec<RawClaimToHeader>,
    /// Tolerance for `exp` and `nbf`.
    pub clock_skew_seconds: Option<u64>,
    /// Refuse tokens without `exp`.
    #[serde(default)]
    pub require_expiration: bool,
    /// Enables the verified-token cache.
    pub jwt_cache_config: Option<RawJwtCacheConfig>,
}

/// `DataSource` (only `inline_string` can work inside a Wasm VM).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawLocalJwks {
    /// The JWKS JSON.
    pub inline_string: Option<String>,
    /// Refused with a clear reason: a Wasm filter cannot read files.
    pub filename: Option<String>,
}

/// `RemoteJwks`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRemoteJwks {
    /// Where the JWKS is served.
    pub http_uri: RawHttpUri,
    /// How long a fetched JWKS is used before it is fetched again.
    pub cache_duration: Option<ProtoDuration>,
}

/// `config.core.v3.HttpUri`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawHttpUri {
    /// The JWKS URI.
    pub uri: String,
    /// The Envoy cluster that serves it.
    pub cluster: String,
    /// How long to wait for it.
    pub timeout: ProtoDuration,
}

/// `JwtHeader`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawJwtHeader {
    /// Header name.
    pub name: String,
    /// Text before the token in the value (e.g. `"Bearer "`).
    #[serde(default)]
    pub value_prefix: String,
}

/// `JwtClaimToHeader`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawClaimToHeader {
    /// Request header to set.
    pub header_name: String,
    /// Claim to copy; nested claims with dots (`"realm.role"`).
    pub claim_name: String,
}

/// `JwtCacheConfig`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawJwtCacheConfig {
    /// Entries kept (default 100).
    #[serde(default)]
    pub jwt_cache_size: usize,
}

/// `RequirementRule` without its `match` (required; read by sdk-ext `Rules`: Envoy's
/// `RouteMatch` fields plus the sdk-ext extensions).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRequirementRule {
    /// What they need; absent: no JWT is required.
    pub requires: Option<RawRequirement>,
}

/// `JwtRequirement`: exactly one field set.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRequirement {
    /// A valid token from this provider.
    pub provider_name: Option<String>,
    /// A valid token from this provider, with one of these audiences.
    pub provider_and_audiences: Option<RawProviderAndAudiences>,
    /// Any one of these requirements.
    pub requires_any: Option<RawRequirementList>,
    /// All of these requirements.
    pub requires_all: Option<RawRequirementList>,
    /// Allow requests without a token; a token that is present must be valid.
    pub allow_missing: Option<Empty>,
    /// Allow every request; valid tokens are still forwarded and their claims extracted.
    pub allow_missing_or_failed: Option<Empty>,
}

/// `ProviderWithAudiences`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawProviderAndAudiences {
    /// The provider.
    pub provider_name: String,
    /// Audiences that replace the provider's.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// `JwtRequirementOrList` / `JwtRequirementAndList`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRequirementList {
    /// The requirements.
    pub requirements: Vec<RawRequirement>,
}

/// `google.protobuf.Empty`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Where a provider looks for its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A header, after a prefix (`Authorization: Bearer <token>`).
    Header {
        /// Lowercased header name.
        name: String,
        /// Text before the token.
        prefix: String,
    },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// Where a provider's JWKS comes from.
#[derive(Debug)]
pub enum KeySource {
    /// Inline, parsed at config time.
    Local(Jwks),
    /// Fetched from a cluster, refreshed every `cache_duration`.
    Remote {
        /// The JWKS URI and its cluster.
        uri: HttpUri,
        /// How long a fetched JWKS is used.
        cache_duration: Duration,
    },
}

/// A validated provider.
#[derive(Debug)]
pub struct Provider {
    /// Its name in `providers`.
    pub name: String,
    /// Required issuer (`None`: any).
    pub issuer: Option<String>,
    /// Accepted audiences (empty: not checked).
    pub audiences: Vec<String>,
    /// The keys.
    pub keys: KeySource,
    /// Token locations, in the order they are tried.
    pub locations: Vec<Location>,
    /// Keep the token upstream.
    pub forward: bool,
    /// Lowercased header for the payload, if any.
    pub forward_payload_header: Option<String>,
    /// Pad the payload header.
    pub pad_forward_payload_header: bool,
    /// (header, claim path) pairs.
    pub claim_to_headers: Vec<(String, Vec<String>)>,
    /// Tolerance for `exp`/`nbf`, seconds.
    pub clock_skew: u64,
    /// Refuse tokens without `exp`.
    pub require_expiration: bool,
    /// Verified-token cache size (0: no cache).
    pub cache_size: usize,
}

/// A validated rule (its match lives in [`Config::rules`]).
#[derive(Debug)]
pub struct Rule {
    /// What they need (`None`: nothing).
    pub requires: Option<Requirement>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Providers, indexed by [`Requirement`]s.
    pub providers: Vec<Provider>,
    /// Ordered rules; the first match decides.
    pub rules: Rules<Rule>,
    /// Let CORS preflights through.
    pub bypass_cors_preflight: bool,
    /// Size cap for tokens.
    pub max_token_bytes: usize,
    /// Every header the providers write (`forward_payload_header`, `claim_to_headers`),
    /// lowercase, each once: removed from every request before anything else happens.
    pub written_headers: Vec<String>,
}

impl Config {
    /// Parses and validates JSON configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = config::parse_serde(bytes)?;
        let mut providers = Vec::with_capacity(raw.providers.len());
        for (name, p) in &raw.providers {
            let field = format!("providers.{name}");
            providers.push(Provider::compile(name, p).map_err(|e| e.within(&field))?);
        }
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        if let Some(i) = raw.rules.iter().position(|r| r.matcher.is_none()) {
            // Envoy's RequirementRule requires its match.
            return Err(ConfigError::new(
                format!("rules[{i}].match"),
                "missing field `match`",
            ));
        }
        let rules = Rules::compile(&raw.rules, "rules", |r: &RawRequirementRule, field| {
            let requires = r
                .requires
                .as_ref()
                .map(|q| Requirement::compile(q, &names, &format!("{field}.requires")))
                .transpose()?;
            Ok(Rule { requires })
        })?;
        let max_token_bytes = match raw.max_token_bytes {
            None => DEFAULT_MAX_TOKEN_BYTES,
            Some(0) => return Err(ConfigError::new("max_token_bytes", "must be at least 1")),
            Some(n) => n,
        };
        let written_headers = crate::identity::written_headers(&providers);
        Ok(Self {
            providers,
            rules,
            bypass_cors_preflight: raw.bypass_cors_preflight,
            max_token_bytes,
            written_headers,
        })
    }
}

impl Provider {
    fn compile(name: &str, p: &RawProvider) -> Result<Self, ConfigError> {
        let keys = match (&p.local_jwks, &p.remote_jwks) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "local_jwks",
                    "set either local_jwks or remote_jwks, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "remote_jwks",
                    "one of local_jwks or remote_jwks is required",
                ))
            }
            (Some(local), None) => KeySource::Local(compile_local(local)?),
            (None, Some(remote)) => compile_remote(remote)?,
        };
        let mut locations = Vec::new();
        for (i, h) in p.from_headers.iter().enumerate() {
            let name = check_mutable_name(&h.name)
                .map_err(|e| ConfigError::new(format!("from_headers[{i}].name"), e))?;
            locations.push(Location::Header {
                name,
                prefix: h.value_prefix.clone(),
            });
        }
        for (i, q) in p.from_params.iter().enumerate() {
            if q.is_empty() {
                return Err(ConfigError::new(format!("from_params[{i}]"), "is empty"));
            }
            locations.push(Location::Param(q.clone()));
        }
        for (i, c) in p.from_cookies.iter().enumerate() {
            if c.is_empty() || !sdk_ext::headers::is_token(c) {
                return Err(ConfigError::new(
                    format!("from_cookies[{i}]"),
                    format!("{c:?} is not a cookie name"),
                ));
            }
            locations.push(Location::Cookie(c.clone()));
        }
        if locations.is_empty() {
            // Envoy's defaults: `Authorization: Bearer <token>`, then `?access_token=`.
            locations.push(Location::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            });
            locations.push(Location::Param("access_token".into()));
        }
        let forward_payload_header = if p.forward_payload_header.is_empty() {
            None
        } else {
            Some(
                check_mutable_name(&p.forward_payload_header)
                    .map_err(|e| ConfigError::new("forward_payload_header", e))?,
            )
        };
        let mut claim_to_headers = Vec::with_capacity(p.claim_to_headers.len());
        for (i, c) in p.claim_to_headers.iter().enumerate() {
            let header = check_mutable_name(&c.header_name)
                .map_err(|e| ConfigError::new(format!("claim_to_headers[{i}].header_name"), e))?;
            let path: Vec<String> = c.claim_name.split('.').map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    format!("claim_to_headers[{i}].claim_name"),
                    format!("{:?} is not a claim name (a.b.c)", c.claim_name),
                ));
            }
            claim_to_headers.push((header, path));
        }
        let cache_size = match &p.jwt_cache_config {
            None => 0,
            Some(c) if c.jwt_cache_size == 0 => DEFAULT_JWT_CACHE_SIZE,
            Some(c) => c.jwt_cache_size,
        };
        Ok(Self {
            name: name.to_string(),
            issuer: (!p.issuer.is_empty()).then(|| p.issuer.clone()),
            audiences: p.audiences.clone(),
            keys,
            locations,
            forward: p.forward,
            forward_payload_header,
            pad_forward_payload_header: p.pad_forward_payload_header,
            claim_to_headers,
            clock_skew: p.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS),
            require_expiration: p.require_expiration,
            cache_size,
        })
    }
}

fn compile_local(local: &RawLocalJwks) -> Result<Jwks, ConfigError> {
    if local.filename.is_some() {
        return Err(ConfigError::new(
            "local_jwks.filename",
            "a Wasm filter cannot read files; put the JWKS in local_jwks.inline_string",
        ));
    }
    let text = local.inline_string.as_deref().ok_or_else(|| {
        ConfigError::new("local_jwks.inline_string", "missing field `inline_string`")
    })?;
    let jwks = Jwks::parse(text.as_bytes())
        .map_err(|e| ConfigError::new("local_jwks.inline_string", e))?;
    for skipped in jwks.skipped() {
        log::warn!("local_jwks: key skipped: {skipped}");
    }
    Ok(jwks)
}

fn compile_remote(remote: &RawRemoteJwks) -> Result<KeySource, ConfigError> {
    let u = &remote.http_uri;
    let uri = HttpUri::new(&u.uri, &u.cluster, u.timeout.get())
        .map_err(|e| e.within("remote_jwks.http_uri"))?;
    let cache_duration = remote
        .cache_duration
        .map_or(DEFAULT_CACHE_DURATION, ProtoDuration::get);
    if cache_duration < Duration::from_secs(1) {
        return Err(ConfigError::new(
            "remote_jwks.cache_duration",
            "must be at least 1s",
        ));
    }
    Ok(KeySource::Remote {
        uri,
        cache_duration,
    })
}

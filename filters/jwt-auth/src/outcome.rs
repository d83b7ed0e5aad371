//! Why a request was refused: one enum, with the status, the message (Envoy's wording
//! where Envoy has one) and the metric for each reason.

/// A reason to refuse a token (or its absence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No token in any of the provider's locations.
    Missing,
    /// The token is over `max_token_bytes`.
    TooLarge,
    /// Not a well-formed JWS, or a claim of the wrong type.
    Malformed(&'static str),
    /// `alg` is `none` or not supported.
    UnsupportedAlg,
    /// `iss` is not the provider's issuer.
    BadIssuer,
    /// No `aud` is among the accepted audiences.
    BadAudience,
    /// `exp` is past (beyond the clock skew).
    Expired,
    /// `nbf` is in the future (beyond the clock skew).
    NotYetValid,
    /// `exp` is missing and the provider requires it.
    MissingExpiration,
    /// No key in the JWKS fits the token's `kid` and `alg`.
    NoMatchingKey,
    /// The signature does not verify.
    BadSignature,
    /// The provider's remote JWKS has not been fetched (fail closed).
    JwksUnavailable,
    /// A verified token's claim for `claim_to_headers` is not a valid header value (CR, LF,
    /// NUL or another control byte): refused rather than copied.
    BadClaimValue,
}

impl Failure {
    /// Every reason, for defining one metric each.
    pub const ALL: [Failure; 13] = [
        Failure::Missing,
        Failure::TooLarge,
        Failure::Malformed(""),
        Failure::UnsupportedAlg,
        Failure::BadIssuer,
        Failure::BadAudience,
        Failure::Expired,
        Failure::NotYetValid,
        Failure::MissingExpiration,
        Failure::NoMatchingKey,
        Failure::BadSignature,
        Failure::JwksUnavailable,
        Failure::BadClaimValue,
    ];

    /// 403 for an audience mismatch (as Envoy), 401 for everything else.
    pub fn status(self) -> u16 {
        match self {
            Failure::BadAudience => 403,
            _ => 401,
        }
    }

    /// The message in the JSON body.
    pub fn message(self) -> &'static str {
        match self {
            Failure::Missing => "Jwt is missing",
            Failure::TooLarge => "Jwt is larger than the configured limit",
            Failure::Malformed(why) => why,
            Failure::UnsupportedAlg => "Jwt header [alg] is not supported",
            Failure::BadIssuer => "Jwt issuer is not configured",
            Failure::BadAudience => "Audiences in Jwt are not allowed",
            Failure::Expired => "Jwt is expired",
            Failure::NotYetValid => "Jwt not yet valid",
            Failure::MissingExpiration => "Jwt has no [exp] and the provider requires one",
            Failure::NoMatchingKey => "Jwks doesn't have key to match kid or alg from Jwt",
            Failure::BadSignature => "Jwt verification fails",
            Failure::JwksUnavailable => "Jwks remote fetch is failed",
            Failure::BadClaimValue => "Jwt claim is not a valid header value",
        }
    }

    /// Short name: the metric suffix (`jwt_auth.denied.reason.<name>`) and the response details.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::TooLarge => "too_large",
            Failure::Malformed(_) => "malformed",
            Failure::UnsupportedAlg => "unsupported_alg",
            Failure::BadIssuer => "bad_issuer",
            Failure::BadAudience => "bad_audience",
            Failure::Expired => "expired",
            Failure::NotYetValid => "not_yet_valid",
            Failure::MissingExpiration => "missing_expiration",
            Failure::NoMatchingKey => "no_matching_key",
            Failure::BadSignature => "bad_signature",
            Failure::JwksUnavailable => "jwks_unavailable",
            Failure::BadClaimValue => "bad_claim_value",
        }
    }

    /// Index into [`Failure::ALL`].
    pub fn index(self) -> usize {
        match self {
            Failure::Missing => 0,
            Failure::TooLarge => 1,
            Failure::Malformed(_) => 2,
            Failure::UnsupportedAlg => 3,
            Failure::BadIssuer => 4,
            Failure::BadAudience => 5,
            Failure::Expired => 6,
            Failure::NotYetValid => 7,
            Failure::MissingExpiration => 8,
            Failure::NoMatchingKey => 9,
            Failure::BadSignature => 10,
            Failure::JwksUnavailable => 11,
            Failure::BadClaimValue => 12,
        }
    }

    /// Whether a token was presented (RFC 6750: then `error="invalid_token"`).
    pub fn token_presented(self) -> bool {
        !matches!(self, Failure::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_all() {
        for (i, f) in Failure::ALL.iter().enumerate() {
            assert_eq!(f.index(), i, "{f:?}");
        }
    }
}

//! jwt-auth's JWKS reader (`Jwks::parse`: the document, each key's fields, RSA/EC/OKP/oct
//! key construction) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(jwks) = jwt_auth::jwks::Jwks::parse(data) {
        assert!(!jwks.keys().is_empty(), "a JWKS without usable keys was accepted");
    }
});

//! jwt-auth: JWT authentication configured like Envoy's `jwt_authn`.
//! Registration only. The logic is plain Rust: `config.rs` (configuration), `token.rs`
//! (parsing and claims), `jwks.rs` (keys), `verify.rs` (signatures: host BoringSSL or
//! pure Rust), `requirement.rs` (which providers a request needs), `extract.rs` (where
//! tokens are), `cache.rs` (verified tokens), `remote.rs` (JWKS fetch schedule),
//! `outcome.rs` (refusal reasons), `identity.rs` (the headers it writes: stripping forged
//! copies, claim values). `filter.rs` is the glue to the host.

pub mod cache;
pub mod config;
pub mod extract;
pub mod filter;
pub mod identity;
pub mod jwks;
pub mod outcome;
pub mod remote;
pub mod requirement;
pub mod token;
pub mod verify;

/// The root id Envoy's `root_id` must name, and the prefix of log lines.
pub const NAME: &str = "jwt-auth";

sdk_ext::main!(plugin: filter::Shared, http: filter::Stream);

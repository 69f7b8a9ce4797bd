//! keyfed tokens: compact JWS (RFC 7515) signed with Ed25519 (`alg: EdDSA`).
//!
//! The header's `kid` names the signing shard and key serial
//! (`<shard-id>.<serial>`), so a validator picks the key without trying
//! several. The claims ([`Claims`]) carry everything a Keystone validation
//! response needs except names of global data (domains, roles, catalog),
//! which validators hold in memory; validation therefore reads no database.
//!
//! [`parse`] does the cheap structural checks (no crypto, no I/O) so garbage
//! is rejected before any key look-up; [`Unverified::verify`] checks the
//! signature and decodes the claims; [`Claims::check_time`] the expiry;
//! [`keystone_body`] renders the Keystone token body from verified claims.

mod body;
mod claims;
#[cfg(test)]
mod fuzz;
mod jws;

pub use body::{keystone_body, keystone_body_bytes};
pub use claims::{shard_set_claim, Claims, Scope, MAX_SHARD_SET_BYTES};
pub use jws::{parse, Signer, Unverified, MAX_TOKEN_LEN};

/// Why a token was rejected. All of these mean 401 to a client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed keyfed JWS (bad structure, encoding or JSON).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A JWS algorithm other than EdDSA.
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    /// The `kid` names no key the validator trusts.
    #[error("unknown token signer")]
    UnknownSigner,
    /// The signature does not verify.
    #[error("bad token signature")]
    BadSignature,
    /// Past `expires_at`.
    #[error("token expired")]
    Expired,
    /// Issued (`iat`) later than now plus the allowed clock skew.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// Matched a revocation event.
    #[error("token revoked")]
    Revoked,
    /// Signing failed (claims not serializable).
    #[error("token could not be encoded")]
    Encode,
}

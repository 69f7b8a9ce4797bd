//! Issuing and validating this shard's tokens, and rendering the Keystone
//! token body. Validation is offline: signature, expiry and revocation are
//! checked in memory and names come from the global-data snapshot.

use crate::error::Result;
use crate::state::Shard;
use keyfed_shared::time::now_micros;
use keyfed_shared::token::{self, keystone_body, keystone_body_bytes, Claims, TokenError};
use serde_json::Value;

impl Shard {
    /// Signs the claims.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        Ok(self.own.load().signer.sign(claims)?)
    }

    /// Validates a token: structure, signer, signature, expiry (extended by
    /// the configured window when `allow_expired`), revocation.
    /// A well-formed, unexpired token from a signer this shard does not
    /// know yet (a member that joined moments ago) makes it look the signer
    /// up in the directory first, with the gateways' bounds
    /// ([`keyfed_federation::validate::Validator::look_up_signer`]).
    pub async fn validate(&self, token: &str, allow_expired: bool) -> Result<Claims, TokenError> {
        let mut outcome = self.validate_inner(token, allow_expired);
        if let (Err(TokenError::UnknownSigner), Some(f)) = (&outcome, &self.federation) {
            if f.signers.look_up_signer(token, allow_expired).await {
                outcome = self.validate_inner(token, allow_expired);
            }
        }
        self.metrics.validation(match &outcome {
            Ok(_) => "valid",
            Err(TokenError::Expired) => "expired",
            Err(TokenError::IssuedInFuture) => "issued_in_future",
            Err(TokenError::Revoked) => "revoked",
            Err(TokenError::UnknownSigner) => "unknown_signer",
            Err(TokenError::BadSignature) => "bad_signature",
            Err(_) => "malformed",
        });
        outcome
    }

    fn validate_inner(&self, token: &str, allow_expired: bool) -> Result<Claims, TokenError> {
        let unverified = token::parse(token)?;
        let key = self
            .verifying_key(unverified.kid())
            .ok_or(TokenError::UnknownSigner)?;
        let claims = unverified.verify(&key)?;
        let now = now_micros();
        let grace = if allow_expired {
            self.config.tokens.allow_expired_window_secs as i64 * 1_000_000
        } else {
            0
        };
        let max_skew = self.config.tokens.max_clock_skew_secs as i64 * 1_000_000;
        claims.check_time(now, grace, max_skew)?;
        if self.is_revoked(&claims.facts()) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// The `{"token": {...}}` body Keystone returns for these claims.
    pub fn token_body(&self, claims: &Claims, with_catalog: bool) -> Value {
        keystone_body(claims, &self.global(), with_catalog)
    }

    /// [`Shard::token_body`] serialized directly (the validation hot path).
    pub fn token_body_bytes(&self, claims: &Claims, with_catalog: bool) -> Vec<u8> {
        keystone_body_bytes(claims, &self.global(), with_catalog)
    }
}

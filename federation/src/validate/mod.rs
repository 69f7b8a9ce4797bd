//! Offline token validation and the Keystone token body.
//!
//! [`Validator::validate`] does no I/O. In order, cheapest first:
//! structure ([`keyfed_shared::token::parse`]: garbage is rejected before
//! any look-up), the signer's key by `kid` from the [`FederationView`] (it
//! holds every member's key, so an unknown `kid` is rejected at once), the
//! signature (skipped when the token's digest is in the cache and the
//! `kid` still maps to the key that verified it), expiry (optionally
//! extended by the allow-expired window) and revocation. Expiry and
//! revocation are checked on every call, cached or not: a revocation that
//! arrives after a token was cached takes effect on its next use. A revoked
//! token stays cached so that repeating it costs no signature check.

mod cache;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use keyfed_shared::time::now_micros;
use keyfed_shared::token::{self, keystone_body, keystone_body_bytes, Claims, TokenError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::cache::{digest, Cached, TokenCache};
use crate::revocations::Revocations;
use crate::view::FederationView;

/// Microseconds per second.
const MICROS: i64 = 1_000_000;

/// The validator's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidatorConfig {
    /// Most verified tokens cached, by digest (0 disables the cache). An
    /// entry costs about a kilobyte (claims, digest, key).
    pub cache_capacity: usize,
    /// Longest a verified token stays cached, in seconds (0 disables the
    /// cache). An entry also leaves the cache once the token can no longer
    /// validate, even with `allow_expired`.
    pub cache_max_ttl_secs: u64,
    /// How long past its expiry a token still validates when the caller
    /// allows expired tokens (Keystone's `allow_expired`), in seconds.
    /// Keystone's default is two days; keep it equal to the shards' setting.
    pub allow_expired_window_secs: u64,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 100_000,
            cache_max_ttl_secs: 300,
            allow_expired_window_secs: 2 * 24 * 3600,
        }
    }
}

/// Counters of the verified-token cache, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    /// Validations that found the token cached (no signature check).
    pub hits: u64,
    /// Validations of well-formed tokens from a known signer that did not.
    pub misses: u64,
    /// Tokens cached now.
    pub entries: usize,
}

/// Validates tokens offline; see the module doc. Share it behind an `Arc`.
pub struct Validator {
    view: Arc<FederationView>,
    revocations: Arc<Revocations>,
    cache: TokenCache,
    max_ttl: i64,
    allow_expired_window: i64,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("cache", &self.cache_stats())
            .finish_non_exhaustive()
    }
}

/// Seconds to microseconds, saturating.
fn micros(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(MICROS)
}

impl Validator {
    /// A validator reading keys and global data from `view` and revocations
    /// from `revocations`.
    pub fn new(
        view: Arc<FederationView>,
        revocations: Arc<Revocations>,
        config: &ValidatorConfig,
    ) -> Self {
        let capacity = if config.cache_max_ttl_secs == 0 {
            0
        } else {
            config.cache_capacity
        };
        Self {
            view,
            revocations,
            cache: TokenCache::new(capacity),
            max_ttl: micros(config.cache_max_ttl_secs),
            allow_expired_window: micros(config.allow_expired_window_secs),
        }
    }

    /// Validates `token` now: its claims if it is well formed, signed by a
    /// member's key, not expired (or, when `allow_expired`, expired less
    /// than the allow-expired window ago) and not revoked.
    pub fn validate(&self, token: &str, allow_expired: bool) -> Result<Arc<Claims>, TokenError> {
        self.validate_at(token, allow_expired, now_micros())
    }

    /// [`Validator::validate`] at `now` (unix microseconds).
    fn validate_at(
        &self,
        token: &str,
        allow_expired: bool,
        now: i64,
    ) -> Result<Arc<Claims>, TokenError> {
        let unverified = token::parse(token)?;
        let key = self
            .view
            .key(unverified.kid())
            .ok_or(TokenError::UnknownSigner)?;
        let digest = digest(token);
        let claims = match self.cache.get(&digest, now) {
            Some(hit) if hit.key == *key.as_bytes() => hit.claims,
            _ => {
                let claims = Arc::new(unverified.verify(&key)?);
                let last_valid = claims.expires_at.saturating_add(self.allow_expired_window);
                let entry = Cached {
                    claims: claims.clone(),
                    key: *key.as_bytes(),
                    evict_at: last_valid.min(now.saturating_add(self.max_ttl)),
                };
                self.cache.insert(digest, entry, now);
                claims
            }
        };
        let grace = if allow_expired {
            self.allow_expired_window
        } else {
            0
        };
        claims.check_time(now.saturating_sub(grace))?;
        if self.revocations.is_revoked(&claims.facts()) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// The `{"token": {...}}` body Keystone returns for these claims, names
    /// and catalog from the view's global data (the same rendering as the
    /// shards': [`keystone_body`]).
    pub fn token_body(&self, claims: &Claims, with_catalog: bool) -> Value {
        keystone_body(claims, &self.view.global(), with_catalog)
    }

    /// [`Validator::token_body`] serialized directly, without building a
    /// JSON tree (the validation hot path).
    pub fn token_body_bytes(&self, claims: &Claims, with_catalog: bool) -> Vec<u8> {
        keystone_body_bytes(claims, &self.view.global(), with_catalog)
    }

    /// Whether validation has what it needs: the view's snapshots are
    /// loaded and the revocation stream is followed.
    pub fn ready(&self) -> bool {
        self.view.ready() && self.revocations.ready()
    }

    /// The cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.cache.hits(),
            misses: self.cache.misses(),
            entries: self.cache.len(),
        }
    }
}

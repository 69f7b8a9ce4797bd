//! Offline token validation and the Keystone token body.
//!
//! [`Validator::validate`] does no I/O. In order, cheapest first:
//! structure ([`keyfed_shared::token::parse`]: garbage is rejected before
//! any look-up), the signer's key by `kid` from the [`FederationView`], the
//! signature (skipped when the token's digest is in the cache and the
//! `kid` still maps to the key that verified it), expiry (optionally
//! extended by the allow-expired window) and revocation. Expiry and
//! revocation are checked on every call, cached or not: a revocation that
//! arrives after a token was cached takes effect on its next use. A revoked
//! token stays cached so that repeating it costs no signature check.
//!
//! A `kid` the view does not know may name a shard that joined moments
//! ago. [`Validator::validate_token`] (async) then looks the member up in
//! the directory ([`lookup`]: single flight per member, negative cache,
//! bounded), but only for a token that is well formed, whose `kid` has the
//! form `<member-id>.<serial>` and whose `exp` — read before verification,
//! and trusted for nothing else — has not passed; a bad signature from a
//! known signer never causes a look-up. The synchronous
//! [`Validator::validate`] rejects unknown signers outright. Shards, which
//! check their own key and revocations themselves, call
//! [`Validator::look_up_signer`] for the same look-up under the same
//! bounds: one behaviour for every validator in the federation.
//!
//! [`Validator::body`] renders the Keystone body of a validated token and
//! keeps it in the token's cache entry, tagged with the global-data
//! revision, so a repeated validation renders nothing.

mod cache;
#[cfg(test)]
mod fuzz;
mod lookup;
#[cfg(test)]
mod lookup_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keyfed_shared::time::now_micros;
use keyfed_shared::token::{
    self, keystone_body, keystone_body_bytes, Claims, TokenError, Unverified,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::cache::{digest, Bodies, Cached, Digest, TokenCache};
pub use self::lookup::LookupStats;
use self::lookup::{member_of_kid, LookupLimits, Resolved, SignerLookups};
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
    /// How long a signer (member) that a directory look-up did not find is
    /// not looked up again, in milliseconds: a stream of tokens naming an
    /// unknown signer causes at most one look-up per signer per period.
    pub unknown_signer_ttl_ms: u64,
    /// Most unknown signers remembered; beyond it arbitrary ones are
    /// forgotten (bounds memory under tokens naming many signers). 0
    /// disables look-ups: unknown signers are then rejected at once.
    pub unknown_signer_capacity: usize,
    /// Most signers looked up in the directory at once; a validation that
    /// would start another is rejected without a look-up. 0 disables
    /// look-ups.
    pub max_signer_lookups_in_flight: usize,
    /// How far in the future a token's issue time (`iat`) may be, in
    /// seconds, for clocks that are not quite in step: a token issued later
    /// than now plus this is refused. Default 60; keep it equal to the
    /// shards' `tokens.max_clock_skew_secs`.
    pub max_clock_skew_secs: u64,
}

/// The default of `max_clock_skew_secs` (gateways) and
/// `tokens.max_clock_skew_secs` (shards).
pub const DEFAULT_MAX_CLOCK_SKEW_SECS: u64 = 60;

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 100_000,
            cache_max_ttl_secs: 300,
            allow_expired_window_secs: 2 * 24 * 3600,
            unknown_signer_ttl_ms: 30_000,
            unknown_signer_capacity: 10_000,
            max_signer_lookups_in_flight: 64,
            max_clock_skew_secs: DEFAULT_MAX_CLOCK_SKEW_SECS,
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

/// A token that passed validation: its claims, and what is needed to
/// render (or reuse) its body.
#[derive(Clone, Debug)]
pub struct Valid {
    claims: Arc<Claims>,
    digest: Digest,
    /// The bodies cached with the token when it was validated.
    bodies: Bodies,
}

impl Valid {
    /// The verified claims.
    pub fn claims(&self) -> &Arc<Claims> {
        &self.claims
    }

    /// The verified claims, owned.
    pub fn into_claims(self) -> Arc<Claims> {
        self.claims
    }
}

/// Why [`Validator::check_at`] did not validate a token.
#[derive(Debug)]
enum Rejected {
    /// Final.
    Token(TokenError),
    /// A well-formed, unexpired token naming this `kid`, which the view
    /// does not know: worth a directory look-up.
    UnknownSigner(String),
}

impl From<TokenError> for Rejected {
    fn from(error: TokenError) -> Self {
        Rejected::Token(error)
    }
}

impl Rejected {
    fn into_error(self) -> TokenError {
        match self {
            Rejected::Token(error) => error,
            Rejected::UnknownSigner(_) => TokenError::UnknownSigner,
        }
    }
}

/// Validates tokens offline; see the module doc. Share it behind an `Arc`.
pub struct Validator {
    view: Arc<FederationView>,
    revocations: Arc<Revocations>,
    lookups: Arc<SignerLookups>,
    cache: TokenCache,
    max_ttl: i64,
    allow_expired_window: i64,
    max_skew: i64,
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
        let limits = LookupLimits {
            ttl: Duration::from_millis(config.unknown_signer_ttl_ms),
            capacity: config.unknown_signer_capacity,
            max_in_flight: config.max_signer_lookups_in_flight,
        };
        Self {
            view,
            revocations,
            lookups: Arc::new(SignerLookups::new(limits)),
            cache: TokenCache::new(capacity),
            max_ttl: micros(config.cache_max_ttl_secs),
            allow_expired_window: micros(config.allow_expired_window_secs),
            max_skew: micros(config.max_clock_skew_secs),
        }
    }

    /// Validates `token` now: its claims if it is well formed, signed by a
    /// member's key, not expired (or, when `allow_expired`, expired less
    /// than the allow-expired window ago) and not revoked. A signer the
    /// view does not know is rejected without a look-up.
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
        self.check_at(token, allow_expired, now)
            .map(Valid::into_claims)
            .map_err(Rejected::into_error)
    }

    /// [`Validator::validate`], except that a well-formed, unexpired token
    /// naming a signer the view does not know causes a bounded directory
    /// look-up of that signer (see the module doc). A known signer costs
    /// what [`Validator::validate`] does. Must be called within a Tokio
    /// runtime.
    pub async fn validate_token(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<Valid, TokenError> {
        let kid = match self.check_at(token, allow_expired, now_micros()) {
            Ok(valid) => return Ok(valid),
            Err(Rejected::Token(error)) => return Err(error),
            Err(Rejected::UnknownSigner(kid)) => kid,
        };
        if !self.resolve(&kid).await {
            return Err(TokenError::UnknownSigner);
        }
        self.check_at(token, allow_expired, now_micros())
            .map_err(Rejected::into_error)
    }

    /// For a validator that checks keys itself (a shard: its own key first,
    /// its own revocations too): looks up the signer of `token` under the
    /// same conditions and bounds as [`Validator::validate_token`] — a
    /// well-formed, unexpired token whose `kid` names a member the view
    /// does not know. Whether the key may be known now (validate again);
    /// `false` for anything else, with no look-up.
    pub async fn look_up_signer(&self, token: &str, allow_expired: bool) -> bool {
        let Ok(unverified) = token::parse(token) else {
            return false;
        };
        if self.view.key(unverified.kid()).is_some() {
            return true;
        }
        match self.unknown_signer(&unverified, allow_expired, now_micros()) {
            Rejected::UnknownSigner(kid) => self.resolve(&kid).await,
            Rejected::Token(_) => false,
        }
    }

    /// Looks up the member `kid` names (see [`lookup`]): whether its key
    /// may be known now.
    async fn resolve(&self, kid: &str) -> bool {
        let Some(member) = member_of_kid(kid) else {
            return false;
        };
        self.lookups.resolve(&self.view, member, kid).await == Resolved::Retry
    }

    /// How far past expiry a token still validates.
    fn grace(&self, allow_expired: bool) -> i64 {
        if allow_expired {
            self.allow_expired_window
        } else {
            0
        }
    }

    /// Why a token whose signer the view does not know is refused: its
    /// signer may be looked up only if its `kid` has the member form and
    /// the token has not expired (`exp` read unverified, trusted for
    /// nothing else).
    fn unknown_signer(
        &self,
        unverified: &Unverified<'_>,
        allow_expired: bool,
        now: i64,
    ) -> Rejected {
        if member_of_kid(unverified.kid()).is_none() {
            return TokenError::UnknownSigner.into();
        }
        match unverified.unverified_expiry() {
            Err(e) => e.into(),
            Ok(expires_at) if now.saturating_sub(self.grace(allow_expired)) >= expires_at => {
                TokenError::Expired.into()
            }
            Ok(_) => Rejected::UnknownSigner(unverified.kid().to_owned()),
        }
    }

    /// The checks of the module doc at `now` (unix microseconds), with no
    /// I/O.
    fn check_at(&self, token: &str, allow_expired: bool, now: i64) -> Result<Valid, Rejected> {
        let unverified = token::parse(token)?;
        let grace = self.grace(allow_expired);
        let Some(key) = self.view.key(unverified.kid()) else {
            return Err(self.unknown_signer(&unverified, allow_expired, now));
        };
        let digest = digest(token);
        let (claims, bodies) = match self.cache.get(&digest, now) {
            Some(hit) if hit.key == *key.as_bytes() => (hit.claims, hit.bodies),
            _ => {
                let claims = Arc::new(unverified.verify(&key)?);
                let last_valid = claims.expires_at.saturating_add(self.allow_expired_window);
                let entry = Cached {
                    claims: claims.clone(),
                    key: *key.as_bytes(),
                    evict_at: last_valid.min(now.saturating_add(self.max_ttl)),
                    bodies: Bodies::default(),
                };
                self.cache.insert(digest, entry, now);
                (claims, Bodies::default())
            }
        };
        claims.check_time(now, grace, self.max_skew)?;
        if self.revocations.is_revoked(&claims.facts()) {
            return Err(TokenError::Revoked.into());
        }
        Ok(Valid {
            claims,
            digest,
            bodies,
        })
    }

    /// The `{"token": {...}}` body Keystone returns for these claims, names
    /// and catalog from the view's global data (the same rendering as the
    /// shards': [`keystone_body`]).
    pub fn token_body(&self, claims: &Claims, with_catalog: bool) -> Value {
        keystone_body(claims, &self.view.global(), with_catalog)
    }

    /// [`Validator::token_body`] serialized directly, without building a
    /// JSON tree.
    pub fn token_body_bytes(&self, claims: &Claims, with_catalog: bool) -> Vec<u8> {
        keystone_body_bytes(claims, &self.view.global(), with_catalog)
    }

    /// The serialized body of a validated token (the validation hot path):
    /// the one cached with the token if it was rendered from the current
    /// global data, else rendered now and cached with the token.
    pub fn body(&self, valid: &Valid, with_catalog: bool) -> Bytes {
        if let Some(body) = valid.bodies.get(with_catalog, self.view.global_revision()) {
            return body.clone();
        }
        let (revision, global) = self.view.global_with_revision();
        let body = Bytes::from(keystone_body_bytes(&valid.claims, &global, with_catalog));
        self.cache
            .set_body(&valid.digest, with_catalog, revision, body.clone());
        body
    }

    /// Whether validation has what it needs: the view's snapshots are
    /// loaded and the revocation stream is followed.
    pub fn ready(&self) -> bool {
        self.view.ready() && self.revocations.ready()
    }

    /// The signer look-up counters.
    pub fn lookup_stats(&self) -> LookupStats {
        self.lookups.stats()
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

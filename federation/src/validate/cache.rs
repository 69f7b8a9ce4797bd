//! The bounded cache of verified tokens, keyed by the SHA-256 digest of the
//! token string.
//!
//! Sixteen independently locked shards (picked by the digest's first byte)
//! keep contention low; each holds at most its share of the capacity. An
//! entry carries its own deadline (the validator sets it to the earliest of
//! the token's last valid instant and a maximum time to live), after which
//! it is never returned. When a shard is full, expired entries are swept;
//! if that frees less than an eighth of the shard, arbitrary entries are
//! evicted until it does, so a sweep's cost is spread over many inserts.
//!
//! An entry also keeps the Keystone bodies rendered for the token (with and
//! without the catalog), each tagged with the global-data revision it was
//! rendered from, so that validating a cached token again renders nothing
//! while global data is unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use keyfed_shared::token::Claims;
use sha2::{Digest as _, Sha256};

/// The SHA-256 digest of a token string.
pub(crate) type Digest = [u8; 32];

/// Number of independently locked shards.
const SHARDS: usize = 16;

/// The digest of `token`.
pub(crate) fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

/// The Keystone bodies rendered for one token, by `with_catalog` (index 0
/// without, 1 with), each with the global-data revision it reflects.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bodies(pub(crate) [Option<(u64, Bytes)>; 2]);

impl Bodies {
    /// The body with or without the catalog, if rendered at `revision`.
    pub(crate) fn get(&self, with_catalog: bool, revision: u64) -> Option<&Bytes> {
        match &self.0[usize::from(with_catalog)] {
            Some((rendered_at, body)) if *rendered_at == revision => Some(body),
            _ => None,
        }
    }
}

/// A verified token.
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    /// Its claims, as verified.
    pub(crate) claims: Arc<Claims>,
    /// The key that verified it: a hit counts only while the `kid` still
    /// maps to this key.
    pub(crate) key: [u8; 32],
    /// Unix microseconds after which the entry is stale.
    pub(crate) evict_at: i64,
    /// Bodies rendered for it so far.
    pub(crate) bodies: Bodies,
}

type Shard = HashMap<Digest, Cached>;

/// See the module doc.
pub(crate) struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    /// A cache of at most about `capacity` entries (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            shard_capacity: capacity.div_ceil(SHARDS),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, digest: &Digest) -> MutexGuard<'_, Shard> {
        self.shards[usize::from(digest[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry for `digest` unless absent or stale at `now`; counts a hit
    /// or a miss.
    pub(crate) fn get(&self, digest: &Digest, now: i64) -> Option<Cached> {
        let found = {
            let mut shard = self.shard(digest);
            match shard.get(digest) {
                Some(entry) if entry.evict_at > now => Some(entry.clone()),
                Some(_) => {
                    shard.remove(digest);
                    None
                }
                None => None,
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores an entry, making room if the shard is full. An entry already
    /// stale at `now` is not stored.
    pub(crate) fn insert(&self, digest: Digest, entry: Cached, now: i64) {
        if self.shard_capacity == 0 || entry.evict_at <= now {
            return;
        }
        let mut shard = self.shard(&digest);
        if shard.len() >= self.shard_capacity && !shard.contains_key(&digest) {
            shard.retain(|_, e| e.evict_at > now);
            let keep = self.shard_capacity - (self.shard_capacity / 8).max(1);
            if shard.len() > keep {
                let victims: Vec<Digest> = shard.keys().take(shard.len() - keep).copied().collect();
                for victim in &victims {
                    shard.remove(victim);
                }
            }
        }
        shard.insert(digest, entry);
    }

    /// Keeps `body`, rendered at global-data `revision`, with the entry for
    /// `digest` (if it is still cached).
    pub(crate) fn set_body(&self, digest: &Digest, with_catalog: bool, revision: u64, body: Bytes) {
        if let Some(entry) = self.shard(digest).get_mut(digest) {
            entry.bodies.0[usize::from(with_catalog)] = Some((revision, body));
        }
    }

    /// Entries held (stale ones included until swept).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Look-ups that found a fresh entry.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Look-ups that did not.
    pub(crate) fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testutil::claims;

    fn entry(evict_at: i64) -> Cached {
        Cached {
            claims: Arc::new(claims(None, 0, 1)),
            key: [0; 32],
            evict_at,
            bodies: Bodies::default(),
        }
    }

    #[test]
    fn entries_expire_and_are_counted() {
        let cache = TokenCache::new(100);
        let d = digest("token");
        assert!(cache.get(&d, 0).is_none());
        cache.insert(d, entry(10), 0);
        assert!(cache.get(&d, 9).is_some());
        assert!(cache.get(&d, 10).is_none());
        assert_eq!((cache.hits(), cache.misses()), (1, 2));
        assert_eq!(cache.len(), 0);
        cache.insert(d, entry(10), 10);
        assert_eq!(cache.len(), 0, "a stale entry is not stored");
    }

    #[test]
    fn bodies_are_kept_per_catalog_flag_and_revision() {
        let cache = TokenCache::new(100);
        let d = digest("token");
        cache.set_body(&d, true, 1, Bytes::from_static(b"lost"));
        cache.insert(d, entry(10), 0);
        cache.set_body(&d, true, 3, Bytes::from_static(b"with"));
        cache.set_body(&d, false, 2, Bytes::from_static(b"without"));
        let hit = cache.get(&d, 0).unwrap();
        assert_eq!(hit.bodies.get(true, 3).unwrap().as_ref(), b"with");
        assert!(hit.bodies.get(true, 4).is_none(), "another revision");
        assert_eq!(hit.bodies.get(false, 2).unwrap().as_ref(), b"without");
        assert!(hit.bodies.get(false, 3).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::new(160);
        for i in 0..10_000 {
            cache.insert(digest(&i.to_string()), entry(i64::MAX), 0);
        }
        assert!(cache.len() <= 160, "{} entries", cache.len());
        assert!(cache.len() >= 120, "{} entries", cache.len());
        let disabled = TokenCache::new(0);
        disabled.insert(digest("x"), entry(i64::MAX), 0);
        assert_eq!(disabled.len(), 0);
    }

    #[test]
    fn stale_entries_are_swept_first() {
        let cache = TokenCache::new(16);
        // Both digests fall in the same shard when their first bytes agree
        // modulo SHARDS; fill one shard (capacity 1) with a stale entry.
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        b[1] = 1;
        cache.insert(a, entry(5), 0);
        cache.insert(b, entry(100), 6);
        assert!(cache.get(&b, 6).is_some());
        assert!(cache.get(&a, 1).is_none());
    }
}

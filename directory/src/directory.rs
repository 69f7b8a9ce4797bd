//! The directory: the federation's shared state, as a fixed set of key-value
//! buckets plus an append-only stream of revocation events.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::error::{DirectoryError, Result};
use crate::kv::Kv;

/// The longest namespace accepted.
pub const MAX_NAMESPACE_LEN: usize = 32;

/// The buckets of the directory (see "Where state lives" in the design).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Federation members: shards, their URL, status, weight, certificate.
    Members,
    /// Placement pins (entity → shard) and tenant moves in flight.
    Pins,
    /// The name index (kind/domain/name → id), unique across shards.
    Names,
    /// The membership index (user → shards holding their assignments).
    Memberships,
    /// Global data: domains, roles, regions, services, endpoints.
    Global,
    /// Short-lived hashed credentials: join tokens and admin call tokens.
    Credentials,
}

impl Bucket {
    /// Every bucket, in a fixed order.
    pub const ALL: [Bucket; 6] = [
        Bucket::Members,
        Bucket::Pins,
        Bucket::Names,
        Bucket::Memberships,
        Bucket::Global,
        Bucket::Credentials,
    ];

    /// The bucket's name inside a namespace (lowercase, stable: it names
    /// NATS buckets and files on disk).
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Members => "members",
            Bucket::Pins => "pins",
            Bucket::Names => "names",
            Bucket::Memberships => "memberships",
            Bucket::Global => "global",
            Bucket::Credentials => "credentials",
        }
    }

    /// Position in [`Bucket::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            Bucket::Members => 0,
            Bucket::Pins => 1,
            Bucket::Names => 2,
            Bucket::Memberships => 3,
            Bucket::Global => 4,
            Bucket::Credentials => 5,
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One event of the revocation stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEvent {
    /// Position in the stream, strictly increasing; resume from here.
    pub sequence: u64,
    /// The encoded event, opaque to the directory.
    pub payload: Bytes,
}

/// Revocation events in sequence order. Like a [`crate::ChangeStream`], it
/// bridges backend outages and resumes after the last delivered event.
pub type RevocationStream = Pin<Box<dyn Stream<Item = RevocationEvent> + Send>>;

/// The federation directory: buckets and the revocation stream of one
/// namespace.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The namespace every bucket and stream of this directory lives in.
    fn namespace(&self) -> &str;

    /// A handle on one bucket.
    fn kv(&self, bucket: Bucket) -> Arc<dyn Kv>;

    /// Appends an event to the revocation stream; returns its sequence.
    async fn publish_revocation(&self, payload: Bytes) -> Result<u64>;

    /// The revocation events with a sequence greater than `after`, in order,
    /// then new ones as they are published (0 replays everything retained).
    /// Events older than the configured maximum age may have been dropped:
    /// the stream then starts at the oldest retained event.
    async fn revocations_from(&self, after: u64) -> Result<RevocationStream>;
}

/// Checks a namespace: 1 to [`MAX_NAMESPACE_LEN`] ASCII letters, digits, `-`
/// or `_`. It prefixes NATS bucket, stream and subject names and on-disk
/// directory names, so nothing else is safe.
pub fn validate_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_LEN {
        return Err(DirectoryError::Invalid(format!(
            "namespace must be 1 to {MAX_NAMESPACE_LEN} characters long"
        )));
    }
    if !namespace
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(DirectoryError::Invalid(format!(
            "namespace {namespace:?} may only contain ASCII letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_validated() {
        assert!(validate_namespace("keyfed").is_ok());
        assert!(validate_namespace("test-01_a").is_ok());
        for bad in [
            "",
            "a.b",
            "a b",
            "a*",
            "ü",
            &"n".repeat(MAX_NAMESPACE_LEN + 1),
        ] {
            assert!(validate_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bucket_indexes_match_all() {
        for (i, bucket) in Bucket::ALL.iter().enumerate() {
            assert_eq!(bucket.index(), i);
        }
    }
}

//! The key-value bucket abstraction every directory backend implements.
//!
//! A bucket maps string keys to byte values. Every write gets a revision from
//! one counter per bucket, strictly increasing, so a revision orders all the
//! changes of a bucket. A process follows a bucket by loading a [`Snapshot`]
//! and then watching from the snapshot's revision; after a disconnect it
//! resumes from the last revision it applied.
//!
//! Compaction: a bucket keeps only the newest value (or deletion marker) of
//! each key. A watch that starts from an old revision, or resumes after an
//! outage or after falling far behind, therefore sees the newest change of
//! each key changed since then (intermediate values of one key may be
//! skipped), still in revision order; a watch that keeps up sees every
//! change. Either way the watcher converges on the bucket's state.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::error::{DirectoryError, Result};

/// The longest key accepted, in bytes (before any backend encoding).
pub const MAX_KEY_LEN: usize = 512;

/// A live value and the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stored bytes.
    pub value: Bytes,
    /// The bucket revision of the write that stored `value`; pass it to
    /// [`Kv::update`] or [`Kv::delete`] for compare-and-swap.
    pub revision: u64,
}

/// One change of a bucket, as delivered by [`Kv::watch_from`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key that changed.
    pub key: String,
    /// The new value, or `None` when the key was deleted.
    pub value: Option<Bytes>,
    /// The revision of this change; resume a watch from here.
    pub revision: u64,
}

/// The live entries of a bucket under a key prefix, as of one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Live entries whose key starts with the prefix, sorted by key.
    pub entries: Vec<(String, Entry)>,
    /// The bucket revision the snapshot reflects: watch from here to follow
    /// the bucket without missing a change.
    pub revision: u64,
}

/// A stream of bucket changes in revision order. It does not end while the
/// directory is alive: when the backend connection drops, it resumes from the
/// last delivered revision once the backend is back.
pub type ChangeStream = Pin<Box<dyn Stream<Item = Change> + Send>>;

/// One key-value bucket of the directory.
///
/// Revisions: a key that never held a value has revision 0, so
/// `update(key, value, 0)` creates it only if it never existed. A deleted key
/// keeps the revision of its deletion, which only watchers learn.
#[async_trait]
pub trait Kv: Send + Sync {
    /// The live value of `key`, or `None` when absent or deleted.
    async fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Stores `value` only if `key` holds no live value; returns the new
    /// revision. Fails with [`DirectoryError::AlreadyExists`] otherwise.
    async fn create(&self, key: &str, value: Bytes) -> Result<u64>;

    /// Compare-and-swap: stores `value` only if `key` is still at
    /// `expected_revision`; returns the new revision. Fails with
    /// [`DirectoryError::WrongRevision`] when the key has moved on, or
    /// [`DirectoryError::NotFound`] when it holds no live value.
    async fn update(&self, key: &str, value: Bytes, expected_revision: u64) -> Result<u64>;

    /// Stores `value` unconditionally; returns the new revision.
    async fn put(&self, key: &str, value: Bytes) -> Result<u64>;

    /// Deletes `key`, only if it is at `expected_revision` when that is
    /// given (errors as for [`Kv::update`]). Returns the revision of the
    /// deletion. An unconditional delete of an absent key succeeds and still
    /// records a deletion.
    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<u64>;

    /// The live entries whose key starts with `prefix` ("" for all).
    async fn snapshot(&self, prefix: &str) -> Result<Snapshot>;

    /// Every change with a revision greater than `revision`, in order
    /// (see the module doc on compaction). The first subscription is made
    /// before returning, so an unreachable backend fails here with
    /// [`DirectoryError::Unavailable`]; later outages are bridged.
    async fn watch_from(&self, revision: u64) -> Result<ChangeStream>;
}

/// Checks a key against the rules shared by all backends: not empty, at most
/// [`MAX_KEY_LEN`] bytes, no control characters.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(DirectoryError::Invalid("empty key".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(DirectoryError::Invalid(format!(
            "key longer than {MAX_KEY_LEN} bytes"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid(
            "key contains a control character".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("user/default/alice").is_ok());
        assert!(validate_key("ü ñ.*>").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("a\nb").is_err());
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
